//! One running demo (the page, or one widget): the engine and the owners around it, and the
//! orchestration between them. Each owner keeps its own state; only this file moves things from
//! one to another.
//!
//! - `engine` (`engine::Engine`): the model, its samples, the drawing — WebGPU or the CPU.
//! - `session` (`web::session`): the configuration and the rejected hash fields.
//! - `train` (`web::training`): pacing, status reads, loss history, rate; whether training runs.
//! - `snapshots` (`web::reliability`): good snapshots and divergence.
//! - `custom` (`web::targets`): the drawing and the custom target.
//! - `view`: flow clock, layers, canvas size, frame time.
//! - `backend` (`web::backend`): canvas, device generation, why this backend, device-loss recovery.
//! - `messages`: the error and the notice the page shows.
//!
//! GPU errors (`Engine::gpu_fault`, checked every frame) reach `messages.error` once each: a
//! model or samples the device could not build are replaced by what was there before (the
//! settings, loss history and snapshots from before the change come back with them), or by the
//! defaults when there was nothing before; any other GPU error pauses training.
//!
//! `frame` is called once per animation frame and never waits: training is queued, reads are
//! spawned (`spawn_local`) and folded in when they land, through a weak reference to the page.

use super::backend::{self, Backend, Preference, Recovery, Trial};
use super::pacing::{page_config, widget_config, FlowClock, FramePeriod, Pacer, Runs};
use super::reliability::{divergence_message, gave_up_message, gpu_fault_message, AfterFault, GiveUp, Next, Snapshots};
use super::session::Session;
use crate::budget::{check, Profile, Target};
use super::targets::CustomTargets;
use super::training::{ReadTicket, TrainLoop};
use crate::config::{Config, Effect};
use crate::engine::{jobs::now_ms, Build, Engine, FaultReport, FrameInput};
use crate::gpu::snapshot::Snapshot;
use crate::gpu::trainer::TrainStatus;
use crate::model_file::ModelFile;
use crate::render::{Layers, Viewport, DEFAULT_EXTENT};
use crate::targets::CustomTarget;
use std::cell::{Cell, RefCell};
use std::rc::{Rc, Weak};

/// What the canvas shows and how fast frames come.
pub struct View {
    pub clock: FlowClock,
    pub layers: Layers,
    pub width: u32,
    pub height: u32,
    pub dpr: f32,
    /// Milliseconds between frames (moving average).
    pub frame_ms: f64,
    /// The display's frame period (the CPU engine's training budget is fitted to it).
    pub period: FramePeriod,
    /// Milliseconds of the page thread per frame besides training (moving average).
    pub rest_ms: f64,
    pub frames: u64,
}

/// The error and the notice the page shows.
#[derive(Default)]
pub struct Messages {
    pub error: Option<String>,
    pub notice: Option<String>,
}

pub struct Page {
    pub engine: Box<dyn Engine>,
    pub session: Session,
    pub train: TrainLoop,
    pub snapshots: Snapshots,
    pub custom: CustomTargets,
    pub view: View,
    pub backend: Backend,
    pub messages: Messages,
    /// Status and snapshot reads spawned and not yet landed (each holds a staging buffer).
    pub reads: Rc<Cell<u32>>,
    /// The latest straightness reading of this run (`App::flow_stats`).
    pub readings: Readings,
    /// The starting configuration (page or widget, small or not): what a model the device could
    /// not build is replaced with when there is nothing to go back to.
    pub defaults: Config,
    /// The page as it was before the latest build, until the device has checked it.
    before_build: Option<Box<BeforeBuild>>,
    /// Reflow rounds of this run (the "Rectified flow" card).
    pub reflow: Reflow,
}

/// What a build changed on the page, to put back when the device could not make it.
struct BeforeBuild {
    config: Config,
    train: TrainLoop,
    good: std::collections::VecDeque<Snapshot>,
    custom: Option<CustomTarget>,
}

/// Reflow on the page (Liu, Gong and Liu 2022, arXiv 2209.03003): the rounds made in this run,
/// the pairs training draws from (kept here so a move to another engine keeps them), and the
/// step at which the current round's `reflow_steps` end (training pauses there).
#[derive(Default)]
pub struct Reflow {
    /// Rounds made: after round r the model is the (r + 1)-rectified flow.
    pub round: u32,
    pub pairs: Option<crate::engine::Pairs>,
    /// The step the current round ends at.
    pub until: Option<u32>,
    /// Pairs are being made for the run with this number (`Readings::run`).
    pub making: Option<u32>,
}

