// ot_coupling.wgsl — a CFM batch with minibatch optimal-transport coupling (OT-CFM)
// (twin and oracle: src/cpu/coupling.rs). Replaces batch.wgsl when coupling = ot.
//
// Math (B ≤ OT_MAX_BATCH = 1024, uniform marginals 1/B, cost C_ij = ‖x0_i - x1_j‖²):
//  1. draw x0_i (N(0, I) or the source set), t_i (draw_time) and x1_j exactly as batch.wgsl does;
//     ε = OT_EPS · mean(C), mean(C) = mean|x0|² + mean|x1|² - 2·mean(x0)·mean(x1) (the mean of
//     the B² squared distances, from O(B) tree sums);
//  2. at most OT_ITERS log-domain Sinkhorn iterations it = 0, 1, …, each an f (row) update then a
//     g (column) update:
//       f_i ← -ε·log B - ε·LSE_j((g_j - C_ij)/ε),   g_j ← -ε·log B - ε·LSE_i((f_i - C_ij)/ε)
//     (plan π_ij = exp((f_i + g_j - C_ij)/ε)). The first iteration shifts each log-sum-exp by
//     its exact maximum (two passes over the other side, as the CPU twin does every time). From
//     the second on, the shift is the point's own previous potential, one pass, one exp per pair:
//       f_i ← f_i - ε·log B - ε·log Σ_j exp((f_i + g_j - C_ij)/ε)   (= f_i - ε·log(B · row mass_i)),
//     the same value in exact arithmetic. It is safe in f32: after a full update of the other
//     side every row (column) mass lies in [1/B², 1] (each entry of the side just fixed sums to
//     1/B, and each pair's mass was at most its column's, at least its column's divided by B),
//     so the sum lies in [1/B, B] and the terms that matter are far above f32's smallest normal;
//     Stop test (the twin's rule, no readback): at every iteration it > 0 with
//     it % OT_CHECK_EVERY == 0 (src/cpu/coupling.rs) the row pass is ot_rows_check, which also
//     writes, per invocation, max over its rows of |B·row mass_i - 1| (row mass_i: the sum above,
//     i.e. the row marginal of the plan before this f update); the column pass after it,
//     ot_cols_check, reduces those into err (scratch) and, if err ≤ OT_TOL, skips its g update.
//     Every later Sinkhorn pass of the step returns at once when err ≤ OT_TOL. So the iterations
//     stop after the f update of the first check that passes (rows exact, columns within 1 ± err);
//  3. for each row i draw its partner j from π_i· / Σ_j π_ij by inverse CDF with
//     u = unit(hash4(seed, step, i, STREAM_OT)) (terms exp((f_i + g_j - C_ij)/ε));
//  4. write x_t = α·x1_j + β·x0_i and u = α'·x1_j + β'·x0_i like batch.wgsl.
// The values differ from the twin's by rounding only (the twin shifts by the maximum every time
// and divides by ε); tests/kernels.rs compares potentials, pairs, the iteration count, the
// measured error and the plan's marginals.
//
// Buffers: scratch (floats), n = B: x0 (2n) | x1 (2n) | t (n) | f (n) | g (n) | ε (1) |
// iterations run (1, f updates, as f32) | err (1, the last measured row error; OT_ERR_NONE before
// the first check) | row errors (ceil(n / OT_R), one per invocation of ot_rows_check) —
// `ot_scratch_floats` in src/gpu/trainer.rs. The draws, the stop test's state, and the
// potentials copied there by ot_pair for readers (tests); the passes work on two side buffers
// of OT_MAX_BATCH vec4s each, (x, y, potential, ε) per point: the x0 side (f) and the x1 side (g).
// Bindings: 0-4 as batch.wgsl (sp, data, acts, source, scratch), 5 own: the side this pass
// updates (storage, read_write), 6 other: the other side (uniform array<vec4<f32>, OT_MAX_BATCH>,
// 16 KiB). src/gpu/trainer.rs binds the same two buffers both ways (`OtGroups`: rows = own x0,
// other x1; cols = own x1, other x0). The other side is a uniform array because CPU-emulated
// adapters (lavapipe) load a uniform buffer's element without the per-lane loop with a branch
// that they use for storage and workgroup memory; on GPUs it is a small cached read either way.
// Only trainers with coupling = ot create these buffers and pipelines.
// Dispatches per step (all in the training step's compute pass, 2·OT_ITERS + 2):
//   ot_draw                        1 workgroup of 256 (cols group): draws into scratch, ε, the
//                                  stop test's state, and the x1 side = (x1_j, 0, ε);
//   ot_rows_first, ot_cols_first   iteration 0 (rows, then cols group); ot_rows_first also fills
//                                  the x0 side = (x0_i, f_i, ε);
//   ot_rows / ot_cols, or ot_rows_check / ot_cols_check at check iterations: iterations 1 ..
//     OT_ITERS - 1, each ceil(B / (OT_WG·OT_R)) workgroups of OT_WG = 16, one invocation per
//     OT_R = 8 points (every load of the other side serves eight pairs); after the stop they
//     return at once (the dispatches stay: the encoder cannot know when the plan converges;
//     dispatching them indirectly from arguments the stop zeroes measured no cheaper on
//     lavapipe, as wgpu validates every indirect dispatch with one of its own: docs/BENCHMARKS.md);
//   ot_pair                        ceil(B / OT_WG) workgroups (rows group), one invocation per row:
//                                  the pairing, the batch, f and g copied to scratch.
// OT_EPS, OT_TOL, OT_ERR_NONE, OT_ITERS, OT_MAX_BATCH, OT_WG, OT_R and STREAM_OT come from the
// generated prelude (src/cpu/coupling.rs, src/gpu/trainer.rs, src/rng.rs).


