//! Snapshots and divergence: the page's safety net (free of browser types; unit-tested natively).
//!
//! - Every `SNAPSHOT_EVERY_S` seconds of training one asynchronous copy of the engine's state
//!   (parameters, Adam moments, divergence flag, step: `Engine::snapshot`) comes back; only
//!   snapshots whose own flag is clear and whose values are finite are kept ("good").
//! - A divergence (the device's non-finite flag, or an exploded loss: `web::training`) pauses
//!   training with a message naming the learning rate; snapshots from at or after the bad step are
//!   dropped, and `restore_last_good` puts the newest remaining one back.
//! - A lost device is rebuilt by the page (`web::page`), which then restores the last good
//!   snapshot: at most a few seconds of steps are lost.
//!
//! Every timeline change (new run, restore, recovery, divergence) bumps `timeline`; a snapshot
//! read from an older timeline is dropped when it lands.

use crate::gpu::snapshot::Snapshot;
use std::collections::VecDeque;

/// Seconds of training between two snapshots.
pub const SNAPSHOT_EVERY_S: f64 = 2.0;
/// Good snapshots kept (newest last): a divergence detected late still finds one from before it.
pub const SNAPSHOTS_KEPT: usize = 4;

/// The good snapshots of the current run and the divergence state.
#[derive(Default)]
pub struct Snapshots {
    /// Good snapshots, oldest first (at most `SNAPSHOTS_KEPT`).
    good: VecDeque<Snapshot>,
    in_flight: bool,
    last: f64,
    timeline: u32,
    diverged: bool,
}

impl Snapshots {
    /// Starts a snapshot read (returns its timeline) when training and the last is old enough.
    pub fn due(&mut self, now: f64, training: bool, step: u32) -> Option<u32> {
        if !training || self.diverged || self.in_flight || now - self.last < SNAPSHOT_EVERY_S {
            return None;
        }
        if self.good.back().is_some_and(|s| s.step == step) {
            return None;
        }
        self.in_flight = true;
        self.last = now;
        Some(self.timeline)
    }

    /// A snapshot read came back.
    pub fn landed(&mut self, timeline: u32, result: Result<Snapshot, String>) {
        if timeline != self.timeline {
            return;
        }
        self.in_flight = false;
        if let Ok(s) = result {
            if s.is_good() {
                self.good.push_back(s);
                while self.good.len() > SNAPSHOTS_KEPT {
                    self.good.pop_front();
                }
            }
        }
    }

    /// A new run: old snapshots no longer apply.
    pub fn new_run(&mut self) {
        self.good.clear();
        self.rewound();
    }

    /// The engine was put back to a snapshot (or rebuilt): reads in flight are stale.
    pub fn rewound(&mut self) {
        self.in_flight = false;
        self.diverged = false;
        self.timeline += 1;
    }

    /// Reads in flight belong to an engine that is gone (a lost device): drop them when they land.
    pub fn drop_reads(&mut self) {
        self.in_flight = false;
        self.timeline += 1;
    }

    /// Training diverged at `step`: snapshots of weights from that step on are dropped (the
    /// weights at step S produce step S's loss). False when already known.
    pub fn diverged_at(&mut self, step: u32) -> bool {
        if self.diverged {
            return false;
        }
        self.diverged = true;
        self.good.retain(|s| s.step < step);
        self.in_flight = false;
        self.timeline += 1;
        true
    }

    pub fn diverged(&self) -> bool {
        self.diverged
    }

    pub fn last_good(&self) -> Option<&Snapshot> {
        self.good.back()
    }
}

/// What the page says when training diverged at `step` with learning rate `lr`.
pub fn divergence_message(step: u32, lr: f32, restore_step: Option<u32>) -> String {
    let restore = match restore_step {
        Some(s) => format!(", then press “Restore last good weights” (step {s}) to continue from before the divergence, or Reset"),
        None => ", then press Reset".to_string(),
    };
    format!(
        "Training diverged at step {step}: the loss blew up (not a finite number, or {}× its starting value). The learning rate ({lr}) is probably too high: lower it (the default is {}){restore}.",
        super::training::EXPLODED_FACTOR,
        crate::config::Config::default().lr
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(step: u32, good: bool) -> Snapshot {
        Snapshot { step, params: vec![if good { 1.0 } else { f32::NAN }], moments: vec![0.0, 0.0], first_bad_step: None }
    }

    #[test]
    fn keeps_good_snapshots_and_drops_those_after_a_divergence() {
        let mut s = Snapshots::default();
        for (i, step) in [10, 20, 30, 40, 50].into_iter().enumerate() {
            let t = s.due(2.0 * (i + 1) as f64, true, step).unwrap();
            s.landed(t, Ok(snap(step, true)));
        }
        assert_eq!(s.last_good().map(|x| x.step), Some(50));
        let t = s.due(20.0, true, 60).unwrap();
        s.landed(t, Ok(snap(60, false)));
        assert_eq!(s.last_good().map(|x| x.step), Some(50), "a bad snapshot is not kept");
        assert!(s.diverged_at(40));
        assert!(!s.diverged_at(45), "reported once");
        assert_eq!(s.last_good().map(|x| x.step), Some(30));
        assert_eq!(s.due(30.0, true, 70), None, "no snapshots while diverged");
        let t = {
            s.rewound();
            s.due(40.0, true, 31).unwrap()
        };
        s.new_run();
        s.landed(t, Ok(snap(31, true)));
        assert!(s.last_good().is_none(), "a snapshot of an older timeline is dropped");
        let m = divergence_message(40, 1000.0, Some(30));
        assert!(m.contains("step 40") && m.contains("learning rate (1000)") && m.contains("Restore last good weights") && !m.contains("NaN"), "{m}");
    }
}
