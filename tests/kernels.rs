//! Each WGSL kernel against the CPU reference on random inputs, at sizes that are not multiples
//! of the workgroup size. Runs natively and, through `wasm-pack test`, in headless Chromium.
//!
//! Each stage is checked in isolation: the CPU recomputes a stage from the GPU's own inputs to it
//! (read back), so an error points at one kernel instead of accumulating through the step.
//!
//! Tolerances: `|gpu - ref| <= atol + rtol·|ref|`. Sums of ≤ 64 f32 products in another order
//! (and fused multiply-adds) differ by a few ULPs: rtol 1e-4 with a small atol for values near
//! zero. The batch kernel is the exception: WGSL only promises sin/cos to an absolute 2^-11 on
//! [-π, π], and Box–Muller multiplies that by r ≤ 5.7, so x0-derived values get atol 4e-3.

mod common;
use common::{assert_close, gpu};

use flowmatch::config::{Activation, Coupling, Path, Solver};
use flowmatch::cpu::{adam, batch, coupling, meanflow, mlp, ode, sde};
use flowmatch::gpu::{GpuDensity, GpuSampler, GpuTrainer, KernelVariant, TrainerOptions};
use flowmatch::model::{InputLayout, ModelShape, Query};
use flowmatch::targets::{sample_dataset, sample_dataset_labeled};
use flowmatch::{config::Dataset, cpu::adam::AdamHyper, TrainSpec};

#[cfg(target_arch = "wasm32")]
wasm_bindgen_test::wasm_bindgen_test_configure!(run_in_browser);

const ATOL: f32 = 2e-5;
const RTOL: f32 = 1e-4;

fn spec(activation: Activation) -> TrainSpec {
    TrainSpec {
        shape: ModelShape::new(19, 2, activation),
        batch: 37,
        seed: 11,
        sigma_min: 0.05,
        path: Path::Linear,
        coupling: Coupling::Independent,
        adam: AdamHyper::new(3e-3, 0.01),
        time: Default::default(),
        label_dropout: 0.0,
    }
}

fn data() -> Vec<[f32; 2]> {
    sample_dataset(Dataset::Moons, 1001, 5)
}

/// The class labels of `data()`'s points (moons: 2 classes).
fn labels() -> Vec<u32> {
    sample_dataset_labeled(Dataset::Moons, 1001, 5).1
}

/// A class-conditional MeanFlow spec (moons' 2 classes, so 3 + 1 + 3 = 7 input columns) with
/// label dropout, at the odd sizes of `spec`.
fn conditional_mean_flow(activation: Activation) -> TrainSpec {
    let s = spec(activation);
    TrainSpec { shape: ModelShape { inputs: InputLayout { n_classes: 2, mean_flow: true }, ..s.shape }, label_dropout: 0.3, ..s }
}

/// What the GPU held around its last training step, for stage-by-stage comparison.
struct Captured {
    spec: TrainSpec,
    params_before: Vec<f32>,
    moments_before: Vec<f32>,
    params_after: Vec<f32>,
    moments_after: Vec<f32>,
    grads: Vec<f32>,
    acts: Vec<f32>,
    deltas: Vec<f32>,
    loss: f32,
    last_step: u32,
}

/// Runs `steps` GPU training steps and captures the state before and after the last one.
async fn run_steps(spec: TrainSpec, steps: u32) -> Captured {
    run_steps_with(spec, steps, TrainerOptions::default()).await
}

/// As `run_steps`, with the kernel variant (and split count) forced.
async fn run_steps_with(spec: TrainSpec, steps: u32, options: TrainerOptions) -> Captured {
    let ctx = gpu().await;
    let mut t = GpuTrainer::with_labels(&ctx, spec, &data(), &labels(), &[], options).unwrap();
    let p = spec.shape.param_len();
    t.train(steps - 1);
    let params_before = t.read(&t.params, p).await.unwrap();
    let moments_before = t.read(&t.moments, 2 * p).await.unwrap();
    t.train(1);
    let status = t.status(1).await.unwrap();
    assert_eq!(status.first_bad_step, None);
    Captured {
        spec,
        params_before,
        moments_before,
        params_after: t.read(&t.params, p).await.unwrap(),
        moments_after: t.read(&t.moments, 2 * p).await.unwrap(),
        grads: t.read(&t.grads, p).await.unwrap(),
        acts: t.read(&t.acts, t.layout.len as usize).await.unwrap(),
        deltas: t.read(&t.deltas, t.layout.deltas_len as usize).await.unwrap(),
        loss: status.losses[0].1,
        last_step: steps - 1,
    }
}

async fn batch_matches_cpu(path: Path) {
    batch_matches_cpu_for(TrainSpec { path, ..spec(Activation::Silu) }).await
}

