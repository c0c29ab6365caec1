//! Shared test helpers for native (lavapipe/any Vulkan) and browser (wasm-bindgen-test) runs.
#![allow(dead_code)]

use flowmatch::config::{Activation, Coupling, Path};
use flowmatch::cpu::adam::AdamHyper;
use flowmatch::gpu::GpuContext;
use flowmatch::model::ModelShape;
use flowmatch::TrainSpec;

/// A small model (width 19: not a multiple of the workgroup size) trained briefly at a high
/// learning rate so that its field is curved: the solver tests' model.
pub fn small_spec() -> TrainSpec {
    TrainSpec {
        shape: ModelShape::new(19, 2, Activation::Silu),
        batch: 64,
        seed: 3,
        sigma_min: 0.0,
        path: Path::Linear,
        coupling: Coupling::Independent,
        adam: AdamHyper::new(1e-2, 0.0),
        time: Default::default(),
        label_dropout: 0.0,
    }
}

/// The GPU context. A missing adapter is a failure, never a skip: the README's test command
/// installs Mesa's software Vulkan driver (lavapipe) and Chromium's WebGPU is enabled by flag.
pub async fn gpu() -> GpuContext {
    match GpuContext::new().await {
        Ok(ctx) => ctx,
        Err(e) => panic!(
            "no GPU adapter ({e}). Natively install Mesa's Vulkan driver (`apt-get install mesa-vulkan-drivers`); \
             in Chromium pass --enable-unsafe-webgpu. Tests never skip for a missing adapter."
        ),
    }
}

/// Asserts `|got - want| <= atol + rtol·|want|` elementwise, printing the first mismatches.
pub fn assert_close(what: &str, got: &[f32], want: &[f32], atol: f32, rtol: f32) {
    assert_eq!(got.len(), want.len(), "{what}: lengths differ");
    let bad: Vec<usize> = (0..got.len())
        .filter(|&i| !((got[i] - want[i]).abs() <= atol + rtol * want[i].abs()))
        .collect();
    if !bad.is_empty() {
        let first: Vec<String> = bad
            .iter()
            .take(8)
            .map(|&i| format!("  [{i}] gpu {:e} ref {:e} (diff {:e})", got[i], want[i], (got[i] - want[i]).abs()))
            .collect();
        panic!(
            "{what}: {} of {} values differ beyond atol {atol:e} + rtol {rtol:e}; first mismatches:\n{}",
            bad.len(),
            got.len(),
            first.join("\n")
        );
    }
}

/// Defines a GPU test that runs natively (`#[test]`, blocking) and in the browser
/// (`#[wasm_bindgen_test]`, async) from one async body.
#[macro_export]
macro_rules! gpu_test {
    ($name:ident, $body:expr) => {
        #[cfg(not(target_arch = "wasm32"))]
        #[test]
        fn $name() {
            pollster::block_on($body);
        }
        #[cfg(target_arch = "wasm32")]
        #[wasm_bindgen_test::wasm_bindgen_test]
        async fn $name() {
            $body.await;
        }
    };
}
