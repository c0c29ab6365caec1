//! The exact marginal velocity field of a finite target set; twin of `shaders/exact_field.wgsl`.
//!
//! For target points `x1_i` (i < M, equally likely), a Gaussian source and the conditional path
//! `x_t = α_t·x1 + β_t·x0` (`batch::path_coefficients`), the conditional velocity is
//! `u_t(x | x1) = α'_t·x1 + β'_t·(x - α_t·x1)/β_t`, and the marginal field the network learns
//! (in expectation) is the posterior average
//!
//! `u_t(x) = Σ_i w_i(x)·u_t(x | x1_i)`,  `w_i ∝ N(x; α_t·x1_i, β_t²·I)`,
//!
//! i.e. `u_t(x) = (α' - β'α/β)·E[x1 | x] + (β'/β)·x` with `E[x1 | x] = Σ_i w_i·x1_i`. The weights
//! are a softmax of `ℓ_i = -|x - α·x1_i|²/(2β²)`, computed with the maximum subtracted first
//! (log-sum-exp), so it stays finite as β → 0, where it picks the nearest scaled point.
//! On the linear path with one point this is `(x1 - (1 - σmin)·x)/(1 - (1 - σmin)·t)`.
//! Integrating it (the "exact flow") memorises: every particle lands on a training point
//! (Bertrand et al. 2025, "On the closed-form of flow matching", arXiv 2506.03719).
//!
//! The field is singular at t = 1 when β_1 = 0 (σmin = 0, cosine, VP): times are clamped to
//! [`EXACT_T_MAX`].

use super::batch::path_coefficients;
use crate::config::{Path, Solver};
use crate::model::ModelShape;
use crate::rng::{box_muller, hash4, stream, unit};
use crate::tableau::{step, V2};

/// Times above this are evaluated at it (β_t > 0 on every path).
pub const EXACT_T_MAX: f32 = 1.0 - 1e-4;

/// The conditional velocity `u_t(x | x1)`.
pub fn conditional_velocity(path: Path, sigma_min: f32, x: [f32; 2], t: f32, x1: [f32; 2]) -> [f32; 2] {
    let [a, b, da, db] = path_coefficients(path, t.min(EXACT_T_MAX), sigma_min);
    [0, 1].map(|k| da * x1[k] + db * (x[k] - a * x1[k]) / b)
}

/// `E[x1 | x_t = x]` under the empirical target (f64 sums, max-shifted softmax).
pub fn posterior_mean(data: &[[f32; 2]], path: Path, sigma_min: f32, x: [f32; 2], t: f32) -> [f64; 2] {
    let [a, b, ..] = path_coefficients(path, t.min(EXACT_T_MAX), sigma_min);
    let (a, b) = (a as f64, b as f64);
    let logit = |p: &[f32; 2]| {
        let (dx, dy) = (x[0] as f64 - a * p[0] as f64, x[1] as f64 - a * p[1] as f64);
        -(dx * dx + dy * dy) / (2.0 * b * b)
    };
    let m = data.iter().map(logit).fold(f64::NEG_INFINITY, f64::max);
    let (mut s, mut w) = (0.0, [0.0f64; 2]);
    for p in data {
        let e = (logit(p) - m).exp();
        s += e;
        w[0] += e * p[0] as f64;
        w[1] += e * p[1] as f64;
    }
    [w[0] / s, w[1] / s]
}

/// The exact marginal field `u_t(x)` of the target points `data`.
pub fn marginal_velocity(data: &[[f32; 2]], path: Path, sigma_min: f32, x: [f32; 2], t: f32) -> [f32; 2] {
    let [a, b, da, db] = path_coefficients(path, t.min(EXACT_T_MAX), sigma_min).map(|c| c as f64);
    let e = posterior_mean(data, path, sigma_min, x, t);
    [0, 1].map(|k| ((da - db * a / b) * e[k] + (db / b) * x[k] as f64) as f32)
}

