//! How straight the learned flow is, measured on the GPU while sampling: kinetic energy,
//! transport cost, straightness (`shaders/flow_stats.wgsl`) and a minibatch estimate of
//! W2²(source, samples) by exact matching (`shaders/w2_minibatch.wgsl`). The math and its CPU twin
//! are in `cpu::flow_stats` and `cpu::assignment`.
//!
//! It drives a [`GpuSampler`]'s particles (from their origins at t = 0, as `reset`/`rewind` leave
//! them) with its own measured step kernel, so the samples it produces are the samples; only the
//! final means (and the W2 minibatch costs) are read back.

use super::readback::read_f32;
use super::sampler::GpuSampler;
use super::shaders::{bind_group, bind_group_layout, compute_pipeline, Binding, Kernel};
use super::uniforms::{slots, FlowStepParams, W2Params, SLOT};
use super::{dispatch_groups, GpuContext, GpuError};
use crate::config::Solver;
pub use crate::cpu::flow_stats::FlowStats;
use crate::cpu::flow_stats::{w2_batches, W2_MAX_BATCHES};
use crate::model::ModelShape;

/// Measured steps encoded per submit at most (size of the per-step uniform ring).
pub const MAX_MEASURED_STEPS_PER_SUBMIT: u32 = 512;
/// Floats of `out` before the W2 minibatch costs: K, T, S and padding.
const OUT_HEADER: u32 = 4;

pub struct GpuFlowStats {
    ctx: GpuContext,
    n: u32,
    step_uniform: wgpu::Buffer,
    w2_uniform: wgpu::Buffer,
    energy: wgpu::Buffer,
    out: wgpu::Buffer,
    step: wgpu::ComputePipeline,
    reduce: wgpu::ComputePipeline,
    w2: wgpu::ComputePipeline,
    group: wgpu::BindGroup,
    w2_group: wgpu::BindGroup,
    _live: super::counter::Owned,
}

