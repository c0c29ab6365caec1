//! The WebGPU backend of the page: trainer, samplers and renderer on one device, drawing into
//! the canvas' WebGPU context.
//!
//! Per frame: queue `n` training steps (no readback), re-integrate the shown trajectories when
//! the model has moved on and the refresh interval has passed (`pacing::refresh_interval`),
//! evaluate the arrow grid when arrows are on, and render straight from the buffers. The particle
//! sampler records its whole trajectory `(S + 1, N)`, so the animation and the scrubber only
//! interpolate between recorded states in the vertex shader.

use super::pacing::refresh_interval;
use crate::config::{Config, Solver, Source};
use crate::gpu::trainer::TrainStatus;
use crate::gpu::{GpuContext, GpuError, GpuSampler, GpuTrainer};
use crate::render::{FlowRenderer, Layers, Viewport};
use crate::spec::TrainSpec;
use crate::targets::sample_dataset;
use std::future::Future;

/// Training points uploaded to the GPU (2^15: generated and uploaded in a few milliseconds).
pub const DATA_POINTS: usize = 1 << 15;
/// Of which this many are drawn faintly as the target (fewer on software adapters).
fn target_drawn(ctx: &GpuContext) -> u32 {
    if ctx.adapter.is_software() { 2500 } else { 8000 }
}
/// Arrows per side of the velocity grid.
pub const ARROW_GRID: u32 = 24;
/// Bytes the trajectory buffer may take; longer integrations are shown with fewer steps.
const TRAJ_BUDGET: u64 = 96 << 20;

/// The training data for a config: the target and, if the source is a dataset, its points.
pub fn training_data(c: &Config) -> (Vec<[f32; 2]>, Vec<[f32; 2]>) {
    let data = sample_dataset(c.dataset, DATA_POINTS, c.seed);
    let source = match c.source {
        Source::Gaussian => Vec::new(),
        Source::Dataset(d) => sample_dataset(d, DATA_POINTS, c.seed ^ 0x5eed),
    };
    (data, source)
}

/// Trajectory steps recorded for `nfe` steps of `n` particles within the buffer budget.
pub fn traj_steps(nfe: u32, n: u32, max_binding: u64) -> u32 {
    let rows = (TRAJ_BUDGET.min(max_binding) / (n.max(1) as u64 * 8)).saturating_sub(1);
    nfe.min(rows.min(u32::MAX as u64) as u32).max(1)
}

/// How frames reach the canvas.
enum Present {
    /// The canvas' WebGPU context: render straight into its texture (no copies).
    Surface { surface: wgpu::Surface<'static>, config: wgpu::SurfaceConfiguration },
    /// Render into an offscreen texture and copy it to a 2D canvas through one async readback in
    /// flight. Used on software adapters: in headless Chromium 156 with SwiftShader, taking a
    /// canvas' WebGPU texture makes every later `mapAsync` fail ("A valid external Instance
    /// reference no longer exists"), which would stop the loss readback. On a CPU adapter the
    /// "GPU" memory is host memory, so the copy is cheap there.
    Readback(Readback),
}

struct Readback {
    ctx2d: web_sys::CanvasRenderingContext2d,
    canvas: web_sys::HtmlCanvasElement,
    texture: wgpu::Texture,
    staging: wgpu::Buffer,
    width: u32,
    height: u32,
    busy: std::rc::Rc<std::cell::Cell<bool>>,
    /// Registers (and on drop destroys) `staging` (`gpu::counter`).
    live: crate::gpu::counter::Owned,
}

/// Frame rate of the readback presenter.
const READBACK_FPS: f64 = 20.0;

/// Offscreen target format of the readback path (what `ImageData` wants).
const READBACK_FORMAT: wgpu::TextureFormat = wgpu::TextureFormat::Rgba8Unorm;

impl Readback {
    fn new(device: &wgpu::Device, canvas: web_sys::HtmlCanvasElement, w: u32, h: u32) -> Result<Self, String> {
        let ctx2d = canvas
            .get_context("2d")
            .ok()
            .flatten()
            .and_then(|o| wasm_bindgen::JsCast::dyn_into(o).ok())
            .ok_or("the canvas has no 2D context for the readback presenter")?;
        let (texture, staging) = Self::targets(device, w, h);
        let live = crate::gpu::counter::Owned::new(&[&staging]);
        Ok(Readback { ctx2d, canvas, texture, staging, width: w, height: h, busy: Default::default(), live })
    }

