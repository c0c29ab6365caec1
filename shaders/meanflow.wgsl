// meanflow.wgsl — MeanFlow training targets (twin: src/cpu/meanflow.rs::write_targets, which
// derives the identity and the time convention).
//
// For each sample b of the batch (input row (z, t, r, class…) and target v = the conditional
// velocity, both written by batch.wgsl), the network u(z, r, t) and its total time derivative
// along the flow, du/dt = v·∂_z u + ∂_t u, are computed together in forward mode: every unit
// carries (value, derivative along the tangent (dz, dt, dr) = (v, 1, 0)), so
//   first layer  z_o = b_o + Σ_k W[o,k]·in_k,   dz_o = W[o,0]·v_x + W[o,1]·v_y + W[o,2]
//   hidden       a = act(z), da = act'(z)·dz,   then z' = b + W·a, dz' = W·da
//   output       u = b + W·a, du = W·da.
// The target is overwritten with u_tgt = v - (t - r)·du/dt; the following forward/loss/backward
// dispatches regress u_θ onto it as a constant (the paper's stop-gradient).
// Bindings: 0 model: ModelDesc (uniform: the layer table, r_column), 1 params (read),
//           2 acts (read_write: input rows (B, in_dim) at 0, targets (B, 2) at target_offset),
//           3 mp: MeanFlowParams (uniform).
// Dispatched by src/gpu/trainer.rs once per step after the batch, one invocation per sample,
// the hidden vector in two private arrays of HIDDEN (value, derivative) pairs.

struct MeanFlowParams {
    batch: u32, in_dim: u32, target_offset: u32, _pad: u32,
}

@group(0) @binding(0) var<uniform> model: ModelDesc;
@group(0) @binding(1) var<storage, read> params: array<f32>;
@group(0) @binding(2) var<storage, read_write> acts: array<f32>;
@group(0) @binding(3) var<uniform> mp: MeanFlowParams;

@compute @workgroup_size(64)
fn meanflow_targets(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let b = flat_index(gid, nwg, 64u);
    if (b >= mp.batch) { return; }
    let row = mp.in_dim * b;
    let tgt = mp.target_offset + 2u * b;
    let v = vec2<f32>(acts[tgt], acts[tgt + 1u]);
    var h: array<array<vec2<f32>, HIDDEN>, 2>;
    let first = model.layers[0];
    for (var o = 0u; o < first.y; o++) {
        let w = first.z + first.x * o;
        var z = params[first.w + o];
        for (var k = 0u; k < first.x; k++) {
            z += acts[row + k] * params[w + k];
        }
        let dz = params[w] * v.x + params[w + 1u] * v.y + params[w + 2u];
        h[0][o] = vec2<f32>(act(model.activation, z), act_grad(model.activation, z) * dz);
    }
    var cur = 0u;
    for (var l = 1u; l + 1u < model.n_layers; l++) {
        let L = model.layers[l];
        let nxt = 1u - cur;
        for (var o = 0u; o < L.y; o++) {
            let w = L.z + o * L.x;
            var z = vec2<f32>(params[L.w + o], 0.0);
            for (var k = 0u; k < L.x; k++) {
                z += h[cur][k] * params[w + k];
            }
            h[nxt][o] = vec2<f32>(act(model.activation, z.x), act_grad(model.activation, z.x) * z.y);
        }
        cur = nxt;
    }
    let last = model.layers[model.n_layers - 1u];
    var ux = vec2<f32>(params[last.w], 0.0);
    var uy = vec2<f32>(params[last.w + 1u], 0.0);
    for (var k = 0u; k < last.x; k++) {
        ux += h[cur][k] * params[last.z + k];
        uy += h[cur][k] * params[last.z + last.x + k];
    }
    let gap = acts[row + 2u] - acts[row + model.r_column];
    acts[tgt] = v.x - gap * ux.y;
    acts[tgt + 1u] = v.y - gap * uy.y;
}
