//! Does a model fit this device? Checked before anything is allocated, so a model that is too
//! big gets a message naming the largest batch (and width) that would fit instead of a driver
//! validation error.
//!
//! Trainer buffers (bytes, P = packed parameter count, B = batch, W = width, D = depth,
//! L = `ActivationLayout::len` ≈ B·(4 + 2·W·D + 2), Δ = `deltas_len` ≈ B·(W·D + 3)):
//! ```text
//! params, grads  4P each        moments 8P        activations 4L      deltas 4Δ
//! target points  8·n_points     source  8·n_source    OT scratch 4·(7B + 1), OT sides 2·16·OT_MAX_BATCH
//! ```
//! Each must be ≤ min(maxStorageBufferBindingSize, maxBufferSize). The kernels' static needs are
//! checked too: workgroup memory (summed over each shader file's `var<workgroup>` declarations, an
//! upper bound for any one entry point) against `maxComputeWorkgroupStorageSize`, and the storage
//! buffers of the widest trainer bind group against `maxStorageBuffersPerShaderStage`.
//! All arithmetic is pure (a [`Budget`] from `wgpu::Limits`), so it is unit-tested with
//! artificially small limits.

use super::shaders::Kernel;
use crate::model::ModelShape;

/// Storage buffers bound at once by the widest trainer bind group (backward and Adam: 5).
pub const TRAINER_STORAGE_BUFFERS: u32 = 5;

/// The device limits that bound a model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Budget {
    /// Bytes one storage buffer (binding) may have: min(max storage binding, max buffer size).
    pub max_buffer: u64,
    pub workgroup_bytes: u64,
    pub storage_per_stage: u32,
}

impl Budget {
    pub fn from_limits(l: &wgpu::Limits) -> Self {
        Budget {
            max_buffer: l.max_storage_buffer_binding_size.min(l.max_buffer_size),
            workgroup_bytes: l.max_compute_workgroup_storage_size as u64,
            storage_per_stage: l.max_storage_buffers_per_shader_stage,
        }
    }
}

/// The trainer's storage buffers for `shape` at batch `batch`: `(name, bytes)`.
pub fn trainer_buffers(shape: &ModelShape, batch: u32, n_points: usize, n_source: usize) -> Vec<(&'static str, u64)> {
    let p = shape.param_len() as u64;
    let layout = shape.activation_layout(batch);
    vec![
        ("parameters", 4 * p),
        ("gradients", 4 * p),
        ("Adam moments", 8 * p),
        ("activations", 4 * layout.len as u64),
        ("deltas", 4 * layout.deltas_len as u64),
        ("target points", 8 * n_points as u64),
        ("source points", 8 * n_source as u64),
        ("coupling scratch", 4 * super::trainer::ot_scratch_floats(batch)),
        // Allocated only with the OT coupling (16 KiB each: never the largest; listed for all).
        ("OT coupling sides", 2 * super::trainer::OT_SIDE_BYTES),
    ]
}

