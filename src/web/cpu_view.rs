//! The fallback backend when the browser has no WebGPU: the CPU reference trainer
//! (`cpu::CpuTrainer`) and ODE (`cpu::ode`), drawn on a 2D canvas with the same colours and
//! layers as the WebGPU renderer.
//!
//! Work is sliced by wall time so the page stays responsive: training gets a few milliseconds per
//! frame (steps per frame follow the measured cost of a step), and re-integrating the shown
//! trajectories proceeds a chunk of particles per frame into a second buffer that replaces the
//! shown one when complete.

use super::gpu_view::{training_data, ARROW_GRID};
use super::pacing::{refresh_interval, Pacing};
use crate::config::{Config, Solver};
use crate::cpu::ode::{initial_particles_from, ode_step};
use crate::cpu::CpuTrainer;
use crate::render::view::{arrow_anchor, origin_color};
use crate::render::{Layers, Viewport};
use crate::spec::TrainSpec;
use web_sys::CanvasRenderingContext2d;

/// Target points drawn faintly.
const TARGET_DRAWN: usize = 2500;
/// Milliseconds of training per frame.
const TRAIN_BUDGET_MS: f64 = 9.0;
/// Milliseconds of trajectory integration per frame.
const INTEGRATE_BUDGET_MS: f64 = 4.0;
/// Assumed throughput of the wasm reference MLP, for the refresh interval.
const CPU_FLOPS: f64 = 0.6e9;

/// A re-integration in progress: particles `[0, next)` are done.
struct TrajJob {
    traj: Vec<[f32; 2]>,
    next: usize,
    step: u32,
    params: Vec<f32>,
}

pub struct CpuView {
    canvas: web_sys::HtmlCanvasElement,
    ctx2d: CanvasRenderingContext2d,
    pub trainer: CpuTrainer,
    origins: Vec<[f32; 2]>,
    colors: Vec<String>,
    /// Shown trajectories, `(steps + 1, n)` step-major.
    traj: Vec<[f32; 2]>,
    job: Option<TrajJob>,
    pub steps: u32,
    solver: Solver,
    /// The adaptive solver's tolerance (`dopri5`).
    tol: f32,
    target: Vec<[f32; 2]>,
    /// Velocity at each arrow anchor, and the (step, t) it was computed for.
    field: Vec<[f32; 2]>,
    field_key: Option<(u32, f32)>,
    pub traj_step: Option<u32>,
    last_refresh: f64,
    refresh_s: f64,
    ms_per_step: f64,
    scratch: Vec<f32>,
}

fn css_color(c: [f32; 3]) -> String {
    let b = |v: f32| (v.clamp(0.0, 1.0) * 255.0).round() as u8;
    format!("rgb({},{},{})", b(c[0]), b(c[1]), b(c[2]))
}

fn now_ms() -> f64 {
    web_sys::window().and_then(|w| w.performance()).map(|p| p.now()).unwrap_or(0.0)
}

impl CpuView {
    pub fn new(canvas: web_sys::HtmlCanvasElement, c: &Config) -> Result<Self, String> {
        let ctx2d: CanvasRenderingContext2d = canvas
            .get_context("2d")
            .ok()
            .flatten()
            .and_then(|o| wasm_bindgen::JsCast::dyn_into(o).ok())
            .ok_or("this canvas has no 2D context either (was it already used for WebGPU?)")?;
        let mut v = CpuView {
            canvas,
            ctx2d,
            trainer: CpuTrainer::new(TrainSpec::from_config(c), vec![[0.0, 0.0]]),
            origins: Vec::new(),
            colors: Vec::new(),
            traj: Vec::new(),
            job: None,
            steps: 1,
            solver: c.solver,
            tol: c.tol,
            target: Vec::new(),
            field: Vec::new(),
            field_key: None,
            traj_step: None,
            last_refresh: f64::NEG_INFINITY,
            refresh_s: 1.0,
            ms_per_step: 1.0,
            scratch: vec![0.0; 2 * c.width as usize],
        };
        v.retrain(c)?;
        Ok(v)
    }

    pub fn retrain(&mut self, c: &Config) -> Result<(), String> {
        let (data, source) = training_data(c);
        self.target = data.iter().take(TARGET_DRAWN).copied().collect();
        let mut trainer = CpuTrainer::new(TrainSpec::from_config(c), data);
        trainer.source = source;
        self.trainer = trainer;
        self.scratch = vec![0.0; 2 * c.width as usize];
        self.field_key = None;
        self.resample(c)
    }

    pub fn resample(&mut self, c: &Config) -> Result<(), String> {
        self.steps = c.nfe.clamp(1, 2000);
        self.origins = initial_particles_from(c.seed, c.particles.min(200_000), &self.trainer.source);
        self.colors = self.origins.iter().map(|&p| css_color(origin_color(p))).collect();
        self.traj = Vec::new();
        self.job = None;
        self.traj_step = None;
        self.set_solver(c.solver);
        Ok(())
    }

    /// The adaptive solver's tolerance (`dopri5`); the trajectories are recomputed.
    pub fn set_tol(&mut self, tol: f32) {
        self.tol = tol;
        self.job = None;
        self.traj_step = None;
    }

