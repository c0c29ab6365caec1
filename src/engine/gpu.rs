//! The WebGPU engine: trainer, the shown flow's sampler, the arrow grid's sampler, the density
//! heat map and the renderer on one device, drawing through a [`GpuPresenter`].
//!
//! Training only queues work (`GpuTrainer::train`); after each submit a completion callback
//! (`Queue::on_submitted_work_done`, WebGPU's `onSubmittedWorkDone`) advances the count of steps
//! known done (`gpu_time`). That signal, not a buffer read, tells the page's loop how much to
//! queue (`web::pacing`); losses and the divergence flag are read with detached futures that never
//! gate anything. The same signal measures the device time of every kind of drawing work, which
//! is kept to a share of the device so training gets the rest (`GpuEngine::share`): the shown
//! trajectories are integrated again when the model moved on and their refresh interval passed,
//! the arrow grid is evaluated when arrows are on, the heat map recomputed when shown, frames
//! presented; each frame is recorded straight from the engine's buffers.
//!
//! The long integrations (the shown flow, the heat map, the sample-quality probe and the solver
//! comparison, `log_density`) run in the chunks of the work budget (`budget::ChunkPlan`, sized by
//! `Engine::profile`'s per-particle rate so that no dispatch is estimated above
//! `TimeLimits::chunk_s`): the frame queues the next chunk only once the previous one is done
//! (`gpu::chunked::Done`), and the asynchronous reads await each chunk (`gpu::chunked::queue_done`)
//! — nothing waits inside a frame. The shown flow's end positions are copied into their own buffer
//! when its last chunk is queued, so `samples` never reads an integration in progress.
//!
//! GPU errors reach the page (`Engine::gpu_fault`): every build (a new model, new shown
//! particles) runs inside the device's out-of-memory and validation error scopes
//! (`GpuContext::checked`), and what it replaced is kept until the device has checked it; a build
//! the device could not allocate or refused is swapped back for what was there before. Errors no
//! scope caught come from the context's log (`gpu::ErrorLog`), each burst reported once.

use super::flow::{heat_interval, integrate_due, refresh_interval, traj_steps, train_flops, training_data, training_labels, ARROW_GRID, TARGET_DRAWN, TARGET_DRAWN_SOFTWARE};
use super::quality::{class_points, comparison_plan, finite, Probe, QualityPoint, DIRECTIONS, field_error_fits, FIELD_ERROR_CHUNK, FIELD_ERROR_QUERIES, NO_EXACT_FIELD, PROBE_SEED, QUALITY_SAMPLES};
use super::gpu_time::{GpuTime, ReadingBudget, Work};
use super::{Build, Engine, EngineFuture, EngineInfo, FaultReport, FlowStats, FrameInput, GpuPresenter, Pairs};
use crate::cpu::flow_stats::measured_steps;
use crate::gpu::flow_stats::GpuFlowStats;
use crate::gpu::sampler::flops_per_particle_step;
use crate::budget::Profile;
use crate::config::{Config, Effect, Objective, Sampler, Solver};
use crate::cpu::sde::SdeSpec;
use crate::cpu::time::TimeDist;
use crate::gpu::chunked::Done;
use crate::gpu::density::DensityJob;
use crate::gpu::sampler::Integration;
use crate::gpu::trainer::TrainerOptions;
use crate::model::Query;
use crate::gpu::snapshot::Snapshot;
use crate::gpu::trainer::TrainStatus;
use crate::model_file::ModelFile;
use crate::gpu::{counter, BuildCheck, GpuContext, GpuDensity, GpuError, GpuQuality, GpuSampler, GpuTrainer};
use crate::render::heatmap::{cell_centres, HEAT_GRID};
use crate::render::FlowRenderer;
use crate::spec::TrainSpec;

fn err(e: GpuError) -> String {
    e.to_string()
}

/// The particles shown on the canvas: their sampler (with the whole trajectory recorded) and when
/// they were last integrated.
struct Shown {
    sampler: GpuSampler,
    /// Recorded ODE steps.
    steps: u32,
    solver: Solver,
    /// ODE with `solver`, the SDE, or MeanFlow's jumps (`Stepping::of`).
    stepping: Stepping,
    /// Trainer step of the weights they were integrated with.
    step: Option<u32>,
    last: f64,
    refresh_s: f64,
    /// After a divergence: not integrated again (no NaN particles).
    frozen: bool,
    /// An integration in progress: its chunks, the chunk queued last, the trainer step.
    job: Option<(Integration, Done, u32)>,
    /// Chunks of the last integration (its device time is theirs together).
    chunks: u32,
    /// The end positions of the last complete integration (`samples` reads them).
    samples: wgpu::Buffer,
    _samples: counter::Owned,
}

/// How the shown particles move: the ODE with the configured solver, Euler–Maruyama steps of the
/// SDE with the same marginals (`sampler=sde`), or a MeanFlow model's jumps (`objective=meanflow`).
#[derive(Clone, Copy, Debug, PartialEq)]
enum Stepping {
    Ode,
    Sde(SdeSpec),
    MeanFlow,
}

impl Stepping {
    fn of(c: &Config) -> Self {
        if c.objective == Objective::MeanFlow {
            Stepping::MeanFlow
        } else if c.sampler == Sampler::Sde {
            Stepping::Sde(SdeSpec { path: c.path, sigma_min: c.sigma_min, noise: c.noise })
        } else {
            Stepping::Ode
        }
    }
}

/// The class and guidance weight a config samples with.
fn query(c: &Config) -> Query {
    Query { class: c.class.index(), guidance: c.guidance }
}

/// The velocity arrows: a sampler over the grid anchors; one Euler step of size 1 leaves
/// `a + v(a, t)` in its particle buffer.
struct Arrows {
    sampler: GpuSampler,
    key: Option<(u32, f32)>,
    last: f64,
}

/// The exact marginal field's arrows (layer `exact`): `GpuExactField` over the trainer's target
/// (built when first shown, dropped when the target or the model changes), computed for a
/// (t, extent) in chunks of anchors of the work budget, each queued once the previous one is
/// done; after the last chunk the results are copied into `shown`, which the renderer draws, so
/// the picture is always one whole grid. `note`: why it is not drawn.
#[derive(Default)]
struct ExactArrows {
    field: Option<crate::gpu::exact::GpuExactField>,
    shown: Option<(wgpu::Buffer, counter::Owned)>,
    /// Anchors per dispatch.
    chunk: u32,
    /// The (t, extent) `shown` holds.
    key: Option<(f32, f32)>,
    /// A computation in progress: its (t, extent), the next anchor, the chunk queued last.
    job: Option<((f32, f32), u32, Done)>,
    last: f64,
    note: Option<String>,
}

/// The exact flow (layer `exactflow`, `engine::exact_flow`): the shown particles' starting draw
/// (a sampler reset with the same seed) carried by the exact field of the trainer's target with
/// the shown flow's solver and steps, one particle chunk of the work budget per dispatch, the
/// next queued once the previous one is done and the device has had its share of time for
/// training. Built when first shown; forgotten when the target, the model or the shown
/// particles change. Then the end positions are read once, for the landed count.
struct ExactFlowRun {
    field: crate::gpu::exact::GpuExactField,
    sampler: GpuSampler,
    flow: crate::gpu::exact::GpuExactFlow,
    solver: Solver,
    steps: u32,
    /// Particles per dispatch, and (when that is all of them) steps per submit.
    chunk: u32,
    steps_per_chunk: u32,
    /// The (step, first particle) queued next, and the chunk queued last.
    next: (u32, u32),
    done: Done,
    last: f64,
    /// The end positions' read, once every step is queued; then the landed count.
    reading: Option<EngineFuture<Vec<f32>>>,
    landed: Option<(u32, u32)>,
}

