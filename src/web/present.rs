//! How the engines reach the canvas in the browser: the GPU engine's presenters (the canvas'
//! WebGPU context, or an offscreen texture copied to a 2D canvas) and the CPU engine's painter
//! (the canvas' 2D context).

use crate::engine::painter::Painter;
use crate::engine::present::{Offscreen, OFFSCREEN_FORMAT};
use crate::engine::GpuPresenter;
use crate::gpu::{counter, GpuContext};
use std::cell::Cell;
use std::rc::Rc;
use wasm_bindgen::JsCast;
use web_sys::{CanvasRenderingContext2d, HtmlCanvasElement};

fn context_2d(canvas: &HtmlCanvasElement) -> Result<CanvasRenderingContext2d, String> {
    canvas
        .get_context("2d")
        .ok()
        .flatten()
        .and_then(|o| o.dyn_into().ok())
        .ok_or_else(|| "the canvas has no 2D context (was it already used for WebGPU?)".to_string())
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

/// The presenter for `canvas`: its WebGPU context, or (`readback`) an offscreen texture copied to
/// its 2D context. Readback is the default on software adapters: in headless Chromium 156 with
/// SwiftShader, taking a canvas' WebGPU texture makes every later `mapAsync` fail ("A valid
/// external Instance reference no longer exists"), which would stop the loss reads; on a CPU
/// adapter "GPU" memory is host memory, so the copy is cheap there.
pub fn gpu_presenter(ctx: &GpuContext, canvas: HtmlCanvasElement, readback: bool) -> Result<Box<dyn GpuPresenter>, String> {
    let (w, h) = (canvas.width().max(1), canvas.height().max(1));
    if readback {
        let ctx2d = context_2d(&canvas)?;
        let target = Offscreen::new(&ctx.device, w, h);
        let staging = staging(ctx, &target);
        let live = counter::Owned::new(&[&staging]);
        return Ok(Box::new(ReadbackPresenter { ctx2d, canvas, target, staging, live, busy: Default::default(), last: f64::NEG_INFINITY, presented: Default::default() }));
    }
    let instance = wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle());
    let surface = instance.create_surface(wgpu::SurfaceTarget::Canvas(canvas)).map_err(|e| format!("the canvas refused a WebGPU context: {e}"))?;
    let config = wgpu::SurfaceConfiguration {
        usage: wgpu::TextureUsages::RENDER_ATTACHMENT,
        format: preferred_format(),
        color_space: Default::default(),
        width: w,
        height: h,
        present_mode: wgpu::PresentMode::Fifo,
        desired_maximum_frame_latency: 2,
        alpha_mode: wgpu::CompositeAlphaMode::Opaque,
        view_formats: vec![],
    };
    surface.configure(&ctx.device, &config);
    Ok(Box::new(SurfacePresenter { surface, config, presented: 0.0 }))
}

fn staging(ctx: &GpuContext, target: &Offscreen) -> wgpu::Buffer {
    ctx.device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("present.staging"),
        size: target.staging_size(),
        usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    })
}

/// Straight into the canvas' WebGPU texture (no copies).
struct SurfacePresenter {
    surface: wgpu::Surface<'static>,
    config: wgpu::SurfaceConfiguration,
    presented: f64,
}

impl GpuPresenter for SurfacePresenter {
    fn format(&self) -> wgpu::TextureFormat {
        self.config.format
    }
    fn kind(&self) -> &'static str {
        "surface"
    }
    fn resize(&mut self, ctx: &GpuContext, width: u32, height: u32) {
        self.config.width = width;
        self.config.height = height;
        self.surface.configure(&ctx.device, &self.config);
    }
    fn present(&mut self, ctx: &GpuContext, _now: f64, draw: &mut dyn FnMut(&mut wgpu::CommandEncoder, &wgpu::TextureView)) -> bool {
        let frame = match self.surface.get_current_texture() {
            wgpu::CurrentSurfaceTexture::Success(f) | wgpu::CurrentSurfaceTexture::Suboptimal(f) => f,
            wgpu::CurrentSurfaceTexture::Outdated | wgpu::CurrentSurfaceTexture::Lost => {
                self.surface.configure(&ctx.device, &self.config);
                return false;
            }
            _ => return false,
        };
        let view = frame.texture.create_view(&wgpu::TextureViewDescriptor::default());
        let mut encoder = ctx.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("render") });
        draw(&mut encoder, &view);
        ctx.queue.submit([encoder.finish()]);
        ctx.queue.present(frame);
        self.presented += 1.0;
        true
    }
    fn presented(&self) -> f64 {
        self.presented
    }
}

