//! `App`: the object the page's JavaScript (`www/app.js`) drives.
//!
//! Created from a canvas and the URL hash: the page defaults for the backend are applied first,
//! then the hash (invalid fields are reported and keep their default). One backend runs: WebGPU
//! (`GpuView`) or, when the browser has no adapter, the CPU reference (`CpuView`) with a notice.
//! `frame(dt)` is called once per animation frame and never waits: GPU losses come back through
//! one detached status read kept in flight (`spawn_local`), which also steers the steps per frame.

use super::cpu_view::CpuView;
use super::gpu_view::GpuView;
use super::pacing::{page_config, FlowClock, LossHistory, Pacing};
use crate::config::{Config, ConfigError, Effect};
use crate::gpu::trainer::{TrainStatus, LOSS_RING};
use crate::gpu::GpuError;
use crate::render::{Layers, Viewport, DEFAULT_EXTENT};
use js_sys::{Array, Object, Reflect};
use std::cell::RefCell;
use std::rc::Rc;
use wasm_bindgen::prelude::*;

/// "Your own target": draw, text, image and CSV targets (`www/targets.js`).
#[path = "custom_target.rs"]
mod custom_target;
#[path = "reliability.rs"]
mod reliability;
/// Sample quality and the solver comparison (a child module: it reads `App`'s state).
#[path = "quality_view.rs"]
mod quality_view;

/// What the page says when the browser has no WebGPU adapter.
pub const NO_WEBGPU_NOTICE: &str = "WebGPU is not available in this browser, so training runs on the CPU \
reference backend with a smaller model (slower, same maths). WebGPU is on by default in Chrome and Edge 113+ \
on Windows, macOS and ChromeOS, Chrome 121+ on Android, Safari 26+ and Firefox 141+ on Windows; on Linux, \
Chrome needs chrome://flags/#enable-unsafe-webgpu (or --enable-unsafe-webgpu).";

enum Backend {
    Gpu(Box<GpuView>),
    Cpu(Box<CpuView>),
}

struct Inner {
    config: Config,
    /// Training stops (pauses) at this step (`set_step_limit`, the widget's `train-steps`).
    step_limit: Option<u32>,
    backend: Backend,
    hash_errors: Vec<ConfigError>,
    training: bool,
    clock: FlowClock,
    layers: Layers,
    pacing: Pacing,
    /// Steps per frame fixed by `set_pacing` (benchmarks), overriding the adaptive rate.
    fixed_pace: Option<f64>,
    /// Backlog cap fixed by `set_backlog_cap`, overriding the adaptive one.
    fixed_cap: Option<u32>,
    /// Seconds the last status read took to come back.
    read_lag_s: f64,
    losses: LossHistory,
    last_loss: Option<f32>,
    steps_per_sec: f64,
    /// Steps whose losses have been read (GPU) or recorded (CPU).
    read_step: u32,
    rate_mark: Option<(f64, u32)>,
    frame_ms: f64,
    width: u32,
    height: u32,
    dpr: f32,
    /// Bumped on reset/retrain; status reads from an older generation are dropped.
    generation: u32,
    status_in_flight: bool,
    last_status: f64,
    error: Option<String>,
    notice: Option<String>,
    adapter: String,
    software: bool,
    frames: u64,
    /// Generation of the shared device this instance runs on (`device::shared_context`).
    device_gen: Option<u64>,
    custom: custom_target::CustomState,
    /// Snapshots, divergence undo, device-loss recovery (`reliability.rs`).
    rel: reliability::Reliability,
    /// The canvas, kept to rebuild the backend on a new device.
    canvas: web_sys::HtmlCanvasElement,
}

/// The live demo: trainer + flow + renderer behind a small API for `www/app.js`.
#[wasm_bindgen]
pub struct App {
    inner: Rc<RefCell<Inner>>,
}

fn now_s() -> f64 {
    web_sys::window().and_then(|w| w.performance()).map(|p| p.now() / 1000.0).unwrap_or(0.0)
}

fn set(obj: &Object, key: &str, value: impl Into<JsValue>) {
    let _ = Reflect::set(obj, &key.into(), &value.into());
}

// Widget-only additions to `App` (step limit, samples export, defaults): src/web/widget.rs.
#[path = "widget.rs"]
mod widget;

