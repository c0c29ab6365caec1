//! The CPU engine: the fast trainer (`cpu::FastCpuTrainer`: SIMD128 kernels with the scalar
//! reference's bits, `tests/cpu_fast.rs`), ODE (`cpu::ode`, `cpu::adaptive`),
//! density (`cpu::density`) and sliced W2 (`metrics::sliced_w2_reading`), drawn through a
//! [`Painter`] with the same colours and layers as the WebGPU renderer. The fallback where the
//! browser has no WebGPU, and the faster choice on some software adapters (`web::backend`).
//!
//! Everything runs on the caller's thread, so nothing may take long: training runs the steps the
//! page's loop asks for (it sizes them by the measured cost, `web::training`); the shown
//! trajectories are integrated a chunk of particles per frame (the first integration too, in
//! larger slices of at most the budget's CPU chunk) into a second buffer that replaces the shown
//! one when complete; sample quality, the solver comparison and the density heat map
//! are [`Jobs`] done a slice per frame within `FrameInput::work_ms`.

use super::flow::{integrate_due, refresh_interval, training_data, ARROW_GRID, TARGET_DRAWN_SOFTWARE};
use super::jobs::{channel, now_ms, Job, Jobs};
use super::painter::css_rgb;
use super::quality::{comparison_plan, finite, Probe, QualityPoint, DIRECTIONS, PROBE_SEED, QUALITY_SAMPLES};
use super::{Engine, EngineFuture, EngineInfo, FlowStats, FrameInput, Painter};
use crate::config::{Config, ConfigError, Effect, Solver};
use crate::cpu::adaptive::{integrate_field, AdaptiveOptions, MIN_NFE};
use crate::cpu::ode::{initial_particles_from, ode_step};
use crate::cpu::FastCpuTrainer;
use crate::gpu::snapshot::Snapshot;
use crate::gpu::trainer::{TrainStatus, LOSS_RING};
use crate::model::ModelShape;
use crate::model_file::ModelFile;
use crate::render::heatmap::{cell_centres, heat_color, HEAT_GRID};
use crate::render::view::{arrow_anchor, origin_color};
use crate::render::Viewport;
use crate::spec::TrainSpec;
use futures_channel::oneshot;
use std::collections::VecDeque;
use std::rc::Rc;

/// Milliseconds of trajectory integration per frame (the first integration is done at once).
const INTEGRATE_BUDGET_MS: f64 = 4.0;
/// Assumed throughput of the reference MLP, for the refresh interval (FLOP/s).
const CPU_FLOPS: f64 = 0.6e9;
/// Most particles the CPU engine shows.
const MAX_PARTICLES: u32 = 200_000;
/// Most recorded steps of the shown flow.
const MAX_STEPS: u32 = 2000;
/// Seconds between heat-map recomputations while the weights change.
const HEAT_EVERY_S: f64 = 3.0;

/// The shown flow: starting points, their colours and the recorded trajectories.
struct Shown {
    origins: Vec<[f32; 2]>,
    colors: Vec<String>,
    /// `(steps + 1, n)` step-major; empty before the first integration.
    traj: Vec<[f32; 2]>,
    /// A re-integration in progress.
    job: Option<TrajJob>,
    steps: u32,
    solver: Solver,
    tol: f32,
    step: Option<u32>,
    last: f64,
    refresh_s: f64,
    frozen: bool,
}

/// A re-integration in progress: particles `[0, next)` are done.
struct TrajJob {
    traj: Vec<[f32; 2]>,
    next: usize,
    step: u32,
    params: Vec<f32>,
}

impl Shown {
    fn complete(&self) -> bool {
        let n = self.origins.len();
        n > 0 && self.traj.len() == (self.steps as usize + 1) * n
    }

    fn end_positions(&self) -> Option<Vec<[f32; 2]>> {
        self.complete().then(|| self.traj[self.steps as usize * self.origins.len()..].to_vec())
    }

    fn position(&self, i: usize, t: f32) -> [f32; 2] {
        traj_position(&self.traj, self.origins.len(), self.steps, i, t)
    }
}

/// Particle `i` at time `t` of a `(steps + 1, n)` step-major trajectory: linear between the two
/// recorded states around t (`render_particles.wgsl`'s `position_at`).
fn traj_position(traj: &[[f32; 2]], n: usize, steps: u32, i: usize, t: f32) -> [f32; 2] {
    let s = steps as f32 * t.clamp(0.0, 1.0);
    let k0 = (s.floor() as usize).min(steps as usize - 1);
    let f = s - k0 as f32;
    let (a, b) = (traj[k0 * n + i], traj[(k0 + 1) * n + i]);
    [a[0] + (b[0] - a[0]) * f, a[1] + (b[1] - a[1]) * f]
}

/// The exact marginal field's arrows (`cpu::exact::marginal_velocity` at the arrow anchors):
/// the last complete grid and the (t, extent) it is for, and a grid in progress, computed an
/// anchor at a time within the frame's budget (each anchor is a sum over every target point).
#[derive(Default)]
struct ExactArrows {
    shown: Vec<[f32; 2]>,
    key: Option<(f32, f32)>,
    job: Option<((f32, f32), Vec<[f32; 2]>)>,
}

/// The exact flow (layer `exactflow`, `engine::exact_flow`): the shown particles' origins carried
/// by the exact field of the training points with the shown flow's solver and steps, step-major,
/// a particle-step at a time within the frame's budget (each is a sum over every target point).
struct ExactFlowRun {
    /// `(steps + 1, n)` step-major, row 0 the origins.
    traj: Vec<[f32; 2]>,
    n: usize,
    steps: u32,
    solver: Solver,
    /// The (step, particle) done next.
    next: (u32, usize),
    landed: Option<(u32, u32)>,
}

