//! Uniform structs read by the kernels; each mirrors a WGSL struct field for field
//! (see `shaders/common.wgsl` and `shaders/ode_step.wgsl`). Per-step and per-layer values are
//! stored in 256-byte slots (WebGPU's minimum dynamic-offset alignment) and selected with
//! dynamic offsets, so one bind group serves every step and layer.

use bytemuck::{Pod, Zeroable};

/// Stride of one dynamic-offset slot.
pub const SLOT: u64 = 256;

/// One training step's scalars (WGSL `StepParams`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub struct StepParams {
    pub step: u32,
    pub seed: u32,
    pub batch: u32,
    pub n_points: u32,
    pub sigma_min: f32,
    pub lr: f32,
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
    pub weight_decay: f32,
    pub c1: f32,
    pub c2: f32,
    pub n_params: u32,
    pub loss_offset: u32,
    pub loss_slot: u32,
    /// `Path::code()`.
    pub path: u32,
    /// Points in the source buffer; 0 means x0 ~ N(0, I).
    pub n_source: u32,
    pub _pad: [u32; 3],
    /// `TimeSampling::code()` and the density's parameters (`cpu::time::TimeDist`).
    pub t_sampling: u32,
    pub t_mean: f32,
    pub t_std: f32,
    pub t_u: f32,
    /// Columns of one input row (`InputLayout::dim`).
    pub in_dim: u32,
    /// Column of MeanFlow's `r` (0: none).
    pub r_column: u32,
    /// Column of class 0 of the one-hot row (0: unconditional).
    pub class_column: u32,
    pub n_classes: u32,
    /// Probability that a label becomes the no-class token.
    pub label_dropout: f32,
    pub _pad2: [u32; 3],
}

/// One linear layer's shape and offsets (WGSL `LayerParams`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub struct LayerParams {
    pub batch: u32,
    pub in_dim: u32,
    pub out_dim: u32,
    pub activation: u32,
    pub w_offset: u32,
    pub b_offset: u32,
    pub x_offset: u32,
    pub z_offset: u32,
    pub a_offset: u32,
    pub delta_offset: u32,
    pub delta_prev_offset: u32,
    pub z_prev_offset: u32,
    pub dw_groups: u32,
    pub has_prev: u32,
    pub target_offset: u32,
    pub loss_offset: u32,
}

/// One ODE step (WGSL `OdeParams`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub struct OdeParams {
    pub n: u32,
    pub solver: u32,
    pub record: u32,
    pub step_index: u32,
    pub t: f32,
    pub h: f32,
    pub seed: u32,
    /// Points in the source buffer; 0 means x0 ~ N(0, I).
    pub n_source: u32,
    /// SDE sampling (`sde_step`): noise scale G of `g(t) = G·sqrt(β_t)`, the path and its σmin.
    pub noise: f32,
    pub path: u32,
    pub sigma_min: f32,
    pub _pad: u32,
    /// The particles `[first, end)` this dispatch steps (a chunk: `budget::ChunkPlan`).
    pub first: u32,
    pub end: u32,
    pub _chunk_pad: [u32; 2],
}

/// Maximum linear layers (depth ≤ 8 hidden + output), WGSL `MAX_LAYERS`.
pub const MAX_LAYERS: usize = 9;

/// The network's layer table and how a sampler queries it (WGSL `ModelDesc`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub struct ModelDesc {
    pub n_layers: u32,
    pub activation: u32,
    /// Input column of MeanFlow's `r` (0: none).
    pub r_column: u32,
    /// Input column of class 0 (0: unconditional).
    pub class_column: u32,
    /// Per layer: (in_dim, out_dim, w_offset, b_offset).
    pub layers: [[u32; 4]; MAX_LAYERS],
    /// The one-hot column set when evaluating (the query's class, or the no-class token; 0 for
    /// unconditional models).
    pub query_column: u32,
    /// The no-class column (0 for unconditional models).
    pub null_column: u32,
    /// Classifier-free guidance weight w (used when `guided` = 1).
    pub guidance: f32,
    /// 1: `v(∅) + w·(v(c) - v(∅))`; 0: the query column's field alone.
    pub guided: u32,
}

impl ModelDesc {
    /// The layer table of `shape`, queried for the no-class field (`Query::default()`).
    pub fn for_shape(shape: &crate::model::ModelShape) -> Self {
        Self::for_query(shape, crate::model::Query::default())
    }

