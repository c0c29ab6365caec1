//! Batch construction, twin of `shaders/batch.wgsl`.
//!
//! For sample `i` of step `step`: `x0 ~ N(0, I)` (or a point of the source set when one is given), `t ~ U(0, 1)`
//! (or another time density, `cpu::time`), `x1 = data[h % n]`, all keyed by
//! `(seed, step, i)`. On the path `x_t = α_t·x1 + β_t·x0` (see [`path_coefficients`]) the input is
//! `(x_t, t)` and the regression target `u = α'_t·x1 + β'_t·x0`.
//! Writes `input (B, in)` (one [`InputLayout`] row per sample) and `target (B, 2)` of the
//! activation layout.
//!
//! Extras ([`Extras`]), each from its own random stream:
//! * class-conditional models: the label of `x1` (`labels[h % n]`) as a one-hot row, replaced by
//!   the no-class token with probability `label_dropout` (stream `LABEL_DROP`);
//! * MeanFlow: a second time `s ~ U(0, 1)` (stream `MEANFLOW`, index 2i; the first follows the
//!   configured time density) and, with probability
//!   [`MEANFLOW_RATIO`] (index 2i + 1), the interval `(t, r) = (min, max)` of the two, else
//!   `r = t`; the point is `x_t` at the smaller time (the noisier end: ours is noise at 0).

use super::time::TimeDist;
use crate::config::Path;
use crate::model::{ActivationLayout, InputLayout};
use crate::rng::{box_muller, hash4, stream, unit};

/// MeanFlow: the fraction of training samples with `r ≠ t` (the rest train the instantaneous
/// velocity, `r = t`). See `cpu::meanflow` for how it was chosen.
pub const MEANFLOW_RATIO: f32 = 0.5;

/// What a batch needs beyond `(x_t, t, u)`: the input layout, the target's class labels (one per
/// target point; empty for unconditional models) and the label dropout probability.
#[derive(Clone, Copy, Debug)]
pub struct Extras<'a> {
    pub inputs: InputLayout,
    pub labels: &'a [u32],
    pub label_dropout: f32,
}

impl Extras<'_> {
    /// `(x, y, t)` only.
    pub const PLAIN: Extras<'static> = Extras { inputs: InputLayout::PLAIN, labels: &[], label_dropout: 0.0 };
}

/// VP schedule `β(r) = B_MIN + (B_MAX - B_MIN)·r`.
pub const VP_B_MIN: f32 = 0.1;
pub const VP_B_MAX: f32 = 20.0;
/// The VP path's β' is singular at t = 1; training times are clamped below it.
pub const VP_T_MAX: f32 = 1.0 - 1e-5;

/// `(α_t, β_t, α'_t, β'_t)` of the conditional path, for `t` in (0, 1).
/// Linear: `α = t`, `β = 1 - (1-σmin)·t`. Cosine: `α = sin(πt/2)`, `β = cos(πt/2)`.
/// VP: with `s = 1 - t`, `T(s) = B_MIN·s + (B_MAX - B_MIN)·s²/2`, `α = exp(-T/2)`,
/// `β = sqrt(1 - α²)`, `α' = α·β(s)/2`, `β' = -α·α'/β`.
pub fn path_coefficients(path: Path, t: f32, sigma_min: f32) -> [f32; 4] {
    match path {
        Path::Linear => [t, 1.0 - (1.0 - sigma_min) * t, 1.0, -(1.0 - sigma_min)],
        Path::Cosine => {
            let h = std::f32::consts::FRAC_PI_2;
            let (s, c) = (h * t).sin_cos();
            [s, c, h * c, -h * s]
        }
        Path::Vp => {
            let t = t.min(VP_T_MAX);
            let s = 1.0 - t;
            let big_t = VP_B_MIN * s + 0.5 * (VP_B_MAX - VP_B_MIN) * s * s;
            let alpha = (-0.5 * big_t).exp();
            let beta = (1.0 - alpha * alpha).max(0.0).sqrt();
            let d_alpha = 0.5 * alpha * (VP_B_MIN + (VP_B_MAX - VP_B_MIN) * s);
            [alpha, beta, d_alpha, -alpha * d_alpha / beta]
        }
    }
}

/// Sample `i`'s source point x0 at `step`: N(0, I) by Box–Muller, or a point of `source`.
pub fn draw_x0(seed: u32, step: u32, i: u32, source: &[[f32; 2]]) -> [f32; 2] {
    if source.is_empty() {
        box_muller(unit(hash4(seed, step, i, stream::X0_A)), unit(hash4(seed, step, i, stream::X0_B)))
    } else {
        source[(hash4(seed, step, i, stream::X0_A) % source.len() as u32) as usize]
    }
}

/// Sample `i`'s target point x1 at `step`.
pub fn draw_x1(seed: u32, step: u32, i: u32, data: &[[f32; 2]]) -> [f32; 2] {
    data[draw_x1_index(seed, step, i, data.len())]
}

/// The index of sample `i`'s target point in a set of `n` points.
pub fn draw_x1_index(seed: u32, step: u32, i: u32, n: usize) -> usize {
    (hash4(seed, step, i, stream::TARGET_INDEX) % n as u32) as usize
}