async fn batch_matches_cpu_for(spec: TrainSpec) {
    let c = run_steps(spec, 2).await;
    let layout = c.spec.shape.activation_layout(c.spec.batch);
    let mut acts = vec![0.0; layout.len as usize];
    let extras = batch::Extras { inputs: spec.shape.inputs, labels: &labels(), label_dropout: spec.label_dropout };
    batch::build_batch_with(&mut acts, &layout, &data(), c.spec.seed, c.last_step, c.spec.sigma_min, c.spec.path, &[], &c.spec.time, &extras);
    let inputs = layout.target as usize;
    assert_close("batch (x_t, t, r, class)", &c.acts[..inputs], &acts[..inputs], 4e-3, RTOL);
    let d = layout.in_dim as usize;
    for b in 0..c.spec.batch as usize {
        // t, r and the one-hot class are pure integer-to-float maps: they must match exactly.
        assert_eq!(c.acts[d * b + 2..d * (b + 1)], acts[d * b + 2..d * (b + 1)], "t, r and class of sample {b}");
    }
    if !spec.mean_flow() {
        let region = |v: &[f32]| v[inputs..inputs + 2 * c.spec.batch as usize].to_vec();
        assert_close("batch u", &region(&c.acts), &region(&acts), 4e-3, RTOL);
    }
}

async fn forward_and_loss_match_cpu(activation: Activation) {
    forward_and_loss_match_cpu_with(spec(activation), TrainerOptions::default()).await
}

async fn forward_and_loss_match_cpu_with(spec: TrainSpec, options: TrainerOptions) {
    let activation = spec.shape.activation;
    let c = run_steps_with(spec, 2, options).await;
    let (shape, layout) = (c.spec.shape, c.spec.shape.activation_layout(c.spec.batch));
    let mut acts = c.acts.clone();
    for v in acts[layout.hidden[0].0 as usize..].iter_mut() {
        *v = f32::NAN; // everything the forward pass writes must be recomputed
    }
    mlp::forward(&shape, &c.params_before, &mut acts, &layout);
    assert_close(&format!("forward {activation}"), &c.acts, &acts, ATOL, RTOL);
    let mut deltas = c.deltas.clone();
    let loss = mlp::loss_and_grad(&shape, &c.acts, &mut deltas, &layout);
    let out = layout.deltas[shape.depth as usize] as usize;
    assert_close("dL/dv", &c.deltas[out..], &deltas[out..], ATOL, RTOL);
    assert_close("loss (reduced in adam.wgsl)", &[c.loss], &[loss], ATOL, RTOL);
}

async fn backward_matches_cpu(activation: Activation) {
    backward_matches_cpu_with(spec(activation), TrainerOptions::default()).await
}

async fn backward_matches_cpu_with(spec: TrainSpec, options: TrainerOptions) {
    let activation = spec.shape.activation;
    let c = run_steps_with(spec, 2, options).await;
    let (shape, layout) = (c.spec.shape, c.spec.shape.activation_layout(c.spec.batch));
    let mut deltas = c.deltas.clone();
    let out = layout.deltas[shape.depth as usize] as usize;
    for v in deltas[..out].iter_mut() {
        *v = f32::NAN;
    }
    let mut grads = vec![f32::NAN; shape.param_len()];
    mlp::backward(&shape, &c.params_before, &c.acts, &mut deltas, &mut grads, &layout);
    assert_close(&format!("deltas {activation}"), &c.deltas, &deltas, ATOL, RTOL);
    // Gradients are sums over the batch of products: scale atol by the gradient's magnitude.
    let scale = grads.iter().fold(0.0f32, |m, g| m.max(g.abs()));
    assert_close(&format!("gradients {activation}"), &c.grads, &grads, ATOL * scale.max(1.0), RTOL);
}

async fn adam_matches_cpu() {
    adam_matches_cpu_with(TrainerOptions::default()).await
}

async fn adam_matches_cpu_with(options: TrainerOptions) {
    // Step 3: moments are non-zero and the bias corrections are not 1.
    let c = run_steps_with(spec(Activation::Silu), 3, options).await;
    let p = c.spec.shape.param_len();
    let mut params = c.params_before.clone();
    let (mut m, mut v) = (c.moments_before[..p].to_vec(), c.moments_before[p..].to_vec());
    adam::adam_update(&c.spec.adam, c.last_step, &mut params, &c.grads, &mut m, &mut v);
    assert_close("adam m", &c.moments_after[..p], &m, 1e-7, RTOL);
    assert_close("adam v", &c.moments_after[p..], &v, 1e-10, RTOL);
    assert_close("adam params", &c.params_after, &params, 1e-6, RTOL);
}

