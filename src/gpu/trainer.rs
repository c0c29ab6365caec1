//! Encodes CFM training steps into command buffers: per step
//! `batch → forward (depth) → output+loss → backward (depth+1) → adam` = 2·depth + 4 dispatches,
//! all in one compute pass, many steps per submit, no CPU readback inside the loop.
//!
//! Buffers, pipelines and bind groups are created once per model shape. Per-step scalars (step
//! number, Adam bias corrections) are written for a whole chunk of steps with one
//! `queue.write_buffer` before its submit and selected with dynamic offsets; layer shapes live in
//! a static uniform, one slot per layer. The loss of every step lands in a ring buffer in
//! `metrics`, read asynchronously whenever the caller wants it.

use super::readback::{map_staging, read_f32};
use super::shaders::{bind_group, bind_group_layout, compute_pipeline, Binding, Kernel};
use super::uniforms::{slots, LayerParams, StepParams, SLOT};
use super::{dispatch_groups, GpuContext, GpuError};
use crate::model::ActivationLayout;
use crate::spec::TrainSpec;
use wgpu::util::DeviceExt;

/// Steps encoded per submit at most (size of the per-step uniform ring).
pub const MAX_STEPS_PER_SUBMIT: u32 = 256;
/// Losses kept on the GPU; read at least every this many steps to see them all.
pub const LOSS_RING: u32 = 4096;
/// `metrics` header: `first_bad_step` and padding, in u32 words, before the loss ring.
const METRICS_HEADER: u64 = 4;
/// `first_bad_step` when no step has produced a non-finite loss or parameter.
pub const NO_BAD_STEP: u32 = u32::MAX;

/// The losses since the last read and the first step (if any) that went non-finite.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainStatus {
    /// Steps completed when the read was encoded.
    pub step: u32,
    /// `(step, loss)` for up to `LOSS_RING` of the most recent steps requested.
    pub losses: Vec<(u32, f32)>,
    pub first_bad_step: Option<u32>,
}

struct Pipelines {
    batch: wgpu::ComputePipeline,
    forward: wgpu::ComputePipeline,
    output_loss: wgpu::ComputePipeline,
    backward: wgpu::ComputePipeline,
    weight_grads: wgpu::ComputePipeline,
    input_deltas: wgpu::ComputePipeline,
    adam: wgpu::ComputePipeline,
}

struct BindGroups {
    batch: wgpu::BindGroup,
    layer: wgpu::BindGroup,
    backward: wgpu::BindGroup,
    adam: wgpu::BindGroup,
}

/// The GPU trainer for one model shape and batch size.
pub struct GpuTrainer {
    ctx: GpuContext,
    pub spec: TrainSpec,
    pub layout: ActivationLayout,
    n_points: u32,
    n_source: u32,
    /// Packed parameters (`model.rs` layout). Shared with the sampler and the renderer.
    pub params: wgpu::Buffer,
    pub grads: wgpu::Buffer,
    /// Adam moments: m at [0, P), v at [P, 2P).
    pub moments: wgpu::Buffer,
    pub acts: wgpu::Buffer,
    pub deltas: wgpu::Buffer,
    pub data: wgpu::Buffer,
    /// Source points for x0 (a 1-element dummy when x0 ~ N(0, I)).
    pub source: wgpu::Buffer,
    metrics: wgpu::Buffer,
    step_uniform: wgpu::Buffer,
    _layer_uniform: wgpu::Buffer,
    layer_params: Vec<LayerParams>,
    pipelines: Pipelines,
    groups: BindGroups,
    /// How the backward pass is dispatched on this adapter.
    pub backward_mode: BackwardMode,
    /// Steps taken (the next step's number).
    step: u32,
}

/// How each layer's backward pass is dispatched.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BackwardMode {
    /// One dispatch per layer computing dW/db and δ_prev in separate workgroups.
    Fused,
    /// Two dispatches per layer. Faster on CPU-emulated adapters, where the fused kernel
    /// measured ~10x slower than its two halves (lavapipe).
    Split,
}

impl BackwardMode {
    /// The mode for an adapter, chosen by type (see `BackwardMode::Split`).
    pub fn for_adapter(adapter: &super::context::AdapterSummary) -> Self {
        if adapter.is_software() { BackwardMode::Split } else { BackwardMode::Fused }
    }
}

fn storage(ctx: &GpuContext, label: &str, floats: u64) -> wgpu::Buffer {
    ctx.device.create_buffer(&wgpu::BufferDescriptor {
        label: Some(label),
        size: (floats.max(1) * 4).next_multiple_of(16),
        usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    })
}

impl GpuTrainer {
    /// Allocates everything for `spec`, uploads `data` (the target points, once) and the initial
    /// parameters from the spec's seed.
    pub fn new(ctx: &GpuContext, spec: TrainSpec, data: &[[f32; 2]]) -> Result<Self, GpuError> {
        Self::new_with_source(ctx, spec, data, &[])
    }

