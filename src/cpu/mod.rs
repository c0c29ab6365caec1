//! The CPU reference: the same math as the WGSL kernels, written for clarity.
//!
//! It is the oracle of every GPU comparison test and of the fast CPU backend ([`fast`], the
//! fallback where WebGPU is absent).
//! Buffers use the layouts of `model.rs`, so CPU and GPU results compare index for index.
//! Nothing here calls into `gpu/`.

pub mod activation;
pub mod adaptive;
pub mod assignment;
pub mod adam;
pub mod batch;
pub mod coupling;
pub mod density;
pub mod exact;
pub mod flow_stats;
pub mod meanflow;
pub mod fast;
pub mod mlp;
pub mod ode;
pub mod reflow;
pub mod sde;
pub mod time;
pub mod trainer;

pub use fast::FastCpuTrainer;
pub use trainer::CpuTrainer;
