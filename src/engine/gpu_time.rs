//! How long each kind of GPU work takes, from the queue's completion signal alone
//! (`Queue::on_submitted_work_done`, WebGPU's `onSubmittedWorkDone`): no timestamp queries (browsers
//! have none) and no buffer reads.
//!
//! The queue runs submissions in order and signals their completions in order, so the device time
//! of one submission is the time from the later of its own submit and the previous completion to
//! its completion. Every submission the engine accounts for registers a callback right after its
//! submit; work in between that is not accounted for (reads, probes) is charged to the next one,
//! which errs on the safe side. The engine uses the costs to keep drawing work (refreshing the
//! shown flow, the arrows, the heat map, presenting frames) to a share of the device, so training
//! gets the rest, and counts the training steps confirmed done for the page's loop.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// What a submission did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Work {
    /// Training steps (units: steps).
    Train,
    /// Integrating the shown flow.
    Integrate,
    /// Evaluating the arrow grid.
    Arrows,
    /// Recomputing the heat map.
    Heat,
    /// Drawing (and for the readback presenter, copying) one frame.
    Frame,
    /// A particle chunk of one step of the exact flow (layer `exactflow`).
    ExactFlow,
    /// A submission of a reading over a copy of the weights (the quality card's sliced W2 and
    /// straightness, the one-step preview, reflow pairs): a chunk of its integration or its
    /// final measurement. (The field error's single dispatch is not accounted: like reads, it is
    /// charged to the next accounted submission.)
    Reading,
}

/// Every kind, in declaration order (the account's arrays are indexed by `Work as usize`; a
/// test checks the order), with the name diagnostics use.
const KINDS: [(Work, &str); 7] = [
    (Work::Train, "train"),
    (Work::Integrate, "integrate"),
    (Work::Arrows, "arrows"),
    (Work::Heat, "heat"),
    (Work::Frame, "frame"),
    (Work::ExactFlow, "exactflow"),
    (Work::Reading, "reading"),
];

fn index(w: Work) -> usize {
    w as usize
}

#[derive(Default)]
struct State {
    /// When the last accounted submission completed (ms).
    last_done: f64,
    /// Device seconds per unit of each kind (moving averages; 0: not measured yet).
    per_unit: [f64; KINDS.len()],
    /// Device seconds spent on each kind so far (diagnostics: where the device's time went).
    busy: [f64; KINDS.len()],
    /// Submit → completion seconds of the newest completed submission (moving average).
    latency: f64,
    /// Submissions not yet completed: (training steps queued after it, submit time in ms).
    pending: std::collections::VecDeque<(u64, f64)>,
}

/// The device-time account of one engine (cheap to clone; callbacks hold a clone).
#[derive(Clone, Default)]
pub struct GpuTime {
    state: Arc<Mutex<State>>,
    /// Training steps ever queued, and ever confirmed done (monotonic: a reset leaves earlier
    /// callbacks harmless).
    queued: Arc<AtomicU64>,
    confirmed: Arc<AtomicU64>,
    /// Submissions of any kind whose completion signal arrived.
    completions: Arc<AtomicU64>,
}

impl GpuTime {
    /// Records a submission of `units` of `work` just made on `queue`.
    pub fn submitted(&self, queue: &wgpu::Queue, work: Work, units: u32) {
        let now = super::jobs::now_ms();
        let steps = if work == Work::Train { units as u64 } else { 0 };
        let total = self.queued.fetch_add(steps, Ordering::Relaxed) + steps;
        self.state.lock().unwrap_or_else(|e| e.into_inner()).pending.push_back((total, now));
        let (state, confirmed, completions) = (self.state.clone(), self.confirmed.clone(), self.completions.clone());
        queue.on_submitted_work_done(move || {
            let done = super::jobs::now_ms();
            confirmed.fetch_max(total, Ordering::Relaxed);
            completions.fetch_add(1, Ordering::Relaxed);
            let mut s = state.lock().unwrap_or_else(|e| e.into_inner());
            let busy = (done - s.last_done.max(now)).max(0.0) / 1000.0;
            s.last_done = done;
            let k = index(work);
            let per = busy / units.max(1) as f64;
            s.per_unit[k] = if s.per_unit[k] > 0.0 { 0.7 * s.per_unit[k] + 0.3 * per } else { per };
            s.busy[k] += busy;
            let lat = (done - now) / 1000.0;
            s.latency = if s.latency > 0.0 { 0.5 * s.latency + 0.5 * lat } else { lat };
            while s.pending.front().is_some_and(|&(_, t)| t <= now) {
                s.pending.pop_front();
            }
        });
    }

    /// Device seconds per unit of `work` (None before the first measurement).
    pub fn per_unit(&self, work: Work) -> Option<f64> {
        let v = self.state.lock().unwrap_or_else(|e| e.into_inner()).per_unit[index(work)];
        (v > 0.0).then_some(v)
    }

    /// Seconds between runs of `work` (costing `units` units) so that it takes about `share` of the
    /// device; `fallback_s` before it was measured.
    pub fn interval(&self, work: Work, units: u32, share: f64, fallback_s: f64) -> f64 {
        self.per_unit(work).map_or(fallback_s, |s| s * units as f64 / share)
    }

    /// `(kind, device ms per unit)` of every kind measured so far.
    pub fn costs(&self) -> Vec<(&'static str, f64)> {
        let s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        KINDS.iter().zip(s.per_unit).filter(|(_, v)| *v > 0.0).map(|(k, v)| (k.1, v * 1000.0)).collect()
    }

