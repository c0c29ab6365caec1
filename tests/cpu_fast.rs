//! The fast CPU trainer (`cpu::fast`) against the scalar reference (`cpu::CpuTrainer`): the same
//! bits in the loss, every gradient and every parameter after each step, and its blocked matrix
//! products against the ordered scalar sums. Runs natively (the `[f32; 4]` path) and, through
//! wasm-bindgen-test-runner (scripts/test.sh's browser tests), in headless Chromium (the wasm
//! SIMD128 path the page uses). About 1 s.
//!
//! Exact equality is the right bar: both sum every term in the same order with a separate
//! multiply and add (no fused multiply-add on either path), and share the activation, batch and
//! Adam code.

use flowmatch::config::{Activation, Config, Coupling, Dataset, Path};
mod common;
use common::assert_close;

use flowmatch::cpu::fast::act::exp4;
use flowmatch::cpu::fast::gemm::{col_sums, gemm_nn, gemm_tn_acc, pack_panels, tn_scratch_len, ROW_CHUNK};
use flowmatch::cpu::fast::simd::{F4, WASM_SIMD128};
use flowmatch::cpu::{CpuTrainer, FastCpuTrainer};
use flowmatch::rng::Stream;
use flowmatch::targets::sample_dataset;
use flowmatch::TrainSpec;

#[cfg(target_arch = "wasm32")]
wasm_bindgen_test::wasm_bindgen_test_configure!(run_in_browser);

/// Steps both trainers from the same state: before every step the fast trainer gets the
/// reference's parameters and Adam moments, so each step's loss and gradient are compared from
/// identical weights (differences cannot compound through Adam, whose first steps move every
/// weight by about ±lr however small its gradient). Without SiLU the results are the same bits;
/// with SiLU they differ only through `exp4`'s rounding (under 1 ulp against the reference's
/// `exp`): loss within 1e-6 relative, every gradient within 1e-5 relative plus 1e-6 of the
/// layer's largest gradient (measured on S: 1e-7 and 7e-7 of |g| + 0.1·largest, so 10× margin).
/// Returns the largest relative loss and gradient differences seen.
fn tracks_reference(mut c: Config, source: Vec<[f32; 2]>, steps: u32) -> (f32, f32) {
    c.seed = 3;
    let spec = TrainSpec::from_config(&c);
    let data = sample_dataset(c.dataset, 500, 1);
    let (mut oracle, mut fast) = (CpuTrainer::new(spec, data.clone()), FastCpuTrainer::new(spec, data));
    oracle.source = source.clone();
    fast.source = source;
    let exact = c.activation != Activation::Silu;
    let (mut worst_loss, mut worst_grad) = (0.0f32, 0.0f32);
    for step in 0..steps {
        fast.params.copy_from_slice(&oracle.params);
        fast.m.copy_from_slice(&oracle.m);
        fast.v.copy_from_slice(&oracle.v);
        let (lo, lf) = (oracle.step(), fast.step());
        let what = format!("width {} depth {} batch {} {:?} {:?} step {step} (simd128: {WASM_SIMD128})", c.width, c.depth, c.batch, c.activation, c.coupling);
        if exact {
            assert_eq!(lo.to_bits(), lf.to_bits(), "loss, {what}: {lo} vs {lf}");
            if let Some(i) = (0..oracle.grads.len()).find(|&i| oracle.grads[i].to_bits() != fast.grads[i].to_bits()) {
                panic!("gradient {i}, {what}: {} vs {}", oracle.grads[i], fast.grads[i]);
            }
            continue;
        }
        worst_loss = worst_loss.max((lo - lf).abs() / lo.abs());
        assert!((lo - lf).abs() <= 1e-6 * lo.abs(), "loss, {what}: {lo} vs {lf}");
        for l in spec.shape.layers() {
            let range = l.w_offset as usize..(l.b_offset + l.out_dim) as usize;
            let (want, got) = (&oracle.grads[range.clone()], &fast.grads[range]);
            let scale = want.iter().fold(0.0f32, |m, g| m.max(g.abs()));
            for (g, w) in got.iter().zip(want) {
                worst_grad = worst_grad.max((g - w).abs() / (w.abs() + 0.1 * scale));
            }
            assert_close(&what, got, want, 1e-6 * scale, 1e-5);
        }
    }
    (worst_loss, worst_grad)
}

