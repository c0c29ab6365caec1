//! Per-kernel GPU time of training steps, from timestamp queries written between dispatches
//! (`flowmatch bench --profile N`; native only in practice: needs the adapter features
//! `TIMESTAMP_QUERY` and `TIMESTAMP_QUERY_INSIDE_PASSES`, which browsers do not expose).
//!
//! The trainer's encoder calls a hook after every dispatch (`GpuTrainer::train_marked`); here the
//! hook writes a timestamp and remembers the kernel's name. The time of dispatch `i` is
//! `ts[i] - ts[i-1]` (the first query of each submit marks the pass' start). Dependent dispatches
//! are separated by barriers, so the differences are the kernels' own durations plus their
//! barrier; they add up to the pass' GPU time. The matmul kernels' rate is then
//! `6·B·Σ in·out / (time of the forward, output and backward kernels)`, the same analytic FLOP
//! count as the whole-step figure of `bench` (see `src/bench.rs`).

use super::readback::map_staging;
use super::{GpuContext, GpuError, GpuTrainer};

/// Most timestamps one query set holds (wgpu's `QUERY_SET_MAX_QUERIES`).
const MAX_QUERIES: u32 = 4096;

/// Kernels that do the matmuls (both kernel variants); the others are batch, OT, Adam.
pub const MATMUL_KERNELS: &[&str] =
    &["forward", "output_loss", "backward_layer", "forward_tiled", "output_rows", "backward_tiled", "reduce_grads"];

/// Summed GPU time per kernel name over `steps` training steps.
#[derive(Clone, Debug, Default)]
pub struct KernelProfile {
    pub steps: u32,
    /// `(kernel, dispatches, total nanoseconds)` in first-seen order.
    pub kernels: Vec<(&'static str, u32, f64)>,
}

impl KernelProfile {
    /// Nanoseconds per step over all kernels.
    pub fn step_ns(&self) -> f64 {
        self.kernels.iter().map(|k| k.2).sum::<f64>() / self.steps.max(1) as f64
    }

    /// Nanoseconds per step in the matmul kernels.
    pub fn matmul_ns(&self) -> f64 {
        self.kernels.iter().filter(|k| MATMUL_KERNELS.contains(&k.0)).map(|k| k.2).sum::<f64>() / self.steps.max(1) as f64
    }

    fn add(&mut self, name: &'static str, ns: f64) {
        match self.kernels.iter_mut().find(|k| k.0 == name) {
            Some(k) => {
                k.1 += 1;
                k.2 += ns;
            }
            None => self.kernels.push((name, 1, ns)),
        }
    }
}

/// True when the device can time dispatches inside a compute pass.
pub fn supported(ctx: &GpuContext) -> bool {
    ctx.features.contains(wgpu::Features::TIMESTAMP_QUERY | wgpu::Features::TIMESTAMP_QUERY_INSIDE_PASSES)
}

/// The features to ask for when opening a device for profiling.
pub fn features() -> wgpu::Features {
    wgpu::Features::TIMESTAMP_QUERY | wgpu::Features::TIMESTAMP_QUERY_INSIDE_PASSES
}

/// Trains `steps` more steps on `trainer`, timing every dispatch.
pub async fn profile(trainer: &mut GpuTrainer, steps: u32) -> Result<KernelProfile, GpuError> {
    let ctx = trainer.context().clone();
    if !supported(&ctx) {
        return Err(GpuError::Unsupported(format!(
            "the adapter {} cannot time dispatches inside a pass (needs TIMESTAMP_QUERY and TIMESTAMP_QUERY_INSIDE_PASSES)",
            ctx.adapter
        )));
    }
    let per_step = trainer.dispatches_per_step().max(1);
    let steps_per_submit = ((MAX_QUERIES - 1) / per_step).clamp(1, steps.max(1));
    let count = 1 + steps_per_submit * per_step;
    let queries = ctx.device.create_query_set(&wgpu::QuerySetDescriptor {
        label: Some("profile.timestamps"),
        ty: wgpu::QueryType::Timestamp,
        count,
    });
    let bytes = count as u64 * 8;
    let resolve = ctx.device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("profile.resolve"),
        size: bytes,
        usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
        mapped_at_creation: false,
    });
    let staging = ctx.device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("profile.staging"),
        size: bytes,
        usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    let period_ns = ctx.queue.get_timestamp_period() as f64;
    let mut out = KernelProfile::default();
    let mut left = steps.max(1);
    while left > 0 {
        let k = left.min(steps_per_submit);
        let mut labels: Vec<&'static str> = Vec::with_capacity(count as usize);
        trainer.train_marked(k, k, &mut |pass, label| {
            if (labels.len() as u32) < count {
                pass.write_timestamp(&queries, labels.len() as u32);
                labels.push(label);
            }
        });
        let used = labels.len() as u32;
        let mut encoder = ctx.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("profile.resolve") });
        encoder.resolve_query_set(&queries, 0..used, &resolve, 0);
        encoder.copy_buffer_to_buffer(&resolve, 0, &staging, 0, used as u64 * 8);
        ctx.queue.submit([encoder.finish()]);
        let raw = map_staging(&ctx, &staging).await?;
        let ticks: Vec<u64> = bytemuck::pod_collect_to_vec(&raw[..used as usize * 8]);
        for i in 1..used as usize {
            if labels[i] == "begin" {
                continue;
            }
            out.add(labels[i], ticks[i].saturating_sub(ticks[i - 1]) as f64 * period_ns);
        }
        out.steps += k;
        left -= k;
    }
    Ok(out)
}
