//! The work budget: what a configuration costs on a device, decided before anything is allocated or
//! dispatched, on both backends, whatever the configuration came from (a link, a widget attribute,
//! the JS API, a model file, a custom target).
//!
//! Inputs: a [`Config`], the size of the training target, and a [`Profile`] of the device (its
//! per-buffer limit, a total memory budget, its rates in FLOP/s — measured where possible, else a
//! conservative prior for the kind of device — and [`TimeLimits`]). [`check`] answers with an
//! [`Estimate`] (every buffer and its bytes, the seconds of a training step, of the largest dispatch
//! that cannot be split, of one pass of each long integration and of a frame) or a [`Refusal`] that
//! names one setting, what it needs, and the largest value of that setting that fits with the others
//! unchanged. [`ChunkPlan`] splits the long integrations (the shown flow, trajectories, the quality
//! probe, the density grid) so that no dispatch is estimated above `TimeLimits::chunk_s`.
//!
//! Cost model (FLOP; `M` = multiply-adds of one network evaluation, `ModelShape::macs_per_sample`,
//! so one evaluation costs `2M`; `B` batch, `N` shown particles, `S` solver steps, `e` evaluations
//! per step — for dopri5 `S·e` is its evaluation budget `nfe`, the worst case):
//! ```text
//! training step          6·B·M  (+ OT coupling: OT_ITERS·2·B²·OT_FLOP_PER_PAIR_{GPU,CPU})  cannot be split
//! largest GPU dispatch   max(4·B·max_l(in_l·out_l) (backward of the widest layer: dW and dX),
//!                            B²·OT_DRAW_FLOP_PER_PAIR (OT coupling: the draws and ε, one workgroup))
//! shown flow, one pass   N·S·e·2M                                        split into chunks
//! quality reading        Q·S·e·2M   (Q = QUALITY_SAMPLES probe particles)  split into chunks
//! straightness reading   at most a quality reading (the same Q particles, S fixed steps)
//! heat map               G²·8 steps·2 evaluations·3 (value and two tangents)·2M    split
//! velocity arrows        A²·2M when shown
//! ```
//! With classifier-free guidance (a class and a guidance weight ≠ 1 on a conditional model) every
//! sampling evaluation is two network evaluations: the sampling rows above count 4M per evaluation.
//! Refused: a buffer over the per-buffer limit, a total over the memory budget, an OT batch over
//! `OT_MAX_BATCH`, a dispatch (or CPU step) over `dispatch_s`, a step over `step_s`, a frame over
//! `frame_s`, a pass of the shown flow or a quality reading over `pass_s`. The heat map and the
//! arrows are optional layers: they are estimated (the engine spaces them by their cost) but never
//! a reason to refuse a configuration.
//! Training runs at `Profile::train_flops` (tiled matmul kernels), the rest at
//! `Profile::sample_flops` (one particle per invocation). Buffers follow what the engines allocate:
//! the trainer's (`gpu::limits::trainer_buffers`), the samplers', the density grid's and the probe's.
//!
//! Pure and unit-tested: no device is needed to say whether a configuration fits one.

use crate::config::{limits as cfg, Config, Coupling, FieldKind, Solver, Source};
use crate::cpu::coupling::{OT_ITERS, OT_MAX_BATCH};
use crate::gpu::limits::trainer_buffers;
use crate::gpu::quality::QUALITY_SAMPLES;
use crate::gpu::trainer::{default_backward_rows, default_splits, LOSS_RING};
use crate::model::ModelShape;
use crate::render::heatmap::HEAT_GRID;
use crate::spec::TrainSpec;
use std::fmt;

/// Cost per (x0, x1) pair and Sinkhorn half-iteration of the OT coupling on the CPU, in FLOP at
/// the training rate. The budget assumes all `OT_ITERS` iterations: where the stop test ends
/// Sinkhorn cannot be known before the step. The CPU backend's Sinkhorn (`cpu::fast::sinkhorn`:
/// a multiply-add per pair and half-iteration, plus a few exp passes over the B² pairs per step)
/// measured in Chromium (wasm SIMD128, S shape, batch 256, 53 iterations on average): 5.1 ms a
/// step over the training step's 1.15 ms at 11.4 GFLOP/s, i.e. about 7 FLOP per pair and
/// half-iteration when all 100 iterations run (docs/BENCHMARKS.md, "OT coupling on the CPU
/// backend"); 10.5 (the scalar oracle's own count: two passes per update with the cost and a
/// division each, plus the stop test's pass) keeps a 1.5× margin. The oracle itself costs about
/// 40× that per pair in wasm (a software `exp` per pair and pass) and no longer runs on the page.
pub const OT_FLOP_PER_PAIR_CPU: f64 = 10.5;
/// The same on the GPU, in FLOP-equivalents at the training kernels' rate: one pass per update
/// (cost, one exp, a sum; `shaders/ot_coupling.wgsl`) with every load of the other side shared by
/// eight pairs. Measured on lavapipe (2 cores): at batch 256 the 200 Sinkhorn passes add about
/// 24 ms to a step whose matmuls run at about 1.1 GFLOP/s, i.e. 2 FLOP-equivalents per pair and
/// pass (docs/BENCHMARKS.md), measured with all `OT_ITERS` iterations (before the stop test; it
/// stays the worst case: the checks add an abs and a max per row, and the passes after the stop
/// still run, empty). On real GPUs the 2·OT_ITERS dispatches' latency dominates instead
/// (about 1 ms per step); the limits here are seconds, so it does not matter for refusals.
pub const OT_FLOP_PER_PAIR_GPU: f64 = 2.0;
/// The OT coupling's first dispatch (`ot_draw`: the draws and ε = OT_EPS·mean cost, a sum over the
/// B² pairs in one workgroup), per pair, in FLOP-equivalents at the training rate: about ten
/// times a Sinkhorn pass's (lavapipe, batch 256: 0.7–1.2 ms against 0.1 ms). The largest OT
/// dispatch.
pub const OT_DRAW_FLOP_PER_PAIR: f64 = 20.0;
/// Memory budget of one engine on a GPU (WebGPU does not report how much memory a device has;
/// 1 GiB is within what integrated GPUs share out comfortably).
pub const GPU_TOTAL_BYTES: u64 = 1 << 30;
/// Memory budget of the CPU backend (wasm32 memory is at most 4 GiB, and a tab that asks for
/// several GiB is killed on phones).
pub const CPU_TOTAL_BYTES: u64 = 512 << 20;
/// Bytes of a per-step uniform ring of a sampler (256-byte slots, `MAX_ODE_STEPS_PER_SUBMIT`).
const ODE_UNIFORM_BYTES: u64 = 256 * crate::gpu::sampler::MAX_ODE_STEPS_PER_SUBMIT as u64;
/// Per-particle chunk state of the adaptive solver (`t, h, k1`, counters): two vec4 words.
pub const ADAPTIVE_STATE_BYTES: u64 = 32;
/// Per-cell chunk state of the density grid (`x, y, ℓ`, padding).
pub const DENSITY_STATE_BYTES: u64 = 16;
/// Invocations per workgroup of the particle kernels: chunks of items are multiples of this.
pub const GRANULE: u32 = 64;