fn largest_over(budget: &Budget, buffers: &[(&'static str, u64)]) -> Option<(&'static str, u64)> {
    buffers.iter().filter(|(_, b)| *b > budget.max_buffer).max_by_key(|(_, b)| *b).copied()
}

/// Largest `x` in `[1, hi]` with `fits(x)` (monotone: fits for small x), or None.
fn largest(hi: u32, fits: impl Fn(u32) -> bool) -> Option<u32> {
    if hi == 0 || !fits(1) {
        return None;
    }
    let (mut lo, mut hi) = (1u32, hi);
    while lo < hi {
        let mid = lo + (hi - lo).div_ceil(2);
        if fits(mid) { lo = mid } else { hi = mid - 1 }
    }
    Some(lo)
}

/// Largest batch below `batch` at which `shape`'s trainer buffers fit.
pub fn largest_batch(budget: &Budget, shape: &ModelShape, batch: u32, n_points: usize, n_source: usize) -> Option<u32> {
    largest(batch.saturating_sub(1), |b| largest_over(budget, &trainer_buffers(shape, b, n_points, n_source)).is_none())
}

/// Largest width below `shape.width` at which the trainer buffers fit at batch `batch`.
pub fn largest_width(budget: &Budget, shape: &ModelShape, batch: u32, n_points: usize, n_source: usize) -> Option<u32> {
    largest(shape.width.saturating_sub(1), |w| {
        let s = ModelShape { width: w, ..*shape };
        largest_over(budget, &trainer_buffers(&s, batch, n_points, n_source)).is_none()
    })
}

fn mib(b: u64) -> String {
    format!("{:.1} MiB", b as f64 / 1048576.0)
}

/// Ok when the trainer for `shape` at `batch` fits; otherwise a message naming the buffer, the
/// limit, and the largest batch (at this width) and width (at this batch) that would fit.
pub fn check_trainer(budget: &Budget, shape: &ModelShape, batch: u32, n_points: usize, n_source: usize) -> Result<(), String> {
    check_kernels(budget)?;
    let Some((name, bytes)) = largest_over(budget, &trainer_buffers(shape, batch, n_points, n_source)) else {
        return Ok(());
    };
    let mut fixes = Vec::new();
    if let Some(b) = largest_batch(budget, shape, batch, n_points, n_source) {
        fixes.push(format!("the largest batch that fits at width {} is {b}", shape.width));
    }
    if let Some(w) = largest_width(budget, shape, batch, n_points, n_source) {
        fixes.push(format!("the largest width that fits at batch {batch} is {w}"));
    }
    if fixes.is_empty() {
        fixes.push("no smaller batch or width at this depth fits either; lower the depth".into());
    }
    Err(format!(
        "this model does not fit this GPU: its {name} buffer needs {} but the device allows {} per buffer; {}",
        mib(bytes),
        mib(budget.max_buffer),
        fixes.join(", and ")
    ))
}

/// Bytes of `var<workgroup>` memory declared in a WGSL source (sum over declarations; element
/// types f32/u32/i32, vec2/vec4 of them; array lengths as literals or `const NAME: u32 = Nu;`).
pub fn workgroup_bytes(wgsl: &str) -> u64 {
    // A `const NAME: u32 = <integer or another const>;` (the prelude's constants are named).
    fn konst(wgsl: &str, name: &str, depth: u32) -> Option<u64> {
        let v = wgsl.lines().find_map(|l| {
            let rest = l.trim().strip_prefix("const ")?.strip_prefix(name)?.strip_prefix(':')?;
            let v = rest.split('=').nth(1)?.split("//").next()?.trim().trim_end_matches(';').trim();
            Some(v.trim_end_matches('u').to_string())
        })?;
        v.parse().ok().or_else(|| if depth > 0 { konst(wgsl, &v, depth - 1) } else { None })
    }
    let konst = |name: &str| konst(wgsl, name, 4);
    let mut total = 0;
    for line in wgsl.lines().filter(|l| l.trim_start().starts_with("var<workgroup>")) {
        let line = line.split("//").next().unwrap_or("");
        let Some(decl) = line.split("array<").nth(1) else {
            total += 16; // a scalar or vector: at most 16 B
            continue;
        };
        let (ty, count) = match decl.rsplit_once(',') {
            Some((t, c)) => (t.trim().to_string(), c.split('>').next().unwrap_or("").trim().trim_end_matches('u').to_string()),
            None => continue,
        };
        let elem = if ty.starts_with("vec4") || ty.starts_with("vec3") { 16 } else if ty.starts_with("vec2") { 8 } else { 4 };
        let n = count.parse::<u64>().ok().or_else(|| konst(&count)).unwrap_or(0);
        total += elem * n;
    }
    total
}

/// Ok when every kernel's workgroup memory and the trainer's storage bindings fit the device.
pub fn check_kernels(budget: &Budget) -> Result<(), String> {
    for k in Kernel::ALL {
        let need = workgroup_bytes(&k.source(Some(1)));
        if need > budget.workgroup_bytes {
            return Err(format!(
                "this GPU offers {} B of workgroup memory but the {} kernel needs {need} B",
                budget.workgroup_bytes,
                k.file()
            ));
        }
    }
    if budget.storage_per_stage < TRAINER_STORAGE_BUFFERS {
        return Err(format!(
            "this GPU allows {} storage buffers per shader stage but training binds {TRAINER_STORAGE_BUFFERS}",
            budget.storage_per_stage
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Activation;

    fn shape(width: u32, depth: u32) -> ModelShape {
        ModelShape::new(width, depth, Activation::Silu)
    }

    fn budget(max_buffer: u64) -> Budget {
        Budget { max_buffer, workgroup_bytes: 16384, storage_per_stage: 8 }
    }

    #[test]
    fn default_limits_run_the_page_models() {
        let b = Budget::from_limits(&wgpu::Limits::default());
        assert_eq!(b.max_buffer, 128 << 20);
        check_trainer(&b, &shape(256, 4), 4096, 1 << 15, 0).unwrap();
    }

    #[test]
    fn too_big_names_the_largest_batch_and_width_that_fit() {
        // width 64, depth 2: activations = 4·B·(3 + 2 + 2·64·2 + 2) = 1052·B bytes, the largest buffer.
        let s = shape(64, 2);
        let b = budget(1_052_000);
        assert_eq!(4 * s.activation_layout(1000).len as u64, 1_052_000);
        check_trainer(&b, &s, 1000, 100, 0).unwrap();
        let err = check_trainer(&b, &s, 4096, 100, 0).unwrap_err();
        assert!(err.contains("activations buffer needs"), "{err}");
        assert!(err.contains("the largest batch that fits at width 64 is 1000"), "{err}");
        // At batch 4096: 4·4096·(7 + 4w) ≤ 1_052_000 → w ≤ 14.3 → 14.
        assert!(err.contains("the largest width that fits at batch 4096 is 14"), "{err}");
        assert_eq!(largest_batch(&b, &s, 4096, 100, 0), Some(1000));
        assert_eq!(largest_width(&b, &s, 4096, 100, 0), Some(14));
    }

    #[test]
    fn answers_are_tight() {
        // For a range of small budgets the answer fits and one more does not.
        let s = shape(32, 3);
        for max in [10_000u64, 77_777, 1 << 20] {
            let b = budget(max);
            if let Some(n) = largest_batch(&b, &s, 1 << 16, 10, 0) {
                assert!(largest_over(&b, &trainer_buffers(&s, n, 10, 0)).is_none());
                assert!(largest_over(&b, &trainer_buffers(&s, n + 1, 10, 0)).is_some());
            }
        }
    }

    #[test]
    fn parameters_too_big_for_any_batch() {
        // width 1024 depth 8: ~8.4M params → 67 MiB of moments; a 16 MiB budget fits no batch.
        let s = shape(1024, 8);
        let err = check_trainer(&budget(16 << 20), &s, 256, 10, 0).unwrap_err();
        assert!(err.contains("Adam moments buffer"), "{err}");
        assert!(!err.contains("largest batch"), "{err}");
        assert!(err.contains("the largest width that fits at batch 256 is"), "{err}");
    }

    #[test]
    fn workgroup_memory_is_read_from_the_shaders() {
        assert_eq!(workgroup_bytes(&Kernel::MlpForward.source(None)), (528 + 272) * 16);
        assert_eq!(workgroup_bytes(&Kernel::SlicedW2.source(None)), (1024 + 1024 + 256) * 4);
        assert_eq!(workgroup_bytes(&Kernel::CfmLoss.source(None)), 256 * 8 + 8 * 8);
        assert_eq!(workgroup_bytes("const K: u32 = 7u;\nvar<workgroup> x: array<vec4<f32>, K>;"), 112);
        let small = Budget { max_buffer: 1 << 30, workgroup_bytes: 4096, storage_per_stage: 8 };
        let err = check_kernels(&small).unwrap_err();
        assert!(err.contains("4096 B of workgroup memory"), "{err}");
        let few = Budget { max_buffer: 1 << 30, workgroup_bytes: 16384, storage_per_stage: 4 };
        assert!(check_kernels(&few).unwrap_err().contains("4 storage buffers per shader stage"));
    }
}