impl GpuFlowStats {
    /// Measures `sampler`'s particles under the model of `shape` whose parameters are `params`,
    /// with the sampler's class and guidance (its model uniform is shared: `GpuSampler::set_query`).
    pub fn new(ctx: &GpuContext, shape: &ModelShape, params: &wgpu::Buffer, sampler: &GpuSampler) -> Result<Self, GpuError> {
        let n = sampler.len();
        super::trainer::check_fits(ctx, &[("flow-statistics energies", n as u64 * 4)])?;
        let device = &ctx.device;
        let uniform = |label: &str, size: u64| {
            device.create_buffer(&wgpu::BufferDescriptor { label: Some(label), size, usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST, mapped_at_creation: false })
        };
        let step_uniform = uniform("flow_stats.step_params", SLOT * MAX_MEASURED_STEPS_PER_SUBMIT as u64);
        let w2_uniform = uniform("flow_stats.w2_params", std::mem::size_of::<W2Params>() as u64);
        let storage = |label: &str, floats: u64| {
            device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(label),
                size: floats.max(1) * 4,
                usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
                mapped_at_creation: false,
            })
        };
        let energy = storage("flow_stats.energy", n as u64);
        let out = storage("flow_stats.out", (OUT_HEADER + W2_MAX_BATCHES) as u64);
        use Binding::*;
        let step_size = std::mem::size_of::<FlowStepParams>() as u64;
        let bgl = bind_group_layout(device, "flow_stats", &[
            UniformDynamic(step_size), Uniform, StorageRead, StorageReadWrite, StorageRead, StorageReadWrite, StorageReadWrite,
        ]);
        let hidden = Some(shape.width);
        let step = compute_pipeline(device, Kernel::FlowStats, "measured_step", &bgl, hidden);
        let reduce = compute_pipeline(device, Kernel::FlowStats, "flow_stats_reduce", &bgl, hidden);
        let group = bind_group(device, "flow_stats", &bgl, &[
            (&step_uniform, Some(step_size)), (&sampler.model_uniform, None), (params, None), (&sampler.particles, None), (&sampler.origins, None), (&energy, None), (&out, None),
        ]);
        let w2_bgl = bind_group_layout(device, "w2_minibatch", &[Uniform, StorageRead, StorageRead, StorageReadWrite]);
        let w2 = compute_pipeline(device, Kernel::W2Minibatch, "w2_minibatch", &w2_bgl, None);
        let w2_group = bind_group(device, "w2_minibatch", &w2_bgl, &[(&w2_uniform, None), (&sampler.origins, None), (&sampler.particles, None), (&out, None)]);
        let _live = super::counter::Owned::new(&[&step_uniform, &w2_uniform, &energy, &out]);
        Ok(GpuFlowStats { ctx: ctx.clone(), n, step_uniform, w2_uniform, energy, out, step, reduce, w2, group, w2_group, _live })
    }

    /// Integrates the sampler's particles from t = 0 to 1 in `steps` equal steps of `solver`'s
    /// tableau (dopri5: fixed Dormand–Prince steps; see `cpu::flow_stats::measured_steps`),
    /// accumulating each particle's kinetic energy. The particles end at the samples.
    pub fn integrate(&self, solver: Solver, steps: u32) {
        self.integrate_steps(solver, steps, 0, steps.max(1));
    }

    /// Steps `[first, first + count)` of [`GpuFlowStats::integrate`]'s `steps` (a chunk of the
    /// work budget's `ChunkPlan`: the caller queues the next range once this one is done).
    pub fn integrate_steps(&self, solver: Solver, steps: u32, first: u32, count: u32) {
        let steps = steps.max(1);
        let h = 1.0 / steps as f32;
        let end = (first + count).min(steps);
        let mut k0 = first;
        while k0 < end {
            let k = (end - k0).min(MAX_MEASURED_STEPS_PER_SUBMIT);
            let params: Vec<FlowStepParams> = (k0..k0 + k)
                .map(|i| FlowStepParams {
                    n: self.n,
                    solver: solver.code(),
                    first: (i == 0) as u32,
                    t: crate::cpu::ode::step_time(0.0, 1.0, steps, i),
                    h,
                    ..Default::default()
                })
                .collect();
            self.ctx.queue.write_buffer(&self.step_uniform, 0, &slots(&params));
            self.run(|pass| {
                pass.set_pipeline(&self.step);
                let (x, y) = dispatch_groups(self.n, 64);
                for i in 0..k {
                    pass.set_bind_group(0, &self.group, &[(i as u64 * SLOT) as u32]);
                    pass.dispatch_workgroups(x, y, 1);
                }
            });
            k0 += k;
        }
    }

    /// The means over the particles of the last [`GpuFlowStats::integrate`] (reduced on the GPU)
    /// and the minibatch W2² (the particles' origins matched with their end points).
    pub async fn read(&self) -> Result<FlowStats, GpuError> {
        self.read_with(true).await
    }

    /// As [`GpuFlowStats::read`]; without `w2` only the means (the matching, one workgroup per
    /// minibatch with a barrier per step, costs seconds on a software adapter) and `w2_squared`
    /// is NaN.
    pub async fn read_with(&self, w2: bool) -> Result<FlowStats, GpuError> {
        let (m, batches) = w2_batches(self.n);
        let q = &self.ctx.queue;
        q.write_buffer(&self.step_uniform, 0, bytemuck::bytes_of(&FlowStepParams { n: self.n, ..Default::default() }));
        q.write_buffer(&self.w2_uniform, 0, bytemuck::bytes_of(&W2Params { n: self.n, m, batches, out_offset: OUT_HEADER }));
        self.run(|pass| {
            pass.set_pipeline(&self.reduce);
            pass.set_bind_group(0, &self.group, &[0]);
            pass.dispatch_workgroups(1, 1, 1);
            if w2 {
                pass.set_pipeline(&self.w2);
                pass.set_bind_group(0, &self.w2_group, &[]);
                pass.dispatch_workgroups(batches, 1, 1);
            }
        });
        let read = if w2 { OUT_HEADER + batches } else { OUT_HEADER };
        let v = read_f32(&self.ctx, &self.out, 0, read as u64).await?;
        let costs = &v[OUT_HEADER as usize..];
        Ok(FlowStats {
            kinetic_energy: v[0] as f64,
            transport_cost: v[1] as f64,
            straightness: v[2] as f64,
            w2_squared: if w2 { costs.iter().map(|&x| x as f64).sum::<f64>() / costs.len() as f64 } else { f64::NAN },
        })
    }

    /// Each particle's kinetic energy `∫|v|² dt` of the last integration (tests).
    pub async fn read_energy(&self) -> Result<Vec<f32>, GpuError> {
        read_f32(&self.ctx, &self.energy, 0, self.n as u64).await
    }

    /// The W2 minibatch costs of the last [`GpuFlowStats::read`] (tests).
    pub async fn read_w2_batches(&self) -> Result<Vec<f32>, GpuError> {
        read_f32(&self.ctx, &self.out, OUT_HEADER as u64, w2_batches(self.n).1 as u64).await
    }

    fn run(&self, f: impl FnOnce(&mut wgpu::ComputePass<'_>)) {
        let mut encoder = self.ctx.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("flow_stats") });
        {
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor { label: Some("flow_stats"), timestamp_writes: None });
            f(&mut pass);
        }
        self.ctx.queue.submit([encoder.finish()]);
    }
}
