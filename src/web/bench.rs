//! The browser benchmark's entry points (`www/bench.html`): the same measurements as
//! `flowmatch bench` (`crate::bench`), returned as the same JSON objects.
#![cfg(target_arch = "wasm32")]

use crate::bench::{run, run_cpu, BenchBackend, BenchConfig, BenchOptions};
use crate::gpu::GpuContext;
use wasm_bindgen::prelude::*;

/// Runs benchmark `config` ("S", "M" or "L") for `steps` timed training steps (0: sized
/// automatically to about two seconds) and `particles` particles (0: the default for the
/// adapter), with kernel variant `kernels` ("software", "tiled", or "" for the adapter's choice)
/// and `per_submit` training steps per queue submit (0: the trainer's most); resolves to one JSON
/// object as a string.
#[wasm_bindgen(js_name = runBench)]
pub async fn run_bench(config: String, steps: u32, particles: u32, kernels: String, per_submit: u32) -> Result<String, JsError> {
    let config = BenchConfig::parse(&config).ok_or_else(|| JsError::new(&format!("unknown config '{config}': expected S, M or L")))?;
    let variant = match kernels.as_str() {
        "" => None,
        k => Some(crate::gpu::KernelVariant::parse(k).ok_or_else(|| JsError::new(&format!("unknown kernels '{k}': expected software or tiled")))?),
    };
    let ctx = GpuContext::new().await.map_err(|e| JsError::new(&format!("{e}. Please ensure that your browser supports WebGPU.")))?;
    let options = BenchOptions {
        steps: (steps > 0).then_some(steps),
        particles: (particles > 0).then_some(particles),
        variant,
        steps_per_submit: (per_submit > 0).then_some(per_submit),
        ..BenchOptions::default()
    };
    let report = run(&ctx, config, &options).await.map_err(|e| JsError::new(&e.to_string()))?;
    Ok(report.to_json("wgpu"))
}

/// Runs benchmark `config` on a CPU backend in this thread (`backend`: "cpu", the fast trainer
/// the page uses, or "cpu-reference") for `steps` timed steps (0: about two seconds), with the
/// batch's `coupling` ("independent" or "ot"); `adapter` describes the browser for the report.
/// Returns one JSON object as a string.
#[wasm_bindgen(js_name = runCpuBench)]
pub fn run_cpu_bench(config: String, steps: u32, backend: String, adapter: String, coupling: String) -> Result<String, JsError> {
    let config = BenchConfig::parse(&config).ok_or_else(|| JsError::new(&format!("unknown config '{config}': expected S, M or L")))?;
    let backend = match BenchBackend::parse(&backend) {
        Some(b @ (BenchBackend::Cpu | BenchBackend::CpuReference)) => b,
        _ => return Err(JsError::new(&format!("unknown CPU backend '{backend}': expected cpu or cpu-reference"))),
    };
    let coupling = coupling.parse().map_err(|_| JsError::new(&format!("unknown coupling '{coupling}': expected independent or ot")))?;
    let options = BenchOptions { steps: (steps > 0).then_some(steps), backend, coupling, ..BenchOptions::default() };
    Ok(run_cpu(config, &options, &adapter).to_json())
}