    fn targets(device: &wgpu::Device, w: u32, h: u32) -> (wgpu::Texture, wgpu::Buffer) {
        let texture = device.create_texture(&wgpu::TextureDescriptor {
            label: Some("present.offscreen"),
            size: wgpu::Extent3d { width: w, height: h, depth_or_array_layers: 1 },
            mip_level_count: 1,
            sample_count: 1,
            dimension: wgpu::TextureDimension::D2,
            format: READBACK_FORMAT,
            usage: wgpu::TextureUsages::RENDER_ATTACHMENT | wgpu::TextureUsages::COPY_SRC,
            view_formats: &[],
        });
        let staging = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("present.staging"),
            size: Self::row_bytes(w) as u64 * h as u64,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        (texture, staging)
    }

    fn row_bytes(w: u32) -> u32 {
        (w * 4).next_multiple_of(wgpu::COPY_BYTES_PER_ROW_ALIGNMENT)
    }
}

pub struct GpuView {
    pub ctx: GpuContext,
    present: Present,
    pub trainer: GpuTrainer,
    sampler: GpuSampler,
    field: GpuSampler,
    renderer: FlowRenderer,
    source: Vec<[f32; 2]>,
    solver: Solver,
    /// Recorded steps of the shown trajectories.
    pub steps: u32,
    /// Trainer step the shown trajectories were integrated with (None: must integrate now).
    pub traj_step: Option<u32>,
    last_refresh: f64,
    refresh_s: f64,
    field_key: Option<(u32, f32)>,
    last_field: f64,
    last_draw: f64,
    measured_flops: f64,
    /// Set after a divergence: the shown trajectories are not re-integrated (no NaN particles).
    pub frozen: bool,
    /// The density heat map: its evaluator (built when the layer is first shown, dropped on
    /// retrain), and the (step, time) it was last computed.
    heat: Option<crate::gpu::GpuDensity>,
    heat_at: Option<(u32, f64)>,
    /// Frames whose pixels reached the canvas (surface: presented; readback: put on the 2D
    /// canvas). Tests wait on it instead of on time (`state().framesPresented`).
    pub presented: std::rc::Rc<std::cell::Cell<f64>>,
}

fn gpu_err(e: GpuError) -> String {
    e.to_string()
}

/// The canvas format the browser prefers (`navigator.gpu.getPreferredCanvasFormat()`).
fn preferred_format() -> wgpu::TextureFormat {
    let name = (|| {
        let nav = js_sys::Reflect::get(&js_sys::global(), &"navigator".into()).ok()?;
        let gpu = js_sys::Reflect::get(&nav, &"gpu".into()).ok()?;
        let f: js_sys::Function = js_sys::Reflect::get(&gpu, &"getPreferredCanvasFormat".into()).ok()?.into();
        f.call0(&gpu).ok()?.as_string()
    })();
    match name.as_deref() {
        Some("rgba8unorm") => wgpu::TextureFormat::Rgba8Unorm,
        _ => wgpu::TextureFormat::Bgra8Unorm,
    }
}

impl GpuView {
    /// Builds the engine for `c` on `ctx` and takes the canvas (its WebGPU context, or its 2D
    /// context when `readback`). Fails (with a message for the page) if the model does not fit
    /// or the canvas refuses.
    pub fn new(ctx: GpuContext, canvas: web_sys::HtmlCanvasElement, c: &Config, readback: bool) -> Result<Self, String> {
        let (data, source) = training_data(c);
        let trainer = GpuTrainer::new_with_source(&ctx, TrainSpec::from_config(c), &data, &source).map_err(gpu_err)?;
        let (w, h) = (canvas.width().max(1), canvas.height().max(1));
        let (present, format) = if readback {
            (Present::Readback(Readback::new(&ctx.device, canvas, w, h)?), READBACK_FORMAT)
        } else {
            let instance = wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle());
            let surface = instance
                .create_surface(wgpu::SurfaceTarget::Canvas(canvas))
                .map_err(|e| format!("the canvas refused a WebGPU context: {e}"))?;
            let format = preferred_format();
            let config = wgpu::SurfaceConfiguration {
                usage: wgpu::TextureUsages::RENDER_ATTACHMENT,
                format,
                color_space: Default::default(),
                width: w,
                height: h,
                present_mode: wgpu::PresentMode::Fifo,
                desired_maximum_frame_latency: 2,
                alpha_mode: wgpu::CompositeAlphaMode::Opaque,
                view_formats: vec![],
            };
            surface.configure(&ctx.device, &config);
            (Present::Surface { surface, config }, format)
        };
        let mut renderer = FlowRenderer::new(&ctx.device, &ctx.queue, format);
        let steps = traj_steps(c.nfe, c.particles, ctx.limits.max_storage_buffer_binding_size as u64);
        let mut sampler = GpuSampler::new_with_source(&ctx, &trainer.spec.shape, &trainer.params, c.particles, steps, &source).map_err(gpu_err)?;
        sampler.reset(c.seed);
        sampler.set_tol(c.tol)?;
        let field = GpuSampler::new(&ctx, &trainer.spec.shape, &trainer.params, ARROW_GRID * ARROW_GRID, 0).map_err(gpu_err)?;
        renderer.set_flow(&sampler.traj, &sampler.origins, sampler.len(), steps);
        renderer.set_target(&trainer.data, target_drawn(&ctx).min(data.len() as u32));
        renderer.set_field(&field.particles, ARROW_GRID);
        let mut view = GpuView {
            ctx,
            present,
            trainer,
            sampler,
            field,
            renderer,
            source,
            solver: c.solver,
            steps,
            traj_step: None,
            last_refresh: f64::NEG_INFINITY,
            refresh_s: 1.0,
            field_key: None,
            last_field: f64::NEG_INFINITY,
            last_draw: f64::NEG_INFINITY,
            measured_flops: 0.0,
            frozen: false,
            heat: None,
            heat_at: None,
            presented: Default::default(),
        };
        view.update_refresh_interval();
        Ok(view)
    }

