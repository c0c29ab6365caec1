//! Exact log-likelihood of points (e.g. a heat-map grid, or held-out data) under the learned flow,
//! on the GPU (`shaders/density.wgsl`). Reads the trainer's parameter buffer directly.
//!
//! A long evaluation runs in chunks (`budget::ChunkPlan` over points × steps): [`GpuDensity::begin`]
//! uploads the points, [`GpuDensity::advance`] submits one chunk, to be called again once it is
//! done; the augmented state waits on the GPU between chunks, so any split gives what one
//! dispatch gives.

use super::readback::read_f32;
use super::shaders::{bind_group, bind_group_layout, compute_pipeline, Binding, Kernel};
use super::trainer::check_fits;
use super::uniforms::{DensityParams, ModelDesc};
use super::{dispatch_groups, GpuContext, GpuError};
use crate::budget::ChunkPlan;
use crate::config::Solver;
use crate::model::{ModelShape, Query};
use wgpu::util::DeviceExt;

pub struct GpuDensity {
    ctx: GpuContext,
    capacity: u32,
    points: wgpu::Buffer,
    log_p: wgpu::Buffer,
    uniform: wgpu::Buffer,
    model: wgpu::Buffer,
    shape: ModelShape,
    pipeline: wgpu::ComputePipeline,
    group: wgpu::BindGroup,
    _live: super::counter::Owned,
}

