// mlp_backward_vec4.wgsl — one layer of the backward pass for software adapters, with vec4
// loads (twin: src/cpu/mlp.rs::backward; same maths and roles as mlp_backward.wgsl::backward_layer).
//
//   dW[o,i] = Σ_b δ[b,o]·x[b,i],  db[o] = Σ_b δ[b,o]
//   δ_prev[b,i] = act'(z_prev[b,i]) · Σ_o δ[b,o]·W[o,i]                      (only when has_prev)
// Used by the `software` variant (src/gpu/trainer.rs) for layers whose widths and buffer offsets
// are multiples of 4 (`vec4_layer`); other layers keep backward_layer. One dispatch per layer,
// split by workgroup into two roles that both read only this layer's δ, with no workgroup memory
// or barriers (on SwiftShader a barrier runs the whole dispatch as coroutines):
//   dW/db: one 8×4 block dW[o0..o0+7, i0..i0+3] per invocation; each sample loads δ[b, o0..o0+7]
//          (2 vec4) and x[b, i0..i0+3] (1 vec4) for 32 multiply-adds. Blocks with i0 = 0 also
//          write db. ⌈out/8⌉·(in/4) invocations (the second half of a block past `out` is clamped
//          for loading and not stored).
//   δ_prev: one 8×4 block δ_prev[b0..b0+7, i0..i0+3] per invocation; each 4 outputs o load
//          δ[b, o..o+3] for 8 samples and W[o..o+3, i0..i0+3] (12 vec4) for 128 multiply-adds.
//          ⌈B/8⌉·(in/4) invocations (samples past the batch clamped, not stored).
// Bindings: as mlp_backward.wgsl (the backward bind group), viewed as vec4 arrays.
// Dispatched as ⌈dW invocations/64⌉ + ⌈δ_prev invocations/64⌉ workgroups of 64 (`vec4_groups`).

@group(0) @binding(0) var<uniform> lp: LayerParams;
@group(0) @binding(1) var<storage, read> params4: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> grads4: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> acts4: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> deltas4: array<vec4<f32>>;

@compute @workgroup_size(64)
fn backward_vec4(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32, @builtin(num_workgroups) nwg: vec3<u32>) {
    let group = wid.x + wid.y * nwg.x;
    let i4s = lp.in_dim / 4u;
    let dw_groups = (((lp.out_dim + 7u) / 8u) * i4s + 63u) / 64u;
    if (group < dw_groups) {
        weight_grad4(group * 64u + lid);
    } else if (lp.has_prev == 1u) {
        input_delta4((group - dw_groups) * 64u + lid);
    }
}

fn weight_grad4(j: u32) {
    let i4s = lp.in_dim / 4u;
    let o4s = lp.out_dim / 4u;
    if (j >= ((lp.out_dim + 7u) / 8u) * i4s) { return; }
    let oa = (j / i4s) * 2u;          // first vec4 of outputs (o0 = 4·oa)
    let ob = min(oa + 1u, o4s - 1u);  // second (clamped past the layer width)
    let i4 = j % i4s;
    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    var acc4 = vec4<f32>(0.0);
    var acc5 = vec4<f32>(0.0);
    var acc6 = vec4<f32>(0.0);
    var acc7 = vec4<f32>(0.0);
    var bsa = vec4<f32>(0.0);
    var bsb = vec4<f32>(0.0);
    var d = lp.delta_offset / 4u;
    var x = lp.x_offset / 4u + i4;
    for (var b = 0u; b < lp.batch; b++) {
        let da = deltas4[d + oa];
        let db = deltas4[d + ob];
        let xb = acts4[x];
        acc0 += da.x * xb;
        acc1 += da.y * xb;
        acc2 += da.z * xb;
        acc3 += da.w * xb;
        acc4 += db.x * xb;
        acc5 += db.y * xb;
        acc6 += db.z * xb;
        acc7 += db.w * xb;
        bsa += da;
        bsb += db;
        d += o4s;
        x += i4s;
    }
    let w = lp.w_offset / 4u + 4u * oa * i4s + i4;
    grads4[w] = acc0;
    grads4[w + i4s] = acc1;
    grads4[w + 2u * i4s] = acc2;
    grads4[w + 3u * i4s] = acc3;
    let second = oa + 1u < o4s;
    if (second) {
        grads4[w + 4u * i4s] = acc4;
        grads4[w + 5u * i4s] = acc5;
        grads4[w + 6u * i4s] = acc6;
        grads4[w + 7u * i4s] = acc7;
    }
    if (i4 == 0u) {
        grads4[lp.b_offset / 4u + oa] = bsa;
        if (second) { grads4[lp.b_offset / 4u + oa + 1u] = bsb; }
    }
}