/// The heat map: log p per cell, the (step, time) it is for, and a computation in progress.
#[derive(Default)]
struct Heat {
    values: Vec<f32>,
    colors: Vec<Option<String>>,
    at: Option<(u32, f64)>,
    pending: Option<(u32, f64, EngineFuture<Vec<f32>>)>,
}

/// The CPU engine (see the module docs).
pub struct CpuEngine {
    painter: Box<dyn Painter>,
    size: (u32, u32),
    trainer: FastCpuTrainer,
    /// Losses of recent steps (at most `LOSS_RING`) and the first non-finite one.
    losses: VecDeque<(u32, f32)>,
    first_bad: Option<u32>,
    shown: Shown,
    target: Vec<[f32; 2]>,
    /// Velocity at each arrow anchor and the (step, t) it was computed for.
    arrows: (Vec<[f32; 2]>, Option<(u32, f32)>),
    /// The exact marginal field at the arrow anchors (layer `exact`).
    exact: ExactArrows,
    /// The exact flow (layer `exactflow`; None until first shown), or why it is not drawn.
    exact_flow: Result<Option<ExactFlowRun>, String>,
    heat: Heat,
    jobs: Jobs,
    scratch: Vec<f32>,
    presented: f64,
}

/// What the CPU backend (the fast trainer of `cpu::fast` and the plain ODE sampler) cannot do:
/// class labels, MeanFlow, the SDE sampler and time densities other than uniform are
/// WebGPU-only on the page. The error names the field and the way out.
pub fn cpu_can_run(c: &Config) -> Result<(), ConfigError> {
    use crate::config::{Objective, OnOff, Sampler, TimeSampling};
    let (field, value, what, default) = if c.conditional == OnOff::On {
        ("conditional", "on", "class-conditional training", "off")
    } else if c.objective == Objective::MeanFlow {
        ("objective", "meanflow", "MeanFlow", "fm")
    } else if c.sampler == Sampler::Sde {
        ("sampler", "sde", "the SDE sampler", "ode")
    } else if c.t_sampling != TimeSampling::Uniform {
        ("t_sampling", c.t_sampling.name(), "time sampling other than uniform", "uniform")
    } else {
        return Ok(());
    };
    Err(ConfigError::Invalid {
        field: field.into(),
        value: value.into(),
        allowed: format!("{default} on the CPU backend ({what} needs WebGPU: open the page with ?backend=webgpu in a browser that has it)"),
    })
}

impl CpuEngine {
    pub fn new(c: &Config, painter: Box<dyn Painter>) -> Result<Self, String> {
        let (data, source) = training_data(c);
        let mut e = CpuEngine {
            painter,
            size: (1, 1),
            trainer: Self::trainer(c, data, source)?,
            losses: VecDeque::new(),
            first_bad: None,
            shown: Shown {
                origins: Vec::new(),
                colors: Vec::new(),
                traj: Vec::new(),
                job: None,
                steps: 1,
                solver: c.solver,
                tol: c.tol,
                step: None,
                last: f64::NEG_INFINITY,
                refresh_s: 1.0,
                frozen: false,
            },
            target: Vec::new(),
            arrows: (Vec::new(), None),
            exact: ExactArrows::default(),
            exact_flow: Ok(None),
            heat: Heat::default(),
            jobs: Jobs::default(),
            scratch: vec![0.0; 2 * c.width as usize],
            presented: 0.0,
        };
        e.target = e.trainer.data.iter().take(TARGET_DRAWN_SOFTWARE as usize).copied().collect();
        e.resample(c)?;
        Ok(e)
    }

    /// The trainer for `c`, refused before allocating when its buffers (or the OT batch) do not
    /// fit the CPU backend's budget (`FastCpuTrainer::try_new`).
    fn trainer(c: &Config, data: Vec<[f32; 2]>, source: Vec<[f32; 2]>) -> Result<FastCpuTrainer, String> {
        cpu_can_run(c).map_err(|e| e.to_string())?;
        let mut t = FastCpuTrainer::try_new(TrainSpec::from_config(c), data, source.len())?;
        t.source = source;
        Ok(t)
    }

    /// The trainer (tests).
    pub fn trainer_ref(&self) -> &FastCpuTrainer {
        &self.trainer
    }

    fn shape(&self) -> ModelShape {
        self.trainer.spec.shape
    }

    fn resample(&mut self, c: &Config) -> Result<(), String> {
        let n = c.particles.min(MAX_PARTICLES);
        let steps = c.nfe.clamp(1, MAX_STEPS);
        if n as usize != self.shown.origins.len() || steps != self.shown.steps {
            self.shown.origins = initial_particles_from(c.seed, n, &self.trainer.source);
            self.shown.colors = self.shown.origins.iter().map(|&p| css_rgb(origin_color(p))).collect();
            self.shown.traj = Vec::new();
            self.shown.steps = steps;
        }
        self.shown.solver = c.solver;
        self.shown.tol = c.tol;
        self.shown.job = None;
        self.shown.step = None;
        // The exact flow follows the shown particles and solver.
        self.exact_flow = Ok(None);
        let macs = self.shape().macs_per_sample();
        self.shown.refresh_s = refresh_interval(self.shown.origins.len() as u32, self.shown.steps, c.solver.evals_per_step(), macs, CPU_FLOPS);
        Ok(())
    }

    fn forget_run(&mut self) {
        self.losses.clear();
        self.first_bad = None;
        self.shown.job = None;
        self.shown.step = None;
        self.shown.frozen = false;
        self.arrows.1 = None;
        self.heat = Heat::default();
    }

