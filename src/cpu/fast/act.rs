//! The activation of a whole hidden layer and its derivative, kept for the backward pass.
//!
//! SiLU (the default) runs four lanes at a time with [`exp4`]: `s = 1/(1 + e^{-z})`,
//! `a = z·s`, `act' = s·(1 + z·(1 - s))`, the formulas of `cpu::activation`; it differs from the
//! reference only by `exp4`'s rounding (at most a few ulp, `tests/cpu_fast.rs`). In wasm the
//! reference's scalar `f32::exp` is a software libm call and made the activation cost about as
//! much as a layer's matrix product (M model, Chromium). The other activations call the
//! reference's `act_and_grad` per element and give its bits.

use super::simd::F4;
use crate::config::Activation;
use crate::cpu::activation::act_and_grad;

const LOG2E: f32 = std::f32::consts::LOG2_E;
/// ln 2 split in a part exact in few bits and the rest (Cody–Waite), as in Cephes' expf.
const LN2_HI: f32 = 0.693_359_4;
const LN2_LO: f32 = -2.121_944_4e-4;
/// Cephes expf's minimax polynomial for (e^r - 1 - r)/r² on |r| ≤ ln2/2, highest power first.
const P: [f32; 6] = [1.987_569_1e-4, 1.398_2e-3, 8.333_452e-3, 4.166_579_6e-2, 0.166_666_65, 0.5];

/// `e^x` per lane: `x = n·ln2 + r` with n = round(x·log2 e), `e^r ≈ 1 + r + r²·P(r)`, times 2^n.
/// Inputs are clamped to ±88 (e^88 is finite in f32; below about -87.3 the result is 0 instead
/// of a subnormal).
#[inline(always)]
pub fn exp4(x: F4) -> F4 {
    let x = x.clamp(-88.0, 88.0);
    let n = x.times(F4::splat(LOG2E)).round();
    let r = x.minus(n.times(F4::splat(LN2_HI))).minus(n.times(F4::splat(LN2_LO)));
    let mut p = F4::splat(P[0]);
    for c in &P[1..] {
        p = F4::splat(*c).add_mul(p, r);
    }
    let e_r = p.times(r.times(r)).plus(r).plus(F4::splat(1.0));
    e_r.times(n.exp2_int())
}

/// `z ← act(z)` and `g ← act'(z)` elementwise (equal lengths, a multiple of 4).
pub fn act_and_grad_all(kind: Activation, z: &mut [f32], g: &mut [f32]) {
    match kind {
        Activation::Silu => {
            let one = F4::splat(1.0);
            for (zc, gc) in z.chunks_exact_mut(4).zip(g.chunks_exact_mut(4)) {
                let zv = F4::load(zc);
                let s = one.over(one.plus(exp4(F4::splat(0.0).minus(zv))));
                zv.times(s).store(zc);
                s.times(one.plus(zv.times(one.minus(s)))).store(gc);
            }
        }
        _ => {
            for (zi, gi) in z.iter_mut().zip(g.iter_mut()) {
                (*zi, *gi) = act_and_grad(kind, *zi);
            }
        }
    }
}
