//! Register-blocked matrix products of the fast CPU trainer (the blocking of the software WGSL
//! kernels, `shaders/mlp_forward.wgsl` / `mlp_backward.wgsl`: a 4×4 block of outputs per step of
//! k, here two such blocks side by side, 4 rows × 8 columns in eight [`F4`] accumulators).
//!
//! Every output element is summed over k **in increasing k**, one multiply and one add per term,
//! starting from the bias (or zero), exactly as the scalar reference `cpu::mlp` sums it; so the
//! results are the reference's bits, not just close to them.
//!
//! Operands that a block reads a few columns at a time from many rows are first copied into
//! **column panels** ([`pack_panels`]): the columns `j..j+w` (w = 8, or 4 for a last odd block)
//! of a `k × n` matrix, row after row, `w` contiguous floats per row, at offset `j·k`. The inner
//! loops then read memory in order instead of one cache line per row.
//!
//! - [`gemm_nn`]: `C[r, j] = init[j] + Σ_{k<K} A[r, k]·B[k, j]`, A row-major, B in panels
//!   (forward: A = layer input, B = Wᵀ; input gradient: A = δ, B = W). Rows `m` and columns `n`
//!   must be multiples of 4.
//! - [`gemm_tn_acc`]: `C[o, i] += Σ_{r in rows} D[r, o]·X[r, i]` (weight gradient δᵀ·X), D and
//!   X row-major, packed chunk by chunk of rows into a caller's scratch; accumulating in place
//!   keeps the order.
//! - [`col_sums`]: `s[j] = Σ_{r<m} D[r, j]` (bias gradient).

use super::simd::F4;

/// Columns per register block: 2 vectors of 4.
const NV: usize = 2;
/// Batch rows per chunk of the weight-gradient product.
pub const ROW_CHUNK: usize = 128;

/// Width of the column panel starting at column `j` of an `n`-column matrix (`n` a multiple of 4).
#[inline(always)]
fn panel_width(j: usize, n: usize) -> usize {
    if j + 4 * NV <= n { 4 * NV } else { 4 }
}

/// Packs the `k × n` matrix with elements `get(row, col)` into column panels (module docs);
/// `dst` holds at least `k·n` floats, `n` a multiple of 4.
#[inline]
pub fn pack_panels(dst: &mut [f32], k: usize, n: usize, get: impl Fn(usize, usize) -> f32) {
    let mut j = 0;
    while j < n {
        let w = panel_width(j, n);
        for (row, out) in dst[j * k..][..k * w].chunks_exact_mut(w).enumerate() {
            for (c, v) in out.iter_mut().enumerate() {
                *v = get(row, j + c);
            }
        }
        j += w;
    }
}

/// `C = init + A·B` for `m × n` outputs (`m`, `n` multiples of 4) and inner dimension `k`,
/// with B (`k × n`) in column panels; `init` is a bias row of at least `n` floats, or zero.
#[allow(clippy::too_many_arguments)]
pub fn gemm_nn(a: &[f32], lda: usize, b: &[f32], c: &mut [f32], ldc: usize, m: usize, n: usize, k: usize, init: Option<&[f32]>) {
    debug_assert!(m % 4 == 0 && n % 4 == 0);
    let mut j = 0;
    while j < n {
        let w = panel_width(j, n);
        let panel = &b[j * k..][..k * w];
        for r in (0..m).step_by(4) {
            if w == 4 * NV {
                block_nn::<NV>(a, lda, panel, c, ldc, r, j, k, init);
            } else {
                block_nn::<1>(a, lda, panel, c, ldc, r, j, k, init);
            }
        }
        j += w;
    }
}

/// One 4 × 4·V block of [`gemm_nn`] at rows `r..r+4`, columns `j..j+4V` (its panel).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn block_nn<const V: usize>(a: &[f32], lda: usize, panel: &[f32], c: &mut [f32], ldc: usize, r: usize, j: usize, k: usize, init: Option<&[f32]>) {
    let start: [F4; V] = std::array::from_fn(|v| match init {
        Some(bias) => F4::load(&bias[j + 4 * v..]),
        None => F4::splat(0.0),
    });
    let mut acc = [start; 4];
    let (a0, a1, a2, a3) = (&a[r * lda..][..k], &a[(r + 1) * lda..][..k], &a[(r + 2) * lda..][..k], &a[(r + 3) * lda..][..k]);
    for (kk, row) in panel.chunks_exact(4 * V).enumerate().take(k) {
        let w: [F4; V] = std::array::from_fn(|v| F4::load(&row[4 * v..]));
        let x = [F4::splat(a0[kk]), F4::splat(a1[kk]), F4::splat(a2[kk]), F4::splat(a3[kk])];
        for (acc_r, x_r) in acc.iter_mut().zip(x) {
            for (acc_rv, w_v) in acc_r.iter_mut().zip(w) {
                *acc_rv = acc_rv.add_mul(x_r, w_v);
            }
        }
    }
    for (i, acc_r) in acc.iter().enumerate() {
        let out = &mut c[(r + i) * ldc + j..][..4 * V];
        for (v, acc_rv) in acc_r.iter().enumerate() {
            acc_rv.store(&mut out[4 * v..]);
        }
    }
}

