//! Minibatch optimal-transport coupling (OT-CFM); twin of `shaders/ot_coupling.wgsl`.
//!
//! Draws x0, t and x1 exactly as [`super::batch::build_batch`], then pairs each x0_i with an x1_j
//! drawn from row i of the entropic OT plan between the two sets (squared Euclidean cost
//! C_ij = ‖x0_i - x1_j‖², ε = `OT_EPS`·mean cost, uniform marginals 1/B, log-domain Sinkhorn).
//! Pairing noise with nearby data straightens the learned flow, so few solver steps suffice.
//!
//! Sinkhorn (plan π_ij = exp((f_i + g_j - C_ij)/ε)): iteration `it` = 0, 1, … , `OT_ITERS` - 1
//! is an f (row) update then a g (column) update,
//!   f_i ← -ε·log B - ε·LSE_j((g_j - C_ij)/ε),   g_j ← -ε·log B - ε·LSE_i((f_i - C_ij)/ε)
//! (each LSE shifted by its maximum). The stop test: at every iteration `it` > 0 with
//! `it % OT_CHECK_EVERY == 0`, before its f update, the row marginal error of the current plan
//!   err = max_i |B·Σ_j exp((f_i + g_j - C_ij)·(1/ε)) - 1|
//! (the sum in index order, the shader's arithmetic) is measured; the f update still runs, and if
//! err ≤ `OT_TOL` the iterations stop there (no g update). At the stop the rows carry mass 1/B
//! exactly and every column is within a factor 1 ± err of it. The pairing depends on g only.
//! The GPU measures the same err in its row pass (the sum it needs for the f update) and stops
//! after the same iteration; its values differ by rounding only.

use super::batch::{draw_x0, draw_x1, write_sample};
use super::time::TimeDist;
use crate::config::{self, Path};
use crate::model::ActivationLayout;
use crate::rng::{hash4, stream, unit};
use crate::spec::TrainSpec;

pub const OT_EPS: f32 = 0.05;
/// Most Sinkhorn iterations per step (the work budget assumes all of them).
pub const OT_ITERS: u32 = 100;
/// Sinkhorn measures its row marginal error every this many iterations (see the module comment).
pub const OT_CHECK_EVERY: u32 = 5;
/// Sinkhorn stops once the row marginal error max_i |B·row mass_i - 1| is at most this.
/// Chosen by measurement (`examples/ot_convergence.rs`, docs/BENCHMARKS.md "OT coupling"): over
/// 48 batches of 256 (moons, 8gaussians, checkerboard, spirals; 3 seeds; 4 training steps) it
/// stops after 48 iterations on average (at most 81), and the pairing differs from the
/// 100-iteration one in 1.25 rows of 256 on average (0.5%), at most 5 (2%).
pub const OT_TOL: f32 = 1e-3;
/// Largest batch of the OT coupling (its plan is B × B; the GPU passes read the other side as a
/// uniform array of this many points).
pub const OT_MAX_BATCH: u32 = 1024;
/// The value of the "last measured error" before any check (scratch slot, see the shader).
pub const OT_ERR_NONE: f32 = 3.0e38;

/// The result besides the batch itself: the Sinkhorn potentials, the chosen partner of each x0,
/// the Sinkhorn iterations run (f updates) and the last measured row marginal error
/// (`OT_ERR_NONE` when no check ran).
pub struct Coupling {
    pub f: Vec<f32>,
    pub g: Vec<f32>,
    pub partner: Vec<u32>,
    pub iters: u32,
    pub err: f32,
}

/// One step's OT problem: the draws, the cost matrix and ε.
pub struct OtProblem {
    pub n: usize,
    pub x0: Vec<[f32; 2]>,
    pub x1: Vec<[f32; 2]>,
    pub t: Vec<f32>,
    /// C_ij at `i * n + j` (the same f32 operations as the shader's `sq`: dx·dx + dy·dy).
    pub cost: Vec<f32>,
    pub eps: f32,
}

/// The mean of the B² squared distances |x0_i - x1_j|², from O(B) sums as the shader's `ot_draw`
/// takes it: mean|x0|² + mean|x1|² - 2·mean(x0)·mean(x1).
pub fn mean_cost(x0: &[[f32; 2]], x1: &[[f32; 2]]) -> f32 {
    let n = x0.len().max(1) as f32;
    let (mut sq, mut m) = (0.0f32, [0.0f32; 4]);
    for (a, b) in x0.iter().zip(x1) {
        sq += (a[0] * a[0] + a[1] * a[1]) + (b[0] * b[0] + b[1] * b[1]);
        m = [m[0] + a[0], m[1] + a[1], m[2] + b[0], m[3] + b[1]];
    }
    let m = m.map(|v| v / n);
    sq / n - 2.0 * (m[0] * m[2] + m[1] * m[3])
}

