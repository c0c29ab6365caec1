//! What both engines share about the shown flow: the training data of a configuration, how many
//! trajectory steps fit the budget, and how often the shown flow is integrated again.

use crate::config::{Config, OnOff, Source};
use crate::targets::{sample_dataset, sample_dataset_labeled};

/// Most training points of a standard dataset on the page (2^17, the command line's default
/// `points`: the page on a real GPU trains exactly the command line's configuration; generated
/// and uploaded in a few ms).
pub const DATA_POINTS: usize = 1 << 17;
/// Training points of a standard dataset on software adapters and the CPU backend (2^15: the
/// exact field's layers and readings, O(points) per evaluation, stay 4× cheaper there).
pub const SMALL_DATA_POINTS: u32 = 1 << 15;
/// Arrows per side of the velocity grid.
pub const ARROW_GRID: u32 = 24;
/// Bytes the trajectory buffer may take; longer integrations are shown with fewer steps.
pub const TRAJ_BUDGET: u64 = 96 << 20;
/// Target points drawn faintly on software adapters and the CPU backend (more on real GPUs).
pub const TARGET_DRAWN_SOFTWARE: u32 = 2500;
pub const TARGET_DRAWN: u32 = 8000;

/// Target points of a standard dataset for `c`: its `points` setting, at most [`DATA_POINTS`]
/// (the page's default; fewer show the exact field memorising them).
pub fn data_points(c: &Config) -> usize {
    (c.points as usize).clamp(1, DATA_POINTS)
}

/// The training data for a config: the target and, if the source is a dataset, its points.
pub fn training_data(c: &Config) -> (Vec<[f32; 2]>, Vec<[f32; 2]>) {
    let data = sample_dataset(c.dataset, data_points(c), c.seed);
    let source = match c.source {
        Source::Gaussian => Vec::new(),
        Source::Dataset(d) => sample_dataset(d, DATA_POINTS, c.seed ^ 0x5eed),
    };
    (data, source)
}

/// The class label of each of [`training_data`]'s target points for a class-conditional
/// config (the same points: `sample_dataset` is the labelled draw's points), else empty.
pub fn training_labels(c: &Config) -> Vec<u32> {
    if c.conditional == OnOff::On { sample_dataset_labeled(c.dataset, data_points(c), c.seed).1 } else { Vec::new() }
}

/// Trajectory steps recorded for `nfe` steps of `n` particles within the buffer budget.
pub fn traj_steps(nfe: u32, n: u32, max_binding: u64) -> u32 {
    let rows = (TRAJ_BUDGET.min(max_binding) / (n.max(1) as u64 * 8)).saturating_sub(1);
    nfe.min(rows.min(u32::MAX as u64) as u32).max(1)
}

/// Seconds between two runs of a piece of drawing work costing `flops`, so that it takes about
/// `share` of a device that does `flops_per_s` (measured from training where possible), within
/// `[min_s, max_s]`. Drawing must never crowd out training: on a slow software adapter a refresh of
/// the shown flow can cost as much as a dozen training steps.
pub fn work_interval(flops: f64, flops_per_s: f64, share: f64, min_s: f64, max_s: f64) -> f64 {
    (flops / (share * flops_per_s.max(1e6))).clamp(min_s, max_s)
}

/// Seconds between re-integrations of the shown trajectories: a fifth of the device's time at
/// most, 0.3 s to 30 s.
pub fn refresh_interval(particles: u32, steps: u32, evals_per_step: u32, macs_per_eval: u64, flops_per_s: f64) -> f64 {
    let flops = particles as f64 * steps as f64 * evals_per_step as f64 * macs_per_eval as f64 * 2.0;
    work_interval(flops, flops_per_s, 0.2, 0.3, 30.0)
}

/// Seconds between heat-map recomputations (log p on the grid: `cells` points, `steps` midpoint
/// steps backwards, the forward-mode network costing three forward passes): a tenth of the
/// device's time at most, `min_s` to 60 s.
pub fn heat_interval(cells: u32, steps: u32, macs_per_eval: u64, flops_per_s: f64, min_s: f64) -> f64 {
    let flops = cells as f64 * steps as f64 * 2.0 * 3.0 * macs_per_eval as f64 * 2.0;
    work_interval(flops, flops_per_s, 0.1, min_s, 60.0)
}

