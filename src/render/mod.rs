//! Render pipelines that draw the engine's GPU buffers directly: no copies, no readback.
//!
//! Layers, back to front: the target's samples (`shaders/render_target.wgsl`, from the trainer's
//! dataset buffer), trajectories (`render_trails.wgsl`) and particles (`render_particles.wgsl`),
//! both from the sampler's trajectory and origin buffers, and velocity arrows
//! (`render_arrows.wgsl`, from a grid sampler's particle buffer). Everything here is
//! target-agnostic: `draw` renders into any texture view of the configured format, so the page
//! (`src/web`) hands it the canvas' surface texture and a native test can hand it an offscreen one.

pub mod heatmap;
pub mod view;

pub use view::{origin_color, Viewport, ViewUniform, DEFAULT_EXTENT};

/// Page background (#0b0e14), the clear colour of every frame.
pub const BACKGROUND: wgpu::Color = wgpu::Color { r: 0.043, g: 0.055, b: 0.078, a: 1.0 };

/// Which layers to draw.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layers {
    pub particles: bool,
    pub trails: bool,
    pub arrows: bool,
    pub target: bool,
    /// The learned density log p (`heatmap`).
    pub heatmap: bool,
    /// The exact marginal field of the training points (`exact`).
    pub exact: bool,
    /// The shown particles' starting points carried by that exact field (`exactflow`).
    pub exact_flow: bool,
}

/// One canvas layer as the page, the widget and the App's `set_layer` know it. [`LAYERS`] is the
/// one list: the page's checkboxes, the widget's attributes and `set_layer`'s names come from it.
#[derive(Debug)]
pub struct LayerSpec {
    /// The name in `set_layer`, the page's checkbox (`data-layer`) and the widget's attribute.
    pub name: &'static str,
    /// Older names that still work (`set_layer("trails")`, the widget's first attribute names).
    pub aliases: &'static [&'static str],
    pub label: &'static str,
    pub help: &'static str,
    /// Shown when the page starts.
    pub default_on: bool,
    get: fn(&Layers) -> bool,
    put: fn(&mut Layers, bool),
}

impl LayerSpec {
    pub fn get(&self, l: &Layers) -> bool {
        (self.get)(l)
    }
}

macro_rules! layer {
    ($name:literal, [$($alias:literal),*], $field:ident, $label:literal, $on:literal, $help:literal) => {
        LayerSpec { name: $name, aliases: &[$($alias),*], label: $label, help: $help, default_on: $on, get: |l| l.$field, put: |l, on| l.$field = on }
    };
}

/// Every canvas layer, in the order the page lists them (drawn back to front: heat map, target,
/// trajectories, particles, field).
pub static LAYERS: &[LayerSpec] = &[
    layer!("particles", [], particles, "Particles", true, "The particles at the shown flow time t."),
    layer!("trajectories", ["trails"], trails, "Trajectories", false, "Each particle's path from t = 0 up to the shown time."),
    layer!("field", ["arrows"], arrows, "Velocity field", false, "The learned velocity v(x, t) at the shown time, as arrows on a grid."),
    layer!("exact", [], exact, "Exact field", false,
        "The exact marginal velocity of the training points at the shown time (orange): the average of the straight-line velocities towards each point, weighted by how likely each one is to have produced x. Gaussian source only."),
    layer!("exactflow", [], exact_flow, "Exact flow", false,
        "The same starting noise carried by the exact field instead of the network (orange). With few training points (Target points under More settings) every particle lands on one of them: the exact field memorises, the network generalises. Gaussian source only."),
    layer!("target", [], target, "Target samples", true, "Faint samples of the target distribution."),
    layer!("heatmap", [], heatmap, "Density (log p)", false,
        "Exact log-likelihood of the learned flow on a 64x64 grid, recomputed every few seconds (Gaussian source only)."),
];

impl Default for Layers {
    fn default() -> Self {
        let mut l = Layers { particles: false, trails: false, arrows: false, target: false, heatmap: false, exact: false, exact_flow: false };
        for spec in LAYERS {
            (spec.put)(&mut l, spec.default_on);
        }
        l
    }
}

impl Layers {
    /// Turns the layer called `name` (or one of its aliases) on or off.
    pub fn set(&mut self, name: &str, on: bool) -> Result<(), String> {
        let key = name.trim().to_ascii_lowercase();
        let spec = LAYERS.iter().find(|s| s.name == key || s.aliases.contains(&key.as_str())).ok_or_else(|| {
            format!("unknown layer '{name}': expected {}", LAYERS.iter().map(|s| s.name).collect::<Vec<_>>().join(", "))
        })?;
        (spec.put)(self, on);
        Ok(())
    }
}

