//! Target distributions: what the model learns to produce at t = 1.
//!
//! The engine trains on a finite point set uploaded to the GPU and indexed randomly per sample
//! (see `shaders/batch.wgsl`); this module makes those point sets: the standard datasets, and the
//! custom targets a person draws (`drawing`), types, uploads or pastes (`custom`), which replace
//! the uploaded set while training goes on (`GpuTrainer::set_target`).

pub mod custom;
pub mod datasets;
pub mod drawing;

pub use custom::{normalize, parse_points, points_from_density, CustomKind, CustomTarget, TargetError, ViewTransform};
pub use drawing::Drawing;
pub use datasets::{sample_dataset, sample_dataset_labeled};

/// How many points of a standard dataset are uploaded for training. At 2^17 points a 2D MLP
/// sees an effectively infinite sample (1 MiB of GPU memory).
pub const DATASET_POINTS: usize = 1 << 17;