/// The density heat map: its evaluator (built when first shown) and the (step, time) it was
/// last computed.
#[derive(Default)]
struct Heat {
    density: Option<GpuDensity>,
    at: Option<(u32, f64)>,
    /// A computation in progress: its chunks, the chunk queued last, (step, time) it is for.
    job: Option<(DensityJob, Done, (u32, f64))>,
    /// Chunks of the last computation.
    chunks: u32,
}

/// The WebGPU engine (see the module docs).
pub struct GpuEngine {
    ctx: GpuContext,
    presenter: Box<dyn GpuPresenter>,
    renderer: FlowRenderer,
    trainer: GpuTrainer,
    /// Source points of x0 (empty: N(0, I)).
    source: Vec<[f32; 2]>,
    /// The target's points and (conditional models) their class labels, on the CPU: the quality
    /// probe measures a chosen class against that class's points alone.
    target: Vec<[f32; 2]>,
    labels: Vec<u32>,
    /// The class and guidance the shown flow, the heat map and the probe follow.
    query: Query,
    tol: f32,
    shown: Shown,
    arrows: Arrows,
    exact: ExactArrows,
    /// The exact flow (layer `exactflow`), or why it is not drawn.
    exact_flow: Result<Option<ExactFlowRun>, String>,
    heat: Heat,
    /// Device time per kind of work, and training steps confirmed done (`gpu_time`).
    time: GpuTime,
    /// The device time the readings may take (`Engine::reading_allowed`).
    readings: ReadingBudget,
    /// When a frame was last presented.
    last_frame: f64,
    /// When training steps were last submitted (`jobs::now_ms`), for `training_idle`.
    last_train_ms: f64,
    /// Builds so far (the latest's number) and the error checks still pending: (build, what, check).
    builds: u32,
    checks: Vec<(u32, Build, BuildCheck)>,
    /// What the latest build replaced, kept until the device has checked that build, with the
    /// `(model_build, shown_build)` it came from.
    previous: Option<(u32, Previous, (u32, u32))>,
    /// The builds the current model and the current shown particles came from.
    model_build: u32,
    shown_build: u32,
    /// Uncaptured errors of the device already reported (`gpu::ErrorLog::since`).
    errors_seen: u64,
    /// After a failed build: an empty error scope popped then. The device reports errors in the
    /// order of the work, so errors no scope caught that arrive before it resolves come from work
    /// queued on the failed build before it was swapped back (training, drawing, reads on its
    /// invalid buffers): part of that failure, not reported again.
    fence: Option<BuildCheck>,
}

/// The model and everything built on its buffers (what `retrain` replaces at once).
struct ModelParts {
    trainer: GpuTrainer,
    source: Vec<[f32; 2]>,
    labels: Vec<u32>,
    target: Vec<[f32; 2]>,
    query: Query,
    arrows: Arrows,
    heat: Heat,
    shown: Shown,
}

/// What a build replaced.
enum Previous {
    Model(Box<ModelParts>),
    Samples(Box<Shown>),
}

impl GpuEngine {
    /// The model, samplers and renderer for `c` on `ctx`, drawing through `presenter`. Fails with
    /// a message (naming what does not fit) before allocating anything too large.
    pub fn new(ctx: GpuContext, c: &Config, presenter: Box<dyn GpuPresenter>) -> Result<Self, String> {
        let (data, source) = training_data(c);
        let (built, check) = ctx.checked(|| -> Result<_, String> {
            let trainer = Self::new_trainer(&ctx, c, &data, &source)?;
            let renderer = FlowRenderer::new(&ctx.device, &ctx.queue, presenter.format());
            let arrows = Self::new_arrows(&ctx, &trainer, c)?;
            let shown = Self::new_shown(&ctx, &trainer, &source, c)?;
            Ok((trainer, renderer, arrows, shown))
        });
        let (trainer, mut renderer, arrows, shown) = built?;
        renderer.set_flow(&shown.sampler.traj, &shown.sampler.origins, shown.sampler.len(), shown.steps);
        renderer.set_target(&trainer.data, Self::target_drawn(&ctx).min(data.len() as u32));
        renderer.set_field(&arrows.particles, ARROW_GRID);
        let errors_seen = ctx.errors.count();
        let mut engine = GpuEngine {
            ctx,
            presenter,
            renderer,
            trainer,
            source,
            labels: training_labels(c),
            target: data,
            query: query(c),
            tol: c.tol,
            shown,
            arrows: Arrows { sampler: arrows, key: None, last: f64::NEG_INFINITY },
            exact: ExactArrows::default(),
            exact_flow: Ok(None),
            heat: Heat::default(),
            time: GpuTime::default(),
            readings: ReadingBudget::default(),
            last_frame: f64::NEG_INFINITY,
            last_train_ms: f64::NEG_INFINITY,
            builds: 1,
            checks: vec![(1, Build::Model, check)],
            previous: None,
            model_build: 1,
            shown_build: 1,
            errors_seen,
            fence: None,
        };
        engine.shown.refresh_s = engine.refresh_interval();
        Ok(engine)
    }

    /// The trainer for `c` (with the target's class labels when conditional).
    fn new_trainer(ctx: &GpuContext, c: &Config, data: &[[f32; 2]], source: &[[f32; 2]]) -> Result<GpuTrainer, String> {
        GpuTrainer::with_labels(ctx, TrainSpec::from_config(c), data, &training_labels(c), source, TrainerOptions::default()).map_err(err)
    }

    /// The arrow grid's sampler (following the config's class and guidance).
    fn new_arrows(ctx: &GpuContext, trainer: &GpuTrainer, c: &Config) -> Result<GpuSampler, String> {
        let mut arrows = GpuSampler::new(ctx, &trainer.spec.shape, &trainer.params, ARROW_GRID * ARROW_GRID, 0).map_err(err)?;
        arrows.set_query(query(c));
        Ok(arrows)
    }

    fn target_drawn(ctx: &GpuContext) -> u32 {
        if ctx.adapter.is_software() { TARGET_DRAWN_SOFTWARE } else { TARGET_DRAWN }
    }

    fn new_shown(ctx: &GpuContext, trainer: &GpuTrainer, source: &[[f32; 2]], c: &Config) -> Result<Shown, String> {
        let steps = traj_steps(c.nfe, c.particles, ctx.limits.max_storage_buffer_binding_size);
        let mut sampler = GpuSampler::new_with_source(ctx, &trainer.spec.shape, &trainer.params, c.particles, steps, source).map_err(err)?;
        sampler.reset(c.seed);
        sampler.set_tol(c.tol)?;
        sampler.set_query(query(c));
        let samples = ctx.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("shown.samples"),
            size: sampler.len() as u64 * 8,
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let owned = counter::Owned::new(&[&samples]);
        Ok(Shown { sampler, steps, solver: c.solver, stepping: Stepping::of(c), step: None, last: f64::NEG_INFINITY, refresh_s: 1.0, frozen: false, job: None, chunks: 1, samples, _samples: owned })
    }

    /// The device as the work budget sees it: its limits, the software or GPU priors, and the
    /// measured training rate where it is higher than the prior (a small model's measured rate
    /// says little about a larger one's, so it only ever admits more).
    fn budget_profile(&self) -> Profile {
        let p = Profile::for_context(&self.ctx);
        match self.measured_flops() {
            Some(measured) if measured > p.train_flops => p.with_rates(measured, 0.0),
            _ => p,
        }
    }

    /// The training rate measured from the device time of recent steps (FLOP/s), if any.
    fn measured_flops(&self) -> Option<f64> {
        let spec = &self.trainer.spec;
        self.time.per_unit(Work::Train).map(|s| train_flops(spec.batch, spec.shape.macs_per_sample()) / s.max(1e-9))
    }

