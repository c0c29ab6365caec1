//! The render layers (`shaders/render_*.wgsl`), drawn natively into a texture and read back:
//! the heat map draws every grid cell from a `log p` buffer (a NaN cell is not drawn), and the
//! target, particles, trajectories and arrows land on the pixels of their points and nowhere else
//! (each layer is one non-instanced draw of 6 vertices per quad or 2 per segment: a wrong vertex →
//! point mapping shows here).
#![cfg(not(target_arch = "wasm32"))]

mod common;
use flowmatch::engine::present::{Offscreen, OFFSCREEN_FORMAT};
use flowmatch::render::heatmap::HEAT_GRID;
use flowmatch::render::{FlowRenderer, Layers, Viewport, BACKGROUND};
use wgpu::util::DeviceExt;

#[test]
fn heatmap_covers_the_world_square_and_skips_nan() {
    let ctx = pollster::block_on(common::gpu());
    let (w, h) = (128u32, 128u32);
    let mut values = vec![0.0f32; (HEAT_GRID * HEAT_GRID) as usize];
    // Cell (0, 0) (bottom left) is NaN; the others high density.
    values[0] = f32::NAN;
    let log_p = ctx.device.create_buffer_init(&wgpu::util::BufferInitDescriptor { label: None, contents: bytemuck::cast_slice(&values), usage: wgpu::BufferUsages::STORAGE });
    let mut r = FlowRenderer::new(&ctx.device, &ctx.queue, OFFSCREEN_FORMAT);
    r.set_heatmap(&log_p);
    let view = Viewport { width: w, height: h, extent: 5.0 }.uniform();
    let layers = Layers { particles: false, trails: false, arrows: false, target: false, heatmap: true, exact: false, exact_flow: false };
    let px = render(&ctx, &r, view, layers, w, h);
    let at = |x: u32, y: u32| &px[((y * w + x) * 4) as usize..][..3];
    let bg = background();
    let far = |p: &[u8]| p.iter().zip(bg).any(|(a, b)| (*a as i32 - b as i32).abs() > 8);
    // Every pixel but the NaN cell (2x2 pixels at the bottom left; row 0 of the texture is the top).
    let mut drawn = 0;
    for y in 0..h {
        for x in 0..w {
            if far(at(x, y)) {
                drawn += 1;
            }
        }
    }
    assert!(far(at(w / 2, h / 2)) && at(w / 2, h / 2)[0] > 150, "centre pixel {:?} should be warm (log p = 0)", at(w / 2, h / 2));
    assert!(!far(at(0, h - 1)), "the NaN cell must not be drawn: {:?}", at(0, h - 1));
    assert!(drawn >= w * h - 8, "only {drawn} of {} pixels drawn", w * h);
}

/// The clear colour as 8-bit RGB.
fn background() -> [u8; 3] {
    [BACKGROUND.r, BACKGROUND.g, BACKGROUND.b].map(|c| (c * 255.0).round() as u8)
}

/// Renders `layers` of `r` into a fresh `w x h` offscreen target (the presenters' own,
/// `engine::present::Offscreen`) and returns its tightly packed RGBA pixels.
fn render(ctx: &flowmatch::gpu::GpuContext, r: &FlowRenderer, view: flowmatch::render::ViewUniform, layers: Layers, w: u32, h: u32) -> Vec<u8> {
    let target = Offscreen::new(&ctx.device, w, h);
    let staging = ctx.device.create_buffer(&wgpu::BufferDescriptor { label: None, size: target.staging_size(), usage: wgpu::BufferUsages::COPY_DST | wgpu::BufferUsages::MAP_READ, mapped_at_creation: false });
    let mut encoder = ctx.device.create_command_encoder(&Default::default());
    r.draw(&mut encoder, &target.texture.create_view(&Default::default()), view, layers);
    target.copy_to(&mut encoder, &staging);
    ctx.queue.submit([encoder.finish()]);
    target.unpad(&pollster::block_on(flowmatch::gpu::readback::map_staging(ctx, &staging)).unwrap())
}

