//! Every standard dataset against the definition in `shared/spec/datasets.md`, through an
//! independent implementation of each formula written here (f64, its own random generator).
//!
//! Checks per dataset, on 100000 samples from each side:
//! - means and per-axis standard deviations agree within 5 standard errors (plus 0.005);
//! - the sliced Wasserstein-2 distance between our samples and the reference's is within
//!   `1.5 × floor + 0.005`, where the floor is the larger of two reference-vs-reference distances
//!   (the estimator's own noise at this size, which differs a lot between datasets: mixtures with
//!   few components, like 25gaussians, fluctuate most). Each test also proves its own power: the
//!   same threshold must reject our samples shifted by 0.15 or rescaled by 5%, the bugs the spec
//!   warns about.
#![cfg(not(target_arch = "wasm32"))]

use flowmatch::config::Dataset;
use flowmatch::metrics::{mean_std, sliced_wasserstein2};
use flowmatch::targets::sample_dataset;
use std::f64::consts::PI;

/// xorshift64* — deliberately unrelated to the crate's PCG hash.
struct Rng(u64);
impl Rng {
    fn u(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        ((self.0.wrapping_mul(0x2545F4914F6CDD1D) >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }
    fn n(&mut self) -> f64 {
        // Marsaglia polar method (not Box–Muller, to be independent of the crate).
        loop {
            let (a, b) = (2.0 * self.u() - 1.0, 2.0 * self.u() - 1.0);
            let s = a * a + b * b;
            if s > 0.0 && s < 1.0 {
                return a * (-2.0 * s.ln() / s).sqrt();
            }
        }
    }
    fn k(&mut self, n: u32) -> f64 {
        ((self.u() * n as f64).floor()).min(n as f64 - 1.0)
    }
}

/// The spec's table, transcribed.
fn reference(d: Dataset, r: &mut Rng) -> [f64; 2] {
    match d {
        Dataset::Checkerboard => {
            let a = -2.0 + 4.0 * r.u();
            let mut b = r.u() - 2.0 * r.k(2);
            b += ((a.floor() % 2.0) + 2.0) % 2.0;
            [a / 0.45, b / 0.45]
        }
        Dataset::Moons => {
            let s = PI * r.u();
            let upper = r.u() < 0.5;
            let (mut px, mut py) = if upper { (s.cos(), s.sin()) } else { (1.0 - s.cos(), 1.0 - s.sin() - 0.5) };
            px += 0.05 * r.n();
            py += 0.05 * r.n();
            [2.0 * (px - 0.5), 2.0 * (py - 0.25)]
        }
        Dataset::EightGaussians => {
            let th = r.k(8) * PI / 4.0;
            [4.0 * th.cos() + 0.5 * r.n(), 4.0 * th.sin() + 0.5 * r.n()]
        }
        Dataset::TwentyFiveGaussians => {
            let (i, j) = (r.k(5), r.k(5));
            [(i - 2.0) * 2.0 + 0.1 * r.n(), (j - 2.0) * 2.0 + 0.1 * r.n()]
        }
        Dataset::Circles => {
            let rad = if r.u() < 0.5 { 4.0 } else { 2.0 };
            let th = 2.0 * PI * r.u();
            [rad * th.cos() + 0.08 * r.n(), rad * th.sin() + 0.08 * r.n()]
        }
        Dataset::Spirals => {
            let s = r.u().sqrt() * 3.0 * PI;
            let mut p = [-s * s.cos(), s * s.sin()];
            if r.u() < 0.5 {
                p = [-p[0], -p[1]];
            }
            [p[0] / 2.5 + 0.1 * r.n(), p[1] / 2.5 + 0.1 * r.n()]
        }
        Dataset::Swissroll => {
            let s = 1.5 * PI + 3.0 * PI * r.u();
            [s * s.cos() / 3.0 + 0.1 * r.n(), s * s.sin() / 3.0 + 0.1 * r.n()]
        }
        Dataset::Pinwheel => {
            let k = r.k(5);
            let (fx, fy) = (1.0 + 0.3 * r.n(), 0.1 * r.n());
            let phi = 2.0 * PI * k / 5.0 + 0.25 * fx.exp();
            [2.0 * (fx * phi.cos() - fy * phi.sin()), 2.0 * (fx * phi.sin() + fy * phi.cos())]
        }
    }
}

fn reference_set(d: Dataset, n: usize, seed: u64) -> Vec<[f32; 2]> {
    let mut r = Rng(seed.wrapping_mul(0x9E3779B97F4A7C15) | 1);
    (0..n).map(|_| reference(d, &mut r)).map(|p| [p[0] as f32, p[1] as f32]).collect()
}

const N: usize = 100_000;
const PROJ: u32 = 48;

fn check(d: Dataset) {
    let ours = sample_dataset(d, N, 42);
    let theirs = reference_set(d, N, 7);
    let (m1, s1) = mean_std(&ours);
    let (m2, s2) = mean_std(&theirs);
    for k in 0..2 {
        let se = s2[k] / (N as f64).sqrt();
        assert!((m1[k] - m2[k]).abs() < 5.0 * se * 2f64.sqrt() + 0.005, "{d}: mean[{k}] {} vs {}", m1[k], m2[k]);
        assert!((s1[k] - s2[k]).abs() < 5.0 * se * 2f64.sqrt() + 0.005, "{d}: std[{k}] {} vs {}", s1[k], s2[k]);
    }
    let sw = sliced_wasserstein2(&ours, &theirs, PROJ, 3);
    let floor = [8, 9]
        .map(|seed| sliced_wasserstein2(&reference_set(d, N, seed), &theirs, PROJ, 3))
        .into_iter()
        .fold(0.0, f64::max);
    let threshold = 1.5 * floor + 0.005;
    eprintln!("{d}: SW2 {sw:.4}, reference-vs-reference floor {floor:.4}, threshold {threshold:.4}");
    assert!(sw < threshold, "{d}: SW2 to the spec's definition is {sw:.4} (threshold {threshold:.4})");
    // The same check must catch the bugs it is meant for.
    let shifted: Vec<[f32; 2]> = ours.iter().map(|p| [p[0] + 0.15, p[1]]).collect();
    let sw_shift = sliced_wasserstein2(&shifted, &theirs, PROJ, 3);
    assert!(sw_shift > threshold, "{d}: a 0.15 shift went unnoticed ({sw_shift:.4})");
    let scaled: Vec<[f32; 2]> = ours.iter().map(|p| [p[0] * 1.05, p[1] * 1.05]).collect();
    let sw_scale = sliced_wasserstein2(&scaled, &theirs, PROJ, 3);
    assert!(sw_scale > threshold, "{d}: a 5% rescale went unnoticed ({sw_scale:.4})");
}

#[test]
fn checkerboard_matches_spec() {
    check(Dataset::Checkerboard);
}
#[test]
fn moons_matches_spec() {
    check(Dataset::Moons);
}
#[test]
fn eight_gaussians_matches_spec() {
    check(Dataset::EightGaussians);
}
#[test]
fn twenty_five_gaussians_matches_spec() {
    check(Dataset::TwentyFiveGaussians);
}
#[test]
fn circles_matches_spec() {
    check(Dataset::Circles);
}
#[test]
fn spirals_matches_spec() {
    check(Dataset::Spirals);
}
#[test]
fn swissroll_matches_spec() {
    check(Dataset::Swissroll);
}
#[test]
fn pinwheel_matches_spec() {
    check(Dataset::Pinwheel);
}

/// Checkerboard: every point lies in a "black" cell: floor(a) + floor(b) even, with a, b the
/// unscaled coordinates — the defining property, checked exactly.
#[test]
fn checkerboard_cells_alternate() {
    for p in sample_dataset(Dataset::Checkerboard, 5000, 1) {
        let (a, b) = ((p[0] as f64 * 0.45), (p[1] as f64 * 0.45));
        assert!((-2.0..=2.0).contains(&a) && (-2.0..=2.0).contains(&b), "{p:?}");
        let parity = (a.floor() as i64 + b.floor() as i64).rem_euclid(2);
        assert_eq!(parity, 0, "point {p:?} in a white cell");
    }
}
