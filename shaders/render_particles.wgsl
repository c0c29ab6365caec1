// render_particles.wgsl — draws the particles at flow time t straight from the sampler's buffers.
//
// Each particle is a screen-aligned quad of two triangles (6 vertices: particle i = v / 6), `point_px`
// device pixels wide, shaded as a soft disc. Its position at time t is interpolated linearly
// between the two recorded ODE states around t, so scrubbing and the looping animation need no
// re-integration and no readback. Colour comes from the particle's starting point x0;
// vs_exact_particle draws the exact flow's particles (layer `exactflow`, the same layout) in
// orange instead (twin: EXACT_CSS in src/engine/cpu.rs).
//
// Bindings (group 0):
//   0 view: View (uniform, from the render prelude of src/render/view.rs; layout = src/render/view.rs::ViewUniform, 64 bytes)
//   1 traj: array<vec2<f32>> (read) — (steps + 1, n) step-major: traj[k·n + i] = particle i after
//           k ODE steps (row 0 = x0); written by shaders/ode_step.wgsl via src/gpu/sampler.rs
//   2 origins: array<vec2<f32>> (read) — x0 of particle i
// Drawn by src/render/mod.rs (FlowRenderer::draw): draw(6·n vertices), TriangleList, blend "over".
// Not instanced: SwiftShader, the software adapter, pays per instance (4000 instances cost more than
// 24,000 vertices of one draw).

@group(0) @binding(0) var<uniform> view: View;
@group(0) @binding(1) var<storage, read> traj: array<vec2<f32>>;
@group(0) @binding(2) var<storage, read> origins: array<vec2<f32>>;

// Position of particle i at time t in [0, 1]: linear between recorded steps.
fn position_at(i: u32, t: f32) -> vec2<f32> {
    let l = traj_lerp(i, t);
    return mix(traj[l.a], traj[l.b], l.f);
}

struct VertexOut {
    @builtin(position) pos: vec4<f32>,
    @location(0) uv: vec2<f32>,
    @location(1) color: vec4<f32>,
}

// Vertex v of particle i in colour `rgb`.
fn particle_vertex(v: u32, i: u32, rgb: vec3<f32>) -> VertexOut {
    let corner = quad_corner(v % 6u);
    var out: VertexOut;
    let p = position_at(i, view.t);
    // Non-finite positions (a diverged model) are moved off screen instead of drawn.
    let finite = all(p == p) && all(abs(p) < vec2<f32>(1e30));
    let clip = select(vec2<f32>(4.0), (p - view.center) * view.scale, finite);
    out.pos = vec4<f32>(clip + corner * view.px * (0.5 * view.point_px), 0.0, 1.0);
    out.uv = corner;
    out.color = vec4<f32>(rgb, view.alpha);
    return out;
}

@vertex
fn vs_particle(@builtin(vertex_index) v: u32) -> VertexOut {
    let i = v / 6u;
    return particle_vertex(v, i, origin_color(origins[i]));
}

@vertex
fn vs_exact_particle(@builtin(vertex_index) v: u32) -> VertexOut {
    return particle_vertex(v, v / 6u, vec3<f32>(1.0, 0.62, 0.39));
}

@fragment
fn fs_particle(in: VertexOut) -> @location(0) vec4<f32> {
    let d = length(in.uv);
    if (d > 1.0) { discard; }
    return vec4<f32>(in.color.rgb, in.color.a * smoothstep(1.0, 0.55, d));
}
