//! Training-time densities; twin of `draw_time` in `shaders/common.wgsl`.
//!
//! Sample `i` of step `s` draws `u1 = unit(hash4(seed, s, i, T))` (the stream uniform training
//! always used) and, for the logit-normal density only, `u2 = unit(hash4(seed, s, i, T_B))`:
//! - uniform: `t = u1`;
//! - logit-normal (Esser et al. 2024, SD3): `t = sigmoid(m + s·z)`, `z = sqrt(-2 ln u1)·cos(2π u2)`;
//! - U-shaped (Lee et al. 2024): `p(t) = a·cosh(a(t - 1/2)) / (2 sinh(a/2))` on (0, 1), drawn by
//!   its inverse CDF `t = 1/2 + asinh((2u1 - 1)·sinh(a/2)) / a`.
//!
//! Uniform keeps the draws of every earlier version bit for bit.

use crate::config::{Config, TimeSampling};
use crate::rng::{hash4, stream, unit};

/// A time density and its parameters.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TimeDist {
    pub kind: TimeSampling,
    /// Logit-normal location m and scale s.
    pub m: f32,
    pub s: f32,
    /// U-shape sharpness a.
    pub a: f32,
}

impl Default for TimeDist {
    fn default() -> Self {
        TimeDist { kind: TimeSampling::Uniform, m: 0.0, s: 1.0, a: 4.0 }
    }
}

impl TimeDist {
    pub fn from_config(c: &Config) -> Self {
        TimeDist { kind: c.t_sampling, m: c.t_mean, s: c.t_std, a: c.t_u }
    }

    /// `t` from the two uniforms (f32, in the shader's order of operations).
    pub fn from_uniforms(&self, u1: f32, u2: f32) -> f32 {
        match self.kind {
            TimeSampling::Uniform => u1,
            TimeSampling::LogitNormal => {
                let z = (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos();
                1.0 / (1.0 + (-(self.m + self.s * z)).exp())
            }
            TimeSampling::UShaped => 0.5 + ((2.0 * u1 - 1.0) * (0.5 * self.a).sinh()).asinh() / self.a,
        }
    }

    /// Sample `i`'s time at `step`.
    pub fn draw(&self, seed: u32, step: u32, i: u32) -> f32 {
        let u1 = unit(hash4(seed, step, i, stream::T));
        let u2 = if self.kind == TimeSampling::LogitNormal { unit(hash4(seed, step, i, stream::T_B)) } else { 0.5 };
        self.from_uniforms(u1, u2)
    }

    /// The density at `t` in (0, 1).
    pub fn pdf(&self, t: f64) -> f64 {
        let (m, s, a) = (self.m as f64, self.s as f64, self.a as f64);
        match self.kind {
            TimeSampling::Uniform => 1.0,
            TimeSampling::LogitNormal => {
                let l = (t / (1.0 - t)).ln();
                (-(l - m).powi(2) / (2.0 * s * s)).exp() / (s * (2.0 * std::f64::consts::PI).sqrt() * t * (1.0 - t))
            }
            TimeSampling::UShaped => a * (a * (t - 0.5)).cosh() / (2.0 * (0.5 * a).sinh()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 200,000 draws per density land in 20 bins as the density says: each bin's count within 4
    /// binomial standard deviations (plus 0.2% of the mass for the f32 rounding of the maps).
    #[test]
    fn draws_follow_the_density() {
        let dists = [
            TimeDist::default(),
            TimeDist { kind: TimeSampling::LogitNormal, ..Default::default() },
            TimeDist { kind: TimeSampling::LogitNormal, m: 1.0, s: 0.5, a: 4.0 },
            TimeDist { kind: TimeSampling::UShaped, ..Default::default() },
            TimeDist { kind: TimeSampling::UShaped, a: 10.0, ..Default::default() },
        ];
        let (n, bins) = (200_000u32, 20usize);
        for d in dists {
            let mut counts = vec![0u32; bins];
            for i in 0..n {
                let t = d.draw(7, i / 1000, i % 1000);
                assert!(t > 0.0 && t < 1.0, "{d:?}: t = {t}");
                counts[((t * bins as f32) as usize).min(bins - 1)] += 1;
            }
            for (b, &c) in counts.iter().enumerate() {
                // The bin's mass by Simpson's rule on 64 panels.
                let (lo, w) = (b as f64 / bins as f64, 1.0 / bins as f64);
                let k = 64;
                let mass: f64 = (0..=k)
                    .map(|j| {
                        let wj = if j == 0 || j == k { 1.0 } else if j % 2 == 1 { 4.0 } else { 2.0 };
                        wj * d.pdf((lo + w * j as f64 / k as f64).clamp(1e-9, 1.0 - 1e-9))
                    })
                    .sum::<f64>()
                    * w
                    / (3.0 * k as f64);
                let expect = mass * n as f64;
                let sd = (expect * (1.0 - mass)).sqrt();
                assert!((c as f64 - expect).abs() <= 4.0 * sd + 0.002 * n as f64, "{d:?} bin {b}: {c} draws, expected {expect:.0} ± {sd:.0}");
            }
        }
    }

    #[test]
    fn u_shape_is_symmetric_and_heavier_at_the_ends() {
        let d = TimeDist { kind: TimeSampling::UShaped, ..Default::default() };
        assert!((d.pdf(0.1) - d.pdf(0.9)).abs() < 1e-12);
        assert!(d.pdf(0.02) > 3.0 * d.pdf(0.5));
        assert!((d.from_uniforms(0.5, 0.5) - 0.5).abs() < 1e-6);
    }
}
