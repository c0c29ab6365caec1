// mlp_forward_vec4.wgsl — one hidden layer of the forward pass for software adapters, with vec4
// loads (twin: src/cpu/mlp.rs::forward; same maths as mlp_forward.wgsl::forward_hidden).
//
//   z[b,o] = bias[o] + Σ_k x[b,k]·W[o,k],   a[b,o] = act(z[b,o])
// Used by the `software` variant (src/gpu/trainer.rs) for layers whose widths and buffer offsets
// are multiples of 4 (`vec4_layer`); other layers (the input layer, in = 3) keep forward_hidden.
// Every operand is read as vec4<f32> along k: one invocation makes an 8×4 block of z (samples
// b0..b0+7 × outputs o0..o0+3) from 8 rows of x and 4 rows of W, 12 vec4 loads per 4 columns of
// k for 128 multiply-adds. On SwiftShader each storage load is a bounds-checked per-lane gather,
// and a vec4 load is checked and addressed once for its four floats: this form measured ~1.4×
// the 4×4 scalar-load block on an M-sized layer (docs/BENCHMARKS.md, "Kernel variants").
// Samples past the batch are clamped for loading and skipped on store.
// Bindings: as mlp_forward.wgsl (the layer bind group), viewed as vec4 arrays.
// Dispatched as ⌈B/8⌉·(out/4) invocations, 64 per workgroup.

@group(0) @binding(0) var<uniform> lp: LayerParams;
@group(0) @binding(1) var<storage, read> params4: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> acts4: array<vec4<f32>>;

@compute @workgroup_size(64)
fn forward_vec4(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let o4s = lp.out_dim / 4u;
    let k4s = lp.in_dim / 4u;
    let j = flat_index(gid, nwg, 64u);
    if (j >= o4s * ((lp.batch + 7u) / 8u)) { return; }
    let b0 = (j / o4s) * 8u;
    let o4 = j % o4s;
    let last = lp.batch - 1u;
    let xb = lp.x_offset / 4u;
    let x0 = xb + min(b0, last) * k4s;
    let x1 = xb + min(b0 + 1u, last) * k4s;
    let x2 = xb + min(b0 + 2u, last) * k4s;
    let x3 = xb + min(b0 + 3u, last) * k4s;
    let x4 = xb + min(b0 + 4u, last) * k4s;
    let x5 = xb + min(b0 + 5u, last) * k4s;
    let x6 = xb + min(b0 + 6u, last) * k4s;
    let x7 = xb + min(b0 + 7u, last) * k4s;
    let w0 = lp.w_offset / 4u + 4u * o4 * k4s;
    let w1 = w0 + k4s;
    let w2 = w1 + k4s;
    let w3 = w2 + k4s;
    // One vec4 of outputs per sample, as four named dot-product sums each (named, not an array:
    // a dynamically indexed array may live in memory).
    var s0 = vec4<f32>(0.0);
    var s1 = vec4<f32>(0.0);
    var s2 = vec4<f32>(0.0);
    var s3 = vec4<f32>(0.0);
    var s4 = vec4<f32>(0.0);
    var s5 = vec4<f32>(0.0);
    var s6 = vec4<f32>(0.0);
    var s7 = vec4<f32>(0.0);
    for (var k = 0u; k < k4s; k++) {
        let wa = params4[w0 + k];
        let wb = params4[w1 + k];
        let wc = params4[w2 + k];
        let wd = params4[w3 + k];
        let a0 = acts4[x0 + k];
        s0 += vec4<f32>(dot(a0, wa), dot(a0, wb), dot(a0, wc), dot(a0, wd));
        let a1 = acts4[x1 + k];
        s1 += vec4<f32>(dot(a1, wa), dot(a1, wb), dot(a1, wc), dot(a1, wd));
        let a2 = acts4[x2 + k];
        s2 += vec4<f32>(dot(a2, wa), dot(a2, wb), dot(a2, wc), dot(a2, wd));
        let a3 = acts4[x3 + k];
        s3 += vec4<f32>(dot(a3, wa), dot(a3, wb), dot(a3, wc), dot(a3, wd));
        let a4 = acts4[x4 + k];
        s4 += vec4<f32>(dot(a4, wa), dot(a4, wb), dot(a4, wc), dot(a4, wd));
        let a5 = acts4[x5 + k];
        s5 += vec4<f32>(dot(a5, wa), dot(a5, wb), dot(a5, wc), dot(a5, wd));
        let a6 = acts4[x6 + k];
        s6 += vec4<f32>(dot(a6, wa), dot(a6, wb), dot(a6, wc), dot(a6, wd));
        let a7 = acts4[x7 + k];
        s7 += vec4<f32>(dot(a7, wa), dot(a7, wb), dot(a7, wc), dot(a7, wd));
    }
    let bias = params4[lp.b_offset / 4u + o4];
    store_z4(b0, o4, s0 + bias);
    store_z4(b0 + 1u, o4, s1 + bias);
    store_z4(b0 + 2u, o4, s2 + bias);
    store_z4(b0 + 3u, o4, s3 + bias);
    store_z4(b0 + 4u, o4, s4 + bias);
    store_z4(b0 + 5u, o4, s5 + bias);
    store_z4(b0 + 6u, o4, s6 + bias);
    store_z4(b0 + 7u, o4, s7 + bias);
}

// z and act(z) of sample m, outputs 4·o4..4·o4+3 (skipped past the batch).
fn store_z4(m: u32, o4: u32, z: vec4<f32>) {
    if (m >= lp.batch) { return; }
    let at = m * (lp.out_dim / 4u) + o4;
    acts4[lp.z_offset / 4u + at] = z;
    let k = lp.activation;
    acts4[lp.a_offset / 4u + at] = vec4<f32>(act(k, z.x), act(k, z.y), act(k, z.z), act(k, z.w));
}