/// Scratch floats [`gemm_tn_acc`] needs for `n_o + n_i` columns.
pub fn tn_scratch_len(n_o: usize, n_i: usize) -> usize {
    ROW_CHUNK * (n_o + n_i)
}

/// `C[o, i] += Σ_{r<rows} D[r, o]·X[r, i]` for `o < n_o`, `i < n_i` (both multiples of 4),
/// summing r in increasing order; C starts at zero for a plain product. `scratch` holds at least
/// [`tn_scratch_len`] floats.
#[allow(clippy::too_many_arguments)]
pub fn gemm_tn_acc(d: &[f32], ldd: usize, x: &[f32], ldx: usize, c: &mut [f32], ldc: usize, rows: usize, n_o: usize, n_i: usize, scratch: &mut [f32]) {
    debug_assert!(n_o % 4 == 0 && n_i % 4 == 0);
    let (dp, xp) = scratch[..tn_scratch_len(n_o, n_i)].split_at_mut(ROW_CHUNK * n_o);
    let mut r0 = 0;
    while r0 < rows {
        let len = (rows - r0).min(ROW_CHUNK);
        // D's chunk in panels of 4 columns (one per block of outputs o), X's in panels of 8.
        for o in (0..n_o).step_by(4) {
            for (r, out) in dp[o * len..][..4 * len].chunks_exact_mut(4).enumerate() {
                out.copy_from_slice(&d[(r0 + r) * ldd + o..][..4]);
            }
        }
        pack_panels(xp, len, n_i, |r, i| x[(r0 + r) * ldx + i]);
        let mut i = 0;
        while i < n_i {
            let w = panel_width(i, n_i);
            let xpanel = &xp[i * len..][..len * w];
            for o in (0..n_o).step_by(4) {
                let dpanel = &dp[o * len..][..4 * len];
                if w == 4 * NV {
                    block_tn::<NV>(dpanel, xpanel, c, ldc, o, i);
                } else {
                    block_tn::<1>(dpanel, xpanel, c, ldc, o, i);
                }
            }
            i += w;
        }
        r0 += len;
    }
}

/// One 4 × 4·V block of [`gemm_tn_acc`]: outputs `o..o+4` × `i..i+4V` over one chunk of rows,
/// from D's panel (4 floats a row) and X's panel (4V floats a row).
#[inline(always)]
fn block_tn<const V: usize>(dpanel: &[f32], xpanel: &[f32], c: &mut [f32], ldc: usize, o: usize, i: usize) {
    let mut acc: [[F4; V]; 4] = std::array::from_fn(|q| std::array::from_fn(|v| F4::load(&c[(o + q) * ldc + i + 4 * v..])));
    for (dr, xr) in dpanel.chunks_exact(4).zip(xpanel.chunks_exact(4 * V)) {
        let xv: [F4; V] = std::array::from_fn(|v| F4::load(&xr[4 * v..]));
        let ds = [F4::splat(dr[0]), F4::splat(dr[1]), F4::splat(dr[2]), F4::splat(dr[3])];
        for (acc_q, d_q) in acc.iter_mut().zip(ds) {
            for (acc_qv, x_v) in acc_q.iter_mut().zip(xv) {
                *acc_qv = acc_qv.add_mul(d_q, x_v);
            }
        }
    }
    for (q, acc_q) in acc.iter().enumerate() {
        let out = &mut c[(o + q) * ldc + i..][..4 * V];
        for (v, acc_qv) in acc_q.iter().enumerate() {
            acc_qv.store(&mut out[4 * v..]);
        }
    }
}

/// `s[j] = Σ_{r<m} D[r, j]` for `j < n` (a multiple of 4), summing r in increasing order.
pub fn col_sums(d: &[f32], ldd: usize, m: usize, n: usize, s: &mut [f32]) {
    for j in (0..n).step_by(4) {
        let mut acc = F4::splat(0.0);
        for r in 0..m {
            acc = acc.plus(F4::load(&d[r * ldd + j..]));
        }
        acc.store(&mut s[j..]);
    }
}