/// Which engine runs the configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// WebGPU (or native wgpu): the kernels of `shaders/`.
    Gpu,
    /// The CPU reference (wasm on the page), on the page's one thread.
    Cpu,
}

/// How long work may take, in seconds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TimeLimits {
    /// Target of one chunk of splittable work (one dispatch on the GPU, one slice on the CPU).
    pub chunk_s: f64,
    /// Longest work that cannot be split: one GPU dispatch (a quarter of Windows' 2 s GPU watchdog,
    /// so a prior that is 4× too optimistic still survives), or one CPU slice of the page's thread.
    pub dispatch_s: f64,
    /// Longest training step.
    pub step_s: f64,
    /// Longest frame: a training step, the arrows, and a chunk of background work.
    pub frame_s: f64,
    /// Longest pass of a long integration (the shown flow, a quality reading, the heat map), all
    /// its chunks together.
    pub pass_s: f64,
    /// The GPU watchdog these limits keep well away from (Windows' TDR: 2 s).
    pub watchdog_s: f64,
}

impl TimeLimits {
    pub const GPU: TimeLimits = TimeLimits { chunk_s: 0.1, dispatch_s: 0.5, step_s: 1.0, frame_s: 1.5, pass_s: 30.0, watchdog_s: 2.0 };
    /// The CPU backend shares the page's thread: a step and a frame must leave it answering
    /// scripts well within a second.
    pub const CPU: TimeLimits = TimeLimits { chunk_s: 0.05, dispatch_s: 0.25, step_s: 0.25, frame_s: 0.5, pass_s: 30.0, watchdog_s: 2.0 };
}

/// What the device allows and how fast it is.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Profile {
    pub backend: Backend,
    /// A software adapter (lavapipe, SwiftShader): slow priors, software kernels (no split-K).
    pub software: bool,
    /// Bytes one buffer may have.
    pub max_buffer: u64,
    /// Bytes all of one engine's buffers may have together.
    pub total_bytes: u64,
    /// FLOP/s of the training kernels.
    pub train_flops: f64,
    /// FLOP/s of the per-particle kernels (sampling, density).
    pub sample_flops: f64,
    /// Whether the rates were measured on this device (else they are priors).
    pub measured: bool,
    pub limits: TimeLimits,
}

/// Priors (FLOP/s) before anything was measured: low ends of what each kind of device reaches
/// (docs/BENCHMARKS.md: lavapipe trains at 0.7 GFLOP/s and samples at 0.5 on an idle 2-core box,
/// an H100 at 12.7 TFLOP/s and 1.1; integrated GPUs sit in between).
pub const PRIOR_GPU_TRAIN: f64 = 200e9;
pub const PRIOR_GPU_SAMPLE: f64 = 20e9;
pub const PRIOR_SOFTWARE: f64 = 0.3e9;
/// The CPU engine's training (the fast backend, `cpu::fast`: WebAssembly SIMD128, one thread) runs
/// at 11.4 GFLOP/s in Chromium on one core of this 2-core VM (docs/BENCHMARKS.md); 1 GFLOP/s
/// leaves an 11× margin for slow phones. Until 2026-12-04 the prior was 0.3, the scalar
/// reference's rate, which refused OT coupling at batch 256 (0.5 s estimated, 6 ms real).
pub const PRIOR_CPU_TRAIN: f64 = 1e9;
/// The CPU engine samples with the scalar stepper (`cpu::ode`): the reference's rate.
pub const PRIOR_CPU_SAMPLE: f64 = 0.3e9;

impl Profile {
    /// A GPU whose buffers may have `max_buffer` bytes (min of the device's storage binding and
    /// buffer size limits), with prior rates.
    pub fn gpu(max_buffer: u64, software: bool) -> Self {
        let (train, sample) = if software { (PRIOR_SOFTWARE, PRIOR_SOFTWARE) } else { (PRIOR_GPU_TRAIN, PRIOR_GPU_SAMPLE) };
        Profile {
            backend: Backend::Gpu,
            software,
            max_buffer,
            total_bytes: GPU_TOTAL_BYTES,
            train_flops: train,
            sample_flops: sample,
            measured: false,
            limits: TimeLimits::GPU,
        }
    }

    /// The GPU of a wgpu device's limits.
    pub fn from_limits(l: &wgpu::Limits, software: bool) -> Self {
        Self::gpu(l.max_storage_buffer_binding_size.min(l.max_buffer_size), software)
    }

    /// The GPU of an open context (its limits; software adapters get the software priors).
    pub fn for_context(ctx: &crate::gpu::GpuContext) -> Self {
        Self::from_limits(&ctx.limits, ctx.adapter.is_software())
    }

    /// The CPU backend with its prior rate.
    pub fn cpu() -> Self {
        Profile {
            backend: Backend::Cpu,
            software: true,
            max_buffer: CPU_TOTAL_BYTES,
            total_bytes: CPU_TOTAL_BYTES,
            train_flops: PRIOR_CPU_TRAIN,
            sample_flops: PRIOR_CPU_SAMPLE,
            measured: false,
            limits: TimeLimits::CPU,
        }
    }

    /// The same device with measured rates (non-finite or non-positive values are ignored).
    pub fn with_rates(mut self, train_flops: f64, sample_flops: f64) -> Self {
        if train_flops.is_finite() && train_flops > 0.0 {
            self.train_flops = train_flops;
            self.measured = true;
        }
        if sample_flops.is_finite() && sample_flops > 0.0 {
            self.sample_flops = sample_flops;
            self.measured = true;
        }
        self
    }

    fn device(&self) -> &'static str {
        match self.backend {
            Backend::Gpu => "this GPU",
            Backend::Cpu => "the CPU backend",
        }
    }
}

/// The fixed sizes of what an engine runs besides the configuration (the page's grids and caps).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sizes {
    /// Velocity arrows per side.
    pub arrow_grid: u32,
    /// Density heat-map cells per side and the midpoint steps of its reverse integration.
    pub heat_grid: u32,
    pub heat_steps: u32,
    /// Particles of a quality reading.
    pub probe: u32,
    /// Bytes the shown trajectories may take (longer integrations record fewer steps); `None`:
    /// every step is recorded.
    pub traj_bytes: Option<u64>,
    /// Most shown particles and recorded steps the engine uses (larger settings are clamped).
    pub max_particles: u32,
    pub max_traj_steps: u32,
    /// The CPU engine keeps a second trajectory buffer while it integrates the next one.
    pub traj_copies: u32,
    /// Bytes per shown particle besides its positions (the CPU engine's CSS colour strings).
    pub per_particle_extra: u64,
}

