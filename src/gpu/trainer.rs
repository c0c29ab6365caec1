//! Encodes CFM training steps into command buffers, all in one compute pass, many steps per
//! submit, no CPU readback inside the loop. MeanFlow models add one dispatch after the batch
//! (`shaders/meanflow.wgsl`: the targets by forward-mode JVP); class-conditional ones read the
//! target's labels in the batch kernel. Two kernel variants ([`KernelVariant`]):
//! - `Tiled` (real GPUs): `batch → forward (depth) → output+loss+δ → backward (depth) →
//!   [reduce] → adam` = 2·depth + 3 dispatches, + 1 when dW is split over the batch.
//! - `Software` (lavapipe, SwiftShader): `batch → forward (depth) → output+loss →
//!   backward (one per layer) → adam` = 2·depth + 4 dispatches.
//!
//! Buffers, pipelines and bind groups are created once per model shape. Per-step scalars (step
//! number, Adam bias corrections) are written for a whole chunk of steps with one
//! `queue.write_buffer` before its submit and selected with dynamic offsets; layer shapes live in
//! a static uniform, one slot per layer. The loss of every step lands in a ring buffer in
//! `metrics`, read asynchronously whenever the caller wants it.

use super::readback::{map_staging, read_f32};
use super::shaders::{bind_group, bind_group_layout, compute_pipeline, compute_pipeline_with, Binding, Kernel};
use super::uniforms::{slots, LayerParams, StepParams, SLOT};
use super::{dispatch_groups, GpuContext, GpuError};
use crate::config::{Coupling, LrSchedule};
use crate::cpu::coupling::{OT_CHECK_EVERY, OT_ITERS, OT_MAX_BATCH};
use crate::model::ActivationLayout;
use crate::spec::TrainSpec;
use super::uniforms::{MeanFlowParams, ModelDesc};
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
    forward_tiled: wgpu::ComputePipeline,
    output_rows: wgpu::ComputePipeline,
    backward_tiled: wgpu::ComputePipeline,
    reduce_grads: wgpu::ComputePipeline,
    /// MeanFlow targets (`shaders/meanflow.wgsl`), with its bind group; `None` for FM models.
    mean_flow: Option<(wgpu::ComputePipeline, wgpu::BindGroup)>,
    forward: wgpu::ComputePipeline,
    output_loss: wgpu::ComputePipeline,
    backward_layer: wgpu::ComputePipeline,
    /// Software variant, layers that pass [`vec4_layer`]: `shaders/mlp_*_vec4.wgsl`.
    forward_vec4: wgpu::ComputePipeline,
    backward_vec4: wgpu::ComputePipeline,
    adam: wgpu::ComputePipeline,
}

/// The OT coupling's passes (`shaders/ot_coupling.wgsl`): draws and ε, the first Sinkhorn
/// iteration (max-shifted), the later half-iterations (one pass; at check iterations the row
/// pass also measures the row marginal error and the column pass decides the stop), the pairing.
struct OtPipelines {
    draw: wgpu::ComputePipeline,
    rows_first: wgpu::ComputePipeline,
    cols_first: wgpu::ComputePipeline,
    rows: wgpu::ComputePipeline,
    cols: wgpu::ComputePipeline,
    rows_check: wgpu::ComputePipeline,
    cols_check: wgpu::ComputePipeline,
    pair: wgpu::ComputePipeline,
    layout: wgpu::BindGroupLayout,
}

/// What only a trainer with the OT coupling has: its pipelines, the two side buffers and the bind
/// groups over them (an independent-coupling trainer allocates and compiles none of it).
struct Ot {
    pipelines: OtPipelines,
    groups: OtGroups,
    sides: [wgpu::Buffer; 2],
}

/// The OT passes' two bind groups: `rows` binds the x0 side read-write and the x1 side as the
/// uniform `other`, `cols` the other way round (`shaders/ot_coupling.wgsl`).
struct OtGroups {
    rows: wgpu::BindGroup,
    cols: wgpu::BindGroup,
}

/// Invocations per workgroup of the OT row, column and pairing passes (`@workgroup_size(OT_WG)` there).
pub const OT_WG: u32 = 16;
/// Points one invocation of a Sinkhorn row or column pass updates. Both reach the shader through
/// the generated prelude (`src/gpu/prelude.rs`).
pub const OT_R: u32 = 8;
/// Bytes of one side buffer of the OT coupling: (x, y, potential, ε) per point, `OT_MAX_BATCH`
/// points (the size of the uniform array the passes read the other side from).
pub const OT_SIDE_BYTES: u64 = 16 * OT_MAX_BATCH as u64;
/// Dispatches of the OT coupling's batch per step: draws and ε, a row and a column pass per
/// Sinkhorn iteration (all `OT_ITERS` of them are encoded; after the stop test passes they return
/// at once), the pairing.
pub const OT_DISPATCHES: u32 = 2 * OT_ITERS + 2;

/// Floats of the coupling scratch buffer at batch `batch`: x0 (2B), x1 (2B), t (B), f (B), g (B),
/// ε (1), Sinkhorn iterations run (1), the last measured row error (1), one row error per
/// invocation of a checking row pass (ceil(B / OT_R)) — the layout in `shaders/ot_coupling.wgsl`.
pub fn ot_scratch_floats(batch: u32) -> u64 {
    7 * batch as u64 + 3 + batch.div_ceil(OT_R) as u64
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
    /// OT coupling scratch (`ot_scratch_floats`): x0 (2B), x1 (2B), t (B), f (B), g (B), ε (1),
    /// Sinkhorn iterations run (1), last measured row error (1), row errors (ceil(B / OT_R)).
    pub scratch: wgpu::Buffer,
    /// OT coupling only: pipelines, the x0 and x1 side buffers ((x, y, potential, ε) per point,
    /// storage and uniform) and their bind groups.
    ot: Option<Ot>,
    /// The class label of each target point (u32; a 1-element dummy for unconditional models).
    pub labels: wgpu::Buffer,
    /// The MeanFlow kernel's uniforms (empty for FM models).
    _mean_flow_buffers: Vec<wgpu::Buffer>,
    metrics: wgpu::Buffer,
    step_uniform: wgpu::Buffer,
    _layer_uniform: wgpu::Buffer,
    layer_params: Vec<LayerParams>,
    /// Per hidden layer: the tiled backward dispatch's roles (slot l of `backward_uniform`).
    backward_params: Vec<BackwardParams>,
    _backward_uniform: wgpu::Buffer,
    /// Split-K partial gradients (`splits` packed copies); a dummy when `splits` = 1.
    _partials: wgpu::Buffer,
    pipelines: Pipelines,
    groups: BindGroups,
    /// Layout of `groups.batch`, kept to rebind a replaced target buffer (`set_target`).
    batch_layout: wgpu::BindGroupLayout,
    /// Which kernels run on this adapter.
    pub variant: KernelVariant,
    /// Batch splits of the tiled dW reduction (1 on the software variant).
    pub splits: u32,
    /// Rows per tile of the tiled forward kernel (32, 64 or 128; unused on the software variant).
    pub forward_rows: u32,
    /// Rows per tile of the tiled backward kernel (64 or 128; unused on the software variant).
    pub backward_rows: u32,
    /// Bytes of every GPU buffer this trainer created.
    allocated_bytes: u64,
    /// Registers (and on drop destroys) every buffer above (`counter`).
    _live: super::counter::Owned,
    /// Steps taken (the next step's number).
    step: u32,
    /// Reflow: fixed (x0, x1) pairs the batch is drawn from instead of the target (`set_pairs`).
    pairs: Option<Pairs>,
}

