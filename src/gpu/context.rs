//! Adapter and device: one per page (shared by every engine instance) or per native process.
//!
//! Native: any adapter wgpu finds (`WGPU_BACKEND` is honoured), e.g. Mesa's lavapipe on machines
//! without a GPU. Web: the browser's WebGPU adapter; `navigator.gpu` is checked first so a browser
//! without WebGPU gets a clear error instead of a panic.
//!
//! GPU errors that reach the user: [`GpuContext::checked`] runs a build (a new model, new
//! samples) inside out-of-memory and validation error scopes and hands back a future of what they
//! caught; in the browser every error no scope caught (wgpu's uncaptured-error handler) is kept
//! in the context's [`ErrorLog`] for the engines on the device to pick up ([`GpuFault`]).

use std::fmt;

#[derive(Clone, Debug, thiserror::Error)]
pub enum GpuError {
    #[error("no WebGPU/Vulkan/Metal/DX12 adapter is available: {0}")]
    NoAdapter(String),
    #[error("the GPU adapter refused a device: {0}")]
    RequestDevice(String),
    #[error("reading a GPU buffer back failed: {0}")]
    Readback(String),
    /// The model or data does not fit the adapter's limits (the message says what would).
    #[error("{0}")]
    TooLarge(String),
    /// The request itself is invalid whatever the adapter (empty target, mismatched snapshot).
    #[error("{0}")]
    Invalid(String),
    /// The adapter lacks a feature the request needs (e.g. timestamp queries for profiling).
    #[error("{0}")]
    Unsupported(String),
}

/// What kind of GPU error a [`GpuFault`] is (WebGPU's error filters).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultKind {
    OutOfMemory,
    Validation,
    Internal,
}

/// A GPU error reported asynchronously by the device: an allocation that failed, a command the
/// device refused. `message` is the device's own words (empty for out-of-memory).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GpuFault {
    pub kind: FaultKind,
    pub message: String,
}

impl GpuFault {
    pub fn from_error(e: &wgpu::Error) -> Self {
        match e {
            wgpu::Error::OutOfMemory { .. } => GpuFault { kind: FaultKind::OutOfMemory, message: String::new() },
            wgpu::Error::Validation { description, .. } => GpuFault { kind: FaultKind::Validation, message: description.trim().to_string() },
            wgpu::Error::Internal { description, .. } => GpuFault { kind: FaultKind::Internal, message: description.trim().to_string() },
        }
    }
}

/// The errors of one device that no error scope caught: how many so far, and the latest few (a
/// broken command repeated every frame must not grow it without end).
#[derive(Default, Debug)]
pub struct ErrorLog {
    inner: std::sync::Mutex<(u64, std::collections::VecDeque<(u64, GpuFault)>)>,
}

/// Errors an [`ErrorLog`] keeps (older ones are only counted).
pub const ERRORS_KEPT: usize = 8;

impl ErrorLog {
    /// The uncaptured-error handler's body: records `e`.
    pub fn record(&self, e: &wgpu::Error) {
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let n = g.0;
        g.1.push_back((n, GpuFault::from_error(e)));
        if g.1.len() > ERRORS_KEPT {
            g.1.pop_front();
        }
        g.0 += 1;
    }

    /// Errors recorded so far.
    pub fn count(&self) -> u64 {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).0
    }

    /// The first error recorded after the first `seen` that is still kept (None when there is
    /// none), and the count to pass next time: every error up to now is then seen, so a burst of
    /// errors is reported once.
    pub fn since(&self, seen: u64) -> (Option<GpuFault>, u64) {
        let g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let first = g.1.iter().find(|(i, _)| *i >= seen).map(|(_, f)| f.clone());
        (first, g.0)
    }
}

/// What the error scopes around a build caught (None: nothing), once the device has said.
pub type BuildCheck = std::pin::Pin<Box<dyn std::future::Future<Output = Option<GpuFault>>>>;

/// What the adapter is, for benchmark output and the page.
#[derive(Clone, Debug)]
pub struct AdapterSummary {
    pub name: String,
    pub backend: String,
    pub device_type: String,
    pub driver: String,
}

impl AdapterSummary {
    /// True for CPU-emulated adapters (lavapipe, SwiftShader, WARP, llvmpipe).
    pub fn is_software(&self) -> bool {
        self.device_type == "cpu" || self.name.to_lowercase().contains("swiftshader")
    }
}

impl fmt::Display for AdapterSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = if self.name.is_empty() { "unnamed adapter" } else { &self.name };
        // In a browser the backend is always the browser's WebGPU: only whether it is software
        // says something to a reader.
        match (self.backend.as_str(), self.device_type.as_str()) {
            ("browserwebgpu", "cpu") => write!(f, "{name}, software"),
            ("browserwebgpu", _) => write!(f, "{name}"),
            _ => write!(f, "{name} ({}, {})", self.backend, self.device_type),
        }
    }
}

