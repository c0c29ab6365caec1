//! Batch construction, twin of `shaders/batch.wgsl`.
//!
//! For sample `i` of step `step`: `x0 ~ N(0, I)`, `t ~ U(0, 1)`, `x1 = data[h % n]`, all keyed by
//! `(seed, step, i)`; `x_t = (1 - (1 - σmin)·t)·x0 + t·x1`, target `u = x1 - (1 - σmin)·x0`.
//! Writes `input (B, 3)` and `target (B, 2)` of the activation layout.

use crate::model::ActivationLayout;
use crate::rng::{box_muller, hash4, stream, unit};

/// Fills the batch input and target regions of `acts`.
pub fn build_batch(
    acts: &mut [f32],
    layout: &ActivationLayout,
    data: &[[f32; 2]],
    seed: u32,
    step: u32,
    sigma_min: f32,
) {
    let n = data.len() as u32;
    for i in 0..layout.batch {
        let x0 = box_muller(unit(hash4(seed, step, i, stream::X0_A)), unit(hash4(seed, step, i, stream::X0_B)));
        let t = unit(hash4(seed, step, i, stream::T));
        let x1 = data[(hash4(seed, step, i, stream::TARGET_INDEX) % n) as usize];
        let s = 1.0 - (1.0 - sigma_min) * t;
        let k = (layout.input + 3 * i) as usize;
        acts[k] = s * x0[0] + t * x1[0];
        acts[k + 1] = s * x0[1] + t * x1[1];
        acts[k + 2] = t;
        let k = (layout.target + 2 * i) as usize;
        acts[k] = x1[0] - (1.0 - sigma_min) * x0[0];
        acts[k + 1] = x1[1] - (1.0 - sigma_min) * x0[1];
    }
}