/// Reflow pairs owned by the trainer (copied from the sampler that made them) and the batch
/// kernel that samples them (`build_batch_pairs` in `shaders/batch.wgsl`).
struct Pairs {
    x0: wgpu::Buffer,
    x1: wgpu::Buffer,
    n: u32,
    /// Whether batches come from the pairs (`false` after `clear_pairs`: buffers kept for reuse).
    active: bool,
    pipeline: wgpu::ComputePipeline,
    group: wgpu::BindGroup,
    _live: super::counter::Owned,
}

/// Which kernels a trainer dispatches. Software adapters (CPU emulation: lavapipe, SwiftShader)
/// and real GPUs want different shapes: on CPU emulation workgroup memory and barriers are
/// expensive and every storage load is a bounds-checked per-lane gather, so a 4×4 register
/// block of outputs per invocation read straight from storage, with no barriers, is fastest
/// (3.3× the one-output-per-invocation form on lavapipe, 5× on SwiftShader, for S); real GPUs
/// want 64×64 workgroup tiles staged in workgroup memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KernelVariant {
    /// A 4×4 register block of outputs per invocation, no workgroup memory or barriers (Adam
    /// included: `adam_update_flat`); layers that pass [`vec4_layer`] use 8×4 blocks of vec4 loads
    /// (`shaders/mlp_*_vec4.wgsl`). One backward dispatch per layer, split by workgroup into dW/db
    /// and δ of the layer below.
    Software,
    /// 64×64 workgroup tiles with 4×4 register blocks for forward, dX and dW (split-K over the
    /// batch), the output layer fused with the loss and its input deltas.
    Tiled,
}

impl KernelVariant {
    /// The variant for an adapter: `FLOWMATCH_KERNELS=software|tiled` (native only) if set,
    /// else by adapter type (software adapters get `Software`).
    pub fn for_adapter(adapter: &super::context::AdapterSummary) -> Self {
        Self::from_env().unwrap_or(if adapter.is_software() { KernelVariant::Software } else { KernelVariant::Tiled })
    }

    /// `FLOWMATCH_KERNELS`, the one place the override is read (tests and benchmarks force a
    /// variant with it). Unknown values are ignored with a warning.
    pub fn from_env() -> Option<Self> {
        #[cfg(not(target_arch = "wasm32"))]
        if let Ok(v) = std::env::var("FLOWMATCH_KERNELS") {
            match Self::parse(&v) {
                Some(k) => return Some(k),
                None => log::warn!("ignoring FLOWMATCH_KERNELS={v}: expected software or tiled"),
            }
        }
        None
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "software" | "naive" => Some(KernelVariant::Software),
            "tiled" | "gpu" => Some(KernelVariant::Tiled),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            KernelVariant::Software => "software",
            KernelVariant::Tiled => "tiled",
        }
    }
}

/// Construction options beyond the [`TrainSpec`]; the defaults pick by adapter.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TrainerOptions {
    /// Force a kernel variant (default: [`KernelVariant::for_adapter`]).
    pub variant: Option<KernelVariant>,
    /// Force the number of batch splits of the tiled dW reduction (default: [`default_splits`]).
    pub splits: Option<u32>,
    /// Force the tiled forward's rows per tile, 32, 64 (4×4 blocks) or 128 (8×4 blocks,
    /// `forward_tiled8`) (default: [`default_forward_rows`]).
    pub forward_rows: Option<u32>,
    /// Force the tiled backward's rows per tile (of dW's out and δ_prev's batch): 64 (4×4
    /// blocks) or 128 (8×4 blocks, `backward_tiled8`) (default: [`default_backward_rows`]).
    pub backward_rows: Option<u32>,
}


/// Tiles of 64×64 in the widest hidden layer's output (B × width): how much parallel work a
/// tiled dispatch has.
fn tiles64(batch: u32, width: u32) -> u32 {
    batch.div_ceil(64) * width.div_ceil(TILE)
}

/// Rows (samples) per tile of the tiled forward kernel: 32 when 64-row tiles would make fewer
/// than 128 workgroups (S, M), 128 (8×4 blocks per invocation, `forward_tiled8`) from 512 (L),
/// else 64. Measured on an H200 without wgpu's loop counters (docs/BENCHMARKS.md, 2026-12-04;
/// bench/results/h200-vulkan-tiles.jsonl), steps/s: S 32 / 64 rows 16308 / 15306, M 5541 / 5230,
/// L 128 rows with the 8×4 backward 838 against 64 rows with the 4×4 one 761 (8 splits each).
/// Kernels with 8×8 blocks per invocation and the next stage prefetched into registers were no
/// faster on L and half as fast on M (commit b0a3204 has them).
pub fn default_forward_rows(batch: u32, width: u32) -> u32 {
    match tiles64(batch, width) {
        0..128 => 32,
        128..512 => 64,
        _ => 128,
    }
}

/// Rows per tile of the tiled backward kernel (of dW's out and δ_prev's batch): 128 (8×4
/// blocks, `backward_tiled8`) from 512 tiles of 64×64 (L), else 64 (see [`default_forward_rows`]).
pub fn default_backward_rows(batch: u32, width: u32) -> u32 {
    if tiles64(batch, width) >= 512 { 128 } else { 64 }
}

/// Batch splits for the tiled dW: one per 32 samples, at most 8, or 16 when the backward runs
/// 128-row tiles (`backward_rows`; their dW has half as many tiles): S 8, M 8, L 16 at the
/// default rows (`default_backward_rows`). A small dW (S: one 64×64 tile) then spreads over
/// workgroups instead of one workgroup walking the whole batch. Capped so the partials buffer
/// (`splits` copies of the parameters) stays within `max_bytes`. Measured on an H200 without wgpu's loop counters (steps/s, docs/BENCHMARKS.md
/// 2026-12-04, bench/results/h200-vulkan-tiles.jsonl): S 2/4/8 splits 12391/16294/16758,
/// M 4/8/16 4745/5382/5172, L 8/12/16/24/32/48 838/922/930/929/917/817.
pub fn default_splits(batch: u32, backward_rows: u32, n_params: u64, max_bytes: u64) -> u32 {
    let most = if backward_rows == 128 { 16 } else { 8 };
    let by_batch = (batch / 32).clamp(1, most);
    let by_memory = (max_bytes / (4 * n_params.max(1))).clamp(1, 16) as u32;
    by_batch.min(by_memory)
}

