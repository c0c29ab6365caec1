//! `App`: the object the page's JavaScript (`www/app.js`) and the widget (`www/widget.js`) drive.
//! A thin facade: every method hands over to the page's owners (`web::page`) and turns the answer
//! into JavaScript values. Its names are the page's public API (`window.flowmatch.app`).

use super::backend::Preference;
use super::page::Page;
use crate::engine::QualityPoint;
use crate::model_file::{ModelFile, ModelFormat};
use crate::render::DEFAULT_EXTENT;
use crate::targets::custom::{CustomKind, CustomTarget, MAX_POINTS};
use js_sys::{Array, Float32Array, Object, Promise, Reflect, Uint8Array};
use std::cell::RefCell;
use std::fmt::Write;
use std::rc::Rc;
use wasm_bindgen::prelude::*;

/// The live demo behind a small API for `www/app.js` and `www/widget.js`.
#[wasm_bindgen]
pub struct App {
    page: Rc<RefCell<Page>>,
}

fn set(obj: &Object, key: &str, value: impl Into<JsValue>) {
    let _ = Reflect::set(obj, &key.into(), &value.into());
}

/// A number for JavaScript: `null` when unknown or not finite, so no NaN ever reaches the page.
fn num(x: Option<f64>) -> JsValue {
    x.filter(|v| v.is_finite()).map(JsValue::from).unwrap_or(JsValue::NULL)
}

fn text(x: Option<&str>) -> JsValue {
    x.map(JsValue::from).unwrap_or(JsValue::NULL)
}

fn err(e: impl std::fmt::Display) -> JsError {
    JsError::new(&e.to_string())
}

fn reject(e: impl std::fmt::Display) -> JsValue {
    JsValue::from(JsError::new(&e.to_string()))
}

fn flat(points: &[[f32; 2]]) -> Float32Array {
    let v: Vec<f32> = points.iter().flat_map(|p| [p[0], p[1]]).collect();
    Float32Array::from(&v[..])
}

/// `x,y` CSV of points, one per line, with a header (the CLI's `--out` format).
pub fn points_csv(points: &[[f32; 2]]) -> String {
    let mut out = String::with_capacity(points.len() * 24 + 4);
    out.push_str("x,y\n");
    for p in points {
        let _ = writeln!(out, "{},{}", p[0], p[1]);
    }
    out
}

fn point_js(p: &QualityPoint) -> JsValue {
    let o = Object::new();
    set(&o, "solver", p.solver.name());
    set(&o, "nfe", p.nfe);
    set(&o, "sw2", p.sw2 as f64);
    // Steps for the fixed-step solvers, the tolerance for the adaptive one.
    set(&o, "setting", p.setting);
    o.into()
}

/// A background reading that failed after a new run (reset, new model, loaded weights) replaced
/// the model it measured is no reading (`null`): the CPU engine cancels its jobs on a new model,
/// and a cancelled reading is not an error to show. Any other failure rejects.
fn unless_replaced(page: &Rc<RefCell<Page>>, run: u32, e: String) -> Result<JsValue, JsValue> {
    if page.borrow().readings.run != run {
        Ok(JsValue::NULL)
    } else {
        Err(reject(e))
    }
}

/// `{straightness, kinetic, transportCost, w2Squared}` of a reading, each `null` when unknown or not finite.
fn stats_js(s: Option<&crate::engine::FlowStats>) -> Object {
    let o = Object::new();
    set(&o, "straightness", num(s.map(|s| s.straightness)));
    set(&o, "kinetic", num(s.map(|s| s.kinetic_energy)));
    set(&o, "transportCost", num(s.map(|s| s.transport_cost)));
    set(&o, "w2Squared", num(s.map(|s| s.w2_squared)));
    o
}

/// The exact flow layer's state (`state().exactFlow`): null until the layer first shows it.
fn exact_flow_js(s: Option<&crate::engine::exact_flow::ExactFlowState>) -> JsValue {
    let Some(s) = s else { return JsValue::NULL };
    let o = Object::new();
    set(&o, "particles", s.particles);
    set(&o, "points", s.points);
    set(&o, "steps", s.steps);
    set(&o, "stepsDone", s.steps_done);
    set(&o, "landed", num(s.landed.map(|l| l.0 as f64)));
    set(&o, "pointsHit", num(s.landed.map(|l| l.1 as f64)));
    set(&o, "note", text(s.note.as_deref()));
    set(&o, "caption", crate::engine::exact_flow::caption(s));
    o.into()
}

impl App {
    async fn start_with(canvas: web_sys::HtmlCanvasElement, hash: String, pref: Preference, present: String, widget: bool) -> Result<App, JsError> {
        let page = Page::create(canvas, &hash, pref, &present, widget).await.map_err(err)?;
        Ok(App { page: Rc::new(RefCell::new(page)) })
    }
}

