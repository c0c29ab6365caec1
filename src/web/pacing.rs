//! The page's clocks and budgets, kept free of browser types so they are unit-tested natively.
//!
//! - [`Pacing`]: how many training steps each animation frame queues. The GPU runs queued work
//!   asynchronously; a status read lands once the GPU has drained everything queued before it,
//!   which tells how many steps are confirmed done. Two rules: never let the backlog (queued but
//!   unconfirmed steps) exceed about half a second of the measured throughput, and between reads
//!   grow the rate by 10% if that cap never bit, shrink it by 15% if it did. Fractional rates
//!   accumulate (0.25 = one step every fourth frame), which keeps software adapters responsive.
//! - [`FlowClock`]: the looping flow time t (hold at t = 0, travel, hold at t = 1) and the scrubber.
//! - [`LossHistory`]: every loss read, halved in resolution whenever it grows past its cap.
//! - [`page_config`]: the page's defaults per backend before the URL hash is applied.

use crate::config::Config;

/// Adaptive training steps per animation frame.
#[derive(Clone, Debug)]
pub struct Pacing {
    /// Steps per frame; below 1 means one step every `1/x` frames.
    pub steps_per_frame: f64,
    acc: f64,
    pub min: f64,
    pub max: f64,
    /// The backlog cap stopped a frame's steps since the last read.
    throttled: bool,
}

impl Pacing {
    pub fn new(initial: f64, min: f64, max: f64) -> Self {
        Pacing { steps_per_frame: initial.clamp(min, max), acc: 0.0, min, max, throttled: false }
    }

    /// Steps to queue this frame.
    pub fn take(&mut self) -> u32 {
        self.acc += self.steps_per_frame;
        let n = self.acc.floor();
        self.acc -= n;
        n as u32
    }

    /// Steps to queue this frame when `backlog` steps are queued but not yet confirmed and at
    /// most `max_backlog` may be.
    pub fn take_capped(&mut self, backlog: u32, max_backlog: u32) -> u32 {
        let n = self.take();
        let room = max_backlog.saturating_sub(backlog);
        if n > room {
            self.throttled = true;
        }
        n.min(room)
    }

    /// A status read came back: adjust the rate (see the module docs).
    pub fn observe_read(&mut self) {
        self.steps_per_frame *= if self.throttled { 0.85 } else { 1.1 };
        self.steps_per_frame = self.steps_per_frame.clamp(self.min, self.max);
        self.throttled = false;
    }

    /// The backlog allowed at `steps_per_sec` (measured; 0 before the first measurement).
    pub fn max_backlog(steps_per_sec: f64, horizon_s: f64, floor: u32) -> u32 {
        ((steps_per_sec * horizon_s).round() as u32).max(floor)
    }

    /// A status read queued `lag_ms` ago came back while frames take `frame_ms`: the GPU is
    /// behind when the lag spans several frames (slow down), idle when it is short (speed up).
    pub fn observe_lag(&mut self, lag_ms: f64, frame_ms: f64) {
        let frame = frame_ms.clamp(8.0, 100.0);
        if lag_ms > (4.0 * frame).max(90.0) {
            self.steps_per_frame *= 0.7;
        } else if lag_ms < (2.5 * frame).max(45.0) {
            self.steps_per_frame *= 1.12;
        }
        self.steps_per_frame = self.steps_per_frame.clamp(self.min, self.max);
    }

    /// CPU backend: steps that fit `budget_ms` at `ms_per_step` (measured), at least one.
    pub fn fit_budget(budget_ms: f64, ms_per_step: f64) -> u32 {
        (budget_ms / ms_per_step.max(1e-3)).floor().clamp(1.0, 4096.0) as u32
    }
}

/// The flow time shown: loops 0 → 1 with short holds at both ends, or stays where scrubbed.
#[derive(Clone, Debug)]
pub struct FlowClock {
    pub t: f32,
    pub playing: bool,
    /// Seconds into the current loop.
    phase: f32,
    pub hold_start: f32,
    pub travel: f32,
    pub hold_end: f32,
}

impl Default for FlowClock {
    fn default() -> Self {
        FlowClock { t: 0.0, playing: true, phase: 0.0, hold_start: 0.5, travel: 2.5, hold_end: 1.2 }
    }
}

