// mlp_backward.wgsl — one layer of the backward pass (twin: src/cpu/mlp.rs::backward).
//
// With δ = dL/dz of this layer (B, out), x its input (B, in), W (out, in):
//   dW[o,i] = Σ_b δ[b,o]·x[b,i],  db[o] = Σ_b δ[b,o]                       (reduction over batch)
//   δ_prev[b,i] = act'(z_prev[b,i]) · Σ_o δ[b,o]·W[o,i]                      (only when has_prev)
// Bindings: 0 layer: LayerParams (uniform, dynamic offset), 1 params (read), 2 grads (read_write,
//           packed like params), 3 acts (read), 4 deltas (read_write), 5 bp: BackwardParams
//           (uniform, dynamic offset; tiled variant), 6 partials (read_write; split-K partial
//           gradients, `splits` copies of the packed layout; a 4-float dummy when splits = 1).
// Dispatched by src/gpu/trainer.rs, last layer first, in one of two variants (KernelVariant):
//   software adapters: backward_layer, one dispatch per layer whose workgroups split by role
//     into dW/db and δ_prev, one 4×4 register block of outputs per invocation, no workgroup
//     memory (workgroup memory and barriers are expensive on CPU emulation):
//     ⌈out/4⌉·⌈in/4⌉ + ⌈B/4⌉·⌈in/4⌉ invocations, each role padded to whole workgroups.
//   real GPUs: backward_tiled, one dispatch per hidden layer whose workgroups split by role into
//     64×64 register-blocked tiles (as in mlp_forward.wgsl) of dW (split over the batch into
//     `splits` partial sums when the batch is large, so enough workgroups run), of δ_prev, and,
//     in the last hidden layer's dispatch, of the output layer's dW (its δ_prev is made by
//     cfm_loss.wgsl::output_loss_rows). With splits > 1, reduce_grads then sums the partials
//     into grads: grads[p] = Σ_s partials[s·n_params + p]. backward_tiled8 does the same with
//     128×64 tiles and 8×4 blocks per invocation (large layers).

@group(0) @binding(0) var<uniform> lp: LayerParams;
@group(0) @binding(1) var<storage, read> params: array<f32>;
@group(0) @binding(2) var<storage, read_write> grads: array<f32>;
@group(0) @binding(3) var<storage, read> acts: array<f32>;
@group(0) @binding(4) var<storage, read_write> deltas: array<f32>;
@group(0) @binding(5) var<uniform> bp: BackwardParams;
@group(0) @binding(6) var<storage, read_write> partials: array<f32>;

// One dW GEMM role (src/gpu/trainer.rs: DwGemm): dW (out, in) and db (out) of a layer from
// δ (B, out) at delta_offset and x (B, in) at x_offset; `groups` = tiles_m·tiles_n·splits
// workgroups (0: no such role), each summing batch rows [s·k_chunk, (s+1)·k_chunk).
struct DwGemm {
    groups: u32, tiles_m: u32, tiles_n: u32, k_chunk: u32,
    out_dim: u32, in_dim: u32, delta_offset: u32, x_offset: u32,
    w_offset: u32, b_offset: u32, _pad0: u32, _pad1: u32,
}

// One tiled backward dispatch (src/gpu/trainer.rs: BackwardParams). Workgroups
// [0, dw.groups) make this layer's dW, the next dx_groups δ_prev, the next dw_out.groups the
// output layer's dW.
struct BackwardParams {
    dw: DwGemm,
    dw_out: DwGemm,
    batch: u32, splits: u32, n_params: u32, activation: u32,
    dx_groups: u32, dx_tiles_n: u32, dx_in: u32, dx_out: u32,
    dx_delta_offset: u32, dx_w_offset: u32, delta_prev_offset: u32, z_prev_offset: u32,
}

// Software variant: one dispatch per layer, split by workgroup into two roles that both read
// only this layer's δ: workgroups [0, dw_groups) make dW/db (weight_grad), the rest (when
// has_prev) δ_prev (input_delta). Whole workgroups take one role, so no lanes diverge.
@compute @workgroup_size(64)
fn backward_layer(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32, @builtin(num_workgroups) nwg: vec3<u32>) {
    let group = wid.x + wid.y * nwg.x;
    if (group < lp.dw_groups) {
        weight_grad(group * 64u + lid);
    } else if (lp.has_prev == 1u) {
        input_delta((group - lp.dw_groups) * 64u + lid);
    }
}