impl Sizes {
    pub const GPU: Sizes = Sizes {
        arrow_grid: 24,
        heat_grid: HEAT_GRID,
        heat_steps: 8,
        probe: QUALITY_SAMPLES,
        traj_bytes: Some(96 << 20),
        max_particles: cfg::MAX_PARTICLES,
        max_traj_steps: cfg::MAX_NFE,
        traj_copies: 1,
        per_particle_extra: 0,
    };
    pub const CPU: Sizes = Sizes {
        arrow_grid: 24,
        heat_grid: HEAT_GRID,
        heat_steps: 8,
        probe: QUALITY_SAMPLES,
        traj_bytes: None,
        max_particles: 200_000,
        max_traj_steps: 2000,
        traj_copies: 2,
        per_particle_extra: 40,
    };

    pub fn for_backend(b: Backend) -> Sizes {
        match b {
            Backend::Gpu => Sizes::GPU,
            Backend::Cpu => Sizes::CPU,
        }
    }
}

/// Where the training points come from: a standard dataset (generated, `engine::flow::data_points`) or a
/// custom target of `n` points.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    Dataset,
    Custom(u32),
}

/// What an engine runs for a configuration: the numbers the cost model multiplies.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Workload {
    pub shape: ModelShape,
    /// Sampling mixes two network evaluations (classifier-free guidance): every sampling
    /// evaluation costs twice.
    pub guided: bool,
    pub batch: u32,
    pub coupling: Coupling,
    pub n_points: u32,
    pub n_source: u32,
    /// Shown particles and the trajectory steps recorded for them.
    pub particles: u32,
    pub traj_steps: u32,
    pub solver: Solver,
    /// Solver steps (fixed-step solvers) or the evaluation budget (dopri5).
    pub nfe: u32,
    pub sizes: Sizes,
}

/// Trajectory steps recorded for `nfe` steps of `n` particles within `traj_bytes` (at least 1).
pub fn traj_steps(nfe: u32, n: u32, traj_bytes: Option<u64>, max_steps: u32) -> u32 {
    let cap = match traj_bytes {
        Some(b) => (b / (n.max(1) as u64 * 8)).saturating_sub(1).min(u32::MAX as u64) as u32,
        None => u32::MAX,
    };
    nfe.min(max_steps).min(cap).max(1)
}

impl Workload {
    /// The workload of `c` on `profile`'s backend, training on `target`.
    pub fn of(c: &Config, profile: &Profile, target: Target) -> Self {
        let sizes = Sizes::for_backend(profile.backend);
        let n_points = match target {
            Target::Dataset => crate::engine::flow::data_points(c) as u32,
            Target::Custom(n) => n,
        };
        let n_source = match c.source {
            Source::Gaussian => 0,
            Source::Dataset(_) => crate::engine::flow::DATA_POINTS as u32,
        };
        let particles = c.particles.clamp(1, sizes.max_particles);
        let shape = TrainSpec::from_config(c).shape;
        let max_binding = sizes.traj_bytes.map(|b| b.min(profile.max_buffer));
        Workload {
            shape,
            guided: crate::model::Query { class: c.class.index(), guidance: c.guidance }.guided(&shape.inputs),
            batch: c.batch,
            coupling: c.coupling,
            n_points,
            n_source,
            particles,
            traj_steps: traj_steps(c.nfe, particles, max_binding, sizes.max_traj_steps),
            solver: c.solver,
            nfe: c.nfe,
            sizes,
        }
    }

    fn eval_flops(&self) -> f64 {
        2.0 * self.shape.macs_per_sample() as f64 * if self.guided { 2.0 } else { 1.0 }
    }

    /// Evaluations per particle of one integration with the configured solver (dopri5: its budget).
    pub fn evals(&self) -> f64 {
        self.nfe as f64 * self.solver.evals_per_step() as f64
    }

    /// FLOP of one training step on `backend` (the OT coupling's Sinkhorn costs differ: see
    /// [`OT_FLOP_PER_PAIR_GPU`], [`OT_FLOP_PER_PAIR_CPU`]).
    pub fn step_flops(&self, backend: Backend) -> f64 {
        let b = self.batch as f64;
        let per_pair = match backend {
            Backend::Gpu => OT_FLOP_PER_PAIR_GPU,
            Backend::Cpu => OT_FLOP_PER_PAIR_CPU,
        };
        let ot = if self.coupling == Coupling::Ot { OT_ITERS as f64 * 2.0 * b * b * per_pair } else { 0.0 };
        6.0 * b * self.shape.macs_per_sample() as f64 + ot
    }

    /// FLOP of the largest training dispatch on the GPU: the backward of the widest layer, or with
    /// the OT coupling its draw-and-ε dispatch (B² pairs in one workgroup) if that is larger.
    pub fn largest_dispatch_flops(&self) -> f64 {
        let widest = self.shape.layers().iter().map(|l| l.in_dim as u64 * l.out_dim as u64).max().unwrap_or(0);
        let b = self.batch as f64;
        let ot = if self.coupling == Coupling::Ot { b * b * OT_DRAW_FLOP_PER_PAIR } else { 0.0 };
        (4.0 * b * widest as f64).max(ot)
    }

    pub fn flow_flops(&self) -> f64 {
        self.particles as f64 * self.evals() * self.eval_flops()
    }

    pub fn probe_flops(&self) -> f64 {
        self.sizes.probe as f64 * self.evals() * self.eval_flops()
    }

    pub fn heat_flops(&self) -> f64 {
        let cells = (self.sizes.heat_grid * self.sizes.heat_grid) as f64;
        cells * self.sizes.heat_steps as f64 * 2.0 * 3.0 * self.eval_flops()
    }

    pub fn arrows_flops(&self) -> f64 {
        (self.sizes.arrow_grid * self.sizes.arrow_grid) as f64 * self.eval_flops()
    }