/// Rust twin of WGSL `DwGemm` (shaders/mlp_backward.wgsl).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub struct DwGemm {
    pub groups: u32,
    pub tiles_m: u32,
    pub tiles_n: u32,
    pub k_chunk: u32,
    pub out_dim: u32,
    pub in_dim: u32,
    pub delta_offset: u32,
    pub x_offset: u32,
    pub w_offset: u32,
    pub b_offset: u32,
    pub _pad: [u32; 2],
}

/// Rust twin of WGSL `BackwardParams` (shaders/mlp_backward.wgsl): one tiled backward dispatch.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub struct BackwardParams {
    pub dw: DwGemm,
    pub dw_out: DwGemm,
    pub batch: u32,
    pub splits: u32,
    pub n_params: u32,
    pub activation: u32,
    pub dx_groups: u32,
    pub dx_tiles_n: u32,
    pub dx_in: u32,
    pub dx_out: u32,
    pub dx_delta_offset: u32,
    pub dx_w_offset: u32,
    pub delta_prev_offset: u32,
    pub z_prev_offset: u32,
}

const _: () = assert!(std::mem::size_of::<DwGemm>() == 48);
const _: () = assert!(std::mem::size_of::<BackwardParams>() == 144);

/// Output tile edge of the tiled kernels (`TILE` in the shaders).
const TILE: u32 = 64;

impl BackwardParams {
    /// Work of each group count is `groups()` workgroups of 256 invocations.
    pub fn groups(&self) -> u32 {
        self.dw.groups + self.dx_groups + self.dw_out.groups
    }
}