    fn flops_per_s(&self) -> f64 {
        if self.measured_flops > 0.0 {
            self.measured_flops
        } else if self.ctx.adapter.is_software() {
            0.05e9
        } else {
            200e9
        }
    }

    /// Training throughput measured by the page (steps/s) → the adapter's effective FLOP/s,
    /// which paces the trajectory refreshes.
    pub fn observe_steps_per_sec(&mut self, steps_per_sec: f64) {
        let spec = &self.trainer.spec;
        let f = super::pacing::train_flops(spec.batch, spec.shape.macs_per_sample()) * steps_per_sec;
        if f.is_finite() && f > 0.0 {
            self.measured_flops = f;
            self.update_refresh_interval();
        }
    }

    fn update_refresh_interval(&mut self) {
        let shape = &self.trainer.spec.shape;
        self.refresh_s = refresh_interval(self.sampler.len(), self.steps, self.solver.evals_per_step(), shape.macs_per_sample(), self.flops_per_s());
    }

    /// A new model for `c` (shape, data, batch, path, ... changed): trainer and both samplers
    /// are rebuilt; on error nothing changes.
    pub fn retrain(&mut self, c: &Config) -> Result<(), String> {
        let (data, source) = training_data(c);
        let trainer = GpuTrainer::new_with_source(&self.ctx, TrainSpec::from_config(c), &data, &source).map_err(gpu_err)?;
        let field = GpuSampler::new(&self.ctx, &trainer.spec.shape, &trainer.params, ARROW_GRID * ARROW_GRID, 0).map_err(gpu_err)?;
        let old_source = std::mem::replace(&mut self.source, source);
        let old_trainer = std::mem::replace(&mut self.trainer, trainer);
        if let Err(e) = self.resample(c) {
            self.trainer = old_trainer;
            self.source = old_source;
            return Err(e);
        }
        self.field = field;
        self.heat = None;
        self.heat_at = None;
        self.renderer.set_target(&self.trainer.data, target_drawn(&self.ctx).min(data.len() as u32));
        self.renderer.set_field(&self.field.particles, ARROW_GRID);
        self.field_key = None;
        Ok(())
    }

    /// New particles (count or number of steps changed); the model is kept.
    pub fn resample(&mut self, c: &Config) -> Result<(), String> {
        let steps = traj_steps(c.nfe, c.particles, self.ctx.limits.max_storage_buffer_binding_size as u64);
        let mut sampler = GpuSampler::new_with_source(&self.ctx, &self.trainer.spec.shape, &self.trainer.params, c.particles, steps, &self.source).map_err(gpu_err)?;
        sampler.reset(c.seed);
        sampler.set_tol(c.tol)?;
        self.renderer.set_flow(&sampler.traj, &sampler.origins, sampler.len(), steps);
        self.sampler = sampler;
        self.steps = steps;
        self.solver = c.solver;
        self.traj_step = None;
        self.update_refresh_interval();
        Ok(())
    }

