//! The exact marginal velocity field of the target points on the GPU (`shaders/exact_field.wgsl`;
//! math and CPU twin in `cpu::exact`): the field at given points and times (the page's arrows),
//! the "field error" `E_{t, x_t} |v_θ - u_t|²` of the learned field, and the "exact flow" that
//! integrates it (and memorises the training points).
//!
//! Only for the Gaussian source: the formula's weights are the source's density. Work is
//! (points evaluated) × (target points); one dispatch may do at most [`MAX_EXACT_WORK`] of it, so a
//! request that would keep the GPU busy for too long is refused before anything is queued.

use super::readback::read_f32;
use super::sampler::GpuSampler;
use super::shaders::{bind_group, bind_group_layout, compute_pipeline, Binding, Kernel};
use super::uniforms::{slots, ExactParams, ModelDesc, SLOT};
use super::{dispatch_groups, GpuContext, GpuError};
use crate::config::{Path, Solver};
use crate::model::ModelShape;
use wgpu::util::DeviceExt;

/// Exact-flow steps encoded per submit at most (size of the per-step uniform ring).
pub const MAX_EXACT_STEPS_PER_SUBMIT: u32 = 512;
/// Field evaluations × target points one dispatch may do (about a second on a laptop GPU).
pub const MAX_EXACT_WORK: u64 = 1 << 32;
/// Invocations per point (`EXACT_WG` in the shader).
const EXACT_WG: u32 = 64;
/// The exact flow steps each particle in one invocation over every point
/// (`exact_flow_step_serial`) up to this many target points; above, a workgroup per particle
/// shares the points and merges their sums in workgroup memory (`exact_flow_step`).
pub const EXACT_SERIAL_MAX: u32 = 256;

/// Refuses a dispatch of `evaluations` field evaluations over `points` target points above the
/// work budget, naming what to lower.
pub fn check_work(evaluations: u64, points: u32) -> Result<(), GpuError> {
    let work = evaluations.saturating_mul(points as u64);
    if work > MAX_EXACT_WORK {
        return Err(GpuError::TooLarge(format!(
            "the exact field would evaluate {evaluations} points against {points} target points ({work:.2e} terms) in one dispatch; \
             at most {MAX_EXACT_WORK:.2e}: use fewer particles or target points",
            work = work as f64,
            MAX_EXACT_WORK = MAX_EXACT_WORK as f64
        )));
    }
    Ok(())
}

pub struct GpuExactField {
    ctx: GpuContext,
    capacity: u32,
    n_points: u32,
    path: Path,
    sigma_min: f32,
    uniform: wgpu::Buffer,
    queries: wgpu::Buffer,
    out: wgpu::Buffer,
    layout: wgpu::BindGroupLayout,
    at: wgpu::ComputePipeline,
    error: wgpu::ComputePipeline,
    flow_step: wgpu::ComputePipeline,
    flow_step_serial: wgpu::ComputePipeline,
    group: wgpu::BindGroup,
    data: wgpu::Buffer,
    model: wgpu::Buffer,
    params: wgpu::Buffer,
    _live: super::counter::Owned,
}