/// The OT passes' bind groups over the trainer's buffers (`OtGroups`).
#[allow(clippy::too_many_arguments)]
fn ot_groups(
    device: &wgpu::Device,
    layout: &wgpu::BindGroupLayout,
    step_uniform: &wgpu::Buffer,
    data: &wgpu::Buffer,
    acts: &wgpu::Buffer,
    source: &wgpu::Buffer,
    scratch: &wgpu::Buffer,
    sides: &[wgpu::Buffer; 2],
) -> OtGroups {
    let step = Some(std::mem::size_of::<StepParams>() as u64);
    let group = |label: &str, own: &wgpu::Buffer, other: &wgpu::Buffer| {
        bind_group(device, label, layout, &[(step_uniform, step), (data, None), (acts, None), (source, None), (scratch, None), (own, None), (other, None)])
    };
    OtGroups { rows: group("ot.rows", &sides[0], &sides[1]), cols: group("ot.cols", &sides[1], &sides[0]) }
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
        Self::with_options(ctx, spec, data, source, TrainerOptions::default())
    }

    /// As [`GpuTrainer::new_with_source`], with a forced kernel variant or split count.
    pub fn with_options(ctx: &GpuContext, spec: TrainSpec, data: &[[f32; 2]], source: &[[f32; 2]], options: TrainerOptions) -> Result<Self, GpuError> {
        Self::with_labels(ctx, spec, data, &[], source, options)
    }

    /// As [`GpuTrainer::with_options`] with the class label of every target point (required for
    /// a class-conditional spec, one per point in `0..n_classes`; ignored otherwise).
    pub fn with_labels(ctx: &GpuContext, spec: TrainSpec, data: &[[f32; 2]], labels: &[u32], source: &[[f32; 2]], options: TrainerOptions) -> Result<Self, GpuError> {
        if data.is_empty() {
            return Err(GpuError::Invalid("the target has no points".into()));
        }
        check_labels(&spec, data, labels)?;
        if spec.coupling == Coupling::Ot && spec.shape.inputs != crate::model::InputLayout::PLAIN {
            return Err(GpuError::Invalid(
                "OT coupling trains plain (x, y, t) models only: use independent coupling for class-conditional or MeanFlow models".into(),
            ));
        }
        if spec.coupling == Coupling::Ot && spec.batch > OT_MAX_BATCH {
            return Err(GpuError::Invalid(format!(
                "OT coupling supports batches of at most {OT_MAX_BATCH} (batch {} given): lower the batch or use independent coupling",
                spec.batch
            )));
        }
        let shape = spec.shape;
        let layout = shape.activation_layout(spec.batch);
        let n_params = shape.param_len() as u64;
        super::limits::check_trainer(&super::limits::Budget::from_limits(&ctx.limits), &shape, spec.batch, data.len(), source.len())
            .map_err(GpuError::TooLarge)?;
        check_fits(ctx, &[
            ("activations", layout.len as u64 * 4),
            ("deltas", layout.deltas_len as u64 * 4),
            ("target points", data.len() as u64 * 8),
            ("source points", source.len() as u64 * 8),
        ])?;
        // All of them together within one engine's memory budget (`budget::GPU_TOTAL_BYTES`).
        crate::budget::check_trainer(&spec, data.len(), source.len(), &crate::budget::Profile::for_context(ctx))
            .map_err(|r| GpuError::TooLarge(r.to_string()))?;
        let device = &ctx.device;
        let params = storage(ctx, "mlp.params", n_params);
        let grads = storage(ctx, "mlp.grads", n_params);
        let moments = storage(ctx, "adam.moments", 2 * n_params);
        let acts = storage(ctx, "mlp.activations", layout.len as u64);
        let deltas = storage(ctx, "mlp.deltas", layout.deltas_len as u64);
        let data_buf = device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some("target.points"),
            contents: bytemuck::cast_slice(data),
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST | wgpu::BufferUsages::COPY_SRC,
        });
        let source_buf = device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some("source.points"),
            contents: if source.is_empty() { &[0u8; 8] } else { bytemuck::cast_slice(source) },
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST,
        });
        let scratch = storage(ctx, "coupling.scratch", ot_scratch_floats(spec.batch));
        let labels_buf = device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some("target.labels"),
            contents: if spec.shape.inputs.n_classes > 0 { bytemuck::cast_slice(labels) } else { &[0u8; 4] },
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
        let variant = options.variant.unwrap_or_else(|| KernelVariant::for_adapter(&ctx.adapter));
        let backward_rows = match options.backward_rows {
            Some(r) if r > 64 => 128,
            Some(_) => 64,
            None => default_backward_rows(spec.batch, shape.width),
        };
        let max_partials = ctx.limits.max_storage_buffer_binding_size.min(256 << 20);
        let splits = match variant {
            KernelVariant::Software => 1,
            KernelVariant::Tiled => options.splits.unwrap_or_else(|| default_splits(spec.batch, backward_rows, n_params, max_partials)).clamp(1, 64),
        };
        let forward_rows = match options.forward_rows {
            Some(r) if r <= 32 => 32,
            Some(r) if r <= 64 => 64,
            Some(_) => 128,
            None => default_forward_rows(spec.batch, shape.width),
        };
        check_fits(ctx, &[("split-K partial gradients", if splits > 1 { splits as u64 * n_params * 4 } else { 0 })])?;
        let partials = storage(ctx, "mlp.grad_partials", if splits > 1 { splits as u64 * n_params } else { 4 });
        let backward_params = backward_params(&spec, &layout, splits, backward_rows);
        let backward_uniform = device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some("trainer.backward_params"),
            contents: &slots(&backward_params),
            usage: wgpu::BufferUsages::UNIFORM,
        });
        let layer_uniform = device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some("trainer.layer_params"),
            contents: &slots(&layer_params),
            usage: wgpu::BufferUsages::UNIFORM,
        });

        use Binding::*;
        let step_size = std::mem::size_of::<StepParams>() as u64;
        let layer_size = std::mem::size_of::<LayerParams>() as u64;
        let batch_bgl = bind_group_layout(device, "batch", &[UniformDynamic(step_size), StorageRead, StorageReadWrite, StorageRead, StorageReadWrite, StorageRead]);
        let layer_bgl = bind_group_layout(device, "layer", &[UniformDynamic(layer_size), StorageRead, StorageReadWrite, StorageReadWrite]);
        let backward_size = std::mem::size_of::<BackwardParams>() as u64;
        let backward_bgl = bind_group_layout(device, "backward", &[
            UniformDynamic(layer_size), StorageRead, StorageReadWrite, StorageRead, StorageReadWrite, UniformDynamic(backward_size), StorageReadWrite,
        ]);
        let adam_bgl = bind_group_layout(device, "adam", &[UniformDynamic(step_size), StorageReadWrite, StorageRead, StorageReadWrite, StorageRead, StorageReadWrite]);
        let (mean_flow, mean_flow_buffers) = if spec.mean_flow() {
            let model = device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some("meanflow.model"),
                contents: bytemuck::bytes_of(&ModelDesc::for_shape(&shape)),
                usage: wgpu::BufferUsages::UNIFORM,
            });
            let mp = MeanFlowParams { batch: spec.batch, in_dim: layout.in_dim, target_offset: layout.target, _pad: 0 };
            let mp_buf = device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some("meanflow.params"),
                contents: bytemuck::bytes_of(&mp),
                usage: wgpu::BufferUsages::UNIFORM,
            });
            let bgl = bind_group_layout(device, "meanflow", &[Uniform, StorageRead, StorageReadWrite, Uniform]);
            let pipeline = compute_pipeline(device, Kernel::MeanFlow, "meanflow_targets", &bgl, Some(shape.width));
            let group = bind_group(device, "meanflow", &bgl, &[(&model, None), (&params, None), (&acts, None), (&mp_buf, None)]);
            (Some((pipeline, group)), vec![model, mp_buf])
        } else {
            (None, Vec::new())
        };
        let pipelines = Pipelines {
            mean_flow,
            batch: compute_pipeline(device, Kernel::Batch, "build_batch", &batch_bgl, None),
            forward: compute_pipeline(device, Kernel::MlpForward, "forward_hidden", &layer_bgl, None),
            output_loss: compute_pipeline(device, Kernel::CfmLoss, "output_loss", &layer_bgl, None),
            forward_tiled: if forward_rows == 128 {
                compute_pipeline(device, Kernel::MlpForward, "forward_tiled8", &layer_bgl, None)
            } else {
                compute_pipeline_with(device, Kernel::MlpForward, "forward_tiled", &layer_bgl, &[("TM", forward_rows)])
            },
            output_rows: compute_pipeline(device, Kernel::CfmLoss, "output_loss_rows", &layer_bgl, None),
            backward_tiled: compute_pipeline(device, Kernel::MlpBackward, if backward_rows == 128 { "backward_tiled8" } else { "backward_tiled" }, &backward_bgl, None),
            reduce_grads: compute_pipeline(device, Kernel::MlpBackward, "reduce_grads", &backward_bgl, None),
            backward_layer: compute_pipeline(device, Kernel::MlpBackward, "backward_layer", &backward_bgl, None),
            forward_vec4: compute_pipeline(device, Kernel::MlpForwardVec4, "forward_vec4", &layer_bgl, None),
            backward_vec4: compute_pipeline(device, Kernel::MlpBackwardVec4, "backward_vec4", &backward_bgl, None),
            // Software adapters: no workgroup memory or barrier (see shaders/adam.wgsl).
            adam: compute_pipeline(device, Kernel::Adam, if variant == KernelVariant::Tiled { "adam_update" } else { "adam_update_flat" }, &adam_bgl, None),
        };
        let groups = BindGroups {
            batch: bind_group(device, "batch", &batch_bgl, &[
                (&step_uniform, Some(step_size)), (&data_buf, None), (&acts, None), (&source_buf, None), (&scratch, None), (&labels_buf, None),
            ]),
            layer: bind_group(device, "layer", &layer_bgl, &[(&layer_uniform, Some(layer_size)), (&params, None), (&acts, None), (&deltas, None)]),
            backward: bind_group(device, "backward", &backward_bgl, &[
                (&layer_uniform, Some(layer_size)), (&params, None), (&grads, None), (&acts, None), (&deltas, None), (&backward_uniform, Some(backward_size)), (&partials, None),
            ]),
            adam: bind_group(device, "adam", &adam_bgl, &[(&step_uniform, Some(step_size)), (&params, None), (&grads, None), (&moments, None), (&deltas, None), (&metrics, None)]),
        };
        let ot = (spec.coupling == Coupling::Ot).then(|| {
            let layout = bind_group_layout(device, "ot", &[UniformDynamic(step_size), StorageRead, StorageReadWrite, StorageRead, StorageReadWrite, StorageReadWrite, Uniform]);
            let pipeline = |entry: &str| compute_pipeline(device, Kernel::OtCoupling, entry, &layout, None);
            let pipelines = OtPipelines {
                draw: pipeline("ot_draw"),
                rows_first: pipeline("ot_rows_first"),
                cols_first: pipeline("ot_cols_first"),
                rows: pipeline("ot_rows"),
                cols: pipeline("ot_cols"),
                rows_check: pipeline("ot_rows_check"),
                cols_check: pipeline("ot_cols_check"),
                pair: pipeline("ot_pair"),
                layout,
            };
            let side = |label: &str| {
                device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some(label),
                    size: OT_SIDE_BYTES,
                    usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::UNIFORM,
                    mapped_at_creation: false,
                })
            };
            let sides = [side("coupling.x0_side"), side("coupling.x1_side")];
            let groups = ot_groups(device, &pipelines.layout, &step_uniform, &data_buf, &acts, &source_buf, &scratch, &sides);
            Ot { pipelines, groups, sides }
        });
        let mut all = vec![&params, &grads, &moments, &acts, &deltas, &data_buf, &source_buf, &scratch, &labels_buf, &metrics, &step_uniform, &layer_uniform, &backward_uniform, &partials];
        if let Some(ot) = &ot {
            all.extend(ot.sides.iter());
        }
        all.extend(mean_flow_buffers.iter());
        let allocated_bytes = all.iter().map(|b| b.size()).sum();
        let live = super::counter::Owned::new(&all);
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
            scratch,
            ot,
            labels: labels_buf,
            _mean_flow_buffers: mean_flow_buffers,
            metrics,
            step_uniform,
            _layer_uniform: layer_uniform,
            layer_params,
            backward_params,
            _backward_uniform: backward_uniform,
            _partials: partials,
            pipelines,
            groups,
            batch_layout: batch_bgl,
            variant,
            splits,
            forward_rows,
            backward_rows,
            allocated_bytes,
            _live: live,
            step: 0,
            pairs: None,
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
        self.spec.adam.schedule_start = 0;
    }

    /// Puts the whole training state in place: parameters, Adam's moments (m then v, packed like
    /// the parameters) and the step counter, so the following steps are exactly those of a run
    /// that reached `step` with this state. Gradients and the divergence flag are cleared. Fails
    /// without changing anything when the lengths are not this model's.
    pub fn load_state(&mut self, params: &[f32], moments: &[f32], step: u32) -> Result<(), GpuError> {
        let p = self.spec.shape.param_len();
        if params.len() != p || moments.len() != 2 * p {
            return Err(GpuError::Invalid(format!(
                "the state holds {} parameters and {} moments but this model has {p} and {}",
                params.len(),
                moments.len(),
                2 * p
            )));
        }
        self.reset_state(params);
        self.ctx.queue.write_buffer(&self.moments, 0, bytemuck::cast_slice(moments));
        self.step = step;
        Ok(())
    }

    /// Replaces the target points for the following steps; weights, Adam moments and the step
    /// count are kept, so training simply continues on the new target, and the learning-rate
    /// schedule restarts (a decayed rate would leave the model on the old target). The points are written
    /// into the existing buffer when they fit; otherwise a larger buffer replaces it (the batch
    /// bind group is rebuilt, the old buffer is dropped) and callers that bound `data` (the
    /// renderer) must bind it again. On error nothing changes.
    pub fn set_target(&mut self, data: &[[f32; 2]]) -> Result<(), GpuError> {
        self.set_target_labeled(data, &[])
    }

    /// As [`GpuTrainer::set_target`] with the class label of every point (class-conditional
    /// models need them: a target without labels, like a drawing, is refused with a message).
    pub fn set_target_labeled(&mut self, data: &[[f32; 2]], labels: &[u32]) -> Result<(), GpuError> {
        if data.is_empty() {
            return Err(GpuError::Invalid("the target has no points".into()));
        }
        check_labels(&self.spec, data, labels)?;
        let bytes: &[u8] = bytemuck::cast_slice(data);
        check_fits(&self.ctx, &[("target points", bytes.len() as u64)])?;
        if bytes.len() as u64 <= self.data.size() {
            self.ctx.queue.write_buffer(&self.data, 0, bytes);
        } else {
            let data_buf = self.ctx.device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some("target.points"),
                contents: bytes,
                usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST | wgpu::BufferUsages::COPY_SRC,
            });
            self.allocated_bytes = self.allocated_bytes - self.data.size() + data_buf.size();
            self._live.replace(&self.data, &data_buf);
            self.data = data_buf;
        }
        if self.spec.shape.inputs.n_classes > 0 {
            let bytes: &[u8] = bytemuck::cast_slice(labels);
            if bytes.len() as u64 <= self.labels.size() {
                self.ctx.queue.write_buffer(&self.labels, 0, bytes);
            } else {
                let labels_buf = self.ctx.device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
                    label: Some("target.labels"),
                    contents: bytes,
                    usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST,
                });
                self.allocated_bytes = self.allocated_bytes - self.labels.size() + labels_buf.size();
                self._live.replace(&self.labels, &labels_buf);
                self.labels = labels_buf;
            }
        }
        // Rebind in case either buffer was replaced.
        self.groups.batch = bind_group(&self.ctx.device, "batch", &self.batch_layout, &[
            (&self.step_uniform, Some(std::mem::size_of::<StepParams>() as u64)), (&self.data, None), (&self.acts, None), (&self.source, None), (&self.scratch, None), (&self.labels, None),
        ]);
        if let Some(ot) = &mut self.ot {
            ot.groups = ot_groups(&self.ctx.device, &ot.pipelines.layout, &self.step_uniform, &self.data, &self.acts, &self.source, &self.scratch, &ot.sides);
        }
        self.n_points = data.len() as u32;
        self.spec.adam.schedule_start = self.step;
        Ok(())
    }

    /// Target points in use.
    pub fn target_len(&self) -> u32 {
        self.n_points
    }

    /// Reflow: from the next step on, batches draw fixed pairs `(x0[k], x1[k])`, k < `n`, instead
    /// of independent noise and target points (`build_batch_pairs` in `shaders/batch.wgsl`, twin
    /// `cpu::reflow::build_batch_pairs`); weights, Adam moments and the step count are kept and the
    /// learning-rate schedule restarts (as with a new target). The
    /// first `n` points of `x0` and `x1` (e.g. a sampler's `origins` and `particles`) are copied
    /// on the GPU into buffers the trainer owns, so the caller may reuse its own. Applies to either
    /// coupling (the pairs are the coupling). On error nothing changes.
    pub fn set_pairs(&mut self, x0: &wgpu::Buffer, x1: &wgpu::Buffer, n: u32) -> Result<(), GpuError> {
        let bytes = n as u64 * 8;
        if n == 0 || bytes > x0.size() || bytes > x1.size() {
            return Err(GpuError::Invalid(format!("reflow needs at least one pair and both buffers to hold {n} points")));
        }
        check_fits(&self.ctx, &[("reflow pairs", bytes)])?;
        let reuse = self.pairs.as_ref().is_some_and(|p| p.x0.size() >= bytes);
        if !reuse {
            let device = &self.ctx.device;
            let buf = |label: &str| {
                device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some(label),
                    size: bytes,
                    usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST | wgpu::BufferUsages::COPY_SRC,
                    mapped_at_creation: false,
                })
            };
            let (px0, px1) = (buf("reflow.x0"), buf("reflow.x1"));
            let step_size = std::mem::size_of::<StepParams>() as u64;
            let group = bind_group(device, "batch_pairs", &self.batch_layout, &[
                (&self.step_uniform, Some(step_size)), (&px1, None), (&self.acts, None), (&px0, None), (&self.scratch, None), (&self.labels, None),
            ]);
            let pipeline = match self.pairs.take() {
                Some(old) => {
                    self.allocated_bytes -= old.x0.size() + old.x1.size();
                    old.pipeline
                }
                None => compute_pipeline(device, Kernel::Batch, "build_batch_pairs", &self.batch_layout, None),
            };
            self.allocated_bytes += 2 * bytes;
            let _live = super::counter::Owned::new(&[&px0, &px1]);
            self.pairs = Some(Pairs { x0: px0, x1: px1, n, active: true, pipeline, group, _live });
        }
        let pairs = self.pairs.as_mut().expect("set above");
        let mut encoder = self.ctx.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("reflow.copy") });
        encoder.copy_buffer_to_buffer(x0, 0, &pairs.x0, 0, bytes);
        encoder.copy_buffer_to_buffer(x1, 0, &pairs.x1, 0, bytes);
        self.ctx.queue.submit([encoder.finish()]);
        pairs.n = n;
        pairs.active = true;
        // New training data restarts the learning-rate schedule, as a new target does.
        self.spec.adam.schedule_start = self.step;
        Ok(())
    }

    /// Back to independent draws from the target (the pair buffers are kept for the next round).
    pub fn clear_pairs(&mut self) {
        if let Some(p) = &mut self.pairs {
            p.active = false;
        }
    }

    /// Number of reflow pairs batches are drawn from (None: independent draws).
    pub fn pairs_len(&self) -> Option<u32> {
        self.pairs.as_ref().filter(|p| p.active).map(|p| p.n)
    }

    /// Changes the time density for the following steps (no reallocation).
    pub fn set_time(&mut self, time: crate::cpu::time::TimeDist) {
        self.spec.time = time;
    }

    /// The metrics buffer: `[first_bad_step, pad×3, loss ring]` (read by `gpu::snapshot`).
    pub(crate) fn metrics_buffer(&self) -> &wgpu::Buffer {
        &self.metrics
    }

    /// Changes the learning rate and its schedule for the following steps (no reallocation); a
    /// change restarts the schedule at the current step.
    pub fn set_lr(&mut self, lr: f32, schedule: LrSchedule, horizon: u32) {
        self.spec.adam.set_lr(lr, schedule, horizon, self.step);
    }

    fn step_params(&self, step: u32) -> StepParams {
        let s = &self.spec;
        let (c1, c2) = s.adam.step_scalars(step);
        StepParams {
            step,
            seed: s.seed,
            batch: s.batch,
            n_points: self.pairs_len().unwrap_or(self.n_points),
            sigma_min: s.sigma_min,
            lr: s.adam.lr_at(step),
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
            t_sampling: s.time.kind.code(),
            t_mean: s.time.m,
            t_std: s.time.s,
            t_u: s.time.a,
            in_dim: self.layout.in_dim,
            r_column: s.shape.inputs.r_column().unwrap_or(0),
            class_column: s.shape.inputs.class_column().unwrap_or(0),
            n_classes: s.shape.inputs.n_classes,
            label_dropout: s.label_dropout,
            _pad2: [0; 3],
        }
    }

    /// Dispatches per training step. Tiled: batch + depth forwards + output/loss/δ + depth
    /// backwards + (reduce when split) + Adam = 2·depth + 3 (+1). Software: batch + depth
    /// forwards + output/loss + depth + 1 backwards + Adam = 2·depth + 4. MeanFlow adds one; the
    /// OT coupling's batch is `OT_DISPATCHES` instead of one (unless reflow pairs are active).
    pub fn dispatches_per_step(&self) -> u32 {
        let d = self.spec.shape.depth;
        let mean_flow = self.spec.mean_flow() as u32;
        let pairs = self.pairs.as_ref().is_some_and(|p| p.active);
        let ot = if self.spec.coupling == Coupling::Ot && !pairs { OT_DISPATCHES - 1 } else { 0 };
        mean_flow
            + ot
            + match self.variant {
                KernelVariant::Tiled => 2 * d + 3 + (self.splits > 1) as u32,
                KernelVariant::Software => 2 * d + 4,
            }
    }

    /// Bytes of all GPU buffers this trainer allocated (fixed at creation; nothing is allocated
    /// per step; `status` adds one transient staging buffer per read).
    pub fn allocated_bytes(&self) -> u64 {
        self.allocated_bytes
    }

    /// Queues `n` training steps (in submits of at most `MAX_STEPS_PER_SUBMIT`). Returns at once.
    pub fn train(&mut self, n: u32) {
        self.train_marked(n, MAX_STEPS_PER_SUBMIT, &mut |_, _| {});
    }

    /// `train` with a hook called at the start of each submit's pass (label `"begin"`) and after
    /// every dispatch with the kernel's name, at most `per_submit` steps per submit: the
    /// profiler (`gpu::profile`) writes timestamps there. Training itself passes a no-op.
    pub(crate) fn train_marked(&mut self, n: u32, per_submit: u32, mark: &mut dyn FnMut(&mut wgpu::ComputePass<'_>, &'static str)) {
        let mut left = n;
        while left > 0 {
            let k = left.min(per_submit.clamp(1, MAX_STEPS_PER_SUBMIT));
            let params: Vec<StepParams> = (0..k).map(|i| self.step_params(self.step + i)).collect();
            self.ctx.queue.write_buffer(&self.step_uniform, 0, &slots(&params));
            let mut encoder = self.ctx.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("train") });
            {
                let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor { label: Some("train"), timestamp_writes: None });
                mark(&mut pass, "begin");
                for i in 0..k {
                    self.encode_step(&mut pass, (i as u64 * SLOT) as u32, mark);
                }
            }
            self.ctx.queue.submit([encoder.finish()]);
            self.step += k;
            left -= k;
        }
    }

    fn encode_step(&self, pass: &mut wgpu::ComputePass<'_>, step_offset: u32, mark: &mut dyn FnMut(&mut wgpu::ComputePass<'_>, &'static str)) {
        let spec = &self.spec;
        let (p, g) = (&self.pipelines, &self.groups);
        match (&self.pairs, spec.coupling) {
            (Some(pairs), _) if pairs.active => {
                pass.set_bind_group(0, &pairs.group, &[step_offset]);
                pass.set_pipeline(&pairs.pipeline);
                let (x, y) = dispatch_groups(spec.batch, 64);
                pass.dispatch_workgroups(x, y, 1);
                mark(pass, "batch_pairs");
            }
            (_, Coupling::Independent) => {
                pass.set_bind_group(0, &g.batch, &[step_offset]);
                pass.set_pipeline(&p.batch);
                let (x, y) = dispatch_groups(spec.batch, 64);
                pass.dispatch_workgroups(x, y, 1);
                mark(pass, "batch");
            }
            (_, Coupling::Ot) => {
                // Draws and ε, OT_ITERS Sinkhorn iterations (a row pass and a column pass each),
                // the pairing: 2·OT_ITERS + 2 dispatches (`OT_DISPATCHES`). Every
                // OT_CHECK_EVERY-th iteration (from the OT_CHECK_EVERY-th on) runs the checking
                // pair of passes; once a check passes, the remaining passes return at once.
                // A row pass binds the x0 side read-write and reads the x1 side as a uniform
                // array; a column pass the other way round (`OtGroups`).
                let state = self.ot.as_ref().expect("an OT trainer has its OT state");
                let (ot, og) = (&state.pipelines, &state.groups);
                let groups = spec.batch.div_ceil(OT_WG);
                let sinkhorn_groups = spec.batch.div_ceil(OT_WG * OT_R);
                pass.set_bind_group(0, &og.cols, &[step_offset]);
                pass.set_pipeline(&ot.draw);
                pass.dispatch_workgroups(1, 1, 1);
                mark(pass, "ot_draw");
                for it in 0..OT_ITERS {
                    let check = it > 0 && it % OT_CHECK_EVERY == 0;
                    let (rows, cols) = match (it, check) {
                        (0, _) => (&ot.rows_first, &ot.cols_first),
                        (_, true) => (&ot.rows_check, &ot.cols_check),
                        _ => (&ot.rows, &ot.cols),
                    };
                    pass.set_bind_group(0, &og.rows, &[step_offset]);
                    pass.set_pipeline(rows);
                    pass.dispatch_workgroups(sinkhorn_groups, 1, 1);
                    mark(pass, "ot_sinkhorn");
                    pass.set_bind_group(0, &og.cols, &[step_offset]);
                    pass.set_pipeline(cols);
                    pass.dispatch_workgroups(sinkhorn_groups, 1, 1);
                    mark(pass, "ot_sinkhorn");
                }
                pass.set_bind_group(0, &og.rows, &[step_offset]);
                pass.set_pipeline(&ot.pair);
                pass.dispatch_workgroups(groups, 1, 1);
                mark(pass, "ot_pair");
            }
        }
        if let Some((pipeline, group)) = &p.mean_flow {
            pass.set_pipeline(pipeline);
            pass.set_bind_group(0, group, &[]);
            let (x, y) = dispatch_groups(spec.batch, 64);
            pass.dispatch_workgroups(x, y, 1);
            mark(pass, "meanflow_targets");
        }
        match self.variant {
            KernelVariant::Software => self.encode_software(pass, mark),
            KernelVariant::Tiled => self.encode_tiled(pass, mark),
        }
        pass.set_pipeline(&p.adam);
        pass.set_bind_group(0, &g.adam, &[step_offset]);
        let groups = (spec.shape.param_len() as u32).div_ceil(256) + 1;
        let (x, y) = dispatch_groups(groups * 256, 256);
        pass.dispatch_workgroups(x, y, 1);
        mark(pass, "adam");
    }

    /// Forward, loss and backward with the register-blocked kernels for software adapters (see [`KernelVariant::Software`]).
    fn encode_software(&self, pass: &mut wgpu::ComputePass<'_>, mark: &mut dyn FnMut(&mut wgpu::ComputePass<'_>, &'static str)) {
        let (p, g, batch) = (&self.pipelines, &self.groups, self.spec.batch);
        let n_layers = self.spec.shape.num_layers();
        for l in 0..n_layers {
            let lp = &self.layer_params[l];
            let last = l + 1 == n_layers;
            let vec4 = !last && vec4_layer(lp);
            pass.set_pipeline(if last { &p.output_loss } else if vec4 { &p.forward_vec4 } else { &p.forward });
            pass.set_bind_group(0, &g.layer, &[(l as u64 * SLOT) as u32]);
            let threads = if last {
                batch
            } else if vec4 {
                batch.div_ceil(8) * (lp.out_dim / 4)
            } else {
                batch.div_ceil(4) * lp.out_dim.div_ceil(4)
            };
            let (x, y) = dispatch_groups(threads, 64);
            pass.dispatch_workgroups(x, y, 1);
            mark(pass, if last { "output_loss" } else { "forward" });
        }
        for l in (0..n_layers).rev() {
            let lp = &self.layer_params[l];
            pass.set_bind_group(0, &g.backward, &[(l as u64 * SLOT) as u32, 0]);
            let groups = if vec4_layer(lp) {
                pass.set_pipeline(&p.backward_vec4);
                vec4_backward_groups(lp)
            } else {
                pass.set_pipeline(&p.backward_layer);
                lp.dw_groups + if lp.has_prev == 1 { (batch.div_ceil(4) * lp.in_dim.div_ceil(4)).div_ceil(64) } else { 0 }
            };
            let (x, y) = dispatch_groups(groups * 64, 64);
            pass.dispatch_workgroups(x, y, 1);
            mark(pass, "backward_layer");
        }
    }

    /// Forward, loss and backward with the tiled kernels (see [`KernelVariant::Tiled`]).
    fn encode_tiled(&self, pass: &mut wgpu::ComputePass<'_>, mark: &mut dyn FnMut(&mut wgpu::ComputePass<'_>, &'static str)) {
        let (p, g, batch) = (&self.pipelines, &self.groups, self.spec.batch);
        let depth = self.spec.shape.depth as usize;
        pass.set_pipeline(&p.forward_tiled);
        for l in 0..depth {
            let lp = &self.layer_params[l];
            pass.set_bind_group(0, &g.layer, &[(l as u64 * SLOT) as u32]);
            pass.dispatch_workgroups(lp.out_dim.div_ceil(TILE), batch.div_ceil(self.forward_rows), 1);
            mark(pass, "forward_tiled");
        }
        pass.set_pipeline(&p.output_rows);
        pass.set_bind_group(0, &g.layer, &[(depth as u64 * SLOT) as u32]);
        let (x, y) = dispatch_groups(batch.div_ceil(8) * 256, 256);
        pass.dispatch_workgroups(x, y, 1);
        mark(pass, "output_rows");
        pass.set_pipeline(&p.backward_tiled);
        for l in (0..depth).rev() {
            pass.set_bind_group(0, &g.backward, &[0, (l as u64 * SLOT) as u32]);
            let (x, y) = dispatch_groups(self.backward_params[l].groups() * 256, 256);
            pass.dispatch_workgroups(x, y, 1);
            mark(pass, "backward_tiled");
        }
        if self.splits > 1 {
            pass.set_pipeline(&p.reduce_grads);
            pass.set_bind_group(0, &g.backward, &[0, 0]);
            let (x, y) = dispatch_groups(self.spec.shape.param_len() as u32, 256);
            pass.dispatch_workgroups(x, y, 1);
            mark(pass, "reduce_grads");
        }
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
        let _live = super::counter::Owned::new(&[&staging]);
        let words: Vec<u32> = bytemuck::pod_collect_to_vec(&map_staging(&self.ctx, &staging).await?);
        let ring = &words[METRICS_HEADER as usize..];
        let losses = (step - count..step).map(|s| (s, f32::from_bits(ring[(s % LOSS_RING) as usize]))).collect();
        let bad = words[0];
        Ok(TrainStatus { step, losses, first_bad_step: (bad != NO_BAD_STEP).then_some(bad) })
    }

    /// As [`GpuTrainer::status`], but the copy is encoded now and the returned future owns all it
    /// needs (no borrow of the trainer), so a caller can keep queueing steps while the read is in
    /// flight: the page's frame loop keeps one of these pending (`src/web`).
    pub fn status_detached(&self, count: u32) -> impl std::future::Future<Output = Result<TrainStatus, GpuError>> + 'static {
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
        let ctx = self.ctx.clone();
        let live = super::counter::Owned::new(&[&staging]);
        async move {
            let _live = live;
            let words: Vec<u32> = bytemuck::pod_collect_to_vec(&map_staging(&ctx, &staging).await?);
            let ring = &words[METRICS_HEADER as usize..];
            let losses = (step - count..step).map(|s| (s, f32::from_bits(ring[(s % LOSS_RING) as usize]))).collect();
            let bad = words[0];
            Ok(TrainStatus { step, losses, first_bad_step: (bad != NO_BAD_STEP).then_some(bad) })
        }
    }
}

