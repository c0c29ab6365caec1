// w2_minibatch.wgsl — minibatch estimate of W2²(source, samples): the exact optimal matching of
// m noise points x0 with m samples x1 per workgroup (twin: src/cpu/assignment.rs, which states
// the algorithm: Hungarian method with potentials, rows added one by one, O(m³)).
//
// Workgroup k matches origins[k·m + i] (rows) with particles[k·m + j] (columns), cost
// C_ij = |x0_i - x1_j|², and writes out[OUT_OFFSET + k] = (1/m) Σ_i C_{i, σ(i)}.
// The column loops run in parallel (invocation j handles column j + 1 of the 1-based arrays),
// the smallest reduced cost is found by a tree reduction (ties: the smallest column, as the CPU's
// left-to-right scan), and every branch that a barrier follows reads its condition with
// workgroupUniformLoad so control flow stays uniform.
// Bindings: 0 wp: W2Params (uniform: n particles, m ≤ W2_BATCH, batches, out_offset),
//           1 origins: array<vec2<f32>> (read), 2 particles: array<vec2<f32>> (read),
//           3 out: array<f32> (read_write).
// Dispatched by src/gpu/flow_stats.rs with one workgroup per minibatch.

const MB: u32 = W2_BATCH;
const INF: f32 = 3.4e38;

struct W2Params {
    n: u32, m: u32, batches: u32, out_offset: u32,
}

@group(0) @binding(0) var<uniform> wp: W2Params;
@group(0) @binding(1) var<storage, read> origins: array<vec2<f32>>;
@group(0) @binding(2) var<storage, read> particles: array<vec2<f32>>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

var<workgroup> u: array<f32, W2_BATCH_P1>;
var<workgroup> v: array<f32, W2_BATCH_P1>;
var<workgroup> p: array<u32, W2_BATCH_P1>;
var<workgroup> way: array<u32, W2_BATCH_P1>;
var<workgroup> minv: array<f32, W2_BATCH_P1>;
var<workgroup> used: array<u32, W2_BATCH_P1>;
var<workgroup> red_val: array<f32, W2_BATCH>;
var<workgroup> red_idx: array<u32, W2_BATCH>;
var<workgroup> j0_shared: u32;
var<workgroup> go_on: u32;

// Cost between row i and column j (1-based) of minibatch `base`.
fn cost(base: u32, i: u32, j: u32) -> f32 {
    let d = origins[base + i - 1u] - particles[base + j - 1u];
    return d.x * d.x + d.y * d.y;
}

@compute @workgroup_size(W2_BATCH)
fn w2_minibatch(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let m = wp.m;
    let base = wid.x * m;
    let j = lid + 1u; // this invocation's column
    for (var k = lid; k <= MB; k += MB) {
        u[k] = 0.0;
        v[k] = 0.0;
        p[k] = 0u;
        way[k] = 0u;
    }
    workgroupBarrier();
    for (var i = 1u; i <= m; i++) {
        for (var k = lid; k <= MB; k += MB) {
            minv[k] = INF;
            used[k] = 0u;
        }
        if (lid == 0u) {
            p[0] = i;
            j0_shared = 0u;
        }
        workgroupBarrier();
        loop {
            let j0 = workgroupUniformLoad(&j0_shared);
            if (lid == 0u) { used[j0] = 1u; }
            workgroupBarrier();
            let i0 = p[j0];
            // Relax column j and offer it as the next column.
            var best = INF;
            if (j <= m && used[j] == 0u) {
                let cur = cost(base, i0, j) - u[i0] - v[j];
                if (cur < minv[j]) {
                    minv[j] = cur;
                    way[j] = j0;
                }
                best = minv[j];
            }
            red_val[lid] = best;
            red_idx[lid] = j;
            workgroupBarrier();
            for (var s = MB / 2u; s > 0u; s >>= 1u) {
                if (lid < s) {
                    let ov = red_val[lid + s];
                    let oi = red_idx[lid + s];
                    if (ov < red_val[lid] || (ov == red_val[lid] && oi < red_idx[lid])) {
                        red_val[lid] = ov;
                        red_idx[lid] = oi;
                    }
                }
                workgroupBarrier();
            }
            let delta = red_val[0];
            let j1 = red_idx[0];
            // Move the potentials of the tree's rows and columns; the others' slack shrinks.
            for (var k = lid; k <= m; k += MB) {
                if (used[k] == 1u) {
                    u[p[k]] += delta;
                    v[k] -= delta;
                } else {
                    minv[k] -= delta;
                }
            }
            workgroupBarrier();
            if (lid == 0u) {
                j0_shared = j1;
                go_on = select(0u, 1u, p[j1] != 0u);
            }
            if (workgroupUniformLoad(&go_on) == 0u) { break; }
        }
        // Augment along the alternating path back to column 0.
        if (lid == 0u) {
            var jj = j0_shared;
            loop {
                let j1 = way[jj];
                p[jj] = p[j1];
                jj = j1;
                if (jj == 0u) { break; }
            }
        }
        workgroupBarrier();
    }
    var c = 0.0;
    if (j <= m) { c = cost(base, p[j], j); }
    red_val[lid] = c;
    workgroupBarrier();
    for (var s = MB / 2u; s > 0u; s >>= 1u) {
        if (lid < s) { red_val[lid] += red_val[lid + s]; }
        workgroupBarrier();
    }
    if (lid == 0u) { out[wp.out_offset + wid.x] = red_val[0] / f32(m); }
}
