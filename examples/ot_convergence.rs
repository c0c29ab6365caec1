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
    // `--bench-steps N`: the stop iteration of the stop rule on the batches of `flowmatch bench`
    // (moons, seed 0, steps 0 .. N), then exit.
    let bench_steps = arg("--bench-steps", 0);
    if bench_steps > 0 {
        let data = sample_dataset(Dataset::Moons, DATASET_POINTS, 0);
        let iters: Vec<u32> = (0..bench_steps).map(|step| OtProblem::new(batch, &data, 0, step, &[], &TimeDist::default()).sinkhorn().2).collect();
        let mean = iters.iter().sum::<u32>() as f64 / iters.len() as f64;
        println!("moons seed 0, batch {batch}, steps 0..{bench_steps}: Sinkhorn iterations mean {mean:.1}, min {}, max {}", iters.iter().min().unwrap(), iters.iter().max().unwrap());
        return;
    }
    let seeds = arg("--seeds", 3);
    let steps: Vec<u32> = (0..arg("--steps", 8)).map(|k| k * 250).collect();
    let datasets = [Dataset::Moons, Dataset::EightGaussians, Dataset::Checkerboard, Dataset::Spirals];
    let time = TimeDist::default();
    // Per case: after k = 0..=OT_ITERS full iterations, the max and the mean row error and the
    // rows paired differently from k = OT_ITERS.
    struct Case {
        dataset: Dataset,
        max: Vec<f32>,
        mean: Vec<f32>,
        diff: Vec<usize>,
    }
    let mut cases: Vec<Case> = Vec::new();
    for &d in &datasets {
        for seed in 0..seeds {
            let data = sample_dataset(d, DATASET_POINTS, seed);
            for &step in &steps {
                let p = OtProblem::new(batch, &data, seed, step, &[], &time);
                let (mut f, mut g) = (vec![0.0f32; batch], vec![0.0f32; batch]);
                let mut gs = vec![g.clone()];
                let (mut max, mut mean) = (Vec::new(), Vec::new());
                let mut record = |f: &[f32], g: &[f32]| {
                    let e = p.row_errors(f, g);
                    max.push(e.iter().fold(0.0f32, |a, &b| a.max(b)));
                    mean.push(e.iter().sum::<f32>() / batch as f32);
                };
                record(&f, &g);
                for _ in 0..OT_ITERS {
                    p.update_f(&mut f, &g);
                    p.update_g(&f, &mut g);
                    record(&f, &g);
                    gs.push(g.clone());
                }
                let last = p.pair(&g, seed, step);
                let diff: Vec<usize> = gs.iter().map(|gk| p.pair(gk, seed, step).iter().zip(&last).filter(|(a, b)| a != b).count()).collect();
                eprintln!("{d} seed {seed} step {step}: max row error after 10/20/50/100 {:.1e} {:.1e} {:.1e} {:.1e}; rows differing {} {} {} {}", max[10], max[20], max[50], max[100], diff[10], diff[20], diff[50], diff[100]);
                cases.push(Case { dataset: d, max, mean, diff });
            }
        }
    }
    let n = cases.len();
    println!("## {n} batches of {batch} ({} datasets x {seeds} seeds x steps {steps:?}), check every {OT_CHECK_EVERY}", datasets.len());
    println!("\n| k iterations | max row error: median | max | mean row error: median | max | rows paired differently from k = {OT_ITERS}: mean | max |");
    println!("|---|---|---|---|---|---|---|");
    let med = |mut v: Vec<f32>| {
        v.sort_by(|a, b| a.partial_cmp(b).unwrap());
        (v[v.len() / 2], v[v.len() - 1])
    };
    for k in [5usize, 10, 15, 20, 25, 30, 40, 50, 60, 80, 100] {
        let (m1, m2) = med(cases.iter().map(|c| c.max[k]).collect());
        let (a1, a2) = med(cases.iter().map(|c| c.mean[k]).collect());
        let d: Vec<usize> = cases.iter().map(|c| c.diff[k]).collect();
        println!("| {k} | {m1:.1e} | {m2:.1e} | {a1:.1e} | {a2:.1e} | {:.2} | {} |", d.iter().sum::<usize>() as f64 / n as f64, d.iter().max().unwrap());
    }
    for (metric, pick) in [("max", 0usize), ("mean", 1)] {
        println!("\nStop rule on the {metric} row error:\n");
        println!("| tolerance | iterations run: mean | max | per dataset (mean) | rows paired differently from {OT_ITERS} iterations: mean | max | batches with any difference |");
        println!("|---|---|---|---|---|---|---|");
        for tol in [0.1f32, 0.05, 0.02, 0.01, 0.005, 0.002, 0.001, 5e-4, 2e-4, 1e-4] {
            let mut iters = Vec::new();
            let mut diffs = Vec::new();
            for c in &cases {
                let err = if pick == 0 { &c.max } else { &c.mean };
                // The stop rule: the first check iteration it (it > 0, it % K == 0) with err_it <= tol
                // runs it + 1 f updates and keeps g after it full iterations.
                let stop = (1..OT_ITERS as usize).find(|&it| it % OT_CHECK_EVERY as usize == 0 && err[it] <= tol);
                let (i, d) = stop.map(|it| (it + 1, c.diff[it])).unwrap_or((OT_ITERS as usize, 0));
                iters.push(i);
                diffs.push(d);
            }
            let per: Vec<String> = datasets
                .iter()
                .map(|&d| {
                    let v: Vec<usize> = cases.iter().zip(&iters).filter(|(c, _)| c.dataset == d).map(|(_, &i)| i).collect();
                    format!("{d} {:.0}", v.iter().sum::<usize>() as f64 / v.len() as f64)
                })
                .collect();
            println!(
                "| {tol:.0e} | {:.1} | {} | {} | {:.2} | {} | {} of {n} |",
                iters.iter().sum::<usize>() as f64 / n as f64,
                iters.iter().max().unwrap(),
                per.join(", "),
                diffs.iter().sum::<usize>() as f64 / n as f64,
                diffs.iter().max().unwrap(),
                diffs.iter().filter(|&&d| d > 0).count()
            );
        }
    }
}
