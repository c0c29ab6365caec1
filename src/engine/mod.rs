//! The one interface the page (and the widget) runs on: [`Engine`], implemented by the WebGPU
//! engine ([`GpuEngine`]: trainer, samplers, density and renderer on one device) and by the CPU
//! reference ([`CpuEngine`]: the same maths in plain Rust, drawn through a [`Painter`]).
//!
//! The page never asks which one it has: training, the status read, reconfiguration, snapshots,
//! samples, sample quality, the solver comparison, the density and the frame all go through the
//! trait. Nothing here touches the browser: the GPU engine draws through a [`GpuPresenter`] and the
//! CPU engine through a [`Painter`], which `src/web/present.rs` implements over the canvas and the
//! native tests implement offscreen (`tests/engine.rs` runs one suite against both backends).
//!
//! Asynchronous results are `'static` futures that own what they need ([`EngineFuture`]): the page
//! keeps training while a read is in flight. On the GPU they are buffer reads; on the CPU, work that
//! would take longer than a frame (quality, comparison, density) is queued as a [`jobs::Jobs`] entry
//! and done a slice per [`Engine::frame`] within a time budget, so it never freezes the page.

pub mod cpu;
pub mod exact_flow;
pub mod flow;
pub mod gpu;
pub mod gpu_time;
pub mod jobs;
pub mod notes;
pub mod painter;
pub mod present;
pub mod quality;

pub use cpu::CpuEngine;
pub use crate::gpu::{FaultKind, GpuFault};
pub use gpu::GpuEngine;
pub use painter::Painter;
pub use present::{GpuPresenter, OffscreenPresenter};
pub use quality::QualityPoint;
pub use crate::cpu::flow_stats::FlowStats;
pub use crate::cpu::reflow::Pairs;

use crate::config::{Config, Effect, Solver};
use crate::gpu::snapshot::Snapshot;
use crate::gpu::trainer::TrainStatus;
use crate::model_file::ModelFile;
use crate::render::{Layers, Viewport};
use std::future::Future;
use std::pin::Pin;

/// A result that arrives later. Not `Send` (the web is single-threaded); `'static`: it owns what it
/// needs, so the engine can keep training (or be replaced) while it is pending. Errors are messages
/// a person can act on.
pub type EngineFuture<T> = Pin<Box<dyn Future<Output = Result<T, String>>>>;

/// A future that is already resolved.
pub fn ready<T: 'static>(v: Result<T, String>) -> EngineFuture<T> {
    Box::pin(std::future::ready(v))
}

/// What one animation frame shows.
#[derive(Clone, Copy, Debug)]
pub struct FrameInput {
    /// Seconds (monotonic).
    pub now: f64,
    /// The flow time shown, in [0, 1].
    pub t: f32,
    /// The flow loop restarted this frame (a good moment to show the newest model).
    pub wrapped: bool,
    pub layers: Layers,
    pub viewport: Viewport,
    /// Particle diameter in device pixels.
    pub point_px: f32,
    /// Milliseconds of the caller's thread this frame may spend on background work (the CPU
    /// engine's quality, comparison and density jobs; the GPU engine queues such work instead).
    pub work_ms: f64,
}

/// What the page shows about the backend.
#[derive(Clone, Debug, PartialEq)]
pub struct EngineInfo {
    /// `"webgpu"` or `"cpu"` (`state().backend`).
    pub backend: &'static str,
    /// The adapter in words.
    pub adapter: String,
    /// A CPU-emulated adapter or the CPU backend.
    pub software: bool,
    /// How frames reach the canvas: `"surface"`, `"readback"`, `"canvas2d"` or `"offscreen"`.
    pub present: &'static str,
}

/// The training engine behind the page: one model, its samples and how they are drawn.
pub trait Engine {
    fn info(&self) -> EngineInfo;

    // ---- training -----------------------------------------------------------------------------

    /// Steps taken or queued (the next step's number).
    fn step(&self) -> u32;
    /// Steps known to be finished (GPU: confirmed by the queue's completion signal; CPU: all).
    fn done(&self) -> u32;
    /// Seconds from queueing work to its completion signal, recently (0 on the CPU).
    fn latency_s(&self) -> f64;
    /// Queues (GPU) or runs (CPU) `n` training steps.
    fn train(&mut self, n: u32);
    /// The losses of steps `since..step()` (at most the last `LOSS_RING`) and the first step that
    /// went non-finite, read without ever waiting inside a frame.
    fn status(&mut self, since: u32) -> EngineFuture<TrainStatus>;

    // ---- the model ----------------------------------------------------------------------------

