//! Exact log-likelihood under the flow; twin of `shaders/density.wgsl`.
//!
//! `log p1(x1) = log N(x(0); 0, I) - ∫_0^1 div v(x(t), t) dt`, integrating the augmented state
//! `(x, ℓ)` with `dℓ/dt = div v` backwards from t = 1 to 0. The divergence is exact: the MLP runs
//! in forward mode with the tangents e_x and e_y. The field is the sampler's (`mlp::guided` at
//! `r = t`): for a guided query both are linear mixes, `div(v∅ + w(v_c - v∅)) = div v∅ + w(div v_c - div v∅)`.

use super::activation::{act, act_grad};
use super::mlp::input_row;
use crate::config::Solver;
use crate::tableau::{step, V3};
use crate::model::{ModelShape, Query};

/// `(v_x, v_y, div v)` at `(x, t)` (the no-class field of a conditional model).
pub fn field_and_divergence(shape: &ModelShape, params: &[f32], x: [f32; 2], t: f32) -> [f32; 3] {
    field_and_divergence_query(shape, params, x, t, Query::default())
}

/// `(v_x, v_y, div v)` of `query`'s field at `(x, t)`.
pub fn field_and_divergence_query(shape: &ModelShape, params: &[f32], x: [f32; 2], t: f32, query: Query) -> [f32; 3] {
    let fc = forward_divergence(shape, params, &input_row(&shape.inputs, x, t, t, query.class));
    if !query.guided(&shape.inputs) {
        return fc;
    }
    let fu = forward_divergence(shape, params, &input_row(&shape.inputs, x, t, t, None));
    let w = query.guidance;
    [0, 1, 2].map(|k| fu[k] + w * (fc[k] - fu[k]))
}

/// `(v_x, v_y, ∂v_x/∂x + ∂v_y/∂y)` of the network at one input row (columns 0 and 1 are x, y).
fn forward_divergence(shape: &ModelShape, params: &[f32], input: &[f32]) -> [f32; 3] {
    let layers = shape.layers();
    let a = shape.activation;
    // Per unit: value, d/dx, d/dy.
    let first = layers[0];
    let n_in = first.in_dim as usize;
    let mut h: Vec<[f32; 3]> = (0..first.out_dim as usize)
        .map(|o| {
            let w = first.w_offset as usize + n_in * o;
            let mut z = params[first.b_offset as usize + o];
            for k in 0..n_in {
                z += input[k] * params[w + k];
            }
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
    log_density_query(shape, params, Query::default(), solver, x1, steps)
}

/// As [`log_density`] under `query`'s field.
pub fn log_density_query(shape: &ModelShape, params: &[f32], query: Query, solver: Solver, x1: [f32; 2], steps: u32) -> f32 {
    let f = |s: V3, t: f32| V3(field_and_divergence_query(shape, params, [s.0[0], s.0[1]], t, query));
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
            let shape = ModelShape::new(9, 3, activation);
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
