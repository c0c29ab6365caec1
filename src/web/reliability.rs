//! Reliability of one [`App`]: weight snapshots, divergence undo, device-loss recovery, and
//! saving/loading the model. A child module of `app` (it extends `Inner` and `App`), so every App
//! instance — the demo page or an embedded widget — recovers on its own.
//!
//! - **Snapshots**: while training on WebGPU, every `SNAPSHOT_EVERY_S` seconds one asynchronous
//!   copy of the trainer's state (parameters, Adam moments, divergence flag, step;
//!   `gpu::snapshot`) comes back to the CPU. Only snapshots whose own flag is clear and whose
//!   values are finite are kept ("last good").
//! - **Divergence**: the GPU flag pauses training (`Inner::diverged`); the shown trajectories are
//!   frozen (never re-integrated with non-finite weights; the vertex shader also drops non-finite
//!   positions) and `restore_last_good()` puts the last good snapshot back and resumes.
//! - **Device loss**: wgpu's device-lost callback (the `GPUDevice.lost` promise) sets a flag; the
//!   next frame forgets the shared device (`device::forget`), opens a new one, rebuilds the
//!   backend for the same configuration on the same canvas, restores the last good snapshot
//!   (parameters, moments and step: only the steps since it are lost) and resumes.
//! - **Save / load**: `model_file` bytes (config + parameters + step), bit-identical round trip.

use super::{App, Backend, Inner};
use crate::gpu::snapshot::Snapshot;
use crate::gpu::{counter, GpuError};
use crate::model_file::ModelFile;
use js_sys::{Object, Uint8Array};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use wasm_bindgen::prelude::*;

/// Seconds of training between two snapshots.
pub const SNAPSHOT_EVERY_S: f64 = 2.0;
/// Good snapshots kept (newest last): a divergence detected late still finds one from before it.
pub const SNAPSHOTS_KEPT: usize = 4;
/// A loss this many times the run's initial loss counts as divergence even while finite (Adam
/// bounds each step by lr, so a huge lr blows the weights up without overflowing for a long time).
/// Training never raises the loss this far above where it started.
pub const EXPLODED_FACTOR: f32 = 100.0;

/// Reliability state of one App.
#[derive(Default)]
pub struct Reliability {
    /// The newest snapshot known to be good (see `good`).
    pub last_good: Option<Snapshot>,
    /// Older good snapshots, oldest first (at most `SNAPSHOTS_KEPT - 1`).
    older: std::collections::VecDeque<Snapshot>,
    snapshot_in_flight: bool,
    last_snapshot: f64,
    /// Set by the device-lost callback of the device this App runs on.
    lost: Arc<AtomicBool>,
    lost_reason: Option<String>,
    recovering: bool,
    pub recoveries: u32,
    pub diverged: bool,
    /// Bumped whenever the trainer's timeline changes (reset, retrain, restore, recovery):
    /// snapshots from an older one are dropped.
    timeline: u32,
}

impl Reliability {
    /// Watches `device` for loss (a new flag per device).
    pub fn watch(&mut self, device: &wgpu::Device) {
        let flag = Arc::new(AtomicBool::new(false));
        self.lost = flag.clone();
        device.set_device_lost_callback(move |_reason, _msg| flag.store(true, Ordering::Relaxed));
    }

    /// A new training run: old snapshots no longer apply.
    pub fn new_run(&mut self) {
        self.last_good = None;
        self.older.clear();
        self.snapshot_in_flight = false;
        self.diverged = false;
        self.timeline += 1;
    }
}

fn set(obj: &Object, key: &str, value: impl Into<JsValue>) {
    let _ = js_sys::Reflect::set(obj, &key.into(), &value.into());
}