#[test]
fn point_layers_draw_at_their_points_only() {
    let ctx = pollster::block_on(common::gpu());
    let (w, h) = (128u32, 128u32);
    let vp = Viewport { width: w, height: h, extent: 5.0 };
    let storage = |data: &[[f32; 2]]| ctx.device.create_buffer_init(&wgpu::util::BufferInitDescriptor { label: None, contents: bytemuck::cast_slice(data), usage: wgpu::BufferUsages::STORAGE });
    let bg = background();
    // Pixels that differ from the background, as (x, y) (row 0 at the top).
    let lit = |px: &[u8]| -> Vec<(u32, u32)> {
        (0..w * h).filter(|i| px[(i * 4) as usize..][..3].iter().zip(bg).any(|(a, b)| (*a as i32 - b as i32).abs() > 6)).map(|i| (i % w, i / w)).collect()
    };
    let near = |p: [f32; 2], q: (u32, u32), r: f32| {
        let c = vp.to_px(p);
        (q.0 as f32 + 0.5 - c[0]).hypot(q.1 as f32 + 0.5 - c[1]) <= r
    };
    let mut view = vp.uniform();
    view.point_px = 8.0;
    view.alpha = 1.0;
    let none = Layers { particles: false, trails: false, arrows: false, target: false, heatmap: false, exact: false, exact_flow: false };
    let mut r = FlowRenderer::new(&ctx.device, &ctx.queue, OFFSCREEN_FORMAT);

    // Target samples: two points, three quads' worth of vertices would show a third.
    let target = [[-2.5f32, 2.5], [2.5, -2.5], [0.0, 0.0]];
    let tb = storage(&target);
    r.set_target(&tb, 2);
    let got = lit(&render(&ctx, &r, view, Layers { target: true, ..none }, w, h));
    for p in &target[..2] {
        assert!(got.iter().any(|&q| near(*p, q, 1.0)), "no target dot at {p:?}");
    }
    assert!(got.iter().all(|&q| target[..2].iter().any(|p| near(*p, q, 5.0))), "target pixels away from the points: {got:?}");

    // Particles: traj (steps + 1 = 2 rows of n = 2), shown at t = 0 (x0) and t = 1 (x1).
    let x0 = [[-3.0f32, -3.0], [3.0, 3.0]];
    let x1 = [[-3.0f32, 3.0], [3.0, -3.0]];
    let traj = storage(&[x0[0], x0[1], x1[0], x1[1]]);
    let origins = storage(&x0);
    r.set_flow(&traj, &origins, 2, 1);
    for (t, at) in [(0.0, x0), (1.0, x1)] {
        view.t = t;
        let got = lit(&render(&ctx, &r, view, Layers { particles: true, ..none }, w, h));
        for p in at {
            assert!(got.iter().any(|&q| near(p, q, 1.0)), "t = {t}: no particle at {p:?}");
        }
        assert!(got.iter().all(|&q| at.iter().any(|p| near(*p, q, 5.5))), "t = {t}: particle pixels elsewhere: {got:?}");
    }

    // Trajectories at t = 1: the segments x0 → x1 (vertical lines at x = ±3), nothing else.
    view.t = 1.0;
    let got = lit(&render(&ctx, &r, view, Layers { trails: true, ..none }, w, h));
    for (a, b) in x0.iter().zip(x1) {
        let mid = [(a[0] + b[0]) / 2.0, (a[1] + b[1]) / 2.0];
        assert!(got.iter().any(|&q| near(mid, q, 1.5)), "no trajectory through {mid:?}");
    }
    let on_segment = |q: (u32, u32)| x0.iter().any(|a| (q.0 as f32 + 0.5 - vp.to_px(*a)[0]).abs() <= 1.5);
    assert!(got.iter().all(|&q| on_segment(q)), "trajectory pixels off the segments: {got:?}");

    // Arrows on a 2 x 2 grid, each v = (1, 0): centred on its anchor, horizontal.
    let grid = 2;
    let anchors: Vec<[f32; 2]> = (0..grid * grid).map(|i| flowmatch::render::view::arrow_anchor(i, grid, vp.extent)).collect();
    let field = storage(&anchors.iter().map(|a| [a[0] + 1.0, a[1]]).collect::<Vec<_>>());
    r.set_field(&field, grid);
    let got = lit(&render(&ctx, &r, view, Layers { arrows: true, ..none }, w, h));
    for a in &anchors {
        assert!(got.iter().any(|&q| near(*a, q, 1.5)), "no arrow at {a:?}");
    }
    let cell_px = 2.0 * vp.extent / grid as f32 / vp.units_per_px();
    assert!(got.iter().all(|&q| anchors.iter().any(|a| near(*a, q, 0.5 * cell_px))), "arrow pixels outside their cells");

    // The exact field's arrows (vec4 per anchor: u_x, u_y, 0, 0), at the same anchors, in orange
    // (red above blue), and none while no exact field is set.
    assert!(lit(&render(&ctx, &r, view, Layers { exact: true, ..none }, w, h)).is_empty(), "exact arrows without an exact field");
    let exact = ctx.device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
        label: None,
        contents: bytemuck::cast_slice(&vec![[0.0f32, 1.0, 0.0, 0.0]; (grid * grid) as usize]),
        usage: wgpu::BufferUsages::STORAGE,
    });
    r.set_exact_field(Some(&exact));
    let px = render(&ctx, &r, view, Layers { exact: true, ..none }, w, h);
    let got = lit(&px);
    for a in &anchors {
        assert!(got.iter().any(|&q| near(*a, q, 1.5)), "no exact arrow at {a:?}");
    }
    assert!(got.iter().all(|&q| anchors.iter().any(|a| near(*a, q, 0.5 * cell_px))), "exact arrow pixels outside their cells");
    // Vertical (u = (0, 1)): the shaft's pixels share the anchor's column.
    for a in &anchors {
        let c = vp.to_px(*a);
        assert!(got.iter().filter(|q| near(*a, **q, 0.5 * cell_px)).any(|q| (q.0 as f32 + 0.5 - c[0]).abs() <= 1.0 && (q.1 as f32 + 0.5 - c[1]).abs() > 3.0), "exact arrow at {a:?} not vertical");
    }
    let at = |q: (u32, u32)| &px[((q.1 * w + q.0) * 4) as usize..][..3];
    assert!(got.iter().all(|&q| at(q)[0] > at(q)[2]), "exact arrows should be orange");
}
