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
    #[cfg(not(target_arch = "wasm32"))]
    hold_gpu_for_this_test();
    match GpuContext::new().await {
        Ok(ctx) => ctx,
        Err(e) => panic!(
            "no GPU adapter ({e}). Natively install Mesa's Vulkan driver (`apt-get install mesa-vulkan-drivers`); \
             in Chromium pass --enable-unsafe-webgpu. Tests never skip for a missing adapter."
        ),
    }
}

/// Natively on a real GPU, the tests of one test binary that open a device ([`gpu`]) run one at a
/// time: the first `gpu()` of a test thread takes a process-wide lock that the thread keeps until
/// it ends (libtest runs each test on its own thread; run on one thread, nothing else waits); on
/// a software adapter (lavapipe, in CI) they keep running in parallel. Each test opens its own
/// device, and on an NVIDIA H200 (driver 580.159.04, Vulkan, 2026-12-04) a kernel test binary run
/// with 16 or 2 test threads hung: with 16, none of 54 tests had finished after 35 s and every
/// thread of the process was parked on a futex, 14 of them on priority-inheritance mutexes
/// (`futex_lock_pi`), which neither Rust's std nor wgpu's parking_lot use (so, most likely, the
/// driver's); with 4 threads it once passed; one at a time it always passed (each test 0.2–1.8
/// s). The product opens one device per process. The first call opens one device to learn the
/// adapter type (alone: the lock below is not yet in use).
#[cfg(not(target_arch = "wasm32"))]
fn hold_gpu_for_this_test() {
    thread_local! {
        static HELD: std::cell::RefCell<Option<std::sync::MutexGuard<'static, ()>>> = const { std::cell::RefCell::new(None) };
    }
    HELD.with(|held| {
        if held.borrow().is_none() {
            *held.borrow_mut() = serial_on_real_gpu();
        }
    });
}

#[cfg(not(target_arch = "wasm32"))]
fn serial_on_real_gpu() -> Option<std::sync::MutexGuard<'static, ()>> {
    static REAL_GPU: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let real = *REAL_GPU.get_or_init(|| match pollster::block_on(GpuContext::new()) {
        Ok(ctx) => ctx.adapter.device_type != "cpu",
        Err(_) => false, // the test itself fails with the missing-adapter message
    });
    // A test that failed while holding the lock poisons it; the next one still runs.
    real.then(|| ONE_AT_A_TIME.lock().unwrap_or_else(|poisoned| poisoned.into_inner()))
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
