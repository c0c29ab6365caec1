//! The single list of WGSL kernels and the helpers that turn them into pipelines.
//!
//! Every kernel file is compiled with the generated prelude (`src/gpu/prelude.rs`: enum codes,
//! random streams, shared constants) and `shaders/common.wgsl` (PRNG, activations, shared structs)
//! prepended. The sampler's kernels also get `const HIDDEN: u32 = <width>;`, the size of their
//! private per-invocation hidden vector (WGSL private arrays need a constant size), and the
//! Runge–Kutta step functions generated from `src/tableau.rs`; the sampling kernels also get
//! `shaders/network.wgsl` (the MLP evaluated in one invocation, with class and guidance).

/// One compute shader file of `shaders/`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kernel {
    Batch,
    OtCoupling,
    MlpForward,
    CfmLoss,
    MlpBackward,
    MlpForwardVec4,
    MlpBackwardVec4,
    Adam,
    OdeStep,
    Density,
    SlicedW2,
    OdeAdaptive,
    FlowStats,
    W2Minibatch,
    ExactField,
    MeanFlow,
    Field,
}

const COMMON: &str = include_str!("../../shaders/common.wgsl");
/// The per-invocation MLP of the sampling kernels (`net_at`, `guided_net`, `velocity`).
const NETWORK: &str = include_str!("../../shaders/network.wgsl");

impl Kernel {
    pub const ALL: &'static [Kernel] = &[
        Kernel::Batch,
        Kernel::OtCoupling,
        Kernel::MlpForward,
        Kernel::CfmLoss,
        Kernel::MlpBackward,
        Kernel::MlpForwardVec4,
        Kernel::MlpBackwardVec4,
        Kernel::Adam,
        Kernel::OdeStep,
        Kernel::Density,
        Kernel::SlicedW2,
        Kernel::OdeAdaptive,
        Kernel::FlowStats,
        Kernel::W2Minibatch,
        Kernel::ExactField,
        Kernel::MeanFlow,
        Kernel::Field,
    ];

    pub fn file(self) -> &'static str {
        match self {
            Kernel::Batch => "batch.wgsl",
            Kernel::OtCoupling => "ot_coupling.wgsl",
            Kernel::MlpForward => "mlp_forward.wgsl",
            Kernel::CfmLoss => "cfm_loss.wgsl",
            Kernel::MlpBackward => "mlp_backward.wgsl",
            Kernel::MlpForwardVec4 => "mlp_forward_vec4.wgsl",
            Kernel::MlpBackwardVec4 => "mlp_backward_vec4.wgsl",
            Kernel::Adam => "adam.wgsl",
            Kernel::OdeStep => "ode_step.wgsl",
            Kernel::Density => "density.wgsl",
            Kernel::SlicedW2 => "sliced_w2.wgsl",
            Kernel::OdeAdaptive => "ode_adaptive.wgsl",
            Kernel::FlowStats => "flow_stats.wgsl",
            Kernel::W2Minibatch => "w2_minibatch.wgsl",
            Kernel::ExactField => "exact_field.wgsl",
            Kernel::MeanFlow => "meanflow.wgsl",
            Kernel::Field => "field.wgsl",
        }
    }

    fn body(self) -> &'static str {
        match self {
            Kernel::Batch => include_str!("../../shaders/batch.wgsl"),
            Kernel::OtCoupling => include_str!("../../shaders/ot_coupling.wgsl"),
            Kernel::MlpForward => include_str!("../../shaders/mlp_forward.wgsl"),
            Kernel::CfmLoss => include_str!("../../shaders/cfm_loss.wgsl"),
            Kernel::MlpBackward => include_str!("../../shaders/mlp_backward.wgsl"),
            Kernel::MlpForwardVec4 => include_str!("../../shaders/mlp_forward_vec4.wgsl"),
            Kernel::MlpBackwardVec4 => include_str!("../../shaders/mlp_backward_vec4.wgsl"),
            Kernel::Adam => include_str!("../../shaders/adam.wgsl"),
            Kernel::OdeStep => include_str!("../../shaders/ode_step.wgsl"),
            Kernel::Density => include_str!("../../shaders/density.wgsl"),
            Kernel::SlicedW2 => include_str!("../../shaders/sliced_w2.wgsl"),
            Kernel::OdeAdaptive => include_str!("../../shaders/ode_adaptive.wgsl"),
            Kernel::FlowStats => include_str!("../../shaders/flow_stats.wgsl"),
            Kernel::W2Minibatch => include_str!("../../shaders/w2_minibatch.wgsl"),
            Kernel::ExactField => include_str!("../../shaders/exact_field.wgsl"),
            Kernel::MeanFlow => include_str!("../../shaders/meanflow.wgsl"),
            Kernel::Field => include_str!("../../shaders/field.wgsl"),
        }
    }

    /// The full WGSL source; `hidden` sets `HIDDEN` for kernels that need it.
    pub fn source(self, hidden: Option<u32>) -> String {
        let mut s = String::with_capacity(COMMON.len() + self.body().len() + 4096);
        if let Some(h) = hidden {
            s.push_str(&format!("const HIDDEN: u32 = {}u;\n", h.max(1)));
        }
        s.push_str(&super::prelude::prelude());
        s.push_str(COMMON);
        s.push('\n');
        match self {
            Kernel::OdeStep => {
                s.push_str(NETWORK);
                s.push_str(&crate::tableau::wgsl_step_fns("vec2<f32>", "velocity({x}, {t})"));
            }
            Kernel::Density => s.push_str(&crate::tableau::wgsl_step_fns("vec3<f32>", "field_and_divergence(({x}).xy, {t})")),
            Kernel::OdeAdaptive => {
                s.push_str(NETWORK);
                s.push_str(&crate::tableau::wgsl_dopri5_consts());
            }
            Kernel::FlowStats => {
                s.push_str(NETWORK);
                s.push_str(&crate::tableau::wgsl_energy_step_fns("velocity({x}, {t})"));
            }
            Kernel::ExactField => {
                s.push_str(NETWORK);
                s.push_str(&crate::tableau::wgsl_step_fns("vec2<f32>", "exact_velocity({x}, {t})"));
                s.push_str(&crate::tableau::wgsl_step_fns_named("rk_step_serial", "vec2<f32>", "exact_velocity_serial({x}, {t})"));
            }
            Kernel::Field => {
                s.push_str(NETWORK);
            }
            _ => {}
        }
        s.push_str(self.body());
        s
    }
}