/// Whether the software variant runs layer `lp` with the vec4 kernels (`shaders/mlp_*_vec4.wgsl`):
/// both widths and every offset the kernels index as vec4 must be multiples of 4 floats. For the
/// standard shapes that is every layer but the input layer (in = 3) and the output layer (out = 2),
/// when the batch is a multiple of 4 (the activations' offsets are multiples of the batch).
pub fn vec4_layer(lp: &LayerParams) -> bool {
    let offsets = [lp.w_offset, lp.b_offset, lp.x_offset, lp.z_offset, lp.a_offset, lp.delta_offset];
    let prev = if lp.has_prev == 1 { [lp.delta_prev_offset, lp.z_prev_offset] } else { [0, 0] };
    lp.in_dim % 4 == 0 && lp.out_dim % 4 == 0 && lp.batch > 0 && offsets.iter().chain(prev.iter()).all(|o| o % 4 == 0)
}

/// Workgroups (of 64) of `backward_vec4` for layer `lp`: the dW role's, then the δ_prev role's
/// (the split `shaders/mlp_backward_vec4.wgsl` recomputes).
fn vec4_backward_groups(lp: &LayerParams) -> u32 {
    let i4 = lp.in_dim / 4;
    let dw = (lp.out_dim.div_ceil(8) * i4).div_ceil(64);
    let dx = if lp.has_prev == 1 { (lp.batch.div_ceil(8) * i4).div_ceil(64) } else { 0 };
    dw + dx
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
                dw_groups: (ll.out_dim.div_ceil(4) * ll.in_dim.div_ceil(4)).div_ceil(64),
                has_prev: (l > 0) as u32,
                target_offset: layout.target,
                loss_offset: layout.loss_terms,
            }
        })
        .collect()
}