    /// Moves to configuration `c`, doing only what `effect` needs (a new model, new samples, or a
    /// live setting such as the learning rate or the solver). On error nothing changes.
    fn apply(&mut self, c: &Config, effect: Effect) -> Result<(), String>;
    /// Fresh weights for `seed`, step 0 (same seed → same run).
    fn reset(&mut self, seed: u32);
    /// Trains on `points` from now on, keeping the weights (the flow morphs to them).
    fn set_target(&mut self, points: &[[f32; 2]]) -> Result<(), String>;
    /// As [`Engine::set_target`] with the class of each point, for a class-conditional model
    /// (a drawing's brush colours, a dataset's labels). An engine without conditional models
    /// refuses labels it would have to drop.
    fn set_target_labeled(&mut self, points: &[[f32; 2]], labels: &[u32]) -> Result<(), String> {
        if labels.is_empty() {
            self.set_target(points)
        } else {
            Err("class labels need a class-conditional model, which needs the WebGPU backend".into())
        }
    }
    /// Puts `params` (packed, `model.rs` layout) in place at step `step`; Adam restarts.
    fn load(&mut self, params: &[f32], step: u32) -> Result<(), String>;
    /// Puts a model file's training state in place (parameters and, when it has them, Adam's
    /// moments, step and the schedule's start: `ModelFile::resume_state`), so training continues
    /// as if never saved. The file must be for this network shape; on error nothing changes.
    fn load_model(&mut self, file: &ModelFile) -> Result<(), String>;
    /// The training state (parameters, Adam's moments, step, schedule start) as a model file
    /// for `config`, all of one moment.
    fn model_file(&self, config: Config) -> EngineFuture<ModelFile>;
    /// The step the learning-rate schedule counts from (a model file records it).
    fn schedule_start(&self) -> u32;
    /// Moves the learning-rate schedule's start to `step`: the current step for the page's Train
    /// more after a run has ended, or the old engine's start when a run moves to another engine.
    /// Weights, Adam's moments and the step count are kept.
    fn set_schedule_start(&mut self, step: u32);
    fn params(&self) -> EngineFuture<Vec<f32>>;
    /// Parameters, Adam moments, step and divergence flag, all of one moment.
    fn snapshot(&self) -> EngineFuture<Snapshot>;
    /// Back to `s`; training continues exactly as it would have from there.
    fn restore(&mut self, s: &Snapshot) -> Result<(), String>;

    // ---- what is shown ------------------------------------------------------------------------

    /// The step whose weights the shown flow was integrated with (None: not yet).
    fn shown_step(&self) -> Option<u32>;
    /// Recorded steps of the shown flow.
    fn ode_steps(&self) -> u32;
    /// While frozen (after a divergence) the shown flow is not integrated again.
    fn set_frozen(&mut self, frozen: bool);
    /// Where the shown particles end (t = 1); an error before the first integration.
    fn samples(&self) -> EngineFuture<Vec<[f32; 2]>>;
    /// The step the density heat map was last computed for.
    fn heatmap_step(&self) -> Option<u32>;

    // ---- measurements -------------------------------------------------------------------------

    /// Sliced W2 between `quality::QUALITY_SAMPLES` fresh samples (integrated with `solver` in
    /// `steps` steps, dopri5: budget, at tolerance `tol`) of the current weights and the target.
    fn sample_quality(&mut self, solver: Solver, steps: u32, tol: f32) -> EngineFuture<QualityPoint>;
    /// Sliced W2 against field evaluations for every solver (`quality::comparison_plan`).
    fn compare_solvers(&mut self) -> EngineFuture<Vec<QualityPoint>>;
    /// How straight the current model's flow is: kinetic energy, transport cost, straightness and
    /// minibatch W2² (`cpu::flow_stats`) of `quality::QUALITY_SAMPLES` fresh samples (the probe's
    /// starting draw) integrated with `cpu::flow_stats::measured_steps(solver, nfe)` fixed steps
    /// of `solver`, through a copy of the current weights (training goes on meanwhile). Without
    /// `w2` the minibatch matching is skipped (seconds on a software adapter) and W2² is NaN.
    fn flow_stats(&mut self, solver: Solver, nfe: u32, w2: bool) -> EngineFuture<FlowStats>;
    /// The field error `E_{t, x_t} |v_θ(x_t, t) - u_t(x_t)|²` of the current weights against the
    /// exact marginal field of the training target (`cpu::exact`), over `quality::FIELD_ERROR_QUERIES`
    /// queries of reading `reading`. Gaussian source only (the exact field's weights are its density).
    fn field_error(&mut self, reading: u32) -> EngineFuture<f64>;
    /// `log p` of each point under the current weights (reverse ODE, `steps` steps of `solver`).
    fn log_density(&mut self, points: Vec<[f32; 2]>, solver: Solver, steps: u32) -> EngineFuture<Vec<f32>>;

    // ---- reflow (Liu, Gong and Liu 2022, "Flow Straight and Fast", arXiv 2209.03003) ----------

