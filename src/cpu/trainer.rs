//! A complete training step on the CPU: batch → [MeanFlow targets] → forward → loss → backward →
//! Adam. The GPU trainer's oracle, and the fallback backend where WebGPU is missing.

use super::{coupling, meanflow, mlp, reflow};
use crate::model::ActivationLayout;
use crate::spec::TrainSpec;

/// The training-state methods shared by [`CpuTrainer`] and `cpu::fast::FastCpuTrainer` (both
/// have public `spec`, `params`, `grads`, `m`, `v`, `data` and `step`): loading and saving model
/// files and changing the target, the twins of `GpuTrainer`'s.
macro_rules! training_state_methods {
    ($trainer:ty) => {
        impl $trainer {
            /// Puts the whole training state in place (parameters, Adam's m then v, step); the twin of
            /// `GpuTrainer::load_state`. Fails without changing anything when the lengths do not fit.
            pub fn load_state(&mut self, params: &[f32], moments: &[f32], step: u32) -> Result<(), String> {
                let n = self.params.len();
                if params.len() != n || moments.len() != 2 * n {
                    return Err(format!("the state holds {} parameters and {} moments but this model has {n} and {}", params.len(), moments.len(), 2 * n));
                }
                self.params.copy_from_slice(params);
                self.m.copy_from_slice(&moments[..n]);
                self.v.copy_from_slice(&moments[n..]);
                self.grads.iter_mut().for_each(|g| *g = 0.0);
                self.step = step;
                Ok(())
            }

            /// Loads a model file (see `GpuTrainer::load_model`): same shape required.
            pub fn load_model(&mut self, file: &crate::model_file::ModelFile) -> Result<(), String> {
                file.check_shape(&self.spec.shape).map_err(|e| e.to_string())?;
                let r = file.resume_state();
                self.load_state(&file.params, &r.moments, r.step)?;
                self.spec.adam.schedule_start = r.schedule_start;
                Ok(())
            }

            /// The training state as a model file for `config`.
            pub fn model_file(&self, config: crate::config::Config) -> crate::model_file::ModelFile {
                crate::model_file::ModelFile::new(config, self.step, self.params.clone(), [&self.m[..], &self.v[..]].concat(), self.spec.adam.schedule_start)
            }

            /// Trains on `data` (at least one point) from the next step on, keeping the weights, moments
            /// and step count; the learning-rate schedule restarts, as `GpuTrainer::set_target`.
            pub fn set_target(&mut self, data: Vec<[f32; 2]>) {
                assert!(!data.is_empty(), "training data must not be empty");
                self.data = data;
                self.spec.adam.schedule_start = self.step;
            }

            /// One full training step (`loss_and_grad`, then Adam); returns the loss before the update.
            pub fn step(&mut self) -> f32 {
                let loss = self.loss_and_grad();
                crate::cpu::adam::adam_update(&self.spec.adam, self.step, &mut self.params, &self.grads, &mut self.m, &mut self.v);
                self.step += 1;
                loss
            }
        }
    };
}
pub(crate) use training_state_methods;

training_state_methods!(CpuTrainer);

pub struct CpuTrainer {
    pub spec: TrainSpec,
    pub layout: ActivationLayout,
    pub params: Vec<f32>,
    pub grads: Vec<f32>,
    pub m: Vec<f32>,
    pub v: Vec<f32>,
    pub acts: Vec<f32>,
    pub deltas: Vec<f32>,
    pub data: Vec<[f32; 2]>,
    /// Source points for x0; empty means N(0, I).
    pub source: Vec<[f32; 2]>,
    /// The class label of each target point (conditional models; see [`CpuTrainer::with_labels`]).
    pub labels: Vec<u32>,
    /// Steps taken so far (the next step's number).
    pub step: u32,
    /// Reflow: fixed `(x0, x1)` pairs that replace the independent draws when set (`cpu::reflow`).
    pub pairs: Option<reflow::Pairs>,
}

impl CpuTrainer {
    /// A fresh model initialised from the spec's seed, training on `data` (at least one point).
    /// Panics where [`CpuTrainer::try_new`] refuses; code that takes its spec from a user (the
    /// page, a model file) calls `try_new`.
    pub fn new(spec: TrainSpec, data: Vec<[f32; 2]>) -> Self {
        Self::try_new(spec, data).unwrap_or_else(|e| panic!("{e}"))
    }

    /// As [`CpuTrainer::new`], refusing (before anything is allocated) empty data and a spec whose
    /// buffers exceed the CPU backend's memory budget (`budget::check_trainer`: the message names
    /// the batch or width and the largest value that fits) instead of aborting on the allocation.
    pub fn try_new(spec: TrainSpec, data: Vec<[f32; 2]>) -> Result<Self, String> {
        if data.is_empty() {
            return Err("training data must not be empty".into());
        }
        crate::budget::check_trainer(&spec, data.len(), 0, &crate::budget::Profile::cpu()).map_err(|r| r.to_string())?;
        Ok(Self::allocate(spec, data))
    }

    fn allocate(spec: TrainSpec, data: Vec<[f32; 2]>) -> Self {
        let layout = spec.shape.activation_layout(spec.batch);
        let n = spec.shape.param_len();
        CpuTrainer {
            params: spec.shape.init_params(spec.seed),
            grads: vec![0.0; n],
            m: vec![0.0; n],
            v: vec![0.0; n],
            acts: vec![0.0; layout.len as usize],
            deltas: vec![0.0; layout.deltas_len as usize],
            layout,
            spec,
            data,
            source: Vec::new(),
            labels: Vec::new(),
            step: 0,
            pairs: None,
        }
    }

    /// A trainer whose target points carry class labels (one per point), for a class-conditional
    /// spec. Labels of an unconditional spec are ignored.
    pub fn with_labels(spec: TrainSpec, data: Vec<[f32; 2]>, labels: Vec<u32>) -> Self {
        assert_eq!(labels.len(), data.len(), "one label per target point");
        CpuTrainer { labels, ..Self::new(spec, data) }
    }

    /// Computes the loss and gradient of step `self.step`'s batch without updating anything.
    pub fn loss_and_grad(&mut self) -> f32 {
        let s = &self.spec;
        coupling::build_training_batch(s, &mut self.acts, &self.layout, &self.data, &self.source, &self.labels, self.pairs.as_ref(), self.step);
        if s.mean_flow() {
            meanflow::write_targets(&s.shape, &self.params, &mut self.acts, &self.layout);
        }
        mlp::forward(&s.shape, &self.params, &mut self.acts, &self.layout);
        let loss = mlp::loss_and_grad(&s.shape, &self.acts, &mut self.deltas, &self.layout);
        mlp::backward(&s.shape, &self.params, &self.acts, &mut self.deltas, &mut self.grads, &self.layout);
        loss
    }
}