/// True when going from `a` to `b` changes anything that defines the training run (the
/// fields' [`Effect`]s in `config::FIELDS`).
fn needs_retrain(a: &Config, b: &Config) -> bool {
    a.change_effect(b) == Some(Effect::Retrain)
}

#[wasm_bindgen]
impl App {
    /// Starts the demo on `canvas` with the settings in `hash` (`#dataset=moons&width=64...`).
    /// `force_cpu` skips WebGPU (for comparing backends). Never fails for lack of WebGPU: the CPU
    /// backend takes over and `state().notice` says so.
    ///
    /// `present` picks how WebGPU frames reach the canvas: `"surface"` (its WebGPU context),
    /// `"readback"` (offscreen texture copied to a 2D canvas), or `""` for the default: readback on
    /// software adapters (see `gpu_view::Present`), surface elsewhere.
    pub async fn create(canvas: web_sys::HtmlCanvasElement, hash: String, force_cpu: bool, present: String) -> Result<App, JsError> {
        let (w, h) = (canvas.width().max(1), canvas.height().max(1));
        let canvas_keep = canvas.clone();
        let mut device_gen = None;
        let gpu = if force_cpu {
            Err(GpuError::NoAdapter("the CPU backend was requested (cpu=1)".into()))
        } else {
            super::device::shared_context().await
        };
        let (backend, config, hash_errors, notice, adapter, software, error) = match gpu {
            Ok((ctx, gen)) => {
                device_gen = Some(gen);
                let software = ctx.adapter.is_software();
                let mut config = page_config(software);
                let errors = config.apply_query(&hash);
                let adapter = ctx.adapter.to_string();
                let readback = match present.as_str() {
                    "surface" => false,
                    "readback" => true,
                    _ => software,
                };
                match GpuView::new(ctx.clone(), canvas.clone(), &config, readback) {
                    Ok(v) => (Backend::Gpu(Box::new(v)), config, errors, None, adapter, software, None),
                    Err(e) => {
                        // The hash asked for something this device cannot run: start from the defaults.
                        let config = page_config(software);
                        let v = GpuView::new(ctx, canvas.clone(), &config, readback).map_err(|e| JsError::new(&e))?;
                        let msg = format!("{e}; started with the default settings instead");
                        (Backend::Gpu(Box::new(v)), config, errors, None, adapter, software, Some(msg))
                    }
                }
            }
            Err(e) => {
                let mut config = page_config(true);
                let errors = config.apply_query(&hash);
                let notice = if force_cpu { format!("Running on the CPU reference backend ({e}).") } else { NO_WEBGPU_NOTICE.to_string() };
                web_sys::console::warn_1(&format!("flowmatch: no WebGPU ({e}); using the CPU backend").into());
                let mut err = None;
                let v = match CpuView::new(canvas.clone(), &config) {
                    Ok(v) => v,
                    Err(e2) => {
                        config = page_config(true);
                        err = Some(format!("{e2}; started with the default settings instead"));
                        CpuView::new(canvas, &config).map_err(|e| JsError::new(&e))?
                    }
                };
                (Backend::Cpu(Box::new(v)), config, errors, Some(notice), "CPU (WebAssembly reference)".to_string(), true, err)
            }
        };
        let initial_rate = if software { 0.5 } else { 8.0 };
        let mut rel = reliability::Reliability::default();
        if let Backend::Gpu(g) = &backend {
            rel.watch(&g.ctx.device);
        }
        let inner = Inner {
            config,
            step_limit: None,
            backend,
            hash_errors,
            training: true,
            clock: FlowClock::default(),
            layers: Layers::default(),
            pacing: Pacing::new(initial_rate, 0.05, 256.0),
            fixed_pace: None,
            fixed_cap: None,
            read_lag_s: 0.0,
            losses: LossHistory::new(4000),
            last_loss: None,
            steps_per_sec: 0.0,
            read_step: 0,
            rate_mark: None,
            frame_ms: 16.7,
            width: w,
            height: h,
            dpr: 1.0,
            generation: 0,
            status_in_flight: false,
            last_status: 0.0,
            error,
            notice,
            adapter,
            software,
            frames: 0,
            device_gen,
            custom: Default::default(),
            rel,
            canvas: canvas_keep,
        };
        Ok(App { inner: Rc::new(RefCell::new(inner)) })
    }