@group(0) @binding(0) var<uniform> sp: StepParams;
@group(0) @binding(1) var<storage, read> data: array<vec2<f32>>;
@group(0) @binding(2) var<storage, read_write> acts: array<f32>;
@group(0) @binding(3) var<storage, read> source: array<vec2<f32>>;
@group(0) @binding(4) var<storage, read_write> scratch: array<f32>;
// This pass's side and the other side, each point as (x, y, potential, ε).
@group(0) @binding(5) var<storage, read_write> own: array<vec4<f32>>;
@group(0) @binding(6) var<uniform> other: array<vec4<f32>, OT_MAX_BATCH>;

// ot_draw's tree sums: Σ(|x0_i|² + |x1_i|²), and Σx0_i, Σx1_i as (x0.x, x0.y, x1.x, x1.y).
var<workgroup> partial: array<f32, 256>;
var<workgroup> partial_means: array<vec4<f32>, 256>;

fn x0_of(i: u32) -> vec2<f32> { return vec2<f32>(scratch[2u * i], scratch[2u * i + 1u]); }
fn x1_of(j: u32) -> vec2<f32> { let b = 2u * sp.batch; return vec2<f32>(scratch[b + 2u * j], scratch[b + 2u * j + 1u]); }

// Bound with own = x1 side: draws into scratch, ε, and own[j] = (x1_j, g_j = 0, ε).
@compute @workgroup_size(256)
fn ot_draw(@builtin(local_invocation_index) lid: u32) {
    let n = sp.batch;
    for (var i = lid; i < n; i += 256u) {
        var x0: vec2<f32>;
        if (sp.n_source > 0u) {
            x0 = source[hash4(sp.seed, sp.step, i, STREAM_X0_A) % sp.n_source];
        } else {
            x0 = box_muller(unit(hash4(sp.seed, sp.step, i, STREAM_X0_A)), unit(hash4(sp.seed, sp.step, i, STREAM_X0_B)));
        }
        let x1 = data[hash4(sp.seed, sp.step, i, STREAM_TARGET_INDEX) % sp.n_points];
        scratch[2u * i] = x0.x;
        scratch[2u * i + 1u] = x0.y;
        scratch[2u * n + 2u * i] = x1.x;
        scratch[2u * n + 2u * i + 1u] = x1.y;
        scratch[4u * n + i] = draw_time(sp.t_sampling, sp.t_mean, sp.t_std, sp.t_u, sp.seed, sp.step, i);
    }
    storageBarrier();
    workgroupBarrier();
    var sq_sum = 0.0;
    var sums = vec4<f32>(0.0);
    for (var i = lid; i < n; i += 256u) {
        let a = x0_of(i);
        let b = x1_of(i);
        sq_sum += dot(a, a) + dot(b, b);
        sums += vec4<f32>(a, b);
    }
    partial[lid] = sq_sum;
    partial_means[lid] = sums;
    workgroupBarrier();
    for (var s = 128u; s > 0u; s >>= 1u) {
        if (lid < s) {
            partial[lid] += partial[lid + s];
            partial_means[lid] += partial_means[lid + s];
        }
        workgroupBarrier();
    }
    let nf = f32(n);
    let m = partial_means[0] / nf;
    let mean_cost = partial[0] / nf - 2.0 * dot(m.xy, m.zw);
    let eps = max(OT_EPS * mean_cost, 1e-12);
    if (lid == 0u) {
        scratch[7u * n] = eps;
        scratch[7u * n + 1u] = 0.0;
        scratch[7u * n + 2u] = OT_ERR_NONE;
    }
    for (var j = lid; j < n; j += 256u) { own[j] = vec4<f32>(x1_of(j), 0.0, eps); }
}