impl FlowClock {
    fn period(&self) -> f32 {
        self.hold_start + self.travel + self.hold_end
    }

    /// Advances by `dt` seconds when playing; returns true when a new loop starts (t back to 0).
    pub fn advance(&mut self, dt: f32) -> bool {
        if !self.playing {
            return false;
        }
        self.phase += dt.clamp(0.0, 0.25);
        let wrapped = self.phase >= self.period();
        if wrapped {
            self.phase %= self.period();
        }
        self.t = ((self.phase - self.hold_start) / self.travel).clamp(0.0, 1.0);
        wrapped
    }

    /// Stops at `t` (the scrubber).
    pub fn scrub(&mut self, t: f32) {
        self.playing = false;
        self.t = if t.is_finite() { t.clamp(0.0, 1.0) } else { 0.0 };
        self.phase = self.hold_start + self.t * self.travel;
    }

    /// Resumes the loop from the current t.
    pub fn play(&mut self) {
        self.playing = true;
        self.phase = self.hold_start + self.t * self.travel;
    }
}

/// Training losses for the curve: `(step, loss)` in step order, at most `cap` entries; when full,
/// neighbouring pairs are averaged (so old history keeps its shape at half resolution).
#[derive(Clone, Debug)]
pub struct LossHistory {
    pub points: Vec<(u32, f32)>,
    cap: usize,
    /// Entries merged into each stored point now (1, 2, 4, ...).
    stride: usize,
    pending: Vec<(u32, f32)>,
}

impl LossHistory {
    pub fn new(cap: usize) -> Self {
        LossHistory { points: Vec::new(), cap: cap.max(4) & !1, stride: 1, pending: Vec::new() }
    }

    pub fn clear(&mut self) {
        *self = LossHistory::new(self.cap);
    }

    pub fn push(&mut self, step: u32, loss: f32) {
        if !loss.is_finite() {
            return;
        }
        self.pending.push((step, loss));
        if self.pending.len() >= self.stride {
            let n = self.pending.len() as f32;
            let s = self.pending.iter().map(|p| p.1).sum::<f32>() / n;
            self.points.push((self.pending[0].0, s));
            self.pending.clear();
        }
        if self.points.len() >= self.cap {
            self.points = self.points.chunks(2).map(|c| (c[0].0, c.iter().map(|p| p.1).sum::<f32>() / c.len() as f32)).collect();
            self.stride *= 2;
        }
    }

    /// Mean loss of the first `k` stored points (the "before" of a run).
    pub fn head_mean(&self, k: usize) -> Option<f32> {
        let h = &self.points[..self.points.len().min(k)];
        (!h.is_empty()).then(|| h.iter().map(|p| p.1).sum::<f32>() / h.len() as f32)
    }

    /// Mean loss of the last `k` stored points (the "now").
    pub fn tail_mean(&self, k: usize) -> Option<f32> {
        let t = &self.points[self.points.len().saturating_sub(k)..];
        (!t.is_empty()).then(|| t.iter().map(|p| p.1).sum::<f32>() / t.len() as f32)
    }
}

/// The page's starting configuration before the URL hash is applied. Software adapters
/// (SwiftShader, ~0.3 GFLOP/s) and the CPU fallback get a smaller model, batch and particle
/// count so training visibly progresses within seconds; real GPUs get more particles.
pub fn page_config(small: bool) -> Config {
    let mut c = Config::default();
    if small {
        c.width = 32;
        c.depth = 2;
        c.batch = 128;
        c.particles = 800;
        c.nfe = 16;
    } else {
        c.particles = 16384;
        c.nfe = 64;
    }
    c
}

/// The CPU backend's starting configuration: the model, batch and learning rate of the WebGPU
/// default (the fast CPU trainer runs it at 160–470 steps/s in wasm on a loaded 2-core box,
/// docs/BENCHMARKS.md), with the small particle count and solver steps of
/// `page_config(true)`, because the trajectories are integrated by the scalar reference
/// (`cpu::ode`, about 0.6 GFLOP/s).
pub fn page_config_cpu() -> Config {
    let small = page_config(true);
    Config { particles: small.particles, nfe: small.nfe, ..page_config(false) }
}

