//! The benchmark behind `flowmatch bench` and `www/bench.html`: the same measurement on both
//! targets, reported as one JSON object per configuration.
//!
//! Configurations (issue 7): S = width 64, depth 3, batch 256 (TorchCFM's 2D examples);
//! M = width 256, depth 4, batch 1024; L = width 512, depth 4, batch 4096 (the 2D checkerboard
//! setup of Meta's flow_matching). Moons target, SiLU, Adam with lr 1e-3, seed 0.
//!
//! **FLOPs are counted analytically**: with `macs = Σ_l in_l·out_l` multiply-adds per sample for
//! one forward pass (`ModelShape::macs_per_sample`), one training step is
//! `flop_per_step = 6·B·macs` — 2·B·macs each for the forward matmuls, the input-gradient
//! matmuls (δ_prev = δ·W) and the weight-gradient matmuls (dW = δᵀ·x). Bias, activation, loss,
//! batch construction and Adam are not counted (they are O(B·width) and O(params)), so
//! `gflops = flop_per_step · steps_per_s / 1e9` understates the work done slightly. Sampling
//! counts `2·macs` per particle-step (Euler: one network evaluation per step).
//!
//! Timing: every measured region ends with a readback that waits for the queue (the loss ring's
//! status), so GPU time is inside the measurement on native and in the browser alike; warm-up
//! steps (pipeline compilation, first-use allocation) are outside it. Peak memory is the bytes
//! of every buffer the trainer and the sampler created (`allocated_bytes`); the engine allocates
//! nothing per step.

use crate::config::{Coupling, Dataset, Solver};
use crate::json::json_string;
use crate::gpu::profile::KernelProfile;
use crate::gpu::trainer::MAX_STEPS_PER_SUBMIT;
use crate::gpu::{GpuContext, GpuError, GpuSampler, GpuTrainer, KernelVariant, TrainerOptions};
use crate::model::ModelShape;
use crate::targets::{sample_dataset, DATASET_POINTS};
use crate::TrainSpec;

/// One of the fixed benchmark configurations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BenchConfig {
    S,
    M,
    L,
}

impl BenchConfig {
    pub const ALL: [BenchConfig; 3] = [BenchConfig::S, BenchConfig::M, BenchConfig::L];

    pub fn parse(s: &str) -> Option<Self> {
        match s.trim() {
            "S" | "s" => Some(BenchConfig::S),
            "M" | "m" => Some(BenchConfig::M),
            "L" | "l" => Some(BenchConfig::L),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            BenchConfig::S => "S",
            BenchConfig::M => "M",
            BenchConfig::L => "L",
        }
    }

    /// `(width, depth, batch)`.
    pub fn dims(self) -> (u32, u32, u32) {
        match self {
            BenchConfig::S => (64, 3, 256),
            BenchConfig::M => (256, 4, 1024),
            BenchConfig::L => (512, 4, 4096),
        }
    }

    /// The training spec: moons, SiLU, Adam lr 1e-3, seed 0 (defaults for everything else).
    pub fn spec(self) -> TrainSpec {
        self.spec_with(Coupling::Independent)
    }

    /// [`BenchConfig::spec`] with the given coupling.
    pub fn spec_with(self, coupling: Coupling) -> TrainSpec {
        let (width, depth, batch) = self.dims();
        let mut c = crate::Config::default();
        c.width = width;
        c.depth = depth;
        c.batch = batch;
        c.lr = 1e-3;
        c.seed = 0;
        c.dataset = Dataset::Moons;
        c.activation = crate::config::Activation::Silu;
        c.coupling = coupling;
        TrainSpec::from_config(&c)
    }
}