    /// Every buffer the engine allocates for this workload: `(what, bytes, the settings it grows with)`.
    pub fn buffers(&self, profile: &Profile) -> Vec<Buffer> {
        let p = self.shape.param_len() as u64;
        let n = self.particles as u64;
        let q = self.sizes.probe as u64;
        let adaptive = self.solver == Solver::Dopri5;
        let shape_fields: &'static [&'static str] = &["width", "depth"];
        let batch_fields: &'static [&'static str] = &["batch", "width", "depth"];
        let mut out: Vec<Buffer> = trainer_buffers(&self.shape, self.batch, self.n_points as usize, self.n_source as usize)
            .into_iter()
            .map(|(name, bytes)| {
                let fields = match name {
                    "parameters" | "gradients" | "Adam moments" => shape_fields,
                    "activations" | "deltas" => batch_fields,
                    "coupling scratch" => &["batch"],
                    _ => &[],
                };
                Buffer { name, bytes, fields }
            })
            .collect();
        let traj = self.sizes.traj_copies as u64 * 8 * n * (self.traj_steps as u64 + 1);
        out.push(Buffer { name: "trajectories", bytes: traj, fields: &["particles", "nfe"] });
        out.push(Buffer { name: "probe weights", bytes: 4 * p, fields: shape_fields });
        match profile.backend {
            Backend::Gpu => {
                out.push(Buffer { name: "loss ring", bytes: 16 + 4 * LOSS_RING as u64, fields: &[] });
                if !profile.software {
                    let max_partials = profile.max_buffer.min(256 << 20);
                    let splits = default_splits(self.batch, default_backward_rows(self.batch, self.shape.width), p, max_partials) as u64;
                    if splits > 1 {
                        out.push(Buffer { name: "split-K partial gradients", bytes: splits * 4 * p, fields: shape_fields });
                    }
                }
                out.push(Buffer { name: "particles", bytes: 8 * n, fields: &["particles"] });
                out.push(Buffer { name: "particle origins", bytes: 8 * n, fields: &["particles"] });
                out.push(Buffer { name: "shown samples", bytes: 8 * n, fields: &["particles"] });
                if adaptive {
                    out.push(Buffer { name: "adaptive solver state", bytes: (ADAPTIVE_STATE_BYTES + 8) * n, fields: &["particles"] });
                }
                let arrows = (self.sizes.arrow_grid * self.sizes.arrow_grid) as u64;
                let uniforms = 3 * ODE_UNIFORM_BYTES;
                out.push(Buffer { name: "sampler uniforms", bytes: uniforms, fields: &[] });
                let probe = 3 * 8 * q + if adaptive { (ADAPTIVE_STATE_BYTES + 8) * q } else { 0 };
                out.push(Buffer { name: "arrows and probe particles", bytes: 3 * 8 * arrows + probe, fields: &[] });
                // The straightness reading (`gpu::flow_stats`): per-particle energies, its means and
                // W2 minibatch costs, and its ring of per-step uniforms.
                let stats = 4 * q + 4 * (4 + crate::cpu::flow_stats::W2_MAX_BATCHES as u64) + crate::gpu::uniforms::SLOT * crate::gpu::flow_stats::MAX_MEASURED_STEPS_PER_SUBMIT as u64;
                out.push(Buffer { name: "straightness reading", bytes: stats, fields: &[] });
                let cells = (self.sizes.heat_grid * self.sizes.heat_grid) as u64;
                out.push(Buffer { name: "density grid", bytes: cells * (8 + 4 + DENSITY_STATE_BYTES), fields: &[] });
            }
            Backend::Cpu => {
                out.push(Buffer { name: "particle origins", bytes: (8 + self.sizes.per_particle_extra) * n, fields: &["particles"] });
                out.push(Buffer { name: "probe particles", bytes: 8 * q, fields: &[] });
            }
        }
        out
    }
}

/// One allocation of the cost model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Buffer {
    pub name: &'static str,
    pub bytes: u64,
    /// The settings that make it bigger (most direct first).
    pub fields: &'static [&'static str],
}

/// What a configuration costs on a device.
#[derive(Clone, Debug, PartialEq)]
pub struct Estimate {
    pub buffers: Vec<Buffer>,
    pub total_bytes: u64,
    /// One training step.
    pub step_s: f64,
    /// The largest piece of work that cannot be split (a GPU dispatch; on the CPU, a step).
    pub dispatch_s: f64,
    /// One pass of the shown flow, one quality reading, one heat map (all chunks together).
    pub flow_s: f64,
    pub probe_s: f64,
    pub heat_s: f64,
    /// The arrows' evaluation, done every frame they are shown.
    pub arrows_s: f64,
    /// A frame: a step and a chunk of background work.
    pub frame_s: f64,
}

/// Why a configuration is refused: the setting named, its value, what it needs, and the largest
/// value of it that fits with every other setting unchanged (None: no value of it alone fits).
#[derive(Clone, Debug, PartialEq)]
pub struct Refusal {
    pub field: &'static str,
    pub value: u64,
    /// What does not fit, e.g. "a 4.3 GB activations buffer, more than the 128 MiB this GPU allows per buffer".
    pub need: String,
    pub largest: Option<u64>,
    /// Other settings that weigh on the same cost (for the message when nothing fits).
    pub others: Vec<&'static str>,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={} needs {}", self.field, self.value, self.need)?;
        match self.largest {
            Some(v) => write!(f, "; the largest {} that fits is {v}", self.field),
            None if self.others.is_empty() => write!(f, "; no value of {} fits on its own", self.field),
            None => write!(f, "; no value of {} fits on its own: lower {} too", self.field, self.others.join(" or ")),
        }
    }
}

impl std::error::Error for Refusal {}

/// A failed limit: what it needs and the settings it grows with.
struct Problem {
    need: String,
    fields: Vec<&'static str>,
}

/// `bytes` for a person: "3.2 GiB", "12.0 MiB", "512 B".
pub fn fmt_bytes(bytes: u64) -> String {
    let b = bytes as f64;
    if b >= (1u64 << 30) as f64 {
        format!("{:.1} GiB", b / (1u64 << 30) as f64)
    } else if b >= (1u64 << 20) as f64 {
        format!("{:.1} MiB", b / (1u64 << 20) as f64)
    } else if b >= 1024.0 {
        format!("{:.1} KiB", b / 1024.0)
    } else {
        format!("{bytes} B")
    }
}

/// `seconds` for a person: "40 ms", "2.5 s", "3.1 min", "5.0 h", "12 days".
pub fn fmt_seconds(s: f64) -> String {
    if !s.is_finite() {
        "forever".into()
    } else if s < 1.0 {
        format!("{:.0} ms", (s * 1000.0).max(1.0))
    } else if s < 120.0 {
        format!("{s:.1} s")
    } else if s < 7200.0 {
        format!("{:.0} min", s / 60.0)
    } else if s < 172_800.0 {
        format!("{:.0} h", s / 3600.0)
    } else {
        format!("{:.0} days", s / 86400.0)
    }
}

fn fmt_rate(flops: f64, measured: bool) -> String {
    let how = if measured { "measured" } else { "assumed" };
    if flops >= 1e12 {
        format!("{:.1} TFLOP/s {how}", flops / 1e12)
    } else {
        format!("{:.2} GFLOP/s {how}", flops / 1e9)
    }
}