    /// Advances (or starts) the trajectory re-integration by a slice of wall time.
    fn integrate_slice(&mut self, now: f64, wrapped: bool) {
        let step = self.trainer.step;
        let s = &mut self.shown;
        if s.job.is_none() {
            if !integrate_due(s.frozen, s.step, step, wrapped, now - s.last, s.refresh_s) {
                return;
            }
            let n = s.origins.len();
            let mut traj = vec![[0.0f32; 2]; (s.steps as usize + 1) * n];
            traj[..n].copy_from_slice(&s.origins);
            s.job = Some(TrajJob { traj, next: 0, step, params: self.trainer.params.clone() });
            s.last = now;
        }
        let (n, steps, solver, tol) = (s.origins.len(), s.steps as usize, s.solver, s.tol);
        let shape = self.trainer.spec.shape;
        let t0 = now_ms();
        // The first integration gets a larger slice (the canvas shows no flow until it is done),
        // but never more than the budget's chunk: the page's thread must keep answering.
        let budget = if s.traj.is_empty() { 1000.0 * crate::budget::TimeLimits::CPU.chunk_s } else { INTEGRATE_BUDGET_MS };
        let Some(job) = s.job.as_mut() else { return };
        // The clock is read after every particle: a long integration (nfe up to the budget's
        // pass limit) holds the thread for one particle's integration past the slice at most.
        while job.next < n && now_ms() - t0 < budget {
            let i = job.next;
            let x0 = job.traj[i];
            integrate_particle(&shape, &job.params, solver, tol, steps as u32, true, &mut self.scratch, |k, y| job.traj[k as usize * n + i] = y, x0);
            job.next += 1;
        }
        if job.next >= n {
            if let Some(job) = s.job.take() {
                s.traj = job.traj;
                s.step = Some(job.step);
            }
        }
    }

    /// Starts (or collects) the heat map's computation: log p of every cell centre, a job.
    fn update_heat(&mut self, now: f64, extent: f32) -> bool {
        if !self.trainer.source.is_empty() {
            return false;
        }
        if let Some((step, at, fut)) = self.heat.pending.as_mut() {
            let waker = std::task::Waker::noop();
            if let std::task::Poll::Ready(r) = std::future::Future::poll(fut.as_mut(), &mut std::task::Context::from_waker(waker)) {
                let (step, at) = (*step, *at);
                self.heat.pending = None;
                if let Ok(values) = r {
                    self.heat.colors = values.iter().map(|&v| heat_color(v).map(|c| format!("rgba({},{},{},{:.3})", (c[0] * 255.0) as u8, (c[1] * 255.0) as u8, (c[2] * 255.0) as u8, c[3]))).collect();
                    self.heat.values = values;
                    self.heat.at = Some((step, at));
                }
            }
            return true;
        }
        let step = self.trainer.step;
        let due = match self.heat.at {
            None => true,
            Some((s, at)) => s != step && now - at >= HEAT_EVERY_S && !self.shown.frozen,
        };
        if due {
            let fut = self.log_density(cell_centres(extent), Solver::Midpoint, 8);
            self.heat.pending = Some((step, now, fut));
        }
        true
    }

    fn draw(&mut self, f: &FrameInput, show_heat: bool) {
        let vp = f.viewport;
        let p = &mut self.painter;
        p.set_alpha(1.0);
        p.set_fill("#0b0e14");
        p.fill_rect(0.0, 0.0, vp.width as f64, vp.height as f64);
        if show_heat && !self.heat.colors.is_empty() {
            let cell = 2.0 * vp.extent / HEAT_GRID as f32;
            let px = (cell / vp.units_per_px()) as f64 + 0.5;
            for (i, c) in self.heat.colors.iter().enumerate() {
                if let Some(c) = c {
                    let lo = crate::render::heatmap::cell_centre(i as u32, vp.extent);
                    let q = vp.to_px([lo[0] - cell / 2.0, lo[1] + cell / 2.0]);
                    p.set_fill(c);
                    p.fill_rect(q[0] as f64, q[1] as f64, px, px);
                }
            }
        }
        if f.layers.target {
            p.set_fill("rgba(158,171,199,0.22)");
            let s = (f.point_px * 0.7).max(1.5) as f64;
            for q in &self.target {
                let q = vp.to_px(*q);
                p.fill_rect(q[0] as f64 - s / 2.0, q[1] as f64 - s / 2.0, s, s);
            }
        }
        let sh = &self.shown;
        let n = sh.origins.len();
        if sh.complete() {
            if f.layers.trails && f.t > 0.0 {
                let stride = n.div_ceil(crate::render::MAX_TRAILS as usize).max(1);
                p.set_line_width(1.0);
                p.set_alpha(0.3);
                let last = (f.t * sh.steps as f32).floor() as usize;
                for i in (0..n).step_by(stride) {
                    p.set_stroke(&sh.colors[i]);
                    p.begin_path();
                    let p0 = vp.to_px(sh.traj[i]);
                    p.move_to(p0[0] as f64, p0[1] as f64);
                    for k in 1..=last.min(sh.steps as usize) {
                        let q = vp.to_px(sh.traj[k * n + i]);
                        p.line_to(q[0] as f64, q[1] as f64);
                    }
                    let q = vp.to_px(sh.position(i, f.t));
                    p.line_to(q[0] as f64, q[1] as f64);
                    p.stroke();
                }
            }
            if f.layers.particles {
                p.set_alpha(0.9);
                paint_dots(p.as_mut(), n, f.point_px as f64, |i| vp.to_px(sh.position(i, f.t)), |p, i| p.set_fill(&sh.colors[i]));
            }
        }
        if let (true, Ok(Some(run))) = (f.layers.exact_flow, &self.exact_flow) {
            if run.next.0 >= run.steps && run.n == self.shown.origins.len() {
                let p = self.painter.as_mut();
                p.set_alpha(0.9);
                p.set_fill(EXACT_CSS);
                paint_dots(p, run.n, f.point_px as f64, |i| vp.to_px(traj_position(&run.traj, run.n, run.steps, i, f.t)), |_, _| {});
            }
        }
        if f.layers.arrows {
            self.draw_arrows(f.t, vp);
        }
        if f.layers.exact && self.trainer.source.is_empty() {
            paint_arrows(self.painter.as_mut(), &self.exact.shown, vp, EXACT_ARROW_CSS);
        }
        self.painter.set_alpha(1.0);
        self.presented += 1.0;
    }

