// render_arrows.wgsl — the velocity field v_θ(x, t) at the shown time t, as arrows on a grid.
//
// The field is evaluated by the engine's own ODE kernel (src/gpu/sampler.rs): a second sampler
// holds the grid anchors a_i, and one Euler step of size 1 from t leaves a_i + v(a_i, t) in its
// particle buffer, which is read here. Arrow i is centred on its anchor, points along v, and its
// length saturates with speed (cell · 0.85 · (1 - exp(-|v|/1.5))) so slow and fast regions both read.
//
// Bindings (group 0):
//   0 view: View (uniform, from the render prelude of src/render/view.rs; src/render/view.rs::ViewUniform) — uses grid, extent
//   1 field: array<vec2<f32>> (read) — grid² points a_i + v(a_i, t), row-major from bottom left;
//            anchors a_i = arrow_anchor(i) (twin: src/render/view.rs::arrow_anchor)
// vs_exact_arrow draws the exact marginal field's arrows from a vec4-per-anchor buffer instead.
// Drawn by src/render/mod.rs: draw(6·grid² vertices), LineList: arrow i = v / 6
// is a shaft and two head strokes (not instanced: SwiftShader pays per instance).

@group(0) @binding(0) var<uniform> view: View;
@group(0) @binding(1) var<storage, read> field: array<vec2<f32>>;

fn arrow_anchor(i: u32) -> vec2<f32> {
    let cell = 2.0 * view.extent / f32(view.grid);
    let g = vec2<f32>(f32(i % view.grid), f32(i / view.grid));
    return vec2<f32>(-view.extent) + (g + 0.5) * cell;
}

struct VertexOut {
    @builtin(position) pos: vec4<f32>,
    @location(0) color: vec4<f32>,
}

// Vertex v of arrow i (anchor a) for velocity `vel` in colour `rgb`.
fn arrow_vertex(i: u32, v: u32, vel_in: vec2<f32>, rgb: vec3<f32>) -> VertexOut {
    var out: VertexOut;
    let a = arrow_anchor(i);
    var vel = vel_in;
    if (!all(vel == vel)) { vel = vec2<f32>(0.0); }
    let speed = length(vel);
    let dir = select(vec2<f32>(1.0, 0.0), vel / speed, speed > 1e-6);
    let perp = vec2<f32>(-dir.y, dir.x);
    let cell = 2.0 * view.extent / f32(view.grid);
    let len = cell * 0.85 * (1.0 - exp(-speed / 1.5));
    let tip = a + dir * (0.5 * len);
    let head = min(len * 0.4, cell * 0.22);
    var p = tip;
    switch (v) {
        case 0u: { p = a - dir * (0.5 * len); }
        case 3u: { p = tip - dir * head + perp * (0.5 * head); }
        case 5u: { p = tip - dir * head - perp * (0.5 * head); }
        default: { p = tip; }
    }
    out.pos = vec4<f32>((p - view.center) * view.scale, 0.0, 1.0);
    out.color = vec4<f32>(rgb, 0.22 + 0.5 * (1.0 - exp(-speed)));
    return out;
}

// The learned field: `field` holds a_i + v(a_i, t).
@vertex
fn vs_arrow(@builtin(vertex_index) vi: u32) -> VertexOut {
    let i = vi / 6u;
    return arrow_vertex(i, vi % 6u, field[i] - arrow_anchor(i), vec3<f32>(0.85, 0.9, 1.0));
}

// The exact marginal field (src/gpu/exact.rs GpuExactField::out_buffer): `field` holds a vec4
// (u_x, u_y, 0, 0) per anchor, read as two vec2s; drawn in orange (twin: EXACT_ARROW_CSS in
// src/engine/cpu.rs).
@vertex
fn vs_exact_arrow(@builtin(vertex_index) vi: u32) -> VertexOut {
    let i = vi / 6u;
    return arrow_vertex(i, vi % 6u, field[2u * i], vec3<f32>(1.0, 0.62, 0.39));
}

@fragment
fn fs_arrow(in: VertexOut) -> @location(0) vec4<f32> {
    return in.color;
}
