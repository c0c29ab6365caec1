//! Snapshots and divergence: the page's safety net (free of browser types; unit-tested natively).
//!
//! - Every `SNAPSHOT_EVERY_S` seconds of training one asynchronous copy of the engine's state
//!   (parameters, Adam moments, divergence flag, step: `Engine::snapshot`) comes back; only
//!   snapshots whose own flag is clear and whose values are finite are kept ("good").
//! - A divergence (the device's non-finite flag, or an exploded loss: `web::training`) pauses
//!   training with a message naming the learning rate; snapshots from at or after the bad step are
//!   dropped, and `restore_last_good` puts the newest remaining one back.
//! - A lost device is rebuilt by the page (`web::page`), which then restores the last good
//!   snapshot: at most a few seconds of steps are lost. A snapshot is also kept right after a
//!   model is loaded (the file's own state: no readback) and requested when training pauses or the
//!   target changes, so a paused page loses nothing. `RecoveryPlan` caps the retries: at most
//!   `OPEN_ATTEMPTS` tries to open a new device per loss (backoff `backoff_ms`), and at most
//!   `LOSSES_IN_ROW - 1` rebuilds in a row (a loss before the rebuilt device produced a new good
//!   snapshot is "in a row"); past either cap the page continues on the CPU backend from the last
//!   snapshot (or, when the CPU's budget refuses the settings, says so and keeps Save working).
//!
//! Every timeline change (new run, restore, recovery, divergence) bumps `timeline`; a snapshot
//! read from an older timeline is dropped when it lands.
//!
//! GPU errors (`gpu_fault_message`): an allocation the device could not make or a command it
//! refused, while building a model (the page then keeps the model it had) or at any other time
//! (training pauses), each said once, with what to do.

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
    /// A snapshot was asked for (pause, new target): taken at the next frame, training or not.
    requested: bool,
    /// Good snapshots kept so far (progress marks for `RecoveryPlan`).
    kept: u64,
}

impl Snapshots {
    /// Starts a snapshot read (returns its timeline) when training and the last is old enough.
    /// (or one was requested).
    pub fn due(&mut self, now: f64, training: bool, step: u32) -> Option<u32> {
        let asked = self.requested && !self.diverged;
        if !asked && (!training || self.diverged || now - self.last < SNAPSHOT_EVERY_S) {
            return None;
        }
        if self.in_flight {
            return None;
        }
        self.requested = false;
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
                self.keep(s);
            }
        }
    }

    /// Keeps `s` (known good: a loaded model's own state) as the newest snapshot.
    pub fn keep(&mut self, s: Snapshot) {
        self.good.retain(|g| g.step < s.step);
        self.good.push_back(s);
        self.kept += 1;
        while self.good.len() > SNAPSHOTS_KEPT {
            self.good.pop_front();
        }
    }

    /// Hands over the good snapshots (kept by a build that may still be reverted; a new run
    /// starts without them).
    pub fn take_good(&mut self) -> VecDeque<Snapshot> {
        std::mem::take(&mut self.good)
    }

    /// Back to `good` (a reverted build: the model they are of is back); reads in flight are stale.
    pub fn put_back(&mut self, good: VecDeque<Snapshot>) {
        self.good = good;
        self.rewound();
    }

    /// Takes a snapshot at the next frame even while paused (after a pause or a target change).
    pub fn request(&mut self) {
        self.requested = true;
    }

    /// Good snapshots kept so far (grows with every one; a progress mark).
    pub fn kept(&self) -> u64 {
        self.kept
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
        self.requested = false;
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

/// Tries to open a new device after one loss before giving up on the GPU.
pub const OPEN_ATTEMPTS: u32 = 3;
/// The loss that gives up on the GPU when the rebuilt devices keep being lost: the third loss in a
/// row (each before the rebuilt device produced a new good snapshot) goes to the CPU.
pub const LOSSES_IN_ROW: u32 = 3;

/// Milliseconds to wait after failed attempt `attempt` (1-based) to open a device: 250, 500, 1000.
pub fn backoff_ms(attempt: u32) -> u32 {
    250 << attempt.clamp(1, 5).saturating_sub(1)
}

/// What recovery does next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Next {
    /// Try to open a new device (after waiting this many milliseconds).
    Open(u32),
    /// Stop trying the GPU: continue on the CPU backend (why: `GiveUp`).
    Cpu(GiveUp),
}

/// Why recovery gave up on the GPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GiveUp {
    /// `LOSSES_IN_ROW` losses in a row.
    LostInRow(u32),
    /// `OPEN_ATTEMPTS` tries to open a device failed.
    NoDevice(u32),
}