/// Each hidden layer's tiled backward dispatch (see `shaders/mlp_backward.wgsl`): dW of layer l
/// split over the batch, δ_{l-1} when l > 0, and for the last hidden layer the output layer's dW.
/// `rows`: rows per tile of dW's out and δ_prev's batch, 64 (`backward_tiled`) or 128
/// (`backward_tiled8`); the other tile edge is always 64.
fn backward_params(spec: &TrainSpec, layout: &ActivationLayout, splits: u32, rows: u32) -> Vec<BackwardParams> {
    let layers = spec.shape.layers();
    let depth = spec.shape.depth as usize;
    let k_chunk = spec.batch.div_ceil(splits);
    let dw = |l: usize| {
        let ll = &layers[l];
        let (tiles_m, tiles_n) = (ll.out_dim.div_ceil(rows), ll.in_dim.div_ceil(TILE));
        DwGemm {
            groups: tiles_m * tiles_n * splits,
            tiles_m,
            tiles_n,
            k_chunk,
            out_dim: ll.out_dim,
            in_dim: ll.in_dim,
            delta_offset: layout.deltas[l],
            x_offset: layout.layer_input(l),
            w_offset: ll.w_offset,
            b_offset: ll.b_offset,
            _pad: [0; 2],
        }
    };
    (0..depth)
        .map(|l| {
            let ll = &layers[l];
            let has_prev = l > 0;
            let dx_tiles_n = ll.in_dim.div_ceil(TILE);
            BackwardParams {
                dw: dw(l),
                dw_out: if l + 1 == depth { dw(depth) } else { DwGemm::default() },
                batch: spec.batch,
                splits,
                n_params: spec.shape.param_len() as u32,
                activation: spec.shape.activation.code(),
                dx_groups: if has_prev { spec.batch.div_ceil(rows) * dx_tiles_n } else { 0 },
                dx_tiles_n,
                dx_in: ll.in_dim,
                dx_out: ll.out_dim,
                dx_delta_offset: layout.deltas[l],
                dx_w_offset: ll.w_offset,
                delta_prev_offset: if has_prev { layout.deltas[l - 1] } else { 0 },
                z_prev_offset: if has_prev { layout.hidden[l - 1].0 } else { 0 },
            }
        })
        .collect()
}