async fn ode_matches_cpu(solver: Solver) {
    let ctx = gpu().await;
    let s = spec(Activation::Gelu);
    let t = GpuTrainer::new(&ctx, s, &data()).unwrap();
    let params = s.shape.init_params(s.seed);
    let n = 333;
    let mut sampler = GpuSampler::new(&ctx, &s.shape, &t.params, n, 0).unwrap();
    sampler.reset(9);
    let x0 = sampler.read_particles().await.unwrap();
    let want0 = ode::initial_particles(9, n);
    assert_close("particle init", &x0.concat(), &want0.concat(), 4e-3, RTOL);
    // From the GPU's own start, 3 steps over [0.2, 0.8].
    sampler.integrate(solver, 0.2, 0.8, 3);
    let got = sampler.read_particles().await.unwrap();
    let mut want = x0.clone();
    ode::integrate(&s.shape, &params, solver, &mut want, 0.2, 0.8, 3);
    assert_close(&format!("ode {solver}"), &got.concat(), &want.concat(), 1e-4, 1e-4);
}

async fn trajectories_record_every_step() {
    let ctx = gpu().await;
    let s = spec(Activation::Tanh);
    let t = GpuTrainer::new(&ctx, s, &data()).unwrap();
    let (n, steps) = (70, 5);
    let mut sampler = GpuSampler::new(&ctx, &s.shape, &t.params, n, steps).unwrap();
    sampler.reset(1);
    sampler.integrate(Solver::Midpoint, 0.0, 1.0, steps);
    let traj = sampler.read_trajectories().await.unwrap();
    let end = sampler.read_particles().await.unwrap();
    assert_eq!(traj.len(), (steps as usize + 1) * n as usize);
    assert_close("trajectory row 0 = x0", &traj[..n as usize].concat(), &ode::initial_particles(1, n).concat(), 4e-3, RTOL);
    assert_eq!(&traj[steps as usize * n as usize..], &end[..], "last trajectory row is the final state");
    let params = s.shape.init_params(s.seed);
    let mut want = traj[..n as usize].to_vec();
    ode::integrate(&s.shape, &params, Solver::Midpoint, &mut want, 0.0, 0.4, 2);
    assert_close("trajectory row 2", &traj[2 * n as usize..3 * n as usize].concat(), &want.concat(), 1e-4, 1e-4);
}

/// The field kernel (`flowmatch field`) against `cpu::mlp::velocity` at 333 random (x, y, t),
/// for every activation (the same MLP code as ode_step.wgsl, so the same tolerance).
async fn field_matches_cpu() {
    use flowmatch::gpu::GpuField;
    use flowmatch::rng::{hash4, unit};
    let ctx = gpu().await;
    for &activation in Activation::ALL {
        let s = spec(activation);
        let params = s.shape.init_params(s.seed);
        let buffer = wgpu::util::DeviceExt::create_buffer_init(&ctx.device, &wgpu::util::BufferInitDescriptor {
            label: Some("test.params"),
            contents: bytemuck::cast_slice(&params),
            usage: wgpu::BufferUsages::STORAGE,
        });
        let n = 333u32;
        let inputs: Vec<f32> = (0..3 * n).map(|i| if i % 3 == 2 { unit(hash4(7, 1, i, 0)) } else { 6.0 * unit(hash4(7, 0, i, 0)) - 3.0 }).collect();
        let field = GpuField::new(&ctx, &s.shape, &buffer, n + 10).unwrap();
        let got = field.eval(&inputs).await.unwrap();
        let mut scratch = vec![0.0; 2 * s.shape.width as usize];
        let want: Vec<[f32; 2]> = inputs.chunks_exact(3).map(|p| mlp::velocity(&s.shape, &params, [p[0], p[1]], p[2], &mut scratch)).collect();
        assert_close(&format!("field {activation}"), &got.concat(), &want.concat(), 1e-5, 1e-4);
        assert!(field.eval(&vec![0.0; 3 * (n as usize + 11)]).await.is_err(), "over capacity is refused");
    }
}

/// With a source dataset, x0 comes from the source points: the batch and the particles' starting
/// points match the CPU twin exactly (no transcendental functions involved).
async fn source_points_are_used() {
    let ctx = gpu().await;
    let s = spec(Activation::Silu);
    let source = sample_dataset(Dataset::EightGaussians, 777, 3);
    let mut t = GpuTrainer::new_with_source(&ctx, s, &data(), &source).unwrap();
    t.train(1);
    let acts = t.read(&t.acts, t.layout.len as usize).await.unwrap();
    let mut want = vec![0.0; t.layout.len as usize];
    batch::build_batch(&mut want, &t.layout, &data(), s.seed, 0, s.sigma_min, s.path, &source, &s.time);
    let region = (t.layout.target + 2 * s.batch) as usize;
    assert_close("batch from a source dataset", &acts[..region], &want[..region], ATOL, RTOL);
    let mut sampler = GpuSampler::new_with_source(&ctx, &s.shape, &t.params, 100, 0, &source).unwrap();
    sampler.reset(5);
    let got = sampler.read_particles().await.unwrap();
    assert_eq!(got, ode::initial_particles_from(5, 100, &source));
}

