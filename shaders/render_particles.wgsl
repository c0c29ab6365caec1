// render_particles.wgsl — draws the particles at flow time t straight from the sampler's buffers.
//
// Each particle is one instance of a 4-vertex triangle strip (a screen-aligned quad, `point_px`
// device pixels wide, shaded as a soft disc). Its position at time t is interpolated linearly
// between the two recorded ODE states around t, so scrubbing and the looping animation need no
// re-integration and no readback. Colour comes from the particle's starting point x0.
//
// Bindings (group 0):
//   0 view: View (uniform; layout = src/render/view.rs::ViewUniform, 64 bytes)
//   1 traj: array<vec2<f32>> (read) — (steps + 1, n) step-major: traj[k·n + i] = particle i after
//           k ODE steps (row 0 = x0); written by shaders/ode_step.wgsl via src/gpu/sampler.rs
//   2 origins: array<vec2<f32>> (read) — x0 of particle i
// Drawn by src/render/mod.rs (FlowRenderer::draw): draw(4 vertices, n instances), blend "over".

struct View {
    scale: vec2<f32>, center: vec2<f32>, px: vec2<f32>,
    t: f32, point_px: f32,
    n: u32, steps: u32, trail_stride: u32, grid: u32,
    extent: f32, alpha: f32, _pad: vec2<f32>,
}

@group(0) @binding(0) var<uniform> view: View;
@group(0) @binding(1) var<storage, read> traj: array<vec2<f32>>;
@group(0) @binding(2) var<storage, read> origins: array<vec2<f32>>;

// Position of particle i at time t in [0, 1]: linear between recorded steps.
fn position_at(i: u32, t: f32) -> vec2<f32> {
    let steps = max(view.steps, 1u);
    let s = f32(steps) * clamp(t, 0.0, 1.0);
    let k0 = min(u32(floor(s)), steps - 1u);
    let f = s - f32(k0);
    return mix(traj[k0 * view.n + i], traj[(k0 + 1u) * view.n + i], f);
}

// HSL (all in [0, 1]) → RGB; twin of src/render/view.rs::hsl_to_rgb.
fn hsl_to_rgb(h: f32, s: f32, l: f32) -> vec3<f32> {
    let c = (1.0 - abs(2.0 * l - 1.0)) * s;
    let k = (vec3<f32>(0.0, 8.0, 4.0) + h * 12.0) % vec3<f32>(12.0);
    return l - c * 0.5 * clamp(min(k - 3.0, 9.0 - k), vec3<f32>(-1.0), vec3<f32>(1.0));
}

// Twin of src/render/view.rs::origin_color.
fn origin_color(x0: vec2<f32>) -> vec3<f32> {
    let hue = fract(atan2(x0.y, x0.x) / 6.2831853 + 1.0);
    let light = 0.5 + 0.18 * min(length(x0) / 2.5, 1.0);
    return hsl_to_rgb(hue, 0.8, light);
}

struct VertexOut {
    @builtin(position) pos: vec4<f32>,
    @location(0) uv: vec2<f32>,
    @location(1) color: vec4<f32>,
}

@vertex
fn vs_particle(@builtin(vertex_index) v: u32, @builtin(instance_index) i: u32) -> VertexOut {
    var corners = array<vec2<f32>, 4>(vec2(-1.0, -1.0), vec2(1.0, -1.0), vec2(-1.0, 1.0), vec2(1.0, 1.0));
    let corner = corners[v & 3u];
    var out: VertexOut;
    let p = position_at(i, view.t);
    // Non-finite positions (a diverged model) are moved off screen instead of drawn.
    let finite = all(p == p) && all(abs(p) < vec2<f32>(1e30));
    let clip = select(vec2<f32>(4.0), (p - view.center) * view.scale, finite);
    out.pos = vec4<f32>(clip + corner * view.px * (0.5 * view.point_px), 0.0, 1.0);
    out.uv = corner;
    out.color = vec4<f32>(origin_color(origins[i]), view.alpha);
    return out;
}

@fragment
fn fs_particle(in: VertexOut) -> @location(0) vec4<f32> {
    let d = length(in.uv);
    if (d > 1.0) { discard; }
    return vec4<f32>(in.color.rgb, in.color.a * smoothstep(1.0, 0.55, d));
}
