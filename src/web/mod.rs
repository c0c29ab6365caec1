//! The page: a `#[wasm_bindgen]` [`App`] that owns one backend (WebGPU engine + renderer, or the
//! CPU reference on a 2D canvas), the frame loop's pacing, the flow clock and the URL-hash state.
//!
//! `pacing` is plain Rust (unit-tested natively); everything touching the browser is wasm-only.

#[cfg(feature = "bench")]
pub mod bench;
pub mod pacing;
pub mod presets;

#[cfg(target_arch = "wasm32")]
mod app;
#[cfg(target_arch = "wasm32")]
mod cpu_view;
#[cfg(target_arch = "wasm32")]
pub mod device;
#[cfg(target_arch = "wasm32")]
mod gpu_view;

#[cfg(target_arch = "wasm32")]
pub use app::{choices, fields, App, NO_WEBGPU_NOTICE};

/// Installs the panic hook so a Rust panic shows up in the console with its message.
#[cfg(target_arch = "wasm32")]
#[wasm_bindgen::prelude::wasm_bindgen(start)]
pub fn start() {
    console_error_panic_hook::set_once();
}
