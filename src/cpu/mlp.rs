//! MLP forward, CFM loss and backward on the CPU; twin of `shaders/mlp_forward.wgsl`,
//! `shaders/mlp_output_loss.wgsl` and `shaders/mlp_backward.wgsl`.
//!
//! Hidden layer l: `z_l[b,o] = b_l[o] + Σ_k a_{l-1}[b,k]·W_l[o,k]`, `a_l = act(z_l)`.
//! Output layer: `v[b,o] = b[o] + Σ_k a[b,k]·W[o,k]`.
//! Loss: `L = (1/B) Σ_b ‖v_b - u_b‖²`, so `dL/dv = 2(v - u)/B`.
//! Backward for layer l with `δ_l = dL/dz_l`: `dW_l[o,i] = Σ_b δ_l[b,o]·a_{l-1}[b,i]`,
//! `db_l[o] = Σ_b δ_l[b,o]`, `δ_{l-1}[b,i] = act'(z_{l-1}[b,i])·Σ_o δ_l[b,o]·W_l[o,i]`.

use super::activation::{act, act_grad};
use crate::model::{ActivationLayout, InputLayout, LayerLayout, ModelShape, Query};

/// `out[b, :] = bias + W · inp[b, :]` for one linear layer (no activation).
fn linear(params: &[f32], l: &LayerLayout, inp: &[f32], out: &mut [f32], batch: usize) {
    let (n_in, n_out) = (l.in_dim as usize, l.out_dim as usize);
    for b in 0..batch {
        for o in 0..n_out {
            let w = &params[l.w_offset as usize + o * n_in..][..n_in];
            let x = &inp[b * n_in..][..n_in];
            let mut acc = params[l.b_offset as usize + o];
            for k in 0..n_in {
                acc += x[k] * w[k];
            }
            out[b * n_out + o] = acc;
        }
    }
}

/// Forward pass over the batch stored in `acts` (input region already filled): writes every
/// `z_l`, `a_l` and the output `v`.
pub fn forward(shape: &ModelShape, params: &[f32], acts: &mut [f32], layout: &ActivationLayout) {
    let batch = layout.batch as usize;
    for (l, ll) in shape.layers().iter().enumerate() {
        let in_off = layout.layer_input(l) as usize;
        let out_off = layout.layer_output(l) as usize;
        let n_in = ll.in_dim as usize * batch;
        let n_out = ll.out_dim as usize * batch;
        let inp = acts[in_off..in_off + n_in].to_vec();
        linear(params, ll, &inp, &mut acts[out_off..out_off + n_out], batch);
        if l < shape.depth as usize {
            let (z, a) = layout.hidden[l];
            for i in 0..n_out {
                acts[a as usize + i] = act(shape.activation, acts[z as usize + i]);
            }
        }
    }
}

/// CFM loss and its gradient: writes the per-sample terms `‖v_b - u_b‖²` and `δ_out = 2(v-u)/B`
/// into `deltas`; returns the mean loss.
pub fn loss_and_grad(shape: &ModelShape, acts: &[f32], deltas: &mut [f32], layout: &ActivationLayout) -> f32 {
    let batch = layout.batch as usize;
    let d_out = layout.deltas[shape.depth as usize] as usize;
    let mut sum = 0.0f64;
    for b in 0..batch {
        let v = &acts[layout.output as usize + 2 * b..][..2];
        let u = &acts[layout.target as usize + 2 * b..][..2];
        let (ex, ey) = (v[0] - u[0], v[1] - u[1]);
        let term = ex * ex + ey * ey;
        deltas[layout.loss_terms as usize + b] = term;
        deltas[d_out + 2 * b] = 2.0 * ex / batch as f32;
        deltas[d_out + 2 * b + 1] = 2.0 * ey / batch as f32;
        sum += term as f64;
    }
    (sum / batch as f64) as f32
}