/// Widths and batches that are not multiples of 4 or 8, every activation, both couplings, a
/// non-linear path and a source distribution.
#[cfg_attr(not(target_arch = "wasm32"), test)]
#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
fn tracks_the_reference() {
    let base = Config::default();
    for (width, depth, batch, activation) in [
        (5, 1, 7, Activation::Relu),
        (13, 2, 9, Activation::Gelu),
        (16, 3, 33, Activation::Tanh),
        (20, 2, 130, Activation::Silu),
    ] {
        tracks_reference(Config { width, depth, batch, activation, ..base.clone() }, Vec::new(), 4);
    }
    let c = Config { width: 12, depth: 2, batch: 24, coupling: Coupling::Ot, path: Path::Cosine, dataset: Dataset::Spirals, ..base.clone() };
    tracks_reference(c, sample_dataset(Dataset::EightGaussians, 300, 2), 3);
    let c = Config { width: 12, depth: 2, batch: 24, activation: Activation::Relu, coupling: Coupling::Ot, ..base };
    tracks_reference(c, sample_dataset(Dataset::EightGaussians, 300, 2), 3);
}

/// The benchmark's S model (SiLU) over more steps, and free-running: trained apart for 40 steps,
/// the two losses stay within 1e-5 relative (measured 1.1e-7).
#[cfg_attr(not(target_arch = "wasm32"), test)]
#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
fn tracks_the_reference_on_the_s_model() {
    let c = Config { width: 64, depth: 3, batch: 256, ..Config::default() };
    let (wl, wg) = tracks_reference(c.clone(), Vec::new(), 12);
    let spec = TrainSpec::from_config(&c);
    let data = sample_dataset(c.dataset, 500, 1);
    let (mut oracle, mut fast) = (CpuTrainer::new(spec, data.clone()), FastCpuTrainer::new(spec, data));
    let mut worst = 0.0f32;
    for _ in 0..40 {
        let (lo, lf) = (oracle.step(), fast.step());
        worst = worst.max((lo - lf).abs() / lo);
        assert!((lo - lf).abs() <= 1e-5 * lo, "free-running S losses part: {lo} vs {lf}");
    }
    println!("S: worst loss rel {wl:e}, grad rel {wg:e}; free-running 40 steps: loss rel {worst:e}");
}

/// Changing the batch between steps rebuilds the buffers instead of reading past them.
#[cfg_attr(not(target_arch = "wasm32"), test)]
#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
fn follows_a_changed_batch() {
    let c = Config { width: 8, depth: 1, batch: 16, ..Config::default() };
    let mut t = FastCpuTrainer::new(TrainSpec::from_config(&c), vec![[0.5, 0.5]]);
    t.step();
    t.spec.batch = 21;
    assert!(t.step().is_finite());
}

fn random(n: usize, seed: u32) -> Vec<f32> {
    let mut s = Stream::new(seed, 0);
    (0..n).map(|_| s.range(-1.0, 1.0)).collect()
}

/// Every product equals the scalar sum in increasing k, bit for bit, at shapes that exercise the
/// 4×8 blocks, the 4×4 tail panels, strides wider than the rows and row chunks that do not divide
/// the batch.
#[cfg_attr(not(target_arch = "wasm32"), test)]
#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
fn blocked_products_equal_the_ordered_scalar_sums() {
    const { assert!(260 % ROW_CHUNK != 0) };
    for &(m, n, k) in &[(4, 4, 1), (8, 12, 3), (12, 20, 37), (132, 8, 5), (260, 36, 17)] {
        let (lda, ldb, ldc) = (k + 3, n + 4, n + 8);
        let a = random(m * lda, 1);
        let b = random(k * ldb, 2);
        let bias = random(n, 3);
        let mut panels = vec![0.0; k * n];
        pack_panels(&mut panels, k, n, |kk, j| b[kk * ldb + j]);
        let mut c = vec![0.0; m * ldc];
        gemm_nn(&a, lda, &panels, &mut c, ldc, m, n, k, Some(&bias));
        for r in 0..m {
            for j in 0..n {
                let mut want = bias[j];
                for kk in 0..k {
                    want += a[r * lda + kk] * b[kk * ldb + j];
                }
                assert_eq!(c[r * ldc + j].to_bits(), want.to_bits(), "gemm_nn {m}x{n}x{k} at ({r},{j})");
            }
        }
        // Weight gradient over a batch of m rows: outputs n × (k rounded up to 4).
        let n_i = k.div_ceil(4) * 4;
        let d = random(m * n, 4);
        let x = random(m * n_i, 5);
        let mut g = vec![0.0; n * n_i];
        let mut scratch = vec![0.0; tn_scratch_len(n, n_i)];
        gemm_tn_acc(&d, n, &x, n_i, &mut g, n_i, m, n, n_i, &mut scratch);
        for o in 0..n {
            for i in 0..n_i {
                let mut want = 0.0f32;
                for r in 0..m {
                    want += d[r * n + o] * x[r * n_i + i];
                }
                assert_eq!(g[o * n_i + i].to_bits(), want.to_bits(), "gemm_tn {m}x{n}x{n_i} at ({o},{i})");
            }
        }
        let cols = (k / 4) * 4;
        let mut s = vec![0.0; cols];
        col_sums(&a, lda, m, cols, &mut s);
        for (j, got) in s.iter().enumerate() {
            let want = (0..m).fold(0.0f32, |acc, r| acc + a[r * lda + j]);
            assert_eq!(got.to_bits(), want.to_bits(), "col_sums at {j}");
        }
    }
}