#[wasm_bindgen]
impl App {
    /// Starts a demo on `canvas` with the settings in `hash` (`#dataset=moons&width=64...`).
    /// `backend`: `auto` (WebGPU, or on a software adapter whichever of WebGPU and the CPU is
    /// faster), `webgpu` (WebGPU when the browser has it) or `cpu`. `present`: how WebGPU frames
    /// reach the canvas (`surface`, `readback`, or `""` for the adapter's default). `widget`: the
    /// widget's defaults. Never fails for lack of WebGPU: the CPU engine takes over with a notice.
    pub async fn start(canvas: web_sys::HtmlCanvasElement, hash: String, backend: String, present: String, widget: bool) -> Result<App, JsError> {
        let pref = Preference::parse(&backend).map_err(err)?;
        Self::start_with(canvas, hash, pref, present, widget).await
    }

    /// As `start` with backend `webgpu` (`cpu` when `force_cpu`), page defaults.
    pub async fn create(canvas: web_sys::HtmlCanvasElement, hash: String, force_cpu: bool, present: String) -> Result<App, JsError> {
        let pref = if force_cpu { Preference::Cpu } else { Preference::WebGpu };
        Self::start_with(canvas, hash, pref, present, false).await
    }

    /// One animation frame: train, advance the flow, render. `dt_ms` since the previous frame.
    pub fn frame(&self, dt_ms: f64) {
        Page::frame(&self.page, dt_ms);
    }

    /// Sets one field (`config::FIELDS` names and ranges). What it does to the run follows the
    /// field's effect (live, new samples, or a new model). On error nothing changes and the
    /// message names the field.
    pub fn set(&self, key: &str, value: &str) -> Result<(), JsError> {
        let mut p = self.page.borrow_mut();
        let next = p.session.propose_set(key, value).map_err(err)?;
        p.apply(next).map_err(err)?;
        if crate::config::field(key).is_some_and(|f| f.name == "dataset") {
            // Picking a dataset (even the current one) ends a custom target.
            if let Err(e) = p.end_custom() {
                p.messages.error = Some(e);
            }
        }
        p.session.clear_error(key);
        Ok(())
    }

    /// Applies a whole hash (e.g. after `hashchange`); returns the error messages, one per bad field.
    pub fn apply_hash(&self, hash: &str) -> Array {
        let mut p = self.page.borrow_mut();
        let (next, mut errors) = p.session.propose_hash(hash);
        // The work budget: a setting the device cannot run keeps its current value and is named
        // (with the largest value that fits) first among the errors.
        let (next, refusals) = super::session::fit(next, p.session.config(), &p.engine.profile(), p.budget_target());
        errors.prepend(refusals);
        if let Err(e) = p.apply(next) {
            p.messages.error = Some(e);
        }
        p.session.set_hash_errors(errors);
        drop(p);
        self.hash_errors()
    }

    /// The value of one field as text.
    pub fn get(&self, key: &str) -> Option<String> {
        self.page.borrow().session.get(key)
    }

    /// The page's link: the whole configuration as a URL hash (without `#`).
    pub fn query(&self) -> String {
        self.page.borrow().session.query()
    }

    /// The configuration this page started from before its hash was applied, as a hash: the
    /// defaults for its engine (`web::pacing::page_config`: a GPU, a software adapter or the CPU
    /// engine; the widget's for a widget). Presets and the widget's rejected attributes fall back
    /// to it.
    pub fn defaults(&self) -> String {
        self.page.borrow().defaults.to_page_query()
    }

    /// `[{field, message}]` for each field of the URL hash that was rejected (or refused by the
    /// work budget): at most `session::MAX_HASH_ERRORS`, then one `{field: "", message: "and N
    /// more …"}` when there were more.
    pub fn hash_errors(&self) -> Array {
        let p = self.page.borrow();
        let errors = p.session.hash_errors();
        let entry = |field: &str, message: &str| {
            let o = Object::new();
            set(&o, "field", field);
            set(&o, "message", message);
            JsValue::from(o)
        };
        let list: Array = errors.shown.iter().map(|e| entry(&e.field, &e.message)).collect();
        if let Some(more) = errors.more_message() {
            list.push(&entry("", &more));
        }
        list
    }

    /// Trains; after a run's end (`steps` steps), a new run from the current weights.
    pub fn play(&self) {
        self.page.borrow_mut().play();
    }

    pub fn pause(&self) {
        self.page.borrow_mut().pause();
    }

