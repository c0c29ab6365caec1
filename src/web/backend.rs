//! Which engine runs, and the only place that builds one: WebGPU on the page's shared device
//! (`web::device`) drawing through a presenter, or the CPU engine on the canvas' 2D context.
//!
//! Preference (`?backend=webgpu|cpu|auto`, `?cpu=1` = cpu): *webgpu* uses WebGPU when the browser
//! has an adapter (the CPU otherwise, with a notice); *cpu* always the CPU; *auto* (the demo page's
//! default) starts on WebGPU and, on a software adapter (SwiftShader, lavapipe), measures the CPU
//! engine against it after a few seconds of training and moves the run to whichever is faster
//! (weights, Adam moments and step carry over through a snapshot). The readout says which and why
//! (`state().backendReason`).

use super::present::{gpu_presenter, CanvasPainter};
use crate::config::Config;
use crate::cpu::FastCpuTrainer;
use crate::engine::{CpuEngine, Engine, GpuEngine};
use crate::gpu::{GpuContext, GpuError};
use crate::spec::TrainSpec;
use web_sys::HtmlCanvasElement;

/// What the page asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Preference {
    Auto,
    WebGpu,
    Cpu,
}

impl Preference {
    pub fn parse(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "" | "auto" => Ok(Preference::Auto),
            "webgpu" | "gpu" => Ok(Preference::WebGpu),
            "cpu" => Ok(Preference::Cpu),
            other => Err(format!("unknown backend '{other}': expected auto, webgpu or cpu")),
        }
    }
}

/// What the page says when the browser has no WebGPU adapter.
pub const NO_WEBGPU_NOTICE: &str = "WebGPU is not available in this browser, so training runs on the CPU \
backend (WebAssembly SIMD, one thread): the same model and maths, fewer particles drawn. WebGPU is on by default in Chrome and Edge 113+ \
on Windows, macOS and ChromeOS, Chrome 121+ on Android, Safari 26+ and Firefox 141+ on Windows; on Linux, \
Chrome needs chrome://flags/#enable-unsafe-webgpu (or --enable-unsafe-webgpu).";

/// The backend readout's reason for running on the CPU after `device` failed with `e`.
pub fn cpu_reason(e: &GpuError) -> String {
    match e {
        GpuError::NoAdapter(why) => format!("CPU: no WebGPU adapter: {why}"),
        GpuError::RequestDevice(why) => format!("CPU: the WebGPU adapter refused a device: {why}"),
        other => format!("CPU: WebGPU failed: {other}"),
    }
}

/// The page's device, or why there is none.
pub async fn device(pref: Preference) -> Result<(GpuContext, u64), GpuError> {
    if pref == Preference::Cpu {
        return Err(GpuError::NoAdapter("the CPU backend was requested".into()));
    }
    super::device::shared_context().await
}

/// A WebGPU engine for `c` on `ctx`, presenting into `canvas` (readback: see `present`).
pub fn gpu_engine(ctx: &GpuContext, canvas: &HtmlCanvasElement, c: &Config, readback: bool) -> Result<Box<dyn Engine>, String> {
    let presenter = gpu_presenter(ctx, canvas.clone(), readback)?;
    Ok(Box::new(GpuEngine::new(ctx.clone(), c, presenter)?))
}

/// A CPU engine for `c` drawing on `canvas`.
pub fn cpu_engine(canvas: &HtmlCanvasElement, c: &Config) -> Result<Box<dyn Engine>, String> {
    Ok(Box::new(CpuEngine::new(c, Box::new(CanvasPainter::new(canvas.clone())?))?))
}

/// Where the page stands with the backend: the canvas it draws on, how frames reach it, the
/// device's generation, and why this backend runs.
pub struct Backend {
    pub canvas: HtmlCanvasElement,
    /// GPU frames go through the readback presenter.
    pub readback: bool,
    pub device_gen: Option<u64>,
    /// The backend in a word or two (`state().backendLabel`: "WebGPU", "WebGPU (software)",
    /// "CPU", "CPU (faster here)").
    pub label: String,
    /// Why this backend runs (`state().backendReason`).
    pub reason: String,
    /// The auto choice in progress (software adapters under `Preference::Auto`).
    pub trial: Option<Trial>,
    pub recovery: Recovery,
}

/// A lost device being replaced.
#[derive(Default)]
pub struct Recovery {
    pub recovering: bool,
    pub recoveries: u32,
    pub lost_reason: Option<String>,
    /// Training was on when the device was lost (a paused page stays paused after recovery).
    pub resume: bool,
    /// The retry cap (`web::reliability::RecoveryPlan`).
    pub plan: super::reliability::RecoveryPlan,
    /// Recovery gave up on the GPU and the CPU backend cannot run these settings: the page stays
    /// stopped with a message (Save still writes the last snapshot).
    pub gave_up: bool,
}

/// Seconds of WebGPU training before the CPU is measured against it.
pub const TRIAL_AFTER_S: f64 = 3.0;
/// The CPU must be this much faster to take over (a switch costs a snapshot and the GPU's warm-up).
pub const SWITCH_MARGIN: f64 = 1.25;

/// The auto choice: WebGPU has run since `started`; the CPU is measured once after
/// `TRIAL_AFTER_S`, and the run moves when the CPU is `SWITCH_MARGIN` times faster.
#[derive(Clone, Copy, Debug)]
pub struct Trial {
    pub started: f64,
    /// A snapshot for the move to the CPU is on its way.
    pub moving: bool,
}

/// Steps per second (0 when its budget refuses `c`) the CPU engine would train `c` at, on this page: a few real steps of the
/// fast trainer (the CPU engine's) timed (at most ~40 ms of the page's thread), scaled to the
/// share of each frame the loop gives training (`budget_ms` of `frame_ms`).
pub fn measure_cpu(c: &Config, budget_ms: f64, frame_ms: f64) -> f64 {
    let data = crate::targets::sample_dataset(c.dataset, 1024, c.seed);
    // A configuration the CPU backend's budget refuses is never measured (nor moved there).
    let Ok(mut t) = FastCpuTrainer::try_new(TrainSpec::from_config(c), data, 0) else { return 0.0 };
    let now = crate::engine::jobs::now_ms;
    t.step(); // warm caches
    let (t0, mut n) = (now(), 0u32);
    while n < 2 || (now() - t0 < 40.0 && n < 200) {
        t.step();
        n += 1;
    }
    let ms = ((now() - t0) / n as f64).max(1e-3);
    let per_frame = (budget_ms / ms).max(1.0);
    per_frame * 1000.0 / frame_ms.max(4.0)
}

/// The reason shown for an auto choice.
pub fn reason(cpu: f64, gpu: f64, adapter: &str, moved: bool) -> String {
    if moved {
        format!("CPU: about {cpu:.0} steps/s here vs {gpu:.0} on WebGPU ({adapter}, a software adapter); ?backend=webgpu forces WebGPU")
    } else {
        format!("WebGPU ({adapter}): {gpu:.0} steps/s vs about {cpu:.0} on the CPU; ?backend=cpu forces the CPU")
    }
}