    /// Recomputes the heat map's log p on the GPU when the weights changed, at most every few
    /// seconds (3 s on a software adapter, 0.5 s otherwise): 8 midpoint steps backwards with the
    /// exact divergence (`shaders/density.wgsl`). False when it cannot be shown.
    fn update_heatmap(&mut self, now: f64, step: u32, extent: f32) -> bool {
        use crate::render::heatmap::{cell_centres, HEAT_GRID};
        if !self.source.is_empty() {
            return false; // log p needs the N(0, I) source's known density
        }
        if self.heat.is_none() {
            match crate::gpu::GpuDensity::new(&self.ctx, &self.trainer.spec.shape, &self.trainer.params, HEAT_GRID * HEAT_GRID) {
                Ok(d) => {
                    self.renderer.set_heatmap(d.log_p_buffer());
                    self.heat = Some(d);
                    self.heat_at = None;
                }
                Err(_) => return false,
            }
        }
        let gap = if self.ctx.adapter.is_software() { 3.0 } else { 0.5 };
        let due = match self.heat_at {
            None => true,
            Some((s, at)) => s != step && now - at >= gap,
        };
        if due {
            if let Some(d) = &self.heat {
                d.encode(&cell_centres(extent), Solver::Midpoint, 8);
                self.heat_at = Some((step, now));
            }
        }
        true
    }

    /// The trainer step the heat map's log p was last computed for (None: not yet, or the layer
    /// was never shown). The frames rendered from then on draw it (`state().heatmapStep`).
    pub fn heatmap_step(&self) -> Option<u32> {
        self.heat_at.map(|(step, _)| step)
    }

    /// The source points (empty: x0 ~ N(0, I)).
    pub fn source_points(&self) -> &[[f32; 2]] {
        &self.source
    }

    /// The adaptive solver's tolerance (`dopri5`); the trajectories are recomputed.
    pub fn set_tol(&mut self, tol: f32) -> Result<(), String> {
        self.sampler.set_tol(tol)?;
        self.traj_step = None;
        Ok(())
    }

    pub fn set_solver(&mut self, s: Solver) {
        self.solver = s;
        self.traj_step = None;
        self.update_refresh_interval();
    }

    /// Trains on `points` from now on (a custom target) with the current weights; the faint
    /// target layer shows them. On error nothing changes.
    pub fn set_target(&mut self, points: &[[f32; 2]]) -> Result<(), String> {
        self.trainer.set_target(points).map_err(gpu_err)?;
        self.renderer.set_target(&self.trainer.data, target_drawn(&self.ctx).min(points.len() as u32));
        Ok(())
    }