    fn draw_arrows(&mut self, t: f32, vp: Viewport) {
        let g = ARROW_GRID;
        let key = (self.trainer.step, t);
        if self.arrows.1 != Some(key) {
            let shape = self.shape();
            self.arrows.0 = (0..g * g).map(|i| crate::cpu::mlp::velocity(&shape, &self.trainer.params, arrow_anchor(i, g, vp.extent), t, &mut self.scratch)).collect();
            self.arrows.1 = Some(key);
        }
        paint_arrows(self.painter.as_mut(), &self.arrows.0, vp, "rgb(217,230,255)");
    }

    /// Advances the exact field's arrows for time `t` by a slice of `budget_ms`.
    fn exact_slice(&mut self, t: f32, extent: f32, budget_ms: f64) {
        if !self.trainer.source.is_empty() {
            return;
        }
        let key = (t, extent);
        let e = &mut self.exact;
        if e.job.is_none() && e.key != Some(key) {
            e.job = Some((key, Vec::with_capacity((ARROW_GRID * ARROW_GRID) as usize)));
        }
        let Some((at, done)) = e.job.as_mut() else { return };
        let spec = &self.trainer.spec;
        let t0 = now_ms();
        while done.len() < (ARROW_GRID * ARROW_GRID) as usize && now_ms() - t0 < budget_ms {
            let a = arrow_anchor(done.len() as u32, ARROW_GRID, at.1);
            done.push(crate::cpu::exact::marginal_velocity(&self.trainer.data, spec.path, spec.sigma_min, a, at.0));
        }
        if done.len() == (ARROW_GRID * ARROW_GRID) as usize {
            if let Some((at, done)) = e.job.take() {
                e.shown = done;
                e.key = Some(at);
            }
        }
    }

    /// Advances the exact flow (layer `exactflow`) by a slice of `budget_ms`: a particle-step at
    /// a time, step-major; once done, the landed count.
    fn exact_flow_slice(&mut self, budget_ms: f64) {
        if !self.trainer.source.is_empty() {
            self.exact_flow = Err(super::exact_flow::NO_EXACT_FLOW.into());
            return;
        }
        let sh = &self.shown;
        if matches!(self.exact_flow, Ok(None)) && !sh.origins.is_empty() {
            self.exact_flow = super::exact_flow::fits(sh.origins.len() as u32, sh.steps).map(|()| {
                let n = sh.origins.len();
                let mut traj = vec![[0.0f32; 2]; (sh.steps as usize + 1) * n];
                traj[..n].copy_from_slice(&sh.origins);
                Some(ExactFlowRun { traj, n, steps: sh.steps, solver: sh.solver, next: (0, 0), landed: None })
            });
        }
        let Ok(Some(run)) = &mut self.exact_flow else { return };
        if run.next.0 >= run.steps {
            return;
        }
        let spec = &self.trainer.spec;
        let h = 1.0 / run.steps as f32;
        let t0 = now_ms();
        while run.next.0 < run.steps && now_ms() - t0 < budget_ms {
            let (k, i) = run.next;
            let x = run.traj[k as usize * run.n + i];
            let t = crate::cpu::ode::step_time(0.0, 1.0, run.steps, k);
            run.traj[(k as usize + 1) * run.n + i] = crate::cpu::exact::exact_flow_step(&self.trainer.data, spec.path, spec.sigma_min, run.solver, x, t, h);
            run.next = if i + 1 >= run.n { (k + 1, 0) } else { (k, i + 1) };
        }
        if run.next.0 >= run.steps {
            run.landed = super::exact_flow::landed(&run.traj[run.steps as usize * run.n..], &self.trainer.data);
        }
    }

    fn probe_job(&self, plan: Vec<Probe>, tx: JobResult) -> Box<dyn Job> {
        Box::new(QualityJob {
            shape: self.shape(),
            params: self.trainer.params.clone(),
            source: self.trainer.source.clone(),
            data: Rc::new(self.trainer.data.clone()),
            plan,
            next: 0,
            particles: Vec::new(),
            done: 0,
            nfe: 0,
            out: Vec::new(),
            scratch: vec![0.0; 2 * self.shape().width as usize],
            tx: Some(tx),
        })
    }
}

/// The exact field's arrows' colour (`render_arrows.wgsl: vs_exact_arrow`).
const EXACT_ARROW_CSS: &str = "rgb(255,158,100)";
/// The exact flow's particles' colour (`render_particles.wgsl: vs_exact_particle`).
const EXACT_CSS: &str = EXACT_ARROW_CSS;

/// Square dots `size` pixels wide centred on `at(i)` for particles `0..n` (non-finite positions are
/// skipped), each after `fill(painter, i)` (which may set its colour).
fn paint_dots(p: &mut dyn Painter, n: usize, size: f64, at: impl Fn(usize) -> [f32; 2], fill: impl Fn(&mut dyn Painter, usize)) {
    for i in 0..n {
        let q = at(i);
        if !(q[0].is_finite() && q[1].is_finite()) {
            continue;
        }
        fill(p, i);
        p.fill_rect(q[0] as f64 - size / 2.0, q[1] as f64 - size / 2.0, size, size);
    }
}

