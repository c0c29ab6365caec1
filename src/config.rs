//! The one validated run configuration.
//!
//! Every source of settings (CLI flags, the page's URL hash, widget attributes, UI controls) goes
//! through [`Config::set`], which parses one `key = value` pair, checks it against the field's
//! allowed range and leaves every other field untouched. Errors name the field, the rejected value
//! and what is allowed. This module depends on nothing else of the crate.

use std::fmt;
use std::str::FromStr;

/// Nonlinearity between the MLP's hidden layers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Activation {
    Silu,
    Relu,
    Gelu,
    Tanh,
}

/// ODE solver used to integrate `dx/dt = v(x, t)` from t = 0 to 1.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Solver {
    Euler,
    Midpoint,
    Rk4,
    /// Adaptive Dormand–Prince 5(4) with per-particle step-size control (tolerance `tol`);
    /// its `nfe` is the budget of field evaluations per particle (at least 7).
    Dopri5,
}

/// How x0 and x1 are paired within a batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Coupling {
    /// Independent draws (plain CFM).
    Independent,
    /// Minibatch optimal transport (OT-CFM): x0_i is paired with x1 drawn from the batch's
    /// entropic OT plan. Batches up to 1024.
    Ot,
}

/// The distribution at t = 0: a standard normal, or any standard dataset (e.g. 8gaussians → moons).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Source {
    Gaussian,
    Dataset(Dataset),
}

impl Source {
    pub fn name(self) -> &'static str {
        match self {
            Source::Gaussian => "gaussian",
            Source::Dataset(d) => d.name(),
        }
    }
    pub fn choices() -> String {
        format!("gaussian|{}", Dataset::choices())
    }
}

impl FromStr for Source {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        match s.trim().to_ascii_lowercase().as_str() {
            "gaussian" | "normal" => Ok(Source::Gaussian),
            other => other.parse().map(Source::Dataset),
        }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How the learning rate moves over a run's `steps` (counted from the start of training, or from the
/// last change of target or learning rate on the page).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LrSchedule {
    /// `lr` at every step.
    Constant,
    /// Cosine decay (Loshchilov & Hutter, SGDR, without restarts): `lr·(1 + cos(π·k/steps))/2` at
    /// step k, from `lr` to 0 at `steps`, then 0. Averages out the last steps' noise that a constant
    /// rate leaves in the final weights (docs/QUALITY.md).
    Cosine,
}

/// The conditional probability path `x_t = α_t·x1 + β_t·x0` the model is trained on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Path {
    /// `α = t`, `β = 1 - (1 - σmin)·t` (optimal-transport / rectified-flow path).
    Linear,
    /// `α = sin(πt/2)`, `β = cos(πt/2)`.
    Cosine,
    /// Variance preserving: `α = exp(-T(1-t)/2)`, `β = sqrt(1 - α²)`, `T(s) = ∫_0^s β(r) dr`,
    /// `β(r) = 0.1 + 19.9·r` (the diffusion schedule of Song et al.; Lipman et al.'s VP path).
    Vp,
}

/// The standard 2D targets of `shared/spec/datasets.md`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Dataset {
    Checkerboard,
    Moons,
    EightGaussians,
    TwentyFiveGaussians,
    Circles,
    Spirals,
    Swissroll,
    Pinwheel,
}

macro_rules! named_enum {
    ($ty:ident { $($variant:ident => $name:literal),+ $(,)? }) => {
        impl $ty {
            /// Every variant, in the order the UI lists them.
            pub const ALL: &'static [$ty] = &[$($ty::$variant),+];
            /// The name used in URLs, attributes and CLI flags.
            pub fn name(self) -> &'static str {
                match self { $($ty::$variant => $name),+ }
            }
            /// `a|b|c`, for error messages and help text.
            pub fn choices() -> String {
                [$($name),+].join("|")
            }
        }
        impl FromStr for $ty {
            type Err = ();
            fn from_str(s: &str) -> Result<Self, ()> {
                match s.trim().to_ascii_lowercase().as_str() {
                    $($name => Ok($ty::$variant),)+
                    _ => Err(()),
                }
            }
        }
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result { f.write_str(self.name()) }
        }
    };
}

named_enum!(Activation { Silu => "silu", Relu => "relu", Gelu => "gelu", Tanh => "tanh" });
named_enum!(Coupling { Independent => "independent", Ot => "ot" });
named_enum!(LrSchedule { Constant => "constant", Cosine => "cosine" });
named_enum!(Path { Linear => "linear", Cosine => "cosine", Vp => "vp" });
named_enum!(Solver { Euler => "euler", Midpoint => "midpoint", Rk4 => "rk4", Dopri5 => "dopri5" });
named_enum!(Dataset {
    Checkerboard => "checkerboard",
    Moons => "moons",
    EightGaussians => "8gaussians",
    TwentyFiveGaussians => "25gaussians",
    Circles => "circles",
    Spirals => "spirals",
    Swissroll => "swissroll",
    Pinwheel => "pinwheel",
});

