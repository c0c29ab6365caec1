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
/// last change of target, learning rate, schedule or steps on the page).
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

/// How training times `t` are drawn (per sample, in the batch kernels).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TimeSampling {
    /// `t ~ U(0, 1)`.
    Uniform,
    /// `t = sigmoid(m + s·z)`, `z ~ N(0, 1)` (Esser et al. 2024, Stable Diffusion 3, arXiv 2403.03206).
    LogitNormal,
    /// `p(t) ∝ cosh(a·(t - 1/2))`: more weight near both ends (Lee, Lin and Fanti 2024,
    /// "Improving the Training of Rectified Flows", arXiv 2405.20320).
    UShaped,
}

/// On or off (a setting that is a switch, written `on`/`off` in URLs, attributes and flags).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OnOff {
    Off,
    On,
}

/// How samples are drawn from the learned velocity field.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Sampler {
    /// The probability-flow ODE `dx/dt = v(x, t)`, integrated with `solver`.
    Ode,
    /// The SDE `dx = [v + ½g(t)²·s(x, t)] dt + g(t) dW` with the score `s` derived from `v`
    /// (same marginals as the ODE for any `g`); Euler–Maruyama, Gaussian source only.
    Sde,
}

/// What the network learns.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Objective {
    /// Conditional flow matching: the instantaneous velocity `v(x, t)`.
    Fm,
    /// MeanFlow (Geng et al. 2025): the average velocity `u(z, r, t)` over `[t, r]`, which
    /// samples in one or a few jumps.
    MeanFlow,
}

/// Which class conditional samples follow: all of them (the unconditional model, through the
/// "no class" token) or one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SampleClass {
    All,
    One(u32),
}

impl SampleClass {
    /// The class index, `None` for all.
    pub fn index(self) -> Option<u32> {
        match self {
            SampleClass::All => None,
            SampleClass::One(c) => Some(c),
        }
    }
}

impl FromStr for SampleClass {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        match s.trim().to_ascii_lowercase().as_str() {
            "all" => Ok(SampleClass::All),
            n => n.parse::<u32>().ok().filter(|&c| c < limits::MAX_CLASSES).map(SampleClass::One).ok_or(()),
        }
    }
}