// Role 1: one 4×4 block dW[o0..o0+3, i0..i0+3] (and, for i0 = 0, db[o0..o0+3]) per invocation,
// j = (o0/4)·⌈in/4⌉ + i0/4: each batch row loads 4 δ and 4 x for 16 multiply-adds.
fn weight_grad(j: u32) {
    let i_blocks = (lp.in_dim + 3u) / 4u;
    if (j >= i_blocks * ((lp.out_dim + 3u) / 4u)) { return; }
    let o0 = (j / i_blocks) * 4u;
    let i0 = (j % i_blocks) * 4u;
    let oc = cols4(o0, lp.out_dim);
    let ic = cols4(i0, lp.in_dim);
    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    var bsum = vec4<f32>(0.0);
    for (var b = 0u; b < lp.batch; b++) {
        let d = lp.delta_offset + b * lp.out_dim;
        let x = lp.x_offset + b * lp.in_dim;
        let db = vec4<f32>(deltas[d + oc.x], deltas[d + oc.y], deltas[d + oc.z], deltas[d + oc.w]);
        let xb = vec4<f32>(acts[x + ic.x], acts[x + ic.y], acts[x + ic.z], acts[x + ic.w]);
        acc0 += db.x * xb;
        acc1 += db.y * xb;
        acc2 += db.z * xb;
        acc3 += db.w * xb;
        bsum += db;
    }
    store_dw4(o0, i0, acc0);
    store_dw4(o0 + 1u, i0, acc1);
    store_dw4(o0 + 2u, i0, acc2);
    store_dw4(o0 + 3u, i0, acc3);
    if (i0 == 0u) {
        for (var r = 0u; r < 4u; r++) {
            if (o0 + r < lp.out_dim) { grads[lp.b_offset + o0 + r] = bsum[r]; }
        }
    }
}

fn store_dw4(o: u32, i0: u32, row: vec4<f32>) {
    if (o >= lp.out_dim) { return; }
    for (var c = 0u; c < 4u; c++) {
        if (i0 + c >= lp.in_dim) { return; }
        grads[lp.w_offset + o * lp.in_dim + i0 + c] = row[c];
    }
}

// Role 2: one 4×4 block δ_prev[b0..b0+3, i0..i0+3] per invocation, j = (b0/4)·⌈in/4⌉ + i0/4:
// each o loads 4 δ and 4 W for 16 multiply-adds.
fn input_delta(j: u32) {
    let i_blocks = (lp.in_dim + 3u) / 4u;
    if (j >= i_blocks * ((lp.batch + 3u) / 4u)) { return; }
    let b0 = (j / i_blocks) * 4u;
    let i0 = (j % i_blocks) * 4u;
    let d = rows4(lp.delta_offset, b0, lp.batch, lp.out_dim);
    let ic = cols4(i0, lp.in_dim);
    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    for (var o = 0u; o < lp.out_dim; o++) {
        let w = lp.w_offset + o * lp.in_dim;
        let wo = vec4<f32>(params[w + ic.x], params[w + ic.y], params[w + ic.z], params[w + ic.w]);
        acc0 += deltas[d.x + o] * wo;
        acc1 += deltas[d.y + o] * wo;
        acc2 += deltas[d.z + o] * wo;
        acc3 += deltas[d.w + o] * wo;
    }
    store_dx4(b0, i0, acc0);
    store_dx4(b0 + 1u, i0, acc1);
    store_dx4(b0 + 2u, i0, acc2);
    store_dx4(b0 + 3u, i0, acc3);
}

fn store_dx4(b: u32, i0: u32, row: vec4<f32>) {
    if (b >= lp.batch) { return; }
    for (var c = 0u; c < 4u; c++) {
        if (i0 + c >= lp.in_dim) { return; }
        let at = b * lp.in_dim + i0 + c;
        deltas[lp.delta_prev_offset + at] = row[c] * act_grad(lp.activation, acts[lp.z_prev_offset + at]);
    }
}

// ---- Tiled variant (real GPUs) ----

const TILE: u32 = 64u;
const KT: u32 = 16u;
const ROW4: u32 = 17u; // vec4s per staged k row (68 floats: padded against bank conflicts)

// tile_a is sized for backward_tiled8's 128-row operand (KT · 33 vec4s); backward_tiled uses
// its first KT · ROW4 (one pair of stages for both entry points: 12.8 KB, src/gpu/limits.rs).
var<workgroup> tile_a: array<vec4<f32>, 528>; // [KT][ROW4 or ROWA8]: A[m][k] staged as (k, m)
var<workgroup> tile_b: array<vec4<f32>, 272>; // [KT][ROW4]: B[k][n] staged as (k, n)

