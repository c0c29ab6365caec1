//! Waiting for a chunk of long GPU work to finish before queueing the next (`budget::ChunkPlan`):
//! a browser's GPU watchdog (and the page's other work) sees at most one chunk's dispatches at a
//! time, never a whole integration.
//!
//! [`queue_done`] resolves when everything submitted so far has completed (`onSubmittedWorkDone`
//! on the web; natively the device is polled until idle). [`Done`] is the same signal as a flag,
//! for callers that poll once per frame instead of awaiting.

use super::{GpuContext, GpuError};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Resolves once the work submitted to `ctx`'s queue so far is done.
pub async fn queue_done(ctx: &GpuContext) -> Result<(), GpuError> {
    let (tx, rx) = futures_channel::oneshot::channel();
    ctx.queue.on_submitted_work_done(move || {
        let _ = tx.send(());
    });
    ctx.wait_idle();
    rx.await.map_err(|_| GpuError::Readback("the device was lost before the queued work finished".into()))
}

/// A flag raised when the work submitted before [`Done::watch`] has completed.
#[derive(Clone, Debug, Default)]
pub struct Done(Arc<AtomicBool>);

impl Done {
    /// Watches the work submitted to `queue` so far.
    pub fn watch(queue: &wgpu::Queue) -> Self {
        let flag = Arc::new(AtomicBool::new(false));
        let raised = flag.clone();
        queue.on_submitted_work_done(move || raised.store(true, Ordering::Release));
        Done(flag)
    }

    /// An already raised flag (nothing to wait for).
    pub fn ready() -> Self {
        Done(Arc::new(AtomicBool::new(true)))
    }

    pub fn is_done(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}
