// ode_adaptive.wgsl — adaptive Dormand–Prince 5(4) sampling of dx/dt = v_θ(x, t), one particle
// per invocation, each with its own step size (twin: src/cpu/adaptive.rs, which states the math:
// FSAL stages k1..k7, error e = b - b*, sc = atol + rtol·max(|x|, |y|), RMS norm ≤ 1 accepts,
// h ← clamp(h·clamp(safety·err^(-1/5), min_factor, max_factor), h_min, h_max), budget max_nfe).
// `velocity(x, t)` is network.wgsl's (prepended by src/gpu/shaders.rs, so there is one copy of
// the MLP, with the query's class and guidance); it reads `model` and `params` below.
// Bindings: 0 ap: AdaptiveParams (uniform), 1 model: ModelDesc (uniform), 2 params (read),
//           3 particles: array<vec2<f32>> (read_write: x(t0) in, x(t1) out),
//           4 traj: array<vec2<f32>> (read_write, (frames + 1, N) row-major; row 0 is left as it
//             is, rows 1..=frames get the states at t0 + (t1-t0)·k/frames by cubic Hermite
//             interpolation inside accepted steps; a 1-element dummy when frames = 0),
//           5 stats: array<u32> (read_write, 2 per particle: field evaluations, 1 if finished;
//             written when the particle is done),
//           6 state: array<vec4<u32>> (read_write, 2 per particle between chunks: the bits of
//             (t, h, k1.x, k1.y), then (evaluations, next frame, status, 0)),
//           7 running: atomic<u32> (read_write: particles of this chunk still running at its end).
// Chunks (src/budget.rs ChunkPlan): a dispatch takes particles [first, end) on from where their
// last chunk left them (start = 1: from x(t0)) until their evaluations would pass `limit` (this
// chunk's share of the budget `max_nfe`), the budget runs out (status 2) or they reach t1
// (status 1). Pausing at the top of the step loop and keeping (t, h, k1, counters) bit for bit
// makes any split of an integration compute exactly what one dispatch computes.
// The DP_* tableau constants are generated from src/tableau.rs (spliced in by src/gpu/shaders.rs).
// Dispatched by src/gpu/sampler.rs (`integrate_adaptive`, `advance`), one invocation per particle.

struct AdaptiveParams {
    n: u32, frames: u32, max_nfe: u32, first: u32,
    t0: f32, t1: f32, rtol: f32, atol: f32,
    safety: f32, min_factor: f32, max_factor: f32, h0: f32,
    h_min: f32, h_max: f32, limit: u32, start: u32,
    end: u32, _c0: u32, _c1: u32, _c2: u32,
}

const RUNNING: u32 = 0u;
const FINISHED: u32 = 1u;
const OUT_OF_BUDGET: u32 = 2u;

@group(0) @binding(0) var<uniform> ap: AdaptiveParams;
@group(0) @binding(1) var<uniform> model: ModelDesc;
@group(0) @binding(2) var<storage, read> params: array<f32>;
@group(0) @binding(3) var<storage, read_write> particles: array<vec2<f32>>;
@group(0) @binding(4) var<storage, read_write> traj: array<vec2<f32>>;
@group(0) @binding(5) var<storage, read_write> stats: array<u32>;
@group(0) @binding(6) var<storage, read_write> state: array<vec4<u32>>;
@group(0) @binding(7) var<storage, read_write> running: atomic<u32>;


fn record(k: u32, i: u32, y: vec2<f32>) {
    let slot = k * ap.n + i;
    if (slot < arrayLength(&traj)) { traj[slot] = y; }
}

fn hermite(y0: vec2<f32>, f0: vec2<f32>, y1: vec2<f32>, f1: vec2<f32>, h: f32, theta: f32) -> vec2<f32> {
    let t2 = theta * theta;
    let t3 = t2 * theta;
    let h00 = 2.0 * t3 - 3.0 * t2 + 1.0;
    let h10 = t3 - 2.0 * t2 + theta;
    let h01 = -2.0 * t3 + 3.0 * t2;
    let h11 = t3 - t2;
    return h00 * y0 + h10 * h * f0 + h01 * y1 + h11 * h * f1;
}

