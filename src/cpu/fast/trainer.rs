//! `FastCpuTrainer`: the CPU backend's training step, a drop-in for [`crate::cpu::CpuTrainer`]
//! (same constructor, `step`, `loss_and_grad` and public `spec`/`params`/`grads`/`m`/`v`/`data`/
//! `source`/`step`), with the same packed parameter layout, batch and Adam (see `fast` for how
//! close the results are).
//!
//! Step: batch (the reference's `coupling::build_training_batch`; the OT coupling's by
//! [`Sinkhorn`], its vectorised twin) → forward with
//! [`gemm_nn`] (bias + x·Wᵀ, then `act` and `act'` together by `act::act_and_grad_all`, `act'`
//! kept for the backward) →
//! loss → backward (db by [`col_sums`], dW = δᵀ·x by [`gemm_tn_acc`], δ_prev = (δ·W)⊙act' by
//! [`gemm_nn`]) → Adam (`adam::adam_update`).
//!
//! Internal layout (not the reference's): every activation and δ matrix is `(B4, n4)` row-major,
//! with the batch `B` and each width `n` rounded up to a multiple of 4 so the kernels need no
//! edge cases; padding rows and columns never reach a real output (sums over the batch stop at
//! `B`, sums over k stop at the layer's real input width). Per step, W is copied into `wt`
//! (Wᵀ, `(in, out4)`, for the forward) and `wp` (W, `(out, in4)`, for δ_prev), both in the
//! kernels' column panels (`gemm::pack_panels`) with zeros in the padding columns. Every buffer
//! is allocated by [`FastCpuTrainer::new`] (or when `spec.shape`/`spec.batch` change); a step
//! with the independent coupling allocates nothing; the OT coupling allocates its buffers at its
//! first step (and when the batch changes), nothing after.

use super::gemm::{col_sums, gemm_nn, gemm_tn_acc, pack_panels, tn_scratch_len};
use super::act::act_and_grad_all;
use super::sinkhorn::Sinkhorn;
use crate::config::Coupling;
use crate::cpu::coupling;
use crate::model::{ActivationLayout, LayerLayout, ModelShape, OUT_DIM};
use crate::spec::TrainSpec;

fn up4(n: u32) -> usize {
    (n as usize).div_ceil(4) * 4
}

/// The buffers of one (shape, batch); see the module docs for their layout.
struct Workspace {
    shape: ModelShape,
    batch: u32,
    /// `B` rounded up to 4.
    rows: usize,
    layers: Vec<LayerLayout>,
    /// The reference's batch layout for a depth-0 model: input `(B, 3)` at 0, target `(B, 2)`.
    batch_layout: ActivationLayout,
    batch_buf: Vec<f32>,
    /// `xs[l]`: input of layer l, `(B4, in4)`; `xs[L]`: the velocity `(B4, 4)`.
    xs: Vec<Vec<f32>>,
    /// `act'(z_l)` of hidden layer l, `(B4, width4)`.
    dz: Vec<Vec<f32>>,
    /// `δ_l = dL/dz_l`, `(B4, out4)`.
    delta: Vec<Vec<f32>>,
    /// `W_lᵀ`, `(in, out4)` in column panels.
    wt: Vec<Vec<f32>>,
    /// `W_l`, `(out, in4)` in column panels.
    wp: Vec<Vec<f32>>,
    /// One layer's dW, `(out4, in4)`.
    gw: Vec<f32>,
    /// The weight-gradient product's packed chunks.
    scratch: Vec<f32>,
    /// The OT coupling's buffers (`sinkhorn`), made by its first step.
    ot: Option<Sinkhorn>,
}

