//! Reflow on the GPU (Liu et al. 2022, arXiv 2209.03003; batch twin in `cpu::reflow`): a round
//! draws N noise points, integrates them through the current model with the chosen solver into
//! pairs `(x0, x1 = ψ(x0))`, and hands them to the trainer, which from then on draws its batches
//! from those pairs (`GpuTrainer::set_pairs`, `build_batch_pairs` in `shaders/batch.wgsl`) starting from its
//! current weights. Everything stays on the GPU: the pairs are copied buffer to buffer.

use super::sampler::GpuSampler;
use super::trainer::GpuTrainer;
use super::{GpuContext, GpuError};
use crate::config::Solver;

pub struct GpuReflow {
    sampler: GpuSampler,
    seed: u32,
    /// Rounds made so far (the next round's number).
    round: u32,
}

impl GpuReflow {
    /// `n` pairs per round for `trainer`'s model (its parameter buffer is read directly), noise
    /// keyed by `seed` and the round (`cpu::reflow::noise_seed`).
    pub fn new(ctx: &GpuContext, trainer: &GpuTrainer, n: u32, seed: u32) -> Result<Self, GpuError> {
        let sampler = GpuSampler::new(ctx, &trainer.spec.shape, &trainer.params, n, 0)?;
        Ok(GpuReflow { sampler, seed, round: 0 })
    }

    /// Makes the next round's pairs with `steps` steps of `solver` (dopri5: adaptive with `steps`
    /// its budget of evaluations and tolerance `tol`) from the trainer's current weights, and sets
    /// them on the trainer. Returns the round's number (0 for the first reflow).
    pub fn make_pairs(&mut self, trainer: &mut GpuTrainer, solver: Solver, steps: u32, tol: f32) -> Result<u32, GpuError> {
        self.sampler.set_tol(tol).map_err(GpuError::Invalid)?;
        self.sampler.reset(crate::cpu::reflow::noise_seed(self.seed, self.round));
        self.sampler.integrate(solver, 0.0, 1.0, steps);
        trainer.set_pairs(&self.sampler.origins, &self.sampler.particles, self.sampler.len())?;
        self.round += 1;
        Ok(self.round - 1)
    }

    /// Rounds made so far.
    pub fn rounds(&self) -> u32 {
        self.round
    }

    /// The sampler holding the last round's pairs (`origins` = x0, `particles` = x1).
    pub fn sampler(&self) -> &GpuSampler {
        &self.sampler
    }
}