    /// Advances the shown flow's integration: queues its next chunk once the previous one is
    /// done, or starts a new integration when one is due.
    fn advance_shown(&mut self, f: &FrameInput, step: u32) {
        let profile = self.budget_profile();
        let queue = self.ctx.queue.clone();
        let s = &mut self.shown;
        if s.job.is_none() {
            if !integrate_due(s.frozen, s.step, step, f.wrapped, f.now - s.last, s.refresh_s) {
                return;
            }
            s.sampler.rewind();
            // The SDE and MeanFlow step like Euler: one field evaluation per step and particle.
            let plan_solver = if s.stepping == Stepping::Ode { s.solver } else { Solver::Euler };
            let plan = s.sampler.chunk_plan(plan_solver, s.steps, profile.sample_flops, profile.limits.chunk_s);
            s.chunks = plan.len().min(u32::MAX as usize) as u32;
            let job = match s.stepping {
                Stepping::Ode => s.sampler.begin(s.solver, 0.0, 1.0, s.steps, plan),
                Stepping::Sde(sde) => s.sampler.begin_sde(sde, 0.0, 1.0, s.steps, plan),
                Stepping::MeanFlow => s.sampler.begin_mean_flow(0.0, 1.0, s.steps, plan),
            };
            s.job = Some((job, Done::ready(), step));
            s.last = f.now;
        }
        let Some((job, done, at)) = s.job.as_mut() else { return };
        if !done.is_done() {
            return;
        }
        if s.sampler.advance(job) {
            self.time.submitted(&queue, Work::Integrate, 1);
            *done = Done::watch(&queue);
        }
        if job.is_done() {
            // The end positions, copied after the last chunk (queue order), for `samples`.
            let mut encoder = self.ctx.device.create_command_encoder(&Default::default());
            encoder.copy_buffer_to_buffer(&s.sampler.particles, 0, &s.samples, 0, s.samples.size());
            queue.submit([encoder.finish()]);
            s.step = Some(*at);
            s.job = None;
        }
    }

    /// Forgets the shown flow's integration in progress (the weights or particles changed).
    fn restart_shown(&mut self) {
        self.shown.step = None;
        self.shown.job = None;
    }

    /// The context (device and queue) this engine runs on.
    pub fn context(&self) -> &GpuContext {
        &self.ctx
    }

    /// The trainer (tests, benchmarks).
    pub fn trainer(&self) -> &GpuTrainer {
        &self.trainer
    }

    /// The heat map's last computed log p, one per cell of `render::heatmap::cell_centres` (tests:
    /// it must be the density of the flow shown). None before the heat map was first shown.
    pub fn heatmap_log_p(&self) -> Option<EngineFuture<Vec<f32>>> {
        let d = self.heat.density.as_ref()?;
        let (ctx, buf) = (self.ctx.clone(), d.log_p_buffer().clone());
        Some(Box::pin(async move { crate::gpu::readback::read_f32(&ctx, &buf, 0, (HEAT_GRID * HEAT_GRID) as u64).await.map_err(err) }))
    }

    /// The device's throughput for the model's kind of work (FLOP/s): from the measured time of a
    /// training step where there is one, else a guess by adapter type.
    fn flops_per_s(&self) -> f64 {
        match self.measured_flops() {
            Some(measured) => measured,
            None if self.ctx.adapter.is_software() => 0.05e9,
            None => 200e9,
        }
    }

    /// The share of the device a kind of drawing work may take. On a software adapter (the
    /// device is the CPU) drawing is dear and training should keep most of it: a tenth each for
    /// refreshing the shown flow and for frames, a twentieth for arrows and the heat map. A real
    /// GPU draws a frame in well under a millisecond; its shares hardly matter.
    ///
    /// While training is idle (paused, at its step limit, or nothing queued for a second) drawing
    /// competes with nothing, and each share is five times larger, at most a half: a frame that
    /// costs seconds on a loaded software adapter must not leave the canvas still for a minute.
    fn share(&self, work: Work) -> f64 {
        let software = self.ctx.adapter.is_software();
        let share: f64 = match work {
            Work::Integrate | Work::Frame if software => 0.1,
            Work::Arrows | Work::Heat | Work::ExactFlow if software => 0.05,
            // All readings together (a sliced-W2 reading at the page's defaults costs ~2 s of
            // SwiftShader: one every ~40 s while training, each 2-5 s while paused). On a
            // software adapter every share is taken from training on the same cores, and the
            // drawing's 0.1 + 0.1 already hold training to at most 0.8 of the device.
            Work::Reading if software => 0.05,
            Work::Integrate | Work::Frame => 0.2,
            Work::Reading => 0.1,
            Work::Arrows | Work::Heat | Work::ExactFlow | Work::Train => 0.1,
        };
        if self.training_idle() {
            (5.0 * share).min(0.5)
        } else {
            share
        }
    }

    /// No training steps queued and none submitted for the last second.
    fn training_idle(&self) -> bool {
        self.time.backlog() == 0 && super::jobs::now_ms() - self.last_train_ms > 1000.0
    }

    /// Seconds between refreshes of the shown flow, from the measured cost of the last refresh
    /// (or the model's FLOPs before one was measured), 0.3 s to 60 s.
    fn refresh_interval(&self) -> f64 {
        let s = &self.shown;
        let estimate = refresh_interval(s.sampler.len(), s.steps, s.solver.evals_per_step(), self.trainer.spec.shape.macs_per_sample(), self.flops_per_s());
        self.time.interval(Work::Integrate, s.chunks, self.share(Work::Integrate), estimate).clamp(0.3, 60.0)
    }

    /// A new model for `c` (shape, data, batch, path, ... changed); on error nothing changes. The
    /// model it replaces is kept until the device has checked the new one (`gpu_fault`).
    fn retrain(&mut self, c: &Config) -> Result<(), String> {
        let (data, source) = training_data(c);
        let ctx = self.ctx.clone();
        let (built, check) = ctx.checked(|| -> Result<_, String> {
            let trainer = Self::new_trainer(&ctx, c, &data, &source)?;
            let arrows = Self::new_arrows(&ctx, &trainer, c)?;
            let shown = Self::new_shown(&ctx, &trainer, &source, c)?;
            Ok((trainer, arrows, shown))
        });
        let (trainer, arrows, shown) = built?;
        let parts = ModelParts {
            trainer,
            source,
            labels: training_labels(c),
            target: data,
            query: query(c),
            arrows: Arrows { sampler: arrows, key: None, last: f64::NEG_INFINITY },
            heat: Heat::default(),
            shown,
        };
        let old = self.swap_model(parts);
        let from = (self.model_build, self.shown_build);
        let id = self.checked_build(Build::Model, check);
        self.model_build = id;
        self.shown_build = id;
        self.previous = Some((id, Previous::Model(Box::new(old)), from));
        Ok(())
    }

    /// Records a build's error check; returns the build's number.
    fn checked_build(&mut self, what: Build, check: BuildCheck) -> u32 {
        self.builds += 1;
        self.checks.push((self.builds, what, check));
        self.builds
    }

    /// Puts `m` in place of the current model (the renderer drawing from its buffers) and
    /// returns the model it replaced.
    fn swap_model(&mut self, mut m: ModelParts) -> ModelParts {
        self.readings.new_model();
        std::mem::swap(&mut self.trainer, &mut m.trainer);
        std::mem::swap(&mut self.source, &mut m.source);
        std::mem::swap(&mut self.labels, &mut m.labels);
        std::mem::swap(&mut self.target, &mut m.target);
        std::mem::swap(&mut self.query, &mut m.query);
        std::mem::swap(&mut self.arrows, &mut m.arrows);
        std::mem::swap(&mut self.heat, &mut m.heat);
        std::mem::swap(&mut self.shown, &mut m.shown);
        // The exact arrows belong to the target that was swapped out.
        self.forget_exact();
        self.set_shown_bindings();
        self.renderer.set_target(&self.trainer.data, Self::target_drawn(&self.ctx).min(self.target.len() as u32));
        self.renderer.set_field(&self.arrows.sampler.particles, ARROW_GRID);
        if let Some(d) = &self.heat.density {
            self.renderer.set_heatmap(d.log_p_buffer());
        }
        m
    }