impl Inner {
    /// Per frame, before anything touches the GPU: true when the device is lost or being replaced
    /// (the frame must not use the backend). Starts the recovery once.
    pub(super) fn check_device(&mut self, this: &Rc<std::cell::RefCell<Inner>>) -> bool {
        if self.rel.recovering {
            return true;
        }
        if !self.rel.lost.load(Ordering::Relaxed) || !matches!(self.backend, Backend::Gpu(_)) {
            return false;
        }
        self.rel.recovering = true;
        self.rel.lost_reason = Some("the GPU device was lost".into());
        self.generation += 1; // drop status reads of the lost device
        self.status_in_flight = false;
        self.rel.timeline += 1;
        self.rel.snapshot_in_flight = false;
        let weak = Rc::downgrade(this);
        wasm_bindgen_futures::spawn_local(async move { recover(weak).await });
        true
    }

    /// Starts a snapshot read when training and the last one is old enough.
    #[allow(clippy::type_complexity)]
    pub(super) fn maybe_snapshot(&mut self, now: f64) -> Option<(std::pin::Pin<Box<dyn std::future::Future<Output = Result<Snapshot, GpuError>>>>, u32)> {
        let Backend::Gpu(g) = &self.backend else { return None };
        if !self.training || self.rel.diverged || self.rel.snapshot_in_flight || now - self.rel.last_snapshot < SNAPSHOT_EVERY_S {
            return None;
        }
        if self.rel.last_good.as_ref().is_some_and(|s| s.step == g.trainer.step()) {
            return None;
        }
        self.rel.snapshot_in_flight = true;
        self.rel.last_snapshot = now;
        Some((Box::pin(g.trainer.snapshot_detached()), self.rel.timeline))
    }

    pub(super) fn on_snapshot(&mut self, timeline: u32, result: Result<Snapshot, GpuError>) {
        if timeline != self.rel.timeline {
            return;
        }
        self.rel.snapshot_in_flight = false;
        if let Ok(s) = result {
            if s.is_good() {
                if let Some(prev) = self.rel.last_good.replace(s) {
                    self.rel.older.push_back(prev);
                    while self.rel.older.len() >= SNAPSHOTS_KEPT {
                        self.rel.older.pop_front();
                    }
                }
            }
        }
    }

    /// Losses just read: a finite loss `EXPLODED_FACTOR` times the run's initial loss (mean of
    /// its first 10 steps) is a divergence too. Returns the first such step.
    pub(super) fn exploded(&self, losses: &[(u32, f32)]) -> Option<u32> {
        let start = self.losses.head_mean(10)?;
        if self.losses.points.len() < 10 || start.partial_cmp(&0.0) != Some(std::cmp::Ordering::Greater) {
            return None;
        }
        losses.iter().find(|&&(_, l)| l.is_finite() && l > EXPLODED_FACTOR * start).map(|&(s, _)| s)
    }

    /// Divergence: pause, freeze the shown trajectories, explain.
    pub(super) fn on_diverged(&mut self, step: u32) {
        if self.rel.diverged {
            return;
        }
        self.training = false;
        self.rel.diverged = true;
        // Only snapshots of weights from before the bad step are good (the weights at step S
        // produce step S's loss).
        while self.rel.last_good.as_ref().is_some_and(|s| s.step >= step) {
            self.rel.last_good = self.rel.older.pop_back();
        }
        self.rel.older.retain(|s| s.step < step);
        self.rel.snapshot_in_flight = false;
        self.rel.timeline += 1;
        if let Backend::Gpu(g) = &mut self.backend {
            g.frozen = true;
        }
        let lr = self.config.lr;
        let restore = match &self.rel.last_good {
            Some(s) => format!(", then press “Restore last good weights” (step {}) to continue from before the divergence, or Reset", s.step),
            None => ", then press Reset".to_string(),
        };
        self.error = Some(format!(
            "Training diverged at step {step}: the loss blew up (NaN, infinite, or {EXPLODED_FACTOR}× its starting value). The learning rate ({lr}) is probably too high: lower it (the default is {}){restore}.",
            crate::config::Config::default().lr
        ));
    }

