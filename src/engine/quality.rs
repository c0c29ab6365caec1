//! Sample quality and the solver comparison, planned once for both engines.
//!
//! The CFM loss plateaus at a level set by the data (the variance of its conditional targets), so
//! it does not say whether the samples are good; the sliced Wasserstein-2 distance between fresh
//! samples and the target (lower is better) does. Every reading integrates `QUALITY_SAMPLES`
//! particles from the same starting draw (seed `PROBE_SEED`) through a copy of the current weights
//! (training may go on meanwhile) and compares them with the same target subsets (seed
//! `PROBE_SEED`, `DIRECTIONS` directions), so the points of a comparison differ only by the solver.
//! The GPU engine measures with `shaders/sliced_w2.wgsl`, the CPU engine with its twin
//! `metrics::sliced_w2_reading`.

use crate::config::Solver;

pub use crate::gpu::quality::QUALITY_SAMPLES;

/// Field evaluations per sample of the fixed-step solvers in the comparison (steps = nfe / evals
/// per step, skipped below one step).
pub const NFE_LEVELS: [u32; 5] = [4, 8, 16, 32, 64];
/// Tolerances of the adaptive solver in the comparison (its evaluations are what it used).
pub const DOPRI5_TOLS: [f32; 5] = [1e-1, 1e-2, 1e-3, 1e-4, 1e-5];
/// The adaptive solver's budget in the comparison (never binding at these tolerances).
pub const DOPRI5_BUDGET: u32 = 2000;
/// Seed of the probe particles and of the target subsets.
pub const PROBE_SEED: u32 = 0x51_57;
/// Projection directions of a reading.
pub const DIRECTIONS: u32 = 64;

/// Queries of a field-error reading (`Engine::field_error`): each costs a sum over every target
/// point, so fewer than the probe's particles.
pub const FIELD_ERROR_QUERIES: u32 = 64;
/// Queries per dispatch of a field-error reading: chunk i of reading r is the exact field's
/// reading `r·chunks + i` (`GpuExactField::field_error`), the same on both engines.
pub const FIELD_ERROR_CHUNK: u32 = 16;
/// FLOP per (query, target point) term of the exact field (distance, exp, weighted sums), for the
/// work budget's chunks.
pub const EXACT_TERM_FLOPS: f64 = 20.0;
/// The exact field is the Gaussian source's.
pub const NO_EXACT_FIELD: &str = "the field error needs the Gaussian source (the exact marginal field is written with its density)";

/// The exact field's arrows need it too.
pub const NO_EXACT_ARROWS: &str = "the exact field's arrows need the Gaussian source (the exact marginal field is written with its density)";

/// Whether one dispatch of the exact field over `queries` queries and `points` target points,
/// `flops` in all, fits the exact field's work cap and `profile`'s dispatch time; else why not,
/// `what` (e.g. "the field error") and `per` (what the time is for) in the message.
fn exact_dispatch_fits(profile: &crate::budget::Profile, queries: u32, points: u32, flops: f64, what: &str, per: &str) -> Result<(), String> {
    crate::gpu::exact::check_work(queries as u64, points).map_err(|e| e.to_string())?;
    let s = flops / profile.sample_flops;
    if s > profile.limits.dispatch_s {
        return Err(format!(
            "{what} needs about {} {per} over {points} target points on this device, more than the {} allowed per dispatch: use fewer target points (Target points)",
            crate::budget::fmt_seconds(s),
            crate::budget::fmt_seconds(profile.limits.dispatch_s)
        ));
    }
    Ok(())
}

/// Whether one dispatch of the exact field at `anchors` arrow anchors over `points` target
/// points (the arrows' smallest chunk is one anchor) fits; else why not.
pub fn exact_arrows_fit(profile: &crate::budget::Profile, anchors: u32, points: u32) -> Result<(), String> {
    let flops = anchors as f64 * points as f64 * EXACT_TERM_FLOPS;
    exact_dispatch_fits(profile, anchors, points, flops, "the exact field's arrows", &format!("per {anchors} anchors"))
}

