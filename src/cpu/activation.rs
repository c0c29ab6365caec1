//! Activation functions and their derivatives, as functions of the pre-activation `z`.
//! Twin of `act` / `act_grad` in `shaders/common.wgsl`.
//!
//! GELU uses the tanh approximation `0.5 z (1 + tanh(√(2/π)(z + 0.044715 z³)))` (WGSL has no erf).
//! `tanh` arguments are clamped to ±15 (where f32 tanh is already ±1) because some GPU drivers
//! compute tanh as a ratio of exponentials that overflows to NaN for large inputs.

use crate::config::Activation;

pub const GELU_C: f32 = 0.797_884_6; // sqrt(2/pi)
pub const GELU_K: f32 = 0.044_715;

pub fn safe_tanh(x: f32) -> f32 {
    x.clamp(-15.0, 15.0).tanh()
}

fn sigmoid(z: f32) -> f32 {
    1.0 / (1.0 + (-z).exp())
}

pub fn act(kind: Activation, z: f32) -> f32 {
    match kind {
        Activation::Silu | Activation::Tanh => act_and_grad(kind, z).0,
        Activation::Relu => z.max(0.0),
        Activation::Gelu => 0.5 * z * (1.0 + safe_tanh(GELU_C * (z + GELU_K * z * z * z))),
    }
}

/// d act / dz.
pub fn act_grad(kind: Activation, z: f32) -> f32 {
    match kind {
        Activation::Silu | Activation::Tanh => act_and_grad(kind, z).1,
        Activation::Relu => {
            if z > 0.0 { 1.0 } else { 0.0 }
        }
        Activation::Gelu => {
            // Beyond |z| = 10 the derivative is 0 or 1 to f32 precision; clamping keeps z³ finite.
            let z = z.clamp(-10.0, 10.0);
            let u = GELU_C * (z + GELU_K * z * z * z);
            let th = safe_tanh(u);
            let du = GELU_C * (1.0 + 3.0 * GELU_K * z * z);
            0.5 * (1.0 + th) + 0.5 * z * (1.0 - th * th) * du
        }
    }
}

/// `(act(z), act'(z))` with the same bits as the two functions, computing SiLU's sigmoid and
/// tanh once for both (the fast CPU trainer keeps `act'` from the forward pass).
pub fn act_and_grad(kind: Activation, z: f32) -> (f32, f32) {
    match kind {
        Activation::Silu => {
            let s = sigmoid(z);
            (z * s, s * (1.0 + z * (1.0 - s)))
        }
        Activation::Tanh => {
            let th = safe_tanh(z);
            (th, 1.0 - th * th)
        }
        Activation::Relu | Activation::Gelu => (act(kind, z), act_grad(kind, z)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derivatives_match_finite_differences() {
        for &kind in Activation::ALL {
            for i in -40..=40 {
                let z = i as f64 * 0.173 + 0.01; // avoid relu's kink at 0
                let h = 1e-3;
                let fd = (act(kind, (z + h) as f32) as f64 - act(kind, (z - h) as f32) as f64) / (2.0 * h);
                let g = act_grad(kind, z as f32) as f64;
                assert!((fd - g).abs() < 2e-3, "{kind}: z={z} fd={fd} grad={g}");
            }
            assert!(act(kind, -1e30).is_finite() && act_grad(kind, 1e30).is_finite(), "{kind} overflows");
            for z in [-1e30, -20.0, -3.7, -0.0, 0.0, 0.41, 9.9, 12.0, 1e30] {
                let (a, g) = act_and_grad(kind, z);
                assert_eq!((a.to_bits(), g.to_bits()), (act(kind, z).to_bits(), act_grad(kind, z).to_bits()), "{kind} at {z}");
            }
        }
    }
}