/// OT coupling: the Sinkhorn potentials match the CPU twin, and so does the batch, except for the
/// rare row whose inverse-CDF draw falls within rounding of a boundary between two partners (the
/// GPU's exp/log differ from the CPU's by a few ULPs): at most 3% of rows may pick another
/// partner. A wrong plan or a wrong pairing rule changes most rows.
async fn ot_coupling_matches_cpu() {
    let ctx = gpu().await;
    let s = TrainSpec { coupling: Coupling::Ot, batch: 90, ..spec(Activation::Silu) };
    let data = sample_dataset(Dataset::EightGaussians, 1001, 5);
    let mut t = GpuTrainer::new(&ctx, s, &data).unwrap();
    t.train(1);
    let acts = t.read(&t.acts, t.layout.len as usize).await.unwrap();
    let scratch = t.read(&t.scratch, 7 * s.batch as usize + 3).await.unwrap();
    let mut want = vec![0.0; t.layout.len as usize];
    let c = coupling::build_batch_ot(&mut want, &t.layout, &data, s.seed, 0, s.sigma_min, s.path, &[], &s.time);
    let n = s.batch as usize;
    let scale = c.f.iter().chain(&c.g).fold(0.0f32, |m, v| m.max(v.abs()));
    assert_close("sinkhorn f", &scratch[5 * n..6 * n], &c.f, 1e-3 * scale, 1e-3);
    assert_close("sinkhorn g", &scratch[6 * n..7 * n], &c.g, 1e-3 * scale, 1e-3);
    let row_ok = |i: usize| {
        let a = (0..3).all(|k| (acts[3 * i + k] - want[3 * i + k]).abs() <= 4e-3 + 1e-4 * want[3 * i + k].abs());
        let u = t.layout.target as usize + 2 * i;
        a && (0..2).all(|k| (acts[u + k] - want[u + k]).abs() <= 4e-3 + 1e-4 * want[u + k].abs())
    };
    let mismatched = (0..n).filter(|&i| !row_ok(i)).count();
    let worst = |got: &[f32], want: &[f32]| got.iter().zip(want).fold(0.0f32, |m, (a, b)| m.max((a - b).abs())) / scale;
    eprintln!(
        "OT vs CPU twin: max |Δf| {:.2e}, max |Δg| {:.2e} (relative to the largest potential), {mismatched} of {n} rows paired differently",
        worst(&scratch[5 * n..6 * n], &c.f),
        worst(&scratch[6 * n..7 * n], &c.g)
    );
    assert!(mismatched * 100 <= 3 * n, "{mismatched} of {n} rows paired differently from the CPU twin");
    // The stop test: the GPU ran as many Sinkhorn iterations as the twin (the same check schedule
    // and tolerance; the errors it measured differ by rounding only).
    let (gpu_iters, gpu_err) = (scratch[7 * n + 1], scratch[7 * n + 2]);
    eprintln!("Sinkhorn stop: GPU {gpu_iters} iterations, last measured row error {gpu_err:.3e}; twin {} iterations, {:.3e} (tolerance {:.0e})", c.iters, c.err, coupling::OT_TOL);
    assert_eq!(gpu_iters, c.iters as f32, "GPU and twin ran different numbers of Sinkhorn iterations");
    assert!(c.iters < coupling::OT_ITERS, "this batch converges before the last iteration (else the stop test is not exercised)");
    assert!(gpu_err <= coupling::OT_TOL && c.err <= coupling::OT_TOL, "stopped without passing the test: GPU {gpu_err}, twin {}", c.err);
    // Sinkhorn converged: the plan the GPU's potentials define has rows and columns that each
    // carry mass 1/B (to 1%). The columns hold by construction after the last g update whatever
    // the iteration count; the rows only once the iterations have converged (with 2 iterations
    // instead of 100 the worst row is off by tens of percent).
    let x0: Vec<[f32; 2]> = (0..n).map(|i| [scratch[2 * i], scratch[2 * i + 1]]).collect();
    let x1: Vec<[f32; 2]> = (0..n).map(|j| [scratch[2 * n + 2 * j], scratch[2 * n + 2 * j + 1]]).collect();
    let cost = |i: usize, j: usize| (x0[i][0] - x1[j][0]).powi(2) + (x0[i][1] - x1[j][1]).powi(2);
    let mean_cost = (0..n).flat_map(|i| (0..n).map(move |j| (i, j))).map(|(i, j)| cost(i, j) as f64).sum::<f64>() / (n * n) as f64;
    let eps = coupling::OT_EPS as f64 * mean_cost;
    let (f, g) = (&scratch[5 * n..6 * n], &scratch[6 * n..7 * n]);
    let plan = |i: usize, j: usize| ((f[i] as f64 + g[j] as f64 - cost(i, j) as f64) / eps).exp();
    let (mut worst_row, mut worst_col) = (0.0f64, 0.0f64);
    for k in 0..n {
        let row: f64 = (0..n).map(|j| plan(k, j)).sum();
        let col: f64 = (0..n).map(|i| plan(i, k)).sum();
        worst_row = worst_row.max((row * n as f64 - 1.0).abs());
        worst_col = worst_col.max((col * n as f64 - 1.0).abs());
        assert!((row * n as f64 - 1.0).abs() < 0.01, "row {k} of the plan has mass {row}, not 1/{n}: Sinkhorn did not converge");
        assert!((col * n as f64 - 1.0).abs() < 0.01, "column {k} of the plan has mass {col}, not 1/{n}");
    }
    eprintln!("OT plan marginals: worst row {worst_row:.2e}, worst column {worst_col:.2e} (relative to 1/{n})");
    // And it is a transport plan worth having: paired points are much closer than random pairs.
    let paired = (0..n).map(|i| cost(i, c.partner[i] as usize) as f64).sum::<f64>() / n as f64;
    assert!(paired < 0.5 * mean_cost, "OT pairs cost {paired:.3} vs {mean_cost:.3} for independent pairs");
}