    /// The renderer draws the current shown particles (the exact flow, which follows their
    /// starting draw, count and steps, is made again).
    fn set_shown_bindings(&mut self) {
        let s = &self.shown;
        self.renderer.set_flow(&s.sampler.traj, &s.sampler.origins, s.sampler.len(), s.steps);
        self.forget_exact_flow();
    }

    /// The next build whose check came back with an error (the build swapped back for what it
    /// replaced when it is the latest), dropping what a build replaced once it checked clean.
    fn failed_build(&mut self) -> Option<FaultReport> {
        let waker = std::task::Waker::noop();
        let mut cx = std::task::Context::from_waker(waker);
        let mut i = 0;
        while i < self.checks.len() {
            let std::task::Poll::Ready(result) = self.checks[i].2.as_mut().poll(&mut cx) else {
                i += 1;
                continue;
            };
            let (id, what, _) = self.checks.remove(i);
            let replaced = matches!(&self.previous, Some((p, _, _)) if *p == id);
            let Some(fault) = result else {
                if replaced {
                    self.previous = None;
                }
                continue;
            };
            let reverted = replaced;
            if let Some((_, previous, from)) = self.previous.take().filter(|_| replaced) {
                (self.model_build, self.shown_build) = from;
                match previous {
                    Previous::Model(m) => {
                        drop(self.swap_model(*m));
                    }
                    Previous::Samples(shown) => {
                        self.shown = *shown;
                        self.set_shown_bindings();
                    }
                }
            }
            let broken = !reverted && (self.model_build == id || self.shown_build == id);
            self.fence = Some(self.ctx.checked(|| ()).1);
            return Some(FaultReport { fault, during: Some(what), reverted, broken });
        }
        None
    }

    /// Samples, solver or tolerance changed: new particles when their count or steps changed,
    /// else the same particles integrated again.
    fn resample(&mut self, c: &Config) -> Result<(), String> {
        let steps = traj_steps(c.nfe, c.particles, self.ctx.limits.max_storage_buffer_binding_size);
        if c.particles.max(1) != self.shown.sampler.len() || steps != self.shown.steps {
            let frozen = self.shown.frozen;
            let (shown, check) = self.ctx.checked(|| Self::new_shown(&self.ctx, &self.trainer, &self.source, c));
            let mut shown = shown?;
            shown.frozen = frozen;
            let old = std::mem::replace(&mut self.shown, shown);
            self.set_shown_bindings();
            let from = (self.model_build, self.shown_build);
            let id = self.checked_build(Build::Samples, check);
            self.shown_build = id;
            self.previous = Some((id, Previous::Samples(Box::new(old)), from));
        } else {
            self.shown.sampler.set_tol(c.tol)?;
            self.shown.sampler.set_query(query(c));
            self.shown.solver = c.solver;
            self.shown.stepping = Stepping::of(c);
            self.restart_shown();
            // The exact flow follows the shown flow's solver.
            self.forget_exact_flow();
        }
        self.arrows.sampler.set_query(query(c));
        self.arrows.key = None;
        if self.query != query(c) {
            // The heat map is the density of the flow shown: recomputed for the new class/guidance.
            self.query = query(c);
            if let Some(d) = &self.heat.density {
                d.set_query(self.query);
            }
            self.heat.at = None;
            self.heat.job = None;
        }
        self.tol = c.tol;
        Ok(())
    }

    /// Recomputes the heat map's log p when the weights changed, at most every few seconds
    /// (`flow::heat_interval`: a tenth of the device's time; at least 3 s on a software adapter,
    /// 0.5 s otherwise): 8 midpoint steps backwards with the exact divergence (`shaders/density.wgsl`),
    /// of the field the shown flow follows (its class, guided). What that is for the SDE and
    /// MeanFlow is said on the page (`engine::notes::heatmap_note`). False when it cannot be shown
    /// (a dataset source has no known density).
    fn update_heatmap(&mut self, now: f64, extent: f32) -> bool {
        if !self.source.is_empty() {
            return false;
        }
        if self.heat.density.is_none() {
            match GpuDensity::new(&self.ctx, &self.trainer.spec.shape, &self.trainer.params, HEAT_GRID * HEAT_GRID) {
                Ok(d) => {
                    d.set_query(self.query);
                    self.renderer.set_heatmap(d.log_p_buffer());
                    self.heat = Heat { density: Some(d), ..Heat::default() };
                }
                Err(_) => return false,
            }
        }
        let step = self.trainer.step();
        let min_s = if self.ctx.adapter.is_software() { 3.0 } else { 0.5 };
        let estimate = heat_interval(HEAT_GRID * HEAT_GRID, 8, self.trainer.spec.shape.macs_per_sample(), self.flops_per_s(), min_s);
        let gap = self.time.interval(Work::Heat, self.heat.chunks.max(1), self.share(Work::Heat), estimate).max(min_s);
        let due = match self.heat.at {
            None => true,
            Some((s, at)) => s != step && now - at >= gap && !self.shown.frozen,
        };
        let profile = self.budget_profile();
        let queue = self.ctx.queue.clone();
        let heat = &mut self.heat;
        let Some(d) = &heat.density else { return true };
        if heat.job.is_none() && due {
            let cells = HEAT_GRID * HEAT_GRID;
            let plan = d.chunk_plan(cells, Solver::Midpoint, 8, profile.sample_flops, profile.limits.chunk_s);
            heat.chunks = plan.len().min(u32::MAX as usize) as u32;
            heat.job = Some((d.begin(&cell_centres(extent), Solver::Midpoint, 8, plan), Done::ready(), (step, now)));
        }
        // One chunk at a time, the next once the previous one is done.
        if let Some((job, done, at)) = heat.job.as_mut() {
            if done.is_done() {
                if d.advance(job) {
                    self.time.submitted(&queue, Work::Heat, 1);
                    *done = Done::watch(&queue);
                }
                if job.is_done() {
                    heat.at = Some(*at);
                    heat.job = None;
                }
            }
        }
        true
    }

    /// Drops the exact field and the exact flow (their target buffer changed or was replaced):
    /// rebuilt when shown.
    fn forget_exact(&mut self) {
        self.renderer.set_exact_field(None);
        self.exact = ExactArrows::default();
        self.forget_exact_flow();
    }

    /// Drops the exact flow (the target or the shown particles changed): rebuilt when shown.
    fn forget_exact_flow(&mut self) {
        self.renderer.set_exact_flow(None);
        self.exact_flow = Ok(None);
    }