    /// One training step (training pauses); its loss is read at once where the engine allows.
    pub fn step_once(&self) {
        let mut p = self.page.borrow_mut();
        p.step_once();
        p.read_status(&self.page, true);
    }

    /// Restarts training from the seed's initial weights (same seed → same run).
    pub fn reset(&self) {
        self.page.borrow_mut().reset();
    }

    /// Stops the flow at time `t` in [0, 1] (the scrubber).
    pub fn set_time(&self, t: f32) {
        self.page.borrow_mut().view.clock.scrub(t);
    }

    /// Plays or stops the looping flow animation.
    pub fn set_flow_playing(&self, on: bool) {
        let clock = &mut self.page.borrow_mut().view.clock;
        if on {
            clock.play();
        } else {
            clock.playing = false;
        }
    }

    /// Fixes the training steps per animation frame (benchmarks); 0 or less returns to the
    /// adaptive pacing.
    pub fn set_pacing(&self, steps_per_frame: f64) {
        self.page.borrow_mut().train.pacer.fix_rate((steps_per_frame > 0.0).then_some(steps_per_frame));
    }

    /// Fixes the queue depth (steps queued but not yet confirmed done); 0 returns to the
    /// adaptive depth (steered by the completion signal, `web::pacing`).
    pub fn set_backlog_cap(&self, steps: u32) {
        self.page.borrow_mut().train.pacer.fix_depth(Some(steps.min(crate::gpu::trainer::LOSS_RING)));
    }

    /// Turns a canvas layer on or off (`render::LAYERS`: particles, trajectories, field, target,
    /// heatmap; the older names trails and arrows still work).
    pub fn set_layer(&self, name: &str, on: bool) -> Result<(), JsError> {
        self.page.borrow_mut().view.layers.set(name, on).map_err(err)
    }

    /// The canvas' size in device pixels, and the device pixel ratio (for point sizes).
    pub fn resize(&self, width: u32, height: u32, dpr: f32) {
        let mut p = self.page.borrow_mut();
        p.view.width = width.clamp(1, 8192);
        p.view.height = height.clamp(1, 8192);
        p.view.dpr = if dpr.is_finite() { dpr.clamp(0.5, 4.0) } else { 1.0 };
        let (w, h) = (p.view.width, p.view.height);
        p.engine.resize(w, h);
    }