/// Arrows of the velocities `vels` at the arrow anchors (`render_arrows.wgsl`'s geometry) in `css`.
fn paint_arrows(p: &mut dyn Painter, vels: &[[f32; 2]], vp: Viewport, css: &str) {
    let g = ARROW_GRID;
    let cell = 2.0 * vp.extent / g as f32;
    p.set_line_width(1.0);
    p.set_stroke(css);
    for (i, v) in vels.iter().enumerate() {
        let a = arrow_anchor(i as u32, g, vp.extent);
        let speed = (v[0] * v[0] + v[1] * v[1]).sqrt();
        if !speed.is_finite() || speed < 1e-6 {
            continue;
        }
        let d = [v[0] / speed, v[1] / speed];
        let len = cell * 0.85 * (1.0 - (-speed / 1.5).exp());
        let head = (len * 0.4).min(cell * 0.22);
        let tail = [a[0] - d[0] * len * 0.5, a[1] - d[1] * len * 0.5];
        let tip = [a[0] + d[0] * len * 0.5, a[1] + d[1] * len * 0.5];
        let l = [tip[0] - d[0] * head - d[1] * head * 0.5, tip[1] - d[1] * head + d[0] * head * 0.5];
        let r = [tip[0] - d[0] * head + d[1] * head * 0.5, tip[1] - d[1] * head - d[0] * head * 0.5];
        p.set_alpha((0.22 + 0.5 * (1.0 - (-speed).exp())) as f64);
        p.begin_path();
        for (from, to) in [(tail, tip), (tip, l), (tip, r)] {
            let (a, b) = (vp.to_px(from), vp.to_px(to));
            p.move_to(a[0] as f64, a[1] as f64);
            p.line_to(b[0] as f64, b[1] as f64);
        }
        p.stroke();
    }
}

/// Integrates one particle from `x0` over [0, 1]: `steps` steps of a fixed-step solver, or the
/// adaptive one with `steps` as its budget. With `record`, `out(k, x)` receives the state after
/// step k (adaptive: at time `k / steps`). Returns the end state and the field evaluations used
/// (None: the adaptive solver ran out of budget).
#[allow(clippy::too_many_arguments)]
fn integrate_particle(shape: &ModelShape, params: &[f32], solver: Solver, tol: f32, steps: u32, record: bool, scratch: &mut [f32], mut out: impl FnMut(u32, [f32; 2]), x0: [f32; 2]) -> ([f32; 2], Option<u32>) {
    if solver.is_adaptive() {
        let Ok(opts) = AdaptiveOptions::new(tol, steps.max(MIN_NFE)) else { return (x0, None) };
        let field = |x: [f32; 2], t: f32| crate::cpu::mlp::velocity(shape, params, x, t, scratch);
        let (x, stats) = integrate_field(field, x0, 0.0, 1.0, &opts, if record { steps } else { 0 }, &mut out);
        return (x, stats.finished.then_some(stats.nfe));
    }
    let h = 1.0 / steps as f32;
    let mut x = x0;
    for k in 0..steps {
        x = ode_step(shape, params, solver, x, crate::cpu::ode::step_time(0.0, 1.0, steps, k), h, scratch);
        if record {
            out(k + 1, x);
        }
    }
    (x, Some(steps * solver.evals_per_step()))
}

type JobResult = oneshot::Sender<Result<Vec<QualityPoint>, String>>;

/// Quality readings of a copy of the weights: for each planned probe, integrate the probe
/// particles (one particle per unit of work), then measure sliced W2 against the target.
struct QualityJob {
    shape: ModelShape,
    params: Vec<f32>,
    source: Vec<[f32; 2]>,
    data: Rc<Vec<[f32; 2]>>,
    plan: Vec<Probe>,
    next: usize,
    /// The current probe's particles (their end positions once integrated).
    particles: Vec<[f32; 2]>,
    done: usize,
    nfe: u64,
    out: Vec<QualityPoint>,
    scratch: Vec<f32>,
    tx: Option<JobResult>,
}

impl QualityJob {
    fn fail(&mut self, e: String) -> bool {
        if let Some(tx) = self.tx.take() {
            let _ = tx.send(Err(e));
        }
        true
    }
}

impl Job for QualityJob {
    fn work(&mut self, more: &mut dyn FnMut() -> bool) -> bool {
        while self.next < self.plan.len() {
            let p = self.plan[self.next];
            if self.particles.is_empty() {
                self.particles = initial_particles_from(PROBE_SEED, QUALITY_SAMPLES, &self.source);
                self.done = 0;
                self.nfe = 0;
            }
            while self.done < self.particles.len() {
                if !more() {
                    return false;
                }
                let i = self.done;
                let (end, nfe) = integrate_particle(&self.shape, &self.params, p.solver, p.tol, p.steps, false, &mut self.scratch, |_, _| {}, self.particles[i]);
                match nfe {
                    Some(nfe) => self.nfe += nfe as u64,
                    None => return self.fail(format!("{} did not reach t = 1 within {} evaluations", p.solver, p.steps)),
                }
                self.particles[i] = end;
                self.done += 1;
            }
            let sw2 = crate::metrics::sliced_w2_reading(&self.particles, &self.data, DIRECTIONS, PROBE_SEED);
            let nfe = if p.solver.is_adaptive() { self.nfe as f64 / self.particles.len() as f64 } else { p.fixed_nfe() };
            self.out.push(QualityPoint { solver: p.solver, nfe, sw2, setting: p.setting() });
            self.particles.clear();
            self.next += 1;
            if self.plan.len() > 1 {
                if let Err(e) = finite(sw2) {
                    return self.fail(e);
                }
            }
            if self.next < self.plan.len() && !more() {
                return false;
            }
        }
        self.finish()
    }
}

