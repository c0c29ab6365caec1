//! Adam with bias correction and optional decoupled weight decay (AdamW); twin of `shaders/adam.wgsl`.
//!
//! With `g` the gradient and step number `t = step + 1`:
//! `m ← β1·m + (1-β1)·g`, `v ← β2·v + (1-β2)·g²`,
//! `p ← p·(1 - lr_t·wd) - lr_t·(m·c1) / (√(v·c2) + ε)` with `c1 = 1/(1-β1^t)`, `c2 = 1/(1-β2^t)`
//! and `lr_t` the learning-rate schedule at this step ([`AdamHyper::lr_at`]).
//! The per-step scalars are computed once, in f64, by [`AdamHyper::step_scalars`] and
//! [`AdamHyper::lr_at`] for both backends (the GPU gets them per step in its uniform ring).

use crate::config::LrSchedule;

/// Optimizer settings.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamHyper {
    /// The base learning rate (the schedule's value at its first step).
    pub lr: f32,
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
    pub weight_decay: f32,
    pub schedule: LrSchedule,
    /// The schedule's length in steps (`Config::steps`).
    pub horizon: u32,
    /// The step the schedule counts from: 0, or the step at which the page changed the target or
    /// the learning rate (a new target restarts the schedule, so the flow can morph to it).
    pub schedule_start: u32,
}

impl AdamHyper {
    /// Constant learning rate `lr`, PyTorch's defaults for β1, β2 and ε.
    pub fn new(lr: f32, weight_decay: f32) -> Self {
        AdamHyper { lr, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay, schedule: LrSchedule::Constant, horizon: 0, schedule_start: 0 }
    }

    /// The same with a learning-rate schedule of `horizon` steps.
    pub fn with_schedule(self, schedule: LrSchedule, horizon: u32) -> Self {
        AdamHyper { schedule, horizon, ..self }
    }

    /// The learning rate of zero-based step `step` (see [`LrSchedule`]); a horizon of 0 means
    /// constant.
    pub fn lr_at(&self, step: u32) -> f32 {
        let k = step.saturating_sub(self.schedule_start);
        match self.schedule {
            LrSchedule::Constant => self.lr,
            _ if self.horizon == 0 => self.lr,
            LrSchedule::Cosine => {
                let x = k.min(self.horizon) as f64 / self.horizon as f64;
                (self.lr as f64 * 0.5 * (1.0 + (std::f64::consts::PI * x).cos())) as f32
            }
        }
    }

    /// Sets the base rate and schedule from step `now` on; any change restarts the schedule there.
    pub fn set_lr(&mut self, lr: f32, schedule: LrSchedule, horizon: u32, now: u32) {
        if (lr, schedule, horizon) != (self.lr, self.schedule, self.horizon) {
            *self = AdamHyper { lr, schedule, horizon, schedule_start: now, ..*self };
        }
    }

    /// Bias-correction factors `(c1, c2)` for zero-based step `step`.
    pub fn step_scalars(&self, step: u32) -> (f32, f32) {
        let t = step as f64 + 1.0;
        let c1 = 1.0 / (1.0 - (self.beta1 as f64).powf(t));
        let c2 = 1.0 / (1.0 - (self.beta2 as f64).powf(t));
        (c1 as f32, c2 as f32)
    }
}

/// One Adam update of every parameter; `m` and `v` are the moment buffers.
pub fn adam_update(h: &AdamHyper, step: u32, params: &mut [f32], grads: &[f32], m: &mut [f32], v: &mut [f32]) {
    let (c1, c2) = h.step_scalars(step);
    let lr = h.lr_at(step);
    for i in 0..params.len() {
        let g = grads[i];
        m[i] = h.beta1 * m[i] + (1.0 - h.beta1) * g;
        v[i] = h.beta2 * v[i] + (1.0 - h.beta2) * g * g;
        let update = (m[i] * c1) / ((v[i] * c2).sqrt() + h.eps);
        params[i] = params[i] * (1.0 - lr * h.weight_decay) - lr * update;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cosine_schedule_runs_from_lr_to_zero_over_the_horizon() {
        let h = AdamHyper::new(0.01, 0.0).with_schedule(LrSchedule::Cosine, 2000);
        assert_eq!(h.lr_at(0), 0.01);
        assert!((h.lr_at(1000) - 0.005).abs() < 1e-9);
        assert!(h.lr_at(1999) > 0.0 && h.lr_at(1999) < 1e-7);
        assert_eq!((h.lr_at(2000), h.lr_at(5000)), (0.0, 0.0));
        let restarted = AdamHyper { schedule_start: 3000, ..h };
        assert_eq!((restarted.lr_at(2500), restarted.lr_at(3000)), (0.01, 0.01));
        assert!((restarted.lr_at(4000) - 0.005).abs() < 1e-9);
        assert_eq!(AdamHyper::new(0.01, 0.0).with_schedule(LrSchedule::Constant, 2000).lr_at(1999), 0.01);
        assert_eq!(AdamHyper::new(0.01, 0.0).with_schedule(LrSchedule::Cosine, 0).lr_at(7), 0.01);
    }
}