/// A class-conditional spec needs one label per target point, each below its class count.
fn check_labels(spec: &TrainSpec, data: &[[f32; 2]], labels: &[u32]) -> Result<(), GpuError> {
    let k = spec.shape.inputs.n_classes;
    if k == 0 {
        return Ok(());
    }
    if labels.len() != data.len() {
        return Err(GpuError::Invalid(format!(
            "a class-conditional model needs a class label for each of the {} target points ({} given); of the custom targets only a drawing has them (its brush colours): turn conditional off",
            data.len(),
            labels.len()
        )));
    }
    if let Some(bad) = labels.iter().find(|&&l| l >= k) {
        return Err(GpuError::Invalid(format!("class label {bad} is out of range: the model has {k} classes (0 to {})", k - 1)));
    }
    Ok(())
}

/// Fails with a message naming the buffer and the limit when a buffer would exceed the device's
/// storage-binding limit.
pub fn check_fits(ctx: &GpuContext, buffers: &[(&str, u64)]) -> Result<(), GpuError> {
    let max = ctx.limits.max_storage_buffer_binding_size;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::BenchConfig;

    /// The vec4 kernels take every hidden-to-hidden layer of the benchmark shapes, and never the
    /// input layer (in = 3), the output layer (out = 2) or a batch that is not a multiple of 4.
    #[test]
    fn vec4_layers_of_standard_shapes() {
        for config in BenchConfig::ALL {
            let spec = config.spec();
            let lps = layer_params(&spec, &spec.shape.activation_layout(spec.batch));
            let flags: Vec<bool> = lps.iter().map(vec4_layer).collect();
            let n = flags.len();
            assert!(!flags[0] && !flags[n - 1], "{config:?}: {flags:?}");
            assert!(flags[1..n - 1].iter().all(|&f| f), "{config:?}: {flags:?}");
        }
        // The shapes tests/kernels.rs runs through the vec4 kernels.
        let mut spec = BenchConfig::S.spec();
        spec.shape = crate::model::ModelShape::new(20, 3, spec.shape.activation);
        spec.batch = 148;
        let lps = layer_params(&spec, &spec.shape.activation_layout(spec.batch));
        assert_eq!(lps.iter().map(vec4_layer).collect::<Vec<_>>(), [false, true, true, false]);
        spec.batch = 150;
        let lps = layer_params(&spec, &spec.shape.activation_layout(spec.batch));
        assert!(lps.iter().all(|lp| !vec4_layer(lp)));
    }
}
