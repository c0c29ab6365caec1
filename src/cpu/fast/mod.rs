//! The fast CPU backend: the training step of [`crate::cpu::CpuTrainer`] with register-blocked,
//! vectorised matrix products (wasm SIMD128 in the browser) and no allocation per step.
//!
//! `cpu::mlp` stays the plain oracle; this module is tested against it (`tests/cpu_fast.rs`,
//! natively and through `wasm-pack test` in the browser, where the SIMD128 path runs). Every sum
//! runs in the reference's order with the same multiply-then-add, so the matrix products give
//! its bits; the only other difference is SiLU's vectorised `exp` (`act::exp4`, a few ulp), so
//! the other activations give the reference's bits and SiLU agrees to rounding. The OT
//! coupling's Sinkhorn (`sinkhorn`) agrees with `cpu::coupling` to rounding too.

pub mod act;
pub mod gemm;
pub mod simd;
pub mod sinkhorn;
pub mod trainer;

pub use trainer::FastCpuTrainer;