    /// Advances the exact flow (layer `exactflow`, see [`ExactFlowRun`]): builds it when first
    /// shown (refused, with a note, for a dataset source or when one particle's step over every
    /// target point is over the dispatch limit), then queues its next particle chunk.
    fn advance_exact_flow(&mut self, now: f64) {
        if !self.source.is_empty() {
            self.exact_flow = Err(super::exact_flow::NO_EXACT_FLOW.into());
            return;
        }
        if matches!(self.exact_flow, Err(_)) {
            return;
        }
        if matches!(self.exact_flow, Ok(None)) {
            let s = &self.shown;
            // The shown flow's solver (dopri5: fixed Dormand–Prince steps); the exact field has
            // no SDE or MeanFlow form, so for those its ODE in Euler steps, as they step.
            let solver = if s.stepping == Stepping::Ode { s.solver } else { Solver::Euler };
            let t = &self.trainer;
            let points = t.target_len();
            let profile = self.budget_profile();
            let per_particle = solver.tableau().stages() as f64 * super::exact_flow::stage_flops(points) / profile.sample_flops;
            if per_particle > profile.limits.dispatch_s {
                self.exact_flow = Err(format!(
                    "one particle's step over {points} target points needs about {} on this device, more than the {} allowed per dispatch: use fewer target points (Target points)",
                    crate::budget::fmt_seconds(per_particle),
                    crate::budget::fmt_seconds(profile.limits.dispatch_s)
                ));
                return;
            }
            let n = s.sampler.len();
            if let Err(e) = super::exact_flow::fits(n, s.steps) {
                self.exact_flow = Err(e);
                return;
            }
            let fit = (profile.limits.chunk_s / per_particle).floor();
            let chunk = fit.clamp(1.0, n as f64) as u32;
            let steps_per_chunk = (fit / n as f64).floor().clamp(1.0, crate::gpu::exact::MAX_EXACT_STEPS_PER_SUBMIT as f64) as u32;
            let built = (|| -> Result<ExactFlowRun, crate::gpu::GpuError> {
                let field = crate::gpu::exact::GpuExactField::new(&self.ctx, &t.spec.shape, &t.params, &t.data, points, t.spec.path, t.spec.sigma_min, 1)?;
                let mut sampler = GpuSampler::new(&self.ctx, &t.spec.shape, &t.params, n, s.steps)?;
                sampler.reset(s.sampler.seed());
                let flow = field.flow(&sampler);
                Ok(ExactFlowRun { field, sampler, flow, solver, steps: s.steps, chunk, steps_per_chunk, next: (0, 0), done: Done::ready(), last: f64::NEG_INFINITY, reading: None, landed: None })
            })();
            match built {
                Ok(run) => self.exact_flow = Ok(Some(run)),
                Err(e) => {
                    self.exact_flow = Err(err(e));
                    return;
                }
            }
        }
        let gap = self.time.interval(super::gpu_time::Work::ExactFlow, 1, self.share(Work::ExactFlow), 0.0);
        let queue = self.ctx.queue.clone();
        let Ok(Some(run)) = &mut self.exact_flow else { return };
        if let Some(reading) = run.reading.as_mut() {
            let waker = std::task::Waker::noop();
            if let std::task::Poll::Ready(r) = std::future::Future::poll(reading.as_mut(), &mut std::task::Context::from_waker(waker)) {
                let end: Vec<[f32; 2]> = r.unwrap_or_default().chunks_exact(2).map(|c| [c[0], c[1]]).collect();
                run.landed = super::exact_flow::landed(&end, &self.target);
                run.reading = None;
            }
            return;
        }
        let n = run.flow.len();
        if run.next.0 >= run.steps || !run.done.is_done() || now - run.last < gap {
            return;
        }
        // A chunk: some particles of one step, or (when every particle fits one dispatch) as
        // many whole steps as fit the chunk's time, in one submit.
        let (k, first) = run.next;
        let (ks, particles) = if run.chunk >= n { (k..(k + run.steps_per_chunk).min(run.steps), 0..n) } else { (k..k + 1, first..(first + run.chunk).min(n)) };
        if let Err(e) = run.flow.encode(&run.field, run.solver, (0.0, 1.0, run.steps), ks.clone(), particles.clone()) {
            self.exact_flow = Err(err(e));
            return;
        }
        self.time.submitted(&queue, Work::ExactFlow, 1);
        run.done = Done::watch(&queue);
        run.last = now;
        run.next = if particles.end >= n { (ks.end, 0) } else { (k, particles.end) };
        if run.next.0 >= run.steps {
            // Every step is queued: draw it (its last chunk lands before the next frame's draw,
            // queue order) and read where the particles ended for the landed count.
            let sm = &run.sampler;
            self.renderer.set_exact_flow(Some((&sm.traj, &sm.origins, n, run.steps)));
            let (ctx, buf) = (self.ctx.clone(), sm.particles.clone());
            let count = n as u64 * 2;
            if (n as u64).saturating_mul(self.target.len() as u64) <= super::exact_flow::LANDED_WORK {
                run.reading = Some(Box::pin(async move { crate::gpu::readback::read_f32(&ctx, &buf, 0, count).await.map_err(err) }));
            }
        }
    }

    /// Brings the exact field's arrows to time `t` (layer `exact`): every anchor against every
    /// target point, in chunks of anchors sized so that no dispatch is estimated above the
    /// budget's chunk time (refused, with a note, when one anchor alone is over the dispatch
    /// limit); a new computation starts once the last one is done and at most as often as the
    /// learned arrows. The exact field does not depend on the weights: only t and the view move it.
    fn advance_exact(&mut self, now: f64, t: f32, extent: f32) {
        use super::quality::EXACT_TERM_FLOPS;
        if !self.source.is_empty() {
            self.exact.note = Some(super::quality::NO_EXACT_ARROWS.into());
            return;
        }
        let anchors = ARROW_GRID * ARROW_GRID;
        if self.exact.field.is_none() {
            let t = &self.trainer;
            let profile = self.budget_profile();
            let points = t.target_len();
            if let Err(e) = super::quality::exact_arrows_fit(&profile, 1, points) {
                self.exact.note = Some(e);
                return;
            }
            let per_anchor = points as f64 * EXACT_TERM_FLOPS / profile.sample_flops;
            let chunk = ((profile.limits.chunk_s / per_anchor).floor() as u32).clamp(1, anchors);
            let field = crate::gpu::exact::GpuExactField::new(&self.ctx, &t.spec.shape, &t.params, &t.data, points, t.spec.path, t.spec.sigma_min, anchors);
            match field {
                Ok(f) => {
                    let shown = self.ctx.device.create_buffer(&wgpu::BufferDescriptor {
                        label: Some("exact.shown"),
                        size: f.out_buffer().size(),
                        usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST,
                        mapped_at_creation: false,
                    });
                    let owned = counter::Owned::new(&[&shown]);
                    self.exact = ExactArrows { field: Some(f), shown: Some((shown, owned)), chunk, last: f64::NEG_INFINITY, ..ExactArrows::default() };
                }
                Err(e) => {
                    self.exact.note = Some(err(e));
                    return;
                }
            }
        }
        let min_gap = self.time.interval(Work::Arrows, self.exact.chunk.max(1), self.share(Work::Arrows), 0.0).max(if self.ctx.adapter.is_software() { 0.2 } else { 0.0 });
        let queue = self.ctx.queue.clone();
        let e = &mut self.exact;
        let Some(field) = &e.field else { return };
        if e.job.is_none() {
            let key = (t, extent);
            if e.key == Some(key) || now - e.last < min_gap {
                return;
            }
            let queries: Vec<([f32; 2], f32)> = (0..anchors).map(|i| (crate::render::view::arrow_anchor(i, ARROW_GRID, extent), t)).collect();
            field.write_queries(&queries);
            e.job = Some((key, 0, Done::ready()));
            e.last = now;
        }
        let Some((key, next, done)) = e.job.as_mut() else { return };
        if !done.is_done() {
            return;
        }
        if *next >= anchors {
            // The last chunk is done: its results become the picture.
            if let Some((shown, _)) = &e.shown {
                let mut encoder = self.ctx.device.create_command_encoder(&Default::default());
                encoder.copy_buffer_to_buffer(field.out_buffer(), 0, shown, 0, shown.size());
                queue.submit([encoder.finish()]);
                if e.key.is_none() {
                    self.renderer.set_exact_field(Some(shown));
                }
            }
            e.key = Some(*key);
            e.job = None;
            e.note = None;
            return;
        }
        let n = e.chunk.max(1).min(anchors - *next);
        match field.encode_velocity_chunk(*next, n) {
            Ok(()) => {
                self.time.submitted(&queue, Work::Arrows, 1);
                *done = Done::watch(&queue);
                *next += n;
            }
            Err(er) => {
                e.note = Some(err(er));
                e.job = None;
            }
        }
    }