/// Frame rate of the readback presenter.
const READBACK_FPS: f64 = 20.0;

/// Into an offscreen texture, copied to the canvas' 2D context through one readback in flight.
struct ReadbackPresenter {
    ctx2d: CanvasRenderingContext2d,
    canvas: HtmlCanvasElement,
    target: Offscreen,
    staging: wgpu::Buffer,
    /// Registers (and on drop destroys) `staging` (`gpu::counter`).
    live: counter::Owned,
    busy: Rc<Cell<bool>>,
    last: f64,
    presented: Rc<Cell<f64>>,
}

impl GpuPresenter for ReadbackPresenter {
    fn format(&self) -> wgpu::TextureFormat {
        OFFSCREEN_FORMAT
    }
    fn kind(&self) -> &'static str {
        "readback"
    }
    fn resize(&mut self, ctx: &GpuContext, width: u32, height: u32) {
        self.canvas.set_width(width);
        self.canvas.set_height(height);
        if (self.target.width, self.target.height) != (width, height) {
            self.target = Offscreen::new(&ctx.device, width, height);
            self.staging = staging(ctx, &self.target);
            self.live = counter::Owned::new(&[&self.staging]);
            self.busy.set(false);
        }
    }
    fn present(&mut self, ctx: &GpuContext, now: f64, draw: &mut dyn FnMut(&mut wgpu::CommandEncoder, &wgpu::TextureView)) -> bool {
        // At most READBACK_FPS, and never while the previous frame is still on its way: on a
        // software adapter drawing competes with training for the same CPU.
        if self.busy.get() || now - self.last < 1.0 / READBACK_FPS {
            return false;
        }
        self.last = now;
        let view = self.target.texture.create_view(&wgpu::TextureViewDescriptor::default());
        let mut encoder = ctx.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("render") });
        draw(&mut encoder, &view);
        self.target.copy_to(&mut encoder, &self.staging);
        ctx.queue.submit([encoder.finish()]);
        self.busy.set(true);
        let (staging, ctx2d, busy, presented) = (self.staging.clone(), self.ctx2d.clone(), self.busy.clone(), self.presented.clone());
        let (w, h, row) = (self.target.width, self.target.height, self.target.row_bytes() as usize);
        let ctx = ctx.clone();
        wasm_bindgen_futures::spawn_local(async move {
            if let Ok(bytes) = crate::gpu::readback::map_staging(&ctx, &staging).await {
                let mut rgba = Vec::with_capacity((w * h * 4) as usize);
                for y in 0..h as usize {
                    rgba.extend_from_slice(&bytes[y * row..y * row + w as usize * 4]);
                }
                if let Ok(img) = web_sys::ImageData::new_with_u8_clamped_array_and_sh(wasm_bindgen::Clamped(&rgba), w, h) {
                    if ctx2d.put_image_data(&img, 0.0, 0.0).is_ok() {
                        presented.set(presented.get() + 1.0);
                    }
                }
            }
            busy.set(false);
        });
        true
    }
    fn presented(&self) -> f64 {
        self.presented.get()
    }
}

/// The CPU engine's painter over the canvas' 2D context.
pub struct CanvasPainter {
    canvas: HtmlCanvasElement,
    ctx: CanvasRenderingContext2d,
}

impl CanvasPainter {
    pub fn new(canvas: HtmlCanvasElement) -> Result<Self, String> {
        Ok(CanvasPainter { ctx: context_2d(&canvas)?, canvas })
    }
}

impl Painter for CanvasPainter {
    fn resize(&mut self, width: u32, height: u32) {
        self.canvas.set_width(width);
        self.canvas.set_height(height);
    }
    fn set_alpha(&mut self, alpha: f64) {
        self.ctx.set_global_alpha(alpha);
    }
    fn set_fill(&mut self, css: &str) {
        self.ctx.set_fill_style_str(css);
    }
    fn set_stroke(&mut self, css: &str) {
        self.ctx.set_stroke_style_str(css);
    }
    fn set_line_width(&mut self, width: f64) {
        self.ctx.set_line_width(width);
    }
    fn fill_rect(&mut self, x: f64, y: f64, w: f64, h: f64) {
        self.ctx.fill_rect(x, y, w, h);
    }
    fn begin_path(&mut self) {
        self.ctx.begin_path();
    }
    fn move_to(&mut self, x: f64, y: f64) {
        self.ctx.move_to(x, y);
    }
    fn line_to(&mut self, x: f64, y: f64) {
        self.ctx.line_to(x, y);
    }
    fn stroke(&mut self) {
        self.ctx.stroke();
    }
}