    /// `n` starting points drawn with `seed` from the source (`cpu::ode::initial_particles_from`,
    /// the GPU sampler's `reset`) and where `steps` steps of `solver` (dopri5: adaptive, `steps`
    /// its evaluation budget at tolerance `tol`) carry them through a copy of the current
    /// weights: `(x0, x1)`, reflow's pairs (`cpu::reflow`) or a one-step preview. Runs in the
    /// chunks of the work budget (GPU) or as a job a slice per frame (CPU); training goes on.
    fn integrate_fresh(&mut self, seed: u32, n: u32, solver: Solver, steps: u32, tol: f32) -> EngineFuture<Pairs>;
    /// From the next step on, batches draw the fixed pairs `(x0[k], x1[k])` (reflow; weights,
    /// Adam moments and the step are kept, the learning-rate schedule restarts, as with a new
    /// target), or independent noise and target points again (`None`). On error nothing changes.
    fn set_pairs(&mut self, pairs: Option<&Pairs>) -> Result<(), String>;
    /// Why the exact field's arrows (layer `exact`) are not drawn, when they are on and are not
    /// (a dataset source, more target points than a frame's work allows).
    fn exact_field_note(&self) -> Option<String> {
        None
    }
    /// The flow time the exact field's arrows now drawn are for (None: none computed yet).
    fn exact_field_t(&self) -> Option<f32>;
    /// The exact flow (layer `exactflow`, `exact_flow`): its progress and landed count, or why
    /// it is not drawn; None until the layer was first shown for these particles and target.
    fn exact_flow(&self) -> Option<exact_flow::ExactFlowState>;

    // ---- frames -------------------------------------------------------------------------------

    /// Brings the shown flow, arrows and heat map up to date (within budget) and draws.
    fn frame(&mut self, f: &FrameInput);
    /// The canvas' size in device pixels.
    fn resize(&mut self, width: u32, height: u32);
    /// Frames whose pixels reached the canvas.
    fn frames_presented(&self) -> f64;
    /// Units of work known finished (GPU: submissions whose completion signal arrived; CPU: steps
    /// run and frames painted). It moves while the engine makes progress, however slowly: the
    /// page's tests wait on it to tell a slow machine from a stuck page (`state().workDone`).
    fn work_done(&self) -> u64;
    /// Device milliseconds per unit of each kind of work, where measured (diagnostics: `state().gpuMs`).
    fn costs(&self) -> Vec<(&'static str, f64)> {
        Vec::new()
    }
    /// Device seconds spent on each kind of work so far, where measured (diagnostics:
    /// `state().gpuBusyS`; the benchmark turns two readings into the device's shares).
    fn busy(&self) -> Vec<(&'static str, f64)> {
        Vec::new()
    }
    /// Whether a periodic reading (the quality card's, the one-step preview) may start now: the
    /// GPU engine keeps them to their share of the device (`gpu_time::ReadingBudget`); the CPU
    /// engine's readings run as jobs within the frame's budget, so always.
    fn reading_allowed(&self) -> bool {
        true
    }

    // ---- the device ---------------------------------------------------------------------------

    /// The device for the work budget (`budget::check`): its limits and rates, so the page can
    /// refuse a configuration before anything is allocated or dispatched.
    fn profile(&self) -> crate::budget::Profile;
    /// The device this engine runs on was lost (never on the CPU).
    fn device_lost(&self) -> bool;
    /// The next GPU error the device reported for this engine, once (never on the CPU): a build
    /// (a new model or new samples) the device could not allocate or refused — the engine has
    /// then gone back to what it had before, where it had something — or an error no error scope
    /// caught. Called once per frame; a burst of errors is one report.
    fn gpu_fault(&mut self) -> Option<FaultReport> {
        None
    }
    /// Builds are waiting for the device's check (`gpu_fault` may still report one of them).
    fn checking(&self) -> bool {
        false
    }
    /// `train` runs the steps on the caller's thread (the CPU engine) rather than queueing them
    /// on a device: the page then fits its training budget to the frame (`Pacer::fit_frame`).
    fn trains_on_caller_thread(&self) -> bool {
        false
    }
}

/// A GPU error as the page sees it (`Engine::gpu_fault`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FaultReport {
    pub fault: crate::gpu::GpuFault,
    /// What the engine was doing: building the model or new samples (a build's own error
    /// scopes caught it), or None (an uncaptured error: something else).
    pub during: Option<Build>,
    /// The build failed and the engine went back to the model and samples it had before it.
    pub reverted: bool,
    /// The build failed and there was nothing to go back to: the engine's model is unusable
    /// (the page rebuilds it with other settings).
    pub broken: bool,
}

/// What a checked build made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Build {
    /// A model (trainer, samplers) for a configuration.
    Model,
    /// New shown particles (their count or steps changed).
    Samples,
}

/// What a configuration change does to a live engine: `config::Config::change_effect` plus the
/// cross-field check. `Ok(None)` when nothing changed.
pub fn change(old: &Config, next: &Config) -> Result<Option<Effect>, String> {
    next.check_solver().map_err(|e| e.to_string())?;
    next.check_generation().map_err(|e| e.to_string())?;
    Ok(old.change_effect(next))
}
