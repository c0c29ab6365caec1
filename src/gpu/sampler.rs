//! Particles integrated through the learned field on the GPU (`shaders/ode_step.wgsl`).
//!
//! Owns the particle positions, their origins (the t = 0 draw, for colouring and restarts) and
//! optionally a trajectory buffer `(steps + 1, N)`. It reads the trainer's parameter buffer
//! directly, so sampling always uses the current weights with no copy.
//!
//! Three ways to move particles: the ODE ([`GpuSampler::integrate`]: fixed-step solvers or
//! adaptive dopri5), the SDE with the same marginals ([`GpuSampler::integrate_sde`],
//! Euler–Maruyama) and MeanFlow's jumps ([`GpuSampler::integrate_mean_flow`]). All of them follow
//! the field of the sampler's [`Query`] (a class, classifier-free guidance; [`GpuSampler::set_query`]
//! rewrites one small uniform, so a guidance slider applies at once).
//!
//! Long integrations run in chunks ([`Integration`], `budget::ChunkPlan`): [`GpuSampler::advance`]
//! submits one chunk (some steps of all particles, or one step of a range of them; for dopri5 a
//! share of the evaluation budget), and the caller queues the next only once it is done
//! ([`GpuSampler::run`] awaits each; the page polls `gpu::chunked::Done` per frame). Any split
//! computes exactly what one chunk computes (tests/adaptive.rs, tests/kernels.rs).

use super::readback::read_f32;
use super::shaders::{bind_group, bind_group_layout, compute_pipeline, Binding, Kernel};
use super::trainer::check_fits;
use super::uniforms::{slots, AdaptiveParams, ModelDesc, OdeParams, SLOT};
use super::{dispatch_groups, GpuContext, GpuError};
use crate::budget::{Chunk, ChunkPlan};
use crate::config::Solver;
use crate::cpu::adaptive::{AdaptiveOptions, MIN_NFE};
use crate::cpu::sde::SdeSpec;
use crate::model::{ModelShape, Query};
use wgpu::util::DeviceExt;

/// ODE steps encoded per submit at most (size of the per-step uniform ring).
pub const MAX_ODE_STEPS_PER_SUBMIT: u32 = 512;

pub struct GpuSampler {
    ctx: GpuContext,
    n: u32,
    pub particles: wgpu::Buffer,
    pub origins: wgpu::Buffer,
    pub traj: wgpu::Buffer,
    /// Trajectory steps recorded (0: none).
    traj_steps: u32,
    n_source: u32,
    _source: wgpu::Buffer,
    ode_uniform: wgpu::Buffer,
    /// The network's layer table and the query (`ModelDesc`), shared by every sampling kernel.
    /// The ModelDesc with the query (class, guidance); `GpuFlowStats` binds it too.
    pub(crate) model_uniform: wgpu::Buffer,
    init: wgpu::ComputePipeline,
    step: wgpu::ComputePipeline,
    /// `sde_step` and `meanflow_step`, built on first use.
    sde: Option<wgpu::ComputePipeline>,
    mean_flow: Option<wgpu::ComputePipeline>,
    bind_layout: wgpu::BindGroupLayout,
    query: Query,
    group: wgpu::BindGroup,
    seed: u32,
    /// Bytes of every GPU buffer this sampler created (the parameters are the trainer's).
    allocated_bytes: u64,
    /// Registers (and on drop destroys) every buffer above (`counter`).
    _live: super::counter::Owned,
    /// The adaptive solver's tolerance (`Solver::Dopri5`).
    tol: f32,
    /// Pipeline and buffers of `shaders/ode_adaptive.wgsl`, built on first use.
    adaptive: Option<Adaptive>,
    shape: ModelShape,
    params: wgpu::Buffer,
}

/// Which fixed-step kernel of `shaders/ode_step.wgsl` moves the particles.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stepper {
    Ode,
    Sde,
    MeanFlow,
}

/// The adaptive solver's pipeline, its uniform, per-particle statistics `(nfe, finished)`, the
/// per-particle state kept between chunks and the count of particles still running.
struct Adaptive {
    pipeline: wgpu::ComputePipeline,
    group: wgpu::BindGroup,
    uniform: wgpu::Buffer,
    stats: wgpu::Buffer,
    running: wgpu::Buffer,
    /// Registers (and on drop destroys) the buffers above (`counter`).
    _live: super::counter::Owned,
}

