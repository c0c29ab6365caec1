//! What both engines share about the "exact flow" layer (`exactflow`): the shown particles'
//! starting points carried from t = 0 to 1 by the exact marginal field of the training points
//! (`cpu::exact`, `shaders/exact_field.wgsl`) instead of the network, with the page's solver and
//! steps. With few target points the flow *memorises*: every particle lands on a training point
//! (Bertrand et al. 2025, "On the closed-form of flow matching", arXiv 2506.03719), which the
//! network, trained on the same points, does not do. The engines integrate it a chunk at a time
//! (GPU: particle chunks of the work budget; CPU: a time slice per frame); it depends only on
//! the target points, the path and the starting draw, never on the weights, so it is computed
//! once per configuration.

/// A particle "landed" when a training point is at most this far (data units; the canvas shows
/// about ±3, so this is well under a pixel).
pub const LANDED_DISTANCE: f32 = 0.01;

/// Nearest-point searches (particles × target points) the landed count may take; above it the
/// count is not made (with many target points every sample is near one anyway).
pub const LANDED_WORK: u64 = 1 << 24;

/// Device work of one solver stage of one particle, in FLOP-equivalents for the work budget: a
/// term per target point (`quality::EXACT_TERM_FLOPS`), plus, above
/// `gpu::exact::EXACT_SERIAL_MAX` points, the workgroup's merge of its 64 partial sums (six
/// rounds of barriers): SwiftShader took about 0.9 ms per particle-step for it with 16 points
/// (2026-12-03), 2.7e5 FLOP at the software prior of 0.3 GFLOP/s, which the terms alone
/// estimated at 1 µs.
pub fn stage_flops(points: u32) -> f64 {
    let merge = if points > crate::gpu::exact::EXACT_SERIAL_MAX { 3e5 } else { 0.0 };
    points as f64 * super::quality::EXACT_TERM_FLOPS + merge
}

/// Bytes the exact flow's recorded trajectories may take (a second copy of the shown flow's, which
/// the shown flow's own budget, `flow::TRAJ_BUDGET`, does not count).
pub const TRAJ_BYTES: u64 = 32 << 20;

/// Whether the exact flow of `particles` particles recorded over `steps` steps fits
/// [`TRAJ_BYTES`]; else a message naming the largest particle count that fits.
pub fn fits(particles: u32, steps: u32) -> Result<(), String> {
    let per_particle = (steps as u64 + 1) * 8;
    let bytes = particles as u64 * per_particle;
    if bytes <= TRAJ_BYTES {
        return Ok(());
    }
    Err(format!(
        "its trajectories would take {:.0} MiB ({particles} particles × {} states), at most {} MiB: use at most {} particles (Particles) or fewer steps",
        bytes as f64 / (1 << 20) as f64,
        steps + 1,
        TRAJ_BYTES >> 20,
        TRAJ_BYTES / per_particle
    ))
}

/// The exact flow as the page shows it (`state().exactFlow`).
#[derive(Clone, Debug, PartialEq)]
pub struct ExactFlowState {
    /// Particles carried (the shown flow's count) and target points averaged over.
    pub particles: u32,
    pub points: u32,
    /// Solver steps in all and done so far (done = steps: drawn).
    pub steps: u32,
    pub steps_done: u32,
    /// Particles within [`LANDED_DISTANCE`] of a training point, and distinct training points
    /// hit, once the flow is done and the count fits [`LANDED_WORK`].
    pub landed: Option<(u32, u32)>,
    /// Why it is not drawn (a dataset source; one particle's step over the dispatch limit).
    pub note: Option<String>,
}

impl ExactFlowState {
    /// A flow under way (or done, `steps_done = steps`), with its landed count once made.
    pub fn progress(particles: u32, points: u32, steps: u32, steps_done: u32, landed: Option<(u32, u32)>) -> Self {
        ExactFlowState { particles, points, steps, steps_done: steps_done.min(steps), landed, note: None }
    }

