//! Counter-based random numbers shared bit-for-bit with `shaders/common.wgsl`.
//!
//! `hash4(seed, step, index, stream)` chains the PCG output permutation ("Hash Functions for GPU
//! Rendering", Jarzynski & Olano 2020), so any draw is a pure function of its key: no state buffer,
//! reproducible from the seed, identical on the CPU and the GPU.
//! Uniforms are `((h >> 8) + 0.5) / 2^24`, strictly inside (0, 1); normals use Box–Muller.

/// One round of the PCG-RXS-M-XS permutation of u32.
#[inline]
pub fn pcg(v: u32) -> u32 {
    let state = v.wrapping_mul(747_796_405).wrapping_add(2_891_336_453);
    let word = ((state >> ((state >> 28) + 4)) ^ state).wrapping_mul(277_803_737);
    (word >> 22) ^ word
}

/// The hash of a four-part key.
#[inline]
pub fn hash4(seed: u32, step: u32, index: u32, stream: u32) -> u32 {
    pcg(pcg(pcg(pcg(stream) ^ index) ^ step) ^ seed)
}

/// A uniform in (0, 1) from a hash.
#[inline]
pub fn unit(h: u32) -> f32 {
    ((h >> 8) as f32 + 0.5) * (1.0 / 16_777_216.0)
}

/// Two independent N(0, 1) draws from two uniforms (Box–Muller), in f32 as on the GPU. The angle
/// is taken in (-π, π) (`u2 - 0.5` is exact for these uniforms): WGSL promises `sin`/`cos`
/// accuracy (2^-11 absolute) only on [-π, π].
#[inline]
pub fn box_muller(u1: f32, u2: f32) -> [f32; 2] {
    let r = (-2.0 * u1.ln()).sqrt();
    let theta = std::f32::consts::TAU * (u2 - 0.5);
    [r * theta.cos(), r * theta.sin()]
}

