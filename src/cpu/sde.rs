//! Stochastic sampling from the learned velocity; twin of `sde_step` in `shaders/ode_step.wgsl`.
//!
//! On a Gaussian path `x_t = α_t·x1 + β_t·x0` with `x0 ~ N(0, I)`, the marginal velocity and score
//! are both affine in the posterior mean of the noise, `ε̂ = E[x0 | x_t = x]`:
//! `v = (α'/α)·x + (β' - α'β/α)·ε̂` and `s = ∇log p_t(x) = -ε̂/β` (Tweedie). Eliminating `ε̂`:
//!
//! `β·s(x, t) = (α·v - α'·x) / (α'β - αβ')`
//!
//! (SiT, Ma et al. 2024, eq. for the linear path). Per path: linear (σmin) `α'β - αβ' = 1`, so
//! `β·s = t·v - x`; cosine `= π/2`; VP `= α'/β`. The SDE
//! `dx = [v + ½g(t)²·s] dt + g(t) dW` has the marginals of the ODE `dx = v dt` for any `g`
//! (its Fokker–Planck equation is the continuity equation of `v`).
//!
//! `s` blows up at the data end (β → 0 at t = 1 for σmin = 0) while `β·s` stays finite, so the
//! noise is `g(t) = G·sqrt(β_t)`: `½g²·s = ½G²·(β·s)` is bounded on all of [0, 1], the noise is `G`
//! at t = 0 and vanishes at t = 1, where samples must settle on the data. The step is
//! Euler–Maruyama: `x ← x + h·(v + ½G²·β·s) + G·sqrt(β_t·h)·ξ`, `ξ ~ N(0, I)` keyed by
//! (seed, step, particle) on streams `SDE_A`/`SDE_B`. With `G = 0` it is the Euler step, bit for
//! bit. Only a Gaussian source has this score: other sources are refused (`Config::check_generation`).

use super::batch::path_coefficients;
use super::mlp::guided;
use crate::config::Path;
use crate::model::{ModelShape, Query};
use crate::rng::{box_muller, hash4, stream, unit};

/// The SDE's settings: the path (and σmin) the model was trained on, and the noise scale G.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SdeSpec {
    pub path: Path,
    pub sigma_min: f32,
    pub noise: f32,
}

/// `β_t·s(x, t)` from the velocity `v` at `(x, t)`: `(α·v - α'·x) / (α'β - αβ')`.
pub fn scaled_score(path: Path, sigma_min: f32, x: [f32; 2], v: [f32; 2], t: f32) -> [f32; 2] {
    let [a, b, da, db] = path_coefficients(path, t, sigma_min);
    let den = da * b - a * db;
    [(a * v[0] - da * x[0]) / den, (a * v[1] - da * x[1]) / den]
}

/// The Brownian draw ξ ~ N(0, I) of particle `i` at step `k`.
pub fn brownian(seed: u32, k: u32, i: u32) -> [f32; 2] {
    box_muller(unit(hash4(seed, k, i, stream::SDE_A)), unit(hash4(seed, k, i, stream::SDE_B)))
}

/// One Euler–Maruyama step from `(x, t)` with size `h` and Brownian draw `xi`.
#[allow(clippy::too_many_arguments)]
pub fn step(shape: &ModelShape, params: &[f32], query: Query, sde: &SdeSpec, x: [f32; 2], t: f32, h: f32, xi: [f32; 2], scratch: &mut [f32]) -> [f32; 2] {
    let v = guided(shape, params, x, t, t, query, scratch);
    let bs = scaled_score(sde.path, sde.sigma_min, x, v, t);
    let beta = path_coefficients(sde.path, t, sde.sigma_min)[1];
    let half_g2 = 0.5 * (sde.noise * sde.noise);
    let g_sqrt_h = sde.noise * (beta * h).sqrt();
    let drift = [v[0] + half_g2 * bs[0], v[1] + half_g2 * bs[1]];
    [(x[0] + (drift[0] * 1.0) * h) + g_sqrt_h * xi[0], (x[1] + (drift[1] * 1.0) * h) + g_sqrt_h * xi[1]]
}

/// Integrates every point from `t0` to `t1` in `n` steps; particle `i`'s noise is keyed by
/// `(seed, k, i)` for step `k`.
#[allow(clippy::too_many_arguments)]
pub fn integrate(shape: &ModelShape, params: &[f32], query: Query, sde: &SdeSpec, points: &mut [[f32; 2]], t0: f32, t1: f32, n: u32, seed: u32) {
    let mut scratch = vec![0.0f32; 2 * shape.width as usize];
    let h = (t1 - t0) / n as f32;
    for (i, p) in points.iter_mut().enumerate() {
        for k in 0..n {
            let xi = brownian(seed, k, i as u32);
            *p = step(shape, params, query, sde, *p, super::ode::step_time(t0, t1, n, k), h, xi, &mut scratch);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// For a Gaussian target N(m, σ²I) every path's marginal is Gaussian with known mean and
    /// variance, so both v and s are known in closed form: the formula must recover s from v.
    #[test]
    fn score_from_velocity_is_exact_for_a_gaussian_target() {
        let (m, sd) = ([1.5f64, -0.5f64], 0.3f64);
        for &path in Path::ALL {
            for k in 1..20 {
                let t = k as f32 / 20.0;
                let [a, b, da, db] = path_coefficients(path, t, 0.05).map(|c| c as f64);
                // x_t = a·x1 + b·x0: mean a·m, variance a²σ² + b²; v = E[a'x1 + b'x0 | x].
                let var = a * a * sd * sd + b * b;
                let dvar = 2.0 * a * da * sd * sd + 2.0 * b * db;
                let x = [0.4f64, 1.1f64];
                let s = [0, 1].map(|j| -(x[j] - a * m[j]) / var);
                // Velocity of a Gaussian family: v = a'·m + (var'/(2 var))·(x - a·m).
                let v = [0, 1].map(|j| da * m[j] + dvar / (2.0 * var) * (x[j] - a * m[j]));
                let bs = scaled_score(path, 0.05, [x[0] as f32, x[1] as f32], [v[0] as f32, v[1] as f32], t);
                for j in 0..2 {
                    let want = b * s[j];
                    assert!((bs[j] as f64 - want).abs() < 2e-3 * (1.0 + want.abs()), "{path} t={t}: β·s {} vs {want}", bs[j]);
                }
            }
        }
    }
}
