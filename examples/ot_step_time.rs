//! OT step against independent step on the native adapter, measured two ways: wall time and the
//! process's CPU time (user + system, from /proc/self/stat) over the same training steps. On a
//! CPU-emulated adapter (lavapipe) on a shared machine the wall time swings with other jobs; the
//! CPU time is what the step costs the machine and moves far less. Alternates the couplings
//! (independent, ot, independent, ot, …) in one process, one trainer each, bench config S
//! (width 64, depth 3, batch 256, moons, seed 0), after a warm-up of 10 steps.
//!
//! `cargo run --release --example ot_step_time [-- --steps 200 --rounds 3]` (Linux only)

use flowmatch::bench::BenchConfig;
use flowmatch::config::{Coupling, Dataset};
use flowmatch::gpu::{GpuContext, GpuTrainer};
use flowmatch::targets::{sample_dataset, DATASET_POINTS};
use std::time::Instant;

fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("/proc/self/stat");
    let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
    // utime and stime are fields 14 and 15 of stat (indices 11 and 12 after the command name).
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    ticks / 100.0
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str, default: u32| args.iter().position(|a| a == name).map(|i| args[i + 1].parse().unwrap()).unwrap_or(default);
    let (steps, rounds) = (arg("--steps", 200), arg("--rounds", 3));
    pollster::block_on(async {
        let ctx = GpuContext::new().await.expect("a GPU adapter");
        let data = sample_dataset(Dataset::Moons, DATASET_POINTS, 0);
        let ms = |coupling: Coupling| {
            let mut t = GpuTrainer::new(&ctx, BenchConfig::S.spec_with(coupling), &data).unwrap();
            t.train(10);
            ctx.wait_idle();
            let (c0, w0) = (cpu_seconds(), Instant::now());
            t.train(steps);
            ctx.wait_idle();
            (1e3 * w0.elapsed().as_secs_f64() / steps as f64, 1e3 * (cpu_seconds() - c0) / steps as f64)
        };
        for r in 0..rounds {
            let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
            let (iw, ic) = ms(Coupling::Independent);
            let (ow, oc) = ms(Coupling::Ot);
            println!(
                "{{\"round\":{r},\"steps\":{steps},\"independent_wall_ms\":{iw:.2},\"ot_wall_ms\":{ow:.2},\"wall_ratio\":{:.2},\"independent_cpu_ms\":{ic:.2},\"ot_cpu_ms\":{oc:.2},\"cpu_ratio\":{:.2},\"loadavg\":\"{}\"}}",
                ow / iw,
                oc / ic,
                load.split(' ').take(3).collect::<Vec<_>>().join(" ")
            );
        }
    });
}