    /// Everything the page shows and tests read: step, loss, stepsPerSec, backend, ...
    /// Numbers that are not known (or not finite) are `null`.
    pub fn state(&self) -> Object {
        let p = self.page.borrow();
        let o = Object::new();
        let info = p.engine.info();
        let cfg = p.session.config();
        set(&o, "backend", info.backend);
        set(&o, "backendLabel", p.backend.label.as_str());
        set(&o, "backendReason", p.backend.reason.as_str());
        set(&o, "adapter", info.adapter.as_str());
        set(&o, "present", info.present);
        set(&o, "software", info.software);
        set(&o, "step", p.engine.step());
        set(&o, "stepsDone", p.engine.done());
        set(&o, "stepsRead", p.train.read_step);
        set(&o, "loss", num(p.train.last_loss.map(f64::from)));
        set(&o, "lossRecent", num(p.train.history.tail_mean(10).map(f64::from)));
        set(&o, "lossStart", num(p.train.history.head_mean(10).map(f64::from)));
        set(&o, "stepsPerSec", num(Some(p.train.rate.steps_per_s)));
        set(&o, "stepsPerFrame", num(Some(p.train.pacer.per_frame)));
        set(&o, "queueDepth", num(Some(p.train.pacer.depth())));
        // The page thread's ms per frame for training, and for the rest of the frame.
        set(&o, "trainBudgetMs", num(Some(p.train.pacer.budget_ms())));
        set(&o, "frameRestMs", num(Some(p.view.rest_ms)));
        set(&o, "latencyMs", num(Some(p.engine.latency_s() * 1000.0)));
        set(&o, "readLagMs", num(Some(p.train.read_lag_s() * 1000.0)));
        let costs = Object::new();
        for (k, ms) in p.engine.costs() {
            set(&costs, k, ms);
        }
        set(&o, "gpuMs", costs);
        let busy = Object::new();
        for (k, secs) in p.engine.busy() {
            set(&busy, k, secs);
        }
        set(&o, "gpuBusyS", busy);
        // A new build awaits the device's check (the model it replaced is kept until then).
        set(&o, "buildChecking", p.engine.checking());
        // Whether the cards' periodic readings may start (their share of the device).
        set(&o, "readingAllowed", p.engine.reading_allowed());
        set(&o, "readsInFlight", p.reads.get());
        set(&o, "training", p.train.on);
        set(&o, "stepLimit", p.session.step_limit().unwrap_or(0));
        // Where the current run ends (null: no limit), and whether it has (training stopped there).
        set(&o, "runEnd", num(p.run_end().map(f64::from)));
        set(&o, "runDone", p.train.run_done);
        set(&o, "runNote", text(p.train.run_done.then(|| super::training::run_note(cfg)).as_deref()));
        set(&o, "t", p.view.clock.t);
        set(&o, "flowPlaying", p.view.clock.playing);
        set(&o, "trajStep", p.engine.shown_step().map(JsValue::from).unwrap_or(JsValue::NULL));
        set(&o, "odeSteps", p.engine.ode_steps());
        set(&o, "heatmapStep", p.engine.heatmap_step().map(JsValue::from).unwrap_or(JsValue::NULL));
        // What the heat map and the sliced W2 reading measure, where it is not plainly the
        // samples shown (a class, guidance, the SDE, MeanFlow; `engine::notes`).
        set(&o, "heatmapNote", text(crate::engine::notes::heatmap_note(cfg).as_deref()));
        set(&o, "qualityNote", text(crate::engine::notes::quality_note(cfg).as_deref()));
        set(&o, "extent", DEFAULT_EXTENT);
        set(&o, "frames", p.view.frames as f64);
        set(&o, "framesPresented", p.engine.frames_presented());
        set(&o, "workDone", p.engine.work_done() as f64);
        set(&o, "deviceGeneration", num(p.backend.device_gen.map(|g| g as f64)));
        set(&o, "devicesOpened", super::device::devices_opened() as f64);
        set(&o, "error", text(p.messages.error.as_deref()));
        set(&o, "notice", text(p.messages.notice.as_deref()));
        set(&o, "liveBuffers", crate::gpu::counter::live_buffers() as f64);
        set(&o, "liveBytes", crate::gpu::counter::live_bytes() as f64);
        set(&o, "buffersCreated", crate::gpu::counter::buffers_created() as f64);
        let r = &p.backend.recovery;
        set(&o, "recoveries", r.recoveries);
        set(&o, "recovering", r.recovering);
        set(&o, "deviceLost", text(r.lost_reason.as_deref()));
        set(&o, "diverged", p.snapshots.diverged());
        set(&o, "canRestore", p.snapshots.last_good().is_some());
        set(&o, "snapshotStep", p.snapshots.last_good().map(|s| JsValue::from(s.step)).unwrap_or(JsValue::NULL));
        set(&o, "lr", cfg.lr);
        // The latest straightness reading of this run (`flow_stats`; null until one landed).
        let st = stats_js(p.readings.stats.as_ref());
        for k in ["straightness", "kinetic", "transportCost", "w2Squared"] {
            set(&o, k, Reflect::get(&st, &k.into()).unwrap_or(JsValue::NULL));
        }
        set(&o, "fieldError", num(p.readings.field_error));
        // Reflow: rounds made in this run, whether pairs are being made, whether training draws
        // from pairs, and the step the current round ends at.
        set(&o, "reflowRound", p.reflow.round);
        set(&o, "reflowMaking", p.reflow.making.is_some());
        set(&o, "reflowPairs", p.reflow.pairs.as_ref().map_or(0, |(x0, _)| x0.len() as u32));
        set(&o, "reflowUntil", num(p.reflow.until.map(f64::from)));
        set(&o, "reflowRefusal", text(p.reflow_refusal().as_deref()));
        // Why the exact field's arrows are not drawn (layer `exact` on), if they are not.
        set(&o, "exactNote", text(if p.view.layers.exact { p.engine.exact_field_note() } else { None }.as_deref()));
        set(&o, "exactT", num(p.engine.exact_field_t().map(f64::from)));
        // The exact flow (layer `exactflow` on): progress, the landed count, the caption.
        set(&o, "exactFlow", exact_flow_js(if p.view.layers.exact_flow { p.engine.exact_flow() } else { None }.as_ref()));
        set(&o, "straightnessStep", num(p.readings.stats_step.map(f64::from)));
        o
    }

    /// The loss curve: `[step0, loss0, step1, loss1, ...]` (finite losses only).
    pub fn losses(&self) -> Float32Array {
        let p = self.page.borrow();
        let flat: Vec<f32> = p.train.history.points.iter().flat_map(|&(st, l)| [st as f32, l]).collect();
        Float32Array::from(&flat[..])
    }

