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
//   forward_tiled   (real GPUs) a TM×64 tile of z (TM = 64, or 32 for small layers) per
//                   TM·4-invocation workgroup, each invocation a 4×4 register block; x and W
//                   stream through workgroup memory 16 columns of k at a time. Dispatched as
//                   (⌈out/64⌉, ⌈B/TM⌉) workgroups.
//   forward_tiled8  (real GPUs, large batches) a 128×64 tile per 256-invocation workgroup, each
//                   invocation an 8×4 block: (⌈out/64⌉, ⌈B/128⌉) workgroups.

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

// Tile shape: TM samples × TN outputs per workgroup of TM·TN/16 invocations (one 4×4 block
// each), KT columns of k per stage. A stage holds tile[k][m] for k < KT as vec4 rows padded by
// one vec4 (ROWX = TM/4 + 1, ROWW = TN/4 + 1) so the transposing stores hit distinct banks.
// TM (64, or 32 where 64-row tiles would leave most of a GPU idle: trainer.rs
// `forward_rows`) is prepended by src/gpu/shaders.rs.
const TN: u32 = 64u;
const KT: u32 = 16u;
const WG: u32 = TM * TN / 16u;
const ROWX: u32 = TM / 4u + 1u;
const ROWW: u32 = TN / 4u + 1u;

// One pair of stages for both tiled entry points (an array's size is the most either uses:
// forward_tiled8's 128 rows, KT · 33 vec4s; forward_tiled uses the first KT · ROWX), so a
// module never declares more than 12.8 KB (src/gpu/limits.rs reads these sizes).
var<workgroup> tile_x: array<vec4<f32>, 528>; // KT * (128 / 4 + 1)
var<workgroup> tile_w: array<vec4<f32>, 272>; // KT * ROWW

@compute @workgroup_size(WG)
fn forward_tiled(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let m0 = wid.y * TM; // first sample of the tile
    let n0 = wid.x * TN; // first output unit of the tile
    let tx = lid % (TN / 4u);
    let ty = lid / (TN / 4u);
    let k_len = lp.in_dim;
    // Four named rows, not an array: a dynamically indexed array may be placed in local memory.
    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    for (var k0 = 0u; k0 < k_len; k0 += KT) {
        // Both operands are k-contiguous: KT consecutive invocations read KT consecutive floats.
        for (var e = 0u; e < TM * KT / WG; e++) {
            let idx = lid + e * WG;
            let r = idx / KT;
            let c = idx % KT;
            var v = 0.0;
            if (k0 + c < k_len && m0 + r < lp.batch) { v = acts[lp.x_offset + (m0 + r) * k_len + k0 + c]; }
            tile_x[c * ROWX + r / 4u][r % 4u] = v;
        }
        for (var e = 0u; e < TN * KT / WG; e++) {
            let idx = lid + e * WG;
            let r = idx / KT;
            let c = idx % KT;
            var v = 0.0;
            if (k0 + c < k_len && n0 + r < lp.out_dim) { v = params[lp.w_offset + (n0 + r) * k_len + k0 + c]; }
            tile_w[c * ROWW + r / 4u][r % 4u] = v;
        }
        workgroupBarrier();
        for (var k = 0u; k < KT; k++) {
            let a = tile_x[k * ROWX + ty];
            let w = tile_w[k * ROWW + tx];
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

// forward_tiled8: a 128×64 tile per 256-invocation workgroup, each invocation an 8×4 block
// (rows 8·ty..8·ty+7, columns 4·tx..4·tx+3): per k, three vec4 loads from workgroup memory feed
// 32 multiply-adds (the 4×4 block: two feed 16). For large batches (trainer.rs `forward_rows`
// 128).
const TM8: u32 = 128u;
const ROWX8: u32 = TM8 / 4u + 1u;

@compute @workgroup_size(256)
fn forward_tiled8(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let m0 = wid.y * TM8;
    let n0 = wid.x * TN;
    let tx = lid % 16u;
    let ty = lid / 16u;
    let k_len = lp.in_dim;
    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    var acc4 = vec4<f32>(0.0);
    var acc5 = vec4<f32>(0.0);
    var acc6 = vec4<f32>(0.0);
    var acc7 = vec4<f32>(0.0);
    for (var k0 = 0u; k0 < k_len; k0 += KT) {
        for (var e = 0u; e < TM8 * KT / 256u; e++) {
            let idx = lid + e * 256u;
            let r = idx / KT;
            let c = idx % KT;
            var v = 0.0;
            if (k0 + c < k_len && m0 + r < lp.batch) { v = acts[lp.x_offset + (m0 + r) * k_len + k0 + c]; }
            tile_x[c * ROWX8 + r / 4u][r % 4u] = v;
        }
        for (var e = 0u; e < TN * KT / 256u; e++) {
            let idx = lid + e * 256u;
            let r = idx / KT;
            let c = idx % KT;
            var v = 0.0;
            if (k0 + c < k_len && n0 + r < lp.out_dim) { v = params[lp.w_offset + (n0 + r) * k_len + k0 + c]; }
            tile_w[c * ROWW + r / 4u][r % 4u] = v;
        }
        workgroupBarrier();
        for (var k = 0u; k < KT; k++) {
            let a = tile_x[k * ROWX8 + 2u * ty];
            let b = tile_x[k * ROWX8 + 2u * ty + 1u];
            let w = tile_w[k * ROWW + tx];
            acc0 += a.x * w;
            acc1 += a.y * w;
            acc2 += a.z * w;
            acc3 += a.w * w;
            acc4 += b.x * w;
            acc5 += b.y * w;
            acc6 += b.z * w;
            acc7 += b.w * w;
        }
        workgroupBarrier();
    }
    let m = m0 + ty * 8u;
    let n = n0 + tx * 4u;
    let bias = bias4(n);
    store_z(m, n, acc0 + bias);
    store_z(m + 1u, n, acc1 + bias);
    store_z(m + 2u, n, acc2 + bias);
    store_z(m + 3u, n, acc3 + bias);
    store_z(m + 4u, n, acc4 + bias);
    store_z(m + 5u, n, acc5 + bias);
    store_z(m + 6u, n, acc6 + bias);
    store_z(m + 7u, n, acc7 + bias);
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