impl GiveUp {
    /// The first half of the page's message.
    pub fn describe(self) -> String {
        match self {
            GiveUp::LostInRow(n) => format!("the GPU device was lost {n} times in a row"),
            GiveUp::NoDevice(n) => format!("the GPU device was lost and {n} tries to open a new one failed"),
        }
    }
}

/// The retry cap of device-loss recovery (free of browser types; unit-tested).
#[derive(Default, Debug)]
pub struct RecoveryPlan {
    /// Losses in a row so far.
    in_row: u32,
    /// Failed tries to open a device for the current loss.
    attempts: u32,
    /// `Snapshots::kept` when the last recovery finished (None: none yet).
    mark: Option<u64>,
}

impl RecoveryPlan {
    /// A device was lost; `kept`: `Snapshots::kept` now. Open a device at once, or give up.
    pub fn lost(&mut self, kept: u64) -> Next {
        self.in_row = if self.mark == Some(kept) { self.in_row + 1 } else { 1 };
        self.attempts = 0;
        if self.in_row >= LOSSES_IN_ROW {
            Next::Cpu(GiveUp::LostInRow(self.in_row))
        } else {
            Next::Open(0)
        }
    }

    /// Opening a device failed: wait and try again, or give up.
    pub fn open_failed(&mut self) -> Next {
        self.attempts += 1;
        if self.attempts >= OPEN_ATTEMPTS {
            Next::Cpu(GiveUp::NoDevice(self.attempts))
        } else {
            Next::Open(backoff_ms(self.attempts))
        }
    }

    /// A new device runs the model; `kept`: `Snapshots::kept` now.
    pub fn recovered(&mut self, kept: u64) {
        self.attempts = 0;
        self.mark = Some(kept);
    }

    /// Losses in a row so far and the failed tries for the current one (the page's message).
    pub fn counts(&self) -> (u32, u32) {
        (self.in_row, self.attempts)
    }
}

/// What the page says when recovery gave up on the GPU: `cpu` is Ok on the CPU backend, or why
/// the CPU cannot run these settings; `step`: the snapshot the run continues from.
pub fn gave_up_message(why: GiveUp, cpu: Result<(), String>, step: Option<u32>) -> String {
    let from = match step {
        Some(s) => format!("from the last snapshot (step {s})"),
        None => "from the initial weights (no snapshot had been taken yet)".to_string(),
    };
    match cpu {
        Ok(()) => format!("{}: the model continues on the CPU backend {from} (slower, same maths). Reload the page to try WebGPU again.", why.describe()),
        Err(e) => format!(
            "{}, and these settings cannot run on the CPU backend ({e}). Save still writes the last snapshot{}; reload the page to try WebGPU again.",
            why.describe(),
            step.map(|s| format!(" (step {s})")).unwrap_or_default()
        ),
    }
}

/// What became of the model after a GPU error (`gpu_fault_message`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AfterFault {
    /// The build failed; the model (and samples) from before it are back.
    Kept,
    /// The build failed with nothing to go back to: the page started again with its defaults.
    Defaults,
    /// Not a build: training is paused, the model stays.
    Paused,
}

/// Device messages are cut to this many characters.
const FAULT_DETAIL_CHARS: usize = 300;

