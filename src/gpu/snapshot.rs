//! Weight snapshots: the trainer's complete state copied to the CPU asynchronously, for undoing
//! a divergence and for rebuilding the model on a new device after a device loss.
//!
//! One staging buffer, filled by one command buffer encoded at step S (so all four parts are from
//! the same moment):
//! ```text
//! bytes [0, 16)            metrics header: first_bad_step (u32::MAX = none), 3 × pad
//! bytes [16, 16 + 4P)      packed parameters (P floats, `model.rs` layout)
//! bytes [16 + 4P, 16 + 12P) Adam moments m (P) then v (P)
//! ```
//! A snapshot is *good* when its own flag says no step before S went non-finite and every value
//! is finite. Restoring writes parameters and moments back, clears the gradients and the flag,
//! and sets the step counter to S, so training continues exactly as it would have from S (the
//! batch randomness is a hash of (seed, step), and Adam's bias correction depends only on S).

use super::counter::Owned;
use super::readback::map_staging;
use super::trainer::{GpuTrainer, NO_BAD_STEP};
use super::GpuError;
use crate::config::Config;
use crate::model_file::ModelFile;
use std::future::Future;

/// The trainer's state at one step.
#[derive(Clone, Debug, PartialEq)]
pub struct Snapshot {
    /// Steps completed when it was taken.
    pub step: u32,
    pub params: Vec<f32>,
    /// Adam m (first P) and v (last P).
    pub moments: Vec<f32>,
    /// The divergence flag at that moment.
    pub first_bad_step: Option<u32>,
}

impl Snapshot {
    /// No non-finite step before it, and every value finite.
    pub fn is_good(&self) -> bool {
        self.first_bad_step.is_none() && self.params.iter().chain(&self.moments).all(|x| x.is_finite())
    }
}

impl GpuTrainer {
    /// Encodes the copy now and returns a future that owns what it needs (the trainer can keep
    /// training, be dropped, or lose its device meanwhile; then the future fails).
    pub fn snapshot_detached(&self) -> impl Future<Output = Result<Snapshot, GpuError>> + 'static {
        let ctx = self.context().clone();
        let p = self.spec.shape.param_len() as u64;
        let step = self.step();
        let size = 16 + 12 * p;
        let staging = ctx.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("snapshot.staging"),
            size,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut encoder = ctx.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("snapshot") });
        encoder.copy_buffer_to_buffer(self.metrics_buffer(), 0, &staging, 0, 16);
        encoder.copy_buffer_to_buffer(&self.params, 0, &staging, 16, 4 * p);
        encoder.copy_buffer_to_buffer(&self.moments, 0, &staging, 16 + 4 * p, 8 * p);
        ctx.queue.submit([encoder.finish()]);
        let live = Owned::new(&[&staging]);
        async move {
            let _live = live;
            let bytes = map_staging(&ctx, &staging).await?;
            let words: Vec<u32> = bytemuck::pod_collect_to_vec(&bytes);
            let floats: Vec<f32> = bytemuck::pod_collect_to_vec(&bytes[16..]);
            let p = p as usize;
            Ok(Snapshot {
                step,
                params: floats[..p].to_vec(),
                moments: floats[p..3 * p].to_vec(),
                first_bad_step: (words[0] != NO_BAD_STEP).then_some(words[0]),
            })
        }
    }

    /// Takes a snapshot now (natively: waits for it).
    pub async fn snapshot(&self) -> Result<Snapshot, GpuError> {
        self.snapshot_detached().await
    }

    /// Puts the trainer back to `s` (parameters, Adam moments, step); the divergence flag is
    /// cleared. Fails without changing anything when `s` is for another model shape.
    pub fn restore(&mut self, s: &Snapshot) -> Result<(), GpuError> {
        self.load_state(&s.params, &s.moments, s.step)
    }

    /// Loads a model file: its parameters and, when it has them, Adam's moments, step and the
    /// learning-rate schedule's start (a file without optimizer state restarts Adam:
    /// `ModelFile::resume_state`). Fails without changing
    /// anything when the file is for another network shape.
    pub fn load_model(&mut self, file: &ModelFile) -> Result<(), GpuError> {
        file.check_shape(&self.spec.shape).map_err(|e| GpuError::Invalid(e.to_string()))?;
        let r = file.resume_state();
        self.load_state(&file.params, &r.moments, r.step)?;
        self.spec.adam.schedule_start = r.schedule_start;
        Ok(())
    }

    /// The trainer's state as a model file for `config` (read asynchronously, like a snapshot).
    pub fn model_file_detached(&self, config: Config) -> impl Future<Output = Result<ModelFile, GpuError>> + 'static {
        let snap = self.snapshot_detached();
        let schedule_start = self.spec.adam.schedule_start;
        async move {
            let s = snap.await?;
            Ok(ModelFile::new(config, s.step, s.params, s.moments, schedule_start))
        }
    }
}
