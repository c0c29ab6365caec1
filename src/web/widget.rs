//! `App` additions for the embeddable widget (`www/widget.js`, `<flow-matching-demo>`).
//!
//! - A training step limit (the widget's `train-steps`): `frame` queues at most
//!   `limit - step` steps and pauses training once the step counter reaches it.
//! - `export_samples_csv`: the particles' end positions (t = 1 of the shown flow, integrated with
//!   the weights of step `state().trajStep`) as CSV text `x,y` (the CLI's `--out` format), read
//!   back from the GPU asynchronously (`gpu::readback::read_f32` on the sampler's particle buffer,
//!   `n` interleaved `(x, y)` f32 pairs) or copied from the CPU backend's last trajectory row.
//! - `config_defaults(software)`: the App's defaults as a hash, so the widget can put a field back
//!   to its default after an invalid attribute.
//!
//! A child module of `app` (declared there with `#[path]`), so it sees `Inner` and `Backend`.

use super::{App, Backend, Inner};
use crate::web::pacing::page_config;
use std::fmt::Write;
use wasm_bindgen::prelude::*;

impl Inner {
    /// Training steps queued so far (the step counter the page shows).
    fn current_step(&self) -> u32 {
        match &self.backend {
            Backend::Gpu(g) => g.trainer.step(),
            Backend::Cpu(c) => c.trainer.step,
        }
    }

    /// Steps that may still be queued before the limit (`u32::MAX` without one).
    pub(super) fn steps_left(&self) -> u32 {
        self.step_limit.map_or(u32::MAX, |l| l.saturating_sub(self.current_step()))
    }

    /// Pauses training once the step limit is reached.
    pub(super) fn stop_at_limit(&mut self) {
        if self.training && self.steps_left() == 0 {
            self.training = false;
        }
    }
}

/// `x,y` CSV of points, one per line, with a header.
pub fn points_csv(points: &[[f32; 2]]) -> String {
    let mut out = String::with_capacity(points.len() * 24 + 4);
    out.push_str("x,y\n");
    for p in points {
        let _ = writeln!(out, "{},{}", p[0], p[1]);
    }
    out
}

#[wasm_bindgen]
impl App {
    /// Stops training at step `limit` (0: no limit). `play()` past the limit trains one more
    /// frame's worth only if the limit is raised or removed first.
    pub fn set_step_limit(&self, limit: u32) {
        let mut s = self.inner.borrow_mut();
        s.step_limit = (limit > 0).then_some(limit);
        s.stop_at_limit();
    }

    /// The step limit (0: none).
    pub fn step_limit(&self) -> u32 {
        self.inner.borrow().step_limit.unwrap_or(0)
    }

    /// Resolves to the shown particles' end positions (t = 1) as CSV text with header `x,y`;
    /// rejects with a message when no flow has been integrated yet or the read fails.
    pub fn export_samples_csv(&self) -> js_sys::Promise {
        enum Source {
            Gpu(Box<crate::gpu::GpuContext>, wgpu::Buffer, u32),
            Cpu(Vec<[f32; 2]>),
            NotYet,
        }
        let source = {
            let s = self.inner.borrow();
            match &s.backend {
                Backend::Gpu(g) if g.traj_step.is_some() => {
                    let (buf, n) = g.particles();
                    Source::Gpu(Box::new(g.ctx.clone()), buf.clone(), n)
                }
                Backend::Cpu(c) if c.traj_step.is_some() => Source::Cpu(c.end_positions()),
                _ => Source::NotYet,
            }
        };
        wasm_bindgen_futures::future_to_promise(async move {
            let points = match source {
                Source::Gpu(ctx, buf, n) => {
                    let flat = crate::gpu::readback::read_f32(&ctx, &buf, 0, n as u64 * 2)
                        .await
                        .map_err(|e| JsValue::from(JsError::new(&format!("reading the samples back failed: {e}"))))?;
                    flat.chunks_exact(2).map(|c| [c[0], c[1]]).collect()
                }
                Source::Cpu(p) => p,
                Source::NotYet => Vec::new(),
            };
            if points.is_empty() {
                return Err(JsError::new("no samples yet: the flow has not been integrated; try again in a moment").into());
            }
            Ok(JsValue::from(points_csv(&points)))
        })
    }
}

/// The configuration an `App` starts from before its hash is applied, as a hash
/// (`software`: the smaller defaults of software adapters and the CPU backend).
#[wasm_bindgen]
pub fn config_defaults(software: bool) -> String {
    page_config(software).to_query()
}