    pub fn set_solver(&mut self, s: Solver) {
        self.solver = s;
        self.job = None;
        self.traj_step = None;
        let macs = self.trainer.spec.shape.macs_per_sample();
        self.refresh_s = refresh_interval(self.origins.len() as u32, self.steps, s.evals_per_step(), macs, CPU_FLOPS);
    }

    pub fn reset(&mut self, seed: u32) {
        let t = &mut self.trainer;
        t.spec.seed = seed;
        t.params = t.spec.shape.init_params(seed);
        t.m.iter_mut().chain(t.v.iter_mut()).chain(t.grads.iter_mut()).for_each(|x| *x = 0.0);
        t.step = 0;
        t.spec.adam.schedule_start = 0;
        self.job = None;
        self.traj_step = None;
        self.field_key = None;
    }

    /// Where the shown trajectories end (t = 1); empty before the first integration.
    pub fn end_positions(&self) -> Vec<[f32; 2]> {
        let n = self.origins.len();
        if n == 0 || self.traj.len() != (self.steps as usize + 1) * n {
            return Vec::new();
        }
        self.traj[self.steps as usize * n..].to_vec()
    }

    /// A new learning rate or schedule; a change restarts the schedule at the current step.
    pub fn set_lr(&mut self, lr: f32, schedule: crate::config::LrSchedule, horizon: u32) {
        let now = self.trainer.step;
        self.trainer.spec.adam.set_lr(lr, schedule, horizon, now);
    }

    /// Trains on `points` from now on (a custom target) with the current weights; the faint
    /// target layer shows them.
    pub fn set_target(&mut self, points: &[[f32; 2]]) -> Result<(), String> {
        if points.is_empty() {
            return Err("the target has no points".into());
        }
        self.trainer.set_target(points.to_vec());
        self.target = points.iter().take(TARGET_DRAWN).copied().collect();
        Ok(())
    }

    /// The particles at t = 1 of the newest integration (`x0, y0, x1, y1, ...`; empty before the
    /// first one completes).
    pub fn samples(&self) -> Vec<f32> {
        let n = self.origins.len();
        if n == 0 || self.traj.len() != (self.steps as usize + 1) * n {
            return Vec::new();
        }
        self.traj[self.steps as usize * n..].iter().flat_map(|p| [p[0], p[1]]).collect()
    }

    pub fn resize(&mut self, w: u32, h: u32) {
        self.canvas.set_width(w.max(1));
        self.canvas.set_height(h.max(1));
    }

    /// Trains for about `TRAIN_BUDGET_MS` (at least `min_steps`); returns `(step, loss)` of each step.
    #[allow(dead_code)] // the page calls `train_at_most` (step limit); kept for other callers
    pub fn train(&mut self, min_steps: u32) -> Vec<(u32, f32)> {
        self.train_at_most(min_steps, u32::MAX)
    }

    /// As [`CpuView::train`], but never more than `max_steps` steps (the widget's step limit).
    pub fn train_at_most(&mut self, min_steps: u32, max_steps: u32) -> Vec<(u32, f32)> {
        let n = Pacing::fit_budget(TRAIN_BUDGET_MS, self.ms_per_step).max(min_steps).min(max_steps);
        if n == 0 {
            return Vec::new();
        }
        let t0 = now_ms();
        let out: Vec<(u32, f32)> = (0..n).map(|_| (self.trainer.step, self.trainer.step())).collect();
        let per = (now_ms() - t0) / n as f64;
        self.ms_per_step = 0.8 * self.ms_per_step + 0.2 * per.max(1e-3);
        out
    }

    /// Advances (or starts) the trajectory re-integration by a slice of wall time.
    fn integrate_slice(&mut self, now: f64, wrapped: bool) {
        let step = self.trainer.step;
        if self.job.is_none() {
            let stale = self.traj_step != Some(step);
            if !(self.traj_step.is_none() || (stale && (wrapped || now - self.last_refresh >= self.refresh_s))) {
                return;
            }
            let n = self.origins.len();
            let mut traj = vec![[0.0f32; 2]; (self.steps as usize + 1) * n];
            traj[..n].copy_from_slice(&self.origins);
            self.job = Some(TrajJob { traj, next: 0, step, params: self.trainer.params.clone() });
            self.last_refresh = now;
        }
        let (n, steps, solver) = (self.origins.len(), self.steps as usize, self.solver);
        let shape = self.trainer.spec.shape;
        let t0 = now_ms();
        // The first integration is done in one go so the canvas never shows an empty frame.
        let budget = if self.traj.is_empty() { f64::INFINITY } else { INTEGRATE_BUDGET_MS };
        let Some(job) = self.job.as_mut() else { return };
        let h = 1.0 / steps as f32;
        while job.next < n && now_ms() - t0 < budget {
            let end = (job.next + 64).min(n);
            for i in job.next..end {
                if solver == Solver::Dopri5 {
                    // Adaptive: nfe is the budget per particle; frames at equal times (cpu::adaptive).
                    let Ok(opts) = crate::cpu::adaptive::AdaptiveOptions::new(self.tol, self.steps.max(crate::cpu::adaptive::MIN_NFE)) else { break };
                    let (params, traj, scratch) = (&job.params, &mut job.traj, &mut self.scratch);
                    let field = |x: [f32; 2], t: f32| crate::cpu::mlp::velocity(&shape, params, x, t, scratch);
                    let x0 = traj[i];
                    crate::cpu::adaptive::integrate_field(field, x0, 0.0, 1.0, &opts, steps as u32, |k, y| traj[k as usize * n + i] = y);
                    continue;
                }
                let mut x = job.traj[i];
                for k in 0..steps {
                    x = ode_step(&shape, &job.params, solver, x, k as f32 * h, h, &mut self.scratch);
                    job.traj[(k + 1) * n + i] = x;
                }
            }
            job.next = end;
        }
        if job.next >= n {
            if let Some(job) = self.job.take() {
                self.traj = job.traj;
                self.traj_step = Some(job.step);
            }
        }
    }