gpu_test!(ot_coupling_kernel_matches_cpu, ot_coupling_matches_cpu());
gpu_test!(batch_and_particles_use_the_source_dataset, source_points_are_used());
gpu_test!(batch_kernel_matches_cpu_linear_path, batch_matches_cpu(Path::Linear));
gpu_test!(batch_kernel_matches_cpu_cosine_path, batch_matches_cpu(Path::Cosine));
gpu_test!(batch_kernel_matches_cpu_vp_path, batch_matches_cpu(Path::Vp));
gpu_test!(forward_and_loss_match_cpu_silu, forward_and_loss_match_cpu(Activation::Silu));
gpu_test!(forward_and_loss_match_cpu_relu, forward_and_loss_match_cpu(Activation::Relu));
gpu_test!(forward_and_loss_match_cpu_gelu, forward_and_loss_match_cpu(Activation::Gelu));
gpu_test!(forward_and_loss_match_cpu_tanh, forward_and_loss_match_cpu(Activation::Tanh));
gpu_test!(backward_matches_cpu_silu, backward_matches_cpu(Activation::Silu));
gpu_test!(backward_matches_cpu_relu, backward_matches_cpu(Activation::Relu));
gpu_test!(backward_matches_cpu_gelu, backward_matches_cpu(Activation::Gelu));
gpu_test!(backward_matches_cpu_tanh, backward_matches_cpu(Activation::Tanh));
gpu_test!(adam_kernel_matches_cpu, adam_matches_cpu());
gpu_test!(ode_euler_matches_cpu, ode_matches_cpu(Solver::Euler));
gpu_test!(ode_midpoint_matches_cpu, ode_matches_cpu(Solver::Midpoint));
gpu_test!(ode_rk4_matches_cpu, ode_matches_cpu(Solver::Rk4));
gpu_test!(ode_records_trajectories, trajectories_record_every_step());
gpu_test!(field_kernel_matches_cpu, field_matches_cpu());

// Every kernel variant against the same CPU reference with the same tolerances, whatever the
// adapter would pick by itself: the default tests above run the adapter's own choice
// (`FLOWMATCH_KERNELS` can force one). The tiled variant is also run at a shape spanning several
// tiles with partial edges (width 70, batch 150; the software variant too) and with dW split over the batch (3 splits of
// 50 rows, not a multiple of the 16-row stage), and with a single split (dW written directly).
fn forced(variant: KernelVariant, splits: Option<u32>) -> TrainerOptions {
    TrainerOptions { variant: Some(variant), splits, forward_rows: None, backward_rows: None }
}

/// The tiled variant with its forward's rows per tile forced (the small shapes here default to
/// 32: `default_forward_rows`), so both tile heights run with partial edges.
fn tiled_rows(rows: u32) -> TrainerOptions {
    TrainerOptions { variant: Some(KernelVariant::Tiled), splits: None, forward_rows: Some(rows), backward_rows: None }
}

/// The tiled variant with the 8×4-block backward (`backward_tiled8`, 128-row tiles).
fn tiled_backward_rows128(splits: Option<u32>) -> TrainerOptions {
    TrainerOptions { variant: Some(KernelVariant::Tiled), splits, forward_rows: None, backward_rows: Some(128) }
}

fn wide(activation: Activation) -> TrainSpec {
    TrainSpec { shape: ModelShape::new(70, 3, activation), batch: 150, ..spec(activation) }
}