    /// Puts back a loss curve read with `losses()` (`[step0, loss0, ...]`): a widget rebuilt
    /// after it released its GPU buffers off-screen (www/widget.js) keeps its curve.
    pub fn set_losses(&self, flat: &[f32]) {
        let points: Vec<(u32, f32)> = flat.chunks_exact(2).filter(|c| c[0].is_finite() && c[0] >= 0.0).map(|c| (c[0] as u32, c[1])).collect();
        let mut p = self.page.borrow_mut();
        p.train.history.restore(&points);
        p.train.last_loss = p.train.history.points.last().map(|x| x.1);
    }

    // ---- reliability -------------------------------------------------------------------------

    /// Puts back the last good weights (after a divergence) and resumes training with the
    /// current learning rate. Errors when there is no good snapshot yet.
    pub fn restore_last_good(&self) -> Result<u32, JsError> {
        self.page.borrow_mut().restore_last_good().map_err(err)
    }

    /// The last good snapshot (every few seconds of training; none yet in this run: undefined)
    /// as `{bytes, step}`: a `.flowmatch` file with the current settings and its step, at once
    /// and without a GPU readback. www/keep.js keeps it for Undo and in the browser's storage.
    pub fn last_good_model(&self) -> Option<Object> {
        let file = self.page.borrow().last_good_model()?;
        let o = Object::new();
        set(&o, "bytes", Uint8Array::from(&file.encode_as(ModelFormat::Flowmatch)[..]));
        set(&o, "step", file.step as f64);
        Some(o)
    }

    /// The packed parameters, read back (tests compare them bit for bit).
    pub async fn params(&self) -> Result<Float32Array, JsError> {
        let fut = self.page.borrow().engine.params();
        let v = fut.await.map_err(err)?;
        Ok(Float32Array::from(&v[..]))
    }

    /// The model as a file (configuration, parameters, Adam's moments, step and the schedule's
    /// start): `.flowmatch` by default, or the format named by `format` (`flowmatch` |
    /// `safetensors`). Loading it continues training as if never saved.
    pub async fn save_model(&self, format: Option<String>) -> Result<Uint8Array, JsError> {
        let format = match format.as_deref() {
            None | Some("") => ModelFormat::Flowmatch,
            Some(f) => ModelFormat::from_path(&format!(".{f}"))
                .ok_or_else(|| JsError::new(&format!("unknown model format '{f}': expected flowmatch or safetensors")))?,
        };
        let fut = {
            let p = self.page.borrow();
            // While the device is lost the weights are read from the last snapshot.
            if let Some(file) = p.save_from_snapshot() {
                return Ok(Uint8Array::from(&file.map_err(err)?.encode_as(format)[..]));
            }
            p.engine.model_file(p.session.config().clone())
        };
        let file = fut.await.map_err(err)?;
        Ok(Uint8Array::from(&file.encode_as(format)[..]))
    }

    /// Loads a `.flowmatch` or `.safetensors` file (its training state: `Engine::load_model`). A
    /// file that is not a model, truncated, corrupt or inconsistent
    /// is refused with its own message and the current model is kept. A file of another shape
    /// reconfigures the page to its configuration when `reshape`, else it is refused. Training
    /// is paused afterwards (the loaded weights are shown as they are).
    /// The largest model file `load_model` reads (bytes): the page refuses a larger file before
    /// reading it (`model_file::max_file_bytes`).
    pub fn max_model_bytes(&self) -> f64 {
        crate::model_file::max_file_bytes() as f64
    }

    pub fn load_model(&self, bytes: &[u8], reshape: bool) -> Result<(), JsError> {
        let file = ModelFile::decode(bytes).map_err(err)?;
        self.page.borrow_mut().load_model(file, reshape).map_err(err)
    }

    // ---- your own target ---------------------------------------------------------------------

    /// Trains on points from CSV text (`x,y` per line, header optional; the CLI's format),
    /// centred and scaled into the view. Returns `target_info()`; on bad input throws a message
    /// naming the line and what is allowed, and nothing changes.
    pub fn set_target_csv(&self, text: &str, name: &str) -> Result<Object, JsError> {
        let mut p = self.page.borrow_mut();
        let config_seed = p.session.config().seed;
        let seed = p.custom.next_seed(config_seed);
        let t = CustomTarget::from_csv(text, name, seed).map_err(err)?;
        p.use_custom(t).map_err(err)?;
        drop(p);
        Ok(self.target_info())
    }

    /// Trains on the darkness of an RGBA raster (`width × height`, top row first): `kind` is
    /// `"text"` or `"image"`, `label` what the person typed or the file name, `invert` to make
    /// light pixels the ink. Throws (and changes nothing) on a blank or malformed raster.
    pub fn set_target_image(&self, rgba: &[u8], width: u32, height: u32, kind: &str, label: &str, invert: bool) -> Result<Object, JsError> {
        let kind = match kind {
            "text" => CustomKind::Text,
            "image" => CustomKind::Image,
            other => return Err(JsError::new(&format!("unknown raster kind '{other}': expected text or image"))),
        };
        let mut p = self.page.borrow_mut();
        let config_seed = p.session.config().seed;
        let seed = p.custom.next_seed(config_seed);
        let t = CustomTarget::from_rgba(kind, label, rgba, width as usize, height as usize, invert, seed).map_err(err)?;
        p.use_custom(t).map_err(err)?;
        drop(p);
        Ok(self.target_info())
    }