/// Step `step`'s draws for an OT batch of `x0.len()`: x0_i, x1_i and t_i exactly as
/// [`super::batch::build_batch`] draws them (both CPU Sinkhorns fill their buffers with this).
#[allow(clippy::too_many_arguments)]
pub fn draw_sides(x0: &mut [[f32; 2]], x1: &mut [[f32; 2]], t: &mut [f32], data: &[[f32; 2]], seed: u32, step: u32, source: &[[f32; 2]], time: &TimeDist) {
    for (i, ((a, b), ti)) in x0.iter_mut().zip(x1.iter_mut()).zip(t.iter_mut()).enumerate() {
        *a = draw_x0(seed, step, i as u32, source);
        *b = draw_x1(seed, step, i as u32, data);
        *ti = time.draw(seed, step, i as u32);
    }
}

/// ε = `OT_EPS`·mean cost of the draws (at least 1e-12).
pub fn epsilon(x0: &[[f32; 2]], x1: &[[f32; 2]]) -> f32 {
    (OT_EPS * mean_cost(x0, x1)).max(1e-12)
}

/// Row `i`'s partner by inverse CDF over the row's nonnegative `weights` (summed in index order)
/// with u = unit(hash4(seed, step, i, OT)): the first j whose running sum exceeds u·total (the
/// last index if rounding leaves none).
pub fn pick_partner(weights: &[f32], seed: u32, step: u32, i: u32) -> u32 {
    let total: f32 = weights.iter().sum();
    let target = unit(hash4(seed, step, i, stream::OT)) * total;
    let mut cum = 0.0f32;
    for (j, &w) in weights.iter().enumerate() {
        cum += w;
        if cum > target {
            return j as u32;
        }
    }
    weights.len().saturating_sub(1) as u32
}

impl OtProblem {
    pub fn new(n: usize, data: &[[f32; 2]], seed: u32, step: u32, source: &[[f32; 2]], time: &TimeDist) -> Self {
        let (mut x0, mut x1, mut t) = (vec![[0.0f32; 2]; n], vec![[0.0f32; 2]; n], vec![0.0f32; n]);
        draw_sides(&mut x0, &mut x1, &mut t, data, seed, step, source, time);
        let cost: Vec<f32> = (0..n * n)
            .map(|k| {
                let (i, j) = (k / n, k % n);
                let (dx, dy) = (x0[i][0] - x1[j][0], x0[i][1] - x1[j][1]);
                dx * dx + dy * dy
            })
            .collect();
        let eps = epsilon(&x0, &x1);
        OtProblem { n, x0, x1, t, cost, eps }
    }

    /// Row i's logits (g_j - C_ij)/ε into `logits`: the f update's and the pairing's.
    fn row_logits(&self, logits: &mut [f32], g: &[f32], i: usize) {
        let n = self.n;
        for ((l, &gj), &c) in logits.iter_mut().zip(g).zip(&self.cost[i * n..(i + 1) * n]) {
            *l = (gj - c) / self.eps;
        }
    }

    /// The f (row) update.
    pub fn update_f(&self, f: &mut [f32], g: &[f32]) {
        let mut logits = vec![0.0f32; self.n];
        let log_marginal = -(self.n as f32).ln();
        for (i, fi) in f.iter_mut().enumerate() {
            self.row_logits(&mut logits, g, i);
            *fi = self.eps * (log_marginal - lse(&logits));
        }
    }

    /// The g (column) update.
    pub fn update_g(&self, f: &[f32], g: &mut [f32]) {
        let n = self.n;
        let mut logits = vec![0.0f32; n];
        let log_marginal = -(n as f32).ln();
        for (j, gj) in g.iter_mut().enumerate() {
            for (i, (l, &fi)) in logits.iter_mut().zip(f).enumerate() {
                *l = (fi - self.cost[i * n + j]) / self.eps;
            }
            *gj = self.eps * (log_marginal - lse(&logits));
        }
    }

