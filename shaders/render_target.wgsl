// render_target.wgsl — the target's training samples, faint grey dots behind everything else.
//
// Bindings (group 0):
//   0 view: View (uniform, from the render prelude of src/render/view.rs; src/render/view.rs::ViewUniform)
//   1 points: array<vec2<f32>> (read) — the trainer's dataset buffer (src/gpu/trainer.rs `data`),
//             of which the first `instance_count` points are drawn
// Drawn by src/render/mod.rs: draw(4 vertices, n_points instances), TriangleStrip quads.

@group(0) @binding(0) var<uniform> view: View;
@group(0) @binding(1) var<storage, read> points: array<vec2<f32>>;

struct VertexOut {
    @builtin(position) pos: vec4<f32>,
    @location(0) uv: vec2<f32>,
}

@vertex
fn vs_target(@builtin(vertex_index) v: u32, @builtin(instance_index) i: u32) -> VertexOut {
    var corners = array<vec2<f32>, 4>(vec2(-1.0, -1.0), vec2(1.0, -1.0), vec2(-1.0, 1.0), vec2(1.0, 1.0));
    let corner = corners[v & 3u];
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