@compute @workgroup_size(64)
fn ode_adaptive(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = ap.first + flat_index(gid, nwg, 64u);
    if (i >= ap.end || i >= ap.n) { return; }
    let span = ap.t1 - ap.t0;
    let h_min = ap.h_min * span;
    let h_max = ap.h_max * span;
    var x = particles[i];
    var t: f32;
    var h: f32;
    var k1: vec2<f32>;
    var nfe: u32;
    var next_frame: u32;
    var status = RUNNING;
    if (ap.start == 1u) {
        t = ap.t0;
        h = ap.h0 * span;
        k1 = velocity(x, t);
        nfe = 1u;
        next_frame = 1u;
    } else {
        let a = state[2u * i];
        let b = state[2u * i + 1u];
        t = bitcast<f32>(a.x);
        h = bitcast<f32>(a.y);
        k1 = vec2<f32>(bitcast<f32>(a.z), bitcast<f32>(a.w));
        nfe = b.x;
        next_frame = b.y;
        status = b.z;
        if (status != RUNNING) { return; }
    }
    loop {
        if (nfe + 6u > ap.max_nfe) {
            status = OUT_OF_BUDGET;
            break;
        }
        if (nfe + 6u > ap.limit) { break; } // paused: the next chunk goes on from here
        let last = ap.t1 - t <= h;
        if (last) { h = ap.t1 - t; }
        let k2 = velocity(x + h * (DP_A21 * k1), t + DP_C2 * h);
        let k3 = velocity(x + h * (DP_A31 * k1 + DP_A32 * k2), t + DP_C3 * h);
        let k4 = velocity(x + h * (DP_A41 * k1 + DP_A42 * k2 + DP_A43 * k3), t + DP_C4 * h);
        let k5 = velocity(x + h * (DP_A51 * k1 + DP_A52 * k2 + DP_A53 * k3 + DP_A54 * k4), t + DP_C5 * h);
        let k6 = velocity(x + h * (DP_A61 * k1 + DP_A62 * k2 + DP_A63 * k3 + DP_A64 * k4 + DP_A65 * k5), t + h);
        let y = x + h * (DP_B1 * k1 + DP_B3 * k3 + DP_B4 * k4 + DP_B5 * k5 + DP_B6 * k6);
        var t_new = t + h;
        if (last) { t_new = ap.t1; }
        let k7 = velocity(y, t_new);
        nfe += 6u;
        let err = vec2<f32>(0.0) + h * (DP_E1 * k1 + DP_E3 * k3 + DP_E4 * k4 + DP_E5 * k5 + DP_E6 * k6 + DP_E7 * k7);
        let sc = ap.atol + ap.rtol * max(abs(x), abs(y));
        let r = err / sc;
        let err_norm = sqrt(0.5 * (r.x * r.x + r.y * r.y));
        let accept = err_norm <= 1.0 || h <= h_min;
        var factor = ap.max_factor;
        if (err_norm != 0.0) { factor = clamp(ap.safety * pow(err_norm, -0.2), ap.min_factor, ap.max_factor); }
        if (accept) {
            loop {
                if (ap.frames == 0u || next_frame > ap.frames) { break; }
                let tf = ap.t0 + span * (f32(next_frame) / f32(ap.frames));
                if (next_frame < ap.frames && tf <= t_new) {
                    record(next_frame, i, hermite(x, k1, y, k7, h, (tf - t) / h));
                } else if (next_frame == ap.frames && last) {
                    record(next_frame, i, y);
                } else {
                    break;
                }
                next_frame += 1u;
            }
            x = y;
            k1 = k7;
            t = t_new;
            if (last) {
                status = FINISHED;
                break;
            }
        } else {
            factor = min(factor, 1.0);
        }
        h = clamp(h * factor, h_min, h_max);
    }
    if (status == RUNNING) {
        atomicAdd(&running, 1u);
    } else {
        loop {
            if (ap.frames == 0u || next_frame > ap.frames) { break; }
            record(next_frame, i, x);
            next_frame += 1u;
        }
        stats[2u * i] = nfe;
        stats[2u * i + 1u] = select(0u, 1u, status == FINISHED);
    }
    particles[i] = x;
    state[2u * i] = vec4<u32>(bitcast<u32>(t), bitcast<u32>(h), bitcast<u32>(k1.x), bitcast<u32>(k1.y));
    state[2u * i + 1u] = vec4<u32>(nfe, next_frame, status, 0u);
}