impl QualityJob {
    fn finish(&mut self) -> bool {
        if let Some(tx) = self.tx.take() {
            let _ = tx.send(Ok(std::mem::take(&mut self.out)));
        }
        true
    }
}

/// A straightness reading of a copy of the weights: the probe's particles, one per unit of work,
/// through `cpu::flow_stats`'s measured steps (twin of `shaders/flow_stats.wgsl`), then the means
/// and the minibatch W2².
struct StraightnessJob {
    shape: ModelShape,
    params: Vec<f32>,
    solver: Solver,
    steps: u32,
    w2: bool,
    origins: Vec<[f32; 2]>,
    ends: Vec<[f32; 2]>,
    energy: Vec<f32>,
    tx: Option<oneshot::Sender<Result<FlowStats, String>>>,
}

impl Job for StraightnessJob {
    fn work(&mut self, more: &mut dyn FnMut() -> bool) -> bool {
        while self.ends.len() < self.origins.len() {
            if !more() {
                return false;
            }
            let mut x = [self.origins[self.ends.len()]];
            let e = crate::cpu::flow_stats::integrate_measured(&self.shape, &self.params, self.solver, &mut x, self.steps);
            self.ends.push(x[0]);
            self.energy.push(e[0]);
        }
        if let Some(tx) = self.tx.take() {
            let _ = tx.send(Ok(crate::cpu::flow_stats::summarize_with(&self.origins, &self.ends, &self.energy, self.w2)));
        }
        true
    }
}

/// A field-error reading, one query per unit of work (twin of `GpuExactField::field_error`, keyed
/// in the GPU engine's chunks of `FIELD_ERROR_CHUNK` queries, so both read the same queries).
struct FieldErrorJob {
    shape: ModelShape,
    params: Vec<f32>,
    data: Rc<Vec<[f32; 2]>>,
    spec: TrainSpec,
    reading: u32,
    done: u32,
    sum: f64,
    scratch: Vec<f32>,
    tx: Option<oneshot::Sender<Result<f64, String>>>,
}

impl Job for FieldErrorJob {
    fn work(&mut self, more: &mut dyn FnMut() -> bool) -> bool {
        use super::quality::{FIELD_ERROR_CHUNK, FIELD_ERROR_QUERIES as n};
        let chunks = n / FIELD_ERROR_CHUNK;
        while self.done < n {
            if !more() {
                return false;
            }
            let (i, q) = (self.done / FIELD_ERROR_CHUNK, self.done % FIELD_ERROR_CHUNK);
            let r = self.reading.wrapping_mul(chunks).wrapping_add(i);
            let (x, t) = crate::cpu::exact::field_error_query(&self.data, self.spec.path, self.spec.sigma_min, self.spec.seed, r, q);
            let u = crate::cpu::exact::marginal_velocity(&self.data, self.spec.path, self.spec.sigma_min, x, t);
            let v = crate::cpu::mlp::velocity(&self.shape, &self.params, x, t, &mut self.scratch);
            self.sum += ((v[0] - u[0]) as f64).powi(2) + ((v[1] - u[1]) as f64).powi(2);
            self.done += 1;
        }
        if let Some(tx) = self.tx.take() {
            let _ = tx.send(Ok(self.sum / n as f64));
        }
        true
    }
}

/// Fresh particles integrated through a copy of the weights (`Engine::integrate_fresh`), one
/// particle per unit of work: reflow's pairs or the one-step preview.
struct FreshJob {
    shape: ModelShape,
    params: Vec<f32>,
    solver: Solver,
    steps: u32,
    tol: f32,
    x0: Vec<[f32; 2]>,
    x1: Vec<[f32; 2]>,
    scratch: Vec<f32>,
    tx: Option<oneshot::Sender<Result<crate::cpu::reflow::Pairs, String>>>,
}

impl Job for FreshJob {
    fn work(&mut self, more: &mut dyn FnMut() -> bool) -> bool {
        while self.x1.len() < self.x0.len() {
            if !more() {
                return false;
            }
            let x = self.x0[self.x1.len()];
            let (end, nfe) = integrate_particle(&self.shape, &self.params, self.solver, self.tol, self.steps, false, &mut self.scratch, |_, _| {}, x);
            if nfe.is_none() {
                if let Some(tx) = self.tx.take() {
                    let _ = tx.send(Err(format!("{} did not reach t = 1 within {} evaluations", self.solver, self.steps)));
                }
                return true;
            }
            self.x1.push(end);
        }
        if let Some(tx) = self.tx.take() {
            let _ = tx.send(Ok((std::mem::take(&mut self.x0), std::mem::take(&mut self.x1))));
        }
        true
    }
}

/// log p of points, one point per unit of work (twin of the GPU density kernel).
struct DensityJob {
    shape: ModelShape,
    params: Vec<f32>,
    points: Vec<[f32; 2]>,
    solver: Solver,
    steps: u32,
    out: Vec<f32>,
    tx: Option<oneshot::Sender<Result<Vec<f32>, String>>>,
}

impl Job for DensityJob {
    fn work(&mut self, more: &mut dyn FnMut() -> bool) -> bool {
        while self.out.len() < self.points.len() {
            if !more() {
                return false;
            }
            let x = self.points[self.out.len()];
            self.out.push(crate::cpu::density::log_density(&self.shape, &self.params, self.solver, x, self.steps.max(1)));
        }
        if let Some(tx) = self.tx.take() {
            let _ = tx.send(Ok(std::mem::take(&mut self.out)));
        }
        true
    }
}

