//! Register-blocked matrix products of the fast CPU trainer (the blocking of the software WGSL
//! kernels, `shaders/mlp_forward.wgsl` / `mlp_backward.wgsl`: a 4×4 block of outputs per step of
//! k, here two such blocks side by side, 4 rows × 8 columns in eight [`F4`] accumulators).
//!
//! All matrices are row-major slices with an explicit row stride. Every output element is summed
//! over k **in increasing k**, one multiply and one add per term, starting from the bias (or
//! zero), exactly as the scalar reference `cpu::mlp` sums it; so the results are the reference's
//! bits, not just close to them.
//!
//! - [`gemm_nn`]: `C[r, j] = init[j] + Σ_{k<K} A[r, k]·B[k, j]` (forward: A = layer input,
//!   B = Wᵀ; input gradient: A = δ, B = W). Rows `m` and columns `n` must be multiples of 4.
//! - [`gemm_tn_acc`]: `C[o, i] += Σ_{r in rows} D[r, o]·X[r, i]` (weight gradient δᵀ·X, summed
//!   over the batch in row chunks that stay in L1; accumulating in place keeps the order).
//! - [`col_sums`]: `s[j] = Σ_{r<m} D[r, j]` (bias gradient).

use super::simd::F4;

/// Columns per register block: 2 vectors of 4.
const NV: usize = 2;
/// Batch rows per chunk of the weight-gradient product (two 128-row stripes of 8 and 4 floats
/// stay in L1 while every output block passes over them).
const ROW_CHUNK: usize = 128;

/// `C = init + A·B` for `m × n` outputs (`m`, `n` multiples of 4) and inner dimension `k`;
/// `init` is a bias row of at least `n` floats, or zero when `None`.
#[allow(clippy::too_many_arguments)]
pub fn gemm_nn(a: &[f32], lda: usize, b: &[f32], ldb: usize, c: &mut [f32], ldc: usize, m: usize, n: usize, k: usize, init: Option<&[f32]>) {
    debug_assert!(m % 4 == 0 && n % 4 == 0);
    let mut j = 0;
    while j + 4 * NV <= n {
        for r in (0..m).step_by(4) {
            block_nn::<NV>(a, lda, b, ldb, c, ldc, r, j, k, init);
        }
        j += 4 * NV;
    }
    while j < n {
        for r in (0..m).step_by(4) {
            block_nn::<1>(a, lda, b, ldb, c, ldc, r, j, k, init);
        }
        j += 4;
    }
}

/// One 4 × 4·V block of [`gemm_nn`] at rows `r..r+4`, columns `j..j+4V`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn block_nn<const V: usize>(a: &[f32], lda: usize, b: &[f32], ldb: usize, c: &mut [f32], ldc: usize, r: usize, j: usize, k: usize, init: Option<&[f32]>) {
    let start: [F4; V] = std::array::from_fn(|v| match init {
        Some(bias) => F4::load(&bias[j + 4 * v..]),
        None => F4::splat(0.0),
    });
    let mut acc = [start; 4];
    let (a0, a1, a2, a3) = (&a[r * lda..][..k], &a[(r + 1) * lda..][..k], &a[(r + 2) * lda..][..k], &a[(r + 3) * lda..][..k]);
    for kk in 0..k {
        let row = &b[kk * ldb + j..][..4 * V];
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

/// `C[o, i] += Σ_{r<rows} D[r, o]·X[r, i]` for `o < n_o`, `i < n_i` (both multiples of 4),
/// summing r in increasing order; C starts at zero for a plain product.
#[allow(clippy::too_many_arguments)]
pub fn gemm_tn_acc(d: &[f32], ldd: usize, x: &[f32], ldx: usize, c: &mut [f32], ldc: usize, rows: usize, n_o: usize, n_i: usize) {
    debug_assert!(n_o % 4 == 0 && n_i % 4 == 0);
    let mut r0 = 0;
    while r0 < rows {
        let r1 = (r0 + ROW_CHUNK).min(rows);
        let mut i = 0;
        while i + 4 * NV <= n_i {
            for o in (0..n_o).step_by(4) {
                block_tn::<NV>(d, ldd, x, ldx, c, ldc, r0, r1, o, i);
            }
            i += 4 * NV;
        }
        while i < n_i {
            for o in (0..n_o).step_by(4) {
                block_tn::<1>(d, ldd, x, ldx, c, ldc, r0, r1, o, i);
            }
            i += 4;
        }
        r0 = r1;
    }
}

/// One 4 × 4·V block of [`gemm_tn_acc`]: outputs `o..o+4` × `i..i+4V`, batch rows `r0..r1`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn block_tn<const V: usize>(d: &[f32], ldd: usize, x: &[f32], ldx: usize, c: &mut [f32], ldc: usize, r0: usize, r1: usize, o: usize, i: usize) {
    let mut acc: [[F4; V]; 4] = std::array::from_fn(|q| std::array::from_fn(|v| F4::load(&c[(o + q) * ldc + i + 4 * v..])));
    for r in r0..r1 {
        let dr = &d[r * ldd + o..][..4];
        let xr = &x[r * ldx + i..][..4 * V];
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Stream;

    fn random(n: usize, seed: u32) -> Vec<f32> {
        let mut s = Stream::new(seed, 0);
        (0..n).map(|_| s.range(-1.0, 1.0)).collect()
    }

    /// Every product equals the scalar sum in increasing k, bit for bit, at shapes that exercise
    /// the 4×8 blocks, the 4×4 tail and row chunks that do not divide the batch.
    #[test]
    fn blocked_products_equal_the_ordered_scalar_sums() {
        for &(m, n, k) in &[(4, 4, 1), (8, 12, 3), (12, 20, 37), (132, 8, 5), (260, 36, 17)] {
            let (lda, ldb, ldc) = (k + 3, n + 4, n + 8);
            let a = random(m * lda, 1);
            let b = random(k * ldb, 2);
            let bias = random(n, 3);
            let mut c = vec![0.0; m * ldc];
            gemm_nn(&a, lda, &b, ldb, &mut c, ldc, m, n, k, Some(&bias));
            for r in 0..m {
                for j in 0..n {
                    let mut want = bias[j];
                    for kk in 0..k {
                        want += a[r * lda + kk] * b[kk * ldb + j];
                    }
                    assert_eq!(c[r * ldc + j].to_bits(), want.to_bits(), "gemm_nn {m}x{n}x{k} at ({r},{j})");
                }
            }
            // Weight gradient over a batch of m rows: outputs n × (k rounded up to 4).
            let n_i = k.div_ceil(4) * 4;
            let d = random(m * n, 4);
            let x = random(m * n_i, 5);
            let mut g = vec![0.0; n * n_i];
            gemm_tn_acc(&d, n, &x, n_i, &mut g, n_i, m, n, n_i);
            for o in 0..n {
                for i in 0..n_i {
                    let mut want = 0.0f32;
                    for r in 0..m {
                        want += d[r * n + o] * x[r * n_i + i];
                    }
                    assert_eq!(g[o * n_i + i].to_bits(), want.to_bits(), "gemm_tn {m}x{n}x{n_i} at ({o},{i})");
                }
            }
            let cols = (k / 4) * 4;
            let mut s = vec![0.0; cols];
            col_sums(&a, lda, m, cols, &mut s);
            for j in 0..cols {
                let mut want = 0.0f32;
                for r in 0..m {
                    want += a[r * lda + j];
                }
                assert_eq!(s[j].to_bits(), want.to_bits(), "col_sums at {j}");
            }
        }
    }
}
