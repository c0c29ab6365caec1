// mlp_backward.wgsl — one layer of the backward pass; the workgroups split by role
// (twin: src/cpu/mlp.rs::backward).
//
// With δ = dL/dz of this layer (B, out), x its input (B, in), W (out, in):
//   role 1, workgroups [0, dw_groups):  dW[o,i] = Σ_b δ[b,o]·x[b,i]  and  db[o] = Σ_b δ[b,o]
//           one invocation per (o, i) with i in 0..=in (i = in is the bias)
//   role 2, the remaining workgroups (only when has_prev = 1):
//           δ_prev[b,i] = act'(z_prev[b,i]) · Σ_o δ[b,o]·W[o,i],  one invocation per (b, i)
// Both roles read only this layer's δ, so they run in one dispatch.
// Bindings: 0 layer: LayerParams (uniform, dynamic offset), 1 params (read), 2 grads (read_write,
//           packed like params), 3 acts (read), 4 deltas (read_write).
// Dispatched by src/gpu/trainer.rs once per layer, last layer first (fused), or as two
// dispatches per layer (split entry points below).

@group(0) @binding(0) var<uniform> lp: LayerParams;
@group(0) @binding(1) var<storage, read> params: array<f32>;
@group(0) @binding(2) var<storage, read_write> grads: array<f32>;
@group(0) @binding(3) var<storage, read> acts: array<f32>;
@group(0) @binding(4) var<storage, read_write> deltas: array<f32>;

@compute @workgroup_size(64)
fn backward_layer(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let group = wid.x + wid.y * nwg.x;
    if (group < lp.dw_groups) {
        weight_grad(group * 64u + lid);
    } else if (lp.has_prev == 1u) {
        input_delta((group - lp.dw_groups) * 64u + lid);
    }
}

// The same two roles as separate dispatches (weight_grads, then input_deltas). Software
// adapters run the fused kernel ~10x slower than the two halves (measured on lavapipe), so
// src/gpu/trainer.rs picks per adapter.
@compute @workgroup_size(64)
fn weight_grads(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    weight_grad(flat_index(gid, nwg, 64u));
}

@compute @workgroup_size(64)
fn input_deltas(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    input_delta(flat_index(gid, nwg, 64u));
}

// Role 1: dW[o,i] (i < in) or db[o] (i = in) for j = o·(in+1) + i.
fn weight_grad(j: u32) {
    let n_in1 = lp.in_dim + 1u;
    if (j >= lp.out_dim * n_in1) { return; }
    let o = j / n_in1;
    let i = j % n_in1;
    var acc = 0.0;
    if (i == lp.in_dim) {
        for (var b = 0u; b < lp.batch; b++) {
            acc += deltas[lp.delta_offset + b * lp.out_dim + o];
        }
        grads[lp.b_offset + o] = acc;
    } else {
        for (var b = 0u; b < lp.batch; b++) {
            acc += deltas[lp.delta_offset + b * lp.out_dim + o] * acts[lp.x_offset + b * lp.in_dim + i];
        }
        grads[lp.w_offset + o * lp.in_dim + i] = acc;
    }
}

// Role 2: δ_prev[b,i] for j = b·in + i.
fn input_delta(j: u32) {
    if (j >= lp.batch * lp.in_dim) { return; }
    let b = j / lp.in_dim;
    let i = j % lp.in_dim;
    var acc = 0.0;
    for (var o = 0u; o < lp.out_dim; o++) {
        acc += deltas[lp.delta_offset + b * lp.out_dim + o] * params[lp.w_offset + o * lp.in_dim + i];
    }
    deltas[lp.delta_prev_offset + j] = acc * act_grad(lp.activation, acts[lp.z_prev_offset + j]);
}