impl Engine for CpuEngine {
    fn trains_on_caller_thread(&self) -> bool {
        true
    }

    fn info(&self) -> EngineInfo {
        EngineInfo { backend: "cpu", adapter: "CPU (WebAssembly SIMD, one thread)".into(), software: true, present: "canvas2d" }
    }

    fn step(&self) -> u32 {
        self.trainer.step
    }

    fn done(&self) -> u32 {
        self.trainer.step
    }

    fn latency_s(&self) -> f64 {
        0.0
    }

    fn train(&mut self, n: u32) {
        for _ in 0..n {
            let step = self.trainer.step;
            let loss = self.trainer.step();
            if !loss.is_finite() && self.first_bad.is_none() {
                self.first_bad = Some(step);
            }
            if self.losses.len() >= LOSS_RING as usize {
                self.losses.pop_front();
            }
            self.losses.push_back((step, loss));
        }
    }

    fn status(&mut self, since: u32) -> EngineFuture<TrainStatus> {
        let losses = self.losses.iter().filter(|&&(s, _)| s >= since).copied().collect();
        super::ready(Ok(TrainStatus { step: self.trainer.step, losses, first_bad_step: self.first_bad }))
    }

    fn apply(&mut self, c: &Config, effect: Effect) -> Result<(), String> {
        cpu_can_run(c).map_err(|e| e.to_string())?;
        match effect {
            Effect::Retrain => {
                let (data, source) = training_data(c);
                let trainer = Self::trainer(c, data, source)?;
                self.target = trainer.data.iter().take(TARGET_DRAWN_SOFTWARE as usize).copied().collect();
                self.trainer = trainer;
                self.scratch = vec![0.0; 2 * c.width as usize];
                self.shown.origins.clear();
                self.jobs.clear();
                self.exact = ExactArrows::default();
                self.exact_flow = Ok(None);
                self.forget_run();
                self.resample(c)?;
            }
            Effect::Resample => self.resample(c)?,
            Effect::Live => {}
        }
        let now = self.trainer.step;
        self.trainer.spec.adam.set_lr(c.lr, c.schedule, c.schedule_steps(), now);
        Ok(())
    }

    fn reset(&mut self, seed: u32) {
        let t = &mut self.trainer;
        t.spec.seed = seed;
        t.params = t.spec.shape.init_params(seed);
        t.m.iter_mut().chain(t.v.iter_mut()).chain(t.grads.iter_mut()).for_each(|x| *x = 0.0);
        t.step = 0;
        t.spec.adam.schedule_start = 0;
        self.forget_run();
    }

    fn set_target(&mut self, points: &[[f32; 2]]) -> Result<(), String> {
        if points.is_empty() {
            return Err("the target has no points".into());
        }
        self.trainer.set_target(points.to_vec());
        self.target = points.iter().take(TARGET_DRAWN_SOFTWARE as usize).copied().collect();
        self.exact = ExactArrows::default();
        self.exact_flow = Ok(None);
        Ok(())
    }

    fn load(&mut self, params: &[f32], step: u32) -> Result<(), String> {
        let n = self.trainer.params.len();
        self.trainer.load_state(params, &vec![0.0; 2 * n], step)?;
        self.forget_run();
        Ok(())
    }

    fn load_model(&mut self, file: &ModelFile) -> Result<(), String> {
        self.trainer.load_model(file)?;
        self.forget_run();
        Ok(())
    }

    fn model_file(&self, config: Config) -> EngineFuture<ModelFile> {
        super::ready(Ok(self.trainer.model_file(config)))
    }

    fn schedule_start(&self) -> u32 {
        self.trainer.spec.adam.schedule_start
    }

    fn set_schedule_start(&mut self, step: u32) {
        self.trainer.spec.adam.schedule_start = step;
    }

    fn params(&self) -> EngineFuture<Vec<f32>> {
        super::ready(Ok(self.trainer.params.clone()))
    }

    fn snapshot(&self) -> EngineFuture<Snapshot> {
        let t = &self.trainer;
        let moments = t.m.iter().chain(&t.v).copied().collect();
        super::ready(Ok(Snapshot { step: t.step, params: t.params.clone(), moments, first_bad_step: self.first_bad }))
    }

    fn restore(&mut self, s: &Snapshot) -> Result<(), String> {
        let t = &mut self.trainer;
        let p = t.params.len();
        if s.params.len() != p || s.moments.len() != 2 * p {
            return Err(format!("the snapshot holds {} parameters but this model has {p}", s.params.len()));
        }
        t.params.copy_from_slice(&s.params);
        t.m.copy_from_slice(&s.moments[..p]);
        t.v.copy_from_slice(&s.moments[p..]);
        t.step = s.step;
        self.losses.retain(|&(st, _)| st < s.step);
        self.first_bad = None;
        self.shown.job = None;
        self.shown.step = None;
        self.shown.frozen = false;
        Ok(())
    }

    fn shown_step(&self) -> Option<u32> {
        self.shown.step
    }

    fn ode_steps(&self) -> u32 {
        self.shown.steps
    }

    fn set_frozen(&mut self, frozen: bool) {
        self.shown.frozen = frozen;
        if frozen {
            self.shown.job = None;
        }
    }

    fn samples(&self) -> EngineFuture<Vec<[f32; 2]>> {
        super::ready(self.shown.end_positions().ok_or_else(|| super::gpu::NO_SAMPLES.to_string()))
    }

    fn heatmap_step(&self) -> Option<u32> {
        self.heat.at.map(|(s, _)| s)
    }

