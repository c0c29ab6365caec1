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
}

const KINDS: usize = 6;

fn index(w: Work) -> usize {
    match w {
        Work::Train => 0,
        Work::Integrate => 1,
        Work::Arrows => 2,
        Work::Heat => 3,
        Work::Frame => 4,
        Work::ExactFlow => 5,
    }
}

#[derive(Default)]
struct State {
    /// When the last accounted submission completed (ms).
    last_done: f64,
    /// Device seconds per unit of each kind (moving averages; 0: not measured yet).
    per_unit: [f64; KINDS],
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
        ["train", "integrate", "arrows", "heat", "frame", "exactflow"].iter().zip(s.per_unit).filter(|(_, v)| *v > 0.0).map(|(k, v)| (*k, v * 1000.0)).collect()
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
