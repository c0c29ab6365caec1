// render_heatmap.wgsl — the learned density log p(x) on a HEAT_GRID² grid over the world square,
// drawn behind everything else straight from the density kernel's output buffer.
//
// Bindings (group 0):
//   0 view: View (uniform, from the render prelude of src/render/view.rs; src/render/view.rs::ViewUniform)
//   1 log_p: array<f32> (read) — `shaders/density.wgsl`'s output for the cell centres
//            (src/render/heatmap.rs::cell_centres: cell i = (i % G, i / G), row 0 at y = -extent)
// Drawn by src/render/heatmap.rs: draw(6·G² vertices), TriangleList: cell i = v / 6
// is one quad of two triangles (not instanced: SwiftShader pays per instance).
// Colour: log p mapped linearly from [LOG_P_LO, LOG_P_HI] to a dark-to-warm ramp, the opacity
// rising with it; non-finite values are not drawn.

@group(0) @binding(0) var<uniform> view: View;
@group(0) @binding(1) var<storage, read> log_p: array<f32>;

struct VertexOut {
    @builtin(position) pos: vec4<f32>,
    @location(0) @interpolate(flat) value: f32,
}

@vertex
fn vs_heat(@builtin(vertex_index) v: u32) -> VertexOut {
    let i = v / 6u;
    let cell = 2.0 * view.extent / f32(HEAT_GRID);
    let lo = vec2<f32>(f32(i % HEAT_GRID), f32(i / HEAT_GRID)) * cell - vec2<f32>(view.extent);
    let p = lo + (quad_corner(v % 6u) * 0.5 + 0.5) * cell;
    var out: VertexOut;
    out.pos = vec4<f32>((p - view.center) * view.scale, 0.0, 1.0);
    out.value = log_p[i];
    return out;
}

@fragment
fn fs_heat(in: VertexOut) -> @location(0) vec4<f32> {
    let x = in.value;
    // NaN fails every comparison; ±inf is outside any finite range.
    if (!(x == x) || abs(x) > 3.0e38) { discard; }
    let s = clamp((x - LOG_P_LO) / (LOG_P_HI - LOG_P_LO), 0.0, 1.0);
    let c = mix(vec3<f32>(0.10, 0.12, 0.35), vec3<f32>(0.95, 0.55, 0.15), s);
    return vec4<f32>(c, 0.25 + 0.7 * s);
}
