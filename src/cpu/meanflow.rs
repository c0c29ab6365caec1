//! MeanFlow (Geng et al. 2025, arXiv 2505.13447): the network `u(z, r, t)` learns the average
//! velocity over an interval, `u(z_t, r, t) = 1/(r - t) ∫_t^r v(z_τ, τ) dτ`, so one jump
//! `z_r = z_t + (r - t)·u(z_t, r, t)` replaces many solver steps. Twin of `shaders/meanflow.wgsl`
//! (training targets) and of `meanflow_step` in `shaders/ode_step.wgsl` (sampling).
//!
//! Time runs from noise (t = 0) to data (t = 1) here; the paper's runs from data (0) to noise (1).
//! With `τ_paper = 1 - τ`, the paper's `(t, r)` with `r < t` (z at the noisier end t) is our
//! `(t, r)` with `t < r`, and its step `z_r = z_t - (t - r)·u(z_t, r, t)` is the same formula.
//!
//! Training: differentiating `(r - t)·u(z_t, r, t) = ∫_t^r v dτ` in `t` along the flow gives the
//! MeanFlow identity `u = v - (t - r)·du/dt` with `du/dt = v·∂_z u + ∂_t u`: a Jacobian-vector
//! product with tangent `(v, 0, 1)` on `(z, r, t)`, computed here in forward mode (each unit
//! carries its value and its derivative along the tangent). With `v` the conditional velocity of
//! the sample, the target `u_tgt = v - (t - r)·du/dt` is held fixed (stop-gradient: it is written
//! into the batch's target region and regressed with the plain squared error, like a CFM target).
//!
//! Recipe, against the paper's (Meta's `flow_matching` repository has no MeanFlow notebook to
//! compare with: its issue #65 asks for one and the maintainers have no plans; the paper's own
//! 2D figure gives no recipe). Measured with the CPU trainer on moons (width 32, depth 2, batch
//! 128, 1000 steps, SW2 of 2000 one-step samples against fresh data, floor ≈ 0.06–0.10; seeds
//! 0–2; FM with 100 Euler steps scores 0.149/0.192/0.172):
//! * (t, r): a draw of the batch's time density (`t_sampling`, uniform by default; the paper's
//!   logit-normal is tuned for images) and a uniform second draw, sorted, with `r = t` for the
//!   other samples. Fraction with r ≠ t
//!   ([`crate::cpu::batch::MEANFLOW_RATIO`]): 0.25 → 0.224/0.186/0.200, 0.5 → 0.190/0.157/0.153,
//!   0.75 → 0.163/0.179/0.190; we use 0.5 (the paper's best for ImageNet is 0.25).
//! * Loss weighting: the paper's adaptive `w = sg(1/(‖Δ‖² + c)^p)` hurts here: p = 1, c = 1e-3
//!   → 0.307/0.218/0.289 (and the instantaneous field goes wrong: 100-step ODE 0.36–0.40);
//!   p = 0.5 → 0.237/0.195/0.237. In 2D the regression target has a large irreducible variance,
//!   and a weight that normalises each sample's error moves the minimiser away from the
//!   conditional mean, so we keep the unweighted loss (p = 0).
//! * Inputs `(t, r)` directly; the paper's ablation prefers `(t, t - r)` by a small margin, but
//!   for a first linear layer that is a reparametrisation.

use super::activation::{act, act_grad};
use super::mlp::guided;
use crate::model::{ActivationLayout, ModelShape, Query};

/// `(u, du/dt)` of the network at one input row, with tangent `dz = v`, `dt = 1` and nothing
/// else (r and the class are held fixed). Input column 2 is `t`.
pub fn jvp(shape: &ModelShape, params: &[f32], input: &[f32], v: [f32; 2]) -> ([f32; 2], [f32; 2]) {
    let layers = shape.layers();
    let a = shape.activation;
    let first = layers[0];
    let n_in = first.in_dim as usize;
    let mut h: Vec<[f32; 2]> = (0..first.out_dim as usize)
        .map(|o| {
            let w = &params[first.w_offset as usize + o * n_in..][..n_in];
            let mut z = params[first.b_offset as usize + o];
            for k in 0..n_in {
                z += input[k] * w[k];
            }
            let dz = w[0] * v[0] + w[1] * v[1] + w[2];
            [act(a, z), act_grad(a, z) * dz]
        })
        .collect();
    for l in &layers[1..layers.len() - 1] {
        h = (0..l.out_dim as usize)
            .map(|o| {
                let w = &params[l.w_offset as usize + o * l.in_dim as usize..][..l.in_dim as usize];
                let mut z = [params[l.b_offset as usize + o], 0.0];
                for (hk, wk) in h.iter().zip(w) {
                    z[0] += hk[0] * wk;
                    z[1] += hk[1] * wk;
                }
                [act(a, z[0]), act_grad(a, z[0]) * z[1]]
            })
            .collect();
    }
    let last = layers[layers.len() - 1];
    let mut u = [[params[last.b_offset as usize], 0.0], [params[last.b_offset as usize + 1], 0.0]];
    for (o, uo) in u.iter_mut().enumerate() {
        let w = &params[last.w_offset as usize + o * last.in_dim as usize..][..last.in_dim as usize];
        for (hk, wk) in h.iter().zip(w) {
            uo[0] += hk[0] * wk;
            uo[1] += hk[1] * wk;
        }
    }
    ([u[0][0], u[1][0]], [u[0][1], u[1][1]])
}

