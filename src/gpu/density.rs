//! Exact log-likelihood of points (e.g. a heat-map grid, or held-out data) under the learned flow,
//! on the GPU (`shaders/density.wgsl`). Reads the trainer's parameter buffer directly.

use super::readback::read_f32;
use super::shaders::{bind_group, bind_group_layout, compute_pipeline, Binding, Kernel};
use super::trainer::check_fits;
use super::uniforms::{DensityParams, ModelDesc};
use super::{dispatch_groups, GpuContext, GpuError};
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
        let bgl = bind_group_layout(device, "density", &[Uniform, Uniform, StorageRead, StorageRead, StorageReadWrite]);
        let pipeline = compute_pipeline(device, Kernel::Density, "log_density", &bgl, Some(shape.width));
        let group = bind_group(device, "density", &bgl, &[(&uniform, None), (&model, None), (params, None), (&points, None), (&log_p, None)]);
        let _live = super::counter::Owned::new(&[&points, &log_p, &uniform, &model]);
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

    /// Queues the evaluation of `log_density` without reading back; returns the points evaluated.
    pub fn encode(&self, points: &[[f32; 2]], solver: Solver, steps: u32) -> u32 {
        let n = points.len().min(self.capacity as usize) as u32;
        if n == 0 {
            return 0;
        }
        let q = &self.ctx.queue;
        q.write_buffer(&self.points, 0, bytemuck::cast_slice(&points[..n as usize]));
        q.write_buffer(&self.uniform, 0, bytemuck::bytes_of(&DensityParams { n, steps: steps.max(1), solver: solver.code(), _pad: 0 }));
        let mut encoder = self.ctx.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("density") });
        {
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor { label: Some("density"), timestamp_writes: None });
            pass.set_pipeline(&self.pipeline);
            pass.set_bind_group(0, &self.group, &[]);
            let (x, y) = dispatch_groups(n, 64);
            pass.dispatch_workgroups(x, y, 1);
        }
        q.submit([encoder.finish()]);
        n
    }
}