    /// Device seconds spent on `work` so far.
    pub fn busy_of(&self, work: Work) -> f64 {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).busy[index(work)]
    }

    /// `(kind, device seconds spent on it so far)` of every kind that ran.
    pub fn busy(&self) -> Vec<(&'static str, f64)> {
        let s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        KINDS.iter().zip(s.busy).filter(|(_, v)| *v > 0.0).map(|(k, v)| (k.1, v)).collect()
    }

    /// Training steps queued but not confirmed done.
    pub fn backlog(&self) -> u32 {
        let (q, c) = (self.queued.load(Ordering::Relaxed), self.confirmed.load(Ordering::Relaxed));
        q.saturating_sub(c).min(u32::MAX as u64) as u32
    }

    /// Training steps ever confirmed done.
    pub fn confirmed(&self) -> u64 {
        self.confirmed.load(Ordering::Relaxed)
    }

    /// Submissions (training, integration, drawing, ...) whose completion signal arrived.
    pub fn completions(&self) -> u64 {
        self.completions.load(Ordering::Relaxed)
    }

    /// How long queued work takes to complete: the recent average, or longer while the oldest
    /// pending submission has been waiting longer than that (nothing may have come back yet).
    pub fn latency_s(&self) -> f64 {
        let s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let waiting = s.pending.front().map_or(0.0, |&(_, t0)| (super::jobs::now_ms() - t0) / 1000.0);
        s.latency.max(waiting)
    }
}

/// How much device time the readings (the quality card's, the one-step preview) may take: a
/// credit that grows at the readings' share of the device and shrinks by the device time their
/// submissions took (`Work::Reading`); a reading may start while it is not negative. The page's
/// cards space their readings by wall time too, but a reading's wall time says little about its
/// device time on a busy queue, and a new page had no measured reading to space by: measured on
/// SwiftShader, readings run back to back for the page's first minute took 16-31% of the device
/// (docs/BENCHMARKS.md). The first reading of a model may start at once.
#[derive(Clone, Debug, Default)]
pub struct ReadingBudget {
    credit_s: f64,
    /// When the credit was last updated (s) and the readings' device seconds then.
    last: Option<(f64, f64)>,
}

impl ReadingBudget {
    /// The most credit saved up (s): after a quiet spell, readings do not come in a burst.
    pub const CAP_S: f64 = 0.5;

    /// Grows the credit by `share` of the time since the last update, less the device seconds the
    /// readings took meanwhile (`spent_s`: their total so far).
    pub fn update(&mut self, now_s: f64, share: f64, spent_s: f64) {
        if let Some((t, spent)) = self.last {
            let dt = (now_s - t).max(0.0);
            self.credit_s = (self.credit_s + share * dt).min(Self::CAP_S) - (spent_s - spent).max(0.0);
        }
        self.last = Some((now_s, spent_s));
    }

    /// Whether a reading may start now.
    pub fn allowed(&self) -> bool {
        self.credit_s >= 0.0
    }

    /// A new model: its first reading may start at once (the debt of the old one's is forgiven).
    pub fn new_model(&mut self) {
        self.credit_s = self.credit_s.max(0.0);
    }

    pub fn credit_s(&self) -> f64 {
        self.credit_s
    }
}

#[cfg(test)]
mod tests {
    use super::{index, ReadingBudget, KINDS};

    #[test]
    fn kinds_are_listed_in_declaration_order() {
        for (i, (w, _)) in KINDS.iter().enumerate() {
            assert_eq!(index(*w), i, "{w:?}");
        }
    }

    /// Readings of 2 s device time each, started whenever allowed, take the share of the device
    /// over a long run, and the first one starts at once.
    #[test]
    fn readings_keep_to_their_share() {
        let mut b = ReadingBudget::default();
        let (share, cost, dt) = (0.1, 2.0, 0.05);
        let (mut spent, mut started, mut in_flight_until) = (0.0, Vec::new(), f64::NEG_INFINITY);
        let mut t = 0.0;
        b.update(t, share, spent);
        while t < 600.0 {
            if t >= in_flight_until && b.allowed() {
                started.push(t);
                in_flight_until = t + cost; // the reading's device time lands while it runs
            }
            if t < in_flight_until {
                spent += dt;
            }
            t += dt;
            b.update(t, share, spent);
        }
        assert_eq!(started[0], 0.0);
        let taken = spent / t;
        assert!((taken - share).abs() < 0.01, "readings took {taken:.3} of the device, share {share}");
        // Evenly spaced: cost / share apart, within the cap's slack.
        let gaps: Vec<f64> = started.windows(2).map(|w| w[1] - w[0]).collect();
        assert!(gaps.iter().all(|g| (g - cost / share).abs() <= ReadingBudget::CAP_S / share + 2.0 * dt), "{gaps:?}");
    }

    /// A quiet spell saves up at most CAP_S of credit; a new model forgives the old one's debt.
    #[test]
    fn credit_is_capped_and_forgiven() {
        let mut b = ReadingBudget::default();
        b.update(0.0, 0.1, 0.0);
        b.update(1000.0, 0.1, 0.0);
        assert_eq!(b.credit_s(), ReadingBudget::CAP_S);
        b.update(1001.0, 0.1, 5.0);
        assert!(!b.allowed());
        b.new_model();
        assert!(b.allowed());
        assert_eq!(b.credit_s(), 0.0);
    }
}
