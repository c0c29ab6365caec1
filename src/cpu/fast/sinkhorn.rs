//! The OT coupling's batch for the fast CPU backend: the draws, Sinkhorn with the stop test,
//! and the pairing of [`crate::cpu::coupling`] (the oracle, module comment there), four lanes at
//! a time and without allocation per step.
//!
//! The same iteration in units of ε, with φ_i = f_i/ε, γ_j = g_j/ε and A_ij = -C_ij/ε (once per
//! step, row-major in `a`):
//!   φ_i ← -log B - LSE_j(γ_j + A_ij),   γ_j ← -log B - LSE_i(φ_i + A_ij).
//! The oracle evaluates every LSE with an exp per pair (two passes: maximum, then the sum); here
//! the potentials are split as φ = φ̂ + ln u, γ = γ̂ + ln v with a kernel
//! K_ij = exp(A_ij + φ̂_i + γ̂_j) (`k`, made with [`exp4`]), so that the updates become the scaling
//! iteration (Schmitzer 2019, "Stabilized sparse scaling algorithms for entropy regularized
//! transport problems", the absorption scheme)
//!   u_i ← 1 / (B·Σ_j K_ij v_j),   v_j ← 1 / (B·Σ_i K_ij u_i)
//! (a multiply-add per pair, no exp). Iteration 0 runs in the log domain (exactly the oracle's
//! form) and its potentials become φ̂, γ̂: K then carries the problem's scale, so a far outlier
//! (C/ε of thousands, beyond f32's exp range) cannot empty a row. Whenever a u or v leaves
//! [e^-30, e^30] it is absorbed (φ̂ += ln u, u = 1, the same for v) and K remade; a sum outside
//! f32's normal range makes that half-update run in the log domain instead. The stop test's row
//! error |B·Σ_j exp(φ_i + γ_j + A_ij) - 1| = |B·u_i·Σ_j K_ij v_j - 1| comes from the f update's
//! own sums (with the u_i before the update), as in the shader. The pairing draws row i's
//! partner by inverse CDF over exp(γ_j + A_ij - m_i) (`exp4`), summed in index order, with the
//! oracle's uniform.
//!
//! Rows of `a` are padded to a multiple of 4 with `PAD` (-1e30): a padding lane's logit never
//! wins a maximum and `exp4` of it is exactly 0 (clamped to -88, 2^-127 → 0), so padding adds
//! nothing to a sum and its K entries are 0.
//!
//! It differs from the oracle by rounding only, which moves the potentials by ~1e-5·ε and can
//! move the stop test's decision or a pairing only where the oracle's own value sits on the
//! threshold or a row's uniform on a CDF boundary (`tests/cpu_fast.rs` checks both). Measured in
//! Chromium (bench/run-browser.sh with COUPLING=ot, docs/BENCHMARKS.md "OT coupling"). Memory:
//! x0, x1, t, φ̂, γ̂, u, v and a row (O(B)), and `a`, `k` (2·B·B4 floats, 8 MiB at the largest
//! OT batch, `OT_MAX_BATCH`).

use super::act::exp4;
use super::simd::F4;
use crate::cpu::batch::write_sample;
use crate::cpu::coupling::{
    draw_sides, epsilon, pick_partner, OT_CHECK_EVERY, OT_ERR_NONE, OT_ITERS, OT_TOL,
};
use crate::cpu::time::TimeDist;
use crate::model::ActivationLayout;
use crate::spec::TrainSpec;

/// The padding lanes' entry of `a` (module comment).
const PAD: f32 = -1.0e30;
/// A scaling u or v beyond e^±ABSORB is absorbed into the potentials (module comment).
const ABSORB: f32 = 30.0;