    /// As [`GpuTrainer::new`], drawing x0 from `source` points instead of N(0, I) when it is
    /// not empty.
    pub fn new_with_source(ctx: &GpuContext, spec: TrainSpec, data: &[[f32; 2]], source: &[[f32; 2]]) -> Result<Self, GpuError> {
        if data.is_empty() {
            return Err(GpuError::TooLarge("the target has no points".into()));
        }
        let shape = spec.shape;
        let layout = shape.activation_layout(spec.batch);
        let n_params = shape.param_len() as u64;
        check_fits(ctx, &[
            ("activations", layout.len as u64 * 4),
            ("deltas", layout.deltas_len as u64 * 4),
            ("target points", data.len() as u64 * 8),
            ("source points", source.len() as u64 * 8),
        ])?;
        let device = &ctx.device;
        let params = storage(ctx, "mlp.params", n_params);
        let grads = storage(ctx, "mlp.grads", n_params);
        let moments = storage(ctx, "adam.moments", 2 * n_params);
        let acts = storage(ctx, "mlp.activations", layout.len as u64);
        let deltas = storage(ctx, "mlp.deltas", layout.deltas_len as u64);
        let data_buf = device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some("target.points"),
            contents: bytemuck::cast_slice(data),
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST,
        });
        let source_buf = device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some("source.points"),
            contents: if source.is_empty() { &[0u8; 8] } else { bytemuck::cast_slice(source) },
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST,
        });
        let metrics = storage(ctx, "metrics", METRICS_HEADER + LOSS_RING as u64);
        let step_uniform = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("trainer.step_params"),
            size: SLOT * MAX_STEPS_PER_SUBMIT as u64,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let layer_params = layer_params(&spec, &layout);
        let layer_uniform = device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some("trainer.layer_params"),
            contents: &slots(&layer_params),
            usage: wgpu::BufferUsages::UNIFORM,
        });

        use Binding::*;
        let step_size = std::mem::size_of::<StepParams>() as u64;
        let layer_size = std::mem::size_of::<LayerParams>() as u64;
        let batch_bgl = bind_group_layout(device, "batch", &[UniformDynamic(step_size), StorageRead, StorageReadWrite, StorageRead]);
        let layer_bgl = bind_group_layout(device, "layer", &[UniformDynamic(layer_size), StorageRead, StorageReadWrite, StorageReadWrite]);
        let backward_bgl = bind_group_layout(device, "backward", &[UniformDynamic(layer_size), StorageRead, StorageReadWrite, StorageRead, StorageReadWrite]);
        let adam_bgl = bind_group_layout(device, "adam", &[UniformDynamic(step_size), StorageReadWrite, StorageRead, StorageReadWrite, StorageRead, StorageReadWrite]);
        let pipelines = Pipelines {
            batch: compute_pipeline(device, Kernel::Batch, "build_batch", &batch_bgl, None),
            forward: compute_pipeline(device, Kernel::MlpForward, "forward_hidden", &layer_bgl, None),
            output_loss: compute_pipeline(device, Kernel::CfmLoss, "output_loss", &layer_bgl, None),
            backward: compute_pipeline(device, Kernel::MlpBackward, "backward_layer", &backward_bgl, None),
            weight_grads: compute_pipeline(device, Kernel::MlpBackward, "weight_grads", &backward_bgl, None),
            input_deltas: compute_pipeline(device, Kernel::MlpBackward, "input_deltas", &backward_bgl, None),
            adam: compute_pipeline(device, Kernel::Adam, "adam_update", &adam_bgl, None),
        };
        let groups = BindGroups {
            batch: bind_group(device, "batch", &batch_bgl, &[(&step_uniform, Some(step_size)), (&data_buf, None), (&acts, None), (&source_buf, None)]),
            layer: bind_group(device, "layer", &layer_bgl, &[(&layer_uniform, Some(layer_size)), (&params, None), (&acts, None), (&deltas, None)]),
            backward: bind_group(device, "backward", &backward_bgl, &[(&layer_uniform, Some(layer_size)), (&params, None), (&grads, None), (&acts, None), (&deltas, None)]),
            adam: bind_group(device, "adam", &adam_bgl, &[(&step_uniform, Some(step_size)), (&params, None), (&grads, None), (&moments, None), (&deltas, None), (&metrics, None)]),
        };
        let trainer = GpuTrainer {
            ctx: ctx.clone(),
            spec,
            layout,
            n_points: data.len() as u32,
            n_source: source.len() as u32,
            params,
            grads,
            moments,
            acts,
            deltas,
            data: data_buf,
            source: source_buf,
            metrics,
            step_uniform,
            _layer_uniform: layer_uniform,
            layer_params,
            pipelines,
            groups,
            backward_mode: BackwardMode::for_adapter(&ctx.adapter),
            step: 0,
        };
        trainer.reset_state(&shape.init_params(spec.seed));
        Ok(trainer)
    }

    /// Steps taken so far.
    pub fn step(&self) -> u32 {
        self.step
    }

    pub fn context(&self) -> &GpuContext {
        &self.ctx
    }

    /// Replaces the parameters, zeroes the Adam moments and the metrics, and restarts at step 0.
    pub fn reset_state(&self, params: &[f32]) {
        let q = &self.ctx.queue;
        q.write_buffer(&self.params, 0, bytemuck::cast_slice(params));
        q.write_buffer(&self.moments, 0, &vec![0u8; 8 * params.len()]);
        q.write_buffer(&self.grads, 0, &vec![0u8; 4 * params.len()]);
        let mut header = vec![0u32; METRICS_HEADER as usize];
        header[0] = NO_BAD_STEP;
        q.write_buffer(&self.metrics, 0, bytemuck::cast_slice(&header));
    }

    /// Restarts from fresh weights for `seed` (same seed → same run).
    pub fn reset(&mut self, seed: u32) {
        self.spec.seed = seed;
        self.reset_state(&self.spec.shape.init_params(seed));
        self.step = 0;
    }

    /// Sets the parameters and the step counter (e.g. loading a model); Adam restarts.
    pub fn load_params(&mut self, params: &[f32], step: u32) {
        self.reset_state(params);
        self.step = step;
    }

    /// Changes the learning rate for the following steps (no reallocation).
    pub fn set_lr(&mut self, lr: f32) {
        self.spec.adam.lr = lr;
    }

    fn step_params(&self, step: u32) -> StepParams {
        let s = &self.spec;
        let (c1, c2) = s.adam.step_scalars(step);
        StepParams {
            step,
            seed: s.seed,
            batch: s.batch,
            n_points: self.n_points,
            sigma_min: s.sigma_min,
            lr: s.adam.lr,
            beta1: s.adam.beta1,
            beta2: s.adam.beta2,
            eps: s.adam.eps,
            weight_decay: s.adam.weight_decay,
            c1,
            c2,
            n_params: s.shape.param_len() as u32,
            loss_offset: self.layout.loss_terms,
            loss_slot: step % LOSS_RING,
            path: s.path.code(),
            n_source: self.n_source,
            _pad: [0; 3],
        }
    }

    /// Dispatches per training step: batch + depth hidden forwards + output/loss + (depth+1)
    /// backwards + Adam.
    pub fn dispatches_per_step(&self) -> u32 {
        let d = self.spec.shape.depth;
        match self.backward_mode {
            BackwardMode::Fused => 2 * d + 4,
            BackwardMode::Split => 3 * d + 4,
        }
    }

    /// Queues `n` training steps (in submits of at most `MAX_STEPS_PER_SUBMIT`). Returns at once.
    pub fn train(&mut self, n: u32) {
        let mut left = n;
        while left > 0 {
            let k = left.min(MAX_STEPS_PER_SUBMIT);
            let params: Vec<StepParams> = (0..k).map(|i| self.step_params(self.step + i)).collect();
            self.ctx.queue.write_buffer(&self.step_uniform, 0, &slots(&params));
            let mut encoder = self.ctx.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("train") });
            {
                let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor { label: Some("train"), timestamp_writes: None });
                for i in 0..k {
                    self.encode_step(&mut pass, (i as u64 * SLOT) as u32);
                }
            }
            self.ctx.queue.submit([encoder.finish()]);
            self.step += k;
            left -= k;
        }
    }

    fn encode_step(&self, pass: &mut wgpu::ComputePass<'_>, step_offset: u32) {
        let spec = &self.spec;
        let (p, g) = (&self.pipelines, &self.groups);
        let n_layers = spec.shape.num_layers();
        pass.set_pipeline(&p.batch);
        pass.set_bind_group(0, &g.batch, &[step_offset]);
        let (x, y) = dispatch_groups(spec.batch, 64);
        pass.dispatch_workgroups(x, y, 1);
        for l in 0..n_layers {
            let lp = &self.layer_params[l];
            let last = l + 1 == n_layers;
            pass.set_pipeline(if last { &p.output_loss } else { &p.forward });
            pass.set_bind_group(0, &g.layer, &[(l as u64 * SLOT) as u32]);
            let threads = if last { spec.batch } else { spec.batch * lp.out_dim };
            let (x, y) = dispatch_groups(threads, 64);
            pass.dispatch_workgroups(x, y, 1);
        }
        for l in (0..n_layers).rev() {
            let lp = &self.layer_params[l];
            pass.set_bind_group(0, &g.backward, &[(l as u64 * SLOT) as u32]);
            let delta_threads = if lp.has_prev == 1 { spec.batch * lp.in_dim } else { 0 };
            match self.backward_mode {
                BackwardMode::Fused => {
                    pass.set_pipeline(&p.backward);
                    let (x, y) = dispatch_groups(lp.dw_groups * 64 + delta_threads.next_multiple_of(64), 64);
                    pass.dispatch_workgroups(x, y, 1);
                }
                BackwardMode::Split => {
                    pass.set_pipeline(&p.weight_grads);
                    let (x, y) = dispatch_groups(lp.dw_groups * 64, 64);
                    pass.dispatch_workgroups(x, y, 1);
                    if delta_threads > 0 {
                        pass.set_pipeline(&p.input_deltas);
                        let (x, y) = dispatch_groups(delta_threads, 64);
                        pass.dispatch_workgroups(x, y, 1);
                    }
                }
            }
        }
        pass.set_pipeline(&p.adam);
        pass.set_bind_group(0, &g.adam, &[step_offset]);
        let groups = (spec.shape.param_len() as u32).div_ceil(256) + 1;
        let (x, y) = dispatch_groups(groups * 256, 256);
        pass.dispatch_workgroups(x, y, 1);
    }

    /// Reads the packed parameters.
    pub async fn read_params(&self) -> Result<Vec<f32>, GpuError> {
        read_f32(&self.ctx, &self.params, 0, self.spec.shape.param_len() as u64).await
    }

    /// Reads any of the trainer's buffers (tests compare them with the CPU reference).
    pub async fn read(&self, buffer: &wgpu::Buffer, len: usize) -> Result<Vec<f32>, GpuError> {
        read_f32(&self.ctx, buffer, 0, len as u64).await
    }

    /// Reads the losses of the last `count` steps (at most `LOSS_RING`) and the divergence flag.
    /// Only this call waits; training already queued keeps running.
    pub async fn status(&self, count: u32) -> Result<TrainStatus, GpuError> {
        let step = self.step;
        let count = count.min(LOSS_RING).min(step);
        let size = (METRICS_HEADER + LOSS_RING as u64) * 4;
        let staging = self.ctx.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("metrics.staging"),
            size,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut encoder = self.ctx.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("metrics") });
        encoder.copy_buffer_to_buffer(&self.metrics, 0, &staging, 0, size);
        self.ctx.queue.submit([encoder.finish()]);
        let words: Vec<u32> = bytemuck::pod_collect_to_vec(&map_staging(&self.ctx, &staging).await?);
        let ring = &words[METRICS_HEADER as usize..];
        let losses = (step - count..step).map(|s| (s, f32::from_bits(ring[(s % LOSS_RING) as usize]))).collect();
        let bad = words[0];
        Ok(TrainStatus { step, losses, first_bad_step: (bad != NO_BAD_STEP).then_some(bad) })
    }
}

