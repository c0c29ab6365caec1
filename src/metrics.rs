//! Sample-quality statistics on the CPU.
//!
//! Sliced Wasserstein-2: `SW2(P, Q) = sqrt( mean_θ W2²(⟨P, θ⟩, ⟨Q, θ⟩) )` over `n_proj` directions
//! θ evenly spaced on the half circle (offset by a seeded random angle); each 1D W2² is computed
//! exactly from sorted projections (equal sample sizes required, else the larger set is truncated).

use crate::rng::Stream;

pub fn sliced_wasserstein2(a: &[[f32; 2]], b: &[[f32; 2]], n_proj: u32, seed: u32) -> f64 {
    let n = a.len().min(b.len());
    assert!(n > 0, "sliced Wasserstein needs samples");
    let offset = Stream::new(seed, 99).uniform() as f64 * std::f64::consts::PI;
    let mut total = 0.0;
    let mut pa = vec![0.0f64; n];
    let mut pb = vec![0.0f64; n];
    for k in 0..n_proj {
        let th = offset + std::f64::consts::PI * k as f64 / n_proj as f64;
        let (c, s) = (th.cos(), th.sin());
        for i in 0..n {
            pa[i] = a[i][0] as f64 * c + a[i][1] as f64 * s;
            pb[i] = b[i][0] as f64 * c + b[i][1] as f64 * s;
        }
        pa.sort_by(f64::total_cmp);
        pb.sort_by(f64::total_cmp);
        total += pa.iter().zip(&pb).map(|(x, y)| (x - y) * (x - y)).sum::<f64>() / n as f64;
    }
    (total / n_proj as f64).sqrt()
}

/// CPU twin of `shaders/sliced_w2.wgsl`: per direction `θ_k = π(k + offset)/K`, the exact 1D
/// W2² between the projections of `a` and `b` (equal lengths).
pub fn sliced_w2_projections(a: &[[f32; 2]], b: &[[f32; 2]], n_dirs: u32, offset: f32) -> Vec<f32> {
    (0..n_dirs)
        .map(|k| {
            let th = std::f32::consts::PI * (k as f32 + offset) / n_dirs as f32;
            let (c, s) = (th.cos(), th.sin());
            let project = |p: &[[f32; 2]]| {
                let mut v: Vec<f32> = p.iter().map(|q| q[0] * c + q[1] * s).collect();
                v.sort_by(f32::total_cmp);
                v
            };
            let (pa, pb) = (project(a), project(b));
            pa.iter().zip(&pb).map(|(x, y)| (x - y) * (x - y)).sum::<f32>() / a.len() as f32
        })
        .collect()
}

/// CPU twin of one whole GPU reading (`gpu::GpuQuality::sliced_w2`): the first
/// `m = min(particles, QUALITY_SAMPLES)` particles against `m` target points drawn per direction
/// (`data[hash4(seed, k, i, QUALITY) % n]`), directions offset by `GpuQuality::offset(seed)`;
/// returns `SW2 = sqrt(mean_k W2²_k)`. The CPU engine's sample-quality reading.
pub fn sliced_w2_reading(particles: &[[f32; 2]], data: &[[f32; 2]], n_dirs: u32, seed: u32) -> f32 {
    use crate::rng::{hash4, stream, unit};
    let m = particles.len().min(crate::gpu::quality::QUALITY_SAMPLES as usize);
    if m == 0 || data.is_empty() {
        return f32::NAN;
    }
    let offset = unit(hash4(seed, 0, 0, stream::QUALITY_OFFSET));
    let total: f64 = (0..n_dirs)
        .map(|k| {
            let target: Vec<[f32; 2]> =
                (0..m as u32).map(|i| data[(hash4(seed, k, i, stream::QUALITY) % data.len() as u32) as usize]).collect();
            let th = std::f32::consts::PI * (k as f32 + offset) / n_dirs as f32;
            let (c, s) = (th.cos(), th.sin());
            let project = |p: &[[f32; 2]]| {
                let mut v: Vec<f32> = p.iter().map(|q| q[0] * c + q[1] * s).collect();
                v.sort_by(f32::total_cmp);
                v
            };
            let (pa, pb) = (project(&particles[..m]), project(&target));
            pa.iter().zip(&pb).map(|(x, y)| ((x - y) * (x - y)) as f64).sum::<f64>() / m as f64
        })
        .sum();
    ((total / n_dirs.max(1) as f64).sqrt()) as f32
}

/// Mean and per-axis standard deviation.
pub fn mean_std(p: &[[f32; 2]]) -> ([f64; 2], [f64; 2]) {
    let n = p.len() as f64;
    let m = [0, 1].map(|d| p.iter().map(|q| q[d] as f64).sum::<f64>() / n);
    let s = [0, 1].map(|d| (p.iter().map(|q| (q[d] as f64 - m[d]).powi(2)).sum::<f64>() / n).sqrt());
    (m, s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sw2_of_a_shift_is_the_shift_projected() {
        let a: Vec<[f32; 2]> = (0..500).map(|i| [(i as f32 * 0.37).sin(), (i as f32 * 0.91).cos()]).collect();
        let b: Vec<[f32; 2]> = a.iter().map(|p| [p[0] + 1.0, p[1]]).collect();
        // Shift d along x: W2² on direction θ is cos²θ, whose mean over the half circle is 1/2.
        let sw = sliced_wasserstein2(&a, &b, 180, 0);
        assert!((sw - 0.5f64.sqrt()).abs() < 1e-3, "{sw}");
        assert!(sliced_wasserstein2(&a, &a, 50, 0) < 1e-9);
    }
}