impl fmt::Display for SampleClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SampleClass::All => f.write_str("all"),
            SampleClass::One(c) => write!(f, "{c}"),
        }
    }
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
            /// Every variant, in the order the UI lists them. A variant's position here is its
            /// code in the shaders (see [`Self::code`]): append new variants at the end.
            pub const ALL: &'static [$ty] = &[$($ty::$variant),+];
            /// The names used in URLs, attributes and CLI flags, in the order of [`Self::ALL`].
            pub const NAMES: &'static [&'static str] = &[$($name),+];
            /// The name used in URLs, attributes and CLI flags.
            pub fn name(self) -> &'static str {
                match self { $($ty::$variant => $name),+ }
            }
            /// `a|b|c`, for error messages and help text.
            pub fn choices() -> String {
                Self::NAMES.join("|")
            }
            /// The code the shaders switch on: the variant's position in [`Self::ALL`]. The WGSL
            /// constants (`src/gpu/prelude.rs`) are generated from the same list.
            pub fn code(self) -> u32 {
                Self::ALL.iter().position(|&v| v == self).expect("every variant is in ALL") as u32
            }
            /// `(CONST_NAME, code)` for every variant: the WGSL prelude's constants.
            pub fn wgsl_consts(prefix: &str) -> Vec<(String, u32)> {
                Self::ALL.iter().map(|v| (format!("{prefix}_{}", v.const_suffix()), v.code())).collect()
            }
            fn const_suffix(self) -> String {
                format!("{:?}", self).to_ascii_uppercase()
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
named_enum!(TimeSampling { Uniform => "uniform", LogitNormal => "logit-normal", UShaped => "u-shaped" });
named_enum!(Solver { Euler => "euler", Midpoint => "midpoint", Rk4 => "rk4", Dopri5 => "dopri5" });
named_enum!(OnOff { Off => "off", On => "on" });
named_enum!(Sampler { Ode => "ode", Sde => "sde" });
named_enum!(Objective { Fm => "fm", MeanFlow => "meanflow" });
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

impl Dataset {
    /// Number of class labels (`shared/spec/datasets.md`, "Class labels"): the mixture component
    /// each sample is drawn from.
    pub fn num_classes(self) -> u32 {
        match self {
            Dataset::Checkerboard => 8,
            Dataset::Moons => 2,
            Dataset::EightGaussians => 8,
            Dataset::TwentyFiveGaussians => 25,
            Dataset::Circles => 2,
            Dataset::Spirals => 2,
            Dataset::Swissroll => 3,
            Dataset::Pinwheel => 5,
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

    /// Adaptive step-size control (its `nfe` is a budget; its tableau carries error weights).
    pub fn is_adaptive(self) -> bool {
        matches!(self, Solver::Dopri5)
    }
}

/// A rejected setting: which field, what was given, what is allowed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("invalid value '{value}' for {field}: expected {allowed}")]
    Invalid { field: String, value: String, allowed: String },
    #[error("unknown setting '{field}': known settings are {known}")]
    Unknown { field: String, known: String },
    /// A real setting, but not one of this place's (e.g. `samples`, which only the command-line
    /// tool uses, in the page's link).
    #[error("'{field}' is only used by the command-line tool; the page and the widget ignore it")]
    OtherScope { field: String },
}

impl ConfigError {
    /// The field the error is about (for highlighting it in a UI).
    pub fn field(&self) -> &str {
        match self {
            ConfigError::Invalid { field, .. } | ConfigError::Unknown { field, .. } | ConfigError::OtherScope { field } => field,
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
    /// Points of a standard dataset's training set (`points`).
    pub const MAX_POINTS: u32 = 1 << 20;
    pub const MAX_REFLOW_ROUNDS: u32 = 10;
    pub const MAX_REFLOW_PAIRS: u32 = 1 << 20;
    /// Most class labels of any dataset (25gaussians).
    pub const MAX_CLASSES: u32 = 25;
    /// Largest classifier-free guidance weight.
    pub const MAX_GUIDANCE: f32 = 8.0;
    /// Largest SDE noise scale G (`g(t) = G·sqrt(β_t)`).
    pub const MAX_NOISE: f32 = 4.0;
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
    /// How training times are drawn, and the parameters of the logit-normal (`t_mean`, `t_std`)
    /// and U-shaped (`t_u`) densities.
    pub t_sampling: TimeSampling,
    pub t_mean: f32,
    pub t_std: f32,
    pub t_u: f32,
    /// Points drawn from a standard dataset as the training set (the exact marginal field and
    /// memorisation depend on it; custom targets bring their own points).
    pub points: u32,
    /// Reflow rounds after the first training (command-line tool).
    pub reflow: u32,
    /// Noise points integrated into (x0, x1) pairs for each reflow round.
    pub reflow_pairs: u32,
    /// Training steps of each reflow round.
    pub reflow_steps: u32,
    /// What the network learns: the velocity (flow matching) or MeanFlow's average velocity.
    pub objective: Objective,
    /// Class-conditional training with the dataset's labels (and classifier-free guidance).
    pub conditional: OnOff,
    /// Probability that a training sample's label is replaced by the "no class" token.
    pub label_dropout: f32,
    /// The class samples follow (conditional models).
    pub class: SampleClass,
    /// Classifier-free guidance weight w: `v = v(∅) + w·(v(c) - v(∅))`; 1 = plain conditional.
    pub guidance: f32,
    /// ODE or SDE sampling.
    pub sampler: Sampler,
    /// The SDE's noise scale G: `g(t) = G·sqrt(β_t)`.
    pub noise: f32,
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
            t_sampling: TimeSampling::Uniform,
            t_mean: 0.0,
            t_std: 1.0,
            t_u: 4.0,
            points: 1 << 17,
            reflow: 0,
            reflow_pairs: 10_000,
            reflow_steps: 1000,
            objective: Objective::Fm,
            conditional: OnOff::Off,
            label_dropout: 0.1,
            class: SampleClass::All,
            guidance: 1.0,
            sampler: Sampler::Ode,
            noise: 1.0,
        }
    }
}

fn invalid(field: &str, value: &str, allowed: impl Into<String>) -> ConfigError {
    ConfigError::Invalid { field: field.to_string(), value: value.to_string(), allowed: allowed.into() }
}

/// What a value of a field may be. Ranges are inclusive unless `min_open`.
#[derive(Clone, Copy, Debug)]
pub enum FieldKind {
    Int { min: u64, max: u64 },
    Float { min: f32, min_open: bool, max: f32, log_scale: bool },
    /// One of a fixed list of names (the list is a function: `source` lists `gaussian` + datasets).
    Choice(fn() -> Vec<&'static str>),
}

/// What changing a field does to a live run (page and widget).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Effect {
    /// Defines the model or its training data: the run starts over (or the weights are kept and
    /// training continues on the new data, where the page says so).
    Retrain,
    /// Keeps the model; the shown samples are integrated again.
    Resample,
    /// Keeps the model and the samples; applied from the next step on.
    Live,
}

/// Where a field is used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Everywhere: CLI, page link, widget attributes.
    All,
    /// Only the command-line tool (not part of the page's link or the widget's attributes).
    Cli,
}

/// One setting: its name, how it reads and writes a [`Config`], its range and what it means.
/// [`FIELDS`] is the one list: `set`, `to_pairs`, the CLI's help, the page's controls and the
/// widget's attributes are all derived from it.
pub struct FieldSpec {
    /// The key in URLs, attributes (`-` for `_`) and CLI flags.
    pub name: &'static str,
    /// A short label for a form control.
    pub label: &'static str,
    /// One sentence a reader understands.
    pub help: &'static str,
    pub kind: FieldKind,
    pub effect: Effect,
    pub scope: Scope,
    /// Shown under "advanced" in the page's settings.
    pub advanced: bool,
    get: fn(&Config) -> String,
    put: fn(&mut Config, &str) -> Result<(), ConfigError>,
}

impl FieldSpec {
    /// The field's current value in `c`, as text [`Config::set`] reads back.
    pub fn get(&self, c: &Config) -> String {
        (self.get)(c)
    }
    /// The value of this field in `Config::default()`.
    pub fn default_value(&self) -> String {
        (self.get)(&Config::default())
    }
    /// What the field accepts, in words (the same text its errors use).
    pub fn allowed(&self) -> String {
        match self.kind {
            FieldKind::Int { min, max } => format!("an integer from {min} to {max}"),
            FieldKind::Float { min, min_open, max, .. } => {
                format!("a number in {}{min}, {max}]", if min_open { "(" } else { "[" })
            }
            FieldKind::Choice(names) => format!("one of {}", names().join("|")),
        }
    }
    /// Parses and range-checks `value` without storing it.
    fn check<T: FromStr>(&self, value: &str) -> Result<T, ConfigError> {
        let err = || invalid(self.name, value, self.allowed());
        let v = value.trim();
        let ok = match self.kind {
            FieldKind::Int { min, max } => v.parse::<u64>().is_ok_and(|n| (min..=max).contains(&n)),
            FieldKind::Float { min, min_open, max, .. } => v.parse::<f32>().is_ok_and(|x| {
                x.is_finite() && x <= max && if min_open { x > min } else { x >= min }
            }),
            FieldKind::Choice(_) => true,
        };
        if !ok {
            return Err(err());
        }
        v.parse().map_err(|_| err())
    }
}

impl fmt::Debug for FieldSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FieldSpec").field("name", &self.name).field("kind", &self.kind).finish()
    }
}

