//! The GPU engine: the WGSL kernels of `shaders/` driven through wgpu, natively and on WebGPU.
//!
//! `context` finds an adapter and device; `shaders` is the single list of kernels; `uniforms`
//! holds the `#[repr(C)]` structs the kernels read; `trainer` encodes training steps; `sampler`
//! integrates particles; `readback` is the one async path from GPU buffers to the CPU.

pub mod chunked;
pub mod context;
pub mod counter;
pub mod density;
pub mod exact;
pub mod flow_stats;
pub mod field;
pub mod profile;
pub mod limits;
pub mod prelude;
pub mod quality;
pub mod readback;
pub mod reflow;
pub mod sampler;
pub mod shaders;
pub mod snapshot;
pub mod trainer;
pub mod uniforms;

pub use context::{BuildCheck, ErrorLog, FaultKind, GpuContext, GpuError, GpuFault};
pub use density::GpuDensity;
pub use exact::{GpuExactField, GpuExactFlow};
pub use flow_stats::GpuFlowStats;
pub use field::GpuField;
pub use quality::GpuQuality;
pub use reflow::GpuReflow;
pub use sampler::{AdaptiveSummary, GpuSampler};
pub use trainer::{GpuTrainer, KernelVariant, TrainerOptions};

/// Workgroups for `threads` invocations of a `wg_size`-wide kernel, as `(x, y)` with x ≤ 65535
/// (WebGPU's per-dimension limit); kernels flatten the pair with `flat_index`.
pub fn dispatch_groups(threads: u32, wg_size: u32) -> (u32, u32) {
    let groups = threads.div_ceil(wg_size).max(1);
    if groups <= 65535 {
        (groups, 1)
    } else {
        let y = groups.div_ceil(65535);
        (groups.div_ceil(y), y)
    }
}

/// A read-only storage buffer holding packed parameters (a saved model's, for the sampler, the
/// density and the field evaluator without a trainer).
pub fn upload_params(ctx: &GpuContext, params: &[f32]) -> Result<wgpu::Buffer, GpuError> {
    trainer::check_fits(ctx, &[("parameters", params.len() as u64 * 4)])?;
    Ok(wgpu::util::DeviceExt::create_buffer_init(&ctx.device, &wgpu::util::BufferInitDescriptor {
        label: Some("model.params"),
        contents: bytemuck::cast_slice(params),
        usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
    }))
}
