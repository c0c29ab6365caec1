//! One WebGPU device per page, shared by every [`App`](super::App) on it (the demo page, or many
//! `<flow-matching-demo>` widgets in one blog post).
//!
//! The first caller of [`shared_context`] asks the browser for an adapter and device; callers that
//! arrive while that request is pending wait for the same result instead of opening devices of
//! their own. Each device gets a generation number: whoever sees it lost (device-lost promise,
//! uncaptured error) calls [`forget`] with that number, and the next [`shared_context`] opens a
//! fresh device. A stale `forget` (for a generation already replaced) does nothing, so many
//! instances noticing the same loss open one new device between them.

use crate::gpu::{GpuContext, GpuError};
use futures_channel::oneshot;
use std::cell::RefCell;

type Waiter = oneshot::Sender<Result<(GpuContext, u64), GpuError>>;

enum Slot {
    Empty,
    Pending(Vec<Waiter>),
    Ready(GpuContext, u64),
}

thread_local! {
    static SLOT: RefCell<Slot> = const { RefCell::new(Slot::Empty) };
    static CREATED: RefCell<u64> = const { RefCell::new(0) };
}

/// The page's device and its generation, opening it on first use.
pub async fn shared_context() -> Result<(GpuContext, u64), GpuError> {
    enum Action {
        Have(GpuContext, u64),
        Wait(oneshot::Receiver<Result<(GpuContext, u64), GpuError>>),
        Create,
    }
    let action = SLOT.with(|slot| {
        let mut slot = slot.borrow_mut();
        match &mut *slot {
            Slot::Ready(ctx, gen) => Action::Have(ctx.clone(), *gen),
            Slot::Pending(waiters) => {
                let (tx, rx) = oneshot::channel();
                waiters.push(tx);
                Action::Wait(rx)
            }
            Slot::Empty => {
                *slot = Slot::Pending(Vec::new());
                Action::Create
            }
        }
    });
    match action {
        Action::Have(ctx, gen) => Ok((ctx, gen)),
        Action::Wait(rx) => rx.await.unwrap_or_else(|_| Err(GpuError::RequestDevice("the shared device request was dropped".into()))),
        Action::Create => {
            let result = GpuContext::new().await.map(|ctx| {
                let gen = CREATED.with(|c| {
                    *c.borrow_mut() += 1;
                    *c.borrow()
                });
                (ctx, gen)
            });
            let next = match &result {
                Ok((ctx, gen)) => Slot::Ready(ctx.clone(), *gen),
                Err(_) => Slot::Empty,
            };
            let waiters = SLOT.with(|slot| match std::mem::replace(&mut *slot.borrow_mut(), next) {
                Slot::Pending(w) => w,
                _ => Vec::new(),
            });
            for w in waiters {
                let _ = w.send(result.clone());
            }
            result
        }
    }
}

/// Drops the shared device of generation `gen` (it was lost); the next caller opens a new one.
pub fn forget(gen: u64) {
    SLOT.with(|slot| {
        let mut slot = slot.borrow_mut();
        if matches!(&*slot, Slot::Ready(_, g) if *g == gen) {
            *slot = Slot::Empty;
        }
    });
}

/// How many devices this page has opened (1 while nothing was lost, however many instances run).
pub fn devices_opened() -> u64 {
    CREATED.with(|c| *c.borrow())
}