/// Readings of the current run that the page keeps for `App::state` (the sliced W2 is kept by
/// `www/quality.js`). A new run (reset, new model, restore) forgets them; a reading that started
/// before it is dropped when it lands (`run` moved on).
#[derive(Default)]
pub struct Readings {
    pub run: u32,
    pub stats: Option<crate::engine::FlowStats>,
    /// The training step the latest straightness reading measured.
    pub stats_step: Option<u32>,
    /// The latest field error (`App::field_error`).
    pub field_error: Option<f64>,
}

impl Readings {
    pub fn new_run(&mut self) {
        self.run = self.run.wrapping_add(1);
        self.stats = None;
        self.stats_step = None;
        self.field_error = None;
    }
}

fn secs() -> f64 {
    now_ms() / 1000.0
}

impl Page {
    /// A demo on `canvas` with the settings in `hash`. Never fails for lack of WebGPU (the CPU
    /// engine takes over with a notice); a hash the device cannot run falls back to the defaults
    /// with a message. `widget`: the widget's defaults (a step limit) and no auto choice.
    pub async fn create(canvas: web_sys::HtmlCanvasElement, hash: &str, pref: Preference, present: &str, widget: bool) -> Result<Page, String> {
        let defaults = |runs| if widget { widget_config(runs) } else { page_config(runs) };
        let (w, h) = (canvas.width().max(1), canvas.height().max(1));
        let mut messages = Messages::default();
        let (engine, session, backend, runs) = match backend::device(pref).await {
            Ok((ctx, gen)) => {
                let software = ctx.adapter.is_software();
                let runs = if software { Runs::Software } else { Runs::Gpu };
                let readback = match present {
                    "surface" => false,
                    "readback" => true,
                    _ => software,
                };
                let mut session = Session::new(defaults(runs), hash);
                // The work budget before anything is allocated: what the device cannot run
                // keeps its default, with the budget's message.
                session.admit(&defaults(runs), &Profile::for_context(&ctx), Target::Dataset);
                let engine = match backend::gpu_engine(&ctx, &canvas, session.config(), readback) {
                    Ok(e) => e,
                    Err(e) => {
                        // The hash asked for something this device cannot run: start from the defaults.
                        let errors = session.hash_errors().clone();
                        session = Session::new(defaults(runs), "");
                        session.set_hash_errors(errors);
                        messages.error = Some(format!("{e}; started with the default settings instead"));
                        backend::gpu_engine(&ctx, &canvas, session.config(), readback)?
                    }
                };
                let auto = pref == Preference::Auto && software && readback && !widget;
                let reason = if auto {
                    format!("WebGPU ({}); a software adapter: the CPU is measured against it after {} s", ctx.adapter, backend::TRIAL_AFTER_S)
                } else {
                    format!("WebGPU ({})", ctx.adapter)
                };
                let trial = auto.then_some(Trial { started: f64::INFINITY, moving: false });
                let label = if software { "WebGPU (software)" } else { "WebGPU" }.to_string();
                (engine, session, Backend { canvas, readback, device_gen: Some(gen), label, reason, trial, recovery: Recovery::default() }, runs)
            }
            Err(e) => {
                let mut session = Session::new(defaults(Runs::Cpu), hash);
                // What the CPU cannot do goes back to its default; then what no longer goes with it;
                // then what the CPU's budget refuses.
                session.reset_until(|c| crate::engine::cpu::cpu_can_run(c).and_then(|_| c.check_generation()));
                session.admit(&defaults(Runs::Cpu), &Profile::cpu(), Target::Dataset);
                messages.notice = Some(if pref == Preference::Cpu { format!("Running on the CPU backend ({e}).") } else { backend::NO_WEBGPU_NOTICE.to_string() });
                if pref != Preference::Cpu {
                    web_sys::console::warn_1(&format!("flowmatch: no WebGPU ({e}); using the CPU backend").into());
                }
                let engine = match backend::cpu_engine(&canvas, session.config()) {
                    Ok(e) => e,
                    Err(e2) => {
                        let errors = session.hash_errors().clone();
                        session = Session::new(defaults(Runs::Cpu), "");
                        session.set_hash_errors(errors);
                        messages.error = Some(format!("{e2}; started with the default settings instead"));
                        backend::cpu_engine(&canvas, session.config())?
                    }
                };
                let reason = if pref == Preference::Cpu { "CPU (requested)".to_string() } else { backend::cpu_reason(&e) };
                let label = "CPU".to_string();
                (engine, session, Backend { canvas, readback: false, device_gen: None, label, reason, trial: None, recovery: Recovery::default() }, Runs::Cpu)
            }
        };
        let software = engine.info().software;
        let defaults = defaults(runs);
        let mut page = Page {
            engine,
            session,
            train: TrainLoop::new(software),
            snapshots: Snapshots::default(),
            custom: CustomTargets::default(),
            view: View { clock: FlowClock::default(), layers: Layers::default(), width: w, height: h, dpr: 1.0, frame_ms: 16.7, period: FramePeriod::default(), rest_ms: 4.0, frames: 0 },
            backend,
            messages,
            reads: Default::default(),
            readings: Readings::default(),
            defaults,
            before_build: None,
            reflow: Reflow::default(),
        };
        page.engine.resize(w, h);
        page.train.on = true;
        Ok(page)
    }

