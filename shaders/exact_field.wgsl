// exact_field.wgsl — the exact marginal velocity field of the target points (twin:
// src/cpu/exact.rs, which states the math), one workgroup of EXACT_WG invocations per point:
//   u_t(x) = (α' - β'α/β)·E[x1 | x] + (β'/β)·x,   E[x1 | x] = Σ_i w_i·x1_i,
//   w_i = softmax_i(ℓ_i),  ℓ_i = -|x - α_t·x1_i|² / (2β_t²)   (i < n_points; t ≤ EXACT_T_MAX).
// Each invocation runs an online log-sum-exp over its share of the points (running max m, sum s
// of exp(ℓ - m), and Σ exp(ℓ - m)·x1), then the workgroup merges the (m, s, w) triples by a tree
// reduction in workgroup memory (rescaling both by exp(m_a - max), exp(m_b - max)), so nothing
// overflows however small β is. `exact_velocity` must be called by the whole workgroup with the
// same (x, t) (uniform control flow); every invocation gets the result.
//
// exact_field_at:  query q = (x, y, t) → out[q] = (u_t(x), 0, 0).
// field_error:     query q draws x0 ~ N(0, I), t ~ U(0,1), x1 = data[h % n] (stream FIELD_ERROR,
//                  keys (seed, reading, 4q + c)), x_t = α·x1 + β·x0; writes queries[q] = (x_t, t, 0)
//                  and out[q] = (u_t(x_t), v_θ(x_t, t)) (the MLP `velocity` of ode_step.wgsl,
//                  spliced in by src/gpu/shaders.rs); the caller averages |v - u|².
// exact_flow_step: one step of the solver's tableau through the exact field (`rk_step` generated
//                  from src/tableau.rs over exact_velocity) for particles i in [first, end) (a
//                  chunk of the n particles): particles[i] ← step, and when record = 1,
//                  traj[(step_index + 1)·n + i] ← it. exact_flow_step_serial: the same, one
//                  invocation per particle over every point (exact_velocity_serial, no workgroup
//                  memory), for few target points.
// Bindings: 0 ep: ExactParams (uniform, dynamic offset: one slot per queued step),
//           1 data: array<vec2<f32>> (read: target points), 2 model: ModelDesc (uniform),
//           3 params (read), 4 queries: array<vec4<f32>> (read_write), 5 out: array<vec4<f32>>
//           (read_write), 6 particles: array<vec2<f32>> (read_write), 7 traj: array<vec2<f32>>
//           (read_write, (steps + 1, n) row-major; a 1-element dummy when not recording).
// Dispatched by src/gpu/exact.rs with one workgroup per query or particle.

const EXACT_WG: u32 = 64u;

struct ExactParams {
    n: u32, n_points: u32, path: u32, solver: u32,
    sigma_min: f32, t: f32, h: f32, seed: u32,
    record: u32, step_index: u32, reading: u32, first: u32,
    end: u32, _p0: u32, _p1: u32, _p2: u32,
}

@group(0) @binding(0) var<uniform> ep: ExactParams;
@group(0) @binding(1) var<storage, read> data: array<vec2<f32>>;
@group(0) @binding(2) var<uniform> model: ModelDesc;
@group(0) @binding(3) var<storage, read> params: array<f32>;
@group(0) @binding(4) var<storage, read_write> queries: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read_write> out: array<vec4<f32>>;
@group(0) @binding(6) var<storage, read_write> particles: array<vec2<f32>>;
@group(0) @binding(7) var<storage, read_write> traj: array<vec2<f32>>;

var<workgroup> red_m: array<f32, EXACT_WG>;
var<workgroup> red_s: array<f32, EXACT_WG>;
var<workgroup> red_w: array<vec2<f32>, EXACT_WG>;
var<private> lid_p: u32;

// A running log-sum-exp over target points: max logit m, s = Σ exp(ℓ - m), w = Σ exp(ℓ - m)·x1.
struct Lse { m: f32, s: f32, w: vec2<f32> }

// Adds point p (logit ℓ = -|x - α·p|²·inv) to the running sums, rescaling them when ℓ is a new max.
fn lse_push(a: Lse, x: vec2<f32>, alpha: f32, inv: f32, p: vec2<f32>) -> Lse {
    let d = x - alpha * p;
    let l = -dot(d, d) * inv;
    if (l > a.m) {
        let r = exp(a.m - l);
        return Lse(l, a.s * r + 1.0, a.w * r + p);
    }
    let e = exp(l - a.m);
    return Lse(a.m, a.s + e, a.w + e * p);
}

// The velocity from E[x1 | x] = w / s at path coefficients c = (α, β, α', β').
fn from_mean(c: vec4<f32>, x: vec2<f32>, mean: vec2<f32>) -> vec2<f32> {
    return (c.z - c.w * c.x / c.y) * mean + (c.w / c.y) * x;
}

