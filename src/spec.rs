//! What a training run needs, derived from a validated [`Config`]; shared by both backends.

use crate::config::{Config, Coupling, Path};
use crate::cpu::adam::AdamHyper;
use crate::cpu::time::TimeDist;
use crate::model::ModelShape;

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
}

impl TrainSpec {
    pub fn from_config(c: &Config) -> Self {
        TrainSpec {
            shape: ModelShape { width: c.width, depth: c.depth, activation: c.activation },
            batch: c.batch,
            seed: c.seed,
            sigma_min: c.sigma_min,
            path: c.path,
            coupling: c.coupling,
            adam: AdamHyper::new(c.lr, c.weight_decay).with_schedule(c.schedule, c.schedule_steps()),
            time: TimeDist::from_config(c),
        }
    }
}
