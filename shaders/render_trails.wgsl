// render_trails.wgsl — trajectories from t = 0 up to the shown time t, as faint line strips.
//
// Trail j draws particle i = j·trail_stride as `steps` segments (a line list, 2·steps vertices per
// trail: vertex v is trail j = v / (2·steps), point k = segment + end): point k sits at the
// recorded state at time min(k/steps, t), so the trail grows with t (points past t collapse onto
// the particle). Opacity fades towards the tail. Not instanced: SwiftShader pays per instance.
//
// Bindings (group 0), the same as render_particles.wgsl:
//   0 view: View (uniform, from the render prelude of src/render/view.rs; src/render/view.rs::ViewUniform)
//   1 traj: array<vec2<f32>> (read) — (steps + 1, n) step-major, row 0 = x0
//   2 origins: array<vec2<f32>> (read) — x0 of each particle (colour)
// Drawn by src/render/mod.rs: draw(2·steps·ceil(n / trail_stride) vertices), LineList.

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
    @location(0) color: vec4<f32>,
}

@vertex
fn vs_trail(@builtin(vertex_index) v: u32) -> VertexOut {
    var out: VertexOut;
    let per = 2u * max(view.steps, 1u);
    let j = v / per;
    let k = (v % per) / 2u + (v & 1u);
    let i = min(j * max(view.trail_stride, 1u), view.n - 1u);
    let tk = min(f32(k) / f32(max(view.steps, 1u)), view.t);
    let p = position_at(i, tk);
    let finite = all(p == p) && all(abs(p) < vec2<f32>(1e30));
    out.pos = vec4<f32>(select(vec2<f32>(4.0), (p - view.center) * view.scale, finite), 0.0, 1.0);
    let age = tk / max(view.t, 1e-3);
    out.color = vec4<f32>(origin_color(origins[i]), 0.35 * (0.2 + 0.8 * age));
    return out;
}

@fragment
fn fs_trail(in: VertexOut) -> @location(0) vec4<f32> {
    return in.color;
}
