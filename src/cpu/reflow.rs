//! Reflow (Liu, Gong and Liu 2022, "Flow Straight and Fast", arXiv 2209.03003): the CPU twin of
//! `build_batch_pairs` in `shaders/batch.wgsl` and of the GPU pair generation (`gpu::reflow`).
//!
//! A trained flow ψ maps noise to samples. Round r draws N noise points x0 (the sampler's
//! starting points for the seed [`noise_seed`]`(seed, r)`), integrates them to x1 = ψ(x0) with
//! the chosen solver, and the next model is trained on those fixed pairs: sample `i` of step `s`
//! takes pair `k = hash4(seed, s, i, TARGET_INDEX) % N` and a time `t` from the time density,
//! with `x_t = α_t·x1_k + β_t·x0_k` and `u = α'_t·x1_k + β'_t·x0_k` as in `cpu::batch`.
//! Because the pairs come from a deterministic flow, their straight-line interpolations cross
//! less than independent pairs do, so the retrained field is straighter and one Euler step
//! goes nearly as far as many.

use super::batch::write_sample;
use super::time::TimeDist;
use crate::config::{Path, Solver};
use crate::model::{ActivationLayout, ModelShape};
use crate::rng::{hash4, stream};

/// Reflow pairs: the noise points x0 and their images x1 = ψ(x0).
pub type Pairs = (Vec<[f32; 2]>, Vec<[f32; 2]>);

/// The sampler seed of round `round`'s noise points.
pub fn noise_seed(seed: u32, round: u32) -> u32 {
    hash4(seed, round, 0, stream::REFLOW)
}

/// Pair index of sample `i` at `step` among `n` pairs.
pub fn pair_index(seed: u32, step: u32, i: u32, n: usize) -> usize {
    (hash4(seed, step, i, stream::TARGET_INDEX) % n as u32) as usize
}

/// Fills the batch input and target regions of `acts` from the pairs `(x0[k], x1[k])`.
#[allow(clippy::too_many_arguments)]
pub fn build_batch_pairs(
    acts: &mut [f32],
    layout: &ActivationLayout,
    x0: &[[f32; 2]],
    x1: &[[f32; 2]],
    seed: u32,
    step: u32,
    sigma_min: f32,
    path: Path,
    time: &TimeDist,
) {
    assert!(!x0.is_empty() && x0.len() == x1.len(), "reflow needs equally many x0 and x1 points");
    for i in 0..layout.batch {
        let k = pair_index(seed, step, i, x0.len());
        write_sample(acts, layout, i, x0[k], x1[k], time.draw(seed, step, i), sigma_min, path);
    }
}

/// Round `round`'s pairs on the CPU: `n` noise points and their images under `steps` steps of
/// `solver` (fixed-step solvers; the twin of the GPU sampler's `reset` + `integrate`).
pub fn make_pairs(shape: &ModelShape, params: &[f32], solver: Solver, steps: u32, seed: u32, round: u32, n: u32) -> Pairs {
    let x0 = super::ode::initial_particles(noise_seed(seed, round), n);
    let mut x1 = x0.clone();
    super::ode::integrate(shape, params, solver, &mut x1, 0.0, 1.0, steps);
    (x0, x1)
}