/// Random streams: each purpose draws from its own stream so draws never collide.
///
/// [`stream::ALL`] is the one list: `(name, first id, ids reserved)`. The WGSL prelude
/// (`src/gpu/prelude.rs`) emits `const STREAM_<NAME>` for each, and a unit test checks that no two
/// ranges overlap, so a new stream (or a ninth dataset) cannot silently take another's draws.
pub mod stream {
    macro_rules! streams {
        ($($(#[$doc:meta])* $name:ident = $id:literal, $span:literal;)+) => {
            $($(#[$doc])* pub const $name: u32 = $id;)+
            /// `(name, first id, number of ids reserved)` for every stream.
            pub const ALL: &[(&str, u32, u32)] = &[$((stringify!($name), $id, $span)),+];
        };
    }
    streams! {
        /// Batch construction (per step, per sample): x0 uses two streams, then t, then the target index.
        X0_A = 0, 1;
        X0_B = 1, 1;
        T = 2, 1;
        TARGET_INDEX = 3, 1;
        /// Minibatch OT: the uniform draw that picks each x0's partner from the plan.
        OT = 4, 1;
        /// The second uniform of a logit-normal training time (`cpu::time`).
        T_B = 5, 1;
        /// Class-conditional training: the draw that replaces a sample's label by the no-class token.
        LABEL_DROP = 6, 1;
        /// MeanFlow training: per sample, index 2i draws the second time and 2i + 1 whether r ≠ t.
        MEANFLOW = 7, 1;
        /// Particle starting points (per sampler seed, per particle).
        PARTICLE_A = 8, 1;
        PARTICLE_B = 9, 1;
        /// Reflow: the seed of round r's noise points (`hash4(seed, r, 0, REFLOW)`).
        REFLOW = 10, 1;
        /// Field error: the draws of query q (x0 at indices 4q, 4q+1; t at 4q+2; x1 at 4q+3).
        FIELD_ERROR = 11, 1;
        /// SDE sampling: the Brownian increments (per step, per particle; Box–Muller on A and B).
        SDE_A = 12, 1;
        SDE_B = 13, 1;
        /// Weight initialisation (per parameter).
        INIT = 16, 1;
        /// Sample quality: the target points sliced W2 compares against (per direction, per point).
        QUALITY = 24, 1;
        /// Sample quality: the random angle offset of the projection directions (per reading).
        QUALITY_OFFSET = 25, 1;
        /// Target generation on the CPU (per point; dataset d uses stream DATA + d).
        DATA = 32, 16;
        /// Shuffling the points of a CSV target.
        CUSTOM_CSV = 63, 1;
        /// Drawing points from an image or text raster.
        CUSTOM_RASTER = 69, 1;
        /// Jitter of brush strokes.
        DRAWING = 73, 1;
    }
}

/// A small sequential generator for CPU-side work that needs many draws per item
/// (dataset generation, test inputs). Keyed like the GPU draws.
#[derive(Clone, Debug)]
pub struct Stream {
    seed: u32,
    step: u32,
    counter: u32,
    stream: u32,
}

impl Stream {
    pub fn new(seed: u32, stream: u32) -> Self {
        Stream { seed, step: 0, counter: 0, stream }
    }
    pub fn next_u32(&mut self) -> u32 {
        let h = hash4(self.seed, self.step, self.counter, self.stream);
        self.counter = self.counter.wrapping_add(1);
        if self.counter == 0 {
            self.step = self.step.wrapping_add(1);
        }
        h
    }
    /// Uniform in (0, 1).
    pub fn uniform(&mut self) -> f32 {
        unit(self.next_u32())
    }
    /// Uniform in (lo, hi).
    pub fn range(&mut self, lo: f32, hi: f32) -> f32 {
        lo + (hi - lo) * self.uniform()
    }
    /// Uniform integer in 0..n.
    pub fn below(&mut self, n: u32) -> u32 {
        ((self.next_u32() as u64 * n as u64) >> 32) as u32
    }
    /// Standard normal.
    pub fn normal(&mut self) -> f32 {
        let u1 = self.uniform();
        let u2 = self.uniform();
        box_muller(u1, u2)[0]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uniforms_are_open_interval_and_well_spread() {
        let mut s = Stream::new(7, 0);
        let xs: Vec<f32> = (0..100_000).map(|_| s.uniform()).collect();
        assert!(xs.iter().all(|&x| x > 0.0 && x < 1.0));
        let mean = xs.iter().sum::<f32>() / xs.len() as f32;
        assert!((mean - 0.5).abs() < 0.005, "mean {mean}");
    }

    #[test]
    fn normals_have_unit_variance() {
        let mut s = Stream::new(1, 0);
        let xs: Vec<f64> = (0..100_000).map(|_| s.normal() as f64).collect();
        let m = xs.iter().sum::<f64>() / xs.len() as f64;
        let v = xs.iter().map(|x| (x - m).powi(2)).sum::<f64>() / xs.len() as f64;
        assert!(m.abs() < 0.01 && (v - 1.0).abs() < 0.02, "mean {m} var {v}");
    }

    #[test]
    fn keys_are_independent() {
        assert_ne!(hash4(0, 0, 0, 0), hash4(0, 0, 0, 1));
        assert_ne!(hash4(0, 0, 1, 0), hash4(0, 1, 0, 0));
        assert_ne!(hash4(1, 0, 0, 0), hash4(0, 0, 0, 0));
    }

    #[test]
    fn streams_never_overlap() {
        let all = stream::ALL;
        for (i, &(a, a0, an)) in all.iter().enumerate() {
            for &(b, b0, bn) in &all[i + 1..] {
                assert!(a0 + an <= b0 || b0 + bn <= a0, "streams {a} ({a0}+{an}) and {b} ({b0}+{bn}) overlap");
            }
        }
        assert!(crate::config::Dataset::ALL.len() as u32 <= stream::ALL.iter().find(|s| s.0 == "DATA").unwrap().2);
    }
}