/// How a kernel sees one binding.
#[derive(Clone, Copy, Debug)]
pub enum Binding {
    /// A uniform slot chosen per dispatch with a dynamic offset.
    UniformDynamic(u64),
    Uniform,
    StorageRead,
    StorageReadWrite,
}

pub fn bind_group_layout(device: &wgpu::Device, label: &str, bindings: &[Binding]) -> wgpu::BindGroupLayout {
    let entries: Vec<_> = bindings
        .iter()
        .enumerate()
        .map(|(i, b)| wgpu::BindGroupLayoutEntry {
            binding: i as u32,
            visibility: wgpu::ShaderStages::COMPUTE,
            ty: match *b {
                Binding::UniformDynamic(size) => wgpu::BindingType::Buffer {
                    ty: wgpu::BufferBindingType::Uniform,
                    has_dynamic_offset: true,
                    min_binding_size: wgpu::BufferSize::new(size),
                },
                Binding::Uniform => wgpu::BindingType::Buffer {
                    ty: wgpu::BufferBindingType::Uniform,
                    has_dynamic_offset: false,
                    min_binding_size: None,
                },
                Binding::StorageRead | Binding::StorageReadWrite => wgpu::BindingType::Buffer {
                    ty: wgpu::BufferBindingType::Storage { read_only: matches!(b, Binding::StorageRead) },
                    has_dynamic_offset: false,
                    min_binding_size: None,
                },
            },
            count: None,
        })
        .collect();
    device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor { label: Some(label), entries: &entries })
}

/// A compute pipeline for `entry` of `kernel` with one bind group (`layout`).
pub fn compute_pipeline(
    device: &wgpu::Device,
    kernel: Kernel,
    entry: &str,
    layout: &wgpu::BindGroupLayout,
    hidden: Option<u32>,
) -> wgpu::ComputePipeline {
    let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
        label: Some(kernel.file()),
        source: wgpu::ShaderSource::Wgsl(kernel.source(hidden).into()),
    });
    let pipeline_layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
        label: Some(entry),
        bind_group_layouts: &[Some(layout)],
        immediate_size: 0,
    });
    device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
        label: Some(entry),
        layout: Some(&pipeline_layout),
        module: &module,
        entry_point: Some(entry),
        compilation_options: Default::default(),
        cache: None,
    })
}

/// A bind group over whole buffers, binding i = `buffers[i]`; dynamic uniforms bind one slot.
pub fn bind_group(
    device: &wgpu::Device,
    label: &str,
    layout: &wgpu::BindGroupLayout,
    buffers: &[(&wgpu::Buffer, Option<u64>)],
) -> wgpu::BindGroup {
    let entries: Vec<_> = buffers
        .iter()
        .enumerate()
        .map(|(i, (buf, size))| wgpu::BindGroupEntry {
            binding: i as u32,
            resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                buffer: buf,
                offset: 0,
                size: size.and_then(wgpu::BufferSize::new),
            }),
        })
        .collect();
    device.create_bind_group(&wgpu::BindGroupDescriptor { label: Some(label), layout, entries: &entries })
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;

    /// Every kernel parses and validates with naga (no GPU needed).
    #[test]
    fn all_kernels_validate() {
        for &k in Kernel::ALL {
            let src = k.source(Some(16));
            let module = naga::front::wgsl::parse_str(&src).unwrap_or_else(|e| panic!("{}: {}", k.file(), e.emit_to_string(&src)));
            naga::valid::Validator::new(naga::valid::ValidationFlags::all(), naga::valid::Capabilities::empty())
                .validate(&module)
                .unwrap_or_else(|e| panic!("{}: {e:?}", k.file()));
        }
    }
}
