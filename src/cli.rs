//! Command-line parsing for the native `flowmatch` binary.
//!
//! Flags are `--name value` or `--name=value`. Every model/training flag goes through
//! [`Config::set`], so the CLI, the page's URL hash and the widget's attributes accept the same
//! names, ranges and error messages. Command-specific flags (like `--out`) are handled here.

use crate::config::{Config, ConfigError};

/// What the user asked for.
#[derive(Clone, Debug, PartialEq)]
pub enum Command {
    /// Train (from scratch, or on from `--model`), sample, optionally save.
    Train { config: Config, out: Option<String>, save: Option<String>, model: Option<ModelArgs> },
    /// Train (or read `--model`), then report the exact negative log-likelihood of held-out
    /// target samples and, with `--points`, of given points.
    Nll { config: Config, held_out: u32, grid: u32, heatmap: Option<String>, points: Option<String>, out: Option<String>, save: Option<String>, model: Option<ModelArgs> },
    /// Integrate start points (fresh, or `--from`) with a saved model.
    Sample { model: ModelArgs, from: Option<String>, out: String },
    /// The velocity of a saved model at given `(x, y, t)`.
    Field { model: ModelArgs, points: String, out: String },
    /// The fixed-configuration benchmark (`src/bench.rs`), one JSON line per configuration.
    Bench { configs: Vec<crate::bench::BenchConfig>, options: crate::bench::BenchOptions },
    Help,
}

/// A saved model (`--model FILE`) and the settings given on the command line, to apply over the
/// file's configuration with [`ModelArgs::config_over`] once the file is read.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelArgs {
    pub path: String,
    /// `(setting, value)` as given (already checked against the setting's range).
    pub set: Vec<(String, String)>,
    /// The settings this command may change (`None`: any but the network's shape).
    pub allowed: Option<&'static [&'static str]>,
}

/// Settings `sample --model` may change: how samples are drawn and integrated.
pub const SAMPLE_SETTINGS: &[&str] = &["samples", "solver", "nfe", "tol", "seed"];
/// Settings `nll --model` may change: which held-out data and how the flow is integrated.
pub const NLL_SETTINGS: &[&str] = &["dataset", "seed", "solver", "nfe", "tol"];
/// Settings `field --model` may change: none, the field is the model's.
pub const FIELD_SETTINGS: &[&str] = &[];

impl ModelArgs {
    /// The model file's configuration with the command line's settings applied. A setting the
    /// command does not use, or one that would change the network (width, depth, activation),
    /// is an error naming the flag.
    pub fn config_over(&self, base: &Config, command: &str) -> Result<Config, CliError> {
        let mut config = base.clone();
        let shape = |c: &Config| crate::TrainSpec::from_config(c).shape;
        for (key, value) in &self.set {
            let name = crate::config::field(key).map(|f| f.name).unwrap_or("");
            if let Some(allowed) = self.allowed {
                if !allowed.contains(&name) {
                    let accepts = if allowed.is_empty() {
                        "no settings besides its own flags".to_string()
                    } else {
                        allowed.iter().map(|a| format!("--{}", a.replace('_', "-"))).collect::<Vec<_>>().join(", ")
                    };
                    return Err(CliError::Fixed {
                        flag: key.clone(),
                        why: format!("{command} --model takes the model's settings from the file; it accepts {accepts}"),
                    });
                }
            }
            let before = shape(&config);
            config.set(key, value)?;
            if shape(&config) != before {
                return Err(CliError::Fixed {
                    flag: key.clone(),
                    why: format!(
                        "the saved model is width {} × depth {} {}; its network cannot change (train a new model instead)",
                        before.width, before.depth, before.activation
                    ),
                });
            }
        }
        config.check_solver()?;
        Ok(config)
    }
}