impl Workspace {
    fn new(shape: ModelShape, batch: u32) -> Self {
        let layers = shape.layers();
        let rows = up4(batch);
        let batch_layout = ModelShape { depth: 0, ..shape }.activation_layout(batch);
        let mut xs: Vec<Vec<f32>> = layers.iter().map(|l| vec![0.0; rows * up4(l.in_dim)]).collect();
        xs.push(vec![0.0; rows * up4(OUT_DIM)]);
        Workspace {
            shape,
            batch,
            rows,
            batch_buf: vec![0.0; batch_layout.len as usize],
            batch_layout,
            dz: layers[..shape.depth as usize].iter().map(|l| vec![0.0; rows * up4(l.out_dim)]).collect(),
            delta: layers.iter().map(|l| vec![0.0; rows * up4(l.out_dim)]).collect(),
            wt: layers.iter().map(|l| vec![0.0; l.in_dim as usize * up4(l.out_dim)]).collect(),
            wp: layers.iter().map(|l| vec![0.0; l.out_dim as usize * up4(l.in_dim)]).collect(),
            gw: vec![0.0; layers.iter().map(|l| up4(l.out_dim) * up4(l.in_dim)).max().unwrap_or(0)],
            scratch: vec![0.0; layers.iter().map(|l| tn_scratch_len(up4(l.out_dim), up4(l.in_dim))).max().unwrap_or(0)],
            xs,
            layers,
            ot: None,
        }
    }
}

crate::cpu::trainer::training_state_methods!(FastCpuTrainer);

pub struct FastCpuTrainer {
    pub spec: TrainSpec,
    pub params: Vec<f32>,
    pub grads: Vec<f32>,
    pub m: Vec<f32>,
    pub v: Vec<f32>,
    pub data: Vec<[f32; 2]>,
    /// Source points for x0; empty means N(0, I).
    pub source: Vec<[f32; 2]>,
    /// Reflow: fixed `(x0, x1)` pairs that replace the independent draws when set (`cpu::reflow`).
    pub pairs: Option<crate::cpu::reflow::Pairs>,
    /// Steps taken so far (the next step's number).
    pub step: u32,
    ws: Workspace,
}

impl FastCpuTrainer {
    /// As [`FastCpuTrainer::new`], refusing (before anything is allocated) empty data and a spec
    /// whose buffers exceed the CPU backend's memory budget (`budget::check_trainer`, with
    /// `n_source` source points: the message names the batch or width and the largest value that
    /// fits), instead of aborting on the allocation. The page builds its CPU trainer with this.
    pub fn try_new(spec: TrainSpec, data: Vec<[f32; 2]>, n_source: usize) -> Result<Self, String> {
        if data.is_empty() {
            return Err("training data must not be empty".into());
        }
        crate::budget::check_trainer(&spec, data.len(), n_source, &crate::budget::Profile::cpu()).map_err(|r| r.to_string())?;
        Ok(Self::new(spec, data))
    }

    /// A fresh model initialised from the spec's seed, training on `data` (at least one point).
    /// Panics where [`FastCpuTrainer::try_new`] refuses only by running out of memory: code that
    /// takes its spec from a user calls `try_new`.
    pub fn new(spec: TrainSpec, data: Vec<[f32; 2]>) -> Self {
        assert!(!data.is_empty(), "training data must not be empty");
        let n = spec.shape.param_len();
        FastCpuTrainer {
            params: spec.shape.init_params(spec.seed),
            grads: vec![0.0; n],
            m: vec![0.0; n],
            v: vec![0.0; n],
            ws: Workspace::new(spec.shape, spec.batch),
            spec,
            data,
            source: Vec::new(),
            pairs: None,
            step: 0,
        }
    }

    /// Computes the loss and gradient of step `self.step`'s batch without updating anything.
    pub fn loss_and_grad(&mut self) -> f32 {
        let s = &self.spec;
        if self.ws.shape != s.shape || self.ws.batch != s.batch || self.grads.len() != s.shape.param_len() {
            self.ws = Workspace::new(s.shape, s.batch);
            self.grads = vec![0.0; s.shape.param_len()];
        }
        let ws = &mut self.ws;
        let bl = &ws.batch_layout;
        // No class labels here (the CPU backend refuses conditional models): a conditional spec
        // trains on the "no class" token only. Reflow pairs replace the draws when set.
        if s.coupling == Coupling::Ot && self.pairs.is_none() {
            let ot = match &mut ws.ot {
                Some(ot) if ot.batch() == s.batch as usize => ot,
                slot => slot.insert(Sinkhorn::new(s.batch as usize)),
            };
            ot.build_batch(&mut ws.batch_buf, bl, &self.data, &self.source, s, self.step);
        } else {
            coupling::build_training_batch(s, &mut ws.batch_buf, bl, &self.data, &self.source, &[], self.pairs.as_ref(), self.step);
        }
        if s.mean_flow() {
            crate::cpu::meanflow::write_targets(&s.shape, &self.params, &mut ws.batch_buf, bl);
        }
        let n_in = bl.in_dim as usize;
        let input = &ws.batch_buf[bl.input as usize..][..n_in * s.batch as usize];
        for (dst, src) in ws.xs[0].chunks_exact_mut(up4(bl.in_dim)).zip(input.chunks_exact(n_in)) {
            dst[..n_in].copy_from_slice(src);
        }
        forward(ws, &self.params);
        let loss = loss_and_delta(ws);
        backward(ws, &mut self.grads);
        loss
    }
}