/// The estimate of `w` on `p`, or the first limit it breaks.
fn evaluate(w: &Workload, p: &Profile) -> Result<Estimate, Problem> {
    let lim = &p.limits;
    let dev = p.device();
    if w.coupling == Coupling::Ot && w.batch > OT_MAX_BATCH {
        return Err(Problem { need: format!("a batch of at most {OT_MAX_BATCH} with OT coupling (its Sinkhorn plan is batch × batch)"), fields: vec!["batch"] });
    }
    let buffers = w.buffers(p);
    if let Some(b) = buffers.iter().filter(|b| b.bytes > p.max_buffer).max_by_key(|b| b.bytes) {
        return Err(Problem {
            need: format!("a {} {} buffer, more than the {} {dev} allows per buffer", fmt_bytes(b.bytes), b.name, fmt_bytes(p.max_buffer)),
            fields: b.fields.to_vec(),
        });
    }
    let total_bytes: u64 = buffers.iter().map(|b| b.bytes).sum();
    if total_bytes > p.total_bytes {
        let mut fields: Vec<&'static str> = Vec::new();
        let mut by_size: Vec<&Buffer> = buffers.iter().collect();
        by_size.sort_by_key(|b| std::cmp::Reverse(b.bytes));
        for b in by_size {
            for f in b.fields {
                if !fields.contains(f) {
                    fields.push(f);
                }
            }
        }
        let biggest = buffers.iter().max_by_key(|b| b.bytes).expect("buffers");
        return Err(Problem {
            need: format!(
                "{} of memory ({} of it {}), more than the {} budget of {dev}",
                fmt_bytes(total_bytes),
                fmt_bytes(biggest.bytes),
                biggest.name,
                fmt_bytes(p.total_bytes)
            ),
            fields,
        });
    }
    let train = |flops: f64| flops / p.train_flops;
    let sample = |flops: f64| flops / p.sample_flops;
    let rate_t = fmt_rate(p.train_flops, p.measured);
    let rate_s = fmt_rate(p.sample_flops, p.measured);
    let step_s = train(w.step_flops(p.backend));
    let dispatch_s = match p.backend {
        Backend::Gpu => train(w.largest_dispatch_flops()),
        Backend::Cpu => step_s,
    };
    let batch_fields = || vec!["batch", "width", "depth"];
    if dispatch_s > lim.dispatch_s {
        let what = match p.backend {
            Backend::Gpu => "GPU dispatch",
            Backend::Cpu => "training step on the page's thread",
        };
        return Err(Problem {
            need: format!("about {} per {what} at {rate_t}, more than the {} allowed", fmt_seconds(dispatch_s), fmt_seconds(lim.dispatch_s)),
            fields: batch_fields(),
        });
    }
    if step_s > lim.step_s {
        return Err(Problem {
            need: format!("about {} per training step at {rate_t}, more than the {} allowed", fmt_seconds(step_s), fmt_seconds(lim.step_s)),
            fields: batch_fields(),
        });
    }
    // The smallest chunk of an integration (one solver step of one particle; dopri5: one step of
    // six evaluations) must fit a dispatch.
    let unit = w.eval_flops() * if w.solver == Solver::Dopri5 { 6.0 } else { w.solver.evals_per_step() as f64 };
    if sample(unit) > lim.dispatch_s {
        return Err(Problem {
            need: format!("about {} for one solver step of one particle at {rate_s}, more than the {} allowed per dispatch", fmt_seconds(sample(unit)), fmt_seconds(lim.dispatch_s)),
            fields: vec!["width", "depth"],
        });
    }
    let pass = |what: &str, s: f64, items: u32, fields: Vec<&'static str>| Problem {
        need: format!(
            "about {} per {what} ({items} particles × {} evaluations each) at {rate_s}, more than the {} allowed",
            fmt_seconds(s),
            w.evals(),
            fmt_seconds(lim.pass_s)
        ),
        fields,
    };
    let flow_s = sample(w.flow_flops());
    if flow_s > lim.pass_s {
        return Err(pass("pass of the shown flow", flow_s, w.particles, vec!["particles", "nfe", "width", "depth"]));
    }
    let probe_s = sample(w.probe_flops());
    if probe_s > lim.pass_s {
        return Err(pass("sample-quality reading", probe_s, w.sizes.probe, vec!["nfe", "width", "depth"]));
    }
    // The heat map is optional and chunked: it is not a reason to refuse a configuration (the
    // engine spaces its passes by their cost, `Estimate::heat_s`).
    let heat_s = sample(w.heat_flops());
    // The arrows are optional too (off by default): the engine spaces their evaluation by
    // `Estimate::arrows_s`, so they do not count against the frame.
    let arrows_s = sample(w.arrows_flops());
    let frame_s = step_s + lim.chunk_s;
    if frame_s > lim.frame_s {
        return Err(Problem {
            need: format!(
                "about {} per frame (a training step and a chunk of sampling) at {rate_t}, more than the {} allowed",
                fmt_seconds(frame_s),
                fmt_seconds(lim.frame_s)
            ),
            fields: batch_fields(),
        });
    }
    Ok(Estimate { buffers, total_bytes, step_s, dispatch_s, flow_s, probe_s, heat_s, arrows_s, frame_s })
}

fn int_value(c: &Config, field: &str) -> Option<(u64, u64)> {
    let f = crate::config::field(field)?;
    let FieldKind::Int { min, .. } = f.kind else { return None };
    let v = f.get(c).parse().ok()?;
    let min = if field == "nfe" && c.solver == Solver::Dopri5 { min.max(crate::cpu::adaptive::MIN_NFE as u64) } else { min };
    Some((v, min))
}

/// How far a setting is above its default (the settings a link inflated most are named first).
fn inflation(c: &Config, field: &str) -> f64 {
    let d = Config::default();
    match (int_value(c, field), int_value(&d, field)) {
        (Some((v, _)), Some((dv, _))) if dv > 0 => v as f64 / dv as f64,
        _ => 0.0,
    }
}

/// Checks `c` on `profile` training on `target`: the estimate, or a refusal naming a setting and
/// the largest value of it that fits (see the module docs for the cost model).
pub fn check(c: &Config, profile: &Profile, target: Target) -> Result<Estimate, Refusal> {
    let problem = match evaluate(&Workload::of(c, profile, target), profile) {
        Ok(e) => return Ok(e),
        Err(p) => p,
    };
    let mut fields: Vec<&'static str> = problem.fields.iter().copied().filter(|f| int_value(c, f).is_some()).collect();
    // Most inflated first; the problem's own order breaks ties (stable sort).
    fields.sort_by(|a, b| inflation(c, b).partial_cmp(&inflation(c, a)).unwrap_or(std::cmp::Ordering::Equal));
    let fits = |f: &str, v: u64| {
        let mut t = c.clone();
        t.set(f, &v.to_string()).is_ok() && evaluate(&Workload::of(&t, profile, target), profile).is_ok()
    };
    for &f in &fields {
        let (value, min) = int_value(c, f).expect("filtered above");
        if value <= min || !fits(f, min) {
            continue;
        }
        let largest = largest_below(min, value, |v| fits(f, v));
        return Err(Refusal { field: f, value, need: problem.need, largest: Some(largest), others: Vec::new() });
    }
    let first = fields.first().copied().unwrap_or("width");
    Err(Refusal {
        field: first,
        value: int_value(c, first).map_or(0, |v| v.0),
        need: problem.need,
        largest: None,
        others: fields.iter().copied().filter(|f| *f != first).collect(),
    })
}

/// The largest `v` in `[min, value)` with `fits(v)`, given `fits(min)` and that costs grow with `v`.
fn largest_below(min: u64, value: u64, fits: impl Fn(u64) -> bool) -> u64 {
    let (mut lo, mut hi) = (min, value.saturating_sub(1).max(min));
    while lo < hi {
        let mid = lo + (hi - lo).div_ceil(2);
        if fits(mid) { lo = mid } else { hi = mid - 1 }
    }
    lo
}

