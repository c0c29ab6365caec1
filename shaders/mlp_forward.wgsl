// mlp_forward.wgsl — one hidden layer of the MLP forward pass, bias and activation fused
// (twin: src/cpu/mlp.rs::forward).
//
//   z[b,o] = bias[o] + Σ_k x[b,k]·W[o,k],   a[b,o] = act(z[b,o])
// Layouts (all offsets in floats, from LayerParams): W (out, in) row-major at w_offset,
// bias (out) at b_offset; x (B, in) at x_offset; z and a (B, out) at z_offset / a_offset.
// Both z and a are kept: backward needs act'(z) and the next layer's input a.
// Bindings: 0 layer: LayerParams (uniform, dynamic offset), 1 params (read),
//           2 acts (read_write), 3 deltas (unused here; shared layout with cfm_loss.wgsl).
// Dispatched by src/gpu/trainer.rs once per hidden layer, in one of two variants
// (KernelVariant, chosen per adapter):
//   forward_hidden  (software adapters: lavapipe, SwiftShader) one 4×4 register block of z per
//                   invocation, no workgroup memory or barriers (expensive on CPU emulation).
//                   Dispatched as ⌈B/4⌉·⌈out/4⌉ invocations.
//   forward_tiled   (real GPUs) a 64×64 tile of z per 256-invocation workgroup, each invocation
//                   a 4×4 register block; x and W stream through workgroup memory 16 columns of
//                   k at a time. Dispatched as (⌈out/64⌉, ⌈B/64⌉) workgroups.

@group(0) @binding(0) var<uniform> lp: LayerParams;
@group(0) @binding(1) var<storage, read> params: array<f32>;
@group(0) @binding(2) var<storage, read_write> acts: array<f32>;
@group(0) @binding(3) var<storage, read_write> deltas: array<f32>;

@compute @workgroup_size(64)
fn forward_hidden(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    // One 4×4 register block per invocation: samples b0..b0+3 × outputs o0..o0+3. Each k loads
    // 4 x and 4 W values for 16 multiply-adds (the one-output form loads 2 per multiply-add;
    // on CPU emulation every storage load is a bounds-checked gather, so loads set the pace).
    // Rows past the batch or the layer width are clamped for loading and skipped on store.
    let o_blocks = (lp.out_dim + 3u) / 4u;
    let j = flat_index(gid, nwg, 64u);
    if (j >= o_blocks * ((lp.batch + 3u) / 4u)) { return; }
    let b0 = (j / o_blocks) * 4u;
    let o0 = (j % o_blocks) * 4u;
    let x = rows4(lp.x_offset, b0, lp.batch, lp.in_dim);
    let w = rows4(lp.w_offset, o0, lp.out_dim, lp.in_dim);
    let bias = bias4(o0);
    var acc0 = bias;
    var acc1 = bias;
    var acc2 = bias;
    var acc3 = bias;
    for (var k = 0u; k < lp.in_dim; k++) {
        let wk = vec4<f32>(params[w.x + k], params[w.y + k], params[w.z + k], params[w.w + k]);
        acc0 += acts[x.x + k] * wk;
        acc1 += acts[x.y + k] * wk;
        acc2 += acts[x.z + k] * wk;
        acc3 += acts[x.w + k] * wk;
    }
    store_z(b0, o0, acc0);
    store_z(b0 + 1u, o0, acc1);
    store_z(b0 + 2u, o0, acc2);
    store_z(b0 + 3u, o0, acc3);
}

// Tile shape: TILE×TILE outputs per workgroup, KT columns of k per stage. A stage holds
// tile[k][m] for k < KT, m < TILE as vec4 rows padded to ROW4 vec4s (68 floats) so the
// transposing stores hit distinct banks.
const TILE: u32 = 64u;
const KT: u32 = 16u;
const ROW4: u32 = 17u;

var<workgroup> tile_x: array<vec4<f32>, 272>; // KT * ROW4
var<workgroup> tile_w: array<vec4<f32>, 272>;

@compute @workgroup_size(256)
fn forward_tiled(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let m0 = wid.y * TILE; // first sample of the tile
    let n0 = wid.x * TILE; // first output unit of the tile
    let tx = lid % 16u;
    let ty = lid / 16u;
    let k_len = lp.in_dim;
    // Four named rows, not an array: a dynamically indexed array may be placed in local memory.
    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    for (var k0 = 0u; k0 < k_len; k0 += KT) {
        // Both operands are k-contiguous: 16 consecutive invocations read 16 consecutive floats.
        for (var e = 0u; e < 4u; e++) {
            let idx = lid + e * 256u;
            let r = idx / KT;
            let c = idx % KT;
            let k = k0 + c;
            var vx = 0.0;
            var vw = 0.0;
            if (k < k_len) {
                if (m0 + r < lp.batch) { vx = acts[lp.x_offset + (m0 + r) * k_len + k]; }
                if (n0 + r < lp.out_dim) { vw = params[lp.w_offset + (n0 + r) * k_len + k]; }
            }
            tile_x[c * ROW4 + r / 4u][r % 4u] = vx;
            tile_w[c * ROW4 + r / 4u][r % 4u] = vw;
        }
        workgroupBarrier();
        for (var k = 0u; k < KT; k++) {
            let a = tile_x[k * ROW4 + ty];
            let w = tile_w[k * ROW4 + tx];
            acc0 += a.x * w;
            acc1 += a.y * w;
            acc2 += a.z * w;
            acc3 += a.w * w;
        }
        workgroupBarrier();
    }
    let m = m0 + ty * 4u;
    let n = n0 + tx * 4u;
    let bias = bias4(n);
    store_z(m, n, acc0 + bias);
    store_z(m + 1u, n, acc1 + bias);
    store_z(m + 2u, n, acc2 + bias);
    store_z(m + 3u, n, acc3 + bias);
}

// bias[o..o+3], columns past the layer width clamped (never stored).
fn bias4(o: u32) -> vec4<f32> {
    let c = cols4(o, lp.out_dim);
    return vec4<f32>(params[lp.b_offset + c.x], params[lp.b_offset + c.y], params[lp.b_offset + c.z], params[lp.b_offset + c.w]);
}

// z (bias included) and act(z) for row m, columns n..n+3 (bounds-checked).
fn store_z(m: u32, n: u32, row: vec4<f32>) {
    if (m >= lp.batch) { return; }
    for (var j = 0u; j < 4u; j++) {
        if (n + j >= lp.out_dim) { return; }
        let z = row[j];
        let at = m * lp.out_dim + n + j;
        acts[lp.z_offset + at] = z;
        acts[lp.a_offset + at] = act(lp.activation, z);
    }
}