fn dataset_names() -> Vec<&'static str> {
    Dataset::NAMES.to_vec()
}
fn source_names() -> Vec<&'static str> {
    std::iter::once("gaussian").chain(Dataset::NAMES.iter().copied()).collect()
}
fn activation_names() -> Vec<&'static str> {
    Activation::NAMES.to_vec()
}
fn path_names() -> Vec<&'static str> {
    Path::NAMES.to_vec()
}
fn coupling_names() -> Vec<&'static str> {
    Coupling::NAMES.to_vec()
}
fn schedule_names() -> Vec<&'static str> {
    LrSchedule::NAMES.to_vec()
}
fn solver_names() -> Vec<&'static str> {
    Solver::NAMES.to_vec()
}
fn t_sampling_names() -> Vec<&'static str> {
    TimeSampling::NAMES.to_vec()
}
fn on_off_names() -> Vec<&'static str> {
    OnOff::NAMES.to_vec()
}
fn sampler_names() -> Vec<&'static str> {
    Sampler::NAMES.to_vec()
}
fn objective_names() -> Vec<&'static str> {
    Objective::NAMES.to_vec()
}
/// `all`, then every class index any dataset has (`check_generation` checks it against the
/// dataset's own count).
fn class_names() -> Vec<&'static str> {
    const NAMES: [&str; limits::MAX_CLASSES as usize + 1] = [
        "all", "0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12", "13", "14", "15", "16", "17", "18", "19", "20",
        "21", "22", "23", "24",
    ];
    NAMES.to_vec()
}

