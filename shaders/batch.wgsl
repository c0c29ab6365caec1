// batch.wgsl — build one CFM training batch on the GPU (twin: src/cpu/batch.rs).
//
// For sample i of step s (keys (seed, s, i)):
//   x0 ~ N(0, I) (Box–Muller on streams X0_A/X0_B) or, with a source dataset, source[hash % n_source];
//   t from the configured time density (draw_time in common.wgsl; U(0,1) by default),
//   x1 = data[j] with j = hash % n_points
//   x_t = α_t·x1 + β_t·x0,   u = α'_t·x1 + β'_t·x0   (path_coefficients in common.wgsl;
//   the default linear path: x_t = (1 - (1 - σmin)·t)·x0 + t·x1, u = x1 - (1 - σmin)·x0)
// Extra input columns (model.rs: InputLayout; StepParams in common.wgsl says where they are):
//   MeanFlow (r_column ≠ 0): a second time s (stream MEANFLOW, index 2i) and, with probability
//     MEANFLOW_RATIO (index 2i + 1), (t, r) = (min(t, s), max(t, s)), else r = t; x_t is taken at
//     that t. The target stays u; meanflow.wgsl turns it into the MeanFlow target.
//   class-conditional (class_column ≠ 0): the one-hot row of labels[j], or of the no-class token
//     (column class_column + n_classes) with probability label_dropout (stream LABEL_DROP).
// Bindings: 0 step: StepParams (uniform, dynamic offset: one slot per queued step)
//           1 data: array<vec2<f32>> (n_points target samples, read)
//           2 acts: array<f32>; writes input (B, in_dim) = (x_t, y_t, t, extras) at 0 and
//             target (B, 2) at in_dim·B.
//           3 source: array<vec2<f32>> (source points; a 1-element dummy when n_source = 0).
//           4 scratch (ot_coupling.wgsl only), 5 labels: array<u32> (one per target point; a
//             1-element dummy for unconditional models).
// Dispatched by src/gpu/trainer.rs once per step, one invocation per sample (build_batch, or
// build_batch_pairs below while reflow pairs are set).

@group(0) @binding(0) var<uniform> sp: StepParams;
@group(0) @binding(1) var<storage, read> data: array<vec2<f32>>;
@group(0) @binding(2) var<storage, read_write> acts: array<f32>;
@group(0) @binding(3) var<storage, read> source: array<vec2<f32>>;
@group(0) @binding(5) var<storage, read> labels: array<u32>;

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
    let j = hash4(sp.seed, sp.step, i, STREAM_TARGET_INDEX) % sp.n_points;
    var hot = 0u;
    if (sp.class_column != 0u) {
        hot = sp.class_column + sp.n_classes;
        if (unit(hash4(sp.seed, sp.step, i, STREAM_LABEL_DROP)) >= sp.label_dropout) {
            hot = sp.class_column + min(labels[j], sp.n_classes);
        }
    }
    write_sample(i, x0, data[j], t, hot);
}

// Sample i's network input (x_t, t, [r], [one-hot with a 1 at column hot]) and regression target
// u for the pair (x0, x1). MeanFlow's (t, r) pair is drawn here from t and a uniform second time
// s (stream MEANFLOW): the configured time density shapes t, and s only sets the intervals.
fn write_sample(i: u32, x0: vec2<f32>, x1: vec2<f32>, t_in: f32, hot: u32) {
    var t = t_in;
    var r = t;
    if (sp.r_column != 0u) {
        let s = unit(hash4(sp.seed, sp.step, 2u * i, STREAM_MEANFLOW));
        if (unit(hash4(sp.seed, sp.step, 2u * i + 1u, STREAM_MEANFLOW)) < MEANFLOW_RATIO) {
            r = max(t, s);
            t = min(t, s);
        }
    }
    let c = path_coefficients(sp.path, t, sp.sigma_min);
    let xt = c.x * x1 + c.y * x0;
    let row = sp.in_dim * i;
    acts[row] = xt.x;
    acts[row + 1u] = xt.y;
    acts[row + 2u] = t;
    if (sp.r_column != 0u) { acts[row + sp.r_column] = r; }
    if (sp.class_column != 0u) {
        for (var k = sp.class_column; k <= sp.class_column + sp.n_classes; k++) {
            acts[row + k] = select(0.0, 1.0, k == hot);
        }
    }
    let u = c.z * x1 + c.w * x0;
    let k = sp.in_dim * sp.batch + 2u * i;
    acts[k] = u.x;
    acts[k + 1u] = u.y;
}

// Reflow (twin: src/cpu/reflow.rs): the batch from fixed pairs (x0_k, x1_k), x1_k = ψ(x0_k) the
// previous flow's image of its noise point; the trainer binds the pairs' x1 as `data` and their
// x0 as `source` (sp.n_points = number of pairs). Sample i takes pair
// k = hash4(seed, step, i, TARGET_INDEX) % n_pairs and a time from draw_time. Pairs carry no
// labels: Config::check_generation refuses reflow for conditional models.
@compute @workgroup_size(64)
fn build_batch_pairs(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg, 64u);
    if (i >= sp.batch) { return; }
    let k = hash4(sp.seed, sp.step, i, STREAM_TARGET_INDEX) % sp.n_points;
    write_sample(i, source[k], data[k], draw_time(sp.t_sampling, sp.t_mean, sp.t_std, sp.t_u, sp.seed, sp.step, i), 0u);
}