    fn position(&self, i: usize, t: f32) -> [f32; 2] {
        let n = self.origins.len();
        let s = self.steps as f32 * t.clamp(0.0, 1.0);
        let k0 = (s.floor() as usize).min(self.steps as usize - 1);
        let f = s - k0 as f32;
        let (a, b) = (self.traj[k0 * n + i], self.traj[(k0 + 1) * n + i]);
        [a[0] + (b[0] - a[0]) * f, a[1] + (b[1] - a[1]) * f]
    }

    pub fn frame(&mut self, now: f64, t: f32, wrapped: bool, layers: Layers, vp: Viewport, point_px: f32) {
        self.integrate_slice(now, wrapped);
        let ctx = &self.ctx2d;
        ctx.set_global_alpha(1.0);
        ctx.set_fill_style_str("#0b0e14");
        ctx.fill_rect(0.0, 0.0, vp.width as f64, vp.height as f64);
        if layers.target {
            ctx.set_fill_style_str("rgba(158,171,199,0.22)");
            let s = (point_px * 0.7).max(1.5) as f64;
            for p in &self.target {
                let q = vp.to_px(*p);
                ctx.fill_rect(q[0] as f64 - s / 2.0, q[1] as f64 - s / 2.0, s, s);
            }
        }
        let n = self.origins.len();
        if self.traj.len() == (self.steps as usize + 1) * n && n > 0 {
            if layers.trails && t > 0.0 {
                let stride = n.div_ceil(crate::render::MAX_TRAILS as usize).max(1);
                ctx.set_line_width(1.0);
                ctx.set_global_alpha(0.3);
                let last = (t * self.steps as f32).floor() as usize;
                for i in (0..n).step_by(stride) {
                    ctx.set_stroke_style_str(&self.colors[i]);
                    ctx.begin_path();
                    let p0 = vp.to_px(self.traj[i]);
                    ctx.move_to(p0[0] as f64, p0[1] as f64);
                    for k in 1..=last.min(self.steps as usize) {
                        let p = vp.to_px(self.traj[k * n + i]);
                        ctx.line_to(p[0] as f64, p[1] as f64);
                    }
                    let p = vp.to_px(self.position(i, t));
                    ctx.line_to(p[0] as f64, p[1] as f64);
                    ctx.stroke();
                }
            }
            if layers.particles {
                ctx.set_global_alpha(0.9);
                let s = point_px as f64;
                for i in 0..n {
                    let q = vp.to_px(self.position(i, t));
                    if !(q[0].is_finite() && q[1].is_finite()) {
                        continue;
                    }
                    ctx.set_fill_style_str(&self.colors[i]);
                    ctx.fill_rect(q[0] as f64 - s / 2.0, q[1] as f64 - s / 2.0, s, s);
                }
            }
        }
        if layers.arrows {
            self.draw_arrows(t, vp);
        }
        self.ctx2d.set_global_alpha(1.0);
    }

    fn draw_arrows(&mut self, t: f32, vp: Viewport) {
        let g = ARROW_GRID;
        let key = (self.trainer.step, t);
        if self.field_key != Some(key) {
            let shape = self.trainer.spec.shape;
            self.field = (0..g * g)
                .map(|i| crate::cpu::mlp::velocity(&shape, &self.trainer.params, arrow_anchor(i, g, vp.extent), t, &mut self.scratch))
                .collect();
            self.field_key = Some(key);
        }
        let ctx = &self.ctx2d;
        let cell = 2.0 * vp.extent / g as f32;
        ctx.set_line_width(1.0);
        ctx.set_stroke_style_str("rgb(217,230,255)");
        for (i, v) in self.field.iter().enumerate() {
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
            ctx.set_global_alpha((0.22 + 0.5 * (1.0 - (-speed).exp())) as f64);
            ctx.begin_path();
            for (from, to) in [(tail, tip), (tip, l), (tip, r)] {
                let (p, q) = (vp.to_px(from), vp.to_px(to));
                ctx.move_to(p[0] as f64, p[1] as f64);
                ctx.line_to(q[0] as f64, q[1] as f64);
            }
            ctx.stroke();
        }
    }
}