/// Per-particle results of the last adaptive integration.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AdaptiveSummary {
    /// Field evaluations per particle.
    pub nfe: Vec<u32>,
    /// Particles that hit the evaluation budget before t1.
    pub unfinished: usize,
}

impl AdaptiveSummary {
    pub fn mean_nfe(&self) -> f64 {
        self.nfe.iter().map(|&k| k as f64).sum::<f64>() / self.nfe.len().max(1) as f64
    }
}

/// Bytes of adaptive solver state per particle kept between chunks (`ode_adaptive.wgsl`'s `state`).
pub const ADAPTIVE_STATE_BYTES: u64 = crate::budget::ADAPTIVE_STATE_BYTES;

/// What an integration runs: fixed steps of an explicit solver, or the adaptive one.
#[derive(Clone, Copy, Debug)]
enum Method {
    Fixed { stepper: Stepper, solver: Solver, sde: Option<SdeSpec>, steps: u32, record: bool },
    Adaptive { opts: AdaptiveOptions, frames: u32 },
}

/// One integration of a sampler's particles from `t0` to `t1`, in chunks (`budget::ChunkPlan`):
/// begun by [`GpuSampler::begin`], advanced a chunk per [`GpuSampler::advance`].
#[derive(Clone, Debug)]
pub struct Integration {
    method: Method,
    t0: f32,
    t1: f32,
    plan: ChunkPlan,
    next: usize,
    /// Adaptive: particles still running after the last whole round of chunks (None: not read).
    running: Option<u32>,
}

impl Integration {
    pub fn plan(&self) -> &ChunkPlan {
        &self.plan
    }

    /// Chunks submitted so far.
    pub fn submitted(&self) -> usize {
        self.next
    }

    /// Every chunk was submitted, or the adaptive solver's particles all stopped early.
    pub fn is_done(&self) -> bool {
        self.next >= self.plan.len() || self.running == Some(0)
    }

    /// The adaptive solver: reading the count of running particles after a round lets the
    /// integration stop early ([`GpuSampler::read_running`], [`Integration::set_running`]).
    pub fn is_adaptive(&self) -> bool {
        matches!(self.method, Method::Adaptive { .. })
    }

    /// The chunk submitted last ended a round (every particle went through the same steps).
    pub fn round_ended(&self) -> bool {
        self.next > 0 && self.next % self.plan.item_ranges() as usize == 0
    }

    /// Particles still running, as read after a round: 0 ends the integration.
    pub fn set_running(&mut self, running: u32) {
        self.running = Some(running);
    }
}

/// Steps of the chunk plan of an integration: the fixed-step solver's steps, or the adaptive
/// solver's step attempts within its budget (`(budget - 1) / 6`, the first evaluation apart).
pub fn plan_steps(solver: Solver, steps: u32) -> u32 {
    if solver == Solver::Dopri5 {
        (steps.max(MIN_NFE) - 1) / 6
    } else {
        steps.max(1)
    }
}

/// FLOP of one plan step of one particle for a network of `shape` (dopri5: six evaluations).
pub fn flops_per_particle_step(shape: &ModelShape, solver: Solver) -> f64 {
    let evals = if solver == Solver::Dopri5 { 6 } else { solver.evals_per_step() };
    2.0 * shape.macs_per_sample() as f64 * evals as f64
}

impl GpuSampler {
    /// `n` particles for a model of `shape` whose parameters are in `params`. With
    /// `traj_steps > 0`, integrations of exactly that many steps record every intermediate state.
    pub fn new(ctx: &GpuContext, shape: &ModelShape, params: &wgpu::Buffer, n: u32, traj_steps: u32) -> Result<Self, GpuError> {
        Self::new_with_source(ctx, shape, params, n, traj_steps, &[])
    }

