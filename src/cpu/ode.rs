//! ODE steps for `dx/dt = v_θ(x, t)`; twin of `shaders/ode_step.wgsl`.
//!
//! Euler: `x + h·v(x, t)`. Midpoint: `x + h·v(x + h/2·v(x, t), t + h/2)`.
//! RK4: the classical four-stage Runge–Kutta. Integration from `t0` to `t1` uses `n` equal steps.

use super::mlp::velocity;
use crate::config::Solver;
use crate::model::ModelShape;

fn axpy(x: [f32; 2], a: f32, k: [f32; 2]) -> [f32; 2] {
    [x[0] + a * k[0], x[1] + a * k[1]]
}

/// One step of `solver` from `(x, t)` with step size `h`.
pub fn ode_step(shape: &ModelShape, params: &[f32], solver: Solver, x: [f32; 2], t: f32, h: f32, scratch: &mut [f32]) -> [f32; 2] {
    let mut v = |x: [f32; 2], t: f32| velocity(shape, params, x, t, scratch);
    match solver {
        Solver::Euler => axpy(x, h, v(x, t)),
        Solver::Midpoint => {
            let k1 = v(x, t);
            axpy(x, h, v(axpy(x, 0.5 * h, k1), t + 0.5 * h))
        }
        Solver::Rk4 => {
            let k1 = v(x, t);
            let k2 = v(axpy(x, 0.5 * h, k1), t + 0.5 * h);
            let k3 = v(axpy(x, 0.5 * h, k2), t + 0.5 * h);
            let k4 = v(axpy(x, h, k3), t + h);
            let s = h / 6.0;
            [
                x[0] + s * (k1[0] + 2.0 * k2[0] + 2.0 * k3[0] + k4[0]),
                x[1] + s * (k1[1] + 2.0 * k2[1] + 2.0 * k3[1] + k4[1]),
            ]
        }
        // A fixed step of the 5th-order Dormand–Prince solution (the adaptive integration with
        // step-size control is `cpu::adaptive`, twin of shaders/ode_adaptive.wgsl).
        Solver::Dopri5 => super::adaptive::fixed_step(&mut v, x, t, h),
    }
}

/// The time of step `k` of `n` equal steps from `t0` to `t1` (computed as on the GPU).
pub fn step_time(t0: f32, t1: f32, n: u32, k: u32) -> f32 {
    t0 + (t1 - t0) * (k as f32 / n as f32)
}

/// Integrates every point from `t0` to `t1` in `n` steps.
pub fn integrate(shape: &ModelShape, params: &[f32], solver: Solver, points: &mut [[f32; 2]], t0: f32, t1: f32, n: u32) {
    let mut scratch = vec![0.0f32; 2 * shape.width as usize];
    let h = (t1 - t0) / n as f32;
    for p in points.iter_mut() {
        for k in 0..n {
            *p = ode_step(shape, params, solver, *p, step_time(t0, t1, n, k), h, &mut scratch);
        }
    }
}

/// Starting points `x0 ~ N(0, I)` of `n` particles keyed by `seed`; twin of `init_particles`.
pub fn initial_particles(seed: u32, n: u32) -> Vec<[f32; 2]> {
    initial_particles_from(seed, n, &[])
}

/// Starting points drawn from `source` (N(0, I) when empty); twin of `init_particles`.
pub fn initial_particles_from(seed: u32, n: u32, source: &[[f32; 2]]) -> Vec<[f32; 2]> {
    use crate::rng::{box_muller, hash4, stream, unit};
    (0..n)
        .map(|i| {
            if source.is_empty() {
                box_muller(unit(hash4(seed, 0, i, stream::PARTICLE_A)), unit(hash4(seed, 0, i, stream::PARTICLE_B)))
            } else {
                source[(hash4(seed, 0, i, stream::PARTICLE_A) % source.len() as u32) as usize]
            }
        })
        .collect()
}