gpu_test!(software_forward_matches_cpu, forward_and_loss_match_cpu_with(spec(Activation::Gelu), forced(KernelVariant::Software, None)));
gpu_test!(software_backward_matches_cpu, backward_matches_cpu_with(spec(Activation::Silu), forced(KernelVariant::Software, None)));
gpu_test!(software_adam_matches_cpu, adam_matches_cpu_with(forced(KernelVariant::Software, None)));
// Several workgroups per role in the software backward's one dispatch per layer, 4×4 blocks
// with partial edges (70 = 17·4 + 2 units, 150 = 37·4 + 2 samples).
gpu_test!(software_forward_matches_cpu_wide, forward_and_loss_match_cpu_with(wide(Activation::Tanh), forced(KernelVariant::Software, None)));
// Widths and batches that are multiples of 4 take the software variant's vec4 kernels for the
// hidden-to-hidden layers (`vec4_layer`; the input and output layers keep the scalar ones):
// width 20 leaves half a dW block of 8 outputs past the width, batch 148 = 18·8 + 4 leaves half
// a block of 8 samples; width 24 with batch 64 has whole blocks.
fn aligned(activation: Activation) -> TrainSpec {
    TrainSpec { shape: ModelShape::new(20, 3, activation), batch: 148, ..spec(activation) }
}
fn aligned_whole(activation: Activation) -> TrainSpec {
    TrainSpec { shape: ModelShape::new(24, 2, activation), batch: 64, ..spec(activation) }
}
gpu_test!(software_forward_matches_cpu_vec4, forward_and_loss_match_cpu_with(aligned(Activation::Silu), forced(KernelVariant::Software, None)));
gpu_test!(software_backward_matches_cpu_vec4, backward_matches_cpu_with(aligned(Activation::Gelu), forced(KernelVariant::Software, None)));
gpu_test!(software_forward_matches_cpu_vec4_whole, forward_and_loss_match_cpu_with(aligned_whole(Activation::Tanh), forced(KernelVariant::Software, None)));
gpu_test!(software_backward_matches_cpu_vec4_whole, backward_matches_cpu_with(aligned_whole(Activation::Relu), forced(KernelVariant::Software, None)));
gpu_test!(software_backward_matches_cpu_wide, backward_matches_cpu_with(wide(Activation::Relu), forced(KernelVariant::Software, None)));
gpu_test!(tiled_forward_matches_cpu_silu, forward_and_loss_match_cpu_with(spec(Activation::Silu), forced(KernelVariant::Tiled, None)));
gpu_test!(tiled_forward_matches_cpu_tanh, forward_and_loss_match_cpu_with(spec(Activation::Tanh), forced(KernelVariant::Tiled, None)));
gpu_test!(tiled_backward_matches_cpu_silu, backward_matches_cpu_with(spec(Activation::Silu), forced(KernelVariant::Tiled, None)));
gpu_test!(tiled_backward_matches_cpu_relu, backward_matches_cpu_with(spec(Activation::Relu), forced(KernelVariant::Tiled, None)));
gpu_test!(tiled_adam_matches_cpu, adam_matches_cpu_with(forced(KernelVariant::Tiled, None)));
gpu_test!(tiled_forward_matches_cpu_multi_tile, forward_and_loss_match_cpu_with(wide(Activation::Gelu), forced(KernelVariant::Tiled, Some(3))));
gpu_test!(tiled_forward_matches_cpu_rows64, forward_and_loss_match_cpu_with(wide(Activation::Silu), tiled_rows(64)));
gpu_test!(tiled_forward_matches_cpu_rows128, forward_and_loss_match_cpu_with(wide(Activation::Gelu), tiled_rows(128)));
gpu_test!(tiled_forward_matches_cpu_rows128_big, forward_and_loss_match_cpu_with(TrainSpec { batch: 300, ..wide(Activation::Silu) }, tiled_rows(128)));
gpu_test!(tiled_forward_matches_cpu_rows32, forward_and_loss_match_cpu_with(wide(Activation::Relu), tiled_rows(32)));
gpu_test!(tiled_backward_matches_cpu_rows128, backward_matches_cpu_with(wide(Activation::Gelu), tiled_backward_rows128(None)));
gpu_test!(tiled_backward_matches_cpu_rows128_split_k, backward_matches_cpu_with(TrainSpec { batch: 300, ..wide(Activation::Silu) }, tiled_backward_rows128(Some(3))));
gpu_test!(tiled_backward_matches_cpu_rows128_wide, backward_matches_cpu_with(TrainSpec { shape: ModelShape::new(140, 3, Activation::Tanh), batch: 150, ..spec(Activation::Tanh) }, tiled_backward_rows128(Some(2))));
gpu_test!(tiled_backward_matches_cpu_split_k, backward_matches_cpu_with(wide(Activation::Gelu), forced(KernelVariant::Tiled, Some(3))));
gpu_test!(tiled_backward_matches_cpu_one_split, backward_matches_cpu_with(wide(Activation::Silu), forced(KernelVariant::Tiled, Some(1))));

// ---- Class-conditional, MeanFlow and SDE kernels (issue 19) ----