/// Packs every `W_l` into `wt` (transposed) and `wp`, then runs the layers.
fn forward(ws: &mut Workspace, params: &[f32]) {
    let activation = ws.shape.activation;
    for (l, ll) in ws.layers.iter().enumerate() {
        let (n_in, n_out) = (ll.in_dim as usize, ll.out_dim as usize);
        let (in4, out4) = (up4(ll.in_dim), up4(ll.out_dim));
        let w = &params[ll.w_offset as usize..][..n_in * n_out];
        pack_panels(&mut ws.wt[l], n_in, out4, |k, o| if o < n_out { w[o * n_in + k] } else { 0.0 });
        pack_panels(&mut ws.wp[l], n_out, in4, |o, i| if i < n_in { w[o * n_in + i] } else { 0.0 });
        let bias = &params[ll.b_offset as usize..][..out4];
        let (inputs, outputs) = ws.xs.split_at_mut(l + 1);
        gemm_nn(&inputs[l], in4, &ws.wt[l], &mut outputs[0], out4, ws.rows, out4, n_in, Some(bias));
        if l < ws.shape.depth as usize {
            act_and_grad_all(activation, &mut outputs[0], &mut ws.dz[l]);
        }
    }
}

/// The reference's loss (`mlp::loss_and_grad`) on this layout: writes `δ_out = 2(v-u)/B`.
fn loss_and_delta(ws: &mut Workspace) -> f32 {
    let b = ws.batch as usize;
    let out4 = up4(OUT_DIM);
    let target = &ws.batch_buf[ws.batch_layout.target as usize..][..2 * b];
    let v = &ws.xs[ws.layers.len()];
    let d_out = ws.delta.last_mut().expect("an output layer");
    let mut sum = 0.0f64;
    for i in 0..b {
        let (ex, ey) = (v[i * out4] - target[2 * i], v[i * out4 + 1] - target[2 * i + 1]);
        sum += (ex * ex + ey * ey) as f64;
        d_out[i * out4] = 2.0 * ex / b as f32;
        d_out[i * out4 + 1] = 2.0 * ey / b as f32;
    }
    (sum / b as f64) as f32
}

/// Fills `grads` (packed layout; padding untouched) and every δ from `δ_out`.
fn backward(ws: &mut Workspace, grads: &mut [f32]) {
    let b = ws.batch as usize;
    for l in (0..ws.layers.len()).rev() {
        let ll = ws.layers[l];
        let (n_in, n_out) = (ll.in_dim as usize, ll.out_dim as usize);
        let (in4, out4) = (up4(ll.in_dim), up4(ll.out_dim));
        col_sums(&ws.delta[l], out4, b, out4, &mut grads[ll.b_offset as usize..][..out4]);
        let gw = &mut ws.gw[..out4 * in4];
        gw.fill(0.0);
        gemm_tn_acc(&ws.delta[l], out4, &ws.xs[l], in4, gw, in4, b, out4, in4, &mut ws.scratch);
        for (dst, src) in grads[ll.w_offset as usize..][..n_out * n_in].chunks_exact_mut(n_in).zip(gw.chunks_exact(in4)) {
            dst.copy_from_slice(&src[..n_in]);
        }
        if l > 0 {
            let (lower, upper) = ws.delta.split_at_mut(l);
            let prev = &mut lower[l - 1];
            gemm_nn(&upper[0], out4, &ws.wp[l], prev, in4, ws.rows, in4, n_out, None);
            for (d, g) in prev.iter_mut().zip(&ws.dz[l - 1]) {
                *d *= *g;
            }
        }
    }
}