@compute @workgroup_size(256)
fn backward_tiled(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let group = wid.x + wid.y * nwg.x;
    if (group < bp.dw.groups) {
        dw_tile(bp.dw, group, lid);
    } else if (group < bp.dw.groups + bp.dx_groups) {
        dx_tile(group - bp.dw.groups, lid);
    } else if (group < bp.dw.groups + bp.dx_groups + bp.dw_out.groups) {
        dw_tile(bp.dw_out, group - bp.dw.groups - bp.dx_groups, lid);
    }
}

fn store_grad(s: u32, at: u32, value: f32) {
    if (bp.splits == 1u) {
        grads[at] = value;
    } else {
        partials[s * bp.n_params + at] = value;
    }
}

// dW[o,i] = Σ_b δ[b,o]·x[b,i] over this split's batch rows: M = out (o), N = in (i), K = batch.
// Both operands are contiguous along M/N, so 64 consecutive invocations read 64 consecutive
// floats of one batch row. Tiles in the first column (tn = 0) also sum δ for db.
fn dw_tile(g: DwGemm, group: u32, lid: u32) {
    let per_split = g.tiles_m * g.tiles_n;
    let s = group / per_split;
    let t = group % per_split;
    let m0 = (t / g.tiles_n) * TILE;
    let n0 = (t % g.tiles_n) * TILE;
    let with_bias = n0 == 0u;
    let kb = s * g.k_chunk;
    let ke = min(kb + g.k_chunk, bp.batch);
    let tx = lid % 16u;
    let ty = lid / 16u;
    // Four named rows, not an array: a dynamically indexed array may be placed in local memory.
    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    var bsum = vec4<f32>(0.0);
    for (var k0 = kb; k0 < ke; k0 += KT) {
        for (var e = 0u; e < 4u; e++) {
            let idx = lid + e * 256u;
            let r = idx % TILE;
            let c = idx / TILE;
            let k = k0 + c;
            var va = 0.0;
            var vb = 0.0;
            if (k < ke) {
                if (m0 + r < g.out_dim) { va = deltas[g.delta_offset + k * g.out_dim + m0 + r]; }
                if (n0 + r < g.in_dim) { vb = acts[g.x_offset + k * g.in_dim + n0 + r]; }
            }
            tile_a[c * ROW4 + r / 4u][r % 4u] = va;
            tile_b[c * ROW4 + r / 4u][r % 4u] = vb;
        }
        workgroupBarrier();
        for (var k = 0u; k < KT; k++) {
            let a = tile_a[k * ROW4 + ty];
            let b = tile_b[k * ROW4 + tx];
            acc0 += a.x * b;
            acc1 += a.y * b;
            acc2 += a.z * b;
            acc3 += a.w * b;
            if (with_bias) { bsum += a; }
        }
        workgroupBarrier();
    }
    let o = m0 + ty * 4u;
    let n = n0 + tx * 4u;
    store_dw_row(g, s, o, n, acc0);
    store_dw_row(g, s, o + 1u, n, acc1);
    store_dw_row(g, s, o + 2u, n, acc2);
    store_dw_row(g, s, o + 3u, n, acc3);
    if (with_bias && tx == 0u) {
        for (var i = 0u; i < 4u; i++) {
            if (o + i < g.out_dim) { store_grad(s, g.b_offset + o + i, bsum[i]); }
        }
    }
}

fn store_dw_row(g: DwGemm, s: u32, o: u32, n: u32, row: vec4<f32>) {
    if (o >= g.out_dim) { return; }
    for (var j = 0u; j < 4u; j++) {
        if (n + j >= g.in_dim) { return; }
        store_grad(s, g.w_offset + o * g.in_dim + n + j, row[j]);
    }
}