    /// Paints (or with `erase`, erases) from `(x0, y0)` to `(x1, y1)` in view coordinates with
    /// a brush of `radius` view units. Only the drawing changes; `commit_drawing` trains on it.
    /// Returns the drawing's point count.
    pub fn draw_stroke(&self, x0: f32, y0: f32, x1: f32, y1: f32, radius: f32, erase: bool) -> u32 {
        let mut p = self.page.borrow_mut();
        let brush = p.custom.brush;
        let d = &mut p.custom.drawing;
        if erase {
            d.erase([x0, y0], [x1, y1], radius);
        } else {
            d.stroke_class([x0, y0], [x1, y1], radius, brush);
        }
        d.len() as u32
    }

    /// The brush colour of the next strokes, 0 to `brush_classes() - 1`: a drawing's points carry
    /// their colour as their class, so a class-conditional model learns one class per colour.
    pub fn set_brush_class(&self, class: u32) -> Result<(), JsError> {
        let n = crate::targets::drawing::BRUSH_CLASSES;
        if class >= n {
            return Err(JsError::new(&format!("brush colour {class} is out of range: 0 to {}", n - 1)));
        }
        self.page.borrow_mut().custom.brush = class;
        Ok(())
    }

    /// Empties the drawing. The target being trained stays until the next commit.
    pub fn clear_drawing(&self) {
        self.page.borrow_mut().custom.drawing.clear();
    }

    /// Trains on the drawing from now on (the page calls this during and after each stroke).
    /// Throws for an empty drawing, and nothing changes.
    pub fn commit_drawing(&self) -> Result<Object, JsError> {
        let mut p = self.page.borrow_mut();
        let config_seed = p.session.config().seed;
        let seed = p.custom.next_seed(config_seed);
        let t = CustomTarget::from_drawing(&p.custom.drawing, seed).map_err(err)?;
        p.use_custom(t).map_err(err)?;
        drop(p);
        Ok(self.target_info())
    }

    /// Ends the custom target: back to the standard dataset of the settings, keeping the model.
    pub fn use_dataset_target(&self) -> Result<Object, JsError> {
        self.page.borrow_mut().end_custom().map_err(err)?;
        Ok(self.target_info())
    }

    /// `{custom, kind, label, points, bounds: [xmin, ymin, xmax, ymax], transform: {cx, cy,
    /// scale}, drawingPoints, drawingFull, maxPoints, dataset}`; view = (original − c)·scale.
    pub fn target_info(&self) -> Object {
        let p = self.page.borrow();
        let i = p.custom.info();
        let o = Object::new();
        set(&o, "custom", i.custom);
        set(&o, "drawingPoints", i.drawing_points);
        set(&o, "drawingFull", i.drawing_full);
        set(&o, "maxPoints", MAX_POINTS as u32);
        set(&o, "dataset", p.session.config().dataset.name());
        if i.custom {
            set(&o, "kind", text(i.kind));
            set(&o, "label", text(i.label.as_deref()));
            set(&o, "points", i.points.unwrap_or(0));
            if let Some(t) = i.transform {
                let tr = Object::new();
                set(&tr, "cx", t.center[0]);
                set(&tr, "cy", t.center[1]);
                set(&tr, "scale", t.scale);
                set(&o, "transform", tr);
            }
            if let Some(b) = i.bounds {
                set(&o, "bounds", Float32Array::from(&b[..]));
            }
        }
        o
    }

    /// The custom target's points in view coordinates (`x0, y0, x1, y1, ...`; empty when
    /// training on a standard dataset).
    pub fn target_points(&self) -> Float32Array {
        flat(self.page.borrow().custom.points().unwrap_or(&[]))
    }

    /// Resolves to the shown particles' positions at t = 1 in view coordinates (`Float32Array`
    /// of `x0, y0, x1, y1, ...`); rejects before the first integration.
    pub fn samples(&self) -> Promise {
        let fut = self.page.borrow().engine.samples();
        wasm_bindgen_futures::future_to_promise(async move { Ok(flat(&fut.await.map_err(reject)?).into()) })
    }