/// What to measure.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BenchOptions {
    /// Timed training steps; `None` picks enough for about `target_seconds` from a probe.
    pub steps: Option<u32>,
    /// Particles for the sampling measurement; `None`: 2^20 on GPUs, 2^14 on software adapters
    /// (a million particles through width 512 would take minutes on CPU emulation).
    pub particles: Option<u32>,
    /// Euler steps for the sampling measurement; `None` picks from a probe like `steps`.
    pub ode_steps: Option<u32>,
    /// Seconds each automatically sized measurement aims for.
    pub target_seconds: f64,
    /// Kernel variant override (else the adapter's choice, `FLOWMATCH_KERNELS` included).
    pub variant: Option<KernelVariant>,
    /// Also time every kernel over this many steps with GPU timestamps (`gpu::profile`).
    pub profile_steps: Option<u32>,
    /// Which engine to time.
    pub backend: BenchBackend,
    /// The batch's coupling (independent by default; `--coupling ot` times the OT-CFM batch).
    pub coupling: Coupling,
    /// Training steps per queue submit (`None`: the trainer's most, `MAX_STEPS_PER_SUBMIT`); the
    /// demo page's pacer submits a few at a time, so `--steps-per-submit 2` times that pattern.
    pub steps_per_submit: Option<u32>,
    /// Batch splits of the tiled dW (`--splits`; `None`: `gpu::trainer::default_splits`).
    pub splits: Option<u32>,
    /// Rows per tile of the tiled forward, 32, 64 or 128 (`--forward-rows`; `None`: the trainer's choice).
    pub forward_rows: Option<u32>,
    /// Rows per tile of the tiled backward, 64 or 128 (`--backward-rows`).
    pub backward_rows: Option<u32>,
}

/// The engine a benchmark times: the GPU trainer, the fast CPU trainer (`cpu::fast`, the page's
/// CPU backend) or the scalar CPU reference it is tested against (`cpu::CpuTrainer`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BenchBackend {
    Gpu,
    Cpu,
    CpuReference,
}

impl BenchBackend {
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim() {
            "gpu" => Some(BenchBackend::Gpu),
            "cpu" => Some(BenchBackend::Cpu),
            "cpu-reference" => Some(BenchBackend::CpuReference),
            _ => None,
        }
    }

    /// The `impl` field of the JSON line.
    pub fn name(self) -> &'static str {
        match self {
            BenchBackend::Gpu => "wgpu",
            BenchBackend::Cpu => "cpu-fast",
            BenchBackend::CpuReference => "cpu-reference",
        }
    }
}

impl Default for BenchOptions {
    fn default() -> Self {
        BenchOptions { steps: None, particles: None, ode_steps: None, target_seconds: 2.0, variant: None, profile_steps: None, backend: BenchBackend::Gpu, coupling: Coupling::Independent, steps_per_submit: None, splits: None, forward_rows: None, backward_rows: None }
    }
}

/// One configuration's results.
#[derive(Clone, Debug)]
pub struct BenchReport {
    pub config: BenchConfig,
    pub coupling: Coupling,
    pub width: u32,
    pub depth: u32,
    pub batch: u32,
    pub steps: u32,
    pub train_seconds: f64,
    pub steps_per_s: f64,
    pub flop_per_step: f64,
    pub gflops: f64,
    pub dispatches_per_step: u32,
    pub submits_per_step: f64,
    pub particles: u32,
    pub ode_steps: u32,
    pub particle_steps_per_s: f64,
    pub sample_gflops: f64,
    pub trainer_bytes: u64,
    pub sampler_bytes: u64,
    pub final_loss: f32,
    pub variant: KernelVariant,
    pub splits: u32,
    pub forward_rows: u32,
    pub backward_rows: u32,
    pub adapter: String,
    pub backend: String,
    pub device_type: String,
    pub driver: String,
    /// Per-kernel times when asked for (`Err`: why the adapter could not time them).
    pub profile: Option<Result<KernelProfile, String>>,
}

/// Seconds since an arbitrary origin (monotonic).
fn now() -> f64 {
    #[cfg(not(target_arch = "wasm32"))]
    {
        use std::sync::OnceLock;
        static ORIGIN: OnceLock<std::time::Instant> = OnceLock::new();
        ORIGIN.get_or_init(std::time::Instant::now).elapsed().as_secs_f64()
    }
    #[cfg(target_arch = "wasm32")]
    {
        let perf = js_sys::Reflect::get(&js_sys::global(), &"performance".into()).ok();
        let now = perf.and_then(|p| {
            let f = js_sys::Reflect::get(&p, &"now".into()).ok()?;
            let f: js_sys::Function = wasm_bindgen::JsCast::dyn_into(f).ok()?;
            f.call0(&p).ok()?.as_f64()
        });
        now.unwrap_or(0.0) / 1000.0
    }
}