/// The trainer's memory alone (its buffers, each within the per-buffer limit and all within the
/// memory budget, and the OT batch cap), for the engines' constructors (`CpuTrainer::try_new`,
/// `GpuTrainer::new`), which know a [`TrainSpec`] but not the rest of a configuration. Returns
/// the bytes, or a refusal naming the batch (or, when no batch fits, the width) and the largest
/// value that fits.
pub fn check_trainer(spec: &TrainSpec, n_points: usize, n_source: usize, profile: &Profile) -> Result<u64, Refusal> {
    let dev = profile.device();
    let need = |shape: &ModelShape, batch: u32| -> Result<u64, String> {
        if spec.coupling == Coupling::Ot && batch > OT_MAX_BATCH {
            return Err(format!("a batch of at most {OT_MAX_BATCH} with OT coupling (its Sinkhorn plan is batch × batch)"));
        }
        let buffers = trainer_buffers(shape, batch, n_points, n_source);
        if let Some((name, bytes)) = buffers.iter().filter(|b| b.1 > profile.max_buffer).max_by_key(|b| b.1) {
            return Err(format!("a {} {name} buffer, more than the {} {dev} allows per buffer", fmt_bytes(*bytes), fmt_bytes(profile.max_buffer)));
        }
        let total: u64 = buffers.iter().map(|b| b.1).sum();
        if total > profile.total_bytes {
            return Err(format!("{} of memory for training, more than the {} budget of {dev}", fmt_bytes(total), fmt_bytes(profile.total_bytes)));
        }
        Ok(total)
    };
    let need_msg = match need(&spec.shape, spec.batch) {
        Ok(total) => return Ok(total),
        Err(m) => m,
    };
    let batch = spec.batch as u64;
    if batch > 1 && need(&spec.shape, 1).is_ok() {
        let largest = largest_below(1, batch, |b| need(&spec.shape, b as u32).is_ok());
        return Err(Refusal { field: "batch", value: batch, need: need_msg, largest: Some(largest), others: Vec::new() });
    }
    let width = spec.shape.width as u64;
    let with_width = |w: u64| ModelShape { width: w as u32, ..spec.shape };
    let largest = (width > 1 && need(&with_width(1), spec.batch).is_ok()).then(|| largest_below(1, width, |w| need(&with_width(w), spec.batch).is_ok()));
    let others = if largest.is_none() { vec!["depth", "batch"] } else { Vec::new() };
    Err(Refusal { field: "width", value: width, need: need_msg, largest, others })
}

/// Checks a piece of work of `flops` at the per-particle rate against the pass limit (e.g. the
/// solver comparison, which runs a fixed plan whatever the settings).
pub fn check_pass(what: &str, flops: f64, profile: &Profile) -> Result<f64, String> {
    let s = flops / profile.sample_flops;
    if s > profile.limits.pass_s {
        return Err(format!(
            "{what} needs about {} at {}, more than the {} allowed: lower the width or depth",
            fmt_seconds(s),
            fmt_rate(profile.sample_flops, profile.measured),
            fmt_seconds(profile.limits.pass_s)
        ));
    }
    Ok(s)
}

/// How one long integration is split: `items` (particles, grid cells) advanced through `steps`
/// steps, each chunk doing `steps_per_chunk` steps of `items_per_chunk` items. A chunk covers all
/// items for a range of steps, or, when one step of every item is already too long, one step of a
/// range of items; chunks run step range by step range, items in order within one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChunkPlan {
    pub items: u32,
    pub steps: u32,
    pub items_per_chunk: u32,
    pub steps_per_chunk: u32,
}

/// One chunk of a [`ChunkPlan`]: items `[first_item, first_item + items)` through steps
/// `[first_step, first_step + steps)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Chunk {
    pub first_item: u32,
    pub items: u32,
    pub first_step: u32,
    pub steps: u32,
}

impl Chunk {
    /// The chunk starts the integration (its items' first step).
    pub fn starts(&self) -> bool {
        self.first_step == 0
    }
    pub fn end_step(&self) -> u32 {
        self.first_step + self.steps
    }
}

impl ChunkPlan {
    /// Everything in one chunk.
    pub fn whole(items: u32, steps: u32) -> Self {
        ChunkPlan { items: items.max(1), steps: steps.max(1), items_per_chunk: items.max(1), steps_per_chunk: steps.max(1) }
    }

    /// Chunks of at most `target_s` at `flops_per_s`, one step of one item costing
    /// `flops_per_item_step`; item ranges are multiples of [`GRANULE`] when they hold at least one
    /// workgroup. A chunk never holds less than one item and one step, whatever it costs (the
    /// budget refuses work whose smallest chunk is longer than a dispatch may be).
    pub fn new(items: u32, steps: u32, flops_per_item_step: f64, flops_per_s: f64, target_s: f64) -> Self {
        let (items, steps) = (items.max(1), steps.max(1));
        let budget = (target_s * flops_per_s).max(0.0);
        let per_step_all = items as f64 * flops_per_item_step;
        let costs = per_step_all > 0.0; // false for 0 and NaN: everything in one chunk
        if !costs || per_step_all <= budget {
            let k = if costs { (budget / per_step_all).floor() } else { f64::INFINITY };
            let k = k.clamp(1.0, steps as f64) as u32;
            return ChunkPlan { items, steps, items_per_chunk: items, steps_per_chunk: k };
        }
        let per = (budget / flops_per_item_step).floor().min(items as f64) as u32;
        // Whole workgroups where possible; below one workgroup, fewer items (at least one).
        let per = if per >= GRANULE { per / GRANULE * GRANULE } else { per.max(1) };
        ChunkPlan { items, steps, items_per_chunk: per, steps_per_chunk: 1 }
    }

    /// Chunks per step range.
    pub fn item_ranges(&self) -> u32 {
        self.items.div_ceil(self.items_per_chunk)
    }

    pub fn step_ranges(&self) -> u32 {
        self.steps.div_ceil(self.steps_per_chunk)
    }

    pub fn len(&self) -> usize {
        self.item_ranges() as usize * self.step_ranges() as usize
    }

    pub fn is_empty(&self) -> bool {
        false
    }

    /// Chunk `i` (in running order), or None past the end.
    pub fn get(&self, i: usize) -> Option<Chunk> {
        if i >= self.len() {
            return None;
        }
        let ranges = self.item_ranges() as usize;
        let (s, r) = ((i / ranges) as u32, (i % ranges) as u32);
        let first_step = s * self.steps_per_chunk;
        let first_item = r * self.items_per_chunk;
        Some(Chunk {
            first_item,
            items: self.items_per_chunk.min(self.items - first_item),
            first_step,
            steps: self.steps_per_chunk.min(self.steps - first_step),
        })
    }

    pub fn iter(&self) -> impl Iterator<Item = Chunk> + '_ {
        (0..self.len()).map_while(|i| self.get(i))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(q: &str) -> Config {
        let mut c = Config::default();
        assert!(c.apply_query(q).is_empty(), "{q}");
        c
    }

    fn gpu() -> Profile {
        Profile::gpu(128 << 20, false)
    }

    /// Every preset of the page's menu runs on a software adapter and on the CPU backend (at
    /// batch 256 the OT-CFM preset's Sinkhorn, 100 iterations over 256² pairs, was refused on the
    /// CPU: about 0.5 s per step on the page's thread at the CPU's prior rate).
    #[test]
    fn every_preset_fits_software_and_cpu() {
        for preset in crate::presets::PRESETS {
            let c = preset.to_config();
            for p in [Profile::gpu(128 << 20, true), Profile::cpu()] {
                check(&c, &p, Target::Dataset).unwrap_or_else(|r| panic!("preset {} on {:?}: {r}", preset.name, p.backend));
            }
        }
    }