    /// The step the current run ends at: `steps` (the step limit) after the learning-rate
    /// schedule's start, which a new target, rate, schedule or `steps`, Reset and Train after a
    /// run's end move to the current step. None: `steps` = 0, no end.
    pub fn run_end(&self) -> Option<u32> {
        self.session.step_limit().map(|n| self.engine.schedule_start().saturating_add(n))
    }

    /// Steps that may still be queued before the run's end or a reflow round's (`u32::MAX`
    /// without either).
    pub fn steps_left(&self) -> u32 {
        let limit = self.run_end().into_iter().chain(self.reflow.until).min();
        limit.map_or(u32::MAX, |l| l.saturating_sub(self.engine.step()))
    }

    /// Pauses training (with a snapshot of the weights) once a limit is reached; trains a new
    /// run that a change started after the last one ended (`TrainLoop::check_limit`).
    pub fn stop_at_limit(&mut self) {
        let (step, end, left) = (self.engine.step(), self.run_end(), self.steps_left());
        if self.train.check_limit(step, end, left) {
            self.snapshots.request();
        }
        // A reflow round ends once: Play then goes on training on its pairs.
        if self.reflow.until.is_some_and(|u| self.engine.step() >= u) {
            self.reflow.until = None;
        }
    }

    /// One animation frame: train, advance the flow, draw; start reads that are due.
    pub fn frame(this: &Rc<RefCell<Page>>, dt_ms: f64) {
        let mut p = this.borrow_mut();
        p.view.frames += 1;
        if p.backend.recovery.recovering || p.backend.recovery.gave_up {
            return;
        }
        if p.engine.device_lost() {
            drop(p);
            Page::recover(this);
            return;
        }
        let now = secs();
        let frame_t0 = now_ms();
        let mut train_ms = 0.0;
        let latency = p.engine.latency_s();
        if let Some(e) = p.train.failure_due(now, false, latency) {
            p.messages.error = Some(format!("reading the training status failed: {e}"));
        }
        if let Some(f) = p.engine.gpu_fault() {
            p.on_gpu_fault(f);
        }
        if !p.engine.checking() {
            p.before_build = None;
        }
        if dt_ms.is_finite() && dt_ms > 0.0 {
            p.view.frame_ms = 0.9 * p.view.frame_ms + 0.1 * dt_ms.min(250.0);
        }
        let period = p.view.period.observe(now, dt_ms);
        if p.engine.trains_on_caller_thread() {
            let rest = p.view.rest_ms;
            p.train.pacer.fit_frame(period, rest);
        }
        let wrapped = p.view.clock.advance((dt_ms / 1000.0) as f32);
        let training = p.train.on && p.messages.error.is_none();
        if training {
            let (step, done, latency, left) = (p.engine.step(), p.engine.done(), p.engine.latency_s(), p.steps_left());
            let rate = p.train.rate.steps_per_s;
            let n = p.train.pacer.plan(now, step - done.min(step), latency, rate, left);
            let t0 = now_ms();
            p.engine.train(n);
            train_ms = now_ms() - t0;
            p.train.pacer.took(n, train_ms);
        }
        let done = p.engine.done();
        p.train.rate.observe(now, done);
        p.stop_at_limit();
        let input = FrameInput {
            now,
            t: p.view.clock.t,
            wrapped,
            layers: p.view.layers,
            viewport: Viewport { width: p.view.width, height: p.view.height, extent: DEFAULT_EXTENT },
            point_px: (2.6 * p.view.dpr).max(2.0),
            work_ms: if training { 4.0 } else { 12.0 },
        };
        p.engine.frame(&input);
        let step = p.engine.step();
        if let Some(timeline) = p.snapshots.due(now, training, step) {
            let fut = p.engine.snapshot();
            p.await_then(this, fut, move |p, r| p.snapshots.landed(timeline, r));
        }
        p.read_status(this, false);
        if training {
            p.auto_choice(this, now);
        }
        let rest = (now_ms() - frame_t0 - train_ms).max(0.0);
        p.view.rest_ms = 0.8 * p.view.rest_ms + 0.2 * rest.min(250.0);
    }

