// ode_step.wgsl — sampling: particle initialisation and one ODE step of dx/dt = v_θ(x, t)
// for N particles (twin: src/cpu/ode.rs and src/cpu/mlp.rs::velocity).
//
// init_particles: x0[i] = N(0, I) keyed by (seed, 0, i) on streams PARTICLE_A/B (or a point of the
//                 source dataset, source[hash % n_source]); writes the
//                 particle, its origin (kept for colouring and restarts) and trajectory slot 0.
// ode_step:       one explicit Runge–Kutta step of the solver's Butcher tableau, `rk_step`
//                 generated from src/tableau.rs (Euler x + h·v(x,t); midpoint; RK4; one fixed
//                 Dormand–Prince step), then, when record = 1, traj[(step_index + 1)·N + i] = x_new;
//                 for particles i in [first, end) only (a chunk of a long integration:
//                 src/budget.rs ChunkPlan; init_particles always covers all N).
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
    first: u32, end: u32, _c0: u32, _c1: u32,
}

@group(0) @binding(0) var<uniform> op: OdeParams;
@group(0) @binding(1) var<uniform> model: ModelDesc;
@group(0) @binding(2) var<storage, read> params: array<f32>;
@group(0) @binding(3) var<storage, read_write> particles: array<vec2<f32>>;
@group(0) @binding(4) var<storage, read_write> origins: array<vec2<f32>>;
@group(0) @binding(5) var<storage, read_write> traj: array<vec2<f32>>;
@group(0) @binding(6) var<storage, read> source: array<vec2<f32>>;

fn velocity(x: vec2<f32>, t: f32) -> vec2<f32> {
    var h: array<array<f32, HIDDEN>, 2>;
    let first = model.layers[0];
    for (var o = 0u; o < first.y; o++) {
        let w = first.z + 3u * o;
        let z = params[first.w + o] + params[w] * x.x + params[w + 1u] * x.y + params[w + 2u] * t;
        h[0][o] = act(model.activation, z);
    }
    var cur = 0u;
    for (var l = 1u; l + 1u < model.n_layers; l++) {
        let L = model.layers[l];
        let nxt = 1u - cur;
        for (var o = 0u; o < L.y; o++) {
            let w = L.z + o * L.x;
            var z = params[L.w + o];
            for (var k = 0u; k < L.x; k++) {
                z += h[cur][k] * params[w + k];
            }
            h[nxt][o] = act(model.activation, z);
        }
        cur = nxt;
    }
    let last = model.layers[model.n_layers - 1u];
    var v = vec2<f32>(params[last.w], params[last.w + 1u]);
    for (var k = 0u; k < last.x; k++) {
        v += h[cur][k] * vec2<f32>(params[last.z + k], params[last.z + last.x + k]);
    }
    return v;
}

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
    let x = particles[i];
    let t = op.t;
    let h = op.h;
    let y = rk_step(op.solver, x, t, h);
    particles[i] = y;
    let slot = (op.step_index + 1u) * op.n + i;
    if (op.record == 1u && slot < arrayLength(&traj)) { traj[slot] = y; }
}