    /// The layer table of `shape`, queried for `query`'s class and guidance.
    pub fn for_query(shape: &crate::model::ModelShape, query: crate::model::Query) -> Self {
        let inputs = &shape.inputs;
        let mut d = ModelDesc {
            n_layers: shape.num_layers() as u32,
            activation: shape.activation.code(),
            r_column: inputs.r_column().unwrap_or(0),
            class_column: inputs.class_column().unwrap_or(0),
            query_column: inputs.one_hot_column(query.class).unwrap_or(0),
            null_column: inputs.one_hot_column(None).unwrap_or(0),
            guidance: query.guidance,
            guided: query.guided(inputs) as u32,
            ..Default::default()
        };
        for (i, l) in shape.layers().iter().enumerate().take(MAX_LAYERS) {
            d.layers[i] = [l.in_dim, l.out_dim, l.w_offset, l.b_offset];
        }
        d
    }
}

/// One likelihood evaluation (WGSL `DensityParams` in `shaders/density.wgsl`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub struct DensityParams {
    pub n: u32,
    pub steps: u32,
    pub solver: u32,
    /// The points `[first, end)` and steps `[k_begin, k_end)` of this dispatch (a chunk).
    pub first: u32,
    pub end: u32,
    pub k_begin: u32,
    pub k_end: u32,
    pub _pad: u32,
}

/// The MeanFlow target kernel's sizes (WGSL `MeanFlowParams` in `shaders/meanflow.wgsl`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub struct MeanFlowParams {
    pub batch: u32,
    pub in_dim: u32,
    pub target_offset: u32,
    pub _pad: u32,
}

/// One field evaluation (WGSL `FieldParams` in `shaders/field.wgsl`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub struct FieldParams {
    pub n: u32,
    pub _pad: [u32; 3],
}

/// One sample-quality evaluation (WGSL `QualityParams` in `shaders/sliced_w2.wgsl`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub struct QualityParams {
    pub n_particles: u32,
    pub n_points: u32,
    pub n_dirs: u32,
    pub seed: u32,
    pub offset: f32,
    pub _pad: [f32; 3],
}

const _: () = assert!(std::mem::size_of::<StepParams>() == 128);
const _: () = assert!(std::mem::size_of::<LayerParams>() == 64);
const _: () = assert!(std::mem::size_of::<OdeParams>() == 64);
const _: () = assert!(std::mem::size_of::<DensityParams>() == 32);
const _: () = assert!(std::mem::size_of::<ModelDesc>() == 16 + 16 * MAX_LAYERS + 16);

/// Packs `items` into consecutive 256-byte slots.
pub fn slots<T: Pod>(items: &[T]) -> Vec<u8> {
    let mut out = vec![0u8; items.len() * SLOT as usize];
    for (i, it) in items.iter().enumerate() {
        let b = bytemuck::bytes_of(it);
        out[i * SLOT as usize..][..b.len()].copy_from_slice(b);
    }
    out
}

/// One adaptive integration (WGSL `AdaptiveParams` in `shaders/ode_adaptive.wgsl`); the step
/// sizes are fractions of `t1 - t0` (see `cpu::adaptive::AdaptiveOptions`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub struct AdaptiveParams {
    pub n: u32,
    pub frames: u32,
    pub max_nfe: u32,
    /// The particles `[first, end)` this dispatch advances (a chunk: `budget::ChunkPlan`).
    pub first: u32,
    pub t0: f32,
    pub t1: f32,
    pub rtol: f32,
    pub atol: f32,
    pub safety: f32,
    pub min_factor: f32,
    pub max_factor: f32,
    pub h0: f32,
    pub h_min: f32,
    pub h_max: f32,
    /// This chunk's limit of field evaluations per particle (≤ `max_nfe`).
    pub limit: u32,
    /// 1: the particles start at `t0` (their first chunk); 0: they go on from their saved state.
    pub start: u32,
    pub end: u32,
    pub _pad: [u32; 3],
}

const _: () = assert!(std::mem::size_of::<AdaptiveParams>() == 80);