    /// A copy of the first `bytes` of `src` (weights, target points) in a new counted buffer, for
    /// work that outlives this call: a probe or a density job runs over several frames, and the
    /// trainer's own buffers may be destroyed meanwhile (a larger custom target replaces `data`, a
    /// retrain or a move to the CPU drops the trainer), which would fail its next dispatch.
    fn snapshot(&self, label: &str, src: &wgpu::Buffer, bytes: u64) -> (wgpu::Buffer, counter::Owned) {
        let bytes = bytes.clamp(4, src.size());
        let copy = self.ctx.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: bytes,
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut encoder = self.ctx.device.create_command_encoder(&Default::default());
        encoder.copy_buffer_to_buffer(src, 0, &copy, 0, bytes);
        self.ctx.queue.submit([encoder.finish()]);
        let owned = counter::Owned::new(&[&copy]);
        (copy, owned)
    }

    /// A probe over copies of the current weights and target points: its own sampler (the shown
    /// flow's class and guidance) and quality evaluator, against the chosen class's target points
    /// when there is one (all counted, freed with it).
    fn probe(&self, tol: f32) -> Result<GpuProbe, String> {
        let t = &self.trainer;
        let (params, params_owned) = self.snapshot("quality.params_snapshot", &t.params, t.params.size());
        let (data, data_owned) = self.snapshot("quality.target_snapshot", &t.data, t.target_len() as u64 * 8);
        let mut sampler = GpuSampler::new_with_source(&self.ctx, &t.spec.shape, &params, QUALITY_SAMPLES, 0, &self.source).map_err(err)?;
        sampler.set_tol(tol)?;
        sampler.set_query(self.query);
        let quality = match class_points(&self.target, &self.labels, self.query.class) {
            Some(points) => GpuQuality::with_points(&self.ctx, &sampler.particles, QUALITY_SAMPLES, &points, DIRECTIONS),
            None => GpuQuality::new(&self.ctx, &sampler.particles, QUALITY_SAMPLES, &data, t.target_len(), DIRECTIONS),
        };
        let profile = self.budget_profile();
        Ok(GpuProbe { sampler, quality, stepping: self.shown.stepping, time: self.time.clone(), queue: self.ctx.queue.clone(), rate: profile.sample_flops, chunk_s: profile.limits.chunk_s, _snapshots: [params_owned, data_owned] })
    }
}

/// A straightness reading (`Engine::flow_stats`): the probe's particles over a copy of the
/// weights, moved by the measured step kernel in the chunks of the work budget. Transient like the
/// sliced-W2 probe: its buffers are freed when the reading resolves.
struct GpuStraightness {
    ctx: GpuContext,
    time: GpuTime,
    _sampler: GpuSampler,
    stats: GpuFlowStats,
    _params: counter::Owned,
}

impl GpuStraightness {
    async fn run(self, solver: Solver, plan: crate::budget::ChunkPlan, w2: bool) -> Result<FlowStats, String> {
        // Whole step ranges (the measured step moves every particle; one step of the probe's
        // particles is the smallest chunk), each queued once the previous one is done.
        for s in 0..plan.step_ranges() {
            self.stats.integrate_steps(solver, plan.steps, s * plan.steps_per_chunk, plan.steps_per_chunk);
            self.time.submitted(&self.ctx.queue, Work::Reading, 1);
            crate::gpu::chunked::queue_done(&self.ctx).await.map_err(err)?;
        }
        self.stats.read_with(w2).await.map_err(err)
    }
}

/// A sampler over a snapshot of the weights and a quality evaluator over its particles.
struct GpuProbe {
    sampler: GpuSampler,
    quality: GpuQuality,
    /// How the page's reading samples (the shown flow's way: ODE, SDE or MeanFlow jumps).
    stepping: Stepping,
    /// The engine's device-time account: the probe's submissions are reading work.
    time: GpuTime,
    queue: wgpu::Queue,
    /// The per-particle rate and chunk length its integrations are planned with.
    rate: f64,
    chunk_s: f64,
    /// The copies of the weights and the target points it works on.
    _snapshots: [counter::Owned; 2],
}

impl GpuProbe {
    /// Integrates the probe particles as `p` says (with the ODE solver it names) and measures them.
    async fn run(&mut self, p: Probe) -> Result<QualityPoint, String> {
        self.run_as(p, Stepping::Ode).await
    }

    /// As [`GpuProbe::run`], stepping as `stepping` says: the SDE and MeanFlow take `p.steps`
    /// steps of their own kind (one field evaluation each).
    async fn run_as(&mut self, p: Probe, stepping: Stepping) -> Result<QualityPoint, String> {
        self.sampler.set_tol(p.tol)?;
        self.sampler.reset(PROBE_SEED);
        // In chunks of the budget, each queued once the previous one is done.
        let plan_solver = if stepping == Stepping::Ode { p.solver } else { Solver::Euler };
        let plan = self.sampler.chunk_plan(plan_solver, p.steps, self.rate, self.chunk_s);
        let mut job = match stepping {
            Stepping::Ode => self.sampler.begin(p.solver, 0.0, 1.0, p.steps, plan),
            Stepping::Sde(sde) => self.sampler.begin_sde(sde, 0.0, 1.0, p.steps, plan),
            Stepping::MeanFlow => self.sampler.begin_mean_flow(0.0, 1.0, p.steps, plan),
        };
        let (time, queue) = (&self.time, &self.queue);
        self.sampler.run_with(&mut job, || time.submitted(queue, Work::Reading, 1)).await.map_err(err)?;
        let nfe = if stepping != Stepping::Ode {
            p.steps as f64
        } else if p.solver.is_adaptive() {
            let s = self.sampler.read_adaptive_summary().await.map_err(err)?;
            if s.unfinished > 0 {
                return Err(format!("{} did not reach t = 1 within {} evaluations for {} samples", p.solver, p.steps, s.unfinished));
            }
            s.mean_nfe()
        } else {
            p.fixed_nfe()
        };
        self.quality.encode(PROBE_SEED);
        self.time.submitted(&self.queue, Work::Reading, 1);
        let sw2 = self.quality.read().await.map_err(err)?;
        Ok(QualityPoint { solver: p.solver, nfe, sw2, setting: p.setting() })
    }
}

impl Engine for GpuEngine {
    fn info(&self) -> EngineInfo {
        EngineInfo { backend: "webgpu", adapter: self.ctx.adapter.to_string(), software: self.ctx.adapter.is_software(), present: self.presenter.kind() }
    }

    fn step(&self) -> u32 {
        self.trainer.step()
    }

    fn done(&self) -> u32 {
        self.ctx.poll();
        self.trainer.step().saturating_sub(self.time.backlog())
    }

    fn latency_s(&self) -> f64 {
        self.ctx.poll();
        self.time.latency_s()
    }

    fn train(&mut self, n: u32) {
        if n == 0 {
            return;
        }
        self.trainer.train(n);
        self.time.submitted(&self.ctx.queue, Work::Train, n);
        self.last_train_ms = super::jobs::now_ms();
    }

    fn status(&mut self, since: u32) -> EngineFuture<TrainStatus> {
        let fut = self.trainer.status_detached(self.trainer.step().saturating_sub(since));
        Box::pin(async move { fut.await.map_err(err) })
    }

    fn apply(&mut self, c: &Config, effect: Effect) -> Result<(), String> {
        match effect {
            Effect::Retrain => self.retrain(c)?,
            Effect::Resample => self.resample(c)?,
            Effect::Live => {}
        }
        self.trainer.set_lr(c.lr, c.schedule, c.schedule_steps());
        self.trainer.set_time(TimeDist::from_config(c));
        Ok(())
    }

    fn reset(&mut self, seed: u32) {
        self.readings.new_model();
        self.trainer.reset(seed);
        self.restart_shown();
        if seed != self.shown.sampler.seed() {
            // The exact flow starts from the shown particles' draw.
            self.forget_exact_flow();
        }
        self.shown.sampler.reset(seed);
        self.shown.frozen = false;
        self.arrows.key = None;
    }

    fn set_target(&mut self, points: &[[f32; 2]]) -> Result<(), String> {
        self.set_target_labeled(points, &[])
    }