/// Trails are drawn for at most this many particles (every `n / MAX_TRAILS`-th one).
pub const MAX_TRAILS: u32 = 1500;

struct Flow {
    group: wgpu::BindGroup,
    n: u32,
    steps: u32,
}

/// The four pipelines and their bind groups over engine buffers.
pub struct FlowRenderer {
    device: wgpu::Device,
    queue: wgpu::Queue,
    view_buf: wgpu::Buffer,
    flow_layout: wgpu::BindGroupLayout,
    points_layout: wgpu::BindGroupLayout,
    particles: wgpu::RenderPipeline,
    trails: wgpu::RenderPipeline,
    target: wgpu::RenderPipeline,
    arrows: wgpu::RenderPipeline,
    exact_arrows: wgpu::RenderPipeline,
    exact_particles: wgpu::RenderPipeline,
    flow: Option<Flow>,
    /// The exact flow's particles (layer `exactflow`): a trajectory buffer like `flow`'s.
    exact_flow: Option<Flow>,
    target_points: Option<(wgpu::BindGroup, u32)>,
    field: Option<(wgpu::BindGroup, u32)>,
    /// The exact marginal field at the same anchors (`GpuExactField`'s output, `vec4` per anchor).
    exact_field: Option<wgpu::BindGroup>,
    _live: crate::gpu::counter::Owned,
    heatmap: heatmap::HeatmapRenderer,
}

fn layout_entry(binding: u32, ty: wgpu::BufferBindingType) -> wgpu::BindGroupLayoutEntry {
    wgpu::BindGroupLayoutEntry {
        binding,
        visibility: wgpu::ShaderStages::VERTEX,
        ty: wgpu::BindingType::Buffer { ty, has_dynamic_offset: false, min_binding_size: None },
        count: None,
    }
}

const STORAGE: wgpu::BufferBindingType = wgpu::BufferBindingType::Storage { read_only: true };