    /// Puts the trainer back to `snap` and drops the losses after it.
    fn rewind_to(&mut self, snap: &Snapshot) -> Result<(), String> {
        let Backend::Gpu(g) = &mut self.backend else { return Err("restoring weights needs the WebGPU backend".into()) };
        g.trainer.restore(snap).map_err(|e| e.to_string())?;
        g.trainer.set_lr(self.config.lr, self.config.schedule, self.config.schedule_steps());
        g.frozen = false;
        g.traj_step = None;
        self.generation += 1;
        self.status_in_flight = false;
        self.rel.timeline += 1;
        self.rel.snapshot_in_flight = false;
        self.rel.diverged = false;
        self.losses.points.retain(|&(st, _)| st < snap.step);
        self.last_loss = self.losses.points.last().map(|&(_, l)| l);
        self.read_step = snap.step;
        self.rate_mark = None;
        self.error = None;
        Ok(())
    }

    pub(super) fn reliability_state(&self, o: &Object) {
        set(o, "liveBuffers", counter::live_buffers() as f64);
        set(o, "liveBytes", counter::live_bytes() as f64);
        set(o, "buffersCreated", counter::buffers_created() as f64);
        set(o, "recoveries", self.rel.recoveries);
        set(o, "recovering", self.rel.recovering);
        set(o, "deviceLost", self.rel.lost_reason.as_deref().map(JsValue::from).unwrap_or(JsValue::NULL));
        set(o, "diverged", self.rel.diverged);
        set(o, "canRestore", self.rel.last_good.is_some());
        set(o, "snapshotStep", self.rel.last_good.as_ref().map(|s| JsValue::from(s.step)).unwrap_or(JsValue::NULL));
        set(o, "lr", self.config.lr);
    }
}

/// Opens a new device and rebuilds the backend with the same configuration, restoring the last
/// good snapshot. Retries (every second) while no device can be had.
async fn recover(weak: std::rc::Weak<std::cell::RefCell<Inner>>) {
    loop {
        let Some(inner) = weak.upgrade() else { return };
        let (old_gen, config, canvas, readback, snap, size) = {
            let s = inner.borrow();
            let readback = matches!(&s.backend, Backend::Gpu(g) if g.is_readback());
            (s.device_gen, s.config.clone(), s.canvas.clone(), readback, s.rel.last_good.clone(), (s.width, s.height))
        };
        drop(inner);
        if let Some(g) = old_gen {
            super::super::device::forget(g);
        }
        let result = match super::super::device::shared_context().await {
            Ok((ctx, gen)) => super::GpuView::new(ctx.clone(), canvas, &config, readback).map(|v| (v, ctx, gen)),
            Err(e) => Err(e.to_string()),
        };
        let Some(inner) = weak.upgrade() else { return };
        {
            let mut s = inner.borrow_mut();
            match result {
                Ok((mut view, ctx, gen)) => {
                    view.resize(size.0, size.1);
                    s.backend = Backend::Gpu(Box::new(view));
                    s.device_gen = Some(gen);
                    s.rel.watch(&ctx.device);
                    s.rel.lost_reason = None;
                    s.rel.recovering = false;
                    s.rel.recoveries += 1;
                    match snap {
                        Some(snap) => {
                            if let Err(e) = s.rewind_to(&snap) {
                                s.error = Some(format!("the GPU device was lost and restoring the weights failed: {e}"));
                            }
                        }
                        None => {
                            s.restart_metrics();
                        }
                    }
                    s.training = true;
                    web_sys::console::info_1(&format!("flowmatch: GPU device lost; recovered on device {gen} at step {}", match &s.backend {
                        Backend::Gpu(g) => g.trainer.step(),
                        _ => 0,
                    }).into());
                    return;
                }
                Err(e) => {
                    s.error = Some(format!("the GPU device was lost and a new one could not be opened yet ({e}); retrying"));
                }
            }
        }
        drop(inner);
        sleep_ms(1000).await;
    }
}

async fn sleep_ms(ms: i32) {
    let promise = js_sys::Promise::new(&mut |resolve, _| {
        if let Some(w) = web_sys::window() {
            let _ = w.set_timeout_with_callback_and_timeout_and_arguments_0(&resolve, ms);
        }
    });
    let _ = wasm_bindgen_futures::JsFuture::from(promise).await;
}