    /// As [`GpuSampler::new`], drawing starting points from `source` instead of N(0, I) when it
    /// is not empty.
    pub fn new_with_source(ctx: &GpuContext, shape: &ModelShape, params: &wgpu::Buffer, n: u32, traj_steps: u32, source: &[[f32; 2]]) -> Result<Self, GpuError> {
        let n = n.max(1);
        let traj_len = if traj_steps > 0 { (traj_steps as u64 + 1) * n as u64 } else { 1 };
        check_fits(ctx, &[("particles", n as u64 * 8), ("trajectories", traj_len * 8)])?;
        let device = &ctx.device;
        let buf = |label: &str, pairs: u64| {
            device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(label),
                size: pairs * 8,
                usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST | wgpu::BufferUsages::VERTEX,
                mapped_at_creation: false,
            })
        };
        let particles = buf("sampler.particles", n as u64);
        let origins = buf("sampler.origins", n as u64);
        let traj = buf("sampler.trajectories", traj_len);
        let source_buf = device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some("sampler.source"),
            contents: if source.is_empty() { &[0u8; 8] } else { bytemuck::cast_slice(source) },
            usage: wgpu::BufferUsages::STORAGE,
        });
        let ode_uniform = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("sampler.ode_params"),
            size: SLOT * MAX_ODE_STEPS_PER_SUBMIT as u64,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let model_uniform = device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some("sampler.model"),
            contents: bytemuck::bytes_of(&ModelDesc::for_shape(shape)),
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
        });
        use Binding::*;
        let ode_size = std::mem::size_of::<OdeParams>() as u64;
        let bgl = bind_group_layout(device, "ode", &[UniformDynamic(ode_size), Uniform, StorageRead, StorageReadWrite, StorageReadWrite, StorageReadWrite, StorageRead]);
        let hidden = Some(shape.width);
        let init = compute_pipeline(device, Kernel::OdeStep, "init_particles", &bgl, hidden);
        let step = compute_pipeline(device, Kernel::OdeStep, "ode_step", &bgl, hidden);
        let group = bind_group(device, "ode", &bgl, &[
            (&ode_uniform, Some(ode_size)), (&model_uniform, None), (params, None), (&particles, None), (&origins, None), (&traj, None), (&source_buf, None),
        ]);
        let allocated_bytes = [&particles, &origins, &traj, &source_buf, &ode_uniform, &model_uniform].iter().map(|b| b.size()).sum();
        let live = super::counter::Owned::new(&[&particles, &origins, &traj, &source_buf, &ode_uniform, &model_uniform]);
        Ok(GpuSampler {
            allocated_bytes,
            _live: live,
            ctx: ctx.clone(),
            n,
            particles,
            origins,
            traj,
            traj_steps,
            n_source: source.len() as u32,
            _source: source_buf,
            ode_uniform,
            model_uniform,
            init,
            step,
            sde: None,
            mean_flow: None,
            bind_layout: bgl,
            query: Query::default(),
            group,
            seed: 0,
            tol: crate::cpu::adaptive::DEFAULT_TOL,
            adaptive: None,
            shape: *shape,
            params: params.clone(),
        })
    }

    /// Bytes of all GPU buffers this sampler allocated (fixed at creation).
    pub fn allocated_bytes(&self) -> u64 {
        self.allocated_bytes
    }

    pub fn len(&self) -> u32 {
        self.n
    }

    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// The seed of the last starting draw ([`GpuSampler::reset`]).
    pub fn seed(&self) -> u32 {
        self.seed
    }

    /// Steps per recorded trajectory (0 if not recording).
    pub fn traj_steps(&self) -> u32 {
        self.traj_steps
    }

    /// Draws fresh starting points x0 ~ N(0, I) keyed by `seed` (t = 0).
    pub fn reset(&mut self, seed: u32) {
        self.seed = seed;
        let p = OdeParams { n: self.n, record: (self.traj_steps > 0) as u32, seed, n_source: self.n_source, end: self.n, ..Default::default() };
        self.ctx.queue.write_buffer(&self.ode_uniform, 0, bytemuck::bytes_of(&p));
        self.run_pass(|pass, s| {
            pass.set_pipeline(&s.init);
            pass.set_bind_group(0, &s.group, &[0]);
            let (x, y) = dispatch_groups(s.n, 64);
            pass.dispatch_workgroups(x, y, 1);
        });
    }

    /// Moves the particles back to their origins without a new draw.
    pub fn rewind(&self) {
        let mut encoder = self.ctx.device.create_command_encoder(&Default::default());
        encoder.copy_buffer_to_buffer(&self.origins, 0, &self.particles, 0, self.n as u64 * 8);
        self.ctx.queue.submit([encoder.finish()]);
    }

    /// Advances the particles from `t0` to `t1` in `steps` equal steps of `solver`. When the
    /// sampler records trajectories and `t0..t1` is the whole `[0, 1]` in `traj_steps` steps,
    /// every state is recorded.
    ///
    /// `Solver::Dopri5` integrates adaptively (see [`GpuSampler::integrate_adaptive`]) with
    /// `steps` as its budget of field evaluations per particle (at least 7; smaller is raised to
    /// 7) and the tolerance of [`GpuSampler::set_tol`]; recording then writes `traj_steps`
    /// interpolated states at equal times.
    ///
    /// Everything is submitted at once (tests, the command-line tool); the page integrates in
    /// chunks ([`GpuSampler::begin`] with a plan from the budget, then [`GpuSampler::advance`]).
    pub fn integrate(&mut self, solver: Solver, t0: f32, t1: f32, steps: u32) {
        let mut job = self.begin(solver, t0, t1, steps, ChunkPlan::whole(self.n, plan_steps(solver, steps)));
        while self.advance(&mut job) {}
    }

    /// The chunk plan of an integration on a device doing `flops_per_s` in the per-particle
    /// kernels, each chunk about `target_s` (`budget::TimeLimits::chunk_s`); a guided query
    /// evaluates the network twice per field evaluation.
    pub fn chunk_plan(&self, solver: Solver, steps: u32, flops_per_s: f64, target_s: f64) -> ChunkPlan {
        let guided = if self.query.guided(&self.shape.inputs) { 2.0 } else { 1.0 };
        ChunkPlan::new(self.n, plan_steps(solver, steps), guided * flops_per_particle_step(&self.shape, solver), flops_per_s, target_s)
    }

    /// Starts an integration as [`GpuSampler::integrate`] would run it, in the chunks of `plan`
    /// (its chunk sizes are kept; its totals are set to this sampler's particles and
    /// [`plan_steps`]). Nothing is submitted until [`GpuSampler::advance`].
    pub fn begin(&mut self, solver: Solver, t0: f32, t1: f32, steps: u32, plan: ChunkPlan) -> Integration {
        if solver == Solver::Dopri5 {
            let frames = if self.traj_steps > 0 && steps == self.traj_steps { self.traj_steps } else { 0 };
            let opts = AdaptiveOptions::new(self.tol, steps.max(MIN_NFE)).expect("tolerance checked by set_tol and budget raised to the minimum");
            return self.begin_adaptive(t0, t1, &opts, frames, plan);
        }
        self.begin_fixed(Stepper::Ode, solver, None, t0, t1, steps, plan)
    }

    /// Starts `steps` equal steps of one of the fixed-step kernels in the chunks of `plan`.
    #[allow(clippy::too_many_arguments)]
    fn begin_fixed(&mut self, stepper: Stepper, solver: Solver, sde: Option<SdeSpec>, t0: f32, t1: f32, steps: u32, plan: ChunkPlan) -> Integration {
        let steps = steps.max(1);
        let record = self.traj_steps > 0 && steps == self.traj_steps;
        let plan = fit(plan, self.n, steps);
        Integration { method: Method::Fixed { stepper, solver, sde, steps, record }, t0, t1, plan, next: 0, running: None }
    }

    /// Advances the particles from `t0` to `t1` in `steps` Euler–Maruyama steps of the SDE with
    /// the ODE's marginals (`shaders/ode_step.wgsl: sde_step`, twin `cpu::sde`); the noise of
    /// particle i at step k is keyed by (reset seed, k, i), so any chunking draws the same noise.
    /// `sde.noise = 0` is the Euler ODE sampler bit for bit. The trained path must have a
    /// Gaussian source (the caller checks: `Config::check_generation`). Recording works as in
    /// [`GpuSampler::integrate`]. One submit; [`GpuSampler::begin_sde`] for chunks.
    pub fn integrate_sde(&mut self, sde: SdeSpec, t0: f32, t1: f32, steps: u32) {
        let mut job = self.begin_sde(sde, t0, t1, steps, ChunkPlan::whole(self.n, steps.max(1)));
        while self.advance(&mut job) {}
    }

    /// Starts an SDE integration ([`GpuSampler::integrate_sde`]) in the chunks of `plan`.
    pub fn begin_sde(&mut self, sde: SdeSpec, t0: f32, t1: f32, steps: u32, plan: ChunkPlan) -> Integration {
        if self.sde.is_none() {
            self.sde = Some(compute_pipeline(&self.ctx.device, Kernel::OdeStep, "sde_step", &self.bind_layout, Some(self.shape.width)));
        }
        self.begin_fixed(Stepper::Sde, Solver::Euler, Some(sde), t0, t1, steps, plan)
    }

    /// Moves a MeanFlow model's particles from `t0` to `t1` in `steps` equal jumps
    /// `x ← x + h·u(x, t + h, t)` (`meanflow_step`, twin `cpu::meanflow::integrate`). One step
    /// from 0 to 1 is one network evaluation per sample. One submit;
    /// [`GpuSampler::begin_mean_flow`] for chunks.
    pub fn integrate_mean_flow(&mut self, t0: f32, t1: f32, steps: u32) {
        let mut job = self.begin_mean_flow(t0, t1, steps, ChunkPlan::whole(self.n, steps.max(1)));
        while self.advance(&mut job) {}
    }

    /// Starts a MeanFlow integration ([`GpuSampler::integrate_mean_flow`]) in the chunks of `plan`.
    pub fn begin_mean_flow(&mut self, t0: f32, t1: f32, steps: u32, plan: ChunkPlan) -> Integration {
        if self.mean_flow.is_none() {
            self.mean_flow = Some(compute_pipeline(&self.ctx.device, Kernel::OdeStep, "meanflow_step", &self.bind_layout, Some(self.shape.width)));
        }
        self.begin_fixed(Stepper::MeanFlow, Solver::Euler, None, t0, t1, steps, plan)
    }

    /// Sets the class and the classifier-free guidance weight every later integration (and
    /// dopri5) follows; takes effect with the next dispatch, no pipeline or buffer is created.
    /// An integration in progress follows the new query from its next chunk.
    pub fn set_query(&mut self, query: Query) {
        self.query = query;
        self.ctx.queue.write_buffer(&self.model_uniform, 0, bytemuck::bytes_of(&ModelDesc::for_query(&self.shape, query)));
    }

    /// The class and guidance in use.
    pub fn query(&self) -> Query {
        self.query
    }

    /// Starts an adaptive integration ([`GpuSampler::integrate_adaptive`]) in the chunks of `plan`.
    pub fn begin_adaptive(&mut self, t0: f32, t1: f32, opts: &AdaptiveOptions, frames: u32, plan: ChunkPlan) -> Integration {
        let frames = if frames <= self.traj_steps { frames } else { 0 };
        if self.adaptive.is_none() {
            self.adaptive = Some(self.build_adaptive());
        }
        let plan = fit(plan, self.n, plan_steps(Solver::Dopri5, opts.max_nfe));
        Integration { method: Method::Adaptive { opts: *opts, frames }, t0, t1, plan, next: 0, running: None }
    }

    /// Submits the next chunk of `job`; false (nothing submitted) when it is done. Call again
    /// only once the previous chunk finished (`gpu::chunked`), or the chunks pile up in the queue.
    pub fn advance(&mut self, job: &mut Integration) -> bool {
        if job.is_done() {
            return false;
        }
        let Some(chunk) = job.plan.get(job.next) else { return false };
        match job.method {
            Method::Fixed { stepper, solver, sde, steps, record } => self.encode_fixed(stepper, solver, sde, job.t0, job.t1, steps, record, chunk),
            Method::Adaptive { opts, frames } => self.encode_adaptive(job.t0, job.t1, &opts, frames, chunk),
        }
        job.next += 1;
        true
    }

    /// Runs `job` to the end, a chunk at a time, each queued once the previous one is done (an
    /// adaptive integration stops as soon as no particle is running).
    pub async fn run(&mut self, job: &mut Integration) -> Result<(), GpuError> {
        self.run_with(job, || {}).await
    }

    /// As [`GpuSampler::run`], calling `submitted` right after each chunk's submit (the engine
    /// accounts the chunks' device time).
    pub async fn run_with(&mut self, job: &mut Integration, mut submitted: impl FnMut()) -> Result<(), GpuError> {
        while self.advance(job) {
            submitted();
            if job.is_adaptive() && job.round_ended() {
                let running = self.read_running().await?;
                job.set_running(running);
            } else {
                super::chunked::queue_done(&self.ctx).await?;
            }
        }
        Ok(())
    }

    /// Steps `[first_step, end_step)` of `stepper` (`solver`; the SDE's noise) for the chunk's
    /// particles.
    #[allow(clippy::too_many_arguments)]
    fn encode_fixed(&self, stepper: Stepper, solver: Solver, sde: Option<SdeSpec>, t0: f32, t1: f32, steps: u32, record: bool, chunk: Chunk) {
        let h = (t1 - t0) / steps as f32;
        let (first, end) = (chunk.first_item, chunk.first_item + chunk.items);
        let mut k0 = chunk.first_step;
        while k0 < chunk.end_step() {
            let k = (chunk.end_step() - k0).min(MAX_ODE_STEPS_PER_SUBMIT);
            let params: Vec<OdeParams> = (k0..k0 + k)
                .map(|i| OdeParams {
                    n: self.n,
                    solver: solver.code(),
                    record: record as u32,
                    step_index: i,
                    t: crate::cpu::ode::step_time(t0, t1, steps, i),
                    h,
                    seed: self.seed,
                    n_source: self.n_source,
                    noise: sde.map_or(0.0, |s| s.noise),
                    path: sde.map_or(0, |s| s.path.code()),
                    sigma_min: sde.map_or(0.0, |s| s.sigma_min),
                    first,
                    end,
                    ..Default::default()
                })
                .collect();
            self.ctx.queue.write_buffer(&self.ode_uniform, 0, &slots(&params));
            self.run_pass(|pass, s| {
                let pipeline = match stepper {
                    Stepper::Ode => &s.step,
                    Stepper::Sde => s.sde.as_ref().expect("built by begin_sde"),
                    Stepper::MeanFlow => s.mean_flow.as_ref().expect("built by begin_mean_flow"),
                };
                pass.set_pipeline(pipeline);
                let (x, y) = dispatch_groups(chunk.items, 64);
                for i in 0..k {
                    pass.set_bind_group(0, &s.group, &[(i as u64 * SLOT) as u32]);
                    pass.dispatch_workgroups(x, y, 1);
                }
            });
            k0 += k;
        }
    }

    /// The chunk's particles through the adaptive solver up to the chunk's share of the budget.
    fn encode_adaptive(&self, t0: f32, t1: f32, opts: &AdaptiveOptions, frames: u32, chunk: Chunk) {
        let a = self.adaptive.as_ref().expect("built by begin_adaptive");
        if chunk.first_item == 0 {
            // A new round: count the particles still running at its end afresh.
            self.ctx.queue.write_buffer(&a.running, 0, &[0u8; 4]);
        }
        let limit = (1u64 + 6 * chunk.end_step() as u64).min(opts.max_nfe as u64) as u32;
        let p = AdaptiveParams {
            n: self.n,
            frames,
            max_nfe: opts.max_nfe,
            first: chunk.first_item,
            t0,
            t1,
            rtol: opts.rtol,
            atol: opts.atol,
            safety: opts.safety,
            min_factor: opts.min_factor,
            max_factor: opts.max_factor,
            h0: opts.h0,
            h_min: opts.h_min,
            h_max: opts.h_max,
            limit,
            start: chunk.starts() as u32,
            end: chunk.first_item + chunk.items,
            ..Default::default()
        };
        self.ctx.queue.write_buffer(&a.uniform, 0, bytemuck::bytes_of(&p));
        self.run_pass(|pass, s| {
            let a = s.adaptive.as_ref().expect("built by begin_adaptive");
            pass.set_pipeline(&a.pipeline);
            pass.set_bind_group(0, &a.group, &[]);
            let (x, y) = dispatch_groups(chunk.items, 64);
            pass.dispatch_workgroups(x, y, 1);
        });
    }

    /// Sets the adaptive solver's tolerance (`rtol = atol = tol`); out-of-range values are
    /// rejected with a message naming the allowed range.
    pub fn set_tol(&mut self, tol: f32) -> Result<(), String> {
        AdaptiveOptions::new(tol, MIN_NFE)?;
        self.tol = tol;
        Ok(())
    }

    /// Integrates every particle from `t0` to `t1 > t0` with Dormand–Prince 5(4) and its own
    /// step size (`shaders/ode_adaptive.wgsl`, twin `cpu::adaptive::integrate`). With `frames > 0`
    /// (and a trajectory buffer of at least `frames` steps) rows `1..=frames` of the trajectory
    /// get the states at equally spaced times; row 0 is left as it is. One dispatch (see
    /// [`GpuSampler::begin_adaptive`] for chunks).
    pub fn integrate_adaptive(&mut self, t0: f32, t1: f32, opts: &AdaptiveOptions, frames: u32) {
        let plan = ChunkPlan::whole(self.n, plan_steps(Solver::Dopri5, opts.max_nfe));
        let mut job = self.begin_adaptive(t0, t1, opts, frames, plan);
        while self.advance(&mut job) {}
    }

    fn build_adaptive(&self) -> Adaptive {
        let device = &self.ctx.device;
        let uniform = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("sampler.adaptive_params"),
            size: std::mem::size_of::<AdaptiveParams>() as u64,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let storage = |label: &str, size: u64| {
            device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(label),
                size,
                usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            })
        };
        let stats = storage("sampler.adaptive_stats", self.n as u64 * 8);
        let state = storage("sampler.adaptive_state", self.n as u64 * ADAPTIVE_STATE_BYTES);
        let running = storage("sampler.adaptive_running", 4);
        use Binding::*;
        let bgl = bind_group_layout(device, "ode_adaptive", &[Uniform, Uniform, StorageRead, StorageReadWrite, StorageReadWrite, StorageReadWrite, StorageReadWrite, StorageReadWrite]);
        let pipeline = compute_pipeline(device, Kernel::OdeAdaptive, "ode_adaptive", &bgl, Some(self.shape.width));
        let group = bind_group(device, "ode_adaptive", &bgl, &[
            (&uniform, None), (&self.model_uniform, None), (&self.params, None), (&self.particles, None), (&self.traj, None), (&stats, None), (&state, None), (&running, None),
        ]);
        let _live = super::counter::Owned::new(&[&uniform, &stats, &state, &running]);
        Adaptive { pipeline, group, uniform, stats, running, _live }
    }

    /// Particles of the last adaptive round still running (read after a round of chunks).
    pub async fn read_running(&self) -> Result<u32, GpuError> {
        let Some(a) = &self.adaptive else { return Ok(0) };
        let bytes = super::readback::read_bytes(&self.ctx, &a.running, 0, 4).await?;
        Ok(u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
    }

    /// Field evaluations per particle and the count of unfinished particles of the last
    /// adaptive integration (empty before the first one).
    pub async fn read_adaptive_summary(&self) -> Result<AdaptiveSummary, GpuError> {
        let Some(a) = &self.adaptive else { return Ok(AdaptiveSummary::default()) };
        let bytes = super::readback::read_bytes(&self.ctx, &a.stats, 0, self.n as u64 * 8).await?;
        let v: Vec<u32> = bytemuck::pod_collect_to_vec(&bytes);
        let nfe = v.chunks_exact(2).map(|c| c[0]).collect();
        let unfinished = v.chunks_exact(2).filter(|c| c[1] == 0).count();
        Ok(AdaptiveSummary { nfe, unfinished })
    }

    fn run_pass(&self, f: impl FnOnce(&mut wgpu::ComputePass<'_>, &Self)) {
        let mut encoder = self.ctx.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("sampler") });
        {
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor { label: Some("sampler"), timestamp_writes: None });
            f(&mut pass, self);
        }
        self.ctx.queue.submit([encoder.finish()]);
    }

    /// Reads the current particle positions.
    pub async fn read_particles(&self) -> Result<Vec<[f32; 2]>, GpuError> {
        let v = read_f32(&self.ctx, &self.particles, 0, self.n as u64 * 2).await?;
        Ok(v.chunks_exact(2).map(|c| [c[0], c[1]]).collect())
    }

    /// Overwrites particle positions (tests; custom starting points).
    pub fn write_particles(&self, points: &[[f32; 2]]) {
        self.ctx.queue.write_buffer(&self.particles, 0, bytemuck::cast_slice(points));
    }

    /// Reads the recorded trajectories, `(traj_steps + 1) × N` points, step-major.
    pub async fn read_trajectories(&self) -> Result<Vec<[f32; 2]>, GpuError> {
        let len = if self.traj_steps > 0 { (self.traj_steps as u64 + 1) * self.n as u64 } else { 0 };
        let v = read_f32(&self.ctx, &self.traj, 0, len * 2).await?;
        Ok(v.chunks_exact(2).map(|c| [c[0], c[1]]).collect())
    }
}

/// `plan`'s chunk sizes over `items` × `steps`.
fn fit(plan: ChunkPlan, items: u32, steps: u32) -> ChunkPlan {
    let (items, steps) = (items.max(1), steps.max(1));
    ChunkPlan { items, steps, items_per_chunk: plan.items_per_chunk.clamp(1, items), steps_per_chunk: plan.steps_per_chunk.clamp(1, steps) }
}
