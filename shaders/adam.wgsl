// adam.wgsl — Adam/AdamW over the packed parameter buffer, plus the step's loss reduction
// (twin: src/cpu/adam.rs).
//
// Per parameter i (t = step + 1, c1 = 1/(1-β1^t), c2 = 1/(1-β2^t) precomputed in f64 on the CPU,
// lr = this step's value of the learning-rate schedule, AdamHyper::lr_at, also per step):
//   m ← β1·m + (1-β1)·g,  v ← β2·v + (1-β2)·g²,  p ← p·(1 - lr·wd) - lr·(m·c1)/(√(v·c2) + ε)
// The workgroup after the parameter workgroups instead reduces the batch's loss terms:
//   metrics.losses[loss_slot] = (1/B) Σ_b loss_terms[b]
// Any non-finite loss or new parameter lowers metrics.first_bad_step to this step (atomicMin);
// it starts at 0xffffffff, so the CPU learns the first step that went wrong without a sync.
// Bindings: 0 step: StepParams (uniform, dynamic offset), 1 params (read_write), 2 grads (read),
//           3 moments (read_write: m at [0, P), v at [P, 2P)), 4 deltas (read: loss terms at
//           loss_offset), 5 metrics (read_write).
// Dispatched once per step with ceil(P/256) + 1 workgroups, as one of two entry points:
//   adam_update       (real GPUs) the loss workgroup sums with a tree in workgroup memory.
//   adam_update_flat  (software adapters) no workgroup memory and no barrier: its first
//                     invocation sums the loss terms alone. On SwiftShader a barrier anywhere in
//                     an entry point runs every workgroup of the dispatch as coroutines, and the
//                     tree made Adam a third of a step on S; a serial sum of B terms is µs.

struct Metrics {
    first_bad_step: atomic<u32>,
    _pad0: u32, _pad1: u32, _pad2: u32,
    losses: array<f32>,
}

@group(0) @binding(0) var<uniform> sp: StepParams;
@group(0) @binding(1) var<storage, read_write> params: array<f32>;
@group(0) @binding(2) var<storage, read> grads: array<f32>;
@group(0) @binding(3) var<storage, read_write> moments: array<f32>;
@group(0) @binding(4) var<storage, read> deltas: array<f32>;
@group(0) @binding(5) var<storage, read_write> metrics: Metrics;

var<workgroup> partial: array<f32, 256>;

@compute @workgroup_size(256)
fn adam_update(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let group = wid.x + wid.y * nwg.x;
    let param_groups = (sp.n_params + 255u) / 256u;
    if (group == param_groups) {
        // Loss reduction: a strided sum per invocation, then a tree in workgroup memory.
        var acc = 0.0;
        for (var b = lid; b < sp.batch; b += 256u) {
            acc += deltas[sp.loss_offset + b];
        }
        partial[lid] = acc;
        workgroupBarrier();
        for (var s = 128u; s > 0u; s >>= 1u) {
            if (lid < s) { partial[lid] += partial[lid + s]; }
            workgroupBarrier();
        }
        if (lid == 0u) {
            let loss = partial[0] / f32(sp.batch);
            metrics.losses[sp.loss_slot] = loss;
            if (non_finite(loss)) { atomicMin(&metrics.first_bad_step, sp.step); }
        }
        return;
    }
    adam_param(group * 256u + lid);
}

@compute @workgroup_size(256)
fn adam_update_flat(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let group = wid.x + wid.y * nwg.x;
    let param_groups = (sp.n_params + 255u) / 256u;
    if (group == param_groups) {
        if (lid != 0u) { return; }
        // Four interleaved partial sums (shorter rounding chains than one running sum).
        var acc = vec4<f32>(0.0);
        let b4 = sp.batch / 4u * 4u;
        for (var b = 0u; b < b4; b += 4u) {
            let at = sp.loss_offset + b;
            acc += vec4<f32>(deltas[at], deltas[at + 1u], deltas[at + 2u], deltas[at + 3u]);
        }
        for (var b = b4; b < sp.batch; b++) {
            acc.x += deltas[sp.loss_offset + b];
        }
        let loss = ((acc.x + acc.y) + (acc.z + acc.w)) / f32(sp.batch);
        metrics.losses[sp.loss_slot] = loss;
        if (non_finite(loss)) { atomicMin(&metrics.first_bad_step, sp.step); }
        return;
    }
    adam_param(group * 256u + lid);
}

fn adam_param(i: u32) {
    if (i >= sp.n_params) { return; }
    let g = grads[i];
    let m = sp.beta1 * moments[i] + (1.0 - sp.beta1) * g;
    let v = sp.beta2 * moments[sp.n_params + i] + (1.0 - sp.beta2) * g * g;
    moments[i] = m;
    moments[sp.n_params + i] = v;
    let p = params[i] * (1.0 - sp.lr * sp.weight_decay) - sp.lr * (m * sp.c1) / (sqrt(v * sp.c2) + sp.eps);
    params[i] = p;
    if (non_finite(p)) { atomicMin(&metrics.first_bad_step, sp.step); }
}
