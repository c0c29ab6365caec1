// ot_coupling.wgsl — a CFM batch with minibatch optimal-transport coupling (OT-CFM)
// (twin: src/cpu/coupling.rs). Replaces batch.wgsl when coupling = ot.
//
// One workgroup of 256 invocations builds the whole batch (B ≤ 1024):
//  1. draw x0_i (N(0, I) or the source set), t_i (draw_time) and x1_j exactly as batch.wgsl does;
//  2. cost C_ij = ‖x0_i - x1_j‖², ε = OT_EPS · mean(C);
//  3. entropic OT in the log domain with uniform marginals, OT_ITERS Sinkhorn iterations:
//       f_i = -ε·log B - ε·LSE_j((g_j - C_ij)/ε),   g_j = -ε·log B - ε·LSE_i((f_i - C_ij)/ε)
//     (plan π_ij = exp((f_i + g_j - C_ij)/ε));
//  4. for each row i draw its partner j from π_i· / Σ_j π_ij by inverse CDF with
//     u = unit(hash4(seed, step, i, STREAM_OT));
//  5. write x_t = α·x1_j + β·x0_i and u = α'·x1_j + β'·x0_i like batch.wgsl.
// Scratch layout (floats): x0 (2B) | x1 (2B) | t (B) | f (B) | g (B).
// Bindings: as batch.wgsl, plus 4 scratch: array<f32> (read_write, ≥ 7B floats).
// Dispatched by src/gpu/trainer.rs once per step with one workgroup.
// OT_EPS, OT_ITERS and STREAM_OT come from the generated prelude (src/cpu/coupling.rs, src/rng.rs).


@group(0) @binding(0) var<uniform> sp: StepParams;
@group(0) @binding(1) var<storage, read> data: array<vec2<f32>>;
@group(0) @binding(2) var<storage, read_write> acts: array<f32>;
@group(0) @binding(3) var<storage, read> source: array<vec2<f32>>;
@group(0) @binding(4) var<storage, read_write> scratch: array<f32>;

var<workgroup> partial: array<f32, 256>;

fn x0_of(i: u32) -> vec2<f32> { return vec2<f32>(scratch[2u * i], scratch[2u * i + 1u]); }
fn x1_of(j: u32) -> vec2<f32> { let b = 2u * sp.batch; return vec2<f32>(scratch[b + 2u * j], scratch[b + 2u * j + 1u]); }
fn cost(i: u32, j: u32) -> f32 { let d = x0_of(i) - x1_of(j); return dot(d, d); }

@compute @workgroup_size(256)
fn build_batch_ot(@builtin(local_invocation_index) lid: u32) {
    let n = sp.batch;
    let t_off = 4u * n;
    let f_off = 5u * n;
    let g_off = 6u * n;
    // 1. Draws.
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
        scratch[t_off + i] = draw_time(sp.t_sampling, sp.t_mean, sp.t_std, sp.t_u, sp.seed, sp.step, i);
        scratch[f_off + i] = 0.0;
        scratch[g_off + i] = 0.0;
    }
    storageBarrier();
    workgroupBarrier();
    // 2. Mean cost → ε.
    var acc = 0.0;
    for (var i = lid; i < n; i += 256u) {
        for (var j = 0u; j < n; j++) { acc += cost(i, j); }
    }
    partial[lid] = acc;
    workgroupBarrier();
    for (var s = 128u; s > 0u; s >>= 1u) {
        if (lid < s) { partial[lid] += partial[lid + s]; }
        workgroupBarrier();
    }
    let eps = max(OT_EPS * partial[0] / f32(n * n), 1e-12);
    let log_marginal = -log(f32(n));
    // 3. Sinkhorn in the log domain (max-shifted log-sum-exp).
    for (var it = 0u; it < OT_ITERS; it++) {
        for (var i = lid; i < n; i += 256u) {
            var m = -3.0e38;
            for (var j = 0u; j < n; j++) { m = max(m, (scratch[g_off + j] - cost(i, j)) / eps); }
            var s = 0.0;
            for (var j = 0u; j < n; j++) { s += exp((scratch[g_off + j] - cost(i, j)) / eps - m); }
            scratch[f_off + i] = eps * (log_marginal - m - log(s));
        }
        storageBarrier();
        workgroupBarrier();
        for (var j = lid; j < n; j += 256u) {
            var m = -3.0e38;
            for (var i = 0u; i < n; i++) { m = max(m, (scratch[f_off + i] - cost(i, j)) / eps); }
            var s = 0.0;
            for (var i = 0u; i < n; i++) { s += exp((scratch[f_off + i] - cost(i, j)) / eps - m); }
            scratch[g_off + j] = eps * (log_marginal - m - log(s));
        }
        storageBarrier();
        workgroupBarrier();
    }
    // 4–5. Pair each x0_i with a draw from its row of the plan; write the CFM batch.
    for (var i = lid; i < n; i += 256u) {
        // Row i of the plan up to a factor: exp((g_j - C_ij)/ε - m), shifted by its max m.
        var m = -3.0e38;
        for (var j = 0u; j < n; j++) { m = max(m, (scratch[g_off + j] - cost(i, j)) / eps); }
        var total = 0.0;
        for (var j = 0u; j < n; j++) { total += exp((scratch[g_off + j] - cost(i, j)) / eps - m); }
        let target_mass = unit(hash4(sp.seed, sp.step, i, STREAM_OT)) * total;
        var cum = 0.0;
        var pick = n - 1u;
        for (var j = 0u; j < n; j++) {
            cum += exp((scratch[g_off + j] - cost(i, j)) / eps - m);
            if (cum > target_mass) { pick = j; break; }
        }
        let x0 = x0_of(i);
        let x1 = x1_of(pick);
        let t = scratch[t_off + i];
        let c = path_coefficients(sp.path, t, sp.sigma_min);
        let xt = c.x * x1 + c.y * x0;
        let u = c.z * x1 + c.w * x0;
        acts[3u * i] = xt.x;
        acts[3u * i + 1u] = xt.y;
        acts[3u * i + 2u] = t;
        acts[3u * n + 2u * i] = u.x;
        acts[3u * n + 2u * i + 1u] = u.y;
    }
}