/// The buffers of one batch size; see the module comment.
pub struct Sinkhorn {
    n: usize,
    n4: usize,
    x0: Vec<[f32; 2]>,
    x1: Vec<[f32; 2]>,
    t: Vec<f32>,
    /// A = -C/ε, `(B, B4)` row-major.
    a: Vec<f32>,
    /// K = exp(A + φ̂ + γ̂), `(B, B4)` row-major.
    k: Vec<f32>,
    phi: Vec<f32>,
    gam: Vec<f32>,
    u: Vec<f32>,
    v: Vec<f32>,
    /// Scratch of B4: a row's terms, or the column sums.
    row: Vec<f32>,
    /// Scratch of B4: the column maxima of the log-domain g update.
    col: Vec<f32>,
    partner: Vec<u32>,
    /// ε of the last batch.
    pub eps: f32,
    /// Sinkhorn iterations (f updates) of the last batch.
    pub iters: u32,
    /// The last measured row marginal error (`OT_ERR_NONE` when no check ran).
    pub err: f32,
    /// Times the kernel K was made in the last batch (1 + absorptions + log-domain updates).
    pub kernels: u32,
    /// A scaling beyond e^±`absorb_at` is absorbed (`ABSORB`; tests lower it to absorb at
    /// every iteration).
    pub absorb_at: f32,
    /// Every update in the log domain, the path a sum outside f32's range takes (tests).
    pub log_domain: bool,
}

impl Sinkhorn {
    /// The buffers for batch `n` (at least 1).
    pub fn new(n: usize) -> Self {
        let n = n.max(1);
        let n4 = n.div_ceil(4) * 4;
        Sinkhorn {
            n,
            n4,
            x0: vec![[0.0; 2]; n],
            x1: vec![[0.0; 2]; n],
            t: vec![0.0; n],
            a: vec![PAD; n * n4],
            k: vec![0.0; n * n4],
            phi: vec![0.0; n4],
            gam: vec![0.0; n4],
            u: vec![1.0; n4],
            v: vec![1.0; n4],
            row: vec![0.0; n4],
            col: vec![0.0; n4],
            partner: vec![0; n],
            eps: 1.0,
            iters: 0,
            err: OT_ERR_NONE,
            kernels: 0,
            absorb_at: ABSORB,
            log_domain: false,
        }
    }

    pub fn batch(&self) -> usize {
        self.n
    }

    /// Step `step`'s OT batch for `spec` (its seed, path, σmin and time density) into the input
    /// and target regions of `acts` (the oracle's `coupling::build_batch_ot`).
    pub fn build_batch(
        &mut self,
        acts: &mut [f32],
        layout: &ActivationLayout,
        data: &[[f32; 2]],
        source: &[[f32; 2]],
        spec: &TrainSpec,
        step: u32,
    ) {
        self.draw(data, spec.seed, step, source, &spec.time);
        self.solve();
        self.pair(spec.seed, step);
        for i in 0..self.n {
            let j = self.partner[i] as usize;
            write_sample(
                acts,
                layout,
                i as u32,
                self.x0[i],
                self.x1[j],
                self.t[i],
                spec.sigma_min,
                spec.path,
            );
        }
    }

    /// The draws (the oracle's `OtProblem::new`), ε and A = -C/ε.
    pub fn draw(
        &mut self,
        data: &[[f32; 2]],
        seed: u32,
        step: u32,
        source: &[[f32; 2]],
        time: &TimeDist,
    ) {
        let n4 = self.n4;
        draw_sides(
            &mut self.x0,
            &mut self.x1,
            &mut self.t,
            data,
            seed,
            step,
            source,
            time,
        );
        let eps = epsilon(&self.x0, &self.x1);
        self.eps = eps;
        for (i, p) in self.x0.iter().enumerate() {
            for (j, q) in self.x1.iter().enumerate() {
                let (dx, dy) = (p[0] - q[0], p[1] - q[1]);
                self.a[i * n4 + j] = -((dx * dx + dy * dy) / eps);
            }
        }
    }

    /// Sinkhorn from φ = γ = 0 with the oracle's stop test (module comment).
    pub fn solve(&mut self) {
        self.phi.fill(0.0);
        self.gam.fill(0.0);
        self.u.fill(1.0);
        self.v.fill(1.0);
        self.err = OT_ERR_NONE;
        self.iters = OT_ITERS;
        self.kernels = 0;
        // Iteration 0 (no check) in the log domain; its potentials scale K.
        self.f_log();
        self.g_log();
        self.kernel();
        for it in 1..OT_ITERS {
            let check = it % OT_CHECK_EVERY == 0;
            let err = self.f_scaled();
            if check {
                self.err = err;
                if err <= OT_TOL {
                    self.iters = it + 1;
                    break;
                }
            }
            self.g_scaled();
            if out_of_range(&self.u[..self.n], self.absorb_at)
                || out_of_range(&self.v[..self.n], self.absorb_at)
            {
                absorb(&mut self.phi, &mut self.u);
                absorb(&mut self.gam, &mut self.v);
                self.kernel();
            }
        }
        absorb(&mut self.phi, &mut self.u);
        absorb(&mut self.gam, &mut self.v);
    }