gpu_test!(batch_kernel_matches_cpu_conditional_mean_flow, batch_matches_cpu_for(conditional_mean_flow(Activation::Silu)));
gpu_test!(forward_and_loss_match_cpu_conditional_mean_flow, forward_and_loss_match_cpu_with(conditional_mean_flow(Activation::Gelu), TrainerOptions::default()));
gpu_test!(backward_matches_cpu_conditional_mean_flow, backward_matches_cpu_with(conditional_mean_flow(Activation::Tanh), TrainerOptions::default()));
gpu_test!(tiled_forward_matches_cpu_conditional_mean_flow, forward_and_loss_match_cpu_with(conditional_mean_flow(Activation::Silu), forced(KernelVariant::Tiled, None)));
gpu_test!(meanflow_targets_match_cpu_silu, meanflow_targets_match_cpu(Activation::Silu));
gpu_test!(meanflow_targets_match_cpu_relu, meanflow_targets_match_cpu(Activation::Relu));
gpu_test!(guided_ode_matches_cpu, guided_ode_matches_cpu_for());
gpu_test!(sde_step_matches_cpu, sde_matches_cpu());
gpu_test!(sde_without_noise_is_the_euler_sampler_bit_for_bit, sde_at_zero_noise_is_euler());
gpu_test!(meanflow_step_matches_cpu, meanflow_step_matches_cpu_for());

/// The MeanFlow target kernel (forward-mode JVP) against its twin. With x0 from a source set the
/// batch involves no transcendental function, so the CPU rebuilds the GPU's batch to a few ULPs
/// and recomputes the targets v - (t - r)·du/dt from the initial weights (step 0 runs before the
/// first update): tolerances as for the forward pass.
async fn meanflow_targets_match_cpu(activation: Activation) {
    let ctx = gpu().await;
    let s = conditional_mean_flow(activation);
    let source = sample_dataset(Dataset::EightGaussians, 777, 3);
    let mut t = GpuTrainer::with_labels(&ctx, s, &data(), &labels(), &source, TrainerOptions::default()).unwrap();
    t.train(1);
    let acts = t.read(&t.acts, t.layout.len as usize).await.unwrap();
    let mut want = vec![0.0; t.layout.len as usize];
    let labels = labels();
    let extras = batch::Extras { inputs: s.shape.inputs, labels: &labels, label_dropout: s.label_dropout };
    batch::build_batch_with(&mut want, &t.layout, &data(), s.seed, 0, s.sigma_min, s.path, &source, &s.time, &extras);
    let (inputs, targets) = (t.layout.target as usize, t.layout.target as usize + 2 * s.batch as usize);
    assert_close("MeanFlow batch inputs", &acts[..inputs], &want[..inputs], ATOL, RTOL);
    let v = want[inputs..targets].to_vec();
    meanflow::write_targets(&s.shape, &s.shape.init_params(s.seed), &mut want, &t.layout);
    assert_close(&format!("MeanFlow targets {activation}"), &acts[inputs..targets], &want[inputs..targets], ATOL, RTOL);
    // The test means something: some samples have r ≠ t, and their targets are not v.
    let d = t.layout.in_dim as usize;
    let distinct: Vec<usize> = (0..s.batch as usize).filter(|&b| want[d * b + 2] != want[d * b + 3]).collect();
    assert!(distinct.len() > 5 && distinct.len() < s.batch as usize - 5, "{} of {} samples with r ≠ t", distinct.len(), s.batch);
    assert!(distinct.iter().all(|&b| (want[inputs + 2 * b] - v[2 * b]).abs() > 1e-6), "targets with r ≠ t must differ from v");
}

/// A conditional MeanFlow trainer at its initial weights and a sampler of 333 particles on it.
async fn conditional_sampler(n: u32) -> (GpuTrainer, GpuSampler, TrainSpec) {
    let ctx = gpu().await;
    let s = conditional_mean_flow(Activation::Gelu);
    let t = GpuTrainer::with_labels(&ctx, s, &data(), &labels(), &[], TrainerOptions::default()).unwrap();
    let sampler = GpuSampler::new(&ctx, &s.shape, &t.params, n, 0).unwrap();
    (t, sampler, s)
}

/// ODE solvers through the guided field v(∅) + w·(v(c) - v(∅)) of a conditional network.
async fn guided_ode_matches_cpu_for() {
    let (_t, mut sampler, s) = conditional_sampler(333).await;
    let params = s.shape.init_params(s.seed);
    let query = Query { class: Some(1), guidance: 3.5 };
    sampler.set_query(query);
    sampler.reset(4);
    let x0 = sampler.read_particles().await.unwrap();
    for solver in [Solver::Euler, Solver::Rk4] {
        sampler.write_particles(&x0);
        sampler.integrate(solver, 0.0, 1.0, 3);
        let got = sampler.read_particles().await.unwrap();
        let mut want = x0.clone();
        ode::integrate_query(&s.shape, &params, query, solver, &mut want, 0.0, 1.0, 3);
        assert_close(&format!("guided ode {solver}"), &got.concat(), &want.concat(), 1e-4, 1e-4);
        // Guidance changes the result (the class and no-class fields differ at initialisation).
        let mut plain = x0.clone();
        ode::integrate_query(&s.shape, &params, Query::default(), solver, &mut plain, 0.0, 1.0, 3);
        assert!(got.iter().zip(&plain).any(|(a, b)| (a[0] - b[0]).abs() > 1e-3), "guidance had no effect");
    }
}

