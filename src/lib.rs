//! flowmatch: conditional flow matching trained live on the GPU, in hand-written WGSL.
//!
//! Pipeline: [`config`] (one validated configuration) → [`targets`] (what to learn) →
//! [`gpu::GpuTrainer`] (CFM training steps) → [`gpu::GpuSampler`] (ODE integration of particles),
//! with [`cpu`] as the reference and fallback for every kernel, and [`metrics`] for sample quality.

pub mod bench;
pub mod budget;
#[cfg(not(target_arch = "wasm32"))]
pub mod cli;
pub mod config;
pub mod cpu;
pub mod csv;
pub mod engine;
pub mod gpu;
pub mod json;
pub mod metrics;
pub mod model;
pub mod model_file;
pub mod presets;
pub mod render;
pub mod rng;
pub mod spec;
pub mod tableau;
pub mod targets;
pub mod web;

pub use config::Config;
pub use spec::TrainSpec;
