//! What a training run needs, derived from a validated [`Config`]; shared by both backends.

use crate::config::{Config, Coupling, Objective, OnOff, Path};
use crate::cpu::adam::AdamHyper;
use crate::cpu::time::TimeDist;
use crate::model::{InputLayout, ModelShape};

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TrainSpec {
    pub shape: ModelShape,
    pub batch: u32,
    pub seed: u32,
    pub sigma_min: f32,
    pub path: Path,
    pub coupling: Coupling,
    pub adam: AdamHyper,
    /// How training times are drawn.
    pub time: TimeDist,
    /// Probability that a sample's class label becomes the no-class token (conditional models).
    pub label_dropout: f32,
}

impl TrainSpec {
    pub fn from_config(c: &Config) -> Self {
        let inputs = InputLayout {
            n_classes: if c.conditional == OnOff::On { c.dataset.num_classes() } else { 0 },
            mean_flow: c.objective == Objective::MeanFlow,
        };
        TrainSpec {
            shape: ModelShape { width: c.width, depth: c.depth, activation: c.activation, inputs },
            batch: c.batch,
            seed: c.seed,
            sigma_min: c.sigma_min,
            path: c.path,
            coupling: c.coupling,
            adam: AdamHyper::new(c.lr, c.weight_decay).with_schedule(c.schedule, c.schedule_steps()),
            time: TimeDist::from_config(c),
            label_dropout: c.label_dropout,
        }
    }

    /// True when training regresses MeanFlow's average velocity (the network reads `r`).
    pub fn mean_flow(&self) -> bool {
        self.shape.inputs.mean_flow
    }
}
