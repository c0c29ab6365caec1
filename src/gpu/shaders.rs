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

/// Rows (samples) per tile of the tiled forward kernel unless a trainer asks for another:
/// `mlp_forward.wgsl`'s `TM`, 64 or 32 (src/gpu/trainer.rs `forward_rows`).
pub const FORWARD_ROWS: u32 = 64;

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

    /// Whether every loop of this kernel (with the prelude, common.wgsl and network.wgsl it
    /// includes) is a `for` over a counter bounded by a constant or a validated uniform, so it
    /// may be compiled without wgpu's loop counters ([`runtime_checks`]): the training kernels
    /// and the fixed-step sampler. The adaptive solver and the W2 matching iterate to
    /// convergence (`loop`) and keep them.
    pub fn counted_loops(self) -> bool {
        match self {
            Kernel::Batch
            | Kernel::MlpForward
            | Kernel::CfmLoss
            | Kernel::MlpBackward
            | Kernel::MlpForwardVec4
            | Kernel::MlpBackwardVec4
            | Kernel::Adam
            | Kernel::MeanFlow
            | Kernel::OdeStep
            | Kernel::Field => true,
            Kernel::OtCoupling
            | Kernel::Density
            | Kernel::SlicedW2
            | Kernel::OdeAdaptive
            | Kernel::FlowStats
            | Kernel::W2Minibatch
            | Kernel::ExactField => false,
        }
    }

    /// The full WGSL source; `hidden` sets `HIDDEN` for kernels that need it.
    pub fn source(self, hidden: Option<u32>) -> String {
        self.source_with(&hidden_const(hidden))
    }

    /// The full WGSL source with `const NAME: u32 = value;` prepended for each of `consts`
    /// (`HIDDEN` for the sampler's kernels; `TM`, the tiled forward's rows per tile, for
    /// `mlp_forward.wgsl`, [`FORWARD_ROWS`] unless given).
    pub fn source_with(self, consts: &[(&str, u32)]) -> String {
        let mut s = String::with_capacity(COMMON.len() + self.body().len() + 4096);
        for (name, value) in consts {
            s.push_str(&format!("const {name}: u32 = {value}u;\n"));
        }
        if self == Kernel::MlpForward && !consts.iter().any(|c| c.0 == "TM") {
            s.push_str(&format!("const TM: u32 = {FORWARD_ROWS}u;\n"));
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

/// wgpu's runtime checks for one kernel. Natively, kernels whose loops are all counted
/// ([`Kernel::counted_loops`]) are compiled without the loop counters wgpu injects by default
/// (`force_loop_bounding`, a guard against infinite loops): on an H200 those counters cost
/// 1.6–2× of a training step (they keep the drivers from unrolling the tiled kernels' inner
/// loops; docs/BENCHMARKS.md). Bounds checks stay. In the browser the page's WGSL goes to the
/// browser's own compiler and nothing changes. `FLOWMATCH_SHADER_CHECKS` (native) measures the
/// alternatives: `checked` (wgpu's defaults for every kernel), `no-loop-bounding` (no loop
/// counters in any kernel), `unchecked` (no loop counters and no bounds checks).
fn runtime_checks(kernel: Kernel) -> Option<wgpu::ShaderRuntimeChecks> {
    #[cfg(not(target_arch = "wasm32"))]
    {
        let no_loop_counters = wgpu::ShaderRuntimeChecks { force_loop_bounding: false, ..wgpu::ShaderRuntimeChecks::checked() };
        match std::env::var("FLOWMATCH_SHADER_CHECKS").as_deref() {
            Ok("checked") => None,
            Ok("no-loop-bounding") => Some(no_loop_counters),
            Ok("unchecked") => Some(wgpu::ShaderRuntimeChecks::unchecked()),
            _ => kernel.counted_loops().then_some(no_loop_counters),
        }
    }
    #[cfg(target_arch = "wasm32")]
    {
        let _ = kernel;
        None
    }
}

/// A compute pipeline for `entry` of `kernel` with one bind group (`layout`).
pub fn compute_pipeline(
    device: &wgpu::Device,
    kernel: Kernel,
    entry: &str,
    layout: &wgpu::BindGroupLayout,
    hidden: Option<u32>,
) -> wgpu::ComputePipeline {
    compute_pipeline_with(device, kernel, entry, layout, &hidden_const(hidden))
}

/// `HIDDEN` (at least 1) as a prepended constant, when a kernel needs it.
fn hidden_const(hidden: Option<u32>) -> Vec<(&'static str, u32)> {
    hidden.map(|h| ("HIDDEN", h.max(1))).into_iter().collect()
}

/// [`compute_pipeline`] with `consts` prepended to the source ([`Kernel::source_with`]).
pub fn compute_pipeline_with(
    device: &wgpu::Device,
    kernel: Kernel,
    entry: &str,
    layout: &wgpu::BindGroupLayout,
    consts: &[(&str, u32)],
) -> wgpu::ComputePipeline {
    let desc = wgpu::ShaderModuleDescriptor { label: Some(kernel.file()), source: wgpu::ShaderSource::Wgsl(kernel.source_with(consts).into()) };
    let module = match runtime_checks(kernel) {
        None => device.create_shader_module(desc),
        // SAFETY: wgpu requires that a shader compiled without loop bounding has no infinite
        // loop. These are the project's own kernels, and `counted_loops` lists only those whose
        // every loop is a `for` over a counter bounded by a constant or by a uniform value from
        // a validated configuration (no `loop`/`while`: checked by a test). Bounds checks stay,
        // except under FLOWMATCH_SHADER_CHECKS=unchecked, a native measurement only, where every
        // workgroup-array index is in range by construction and every storage access is checked
        // in the WGSL itself.
        Some(checks) => unsafe { device.create_shader_module_trusted(desc, checks) },
    };
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
        // The tiled forward's other tile height.
        let src = Kernel::MlpForward.source_with(&[("TM", 32)]);
        let module = naga::front::wgsl::parse_str(&src).unwrap_or_else(|e| panic!("TM 32: {}", e.emit_to_string(&src)));
        naga::valid::Validator::new(naga::valid::ValidationFlags::all(), naga::valid::Capabilities::empty()).validate(&module).expect("TM 32");
    }

    /// The kernels compiled without wgpu's loop counters (`counted_loops`) contain no loop that
    /// runs to a condition (`loop`, `while`), only counted `for` loops.
    #[test]
    fn only_counted_loops_go_without_loop_counters() {
        for &k in Kernel::ALL {
            let code: String = k.source(Some(16)).lines().map(|l| l.split("//").next().unwrap_or("")).collect::<Vec<_>>().join("\n");
            let open = code.split(|c: char| !c.is_ascii_alphanumeric() && c != '_').any(|w| w == "loop" || w == "while");
            assert!(!(open && k.counted_loops()), "{} has a `loop` or `while` but is listed in counted_loops", k.file());
        }
    }
}