/// Euler–Maruyama on every path against the twin, from the GPU's own start. The Brownian draws
/// go through Box–Muller (WGSL sin/cos to 2^-11 absolute, times r ≤ 5.7 and g·sqrt(h) ≤ 0.5):
/// atol 2e-3.
async fn sde_matches_cpu() {
    let (_t, mut sampler, s) = conditional_sampler(333).await;
    let params = s.shape.init_params(s.seed);
    let query = Query { class: Some(0), guidance: 2.0 };
    sampler.set_query(query);
    sampler.reset(9);
    let x0 = sampler.read_particles().await.unwrap();
    for &path in Path::ALL {
        let spec = sde::SdeSpec { path, sigma_min: 0.05, noise: 0.8 };
        sampler.write_particles(&x0);
        sampler.integrate_sde(spec, 0.1, 0.9, 3);
        let got = sampler.read_particles().await.unwrap();
        let mut want = x0.clone();
        sde::integrate(&s.shape, &params, query, &spec, &mut want, 0.1, 0.9, 3, 9);
        assert_close(&format!("sde {path}"), &got.concat(), &want.concat(), 2e-3, 1e-3);
        let mut ode_end = x0.clone();
        ode::integrate_query(&s.shape, &params, query, Solver::Euler, &mut ode_end, 0.1, 0.9, 3);
        assert!(got.iter().zip(&ode_end).any(|(a, b)| (a[0] - b[0]).abs() > 0.05), "{path}: no noise reached the particles");
    }
}

/// With G = 0 the SDE kernel's drift term and noise are exactly zero, so it is the Euler sampler
/// bit for bit (trajectories included), for a guided conditional network on the VP path.
async fn sde_at_zero_noise_is_euler() {
    let ctx = gpu().await;
    let s = conditional_mean_flow(Activation::Silu);
    let t = GpuTrainer::with_labels(&ctx, s, &data(), &labels(), &[], TrainerOptions::default()).unwrap();
    let steps = 7;
    let mut sampler = GpuSampler::new(&ctx, &s.shape, &t.params, 201, steps).unwrap();
    sampler.set_query(Query { class: Some(1), guidance: 2.5 });
    sampler.reset(3);
    sampler.integrate(Solver::Euler, 0.0, 1.0, steps);
    let ode = sampler.read_trajectories().await.unwrap();
    sampler.rewind();
    sampler.integrate_sde(sde::SdeSpec { path: Path::Vp, sigma_min: 0.0, noise: 0.0 }, 0.0, 1.0, steps);
    let sde = sampler.read_trajectories().await.unwrap();
    let bits = |v: &[[f32; 2]]| v.iter().flat_map(|p| [p[0].to_bits(), p[1].to_bits()]).collect::<Vec<_>>();
    assert!(ode.iter().all(|p| p[0].is_finite()));
    assert_eq!(bits(&sde), bits(&ode), "sde with noise 0 must equal the Euler sampler bit for bit");
}

/// MeanFlow's jumps x + h·u(x, t + h, t), guided, against the twin.
async fn meanflow_step_matches_cpu_for() {
    let (_t, mut sampler, s) = conditional_sampler(333).await;
    let params = s.shape.init_params(s.seed);
    let query = Query { class: Some(0), guidance: 1.7 };
    sampler.set_query(query);
    sampler.reset(2);
    let x0 = sampler.read_particles().await.unwrap();
    sampler.integrate_mean_flow(0.0, 1.0, 3);
    let got = sampler.read_particles().await.unwrap();
    let mut want = x0.clone();
    meanflow::integrate(&s.shape, &params, query, &mut want, 0.0, 1.0, 3);
    assert_close("meanflow steps", &got.concat(), &want.concat(), 1e-4, 1e-4);
}

/// The density kernel through a conditional MeanFlow network (r = t, the class column) with a
/// guided query, against the twin; the guided divergence is the same mix of both divergences.
async fn guided_density_matches_cpu() {
    let (t, _sampler, s) = conditional_sampler(1).await;
    let params = s.shape.init_params(s.seed);
    let density = GpuDensity::new(t.context(), &s.shape, &t.params, 77).unwrap();
    let query = Query { class: Some(1), guidance: 2.5 };
    density.set_query(query);
    let points: Vec<[f32; 2]> = (0..77).map(|k| [(k as f32 * 0.37).sin() * 2.0, (k as f32 * 0.71).cos() * 2.0]).collect();
    let got = density.log_density(&points, Solver::Rk4, 5).await.unwrap();
    let want: Vec<f32> = points.iter().map(|&x| flowmatch::cpu::density::log_density_query(&s.shape, &params, query, Solver::Rk4, x, 5)).collect();
    assert_close("guided log p", &got, &want, 1e-4, 1e-4);
}

gpu_test!(guided_density_matches_cpu_twin, guided_density_matches_cpu());