    /// Each row's marginal error in the plan (f, g): |B·Σ_j exp((f_i + g_j - C_ij)·(1/ε)) - 1| (the
    /// shader's operations: the sum in index order, multiplied by the reciprocal of ε).
    pub fn row_errors(&self, f: &[f32], g: &[f32]) -> Vec<f32> {
        let n = self.n;
        let inv_eps = 1.0 / self.eps;
        f.iter()
            .enumerate()
            .map(|(i, &fi)| {
                let mut s = 0.0f32;
                for (&gj, &c) in g.iter().zip(&self.cost[i * n..(i + 1) * n]) {
                    s += ((fi + gj - c) * inv_eps).exp();
                }
                (n as f32 * s - 1.0).abs()
            })
            .collect()
    }

    /// The stop test's error: the largest of [`OtProblem::row_errors`].
    pub fn row_error(&self, f: &[f32], g: &[f32]) -> f32 {
        self.row_errors(f, g).into_iter().fold(0.0f32, f32::max)
    }

    /// Sinkhorn from f = g = 0 with the stop test (module comment): (f, g, iterations, last error).
    pub fn sinkhorn(&self) -> (Vec<f32>, Vec<f32>, u32, f32) {
        let (mut f, mut g) = (vec![0.0f32; self.n], vec![0.0f32; self.n]);
        let mut err = OT_ERR_NONE;
        for it in 0..OT_ITERS {
            let check = it > 0 && it % OT_CHECK_EVERY == 0;
            if check {
                err = self.row_error(&f, &g);
            }
            self.update_f(&mut f, &g);
            if check && err <= OT_TOL {
                return (f, g, it + 1, err);
            }
            self.update_g(&f, &mut g);
        }
        (f, g, OT_ITERS, err)
    }

    /// Each row's partner: a draw from row i of the plan, π_i· / Σ_j π_ij (depends on g only), by
    /// inverse CDF with u = unit(hash4(seed, step, i, OT)).
    pub fn pair(&self, g: &[f32], seed: u32, step: u32) -> Vec<u32> {
        let n = self.n;
        let mut logits = vec![0.0f32; n];
        (0..n)
            .map(|i| {
                self.row_logits(&mut logits, g, i);
                let m = logits.iter().fold(-3.0e38f32, |a, &b| a.max(b));
                for l in logits.iter_mut() {
                    *l = (*l - m).exp();
                }
                pick_partner(&logits, seed, step, i as u32)
            })
            .collect()
    }
}

/// log Σ exp(v), shifted by the maximum (max-fold, then the sum in index order: the shader's).
fn lse(v: &[f32]) -> f32 {
    let m = v.iter().fold(-3.0e38f32, |a, &b| a.max(b));
    m + v.iter().map(|x| (x - m).exp()).sum::<f32>().ln()
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
    let p = OtProblem::new(layout.batch as usize, data, seed, step, source, time);
    let (f, g, iters, err) = p.sinkhorn();
    let partner = p.pair(&g, seed, step);
    for (i, &j) in partner.iter().enumerate() {
        write_sample(acts, layout, i as u32, p.x0[i], p.x1[j as usize], p.t[i], sigma_min, path);
    }
    Coupling { f, g, partner, iters, err }
}

#[cfg(test)]
mod tests {
    use super::mean_cost;

    /// The O(B) mean equals the mean over all B² pairs (in f64) to f32 rounding, also for a batch
    /// far from the origin (the cancellation case).
    #[test]
    fn mean_cost_is_the_mean_over_all_pairs() {
        for (shift, n) in [(0.0f32, 256usize), (20.0, 256), (0.0, 7)] {
            let pt = |i: usize, s: u32| {
                let u = |k: u32| crate::rng::unit(crate::rng::hash4(3, s, i as u32, k)) * 4.0 - 2.0;
                [u(0) + shift, u(1) - shift]
            };
            let x0: Vec<[f32; 2]> = (0..n).map(|i| pt(i, 0)).collect();
            let x1: Vec<[f32; 2]> = (0..n).map(|i| pt(i, 1)).collect();
            let mut exact = 0.0f64;
            for a in &x0 {
                for b in &x1 {
                    exact += ((a[0] - b[0]) as f64).powi(2) + ((a[1] - b[1]) as f64).powi(2);
                }
            }
            exact /= (n * n) as f64;
            let got = mean_cost(&x0, &x1) as f64;
            // |x|² reaches ~800 at shift 20 while the mean cost is ~2.7: f32 rounding of the sums
            // (~1e-7 relative of 800 per term) bounds the error well below 1e-3 of the mean.
            assert!((got - exact).abs() <= 1e-3 * exact, "shift {shift}, n {n}: {got} vs {exact}");
        }
    }
}