/// One [`FieldSpec`] whose value lives in `Config::$field` and is parsed as that field's type.
macro_rules! field {
    ($name:literal, $field:ident, $label:literal, $kind:expr, $effect:ident, $scope:ident, $advanced:literal, $help:literal) => {
        FieldSpec {
            name: $name,
            label: $label,
            help: $help,
            kind: $kind,
            effect: Effect::$effect,
            scope: Scope::$scope,
            advanced: $advanced,
            get: |c| c.$field.to_string(),
            put: |c, v| {
                c.$field = FIELD_BY_NAME($name).check(v)?;
                Ok(())
            },
        }
    };
}

const fn int(min: u64, max: u64) -> FieldKind {
    FieldKind::Int { min, max }
}
const fn float(min: f32, min_open: bool, max: f32, log_scale: bool) -> FieldKind {
    FieldKind::Float { min, min_open, max, log_scale }
}

/// Every setting, in the order the page shows them and [`Config::to_pairs`] writes them.
/// To add one: a `Config` member, its default in `Config::default`, and one line here.
pub static FIELDS: &[FieldSpec] = &[
    field!("dataset", dataset, "Target dataset", FieldKind::Choice(dataset_names), Retrain, All, false,
        "The distribution the flow learns to produce at t = 1."),
    field!("source", source, "Source at t = 0", FieldKind::Choice(source_names), Retrain, All, true,
        "Where the particles start: a standard normal, or another dataset."),
    field!("width", width, "Width (units per layer)", int(1, limits::MAX_WIDTH as u64), Retrain, All, false,
        "Units in each hidden layer of the velocity network."),
    field!("depth", depth, "Depth (hidden layers)", int(1, limits::MAX_DEPTH as u64), Retrain, All, false,
        "Number of hidden layers of the velocity network."),
    field!("activation", activation, "Activation", FieldKind::Choice(activation_names), Retrain, All, false,
        "The nonlinearity between hidden layers."),
    field!("lr", lr, "Learning rate", float(0.0, true, limits::MAX_LR, true), Live, All, false,
        "Adam's step size."),
    field!("schedule", schedule, "Learning-rate schedule", FieldKind::Choice(schedule_names), Live, All, false,
        "How the learning rate moves over the steps: cosine decays it to 0 at the last step (a new target or rate restarts it), constant keeps it."),
    field!("batch", batch, "Batch size", int(1, limits::MAX_BATCH as u64), Retrain, All, false,
        "(noise, target, time) samples per training step."),
    field!("steps", steps, "Training steps", int(0, limits::MAX_STEPS), Live, All, true,
        "How many steps a run trains, and the length of the learning-rate schedule; in the page a run starts again with a new target, rate or schedule and with Train more (0: no limit in the page, and a constant rate)."),
    field!("seed", seed, "Seed", int(0, u32::MAX as u64), Retrain, All, false,
        "Seeds the initial weights, the batches and the particles: the same seed gives the same run."),
    field!("sigma_min", sigma_min, "σ min (path width at t = 1)", float(0.0, false, 0.999, false), Retrain, All, false,
        "Width of the conditional path at t = 1 (linear path only)."),
    field!("path", path, "Probability path", FieldKind::Choice(path_names), Retrain, All, true,
        "How a noise point moves to its target: linear (rectified flow), cosine or variance preserving."),
    field!("coupling", coupling, "Coupling", FieldKind::Choice(coupling_names), Retrain, All, true,
        "How noise and target points are paired in a batch: independently, or by minibatch optimal transport."),
    field!("weight_decay", weight_decay, "Weight decay", float(0.0, false, 1.0, false), Retrain, All, true,
        "Decoupled weight decay (AdamW)."),
    field!("solver", solver, "ODE solver", FieldKind::Choice(solver_names), Resample, All, false,
        "How samples are integrated from t = 0 to 1."),
    field!("nfe", nfe, "Solver steps", int(1, limits::MAX_NFE as u64), Resample, All, false,
        "Steps of the fixed-step solvers; for dopri5, its budget of field evaluations per particle."),
    field!("samples", samples, "Samples", int(1, limits::MAX_SAMPLES as u64), Live, Cli, true,
        "Samples the command-line tool writes."),
    field!("particles", particles, "Particles", int(1, limits::MAX_PARTICLES as u64), Resample, All, false,
        "Particles drawn in the live view."),
    field!("tol", tol, "Tolerance (dopri5)", float(1e-6, false, 0.1, true), Resample, All, true,
        "Relative and absolute error tolerance of the adaptive solver."),
    // Time sampling, MeanFlow, classes and guidance, the SDE sampler: on the page with the WebGPU
    // backend (the CPU backend refuses them with a message: `engine::cpu::cpu_can_run`).
    field!("t_sampling", t_sampling, "Time sampling", FieldKind::Choice(t_sampling_names), Live, All, true,
        "How training times t are drawn: uniformly, logit-normal (Stable Diffusion 3) or U-shaped (more weight near t = 0 and 1)."),
    field!("t_mean", t_mean, "Logit-normal m", float(-4.0, false, 4.0, false), Live, All, true,
        "Location m of the logit-normal time density t = sigmoid(m + s·z): m > 0 favours times near the data."),
    field!("t_std", t_std, "Logit-normal s", float(0.0, true, 4.0, false), Live, All, true,
        "Scale s of the logit-normal time density: small s concentrates t around sigmoid(m)."),
    field!("t_u", t_u, "U-shape a", float(0.0, true, 20.0, false), Live, All, true,
        "Sharpness a of the U-shaped time density p(t) ∝ cosh(a·(t - 1/2))."),
    // The page makes reflow rounds with its Reflow button (reflow_pairs and reflow_steps), so
    // `reflow` is not in its link (scope Cli). The page's datasets have at most
    // `engine::flow::DATA_POINTS` points.
    field!("points", points, "Target points", int(1, limits::MAX_POINTS as u64), Retrain, All, true,
        "How many points of the dataset are the training set (the page uses at most 131072; 32768 on software adapters and the CPU backend): with few, the exact field memorises them and the network may too."),
    field!("reflow", reflow, "Reflow rounds", int(0, limits::MAX_REFLOW_ROUNDS as u64), Live, Cli, true,
        "Reflow rounds after the first training: each retrains on the flow's own (noise, sample) pairs."),
    field!("reflow_pairs", reflow_pairs, "Reflow pairs", int(1, limits::MAX_REFLOW_PAIRS as u64), Live, All, true,
        "Noise points integrated into (noise, sample) pairs for each reflow round."),
    field!("reflow_steps", reflow_steps, "Reflow steps", int(1, limits::MAX_STEPS), Live, All, true,
        "Training steps of each reflow round."),
    field!("objective", objective, "Model", FieldKind::Choice(objective_names), Retrain, All, false,
        "fm learns the velocity (many small solver steps); meanflow learns the average velocity over an interval (one or a few jumps)."),
    field!("conditional", conditional, "Class-conditional", FieldKind::Choice(on_off_names), Retrain, All, false,
        "Also feed the network the dataset's class label, so samples can follow one class (with classifier-free guidance)."),
    field!("label_dropout", label_dropout, "Label dropout", float(0.0, false, 1.0, false), Retrain, All, true,
        "Probability that a training label is replaced by \"no class\", so the same network is also unconditional."),
    field!("class", class, "Class", FieldKind::Choice(class_names), Resample, All, false,
        "The class samples follow (conditional models): a component index of the dataset, or all."),
    field!("guidance", guidance, "Guidance w", float(0.0, false, limits::MAX_GUIDANCE, false), Resample, All, false,
        "Classifier-free guidance: v = v(no class) + w·(v(class) - v(no class)); 1 is the plain conditional model."),
    field!("sampler", sampler, "Sampler", FieldKind::Choice(sampler_names), Resample, All, true,
        "ode follows the flow; sde adds noise and the matching score drift (same distribution, jittering paths)."),
    field!("noise", noise, "SDE noise G", float(0.0, false, limits::MAX_NOISE, false), Resample, All, true,
        "Noise scale of the sde sampler: g(t) = G·sqrt(β_t), G at t = 0 and none at the data end; 0 is the ODE."),
];