    fn set_target_labeled(&mut self, points: &[[f32; 2]], labels: &[u32]) -> Result<(), String> {
        // An unconditional model trains on the points alone.
        let labels = if self.trainer.spec.shape.inputs.n_classes > 0 { labels } else { &[] };
        self.trainer.set_target_labeled(points, labels).map_err(err)?;
        self.target = points.to_vec();
        self.labels = labels.to_vec();
        self.renderer.set_target(&self.trainer.data, Self::target_drawn(&self.ctx).min(points.len() as u32));
        self.forget_exact();
        Ok(())
    }

    fn load(&mut self, params: &[f32], step: u32) -> Result<(), String> {
        let want = self.trainer.spec.shape.param_len();
        if params.len() != want {
            return Err(format!("{} parameters given but this model has {want}", params.len()));
        }
        self.trainer.load_state(params, &vec![0.0; 2 * want], step).map_err(err)?;
        self.restart_shown();
        self.shown.frozen = false;
        Ok(())
    }

    fn load_model(&mut self, file: &ModelFile) -> Result<(), String> {
        self.trainer.load_model(file).map_err(err)?;
        self.restart_shown();
        self.shown.frozen = false;
        Ok(())
    }

    fn model_file(&self, config: Config) -> EngineFuture<ModelFile> {
        let fut = self.trainer.model_file_detached(config);
        Box::pin(async move { fut.await.map_err(err) })
    }

    fn schedule_start(&self) -> u32 {
        self.trainer.spec.adam.schedule_start
    }

    fn set_schedule_start(&mut self, step: u32) {
        self.trainer.spec.adam.schedule_start = step;
    }

    fn params(&self) -> EngineFuture<Vec<f32>> {
        let (ctx, buf, n) = (self.ctx.clone(), self.trainer.params.clone(), self.trainer.spec.shape.param_len() as u64);
        Box::pin(async move { crate::gpu::readback::read_f32(&ctx, &buf, 0, n).await.map_err(err) })
    }

    fn snapshot(&self) -> EngineFuture<Snapshot> {
        let fut = self.trainer.snapshot_detached();
        Box::pin(async move { fut.await.map_err(err) })
    }

    fn restore(&mut self, s: &Snapshot) -> Result<(), String> {
        self.trainer.restore(s).map_err(err)?;
        self.restart_shown();
        self.shown.frozen = false;
        Ok(())
    }

    fn shown_step(&self) -> Option<u32> {
        self.shown.step
    }

    fn ode_steps(&self) -> u32 {
        self.shown.steps
    }

    fn set_frozen(&mut self, frozen: bool) {
        self.shown.frozen = frozen;
    }

    fn samples(&self) -> EngineFuture<Vec<[f32; 2]>> {
        if self.shown.step.is_none() {
            return super::ready(Err(NO_SAMPLES.into()));
        }
        let (ctx, buf, n) = (self.ctx.clone(), self.shown.samples.clone(), self.shown.sampler.len());
        Box::pin(async move {
            let flat = crate::gpu::readback::read_f32(&ctx, &buf, 0, n as u64 * 2).await.map_err(|e| format!("reading the samples back failed: {e}"))?;
            Ok(flat.chunks_exact(2).map(|c| [c[0], c[1]]).collect())
        })
    }

    fn heatmap_step(&self) -> Option<u32> {
        self.heat.at.map(|(s, _)| s)
    }

    fn sample_quality(&mut self, solver: Solver, steps: u32, tol: f32) -> EngineFuture<QualityPoint> {
        let probe = self.probe(tol);
        Box::pin(async move {
            let mut probe = probe?;
            let stepping = probe.stepping;
            probe.run_as(Probe { solver, steps, tol }, stepping).await
        })
    }

    fn compare_solvers(&mut self) -> EngineFuture<Vec<QualityPoint>> {
        let probe = self.probe(self.tol);
        Box::pin(async move {
            let mut probe = probe?;
            let mut out = Vec::new();
            for p in comparison_plan() {
                let point = probe.run(p).await?;
                finite(point.sw2)?;
                out.push(point);
            }
            Ok(out)
        })
    }

    fn flow_stats(&mut self, solver: Solver, nfe: u32, w2: bool) -> EngineFuture<FlowStats> {
        // Planned and checked before anything is allocated: its smallest chunk is one step of
        // every probe particle (the measured step moves them all), which must fit a dispatch.
        let shape = self.trainer.spec.shape;
        let profile = self.budget_profile();
        let per_step = flops_per_particle_step(&shape, solver);
        let step_s = QUALITY_SAMPLES as f64 * per_step / profile.sample_flops;
        if step_s > profile.limits.dispatch_s {
            return super::ready(Err(format!(
                "the straightness reading needs about {} per step of its {QUALITY_SAMPLES} particles on this device, more than the {} allowed per dispatch: lower the width or depth",
                crate::budget::fmt_seconds(step_s),
                crate::budget::fmt_seconds(profile.limits.dispatch_s)
            )));
        }
        let plan = crate::budget::ChunkPlan::new(QUALITY_SAMPLES, measured_steps(solver, nfe), per_step, profile.sample_flops, profile.limits.chunk_s);
        let t = &self.trainer;
        let (params, owned) = self.snapshot("straightness.params_snapshot", &t.params, t.params.size());
        let built = GpuSampler::new_with_source(&self.ctx, &shape, &params, QUALITY_SAMPLES, 0, &self.source).map_err(err).and_then(|mut sampler| {
            sampler.reset(PROBE_SEED);
            let stats = GpuFlowStats::new(&self.ctx, &shape, &params, &sampler).map_err(err)?;
            Ok(GpuStraightness { ctx: self.ctx.clone(), time: self.time.clone(), _sampler: sampler, stats, _params: owned })
        });
        Box::pin(async move { built?.run(solver, plan, w2).await })
    }

    fn field_error(&mut self, reading: u32) -> EngineFuture<f64> {
        if !self.source.is_empty() {
            return super::ready(Err(NO_EXACT_FIELD.into()));
        }
        let t = &self.trainer;
        let points = t.target_len();
        // Checked before anything is allocated: one dispatch is FIELD_ERROR_CHUNK queries, each
        // a sum over every target point.
        if let Err(e) = field_error_fits(&self.budget_profile(), points, &t.spec.shape) {
            return super::ready(Err(e));
        }
        // Over copies: the trainer's buffers may be replaced while the reading runs (`snapshot`).
        let (params, params_owned) = self.snapshot("field_error.params_snapshot", &t.params, t.params.size());
        let (data, data_owned) = self.snapshot("field_error.target_snapshot", &t.data, points as u64 * 8);
        let field = crate::gpu::exact::GpuExactField::new(&self.ctx, &t.spec.shape, &params, &data, points, t.spec.path, t.spec.sigma_min, FIELD_ERROR_CHUNK);
        let seed = t.spec.seed;
        Box::pin(async move {
            let _snapshots = [params_owned, data_owned];
            let field = field.map_err(err)?;
            let chunks = FIELD_ERROR_QUERIES / FIELD_ERROR_CHUNK;
            let mut sum = 0.0;
            for i in 0..chunks {
                sum += field.field_error(FIELD_ERROR_CHUNK, seed, reading.wrapping_mul(chunks).wrapping_add(i)).await.map_err(err)?;
            }
            Ok(sum / chunks as f64)
        })
    }

