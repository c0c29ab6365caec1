//! Minibatch optimal-transport coupling (OT-CFM); twin of `shaders/ot_coupling.wgsl`.
//!
//! Draws x0, t and x1 exactly as [`super::batch::build_batch`], then pairs each x0_i with an x1_j
//! drawn from row i of the entropic OT plan between the two sets (squared Euclidean cost,
//! ε = `OT_EPS`·mean cost, `OT_ITERS` log-domain Sinkhorn iterations, uniform marginals).
//! Pairing noise with nearby data straightens the learned flow, so few solver steps suffice.

use super::batch::{draw_x0, draw_x1, write_sample};
use super::time::TimeDist;
use crate::config::{self, Path};
use crate::model::ActivationLayout;
use crate::rng::{hash4, stream, unit};
use crate::spec::TrainSpec;

pub const OT_EPS: f32 = 0.05;
pub const OT_ITERS: u32 = 100;
/// Largest batch of the OT coupling (its plan is B × B; the GPU passes read the other side as a
/// uniform array of this many points).
pub const OT_MAX_BATCH: u32 = 1024;

/// The result besides the batch itself: the Sinkhorn potentials and the chosen partner of each x0.
pub struct Coupling {
    pub f: Vec<f32>,
    pub g: Vec<f32>,
    pub partner: Vec<u32>,
}

/// Fills the batch input and target regions of `acts` for step `step`: from reflow's fixed `pairs`
/// when given (`super::reflow`), else with the spec's coupling (independent:
/// [`super::batch::build_batch_with`], with class labels for a conditional spec; OT:
/// [`build_batch_ot`]). Both CPU trainers call this; MeanFlow's targets are written afterwards
/// (`super::meanflow::write_targets`, which needs the weights).
#[allow(clippy::too_many_arguments)]
pub fn build_training_batch(
    spec: &TrainSpec,
    acts: &mut [f32],
    layout: &ActivationLayout,
    data: &[[f32; 2]],
    source: &[[f32; 2]],
    labels: &[u32],
    pairs: Option<&super::reflow::Pairs>,
    step: u32,
) {
    let s = spec;
    if let Some((x0, x1)) = pairs {
        super::reflow::build_batch_pairs(acts, layout, x0, x1, s.seed, step, s.sigma_min, s.path, &s.time);
        return;
    }
    match s.coupling {
        config::Coupling::Independent => {
            let extras = super::batch::Extras { inputs: s.shape.inputs, labels, label_dropout: s.label_dropout };
            super::batch::build_batch_with(acts, layout, data, s.seed, step, s.sigma_min, s.path, source, &s.time, &extras)
        }
        config::Coupling::Ot => {
            build_batch_ot(acts, layout, data, s.seed, step, s.sigma_min, s.path, source, &s.time);
        }
    }
}

#[allow(clippy::too_many_arguments)]
pub fn build_batch_ot(
    acts: &mut [f32],
    layout: &ActivationLayout,
    data: &[[f32; 2]],
    seed: u32,
    step: u32,
    sigma_min: f32,
    path: Path,
    source: &[[f32; 2]],
    time: &TimeDist,
) -> Coupling {
    let n = layout.batch as usize;
    let x0: Vec<[f32; 2]> = (0..n as u32).map(|i| draw_x0(seed, step, i, source)).collect();
    let x1: Vec<[f32; 2]> = (0..n as u32).map(|i| draw_x1(seed, step, i, data)).collect();
    let t: Vec<f32> = (0..n as u32).map(|i| time.draw(seed, step, i)).collect();
    // The cost matrix, once (the same f32 operations as the shader's `cost(i, j)`).
    let cost: Vec<f32> = (0..n * n)
        .map(|k| {
            let (i, j) = (k / n, k % n);
            let (dx, dy) = (x0[i][0] - x1[j][0], x0[i][1] - x1[j][1]);
            dx * dx + dy * dy
        })
        .collect();
    let mut total = 0.0f32;
    for c in &cost {
        total += c;
    }
    let eps = (OT_EPS * total / (n * n) as f32).max(1e-12);
    let log_marginal = -(n as f32).ln();
    let (mut f, mut g) = (vec![0.0f32; n], vec![0.0f32; n]);
    // log Σ exp(v), shifted by the maximum (max-fold, then the sum in index order: the shader's).
    let lse = |v: &[f32]| {
        let m = v.iter().fold(-3.0e38f32, |a, &b| a.max(b));
        m + v.iter().map(|x| (x - m).exp()).sum::<f32>().ln()
    };
    // Row i's logits (g_j - C_ij)/ε into `logits`: the f update's and the pairing's.
    let row_logits = |logits: &mut [f32], g: &[f32], i: usize| {
        for ((l, &gj), &c) in logits.iter_mut().zip(g).zip(&cost[i * n..(i + 1) * n]) {
            *l = (gj - c) / eps;
        }
    };
    let mut logits = vec![0.0f32; n];
    for _ in 0..OT_ITERS {
        for i in 0..n {
            row_logits(&mut logits, &g, i);
            f[i] = eps * (log_marginal - lse(&logits));
        }
        for j in 0..n {
            for (i, (l, &fi)) in logits.iter_mut().zip(&f).enumerate() {
                *l = (fi - cost[i * n + j]) / eps;
            }
            g[j] = eps * (log_marginal - lse(&logits));
        }
    }
    let mut partner = Vec::with_capacity(n);
    for i in 0..n {
        row_logits(&mut logits, &g, i);
        let m = logits.iter().fold(-3.0e38f32, |a, &b| a.max(b));
        let total: f32 = logits.iter().map(|l| (l - m).exp()).sum();
        let target = unit(hash4(seed, step, i as u32, stream::OT)) * total;
        let mut cum = 0.0f32;
        let mut pick = n - 1;
        for (j, l) in logits.iter().enumerate() {
            cum += (l - m).exp();
            if cum > target {
                pick = j;
                break;
            }
        }
        partner.push(pick as u32);
        write_sample(acts, layout, i as u32, x0[i], x1[pick], t[i], sigma_min, path);
    }
    Coupling { f, g, partner }
}