/// The spec of the field called `name` (canonical name). Panics on an unknown name: only used with
/// the literals of [`FIELDS`] itself.
#[allow(non_snake_case)]
fn FIELD_BY_NAME(name: &str) -> &'static FieldSpec {
    FIELDS.iter().find(|f| f.name == name).expect("a field of FIELDS")
}

/// The spec of a field by any spelling `set` accepts (`sigma-min`, `SIGMA_MIN`).
pub fn field(key: &str) -> Option<&'static FieldSpec> {
    let key = key.trim().to_ascii_lowercase().replace('-', "_");
    FIELDS.iter().find(|f| f.name == key)
}

impl Config {
    /// Sets one field from text. `key` may use `-` or `_` (`sigma-min` = `sigma_min`).
    /// On error nothing changes.
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), ConfigError> {
        match field(key) {
            Some(f) => (f.put)(self, value),
            None => Err(ConfigError::Unknown {
                field: key.trim().to_ascii_lowercase().replace('-', "_"),
                known: FIELDS.iter().map(|f| f.name).collect::<Vec<_>>().join(", "),
            }),
        }
    }

    /// Every field as `(name, value)` text that [`Config::set`] reads back to the same config.
    pub fn to_pairs(&self) -> Vec<(&'static str, String)> {
        FIELDS.iter().map(|f| (f.name, f.get(self))).collect()
    }

    /// The fields whose values differ between `self` and `other`.
    pub fn changed_fields(&self, other: &Config) -> Vec<&'static FieldSpec> {
        FIELDS.iter().filter(|f| f.get(self) != f.get(other)).collect()
    }

    /// The strongest [`Effect`] of going from `self` to `other` (`None` when nothing changed).
    pub fn change_effect(&self, other: &Config) -> Option<Effect> {
        let changed = self.changed_fields(other);
        [Effect::Retrain, Effect::Resample, Effect::Live].into_iter().find(|e| changed.iter().any(|f| f.effect == *e))
    }

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

    /// Checks the settings of conditional generation, stochastic sampling and MeanFlow that depend
    /// on each other (and on the dataset); the message names the field, the value and the rule.
    /// Call it wherever [`Config::check_solver`] is called.
    pub fn check_generation(&self) -> Result<(), ConfigError> {
        let conditional = self.conditional == OnOff::On;
        let classes = self.dataset.num_classes();
        if let SampleClass::One(c) = self.class {
            if !conditional {
                return Err(invalid("class", &self.class.to_string(), "all unless conditional is on (only a class-conditional model can follow one class)"));
            }
            if c >= classes {
                return Err(invalid(
                    "class",
                    &self.class.to_string(),
                    format!("all or a class from 0 to {} ({} has {classes} classes)", classes - 1, self.dataset),
                ));
            }
            if self.label_dropout >= 1.0 {
                return Err(invalid("label_dropout", &self.label_dropout.to_string(), "below 1 when sampling a class (at 1 the model never sees a label)"));
            }
        }
        if self.guidance != 1.0 {
            let value = self.guidance.to_string();
            if !conditional {
                return Err(invalid("guidance", &value, "1 unless conditional is on (guidance mixes the class and no-class fields of a conditional model)"));
            }
            if self.class == SampleClass::All {
                return Err(invalid("guidance", &value, "1 with class all (guidance needs a class to steer towards)"));
            }
            if self.label_dropout <= 0.0 {
                return Err(invalid("guidance", &value, "1 with label_dropout 0 (guidance needs the no-class field, learnt only when labels are dropped)"));
            }
        }
        if self.coupling == Coupling::Ot && (conditional || self.objective == Objective::MeanFlow) {
            return Err(invalid("coupling", self.coupling.name(), "independent with conditional on or objective meanflow (OT pairing ignores labels and MeanFlow's second time)"));
        }
        if self.sampler == Sampler::Sde {
            if self.source != Source::Gaussian {
                return Err(invalid("sampler", "sde", format!("ode with source {} (the SDE's score is derived for a Gaussian source only)", self.source)));
            }
            if self.objective != Objective::Fm {
                return Err(invalid("sampler", "sde", "ode with objective meanflow (MeanFlow samples by jumps of its average velocity)"));
            }
            if self.solver != Solver::Euler {
                return Err(invalid("solver", self.solver.name(), "euler with sampler sde (the SDE is integrated by Euler–Maruyama)"));
            }
        }
        if self.objective == Objective::MeanFlow && self.solver != Solver::Euler {
            return Err(invalid(
                "solver",
                self.solver.name(),
                "euler with objective meanflow (it samples by jumps z + h·u(z, t, t + h); nfe is the number of jumps)",
            ));
        }
        if self.reflow > 0 && (conditional || self.objective == Objective::MeanFlow) {
            return Err(invalid(
                "reflow",
                &self.reflow.to_string(),
                "0 with conditional on or objective meanflow (reflow pairs carry no labels, and rectify an ODE flow)",
            ));
        }
        Ok(())
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

    /// The page's link (and the widget's `config`): the fields of scope [`Scope::All`] only.
    pub fn to_page_query(&self) -> String {
        FIELDS.iter().filter(|f| f.scope == Scope::All).map(|f| format!("{}={}", f.name, f.get(self))).collect::<Vec<_>>().join("&")
    }

    /// [`Config::apply_query`] for the page: a field of another scope (`samples`) is reported
    /// ([`ConfigError::OtherScope`]) and ignored.
    pub fn apply_page_query(&mut self, query: &str) -> Vec<ConfigError> {
        let mut errors = Vec::new();
        let mut kept = Vec::new();
        for part in query.trim_start_matches('#').split('&').filter(|p| !p.is_empty()) {
            let key = part.split_once('=').map_or(part, |(k, _)| k);
            match field(key) {
                Some(f) if f.scope != Scope::All => errors.push(ConfigError::OtherScope { field: f.name.to_string() }),
                _ => kept.push(part),
            }
        }
        errors.extend(self.apply_query(&kept.join("&")));
        errors
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
            ("samples", "31"), ("particles", "12345"), ("schedule", "constant"), ("t-sampling", "u-shaped"), ("t_mean", "-0.5"), ("t_std", "0.7"),
            ("t_u", "6"), ("points", "1000"), ("reflow", "3"), ("reflow_pairs", "777"), ("reflow_steps", "55"),
            ("objective", "meanflow"), ("conditional", "on"), ("label-dropout", "0.25"),
            ("class", "7"), ("guidance", "4.5"), ("sampler", "sde"), ("noise", "0.5"),
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

    #[test]
    fn generation_settings_are_checked_together() {
        let check = |pairs: &[(&str, &str)]| {
            let mut c = Config::default();
            for (k, v) in pairs {
                c.set(k, v).unwrap();
            }
            c.check_generation().map_err(|e| e.to_string())
        };
        assert!(check(&[]).is_ok());
        assert!(check(&[("dataset", "8gaussians"), ("conditional", "on"), ("class", "3"), ("guidance", "4")]).is_ok());
        assert!(check(&[("dataset", "25gaussians"), ("conditional", "on"), ("class", "24")]).is_ok());
        assert!(check(&[("objective", "meanflow"), ("nfe", "1")]).is_ok());
        assert!(check(&[("sampler", "sde"), ("noise", "2"), ("path", "vp")]).is_ok());
        type Case<'a> = (&'a [(&'a str, &'a str)], &'a [&'a str]);
        let cases: &[Case] = &[
            (&[("class", "3")], &["class", "'3'", "conditional is on"]),
            (&[("conditional", "on"), ("class", "2")], &["class", "'2'", "0 to 1", "moons has 2 classes"]),
            (&[("dataset", "8gaussians"), ("conditional", "on"), ("class", "8")], &["0 to 7", "8gaussians has 8 classes"]),
            (&[("guidance", "3")], &["guidance", "'3'", "conditional is on"]),
            (&[("conditional", "on"), ("guidance", "3")], &["guidance", "class all"]),
            (&[("conditional", "on"), ("class", "1"), ("guidance", "3"), ("label_dropout", "0")], &["guidance", "label_dropout 0"]),
            (&[("conditional", "on"), ("class", "1"), ("label_dropout", "1")], &["label_dropout", "below 1"]),
            (&[("conditional", "on"), ("coupling", "ot")], &["coupling", "'ot'", "independent"]),
            (&[("objective", "meanflow"), ("coupling", "ot")], &["coupling", "independent"]),
            (&[("sampler", "sde"), ("source", "8gaussians")], &["sampler", "'sde'", "Gaussian source"]),
            (&[("sampler", "sde"), ("objective", "meanflow")], &["sampler", "objective meanflow"]),
            (&[("sampler", "sde"), ("solver", "rk4")], &["solver", "'rk4'", "Euler–Maruyama"]),
            (&[("objective", "meanflow"), ("solver", "midpoint")], &["solver", "'midpoint'", "euler with objective meanflow"]),
            (&[("conditional", "on"), ("reflow", "2")], &["reflow", "'2'", "conditional on"]),
            (&[("objective", "meanflow"), ("reflow", "1")], &["reflow", "objective meanflow"]),
        ];
        for (pairs, needles) in cases {
            let e = check(pairs).expect_err(&format!("{pairs:?} must be refused"));
            for n in *needles {
                assert!(e.contains(n), "{pairs:?}: '{e}' should mention '{n}'");
            }
        }
        // Each field alone is range-checked by `set`.
        let mut c = Config::default();
        for (k, bad) in [("class", "25"), ("class", "-1"), ("class", "none"), ("guidance", "9"), ("guidance", "-1"), ("noise", "5"), ("label_dropout", "1.5"), ("conditional", "yes"), ("sampler", "ddpm"), ("objective", "sm")] {
            let e = c.set(k, bad).unwrap_err().to_string();
            assert!(e.contains(k) && e.contains(bad), "{e}");
        }
        let max_classes = Dataset::ALL.iter().map(|d| d.num_classes()).max();
        assert_eq!(max_classes, Some(limits::MAX_CLASSES));
        assert_eq!(class_names().len() as u32, limits::MAX_CLASSES + 1);
    }

    #[test]
    fn field_table_is_consistent() {
        let names: Vec<_> = FIELDS.iter().map(|f| f.name).collect();
        for (i, n) in names.iter().enumerate() {
            assert!(!names[i + 1..].contains(n), "{n} twice");
            assert_eq!(field(&n.replace('_', "-")).map(|f| f.name), Some(*n));
        }
        let d = Config::default();
        for f in FIELDS {
            // The default reads back, and a rejected value names the field and what it allows.
            let mut c = d.clone();
            c.set(f.name, &f.default_value()).unwrap();
            assert_eq!(c, d, "{}", f.name);
            let e = c.set(f.name, "not-a-value").unwrap_err().to_string();
            assert!(e.contains(f.name) && e.contains(&f.allowed()), "{e}");
        }
    }

    #[test]
    fn page_links_leave_out_command_line_fields() {
        let c = Config { samples: 77, ..Config::default() };
        let q = c.to_page_query();
        assert!(!q.contains("samples=") && q.contains("steps=") && q.contains("tol="), "{q}");
        let mut d = Config::default();
        let errs = d.apply_page_query("width=9&samples=5&bogus=1");
        assert_eq!(d.width, 9);
        assert_eq!(d.samples, Config::default().samples, "a command-line field is ignored");
        assert_eq!(errs.iter().map(|e| e.field()).collect::<Vec<_>>(), ["samples", "bogus"]);
        assert!(errs[0].to_string().contains("command-line"), "{}", errs[0]);
    }

    #[test]
    fn change_effects() {
        let a = Config::default();
        let mut b = a.clone();
        assert_eq!(a.change_effect(&b), None);
        b.set("lr", "0.001").unwrap();
        assert_eq!(a.change_effect(&b), Some(Effect::Live));
        b.set("nfe", "8").unwrap();
        assert_eq!(a.change_effect(&b), Some(Effect::Resample));
        b.set("width", "8").unwrap();
        assert_eq!(a.change_effect(&b), Some(Effect::Retrain));
        assert_eq!(a.changed_fields(&b).iter().map(|f| f.name).collect::<Vec<_>>(), ["width", "lr", "nfe"]);
    }
}