// Eight points' values, as two vec4s (points r0..r0+3 and r0+4..r0+7 of a block).
struct Eight { a: vec4<f32>, b: vec4<f32> }
// New potentials, and (one-pass updates only) each point's mass Σ_k exp((pot + pot_k - C_pk)/ε)
// in the plan before the update: its row (column) marginal.
struct Updated { pot: Eight, mass: Eight }

// The scratch slots of the stop test (layout in the header).
fn iters_at() -> u32 { return 7u * sp.batch + 1u; }
fn err_at() -> u32 { return 7u * sp.batch + 2u; }
fn row_err_at() -> u32 { return 7u * sp.batch + 3u; }
// The iterations have stopped (a check found the row error within OT_TOL).
fn stopped() -> bool { return scratch[err_at()] <= OT_TOL; }

fn sq(px: vec4<f32>, py: vec4<f32>, q: vec2<f32>) -> vec4<f32> {
    let dx = px - q.x;
    let dy = py - q.y;
    return dx * dx + dy * dy;
}

// The new potentials of eight points (coordinates px, py, previous potentials pot) against the
// other side: -ε·log B - ε·LSE_k((pot_k - C_pk)/ε). first: shifted by the exact maximum (two
// passes); else by the point's previous potential (one pass:
// pot + ε·(-log B - log Σ_k exp((pot + pot_k - C_pk)/ε))). Each load of the other side's point k
// serves eight pairs: on CPU-emulated adapters such loads, not the arithmetic, are the cost.
fn sinkhorn_update(px: Eight, py: Eight, pot: Eight, first: bool) -> Updated {
    let n = sp.batch;
    let eps = other[0].w;
    let inv_eps = 1.0 / eps;
    let log_marginal = -log(f32(n));
    if (first) {
        var ma = vec4<f32>(-3.0e38);
        var mb = vec4<f32>(-3.0e38);
        for (var k = 0u; k < n; k++) {
            let q = other[k];
            ma = max(ma, (q.z - sq(px.a, py.a, q.xy)) * inv_eps);
            mb = max(mb, (q.z - sq(px.b, py.b, q.xy)) * inv_eps);
        }
        var sa = vec4<f32>(0.0);
        var sb = vec4<f32>(0.0);
        for (var k = 0u; k < n; k++) {
            let q = other[k];
            sa += exp((q.z - sq(px.a, py.a, q.xy)) * inv_eps - ma);
            sb += exp((q.z - sq(px.b, py.b, q.xy)) * inv_eps - mb);
        }
        let none = Eight(vec4<f32>(0.0), vec4<f32>(0.0));
        return Updated(Eight(eps * (log_marginal - ma - log(sa)), eps * (log_marginal - mb - log(sb))), none);
    }
    var sa = vec4<f32>(0.0);
    var sb = vec4<f32>(0.0);
    for (var k = 0u; k < n; k++) {
        let q = other[k];
        sa += exp((pot.a + q.z - sq(px.a, py.a, q.xy)) * inv_eps);
        sb += exp((pot.b + q.z - sq(px.b, py.b, q.xy)) * inv_eps);
    }
    return Updated(Eight(pot.a + eps * (log_marginal - log(sa)), pot.b + eps * (log_marginal - log(sb))), Eight(sa, sb));
}

// Point r of this pass's side (clamped to the batch): from own, or for the first row pass
// (before own is filled) x0 from scratch with potential 0.
fn point(r: u32, first_row_pass: bool) -> vec4<f32> {
    let i = min(r, sp.batch - 1u);
    if (first_row_pass) { return vec4<f32>(x0_of(i), 0.0, other[0].w); }
    return own[i];
}

// Updates points r0 .. r0 + OT_R - 1 of this pass's side. Row (f) passes run with own = the x0
// side and other = the x1 side, column (g) passes the other way round; the first row pass
// fills own[i] = (x0_i, f_i, ε). check (row passes, not the first): also writes this
// invocation's max over its points of |B·mass - 1| to its row-error slot.
// update() packs its OT_R points into the two vec4 halves of an `Eight` (and the trainer sizes
// the passes' dispatches and the row-error slots by OT_R): OT_R must be 8.
const_assert OT_R == 8u;