impl GpuExactField {
    /// The exact field of the first `n_points` points of `data` (e.g. the trainer's target buffer
    /// and `target_len()`), with room for `capacity` queries; `params` is the model compared with it.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        ctx: &GpuContext,
        shape: &ModelShape,
        params: &wgpu::Buffer,
        data: &wgpu::Buffer,
        n_points: u32,
        path: Path,
        sigma_min: f32,
        capacity: u32,
    ) -> Result<Self, GpuError> {
        if n_points == 0 || n_points as u64 * 8 > data.size() {
            return Err(GpuError::Invalid(format!("the exact field needs target points: {n_points} given for a buffer of {} bytes", data.size())));
        }
        let capacity = capacity.max(1);
        super::trainer::check_fits(ctx, &[("exact-field queries", capacity as u64 * 16)])?;
        let device = &ctx.device;
        let uniform = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("exact.params"),
            size: SLOT * MAX_EXACT_STEPS_PER_SUBMIT as u64,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let storage = |label: &str, bytes: u64| {
            device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(label),
                size: bytes.max(16),
                usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            })
        };
        let queries = storage("exact.queries", capacity as u64 * 16);
        let out = storage("exact.out", capacity as u64 * 16);
        // One dummy per writable binding: WebGPU forbids two writable bindings of one buffer in a
        // bind group (Dawn drops the dispatch with a validation error; wgpu native does not check).
        let no_particles = storage("exact.no_particles", 16);
        let no_traj = storage("exact.no_traj", 16);
        let model = device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some("exact.model"),
            contents: bytemuck::bytes_of(&ModelDesc::for_shape(shape)),
            usage: wgpu::BufferUsages::UNIFORM,
        });
        use Binding::*;
        let size = std::mem::size_of::<ExactParams>() as u64;
        let layout = bind_group_layout(device, "exact", &[
            UniformDynamic(size), StorageRead, Uniform, StorageRead, StorageReadWrite, StorageReadWrite, StorageReadWrite, StorageReadWrite,
        ]);
        let hidden = Some(shape.width);
        let at = compute_pipeline(device, Kernel::ExactField, "exact_field_at", &layout, hidden);
        let error = compute_pipeline(device, Kernel::ExactField, "field_error", &layout, hidden);
        let flow_step = compute_pipeline(device, Kernel::ExactField, "exact_flow_step", &layout, hidden);
        let flow_step_serial = compute_pipeline(device, Kernel::ExactField, "exact_flow_step_serial", &layout, hidden);
        let group = bind_group(device, "exact", &layout, &[
            (&uniform, Some(size)), (data, None), (&model, None), (params, None), (&queries, None), (&out, None), (&no_particles, None), (&no_traj, None),
        ]);
        let _live = super::counter::Owned::new(&[&uniform, &queries, &out, &no_particles, &no_traj, &model]);
        Ok(GpuExactField {
            ctx: ctx.clone(),
            capacity,
            n_points,
            path,
            sigma_min,
            uniform,
            queries,
            out,
            layout,
            at,
            error,
            flow_step,
            flow_step_serial,
            group,
            data: data.clone(),
            model,
            params: params.clone(),
            _live,
        })
    }

    fn base_params(&self, n: u32) -> ExactParams {
        ExactParams { n, n_points: self.n_points, path: self.path.code(), sigma_min: self.sigma_min, ..Default::default() }
    }

    /// Queues `u_t(x)` for each `(x, t)` (at most `capacity`); the results are in
    /// [`GpuExactField::out_buffer`] as `(u_x, u_y, 0, 0)` per query. Returns the count queued.
    pub fn encode_velocities(&self, queries: &[([f32; 2], f32)]) -> Result<u32, GpuError> {
        let n = queries.len().min(self.capacity as usize) as u32;
        check_work(n as u64, self.n_points)?;
        if n == 0 {
            return Ok(0);
        }
        let q: Vec<[f32; 4]> = queries[..n as usize].iter().map(|(x, t)| [x[0], x[1], *t, 0.0]).collect();
        self.ctx.queue.write_buffer(&self.queries, 0, bytemuck::cast_slice(&q));
        self.ctx.queue.write_buffer(&self.uniform, 0, bytemuck::bytes_of(&self.base_params(n)));
        self.dispatch(&self.at, &self.group, n);
        Ok(n)
    }

    /// Writes the queries `(x, t)` (at most `capacity`) for [`GpuExactField::encode_velocity_chunk`];
    /// returns the count written. Nothing is dispatched.
    pub fn write_queries(&self, queries: &[([f32; 2], f32)]) -> u32 {
        let n = queries.len().min(self.capacity as usize) as u32;
        let q: Vec<[f32; 4]> = queries[..n as usize].iter().map(|(x, t)| [x[0], x[1], *t, 0.0]).collect();
        if n > 0 {
            self.ctx.queue.write_buffer(&self.queries, 0, bytemuck::cast_slice(&q));
        }
        n
    }

    /// Queues `u_t(x)` for queries `[first, first + n)` of those written by
    /// [`GpuExactField::write_queries`] (one dispatch: a chunk of the work budget); results at the
    /// same indices of [`GpuExactField::out_buffer`].
    pub fn encode_velocity_chunk(&self, first: u32, n: u32) -> Result<(), GpuError> {
        let n = n.min(self.capacity.saturating_sub(first));
        check_work(n as u64, self.n_points)?;
        if n == 0 {
            return Ok(());
        }
        self.ctx.queue.write_buffer(&self.uniform, 0, bytemuck::bytes_of(&ExactParams { first, ..self.base_params(n) }));
        self.dispatch(&self.at, &self.group, n);
        Ok(())
    }

    /// `u_t(x)` for each `(x, t)` (at most `capacity`).
    pub async fn velocities(&self, queries: &[([f32; 2], f32)]) -> Result<Vec<[f32; 2]>, GpuError> {
        let n = self.encode_velocities(queries)?;
        let v = read_f32(&self.ctx, &self.out, 0, n as u64 * 4).await?;
        Ok(v.chunks_exact(4).map(|c| [c[0], c[1]]).collect())
    }

    /// The output buffer: `vec4` per query (`exact_field.wgsl`).
    pub fn out_buffer(&self) -> &wgpu::Buffer {
        &self.out
    }

    /// Target points the field averages over.
    pub fn n_points(&self) -> u32 {
        self.n_points
    }

    /// Queues `n` field-error queries (at most `capacity`) of reading `reading`.
    fn encode_field_error(&self, n: u32, seed: u32, reading: u32) -> Result<u32, GpuError> {
        let n = n.clamp(1, self.capacity);
        check_work(n as u64, self.n_points)?;
        let p = ExactParams { seed, reading, ..self.base_params(n) };
        self.ctx.queue.write_buffer(&self.uniform, 0, bytemuck::bytes_of(&p));
        self.dispatch(&self.error, &self.group, n);
        Ok(n)
    }

    /// The field error `E_{t, x_t} |v_θ(x_t, t) - u_t(x_t)|²` over `n` queries (`t ~ U(0, 1)`,
    /// `x_t` on the path from `x0 ~ N(0, I)` to a target point; keyed by `seed` and `reading`).
    /// Unlike the loss, it is 0 for a perfect model.
    pub async fn field_error(&self, n: u32, seed: u32, reading: u32) -> Result<f64, GpuError> {
        let terms = self.field_error_terms(n, seed, reading).await?;
        Ok(terms.iter().map(|(_, u, v)| ((v[0] - u[0]) as f64).powi(2) + ((v[1] - u[1]) as f64).powi(2)).sum::<f64>() / terms.len() as f64)
    }

    /// Per query of a field-error reading: `((x_t, t), u_t(x_t), v_θ(x_t, t))`.
    pub async fn field_error_terms(&self, n: u32, seed: u32, reading: u32) -> Result<Vec<(([f32; 2], f32), [f32; 2], [f32; 2])>, GpuError> {
        let n = self.encode_field_error(n, seed, reading)?;
        let q = read_f32(&self.ctx, &self.queries, 0, n as u64 * 4).await?;
        let o = read_f32(&self.ctx, &self.out, 0, n as u64 * 4).await?;
        Ok(q.chunks_exact(4).zip(o.chunks_exact(4)).map(|(q, o)| (([q[0], q[1]], q[2]), [o[0], o[1]], [o[2], o[3]])).collect())
    }

    /// An exact flow over `sampler`'s particles (and its trajectory buffer).
    pub fn flow(&self, sampler: &GpuSampler) -> GpuExactFlow {
        let size = std::mem::size_of::<ExactParams>() as u64;
        let group = bind_group(&self.ctx.device, "exact_flow", &self.layout, &[
            (&self.uniform, Some(size)), (&self.data, None), (&self.model, None), (&self.params, None), (&self.queries, None), (&self.out, None),
            (&sampler.particles, None), (&sampler.traj, None),
        ]);
        GpuExactFlow { group, n: sampler.len(), traj_steps: sampler.traj_steps() }
    }

    fn dispatch(&self, pipeline: &wgpu::ComputePipeline, group: &wgpu::BindGroup, n: u32) {
        self.run(|pass| {
            pass.set_pipeline(pipeline);
            pass.set_bind_group(0, group, &[0]);
            let (x, y) = dispatch_groups(n * EXACT_WG, EXACT_WG);
            pass.dispatch_workgroups(x, y, 1);
        });
    }

    fn run(&self, f: impl FnOnce(&mut wgpu::ComputePass<'_>)) {
        let mut encoder = self.ctx.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("exact") });
        {
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor { label: Some("exact"), timestamp_writes: None });
            f(&mut pass);
        }
        self.ctx.queue.submit([encoder.finish()]);
    }
}