/// `exp4` against f64's exp: within 2 ulp of the correctly rounded value on [-87, 88], exactly 1
/// at 0, and 0 / finite at the clamped ends.
#[cfg_attr(not(target_arch = "wasm32"), test)]
#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
fn exp4_is_within_two_ulp() {
    let mut worst = 0.0f64;
    let xs: Vec<f32> = (0..40_000).map(|i| -87.0 + 175.0 * i as f32 / 40_000.0).chain([0.0, -0.0, 1e-30, -1e-30, 0.5, -0.5]).collect();
    for chunk in xs.chunks(4) {
        let mut lanes = [0.0f32; 4];
        lanes[..chunk.len()].copy_from_slice(chunk);
        let mut out = [0.0f32; 4];
        exp4(F4::load(&lanes)).store(&mut out);
        for (x, got) in lanes.iter().zip(out).take(chunk.len()) {
            let want = (*x as f64).exp();
            let ulp = f32::from_bits((want as f32).to_bits() + 1) as f64 - want as f32 as f64;
            let err = (got as f64 - want).abs() / ulp;
            worst = worst.max(err);
            assert!(err <= 2.0, "exp4({x}) = {got}, exp = {want} ({err:.2} ulp)");
        }
    }
    let mut out = [0.0f32; 4];
    exp4(F4::load(&[0.0, -200.0, 200.0, f32::NAN])).store(&mut out);
    assert_eq!(out[0], 1.0);
    assert_eq!(out[1], 0.0);
    assert!(out[2].is_finite() && out[2] > 1e38, "exp4(200) = {}", out[2]);
    println!("exp4: worst {worst:.3} ulp");
}