    #[test]
    fn defaults_fit_everywhere() {
        let c = Config::default();
        for p in [gpu(), Profile::gpu(128 << 20, true), Profile::cpu()] {
            let e = check(&c, &p, Target::Dataset).unwrap_or_else(|r| panic!("{p:?}: {r}"));
            assert!(e.total_bytes < 64 << 20 && e.frame_s < p.limits.frame_s, "{e:?}");
        }
        // The page's software defaults (`web::pacing::page_config`: width 32, depth 2, batch 128,
        // 800 particles × 32 steps) on a software adapter.
        let small = crate::web::pacing::page_config(crate::web::pacing::Runs::Software);
        check(&small, &Profile::gpu(128 << 20, true), Target::Dataset).unwrap();
    }

    /// The CPU page's defaults (`web::pacing::page_config`: the command line's model, 800
    /// particles × 32 Euler steps) and OT coupling at their batch fit the CPU engine's prior, and
    /// the S model's batch stays bounded (the fast backend trains at ~11 GFLOP/s here: 1 GFLOP/s
    /// is its prior).
    #[test]
    fn cpu_page_defaults_and_ot_fit_the_cpu() {
        let c = crate::web::pacing::page_config(crate::web::pacing::Runs::Cpu);
        let p = Profile::cpu();
        let e = check(&c, &p, Target::Dataset).unwrap_or_else(|r| panic!("{r}"));
        assert!(e.step_s < 0.1 * p.limits.step_s && e.frame_s < p.limits.frame_s, "{e:?}");
        let mut ot = c.clone();
        assert!(ot.apply_query("coupling=ot").is_empty());
        assert_eq!(ot.batch, 256);
        check(&ot, &p, Target::Dataset).unwrap_or_else(|r| panic!("OT at batch 256 on the CPU: {r}"));
        let mut big = c;
        assert!(big.apply_query("batch=65536").is_empty());
        let r = check(&big, &p, Target::Dataset).expect_err("batch 65536 of the S model on the CPU");
        assert!(r.to_string().contains("batch"), "{r}");
    }

    #[test]
    fn estimates_follow_the_cost_model() {
        let c = cfg("width=64&depth=3&batch=256&particles=1000&nfe=10&solver=rk4");
        let p = gpu();
        let w = Workload::of(&c, &p, Target::Dataset);
        let m = w.shape.macs_per_sample() as f64;
        assert_eq!(m, (3 * 64 + 64 * 64 * 2 + 64 * 2) as f64);
        let e = check(&c, &p, Target::Dataset).unwrap();
        assert!((e.step_s - 6.0 * 256.0 * m / PRIOR_GPU_TRAIN).abs() < 1e-12);
        assert!((e.flow_s - 1000.0 * 10.0 * 4.0 * 2.0 * m / PRIOR_GPU_SAMPLE).abs() < 1e-12);
        assert_eq!(e.total_bytes, e.buffers.iter().map(|b| b.bytes).sum::<u64>());
        // The trajectories: 1000 particles × 11 rows × 8 B.
        assert_eq!(e.buffers.iter().find(|b| b.name == "trajectories").unwrap().bytes, 88_000);
        // A measured rate twice the prior halves every time.
        let fast = check(&c, &p.with_rates(2.0 * PRIOR_GPU_TRAIN, 2.0 * PRIOR_GPU_SAMPLE), Target::Dataset).unwrap();
        assert!((fast.flow_s * 2.0 - e.flow_s).abs() < 1e-12 && (fast.step_s * 2.0 - e.step_s).abs() < 1e-12);
    }

    /// Classifier-free guidance evaluates the network twice per field evaluation: the sampling
    /// estimates double, training does not change; guidance 1 (or no class) is one evaluation.
    #[test]
    fn guidance_doubles_the_sampling_cost() {
        let p = gpu();
        let base = "dataset=8gaussians&conditional=on&width=64&depth=3&particles=1000&nfe=10&solver=rk4";
        let plain = check(&cfg(&format!("{base}&class=3&guidance=1")), &p, Target::Dataset).unwrap();
        let guided = check(&cfg(&format!("{base}&class=3&guidance=4")), &p, Target::Dataset).unwrap();
        let all = check(&cfg(&format!("{base}&guidance=4")), &p, Target::Dataset).unwrap();
        assert!((guided.flow_s - 2.0 * plain.flow_s).abs() < 1e-12, "{} vs {}", guided.flow_s, plain.flow_s);
        assert_eq!((guided.step_s, all.flow_s), (plain.step_s, plain.flow_s));
    }

    /// The links of issue 15 are refused with a message naming a setting and the largest value
    /// that fits, and that value really fits while one more does not.
    #[test]
    fn hostile_links_are_refused_with_the_largest_value_that_fits() {
        let cases: &[(&str, Profile, &str)] = &[
            ("width=1024&depth=8&solver=dopri5&nfe=10000", gpu(), "nfe"),
            // The quality probe's 1024 particles × 2000 evaluations alone are too much for the
            // CPU, so no particle count fits: the refusal names nfe.
            ("particles=200000&nfe=2000", Profile::cpu(), "nfe"),
            ("coupling=ot&batch=65536", Profile::cpu(), "batch"),
            ("coupling=ot&batch=65536", gpu(), "batch"),
            // No batch fits a width 1024 × depth 8 network at the priors (its 4096 shown particles
            // alone take minutes per pass), so the width is named.
            ("width=1024&depth=8&batch=65536", Profile::cpu(), "width"),
            ("width=1024&depth=8&batch=65536", gpu(), "width"),
            // With a fast GPU measured, the batch is what does not fit.
            ("width=1024&depth=8&batch=65536", gpu().with_rates(10e12, 1e12), "batch"),
            ("particles=1000000&nfe=10000&solver=rk4&width=1024&depth=8", gpu(), "particles"),
        ];
        for (q, p, field) in cases {
            let c = cfg(q);
            let r = check(&c, p, Target::Dataset).expect_err(q);
            assert_eq!(r.field, *field, "{q}: {r}");
            let msg = r.to_string();
            println!("{q} ({:?}): {msg}", p.backend);
            assert!(msg.starts_with(&format!("{field}=")) && msg.contains("needs"), "{msg}");
            if let Some(v) = r.largest {
                assert!(msg.contains(&format!("the largest {field} that fits is {v}")), "{msg}");
                let mut ok = c.clone();
                ok.set(field, &v.to_string()).unwrap();
                check(&ok, p, Target::Dataset).unwrap_or_else(|e| panic!("{q}: {field}={v} was offered but does not fit: {e}"));
                let mut over = c.clone();
                over.set(field, &(v + 1).to_string()).unwrap();
                assert!(check(&over, p, Target::Dataset).is_err(), "{q}: {field}={} fits too", v + 1);
            }
        }
        let r = check(&cfg("coupling=ot&batch=65536"), &Profile::cpu(), Target::Dataset).unwrap_err();
        assert!(r.to_string().contains("OT coupling") && r.largest.unwrap() <= OT_MAX_BATCH as u64, "{r}");
        let r = check(&cfg("width=1024&depth=8&batch=65536"), &Profile::cpu(), Target::Dataset).unwrap_err();
        assert!(r.to_string().contains("memory") || r.to_string().contains("buffer"), "{r}");
    }

