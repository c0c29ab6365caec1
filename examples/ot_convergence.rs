//! How converged is the OT coupling's Sinkhorn after k iterations? For batches of 256 from several
//! datasets, seeds and training steps, runs the CPU twin's Sinkhorn (`cpu::coupling::OtProblem`)
//! for `OT_ITERS` iterations and records after each k: the row marginal error the stop test
//! measures, max_i |B·row mass_i - 1|, and how many rows' partners (the pairing, which depends on g
//! only) differ from the pairing after all `OT_ITERS` iterations. Then, for a range of
//! tolerances, what the stop rule (a check every `OT_CHECK_EVERY` iterations) would give.
//! The table in docs/BENCHMARKS.md ("OT coupling") comes from this.
//!
//! `cargo run --release --example ot_convergence [-- --batch 256 --seeds 3]`

use flowmatch::config::Dataset;
use flowmatch::cpu::coupling::{OtProblem, OT_CHECK_EVERY, OT_ITERS};
use flowmatch::cpu::time::TimeDist;
use flowmatch::targets::{sample_dataset, DATASET_POINTS};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str, default: u32| args.iter().position(|a| a == name).map(|i| args[i + 1].parse().unwrap()).unwrap_or(default);
    let batch = arg("--batch", 256) as usize;
    let seeds = arg("--seeds", 3);
    let steps = [0u32, 250, 1000, 1999];
    let datasets = [Dataset::Moons, Dataset::EightGaussians, Dataset::Checkerboard, Dataset::Spirals];
    let time = TimeDist::default();
    // Per case: err[k] and diff[k] for k = 0..=OT_ITERS full iterations.
    let mut cases: Vec<(String, Vec<f32>, Vec<usize>)> = Vec::new();
    for &d in &datasets {
        for seed in 0..seeds {
            let data = sample_dataset(d, DATASET_POINTS, seed);
            for &step in &steps {
                let p = OtProblem::new(batch, &data, seed, step, &[], &time);
                let (mut f, mut g) = (vec![0.0f32; batch], vec![0.0f32; batch]);
                let mut gs = vec![g.clone()];
                let mut err = vec![p.row_error(&f, &g)];
                for _ in 0..OT_ITERS {
                    p.update_f(&mut f, &g);
                    p.update_g(&f, &mut g);
                    err.push(p.row_error(&f, &g));
                    gs.push(g.clone());
                }
                let last = p.pair(&g, seed, step);
                let diff: Vec<usize> = gs.iter().map(|gk| p.pair(gk, seed, step).iter().zip(&last).filter(|(a, b)| a != b).count()).collect();
                let name = format!("{d} seed {seed} step {step}");
                eprintln!("{name}: err after 10/20/50/100 {:.1e} {:.1e} {:.1e} {:.1e}; rows differing {} {} {} {}", err[10], err[20], err[50], err[100], diff[10], diff[20], diff[50], diff[100]);
                cases.push((name, err, diff));
            }
        }
    }
    let n = cases.len();
    println!("## {n} batches of {batch} ({} datasets x {seeds} seeds x steps {steps:?})", datasets.len());
    println!("\n| k iterations | row error median | row error max | rows paired differently from k = {OT_ITERS}: mean | max |");
    println!("|---|---|---|---|---|");
    for k in [5usize, 10, 15, 20, 25, 30, 40, 50, 60, 80, 100] {
        let mut e: Vec<f32> = cases.iter().map(|c| c.1[k]).collect();
        e.sort_by(|a, b| a.partial_cmp(b).unwrap());
        let d: Vec<usize> = cases.iter().map(|c| c.2[k]).collect();
        println!("| {k} | {:.1e} | {:.1e} | {:.2} | {} |", e[n / 2], e[n - 1], d.iter().sum::<usize>() as f64 / n as f64, d.iter().max().unwrap());
    }
    println!("\n| tolerance | iterations run: mean | max | rows paired differently from {OT_ITERS} iterations: mean | max | batches with any difference |");
    println!("|---|---|---|---|---|---|");
    for tol in [0.1f32, 0.05, 0.02, 0.01, 0.005, 0.002, 0.001, 1e-4] {
        let mut iters = Vec::new();
        let mut diffs = Vec::new();
        for (_, err, diff) in &cases {
            // The stop rule: the first check iteration it (it > 0, it % K == 0) with err_it <= tol
            // runs it + 1 f updates and keeps g after it full iterations.
            let stop = (1..OT_ITERS as usize).find(|&it| it % OT_CHECK_EVERY as usize == 0 && err[it] <= tol);
            match stop {
                Some(it) => {
                    iters.push(it + 1);
                    diffs.push(diff[it]);
                }
                None => {
                    iters.push(OT_ITERS as usize);
                    diffs.push(0);
                }
            }
        }
        println!(
            "| {tol:.0e} | {:.1} | {} | {:.2} | {} | {} of {n} |",
            iters.iter().sum::<usize>() as f64 / n as f64,
            iters.iter().max().unwrap(),
            diffs.iter().sum::<usize>() as f64 / n as f64,
            diffs.iter().max().unwrap(),
            diffs.iter().filter(|&&d| d > 0).count()
        );
    }
}
