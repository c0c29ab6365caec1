//! Live sample quality on the GPU: sliced Wasserstein-2 between the particles and the target
//! (`shaders/sliced_w2.wgsl`). The CFM loss plateaus at a level set by the data (the conditional
//! targets are noisy), so it cannot say whether samples are good; this distance can, and goes to
//! the estimator's floor (~0.05 at 1024 samples) as the model improves.

use super::readback::read_f32;
use super::shaders::{bind_group, bind_group_layout, compute_pipeline, Binding, Kernel};
use super::uniforms::QualityParams;
use super::{GpuContext, GpuError};

/// Samples per side (the kernel's workgroup arrays hold 1024).
pub const QUALITY_SAMPLES: u32 = 1024;

pub struct GpuQuality {
    ctx: GpuContext,
    n_dirs: u32,
    n_particles: u32,
    n_points: u32,
    uniform: wgpu::Buffer,
    out: wgpu::Buffer,
    pipeline: wgpu::ComputePipeline,
    group: wgpu::BindGroup,
    /// The target points' buffer (counted) when this evaluator holds its own (`with_points`).
    _points: Option<super::counter::Owned>,
    _live: super::counter::Owned,
}

impl GpuQuality {
    /// Compares `particles` (`n_particles` vec2) with `data` (`n_points` vec2) over `n_dirs`
    /// directions.
    pub fn new(ctx: &GpuContext, particles: &wgpu::Buffer, n_particles: u32, data: &wgpu::Buffer, n_points: u32, n_dirs: u32) -> Self {
        let n_dirs = n_dirs.clamp(1, 65535);
        let device = &ctx.device;
        let uniform = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("quality.params"),
            size: std::mem::size_of::<QualityParams>() as u64,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let out = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("quality.w2sq"),
            size: n_dirs as u64 * 4,
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        });
        use Binding::*;
        let bgl = bind_group_layout(device, "quality", &[Uniform, StorageRead, StorageRead, StorageReadWrite]);
        let pipeline = compute_pipeline(device, Kernel::SlicedW2, "sliced_w2", &bgl, None);
        let group = bind_group(device, "quality", &bgl, &[(&uniform, None), (particles, None), (data, None), (&out, None)]);
        let _live = super::counter::Owned::new(&[&uniform, &out]);
        GpuQuality { ctx: ctx.clone(), n_dirs, n_particles, n_points, uniform, out, pipeline, group, _points: None, _live }
    }

    /// Compares `particles` with `points` (at least one), uploaded into a buffer of its own: e.g.
    /// one class's points of a labelled target (`engine::quality::class_points`).
    pub fn with_points(ctx: &GpuContext, particles: &wgpu::Buffer, n_particles: u32, points: &[[f32; 2]], n_dirs: u32) -> Self {
        use wgpu::util::DeviceExt;
        let buf = ctx.device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some("quality.points"),
            contents: bytemuck::cast_slice(if points.is_empty() { &[[0.0f32; 2]][..] } else { points }),
            usage: wgpu::BufferUsages::STORAGE,
        });
        let mut q = Self::new(ctx, particles, n_particles, &buf, points.len().max(1) as u32, n_dirs);
        q._points = Some(super::counter::Owned::new(&[&buf]));
        q
    }

    /// The directions' angle offset of the evaluation keyed by `seed` (a fraction of π / K).
    pub fn offset(seed: u32) -> f32 {
        crate::rng::unit(crate::rng::hash4(seed, 0, 0, crate::rng::stream::QUALITY_OFFSET))
    }

    /// Queues one evaluation (target subset and direction offset from `seed`).
    pub fn encode(&self, seed: u32) {
        let offset = Self::offset(seed);
        let p = QualityParams { n_particles: self.n_particles, n_points: self.n_points, n_dirs: self.n_dirs, seed, offset, _pad: [0.0; 3] };
        self.ctx.queue.write_buffer(&self.uniform, 0, bytemuck::bytes_of(&p));
        let mut encoder = self.ctx.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("quality") });
        {
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor { label: Some("quality"), timestamp_writes: None });
            pass.set_pipeline(&self.pipeline);
            pass.set_bind_group(0, &self.group, &[]);
            pass.dispatch_workgroups(self.n_dirs, 1, 1);
        }
        self.ctx.queue.submit([encoder.finish()]);
    }

    /// The per-direction W2² of the last evaluation.
    pub async fn read_projections(&self) -> Result<Vec<f32>, GpuError> {
        read_f32(&self.ctx, &self.out, 0, self.n_dirs as u64).await
    }

    /// Runs an evaluation and returns SW2 = sqrt(mean W2²).
    pub async fn sliced_w2(&self, seed: u32) -> Result<f32, GpuError> {
        self.encode(seed);
        self.read().await
    }

    /// SW2 of the evaluation queued last ([`GpuQuality::encode`]).
    pub async fn read(&self) -> Result<f32, GpuError> {
        let v = self.read_projections().await?;
        Ok((v.iter().map(|&x| x as f64).sum::<f64>() / v.len() as f64).sqrt() as f32)
    }
}