impl GpuDensity {
    /// Room for up to `capacity` points per evaluation.
    pub fn new(ctx: &GpuContext, shape: &ModelShape, params: &wgpu::Buffer, capacity: u32) -> Result<Self, GpuError> {
        let capacity = capacity.max(1);
        check_fits(ctx, &[("density points", capacity as u64 * 8)])?;
        let device = &ctx.device;
        let storage = |label: &str, bytes: u64| {
            device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(label),
                size: bytes,
                usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            })
        };
        let points = storage("density.points", capacity as u64 * 8);
        let log_p = storage("density.log_p", capacity as u64 * 4);
        let state = storage("density.state", capacity as u64 * crate::budget::DENSITY_STATE_BYTES);
        let uniform = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("density.params"),
            size: std::mem::size_of::<DensityParams>() as u64,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let model = device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some("density.model"),
            contents: bytemuck::bytes_of(&ModelDesc::for_shape(shape)),
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
        });
        use Binding::*;
        let bgl = bind_group_layout(device, "density", &[Uniform, Uniform, StorageRead, StorageRead, StorageReadWrite, StorageReadWrite]);
        let pipeline = compute_pipeline(device, Kernel::Density, "log_density", &bgl, Some(shape.width));
        let group = bind_group(device, "density", &bgl, &[(&uniform, None), (&model, None), (params, None), (&points, None), (&log_p, None), (&state, None)]);
        let _live = super::counter::Owned::new(&[&points, &log_p, &state, &uniform, &model]);
        Ok(GpuDensity { ctx: ctx.clone(), capacity, points, log_p, uniform, model, shape: *shape, pipeline, group, _live })
    }

    /// The density of `query`'s field (a class; with guidance, of the guided flow) from the next
    /// evaluation on. The default is the no-class field.
    pub fn set_query(&self, query: Query) {
        self.ctx.queue.write_buffer(&self.model, 0, bytemuck::bytes_of(&ModelDesc::for_query(&self.shape, query)));
    }

    /// `log p1(x)` for each point (at most `capacity`), integrating `steps` steps of `solver`.
    pub async fn log_density(&self, points: &[[f32; 2]], solver: Solver, steps: u32) -> Result<Vec<f32>, GpuError> {
        let n = self.encode(points, solver, steps);
        if n == 0 {
            return Ok(Vec::new());
        }
        read_f32(&self.ctx, &self.log_p, 0, n as u64).await
    }

    /// The output buffer: `log p` of point i at index i (f32), for drawing straight from the GPU.
    pub fn log_p_buffer(&self) -> &wgpu::Buffer {
        &self.log_p
    }

    /// Queues the evaluation of `log_density` without reading back, all at once; returns the
    /// points evaluated.
    pub fn encode(&self, points: &[[f32; 2]], solver: Solver, steps: u32) -> u32 {
        let mut job = self.begin(points, solver, steps, ChunkPlan::whole(points.len() as u32, steps));
        while self.advance(&mut job) {}
        job.n
    }

    /// The chunk plan of an evaluation of `n` points on a device doing `flops_per_s` in the
    /// per-point kernels, each chunk about `target_s` (one step of one point: the solver's
    /// evaluations of the network and its two tangents, three forward passes).
    pub fn chunk_plan(&self, n: u32, solver: Solver, steps: u32, flops_per_s: f64, target_s: f64) -> ChunkPlan {
        let flops = 3.0 * 2.0 * self.shape.macs_per_sample() as f64 * solver.evals_per_step() as f64;
        ChunkPlan::new(n.min(self.capacity), steps.max(1), flops, flops_per_s, target_s)
    }

    /// Uploads `points` (at most `capacity`) and starts their evaluation in the chunks of `plan`
    /// (its chunk sizes kept, its totals set to the points and `steps`).
    pub fn begin(&self, points: &[[f32; 2]], solver: Solver, steps: u32, plan: ChunkPlan) -> DensityJob {
        let n = points.len().min(self.capacity as usize) as u32;
        let steps = steps.max(1);
        if n > 0 {
            self.ctx.queue.write_buffer(&self.points, 0, bytemuck::cast_slice(&points[..n as usize]));
        }
        let plan = ChunkPlan {
            items: n.max(1),
            steps,
            items_per_chunk: plan.items_per_chunk.clamp(1, n.max(1)),
            steps_per_chunk: plan.steps_per_chunk.clamp(1, steps),
        };
        DensityJob { n, solver, steps, plan, next: 0 }
    }

    /// Submits the next chunk of `job`; false (nothing submitted) when it is done. Call again
    /// only once the previous chunk finished (`gpu::chunked`).
    pub fn advance(&self, job: &mut DensityJob) -> bool {
        if job.n == 0 {
            return false;
        }
        let Some(c) = job.plan.get(job.next) else { return false };
        let p = DensityParams {
            n: job.n,
            steps: job.steps,
            solver: job.solver.code(),
            first: c.first_item,
            end: c.first_item + c.items,
            k_begin: c.first_step,
            k_end: c.end_step(),
            _pad: 0,
        };
        let q = &self.ctx.queue;
        q.write_buffer(&self.uniform, 0, bytemuck::bytes_of(&p));
        let mut encoder = self.ctx.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("density") });
        {
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor { label: Some("density"), timestamp_writes: None });
            pass.set_pipeline(&self.pipeline);
            pass.set_bind_group(0, &self.group, &[]);
            let (x, y) = dispatch_groups(c.items, 64);
            pass.dispatch_workgroups(x, y, 1);
        }
        q.submit([encoder.finish()]);
        job.next += 1;
        true
    }

    /// `log p1(x)` as [`GpuDensity::log_density`], in the chunks of `plan`, each queued once the
    /// previous one is done.
    pub async fn log_density_chunked(&self, points: &[[f32; 2]], solver: Solver, steps: u32, plan: ChunkPlan) -> Result<Vec<f32>, GpuError> {
        let mut job = self.begin(points, solver, steps, plan);
        while self.advance(&mut job) {
            super::chunked::queue_done(&self.ctx).await?;
        }
        if job.n == 0 {
            return Ok(Vec::new());
        }
        read_f32(&self.ctx, &self.log_p, 0, job.n as u64).await
    }
}

/// One evaluation of [`GpuDensity`] in chunks.
#[derive(Clone, Debug)]
pub struct DensityJob {
    /// Points evaluated.
    pub n: u32,
    solver: Solver,
    steps: u32,
    plan: ChunkPlan,
    next: usize,
}

impl DensityJob {
    pub fn is_done(&self) -> bool {
        self.n == 0 || self.next >= self.plan.len()
    }
    pub fn plan(&self) -> &ChunkPlan {
        &self.plan
    }
}