/// Trains `config` for a timed number of steps and integrates particles; see the module docs.
pub async fn run(ctx: &GpuContext, config: BenchConfig, opts: &BenchOptions) -> Result<BenchReport, GpuError> {
    let spec = config.spec_with(opts.coupling);
    let (width, depth, batch) = config.dims();
    let data = sample_dataset(Dataset::Moons, DATASET_POINTS, spec.seed);
    let options = TrainerOptions { variant: opts.variant, splits: opts.splits, forward_rows: opts.forward_rows, backward_rows: opts.backward_rows };
    let mut trainer = GpuTrainer::with_options(ctx, spec, &data, &[], options)?;
    let software = ctx.adapter.is_software();

    // Warm-up (pipelines compile lazily on some drivers), then a probe to size the run.
    trainer.train(2);
    trainer.status(1).await?;
    let steps = match opts.steps {
        Some(n) => n.max(1),
        None => {
            let probe = if software { 1 } else { 50 };
            let t0 = now();
            trainer.train(probe);
            trainer.status(1).await?;
            let per_step = ((now() - t0) / probe as f64).max(1e-6);
            ((opts.target_seconds / per_step) as u32).clamp(1, 20_000)
        }
    };
    let per_submit = opts.steps_per_submit.unwrap_or(MAX_STEPS_PER_SUBMIT).clamp(1, MAX_STEPS_PER_SUBMIT);
    let t0 = now();
    trainer.train_marked(steps, per_submit, &mut |_, _| {});
    let status = trainer.status(1).await?;
    let train_seconds = (now() - t0).max(1e-9);
    if let Some(bad) = status.first_bad_step {
        return Err(GpuError::Readback(format!("training diverged at step {bad} during the benchmark")));
    }
    let final_loss = status.losses.last().map(|l| l.1).unwrap_or(f32::NAN);
    let profile = match opts.profile_steps {
        Some(n) => Some(crate::gpu::profile::profile(&mut trainer, n).await.map_err(|e| e.to_string())),
        None => None,
    };

    let shape: ModelShape = spec.shape;
    let macs = shape.macs_per_sample() as f64;
    let flop_per_step = 6.0 * batch as f64 * macs;
    let steps_per_s = steps as f64 / train_seconds;

    // Sampling: N particles, Euler, the whole MLP per particle per step.
    let particles = opts.particles.unwrap_or(if software { 1 << 14 } else { 1 << 20 });
    let mut sampler = GpuSampler::new(ctx, &shape, &trainer.params, particles, 0)?;
    sampler.reset(1);
    sampler.integrate(Solver::Euler, 0.0, 1.0, 1);
    trainer.status(1).await?; // same queue: waits for the sampler's work too
    let ode_steps = match opts.ode_steps {
        Some(n) => n.max(1),
        None => {
            let t0 = now();
            sampler.integrate(Solver::Euler, 0.0, 1.0, 1);
            trainer.status(1).await?;
            let per_step = (now() - t0).max(1e-6);
            ((opts.target_seconds / per_step) as u32).clamp(1, 1000)
        }
    };
    let t0 = now();
    sampler.integrate(Solver::Euler, 0.0, 1.0, ode_steps);
    trainer.status(1).await?;
    let sample_seconds = (now() - t0).max(1e-9);
    let particle_steps_per_s = particles as f64 * ode_steps as f64 / sample_seconds;

    Ok(BenchReport {
        config,
        coupling: opts.coupling,
        width,
        depth,
        batch,
        steps,
        train_seconds,
        steps_per_s,
        flop_per_step,
        gflops: flop_per_step * steps_per_s / 1e9,
        dispatches_per_step: trainer.dispatches_per_step(),
        submits_per_step: steps.div_ceil(per_submit) as f64 / steps as f64,
        particles,
        ode_steps,
        particle_steps_per_s,
        sample_gflops: 2.0 * macs * particle_steps_per_s / 1e9,
        trainer_bytes: trainer.allocated_bytes(),
        sampler_bytes: sampler.allocated_bytes(),
        final_loss,
        variant: trainer.variant,
        splits: trainer.splits,
        forward_rows: trainer.forward_rows,
        backward_rows: trainer.backward_rows,
        adapter: ctx.adapter.name.clone(),
        backend: ctx.adapter.backend.clone(),
        device_type: ctx.adapter.device_type.clone(),
        driver: ctx.adapter.driver.clone(),
        profile,
    })
}

