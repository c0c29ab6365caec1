//! Work that takes longer than a frame, done a slice at a time on the CPU engine's frames.
//!
//! A [`Job`] works in small units until the frame's budget is spent, then yields; the queue runs
//! the oldest job first. Results travel through a oneshot channel, so the [`EngineFuture`] a
//! caller holds resolves when the last slice is done (or fails with a message when the job is
//! dropped, e.g. by a new model). Natively the same queue runs in tests, driven by a loop of
//! frames; `now_ms` is the clock both use.

use super::EngineFuture;
use futures_channel::oneshot;
use std::collections::VecDeque;

/// Milliseconds on a monotonic clock (performance.now() on the web).
pub fn now_ms() -> f64 {
    #[cfg(target_arch = "wasm32")]
    {
        let perf = js_sys::Reflect::get(&js_sys::global(), &"performance".into()).ok();
        let now = perf.as_ref().and_then(|p| js_sys::Reflect::get(p, &"now".into()).ok());
        match (perf, now.and_then(|f| f.dyn_into::<js_sys::Function>().ok())) {
            (Some(p), Some(f)) => f.call0(&p).ok().and_then(|v| v.as_f64()).unwrap_or_else(js_sys::Date::now),
            _ => js_sys::Date::now(),
        }
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        use std::sync::OnceLock;
        use std::time::Instant;
        static START: OnceLock<Instant> = OnceLock::new();
        START.get_or_init(Instant::now).elapsed().as_secs_f64() * 1000.0
    }
}

#[cfg(target_arch = "wasm32")]
use wasm_bindgen::JsCast;

/// A piece of work done in slices.
pub trait Job {
    /// Works in small units while `more()` is true; returns true when finished (the result has
    /// been sent).
    fn work(&mut self, more: &mut dyn FnMut() -> bool) -> bool;
}

/// The queue of pending jobs, oldest first.
#[derive(Default)]
pub struct Jobs {
    queue: VecDeque<Box<dyn Job>>,
}

impl Jobs {
    pub fn push(&mut self, job: Box<dyn Job>) {
        self.queue.push_back(job);
    }

    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Drops every pending job (their futures fail with "cancelled").
    pub fn clear(&mut self) {
        self.queue.clear();
    }

    /// Works on the queue for about `budget_ms`.
    pub fn run(&mut self, budget_ms: f64) {
        let start = now_ms();
        let mut more = || now_ms() - start < budget_ms;
        while let Some(job) = self.queue.front_mut() {
            if !job.work(&mut more) {
                return;
            }
            self.queue.pop_front();
            if !more() {
                return;
            }
        }
    }
}

/// A sender for a job's result and the future that receives it.
pub fn channel<T: 'static>(what: &'static str) -> (oneshot::Sender<Result<T, String>>, EngineFuture<T>) {
    let (tx, rx) = oneshot::channel();
    let fut = async move { rx.await.unwrap_or_else(|_| Err(format!("the {what} was cancelled (the model changed)"))) };
    (tx, Box::pin(fut))
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Count {
        left: u32,
        tx: Option<oneshot::Sender<Result<u32, String>>>,
    }

    impl Job for Count {
        fn work(&mut self, more: &mut dyn FnMut() -> bool) -> bool {
            while self.left > 0 && more() {
                self.left -= 1;
            }
            if self.left == 0 {
                if let Some(tx) = self.tx.take() {
                    let _ = tx.send(Ok(7));
                }
            }
            self.left == 0
        }
    }

    #[test]
    fn jobs_finish_in_slices_and_cancel_with_a_message() {
        let mut jobs = Jobs::default();
        let (tx, mut fut) = channel::<u32>("count");
        jobs.push(Box::new(Count { left: 1000, tx: Some(tx) }));
        let waker = std::task::Waker::noop();
        let mut cx = std::task::Context::from_waker(waker);
        let mut frames = 0;
        loop {
            jobs.run(0.01);
            frames += 1;
            if let std::task::Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
                assert_eq!(v, Ok(7));
                break;
            }
            assert!(frames < 1_000_000);
        }
        let (tx, mut fut) = channel::<u32>("count");
        jobs.push(Box::new(Count { left: u32::MAX, tx: Some(tx) }));
        jobs.run(0.01);
        jobs.clear();
        let got = fut.as_mut().poll(&mut cx);
        assert!(matches!(got, std::task::Poll::Ready(Err(ref e)) if e.contains("cancelled")), "{got:?}");
    }

}
