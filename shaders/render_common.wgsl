// render_common.wgsl — helpers of the render shaders, prepended to each of them after the
// generated `View` struct (src/render/view.rs::prelude).

// Where particle i sits at flow time t in [0, 1] in the trajectory buffer ((steps + 1, n)
// step-major): between rows a and b, a fraction f of the way (linear between recorded steps).
struct TrajLerp { a: u32, b: u32, f: f32 }

fn traj_lerp(i: u32, t: f32) -> TrajLerp {
    let steps = max(view.steps, 1u);
    let s = f32(steps) * clamp(t, 0.0, 1.0);
    let k0 = min(u32(floor(s)), steps - 1u);
    return TrajLerp(k0 * view.n + i, (k0 + 1u) * view.n + i, s - f32(k0));
}

// HSL (all in [0, 1]) → RGB; twin of src/render/view.rs::hsl_to_rgb.
fn hsl_to_rgb(h: f32, s: f32, l: f32) -> vec3<f32> {
    let c = (1.0 - abs(2.0 * l - 1.0)) * s;
    let k = (vec3<f32>(0.0, 8.0, 4.0) + h * 12.0) % vec3<f32>(12.0);
    return l - c * 0.5 * clamp(min(k - 3.0, 9.0 - k), vec3<f32>(-1.0), vec3<f32>(1.0));
}

// A particle's colour from its starting point x0; twin of src/render/view.rs::origin_color.
fn origin_color(x0: vec2<f32>) -> vec3<f32> {
    let hue = fract(atan2(x0.y, x0.x) / 6.2831853 + 1.0);
    let light = 0.5 + 0.18 * min(length(x0) / 2.5, 1.0);
    return hsl_to_rgb(hue, 0.8, light);
}

// Corner c in [0, 6) of a quad drawn as two triangles (TriangleList), in [-1, 1]²: (0, 1, 2) and
// (2, 1, 3) of the corners (-1,-1), (1,-1), (-1,1), (1,1).
fn quad_corner(c: u32) -> vec2<f32> {
    var order = array<u32, 6>(0u, 1u, 2u, 2u, 1u, 3u);
    let k = order[c];
    return vec2<f32>(select(-1.0, 1.0, (k & 1u) != 0u), select(-1.0, 1.0, (k & 2u) != 0u));
}
