//! Adam with bias correction and optional decoupled weight decay (AdamW); twin of `shaders/adam.wgsl`.
//!
//! With `g` the gradient and step number `t = step + 1`:
//! `m ← β1·m + (1-β1)·g`, `v ← β2·v + (1-β2)·g²`,
//! `p ← p·(1 - lr·wd) - lr·(m·c1) / (√(v·c2) + ε)` with `c1 = 1/(1-β1^t)`, `c2 = 1/(1-β2^t)`.
//! The per-step scalars are computed once, in f64, by [`AdamHyper::step_scalars`] for both backends.

/// Optimizer settings.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamHyper {
    pub lr: f32,
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
    pub weight_decay: f32,
}

impl AdamHyper {
    pub fn new(lr: f32, weight_decay: f32) -> Self {
        AdamHyper { lr, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay }
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
    for i in 0..params.len() {
        let g = grads[i];
        m[i] = h.beta1 * m[i] + (1.0 - h.beta1) * g;
        v[i] = h.beta2 * v[i] + (1.0 - h.beta2) * g * g;
        let update = (m[i] * c1) / ((v[i] * c2).sqrt() + h.eps);
        params[i] = params[i] * (1.0 - h.lr * h.weight_decay) - h.lr * update;
    }
}
