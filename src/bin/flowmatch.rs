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
    use flowmatch::budget::Profile;
    use flowmatch::config::{Objective, OnOff, Sampler, Solver, Source};
    use flowmatch::cpu::flow_stats::measured_steps;
    use flowmatch::cpu::sde::SdeSpec;
    use flowmatch::gpu::{GpuContext, GpuDensity, GpuExactField, GpuFlowStats, GpuQuality, GpuReflow, GpuSampler, GpuTrainer, TrainerOptions};
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
    /// Queries of the field error (`GpuExactField::field_error`).
    const FIELD_ERROR_QUERIES: u32 = 1024;
    /// Directions of the sliced W2 readings.
    const SW2_DIRECTIONS: u32 = 64;

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
                .str("schedule", c.schedule.name())
                .raw("seed", c.seed)
                .str("solver", c.solver.name())
                .raw("nfe", c.nfe)
                .num("tol", c.tol as f64)
                .str("t_sampling", c.t_sampling.name())
                .raw("points", self.trainer.target_len())
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
        let (data, labels) = sample_dataset_labeled(config.dataset, config.points as usize, config.seed);
        let source = match config.source {
            Source::Gaussian => Vec::new(),
            Source::Dataset(d) => sample_dataset(d, DATASET_POINTS, config.seed ^ 0x5eed),
        };
        let spec = TrainSpec::from_config(&config);
        let labels = if config.conditional == OnOff::On { labels } else { Vec::new() };
        let mut trainer = GpuTrainer::with_labels(&ctx, spec, &data, &labels, &source, TrainerOptions::default()).map_err(gpu_failure)?;
        let (final_loss, train_seconds) = train_steps(&mut trainer, config.steps, config.lr).await?;
        Ok(Trained { ctx, config, spec, trainer, source, train_seconds, final_loss })
    }

    /// Trains `steps` steps, stopping with exit 3 at a non-finite step; returns the mean loss of
    /// the last 100 steps and the seconds taken.
    async fn train_steps(trainer: &mut GpuTrainer, steps: u64, lr: f32) -> Result<(f64, f64), Failure> {
        let mut losses: Vec<f32> = Vec::new();
        let start = Instant::now();
        let mut done = 0u64;
        while done < steps {
            let k = (steps - done).min(READ_EVERY) as u32;
            trainer.train(k);
            done += k as u64;
            let status = trainer.status(k).await.map_err(gpu_failure)?;
            if let Some(bad) = status.first_bad_step {
                return Err((3, format!("training diverged: a non-finite loss or parameter appeared at step {bad} (lr {lr} may be too high)")));
            }
            losses.extend(status.losses.iter().map(|(_, l)| *l));
        }
        let tail = &losses[losses.len().saturating_sub(100)..];
        let final_loss = if tail.is_empty() { f64::NAN } else { tail.iter().map(|&l| l as f64).sum::<f64>() / tail.len() as f64 };
        Ok((final_loss, start.elapsed().as_secs_f64()))
    }

    /// What the JSON line reports about the current model's flow.
    struct Measured {
        samples: Vec<[f32; 2]>,
        mean_nfe: f64,
        stats: flowmatch::gpu::flow_stats::FlowStats,
        sw2: f32,
        sw2_one_step: f32,
        field_error: Option<f64>,
        seconds: f64,
    }

    impl Measured {
        fn add_to(&self, json: JsonLine) -> JsonLine {
            json.num("straightness", self.stats.straightness)
                .num("kinetic_energy", self.stats.kinetic_energy)
                .num("transport_cost", self.stats.transport_cost)
                .num("w2_squared", self.stats.w2_squared)
                .num("sw2", self.sw2 as f64)
                .num("sw2_one_step", self.sw2_one_step as f64)
                .raw("field_error", self.field_error.map(cli::json_number).unwrap_or_else(|| "null".into()))
        }
    }

    /// Samples the current model with the configured solver (the samples the CLI writes) and
    /// measures on the GPU while doing so: straightness, kinetic energy, transport cost and a
    /// minibatch W2² (`GpuFlowStats`; dopri5 samples adaptively and measures with nfe/6 fixed
    /// Dormand–Prince steps), sliced W2 against the target for those samples and for one Euler
    /// step, and the field error against the exact marginal field (Gaussian source only). MeanFlow
    /// and the SDE sample their own way; their statistics are of the ODE of the field they learned.
    /// Built once per run (buffers and pipelines), used once per reflow round.
    struct Meter {
        sampler: GpuSampler,
        stats: GpuFlowStats,
        quality: GpuQuality,
        exact: Option<GpuExactField>,
    }

    impl Meter {
        fn new(t: &Trained) -> Result<Self, Failure> {
            let c = &t.config;
            let mut sampler = GpuSampler::new_with_source(&t.ctx, &t.spec.shape, &t.trainer.params, c.samples, 0, &t.source).map_err(gpu_failure)?;
            sampler.set_tol(c.tol).map_err(|e| (2, e))?;
            sampler.set_query(query(c));
            let stats = GpuFlowStats::new(&t.ctx, &t.spec.shape, &t.trainer.params, &sampler).map_err(gpu_failure)?;
            let quality = GpuQuality::new(&t.ctx, &sampler.particles, c.samples, &t.trainer.data, t.trainer.target_len(), SW2_DIRECTIONS);
            let exact = if c.source == Source::Gaussian {
                let (shape, params, data, n) = (&t.spec.shape, &t.trainer.params, &t.trainer.data, t.trainer.target_len());
                Some(GpuExactField::new(&t.ctx, shape, params, data, n, c.path, c.sigma_min, FIELD_ERROR_QUERIES).map_err(gpu_failure)?)
            } else {
                None
            };
            Ok(Meter { sampler, stats, quality, exact })
        }

        async fn measure(&mut self, t: &Trained, reading: u32) -> Result<Measured, Failure> {
            let c = &t.config;
            let start = Instant::now();
            let (sampler, stats, quality) = (&mut self.sampler, &self.stats, &self.quality);
            // Sampling runs in chunks of about budget::TimeLimits::chunk_s each, one queued when the
            // last is done (the fixed-step ODE runs inside the flow statistics' own integration).
            let profile = Profile::for_context(&t.ctx);
            sampler.reset(c.seed.wrapping_add(1));
            let (samples, mean_nfe, sw2) = if c.objective == Objective::MeanFlow || c.sampler == Sampler::Sde {
                // MeanFlow's jumps and the SDE are not the ODE the statistics integrate: sample
                // first, then measure the (instantaneous, guided) field's ODE with as many Euler steps.
                let plan = sampler.chunk_plan(Solver::Euler, c.nfe, profile.sample_flops, profile.limits.chunk_s);
                let mut job = if c.objective == Objective::MeanFlow {
                    sampler.begin_mean_flow(0.0, 1.0, c.nfe, plan)
                } else {
                    sampler.begin_sde(SdeSpec { path: c.path, sigma_min: c.sigma_min, noise: c.noise }, 0.0, 1.0, c.nfe, plan)
                };
                sampler.run(&mut job).await.map_err(gpu_failure)?;
                let samples = sampler.read_particles().await.map_err(gpu_failure)?;
                let sw2 = quality.sliced_w2(c.seed).await.map_err(gpu_failure)?;
                sampler.rewind();
                stats.integrate(Solver::Euler, c.nfe);
                (samples, c.nfe as f64, sw2)
            } else if c.solver == Solver::Dopri5 {
                let plan = sampler.chunk_plan(c.solver, c.nfe, profile.sample_flops, profile.limits.chunk_s);
                let mut job = sampler.begin(c.solver, 0.0, 1.0, c.nfe, plan);
                sampler.run(&mut job).await.map_err(gpu_failure)?;
                let s = sampler.read_adaptive_summary().await.map_err(gpu_failure)?;
                if s.unfinished > 0 {
                    return Err((3, format!(
                        "dopri5 used its whole budget (--nfe {}) before t = 1 for {} of {} particles at --tol {}: raise --nfe or loosen --tol",
                        c.nfe, s.unfinished, s.nfe.len(), c.tol
                    )));
                }
                let samples = sampler.read_particles().await.map_err(gpu_failure)?;
                let sw2 = quality.sliced_w2(c.seed).await.map_err(gpu_failure)?;
                sampler.rewind();
                stats.integrate(c.solver, measured_steps(c.solver, c.nfe));
                (samples, s.mean_nfe(), sw2)
            } else {
                stats.integrate(c.solver, c.nfe);
                let samples = sampler.read_particles().await.map_err(gpu_failure)?;
                let sw2 = quality.sliced_w2(c.seed).await.map_err(gpu_failure)?;
                (samples, (c.nfe * c.solver.evals_per_step()) as f64, sw2)
            };
            if let Some(i) = samples.iter().position(|p| !(p[0].is_finite() && p[1].is_finite())) {
                return Err((3, format!(
                    "sampling produced a non-finite particle (index {i}); the trained field is unusable (final loss {:e}, lr {})",
                    t.final_loss, c.lr
                )));
            }
            let flow = stats.read().await.map_err(gpu_failure)?;
            sampler.rewind();
            sampler.integrate(Solver::Euler, 0.0, 1.0, 1);
            let sw2_one_step = quality.sliced_w2(c.seed).await.map_err(gpu_failure)?;
            let field_error = match &self.exact {
                Some(exact) => Some(exact.field_error(FIELD_ERROR_QUERIES, c.seed, reading).await.map_err(gpu_failure)?),
                None => None,
            };
            Ok(Measured { samples, mean_nfe, stats: flow, sw2, sw2_one_step, field_error, seconds: start.elapsed().as_secs_f64() })
        }
    }

    async fn train(config: Config, out: Option<String>) -> Result<(), Failure> {
        let mut t = train_model(config).await?;
        let c = t.config.clone();
        let mut meter = Meter::new(&t)?;
        let mut m = meter.measure(&t, 0).await?;
        // Reflow: round 0 is the model just trained; each further round retrains it on its own
        // (noise, sample) pairs and is measured the same way.
        let mut rounds: Vec<String> = Vec::new();
        let mut reflow_seconds = 0.0;
        if c.reflow > 0 {
            let mut reflow = GpuReflow::new(&t.ctx, &t.trainer, c.reflow_pairs, c.seed).map_err(gpu_failure)?;
            rounds.push(round_json(0, c.steps, t.final_loss, &m));
            // Each round runs the learning-rate schedule over its own steps (the pairs restart it).
            t.trainer.set_lr(c.lr, c.schedule, c.reflow_steps);
            for round in 1..=c.reflow {
                let start = Instant::now();
                reflow.make_pairs(&mut t.trainer, c.solver, c.nfe, c.tol).map_err(gpu_failure)?;
                let (loss, _) = train_steps(&mut t.trainer, c.reflow_steps as u64, c.lr).await?;
                reflow_seconds += start.elapsed().as_secs_f64();
                t.final_loss = loss;
                m = meter.measure(&t, round).await?;
                rounds.push(round_json(round, c.steps + round as u64 * c.reflow_steps as u64, loss, &m));
            }
        }
        if let Some(path) = &out {
            write_csv(path, "x,y", m.samples.iter().map(|p| format!("{},{}", p[0], p[1]))).map_err(|e| (1, format!("cannot write {path}: {e}")))?;
        }
        let mut json = m
            .add_to(t.json("train"))
            .num("sample_seconds", m.seconds)
            .num("mean_nfe", m.mean_nfe)
            .raw("samples", m.samples.len())
            .raw("out", out.as_deref().map(cli::json_string).unwrap_or_else(|| "null".into()));
        if c.reflow > 0 {
            json = json
                .raw("reflow", c.reflow)
                .raw("reflow_pairs", c.reflow_pairs)
                .raw("reflow_steps", c.reflow_steps)
                .num("reflow_seconds", reflow_seconds)
                .raw("rounds", format!("[{}]", rounds.join(",")));
        }
        println!("{}", json.finish());
        Ok(())
    }

    /// One reflow round's report: `round` (0 = the first training), total steps so far, the mean
    /// loss of its last 100 steps and its measurements.
    fn round_json(round: u32, total_steps: u64, final_loss: f64, m: &Measured) -> String {
        m.add_to(JsonLine::new().raw("round", round).raw("total_steps", total_steps).num("final_loss", final_loss)).finish()
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
        let density_steps = measured_steps(c.solver, c.nfe);
        let profile = Profile::for_context(&t.ctx);
        let chunked = |n: usize| density.chunk_plan(n as u32, c.solver, density_steps, profile.sample_flops, profile.limits.chunk_s);
        let log_p = density.log_density_chunked(&points, c.solver, density_steps, chunked(points.len())).await.map_err(gpu_failure)?;
        let nlls: Vec<f64> = log_p.iter().map(|&l| -(l as f64)).collect();
        let mean = nlls.iter().sum::<f64>() / nlls.len() as f64;
        let var = nlls.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (nlls.len().max(2) - 1) as f64;
        let step = 10.0 / grid as f32;
        let centres: Vec<[f32; 2]> = (0..cells).map(|k| [-5.0 + step * ((k % grid as usize) as f32 + 0.5), -5.0 + step * ((k / grid as usize) as f32 + 0.5)]).collect();
        let grid_log_p = density.log_density_chunked(&centres, c.solver, density_steps, chunked(centres.len())).await.map_err(gpu_failure)?;
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
