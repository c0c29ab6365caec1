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

use super::readback::read_f32;
use super::shaders::{bind_group, bind_group_layout, compute_pipeline, Binding, Kernel};
use super::trainer::check_fits;
use super::uniforms::{slots, AdaptiveParams, ModelDesc, OdeParams, SLOT};
use super::{dispatch_groups, GpuContext, GpuError};
use crate::config::Solver;
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

/// The adaptive solver's pipeline, its uniform and per-particle statistics `(nfe, finished)`.
struct Adaptive {
    pipeline: wgpu::ComputePipeline,
    group: wgpu::BindGroup,
    uniform: wgpu::Buffer,
    stats: wgpu::Buffer,
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

    /// Steps per recorded trajectory (0 if not recording).
    pub fn traj_steps(&self) -> u32 {
        self.traj_steps
    }

    /// Draws fresh starting points x0 ~ N(0, I) keyed by `seed` (t = 0).
    pub fn reset(&mut self, seed: u32) {
        self.seed = seed;
        let p = OdeParams { n: self.n, record: (self.traj_steps > 0) as u32, seed, n_source: self.n_source, ..Default::default() };
        self.ctx.queue.write_buffer(&self.ode_uniform, 0, bytemuck::bytes_of(&p));
        self.run(|pass, s| {
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
    pub fn integrate(&mut self, solver: Solver, t0: f32, t1: f32, steps: u32) {
        if solver == Solver::Dopri5 {
            let frames = if self.traj_steps > 0 && steps == self.traj_steps { self.traj_steps } else { 0 };
            let opts = crate::cpu::adaptive::AdaptiveOptions::new(self.tol, steps.max(crate::cpu::adaptive::MIN_NFE))
                .expect("tolerance checked by set_tol and budget raised to the minimum");
            self.integrate_adaptive(t0, t1, &opts, frames);
            return;
        }
        self.fixed_steps(Stepper::Ode, solver, None, t0, t1, steps);
    }

    /// Advances the particles from `t0` to `t1` in `steps` Euler–Maruyama steps of the SDE with
    /// the ODE's marginals (`shaders/ode_step.wgsl: sde_step`, twin `cpu::sde`); the noise of
    /// particle i at step k is keyed by (reset seed, k, i). `sde.noise = 0` is the Euler ODE
    /// sampler bit for bit. The trained path must have a Gaussian source (the caller checks:
    /// `Config::check_generation`). Recording works as in [`GpuSampler::integrate`].
    pub fn integrate_sde(&mut self, sde: SdeSpec, t0: f32, t1: f32, steps: u32) {
        if self.sde.is_none() {
            self.sde = Some(compute_pipeline(&self.ctx.device, Kernel::OdeStep, "sde_step", &self.bind_layout, Some(self.shape.width)));
        }
        self.fixed_steps(Stepper::Sde, Solver::Euler, Some(sde), t0, t1, steps);
    }

    /// Moves a MeanFlow model's particles from `t0` to `t1` in `steps` equal jumps
    /// `x ← x + h·u(x, t + h, t)` (`meanflow_step`, twin `cpu::meanflow::integrate`). One step
    /// from 0 to 1 is one network evaluation per sample.
    pub fn integrate_mean_flow(&mut self, t0: f32, t1: f32, steps: u32) {
        if self.mean_flow.is_none() {
            self.mean_flow = Some(compute_pipeline(&self.ctx.device, Kernel::OdeStep, "meanflow_step", &self.bind_layout, Some(self.shape.width)));
        }
        self.fixed_steps(Stepper::MeanFlow, Solver::Euler, None, t0, t1, steps);
    }

    /// Sets the class and the classifier-free guidance weight every later integration (and
    /// dopri5) follows; takes effect with the next dispatch, no pipeline or buffer is created.
    pub fn set_query(&mut self, query: Query) {
        self.query = query;
        self.ctx.queue.write_buffer(&self.model_uniform, 0, bytemuck::bytes_of(&ModelDesc::for_query(&self.shape, query)));
    }

    /// The class and guidance in use.
    pub fn query(&self) -> Query {
        self.query
    }

    /// `steps` equal steps of one of the fixed-step kernels.
    fn fixed_steps(&mut self, stepper: Stepper, solver: Solver, sde: Option<SdeSpec>, t0: f32, t1: f32, steps: u32) {
        let h = (t1 - t0) / steps.max(1) as f32;
        let record = (self.traj_steps > 0 && steps == self.traj_steps) as u32;
        let mut k0 = 0;
        while k0 < steps {
            let k = (steps - k0).min(MAX_ODE_STEPS_PER_SUBMIT);
            let params: Vec<OdeParams> = (k0..k0 + k)
                .map(|i| OdeParams {
                    n: self.n,
                    solver: solver.code(),
                    record,
                    step_index: i,
                    t: crate::cpu::ode::step_time(t0, t1, steps, i),
                    h,
                    seed: self.seed,
                    n_source: self.n_source,
                    noise: sde.map_or(0.0, |s| s.noise),
                    path: sde.map_or(0, |s| s.path.code()),
                    sigma_min: sde.map_or(0.0, |s| s.sigma_min),
                    _pad: 0,
                })
                .collect();
            self.ctx.queue.write_buffer(&self.ode_uniform, 0, &slots(&params));
            self.run(|pass, s| {
                let pipeline = match stepper {
                    Stepper::Ode => &s.step,
                    Stepper::Sde => s.sde.as_ref().expect("built by integrate_sde"),
                    Stepper::MeanFlow => s.mean_flow.as_ref().expect("built by integrate_mean_flow"),
                };
                pass.set_pipeline(pipeline);
                let (x, y) = dispatch_groups(s.n, 64);
                for i in 0..k {
                    pass.set_bind_group(0, &s.group, &[(i as u64 * SLOT) as u32]);
                    pass.dispatch_workgroups(x, y, 1);
                }
            });
            k0 += k;
        }
    }

    /// Sets the adaptive solver's tolerance (`rtol = atol = tol`); out-of-range values are
    /// rejected with a message naming the allowed range.
    pub fn set_tol(&mut self, tol: f32) -> Result<(), String> {
        crate::cpu::adaptive::AdaptiveOptions::new(tol, crate::cpu::adaptive::MIN_NFE)?;
        self.tol = tol;
        Ok(())
    }

    /// Integrates every particle from `t0` to `t1 > t0` with Dormand–Prince 5(4) and its own
    /// step size (`shaders/ode_adaptive.wgsl`, twin `cpu::adaptive::integrate`). With `frames > 0`
    /// (and a trajectory buffer of at least `frames` steps) rows `1..=frames` of the trajectory
    /// get the states at equally spaced times; row 0 is left as it is. One dispatch.
    pub fn integrate_adaptive(&mut self, t0: f32, t1: f32, opts: &crate::cpu::adaptive::AdaptiveOptions, frames: u32) {
        let frames = if frames <= self.traj_steps { frames } else { 0 };
        if self.adaptive.is_none() {
            self.adaptive = Some(self.build_adaptive());
        }
        let a = self.adaptive.as_ref().expect("built above");
        let p = AdaptiveParams {
            n: self.n,
            frames,
            max_nfe: opts.max_nfe,
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
            ..Default::default()
        };
        self.ctx.queue.write_buffer(&a.uniform, 0, bytemuck::bytes_of(&p));
        self.run(|pass, s| {
            let a = s.adaptive.as_ref().expect("built above");
            pass.set_pipeline(&a.pipeline);
            pass.set_bind_group(0, &a.group, &[]);
            let (x, y) = dispatch_groups(s.n, 64);
            pass.dispatch_workgroups(x, y, 1);
        });
    }

    fn build_adaptive(&self) -> Adaptive {
        let device = &self.ctx.device;
        let uniform = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("sampler.adaptive_params"),
            size: std::mem::size_of::<AdaptiveParams>() as u64,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let stats = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("sampler.adaptive_stats"),
            size: self.n as u64 * 8,
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        });
        use Binding::*;
        let bgl = bind_group_layout(device, "ode_adaptive", &[Uniform, Uniform, StorageRead, StorageReadWrite, StorageReadWrite, StorageReadWrite]);
        let pipeline = compute_pipeline(device, Kernel::OdeAdaptive, "ode_adaptive", &bgl, Some(self.shape.width));
        let group = bind_group(device, "ode_adaptive", &bgl, &[
            (&uniform, None), (&self.model_uniform, None), (&self.params, None), (&self.particles, None), (&self.traj, None), (&stats, None),
        ]);
        let _live = super::counter::Owned::new(&[&uniform, &stats]);
        Adaptive { pipeline, group, uniform, stats, _live }
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

    fn run(&self, f: impl FnOnce(&mut wgpu::ComputePass<'_>, &Self)) {
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