impl BenchReport {
    /// One JSON object (no trailing newline). `implementation` names the engine ("wgpu").
    pub fn to_json(&self, implementation: &str) -> String {
        let s = |v: &str| json_string(v);
        let n = json_number;
        let fields = [
            ("impl", s(implementation)),
            ("config", s(self.config.name())),
            ("coupling", s(self.coupling.name())),
            ("width", self.width.to_string()),
            ("depth", self.depth.to_string()),
            ("batch", self.batch.to_string()),
            ("steps", self.steps.to_string()),
            ("train_seconds", n(self.train_seconds)),
            ("steps_per_s", n(self.steps_per_s)),
            ("step_ms", n(1000.0 / self.steps_per_s)),
            ("flop_per_step", format!("{}", self.flop_per_step)),
            ("flop_formula", s("6*batch*sum_l(in_l*out_l)")),
            ("gflops", n(self.gflops)),
            ("dispatches_per_step", self.dispatches_per_step.to_string()),
            ("submits_per_step", format!("{}", self.submits_per_step)),
            ("readbacks_in_loop", "0".into()),
            ("particles", self.particles.to_string()),
            ("ode_solver", s("euler")),
            ("ode_steps", self.ode_steps.to_string()),
            ("particle_steps_per_s", n(self.particle_steps_per_s)),
            ("sample_gflops", n(self.sample_gflops)),
            ("trainer_bytes", self.trainer_bytes.to_string()),
            ("sampler_bytes", self.sampler_bytes.to_string()),
            ("peak_gpu_bytes", (self.trainer_bytes + self.sampler_bytes).to_string()),
            ("final_loss", n(self.final_loss as f64)),
            ("kernels", s(self.variant.name())),
            ("dw_splits", self.splits.to_string()),
            ("forward_rows", self.forward_rows.to_string()),
            ("backward_rows", self.backward_rows.to_string()),
            ("adapter", s(&self.adapter)),
            ("backend", s(&self.backend)),
            ("device_type", s(&self.device_type)),
            ("driver", s(&self.driver)),
        ];
        let mut body: Vec<String> = fields.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
        match &self.profile {
            Some(Ok(p)) => {
                let matmul_ms = p.matmul_ns() / 1e6;
                body.push(format!("\"profile_steps\":{}", p.steps));
                body.push(format!("\"gpu_step_ms\":{}", n(p.step_ns() / 1e6)));
                body.push(format!("\"matmul_ms_per_step\":{}", n(matmul_ms)));
                body.push(format!("\"matmul_gflops\":{}", n(self.flop_per_step / (matmul_ms / 1e3) / 1e9)));
                let kernels: Vec<String> = p
                    .kernels
                    .iter()
                    .map(|(name, _, ns)| format!("{}:{}", s(name), n(ns / p.steps.max(1) as f64 / 1e3)))
                    .collect();
                body.push(format!("\"kernel_us_per_step\":{{{}}}", kernels.join(",")));
            }
            Some(Err(e)) => body.push(format!("\"profile_error\":{}", s(e))),
            None => {}
        }
        format!("{{{}}}", body.join(","))
    }
}

/// One configuration's results on a CPU backend (single thread, batch built inside the step).
#[derive(Clone, Debug)]
pub struct CpuBenchReport {
    pub backend: BenchBackend,
    pub config: BenchConfig,
    pub coupling: Coupling,
    pub steps: u32,
    pub train_seconds: f64,
    pub steps_per_s: f64,
    pub flop_per_step: f64,
    pub final_loss: f32,
    /// What runs the code: the CPU's name natively, the browser's description in a page.
    pub adapter: String,
}