    /// Starts a status read when one is due (`force`: now).
    pub fn read_status(&mut self, this: &Rc<RefCell<Page>>, force: bool) {
        if let Some(ticket) = self.train.read_due(secs(), self.engine.step(), force) {
            let fut = self.engine.status(ticket.since);
            self.await_then(this, fut, move |p, r| p.on_status(ticket, r));
        }
    }

    /// Hands `fut`'s result to `then` on the page: at once when it is already there (the CPU
    /// engine's reads), else when it lands (if the page still exists).
    fn await_then<T: 'static>(&mut self, this: &Rc<RefCell<Page>>, mut fut: crate::engine::EngineFuture<T>, then: impl FnOnce(&mut Page, Result<T, String>) + 'static) {
        let waker = std::task::Waker::noop();
        if let std::task::Poll::Ready(r) = fut.as_mut().poll(&mut std::task::Context::from_waker(waker)) {
            then(self, r);
            return;
        }
        let weak = Rc::downgrade(this);
        let reads = self.reads.clone();
        reads.set(reads.get() + 1);
        wasm_bindgen_futures::spawn_local(async move {
            let r = fut.await;
            reads.set(reads.get() - 1);
            if let Some(p) = weak.upgrade() {
                then(&mut p.borrow_mut(), r);
            }
        });
    }

    fn on_status(&mut self, ticket: ReadTicket, result: Result<TrainStatus, String>) {
        if ticket.generation != self.train.generation() {
            return;
        }
        match result {
            Ok(st) => {
                if let Some(bad) = self.train.landed(secs(), ticket, &st) {
                    self.diverged(bad);
                }
            }
            // Shown by `frame` after a grace, unless the device turns out lost (`TrainLoop::failed`).
            Err(e) => self.train.failed(ticket, e, secs()),
        }
    }

    /// A GPU error the engine reported (see the module docs): said once, with what became of
    /// the model.
    fn on_gpu_fault(&mut self, f: FaultReport) {
        let c = self.session.config();
        let built = f.during.map(|b| match b {
            Build::Model => format!("a {}×{} model (batch {})", c.width, c.depth, c.batch),
            Build::Samples => format!("{} particles of {} steps", c.particles, c.nfe),
        });
        let after = if f.reverted {
            if let Some(b) = self.before_build.take() {
                let BeforeBuild { config, train, good, custom } = *b;
                self.session.commit(config);
                if f.during == Some(Build::Model) {
                    // The model from before, with its loss history, reads and snapshots.
                    self.train = train;
                    self.snapshots.put_back(good);
                    self.readings.new_run();
                    match custom {
                        Some(t) if self.custom.active() != Some(&t) => self.custom.activate(t),
                        None if self.custom.active().is_some() => self.custom.end(),
                        _ => {}
                    }
                }
            }
            AfterFault::Kept
        } else if f.broken && *c != self.defaults {
            let defaults = self.defaults.clone();
            match self.apply(defaults) {
                Ok(()) => AfterFault::Defaults,
                Err(_) => AfterFault::Paused,
            }
        } else {
            AfterFault::Paused
        };
        // The first error of a burst is the one to read; later ones while it is shown add nothing.
        if f.during.is_none() && self.messages.error.is_some() {
            return;
        }
        let msg = gpu_fault_message(f.fault.kind, &f.fault.message, built.as_deref(), after);
        web_sys::console::warn_1(&format!("flowmatch: {msg}").into());
        // Paused until Train (which clears the message); a snapshot of what stays is taken.
        self.pause();
        self.messages.error = Some(msg);
    }

    /// Divergence: pause, freeze the shown flow, explain.
    fn diverged(&mut self, step: u32) {
        if !self.snapshots.diverged_at(step) {
            return;
        }
        self.train.on = false;
        self.engine.set_frozen(true);
        let restore = self.snapshots.last_good().map(|s| s.step);
        self.messages.error = Some(divergence_message(step, self.session.config().lr, restore));
    }

    /// A new run on the same engine (reset, new model, loaded weights).
    fn restart_metrics(&mut self) {
        self.train.restart();
        self.snapshots.new_run();
        self.readings.new_run();
        self.end_reflow();
        self.messages.error = None;
        self.engine.set_frozen(false);
    }

    /// Puts the engine back to `snap` and forgets what came after it.
    fn rewind(&mut self, snap: &Snapshot) -> Result<(), String> {
        self.engine.restore(snap)?;
        self.train.rewind(snap.step);
        self.snapshots.rewound();
        self.readings.new_run();
        self.messages.error = None;
        Ok(())
    }

    /// Back to training on independent draws (a new run, a new target): no rounds, no pairs.
    fn end_reflow(&mut self) {
        if self.reflow.pairs.is_some() {
            // Clearing pairs cannot fail on either engine.
            let _ = self.engine.set_pairs(None);
        }
        self.reflow = Reflow::default();
    }

    /// Why reflow cannot run with these settings (None: it can). Reflow rectifies an ODE flow of
    /// an unconditional velocity model (`Config::check`'s rule for the command line's `--reflow`).
    pub fn reflow_refusal(&self) -> Option<String> {
        let c = self.session.config();
        if c.objective == crate::config::Objective::MeanFlow {
            Some("reflow rectifies a velocity field: set Model to fm".into())
        } else if c.conditional == crate::config::OnOff::On {
            Some("reflow pairs carry no class labels: set Class-conditional to off".into())
        } else if self.reflow.making.is_some() {
            Some("the pairs of the last Reflow are still being made".into())
        } else {
            None
        }
    }

    /// Round `round`'s pairs are made: training draws from them for `reflow_steps` steps from
    /// the current weights, then pauses.
    pub fn start_round(&mut self, round: u32, pairs: crate::engine::Pairs) -> Result<(), String> {
        self.engine.set_pairs(Some(&pairs))?;
        self.reflow.round = round;
        self.reflow.pairs = Some(pairs);
        self.reflow.until = Some(self.engine.step().saturating_add(self.session.config().reflow_steps));
        self.train.on = true;
        Ok(())
    }

    /// Restarts from the seed's initial weights.
    pub fn reset(&mut self) {
        let seed = self.session.config().seed;
        self.engine.reset(seed);
        self.restart_metrics();
    }

    /// What training runs on, for the work budget.
    pub fn budget_target(&self) -> Target {
        self.custom.points().map_or(Target::Dataset, |p| Target::Custom(p.len().min(u32::MAX as usize) as u32))
    }

    /// Moves to `next`, doing only what its differences need. On error (including a refusal of
    /// the work budget, which names the setting and the largest value that fits) nothing changes.
    pub fn apply(&mut self, next: Config) -> Result<(), String> {
        let Some(effect) = self.session.effect(&next)? else {
            self.session.commit(next);
            return Ok(());
        };
        if effect != Effect::Live {
            check(&next, &self.engine.profile(), self.budget_target()).map_err(|r| r.to_string())?;
        }
        self.engine.apply(&next, effect)?;
        if effect != Effect::Live {
            // Until the device has checked the build: what to put back if it could not make it.
            let good = if effect == Effect::Retrain { self.snapshots.take_good() } else { Default::default() };
            let (config, train, custom) = (self.session.config().clone(), self.train.clone(), self.custom.active().cloned());
            self.before_build = Some(Box::new(BeforeBuild { config, train, good, custom }));
        }
        let old_dataset = self.session.config().dataset;
        self.session.commit(next);
        if effect == Effect::Retrain {
            self.train.pacer.new_model();
            self.restart_metrics();
            if self.session.config().dataset != old_dataset {
                self.custom.end();
            } else {
                self.reupload_custom();
            }
        }
        Ok(())
    }

    /// After a new model (or engine): the custom target is uploaded again.
    fn reupload_custom(&mut self) {
        if let Some(t) = self.custom.active().cloned() {
            if let Err(e) = self.set_engine_target(&t) {
                self.custom.end();
                self.messages.error = Some(format!("your own target could not be kept after the settings change ({e}); training on the dataset instead"));
            }
        }
    }

    /// Trains on `t` from now on; on error nothing changes.
    pub fn use_custom(&mut self, t: CustomTarget) -> Result<(), String> {
        let n = t.points.len().min(u32::MAX as usize) as u32;
        check(self.session.config(), &self.engine.profile(), Target::Custom(n)).map_err(|r| format!("this target of {n} points cannot be trained here: {r}"))?;
        self.set_engine_target(&t)?;
        self.custom.activate(t);
        self.end_reflow();
        // The weights at the change are kept even if the device is lost before training resumes.
        self.snapshots.request();
        Ok(())
    }

    /// Hands `t` to the engine: with its classes (a drawing's brush colours) when the model is
    /// class-conditional, a colour the model has no class for refused by name.
    fn set_engine_target(&mut self, t: &CustomTarget) -> Result<(), String> {
        let c = self.session.config();
        if c.conditional != crate::config::OnOff::On {
            return self.engine.set_target(&t.points);
        }
        let classes = c.dataset.num_classes();
        if let Some(&bad) = t.labels.iter().find(|&&l| l >= classes) {
            return Err(format!(
                "brush colour {} is class {bad}, but this conditional model has {classes} classes (its dataset {}'s): draw with the first {classes} colours or pick a dataset with more classes",
                bad + 1,
                c.dataset
            ));
        }
        self.engine.set_target_labeled(&t.points, &t.labels)
    }

    /// Back to the configuration's dataset (the same points as a fresh start), keeping the model.
    pub fn end_custom(&mut self) -> Result<(), String> {
        if self.custom.active().is_none() {
            return Ok(());
        }
        let (data, _) = crate::engine::flow::training_data(self.session.config());
        self.engine.set_target_labeled(&data, &crate::engine::flow::training_labels(self.session.config()))?;
        self.custom.end();
        self.end_reflow();
        Ok(())
    }

    /// Puts back the last good weights and resumes training.
    pub fn restore_last_good(&mut self) -> Result<u32, String> {
        let snap = self
            .snapshots
            .last_good()
            .cloned()
            .ok_or("no good weights were saved yet (snapshots are taken every few seconds of training): press Reset")?;
        self.rewind(&snap)?;
        self.train.on = true;
        Ok(snap.step)
    }

    /// The last good snapshot (taken every few seconds of training) as a model file with the
    /// current settings: what the page keeps for Undo and in the browser's storage without a
    /// readback of its own. None before the first snapshot of this run.
    pub fn last_good_model(&self) -> Option<ModelFile> {
        let s = self.snapshots.last_good()?;
        Some(ModelFile::new(self.session.config().clone(), s.step, s.params.clone(), s.moments.clone(), self.engine.schedule_start()))
    }

    /// Loads a model file (reconfiguring to its settings when `reshape`); training pauses.
    pub fn load_model(&mut self, file: ModelFile, reshape: bool) -> Result<(), String> {
        if !reshape {
            let shape = crate::spec::TrainSpec::from_config(self.session.config()).shape;
            file.check_shape(&shape).map_err(|e| e.to_string())?;
        }
        self.apply(file.config.clone()).map_err(|e| format!("the model file's configuration cannot run here: {e}"))?;
        self.engine.load_model(&file)?;
        self.restart_metrics();
        let r = file.resume_state();
        self.train.read_step = r.step;
        self.train.on = false;
        self.train.run_done = false;
        // The file's own state is the first snapshot of this run: a device lost before training
        // resumes (no snapshots are taken while paused) brings back the loaded model.
        self.snapshots.keep(Snapshot { step: r.step, params: file.params, moments: r.moments, first_bad_step: None });
        Ok(())
    }

    /// Pauses training; a snapshot of where it stopped is taken at the next frame.
    pub fn pause(&mut self) {
        if self.train.on {
            self.snapshots.request();
        }
        self.train.on = false;
        self.train.run_done = false;
    }

    /// Trains (again): after a run's end, a new run of `steps` steps from the current weights
    /// (the learning-rate schedule starts over).
    pub fn play(&mut self) {
        if self.run_end().is_some_and(|e| self.engine.step() >= e) {
            self.engine.set_schedule_start(self.engine.step());
        }
        self.train.on = true;
        self.train.run_done = false;
        self.messages.error = None;
    }

    /// One training step (training pauses; after a run's end it is the first of a new run).
    pub fn step_once(&mut self) {
        self.pause();
        if self.run_end().is_some_and(|e| self.engine.step() >= e) {
            self.engine.set_schedule_start(self.engine.step());
        }
        self.engine.train(1);
    }

    /// Save while the device is lost (or recovery gave up): the last snapshot as a model file.
    pub fn save_from_snapshot(&self) -> Option<Result<ModelFile, String>> {
        let lost = self.backend.recovery.recovering || self.backend.recovery.gave_up || self.engine.device_lost();
        lost.then(|| self.last_good_model().ok_or_else(|| "the GPU device is lost and no snapshot of the weights was taken yet: nothing to save".to_string()))
    }

    /// A lost device: open a new one, rebuild the engine for the same settings on the same
    /// canvas, load the last good snapshot (with the custom target) and go on as before (paused
    /// stays paused). Retries are capped (`reliability::RecoveryPlan`); past the cap the run
    /// continues on the CPU backend.
    fn recover(this: &Rc<RefCell<Page>>) {
        {
            let mut p = this.borrow_mut();
            if p.backend.recovery.recovering || p.backend.recovery.gave_up {
                return;
            }
            let kept = p.snapshots.kept();
            let was_on = p.train.on;
            let r = &mut p.backend.recovery;
            r.recovering = true;
            r.resume = was_on;
            r.lost_reason = Some("the GPU device was lost".into());
            let next = r.plan.lost(kept);
            p.train.drop_reads();
            p.snapshots.drop_reads();
            if let Next::Cpu(why) = next {
                p.give_up_gpu(why);
                return;
            }
        }
        let weak = Rc::downgrade(this);
        wasm_bindgen_futures::spawn_local(async move { recover(weak).await });
    }

    /// The last snapshot (with the current settings and schedule) to continue from after a loss.
    fn resume_file(&self) -> Option<ModelFile> {
        self.last_good_model()
    }

    /// After a new engine: the custom target again, then `file` (None: the seed's weights).
    fn resume_on(&mut self, engine: Box<dyn Engine>, file: Option<ModelFile>) -> Result<(), String> {
        self.engine = engine;
        self.before_build = None;
        self.engine.resize(self.view.width, self.view.height);
        self.reupload_custom();
        if let Some(pairs) = &self.reflow.pairs {
            if let Err(e) = self.engine.set_pairs(Some(pairs)) {
                self.messages.error = Some(format!("the reflow pairs could not be moved to the new backend ({e}); training on the target again"));
                self.reflow = Reflow::default();
            }
        }
        match file {
            Some(f) => {
                self.engine.load_model(&f)?;
                self.train.rewind(f.step);
                self.snapshots.rewound();
                self.messages.error = None;
            }
            None => self.restart_metrics(),
        }
        Ok(())
    }

    /// Recovery stops trying the GPU: the run continues on the CPU backend from the last
    /// snapshot when the CPU can run these settings; otherwise the page stops with a message.
    fn give_up_gpu(&mut self, why: GiveUp) {
        let file = self.resume_file();
        let step = file.as_ref().map(|f| f.step);
        let cpu = crate::engine::cpu::cpu_can_run(self.session.config())
            .map_err(|e| e.to_string())
            .and_then(|_| check(self.session.config(), &Profile::cpu(), self.budget_target()).map_err(|r| r.to_string()))
            .and_then(|_| backend::cpu_engine(&self.backend.canvas, self.session.config()))
            .and_then(|engine| self.resume_on(engine, file));
        let r = &mut self.backend.recovery;
        r.recovering = false;
        let msg = gave_up_message(why, cpu.clone(), step);
        web_sys::console::warn_1(&format!("flowmatch: {msg}").into());
        match cpu {
            Ok(()) => {
                r.lost_reason = None;
                let resume = r.resume;
                self.train.pacer = Pacer::new(true);
                self.train.on = resume;
                self.backend.device_gen = None;
                self.backend.label = "CPU (GPU lost)".to_string();
                self.backend.reason = format!("CPU: {}", why.describe());
                self.messages.error = None;
                self.messages.notice = Some(msg);
            }
            Err(_) => {
                r.gave_up = true;
                self.train.on = false;
                self.messages.error = Some(msg);
            }
        }
    }

    /// The auto choice on a software adapter: after a few seconds of WebGPU training, measure the
    /// CPU engine and move the run there when it is clearly faster.
    fn auto_choice(&mut self, this: &Rc<RefCell<Page>>, now: f64) {
        let Some(mut trial) = self.backend.trial else { return };
        if trial.started == f64::INFINITY {
            trial.started = now;
        }
        let gpu = self.train.rate.steps_per_s;
        if trial.moving || now - trial.started < backend::TRIAL_AFTER_S || gpu <= 0.0 {
            self.backend.trial = Some(trial);
            return;
        }
        if let Err(why) = crate::engine::cpu::cpu_can_run(self.session.config()) {
            self.backend.reason = format!("WebGPU ({}); staying on it: {why}", self.engine.info().adapter);
            self.backend.trial = None;
            return;
        }
        let cpu = backend::measure_cpu(self.session.config(), 8.0, self.view.frame_ms);
        let adapter = self.engine.info().adapter;
        if cpu < backend::SWITCH_MARGIN * gpu {
            self.backend.reason = backend::reason(cpu, gpu, &adapter, false);
            self.backend.trial = None;
            return;
        }
        trial.moving = true;
        self.backend.trial = Some(trial);
        let fut = self.engine.snapshot();
        self.await_then(this, fut, move |p, r| p.move_to_cpu(r, cpu, gpu, &adapter));
    }

    /// The second half of the auto choice: the run continues on the CPU from the snapshot.
    fn move_to_cpu(&mut self, snap: Result<Snapshot, String>, cpu: f64, gpu: f64, adapter: &str) {
        self.backend.trial = None;
        if let Err(r) = check(self.session.config(), &Profile::cpu(), self.budget_target()) {
            self.backend.reason = format!("WebGPU ({adapter}); the CPU would be faster but its budget refuses these settings: {r}");
            return;
        }
        let moved = snap.and_then(|snap| {
            let mut engine = backend::cpu_engine(&self.backend.canvas, self.session.config())?;
            engine.restore(&snap)?;
            Ok((engine, snap))
        });
        match moved {
            Ok((engine, snap)) => {
                let schedule_start = self.engine.schedule_start();
                self.engine = engine;
                self.engine.resize(self.view.width, self.view.height);
                self.reupload_custom();
                // The same run goes on: the custom target's upload restarted the schedule.
                self.engine.set_schedule_start(schedule_start);
                self.train.pacer = Pacer::new(true);
                self.train.rewind(snap.step);
                self.snapshots.rewound();
                self.backend.device_gen = None;
                self.backend.reason = backend::reason(cpu, gpu, adapter, true);
                self.backend.label = "CPU (faster here)".to_string();
                web_sys::console::info_1(&format!("flowmatch: {}", self.backend.reason).into());
            }
            Err(e) => self.backend.reason = format!("WebGPU ({adapter}); moving to the faster CPU failed: {e}"),
        }
    }
}