/// Replaces every sample's target `v` (the conditional velocity written by the batch) by the
/// MeanFlow target `v - (t - r)·du/dt` of the current parameters.
pub fn write_targets(shape: &ModelShape, params: &[f32], acts: &mut [f32], layout: &ActivationLayout) {
    let r_col = shape.inputs.r_column().expect("a MeanFlow model reads r") as usize;
    for b in 0..layout.batch as usize {
        let row = layout.input as usize + b * layout.in_dim as usize;
        let tgt = layout.target as usize + 2 * b;
        let v = [acts[tgt], acts[tgt + 1]];
        let (_, du) = jvp(shape, params, &acts[row..row + layout.in_dim as usize], v);
        let h = acts[row + 2] - acts[row + r_col];
        acts[tgt] = v[0] - h * du[0];
        acts[tgt + 1] = v[1] - h * du[1];
    }
}

/// One jump from `(x, t)` to `t + h`: `x + h·u(x, t + h, t)` (guided like the ODE's field).
pub fn step(shape: &ModelShape, params: &[f32], query: Query, x: [f32; 2], t: f32, h: f32, scratch: &mut [f32]) -> [f32; 2] {
    let u = guided(shape, params, x, t, t + h, query, scratch);
    [x[0] + u[0] * h, x[1] + u[1] * h]
}

/// Moves every point from `t0` to `t1` in `n` equal jumps.
pub fn integrate(shape: &ModelShape, params: &[f32], query: Query, points: &mut [[f32; 2]], t0: f32, t1: f32, n: u32) {
    let mut scratch = vec![0.0f32; 2 * shape.width as usize];
    let h = (t1 - t0) / n as f32;
    for p in points.iter_mut() {
        for k in 0..n {
            *p = step(shape, params, query, *p, super::ode::step_time(t0, t1, n, k), h, &mut scratch);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Activation;
    use crate::cpu::mlp::{input_row, network};
    use crate::model::InputLayout;

    /// The forward-mode derivative equals central differences of the forward pass along the
    /// tangent (z + εv, t + ε), for every activation and a conditional MeanFlow input row.
    #[test]
    fn jvp_matches_finite_differences() {
        for &activation in Activation::ALL {
            let shape = ModelShape { inputs: InputLayout { n_classes: 3, mean_flow: true }, ..ModelShape::new(11, 3, activation) };
            let params = shape.init_params(4);
            let mut scratch = vec![0.0; 22];
            for (x, t, r, v, class) in [([0.3f32, -0.7f32], 0.2f32, 0.9f32, [1.2f32, -0.4f32], Some(1)), ([1.5, 0.4], 0.6, 0.6, [-2.0, 0.5], None)] {
                let row = input_row(&shape.inputs, x, t, r, class);
                let (u, du) = jvp(&shape, &params, &row, v);
                let u_ref = network(&shape, &params, &row, &mut scratch);
                assert!((u[0] - u_ref[0]).abs() < 1e-5 && (u[1] - u_ref[1]).abs() < 1e-5, "{activation}: primal {u:?} vs {u_ref:?}");
                let e = 1e-3f32;
                let at = |s: f32| network(&shape, &params, &input_row(&shape.inputs, [x[0] + s * v[0], x[1] + s * v[1]], t + s, r, class), &mut [0.0; 22]);
                let (p, m) = (at(e), at(-e));
                for k in 0..2 {
                    let fd = (p[k] - m[k]) / (2.0 * e);
                    assert!((du[k] - fd).abs() < 2e-3 + 1e-2 * fd.abs(), "{activation}: du[{k}] {} vs fd {fd}", du[k]);
                }
            }
        }
    }

    /// On a field whose average velocity is known, the identity holds: for u(z, r, t) = the exact
    /// average velocity of v(z, t) = a·z (linear ODE, flow z_r = z_t·e^{a(r - t)}), the target
    /// v - (t - r)·du/dt computed from finite differences equals u itself.
    #[test]
    fn mean_flow_identity_holds_for_an_exact_average_velocity() {
        let a = 0.7f32;
        let u = |z: f32, r: f32, t: f32| if (r - t).abs() < 1e-6 { a * z } else { z * ((a * (r - t)).exp() - 1.0) / (r - t) };
        for (z, t, r) in [(1.3f32, 0.1f32, 0.8f32), (-0.4, 0.5, 0.6), (2.0, 0.0, 1.0)] {
            let v = a * z;
            let e = 1e-3;
            let du_dt = (u(z + e * v, r, t + e) - u(z - e * v, r, t - e)) / (2.0 * e);
            let target = v - (t - r) * du_dt;
            assert!((target - u(z, r, t)).abs() < 1e-3 * (1.0 + target.abs()), "z {z} t {t} r {r}: target {target} vs u {}", u(z, r, t));
        }
    }
}