    /// One animation frame: train, advance the flow, render. `dt_ms` since the previous frame.
    pub fn frame(&self, dt_ms: f64) {
        let now = now_s();
        let status = {
            let mut s = self.inner.borrow_mut();
            s.frames += 1;
            if s.check_device(&self.inner) {
                return;
            }
            if dt_ms.is_finite() && dt_ms > 0.0 {
                s.frame_ms = 0.9 * s.frame_ms + 0.1 * dt_ms.min(250.0);
            }
            let wrapped = s.clock.advance((dt_ms / 1000.0) as f32);
            let training = s.training && s.error.is_none();
            let (t, layers) = (s.clock.t, s.layers);
            let vp = Viewport { width: s.width, height: s.height, extent: DEFAULT_EXTENT };
            let point_px = (2.6 * s.dpr).max(2.0);
            let n = match (&s.backend, training) {
                (Backend::Gpu(g), true) => {
                    let backlog = g.trainer.step().saturating_sub(s.read_step);
                    let horizon = if s.software { 0.6 } else { 0.3 };
                    let cap = s.fixed_cap.unwrap_or_else(|| Pacing::max_backlog(s.steps_per_sec, horizon, if s.software { 4 } else { 32 }));
                    s.pacing.take_capped(backlog, cap).min(s.steps_left())
                }
                _ => 0,
            };
            let left = s.steps_left();
            let cpu_out = match &mut s.backend {
                Backend::Gpu(g) => {
                    if n > 0 {
                        g.trainer.train(n);
                    }
                    g.frame(now, t, wrapped, layers, vp, point_px);
                    None
                }
                Backend::Cpu(c) => {
                    let out = training.then(|| c.train_at_most(1, left));
                    c.frame(now, t, wrapped, layers, vp, point_px);
                    out
                }
            };
            if let Some(out) = cpu_out {
                s.record_cpu(now, &out);
            }
            s.stop_at_limit();
            if let Some((fut, timeline)) = s.maybe_snapshot(now) {
                let inner = Rc::downgrade(&self.inner);
                wasm_bindgen_futures::spawn_local(async move {
                    let result = fut.await;
                    if let Some(inner) = inner.upgrade() {
                        inner.borrow_mut().on_snapshot(timeline, result);
                    }
                });
            }
            s.maybe_status(now)
        };
        if let Some((fut, gen, requested)) = status {
            let inner = Rc::downgrade(&self.inner);
            wasm_bindgen_futures::spawn_local(async move {
                let result = fut.await;
                if let Some(inner) = inner.upgrade() {
                    inner.borrow_mut().on_status(gen, requested, result);
                }
            });
        }
    }

    /// Sets one field (`Config::set` names and ranges). Solver, steps (nfe), particles and the
    /// learning rate apply at once; anything that changes the model restarts training. On error
    /// nothing changes and the message names the field.
    pub fn set(&self, key: &str, value: &str) -> Result<(), JsError> {
        let mut s = self.inner.borrow_mut();
        let mut next = s.config.clone();
        next.set(key, value).map_err(|e| JsError::new(&e.to_string()))?;
        s.apply(next).map_err(|e| JsError::new(&e))?;
        let field = key.trim().to_ascii_lowercase().replace('-', "_");
        if field == "dataset" {
            s.chose_dataset();
        }
        s.hash_errors.retain(|e| e.field() != field);
        Ok(())
    }

    /// Applies a whole hash (e.g. after `hashchange`); returns the error messages, one per bad field.
    pub fn apply_hash(&self, hash: &str) -> Array {
        let mut s = self.inner.borrow_mut();
        let mut next = s.config.clone();
        let errors = next.apply_query(hash);
        if let Err(e) = s.apply(next) {
            s.error = Some(e);
        }
        s.hash_errors = errors;
        s.hash_errors_js()
    }

    /// The value of one field as text.
    pub fn get(&self, key: &str) -> Option<String> {
        let s = self.inner.borrow();
        s.config.to_pairs().into_iter().find(|(k, _)| *k == key).map(|(_, v)| v)
    }

    /// The whole configuration as a URL hash (without `#`).
    pub fn query(&self) -> String {
        self.inner.borrow().config.to_query()
    }

