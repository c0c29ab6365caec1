// cfm_loss.wgsl — the output layer fused with the CFM loss and its gradient
// (twin: src/cpu/mlp.rs::forward's last layer and ::loss_and_grad).
//
//   v[b,:] = bias + W·a[b,:]           (W is (2, in), no activation)
//   loss_terms[b] = ‖v_b - u_b‖²        (the mean over b is taken in adam.wgsl's extra workgroup)
//   δ_out[b,:] = dL/dv = 2(v_b - u_b)/B  for L = (1/B) Σ_b ‖v_b - u_b‖²
// Layouts: a (B, in) at x_offset, v (B, 2) at z_offset, u (B, 2) at target_offset in acts;
// δ_out (B, 2) at delta_offset and loss_terms (B) at loss_offset in deltas.
// Bindings: as mlp_forward.wgsl. Dispatched once per step by src/gpu/trainer.rs, as one of:
//   output_loss       (software adapters) one invocation per sample.
//   output_loss_rows  (real GPUs) 8 samples per 256-invocation workgroup, 32 invocations per
//                     sample: coalesced reads of a[b,:], a tree reduction in workgroup memory, and
//                     the output layer's input deltas fused in (it needs only this sample's δ_out):
//                       δ_prev[b,i] = act'(z_prev[b,i])·Σ_o δ_out[b,o]·W[o,i]
//                     at delta_prev_offset / z_prev_offset, so the output layer needs no
//                     backward dispatch of its own for δ (its dW runs in mlp_backward.wgsl).

@group(0) @binding(0) var<uniform> lp: LayerParams;
@group(0) @binding(1) var<storage, read> params: array<f32>;
@group(0) @binding(2) var<storage, read_write> acts: array<f32>;
@group(0) @binding(3) var<storage, read_write> deltas: array<f32>;

@compute @workgroup_size(64)
fn output_loss(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let b = flat_index(gid, nwg, 64u);
    if (b >= lp.batch) { return; }
    let x = lp.x_offset + b * lp.in_dim;
    let w0 = lp.w_offset;
    let w1 = lp.w_offset + lp.in_dim;
    var v = vec2<f32>(params[lp.b_offset], params[lp.b_offset + 1u]);
    for (var k = 0u; k < lp.in_dim; k++) {
        let a = acts[x + k];
        v += a * vec2<f32>(params[w0 + k], params[w1 + k]);
    }
    acts[lp.z_offset + 2u * b] = v.x;
    acts[lp.z_offset + 2u * b + 1u] = v.y;
    let u = vec2<f32>(acts[lp.target_offset + 2u * b], acts[lp.target_offset + 2u * b + 1u]);
    let e = v - u;
    deltas[lp.loss_offset + b] = dot(e, e);
    let g = 2.0 * e / f32(lp.batch);
    deltas[lp.delta_offset + 2u * b] = g.x;
    deltas[lp.delta_offset + 2u * b + 1u] = g.y;
}

const ROWS: u32 = 8u;   // samples per workgroup
const LANES: u32 = 32u; // invocations per sample

var<workgroup> partial: array<vec2<f32>, 256>;
var<workgroup> grad_out: array<vec2<f32>, 8>;

@compute @workgroup_size(256)
fn output_loss_rows(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let r = lid / LANES;
    let lane = lid % LANES;
    let b = (wid.x + wid.y * nwg.x) * ROWS + r;
    let valid = b < lp.batch;
    let n_in = lp.in_dim;
    let x = lp.x_offset + b * n_in;
    let w0 = lp.w_offset;
    let w1 = lp.w_offset + n_in;
    var v = vec2<f32>(0.0);
    if (valid) {
        for (var k = lane; k < n_in; k += LANES) {
            v += acts[x + k] * vec2<f32>(params[w0 + k], params[w1 + k]);
        }
    }
    partial[lid] = v;
    workgroupBarrier();
    for (var s = LANES / 2u; s > 0u; s = s / 2u) {
        if (lane < s) { partial[lid] += partial[lid + s]; }
        workgroupBarrier();
    }
    if (lane == 0u && valid) {
        let out = partial[lid] + vec2<f32>(params[lp.b_offset], params[lp.b_offset + 1u]);
        acts[lp.z_offset + 2u * b] = out.x;
        acts[lp.z_offset + 2u * b + 1u] = out.y;
        let u = vec2<f32>(acts[lp.target_offset + 2u * b], acts[lp.target_offset + 2u * b + 1u]);
        let e = out - u;
        deltas[lp.loss_offset + b] = dot(e, e);
        let g = 2.0 * e / f32(lp.batch);
        deltas[lp.delta_offset + 2u * b] = g.x;
        deltas[lp.delta_offset + 2u * b + 1u] = g.y;
        grad_out[r] = g;
    }
    workgroupBarrier();
    if (valid && lp.has_prev == 1u) {
        let g = grad_out[r];
        let xp = b * n_in;
        for (var k = lane; k < n_in; k += LANES) {
            let d = g.x * params[w0 + k] + g.y * params[w1 + k];
            deltas[lp.delta_prev_offset + xp + k] = d * act_grad(lp.activation, acts[lp.z_prev_offset + xp + k]);
        }
    }
}
