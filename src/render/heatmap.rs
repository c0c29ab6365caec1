//! The density heat map layer: `shaders/render_heatmap.wgsl` draws `log p` of the cell centres
//! of a `HEAT_GRID²` grid over the world square, read straight from the density kernel's output
//! buffer (`gpu::GpuDensity::log_p_buffer`), behind the other layers.

/// Cells per side (the shader's `HEAT_GRID`, from the render prelude).
pub const HEAT_GRID: u32 = 64;

/// The colour ramp's ends: log p at or below `LOG_P_LO` is darkest, at or above `LOG_P_HI`
/// warmest (the shader's constants come from these through the render prelude).
pub const LOG_P_LO: f32 = -6.0;
pub const LOG_P_HI: f32 = -1.0;

/// RGBA of a cell with `log p = x`, None when not finite (not drawn). Twin of `fs_heat` in
/// `shaders/render_heatmap.wgsl`, for the CPU engine.
pub fn heat_color(x: f32) -> Option<[f32; 4]> {
    if !x.is_finite() {
        return None;
    }
    let s = ((x - LOG_P_LO) / (LOG_P_HI - LOG_P_LO)).clamp(0.0, 1.0);
    let mix = |a: f32, b: f32| a + (b - a) * s;
    Some([mix(0.10, 0.95), mix(0.12, 0.55), mix(0.35, 0.15), 0.25 + 0.7 * s])
}

/// World centre of cell `i` of the grid over `[-extent, extent]²` (cell i = (i % G, i / G)).
pub fn cell_centre(i: u32, extent: f32) -> [f32; 2] {
    let cell = 2.0 * extent / HEAT_GRID as f32;
    [-extent + cell * ((i % HEAT_GRID) as f32 + 0.5), -extent + cell * ((i / HEAT_GRID) as f32 + 0.5)]
}

/// All `HEAT_GRID²` cell centres, in the order the shader draws them.
pub fn cell_centres(extent: f32) -> Vec<[f32; 2]> {
    (0..HEAT_GRID * HEAT_GRID).map(|i| cell_centre(i, extent)).collect()
}

/// The heat map pipeline and its bind group (view uniform + a `log p` buffer).
pub struct HeatmapRenderer {
    pipeline: wgpu::RenderPipeline,
    layout: wgpu::BindGroupLayout,
    group: Option<wgpu::BindGroup>,
}

impl HeatmapRenderer {
    pub fn new(device: &wgpu::Device, format: wgpu::TextureFormat) -> Self {
        let entry = |binding: u32, ty: wgpu::BufferBindingType| wgpu::BindGroupLayoutEntry {
            binding,
            visibility: wgpu::ShaderStages::VERTEX,
            ty: wgpu::BindingType::Buffer { ty, has_dynamic_offset: false, min_binding_size: None },
            count: None,
        };
        let layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some("render.heatmap"),
            entries: &[entry(0, wgpu::BufferBindingType::Uniform), entry(1, wgpu::BufferBindingType::Storage { read_only: true })],
        });
        let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some("render_heatmap.wgsl"),
            source: wgpu::ShaderSource::Wgsl(super::view::shader(include_str!("../../shaders/render_heatmap.wgsl")).into()),
        });
        let pl = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: Some("render.heatmap"),
            bind_group_layouts: &[Some(&layout)],
            immediate_size: 0,
        });
        let pipeline = device.create_render_pipeline(&wgpu::RenderPipelineDescriptor {
            label: Some("render.heatmap"),
            layout: Some(&pl),
            vertex: wgpu::VertexState { module: &module, entry_point: Some("vs_heat"), compilation_options: Default::default(), buffers: &[] },
            primitive: wgpu::PrimitiveState { topology: wgpu::PrimitiveTopology::TriangleList, ..Default::default() },
            depth_stencil: None,
            multisample: wgpu::MultisampleState::default(),
            fragment: Some(wgpu::FragmentState {
                module: &module,
                entry_point: Some("fs_heat"),
                compilation_options: Default::default(),
                targets: &[Some(wgpu::ColorTargetState { format, blend: Some(wgpu::BlendState::ALPHA_BLENDING), write_mask: wgpu::ColorWrites::ALL })],
            }),
            multiview_mask: None,
            cache: None,
        });
        HeatmapRenderer { pipeline, layout, group: None }
    }

    /// Draw from `log_p` (`HEAT_GRID²` f32) with the view uniform `view`.
    pub fn set_source(&mut self, device: &wgpu::Device, view: &wgpu::Buffer, log_p: &wgpu::Buffer) {
        self.group = Some(device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("render.heatmap"),
            layout: &self.layout,
            entries: &[
                wgpu::BindGroupEntry { binding: 0, resource: view.as_entire_binding() },
                wgpu::BindGroupEntry { binding: 1, resource: log_p.as_entire_binding() },
            ],
        }));
    }

    /// Records the layer into an open pass (nothing before `set_source`).
    pub fn draw(&self, pass: &mut wgpu::RenderPass<'_>) {
        if let Some(group) = &self.group {
            pass.set_pipeline(&self.pipeline);
            pass.set_bind_group(0, group, &[]);
            pass.draw(0..6 * HEAT_GRID * HEAT_GRID, 0..1);
        }
    }
}
