//! Command-line parsing for the native `flowmatch` binary.
//!
//! Flags are `--name value` or `--name=value`. Every model/training flag goes through
//! [`Config::set`], so the CLI, the page's URL hash and the widget's attributes accept the same
//! names, ranges and error messages. Command-specific flags (like `--out`) are handled here.

use crate::config::{Config, ConfigError};

/// What the user asked for.
#[derive(Clone, Debug, PartialEq)]
pub enum Command {
    Train { config: Config, out: Option<String> },
    /// Train, then report the exact negative log-likelihood of held-out target samples.
    Nll { config: Config, held_out: u32, grid: u32, heatmap: Option<String> },
    /// The fixed-configuration benchmark (`src/bench.rs`), one JSON line per configuration.
    Bench { configs: Vec<crate::bench::BenchConfig>, options: crate::bench::BenchOptions },
    Help,
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
         \x20 flowmatch nll [train flags] [--held-out N] [--grid G] [--heatmap FILE.csv]\n\
         \x20 flowmatch bench [--config S|M|L|S,M,L] [--steps N] [--particles P] [--ode-steps K] [--kernels software|tiled] [--profile N]\n\
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
         nll: trains the same way, then integrates the flow backwards with the exact divergence to give\n\
         log p(x) of N held-out target samples (mean NLL) and of a GxG grid over [-5,5]^2 (its mass, and\n\
         the heat map as CSV x,y,log_p). --solver/--nfe set the backward integration (dopri5 there: max(1, K/6)\n\
         equal Dormand-Prince steps, no step-size control). Gaussian source only.\n\
         bench: times training (steps/s; GFLOP/s from 6*batch*sum(in*out) FLOP per step) and Euler sampling\n\
         of P particles for the fixed configs S (64x3, batch 256), M (256x4, 1024), L (512x4, 4096).\n\
         --profile N also times every kernel over N steps with GPU timestamps (matmul GFLOP/s; needs an\n\
         adapter with timestamp queries inside passes, e.g. Vulkan on a real GPU).\n\n\
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
    #[error("unknown command '{0}': expected train, nll, bench or help")]
    UnknownCommand(String),
}

/// Parses `args` (without the program name).
pub fn parse(args: &[String]) -> Result<Command, CliError> {
    let Some(cmd) = args.first() else { return Ok(Command::Help) };
    match cmd.as_str() {
        "help" | "--help" | "-h" => Ok(Command::Help),
        "train" => {
            let mut out = None;
            let config = config_and(&args[1..], &["out"], |_, value| {
                out = Some(value.to_string());
                Ok(())
            })?;
            config.check_solver()?;
            config.check_generation()?;
            Ok(Command::Train { config, out })
        }
        "nll" => {
            let (mut held_out, mut grid, mut heatmap) = (2000u32, 64u32, None);
            let config = config_and(&args[1..], &["held-out", "grid", "heatmap"], |key, value| {
                match key {
                    "held-out" => held_out = int_flag("held-out", value, 1, 1_000_000)?,
                    "grid" => grid = int_flag("grid", value, 2, 1024)?,
                    _ => heatmap = Some(value.to_string()),
                }
                Ok(())
            })?;
            config.check_solver()?;
            config.check_generation()?;
            Ok(Command::Nll { config, held_out, grid, heatmap })
        }
        "bench" => parse_bench(&args[1..]),
        other => Err(CliError::UnknownCommand(other.to_string())),
    }
}

fn parse_bench(args: &[String]) -> Result<Command, CliError> {
    use crate::bench::{BenchConfig, BenchOptions};
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
            "kernels" => {
                options.variant = Some(crate::gpu::KernelVariant::parse(&value).ok_or_else(|| invalid("kernels", &value, "software or tiled"))?)
            }
            other => {
                return Err(CliError::Config(ConfigError::Unknown {
                    field: format!("--{other}"),
                    known: "--config, --steps, --particles, --ode-steps, --kernels, --profile".into(),
                }))
            }
        }
    }
    Ok(Command::Bench { configs, options })
}

/// Applies every `--flag value` to a default [`Config`], except the command's own `extra` flags,
/// which go to `on_extra`. Unknown flags list both kinds.
fn config_and(
    args: &[String],
    extra: &[&str],
    mut on_extra: impl FnMut(&str, &str) -> Result<(), CliError>,
) -> Result<Config, CliError> {
    let mut config = Config::default();
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
    }
    Ok(config)
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

/// One JSON object written field by field (keys are trusted literals).
#[derive(Default)]
pub struct JsonLine {
    fields: Vec<String>,
}

impl JsonLine {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn str(mut self, key: &str, value: &str) -> Self {
        self.fields.push(format!("\"{key}\":{}", json_string(value)));
        self
    }
    pub fn num(mut self, key: &str, value: f64) -> Self {
        self.fields.push(format!("\"{key}\":{}", json_number(value)));
        self
    }
    /// A value already formatted as JSON (an integer, `null`, a nested object).
    pub fn raw(mut self, key: &str, value: impl std::fmt::Display) -> Self {
        self.fields.push(format!("\"{key}\":{value}"));
        self
    }
    pub fn finish(self) -> String {
        format!("{{{}}}", self.fields.join(","))
    }
}

/// A JSON string literal.
pub fn json_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A JSON number (non-finite values become null).
pub fn json_number(x: f64) -> String {
    if x.is_finite() { format!("{x}") } else { "null".into() }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn parses_the_contract_flags() {
        let c = parse(&args("train --dataset 8gaussians --steps 10 --batch 32 --width 16 --depth 2 --lr 0.001 --seed 5 --solver rk4 --nfe 4 --samples 100 --out s.csv")).unwrap();
        let Command::Train { config, out } = c else { panic!() };
        assert_eq!(out.as_deref(), Some("s.csv"));
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
        let Command::Bench { configs, .. } = parse(&args("bench")).unwrap() else { panic!() };
        assert_eq!(configs.len(), 3);
    }

    #[test]
    fn json_escapes() {
        assert_eq!(json_string("a\"b\\c\n"), "\"a\\\"b\\\\c\\n\"");
        assert_eq!(json_number(f64::NAN), "null");
    }
}