// δ_prev[b,i] = act'(z_prev[b,i])·Σ_o δ[b,o]·W[o,i]: M = batch (b), N = in (i), K = out (o).
// δ is k-contiguous (read like mlp_forward.wgsl's x), W is n-contiguous (read like dw_tile's x).
fn dx_tile(group: u32, lid: u32) {
    let m0 = (group / bp.dx_tiles_n) * TILE;
    let n0 = (group % bp.dx_tiles_n) * TILE;
    let tx = lid % 16u;
    let ty = lid / 16u;
    let k_len = bp.dx_out;
    // Four named rows, not an array: a dynamically indexed array may be placed in local memory.
    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    for (var k0 = 0u; k0 < k_len; k0 += KT) {
        for (var e = 0u; e < 4u; e++) {
            let idx = lid + e * 256u;
            // A = δ (B, out): k-contiguous.
            let ra = idx / KT;
            let ca = idx % KT;
            var va = 0.0;
            if (k0 + ca < k_len && m0 + ra < bp.batch) {
                va = deltas[bp.dx_delta_offset + (m0 + ra) * k_len + k0 + ca];
            }
            tile_a[ca * ROW4 + ra / 4u][ra % 4u] = va;
            // B = W (out, in): n-contiguous.
            let rb = idx % TILE;
            let cb = idx / TILE;
            var vb = 0.0;
            if (k0 + cb < k_len && n0 + rb < bp.dx_in) {
                vb = params[bp.dx_w_offset + (k0 + cb) * bp.dx_in + n0 + rb];
            }
            tile_b[cb * ROW4 + rb / 4u][rb % 4u] = vb;
        }
        workgroupBarrier();
        for (var k = 0u; k < KT; k++) {
            let a = tile_a[k * ROW4 + ty];
            let b = tile_b[k * ROW4 + tx];
            acc0 += a.x * b;
            acc1 += a.y * b;
            acc2 += a.z * b;
            acc3 += a.w * b;
        }
        workgroupBarrier();
    }
    let m = m0 + ty * 4u;
    let n = n0 + tx * 4u;
    store_dx_row(m, n, acc0);
    store_dx_row(m + 1u, n, acc1);
    store_dx_row(m + 2u, n, acc2);
    store_dx_row(m + 3u, n, acc3);
}

fn store_dx_row(m: u32, n: u32, row: vec4<f32>) {
    if (m >= bp.batch) { return; }
    for (var j = 0u; j < 4u; j++) {
        if (n + j >= bp.dx_in) { return; }
        let at = m * bp.dx_in + n + j;
        deltas[bp.delta_prev_offset + at] = row[j] * act_grad(bp.activation, acts[bp.z_prev_offset + at]);
    }
}

// ---- Tiled variant with 8×4 blocks (real GPUs, large layers) ----
// backward_tiled8: the same roles as backward_tiled with 128×64 tiles (128 rows of dW's out or
// δ_prev's batch, 64 of in) per 256-invocation workgroup, each invocation an 8×4 block: per k,
// three vec4 loads from workgroup memory feed 32 multiply-adds. Tile counts come from
// trainer.rs `backward_params` with rows = 128.

const TM8: u32 = 128u;
const ROWA8: u32 = TM8 / 4u + 1u; // 33 vec4s per staged k row of the 128-row operand (tile_a)

@compute @workgroup_size(256)
fn backward_tiled8(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let group = wid.x + wid.y * nwg.x;
    if (group < bp.dw.groups) {
        dw_tile8(bp.dw, group, lid);
    } else if (group < bp.dw.groups + bp.dx_groups) {
        dx_tile8(group - bp.dw.groups, lid);
    } else if (group < bp.dw.groups + bp.dx_groups + bp.dw_out.groups) {
        dw_tile8(bp.dw_out, group - bp.dw.groups - bp.dx_groups, lid);
    }
}

