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
    use flowmatch::cli::{self, Command, JsonLine, ModelArgs};
    use flowmatch::config::{limits, Objective, OnOff, Sampler, Solver, Source};
    use flowmatch::cpu::flow_stats::measured_steps;
    use flowmatch::cpu::sde::SdeSpec;
    use flowmatch::engine::quality::class_points;
    use flowmatch::gpu::{
        AdaptiveSummary, GpuContext, GpuDensity, GpuExactField, GpuField, GpuFlowStats, GpuQuality, GpuReflow, GpuSampler, GpuTrainer, TrainerOptions,
    };
    use flowmatch::model::{Query, INPUTS};
    use flowmatch::model_file::ModelFile;
    use flowmatch::targets::{sample_dataset, sample_dataset_labeled, DATASET_POINTS};
    use flowmatch::budget::Profile;
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
            Ok(Command::Train { config, out, save, model }) => pollster::block_on(train(config, out, save, model)),
            Ok(Command::Nll { config, held_out, grid, heatmap, points, out, save, model }) => {
                pollster::block_on(nll(config, NllArgs { held_out, grid, heatmap, points, out, save }, model))
            }
            Ok(Command::Sample { model, from, out }) => pollster::block_on(sample(model, from, out)),
            Ok(Command::Field { model, points, out }) => pollster::block_on(field(model, points, out)),
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

    fn bad_input(e: impl std::fmt::Display) -> Failure {
        (2, e.to_string())
    }

    /// Loss readbacks happen every this many steps (async on the GPU side; the CLI waits).
    const READ_EVERY: u64 = 500;
    /// Queries of the field error (`GpuExactField::field_error`).
    const FIELD_ERROR_QUERIES: u32 = 1024;
    /// Directions of the sliced W2 readings.
    const SW2_DIRECTIONS: u32 = 64;

    /// What the run's training did (absent for a model read from a file and not trained).
    struct Training {
        trainer: GpuTrainer,
        train_seconds: f64,
        /// Mean loss of the last 100 steps.
        final_loss: f64,
    }

    /// A model on the GPU: trained now, read from `--model`, or both (trained on from a file).
    struct Model {
        ctx: GpuContext,
        config: Config,
        spec: TrainSpec,
        /// The packed parameters (the trainer's buffer when there is one).
        params: wgpu::Buffer,
        source: Vec<[f32; 2]>,
        training: Option<Training>,
        /// `--model`, when the model came from a file.
        file: Option<String>,
        /// Training steps the model has taken in all.
        step: u32,
    }

    impl Model {
        /// The fields every command's JSON line starts with.
        fn json(&self, command: &str) -> JsonLine {
            let c = &self.config;
            let mut j = JsonLine::new()
                .str("command", command)
                .str("dataset", c.dataset.name())
                .str("source", c.source.name())
                .str("path", c.path.name());
            if let Some(t) = &self.training {
                let steps_per_s = if t.train_seconds > 0.0 { c.steps as f64 / t.train_seconds } else { 0.0 };
                j = j.raw("steps", c.steps).num("steps_per_s", steps_per_s).num("final_loss", t.final_loss).num("train_seconds", t.train_seconds);
            }
            j = j
                .raw("step", self.step)
                .raw("model", self.file.as_deref().map(cli::json_string).unwrap_or_else(|| "null".into()))
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
                .raw("points", self.training.as_ref().map_or(c.points, |t| t.trainer.target_len()))
                .str("objective", c.objective.name())
                .str("conditional", c.conditional.name())
                .num("label_dropout", c.label_dropout as f64)
                .str("class", &c.class.to_string())
                .num("guidance", c.guidance as f64)
                .str("sampler", c.sampler.name())
                .num("noise", c.noise as f64)
                .str("adapter", &self.ctx.adapter.to_string())
                .str("backend", &self.ctx.adapter.backend)
                .str("device_type", &self.ctx.adapter.device_type);
            if let Some(t) = &self.training {
                j = j.raw("dispatches_per_step", t.trainer.dispatches_per_step());
            }
            j
        }

        /// Writes the trained model (weights, Adam state, configuration) to `path`.
        async fn save(&self, path: &str) -> Result<(), Failure> {
            let t = self.training.as_ref().expect("only trained models are saved");
            let file = t.trainer.model_file_detached(self.config.clone()).await.map_err(gpu_failure)?;
            file.write(path).map_err(|e| (1, e))
        }
    }

    fn json_path(p: Option<&str>) -> String {
        p.map(cli::json_string).unwrap_or_else(|| "null".into())
    }

    /// The source points for x0 (empty for the standard normal), as the trainer saw them.
    fn source_points(config: &Config) -> Vec<[f32; 2]> {
        match config.source {
            Source::Gaussian => Vec::new(),
            Source::Dataset(d) => sample_dataset(d, DATASET_POINTS, config.seed ^ 0x5eed),
        }
    }

    /// Reads `--model` and applies the command line's settings over its configuration.
    fn read_model(args: &ModelArgs, command: &str) -> Result<(ModelFile, Config), Failure> {
        let file = ModelFile::read(&args.path).map_err(|e| (2, format!("--model {e}")))?;
        let config = args.config_over(&file.config, command).map_err(bad_input)?;
        Ok((file, config))
    }

    /// A saved model on the GPU, untrained here.
    async fn open_model(args: &ModelArgs, command: &str) -> Result<Model, Failure> {
        let (file, config) = read_model(args, command)?;
        let ctx = GpuContext::new().await.map_err(gpu_failure)?;
        eprintln!("adapter: {}", ctx.adapter);
        let params = flowmatch::gpu::upload_params(&ctx, &file.params).map_err(gpu_failure)?;
        let spec = TrainSpec::from_config(&config);
        Ok(Model { source: source_points(&config), ctx, config, spec, params, training: None, file: Some(args.path.clone()), step: file.step })
    }

    /// Trains per `config`, from fresh weights or on from `initial` (its weights, Adam state and
    /// step), for `config.steps` steps.
    async fn train_model(config: Config, initial: Option<(&ModelFile, &str)>) -> Result<Model, Failure> {
        let ctx = GpuContext::new().await.map_err(gpu_failure)?;
        eprintln!("adapter: {}", ctx.adapter);
        let (data, labels) = sample_dataset_labeled(config.dataset, config.points as usize, config.seed);
        let source = source_points(&config);
        let spec = TrainSpec::from_config(&config);
        let labels = if config.conditional == OnOff::On { labels } else { Vec::new() };
        let mut trainer = GpuTrainer::with_labels(&ctx, spec, &data, &labels, &source, TrainerOptions::default()).map_err(gpu_failure)?;
        if let Some((file, _)) = initial {
            trainer.load_model(file).map_err(bad_input)?;
            // Training on from a file is a new phase of `--steps` steps: its learning-rate
            // schedule starts at the loaded step (0 steps: the state is kept exactly, e.g. to
            // convert the file's format).
            if config.steps > 0 {
                trainer.spec.adam.schedule_start = trainer.step();
            }
        }
        let (final_loss, train_seconds) = train_steps(&mut trainer, config.steps, config.lr).await?;
        let params = trainer.params.clone();
        let step = trainer.step();
        Ok(Model {
            ctx,
            config,
            spec,
            params,
            source,
            training: Some(Training { trainer, train_seconds, final_loss }),
            file: initial.map(|(_, p)| p.to_string()),
            step,
        })
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

    /// The trained model: from scratch, or on from `--model`; saved to `--save` right after
    /// training (before anything else can fail).
    async fn trained(config: Config, model: Option<ModelArgs>, save: Option<&str>, command: &str) -> Result<Model, Failure> {
        let m = match &model {
            Some(args) => {
                let (file, config) = read_model(args, command)?;
                train_model(config, Some((&file, &args.path))).await?
            }
            None => train_model(config, None).await?,
        };
        if let Some(path) = save {
            m.save(path).await?;
        }
        Ok(m)
    }

    /// Where integration starts: fresh points from the seed (what `train` samples), or given ones.
    enum Start {
        Fresh(u32),
        Points(Vec<[f32; 2]>),
    }

    /// Integrates from t = 0 to 1 with the configuration's solver; returns the end points and,
    /// for dopri5, its evaluation counts. Non-finite end points and an exhausted dopri5 budget
    /// are failures (exit 3).
    async fn integrate(m: &Model, start: Start) -> Result<(Vec<[f32; 2]>, Option<AdaptiveSummary>), Failure> {
        let c = &m.config;
        let n = match &start {
            Start::Fresh(n) => *n,
            Start::Points(p) => p.len() as u32,
        };
        let mut sampler = GpuSampler::new_with_source(&m.ctx, &m.spec.shape, &m.params, n, 0, &m.source).map_err(gpu_failure)?;
        match &start {
            Start::Fresh(_) => sampler.reset(c.seed.wrapping_add(1)),
            Start::Points(p) => sampler.write_particles(p),
        }
        sampler.set_tol(c.tol).map_err(|e| (2, e))?;
        sampler.set_query(query(c));
        // In chunks of about budget::TimeLimits::chunk_s each, one queued when the last is done.
        // MeanFlow jumps and the SDE take `nfe` steps of their own kind.
        let profile = Profile::for_context(&m.ctx);
        let own_way = c.objective == Objective::MeanFlow || c.sampler == Sampler::Sde;
        let solver = if own_way { Solver::Euler } else { c.solver };
        let plan = sampler.chunk_plan(solver, c.nfe, profile.sample_flops, profile.limits.chunk_s);
        let mut job = if c.objective == Objective::MeanFlow {
            sampler.begin_mean_flow(0.0, 1.0, c.nfe, plan)
        } else if c.sampler == Sampler::Sde {
            sampler.begin_sde(SdeSpec { path: c.path, sigma_min: c.sigma_min, noise: c.noise }, 0.0, 1.0, c.nfe, plan)
        } else {
            sampler.begin(c.solver, 0.0, 1.0, c.nfe, plan)
        };
        sampler.run(&mut job).await.map_err(gpu_failure)?;
        let samples = sampler.read_particles().await.map_err(gpu_failure)?;
        let adaptive = if solver == Solver::Dopri5 {
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
        if let Some(i) = samples.iter().position(|p| !(p[0].is_finite() && p[1].is_finite())) {
            let loss = m.training.as_ref().map(|t| format!(" (final loss {:e}, lr {})", t.final_loss, c.lr)).unwrap_or_default();
            return Err((3, format!("sampling produced a non-finite particle (index {i}); the field is unusable{loss}")));
        }
        Ok((samples, adaptive))
    }

    impl Model {
        /// `json` plus what a sampling run reports.
        fn sample_json(&self, command: &str, seconds: f64, adaptive: &Option<AdaptiveSummary>, n: usize) -> JsonLine {
            let c = &self.config;
            let mean_nfe = adaptive.as_ref().map(|s| s.mean_nfe()).unwrap_or((c.nfe * c.solver.evals_per_step()) as f64);
            self.json(command).num("sample_seconds", seconds).num("mean_nfe", mean_nfe).raw("samples", n)
        }
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
        fn new(t: &Model) -> Result<Self, Failure> {
            let c = &t.config;
            let trainer = &t.training.as_ref().expect("the meter measures a trained model").trainer;
            let mut sampler = GpuSampler::new_with_source(&t.ctx, &t.spec.shape, &t.params, c.samples, 0, &t.source).map_err(gpu_failure)?;
            sampler.set_tol(c.tol).map_err(|e| (2, e))?;
            sampler.set_query(query(c));
            let stats = GpuFlowStats::new(&t.ctx, &t.spec.shape, &t.params, &sampler).map_err(gpu_failure)?;
            // A class's samples are measured against that class's points.
            let class = c.class.index().and_then(|k| {
                let (data, labels) = sample_dataset_labeled(c.dataset, c.points as usize, c.seed);
                class_points(&data, &labels, Some(k))
            });
            let quality = match class {
                Some(points) => GpuQuality::with_points(&t.ctx, &sampler.particles, c.samples, &points, SW2_DIRECTIONS),
                None => GpuQuality::new(&t.ctx, &sampler.particles, c.samples, &trainer.data, trainer.target_len(), SW2_DIRECTIONS),
            };
            let exact = if c.source == Source::Gaussian {
                let (shape, params, data, n) = (&t.spec.shape, &t.params, &trainer.data, trainer.target_len());
                Some(GpuExactField::new(&t.ctx, shape, params, data, n, c.path, c.sigma_min, FIELD_ERROR_QUERIES).map_err(gpu_failure)?)
            } else {
                None
            };
            Ok(Meter { sampler, stats, quality, exact })
        }

        async fn measure(&mut self, t: &Model, final_loss: f64, reading: u32) -> Result<Measured, Failure> {
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
                    final_loss, c.lr
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

    async fn train(config: Config, out: Option<String>, save: Option<String>, model: Option<ModelArgs>) -> Result<(), Failure> {
        let reflow_rounds = config.reflow;
        // Saved right after training, or after the last reflow round when there is reflow.
        let mut t = trained(config, model, if reflow_rounds == 0 { save.as_deref() } else { None }, "train").await?;
        let c = t.config.clone();
        let mut final_loss = t.training.as_ref().map_or(f64::NAN, |tr| tr.final_loss);
        let mut meter = Meter::new(&t)?;
        let mut m = meter.measure(&t, final_loss, 0).await?;
        // Reflow: round 0 is the model just trained; each further round retrains it on its own
        // (noise, sample) pairs and is measured the same way.
        let mut rounds: Vec<String> = Vec::new();
        let mut reflow_seconds = 0.0;
        if c.reflow > 0 {
            let tr = t.training.as_mut().expect("train trains");
            let mut reflow = GpuReflow::new(&t.ctx, &tr.trainer, c.reflow_pairs, c.seed).map_err(gpu_failure)?;
            rounds.push(round_json(0, c.steps, final_loss, &m));
            // Each round runs the learning-rate schedule over its own steps (the pairs restart it).
            tr.trainer.set_lr(c.lr, c.schedule, c.reflow_steps);
            for round in 1..=c.reflow {
                let tr = t.training.as_mut().expect("train trains");
                let start = Instant::now();
                reflow.make_pairs(&mut tr.trainer, c.solver, c.nfe, c.tol).map_err(gpu_failure)?;
                let (loss, _) = train_steps(&mut tr.trainer, c.reflow_steps as u64, c.lr).await?;
                reflow_seconds += start.elapsed().as_secs_f64();
                tr.final_loss = loss;
                final_loss = loss;
                t.step = tr.trainer.step();
                m = meter.measure(&t, final_loss, round).await?;
                rounds.push(round_json(round, c.steps + round as u64 * c.reflow_steps as u64, loss, &m));
            }
            if let Some(path) = &save {
                t.save(path).await?;
            }
        }
        if let Some(path) = &out {
            write_points(path, &m.samples)?;
        }
        let mut json = m
            .add_to(t.json("train"))
            .num("sample_seconds", m.seconds)
            .num("mean_nfe", m.mean_nfe)
            .raw("samples", m.samples.len())
            .raw("out", json_path(out.as_deref()))
            .raw("save", json_path(save.as_deref()));
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

    /// Reads a CSV of `columns` numbers per row from `path` (the value of `--flag`), at most
    /// `max_rows` rows; the file's size is checked before it is read.
    fn read_csv(flag: &str, path: &str, columns: &[&'static str], max_rows: usize) -> Result<Vec<f32>, Failure> {
        let max_bytes = max_rows as u64 * 64 * columns.len() as u64 + 4096;
        let len = std::fs::metadata(path).map_err(|e| (1, format!("--{flag} {path}: {e}")))?.len();
        if len > max_bytes {
            return Err((2, format!("--{flag} {path}: {len} bytes is more than {max_bytes} (at most {max_rows} rows)")));
        }
        let text = std::fs::read_to_string(path).map_err(|e| (2, format!("--{flag} {path}: {e}")))?;
        flowmatch::csv::parse_rows(&text, columns, max_rows).map_err(|e| (2, format!("--{flag} {path}: {e}")))
    }

    fn pairs(values: &[f32]) -> Vec<[f32; 2]> {
        values.chunks_exact(2).map(|p| [p[0], p[1]]).collect()
    }

    async fn sample(model: ModelArgs, from: Option<String>, out: String) -> Result<(), Failure> {
        let start_points = match &from {
            Some(path) => Some(pairs(&read_csv("from", path, &["x", "y"], limits::MAX_SAMPLES as usize)?)),
            None => None,
        };
        let m = open_model(&model, "sample").await?;
        let c = &m.config;
        let start = Instant::now();
        let (samples, adaptive) = integrate(&m, start_points.map(Start::Points).unwrap_or(Start::Fresh(c.samples))).await?;
        let seconds = start.elapsed().as_secs_f64();
        write_points(&out, &samples)?;
        let json = m
            .sample_json("sample", seconds, &adaptive, samples.len())
            .raw("from", json_path(from.as_deref()))
            .raw("out", cli::json_string(&out))
            .finish();
        println!("{json}");
        Ok(())
    }

    async fn field(model: ModelArgs, points: String, out: String) -> Result<(), Failure> {
        let inputs = read_csv("points", &points, &INPUTS, limits::MAX_SAMPLES as usize)?;
        let m = open_model(&model, "field").await?;
        let start = Instant::now();
        let n = inputs.len() / INPUTS.len();
        let evaluator = GpuField::new(&m.ctx, &m.spec.shape, &m.params, n as u32).map_err(gpu_failure)?;
        let v = evaluator.eval(&inputs).await.map_err(gpu_failure)?;
        let seconds = start.elapsed().as_secs_f64();
        let header = format!("{},vx,vy", INPUTS.join(","));
        let rows = inputs.chunks_exact(INPUTS.len()).zip(&v).map(|(p, v)| {
            let cols: Vec<String> = p.iter().chain(v).map(|x| x.to_string()).collect();
            cols.join(",")
        });
        write_csv(&out, &header, rows)?;
        let json = m.json("field").raw("points", n).num("field_seconds", seconds).raw("out", cli::json_string(&out)).finish();
        println!("{json}");
        Ok(())
    }

    /// `nll`'s own flags.
    struct NllArgs {
        held_out: u32,
        grid: u32,
        heatmap: Option<String>,
        points: Option<String>,
        out: Option<String>,
        save: Option<String>,
    }

    async fn nll(config: Config, a: NllArgs, model: Option<ModelArgs>) -> Result<(), Failure> {
        let gaussian_only = |c: &Config| {
            if c.source != Source::Gaussian {
                return Err((2, format!(
                    "nll needs the standard normal source (its density is known); --source {} has no closed-form density",
                    c.source
                )));
            }
            Ok(())
        };
        let points = match &a.points {
            Some(path) => Some(pairs(&read_csv("points", path, &["x", "y"], limits::MAX_SAMPLES as usize)?)),
            None => None,
        };
        let m = match &model {
            Some(args) => {
                let m = open_model(args, "nll").await?;
                gaussian_only(&m.config)?;
                m
            }
            None => {
                gaussian_only(&config)?;
                trained(config, None, a.save.as_deref(), "nll").await?
            }
        };
        let c = &m.config;
        let start = Instant::now();
        // Held-out points of the class the density follows (all classes: the whole dataset).
        let held = match c.class.index() {
            None => sample_dataset(c.dataset, a.held_out as usize, c.seed ^ 0x4e11),
            Some(class) => {
                let n = a.held_out as usize * (2 * c.dataset.num_classes() as usize);
                let (p, l) = sample_dataset_labeled(c.dataset, n, c.seed ^ 0x4e11);
                p.into_iter().zip(l).filter(|&(_, k)| k == class).map(|(p, _)| p).take(a.held_out as usize).collect()
            }
        };
        let cells = (a.grid * a.grid) as usize;
        let capacity = held.len().max(cells).max(points.as_ref().map_or(0, Vec::len));
        let density = GpuDensity::new(&m.ctx, &m.spec.shape, &m.params, capacity as u32).map_err(gpu_failure)?;
        density.set_query(query(c));
        // dopri5's nfe is a budget of evaluations; the backward pass takes equal steps of 6.
        let density_steps = measured_steps(c.solver, c.nfe);
        // In chunks of about budget::TimeLimits::chunk_s each (`GpuDensity::chunk_plan`).
        let profile = Profile::for_context(&m.ctx);
        let chunked = |n: usize| density.chunk_plan(n as u32, c.solver, density_steps, profile.sample_flops, profile.limits.chunk_s);
        let log_p = density.log_density_chunked(&held, c.solver, density_steps, chunked(held.len())).await.map_err(gpu_failure)?;
        let (mean, stderr) = mean_nll(&log_p);
        let step = 10.0 / a.grid as f32;
        let g = a.grid as usize;
        let centres: Vec<[f32; 2]> = (0..cells).map(|k| [-5.0 + step * ((k % g) as f32 + 0.5), -5.0 + step * ((k / g) as f32 + 0.5)]).collect();
        let grid_log_p = density.log_density_chunked(&centres, c.solver, density_steps, chunked(centres.len())).await.map_err(gpu_failure)?;
        let mass: f64 = grid_log_p.iter().map(|&l| (l as f64).exp()).sum::<f64>() * (step as f64).powi(2);
        if let Some(path) = &a.heatmap {
            let rows = centres.iter().zip(&grid_log_p).map(|(p, l)| format!("{},{},{}", p[0], p[1], l));
            write_csv(path, "x,y,log_p", rows)?;
        }
        let mut points_nll = None;
        if let Some(pts) = &points {
            let lp = density.log_density_chunked(pts, c.solver, density_steps, chunked(pts.len())).await.map_err(gpu_failure)?;
            points_nll = Some(mean_nll(&lp).0);
            if let Some(path) = &a.out {
                let rows = pts.iter().zip(&lp).map(|(p, l)| format!("{},{},{}", p[0], p[1], l));
                write_csv(path, "x,y,log_p", rows)?;
            }
        }
        let json = m
            .json("nll")
            .num("nll", mean)
            .num("nll_stderr", stderr)
            .raw("held_out", a.held_out)
            .raw("grid", a.grid)
            .num("grid_mass", mass)
            .num("nll_seconds", start.elapsed().as_secs_f64())
            .raw("heatmap", json_path(a.heatmap.as_deref()))
            .raw("points", points.as_ref().map_or("null".to_string(), |p| p.len().to_string()))
            .num("points_nll", points_nll.unwrap_or(f64::NAN))
            .raw("out", json_path(a.out.as_deref()))
            .raw("save", json_path(a.save.as_deref()))
            .finish();
        println!("{json}");
        Ok(())
    }

    /// Mean negative log-likelihood and its standard error.
    fn mean_nll(log_p: &[f32]) -> (f64, f64) {
        let nlls: Vec<f64> = log_p.iter().map(|&l| -(l as f64)).collect();
        let mean = nlls.iter().sum::<f64>() / nlls.len().max(1) as f64;
        let var = nlls.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (nlls.len().max(2) - 1) as f64;
        (mean, (var / nlls.len().max(1) as f64).sqrt())
    }

    /// `flowmatch bench`: one JSON line per configuration (see `flowmatch::bench`).
    async fn bench(configs: Vec<flowmatch::bench::BenchConfig>, options: flowmatch::bench::BenchOptions) -> Result<(), Failure> {
        if options.backend != flowmatch::bench::BenchBackend::Gpu {
            let cpu = cpu_name();
            eprintln!("CPU: {cpu} (one thread)");
            for config in configs {
                println!("{}", flowmatch::bench::run_cpu(config, &options, &cpu).to_json());
                std::io::stdout().flush().map_err(|e| (1, e.to_string()))?;
            }
            return Ok(());
        }
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

    /// Writes a CSV with a header line; a failure names the file (exit 1).
    fn write_csv(path: &str, header: &str, rows: impl Iterator<Item = String>) -> Result<(), Failure> {
        let write = || -> std::io::Result<()> {
            let mut w = std::io::BufWriter::new(std::fs::File::create(path)?);
            writeln!(w, "{header}")?;
            for r in rows {
                writeln!(w, "{r}")?;
            }
            w.flush()
        };
        write().map_err(|e| (1, format!("cannot write {path}: {e}")))
    }

    fn write_points(path: &str, points: &[[f32; 2]]) -> Result<(), Failure> {
        write_csv(path, "x,y", points.iter().map(|p| format!("{},{}", p[0], p[1])))
    }

    /// The CPU's model name (Linux: /proc/cpuinfo), else the architecture.
    fn cpu_name() -> String {
        let model = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|s| s.lines().find(|l| l.starts_with("model name")).and_then(|l| l.split_once(':')).map(|(_, v)| v.trim().to_string()));
        let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
        format!("{} ({}, {threads} hardware threads)", model.unwrap_or_else(|| "unknown CPU".into()), std::env::consts::ARCH)
    }
}
