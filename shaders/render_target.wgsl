// render_target.wgsl — the target's training samples, faint grey dots behind everything else.
//
// Bindings (group 0):
//   0 view: View (uniform, from the render prelude of src/render/view.rs; src/render/view.rs::ViewUniform)
//   1 points: array<vec2<f32>> (read) — the trainer's dataset buffer (src/gpu/trainer.rs `data`),
//             of which the first `instance_count` points are drawn
// Drawn by src/render/mod.rs: draw(6·n_points vertices), TriangleList: point i = v / 6 is one quad
// (two triangles). Not instanced: SwiftShader, the software adapter, pays per instance.

@group(0) @binding(0) var<uniform> view: View;
@group(0) @binding(1) var<storage, read> points: array<vec2<f32>>;

struct VertexOut {
    @builtin(position) pos: vec4<f32>,
    @location(0) uv: vec2<f32>,
}

@vertex
fn vs_target(@builtin(vertex_index) v: u32) -> VertexOut {
    let i = v / 6u;
    let corner = quad_corner(v % 6u);
    var out: VertexOut;
    let clip = (points[i] - view.center) * view.scale;
    let size = max(view.point_px * 0.8, 1.5);
    out.pos = vec4<f32>(clip + corner * view.px * (0.5 * size), 0.0, 1.0);
    out.uv = corner;
    return out;
}

@fragment
fn fs_target(in: VertexOut) -> @location(0) vec4<f32> {
    let d = length(in.uv);
    if (d > 1.0) { discard; }
    return vec4<f32>(0.62, 0.67, 0.78, 0.16 * smoothstep(1.0, 0.4, d));
}
