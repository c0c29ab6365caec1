// render_trails.wgsl — trajectories from t = 0 up to the shown time t, as faint line strips.
//
// Instance j draws particle i = j·trail_stride as one line strip of steps + 1 vertices: vertex k
// sits at the recorded state at time min(k/steps, t), so the strip grows with t (vertices past
// t collapse onto the particle). Opacity fades towards the tail.
//
// Bindings (group 0), the same as render_particles.wgsl:
//   0 view: View (uniform; src/render/view.rs::ViewUniform)
//   1 traj: array<vec2<f32>> (read) — (steps + 1, n) step-major, row 0 = x0
//   2 origins: array<vec2<f32>> (read) — x0 of each particle (colour)
// Drawn by src/render/mod.rs: draw(steps + 1 vertices, ceil(n / trail_stride) instances), LineStrip.

struct View {
    scale: vec2<f32>, center: vec2<f32>, px: vec2<f32>,
    t: f32, point_px: f32,
    n: u32, steps: u32, trail_stride: u32, grid: u32,
    extent: f32, alpha: f32, _pad: vec2<f32>,
}

@group(0) @binding(0) var<uniform> view: View;
@group(0) @binding(1) var<storage, read> traj: array<vec2<f32>>;
@group(0) @binding(2) var<storage, read> origins: array<vec2<f32>>;

fn position_at(i: u32, t: f32) -> vec2<f32> {
    let steps = max(view.steps, 1u);
    let s = f32(steps) * clamp(t, 0.0, 1.0);
    let k0 = min(u32(floor(s)), steps - 1u);
    let f = s - f32(k0);
    return mix(traj[k0 * view.n + i], traj[(k0 + 1u) * view.n + i], f);
}

fn hsl_to_rgb(h: f32, s: f32, l: f32) -> vec3<f32> {
    let c = (1.0 - abs(2.0 * l - 1.0)) * s;
    let k = (vec3<f32>(0.0, 8.0, 4.0) + h * 12.0) % vec3<f32>(12.0);
    return l - c * 0.5 * clamp(min(k - 3.0, 9.0 - k), vec3<f32>(-1.0), vec3<f32>(1.0));
}

fn origin_color(x0: vec2<f32>) -> vec3<f32> {
    let hue = fract(atan2(x0.y, x0.x) / 6.2831853 + 1.0);
    let light = 0.5 + 0.18 * min(length(x0) / 2.5, 1.0);
    return hsl_to_rgb(hue, 0.8, light);
}

struct VertexOut {
    @builtin(position) pos: vec4<f32>,
    @location(0) color: vec4<f32>,
}

@vertex
fn vs_trail(@builtin(vertex_index) k: u32, @builtin(instance_index) j: u32) -> VertexOut {
    var out: VertexOut;
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