    /// `[{field, message}]` for each field of the URL hash that was rejected.
    pub fn hash_errors(&self) -> Array {
        self.inner.borrow().hash_errors_js()
    }

    pub fn play(&self) {
        let mut s = self.inner.borrow_mut();
        s.training = true;
        s.error = None;
    }

    pub fn pause(&self) {
        self.inner.borrow_mut().training = false;
    }

    /// One training step (while paused).
    pub fn step_once(&self) {
        let mut s = self.inner.borrow_mut();
        s.training = false;
        let now = now_s();
        match &mut s.backend {
            Backend::Gpu(g) => g.trainer.train(1),
            Backend::Cpu(c) => {
                let out = [(c.trainer.step, c.trainer.step())];
                s.record_cpu(now, &out);
            }
        }
        s.last_status = now - 1.0;
    }

    /// Restarts training from the seed's initial weights (same seed → same run).
    pub fn reset(&self) {
        let mut s = self.inner.borrow_mut();
        let seed = s.config.seed;
        match &mut s.backend {
            Backend::Gpu(g) => g.reset(seed),
            Backend::Cpu(c) => c.reset(seed),
        }
        s.restart_metrics();
    }

    /// Stops the flow at time `t` in [0, 1] (the scrubber).
    pub fn set_time(&self, t: f32) {
        self.inner.borrow_mut().clock.scrub(t);
    }

    /// Plays or stops the looping flow animation.
    pub fn set_flow_playing(&self, on: bool) {
        let mut s = self.inner.borrow_mut();
        if on {
            s.clock.play();
        } else {
            s.clock.playing = false;
        }
    }

    /// Fixes the training steps per animation frame (benchmarks); 0 or less returns to the
    /// adaptive rate.
    pub fn set_pacing(&self, steps_per_frame: f64) {
        let mut s = self.inner.borrow_mut();
        s.fixed_pace = (steps_per_frame.is_finite() && steps_per_frame > 0.0).then_some(steps_per_frame.min(4096.0));
        if let Some(x) = s.fixed_pace {
            s.pacing.steps_per_frame = x;
        }
    }

    /// Fixes the backlog cap (training steps queued but not yet confirmed by a status read);
    /// 0 returns to the adaptive cap. For soak tests and benchmarks: in headless Chromium on
    /// SwiftShader a status read takes 0.5–8 s to come back even with a near-empty queue, so the
    /// adaptive cap (about 0.6 s of the measured rate, at least 4 steps) holds S to a few steps/s.
    pub fn set_backlog_cap(&self, steps: u32) {
        self.inner.borrow_mut().fixed_cap = (steps > 0).then_some(steps.min(LOSS_RING));
    }

    /// Turns a layer on or off: `particles`, `trails`, `arrows` or `target`.
    pub fn set_layer(&self, name: &str, on: bool) -> Result<(), JsError> {
        let mut s = self.inner.borrow_mut();
        let l = &mut s.layers;
        match name {
            "particles" => l.particles = on,
            "trails" => l.trails = on,
            "arrows" => l.arrows = on,
            "target" => l.target = on,
            "heatmap" => l.heatmap = on,
            _ => return Err(JsError::new(&format!("unknown layer '{name}': expected particles, trails, arrows, target or heatmap"))),
        }
        Ok(())
    }

    /// The canvas' size in device pixels, and the device pixel ratio (for point sizes).
    pub fn resize(&self, width: u32, height: u32, dpr: f32) {
        let mut s = self.inner.borrow_mut();
        s.width = width.clamp(1, 8192);
        s.height = height.clamp(1, 8192);
        s.dpr = if dpr.is_finite() { dpr.clamp(0.5, 4.0) } else { 1.0 };
        let (w, h) = (s.width, s.height);
        match &mut s.backend {
            Backend::Gpu(g) => g.resize(w, h),
            Backend::Cpu(c) => c.resize(w, h),
        }
    }