/// The usage text.
pub fn usage() -> String {
    let d = Config::default();
    format!(
        "flowmatch — conditional flow matching trained in WGSL compute shaders\n\n\
         USAGE:\n  flowmatch train [--dataset NAME] [--steps N] [--batch B] [--width W] [--depth D] [--lr LR] [--schedule cosine|constant]\n\
         \x20                [--seed S] [--solver euler|midpoint|rk4|dopri5] [--nfe K] [--tol T] [--samples M] [--out FILE.csv]\n\
         \x20                [--activation {acts}] [--source gaussian|DATASET] [--path linear|cosine|vp] [--sigma-min S] [--weight-decay WD]\n\
         \x20                [--t-sampling {times}] [--t-mean M] [--t-std S] [--t-u A] [--points N]\n\
         \x20                [--reflow K] [--reflow-pairs N] [--reflow-steps S]\n\
         \x20                [--objective fm|meanflow] [--conditional on|off] [--label-dropout P] [--class all|C] [--guidance W]\n\
         \x20                [--sampler ode|sde] [--noise G]\n\
         \x20                [--save MODEL.safetensors|MODEL.flowmatch] [--model MODEL]\n\
         \x20 flowmatch nll [train flags] [--held-out N] [--grid G] [--heatmap FILE.csv] [--points PTS.csv] [--out LOGP.csv]\n\
         \x20 flowmatch nll --model MODEL [--points PTS.csv] [--out LOGP.csv] [--held-out N] [--grid G] [--solver S] [--nfe K]\n\
         \x20 flowmatch sample --model MODEL [--from X0.csv] [--samples N] [--seed S] [--solver S] [--nfe K] [--tol T] --out FILE.csv\n\
         \x20 flowmatch field --model MODEL --points XYT.csv --out V.csv\n\
         \x20 flowmatch bench [--config S|M|L|S,M,L] [--steps N] [--particles P] [--ode-steps K] [--kernels software|tiled] [--profile N]\n\
         \x20                [--backend gpu|cpu|cpu-reference] [--coupling independent|ot] [--steps-per-submit N]\n\
         \x20                [--splits N] [--forward-rows 32|64|128] [--backward-rows 64|128]\n\
         \x20 flowmatch help\n\n\
         train: trains the MLP velocity field with CFM on the GPU, integrates M particles from t = 0 to 1\n\
         with K solver steps (dopri5: adaptive Dormand-Prince 5(4) with rtol = atol = T, default 1e-3, and\n\
         K its budget of field evaluations per particle, at least 7), writes them as CSV (header x,y) and prints one JSON line of results.\n\
         The JSON line also reports how straight the flow is, measured on the GPU while sampling: straightness\n\
         E int |(x1-x0) - v|^2 dt, kinetic_energy E int |v|^2 dt, transport_cost E|x1-x0|^2 and w2_squared (exact\n\
         matching on minibatches of 128), sw2 and sw2_one_step (sliced W2 to the target; one Euler step), and\n\
         field_error E|v - u|^2 against the exact marginal field of the N --points target points (Gaussian source).\n\
         --t-sampling: training times uniform, logit-normal (sigmoid(M + S z)) or u-shaped (density ~ cosh(A(t - 1/2))).\n\
         --reflow K: after training, K rounds of reflow: integrate N noise points into (x0, x1) pairs with the solver and\n\
         train S more steps on those pairs from the current weights; the JSON's \"rounds\" lists every round (0 = before).\n\
         --conditional on trains with the dataset's class labels (each replaced by \"no class\" with probability P, default 0.1);\n\
         --class C then samples class C, and --guidance W applies classifier-free guidance v(none) + W*(v(C) - v(none)).\n\
         --sampler sde integrates dx = [v + g^2/2 s] dt + g dW (same distribution; g(t) = G*sqrt(beta_t), Euler-Maruyama,\n\
         Gaussian source). --objective meanflow learns the average velocity and samples in K jumps (K = 1: one step).\n\
         --save writes the model (weights, Adam state, configuration) as .safetensors or .flowmatch, by extension;\n\
         --model continues a saved model's run (its settings; width, depth and activation cannot change) for --steps more steps.\n\
         nll: trains the same way (or reads --model), then integrates the flow backwards with the exact divergence to give\n\
         log p(x) of N held-out target samples (mean NLL), of a GxG grid over [-5,5]^2 (its mass, and\n\
         the heat map as CSV x,y,log_p) and of --points (CSV x,y; --out writes x,y,log_p). --solver/--nfe set the backward integration (dopri5 there: max(1, K/6)\n\
         equal Dormand-Prince steps, no step-size control). Gaussian source only.\n\
         sample: integrates N fresh start points (from the seed, as train does) or the rows of --from (CSV x,y) with a saved model; writes x,y.\n\
         field: the saved model's velocity at each row of --points (CSV x,y,t); writes x,y,t,vx,vy.\n\
         bench: times training (steps/s; GFLOP/s from 6*batch*sum(in*out) FLOP per step) and Euler sampling\n\
         of P particles for the fixed configs S (64x3, batch 256), M (256x4, 1024), L (512x4, 4096).\n\
         --profile N also times every kernel over N steps with GPU timestamps (matmul GFLOP/s; needs an\n\
         adapter with timestamp queries inside passes, e.g. Vulkan on a real GPU). --backend cpu times the\n\
         fast CPU trainer (one thread; the page's CPU backend), cpu-reference the scalar reference (no sampling).\n\
         --coupling ot times OT-CFM batches (minibatch Sinkhorn) instead of independent ones.\n\
         --steps-per-submit N queues the timed GPU steps N to a submit (default 256, the most; the demo page submits a few).\n\
         --splits N, --forward-rows 32|64|128 and --backward-rows 64|128 override the tiled kernels' dW batch splits and rows per tile.\n\n\
         Datasets: {datasets}\n\
         Defaults: dataset {ds}, steps {steps}, batch {batch}, width {width}, depth {depth}, lr {lr} ({schedule} schedule over the steps), seed {seed},\n\
         solver {solver}, nfe {nfe}, samples {samples}, activation {act}.\n",
        acts = crate::config::Activation::choices(),
        times = crate::config::TimeSampling::choices(),
        datasets = crate::config::Dataset::choices(),
        ds = d.dataset,
        steps = d.steps,
        batch = d.batch,
        width = d.width,
        depth = d.depth,
        lr = d.lr,
        schedule = d.schedule,
        seed = d.seed,
        solver = d.solver,
        nfe = d.nfe,
        samples = d.samples,
        act = d.activation,
    )
}