/// The OT coupling's vectorised Sinkhorn (`cpu::fast::sinkhorn`) against the oracle
/// (`cpu::coupling::OtProblem`) on the same draws: the same ε (bits), the same iterations and stop
/// error to rounding, potentials within `POT_TOL`·ε, and the same partner in every row but those
/// whose uniform lies within `EDGE` of a boundary of the oracle's row CDF (where rounding of either
/// side may cross it; counted, at most 1% of the rows). Batches from 7 to 256, five datasets, a
/// data set with a far outlier (C/ε beyond f32's exp range: the log domain and the padding must
/// hold), a source distribution and several steps.
#[cfg_attr(not(target_arch = "wasm32"), test)]
#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
fn ot_sinkhorn_agrees_with_the_oracle() {
    use flowmatch::cpu::coupling::OtProblem;
    use flowmatch::cpu::fast::sinkhorn::Sinkhorn;
    use flowmatch::cpu::time::TimeDist;
    use flowmatch::rng::{hash4, stream, unit};
    // Potentials: the two differ by f32 rounding of values up to ~C/ε ≈ 1e2 (ulp ~1e-5) carried
    // through contractive updates: measured 1.9e-5·ε at worst (native), so 1e-4·ε leaves 5×.
    const POT_TOL: f32 = 1e-4;
    // A row's partner may differ only where the uniform lies within this fraction of the row's
    // total mass of a CDF boundary: the relative change of the row's probabilities through
    // potentials off by POT_TOL·ε is about POT_TOL.
    const EDGE: f64 = 2e-4;
    // The stop test's error, absolute (see below): measured 1.4e-6 at worst, so 2e-5 (1/50 of
    // OT_TOL: the stop decision can differ only for an oracle error that close to OT_TOL).
    const ERR_TOL: f32 = 2e-5;
    let mut far = sample_dataset(Dataset::Moons, 500, 4);
    far[7] = [60.0, -45.0];
    // (name, target, source (empty: N(0, I)), batch)
    type Case = (&'static str, Vec<[f32; 2]>, Vec<[f32; 2]>, usize);
    let cases: Vec<Case> = vec![
        ("moons", sample_dataset(Dataset::Moons, 2000, 1), Vec::new(), 128),
        ("8gaussians", sample_dataset(Dataset::EightGaussians, 2000, 1), Vec::new(), 256),
        ("checkerboard", sample_dataset(Dataset::Checkerboard, 2000, 1), Vec::new(), 7),
        ("spirals from 8gaussians", sample_dataset(Dataset::Spirals, 2000, 1), sample_dataset(Dataset::EightGaussians, 300, 2), 24),
        ("25gaussians", sample_dataset(Dataset::TwentyFiveGaussians, 2000, 1), Vec::new(), 130),
        ("moons with a far outlier", far, Vec::new(), 64),
    ];
    let time = TimeDist::default();
    let (mut worst_pot, mut worst_err, mut flipped, mut rows, mut kernels) = (0.0f32, 0.0f32, 0usize, 0usize, 0u32);
    // Each case by scaling (the path taken), absorbing at every iteration, and in the log domain
    // (the fallback for a sum outside f32's range): the three paths agree with the oracle alike.
    let modes = [("scaling", 30.0f32, false), ("absorbing", 1e-3, false), ("log domain", 30.0, true)];
    let steps = [(0u32, 0u32), (3, 17), (5, 1000)];
    for ((name, data, source, n), (seed, step)) in cases.iter().flat_map(|c| steps.iter().map(move |s| (c, *s))) {
        // The oracle once per batch (in wasm its software exp makes it the slow side).
        let p = OtProblem::new(*n, data, seed, step, source, &time);
        let (f, g, iters, err) = p.sinkhorn();
        let want = p.pair(&g, seed, step);
        for &(mode, absorb_at, log_domain) in &modes {
            let mut fast = Sinkhorn::new(*n);
            (fast.absorb_at, fast.log_domain) = (absorb_at, log_domain);
            let what = format!("{name}, batch {n}, seed {seed}, step {step}, {mode}");
            fast.draw(data, seed, step, source, &time);
            assert_eq!(fast.eps.to_bits(), p.eps.to_bits(), "ε, {what}");
            fast.solve();
            if mode == "scaling" {
                kernels = kernels.max(fast.kernels);
            } else {
                // Absorbing: most iterations remake K (not those whose scalings all stay within
                // e^±1e-3); in the log domain every half-update after iteration 0 does (the last,
                // an f update, too).
                let least = if log_domain { 2 * fast.iters - 2 } else { fast.iters / 2 };
                assert!(fast.kernels >= least, "{what}: {} kernels in {} iterations", fast.kernels, fast.iters);
            }
            assert_eq!(fast.iters, iters, "iterations, {what} (oracle's last error {err}, fast {})", fast.err);
            // The error |B·row mass - 1| is a difference of O(1) values: rounding moves it by an
            // absolute amount, about the potentials' difference in units of ε (a row's mass is
            // exp(φ_i + γ_j - C_ij/ε) summed).
            worst_err = worst_err.max((fast.err - err).abs());
            assert!((fast.err - err).abs() <= ERR_TOL, "stop error, {what}: {} vs {err}", fast.err);
            let (ff, gf) = fast.potentials();
            for (got, want) in ff.iter().zip(&f).chain(gf.iter().zip(&g)) {
                let d = (got - want).abs() / p.eps;
                worst_pot = worst_pot.max(d);
                assert!(d <= POT_TOL, "potentials, {what}: {got} vs {want} (ε {})", p.eps);
            }
            fast.pair(seed, step);
            for (i, (&got, &want)) in fast.partners().iter().zip(&want).enumerate() {
                rows += 1;
                if got == want {
                    continue;
                }
                flipped += 1;
                // The oracle's row CDF (f64): the uniform must sit within EDGE of a boundary
                // between the two picks.
                let logits: Vec<f64> = (0..*n).map(|j| ((g[j] - p.cost[i * n + j]) / p.eps) as f64).collect();
                let m = logits.iter().cloned().fold(f64::MIN, f64::max);
                let e: Vec<f64> = logits.iter().map(|l| (l - m).exp()).collect();
                let total: f64 = e.iter().sum();
                let u = unit(hash4(seed, step, i as u32, stream::OT)) as f64;
                let (lo, hi) = (got.min(want) as usize, got.max(want) as usize);
                let between: f64 = e[..hi].iter().sum::<f64>() / total;
                let start: f64 = e[..lo + 1].iter().sum::<f64>() / total;
                let near = (u - between).abs().min((u - start).abs());
                assert!(near <= EDGE, "partner of row {i}, {what}: {got} vs the oracle's {want}, uniform {u} is {near} from a boundary");
            }
        }
    }
    assert!(flipped * 100 <= rows, "{flipped} of {rows} partners differ");
    println!("OT Sinkhorn: potentials within {worst_pot:e}·ε of the oracle's, stop error within {worst_err:e}; {flipped} of {rows} partners differ (on CDF boundaries); at most {kernels} kernels a batch by scaling");
}
