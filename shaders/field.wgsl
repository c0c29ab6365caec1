// field.wgsl — the learned velocity at given inputs: out[i] = v_θ(x_i, y_i, t_i)
// (twin: src/cpu/mlp.rs::velocity). `fn velocity` is network.wgsl's, prepended by
// src/gpu/shaders.rs, so the network is written once.
// Bindings: 0 fp: FieldParams (uniform: n), 1 model: ModelDesc (uniform, per layer
//           (in, out, w_offset, b_offset)), 2 params (read, packed, src/model.rs layout),
//           3 inputs: array<f32> (read, IN_DIM floats per point in the network's input order
//           (x, y, t), row-major), 4 out: array<vec2<f32>> (read_write, one velocity per point).
// Dispatched by src/gpu/field.rs, one invocation per point.

struct FieldParams {
    n: u32, _pad0: u32, _pad1: u32, _pad2: u32,
}

@group(0) @binding(0) var<uniform> fp: FieldParams;
@group(0) @binding(1) var<uniform> model: ModelDesc;
@group(0) @binding(2) var<storage, read> params: array<f32>;
@group(0) @binding(3) var<storage, read> inputs: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<vec2<f32>>;

@compute @workgroup_size(64)
fn eval_field(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg, 64u);
    if (i >= fp.n) { return; }
    let b = i * IN_DIM;
    out[i] = velocity(vec2<f32>(inputs[b], inputs[b + 1u]), inputs[b + 2u]);
}
