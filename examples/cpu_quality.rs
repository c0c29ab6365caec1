//! The CLI's `train` on the CPU reference trainer (src/cpu/), no GPU needed: the same batches,
//! initialisation, Adam and Euler sampler as `flowmatch train`, for iterating on sample quality
//! (docs/QUALITY.md) faster than lavapipe allows.
//!
//! `cargo run --release --example cpu_quality -- --dataset moons --seed 0 --samples 20000 --out s.csv
//! [--losses losses.txt]` takes every `train` flag (`flowmatch help`); fixed-step solvers only.
//! Prints one JSON line (dataset, seed, steps, batch, width, depth, lr, schedule, solver, nfe, samples,
//! final_loss, seconds).

use flowmatch::cli::{parse, Command};
use flowmatch::cpu::{ode, CpuTrainer};
use flowmatch::targets::{sample_dataset, DATASET_POINTS};
use flowmatch::TrainSpec;
use std::io::Write;
use std::time::Instant;

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let losses_path = args.iter().position(|a| a == "--losses").map(|i| {
        let p = args.get(i + 1).cloned().unwrap_or_else(|| fail("--losses needs a file name"));
        args.drain(i..i + 2);
        p
    });
    args.insert(0, "train".into());
    let (config, out) = match parse(&args) {
        Ok(Command::Train { config, out, .. }) => (config, out),
        Ok(_) => fail("expected train flags"),
        Err(e) => fail(&e.to_string()),
    };
    if config.solver == flowmatch::config::Solver::Dopri5 || config.source != flowmatch::config::Source::Gaussian {
        fail("cpu_quality supports the fixed-step solvers and the Gaussian source only");
    }
    let spec = TrainSpec::from_config(&config);
    let mut trainer = CpuTrainer::new(spec, sample_dataset(config.dataset, DATASET_POINTS, config.seed));
    let start = Instant::now();
    let losses: Vec<f32> = (0..config.steps).map(|_| trainer.step()).collect();
    let train_s = start.elapsed().as_secs_f64();
    let mut points = ode::initial_particles(config.seed.wrapping_add(1), config.samples);
    ode::integrate(&spec.shape, &trainer.params, config.solver, &mut points, 0.0, 1.0, config.nfe);
    let tail = &losses[losses.len().saturating_sub(100)..];
    let final_loss = tail.iter().map(|&l| l as f64).sum::<f64>() / tail.len().max(1) as f64;
    if let Some(p) = out {
        write(&p, "x,y", points.iter().map(|q| format!("{},{}", q[0], q[1])));
    }
    if let Some(p) = losses_path {
        write(&p, "loss", losses.iter().map(|l| l.to_string()));
    }
    println!(
        "{{\"backend\":\"cpu-reference\",\"dataset\":\"{}\",\"seed\":{},\"steps\":{},\"batch\":{},\"width\":{},\"depth\":{},\"lr\":{},\"schedule\":\"{}\",\"solver\":\"{}\",\"nfe\":{},\"samples\":{},\"final_loss\":{final_loss},\"train_seconds\":{train_s:.2},\"total_seconds\":{:.2}}}",
        config.dataset, config.seed, config.steps, config.batch, config.width, config.depth, config.lr, config.schedule, config.solver,
        config.nfe, config.samples, start.elapsed().as_secs_f64()
    );
}

fn write(path: &str, header: &str, rows: impl Iterator<Item = String>) {
    let mut w = std::io::BufWriter::new(std::fs::File::create(path).unwrap_or_else(|e| fail(&format!("cannot write {path}: {e}"))));
    let ok = writeln!(w, "{header}").and_then(|_| rows.into_iter().try_for_each(|r| writeln!(w, "{r}"))).and_then(|_| w.flush());
    ok.unwrap_or_else(|e| fail(&format!("cannot write {path}: {e}")));
}

fn fail(msg: &str) -> ! {
    eprintln!("cpu_quality: {msg}");
    std::process::exit(2)
}