impl Activation {
    /// The code the shaders switch on (`ACT_*` in `shaders/common.wgsl`).
    pub fn code(self) -> u32 {
        match self {
            Activation::Silu => 0,
            Activation::Relu => 1,
            Activation::Gelu => 2,
            Activation::Tanh => 3,
        }
    }
}

impl Path {
    /// The code the batch shader switches on (`PATH_*` in `shaders/common.wgsl`).
    pub fn code(self) -> u32 {
        match self {
            Path::Linear => 0,
            Path::Cosine => 1,
            Path::Vp => 2,
        }
    }
}

impl Solver {
    /// Velocity evaluations per step.
    pub fn evals_per_step(self) -> u32 {
        match self {
            Solver::Euler => 1,
            Solver::Midpoint => 2,
            Solver::Rk4 => 4,
            // Its `nfe` already counts evaluations (a budget): one per "step".
            Solver::Dopri5 => 1,
        }
    }
    /// The code the ODE shader switches on.
    pub fn code(self) -> u32 {
        match self {
            Solver::Euler => 0,
            Solver::Midpoint => 1,
            Solver::Rk4 => 2,
            // Not a fixed-step code: the sampler runs shaders/ode_adaptive.wgsl instead.
            Solver::Dopri5 => 3,
        }
    }
}

/// A rejected setting: which field, what was given, what is allowed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("invalid value '{value}' for {field}: expected {allowed}")]
    Invalid { field: String, value: String, allowed: String },
    #[error("unknown setting '{field}': known settings are {known}")]
    Unknown { field: String, known: String },
}

impl ConfigError {
    /// The field the error is about (for highlighting it in a UI).
    pub fn field(&self) -> &str {
        match self {
            ConfigError::Invalid { field, .. } | ConfigError::Unknown { field, .. } => field,
        }
    }
}

/// Upper bounds, stated once so help text, errors and tests agree.
pub mod limits {
    pub const MAX_WIDTH: u32 = 1024;
    pub const MAX_DEPTH: u32 = 8;
    pub const MAX_BATCH: u32 = 65536;
    pub const MAX_STEPS: u64 = 100_000_000;
    pub const MAX_NFE: u32 = 10_000;
    pub const MAX_SAMPLES: u32 = 4_000_000;
    pub const MAX_LR: f32 = 1.0e4;
    pub const MAX_PARTICLES: u32 = 1_000_000;
}

/// Everything a run depends on. Construct with `Config::default()` and change with [`Config::set`].
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    pub dataset: Dataset,
    pub source: Source,
    pub width: u32,
    pub depth: u32,
    pub activation: Activation,
    pub lr: f32,
    pub schedule: LrSchedule,
    pub batch: u32,
    pub steps: u64,
    pub seed: u32,
    pub sigma_min: f32,
    pub path: Path,
    pub coupling: Coupling,
    pub weight_decay: f32,
    pub solver: Solver,
    pub nfe: u32,
    /// Relative and absolute tolerance of the adaptive solver (`dopri5`); unused by the others.
    pub tol: f32,
    pub samples: u32,
    /// Particles in the live view (page and widget).
    pub particles: u32,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            dataset: Dataset::Moons,
            source: Source::Gaussian,
            width: 64,
            depth: 3,
            activation: Activation::Silu,
            lr: 1e-2,
            schedule: LrSchedule::Cosine,
            batch: 256,
            steps: 2000,
            seed: 0,
            sigma_min: 0.0,
            path: Path::Linear,
            coupling: Coupling::Independent,
            weight_decay: 0.0,
            solver: Solver::Euler,
            nfe: 100,
            tol: 1e-3,
            samples: 10_000,
            particles: 4096,
        }
    }
}

fn invalid(field: &str, value: &str, allowed: impl Into<String>) -> ConfigError {
    ConfigError::Invalid { field: field.to_string(), value: value.to_string(), allowed: allowed.into() }
}

fn parse_int<T>(field: &str, value: &str, lo: T, hi: T) -> Result<T, ConfigError>
where
    T: FromStr + PartialOrd + Copy + fmt::Display,
{
    let allowed = || format!("an integer from {lo} to {hi}");
    let v: T = value.trim().parse().map_err(|_| invalid(field, value, allowed()))?;
    if v < lo || v > hi {
        return Err(invalid(field, value, allowed()));
    }
    Ok(v)
}