// One invocation over every point, no workgroup memory (exact_flow_step_serial): for a few
// target points, where the workgroup version's reduction costs more than the sum itself.
fn exact_velocity_serial(x: vec2<f32>, t_in: f32) -> vec2<f32> {
    let c = path_coefficients(ep.path, min(t_in, EXACT_T_MAX), ep.sigma_min);
    let inv = 1.0 / (2.0 * c.y * c.y);
    var a = Lse(-3.0e38, 0.0, vec2<f32>(0.0));
    for (var j = 0u; j < ep.n_points; j++) {
        a = lse_push(a, x, c.x, inv, data[j]);
    }
    return from_mean(c, x, a.w / a.s);
}

fn exact_velocity(x: vec2<f32>, t_in: f32) -> vec2<f32> {
    let c = path_coefficients(ep.path, min(t_in, EXACT_T_MAX), ep.sigma_min);
    let inv = 1.0 / (2.0 * c.y * c.y);
    var a = Lse(-3.0e38, 0.0, vec2<f32>(0.0));
    for (var j = lid_p; j < ep.n_points; j += EXACT_WG) {
        a = lse_push(a, x, c.x, inv, data[j]);
    }
    workgroupBarrier(); // everyone has read the previous call's result
    red_m[lid_p] = a.m;
    red_s[lid_p] = a.s;
    red_w[lid_p] = a.w;
    workgroupBarrier();
    for (var k = EXACT_WG / 2u; k > 0u; k >>= 1u) {
        if (lid_p < k) {
            let ma = red_m[lid_p];
            let mb = red_m[lid_p + k];
            let mm = max(ma, mb);
            let ra = exp(ma - mm);
            let rb = exp(mb - mm);
            red_m[lid_p] = mm;
            red_s[lid_p] = red_s[lid_p] * ra + red_s[lid_p + k] * rb;
            red_w[lid_p] = red_w[lid_p] * ra + red_w[lid_p + k] * rb;
        }
        workgroupBarrier();
    }
    return from_mean(c, x, red_w[0] / red_s[0]);
}

fn group_index(wid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return wid.x + wid.y * nwg.x;
}

@compute @workgroup_size(EXACT_WG)
fn exact_field_at(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    lid_p = lid;
    // Queries [first, first + n): a chunk of the ones written (src/gpu/exact.rs encode_velocity_chunk).
    let q = ep.first + group_index(wid, nwg);
    if (q >= ep.first + ep.n) { return; }
    let query = queries[q];
    let u = exact_velocity(query.xy, query.z);
    if (lid == 0u) { out[q] = vec4<f32>(u, 0.0, 0.0); }
}

@compute @workgroup_size(EXACT_WG)
fn field_error(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    lid_p = lid;
    let q = group_index(wid, nwg);
    if (q >= ep.n) { return; }
    let x0 = box_muller(unit(hash4(ep.seed, ep.reading, 4u * q, STREAM_FIELD_ERROR)), unit(hash4(ep.seed, ep.reading, 4u * q + 1u, STREAM_FIELD_ERROR)));
    let t = unit(hash4(ep.seed, ep.reading, 4u * q + 2u, STREAM_FIELD_ERROR));
    let x1 = data[hash4(ep.seed, ep.reading, 4u * q + 3u, STREAM_FIELD_ERROR) % ep.n_points];
    let c = path_coefficients(ep.path, t, ep.sigma_min);
    let xt = c.x * x1 + c.y * x0;
    let u = exact_velocity(xt, t);
    if (lid == 0u) {
        queries[q] = vec4<f32>(xt, t, 0.0);
        out[q] = vec4<f32>(u, velocity(xt, t));
    }
}

@compute @workgroup_size(EXACT_WG)
fn exact_flow_step(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    lid_p = lid;
    let i = ep.first + group_index(wid, nwg);
    if (i >= min(ep.end, ep.n)) { return; }
    let y = rk_step(ep.solver, particles[i], ep.t, ep.h);
    workgroupBarrier(); // every invocation has read particles[i]
    if (lid == 0u) {
        particles[i] = y;
        let slot = (ep.step_index + 1u) * ep.n + i;
        if (ep.record == 1u && slot < arrayLength(&traj)) { traj[slot] = y; }
    }
}

// The same step, one invocation per particle (rk_step_serial over exact_velocity_serial), for at
// most EXACT_SERIAL_MAX target points (src/gpu/exact.rs picks it).
@compute @workgroup_size(EXACT_WG)
fn exact_flow_step_serial(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let i = ep.first + group_index(wid, nwg) * EXACT_WG + lid;
    if (i >= min(ep.end, ep.n)) { return; }
    let y = rk_step_serial(ep.solver, particles[i], ep.t, ep.h);
    particles[i] = y;
    let slot = (ep.step_index + 1u) * ep.n + i;
    if (ep.record == 1u && slot < arrayLength(&traj)) { traj[slot] = y; }
}
