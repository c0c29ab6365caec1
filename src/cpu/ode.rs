//! ODE steps for `dx/dt = v_θ(x, t)`; twin of `shaders/ode_step.wgsl`.
//!
//! One step is an explicit Runge–Kutta step of the solver's Butcher tableau (`src/tableau.rs`:
//! Euler, midpoint, RK4, a fixed Dormand–Prince step). Integration from `t0` to `t1` uses `n` equal
//! steps.

use super::mlp::guided;
use crate::config::Solver;
use crate::model::{ModelShape, Query};
use crate::tableau::{step, V2};

/// One step of `solver` (its Butcher tableau, `src/tableau.rs`) from `(x, t)` with step size `h`.
pub fn ode_step(shape: &ModelShape, params: &[f32], solver: Solver, x: [f32; 2], t: f32, h: f32, scratch: &mut [f32]) -> [f32; 2] {
    ode_step_query(shape, params, Query::default(), solver, x, t, h, scratch)
}

/// As [`ode_step`] through the field of `query` (a class, classifier-free guidance).
#[allow(clippy::too_many_arguments)]
pub fn ode_step_query(shape: &ModelShape, params: &[f32], query: Query, solver: Solver, x: [f32; 2], t: f32, h: f32, scratch: &mut [f32]) -> [f32; 2] {
    let v = |x: V2, t: f32| V2(guided(shape, params, x.0, t, t, query, scratch));
    step(solver.tableau(), v, V2(x), t, h).0
}

/// The time of step `k` of `n` equal steps from `t0` to `t1` (computed as on the GPU).
pub fn step_time(t0: f32, t1: f32, n: u32, k: u32) -> f32 {
    t0 + (t1 - t0) * (k as f32 / n as f32)
}

/// Integrates every point from `t0` to `t1` in `n` steps.
pub fn integrate(shape: &ModelShape, params: &[f32], solver: Solver, points: &mut [[f32; 2]], t0: f32, t1: f32, n: u32) {
    integrate_query(shape, params, Query::default(), solver, points, t0, t1, n);
}

/// As [`integrate`] through the field of `query`.
#[allow(clippy::too_many_arguments)]
pub fn integrate_query(shape: &ModelShape, params: &[f32], query: Query, solver: Solver, points: &mut [[f32; 2]], t0: f32, t1: f32, n: u32) {
    let mut scratch = vec![0.0f32; 2 * shape.width as usize];
    let h = (t1 - t0) / n as f32;
    for p in points.iter_mut() {
        for k in 0..n {
            *p = ode_step_query(shape, params, query, solver, *p, step_time(t0, t1, n, k), h, &mut scratch);
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
