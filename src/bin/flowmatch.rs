//! `flowmatch`: the native command-line tool (see `flowmatch help`).
//! Exit codes: 0 success, 2 bad arguments, 1 GPU/IO failure, 3 training diverged.

#[cfg(target_arch = "wasm32")]
fn main() {}

#[cfg(not(target_arch = "wasm32"))]
fn main() {
    native::main()
}

#[cfg(not(target_arch = "wasm32"))]
mod native {
    use flowmatch::cli::{self, json_number, json_string, Command};
    use flowmatch::gpu::{GpuContext, GpuSampler, GpuTrainer};
    use flowmatch::targets::{sample_dataset, DATASET_POINTS};
    use flowmatch::config::Source;
    use flowmatch::{Config, TrainSpec};
    use std::io::Write;
    use std::process::exit;
    use std::time::Instant;

    pub fn main() {
        let args: Vec<String> = std::env::args().skip(1).collect();
        match cli::parse(&args) {
            Ok(Command::Help) => print!("{}", cli::usage()),
            Ok(Command::Train { config, out }) => {
                if let Err((code, msg)) = pollster::block_on(train(config, out)) {
                    eprintln!("error: {msg}");
                    exit(code);
                }
            }
            Err(e) => {
                eprintln!("error: {e}\n(run `flowmatch help` for usage)");
                exit(2);
            }
        }
    }

    /// Loss readbacks happen every this many steps (async on the GPU side; the CLI waits).
    const READ_EVERY: u64 = 500;

    async fn train(config: Config, out: Option<String>) -> Result<(), (i32, String)> {
        let ctx = GpuContext::new().await.map_err(|e| (1, e.to_string()))?;
        eprintln!("adapter: {}", ctx.adapter);
        let data = sample_dataset(config.dataset, DATASET_POINTS, config.seed);
        let source = match config.source {
            Source::Gaussian => Vec::new(),
            Source::Dataset(d) => sample_dataset(d, DATASET_POINTS, config.seed ^ 0x5eed),
        };
        let spec = TrainSpec::from_config(&config);
        let mut trainer = GpuTrainer::new_with_source(&ctx, spec, &data, &source).map_err(|e| (1, e.to_string()))?;
        let mut losses: Vec<f32> = Vec::new();
        let start = Instant::now();
        let mut done = 0u64;
        while done < config.steps {
            let k = (config.steps - done).min(READ_EVERY) as u32;
            trainer.train(k);
            done += k as u64;
            let status = trainer.status(k).await.map_err(|e| (1, e.to_string()))?;
            if let Some(bad) = status.first_bad_step {
                return Err((3, format!(
                    "training diverged: a non-finite loss or parameter appeared at step {bad} (lr {} may be too high)",
                    config.lr
                )));
            }
            losses.extend(status.losses.iter().map(|(_, l)| *l));
        }
        let train_seconds = start.elapsed().as_secs_f64();
        let tail = &losses[losses.len().saturating_sub(100)..];
        let final_loss = if tail.is_empty() { f64::NAN } else { tail.iter().map(|&l| l as f64).sum::<f64>() / tail.len() as f64 };

        let sample_start = Instant::now();
        let mut sampler = GpuSampler::new_with_source(&ctx, &spec.shape, &trainer.params, config.samples, 0, &source).map_err(|e| (1, e.to_string()))?;
        sampler.reset(config.seed.wrapping_add(1));
        sampler.integrate(config.solver, 0.0, 1.0, config.nfe);
        let samples = sampler.read_particles().await.map_err(|e| (1, e.to_string()))?;
        let sample_seconds = sample_start.elapsed().as_secs_f64();
        if let Some(i) = samples.iter().position(|p| !(p[0].is_finite() && p[1].is_finite())) {
            return Err((3, format!(
                "sampling produced a non-finite particle (index {i}); the trained field is unusable (final loss {final_loss:e}, lr {})",
                config.lr
            )));
        }
        if let Some(path) = &out {
            write_csv(path, &samples).map_err(|e| (1, format!("cannot write {path}: {e}")))?;
        }
        let steps_per_s = if train_seconds > 0.0 { config.steps as f64 / train_seconds } else { 0.0 };
        println!(
            "{{\"command\":\"train\",\"dataset\":{},\"source\":{},\"steps\":{},\"steps_per_s\":{},\"final_loss\":{},\"train_seconds\":{},\"sample_seconds\":{},\"samples\":{},\"solver\":{},\"nfe\":{},\"width\":{},\"depth\":{},\"batch\":{},\"lr\":{},\"seed\":{},\"out\":{},\"adapter\":{},\"backend\":{},\"device_type\":{}}}",
            json_string(config.dataset.name()),
            json_string(config.source.name()),
            config.steps,
            json_number(steps_per_s),
            json_number(final_loss),
            json_number(train_seconds),
            json_number(sample_seconds),
            samples.len(),
            json_string(config.solver.name()),
            config.nfe,
            config.width,
            config.depth,
            config.batch,
            config.lr,
            config.seed,
            out.as_deref().map(json_string).unwrap_or_else(|| "null".into()),
            json_string(&ctx.adapter.to_string()),
            json_string(&ctx.adapter.backend),
            json_string(&ctx.adapter.device_type),
        );
        Ok(())
    }

    fn write_csv(path: &str, points: &[[f32; 2]]) -> std::io::Result<()> {
        let mut w = std::io::BufWriter::new(std::fs::File::create(path)?);
        writeln!(w, "x,y")?;
        for p in points {
            writeln!(w, "{},{}", p[0], p[1])?;
        }
        w.flush()
    }
}