/// MeanFlow's interval `(t, r)` of sample `i` given its first time `t`: with probability
/// [`MEANFLOW_RATIO`] the sorted pair of `t` and a second uniform draw, else `(t, t)`.
pub fn draw_interval(seed: u32, step: u32, i: u32, t: f32) -> (f32, f32) {
    let s = unit(hash4(seed, step, 2 * i, stream::MEANFLOW));
    let distinct = unit(hash4(seed, step, 2 * i + 1, stream::MEANFLOW)) < MEANFLOW_RATIO;
    if distinct { (t.min(s), t.max(s)) } else { (t, t) }
}

/// Sample `i`'s class for the network: the label of its target point, or `None` (the no-class
/// token) with probability `label_dropout`.
pub fn draw_class(seed: u32, step: u32, i: u32, label: u32, label_dropout: f32) -> Option<u32> {
    (unit(hash4(seed, step, i, stream::LABEL_DROP)) >= label_dropout).then_some(label)
}

/// Sample `i`'s time t at `step` under `U(0, 1)`.
pub fn draw_t(seed: u32, step: u32, i: u32) -> f32 {
    unit(hash4(seed, step, i, stream::T))
}

/// Writes sample `i`'s network input `(x_t, t)` and regression target `u` for the pair (x0, x1).
#[allow(clippy::too_many_arguments)]
pub fn write_sample(acts: &mut [f32], layout: &ActivationLayout, i: u32, x0: [f32; 2], x1: [f32; 2], t: f32, sigma_min: f32, path: Path) {
    let [a, b, da, db] = path_coefficients(path, t, sigma_min);
    let k = (layout.input + layout.in_dim * i) as usize;
    acts[k] = a * x1[0] + b * x0[0];
    acts[k + 1] = a * x1[1] + b * x0[1];
    acts[k + 2] = t;
    let k = (layout.target + 2 * i) as usize;
    acts[k] = da * x1[0] + db * x0[0];
    acts[k + 1] = da * x1[1] + db * x0[1];
}

/// Writes sample `i`'s extra input columns: `r` (MeanFlow) and the one-hot class.
pub fn write_extras(acts: &mut [f32], layout: &ActivationLayout, inputs: &InputLayout, i: u32, r: f32, class: Option<u32>) {
    let row = (layout.input + layout.in_dim * i) as usize;
    if let Some(k) = inputs.r_column() {
        acts[row + k as usize] = r;
    }
    if let (Some(first), Some(hot)) = (inputs.class_column(), inputs.one_hot_column(class)) {
        for k in first..=first + inputs.n_classes {
            acts[row + k as usize] = if k == hot { 1.0 } else { 0.0 };
        }
    }
}

/// Fills the batch input and target regions of `acts` (plain `(x, y, t)` inputs), times drawn
/// from `time` (`cpu::time`).
#[allow(clippy::too_many_arguments)]
pub fn build_batch(
    acts: &mut [f32],
    layout: &ActivationLayout,
    data: &[[f32; 2]],
    seed: u32,
    step: u32,
    sigma_min: f32,
    path: Path,
    source: &[[f32; 2]],
    time: &TimeDist,
) {
    build_batch_with(acts, layout, data, seed, step, sigma_min, path, source, time, &Extras::PLAIN);
}

/// Fills the batch input and target regions of `acts`, with the extra columns of `extras`
/// (twin of `build_batch` in shaders/batch.wgsl).
#[allow(clippy::too_many_arguments)]
pub fn build_batch_with(
    acts: &mut [f32],
    layout: &ActivationLayout,
    data: &[[f32; 2]],
    seed: u32,
    step: u32,
    sigma_min: f32,
    path: Path,
    source: &[[f32; 2]],
    time: &TimeDist,
    extras: &Extras,
) {
    for i in 0..layout.batch {
        let idx = draw_x1_index(seed, step, i, data.len());
        let (x0, x1, t0) = (draw_x0(seed, step, i, source), data[idx], time.draw(seed, step, i));
        let (t, r) = if extras.inputs.mean_flow { draw_interval(seed, step, i, t0) } else { (t0, t0) };
        write_sample(acts, layout, i, x0, x1, t, sigma_min, path);
        let class = match extras.labels.get(idx) {
            Some(&label) if extras.inputs.n_classes > 0 => draw_class(seed, step, i, label, extras.label_dropout),
            _ => None,
        };
        write_extras(acts, layout, &extras.inputs, i, r, class);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// u is the time derivative of x_t: central differences of (α, β) match (α', β').
    #[test]
    fn derivatives_match_finite_differences() {
        for &path in Path::ALL {
            for k in 1..40 {
                let t = k as f32 / 40.0;
                let h = 1e-3;
                let (p, m) = (path_coefficients(path, t + h, 0.1), path_coefficients(path, t - h, 0.1));
                let c = path_coefficients(path, t, 0.1);
                for j in 0..2 {
                    let fd = (p[j] - m[j]) / (2.0 * h);
                    assert!((fd - c[2 + j]).abs() < 2e-2 * (1.0 + c[2 + j].abs()), "{path} t={t}: d/dt[{j}] {fd} vs {}", c[2 + j]);
                }
            }
            // Endpoints: noise at t = 0 (β ≈ 1, α ≈ 0) and data at t = 1 (α ≈ 1, β ≈ 0 for σmin = 0).
            let c0 = path_coefficients(path, 0.0, 0.0);
            let c1 = path_coefficients(path, 1.0, 0.0);
            assert!(c0[0].abs() < 0.01 && (c0[1] - 1.0).abs() < 1e-4, "{path} at 0: {c0:?}");
            assert!((c1[0] - 1.0).abs() < 1e-4 && c1[1].abs() < 0.01, "{path} at 1: {c1:?}");
        }
    }
}