impl FlowRenderer {
    /// Pipelines for a colour target of `format` (the canvas' preferred format on the web).
    pub fn new(device: &wgpu::Device, queue: &wgpu::Queue, format: wgpu::TextureFormat) -> Self {
        let view_buf = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("render.view"),
            size: std::mem::size_of::<ViewUniform>() as u64,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let flow_layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some("render.flow"),
            entries: &[layout_entry(0, wgpu::BufferBindingType::Uniform), layout_entry(1, STORAGE), layout_entry(2, STORAGE)],
        });
        let points_layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some("render.points"),
            entries: &[layout_entry(0, wgpu::BufferBindingType::Uniform), layout_entry(1, STORAGE)],
        });
        let pipeline = |label: &str, source: &str, vs: &str, fs: &str, layout: &wgpu::BindGroupLayout, topology| {
            let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
                label: Some(label),
                source: wgpu::ShaderSource::Wgsl(view::shader(source).into()),
            });
            let pl = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
                label: Some(label),
                bind_group_layouts: &[Some(layout)],
                immediate_size: 0,
            });
            device.create_render_pipeline(&wgpu::RenderPipelineDescriptor {
                label: Some(label),
                layout: Some(&pl),
                vertex: wgpu::VertexState { module: &module, entry_point: Some(vs), compilation_options: Default::default(), buffers: &[] },
                primitive: wgpu::PrimitiveState { topology, ..Default::default() },
                depth_stencil: None,
                multisample: wgpu::MultisampleState::default(),
                fragment: Some(wgpu::FragmentState {
                    module: &module,
                    entry_point: Some(fs),
                    compilation_options: Default::default(),
                    targets: &[Some(wgpu::ColorTargetState {
                        format,
                        blend: Some(wgpu::BlendState::ALPHA_BLENDING),
                        write_mask: wgpu::ColorWrites::ALL,
                    })],
                }),
                multiview_mask: None,
                cache: None,
            })
        };
        use wgpu::PrimitiveTopology::*;
        let particles = pipeline("render.particles", include_str!("../../shaders/render_particles.wgsl"), "vs_particle", "fs_particle", &flow_layout, TriangleList);
        let trails = pipeline("render.trails", include_str!("../../shaders/render_trails.wgsl"), "vs_trail", "fs_trail", &flow_layout, LineList);
        let target = pipeline("render.target", include_str!("../../shaders/render_target.wgsl"), "vs_target", "fs_target", &points_layout, TriangleList);
        let arrows = pipeline("render.arrows", include_str!("../../shaders/render_arrows.wgsl"), "vs_arrow", "fs_arrow", &points_layout, LineList);
        let exact_arrows = pipeline("render.exact_arrows", include_str!("../../shaders/render_arrows.wgsl"), "vs_exact_arrow", "fs_arrow", &points_layout, LineList);
        let exact_particles = pipeline("render.exact_particles", include_str!("../../shaders/render_particles.wgsl"), "vs_exact_particle", "fs_particle", &flow_layout, TriangleList);
        FlowRenderer {
            _live: crate::gpu::counter::Owned::new(&[&view_buf]),
            device: device.clone(),
            queue: queue.clone(),
            view_buf,
            flow_layout,
            points_layout,
            particles,
            trails,
            target,
            arrows,
            exact_arrows,
            exact_particles,
            flow: None,
            exact_flow: None,
            target_points: None,
            field: None,
            exact_field: None,
            heatmap: heatmap::HeatmapRenderer::new(device, format),
        }
    }

    fn group(&self, label: &str, layout: &wgpu::BindGroupLayout, buffers: &[&wgpu::Buffer]) -> wgpu::BindGroup {
        let mut entries = vec![wgpu::BindGroupEntry { binding: 0, resource: self.view_buf.as_entire_binding() }];
        for (i, b) in buffers.iter().enumerate() {
            entries.push(wgpu::BindGroupEntry { binding: i as u32 + 1, resource: b.as_entire_binding() });
        }
        self.device.create_bind_group(&wgpu::BindGroupDescriptor { label: Some(label), layout, entries: &entries })
    }

    /// The particles to draw: a trajectory buffer `(steps + 1, n)` and the origins `(n)`.
    pub fn set_flow(&mut self, traj: &wgpu::Buffer, origins: &wgpu::Buffer, n: u32, steps: u32) {
        let group = self.group("render.flow", &self.flow_layout, &[traj, origins]);
        self.flow = Some(Flow { group, n, steps: steps.max(1) });
    }

    /// The exact flow's particles (layer `exactflow`), laid out as [`FlowRenderer::set_flow`]'s
    /// (the same count and steps as the shown flow); None: not drawn.
    pub fn set_exact_flow(&mut self, flow: Option<(&wgpu::Buffer, &wgpu::Buffer, u32, u32)>) {
        self.exact_flow = flow.map(|(traj, origins, n, steps)| Flow { group: self.group("render.exact_flow", &self.flow_layout, &[traj, origins]), n, steps: steps.max(1) });
    }

    /// Target samples: the first `n` points of `points`.
    pub fn set_target(&mut self, points: &wgpu::Buffer, n: u32) {
        self.target_points = Some((self.group("render.target", &self.points_layout, &[points]), n));
    }

    /// The velocity grid: `grid²` points `anchor + v(anchor, t)` in `field`.
    pub fn set_field(&mut self, field: &wgpu::Buffer, grid: u32) {
        self.field = Some((self.group("render.arrows", &self.points_layout, &[field]), grid));
    }

    /// The exact field's arrows: `u_t(anchor)` as `vec4` (`u_x, u_y, 0, 0`) per anchor of the
    /// velocity grid (`GpuExactField::out_buffer`); None: not drawn.
    pub fn set_exact_field(&mut self, field: Option<&wgpu::Buffer>) {
        self.exact_field = field.map(|f| self.group("render.exact_arrows", &self.points_layout, &[f]));
    }

    /// The heat map layer's source: `heatmap::HEAT_GRID²` values of log p (cell order of
    /// `heatmap::cell_centres`).
    pub fn set_heatmap(&mut self, log_p: &wgpu::Buffer) {
        self.heatmap.set_source(&self.device, &self.view_buf, log_p);
    }

    /// Records one frame into `encoder`: clear, then the enabled layers. `view` carries the canvas
    /// mapping and the flow time; `n`, `steps`, `trail_stride` and `grid` are filled in here.
    pub fn draw(&self, encoder: &mut wgpu::CommandEncoder, target: &wgpu::TextureView, mut view: ViewUniform, layers: Layers) {
        if let Some(f) = &self.flow {
            view.n = f.n;
            view.steps = f.steps;
            view.trail_stride = f.n.div_ceil(MAX_TRAILS).max(1);
        }
        if let Some((_, g)) = &self.field {
            view.grid = *g;
        }
        self.queue.write_buffer(&self.view_buf, 0, bytemuck::bytes_of(&view));
        let mut pass = encoder.begin_render_pass(&wgpu::RenderPassDescriptor {
            label: Some("render.frame"),
            color_attachments: &[Some(wgpu::RenderPassColorAttachment {
                view: target,
                depth_slice: None,
                resolve_target: None,
                ops: wgpu::Operations { load: wgpu::LoadOp::Clear(BACKGROUND), store: wgpu::StoreOp::Store },
            })],
            depth_stencil_attachment: None,
            timestamp_writes: None,
            occlusion_query_set: None,
            multiview_mask: None,
        });
        if layers.heatmap {
            self.heatmap.draw(&mut pass);
        }
        if let (true, Some((group, n))) = (layers.target, &self.target_points) {
            pass.set_pipeline(&self.target);
            pass.set_bind_group(0, group, &[]);
            pass.draw(0..6 * *n, 0..1);
        }
        if let Some(f) = &self.flow {
            if layers.trails && view.t > 0.0 {
                pass.set_pipeline(&self.trails);
                pass.set_bind_group(0, &f.group, &[]);
                pass.draw(0..2 * f.steps * f.n.div_ceil(view.trail_stride), 0..1);
            }
            if layers.particles {
                pass.set_pipeline(&self.particles);
                pass.set_bind_group(0, &f.group, &[]);
                pass.draw(0..6 * f.n, 0..1);
            }
        }
        // Drawn over the network's particles; with the shown flow's count and steps (the view's).
        if let (true, Some(e)) = (layers.exact_flow, &self.exact_flow) {
            if self.flow.as_ref().is_some_and(|f| f.n == e.n && f.steps == e.steps) {
                pass.set_pipeline(&self.exact_particles);
                pass.set_bind_group(0, &e.group, &[]);
                pass.draw(0..6 * e.n, 0..1);
            }
        }
                if let (true, Some((group, g))) = (layers.arrows, &self.field) {
            pass.set_pipeline(&self.arrows);
            pass.set_bind_group(0, group, &[]);
            pass.draw(0..6 * g * g, 0..1);
        }
        if let (true, Some(group), Some((_, g))) = (layers.exact, &self.exact_field, &self.field) {
            pass.set_pipeline(&self.exact_arrows);
            pass.set_bind_group(0, group, &[]);
            pass.draw(0..6 * g * g, 0..1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layers_by_name_and_alias() {
        let mut l = Layers::default();
        assert!(l.particles && l.target && !l.trails && !l.arrows && !l.heatmap && !l.exact && !l.exact_flow);
        l.set("trails", true).unwrap();
        l.set("field", true).unwrap();
        l.set("HEATMAP", true).unwrap();
        assert!(l.trails && l.arrows && l.heatmap);
        let e = l.set("glow", true).unwrap_err();
        assert!(e.contains("glow") && e.contains("trajectories, field"), "{e}");
        for spec in LAYERS {
            assert!(LAYERS.iter().filter(|o| o.name == spec.name || o.aliases.contains(&spec.name)).count() == 1, "{}", spec.name);
        }
    }

    /// Every render shader parses and validates (naga, as wgpu would at pipeline creation).
    #[cfg(not(target_arch = "wasm32"))]
    #[test]
    fn render_shaders_validate() {
        for (name, src) in [
            ("render_particles", include_str!("../../shaders/render_particles.wgsl")),
            ("render_trails", include_str!("../../shaders/render_trails.wgsl")),
            ("render_target", include_str!("../../shaders/render_target.wgsl")),
            ("render_arrows", include_str!("../../shaders/render_arrows.wgsl")),
            ("render_heatmap", include_str!("../../shaders/render_heatmap.wgsl")),
        ] {
            let src = &view::shader(src);
            let module = naga::front::wgsl::parse_str(src).unwrap_or_else(|e| panic!("{name}: {}", e.emit_to_string(src)));
            naga::valid::Validator::new(naga::valid::ValidationFlags::all(), naga::valid::Capabilities::default())
                .validate(&module)
                .unwrap_or_else(|e| panic!("{name}: {e:?}"));
        }
    }
}