/// Each layer's `LayerParams` slot (static per shape and batch).
fn layer_params(spec: &TrainSpec, layout: &ActivationLayout) -> Vec<LayerParams> {
    let layers = spec.shape.layers();
    let n = layers.len();
    layers
        .iter()
        .enumerate()
        .map(|(l, ll)| {
            let (z, a) = if l + 1 < n { layout.hidden[l] } else { (layout.output, 0) };
            LayerParams {
                batch: spec.batch,
                in_dim: ll.in_dim,
                out_dim: ll.out_dim,
                activation: spec.shape.activation.code(),
                w_offset: ll.w_offset,
                b_offset: ll.b_offset,
                x_offset: layout.layer_input(l),
                z_offset: z,
                a_offset: a,
                delta_offset: layout.deltas[l],
                delta_prev_offset: if l > 0 { layout.deltas[l - 1] } else { 0 },
                z_prev_offset: if l > 0 { layout.hidden[l - 1].0 } else { 0 },
                dw_groups: (ll.out_dim * (ll.in_dim + 1)).div_ceil(64),
                has_prev: (l > 0) as u32,
                target_offset: layout.target,
                loss_offset: layout.loss_terms,
            }
        })
        .collect()
}

/// Fails with a message naming the buffer and the limit when a buffer would exceed the device's
/// storage-binding limit.
pub fn check_fits(ctx: &GpuContext, buffers: &[(&str, u64)]) -> Result<(), GpuError> {
    let max = ctx.limits.max_storage_buffer_binding_size as u64;
    for (name, bytes) in buffers {
        if *bytes > max {
            return Err(GpuError::TooLarge(format!(
                "the {name} buffer would need {:.1} MiB but this GPU allows {:.1} MiB per buffer; use a smaller batch or width",
                *bytes as f64 / 1048576.0,
                max as f64 / 1048576.0
            )));
        }
    }
    Ok(())
}
