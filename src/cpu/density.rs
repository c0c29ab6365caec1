//! Exact log-likelihood under the flow; twin of `shaders/density.wgsl`.
//!
//! `log p1(x1) = log N(x(0); 0, I) - ∫_0^1 div v(x(t), t) dt`, integrating the augmented state
//! `(x, ℓ)` with `dℓ/dt = div v` backwards from t = 1 to 0. The divergence is exact: the MLP runs
//! in forward mode with the tangents e_x and e_y.

use super::activation::{act, act_grad};
use crate::config::Solver;
use crate::tableau::{step, V3};
use crate::model::ModelShape;

/// `(v_x, v_y, div v)` at `(x, t)`.
pub fn field_and_divergence(shape: &ModelShape, params: &[f32], x: [f32; 2], t: f32) -> [f32; 3] {
    let layers = shape.layers();
    let a = shape.activation;
    // Per unit: value, d/dx, d/dy.
    let first = layers[0];
    let mut h: Vec<[f32; 3]> = (0..first.out_dim as usize)
        .map(|o| {
            let w = first.w_offset as usize + 3 * o;
            let z = params[first.b_offset as usize + o] + params[w] * x[0] + params[w + 1] * x[1] + params[w + 2] * t;
            let g = act_grad(a, z);
            [act(a, z), g * params[w], g * params[w + 1]]
        })
        .collect();
    for l in &layers[1..layers.len() - 1] {
        h = (0..l.out_dim as usize)
            .map(|o| {
                let w = l.w_offset as usize + o * l.in_dim as usize;
                let mut z = [params[l.b_offset as usize + o], 0.0, 0.0];
                for (k, hk) in h.iter().enumerate() {
                    for c in 0..3 {
                        z[c] += params[w + k] * hk[c];
                    }
                }
                let g = act_grad(a, z[0]);
                [act(a, z[0]), g * z[1], g * z[2]]
            })
            .collect();
    }
    let last = layers[layers.len() - 1];
    let mut v = [[params[last.b_offset as usize], 0.0, 0.0], [params[last.b_offset as usize + 1], 0.0, 0.0]];
    for (k, hk) in h.iter().enumerate() {
        for (o, vo) in v.iter_mut().enumerate() {
            let w = params[last.w_offset as usize + o * last.in_dim as usize + k];
            for c in 0..3 {
                vo[c] += w * hk[c];
            }
        }
    }
    [v[0][0], v[1][0], v[0][1] + v[1][2]]
}

/// `log p1(x1)` with `steps` backward steps of `solver` (its Butcher tableau, `src/tableau.rs`).
pub fn log_density(shape: &ModelShape, params: &[f32], solver: Solver, x1: [f32; 2], steps: u32) -> f32 {
    let f = |s: V3, t: f32| V3(field_and_divergence(shape, params, [s.0[0], s.0[1]], t));
    let mut s = V3([x1[0], x1[1], 0.0]);
    let h = -1.0 / steps as f32;
    for k in 0..steps {
        let t = 1.0 - k as f32 / steps as f32;
        s = step(solver.tableau(), f, s, t, h);
    }
    let [x, y, l] = s.0;
    -(2.0 * std::f32::consts::PI).ln() - 0.5 * (x * x + y * y) + l
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Activation;
    use crate::cpu::mlp::velocity;

    #[test]
    fn forward_mode_matches_velocity_and_finite_differences() {
        for &activation in Activation::ALL {
            let shape = ModelShape { width: 9, depth: 3, activation };
            let params = shape.init_params(5);
            let mut scratch = vec![0.0; 18];
            for (x, t) in [([0.3f32, -0.7f32], 0.2f32), ([1.5, 0.4], 0.9), ([-2.0, 2.0], 0.5)] {
                let [vx, vy, div] = field_and_divergence(&shape, &params, x, t);
                let v = velocity(&shape, &params, x, t, &mut scratch);
                assert!((vx - v[0]).abs() < 1e-5 && (vy - v[1]).abs() < 1e-5);
                let e = 1e-3f32;
                let dvx = (velocity(&shape, &params, [x[0] + e, x[1]], t, &mut scratch)[0]
                    - velocity(&shape, &params, [x[0] - e, x[1]], t, &mut scratch)[0]) / (2.0 * e);
                let dvy = (velocity(&shape, &params, [x[0], x[1] + e], t, &mut scratch)[1]
                    - velocity(&shape, &params, [x[0], x[1] - e], t, &mut scratch)[1]) / (2.0 * e);
                assert!((div - (dvx + dvy)).abs() < 2e-3 + 1e-2 * div.abs(), "{activation}: div {div} vs fd {}", dvx + dvy);
            }
        }
    }
}