    /// The particles at t = 1 of the newest integration (`x0, y0, x1, y1, ...`), read without
    /// borrowing the view.
    pub fn samples(&self) -> impl Future<Output = Result<Vec<f32>, GpuError>> + 'static {
        let (ctx, particles, n) = (self.ctx.clone(), self.sampler.particles.clone(), self.sampler.len());
        async move { crate::gpu::readback::read_f32(&ctx, &particles, 0, n as u64 * 2).await }
    }

    /// Same seed → same initial weights, same particles, same run.
    pub fn reset(&mut self, seed: u32) {
        self.trainer.reset(seed);
        self.sampler.reset(seed);
        self.traj_step = None;
        self.field_key = None;
    }

    pub fn resize(&mut self, w: u32, h: u32) {
        let (w, h) = (w.max(1), h.max(1));
        match &mut self.present {
            Present::Surface { surface, config } => {
                config.width = w;
                config.height = h;
                surface.configure(&self.ctx.device, config);
            }
            Present::Readback(r) => {
                r.canvas.set_width(w);
                r.canvas.set_height(h);
                if (r.width, r.height) != (w, h) {
                    (r.texture, r.staging) = Readback::targets(&self.ctx.device, w, h);
                    r.live = crate::gpu::counter::Owned::new(&[&r.staging]);
                    r.width = w;
                    r.height = h;
                    r.busy.set(false);
                }
            }
        }
    }

    /// The particle buffer (`n` pairs x, y: the end of the shown flow once `traj_step` is set)
    /// and `n`, for exports.
    pub fn particles(&self) -> (&wgpu::Buffer, u32) {
        (&self.sampler.particles, self.sampler.len())
    }

    /// True when frames go through the readback presenter.
    pub fn is_readback(&self) -> bool {
        matches!(self.present, Present::Readback(_))
    }

    /// A status read of the losses since `since`, detached from the trainer (see
    /// `GpuTrainer::status_detached`).
    pub fn status(&self, since: u32) -> impl Future<Output = Result<TrainStatus, GpuError>> + 'static {
        self.trainer.status_detached(self.trainer.step().saturating_sub(since))
    }

    /// Re-integrates, evaluates arrows and renders one frame at flow time `t`. `now` in seconds;
    /// `wrapped` when the loop restarted (a good moment to show the newest model).
    pub fn frame(&mut self, now: f64, t: f32, wrapped: bool, layers: Layers, viewport: Viewport, point_px: f32) {
        let step = self.trainer.step();
        let stale = self.traj_step != Some(step);
        if !self.frozen && (self.traj_step.is_none() || (stale && (wrapped || now - self.last_refresh >= self.refresh_s))) {
            self.sampler.rewind();
            self.sampler.integrate(self.solver, 0.0, 1.0, self.steps);
            self.traj_step = Some(step);
            self.last_refresh = now;
        }
        if layers.arrows {
            let key = (step, t);
            let min_gap = if self.ctx.adapter.is_software() { 0.2 } else { 0.0 };
            if self.field_key != Some(key) && now - self.last_field >= min_gap {
                let g = ARROW_GRID;
                let anchors: Vec<[f32; 2]> = (0..g * g).map(|i| crate::render::view::arrow_anchor(i, g, viewport.extent)).collect();
                self.field.write_particles(&anchors);
                self.field.integrate(Solver::Euler, t, t + 1.0, 1);
                self.field_key = Some(key);
                self.last_field = now;
            }
        }
        let mut layers = layers;
        layers.heatmap = layers.heatmap && self.update_heatmap(now, step, viewport.extent);
        let mut view = viewport.uniform();
        view.t = t;
        view.point_px = point_px;
        view.alpha = if self.sampler.len() > 30_000 { 0.55 } else { 0.9 };
        let mut encoder = self.ctx.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("render") });
        match &mut self.present {
            Present::Surface { surface, config } => {
                let frame = match surface.get_current_texture() {
                    wgpu::CurrentSurfaceTexture::Success(f) | wgpu::CurrentSurfaceTexture::Suboptimal(f) => f,
                    wgpu::CurrentSurfaceTexture::Outdated | wgpu::CurrentSurfaceTexture::Lost => {
                        surface.configure(&self.ctx.device, config);
                        return;
                    }
                    _ => return,
                };
                let target = frame.texture.create_view(&wgpu::TextureViewDescriptor::default());
                self.renderer.draw(&mut encoder, &target, view, layers);
                self.ctx.queue.submit([encoder.finish()]);
                self.ctx.queue.present(frame);
                self.presented.set(self.presented.get() + 1.0);
            }
            Present::Readback(r) => {
                // At most READBACK_FPS, and never while the previous frame is still on its way:
                // on a software adapter drawing competes with training for the same CPU.
                if r.busy.get() || now - self.last_draw < 1.0 / READBACK_FPS {
                    return;
                }
                self.last_draw = now;
                let target = r.texture.create_view(&wgpu::TextureViewDescriptor::default());
                self.renderer.draw(&mut encoder, &target, view, layers);
                let row = Readback::row_bytes(r.width);
                encoder.copy_texture_to_buffer(
                    r.texture.as_image_copy(),
                    wgpu::TexelCopyBufferInfo {
                        buffer: &r.staging,
                        layout: wgpu::TexelCopyBufferLayout { offset: 0, bytes_per_row: Some(row), rows_per_image: Some(r.height) },
                    },
                    wgpu::Extent3d { width: r.width, height: r.height, depth_or_array_layers: 1 },
                );
                self.ctx.queue.submit([encoder.finish()]);
                r.busy.set(true);
                let (staging, ctx2d, busy, w, h) = (r.staging.clone(), r.ctx2d.clone(), r.busy.clone(), r.width, r.height);
                let presented = self.presented.clone();
                let ctx = self.ctx.clone();
                wasm_bindgen_futures::spawn_local(async move {
                    if let Ok(bytes) = crate::gpu::readback::map_staging(&ctx, &staging).await {
                        let mut rgba = Vec::with_capacity((w * h * 4) as usize);
                        for y in 0..h as usize {
                            let start = y * row as usize;
                            rgba.extend_from_slice(&bytes[start..start + w as usize * 4]);
                        }
                        if let Ok(img) = web_sys::ImageData::new_with_u8_clamped_array_and_sh(wasm_bindgen::Clamped(&rgba), w, h) {
                            if ctx2d.put_image_data(&img, 0.0, 0.0).is_ok() {
                                presented.set(presented.get() + 1.0);
                            }
                        }
                    }
                    busy.set(false);
                });
            }
        }
    }
}