/// Particles of a [`GpuSampler`] moved by the exact field instead of the network ("exact flow").
pub struct GpuExactFlow {
    group: wgpu::BindGroup,
    n: u32,
    traj_steps: u32,
}

impl GpuExactFlow {
    /// Advances the particles from `t0` to `t1` in `steps` equal steps of `solver`'s tableau (dopri5:
    /// fixed Dormand–Prince steps), recording every state when the sampler records `steps` steps.
    pub fn integrate(&self, field: &GpuExactField, solver: Solver, t0: f32, t1: f32, steps: u32) -> Result<(), GpuError> {
        let steps = steps.max(1);
        let mut k0 = 0;
        while k0 < steps {
            let k = (steps - k0).min(MAX_EXACT_STEPS_PER_SUBMIT);
            self.encode(field, solver, (t0, t1, steps), k0..k0 + k, 0..self.n)?;
            k0 += k;
        }
        Ok(())
    }

    /// Queues steps `ks` (at most [`MAX_EXACT_STEPS_PER_SUBMIT`]) of `steps` equal steps of
    /// `solver` from `t0` to `t1` for particles `particles` only, one dispatch per step, in one
    /// submit: a chunk of the work budget (the page's exact flow layer), so that no dispatch runs
    /// long however many target points there are. Particles move independently: each one's steps
    /// must be queued in order, in any interleaving with the others'.
    pub fn encode(&self, field: &GpuExactField, solver: Solver, (t0, t1, steps): (f32, f32, u32), ks: std::ops::Range<u32>, particles: std::ops::Range<u32>) -> Result<(), GpuError> {
        let steps = steps.max(1);
        let (first, end) = (particles.start, particles.end.min(self.n));
        let ks = ks.start..ks.end.min(steps).min(ks.start.saturating_add(MAX_EXACT_STEPS_PER_SUBMIT));
        if first >= end || ks.is_empty() {
            return Ok(());
        }
        check_work((end - first) as u64 * solver.tableau().stages() as u64, field.n_points)?;
        let record = (self.traj_steps > 0 && steps == self.traj_steps) as u32;
        let params: Vec<ExactParams> = ks
            .clone()
            .map(|i| ExactParams {
                solver: solver.code(),
                t: crate::cpu::ode::step_time(t0, t1, steps, i),
                h: (t1 - t0) / steps as f32,
                record,
                step_index: i,
                first,
                end,
                ..field.base_params(self.n)
            })
            .collect();
        field.ctx.queue.write_buffer(&field.uniform, 0, &slots(&params));
        let serial = field.n_points <= EXACT_SERIAL_MAX;
        field.run(|pass| {
            pass.set_pipeline(if serial { &field.flow_step_serial } else { &field.flow_step });
            let threads = if serial { end - first } else { (end - first) * EXACT_WG };
            let (x, y) = dispatch_groups(threads, EXACT_WG);
            for i in 0..params.len() {
                pass.set_bind_group(0, &self.group, &[(i as u64 * SLOT) as u32]);
                pass.dispatch_workgroups(x, y, 1);
            }
        });
        Ok(())
    }

    /// Particles this flow moves.
    pub fn len(&self) -> u32 {
        self.n
    }

    /// Never empty (a sampler has at least one particle); for clippy's `len_without_is_empty`.
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }
}