/// Times `config` on the CPU backend `backend` (`Cpu` or `CpuReference`): two warm-up steps,
/// one probe step to size the run to `opts.target_seconds` (unless `opts.steps` is given), then
/// the timed steps. Synchronous: in a page it holds the thread for the run.
pub fn run_cpu(config: BenchConfig, opts: &BenchOptions, adapter: &str) -> CpuBenchReport {
    let spec = config.spec_with(opts.coupling);
    let data = sample_dataset(Dataset::Moons, DATASET_POINTS, spec.seed);
    let (steps, train_seconds, final_loss) = match opts.backend {
        BenchBackend::CpuReference => time_cpu(&mut crate::cpu::CpuTrainer::new(spec, data), crate::cpu::CpuTrainer::step, opts),
        _ => time_cpu(&mut crate::cpu::FastCpuTrainer::new(spec, data), crate::cpu::FastCpuTrainer::step, opts),
    };
    let flop_per_step = 6.0 * spec.batch as f64 * spec.shape.macs_per_sample() as f64;
    CpuBenchReport {
        backend: if opts.backend == BenchBackend::CpuReference { BenchBackend::CpuReference } else { BenchBackend::Cpu },
        config,
        coupling: opts.coupling,
        steps,
        train_seconds,
        steps_per_s: steps as f64 / train_seconds,
        flop_per_step,
        final_loss,
        adapter: adapter.to_string(),
    }
}

/// `(steps, seconds, last loss)` of the timed run of `step` on `trainer`.
fn time_cpu<T>(trainer: &mut T, step: fn(&mut T) -> f32, opts: &BenchOptions) -> (u32, f64, f32) {
    step(trainer);
    step(trainer);
    let steps = match opts.steps {
        Some(n) => n.max(1),
        None => {
            let t0 = now();
            step(trainer);
            ((opts.target_seconds / (now() - t0).max(1e-6)) as u32).clamp(1, 100_000)
        }
    };
    let t0 = now();
    let mut loss = f32::NAN;
    for _ in 0..steps {
        loss = step(trainer);
    }
    (steps, (now() - t0).max(1e-9), loss)
}

impl CpuBenchReport {
    /// One JSON object (no trailing newline), with the fields of [`BenchReport::to_json`] that
    /// apply to a CPU.
    pub fn to_json(&self) -> String {
        let (width, depth, batch) = self.config.dims();
        let fields = [
            ("impl", json_string(self.backend.name())),
            ("config", json_string(self.config.name())),
            ("coupling", json_string(self.coupling.name())),
            ("width", width.to_string()),
            ("depth", depth.to_string()),
            ("batch", batch.to_string()),
            ("steps", self.steps.to_string()),
            ("train_seconds", json_number(self.train_seconds)),
            ("steps_per_s", json_number(self.steps_per_s)),
            ("step_ms", json_number(1000.0 / self.steps_per_s)),
            ("flop_per_step", format!("{}", self.flop_per_step)),
            ("flop_formula", json_string("6*batch*sum_l(in_l*out_l)")),
            ("gflops", json_number(self.flop_per_step * self.steps_per_s / 1e9)),
            ("final_loss", json_number(self.final_loss as f64)),
            ("threads", "1".into()),
            ("wasm_simd128", crate::cpu::fast::simd::WASM_SIMD128.to_string()),
            ("target", json_string(std::env::consts::ARCH)),
            ("adapter", json_string(&self.adapter)),
            ("device_type", json_string("cpu")),
        ];
        let body: Vec<String> = fields.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
        format!("{{{}}}", body.join(","))
    }
}


/// A number rounded to 3 decimals, `null` when not finite.
fn json_number(v: f64) -> String {
    crate::json::json_number((v * 1000.0).round() / 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configs_and_flop_formula() {
        assert_eq!(BenchConfig::parse("m"), Some(BenchConfig::M));
        assert_eq!(BenchConfig::parse("XL"), None);
        let s = BenchConfig::S.spec();
        assert_eq!((s.shape.width, s.shape.depth, s.batch), (64, 3, 256));
        // S: 3·64 + 2·64·64 + 64·2 = 8512 MACs per sample; 6·256·8512 FLOP per step.
        assert_eq!(s.shape.macs_per_sample(), 8512);
        let l = BenchConfig::L.spec();
        assert_eq!(l.shape.macs_per_sample(), 3 * 512 + 3 * 512 * 512 + 512 * 2);
        assert_eq!(l.adam.lr, 1e-3);
    }
}