/// What the page says about a GPU error: `kind` and the device's own `detail`, `built` what was
/// being built ("a 1024×8 model (batch 65536)"; None: not a build), and what became of the model.
pub fn gpu_fault_message(kind: crate::gpu::FaultKind, detail: &str, built: Option<&str>, after: AfterFault) -> String {
    use crate::gpu::FaultKind;
    // One line, without the device's closing full stop (the sentence goes on).
    let detail = detail.split_whitespace().collect::<Vec<_>>().join(" ");
    let detail = detail.trim_end_matches('.');
    let cut = detail.chars().count() > FAULT_DETAIL_CHARS;
    let detail: String = detail.chars().take(FAULT_DETAIL_CHARS).chain(cut.then_some('…')).collect();
    let detail = if detail.is_empty() { String::new() } else { format!(" ({detail})") };
    let what = match (kind, built) {
        (FaultKind::OutOfMemory, Some(b)) => format!("The GPU ran out of memory building {b}: try a smaller width, depth, batch or particle count"),
        (FaultKind::OutOfMemory, None) => "The GPU ran out of memory: close other GPU-heavy tabs, or try a smaller width, depth, batch or particle count".to_string(),
        (FaultKind::Validation, Some(b)) => format!("WebGPU refused building {b}{detail}: try smaller settings"),
        (FaultKind::Validation, None) => format!("WebGPU reported an error{detail}"),
        (FaultKind::Internal, Some(b)) => format!("The GPU failed building {b}{detail}: try smaller settings"),
        (FaultKind::Internal, None) => format!("The GPU reported an internal error{detail}"),
    };
    let after = match after {
        AfterFault::Kept => "The model you had is kept: press Train to continue with it.",
        AfterFault::Defaults => "Started again with the default settings.",
        AfterFault::Paused => "Training is paused: press Train to try again; if this comes back, reload the page.",
    };
    format!("{what}. {after}")
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

    #[test]
    fn a_requested_or_kept_snapshot_needs_no_training() {
        let mut s = Snapshots::default();
        assert_eq!(s.due(10.0, false, 5), None, "paused: no snapshot");
        s.request();
        let t = s.due(10.0, false, 5).expect("a requested snapshot is taken while paused");
        s.landed(t, Ok(snap(5, true)));
        assert_eq!((s.last_good().map(|x| x.step), s.kept()), (Some(5), 1));
        s.request();
        assert_eq!(s.due(10.5, false, 5), None, "nothing new to take at the same step");
        assert_eq!(s.due(10.6, false, 5), None, "the request was consumed");
        // A loaded model (step 3, older than the snapshot) is the newest state: later ones go.
        s.new_run();
        s.keep(snap(40, true));
        s.keep(snap(3, true));
        assert_eq!(s.last_good().map(|x| x.step), Some(3));
        assert_eq!(s.kept(), 3);
    }

    #[test]
    fn gpu_fault_messages_say_what_happened_and_what_to_do() {
        use crate::gpu::FaultKind;
        let m = gpu_fault_message(FaultKind::OutOfMemory, "", Some("a 1024×8 model (batch 4096)"), AfterFault::Kept);
        assert_eq!(m, "The GPU ran out of memory building a 1024×8 model (batch 4096): try a smaller width, depth, batch or particle count. The model you had is kept: press Train to continue with it.");
        let long = "x".repeat(5000);
        let m = gpu_fault_message(FaultKind::Validation, &long, Some("200000 particles"), AfterFault::Defaults);
        assert!(m.starts_with("WebGPU refused building 200000 particles (xxx") && m.ends_with("Started again with the default settings.") && m.contains("x…)") && m.chars().count() < FAULT_DETAIL_CHARS + 150, "{m}");
        let m = gpu_fault_message(FaultKind::Validation, "Buffer size (1) exceeds the limit.\n - While calling CreateBuffer.", None, AfterFault::Paused);
        assert!(m.contains("(Buffer size (1) exceeds the limit. - While calling CreateBuffer). Training is paused") && m.contains("press Train"), "{m}");
        let m = gpu_fault_message(FaultKind::OutOfMemory, "", None, AfterFault::Paused);
        assert!(m.starts_with("The GPU ran out of memory: ") && !m.contains("()"), "{m}");
    }

    #[test]
    fn recovery_retries_are_capped() {
        let mut r = RecoveryPlan::default();
        // A loss, two failed opens with growing backoff, then the third gives up.
        assert_eq!(r.lost(0), Next::Open(0));
        assert_eq!(r.open_failed(), Next::Open(250));
        assert_eq!(r.open_failed(), Next::Open(500));
        assert_eq!(r.open_failed(), Next::Cpu(GiveUp::NoDevice(OPEN_ATTEMPTS)));
        // Losses separated by progress (a new good snapshot) never pile up.
        let mut r = RecoveryPlan::default();
        for kept in 0..10 {
            assert_eq!(r.lost(kept), Next::Open(0));
            assert_eq!(r.open_failed(), Next::Open(250));
            r.recovered(kept);
        }
        // Losses with no progress in between: the third in a row goes to the CPU.
        let mut r = RecoveryPlan::default();
        assert_eq!(r.lost(7), Next::Open(0));
        r.recovered(7);
        assert_eq!(r.lost(7), Next::Open(0));
        r.recovered(7);
        assert_eq!(r.lost(7), Next::Cpu(GiveUp::LostInRow(LOSSES_IN_ROW)));
        assert_eq!((0..8).map(backoff_ms).collect::<Vec<_>>(), [250, 250, 500, 1000, 2000, 4000, 4000, 4000]);
        let m = gave_up_message(GiveUp::LostInRow(3), Ok(()), Some(120));
        assert!(m.contains("lost 3 times in a row") && m.contains("CPU backend from the last snapshot (step 120)"), "{m}");
        let m = gave_up_message(GiveUp::NoDevice(3), Err("width 1024 is over 256".into()), Some(9));
        assert!(m.contains("3 tries") && m.contains("width 1024 is over 256") && m.contains("Save still writes the last snapshot (step 9)"), "{m}");
    }
}