/// One step of `solver` (its tableau) through the exact field; twin of `exact_flow_step`.
pub fn exact_flow_step(data: &[[f32; 2]], path: Path, sigma_min: f32, solver: Solver, x: [f32; 2], t: f32, h: f32) -> [f32; 2] {
    step(solver.tableau(), |x: V2, t| V2(marginal_velocity(data, path, sigma_min, x.0, t)), V2(x), t, h).0
}

/// Query `q` of field-error reading `reading`: `x_t = α·x1 + β·x0` with `x0 ~ N(0, I)`,
/// `t ~ U(0, 1)` and `x1` a target point, keyed `hash4(seed, reading, 4q + c, FIELD_ERROR)`.
pub fn field_error_query(data: &[[f32; 2]], path: Path, sigma_min: f32, seed: u32, reading: u32, q: u32) -> ([f32; 2], f32) {
    let h = |c: u32| hash4(seed, reading, 4 * q + c, stream::FIELD_ERROR);
    let x0 = box_muller(unit(h(0)), unit(h(1)));
    let t = unit(h(2));
    let x1 = data[(h(3) % data.len() as u32) as usize];
    let [a, b, ..] = path_coefficients(path, t, sigma_min);
    ([a * x1[0] + b * x0[0], a * x1[1] + b * x0[1]], t)
}

/// The field error `E_{t, x_t} |v_θ(x_t, t) - u_t(x_t)|²` over `n` queries (the CPU backend's
/// and the tests' version of `GpuExactField::field_error`).
#[allow(clippy::too_many_arguments)]
pub fn field_error(shape: &ModelShape, params: &[f32], data: &[[f32; 2]], path: Path, sigma_min: f32, seed: u32, reading: u32, n: u32) -> f64 {
    let mut scratch = vec![0.0f32; 2 * shape.width as usize];
    let total: f64 = (0..n)
        .map(|q| {
            let (x, t) = field_error_query(data, path, sigma_min, seed, reading, q);
            let u = marginal_velocity(data, path, sigma_min, x, t);
            let v = super::mlp::velocity(shape, params, x, t, &mut scratch);
            ((v[0] - u[0]) as f64).powi(2) + ((v[1] - u[1]) as f64).powi(2)
        })
        .sum();
    total / n.max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One target point: the closed form of the issue, on the linear path with σmin.
    #[test]
    fn one_point_is_the_closed_form() {
        let x1 = [0.7f32, -1.3];
        for sigma_min in [0.0f32, 0.05] {
            for &(x, t) in &[([0.1f32, 0.2f32], 0.0f32), ([-2.0, 1.0], 0.3), ([0.5, 0.5], 0.9), ([3.0, -1.0], 0.99)] {
                let u = marginal_velocity(&[x1], Path::Linear, sigma_min, x, t);
                let k = 1.0 - sigma_min;
                let want = [0, 1].map(|i| (x1[i] - k * x[i]) / (1.0 - k * t));
                for i in 0..2 {
                    assert!((u[i] - want[i]).abs() <= 1e-5 * (1.0 + want[i].abs()), "σmin {sigma_min}, t {t}: {u:?} vs {want:?}");
                }
            }
        }
    }

    /// Near t = 1 the weights pick the nearest point without overflow.
    #[test]
    fn stays_finite_near_one() {
        let data = [[1.0f32, 0.0], [-1.0, 0.0], [0.0, 2.0]];
        for path in [Path::Linear, Path::Cosine, Path::Vp] {
            let e = posterior_mean(&data, path, 0.0, [0.9, 0.1], 1.0);
            assert!((e[0] - 1.0).abs() < 1e-9 && e[1].abs() < 1e-9, "{path}: {e:?}");
            let u = marginal_velocity(&data, path, 0.0, [0.9, 0.1], 0.9999);
            assert!(u.iter().all(|v| v.is_finite()), "{path}: {u:?}");
        }
    }
}