// dw_tile with 128 rows of out per tile (see dw_tile).
fn dw_tile8(g: DwGemm, group: u32, lid: u32) {
    let per_split = g.tiles_m * g.tiles_n;
    let s = group / per_split;
    let t = group % per_split;
    let m0 = (t / g.tiles_n) * TM8;
    let n0 = (t % g.tiles_n) * TILE;
    let with_bias = n0 == 0u;
    let kb = s * g.k_chunk;
    let ke = min(kb + g.k_chunk, bp.batch);
    let tx = lid % 16u;
    let ty = lid / 16u;
    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    var acc4 = vec4<f32>(0.0);
    var acc5 = vec4<f32>(0.0);
    var acc6 = vec4<f32>(0.0);
    var acc7 = vec4<f32>(0.0);
    var bsum0 = vec4<f32>(0.0);
    var bsum1 = vec4<f32>(0.0);
    for (var k0 = kb; k0 < ke; k0 += KT) {
        for (var e = 0u; e < TM8 * KT / 256u; e++) {
            let idx = lid + e * 256u;
            let r = idx % TM8;
            let c = idx / TM8;
            var va = 0.0;
            if (k0 + c < ke && m0 + r < g.out_dim) { va = deltas[g.delta_offset + (k0 + c) * g.out_dim + m0 + r]; }
            tile_a[c * ROWA8 + r / 4u][r % 4u] = va;
        }
        for (var e = 0u; e < TILE * KT / 256u; e++) {
            let idx = lid + e * 256u;
            let r = idx % TILE;
            let c = idx / TILE;
            var vb = 0.0;
            if (k0 + c < ke && n0 + r < g.in_dim) { vb = acts[g.x_offset + (k0 + c) * g.in_dim + n0 + r]; }
            tile_b[c * ROW4 + r / 4u][r % 4u] = vb;
        }
        workgroupBarrier();
        for (var k = 0u; k < KT; k++) {
            let a = tile_a[k * ROWA8 + 2u * ty];
            let a1 = tile_a[k * ROWA8 + 2u * ty + 1u];
            let b = tile_b[k * ROW4 + tx];
            acc0 += a.x * b;
            acc1 += a.y * b;
            acc2 += a.z * b;
            acc3 += a.w * b;
            acc4 += a1.x * b;
            acc5 += a1.y * b;
            acc6 += a1.z * b;
            acc7 += a1.w * b;
            if (with_bias) {
                bsum0 += a;
                bsum1 += a1;
            }
        }
        workgroupBarrier();
    }
    let o = m0 + ty * 8u;
    let n = n0 + tx * 4u;
    store_dw_row(g, s, o, n, acc0);
    store_dw_row(g, s, o + 1u, n, acc1);
    store_dw_row(g, s, o + 2u, n, acc2);
    store_dw_row(g, s, o + 3u, n, acc3);
    store_dw_row(g, s, o + 4u, n, acc4);
    store_dw_row(g, s, o + 5u, n, acc5);
    store_dw_row(g, s, o + 6u, n, acc6);
    store_dw_row(g, s, o + 7u, n, acc7);
    if (with_bias && tx == 0u) {
        for (var i = 0u; i < 4u; i++) {
            if (o + i < g.out_dim) { store_grad(s, g.b_offset + o + i, bsum0[i]); }
            if (o + 4u + i < g.out_dim) { store_grad(s, g.b_offset + o + 4u + i, bsum1[i]); }
        }
    }
}

// dx_tile with 128 batch rows per tile (see dx_tile).
fn dx_tile8(group: u32, lid: u32) {
    let m0 = (group / bp.dx_tiles_n) * TM8;
    let n0 = (group % bp.dx_tiles_n) * TILE;
    let tx = lid % 16u;
    let ty = lid / 16u;
    let k_len = bp.dx_out;
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
            // A = δ (B, out): k-contiguous.
            let idx = lid + e * 256u;
            let ra = idx / KT;
            let ca = idx % KT;
            var va = 0.0;
            if (k0 + ca < k_len && m0 + ra < bp.batch) {
                va = deltas[bp.dx_delta_offset + (m0 + ra) * k_len + k0 + ca];
            }
            tile_a[ca * ROWA8 + ra / 4u][ra % 4u] = va;
        }
        for (var e = 0u; e < TILE * KT / 256u; e++) {
            // B = W (out, in): n-contiguous.
            let idx = lid + e * 256u;
            let rb = idx % TILE;
            let cb = idx / TILE;
            var vb = 0.0;
            if (k0 + cb < k_len && n0 + rb < bp.dx_in) {
                vb = params[bp.dx_w_offset + (k0 + cb) * bp.dx_in + n0 + rb];
            }
            tile_b[cb * ROW4 + rb / 4u][rb % 4u] = vb;
        }
        workgroupBarrier();
        for (var k = 0u; k < KT; k++) {
            let a = tile_a[k * ROWA8 + 2u * ty];
            let a1 = tile_a[k * ROWA8 + 2u * ty + 1u];
            let b = tile_b[k * ROW4 + tx];
            acc0 += a.x * b;
            acc1 += a.y * b;
            acc2 += a.z * b;
            acc3 += a.w * b;
            acc4 += a1.x * b;
            acc5 += a1.y * b;
            acc6 += a1.z * b;
            acc7 += a1.w * b;
        }
        workgroupBarrier();
    }
    let m = m0 + ty * 8u;
    let n = n0 + tx * 4u;
    store_dx_row(m, n, acc0);
    store_dx_row(m + 1u, n, acc1);
    store_dx_row(m + 2u, n, acc2);
    store_dx_row(m + 3u, n, acc3);
    store_dx_row(m + 4u, n, acc4);
    store_dx_row(m + 5u, n, acc5);
    store_dx_row(m + 6u, n, acc6);
    store_dx_row(m + 7u, n, acc7);
}

// grads[p] = Σ_s partials[s·n_params + p], after every backward_tiled dispatch of the step.
@compute @workgroup_size(256)
fn reduce_grads(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let p = flat_index(gid, nwg, 256u);
    if (p >= bp.n_params) { return; }
    var acc = 0.0;
    for (var s = 0u; s < bp.splits; s++) {
        acc += partials[s * bp.n_params + p];
    }
    grads[p] = acc;
}