fn input_delta4(j: u32) {
    let i4s = lp.in_dim / 4u;
    let o4s = lp.out_dim / 4u;
    if (j >= ((lp.batch + 7u) / 8u) * i4s) { return; }
    let b0 = (j / i4s) * 8u;
    let i4 = j % i4s;
    let last = lp.batch - 1u;
    let db = lp.delta_offset / 4u;
    let d0 = db + min(b0, last) * o4s;
    let d1 = db + min(b0 + 1u, last) * o4s;
    let d2 = db + min(b0 + 2u, last) * o4s;
    let d3 = db + min(b0 + 3u, last) * o4s;
    let d4 = db + min(b0 + 4u, last) * o4s;
    let d5 = db + min(b0 + 5u, last) * o4s;
    let d6 = db + min(b0 + 6u, last) * o4s;
    let d7 = db + min(b0 + 7u, last) * o4s;
    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    var acc4 = vec4<f32>(0.0);
    var acc5 = vec4<f32>(0.0);
    var acc6 = vec4<f32>(0.0);
    var acc7 = vec4<f32>(0.0);
    var w = lp.w_offset / 4u + i4;
    for (var o = 0u; o < o4s; o++) {
        // W[4o..4o+3, i0..i0+3]: four rows of the weight matrix, i0 = 4·i4.
        let wa = params4[w];
        let wb = params4[w + i4s];
        let wc = params4[w + 2u * i4s];
        let wd = params4[w + 3u * i4s];
        let e0 = deltas4[d0 + o];
        acc0 += e0.x * wa + e0.y * wb + e0.z * wc + e0.w * wd;
        let e1 = deltas4[d1 + o];
        acc1 += e1.x * wa + e1.y * wb + e1.z * wc + e1.w * wd;
        let e2 = deltas4[d2 + o];
        acc2 += e2.x * wa + e2.y * wb + e2.z * wc + e2.w * wd;
        let e3 = deltas4[d3 + o];
        acc3 += e3.x * wa + e3.y * wb + e3.z * wc + e3.w * wd;
        let e4 = deltas4[d4 + o];
        acc4 += e4.x * wa + e4.y * wb + e4.z * wc + e4.w * wd;
        let e5 = deltas4[d5 + o];
        acc5 += e5.x * wa + e5.y * wb + e5.z * wc + e5.w * wd;
        let e6 = deltas4[d6 + o];
        acc6 += e6.x * wa + e6.y * wb + e6.z * wc + e6.w * wd;
        let e7 = deltas4[d7 + o];
        acc7 += e7.x * wa + e7.y * wb + e7.z * wc + e7.w * wd;
        w += 4u * i4s;
    }
    store_dx4v(b0, i4, acc0);
    store_dx4v(b0 + 1u, i4, acc1);
    store_dx4v(b0 + 2u, i4, acc2);
    store_dx4v(b0 + 3u, i4, acc3);
    store_dx4v(b0 + 4u, i4, acc4);
    store_dx4v(b0 + 5u, i4, acc5);
    store_dx4v(b0 + 6u, i4, acc6);
    store_dx4v(b0 + 7u, i4, acc7);
}

fn store_dx4v(b: u32, i4: u32, row: vec4<f32>) {
    if (b >= lp.batch) { return; }
    let at = b * (lp.in_dim / 4u) + i4;
    let z = acts4[lp.z_prev_offset / 4u + at];
    let k = lp.activation;
    deltas4[lp.delta_prev_offset / 4u + at] = row * vec4<f32>(act_grad(k, z.x), act_grad(k, z.y), act_grad(k, z.z), act_grad(k, z.w));
}
