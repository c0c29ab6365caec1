//! The standard 2D targets, exactly as `shared/spec/datasets.md` defines them.
//!
//! Each generator draws one point from its own keyed random stream (`rng::Stream`), computed in
//! f64 and stored as f32, together with its class label (the spec's "Class labels": the mixture
//! component the point came from). Tests compare their statistics with independent implementations.

use crate::config::Dataset;
use crate::rng::{stream, Stream};
use std::f64::consts::PI;

/// `n` points of `dataset`, reproducible from `seed`.
pub fn sample_dataset(dataset: Dataset, n: usize, seed: u32) -> Vec<[f32; 2]> {
    sample_dataset_labeled(dataset, n, seed).0
}

/// The same `n` points as [`sample_dataset`] and each point's class label, in
/// `0..dataset.num_classes()`.
pub fn sample_dataset_labeled(dataset: Dataset, n: usize, seed: u32) -> (Vec<[f32; 2]>, Vec<u32>) {
    let mut rng = Draw(Stream::new(seed, stream::DATA + dataset as u32));
    (0..n)
        .map(|_| {
            let ([x, y], label) = one(dataset, &mut rng);
            ([x as f32, y as f32], label)
        })
        .unzip()
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

/// One point and its class label (the spec's table "Class labels").
fn one(dataset: Dataset, r: &mut Draw) -> ([f64; 2], u32) {
    match dataset {
        Dataset::Checkerboard => {
            let a = r.range(-2.0, 2.0);
            let k = r.below(2);
            let mut b = r.u() - 2.0 * k as f64;
            b += a.floor().rem_euclid(2.0);
            // The square that a and k pick: 4·k + (floor(a) + 2), floor(a) in -2..=1.
            let label = 4 * k + (a.floor() + 2.0).clamp(0.0, 3.0) as u32;
            ([a / 0.45, b / 0.45], label)
        }
        Dataset::Moons => {
            let s = r.range(0.0, PI);
            let lower = r.below(2);
            let (mut px, mut py) = if lower == 0 {
                (s.cos(), s.sin())
            } else {
                (1.0 - s.cos(), 1.0 - s.sin() - 0.5)
            };
            px += 0.05 * r.normal();
            py += 0.05 * r.normal();
            ([2.0 * (px - 0.5), 2.0 * (py - 0.25)], lower)
        }
        Dataset::EightGaussians => {
            let k = r.below(8);
            let theta = k as f64 * PI / 4.0;
            ([4.0 * theta.cos() + 0.5 * r.normal(), 4.0 * theta.sin() + 0.5 * r.normal()], k)
        }
        Dataset::TwentyFiveGaussians => {
            let i = r.below(5);
            let j = r.below(5);
            ([(i as f64 - 2.0) * 2.0 + 0.1 * r.normal(), (j as f64 - 2.0) * 2.0 + 0.1 * r.normal()], 5 * i + j)
        }
        Dataset::Circles => {
            let inner = r.below(2);
            let radius = if inner == 0 { 4.0 } else { 2.0 };
            let theta = r.range(0.0, 2.0 * PI);
            ([radius * theta.cos() + 0.08 * r.normal(), radius * theta.sin() + 0.08 * r.normal()], inner)
        }
        Dataset::Spirals => {
            let s = r.u().sqrt() * 3.0 * PI;
            let arm = r.below(2);
            let sign = if arm == 0 { 1.0 } else { -1.0 };
            let (px, py) = (sign * -s * s.cos(), sign * s * s.sin());
            ([px / 2.5 + 0.1 * r.normal(), py / 2.5 + 0.1 * r.normal()], arm)
        }
        Dataset::Swissroll => {
            let s = r.range(1.5 * PI, 4.5 * PI);
            // Three equal turns of the roll: floor((s - 1.5π) / π).
            let turn = ((s - 1.5 * PI) / PI).floor().clamp(0.0, 2.0) as u32;
            ([s * s.cos() / 3.0 + 0.1 * r.normal(), s * s.sin() / 3.0 + 0.1 * r.normal()], turn)
        }
        Dataset::Pinwheel => {
            let k = r.below(5);
            let fx = 1.0 + 0.3 * r.normal();
            let fy = 0.1 * r.normal();
            let phi = 2.0 * PI * k as f64 / 5.0 + 0.25 * fx.exp();
            let (c, s) = (phi.cos(), phi.sin());
            ([2.0 * (fx * c - fy * s), 2.0 * (fx * s + fy * c)], k)
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

    /// Labels are the spec's: every class occurs about equally often (each dataset draws its
    /// component uniformly, swissroll's turns are equal lengths of s), and the points of one class
    /// sit where the spec puts that component.
    #[test]
    fn labels_follow_the_spec() {
        let n = 20_000;
        for &d in Dataset::ALL {
            let (points, labels) = sample_dataset_labeled(d, n, 8);
            assert_eq!(points, sample_dataset(d, n, 8), "{d}: labels must not change the points");
            let k = d.num_classes() as usize;
            let mut counts = vec![0usize; k];
            for &l in &labels {
                counts[l as usize] += 1;
            }
            let expect = n as f64 / k as f64;
            for (c, &m) in counts.iter().enumerate() {
                // Binomial sd is ≤ sqrt(n/k) ≤ 100; 6 sd.
                assert!((m as f64 - expect).abs() < 6.0 * expect.sqrt(), "{d}: class {c} has {m} of {n} points");
            }
        }
        let mean_of = |d: Dataset, class: u32| {
            let (p, l) = sample_dataset_labeled(d, 20_000, 3);
            let sel: Vec<[f32; 2]> = p.iter().zip(&l).filter(|(_, &c)| c == class).map(|(p, _)| *p).collect();
            crate::metrics::mean_std(&sel).0
        };
        // 8gaussians: class k at 4·(cos kπ/4, sin kπ/4).
        for k in 0..8 {
            let m = mean_of(Dataset::EightGaussians, k);
            let th = k as f64 * PI / 4.0;
            assert!((m[0] - 4.0 * th.cos()).abs() < 0.05 && (m[1] - 4.0 * th.sin()).abs() < 0.05, "8gaussians class {k}: {m:?}");
        }
        // 25gaussians: 5i + j at ((i - 2)·2, (j - 2)·2).
        let m = mean_of(Dataset::TwentyFiveGaussians, 5 * 4 + 1);
        assert!((m[0] - 4.0).abs() < 0.05 && (m[1] + 2.0).abs() < 0.05, "{m:?}");
        // moons: upper moon above the lower one; circles: class 0 is the outer ring.
        assert!(mean_of(Dataset::Moons, 0)[1] > mean_of(Dataset::Moons, 1)[1] + 0.5);
        let r = |c: u32| {
            let (p, l) = sample_dataset_labeled(Dataset::Circles, 5000, 1);
            let sel: Vec<f64> = p.iter().zip(&l).filter(|(_, &k)| k == c).map(|(p, _)| (p[0] as f64).hypot(p[1] as f64)).collect();
            sel.iter().sum::<f64>() / sel.len() as f64
        };
        assert!((r(0) - 4.0).abs() < 0.05 && (r(1) - 2.0).abs() < 0.05);
        // checkerboard: class 4k + floor(a) + 2 has x = a/0.45 in [floor(a), floor(a) + 1)/0.45.
        let (p, l) = sample_dataset_labeled(Dataset::Checkerboard, 5000, 2);
        for (p, &c) in p.iter().zip(&l) {
            let col = (c % 4) as f64 - 2.0;
            let x = p[0] as f64 * 0.45;
            assert!(x >= col - 1e-5 && x < col + 1.0 + 1e-5, "checkerboard point {p:?} labelled {c}");
            let lower = c >= 4;
            assert_eq!(p[1] < 0.0, lower, "checkerboard point {p:?} labelled {c}: k = 1 squares are below 0");
        }
    }
}