    /// Resolves to the samples as CSV (`x,y` header) in the custom target's ORIGINAL
    /// coordinates (the inverse of the centring/scaling; view coordinates for drawings, text,
    /// images and standard datasets).
    pub fn samples_csv(&self) -> Promise {
        let (fut, target) = {
            let p = self.page.borrow();
            (p.engine.samples(), p.custom.for_export())
        };
        wasm_bindgen_futures::future_to_promise(async move { Ok(JsValue::from(target.to_original_csv(&fut.await.map_err(reject)?))) })
    }

    /// Resolves to the shown particles' end positions (t = 1) as CSV text with header `x,y`
    /// (the widget's export); rejects when no flow has been integrated yet or the read fails.
    pub fn export_samples_csv(&self) -> Promise {
        let fut = self.page.borrow().engine.samples();
        wasm_bindgen_futures::future_to_promise(async move { Ok(JsValue::from(points_csv(&fut.await.map_err(reject)?))) })
    }

    // ---- sample quality ----------------------------------------------------------------------

    /// Resolves to the sliced W2 between 1024 samples integrated with the page's solver and nfe
    /// and the target (lower is better), or `null` when it is not finite (the weights it
    /// measured had diverged before the page learnt of it) or when a new run replaced the model
    /// it was measuring. Rejects once a divergence is known.
    pub fn sample_quality(&self) -> Promise {
        let (fut, run) = {
            let mut p = self.page.borrow_mut();
            if p.snapshots.diverged() {
                return Promise::reject(&reject(crate::engine::quality::DIVERGED));
            }
            let c = p.session.config().clone();
            (p.engine.sample_quality(c.solver, c.nfe, c.tol), p.readings.run)
        };
        let page = self.page.clone();
        wasm_bindgen_futures::future_to_promise(async move {
            match fut.await {
                Ok(q) => Ok(num(Some(q.sw2 as f64))),
                Err(e) => unless_replaced(&page, run, e),
            }
        })
    }

    /// Resolves to an array of `{solver, nfe, sw2, setting}`: each fixed-step solver at 4..64
    /// evaluations per sample (where that is at least one step) and dopri5 at five tolerances
    /// (nfe: the mean evaluations it used), all for the current weights
    /// (`engine::quality::comparison_plan`).
    pub fn compare_solvers(&self) -> Promise {
        let fut = {
            let mut p = self.page.borrow_mut();
            if p.snapshots.diverged() {
                return Promise::reject(&reject(crate::engine::quality::DIVERGED));
            }
            p.engine.compare_solvers()
        };
        wasm_bindgen_futures::future_to_promise(async move { Ok(fut.await.map_err(reject)?.iter().map(point_js).collect::<Array>().into()) })
    }

    /// Resolves to `{straightness, kinetic, transportCost, w2Squared}` (`engine::Engine::flow_stats`) of 1024
    /// samples integrated with the page's solver and nfe: straightness `E ∫|(x1 - x0) - v|² dt`,
    /// kinetic energy `E ∫|v|² dt` and transport cost `E |x1 - x0|²`; each `null` when not finite.
    /// The minibatch W2² is not computed on the page (its matching costs seconds of a software
    /// adapter per reading): `w2Squared` is null (the CLI reports it). `state()` reports the latest until a new
    /// run starts. Rejects once a divergence is known, or when the device cannot run the reading;
    /// `null` when a new run replaced the model it was measuring.
    pub fn flow_stats(&self) -> Promise {
        let (fut, run, step) = {
            let mut p = self.page.borrow_mut();
            if p.snapshots.diverged() {
                return Promise::reject(&reject(crate::engine::quality::DIVERGED));
            }
            let c = p.session.config().clone();
            (p.engine.flow_stats(c.solver, c.nfe, false), p.readings.run, p.engine.step())
        };
        let page = self.page.clone();
        wasm_bindgen_futures::future_to_promise(async move {
            let s = match fut.await {
                Ok(s) => s,
                Err(e) => return unless_replaced(&page, run, e),
            };
            {
                let mut p = page.borrow_mut();
                if p.readings.run == run {
                    p.readings.stats = Some(s);
                    p.readings.stats_step = Some(step);
                }
            }
            Ok(stats_js(Some(&s)).into())
        })
    }

    // ---- rectified flow ------------------------------------------------------------------------