#[wasm_bindgen]
impl App {
    /// Puts back the last good weights (after a divergence) and resumes training with the
    /// current learning rate. Errors when there is no good snapshot yet.
    pub fn restore_last_good(&self) -> Result<u32, JsError> {
        let mut s = self.inner.borrow_mut();
        let snap = s.rel.last_good.clone().ok_or_else(|| JsError::new("no good weights were saved yet (snapshots are taken every few seconds of training): press Reset"))?;
        s.rewind_to(&snap).map_err(|e| JsError::new(&e))?;
        s.training = true;
        Ok(snap.step)
    }

    /// Tests: destroys the GPU device as a driver reset would (`GPUDevice.destroy()`).
    pub fn debug_destroy_device(&self) {
        if let Backend::Gpu(g) = &self.inner.borrow().backend {
            g.ctx.device.destroy();
        }
    }

    /// The packed parameters, read back (tests compare them bit for bit).
    pub async fn params(&self) -> Result<js_sys::Float32Array, JsError> {
        let v = self.read_params().await?;
        Ok(js_sys::Float32Array::from(&v[..]))
    }

    /// The model as a `.flowmatch` file (configuration + parameters + step).
    pub async fn save_model(&self) -> Result<Uint8Array, JsError> {
        let params = self.read_params().await?;
        let (config, step) = {
            let s = self.inner.borrow();
            let step = match &s.backend {
                Backend::Gpu(g) => g.trainer.step(),
                Backend::Cpu(c) => c.trainer.step,
            };
            (s.config.clone(), step)
        };
        let bytes = ModelFile { config, step, params }.encode();
        Ok(Uint8Array::from(&bytes[..]))
    }

    /// Loads a `.flowmatch` file. A file that is not a model, truncated, corrupt or inconsistent
    /// is refused with its own message and the current model is kept. A file of another shape
    /// reconfigures the page to its configuration when `reshape`, else it is refused. Training
    /// is paused afterwards (the loaded weights are shown as they are).
    pub fn load_model(&self, bytes: &[u8], reshape: bool) -> Result<(), JsError> {
        let file = ModelFile::decode(bytes).map_err(|e| JsError::new(&e.to_string()))?;
        let mut s = self.inner.borrow_mut();
        let shape = crate::spec::TrainSpec::from_config(&s.config).shape;
        if !reshape {
            file.check_shape(&shape).map_err(|e| JsError::new(&e.to_string()))?;
        }
        s.apply(file.config.clone()).map_err(|e| JsError::new(&format!("the model file's configuration cannot run here: {e}")))?;
        s.restart_metrics();
        match &mut s.backend {
            Backend::Gpu(g) => {
                g.trainer.load_params(&file.params, file.step);
                g.traj_step = None;
                g.frozen = false;
            }
            Backend::Cpu(c) => {
                c.trainer.params.copy_from_slice(&file.params);
                c.trainer.step = file.step;
                c.traj_step = None;
            }
        }
        s.read_step = file.step;
        s.training = false;
        Ok(())
    }
}

impl App {
    async fn read_params(&self) -> Result<Vec<f32>, JsError> {
        let fut = {
            let s = self.inner.borrow();
            match &s.backend {
                Backend::Gpu(g) => {
                    let (ctx, buf, n) = (g.ctx.clone(), g.trainer.params.clone(), g.trainer.spec.shape.param_len() as u64);
                    Some(async move { crate::gpu::readback::read_f32(&ctx, &buf, 0, n).await })
                }
                Backend::Cpu(_) => None,
            }
        };
        match fut {
            Some(f) => f.await.map_err(|e| JsError::new(&e.to_string())),
            None => match &self.inner.borrow().backend {
                Backend::Cpu(c) => Ok(c.trainer.params.clone()),
                Backend::Gpu(_) => unreachable!(),
            },
        }
    }
}