/// Seconds between re-integrations of the shown trajectories, from their cost: about a fifth of
/// the adapter's time (at `flops_per_s`, measured from training where possible), 0.3 s to 6 s.
pub fn refresh_interval(particles: u32, steps: u32, evals_per_step: u32, macs_per_eval: u64, flops_per_s: f64) -> f64 {
    let flops = particles as f64 * steps as f64 * evals_per_step as f64 * macs_per_eval as f64 * 2.0;
    (5.0 * flops / flops_per_s.max(1e6)).clamp(0.3, 6.0)
}

/// Floating-point operations of one training step (forward + backward ≈ 3 × forward MACs × 2).
pub fn train_flops(batch: u32, macs_per_sample: u64) -> f64 {
    6.0 * batch as f64 * macs_per_sample as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fractional_rates_accumulate() {
        let mut p = Pacing::new(0.25, 0.05, 64.0);
        let total: u32 = (0..8).map(|_| p.take()).sum();
        assert_eq!(total, 2);
    }

    #[test]
    fn lag_steers_the_rate_within_bounds() {
        let mut p = Pacing::new(8.0, 0.1, 32.0);
        for _ in 0..50 {
            p.observe_lag(500.0, 16.0);
        }
        assert_eq!(p.steps_per_frame, 0.1);
        for _ in 0..100 {
            p.observe_lag(10.0, 16.0);
        }
        assert_eq!(p.steps_per_frame, 32.0);
        let before = p.steps_per_frame;
        p.observe_lag(60.0, 16.0);
        assert_eq!(p.steps_per_frame, before, "in the dead band nothing changes");
    }

    #[test]
    fn backlog_cap_bites_and_steers() {
        let mut p = Pacing::new(4.0, 0.05, 64.0);
        assert_eq!(p.take_capped(0, 100), 4);
        assert_eq!(p.take_capped(98, 100), 2);
        p.observe_read();
        assert!(p.steps_per_frame < 4.0);
        let before = p.steps_per_frame;
        p.take_capped(0, 100);
        p.observe_read();
        assert!(p.steps_per_frame > before);
        assert_eq!(Pacing::max_backlog(0.0, 0.5, 8), 8);
        assert_eq!(Pacing::max_backlog(1000.0, 0.5, 8), 500);
    }

    #[test]
    fn clock_loops_and_scrubs() {
        let mut c = FlowClock::default();
        assert!(!c.advance(0.25));
        assert!(!c.advance(0.15));
        assert_eq!(c.t, 0.0);
        for _ in 0..5 {
            c.advance(0.25); // steps longer than 0.25 s are clamped (a backgrounded tab)
        }
        c.advance(0.1);
        assert!((c.t - 0.5).abs() < 1e-5, "{}", c.t);
        for _ in 0..6 {
            c.advance(0.25);
        }
        assert_eq!(c.t, 1.0);
        let mut wrapped = false;
        for _ in 0..10 {
            wrapped |= c.advance(0.25);
        }
        assert!(wrapped);
        c.scrub(0.3);
        assert!(!c.playing);
        assert!(!c.advance(1.0));
        assert_eq!(c.t, 0.3);
        c.play();
        c.advance(0.0);
        assert!((c.t - 0.3).abs() < 1e-5);
        c.scrub(f32::NAN);
        assert_eq!(c.t, 0.0);
    }

    #[test]
    fn history_halves_when_full() {
        let mut h = LossHistory::new(8);
        for s in 0..64 {
            h.push(s, s as f32);
        }
        assert!(h.points.len() < 8);
        assert!(h.points.windows(2).all(|w| w[0].0 < w[1].0));
        h.push(64, f32::NAN);
        assert!(h.head_mean(1).unwrap() < h.tail_mean(1).unwrap());
    }

    #[test]
    fn small_defaults_are_smaller() {
        let (s, b) = (page_config(true), page_config(false));
        assert!(s.width < b.width && s.particles < b.particles && s.batch < b.batch);
        // The CPU backend trains the WebGPU default model and draws the software particle count.
        let c = page_config_cpu();
        assert_eq!((c.width, c.depth, c.batch, c.lr), (b.width, b.depth, b.batch, b.lr));
        assert_eq!((c.particles, c.nfe), (s.particles, s.nfe));
    }
}