/// A parse failure: the message names the flag and what it accepts.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum CliError {
    #[error("{0}")]
    Config(#[from] ConfigError),
    #[error("flag --{0} needs a value")]
    MissingValue(String),
    #[error("unexpected argument '{0}': flags start with -- (see `flowmatch help`)")]
    Unexpected(String),
    #[error("unknown command '{0}': expected train, nll, sample, field, bench or help")]
    UnknownCommand(String),
    #[error("{command} needs --{flag} ({what})")]
    Required { command: &'static str, flag: &'static str, what: &'static str },
    #[error("invalid value '{value}' for --{flag}: expected {allowed}")]
    Path { flag: &'static str, value: String, allowed: String },
    #[error("--{flag} cannot be used here: {why}")]
    Fixed { flag: String, why: String },
}

/// `--save` / `--model` paths: a model file by extension.
fn model_path(flag: &'static str, value: &str) -> Result<String, CliError> {
    match crate::model_file::ModelFormat::from_path(value) {
        Some(_) => Ok(value.to_string()),
        None => Err(CliError::Path {
            flag,
            value: value.to_string(),
            allowed: format!("a model file name ending in {}", crate::model_file::ModelFormat::choices()),
        }),
    }
}

/// A CSV path (any name; only emptiness is refused here, the file is checked when read).
fn csv_path(flag: &'static str, value: &str) -> Result<String, CliError> {
    if value.trim().is_empty() {
        return Err(CliError::Path { flag, value: value.to_string(), allowed: "a file name".into() });
    }
    Ok(value.to_string())
}

/// Parses `args` (without the program name).
pub fn parse(args: &[String]) -> Result<Command, CliError> {
    let Some(cmd) = args.first() else { return Ok(Command::Help) };
    match cmd.as_str() {
        "help" | "--help" | "-h" => Ok(Command::Help),
        "train" => {
            let (mut out, mut save, mut model) = (None, None, None);
            let (config, set) = config_and(&args[1..], &["out", "save", "model"], |key, value| {
                match key {
                    "out" => out = Some(csv_path("out", value)?),
                    "save" => save = Some(model_path("save", value)?),
                    _ => model = Some(model_path("model", value)?),
                }
                Ok(())
            })?;
            config.check_solver()?;
            config.check_generation()?;
            let model = model.map(|path| ModelArgs { path, set, allowed: None });
            Ok(Command::Train { config, out, save, model })
        }
        "nll" => {
            let (mut held_out, mut grid, mut heatmap, mut points, mut out, mut save, mut model) = (2000u32, 64u32, None, None, None, None, None);
            let (config, set) = config_and(&args[1..], &["held-out", "grid", "heatmap", "points", "out", "save", "model"], |key, value| {
                match key {
                    "held-out" => held_out = int_flag("held-out", value, 1, 1_000_000)?,
                    "grid" => grid = int_flag("grid", value, 2, 1024)?,
                    "heatmap" => heatmap = Some(csv_path("heatmap", value)?),
                    "points" => points = Some(csv_path("points", value)?),
                    "out" => out = Some(csv_path("out", value)?),
                    "save" => save = Some(model_path("save", value)?),
                    _ => model = Some(model_path("model", value)?),
                }
                Ok(())
            })?;
            config.check_solver()?;
            config.check_generation()?;
            if out.is_some() && points.is_none() {
                return Err(CliError::Required { command: "nll --out", flag: "points", what: "the CSV of x,y points whose log-likelihood --out writes" });
            }
            if model.is_some() && save.is_some() {
                return Err(CliError::Fixed { flag: "save".into(), why: "nll --model evaluates a saved model without training it".into() });
            }
            let model = model.map(|path| ModelArgs { path, set, allowed: Some(NLL_SETTINGS) });
            Ok(Command::Nll { config, held_out, grid, heatmap, points, out, save, model })
        }
        "sample" => {
            let (mut from, mut out, mut model) = (None, None, None);
            let (_, set) = config_and(&args[1..], &["from", "out", "model"], |key, value| {
                match key {
                    "from" => from = Some(csv_path("from", value)?),
                    "out" => out = Some(csv_path("out", value)?),
                    _ => model = Some(model_path("model", value)?),
                }
                Ok(())
            })?;
            let path = model.ok_or(CliError::Required { command: "sample", flag: "model", what: "the saved model to sample, .safetensors or .flowmatch" })?;
            if from.is_some() && set.iter().any(|(k, _)| k.replace('-', "_") == "samples") {
                return Err(CliError::Fixed { flag: "samples".into(), why: "with --from, the rows of that file are the samples".into() });
            }
            let out = out.ok_or(CliError::Required { command: "sample", flag: "out", what: "the CSV file the samples go to" })?;
            let model = ModelArgs { path, set, allowed: Some(SAMPLE_SETTINGS) };
            // Settings the command does not take are refused now; the rest again over the file's.
            model.config_over(&Config::default(), "sample")?;
            Ok(Command::Sample { model, from, out })
        }
        "field" => {
            let (mut points, mut out, mut model) = (None, None, None);
            let (_, set) = config_and(&args[1..], &["points", "out", "model"], |key, value| {
                match key {
                    "points" => points = Some(csv_path("points", value)?),
                    "out" => out = Some(csv_path("out", value)?),
                    _ => model = Some(model_path("model", value)?),
                }
                Ok(())
            })?;
            let path = model.ok_or(CliError::Required { command: "field", flag: "model", what: "the saved model whose velocity to evaluate" })?;
            let points = points.ok_or(CliError::Required { command: "field", flag: "points", what: "a CSV of x,y,t rows" })?;
            let out = out.ok_or(CliError::Required { command: "field", flag: "out", what: "the CSV file the velocities go to" })?;
            let model = ModelArgs { path, set, allowed: Some(FIELD_SETTINGS) };
            model.config_over(&Config::default(), "field")?;
            Ok(Command::Field { model, points, out })
        }
        "bench" => parse_bench(&args[1..]),
        other => Err(CliError::UnknownCommand(other.to_string())),
    }
}

fn parse_bench(args: &[String]) -> Result<Command, CliError> {
    use crate::bench::{BenchBackend, BenchConfig, BenchOptions};
    let mut configs = BenchConfig::ALL.to_vec();
    let mut options = BenchOptions::default();
    let invalid = |field: &str, value: &str, allowed: &str| {
        CliError::Config(ConfigError::Invalid { field: field.into(), value: value.into(), allowed: allowed.into() })
    };
    for (key, value) in flag_pairs(args)? {
        match key.replace('_', "-").as_str() {
            "config" => {
                configs = value
                    .split(',')
                    .map(|c| BenchConfig::parse(c).ok_or_else(|| invalid("config", &value, "S, M, L or a comma-separated list of them")))
                    .collect::<Result<_, _>>()?;
            }
            "steps" => options.steps = Some(int_flag("steps", &value, 1, 1_000_000)?),
            "particles" => options.particles = Some(int_flag("particles", &value, 1, 1 << 24)?),
            "ode-steps" => options.ode_steps = Some(int_flag("ode-steps", &value, 1, 100_000)?),
            "profile" => options.profile_steps = Some(int_flag("profile", &value, 1, 100_000)?),
            "backend" => options.backend = BenchBackend::parse(&value).ok_or_else(|| invalid("backend", &value, "gpu, cpu or cpu-reference"))?,
            "coupling" => {
                options.coupling = value.parse().map_err(|_| invalid("coupling", &value, "independent or ot"))?
            }
            "steps-per-submit" => options.steps_per_submit = Some(int_flag("steps-per-submit", &value, 1, crate::gpu::trainer::MAX_STEPS_PER_SUBMIT)?),
            "splits" => options.splits = Some(int_flag("splits", &value, 1, 64)?),
            "forward-rows" => {
                options.forward_rows = Some(match value.trim() {
                    "32" => 32,
                    "64" => 64,
                    "128" => 128,
                    _ => return Err(invalid("forward-rows", &value, "32, 64 or 128")),
                })
            }
            "backward-rows" => {
                options.backward_rows = Some(match value.trim() {
                    "64" => 64,
                    "128" => 128,
                    _ => return Err(invalid("backward-rows", &value, "64 or 128")),
                })
            }
            "kernels" => {
                options.variant = Some(crate::gpu::KernelVariant::parse(&value).ok_or_else(|| invalid("kernels", &value, "software or tiled"))?)
            }
            other => {
                return Err(CliError::Config(ConfigError::Unknown {
                    field: format!("--{other}"),
                    known: "--config, --steps, --particles, --ode-steps, --kernels, --profile, --backend, --coupling, --steps-per-submit, --splits, --forward-rows, --backward-rows".into(),
                }))
            }
        }
    }
    Ok(Command::Bench { configs, options })
}

/// Applies every `--flag value` to a default [`Config`], except the command's own `extra` flags,
/// which go to `on_extra`. Unknown flags list both kinds. Returns the config and the settings
/// given, in order (commands on a saved model apply them over the file's configuration).
fn config_and(
    args: &[String],
    extra: &[&str],
    mut on_extra: impl FnMut(&str, &str) -> Result<(), CliError>,
) -> Result<(Config, Vec<(String, String)>), CliError> {
    let mut config = Config::default();
    let mut set = Vec::new();
    for (key, value) in flag_pairs(args)? {
        let norm = key.replace('_', "-");
        if extra.contains(&norm.as_str()) {
            on_extra(&norm, &value)?;
            continue;
        }
        config.set(&key, &value).map_err(|e| match e {
            ConfigError::Unknown { field, known } => ConfigError::Unknown {
                field: format!("--{field}"),
                known: format!("{known}, {} (as --flags)", extra.join(", ")),
            },
            other => other,
        })?;
        set.push((key, value));
    }
    Ok((config, set))
}

fn int_flag(name: &str, value: &str, lo: u32, hi: u32) -> Result<u32, CliError> {
    value
        .trim()
        .parse::<u32>()
        .ok()
        .filter(|v| (lo..=hi).contains(v))
        .ok_or_else(|| {
            CliError::Config(ConfigError::Invalid {
                field: name.to_string(),
                value: value.to_string(),
                allowed: format!("an integer from {lo} to {hi}"),
            })
        })
}

fn flag_pairs(args: &[String]) -> Result<Vec<(String, String)>, CliError> {
    let mut pairs = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let Some(flag) = a.strip_prefix("--") else { return Err(CliError::Unexpected(a.clone())) };
        if let Some((k, v)) = flag.split_once('=') {
            pairs.push((k.to_string(), v.to_string()));
        } else {
            let v = it.next().ok_or_else(|| CliError::MissingValue(flag.to_string()))?;
            pairs.push((flag.to_string(), v.clone()));
        }
    }
    Ok(pairs)
}

pub use crate::json::{json_number, json_string, JsonLine};

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn parses_the_contract_flags() {
        let c = parse(&args("train --dataset 8gaussians --steps 10 --batch 32 --width 16 --depth 2 --lr 0.001 --seed 5 --solver rk4 --nfe 4 --samples 100 --out s.csv")).unwrap();
        let Command::Train { config, out, save, model } = c else { panic!() };
        assert_eq!((out.as_deref(), save, model), (Some("s.csv"), None, None));
        let Command::Train { config: r, .. } =
            parse(&args("train --reflow 2 --reflow-pairs 500 --reflow-steps 30 --t-sampling logit-normal --t-mean 0.5 --t-std 0.8 --points 16")).unwrap()
        else {
            panic!()
        };
        assert_eq!((r.reflow, r.reflow_pairs, r.reflow_steps, r.points), (2, 500, 30, 16));
        assert_eq!((r.t_sampling, r.t_mean, r.t_std), (crate::config::TimeSampling::LogitNormal, 0.5, 0.8));
        assert_eq!((config.steps, config.batch, config.width, config.depth, config.seed, config.nfe, config.samples), (10, 32, 16, 2, 5, 4, 100));
        assert_eq!(config.solver, crate::config::Solver::Rk4);
        assert!(matches!(parse(&args("train --sigma-min=0.1")), Ok(Command::Train { .. })));
    }

    #[test]
    fn errors_name_the_flag() {
        let e = parse(&args("train --dataset nope")).unwrap_err().to_string();
        assert!(e.contains("dataset") && e.contains("moons"), "{e}");
        let e = parse(&args("train --batch 0")).unwrap_err().to_string();
        assert!(e.contains("batch") && e.contains("1 to 65536"), "{e}");
        let e = parse(&args("train --steps ten")).unwrap_err().to_string();
        assert!(e.contains("steps"), "{e}");
        assert_eq!(parse(&args("train --steps")).unwrap_err(), CliError::MissingValue("steps".into()));
        assert!(parse(&args("train --bogus 1")).unwrap_err().to_string().contains("--bogus"));
        assert!(matches!(parse(&args("fly")), Err(CliError::UnknownCommand(_))));
        assert!(parse(&args("bench --config XL")).unwrap_err().to_string().contains("config"));
        let e = parse(&args("train --t-sampling beta")).unwrap_err().to_string();
        assert!(e.contains("t_sampling") && e.contains("uniform|logit-normal|u-shaped"), "{e}");
        assert!(parse(&args("train --t-std 0")).unwrap_err().to_string().contains("(0, 4]"));
        assert!(parse(&args("train --points 0")).unwrap_err().to_string().contains("1 to 1048576"));
        assert!(parse(&args("train --reflow 11")).unwrap_err().to_string().contains("0 to 10"));
        assert!(parse(&args("bench --kernels fast")).unwrap_err().to_string().contains("software or tiled"));
    }

    #[test]
    fn model_commands_check_their_flags() {
        let Command::Sample { model, from, out } = parse(&args("sample --model m.safetensors --from x0.csv --nfe 8 --solver rk4 --out s.csv")).unwrap() else { panic!() };
        assert_eq!((model.path.as_str(), from.as_deref(), out.as_str()), ("m.safetensors", Some("x0.csv"), "s.csv"));
        let base = Config { width: 16, ..Config::default() };
        let c = model.config_over(&base, "sample").unwrap();
        assert_eq!((c.width, c.nfe, c.solver), (16, 8, crate::config::Solver::Rk4));
        let e = |s: &str| parse(&args(s)).unwrap_err().to_string();
        assert!(e("sample --out s.csv").contains("sample needs --model"));
        assert!(e("sample --model m.flowmatch").contains("sample needs --out"));
        assert!(e("sample --model m.pt --out s.csv").contains("--model") && e("sample --model m.pt --out s.csv").contains(".flowmatch or .safetensors"));
        let fixed = e("sample --model m.flowmatch --width 8 --out s.csv");
        assert!(fixed.contains("--width") && fixed.contains("--samples, --solver, --nfe, --tol, --seed"), "{fixed}");
        assert!(e("sample --model m.flowmatch --nfe 0 --out s.csv").contains("nfe"));
        assert!(e("sample --model m.flowmatch --solver dopri5 --nfe 3 --out s.csv").contains("at least 7"));
        assert!(e("field --model m.flowmatch --out v.csv").contains("field needs --points"));
        assert!(e("field --model m.flowmatch --points p.csv --out v.csv --nfe 3").contains("--nfe"));
        assert!(e("nll --out l.csv").contains("--points"));
        assert!(e("nll --model m.flowmatch --save n.flowmatch").contains("--save"));
        assert!(e("train --save model.bin").contains("--save"));
        // Training on from a saved model keeps its network.
        let Command::Train { model: Some(m), save, .. } = parse(&args("train --model a.flowmatch --steps 10 --lr 0.001 --save b.safetensors")).unwrap() else { panic!() };
        assert_eq!(save.as_deref(), Some("b.safetensors"));
        let c = m.config_over(&base, "train").unwrap();
        assert_eq!((c.width, c.steps, c.lr), (16, 10, 0.001));
        let Command::Train { model: Some(m), .. } = parse(&args("train --model a.flowmatch --depth 5")).unwrap() else { panic!() };
        let e = m.config_over(&base, "train").unwrap_err().to_string();
        assert!(e.contains("--depth") && e.contains("width 16 × depth 3"), "{e}");
    }

    #[test]
    fn parses_bench() {
        use crate::bench::BenchConfig;
        let Command::Bench { configs, options } = parse(&args("bench --config S,L --steps 10 --kernels tiled")).unwrap() else { panic!() };
        assert_eq!(configs, vec![BenchConfig::S, BenchConfig::L]);
        assert_eq!(options.steps, Some(10));
        assert_eq!(options.variant, Some(crate::gpu::KernelVariant::Tiled));
        assert_eq!(options.profile_steps, None);
        let Command::Bench { options, .. } = parse(&args("bench --profile 20")).unwrap() else { panic!() };
        assert_eq!(options.profile_steps, Some(20));
        assert!(parse(&args("bench --profile 0")).unwrap_err().to_string().contains("profile"));
        let Command::Bench { options, .. } = parse(&args("bench --backend cpu")).unwrap() else { panic!() };
        assert_eq!(options.backend, crate::bench::BenchBackend::Cpu);
        assert!(parse(&args("bench --backend tpu")).unwrap_err().to_string().contains("gpu, cpu or cpu-reference"));
        let Command::Bench { configs, .. } = parse(&args("bench")).unwrap() else { panic!() };
        assert_eq!(configs.len(), 3);
    }

}
