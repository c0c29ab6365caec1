//! The one async path from a GPU buffer to the CPU, for both targets:
//! copy into a MAP_READ staging buffer → `map_async` → oneshot → `.await`
//! (natively the device is polled first; on the web the browser drives the callback).

use super::{GpuContext, GpuError};

/// Reads `size` bytes at `offset` of `src` (which needs COPY_SRC). Both must be multiples of 4.
pub async fn read_bytes(ctx: &GpuContext, src: &wgpu::Buffer, offset: u64, size: u64) -> Result<Vec<u8>, GpuError> {
    let staging = ctx.device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("readback.staging"),
        size,
        usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    let mut encoder = ctx.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("readback") });
    encoder.copy_buffer_to_buffer(src, offset, &staging, 0, size);
    ctx.queue.submit([encoder.finish()]);
    let _live = super::counter::Owned::new(&[&staging]);
    map_staging(ctx, &staging).await
}

/// Maps an already-filled staging buffer, copies its bytes out and unmaps it.
pub async fn map_staging(ctx: &GpuContext, staging: &wgpu::Buffer) -> Result<Vec<u8>, GpuError> {
    let (tx, rx) = futures_channel::oneshot::channel();
    staging.map_async(wgpu::MapMode::Read, .., move |r| {
        let _ = tx.send(r);
    });
    ctx.wait_idle();
    rx.await
        .map_err(|_| GpuError::Readback("the device was lost before the buffer mapped".into()))?
        .map_err(|e| GpuError::Readback(e.to_string()))?;
    let bytes = staging
        .get_mapped_range(..)
        .map_err(|e| GpuError::Readback(e.to_string()))?
        .to_vec();
    staging.unmap();
    Ok(bytes)
}

/// Reads `len` f32 values starting at float index `start`.
pub async fn read_f32(ctx: &GpuContext, src: &wgpu::Buffer, start: u64, len: u64) -> Result<Vec<f32>, GpuError> {
    if len == 0 {
        return Ok(Vec::new());
    }
    let bytes = read_bytes(ctx, src, start * 4, len * 4).await?;
    Ok(bytemuck::pod_collect_to_vec(&bytes))
}
