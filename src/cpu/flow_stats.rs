//! How straight the learned flow is; twin of `shaders/flow_stats.wgsl` and
//! `shaders/w2_minibatch.wgsl`.
//!
//! Along each particle's own trajectory from x0 (t = 0) to x1 (t = 1), with the solver's steps:
//! - kinetic energy `K = ∫_0^1 |v(x_t, t)|² dt` (each step adds `h·Σ_i b_i·|k_i|²`, the
//!   tableau's quadrature, `tableau::step_energy`);
//! - transport cost `T = |x1 - x0|²`;
//! - straightness `S = ∫_0^1 |(x1 - x0) - v(x_t, t)|² dt` (Liu et al. 2022, arXiv 2209.03003),
//!   which with the same quadrature is exactly `K - T` (the weights sum to 1 and the step's
//!   increments sum to x1 - x0), so it is accumulated in the same pass with no second
//!   integration; it is 0 exactly when every path is a straight line at constant speed;
//! - and, for the pairs the flow makes as a whole, a minibatch estimate of `W2²(source, samples)`:
//!   the mean cost of the optimal matching (`cpu::assignment`) between `m` noise points and `m`
//!   samples, over a few minibatches. `T ≥ W2²` (the flow's own pairing is one matching), with
//!   equality for an optimal-transport flow. Minibatches bias the estimate upward (each small
//!   batch matches less well than the whole distributions could).
//!
//! Reported are means over the particles.

use super::assignment::minibatch_w2;
use super::mlp::velocity;
use crate::config::Solver;
use crate::model::ModelShape;
use crate::tableau::{step_energy, V2};

/// Points per W2 minibatch (the shader's workgroup arrays hold this many).
pub const W2_BATCH: u32 = 128;
/// Minibatches per W2 estimate at most.
pub const W2_MAX_BATCHES: u32 = 64;

/// The per-particle means of one measurement.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct FlowStats {
    pub kinetic_energy: f64,
    pub transport_cost: f64,
    pub straightness: f64,
    pub w2_squared: f64,
}

/// `(m, batches)` of the W2 estimate for `n` particles.
pub fn w2_batches(n: u32) -> (u32, u32) {
    let m = n.clamp(1, W2_BATCH);
    (m, (n / m).clamp(1, W2_MAX_BATCHES))
}

/// Steps of `solver` for a measurement with `nfe`: the fixed-step solvers take `nfe` steps;
/// dopri5 (adaptive when sampling) takes `max(1, nfe/6)` fixed Dormand–Prince steps, as the
/// likelihood does.
pub fn measured_steps(solver: Solver, nfe: u32) -> u32 {
    if solver == Solver::Dopri5 { (nfe / 6).max(1) } else { nfe.max(1) }
}

/// Integrates `points` from t = 0 to 1 in `steps` steps, returning each particle's kinetic energy
/// (twin of `measured_step`).
pub fn integrate_measured(shape: &ModelShape, params: &[f32], solver: Solver, points: &mut [[f32; 2]], steps: u32) -> Vec<f32> {
    integrate_field_measured(|x, t, scratch: &mut Vec<f32>| velocity(shape, params, x, t, scratch), solver, points, steps, 2 * shape.width as usize)
}

/// As [`integrate_measured`] through any field `f(x, t, scratch)`.
pub fn integrate_field_measured(
    mut f: impl FnMut([f32; 2], f32, &mut Vec<f32>) -> [f32; 2],
    solver: Solver,
    points: &mut [[f32; 2]],
    steps: u32,
    scratch_len: usize,
) -> Vec<f32> {
    let mut scratch = vec![0.0f32; scratch_len];
    let h = 1.0 / steps as f32;
    points
        .iter_mut()
        .map(|p| {
            let mut energy = 0.0f32;
            for k in 0..steps {
                let t = super::ode::step_time(0.0, 1.0, steps, k);
                let (y, e) = step_energy(solver.tableau(), |x: V2, t| V2(f(x.0, t, &mut scratch)), V2(*p), t, h);
                *p = y.0;
                energy += e;
            }
            energy
        })
        .collect()
}

/// The means of `K`, `T`, `S = K - T` per particle and the W2² estimate, from the starting points,
/// the end points and the energies (twin of `flow_stats_reduce` + `w2_minibatch`).
pub fn summarize(x0: &[[f32; 2]], x1: &[[f32; 2]], energy: &[f32]) -> FlowStats {
    summarize_with(x0, x1, energy, true)
}

/// As [`summarize`]; without `w2` the matching is skipped and `w2_squared` is NaN (twin of
/// `GpuFlowStats::read_with`).
pub fn summarize_with(x0: &[[f32; 2]], x1: &[[f32; 2]], energy: &[f32], w2: bool) -> FlowStats {
    let n = x0.len();
    let (mut k, mut t, mut s) = (0.0f64, 0.0f64, 0.0f64);
    for i in 0..n {
        let d = super::assignment::sq_dist(x1[i], x0[i]);
        k += energy[i] as f64;
        t += d as f64;
        s += (energy[i] - d) as f64;
    }
    let (m, batches) = w2_batches(n as u32);
    let w2_squared = if w2 {
        let costs = minibatch_w2(x0, x1, m as usize, batches as usize);
        costs.iter().map(|&w| w as f64).sum::<f64>() / costs.len() as f64
    } else {
        f64::NAN
    };
    let nf = n.max(1) as f64;
    FlowStats { kinetic_energy: k / nf, transport_cost: t / nf, straightness: s / nf, w2_squared }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Stream;

    /// A rotation v = ω·(-y, x) moves x0 along a circle: K = ω²|x0|², T = 2|x0|²(1 - cos ω), so
    /// S = |x0|²(ω² - 2 + 2 cos ω), matched by RK4 to 1e-5; a constant field has S = 0.
    #[test]
    fn closed_forms() {
        let w = 1.3f32;
        let mut r = Stream::new(1, 0);
        let x0: Vec<[f32; 2]> = (0..300).map(|_| [r.normal(), r.normal()]).collect();
        let mut x1 = x0.clone();
        let e = integrate_field_measured(|x, _, _| [-w * x[1], w * x[0]], Solver::Rk4, &mut x1, 40, 0);
        let st = summarize(&x0, &x1, &e);
        let r2 = x0.iter().map(|p| (p[0] * p[0] + p[1] * p[1]) as f64).sum::<f64>() / x0.len() as f64;
        let w = w as f64;
        assert!((st.kinetic_energy - w * w * r2).abs() < 1e-4 * r2, "{st:?}");
        assert!((st.transport_cost - 2.0 * r2 * (1.0 - w.cos())).abs() < 1e-4 * r2, "{st:?}");
        assert!((st.straightness - r2 * (w * w - 2.0 + 2.0 * w.cos())).abs() < 1e-4 * r2, "{st:?}");
        assert!(st.w2_squared <= st.transport_cost + 1e-6);
        let mut x1 = x0.clone();
        let e = integrate_field_measured(|_, _, _| [0.8, -0.6], Solver::Euler, &mut x1, 7, 0);
        let st = summarize(&x0, &x1, &e);
        assert!(st.straightness.abs() < 1e-6 && (st.kinetic_energy - 1.0).abs() < 1e-5, "{st:?}");
        // A translation is an optimal map: W2² is its cost.
        assert!((st.w2_squared - 1.0).abs() < 1e-4, "{st:?}");
        // Without the matching: the same means, no W2².
        let means = summarize_with(&x0, &x1, &e, false);
        assert!(means.w2_squared.is_nan() && FlowStats { w2_squared: st.w2_squared, ..means } == st, "{means:?}");
    }
}
