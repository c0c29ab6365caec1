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
    use flowmatch::config::{limits, Solver, Source};
    use flowmatch::gpu::{AdaptiveSummary, GpuContext, GpuDensity, GpuField, GpuSampler, GpuTrainer};
    use flowmatch::model::INPUTS;
    use flowmatch::model_file::ModelFile;
    use flowmatch::targets::{sample_dataset, DATASET_POINTS};
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
        let data = sample_dataset(config.dataset, DATASET_POINTS, config.seed);
        let source = source_points(&config);
        let spec = TrainSpec::from_config(&config);
        let mut trainer = GpuTrainer::new_with_source(&ctx, spec, &data, &source).map_err(gpu_failure)?;
        if let Some((file, _)) = initial {
            trainer.load_model(file).map_err(bad_input)?;
            // Training on from a file is a new phase of `--steps` steps: its learning-rate
            // schedule starts at the loaded step (0 steps: the state is kept exactly, e.g. to
            // convert the file's format).
            if config.steps > 0 {
                trainer.spec.adam.schedule_start = trainer.step();
            }
        }
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
        // In chunks of about budget::TimeLimits::chunk_s each, one queued when the last is done.
        let profile = Profile::for_context(&m.ctx);
        let plan = sampler.chunk_plan(c.solver, c.nfe, profile.sample_flops, profile.limits.chunk_s);
        let mut job = sampler.begin(c.solver, 0.0, 1.0, c.nfe, plan);
        sampler.run(&mut job).await.map_err(gpu_failure)?;
        let samples = sampler.read_particles().await.map_err(gpu_failure)?;
        let adaptive = if c.solver == Solver::Dopri5 {
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

    async fn train(config: Config, out: Option<String>, save: Option<String>, model: Option<ModelArgs>) -> Result<(), Failure> {
        let m = trained(config, model, save.as_deref(), "train").await?;
        let c = &m.config;
        let sample_start = Instant::now();
        let (samples, adaptive) = integrate(&m, Start::Fresh(c.samples)).await?;
        let sample_seconds = sample_start.elapsed().as_secs_f64();
        if let Some(path) = &out {
            write_points(path, &samples)?;
        }
        let json = m
            .sample_json("train", sample_seconds, &adaptive, samples.len())
            .raw("out", json_path(out.as_deref()))
            .raw("save", json_path(save.as_deref()))
            .finish();
        println!("{json}");
        Ok(())
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
        let held = sample_dataset(c.dataset, a.held_out as usize, c.seed ^ 0x4e11);
        let cells = (a.grid * a.grid) as usize;
        let capacity = held.len().max(cells).max(points.as_ref().map_or(0, Vec::len));
        let density = GpuDensity::new(&m.ctx, &m.spec.shape, &m.params, capacity as u32).map_err(gpu_failure)?;
        // dopri5's nfe is a budget of evaluations; the backward pass takes equal steps of 6.
        let density_steps = if c.solver == Solver::Dopri5 { (c.nfe / 6).max(1) } else { c.nfe };
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
