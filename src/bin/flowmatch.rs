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
    use flowmatch::cli::{self, Command, JsonLine};
    use flowmatch::config::{Objective, OnOff, Sampler, Source};
    use flowmatch::cpu::sde::SdeSpec;
    use flowmatch::gpu::{GpuContext, GpuDensity, GpuSampler, GpuTrainer, TrainerOptions};
    use flowmatch::model::Query;
    use flowmatch::targets::{sample_dataset, sample_dataset_labeled, DATASET_POINTS};
    use flowmatch::{Config, TrainSpec};
    use std::io::Write;
    use std::process::exit;
    use std::time::Instant;

    /// An error to report: exit code and message.
    type Failure = (i32, String);

    pub fn main() {
        let args: Vec<String> = std::env::args().skip(1).collect();
        let result = match cli::parse(&args) {
            Ok(Command::Help) => {
                print!("{}", cli::usage());
                Ok(())
            }
            Ok(Command::Train { config, out }) => pollster::block_on(train(config, out)),
            Ok(Command::Nll { config, held_out, grid, heatmap }) => pollster::block_on(nll(config, held_out, grid, heatmap)),
            Ok(Command::Bench { configs, options }) => pollster::block_on(bench(configs, options)),
            Err(e) => Err((2, format!("{e}\n(run `flowmatch help` for usage)"))),
        };
        if let Err((code, msg)) = result {
            eprintln!("error: {msg}");
            exit(code);
        }
    }

    fn gpu_failure(e: impl std::fmt::Display) -> Failure {
        (1, e.to_string())
    }

    /// Loss readbacks happen every this many steps (async on the GPU side; the CLI waits).
    const READ_EVERY: u64 = 500;

    /// A model trained per `config`, with what the commands report about it.
    struct Trained {
        ctx: GpuContext,
        config: Config,
        spec: TrainSpec,
        trainer: GpuTrainer,
        source: Vec<[f32; 2]>,
        train_seconds: f64,
        /// Mean loss of the last 100 steps.
        final_loss: f64,
    }

    impl Trained {
        /// The fields every command's JSON line starts with.
        fn json(&self, command: &str) -> JsonLine {
            let c = &self.config;
            let steps_per_s = if self.train_seconds > 0.0 { c.steps as f64 / self.train_seconds } else { 0.0 };
            JsonLine::new()
                .str("command", command)
                .str("dataset", c.dataset.name())
                .str("source", c.source.name())
                .str("path", c.path.name())
                .raw("steps", c.steps)
                .num("steps_per_s", steps_per_s)
                .num("final_loss", self.final_loss)
                .num("train_seconds", self.train_seconds)
                .raw("width", c.width)
                .raw("depth", c.depth)
                .str("activation", c.activation.name())
                .raw("batch", c.batch)
                .raw("lr", c.lr)
                .raw("seed", c.seed)
                .str("solver", c.solver.name())
                .raw("nfe", c.nfe)
                .num("tol", c.tol as f64)
                .str("objective", c.objective.name())
                .str("conditional", c.conditional.name())
                .num("label_dropout", c.label_dropout as f64)
                .str("class", &c.class.to_string())
                .num("guidance", c.guidance as f64)
                .str("sampler", c.sampler.name())
                .num("noise", c.noise as f64)
                .str("adapter", &self.ctx.adapter.to_string())
                .str("backend", &self.ctx.adapter.backend)
                .str("device_type", &self.ctx.adapter.device_type)
                .raw("dispatches_per_step", self.trainer.dispatches_per_step())
        }
    }

    async fn train_model(config: Config) -> Result<Trained, Failure> {
        let ctx = GpuContext::new().await.map_err(gpu_failure)?;
        eprintln!("adapter: {}", ctx.adapter);
        let (data, labels) = sample_dataset_labeled(config.dataset, DATASET_POINTS, config.seed);
        let source = match config.source {
            Source::Gaussian => Vec::new(),
            Source::Dataset(d) => sample_dataset(d, DATASET_POINTS, config.seed ^ 0x5eed),
        };
        let spec = TrainSpec::from_config(&config);
        let labels = if config.conditional == OnOff::On { labels } else { Vec::new() };
        let mut trainer = GpuTrainer::with_labels(&ctx, spec, &data, &labels, &source, TrainerOptions::default()).map_err(gpu_failure)?;
        let mut losses: Vec<f32> = Vec::new();
        let start = Instant::now();
        let mut done = 0u64;
        while done < config.steps {
            let k = (config.steps - done).min(READ_EVERY) as u32;
            trainer.train(k);
            done += k as u64;
            let status = trainer.status(k).await.map_err(gpu_failure)?;
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
        Ok(Trained { ctx, config, spec, trainer, source, train_seconds, final_loss })
    }

    async fn train(config: Config, out: Option<String>) -> Result<(), Failure> {
        let t = train_model(config).await?;
        let c = &t.config;
        let sample_start = Instant::now();
        let mut sampler = GpuSampler::new_with_source(&t.ctx, &t.spec.shape, &t.trainer.params, c.samples, 0, &t.source).map_err(gpu_failure)?;
        sampler.reset(c.seed.wrapping_add(1));
        sampler.set_tol(c.tol).map_err(|e| (2, e))?;
        sampler.set_query(query(c));
        match (c.objective, c.sampler) {
            (Objective::MeanFlow, _) => sampler.integrate_mean_flow(0.0, 1.0, c.nfe),
            (Objective::Fm, Sampler::Sde) => {
                sampler.integrate_sde(SdeSpec { path: c.path, sigma_min: c.sigma_min, noise: c.noise }, 0.0, 1.0, c.nfe)
            }
            (Objective::Fm, Sampler::Ode) => sampler.integrate(c.solver, 0.0, 1.0, c.nfe),
        }
        let samples = sampler.read_particles().await.map_err(gpu_failure)?;
        let adaptive = if c.solver == flowmatch::config::Solver::Dopri5 {
            let s = sampler.read_adaptive_summary().await.map_err(gpu_failure)?;
            if s.unfinished > 0 {
                return Err((3, format!(
                    "dopri5 used its whole budget (--nfe {}) before t = 1 for {} of {} particles at --tol {}: raise --nfe or loosen --tol",
                    c.nfe, s.unfinished, s.nfe.len(), c.tol
                )));
            }
            Some(s)
        } else {
            None
        };
        let sample_seconds = sample_start.elapsed().as_secs_f64();
        if let Some(i) = samples.iter().position(|p| !(p[0].is_finite() && p[1].is_finite())) {
            return Err((3, format!(
                "sampling produced a non-finite particle (index {i}); the trained field is unusable (final loss {:e}, lr {})",
                t.final_loss, c.lr
            )));
        }
        if let Some(path) = &out {
            write_csv(path, "x,y", samples.iter().map(|p| format!("{},{}", p[0], p[1]))).map_err(|e| (1, format!("cannot write {path}: {e}")))?;
        }
        let json = t
            .json("train")
            .num("sample_seconds", sample_seconds)
            .num("mean_nfe", adaptive.as_ref().map(|s| s.mean_nfe()).unwrap_or((c.nfe * c.solver.evals_per_step()) as f64))
            .raw("samples", samples.len())
            .raw("out", out.as_deref().map(cli::json_string).unwrap_or_else(|| "null".into()))
            .finish();
        println!("{json}");
        Ok(())
    }

    async fn nll(config: Config, held_out: u32, grid: u32, heatmap: Option<String>) -> Result<(), Failure> {
        if config.source != Source::Gaussian {
            return Err((2, format!(
                "nll needs the standard normal source (its density is known); --source {} has no closed-form density",
                config.source
            )));
        }
        let t = train_model(config).await?;
        let c = &t.config;
        let start = Instant::now();
        // Held-out points of the class the density follows (all classes: the whole dataset).
        let points = match c.class.index() {
            None => sample_dataset(c.dataset, held_out as usize, c.seed ^ 0x4e11),
            Some(class) => {
                let n = held_out as usize * (2 * c.dataset.num_classes() as usize);
                let (p, l) = sample_dataset_labeled(c.dataset, n, c.seed ^ 0x4e11);
                p.into_iter().zip(l).filter(|&(_, k)| k == class).map(|(p, _)| p).take(held_out as usize).collect()
            }
        };
        let cells = (grid * grid) as usize;
        let density = GpuDensity::new(&t.ctx, &t.spec.shape, &t.trainer.params, (held_out as usize).max(cells) as u32).map_err(gpu_failure)?;
        density.set_query(query(c));
        // dopri5's nfe is a budget of evaluations; the backward pass takes equal steps of 6.
        let density_steps = if c.solver == flowmatch::config::Solver::Dopri5 { (c.nfe / 6).max(1) } else { c.nfe };
        let log_p = density.log_density(&points, c.solver, density_steps).await.map_err(gpu_failure)?;
        let nlls: Vec<f64> = log_p.iter().map(|&l| -(l as f64)).collect();
        let mean = nlls.iter().sum::<f64>() / nlls.len() as f64;
        let var = nlls.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (nlls.len().max(2) - 1) as f64;
        let step = 10.0 / grid as f32;
        let centres: Vec<[f32; 2]> = (0..cells).map(|k| [-5.0 + step * ((k % grid as usize) as f32 + 0.5), -5.0 + step * ((k / grid as usize) as f32 + 0.5)]).collect();
        let grid_log_p = density.log_density(&centres, c.solver, density_steps).await.map_err(gpu_failure)?;
        let mass: f64 = grid_log_p.iter().map(|&l| (l as f64).exp()).sum::<f64>() * (step as f64).powi(2);
        if let Some(path) = &heatmap {
            let rows = centres.iter().zip(&grid_log_p).map(|(p, l)| format!("{},{},{}", p[0], p[1], l));
            write_csv(path, "x,y,log_p", rows).map_err(|e| (1, format!("cannot write {path}: {e}")))?;
        }
        let json = t
            .json("nll")
            .num("nll", mean)
            .num("nll_stderr", (var / nlls.len() as f64).sqrt())
            .raw("held_out", held_out)
            .raw("grid", grid)
            .num("grid_mass", mass)
            .num("nll_seconds", start.elapsed().as_secs_f64())
            .raw("heatmap", heatmap.as_deref().map(cli::json_string).unwrap_or_else(|| "null".into()))
            .finish();
        println!("{json}");
        Ok(())
    }

    /// `flowmatch bench`: one JSON line per configuration (see `flowmatch::bench`).
    async fn bench(configs: Vec<flowmatch::bench::BenchConfig>, options: flowmatch::bench::BenchOptions) -> Result<(), Failure> {
        let ctx = match options.profile_steps {
            Some(_) => GpuContext::with_features(flowmatch::gpu::profile::features()).await,
            None => GpuContext::new().await,
        }
        .map_err(gpu_failure)?;
        eprintln!("adapter: {}", ctx.adapter);
        for config in configs {
            let report = flowmatch::bench::run(&ctx, config, &options).await.map_err(gpu_failure)?;
            println!("{}", report.to_json("wgpu"));
            std::io::stdout().flush().map_err(|e| (1, e.to_string()))?;
        }
        Ok(())
    }

    /// The class and guidance the samples follow.
    fn query(c: &Config) -> Query {
        Query { class: c.class.index(), guidance: c.guidance }
    }

    fn write_csv(path: &str, header: &str, rows: impl Iterator<Item = String>) -> std::io::Result<()> {
        let mut w = std::io::BufWriter::new(std::fs::File::create(path)?);
        writeln!(w, "{header}")?;
        for r in rows {
            writeln!(w, "{r}")?;
        }
        w.flush()
    }
}