/// A finite float in `[lo, hi]` (or `(lo, hi]` when `lo_open`).
fn parse_float(field: &str, value: &str, lo: f32, lo_open: bool, hi: f32) -> Result<f32, ConfigError> {
    let bracket = if lo_open { "(" } else { "[" };
    let allowed = || format!("a number in {bracket}{lo}, {hi}]");
    let v: f32 = value.trim().parse().map_err(|_| invalid(field, value, allowed()))?;
    let below = if lo_open { v <= lo } else { v < lo };
    if !v.is_finite() || below || v > hi {
        return Err(invalid(field, value, allowed()));
    }
    Ok(v)
}

/// The adaptive solver's tolerance: a finite number in [1e-6, 0.1] (its computation is f32).
fn parse_tol(value: &str) -> Result<f32, ConfigError> {
    let allowed = || "a number in [0.000001, 0.1] (the adaptive solver's tolerance)".to_string();
    let v: f32 = value.trim().parse().map_err(|_| invalid("tol", value, allowed()))?;
    if !(v.is_finite() && (1e-6..=0.1).contains(&v)) {
        return Err(invalid("tol", value, allowed()));
    }
    Ok(v)
}

impl Config {
    /// The learning-rate schedule's length: `steps`, saturated to the trainers' u32 step counter.
    pub fn schedule_steps(&self) -> u32 {
        self.steps.min(u32::MAX as u64) as u32
    }

    /// Checks settings that depend on each other; the message names the fields and the rule.
    /// (`set` checks each field alone, so e.g. `solver=dopri5` and `nfe=5` are both valid.)
    pub fn check_solver(&self) -> Result<(), ConfigError> {
        if self.solver == Solver::Dopri5 && self.nfe < 7 {
            return Err(invalid(
                "nfe",
                &self.nfe.to_string(),
                "at least 7 with solver dopri5 (nfe is then its budget of field evaluations per particle: one step costs 6, plus 1 to start)",
            ));
        }
        Ok(())
    }
}

fn parse_enum<T: FromStr>(field: &str, value: &str, choices: String) -> Result<T, ConfigError> {
    value.parse().map_err(|_| invalid(field, value, format!("one of {choices}")))
}

impl Config {
    /// The names [`Config::set`] accepts, in the order [`Config::to_pairs`] writes them.
    pub const FIELDS: &'static [&'static str] = &[
        "dataset", "source", "width", "depth", "activation", "lr", "batch", "steps", "seed", "sigma_min", "path", "coupling",
        "weight_decay", "solver", "nfe", "samples", "particles", "tol", "schedule",
    ];

    /// Sets one field from text. `key` may use `-` or `_` (`sigma-min` = `sigma_min`).
    /// On error nothing changes.
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), ConfigError> {
        let key = key.trim().to_ascii_lowercase().replace('-', "_");
        match key.as_str() {
            "dataset" => self.dataset = parse_enum("dataset", value, Dataset::choices())?,
            "source" => self.source = parse_enum("source", value, Source::choices())?,
            "width" => self.width = parse_int("width", value, 1, limits::MAX_WIDTH)?,
            "depth" => self.depth = parse_int("depth", value, 1, limits::MAX_DEPTH)?,
            "activation" => self.activation = parse_enum("activation", value, Activation::choices())?,
            "lr" => self.lr = parse_float("lr", value, 0.0, true, limits::MAX_LR)?,
            "batch" => self.batch = parse_int("batch", value, 1, limits::MAX_BATCH)?,
            "steps" => self.steps = parse_int("steps", value, 0, limits::MAX_STEPS)?,
            "seed" => self.seed = parse_int("seed", value, 0, u32::MAX)?,
            "sigma_min" => self.sigma_min = parse_float("sigma_min", value, 0.0, false, 0.999)?,
            "path" => self.path = parse_enum("path", value, Path::choices())?,
            "coupling" => self.coupling = parse_enum("coupling", value, Coupling::choices())?,
            "weight_decay" => self.weight_decay = parse_float("weight_decay", value, 0.0, false, 1.0)?,
            "solver" => self.solver = parse_enum("solver", value, Solver::choices())?,
            "nfe" => self.nfe = parse_int("nfe", value, 1, limits::MAX_NFE)?,
            "samples" => self.samples = parse_int("samples", value, 1, limits::MAX_SAMPLES)?,
            "particles" => self.particles = parse_int("particles", value, 1, limits::MAX_PARTICLES)?,
            "tol" => self.tol = parse_tol(value)?,
            "schedule" => self.schedule = parse_enum("schedule", value, LrSchedule::choices())?,
            _ => {
                return Err(ConfigError::Unknown { field: key, known: Self::FIELDS.join(", ") });
            }
        }
        Ok(())
    }

    /// Every field as `(name, value)` text that [`Config::set`] reads back to the same config.
    pub fn to_pairs(&self) -> Vec<(&'static str, String)> {
        vec![
            ("dataset", self.dataset.name().to_string()),
            ("source", self.source.name().to_string()),
            ("width", self.width.to_string()),
            ("depth", self.depth.to_string()),
            ("activation", self.activation.name().to_string()),
            ("lr", self.lr.to_string()),
            ("batch", self.batch.to_string()),
            ("steps", self.steps.to_string()),
            ("seed", self.seed.to_string()),
            ("sigma_min", self.sigma_min.to_string()),
            ("path", self.path.name().to_string()),
            ("coupling", self.coupling.name().to_string()),
            ("weight_decay", self.weight_decay.to_string()),
            ("solver", self.solver.name().to_string()),
            ("nfe", self.nfe.to_string()),
            ("samples", self.samples.to_string()),
            ("particles", self.particles.to_string()),
            ("tol", self.tol.to_string()),
            ("schedule", self.schedule.name().to_string()),
        ]
    }

    /// Reads `key=value&key=value` (a URL hash without its `#`). Valid fields are applied; each
    /// invalid one is reported and leaves that field at its previous value.
    pub fn apply_query(&mut self, query: &str) -> Vec<ConfigError> {
        let query = query.trim_start_matches('#');
        let mut errors = Vec::new();
        for part in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = part.split_once('=').unwrap_or((part, ""));
            if let Err(e) = self.set(k, &percent_decode(v)) {
                errors.push(e);
            }
        }
        errors
    }

    /// The inverse of [`Config::apply_query`].
    pub fn to_query(&self) -> String {
        self.to_pairs().iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("&")
    }
}

