//! How the GPU engine's frames reach a screen: a [`GpuPresenter`] takes the render pass the engine
//! records and puts it somewhere — the canvas' WebGPU context or a 2D canvas through a readback
//! (`src/web/present.rs`), or an [`OffscreenPresenter`] texture natively (tests read its pixels).

use crate::gpu::GpuContext;

/// Where the GPU engine draws.
pub trait GpuPresenter {
    /// The colour format the render pipelines are built for.
    fn format(&self) -> wgpu::TextureFormat;
    /// `"surface"`, `"readback"` or `"offscreen"` (`state().present`).
    fn kind(&self) -> &'static str;
    fn resize(&mut self, ctx: &GpuContext, width: u32, height: u32);
    /// Draws a frame when the presenter takes one now (it may skip: throttled, previous frame
    /// still on its way, surface lost): `draw` records the frame into the encoder for the target
    /// view; the presenter submits. Returns whether a frame was drawn.
    fn present(&mut self, ctx: &GpuContext, now: f64, draw: &mut dyn FnMut(&mut wgpu::CommandEncoder, &wgpu::TextureView)) -> bool;
    /// Frames whose pixels reached their destination.
    fn presented(&self) -> f64;
}

/// Format of offscreen targets (what `ImageData` and PNG want).
pub const OFFSCREEN_FORMAT: wgpu::TextureFormat = wgpu::TextureFormat::Rgba8Unorm;

/// An offscreen colour target and its size.
pub struct Offscreen {
    pub texture: wgpu::Texture,
    pub width: u32,
    pub height: u32,
}

impl Offscreen {
    pub fn new(device: &wgpu::Device, width: u32, height: u32) -> Self {
        let (width, height) = (width.max(1), height.max(1));
        let texture = device.create_texture(&wgpu::TextureDescriptor {
            label: Some("present.offscreen"),
            size: wgpu::Extent3d { width, height, depth_or_array_layers: 1 },
            mip_level_count: 1,
            sample_count: 1,
            dimension: wgpu::TextureDimension::D2,
            format: OFFSCREEN_FORMAT,
            usage: wgpu::TextureUsages::RENDER_ATTACHMENT | wgpu::TextureUsages::COPY_SRC,
            view_formats: &[],
        });
        Offscreen { texture, width, height }
    }

    /// Bytes per row of a copy (aligned as WebGPU requires).
    pub fn row_bytes(&self) -> u32 {
        (self.width * 4).next_multiple_of(wgpu::COPY_BYTES_PER_ROW_ALIGNMENT)
    }

    /// Bytes of a staging buffer that takes the whole texture.
    pub fn staging_size(&self) -> u64 {
        self.row_bytes() as u64 * self.height as u64
    }

    /// Records a copy of the texture into `staging` (MAP_READ | COPY_DST, `staging_size` bytes).
    pub fn copy_to(&self, encoder: &mut wgpu::CommandEncoder, staging: &wgpu::Buffer) {
        encoder.copy_texture_to_buffer(
            self.texture.as_image_copy(),
            wgpu::TexelCopyBufferInfo {
                buffer: staging,
                layout: wgpu::TexelCopyBufferLayout { offset: 0, bytes_per_row: Some(self.row_bytes()), rows_per_image: Some(self.height) },
            },
            wgpu::Extent3d { width: self.width, height: self.height, depth_or_array_layers: 1 },
        );
    }

    /// Tightly packed RGBA rows from a mapped copy.
    pub fn unpad(&self, bytes: &[u8]) -> Vec<u8> {
        let row = self.row_bytes() as usize;
        let mut rgba = Vec::with_capacity((self.width * self.height * 4) as usize);
        for y in 0..self.height as usize {
            rgba.extend_from_slice(&bytes[y * row..y * row + self.width as usize * 4]);
        }
        rgba
    }
}

/// Draws every frame into an offscreen texture (native tests; nothing is shown).
pub struct OffscreenPresenter {
    pub target: Offscreen,
    presented: f64,
}

impl OffscreenPresenter {
    pub fn new(ctx: &GpuContext, width: u32, height: u32) -> Self {
        OffscreenPresenter { target: Offscreen::new(&ctx.device, width, height), presented: 0.0 }
    }

    /// The last frame's pixels, RGBA rows top first.
    pub async fn read_pixels(&self, ctx: &GpuContext) -> Result<Vec<u8>, String> {
        let staging = ctx.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("present.read_pixels"),
            size: self.target.staging_size(),
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut encoder = ctx.device.create_command_encoder(&Default::default());
        self.target.copy_to(&mut encoder, &staging);
        ctx.queue.submit([encoder.finish()]);
        let bytes = crate::gpu::readback::map_staging(ctx, &staging).await.map_err(|e| e.to_string())?;
        Ok(self.target.unpad(&bytes))
    }
}

impl GpuPresenter for OffscreenPresenter {
    fn format(&self) -> wgpu::TextureFormat {
        OFFSCREEN_FORMAT
    }
    fn kind(&self) -> &'static str {
        "offscreen"
    }
    fn resize(&mut self, ctx: &GpuContext, width: u32, height: u32) {
        if (width, height) != (self.target.width, self.target.height) {
            self.target = Offscreen::new(&ctx.device, width, height);
        }
    }
    fn present(&mut self, ctx: &GpuContext, _now: f64, draw: &mut dyn FnMut(&mut wgpu::CommandEncoder, &wgpu::TextureView)) -> bool {
        let mut encoder = ctx.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("render") });
        let view = self.target.texture.create_view(&wgpu::TextureViewDescriptor::default());
        draw(&mut encoder, &view);
        ctx.queue.submit([encoder.finish()]);
        self.presented += 1.0;
        true
    }
    fn presented(&self) -> f64 {
        self.presented
    }
}