/// Backward pass: from `δ_out` in `deltas`, fills every other `δ_l` and the packed gradient
/// `grads` (same layout as the parameters; padding stays zero).
pub fn backward(shape: &ModelShape, params: &[f32], acts: &[f32], deltas: &mut [f32], grads: &mut [f32], layout: &ActivationLayout) {
    let batch = layout.batch as usize;
    let layers = shape.layers();
    grads.iter_mut().for_each(|g| *g = 0.0);
    for l in (0..layers.len()).rev() {
        let ll = layers[l];
        let (n_in, n_out) = (ll.in_dim as usize, ll.out_dim as usize);
        let x = layout.layer_input(l) as usize;
        let d = layout.deltas[l] as usize;
        for o in 0..n_out {
            let mut db = 0.0f32;
            for b in 0..batch {
                db += deltas[d + b * n_out + o];
            }
            grads[ll.b_offset as usize + o] = db;
            for i in 0..n_in {
                let mut dw = 0.0f32;
                for b in 0..batch {
                    dw += deltas[d + b * n_out + o] * acts[x + b * n_in + i];
                }
                grads[ll.w_offset as usize + o * n_in + i] = dw;
            }
        }
        if l > 0 {
            let z_prev = layout.hidden[l - 1].0 as usize;
            let d_prev = layout.deltas[l - 1] as usize;
            for b in 0..batch {
                for i in 0..n_in {
                    let mut acc = 0.0f32;
                    for o in 0..n_out {
                        acc += deltas[d + b * n_out + o] * params[ll.w_offset as usize + o * n_in + i];
                    }
                    deltas[d_prev + b * n_in + i] = acc * act_grad(shape.activation, acts[z_prev + b * n_in + i]);
                }
            }
        }
    }
}

/// Longest input row ([`InputLayout::dim`] with r and 25 classes + no class).
pub const MAX_INPUT: usize = 32;

/// The input row for `(x, t, r)` and the one-hot column of `class` (`None`: the no-class token;
/// ignored by unconditional models); `r` is ignored by non-MeanFlow models.
pub fn input_row(inputs: &InputLayout, x: [f32; 2], t: f32, r: f32, class: Option<u32>) -> [f32; MAX_INPUT] {
    let mut row = [0.0f32; MAX_INPUT];
    row[..3].copy_from_slice(&[x[0], x[1], t]);
    if let Some(k) = inputs.r_column() {
        row[k as usize] = r;
    }
    if let Some(k) = inputs.one_hot_column(class) {
        row[k as usize] = 1.0;
    }
    row
}

/// The velocity field at one point, `v_θ(x, t)`: the network applied to `(x, y, t)` (with `r = t`
/// for MeanFlow models, whose average velocity over an empty interval is the velocity, and the
/// no-class token for conditional ones). `scratch` must hold `2·width` floats.
pub fn velocity(shape: &ModelShape, params: &[f32], x: [f32; 2], t: f32, scratch: &mut [f32]) -> [f32; 2] {
    guided(shape, params, x, t, t, Query::default(), scratch)
}

/// The field a sampler integrates: the network at `(x, t, r)` for `query`'s class, and with
/// classifier-free guidance `v(∅) + w·(v(c) - v(∅))` when `query` is guided (twin of
/// `guided_net` in shaders/network.wgsl).
pub fn guided(shape: &ModelShape, params: &[f32], x: [f32; 2], t: f32, r: f32, query: Query, scratch: &mut [f32]) -> [f32; 2] {
    let inputs = &shape.inputs;
    let vc = network(shape, params, &input_row(inputs, x, t, r, query.class), scratch);
    if !query.guided(inputs) {
        return vc;
    }
    let vu = network(shape, params, &input_row(inputs, x, t, r, None), scratch);
    let w = query.guidance;
    [vu[0] + w * (vc[0] - vu[0]), vu[1] + w * (vc[1] - vu[1])]
}

/// The network applied to one input row (its first `shape.inputs.dim()` values).
/// `scratch` must hold `2·width` floats.
pub fn network(shape: &ModelShape, params: &[f32], input: &[f32], scratch: &mut [f32]) -> [f32; 2] {
    let w = shape.width as usize;
    let (h0, h1) = scratch.split_at_mut(w);
    let mut cur: &mut [f32] = h0;
    let mut next: &mut [f32] = h1;
    let input = &input[..shape.inputs.dim() as usize];
    let mut out = [0.0f32; 2];
    let layers = shape.layers();
    for (l, ll) in layers.iter().enumerate() {
        let inp: &[f32] = if l == 0 { input } else { cur };
        let last = l + 1 == layers.len();
        let dst: &mut [f32] = if last { &mut out } else { next };
        linear(params, ll, inp, dst, 1);
        if !last {
            for v in dst.iter_mut() {
                *v = act(shape.activation, *v);
            }
            std::mem::swap(&mut cur, &mut next);
        }
    }
    out
}