async fn recover(weak: Weak<RefCell<Page>>) {
    loop {
        let Some(page) = weak.upgrade() else { return };
        let (old_gen, config, canvas, readback) = {
            let p = page.borrow();
            (p.backend.device_gen, p.session.config().clone(), p.backend.canvas.clone(), p.backend.readback)
        };
        drop(page);
        if let Some(g) = old_gen {
            super::device::forget(g);
        }
        let result = match super::device::shared_context().await {
            Ok((ctx, gen)) => backend::gpu_engine(&ctx, &canvas, &config, readback).map(|e| (e, gen)),
            Err(e) => Err(e.to_string()),
        };
        let Some(page) = weak.upgrade() else { return };
        let delay = {
            let mut p = page.borrow_mut();
            match result {
                Ok((engine, gen)) => {
                    let file = p.resume_file();
                    if let Err(e) = p.resume_on(engine, file) {
                        p.messages.error = Some(format!("the GPU device was lost and restoring the weights failed: {e}"));
                    }
                    let kept = p.snapshots.kept();
                    p.backend.device_gen = Some(gen);
                    let r = &mut p.backend.recovery;
                    r.lost_reason = None;
                    r.recovering = false;
                    r.recoveries += 1;
                    r.plan.recovered(kept);
                    p.train.on = r.resume;
                    web_sys::console::info_1(&format!("flowmatch: GPU device lost; recovered on device {gen} at step {}", p.engine.step()).into());
                    return;
                }
                Err(e) => match p.backend.recovery.plan.open_failed() {
                    Next::Open(ms) => {
                        let (_, tries) = p.backend.recovery.plan.counts();
                        p.messages.error = Some(format!("the GPU device was lost and a new one could not be opened ({e}); trying again ({} of {} tries)", tries + 1, super::reliability::OPEN_ATTEMPTS));
                        ms
                    }
                    Next::Cpu(why) => {
                        p.give_up_gpu(why);
                        return;
                    }
                },
            }
        };
        drop(page);
        sleep_ms(delay as i32).await;
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
