//! The fast CPU backend: the training step of [`crate::cpu::CpuTrainer`] with register-blocked,
//! vectorised matrix products (wasm SIMD128 in the browser) and no allocation per step.
//!
//! `cpu::mlp` stays the plain oracle; this module is tested against it and gives its bits
//! (`trainer::tests`, `gemm::tests`): every sum runs in the reference's order with the same
//! multiply-then-add, so only speed differs.

pub mod gemm;
pub mod simd;
pub mod trainer;

pub use trainer::FastCpuTrainer;