    /// Reflow (Liu, Gong and Liu 2022, "Flow Straight and Fast", arXiv 2209.03003): integrates
    /// `reflow_pairs` fresh noise points through the current weights with the page's solver and
    /// nfe into (noise, sample) pairs on the engine, then trains on those fixed pairs from the
    /// current weights for `reflow_steps` steps (training resumes, and pauses at the round's end).
    /// Resolves to the round's number (1: the model is becoming the 2-rectified flow), or `null`
    /// when a new run replaced the model meanwhile. Rejects when the settings cannot reflow.
    pub fn reflow(&self) -> Promise {
        let (fut, run, round) = {
            let mut p = self.page.borrow_mut();
            if p.snapshots.diverged() {
                return Promise::reject(&reject(crate::engine::quality::DIVERGED));
            }
            if let Some(why) = p.reflow_refusal() {
                return Promise::reject(&reject(why));
            }
            let c = p.session.config().clone();
            let round = p.reflow.round + 1;
            let seed = crate::cpu::reflow::noise_seed(c.seed, round - 1);
            let run = p.readings.run;
            p.reflow.making = Some(run);
            (p.engine.integrate_fresh(seed, c.reflow_pairs, c.solver, c.nfe, c.tol), run, round)
        };
        let page = self.page.clone();
        wasm_bindgen_futures::future_to_promise(async move {
            let r = fut.await;
            let mut p = page.borrow_mut();
            if p.reflow.making == Some(run) {
                p.reflow.making = None;
            }
            if p.readings.run != run {
                return Ok(JsValue::NULL);
            }
            let pairs = r.map_err(reject)?;
            p.start_round(round, pairs).map_err(reject)?;
            Ok(JsValue::from(round))
        })
    }

    /// Resolves to `{points, sw2}`: the quality probe's 1024 starting points moved by ONE Euler
    /// step of the current weights (`Float32Array` of `x0, y0, ...`) and their sliced W2 against
    /// the target; `null` when a new run replaced the model meanwhile. A straight (rectified)
    /// flow makes good samples in one step.
    pub fn one_step_preview(&self) -> Promise {
        use crate::engine::quality::{PROBE_SEED, QUALITY_SAMPLES};
        let (fut, quality, run) = {
            let mut p = self.page.borrow_mut();
            if p.snapshots.diverged() {
                return Promise::reject(&reject(crate::engine::quality::DIVERGED));
            }
            let tol = p.session.config().tol;
            let fut = p.engine.integrate_fresh(PROBE_SEED, QUALITY_SAMPLES, crate::config::Solver::Euler, 1, tol);
            (fut, p.engine.sample_quality(crate::config::Solver::Euler, 1, tol), p.readings.run)
        };
        let page = self.page.clone();
        wasm_bindgen_futures::future_to_promise(async move {
            let (_, x1) = match fut.await {
                Ok(pairs) => pairs,
                Err(e) => return unless_replaced(&page, run, e),
            };
            let q = match quality.await {
                Ok(q) => q,
                Err(e) => return unless_replaced(&page, run, e),
            };
            if page.borrow().readings.run != run {
                return Ok(JsValue::NULL);
            }
            let o = Object::new();
            set(&o, "points", flat(&x1));
            set(&o, "sw2", num(Some(q.sw2 as f64)));
            Ok(o.into())
        })
    }

    /// Resolves to the field error `E_{t, x_t} |v_θ - u_t|²` of the current weights against the
    /// exact marginal field of the training points (`engine::Engine::field_error`, 64 fixed
    /// queries), `null` when not finite or when the source is not Gaussian (no exact field then).
    /// `state().fieldError` reports the latest until a new run starts. Rejects once a divergence
    /// is known, or when the device cannot run the reading; `null` when a new run replaced the
    /// model it was measuring.
    pub fn field_error(&self) -> Promise {
        let (fut, run) = {
            let mut p = self.page.borrow_mut();
            if p.snapshots.diverged() {
                return Promise::reject(&reject(crate::engine::quality::DIVERGED));
            }
            if p.session.config().source != crate::config::Source::Gaussian {
                return Promise::resolve(&JsValue::NULL);
            }
            (p.engine.field_error(0), p.readings.run)
        };
        let page = self.page.clone();
        wasm_bindgen_futures::future_to_promise(async move {
            let e = match fut.await {
                Ok(e) => e,
                Err(e) => return unless_replaced(&page, run, e),
            };
            {
                let mut p = page.borrow_mut();
                if p.readings.run == run {
                    p.readings.field_error = Some(e);
                }
            }
            Ok(num(Some(e)))
        })
    }

    // ---- the step limit (the `steps` field) ----------------------------------------------------

    /// Runs of `limit` steps (0: no limit, a constant rate): the `steps` setting, as `set`.
    pub fn set_step_limit(&self, limit: u32) -> Result<(), JsError> {
        self.set("steps", &limit.to_string())?;
        self.page.borrow_mut().stop_at_limit();
        Ok(())
    }

    /// The step limit (0: none).
    pub fn step_limit(&self) -> u32 {
        self.page.borrow().session.step_limit().unwrap_or(0)
    }
}