    fn sample_quality(&mut self, solver: Solver, steps: u32, tol: f32) -> EngineFuture<QualityPoint> {
        let (tx, fut) = channel("sample-quality reading");
        self.jobs.push(self.probe_job(vec![Probe { solver, steps, tol }], tx));
        Box::pin(async move { fut.await.and_then(|mut v| v.pop().ok_or_else(|| "no reading".to_string())) })
    }

    fn compare_solvers(&mut self) -> EngineFuture<Vec<QualityPoint>> {
        let (tx, fut) = channel("solver comparison");
        self.jobs.push(self.probe_job(comparison_plan(), tx));
        fut
    }

    fn flow_stats(&mut self, solver: Solver, nfe: u32, w2: bool) -> EngineFuture<FlowStats> {
        let (tx, fut) = channel("straightness reading");
        let origins = initial_particles_from(PROBE_SEED, QUALITY_SAMPLES, &self.trainer.source);
        let steps = crate::cpu::flow_stats::measured_steps(solver, nfe);
        let n = origins.len();
        self.jobs.push(Box::new(StraightnessJob { shape: self.shape(), params: self.trainer.params.clone(), solver, steps, w2, origins, ends: Vec::with_capacity(n), energy: Vec::with_capacity(n), tx: Some(tx) }));
        fut
    }

    fn field_error(&mut self, reading: u32) -> EngineFuture<f64> {
        if !self.trainer.source.is_empty() {
            return super::ready(Err(super::quality::NO_EXACT_FIELD.into()));
        }
        let shape = self.shape();
        if let Err(e) = super::quality::field_error_fits(&self.profile(), self.trainer.data.len().min(u32::MAX as usize) as u32, &shape) {
            return super::ready(Err(e));
        }
        let (tx, fut) = channel("field-error reading");
        let job = FieldErrorJob {
            shape,
            params: self.trainer.params.clone(),
            data: Rc::new(self.trainer.data.clone()),
            spec: self.trainer.spec,
            reading,
            done: 0,
            sum: 0.0,
            scratch: vec![0.0; 2 * shape.width as usize],
            tx: Some(tx),
        };
        self.jobs.push(Box::new(job));
        fut
    }

    fn integrate_fresh(&mut self, seed: u32, n: u32, solver: Solver, steps: u32, tol: f32) -> EngineFuture<crate::cpu::reflow::Pairs> {
        if n == 0 {
            return super::ready(Err("no particles to integrate".into()));
        }
        let (tx, fut) = channel("integration of fresh particles");
        let x0 = initial_particles_from(seed, n, &self.trainer.source);
        let scratch = vec![0.0; 2 * self.shape().width as usize];
        self.jobs.push(Box::new(FreshJob { shape: self.shape(), params: self.trainer.params.clone(), solver, steps: steps.max(1), tol, x1: Vec::with_capacity(x0.len()), x0, scratch, tx: Some(tx) }));
        fut
    }

    fn set_pairs(&mut self, pairs: Option<&crate::cpu::reflow::Pairs>) -> Result<(), String> {
        if let Some((x0, x1)) = pairs {
            if x0.is_empty() || x0.len() != x1.len() {
                return Err(format!("reflow needs equally many noise points and samples, at least one: {} and {} given", x0.len(), x1.len()));
            }
        }
        self.trainer.pairs = pairs.cloned();
        if pairs.is_some() {
            // New training data restarts the schedule, as on the GPU (`GpuTrainer::set_pairs`).
            self.trainer.spec.adam.schedule_start = self.trainer.step;
        }
        Ok(())
    }

    fn log_density(&mut self, points: Vec<[f32; 2]>, solver: Solver, steps: u32) -> EngineFuture<Vec<f32>> {
        if !self.trainer.source.is_empty() {
            return super::ready(Err(super::gpu::NO_DENSITY.into()));
        }
        let (tx, fut) = channel("density computation");
        self.jobs.push(Box::new(DensityJob { shape: self.shape(), params: self.trainer.params.clone(), points, solver, steps, out: Vec::new(), tx: Some(tx) }));
        fut
    }

    fn frame(&mut self, f: &FrameInput) {
        self.integrate_slice(f.now, f.wrapped);
        let heat = f.layers.heatmap && self.update_heat(f.now, f.viewport.extent);
        if f.layers.exact {
            self.exact_slice(f.t, f.viewport.extent, INTEGRATE_BUDGET_MS);
        }
        if f.layers.exact_flow {
            self.exact_flow_slice(INTEGRATE_BUDGET_MS);
        }
        self.jobs.run(f.work_ms);
        self.draw(f, heat);
    }

    fn resize(&mut self, width: u32, height: u32) {
        self.size = (width.max(1), height.max(1));
        self.painter.resize(self.size.0, self.size.1);
    }

    fn frames_presented(&self) -> f64 {
        self.presented
    }

    fn profile(&self) -> crate::budget::Profile {
        crate::budget::Profile::cpu()
    }

    fn exact_field_note(&self) -> Option<String> {
        (!self.trainer.source.is_empty()).then(|| super::quality::NO_EXACT_ARROWS.to_string())
    }
    fn exact_field_t(&self) -> Option<f32> {
        self.exact.key.map(|(t, _)| t)
    }

    fn exact_flow(&self) -> Option<super::exact_flow::ExactFlowState> {
        use super::exact_flow::ExactFlowState;
        match &self.exact_flow {
            Err(note) => Some(ExactFlowState::refused(note.clone())),
            Ok(None) => None,
            Ok(Some(r)) => Some(ExactFlowState::progress(r.n as u32, self.trainer.data.len() as u32, r.steps, r.next.0, r.landed)),
        }
    }

    fn work_done(&self) -> u64 {
        self.trainer.step as u64 + self.presented as u64
    }

    fn device_lost(&self) -> bool {
        false
    }
}