/// One measured ODE step (WGSL `FlowStepParams` in `shaders/flow_stats.wgsl`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub struct FlowStepParams {
    pub n: u32,
    pub solver: u32,
    /// 1 on the first step: the energy accumulators start from this step's value.
    pub first: u32,
    pub _pad0: u32,
    pub t: f32,
    pub h: f32,
    pub _pad1: [f32; 2],
}

/// One minibatch-W2 estimate (WGSL `W2Params` in `shaders/w2_minibatch.wgsl`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub struct W2Params {
    pub n: u32,
    pub m: u32,
    pub batches: u32,
    pub out_offset: u32,
}

/// One exact-field dispatch (WGSL `ExactParams` in `shaders/exact_field.wgsl`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub struct ExactParams {
    /// Queries or particles.
    pub n: u32,
    pub n_points: u32,
    /// `Path::code()`.
    pub path: u32,
    /// `Solver::code()` (exact flow).
    pub solver: u32,
    pub sigma_min: f32,
    pub t: f32,
    pub h: f32,
    pub seed: u32,
    pub record: u32,
    pub step_index: u32,
    /// Field error: which reading (the draws' `step` key).
    pub reading: u32,
    /// `exact_field_at`: the first query of the chunk; `exact_flow_step`: the first particle.
    pub first: u32,
    /// `exact_flow_step`: one past the last particle of the chunk (at most `n`).
    pub end: u32,
    pub _pad: [u32; 3],
}

const _: () = assert!(std::mem::size_of::<FlowStepParams>() == 32);
const _: () = assert!(std::mem::size_of::<W2Params>() == 16);
const _: () = assert!(std::mem::size_of::<ExactParams>() == 64);

/// Every `#[repr(C)]` twin checked against naga's reflection of the WGSL that declares it: each
/// member a shader reads has the same name, offset and size on both sides, and the structs have
/// the same size. (Padding members, `_…`, may be split differently.)
#[cfg(all(test, not(target_arch = "wasm32")))]
pub(crate) mod reflect {
    use super::*;
    use crate::gpu::shaders::Kernel;

    /// `(size, [(name, offset, size)])` of the Rust struct, from the listed fields.
    macro_rules! rust_layout {
        ($ty:ty { $($f:ident),* $(,)? }) => {{
            let z = <$ty as bytemuck::Zeroable>::zeroed();
            (std::mem::size_of::<$ty>(), vec![$((stringify!($f), std::mem::offset_of!($ty, $f), std::mem::size_of_val(&z.$f))),*])
        }};
    }
    pub(crate) use rust_layout;

    /// `(span, [(name, offset, size)])` of the WGSL struct `name` in `src`, as naga lays it out.
    pub fn wgsl_layout(src: &str, name: &str) -> (usize, Vec<(String, usize, usize)>) {
        let module = naga::front::wgsl::parse_str(src).unwrap_or_else(|e| panic!("{}", e.emit_to_string(src)));
        let mut layouter = naga::proc::Layouter::default();
        layouter.update(module.to_ctx()).unwrap();
        let (_, ty) = module.types.iter().find(|(_, t)| t.name.as_deref() == Some(name)).unwrap_or_else(|| panic!("no struct {name}"));
        let naga::TypeInner::Struct { members, span } = &ty.inner else { panic!("{name} is not a struct") };
        let members = members.iter().map(|m| (m.name.clone().unwrap_or_default(), m.offset as usize, layouter[m.ty].size as usize)).collect();
        (*span as usize, members)
    }

    /// Asserts the two layouts agree (see the module docs).
    pub fn check(what: &str, rust: (usize, Vec<(&str, usize, usize)>), wgsl: (usize, Vec<(String, usize, usize)>)) {
        assert_eq!(rust.0, wgsl.0, "{what}: Rust size {} vs WGSL size {}", rust.0, wgsl.0);
        let real = |n: &str| !n.starts_with('_');
        for (name, off, size) in wgsl.1.iter().filter(|m| real(&m.0)) {
            let r = rust.1.iter().find(|f| f.0 == name).unwrap_or_else(|| panic!("{what}: WGSL member {name} has no Rust field"));
            assert_eq!((r.1, r.2), (*off, *size), "{what}.{name}: Rust (offset, size) {:?} vs WGSL {:?}", (r.1, r.2), (off, size));
        }
        for (name, ..) in rust.1.iter().filter(|f| real(f.0)) {
            assert!(wgsl.1.iter().any(|m| m.0 == *name), "{what}: Rust field {name} is not in the WGSL struct");
        }
    }

