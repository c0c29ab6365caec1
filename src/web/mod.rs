//! The page runtime: what turns the engine (`crate::engine`) into the demo page and the widget.
//!
//! Plain Rust, unit-tested natively:
//! - `session`: the configuration, the rejected hash fields, and what a change does (its effect);
//! - `training`: the training loop's bookkeeping — pacing by the completion signal (`pacing`),
//!   status reads that never gate training, loss history, rate, divergence detection;
//! - `reliability`: good snapshots and the divergence message;
//! - `targets`: the drawing and the custom target;
//! - `schema`: the lists JavaScript builds its controls, attributes and charts from;
//! - `pacing`: the pacer, the flow clock, the loss history and the starting configurations.
//!
//! In the browser only:
//! - `app`: the `#[wasm_bindgen]` facade `App` (thin; its names are the page's public API);
//! - `page`: one running demo — the engine and the owners above, and the orchestration between them;
//! - `backend`: which engine runs (WebGPU, the CPU, or the faster of the two on a software adapter);
//! - `present`: how each engine reaches the canvas;
//! - `device`: one WebGPU device per page, shared by every App on it;
//! - `presets`: the preset table (`crate::presets`) exported to JavaScript;
//! - `bench`: the browser benchmark's entry points (the `bench` cargo feature only).

#[cfg(feature = "bench")]
pub mod bench;
pub mod pacing;
pub mod presets;
pub mod reliability;
pub mod schema;
pub mod session;
pub mod targets;
pub mod training;

#[cfg(target_arch = "wasm32")]
mod app;
#[cfg(target_arch = "wasm32")]
mod backend;
#[cfg(target_arch = "wasm32")]
pub mod device;
#[cfg(target_arch = "wasm32")]
mod page;
#[cfg(target_arch = "wasm32")]
mod present;

#[cfg(target_arch = "wasm32")]
pub use app::App;
#[cfg(target_arch = "wasm32")]
pub use backend::NO_WEBGPU_NOTICE;

/// Installs the panic hook so a Rust panic shows up in the console with its message.
#[cfg(target_arch = "wasm32")]
#[wasm_bindgen::prelude::wasm_bindgen(start)]
pub fn start() {
    console_error_panic_hook::set_once();
}