    /// K = exp(A + φ̂ + γ̂).
    fn kernel(&mut self) {
        self.kernels += 1;
        let n4 = self.n4;
        for i in 0..self.n {
            let pi = F4::splat(self.phi[i]);
            let (a, k) = (&self.a[i * n4..][..n4], &mut self.k[i * n4..][..n4]);
            for c in (0..n4).step_by(4) {
                exp4(F4::load(&a[c..]).plus(F4::load(&self.gam[c..])).plus(pi)).store(&mut k[c..]);
            }
        }
    }

    /// The f update in the log domain from γ = γ̂ + ln v (absorbed first); returns the row error
    /// of the plan before it. φ̂ takes the new φ (u = 1); K is then stale (`kernel`).
    fn f_log(&mut self) -> f32 {
        absorb(&mut self.gam, &mut self.v);
        let (b, log_marginal, n4) = (self.n as f32, -(self.n as f32).ln(), self.n4);
        let mut err = 0.0f32;
        for i in 0..self.n {
            let (m, s) = lse_parts(&self.gam, &self.a[i * n4..][..n4]);
            let before = self.phi[i] + self.u[i].ln();
            err = err.max((b * (before + m).exp() * s - 1.0).abs());
            self.phi[i] = log_marginal - (m + s.ln());
            self.u[i] = 1.0;
        }
        err
    }

    /// The g update in the log domain from φ = φ̂ + ln u (absorbed first), each column's LSE by
    /// rows (a maximum pass, then the sums: `a` is read row by row). γ̂ takes the new γ (v = 1);
    /// K is then stale (`kernel`).
    fn g_log(&mut self) {
        absorb(&mut self.phi, &mut self.u);
        let (log_marginal, n4) = (-(self.n as f32).ln(), self.n4);
        self.col.fill(PAD);
        for i in 0..self.n {
            let (a, pi) = (&self.a[i * n4..][..n4], F4::splat(self.phi[i]));
            for c in (0..n4).step_by(4) {
                F4::load(&self.col[c..])
                    .max(F4::load(&a[c..]).plus(pi))
                    .store(&mut self.col[c..]);
            }
        }
        self.row.fill(0.0);
        for i in 0..self.n {
            let (a, pi) = (&self.a[i * n4..][..n4], F4::splat(self.phi[i]));
            for c in (0..n4).step_by(4) {
                let e = exp4(F4::load(&a[c..]).plus(pi).minus(F4::load(&self.col[c..])));
                F4::load(&self.row[c..]).plus(e).store(&mut self.row[c..]);
            }
        }
        for j in 0..self.n {
            self.gam[j] = log_marginal - (self.col[j] + self.row[j].ln());
            self.v[j] = 1.0;
        }
    }

    /// The f update by scaling, u_i = 1/(B·Σ_j K_ij v_j); returns the row error of the plan
    /// before it. A sum outside f32's normal range runs the update in the log domain instead.
    fn f_scaled(&mut self) -> f32 {
        let (b, n4) = (self.n as f32, self.n4);
        for i in 0..self.n {
            self.row[i] = dot(&self.k[i * n4..][..n4], &self.v);
        }
        if self.log_domain || !normal(&self.row[..self.n]) {
            let err = self.f_log();
            self.kernel();
            return err;
        }
        let mut err = 0.0f32;
        for i in 0..self.n {
            let s = self.row[i];
            err = err.max((b * self.u[i] * s - 1.0).abs());
            self.u[i] = 1.0 / (b * s);
        }
        err
    }