fn update(r0: u32, first_row_pass: bool, first: bool, check: bool) {
    var p: array<vec4<f32>, OT_R>;
    for (var r = 0u; r < OT_R; r++) { p[r] = point(r0 + r, first_row_pass); }
    let px = Eight(vec4<f32>(p[0].x, p[1].x, p[2].x, p[3].x), vec4<f32>(p[4].x, p[5].x, p[6].x, p[7].x));
    let py = Eight(vec4<f32>(p[0].y, p[1].y, p[2].y, p[3].y), vec4<f32>(p[4].y, p[5].y, p[6].y, p[7].y));
    let pot = Eight(vec4<f32>(p[0].z, p[1].z, p[2].z, p[3].z), vec4<f32>(p[4].z, p[5].z, p[6].z, p[7].z));
    let u = sinkhorn_update(px, py, pot, first);
    let v = u.pot;
    let out = array<f32, OT_R>(v.a.x, v.a.y, v.a.z, v.a.w, v.b.x, v.b.y, v.b.z, v.b.w);
    for (var r = 0u; r < OT_R; r++) {
        if (r0 + r < sp.batch) { own[r0 + r] = vec4<f32>(p[r].xy, out[r], p[r].w); }
    }
    if (check && r0 < sp.batch) {
        let n = sp.batch;
        let nf = f32(n);
        let rows = vec4<u32>(0u, 1u, 2u, 3u) + r0;
        let ea = select(vec4<f32>(0.0), abs(nf * u.mass.a - 1.0), rows < vec4<u32>(n));
        let eb = select(vec4<f32>(0.0), abs(nf * u.mass.b - 1.0), rows + 4u < vec4<u32>(n));
        let e = max(ea, eb);
        scratch[row_err_at() + r0 / OT_R] = max(max(e.x, e.y), max(e.z, e.w));
    }
}

@compute @workgroup_size(OT_WG)
fn ot_rows_first(@builtin(global_invocation_id) gid: vec3<u32>) {
    update(gid.x * OT_R, true, true, false);
    if (gid.x == 0u) { scratch[iters_at()] = 1.0; }
}

@compute @workgroup_size(OT_WG)
fn ot_cols_first(@builtin(global_invocation_id) gid: vec3<u32>) { update(gid.x * OT_R, false, true, false); }

@compute @workgroup_size(OT_WG)
fn ot_rows(@builtin(global_invocation_id) gid: vec3<u32>) {
    if (stopped()) { return; }
    update(gid.x * OT_R, false, false, false);
    if (gid.x == 0u) { scratch[iters_at()] += 1.0; }
}

@compute @workgroup_size(OT_WG)
fn ot_cols(@builtin(global_invocation_id) gid: vec3<u32>) {
    if (stopped()) { return; }
    update(gid.x * OT_R, false, false, false);
}

@compute @workgroup_size(OT_WG)
fn ot_rows_check(@builtin(global_invocation_id) gid: vec3<u32>) {
    if (stopped()) { return; }
    update(gid.x * OT_R, false, false, true);
    if (gid.x == 0u) { scratch[iters_at()] += 1.0; }
}

// The column pass after ot_rows_check: every invocation reduces the row errors (the same value in
// each, so all take the same branch; it does not read err, which invocation 0 writes here). After
// an earlier stop the slots still hold that check's errors, so it stays stopped.
@compute @workgroup_size(OT_WG)
fn ot_cols_check(@builtin(global_invocation_id) gid: vec3<u32>) {
    var err = 0.0;
    for (var s = 0u; s < (sp.batch + OT_R - 1u) / OT_R; s++) { err = max(err, scratch[row_err_at() + s]); }
    if (gid.x == 0u) { scratch[err_at()] = err; }
    if (err <= OT_TOL) { return; }
    update(gid.x * OT_R, false, false, false);
}

// Bound with own = x0 side, other = x1 side. Pairs x0_i with a draw from row i of the plan
// (terms exp((f_i + g_j - C_ij)/ε)), writes the batch, and copies f_i, g_i to scratch.
@compute @workgroup_size(OT_WG)
fn ot_pair(@builtin(global_invocation_id) gid: vec3<u32>) {
    let n = sp.batch;
    let i = gid.x;
    if (i >= n) { return; }
    let inv_eps = 1.0 / other[0].w;
    let me = own[i];
    let x0 = me.xy;
    let fi = me.z;
    var total = 0.0;
    for (var j = 0u; j < n; j++) {
        let q = other[j];
        let d = x0 - q.xy;
        total += exp((fi + q.z - dot(d, d)) * inv_eps);
    }
    let target_mass = unit(hash4(sp.seed, sp.step, i, STREAM_OT)) * total;
    var cum = 0.0;
    var pick = n - 1u;
    for (var j = 0u; j < n; j++) {
        let q = other[j];
        let d = x0 - q.xy;
        cum += exp((fi + q.z - dot(d, d)) * inv_eps);
        if (cum > target_mass) { pick = j; break; }
    }
    scratch[5u * n + i] = fi;
    scratch[6u * n + i] = other[i].z;
    let x1 = other[pick].xy;
    let t = scratch[4u * n + i];
    let c = path_coefficients(sp.path, t, sp.sigma_min);
    let xt = c.x * x1 + c.y * x0;
    let u = c.z * x1 + c.w * x0;
    acts[3u * i] = xt.x;
    acts[3u * i + 1u] = xt.y;
    acts[3u * i + 2u] = t;
    acts[3u * n + 2u * i] = u.x;
    acts[3u * n + 2u * i + 1u] = u.y;
}