    /// Everything the page shows and tests read: step, loss, stepsPerSec, backend, ...
    pub fn state(&self) -> Object {
        let s = self.inner.borrow();
        let o = Object::new();
        let (backend, step, traj_step, steps_shown) = match &s.backend {
            Backend::Gpu(g) => ("webgpu", g.trainer.step(), g.traj_step, g.steps),
            Backend::Cpu(c) => ("cpu", c.trainer.step, c.traj_step, c.steps),
        };
        set(&o, "backend", backend);
        set(&o, "adapter", s.adapter.as_str());
        set(&o, "present", match &s.backend {
            Backend::Gpu(g) if g.is_readback() => "readback",
            Backend::Gpu(_) => "surface",
            Backend::Cpu(_) => "canvas2d",
        });
        set(&o, "software", s.software);
        set(&o, "step", step);
        set(&o, "stepsRead", s.read_step);
        set(&o, "loss", s.last_loss.map(|l| l as f64).unwrap_or(f64::NAN));
        set(&o, "lossRecent", s.losses.tail_mean(10).map(|l| l as f64).unwrap_or(f64::NAN));
        set(&o, "lossStart", s.losses.head_mean(10).map(|l| l as f64).unwrap_or(f64::NAN));
        set(&o, "stepsPerSec", s.steps_per_sec);
        set(&o, "stepsPerFrame", s.pacing.steps_per_frame);
        set(&o, "readLagMs", s.read_lag_s * 1000.0);
        set(&o, "training", s.training);
        set(&o, "t", s.clock.t);
        set(&o, "flowPlaying", s.clock.playing);
        set(&o, "trajStep", traj_step.map(JsValue::from).unwrap_or(JsValue::NULL));
        set(&o, "odeSteps", steps_shown);
        set(&o, "extent", DEFAULT_EXTENT);
        set(&o, "frames", s.frames as f64);
        set(&o, "deviceGeneration", s.device_gen.map(|g| g as f64).unwrap_or(f64::NAN));
        set(&o, "devicesOpened", super::device::devices_opened() as f64);
        set(&o, "error", s.error.as_deref().map(JsValue::from).unwrap_or(JsValue::NULL));
        set(&o, "notice", s.notice.as_deref().map(JsValue::from).unwrap_or(JsValue::NULL));
        s.reliability_state(&o);
        o
    }

    /// The loss curve: `[step0, loss0, step1, loss1, ...]`.
    pub fn losses(&self) -> js_sys::Float32Array {
        let s = self.inner.borrow();
        let flat: Vec<f32> = s.losses.points.iter().flat_map(|&(st, l)| [st as f32, l]).collect();
        js_sys::Float32Array::from(&flat[..])
    }
}

impl Inner {
    fn hash_errors_js(&self) -> Array {
        self.hash_errors
            .iter()
            .map(|e| {
                let o = Object::new();
                set(&o, "field", e.field());
                set(&o, "message", e.to_string());
                JsValue::from(o)
            })
            .collect()
    }

    /// Moves to `next`, doing only the work its differences need. On error nothing changes.
    fn apply(&mut self, next: Config) -> Result<(), String> {
        let old = self.config.clone();
        if next == old {
            return Ok(());
        }
        next.check_solver().map_err(|e| e.to_string())?;
        if needs_retrain(&old, &next) {
            match &mut self.backend {
                Backend::Gpu(g) => g.retrain(&next)?,
                Backend::Cpu(c) => c.retrain(&next)?,
            }
            self.restart_metrics();
            self.after_retrain(&old, &next);
        } else {
            match &mut self.backend {
                Backend::Gpu(g) => {
                    if next.particles != old.particles || next.nfe != old.nfe {
                        g.resample(&next)?;
                    } else if next.solver != old.solver {
                        g.set_solver(next.solver);
                    }
                    g.trainer.set_lr(next.lr, next.schedule, next.schedule_steps());
                    if next.tol != old.tol {
                        g.set_tol(next.tol)?;
                    }
                }
                Backend::Cpu(c) => {
                    if next.particles != old.particles || next.nfe != old.nfe {
                        c.resample(&next)?;
                    } else if next.solver != old.solver {
                        c.set_solver(next.solver);
                    }
                    c.set_lr(next.lr, next.schedule, next.schedule_steps());
                    if next.tol != old.tol {
                        c.set_tol(next.tol);
                    }
                }
            }
        }
        self.config = next;
        Ok(())
    }

    fn restart_metrics(&mut self) {
        self.generation += 1;
        self.losses.clear();
        self.last_loss = None;
        self.read_step = 0;
        self.rate_mark = None;
        self.steps_per_sec = 0.0;
        self.error = None;
        self.status_in_flight = false;
        self.rel.new_run();
        if let Backend::Gpu(g) = &mut self.backend {
            g.frozen = false;
        }
    }