    /// The g update by scaling, v_j = 1/(B·Σ_i K_ij u_i) (the column sums accumulated row by
    /// row), or in the log domain when a sum is outside f32's normal range.
    fn g_scaled(&mut self) {
        let (b, n4) = (self.n as f32, self.n4);
        self.row.fill(0.0);
        for i in 0..self.n {
            let (k, ui) = (&self.k[i * n4..][..n4], F4::splat(self.u[i]));
            for c in (0..n4).step_by(4) {
                F4::load(&self.row[c..])
                    .add_mul(F4::load(&k[c..]), ui)
                    .store(&mut self.row[c..]);
            }
        }
        if self.log_domain || !normal(&self.row[..self.n]) {
            self.g_log();
            self.kernel();
            return;
        }
        for j in 0..self.n {
            self.v[j] = 1.0 / (b * self.row[j]);
        }
    }

    /// Each row's partner, drawn from row i of the plan (depends on γ only).
    pub fn pair(&mut self, seed: u32, step: u32) {
        let n4 = self.n4;
        for i in 0..self.n {
            let a = &self.a[i * n4..][..n4];
            let m = max_of(&self.gam, a);
            let mv = F4::splat(m);
            for k in (0..n4).step_by(4) {
                exp4(F4::load(&self.gam[k..]).plus(F4::load(&a[k..])).minus(mv))
                    .store(&mut self.row[k..]);
            }
            self.partner[i] = pick_partner(&self.row[..self.n], seed, step, i as u32);
        }
    }

    /// The potentials in the oracle's units: (f, g) = ε·(φ, γ).
    pub fn potentials(&self) -> (Vec<f32>, Vec<f32>) {
        let s = |v: &[f32]| v[..self.n].iter().map(|x| x * self.eps).collect();
        (s(&self.phi), s(&self.gam))
    }

    pub fn partners(&self) -> &[u32] {
        &self.partner
    }
}

/// The maximum of v_k + a_k over lanes of equal length (a multiple of 4).
#[inline]
fn max_of(v: &[f32], a: &[f32]) -> f32 {
    let mut mv = F4::splat(PAD);
    for k in (0..a.len()).step_by(4) {
        mv = mv.max(F4::load(&v[k..]).plus(F4::load(&a[k..])));
    }
    lanes(mv).into_iter().fold(PAD, f32::max)
}

/// Σ_k a_k·b_k over lanes of equal length (a multiple of 4).
#[inline]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut s = F4::splat(0.0);
    for c in (0..a.len()).step_by(4) {
        s = s.add_mul(F4::load(&a[c..]), F4::load(&b[c..]));
    }
    let s = lanes(s);
    (s[0] + s[1]) + (s[2] + s[3])
}

/// Every value a normal, finite f32 (a sum whose reciprocal is safe).
fn normal(v: &[f32]) -> bool {
    v.iter().all(|x| x.is_normal() && *x > 0.0)
}

/// Some scaling beyond e^±`at`.
fn out_of_range(v: &[f32], at: f32) -> bool {
    let (lo, hi) = ((-at).exp(), at.exp());
    v.iter().any(|&x| !(lo..=hi).contains(&x))
}

/// φ̂ += ln u, u = 1 (the potential keeps its value).
fn absorb(hat: &mut [f32], scale: &mut [f32]) {
    for (h, s) in hat.iter_mut().zip(scale.iter_mut()) {
        if *s != 1.0 {
            *h += s.ln();
            *s = 1.0;
        }
    }
}

/// (m, S) of LSE(v + a) = m + ln S over lanes of equal length (a multiple of 4): m the maximum
/// of v_k + a_k, S = Σ exp(v_k + a_k - m) (≥ 1: the maximum's own term).
#[inline]
fn lse_parts(v: &[f32], a: &[f32]) -> (f32, f32) {
    let m = max_of(v, a);
    let m4 = F4::splat(m);
    let mut sv = F4::splat(0.0);
    for k in (0..a.len()).step_by(4) {
        sv = sv.plus(exp4(F4::load(&v[k..]).plus(F4::load(&a[k..])).minus(m4)));
    }
    let s = lanes(sv);
    (m, (s[0] + s[1]) + (s[2] + s[3]))
}

fn lanes(v: F4) -> [f32; 4] {
    let mut out = [0.0f32; 4];
    v.store(&mut out);
    out
}
