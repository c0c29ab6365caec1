// flow_stats.wgsl — how straight the learned flow is, measured while sampling
// (twin: src/cpu/flow_stats.rs, which states the math).
//
// measured_step:     one explicit Runge–Kutta step of dx/dt = v_θ(x, t) per particle that also
//                    accumulates the kinetic energy: `rk_energy` (generated from src/tableau.rs)
//                    returns (x_new, h·Σ_i b_i·|k_i|²); energy[i] = that (first step) or += that.
// flow_stats_reduce: one workgroup of 256 sums over the particles, per particle
//                    K_i = energy[i], T_i = |x1_i - x0_i|², S_i = K_i - T_i (straightness, the
//                    difference taken per particle so that small S keeps its precision), and
//                    writes the means out[0..3] = (K, T, S).
// `velocity(x, t)` is ode_step.wgsl's (spliced in by src/gpu/shaders.rs).
// Bindings: 0 fs: FlowStepParams (uniform, dynamic offset: one slot per queued step),
//           1 model: ModelDesc (uniform), 2 params (read),
//           3 particles: array<vec2<f32>> (read_write: x at the step's start → end),
//           4 origins: array<vec2<f32>> (read: x0), 5 energy: array<f32> (read_write, N),
//           6 out: array<f32> (read_write: K, T, S, then the W2 kernel's per-batch costs).
// Dispatched by src/gpu/flow_stats.rs: measured_step one invocation per particle per step,
// flow_stats_reduce once with one workgroup.

struct FlowStepParams {
    n: u32, solver: u32, first: u32, _pad0: u32,
    t: f32, h: f32, _pad1: f32, _pad2: f32,
}

@group(0) @binding(0) var<uniform> fs: FlowStepParams;
@group(0) @binding(1) var<uniform> model: ModelDesc;
@group(0) @binding(2) var<storage, read> params: array<f32>;
@group(0) @binding(3) var<storage, read_write> particles: array<vec2<f32>>;
@group(0) @binding(4) var<storage, read> origins: array<vec2<f32>>;
@group(0) @binding(5) var<storage, read_write> energy: array<f32>;
@group(0) @binding(6) var<storage, read_write> out: array<f32>;

var<workgroup> sums: array<vec3<f32>, 256>;

@compute @workgroup_size(64)
fn measured_step(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg, 64u);
    if (i >= fs.n) { return; }
    let r = rk_energy(fs.solver, particles[i], fs.t, fs.h);
    particles[i] = r.xy;
    if (fs.first == 1u) { energy[i] = r.z; } else { energy[i] += r.z; }
}

@compute @workgroup_size(256)
fn flow_stats_reduce(@builtin(local_invocation_index) lid: u32) {
    var acc = vec3<f32>(0.0);
    for (var i = lid; i < fs.n; i += 256u) {
        let d = particles[i] - origins[i];
        let cost = dot(d, d);
        acc += vec3<f32>(energy[i], cost, energy[i] - cost);
    }
    sums[lid] = acc;
    workgroupBarrier();
    for (var s = 128u; s > 0u; s >>= 1u) {
        if (lid < s) { sums[lid] += sums[lid + s]; }
        workgroupBarrier();
    }
    if (lid == 0u) {
        let mean = sums[0] / f32(max(fs.n, 1u));
        out[0] = mean.x;
        out[1] = mean.y;
        out[2] = mean.z;
    }
}