/// Decodes `%XX` escapes and `+`; invalid escapes are kept literally.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 3;
                        continue;
                    }
                    None => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_round_trip() {
        let mut c = Config::default();
        for (k, v) in [
            ("dataset", "checkerboard"), ("source", "8gaussians"), ("width", "17"), ("depth", "5"), ("activation", "gelu"),
            ("lr", "0.003"), ("batch", "999"), ("steps", "12345"), ("seed", "4294967295"),
            ("sigma-min", "0.01"), ("path", "vp"), ("coupling", "ot"), ("weight_decay", "0.1"), ("solver", "rk4"), ("nfe", "7"),
            ("samples", "31"), ("particles", "12345"), ("schedule", "constant"),
        ] {
            c.set(k, v).unwrap();
        }
        let mut d = Config::default();
        assert!(d.apply_query(&c.to_query()).is_empty());
        assert_eq!(c, d);
    }

    #[test]
    fn errors_name_field_value_and_range() {
        let mut c = Config::default();
        let e = c.set("width", "abc").unwrap_err();
        assert_eq!(e.to_string(), "invalid value 'abc' for width: expected an integer from 1 to 1024");
        let e = c.set("dataset", "mons").unwrap_err();
        assert!(e.to_string().contains("moons|8gaussians"), "{e}");
        let e = c.set("lr", "NaN").unwrap_err();
        assert_eq!(e.field(), "lr");
        assert!(c.set("lr", "0").is_err());
        assert!(c.set("lr", "inf").is_err());
        assert!(c.set("batch", "0").is_err());
        assert!(c.set("batch", "-3").is_err());
        assert!(matches!(c.set("colour", "red"), Err(ConfigError::Unknown { .. })));
        assert_eq!(c, Config::default(), "failed sets must not change anything");
    }

    #[test]
    fn query_keeps_valid_fields_and_reports_invalid_ones() {
        let mut c = Config::default();
        let errs = c.apply_query("#width=32&depth=x&dataset=8gaussians&lr=1e-3");
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].field(), "depth");
        assert_eq!((c.width, c.depth, c.dataset, c.lr), (32, 3, Dataset::EightGaussians, 1e-3));
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("a%20b+c"), "a b c");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz"), "%zz");
    }

    #[test]
    fn dopri5_and_tolerance() {
        let mut c = Config::default();
        c.set("solver", "dopri5").unwrap();
        c.set("tol", "1e-5").unwrap();
        let mut d = Config::default();
        assert!(d.apply_query(&c.to_query()).is_empty());
        assert_eq!((d.solver, d.tol), (Solver::Dopri5, 1e-5));
        for bad in ["0", "1e-7", "0.5", "nan", "inf", "x"] {
            let e = c.set("tol", bad).unwrap_err().to_string();
            assert!(e.contains("tol") && e.contains(bad) && e.contains("[0.000001, 0.1]"), "{e}");
        }
        assert!(c.check_solver().is_ok());
        c.set("nfe", "6").unwrap();
        let e = c.check_solver().unwrap_err().to_string();
        assert!(e.contains("nfe") && e.contains("'6'") && e.contains("at least 7 with solver dopri5"), "{e}");
        c.set("solver", "rk4").unwrap();
        assert!(c.check_solver().is_ok());
    }
}
