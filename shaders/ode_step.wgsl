// ode_step.wgsl — sampling: particle initialisation and one step for N particles of the ODE
// dx/dt = v_θ(x, t) (twin: src/cpu/ode.rs), of the SDE with the same marginals (twin:
// src/cpu/sde.rs), or of MeanFlow's average velocity (twin: src/cpu/meanflow.rs). The field is
// `velocity`/`guided_net` of network.wgsl (prepended by src/gpu/shaders.rs): the query's class,
// with classifier-free guidance when the ModelDesc asks for it.
//
// init_particles: x0[i] = N(0, I) keyed by (seed, 0, i) on streams PARTICLE_A/B (or a point of the
//                 source dataset, source[hash % n_source]); writes the
//                 particle, its origin (kept for colouring and restarts) and trajectory slot 0.
// ode_step:       one explicit Runge–Kutta step of the solver's Butcher tableau, `rk_step`
//                 generated from src/tableau.rs (Euler x + h·v(x,t); midpoint; RK4; one fixed
//                 Dormand–Prince step), then, when record = 1, traj[(step_index + 1)·N + i] = x_new.
// sde_step:       one Euler–Maruyama step of dx = [v + ½g²·s] dt + g dW with g(t) = G·sqrt(β_t)
//                 and β_t·s = (α·v - α'·x)/(α'β - αβ') from the path (src/cpu/sde.rs derives it):
//                 x + h·(v + ½G²·β·s) + G·sqrt(β·h)·ξ, ξ ~ N(0, I) keyed by (seed, step_index, i)
//                 on streams SDE_A/B. The drift term and noise are exactly 0 for G = 0, so the
//                 step is then the Euler step bit for bit. Gaussian source only.
// meanflow_step:  one jump x + h·u(x, t + h, t) of a MeanFlow model (r = t + h).
// Recording is the same for all three, and all three step particles i in [first, end) only (a chunk
// of a long integration: src/budget.rs ChunkPlan; init_particles always covers all N; the noise is
// keyed by the particle index, so a chunked SDE run draws the same ξ as one dispatch).
// The MLP runs per invocation with the hidden vector in two private arrays of HIDDEN floats
// (HIDDEN = the model's width, injected as a constant by src/gpu/shaders.rs).
// Bindings: 0 ode: OdeParams (uniform, dynamic offset: one slot per queued step),
//           1 model: ModelDesc (uniform: per layer (in, out, w_offset, b_offset)),
//           2 params (read), 3 particles: array<vec2<f32>> (read_write),
//           4 origins: array<vec2<f32>> (read_write), 5 traj: array<vec2<f32>> (read_write,
//           (steps + 1, N) row-major; a 1-element dummy when not recording),
//           6 source: array<vec2<f32>> (source points; a 1-element dummy for N(0, I)).
// Dispatched by src/gpu/sampler.rs, one invocation per particle.

struct OdeParams {
    n: u32, solver: u32, record: u32, step_index: u32,
    t: f32, h: f32, seed: u32, n_source: u32,
    noise: f32, path: u32, sigma_min: f32, _pad: u32,
    first: u32, end: u32, _c0: u32, _c1: u32,
}

@group(0) @binding(0) var<uniform> op: OdeParams;
@group(0) @binding(1) var<uniform> model: ModelDesc;
@group(0) @binding(2) var<storage, read> params: array<f32>;
@group(0) @binding(3) var<storage, read_write> particles: array<vec2<f32>>;
@group(0) @binding(4) var<storage, read_write> origins: array<vec2<f32>>;
@group(0) @binding(5) var<storage, read_write> traj: array<vec2<f32>>;
@group(0) @binding(6) var<storage, read> source: array<vec2<f32>>;


@compute @workgroup_size(64)
fn init_particles(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg, 64u);
    if (i >= op.n) { return; }
    var x0: vec2<f32>;
    if (op.n_source > 0u) {
        x0 = source[hash4(op.seed, 0u, i, STREAM_PARTICLE_A) % op.n_source];
    } else {
        x0 = box_muller(unit(hash4(op.seed, 0u, i, STREAM_PARTICLE_A)), unit(hash4(op.seed, 0u, i, STREAM_PARTICLE_B)));
    }
    particles[i] = x0;
    origins[i] = x0;
    if (op.record == 1u && i < arrayLength(&traj)) { traj[i] = x0; }
}

@compute @workgroup_size(64)
fn ode_step(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = op.first + flat_index(gid, nwg, 64u);
    if (i >= op.end || i >= op.n) { return; }
    store_step(i, rk_step(op.solver, particles[i], op.t, op.h));
}

fn store_step(i: u32, y: vec2<f32>) {
    particles[i] = y;
    let slot = (op.step_index + 1u) * op.n + i;
    if (op.record == 1u && slot < arrayLength(&traj)) { traj[slot] = y; }
}

@compute @workgroup_size(64)
fn sde_step(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = op.first + flat_index(gid, nwg, 64u);
    if (i >= op.end || i >= op.n) { return; }
    let x = particles[i];
    let t = op.t;
    let h = op.h;
    let v = velocity(x, t);
    let c = path_coefficients(op.path, t, op.sigma_min);
    let bs = (c.x * v - c.z * x) / (c.z * c.y - c.x * c.w);
    let half_g2 = 0.5 * (op.noise * op.noise);
    let g_sqrt_h = op.noise * sqrt(c.y * h);
    let xi = box_muller(unit(hash4(op.seed, op.step_index, i, STREAM_SDE_A)), unit(hash4(op.seed, op.step_index, i, STREAM_SDE_B)));
    let drift = v + half_g2 * bs;
    // The Euler step's own expression (rk_step_euler: x + (k0 * 1.0) * h), then the noise.
    store_step(i, (x + (drift * 1.0) * h) + g_sqrt_h * xi);
}

@compute @workgroup_size(64)
fn meanflow_step(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = op.first + flat_index(gid, nwg, 64u);
    if (i >= op.end || i >= op.n) { return; }
    let x = particles[i];
    store_step(i, x + guided_net(x, op.t, op.t + op.h) * op.h);
}