    fn integrate_fresh(&mut self, seed: u32, n: u32, solver: Solver, steps: u32, tol: f32) -> EngineFuture<Pairs> {
        if n == 0 {
            return super::ready(Err("no particles to integrate".into()));
        }
        // Over a copy of the weights, in the chunks of the work budget (like the probe).
        let t = &self.trainer;
        let (params, owned) = self.snapshot("fresh.params_snapshot", &t.params, t.params.size());
        let built = GpuSampler::new_with_source(&self.ctx, &t.spec.shape, &params, n, 0, &self.source).map_err(err).and_then(|mut s| {
            s.set_tol(tol)?;
            s.reset(seed);
            Ok(s)
        });
        let (ctx, profile, time) = (self.ctx.clone(), self.budget_profile(), self.time.clone());
        Box::pin(async move {
            let _owned = owned;
            let mut s = built?;
            let plan = s.chunk_plan(solver, steps, profile.sample_flops, profile.limits.chunk_s);
            let mut job = s.begin(solver, 0.0, 1.0, steps, plan);
            s.run_with(&mut job, || time.submitted(&ctx.queue, Work::Reading, 1)).await.map_err(err)?;
            if solver.is_adaptive() {
                let summary = s.read_adaptive_summary().await.map_err(err)?;
                if summary.unfinished > 0 {
                    return Err(format!("{solver} did not reach t = 1 within {steps} evaluations for {} particles", summary.unfinished));
                }
            }
            let pts = |flat: Vec<f32>| flat.chunks_exact(2).map(|c| [c[0], c[1]]).collect::<Vec<_>>();
            let x0 = crate::gpu::readback::read_f32(&ctx, &s.origins, 0, n as u64 * 2).await.map_err(err)?;
            let x1 = crate::gpu::readback::read_f32(&ctx, &s.particles, 0, n as u64 * 2).await.map_err(err)?;
            Ok((pts(x0), pts(x1)))
        })
    }

    fn set_pairs(&mut self, pairs: Option<&Pairs>) -> Result<(), String> {
        let Some((x0, x1)) = pairs else {
            self.trainer.clear_pairs();
            return Ok(());
        };
        if x0.is_empty() || x0.len() != x1.len() {
            return Err(format!("reflow needs equally many noise points and samples, at least one: {} and {} given", x0.len(), x1.len()));
        }
        use wgpu::util::DeviceExt;
        let upload = |label: &str, points: &[[f32; 2]]| {
            self.ctx.device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some(label),
                contents: bytemuck::cast_slice(points),
                usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
            })
        };
        // Staging copies: the trainer copies them into its own pair buffers (queue order).
        let (b0, b1) = (upload("reflow.upload_x0", x0), upload("reflow.upload_x1", x1));
        let r = self.trainer.set_pairs(&b0, &b1, x0.len().min(u32::MAX as usize) as u32).map_err(err);
        b0.destroy();
        b1.destroy();
        r
    }

    fn exact_field_note(&self) -> Option<String> {
        self.exact.note.clone()
    }

    fn exact_flow(&self) -> Option<super::exact_flow::ExactFlowState> {
        use super::exact_flow::ExactFlowState;
        match &self.exact_flow {
            Err(note) => Some(ExactFlowState::refused(note.clone())),
            Ok(None) => None,
            Ok(Some(r)) => Some(ExactFlowState::progress(r.flow.len(), r.field.n_points(), r.steps, r.next.0, r.landed)),
        }
    }

    fn exact_field_t(&self) -> Option<f32> {
        self.exact.key.map(|(t, _)| t)
    }

    fn log_density(&mut self, points: Vec<[f32; 2]>, solver: Solver, steps: u32) -> EngineFuture<Vec<f32>> {
        if !self.source.is_empty() {
            return super::ready(Err(NO_DENSITY.into()));
        }
        let (params, snapshot) = self.snapshot("density.params_snapshot", &self.trainer.params, self.trainer.params.size());
        let d = GpuDensity::new(&self.ctx, &self.trainer.spec.shape, &params, points.len() as u32);
        let profile = self.budget_profile();
        let q = self.query;
        Box::pin(async move {
            let _snapshot = snapshot;
            let d = d.map_err(err)?;
            d.set_query(q);
            let plan = d.chunk_plan(points.len() as u32, solver, steps, profile.sample_flops, profile.limits.chunk_s);
            d.log_density_chunked(&points, solver, steps, plan).await.map_err(err)
        })
    }

    fn frame(&mut self, f: &FrameInput) {
        let step = self.trainer.step();
        self.readings.update(f.now, self.share(Work::Reading), self.time.busy_of(Work::Reading));
        self.shown.refresh_s = self.refresh_interval();
        self.advance_shown(f, step);
        if f.layers.arrows {
            let key = (step, f.t);
            let min_gap = self.time.interval(Work::Arrows, 1, self.share(Work::Arrows), 0.0).max(if self.ctx.adapter.is_software() { 0.2 } else { 0.0 });
            if self.arrows.key != Some(key) && f.now - self.arrows.last >= min_gap {
                let g = ARROW_GRID;
                let anchors: Vec<[f32; 2]> = (0..g * g).map(|i| crate::render::view::arrow_anchor(i, g, f.viewport.extent)).collect();
                self.arrows.sampler.write_particles(&anchors);
                self.arrows.sampler.integrate(Solver::Euler, f.t, f.t + 1.0, 1);
                self.time.submitted(&self.ctx.queue, Work::Arrows, 1);
                self.arrows.key = Some(key);
                self.arrows.last = f.now;
            }
        }
        if f.layers.exact_flow {
            self.advance_exact_flow(f.now);
        }
        if f.layers.exact {
            self.advance_exact(f.now, f.t, f.viewport.extent);
        }
        // Frames take their share of the device at most (a software adapter draws on the CPU).
        if f.now - self.last_frame < self.time.interval(Work::Frame, 1, self.share(Work::Frame), 0.0) {
            return;
        }
        let mut layers = f.layers;
        layers.heatmap = layers.heatmap && self.update_heatmap(f.now, f.viewport.extent);
        let mut view = f.viewport.uniform();
        view.t = f.t;
        view.point_px = f.point_px;
        view.alpha = if self.shown.sampler.len() > 30_000 { 0.55 } else { 0.9 };
        let renderer = &self.renderer;
        if self.presenter.present(&self.ctx, f.now, &mut |encoder, target| renderer.draw(encoder, target, view, layers)) {
            self.time.submitted(&self.ctx.queue, Work::Frame, 1);
            self.last_frame = f.now;
        }
    }

    fn resize(&mut self, width: u32, height: u32) {
        self.presenter.resize(&self.ctx, width.max(1), height.max(1));
    }

    fn frames_presented(&self) -> f64 {
        self.presenter.presented()
    }

    fn work_done(&self) -> u64 {
        self.ctx.poll();
        self.time.completions()
    }

    fn costs(&self) -> Vec<(&'static str, f64)> {
        self.time.costs()
    }

    fn busy(&self) -> Vec<(&'static str, f64)> {
        self.time.busy()
    }

    fn reading_allowed(&self) -> bool {
        self.readings.allowed()
    }

    fn profile(&self) -> Profile {
        self.budget_profile()
    }

    fn device_lost(&self) -> bool {
        self.ctx.is_lost()
    }

    fn gpu_fault(&mut self) -> Option<FaultReport> {
        if let Some(r) = self.failed_build() {
            return Some(r);
        }
        if let Some(fence) = self.fence.as_mut() {
            // Errors of the failed build's work, until the device has reached the fence.
            self.errors_seen = self.ctx.errors.count();
            let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
            if fence.as_mut().poll(&mut cx).is_pending() {
                return None;
            }
            self.fence = None;
            self.errors_seen = self.ctx.errors.count();
        }
        let (fault, seen) = self.ctx.errors.since(self.errors_seen);
        self.errors_seen = seen;
        fault.map(|fault| FaultReport { fault, during: None, reverted: false, broken: false })
    }

    fn checking(&self) -> bool {
        !self.checks.is_empty()
    }
}

/// Before the first integration there is nothing to export.
pub const NO_SAMPLES: &str = "no samples yet: the flow has not been integrated; try again in a moment";
/// log p needs the source's density in closed form.
pub const NO_DENSITY: &str = "the density needs the Gaussian source (log p of a dataset source is not known in closed form)";
