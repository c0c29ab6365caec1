// batch.wgsl — build one CFM training batch on the GPU (twin: src/cpu/batch.rs).
//
// For sample i of step s (keys (seed, s, i)):
//   x0 ~ N(0, I) (Box–Muller on streams X0_A/X0_B) or, with a source dataset, source[hash % n_source];
//   t from the configured time density (draw_time in common.wgsl; U(0,1) by default),
//   x1 = data[hash % n_points]
//   x_t = α_t·x1 + β_t·x0,   u = α'_t·x1 + β'_t·x0   (path_coefficients in common.wgsl;
//   the default linear path: x_t = (1 - (1 - σmin)·t)·x0 + t·x1, u = x1 - (1 - σmin)·x0)
// Bindings: 0 step: StepParams (uniform, dynamic offset: one slot per queued step)
//           1 data: array<vec2<f32>> (n_points target samples, read)
//           2 acts: array<f32>; writes input (B,3) = (x_t, y_t, t) at 0 and target (B,2) at 3B.
//           3 source: array<vec2<f32>> (source points; a 1-element dummy when n_source = 0).
// Dispatched by src/gpu/trainer.rs once per step, one invocation per sample (build_batch, or
// build_batch_pairs below while reflow pairs are set).

@group(0) @binding(0) var<uniform> sp: StepParams;
@group(0) @binding(1) var<storage, read> data: array<vec2<f32>>;
@group(0) @binding(2) var<storage, read_write> acts: array<f32>;
@group(0) @binding(3) var<storage, read> source: array<vec2<f32>>;

@compute @workgroup_size(64)
fn build_batch(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg, 64u);
    if (i >= sp.batch) { return; }
    var x0: vec2<f32>;
    if (sp.n_source > 0u) {
        x0 = source[hash4(sp.seed, sp.step, i, STREAM_X0_A) % sp.n_source];
    } else {
        x0 = box_muller(unit(hash4(sp.seed, sp.step, i, STREAM_X0_A)), unit(hash4(sp.seed, sp.step, i, STREAM_X0_B)));
    }
    let t = draw_time(sp.t_sampling, sp.t_mean, sp.t_std, sp.t_u, sp.seed, sp.step, i);
    let x1 = data[hash4(sp.seed, sp.step, i, STREAM_TARGET_INDEX) % sp.n_points];
    write_sample(i, x0, x1, t);
}

// Sample i's network input (x_t, t) and regression target u for the pair (x0, x1).
fn write_sample(i: u32, x0: vec2<f32>, x1: vec2<f32>, t: f32) {
    let c = path_coefficients(sp.path, t, sp.sigma_min);
    let xt = c.x * x1 + c.y * x0;
    acts[3u * i] = xt.x;
    acts[3u * i + 1u] = xt.y;
    acts[3u * i + 2u] = t;
    let u = c.z * x1 + c.w * x0;
    let k = 3u * sp.batch + 2u * i;
    acts[k] = u.x;
    acts[k + 1u] = u.y;
}

// Reflow (twin: src/cpu/reflow.rs): the batch from fixed pairs (x0_k, x1_k), x1_k = ψ(x0_k) the
// previous flow's image of its noise point; the trainer binds the pairs' x1 as `data` and their
// x0 as `source` (sp.n_points = number of pairs). Sample i takes pair
// k = hash4(seed, step, i, TARGET_INDEX) % n_pairs and a time from draw_time.
@compute @workgroup_size(64)
fn build_batch_pairs(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg, 64u);
    if (i >= sp.batch) { return; }
    let k = hash4(sp.seed, sp.step, i, STREAM_TARGET_INDEX) % sp.n_points;
    write_sample(i, source[k], data[k], draw_time(sp.t_sampling, sp.t_mean, sp.t_std, sp.t_u, sp.seed, sp.step, i));
}