    #[test]
    fn compute_uniforms_match_their_wgsl_structs() {
        let src = |k: Kernel| k.source(Some(16));
        check("StepParams", rust_layout!(StepParams { step, seed, batch, n_points, sigma_min, lr, beta1, beta2, eps, weight_decay, c1, c2, n_params, loss_offset, loss_slot, path, n_source, _pad, t_sampling, t_mean, t_std, t_u, in_dim, r_column, class_column, n_classes, label_dropout, _pad2 }), wgsl_layout(&src(Kernel::Batch), "StepParams"));
        check("LayerParams", rust_layout!(LayerParams { batch, in_dim, out_dim, activation, w_offset, b_offset, x_offset, z_offset, a_offset, delta_offset, delta_prev_offset, z_prev_offset, dw_groups, has_prev, target_offset, loss_offset }), wgsl_layout(&src(Kernel::MlpForward), "LayerParams"));
        check("ModelDesc", rust_layout!(ModelDesc { n_layers, activation, r_column, class_column, layers, query_column, null_column, guidance, guided }), wgsl_layout(&src(Kernel::OdeStep), "ModelDesc"));
        check("OdeParams", rust_layout!(OdeParams { n, solver, record, step_index, t, h, seed, n_source, noise, path, sigma_min, _pad, first, end, _chunk_pad }), wgsl_layout(&src(Kernel::OdeStep), "OdeParams"));
        check("DensityParams", rust_layout!(DensityParams { n, steps, solver, first, end, k_begin, k_end, _pad }), wgsl_layout(&src(Kernel::Density), "DensityParams"));
        check("QualityParams", rust_layout!(QualityParams { n_particles, n_points, n_dirs, seed, offset, _pad }), wgsl_layout(&src(Kernel::SlicedW2), "QualityParams"));
        check("AdaptiveParams", rust_layout!(AdaptiveParams { n, frames, max_nfe, first, t0, t1, rtol, atol, safety, min_factor, max_factor, h0, h_min, h_max, limit, start, end, _pad }), wgsl_layout(&src(Kernel::OdeAdaptive), "AdaptiveParams"));
        check("MeanFlowParams", rust_layout!(MeanFlowParams { batch, in_dim, target_offset, _pad }), wgsl_layout(&src(Kernel::MeanFlow), "MeanFlowParams"));
        check("FlowStepParams", rust_layout!(FlowStepParams { n, solver, first, _pad0, t, h, _pad1 }), wgsl_layout(&src(Kernel::FlowStats), "FlowStepParams"));
        check("W2Params", rust_layout!(W2Params { n, m, batches, out_offset }), wgsl_layout(&src(Kernel::W2Minibatch), "W2Params"));
        check("ExactParams", rust_layout!(ExactParams { n, n_points, path, solver, sigma_min, t, h, seed, record, step_index, reading, first, end }), wgsl_layout(&src(Kernel::ExactField), "ExactParams"));
        use crate::gpu::trainer::{BackwardParams, DwGemm};
        check("DwGemm", rust_layout!(DwGemm { groups, tiles_m, tiles_n, k_chunk, out_dim, in_dim, delta_offset, x_offset, w_offset, b_offset, _pad }), wgsl_layout(&src(Kernel::MlpBackward), "DwGemm"));
        check(
            "BackwardParams",
            rust_layout!(BackwardParams { dw, dw_out, batch, splits, n_params, activation, dx_groups, dx_tiles_n, dx_in, dx_out, dx_delta_offset, dx_w_offset, delta_prev_offset, z_prev_offset }),
            wgsl_layout(&src(Kernel::MlpBackward), "BackwardParams"),
        );
    }

    #[test]
    fn a_moved_member_is_caught() {
        let wgsl = wgsl_layout("struct OdeParams { n: u32, solver: u32, step_index: u32, record: u32, t: f32, h: f32, seed: u32, n_source: u32 }", "OdeParams");
        let r = std::panic::catch_unwind(|| check("OdeParams", rust_layout!(OdeParams { n, solver, record, step_index, t, h, seed, n_source, noise, path, sigma_min, _pad, first, end, _chunk_pad }), wgsl));
        assert!(r.is_err(), "swapped members must fail the check");
    }
}
