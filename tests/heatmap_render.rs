//! The heat map layer (`shaders/render_heatmap.wgsl`) draws every grid cell from a `log p`
//! buffer: rendered natively into a texture and read back. A NaN cell is not drawn (background).
#![cfg(not(target_arch = "wasm32"))]

mod common;
use flowmatch::render::heatmap::HEAT_GRID;
use flowmatch::render::{FlowRenderer, Layers, Viewport, BACKGROUND};
use wgpu::util::DeviceExt;

#[test]
fn heatmap_covers_the_world_square_and_skips_nan() {
    let ctx = pollster::block_on(common::gpu());
    let (w, h) = (128u32, 128u32);
    let format = wgpu::TextureFormat::Rgba8Unorm;
    let texture = ctx.device.create_texture(&wgpu::TextureDescriptor {
        label: None,
        size: wgpu::Extent3d { width: w, height: h, depth_or_array_layers: 1 },
        mip_level_count: 1,
        sample_count: 1,
        dimension: wgpu::TextureDimension::D2,
        format,
        usage: wgpu::TextureUsages::RENDER_ATTACHMENT | wgpu::TextureUsages::COPY_SRC,
        view_formats: &[],
    });
    let mut values = vec![0.0f32; (HEAT_GRID * HEAT_GRID) as usize];
    // Cell (0, 0) (bottom left) is NaN; the others high density.
    values[0] = f32::NAN;
    let log_p = ctx.device.create_buffer_init(&wgpu::util::BufferInitDescriptor { label: None, contents: bytemuck::cast_slice(&values), usage: wgpu::BufferUsages::STORAGE });
    let mut r = FlowRenderer::new(&ctx.device, &ctx.queue, format);
    r.set_heatmap(&log_p);
    let view = Viewport { width: w, height: h, extent: 5.0 }.uniform();
    let layers = Layers { particles: false, trails: false, arrows: false, target: false, heatmap: true };
    let mut encoder = ctx.device.create_command_encoder(&Default::default());
    r.draw(&mut encoder, &texture.create_view(&Default::default()), view, layers);
    let staging = ctx.device.create_buffer(&wgpu::BufferDescriptor { label: None, size: (w * h * 4) as u64, usage: wgpu::BufferUsages::COPY_DST | wgpu::BufferUsages::MAP_READ, mapped_at_creation: false });
    encoder.copy_texture_to_buffer(
        texture.as_image_copy(),
        wgpu::TexelCopyBufferInfo { buffer: &staging, layout: wgpu::TexelCopyBufferLayout { offset: 0, bytes_per_row: Some(w * 4), rows_per_image: Some(h) } },
        wgpu::Extent3d { width: w, height: h, depth_or_array_layers: 1 },
    );
    ctx.queue.submit([encoder.finish()]);
    let px = pollster::block_on(flowmatch::gpu::readback::map_staging(&ctx, &staging)).unwrap();
    let at = |x: u32, y: u32| &px[((y * w + x) * 4) as usize..][..3];
    let bg = [(BACKGROUND.r * 255.0).round() as u8, (BACKGROUND.g * 255.0).round() as u8, (BACKGROUND.b * 255.0).round() as u8];
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
