//! Sample quality on the page (WebGPU backend only): the sliced Wasserstein-2 distance
//! (`shaders/sliced_w2.wgsl`, [`GpuQuality`]) between freshly integrated samples and the target,
//! and its curve against the number of field evaluations for each solver.
//!
//! The CFM loss plateaus at a level set by the data (the variance of its conditional targets), so
//! it does not say whether the samples are good; SW2 (lower is better) does. Every evaluation
//! integrates `QUALITY_SAMPLES` particles from the same starting draw (seed `PROBE_SEED`) through
//! a *snapshot* of the current weights (training may continue meanwhile) and compares them with
//! the same target subset, so points differ only by the solver. A child module of `app` (it
//! reads `App`'s state); `www/quality.js` calls these methods and draws the charts.

use super::{App, Backend};
use crate::config::Solver;
use crate::gpu::quality::QUALITY_SAMPLES;
use crate::gpu::{GpuQuality, GpuSampler};
use js_sys::{Array, Object, Promise};
use wasm_bindgen::prelude::*;

/// Field evaluations per sample of the fixed-step solvers in the comparison (steps = nfe / evals
/// per step, skipped below one step).
pub const NFE_LEVELS: [u32; 5] = [4, 8, 16, 32, 64];
/// Tolerances of dopri5 in the comparison (its evaluations are what the controller used).
pub const DOPRI5_TOLS: [f32; 5] = [1e-1, 1e-2, 1e-3, 1e-4, 1e-5];
/// dopri5's budget in the comparison (large enough never to bind at these tolerances).
const DOPRI5_BUDGET: u32 = 2000;
const PROBE_SEED: u32 = 0x51_57;
const DIRECTIONS: u32 = 64;

/// A sampler over a snapshot of the weights and a quality evaluator over its particles.
struct Probe {
    sampler: GpuSampler,
    quality: GpuQuality,
    /// The weights snapshot, counted and destroyed with the probe (`gpu::counter`).
    _params: crate::gpu::counter::Owned,
}

impl Probe {
    /// SW2 after integrating the probe particles with `solver` (`steps`: its steps, or dopri5's
    /// budget), and the mean field evaluations per particle that took.
    async fn run(&mut self, solver: Solver, steps: u32) -> Result<(f32, f64), String> {
        self.sampler.reset(PROBE_SEED);
        self.sampler.integrate(solver, 0.0, 1.0, steps);
        let nfe = if solver == Solver::Dopri5 {
            let s = self.sampler.read_adaptive_summary().await.map_err(|e| e.to_string())?;
            if s.unfinished > 0 {
                return Err(format!("dopri5 did not reach t = 1 within {steps} evaluations for {} samples", s.unfinished));
            }
            s.mean_nfe()
        } else {
            (steps * solver.evals_per_step()) as f64
        };
        let sw2 = self.quality.sliced_w2(PROBE_SEED).await.map_err(|e| e.to_string())?;
        Ok((sw2, nfe))
    }
}

const NEEDS_WEBGPU: &str = "sample quality (sliced W2) needs WebGPU: the CPU backend does not compute it";
const DIVERGED: &str = "training diverged: the current weights give no samples to measure (restore the last good weights or reset)";

impl App {
    /// A probe over the current weights, or why not (CPU backend, out of memory, diverged).
    fn probe(&self) -> Result<Probe, String> {
        let s = self.inner.borrow();
        let Backend::Gpu(g) = &s.backend else { return Err(NEEDS_WEBGPU.into()) };
        if s.rel.diverged {
            return Err(DIVERGED.into());
        }
        let ctx = &g.ctx;
        let t = &g.trainer;
        let params = ctx.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("quality.params_snapshot"),
            size: t.params.size(),
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut encoder = ctx.device.create_command_encoder(&Default::default());
        encoder.copy_buffer_to_buffer(&t.params, 0, &params, 0, t.params.size());
        ctx.queue.submit([encoder.finish()]);
        let mut sampler = GpuSampler::new_with_source(ctx, &t.spec.shape, &params, QUALITY_SAMPLES, 0, g.source_points()).map_err(|e| e.to_string())?;
        sampler.set_tol(s.config.tol)?;
        let n_points = t.target_len();
        let quality = GpuQuality::new(ctx, &sampler.particles, QUALITY_SAMPLES, &t.data, n_points, DIRECTIONS);
        Ok(Probe { sampler, quality, _params: crate::gpu::counter::Owned::new(&[&params]) })
    }
}

/// A comparison point's SW2, or the rejection the page shows (non-finite weights: diverged).
fn finite(sw2: f32) -> Result<f32, JsValue> {
    if sw2.is_finite() {
        Ok(sw2)
    } else {
        Err(JsValue::from(JsError::new(DIVERGED)))
    }
}

fn point(solver: Solver, nfe: f64, sw2: f32, setting: f64) -> JsValue {
    let o = Object::new();
    super::set(&o, "solver", solver.name());
    super::set(&o, "nfe", nfe);
    super::set(&o, "sw2", sw2 as f64);
    // Steps for the fixed-step solvers, the tolerance for dopri5.
    super::set(&o, "setting", setting);
    o.into()
}

#[wasm_bindgen]
impl App {
    /// Resolves to the sliced W2 between `QUALITY_SAMPLES` samples integrated with the page's
    /// solver and nfe and the target (lower is better), or to `null` when it is not finite: the
    /// probe copies the weights as they are on the GPU queue, which can be after a divergence
    /// that the page learns of only when the next status read comes back (0.2–2 s later on a
    /// loaded software adapter); that read reports the divergence. Rejects on the CPU backend and
    /// once the divergence is known.
    pub fn sample_quality(&self) -> Promise {
        let (solver, nfe) = {
            let s = self.inner.borrow();
            (s.config.solver, s.config.nfe)
        };
        let probe = self.probe();
        wasm_bindgen_futures::future_to_promise(async move {
            let mut probe = probe.map_err(|e| JsValue::from(JsError::new(&e)))?;
            let (sw2, _) = probe.run(solver, nfe).await.map_err(|e| JsValue::from(JsError::new(&e)))?;
            Ok(if sw2.is_finite() { JsValue::from(sw2 as f64) } else { JsValue::NULL })
        })
    }

    /// Resolves to an array of `{solver, nfe, sw2, setting}`: euler, midpoint and rk4 at each of
    /// `NFE_LEVELS` evaluations per sample (where that is at least one step) and dopri5 at each
    /// of `DOPRI5_TOLS` (nfe: the mean evaluations it used), all for the current weights.
    pub fn compare_solvers(&self) -> Promise {
        let probe = self.probe();
        wasm_bindgen_futures::future_to_promise(async move {
            let mut probe = probe.map_err(|e| JsValue::from(JsError::new(&e)))?;
            let err = |e: String| JsValue::from(JsError::new(&e));
            let out = Array::new();
            for solver in [Solver::Euler, Solver::Midpoint, Solver::Rk4] {
                for nfe in NFE_LEVELS {
                    let steps = nfe / solver.evals_per_step();
                    if steps == 0 {
                        continue;
                    }
                    let (sw2, used) = probe.run(solver, steps).await.map_err(err)?;
                    out.push(&point(solver, used, finite(sw2)?, steps as f64));
                }
            }
            for tol in DOPRI5_TOLS {
                probe.sampler.set_tol(tol).map_err(err)?;
                let (sw2, used) = probe.run(Solver::Dopri5, DOPRI5_BUDGET).await.map_err(err)?;
                out.push(&point(Solver::Dopri5, used, finite(sw2)?, tol as f64));
            }
            Ok(out.into())
        })
    }
}