/// Floating-point operations of one training step (forward + backward ≈ 3 × forward MACs × 2).
pub fn train_flops(batch: u32, macs_per_sample: u64) -> f64 {
    6.0 * batch as f64 * macs_per_sample as f64
}

/// When the shown flow should be integrated again: never while frozen; at once when nothing is
/// shown; else when the model moved on, the refresh interval passed and the flow's loop just
/// restarted (a good moment to show the newest model), or 1.5 intervals passed. Refreshes are
/// thus never closer than the interval, which keeps the integration to its share of the device
/// (refreshing at half the interval on a loop restart, as before, let it take up to twice its
/// share: 18% of SwiftShader for a 10% share, measured with `bench/run-page.sh`).
pub fn integrate_due(frozen: bool, shown: Option<u32>, step: u32, wrapped: bool, since_last_s: f64, refresh_s: f64) -> bool {
    if frozen {
        return false;
    }
    match shown {
        None => true,
        Some(s) => s != step && since_last_s >= refresh_s && (wrapped || since_last_s >= 1.5 * refresh_s),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn training_data_follows_the_points_setting_up_to_the_cap() {
        let c = Config { points: 7, conditional: OnOff::On, ..Config::default() };
        let (data, source) = training_data(&c);
        assert_eq!((data.len(), source.len(), training_labels(&c).len()), (7, 0, 7));
        assert_eq!(training_data(&Config::default()).0.len(), DATA_POINTS, "the command line's default is the page's cap");
        assert_eq!(crate::web::pacing::page_config(crate::web::pacing::Runs::Gpu).points, Config::default().points, "a real GPU's page trains the command line's pool");
        assert_eq!(crate::web::pacing::page_config(crate::web::pacing::Runs::Software).points, SMALL_DATA_POINTS);
        assert_eq!(crate::web::pacing::page_config(crate::web::pacing::Runs::Cpu).points, SMALL_DATA_POINTS);
        assert_eq!(training_data(&Config { points: 1 << 20, ..Config::default() }).0.len(), DATA_POINTS, "capped");
        assert!(crate::config::field("points").unwrap().help.contains(&DATA_POINTS.to_string()), "the field's help names the page's cap");
    }

    #[test]
    fn refresh_follows_cost_and_integration_waits_for_news() {
        let cheap = refresh_interval(100, 10, 1, 100, 1e9);
        let dear = refresh_interval(100_000, 100, 4, 10_000, 1e9);
        assert_eq!((cheap, dear), (0.3, 30.0));
        // 800 particles × 16 steps of the S model on a device training S at 4 steps/s (52 MFLOP/s):
        // the shown flow is refreshed every ~21 s, a fifth of the device's time.
        let s = refresh_interval(800, 16, 1, 8576, 4.0 * train_flops(256, 8576));
        assert!((20.0..22.0).contains(&s), "{s}");
        assert!(heat_interval(4096, 8, 8576, 1e9, 0.5) > 8.0, "the heat map of S costs 3.4 GFLOP");
        assert!(integrate_due(false, None, 0, false, 0.0, 1.0));
        assert!(!integrate_due(true, None, 0, false, 9.0, 1.0));
        assert!(!integrate_due(false, Some(5), 5, true, 9.0, 1.0), "same weights: nothing new to show");
        assert!(integrate_due(false, Some(5), 6, true, 1.0, 1.0), "a loop restart after the interval");
        assert!(!integrate_due(false, Some(5), 6, true, 0.9, 1.0), "a loop restart does not beat the budget");
        assert!(!integrate_due(false, Some(5), 6, false, 1.2, 1.0), "between loop restarts, up to 1.5 intervals");
        assert!(integrate_due(false, Some(5), 6, false, 1.5, 1.0));
        assert_eq!(traj_steps(100, 1000, 1 << 30), 100);
        assert_eq!(traj_steps(100, 1 << 20, 1 << 30), 11);
    }
}
