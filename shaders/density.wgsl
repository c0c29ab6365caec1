// density.wgsl — exact log-likelihood of points under the learned flow (twin: src/cpu/density.rs).
//
// The flow dx/dt = v(x, t) carries p0 = N(0, I) at t = 0 to p1 at t = 1, and along a trajectory
// d log p_t(x_t)/dt = -div v(x_t, t). Each invocation takes one point x1 and integrates the
// augmented state (x, ℓ) with dℓ/dt = div v backwards from t = 1 to t = 0 in `steps` equal steps
// (one step of the solver's Butcher tableau, `rk_step` generated from src/tableau.rs), from ℓ = 0, so
//   log p1(x1) = log N(x(0); 0, I) + ℓ(0),   ℓ(0) = -∫_0^1 div v dt.
// div v = ∂v_x/∂x + ∂v_y/∂y is exact: the MLP is evaluated in forward mode with the two tangents
// e_x and e_y carried through every layer (value, ∂/∂x, ∂/∂y per hidden unit). Conditional and
// MeanFlow networks read their extra inputs as in network.wgsl (r = t; the query's class, mixed
// with classifier-free guidance when the ModelDesc asks for it).
// A long evaluation runs in chunks (src/budget.rs ChunkPlan): a dispatch takes points
// [first, end) through steps [k_begin, k_end); between chunks the augmented state waits in
// `state` (k_begin = 0 starts from the points, k_end = steps writes log p).
// Bindings: 0 dp: DensityParams (uniform), 1 model: ModelDesc (uniform, per layer
//           (in, out, w_offset, b_offset)), 2 params (read), 3 points: array<vec2<f32>> (read),
//           4 log_p: array<f32> (read_write, one per point),
//           5 state: array<vec4<f32>> (read_write, (x, y, ℓ, 0) per point between chunks).
// Dispatched by src/gpu/density.rs, one invocation per point of the chunk.

const LOG_2PI: f32 = 1.8378770664093453;

struct DensityParams {
    n: u32, steps: u32, solver: u32, first: u32,
    end: u32, k_begin: u32, k_end: u32, _pad: u32,
}

@group(0) @binding(0) var<uniform> dp: DensityParams;
@group(0) @binding(1) var<uniform> model: ModelDesc;
@group(0) @binding(2) var<storage, read> params: array<f32>;
@group(0) @binding(3) var<storage, read> points: array<vec2<f32>>;
@group(0) @binding(4) var<storage, read_write> log_p: array<f32>;
@group(0) @binding(5) var<storage, read_write> state: array<vec4<f32>>;

// (v_x, v_y, div v) at (x, t) of the sampler's field (network.wgsl's guided_net at r = t): the
// query's class, and for a guided query the same linear mix of both evaluations (divergence is
// linear in the field).
fn field_and_divergence(x: vec2<f32>, t: f32) -> vec3<f32> {
    // A loop over the (one or two) evaluations, so the network is inlined once (see network.wgsl).
    var fc = vec3<f32>(0.0);
    var out = vec3<f32>(0.0);
    for (var e = 0u; e <= model.guided; e++) {
        let f = net_divergence(x, t, select(model.query_column, model.null_column, e == 1u));
        if (e == 0u) {
            fc = f;
            out = f;
        } else {
            out = f + model.guidance * (fc - f);
        }
    }
    return out;
}

// (v_x, v_y, div v) of the network at (x, t, r = t, one-hot column col; 0: none).
fn net_divergence(x: vec2<f32>, t: f32, col: u32) -> vec3<f32> {
    // Per hidden unit: value, d/dx, d/dy; two buffers to ping-pong between layers.
    var h: array<array<vec3<f32>, HIDDEN>, 2>;
    let first = model.layers[0];
    for (var o = 0u; o < first.y; o++) {
        let w = first.z + first.x * o;
        var z = params[first.w + o] + params[w] * x.x + params[w + 1u] * x.y + params[w + 2u] * t;
        if (model.r_column != 0u) { z += params[w + model.r_column] * t; }
        if (col != 0u) { z += params[w + col]; }
        let g = act_grad(model.activation, z);
        h[0][o] = vec3<f32>(act(model.activation, z), g * params[w], g * params[w + 1u]);
    }
    var cur = 0u;
    for (var l = 1u; l + 1u < model.n_layers; l++) {
        let L = model.layers[l];
        let nxt = 1u - cur;
        for (var o = 0u; o < L.y; o++) {
            let w = L.z + o * L.x;
            var z = vec3<f32>(params[L.w + o], 0.0, 0.0);
            for (var k = 0u; k < L.x; k++) {
                z += params[w + k] * h[cur][k];
            }
            let g = act_grad(model.activation, z.x);
            h[nxt][o] = vec3<f32>(act(model.activation, z.x), g * z.y, g * z.z);
        }
        cur = nxt;
    }
    let last = model.layers[model.n_layers - 1u];
    var vx = vec3<f32>(params[last.w], 0.0, 0.0);
    var vy = vec3<f32>(params[last.w + 1u], 0.0, 0.0);
    for (var k = 0u; k < last.x; k++) {
        vx += params[last.z + k] * h[cur][k];
        vy += params[last.z + last.x + k] * h[cur][k];
    }
    return vec3<f32>(vx.x, vy.x, vx.y + vy.z);
}

@compute @workgroup_size(64)
fn log_density(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = dp.first + flat_index(gid, nwg, 64u);
    if (i >= dp.end || i >= dp.n) { return; }
    // Augmented state s = (x, y, ℓ), ds/dt = field_and_divergence.
    var s: vec3<f32>;
    if (dp.k_begin == 0u) {
        s = vec3<f32>(points[i], 0.0);
    } else {
        s = state[i].xyz;
    }
    let h = -1.0 / f32(dp.steps);
    for (var k = dp.k_begin; k < dp.k_end; k++) {
        let t = 1.0 - f32(k) / f32(dp.steps);
        s = rk_step(dp.solver, s, t, h);
    }
    if (dp.k_end >= dp.steps) {
        log_p[i] = -LOG_2PI - 0.5 * dot(s.xy, s.xy) + s.z;
    } else {
        state[i] = vec4<f32>(s, 0.0);
    }
}
