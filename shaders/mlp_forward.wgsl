// mlp_forward.wgsl — one hidden layer of the MLP forward pass, bias and activation fused
// (twin: src/cpu/mlp.rs::forward).
//
//   z[b,o] = bias[o] + Σ_k x[b,k]·W[o,k],   a[b,o] = act(z[b,o])
// Layouts (all offsets in floats, from LayerParams): W (out, in) row-major at w_offset,
// bias (out) at b_offset; x (B, in) at x_offset; z and a (B, out) at z_offset / a_offset.
// Both z and a are kept: backward needs act'(z) and the next layer's input a.
// Bindings: 0 layer: LayerParams (uniform, dynamic offset), 1 params (read),
//           2 acts (read_write), 3 deltas (unused here; shared layout with cfm_loss.wgsl).
// Dispatched by src/gpu/trainer.rs once per hidden layer, one invocation per (b, o).

@group(0) @binding(0) var<uniform> lp: LayerParams;
@group(0) @binding(1) var<storage, read> params: array<f32>;
@group(0) @binding(2) var<storage, read_write> acts: array<f32>;
@group(0) @binding(3) var<storage, read_write> deltas: array<f32>;

@compute @workgroup_size(64)
fn forward_hidden(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let j = flat_index(gid, nwg, 64u);
    if (j >= lp.batch * lp.out_dim) { return; }
    let b = j / lp.out_dim;
    let o = j % lp.out_dim;
    let x = lp.x_offset + b * lp.in_dim;
    let w = lp.w_offset + o * lp.in_dim;
    var acc = params[lp.b_offset + o];
    for (var k = 0u; k < lp.in_dim; k++) {
        acc += acts[x + k] * params[w + k];
    }
    acts[lp.z_offset + j] = acc;
    acts[lp.a_offset + j] = act(lp.activation, acc);
}
