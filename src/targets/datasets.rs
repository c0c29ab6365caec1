//! The standard 2D targets, exactly as `shared/spec/datasets.md` defines them.
//!
//! Each generator draws one point from its own keyed random stream (`rng::Stream`), computed in
//! f64 and stored as f32. Tests compare their statistics with independent implementations.

use crate::config::Dataset;
use crate::rng::{stream, Stream};
use std::f64::consts::PI;

/// `n` points of `dataset`, reproducible from `seed`.
pub fn sample_dataset(dataset: Dataset, n: usize, seed: u32) -> Vec<[f32; 2]> {
    let mut rng = Draw(Stream::new(seed, stream::DATA + dataset as u32));
    (0..n)
        .map(|_| {
            let [x, y] = one(dataset, &mut rng);
            [x as f32, y as f32]
        })
        .collect()
}

struct Draw(Stream);

impl Draw {
    fn u(&mut self) -> f64 {
        self.0.uniform() as f64
    }
    fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.u()
    }
    fn below(&mut self, k: u32) -> u32 {
        self.0.below(k)
    }
    fn normal(&mut self) -> f64 {
        // Box–Muller in f64 for the CPU-side datasets.
        let (u1, u2) = (self.u(), self.u());
        (-2.0 * u1.ln()).sqrt() * (2.0 * PI * u2).cos()
    }
}

fn one(dataset: Dataset, r: &mut Draw) -> [f64; 2] {
    match dataset {
        Dataset::Checkerboard => {
            let a = r.range(-2.0, 2.0);
            let k = r.below(2) as f64;
            let mut b = r.u() - 2.0 * k;
            b += a.floor().rem_euclid(2.0);
            [a / 0.45, b / 0.45]
        }
        Dataset::Moons => {
            let s = r.range(0.0, PI);
            let (mut px, mut py) = if r.below(2) == 0 {
                (s.cos(), s.sin())
            } else {
                (1.0 - s.cos(), 1.0 - s.sin() - 0.5)
            };
            px += 0.05 * r.normal();
            py += 0.05 * r.normal();
            [2.0 * (px - 0.5), 2.0 * (py - 0.25)]
        }
        Dataset::EightGaussians => {
            let theta = r.below(8) as f64 * PI / 4.0;
            [4.0 * theta.cos() + 0.5 * r.normal(), 4.0 * theta.sin() + 0.5 * r.normal()]
        }
        Dataset::TwentyFiveGaussians => {
            let i = r.below(5) as f64;
            let j = r.below(5) as f64;
            [(i - 2.0) * 2.0 + 0.1 * r.normal(), (j - 2.0) * 2.0 + 0.1 * r.normal()]
        }
        Dataset::Circles => {
            let radius = if r.below(2) == 0 { 4.0 } else { 2.0 };
            let theta = r.range(0.0, 2.0 * PI);
            [radius * theta.cos() + 0.08 * r.normal(), radius * theta.sin() + 0.08 * r.normal()]
        }
        Dataset::Spirals => {
            let s = r.u().sqrt() * 3.0 * PI;
            let sign = if r.below(2) == 0 { 1.0 } else { -1.0 };
            let (px, py) = (sign * -s * s.cos(), sign * s * s.sin());
            [px / 2.5 + 0.1 * r.normal(), py / 2.5 + 0.1 * r.normal()]
        }
        Dataset::Swissroll => {
            let s = r.range(1.5 * PI, 4.5 * PI);
            [s * s.cos() / 3.0 + 0.1 * r.normal(), s * s.sin() / 3.0 + 0.1 * r.normal()]
        }
        Dataset::Pinwheel => {
            let k = r.below(5) as f64;
            let fx = 1.0 + 0.3 * r.normal();
            let fy = 0.1 * r.normal();
            let phi = 2.0 * PI * k / 5.0 + 0.25 * fx.exp();
            let (c, s) = (phi.cos(), phi.sin());
            [2.0 * (fx * c - fy * s), 2.0 * (fx * s + fy * c)]
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_finite() {
        for &d in Dataset::ALL {
            let a = sample_dataset(d, 1000, 3);
            assert_eq!(a, sample_dataset(d, 1000, 3));
            assert_ne!(a, sample_dataset(d, 1000, 4));
            assert!(a.iter().all(|p| p[0].is_finite() && p[1].is_finite()));
        }
    }
}