/// A device and its queue. Cheap to clone (wgpu handles are reference counted).
#[derive(Clone)]
pub struct GpuContext {
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub adapter: AdapterSummary,
    pub limits: wgpu::Limits,
    /// Optional features the device was opened with (none unless asked for).
    pub features: wgpu::Features,
    /// Set by the device-lost callback (installed once per device, here): a driver reset,
    /// `GPUDevice.destroy()`, or the browser taking the device away.
    pub lost: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// Errors no error scope caught (browser only: natively wgpu's default handler panics, which
    /// the tests rely on).
    pub errors: std::sync::Arc<ErrorLog>,
    /// Tests: the next [`GpuContext::checked`] build also asks for one buffer over the device's
    /// size limit, a real validation error in its scope ([`GpuContext::fail_next_build`]).
    fail_next_build: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl GpuContext {
    /// Finds an adapter and opens a device with WebGPU's default limits, raised to the adapter's
    /// where bigger buffers help (storage binding and buffer size).
    pub async fn new() -> Result<Self, GpuError> {
        Self::with_features(wgpu::Features::empty()).await
    }

    /// Like [`GpuContext::new`], also enabling those of `wanted` that the adapter supports (e.g.
    /// timestamp queries for `flowmatch bench --profile`); check `features` for what was granted.
    pub async fn with_features(wanted: wgpu::Features) -> Result<Self, GpuError> {
        #[cfg(target_arch = "wasm32")]
        if !browser_has_webgpu() {
            return Err(GpuError::NoAdapter(
                "this browser does not expose navigator.gpu (WebGPU); use a recent Chrome, Edge or Firefox, or Safari 26+".into(),
            ));
        }
        let instance = wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
        let adapter = instance
            .request_adapter(&wgpu::RequestAdapterOptions {
                power_preference: wgpu::PowerPreference::HighPerformance,
                ..Default::default()
            })
            .await
            .map_err(no_adapter)?;
        let info = adapter.get_info();
        let available = adapter.limits();
        let features = wanted & adapter.features();
        let limits = wgpu::Limits {
            max_storage_buffer_binding_size: available.max_storage_buffer_binding_size,
            max_buffer_size: available.max_buffer_size,
            ..wgpu::Limits::default()
        };
        let (device, queue) = adapter
            .request_device(&wgpu::DeviceDescriptor {
                label: Some("flowmatch"),
                required_limits: limits.clone(),
                required_features: features,
                ..Default::default()
            })
            .await
            .map_err(|e| GpuError::RequestDevice(e.to_string()))?;
        // wgpu leaves the name empty in a browser: the page asks the browser's GPUAdapterInfo.
        #[cfg(target_arch = "wasm32")]
        let name = if info.name.is_empty() { browser_adapter_name().await.unwrap_or_default() } else { info.name.clone() };
        #[cfg(not(target_arch = "wasm32"))]
        let name = info.name.clone();
        let adapter = AdapterSummary {
            name,
            backend: format!("{:?}", info.backend).to_lowercase(),
            device_type: match info.device_type {
                wgpu::DeviceType::Cpu => "cpu",
                wgpu::DeviceType::DiscreteGpu => "discrete-gpu",
                wgpu::DeviceType::IntegratedGpu => "integrated-gpu",
                wgpu::DeviceType::VirtualGpu => "virtual-gpu",
                wgpu::DeviceType::Other => "other",
            }
            .to_string(),
            driver: format!("{} {}", info.driver, info.driver_info).trim().to_string(),
        };
        let lost = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = lost.clone();
        device.set_device_lost_callback(move |_reason, _msg| flag.store(true, std::sync::atomic::Ordering::Relaxed));
        let errors = std::sync::Arc::new(ErrorLog::default());
        #[cfg(target_arch = "wasm32")]
        {
            let log = errors.clone();
            device.on_uncaptured_error(std::sync::Arc::new(move |e: wgpu::Error| {
                web_sys::console::error_1(&format!("flowmatch: uncaptured WebGPU error: {e}").into());
                log.record(&e);
            }));
        }
        Ok(GpuContext { device, queue, adapter, limits, features, lost, errors, fail_next_build: Default::default() })
    }

    /// Runs `f` (a build: buffers, pipelines) inside out-of-memory and validation error scopes and
    /// returns its result with a future of the first error they caught (the out-of-memory one
    /// first). The scopes are popped before this returns; the future resolves once the device has
    /// checked the work (at once natively, a little later in the browser).
    pub fn checked<T>(&self, f: impl FnOnce() -> T) -> (T, BuildCheck) {
        let oom = self.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let validation = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let out = f();
        if self.fail_next_build.swap(false, std::sync::atomic::Ordering::Relaxed) {
            let _refused = self.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("test.over_the_limit"),
                size: (self.limits.max_buffer_size + 4) & !3,
                usage: wgpu::BufferUsages::STORAGE,
                mapped_at_creation: false,
            });
        }
        let v = validation.pop();
        let o = oom.pop();
        let check = async move {
            let (v, o) = (v.await, o.await);
            o.or(v).map(|e| GpuFault::from_error(&e))
        };
        (out, Box::pin(check))
    }

    /// Tests: makes the next checked build fail with a real validation error (one buffer over
    /// the device's size limit, created inside the build's error scopes).
    pub fn fail_next_build(&self) {
        self.fail_next_build.store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// True once the device was lost.
    pub fn is_lost(&self) -> bool {
        self.lost.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Runs completion callbacks of finished work without waiting (native; the browser does this
    /// by itself on the web).
    pub fn poll(&self) {
        #[cfg(not(target_arch = "wasm32"))]
        let _ = self.device.poll(wgpu::PollType::Poll);
    }

    /// Blocks until submitted work is done (native only; a no-op on the web).
    pub fn wait_idle(&self) {
        #[cfg(not(target_arch = "wasm32"))]
        let _ = self.device.poll(wgpu::PollType::wait_indefinitely());
    }
}

#[cfg(target_arch = "wasm32")]
fn browser_has_webgpu() -> bool {
    let global = js_sys::global();
    let navigator = js_sys::Reflect::get(&global, &"navigator".into()).unwrap_or_default();
    if navigator.is_undefined() || navigator.is_null() {
        return false;
    }
    let gpu = js_sys::Reflect::get(&navigator, &"gpu".into()).unwrap_or_default();
    !(gpu.is_undefined() || gpu.is_null())
}

/// The browser's name for its high-performance adapter (`GPUAdapter.info`: the description, or
/// vendor, architecture and device), None where it gives none. One more `requestAdapter`, answered
/// from the browser's cache of adapters.
#[cfg(target_arch = "wasm32")]
async fn browser_adapter_name() -> Option<String> {
    use wasm_bindgen::JsCast;
    let get = |o: &wasm_bindgen::JsValue, k: &str| js_sys::Reflect::get(o, &k.into()).ok().filter(|v| !v.is_undefined() && !v.is_null());
    let gpu = get(&get(&js_sys::global(), "navigator")?, "gpu")?;
    let request: js_sys::Function = get(&gpu, "requestAdapter")?.dyn_into().ok()?;
    let options = js_sys::Object::new();
    js_sys::Reflect::set(&options, &"powerPreference".into(), &"high-performance".into()).ok()?;
    let promise: js_sys::Promise = request.call1(&gpu, &options).ok()?.dyn_into().ok()?;
    let adapter = wasm_bindgen_futures::JsFuture::from(promise).await.ok().filter(|a| !a.is_null() && !a.is_undefined())?;
    let info = get(&adapter, "info")?;
    let field = |k: &str| get(&info, k).and_then(|v| v.as_string()).map(|s| s.trim().to_string()).filter(|s| !s.is_empty());
    field("description").or_else(|| {
        let parts: Vec<String> = ["vendor", "architecture", "device"].iter().filter_map(|k| field(k)).collect();
        (!parts.is_empty()).then(|| parts.join(" "))
    })
}

/// Why `request_adapter` found no adapter. In a browser wgpu's text lists the native backends it
/// was not built with ("vulkan support not compiled in, …"), which says nothing to a reader: the
/// page shows what the browser's answer means instead.
fn no_adapter(e: wgpu::RequestAdapterError) -> GpuError {
    if cfg!(target_arch = "wasm32") {
        GpuError::NoAdapter("the browser offers WebGPU but no adapter (WebGPU may be turned off, or this GPU blocklisted: chrome://gpu or about:support says which)".into())
    } else {
        GpuError::NoAdapter(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::AdapterSummary;

    fn summary(name: &str, backend: &str, device_type: &str) -> String {
        AdapterSummary { name: name.into(), backend: backend.into(), device_type: device_type.into(), driver: String::new() }.to_string()
    }

    /// The page's readout names a browser adapter without wgpu's backend name ("unnamed adapter
    /// (browserwebgpu, cpu)" was shown before the name came from GPUAdapterInfo).
    #[test]
    fn adapters_are_named_for_readers() {
        assert_eq!(summary("google swiftshader", "browserwebgpu", "cpu"), "google swiftshader, software");
        assert_eq!(summary("nvidia ampere", "browserwebgpu", "discrete-gpu"), "nvidia ampere");
        assert_eq!(summary("", "browserwebgpu", "cpu"), "unnamed adapter, software");
        assert_eq!(summary("llvmpipe (LLVM 19.1.7, 256 bits)", "vulkan", "cpu"), "llvmpipe (LLVM 19.1.7, 256 bits) (vulkan, cpu)");
    }
}