    /// Losses of CPU steps just taken.
    fn record_cpu(&mut self, now: f64, out: &[(u32, f32)]) {
        for &(step, loss) in out {
            self.losses.push(step, loss);
        }
        if let Some(&(step, loss)) = out.last() {
            self.last_loss = Some(loss);
            self.read_step = step + 1;
            self.update_rate(now, step + 1);
        }
        if let Some(&(b, _)) = out.iter().find(|(_, l)| !l.is_finite()) {
            self.diverged(b);
        }
    }

    fn update_rate(&mut self, now: f64, step: u32) {
        match self.rate_mark {
            Some((t0, s0)) if now - t0 >= 0.5 => {
                let rate = step.saturating_sub(s0) as f64 / (now - t0);
                self.steps_per_sec = if self.steps_per_sec > 0.0 { 0.5 * self.steps_per_sec + 0.5 * rate } else { rate };
                self.rate_mark = Some((now, step));
            }
            None => self.rate_mark = Some((now, step)),
            _ => {}
        }
    }

    fn diverged(&mut self, step: u32) {
        self.on_diverged(step);
    }

    /// Starts a status read when none is in flight and the last one is old enough.
    #[allow(clippy::type_complexity)]
    fn maybe_status(
        &mut self,
        now: f64,
    ) -> Option<(impl std::future::Future<Output = Result<TrainStatus, GpuError>> + 'static, u32, f64)> {
        let Backend::Gpu(g) = &self.backend else { return None };
        let gap = if self.software { 0.25 } else { 0.1 };
        if self.status_in_flight || now - self.last_status < gap || g.trainer.step() == self.read_step {
            return None;
        }
        let since = self.read_step.max(g.trainer.step().saturating_sub(LOSS_RING));
        self.status_in_flight = true;
        self.last_status = now;
        Some((g.status(since), self.generation, now))
    }

    fn on_status(&mut self, generation: u32, requested: f64, result: Result<TrainStatus, GpuError>) {
        if generation != self.generation {
            return;
        }
        self.status_in_flight = false;
        let now = now_s();
        match result {
            Ok(st) => {
                for &(step, loss) in &st.losses {
                    if step >= self.read_step {
                        self.losses.push(step, loss);
                    }
                }
                if let Some(&(_, l)) = st.losses.last() {
                    self.last_loss = Some(l);
                }
                self.read_step = self.read_step.max(st.step);
                self.update_rate(now, st.step);
                if self.fixed_pace.is_none() {
                    self.pacing.observe_read();
                }
                if let Backend::Gpu(g) = &mut self.backend {
                    if self.steps_per_sec > 0.0 {
                        g.observe_steps_per_sec(self.steps_per_sec);
                    }
                }
                self.read_lag_s = now - requested;
                if let Some(b) = st.first_bad_step.or_else(|| self.exploded(&st.losses)) {
                    self.diverged(b);
                }
            }
            Err(e) => {
                self.error = Some(format!("reading the training status failed: {e}"));
            }
        }
    }
}

/// The allowed values of an enum field (`dataset`, `activation`, `solver`, ...), for the selects.
#[wasm_bindgen]
pub fn choices(field: &str) -> Vec<String> {
    use crate::config::{Activation, Coupling, Dataset, LrSchedule, Path, Solver};
    fn names<T: Copy>(all: &[T], name: fn(T) -> &'static str) -> Vec<String> {
        all.iter().map(|&v| name(v).to_string()).collect()
    }
    match field {
        "dataset" => names(Dataset::ALL, Dataset::name),
        "source" => std::iter::once("gaussian".to_string()).chain(names(Dataset::ALL, Dataset::name)).collect(),
        "activation" => names(Activation::ALL, Activation::name),
        "solver" => names(Solver::ALL, Solver::name),
        "path" => names(Path::ALL, Path::name),
        "coupling" => names(Coupling::ALL, Coupling::name),
        "schedule" => names(LrSchedule::ALL, LrSchedule::name),
        _ => Vec::new(),
    }
}

/// The field names the configuration accepts, in hash order.
#[wasm_bindgen]
pub fn fields() -> Vec<String> {
    crate::config::FIELDS.iter().map(|f| f.name.to_string()).collect()
}