    /// Not drawn, because of `note`.
    pub fn refused(note: String) -> Self {
        ExactFlowState { particles: 0, points: 0, steps: 0, steps_done: 0, landed: None, note: Some(note) }
    }
}

/// The exact flow needs the Gaussian source: the field's weights are its density.
pub const NO_EXACT_FLOW: &str = "the exact flow needs the Gaussian source (the exact marginal field is written with its density)";

/// `(landed, distinct points hit)` of the end positions `end` against the training points
/// `data` (None above [`LANDED_WORK`]). Non-finite positions never land.
pub fn landed(end: &[[f32; 2]], data: &[[f32; 2]]) -> Option<(u32, u32)> {
    if (end.len() as u64).saturating_mul(data.len() as u64) > LANDED_WORK || data.is_empty() {
        return None;
    }
    let mut hit = vec![false; data.len()];
    let mut count = 0;
    for p in end {
        let nearest = data.iter().enumerate().map(|(j, q)| ((p[0] - q[0]).powi(2) + (p[1] - q[1]).powi(2), j)).min_by(|a, b| a.0.total_cmp(&b.0));
        if let Some((d2, j)) = nearest {
            if d2 <= LANDED_DISTANCE * LANDED_DISTANCE {
                count += 1;
                hit[j] = true;
            }
        }
    }
    Some((count, hit.iter().filter(|&&h| h).count() as u32))
}

/// Per-frame caption of the layer, e.g. "Exact flow: 797 of 800 particles landed on one of the
/// 16 training points (15 of them hit)".
pub fn caption(s: &ExactFlowState) -> String {
    if let Some(note) = &s.note {
        return format!("Exact flow not drawn: {note}.");
    }
    if s.steps_done < s.steps {
        return format!("Exact flow: integrating over {} target points, step {} of {}…", s.points, s.steps_done, s.steps);
    }
    match s.landed {
        Some((n, hit)) => format!(
            "Exact flow (orange): {n} of {} particles landed within {LANDED_DISTANCE} of a training point, on {hit} of the {} points: the exact field memorises its training set; the network generalises.",
            s.particles, s.points
        ),
        None => format!("Exact flow (orange): the {} particles carried by the exact field of {} target points.", s.particles, s.points),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn landed_counts_particles_and_points() {
        let data = [[0.0, 0.0], [1.0, 0.0], [5.0, 5.0]];
        let end = [[0.0, 0.005], [1.0, 0.0], [1.002, 0.0], [0.5, 0.5], [f32::NAN, 0.0]];
        assert_eq!(landed(&end, &data), Some((3, 2)));
        assert_eq!(landed(&end, &[]), None);
        let many = vec![[0.0f32; 2]; 1 << 13];
        assert_eq!(landed(&many, &many), None, "2^26 searches are over the budget");
    }

    #[test]
    fn captions_say_what_is_happening() {
        let s = ExactFlowState { particles: 800, points: 16, steps: 16, steps_done: 4, landed: None, note: None };
        assert!(caption(&s).contains("step 4 of 16"), "{}", caption(&s));
        let s = ExactFlowState { steps_done: 16, landed: Some((797, 15)), ..s };
        assert!(caption(&s).contains("797 of 800") && caption(&s).contains("15 of the 16"), "{}", caption(&s));
        assert!(caption(&ExactFlowState::refused(NO_EXACT_FLOW.into())).starts_with("Exact flow not drawn: the exact flow needs"));
    }

    #[test]
    fn trajectories_are_budgeted() {
        assert!(fits(16384, 64).is_ok(), "the page's hardware default (8.5 MiB)");
        let e = fits(200_000, 2000).unwrap_err();
        assert!(e.contains("at most 2096 particles (Particles)"), "{e}");
        assert!(fits(2096, 2000).is_ok() && fits(2097, 2000).is_err());
    }
}