    #[test]
    fn the_largest_value_of_every_field_is_refused_or_fits() {
        // Every integer setting at its maximum (the others at their defaults), on each backend.
        for p in [gpu(), Profile::gpu(128 << 20, true), Profile::cpu()] {
            for f in crate::config::FIELDS {
                let FieldKind::Int { max, .. } = f.kind else { continue };
                let mut c = Config::default();
                c.set(f.name, &max.to_string()).unwrap();
                match check(&c, &p, Target::Dataset) {
                    Ok(e) => assert!(e.frame_s <= p.limits.frame_s && e.total_bytes <= p.total_bytes),
                    Err(r) => assert!(!r.to_string().is_empty() && crate::config::field(r.field).is_some(), "{r}"),
                }
            }
        }
    }

    #[test]
    fn a_refusal_without_a_fitting_value_says_what_else_to_lower() {
        // A device so slow that no width fits at depth 8 with this batch.
        let mut p = Profile::cpu().with_rates(1e3, 1e3);
        p.measured = true;
        let r = check(&cfg("width=1024&depth=8&batch=16"), &p, Target::Dataset).unwrap_err();
        assert_eq!(r.largest, None);
        assert!(r.to_string().contains("lower"), "{r}");
        assert!(r.to_string().contains("measured"), "{r}");
    }

    #[test]
    fn custom_targets_count_their_points() {
        let c = Config::default();
        let p = gpu();
        let big = check(&c, &p, Target::Custom(200_000)).unwrap();
        let small = check(&c, &p, Target::Custom(100)).unwrap();
        assert_eq!(big.total_bytes - small.total_bytes, 8 * (200_000 - 100));
    }

    #[test]
    fn chunk_plans_cover_every_item_and_step_once_within_the_target() {
        // Cheap: several steps of every item per chunk.
        let p = ChunkPlan::new(1000, 100, 1e3, 1e9, 0.1);
        assert_eq!((p.items_per_chunk, p.steps_per_chunk), (1000, 100));
        let p = ChunkPlan::new(1000, 100, 1e5, 1e9, 0.1);
        assert_eq!((p.items_per_chunk, p.steps_per_chunk), (1000, 1));
        let p = ChunkPlan::new(1000, 100, 1e4, 1e9, 0.1);
        assert_eq!((p.items_per_chunk, p.steps_per_chunk), (1000, 10));
        // Dear: one step of a range of items (a multiple of the workgroup: 1000 → 960).
        let p = ChunkPlan::new(100_000, 7, 1e5, 1e9, 0.1);
        assert_eq!((p.items_per_chunk, p.steps_per_chunk), (960, 1));
        // Below a workgroup, fewer items; whatever it costs, a chunk holds an item and a step.
        let p = ChunkPlan::new(100_000, 7, 1e7, 1e9, 0.1);
        assert_eq!((p.items_per_chunk, p.steps_per_chunk), (10, 1));
        let p = ChunkPlan::new(1000, 3, 1e12, 1e9, 0.1);
        assert_eq!((p.items_per_chunk, p.steps_per_chunk), (1, 1));
        for (items, steps, cost) in [(1000u32, 100u32, 1e4), (100_000, 7, 1e7), (77, 13, 1e8), (1, 1, 1.0), (4097, 5, 3e4)] {
            let plan = ChunkPlan::new(items, steps, cost, 1e9, 0.1);
            let mut seen = vec![0u32; items as usize * steps as usize];
            let mut last_step_end = 0;
            for ch in plan.iter() {
                assert!(ch.items >= 1 && ch.steps >= 1);
                let t = ch.items as f64 * ch.steps as f64 * cost / 1e9;
                assert!(t <= 0.1 + 1e-12 || (ch.steps == 1 && ch.items == 1), "{ch:?}: {t} s");
                assert!(ch.first_step >= last_step_end || ch.first_step + ch.steps == last_step_end, "step ranges run in order");
                last_step_end = ch.end_step();
                for s in ch.first_step..ch.end_step() {
                    for i in ch.first_item..ch.first_item + ch.items {
                        seen[(s * items + i) as usize] += 1;
                    }
                }
            }
            assert!(seen.iter().all(|&k| k == 1), "{items}×{steps}");
            assert_eq!(plan.iter().count(), plan.len());
        }
        assert_eq!(ChunkPlan::whole(50, 9).len(), 1);
    }

    /// The constructors' check: the issue's CPU allocation of 4.3 GB (width 1024, depth 8,
    /// batch 65536) is refused naming the largest batch that fits, which fits while one more does
    /// not; OT is capped; with nothing fitting, the width is named.
    #[test]
    fn trainer_memory_is_refused_before_allocating() {
        let spec = |q: &str| TrainSpec::from_config(&cfg(q));
        let cpu = Profile::cpu();
        let s = spec("width=1024&depth=8&batch=65536");
        let r = check_trainer(&s, 32768, 0, &cpu).unwrap_err();
        assert_eq!(r.field, "batch", "{r}");
        let v = r.largest.unwrap() as u32;
        assert!(r.to_string().contains(&format!("the largest batch that fits is {v}")), "{r}");
        let bytes = check_trainer(&TrainSpec { batch: v, ..s }, 32768, 0, &cpu).unwrap();
        assert!(bytes <= CPU_TOTAL_BYTES);
        assert!(check_trainer(&TrainSpec { batch: v + 1, ..s }, 32768, 0, &cpu).is_err());
        let r = check_trainer(&spec("coupling=ot&batch=65536"), 32768, 0, &cpu).unwrap_err();
        assert_eq!((r.field, r.largest), ("batch", Some(OT_MAX_BATCH as u64)), "{r}");
        let tiny = Profile { max_buffer: 1 << 20, total_bytes: 1 << 20, ..cpu };
        let r = check_trainer(&spec("width=1024&depth=8&batch=1"), 100, 0, &tiny).unwrap_err();
        assert_eq!(r.field, "width", "{r}");
        assert!(check_trainer(&TrainSpec { shape: ModelShape { width: r.largest.unwrap() as u32, ..s.shape }, batch: 1, ..s }, 100, 0, &tiny).is_ok());
        check_trainer(&TrainSpec::from_config(&Config::default()), 32768, 0, &cpu).unwrap();
    }

    #[test]
    fn formats() {
        assert_eq!(fmt_bytes(3 << 30), "3.0 GiB");
        assert_eq!(fmt_bytes(512), "512 B");
        assert_eq!(fmt_seconds(0.0404), "40 ms");
        assert_eq!(fmt_seconds(2.5), "2.5 s");
        assert_eq!(fmt_seconds(86400.0 * 3.0), "3 days");
    }
}
