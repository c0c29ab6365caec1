//! Batch construction, twin of `shaders/batch.wgsl`.
//!
//! For sample `i` of step `step`: `x0 ~ N(0, I)` (or a point of the source set when one is given), `t ~ U(0, 1)`
//! (or another time density, `cpu::time`), `x1 = data[h % n]`, all keyed by
//! `(seed, step, i)`. On the path `x_t = α_t·x1 + β_t·x0` (see [`path_coefficients`]) the input is
//! `(x_t, t)` and the regression target `u = α'_t·x1 + β'_t·x0`.
//! Writes `input (B, 3)` and `target (B, 2)` of the activation layout.

use super::time::TimeDist;
use crate::config::Path;
use crate::model::ActivationLayout;
use crate::rng::{box_muller, hash4, stream, unit};

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
    data[(hash4(seed, step, i, stream::TARGET_INDEX) % data.len() as u32) as usize]
}

/// Sample `i`'s time t at `step` under `U(0, 1)`.
pub fn draw_t(seed: u32, step: u32, i: u32) -> f32 {
    unit(hash4(seed, step, i, stream::T))
}

/// Writes sample `i`'s network input `(x_t, t)` and regression target `u` for the pair (x0, x1).
#[allow(clippy::too_many_arguments)]
pub fn write_sample(acts: &mut [f32], layout: &ActivationLayout, i: u32, x0: [f32; 2], x1: [f32; 2], t: f32, sigma_min: f32, path: Path) {
    let [a, b, da, db] = path_coefficients(path, t, sigma_min);
    let k = (layout.input + 3 * i) as usize;
    acts[k] = a * x1[0] + b * x0[0];
    acts[k + 1] = a * x1[1] + b * x0[1];
    acts[k + 2] = t;
    let k = (layout.target + 2 * i) as usize;
    acts[k] = da * x1[0] + db * x0[0];
    acts[k + 1] = da * x1[1] + db * x0[1];
}

/// Fills the batch input and target regions of `acts`, times drawn from `time` (`cpu::time`).
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
    for i in 0..layout.batch {
        let (x0, x1, t) = (draw_x0(seed, step, i, source), draw_x1(seed, step, i, data), time.draw(seed, step, i));
        write_sample(acts, layout, i, x0, x1, t, sigma_min, path);
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