/// Whether one dispatch of a field-error reading (`FIELD_ERROR_CHUNK` queries over `points`
/// target points) fits `profile`'s dispatch time and the exact field's work cap; else why not.
pub fn field_error_fits(profile: &crate::budget::Profile, points: u32, shape: &crate::model::ModelShape) -> Result<(), String> {
    let flops = FIELD_ERROR_CHUNK as f64 * (points as f64 * EXACT_TERM_FLOPS + 2.0 * shape.macs_per_sample() as f64);
    exact_dispatch_fits(profile, FIELD_ERROR_CHUNK, points, flops, "the field error", &format!("per {FIELD_ERROR_CHUNK} queries"))
}

/// One reading: which solver, its mean field evaluations per sample, the distance, and its setting
/// (steps for the fixed-step solvers, the tolerance for the adaptive one).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct QualityPoint {
    pub solver: Solver,
    pub nfe: f64,
    pub sw2: f32,
    pub setting: f64,
}

/// One planned integration of the probe particles.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Probe {
    pub solver: Solver,
    /// Steps (fixed-step solvers) or the evaluation budget (adaptive).
    pub steps: u32,
    pub tol: f32,
}

impl Probe {
    /// The reading's setting: steps, or the tolerance of the adaptive solver.
    pub fn setting(&self) -> f64 {
        if self.solver.is_adaptive() {
            self.tol as f64
        } else {
            self.steps as f64
        }
    }

    /// Field evaluations per sample of a fixed-step probe.
    pub fn fixed_nfe(&self) -> f64 {
        (self.steps * self.solver.evals_per_step()) as f64
    }
}

/// Every probe of "Compare solvers": each fixed-step solver at each of `NFE_LEVELS` evaluations
/// (where that is at least one step), then the adaptive one at each of `DOPRI5_TOLS`.
pub fn comparison_plan() -> Vec<Probe> {
    let mut plan = Vec::new();
    for &solver in Solver::ALL.iter().filter(|s| !s.is_adaptive()) {
        for nfe in NFE_LEVELS {
            let steps = nfe / solver.evals_per_step();
            if steps > 0 {
                plan.push(Probe { solver, steps, tol: crate::cpu::adaptive::DEFAULT_TOL });
            }
        }
    }
    for &solver in Solver::ALL.iter().filter(|s| s.is_adaptive()) {
        for tol in DOPRI5_TOLS {
            plan.push(Probe { solver, steps: DOPRI5_BUDGET, tol });
        }
    }
    plan
}

/// The points of `class` among `target` (labels: one per point): what a reading of that class's
/// samples is compared with. None for all classes, an unlabelled target or a class with no points.
pub fn class_points(target: &[[f32; 2]], labels: &[u32], class: Option<u32>) -> Option<Vec<[f32; 2]>> {
    let k = class?;
    if labels.len() != target.len() {
        return None;
    }
    let p: Vec<[f32; 2]> = target.iter().zip(labels).filter(|&(_, &l)| l == k).map(|(p, _)| *p).collect();
    (!p.is_empty()).then_some(p)
}

/// A reading that is not a finite number: the weights it measured had diverged.
pub const DIVERGED: &str = "training diverged: the current weights give no samples to measure (restore the last good weights or reset)";

/// `Ok(sw2)` when finite, else the divergence message.
pub fn finite(sw2: f32) -> Result<f32, String> {
    if sw2.is_finite() {
        Ok(sw2)
    } else {
        Err(DIVERGED.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The exact arrows' chunk planning (`GpuEngine::advance_exact`): one anchor over the page's
    /// dataset fits a dispatch at the CPU prior (about 2 ms), the whole 24x24 grid at once does
    /// not (about 1.3 s), and the message names the setting to lower.
    #[test]
    fn exact_arrows_fit_per_anchor_not_per_grid() {
        let p = crate::budget::Profile::cpu();
        let points = crate::engine::flow::DATA_POINTS as u32;
        assert!(exact_arrows_fit(&p, 1, points).is_ok());
        let e = exact_arrows_fit(&p, 576, points).unwrap_err();
        assert!(e.contains("exact field's arrows") && e.contains("Target points") && e.contains("576 anchors"), "{e}");
    }

    #[test]
    fn the_plan_covers_every_solver() {
        let plan = comparison_plan();
        assert_eq!(plan.len(), 5 + 5 + 5 + 5);
        for &s in Solver::ALL {
            assert!(plan.iter().any(|p| p.solver == s), "{s} missing");
        }
        assert!(plan.iter().filter(|p| !p.solver.is_adaptive()).all(|p| NFE_LEVELS.contains(&(p.fixed_nfe() as u32))));
    }
}
