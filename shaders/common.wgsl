// common.wgsl — helpers prepended to every compute shader by src/gpu/shaders.rs.
//
// * Counter-based random numbers, bit-identical to src/rng.rs:
//   hash4(seed, step, index, stream) = pcg(pcg(pcg(pcg(stream) ^ index) ^ step) ^ seed),
//   unit(h) = ((h >> 8) + 0.5) / 2^24 in (0, 1), Box–Muller for normals.
// * Activations and their derivatives as functions of the pre-activation z, twin of
//   src/cpu/activation.rs (codes ACT_* and the constants used here come from the generated
//   prelude, src/gpu/prelude.rs; an unknown code gives NaN, never a silent default).
// * Linear 1D/2D dispatch indexing: kernels are dispatched as (x, y, 1) workgroups with
//   x <= 65535, and flatten (global_id, num_workgroups) into one index.




fn pcg(v: u32) -> u32 {
    let state = v * 747796405u + 2891336453u;
    let word = ((state >> ((state >> 28u) + 4u)) ^ state) * 277803737u;
    return (word >> 22u) ^ word;
}

fn hash4(seed: u32, step: u32, index: u32, stream: u32) -> u32 {
    return pcg(pcg(pcg(pcg(stream) ^ index) ^ step) ^ seed);
}

fn unit(h: u32) -> f32 {
    return (f32(h >> 8u) + 0.5) * (1.0 / 16777216.0);
}

// The angle in (-π, π): sin and cos are only promised accurate (2^-11 absolute) on [-π, π].
fn box_muller(u1: f32, u2: f32) -> vec2<f32> {
    let r = sqrt(-2.0 * log(u1));
    let theta = TAU * (u2 - 0.5);
    return vec2<f32>(r * cos(theta), r * sin(theta));
}

fn safe_tanh(x: f32) -> f32 {
    return tanh(clamp(x, -15.0, 15.0));
}

fn sigmoid(z: f32) -> f32 {
    return 1.0 / (1.0 + exp(-z));
}

// A quiet NaN: what a `default:` arm returns for a code that names no real choice. The bits go
// through a `var`: a NaN is not allowed as the value of a constant expression, and Chromium's
// WGSL compiler (Tint) rejects `bitcast<f32>(0x7fc00000u)` ("value nan cannot be represented as
// 'f32'"), which failed every kernel that includes this file in the browser.
fn nan_f32() -> f32 {
    var bits = 0x7fc00000u;
    return bitcast<f32>(bits);
}

fn act(kind: u32, z: f32) -> f32 {
    switch kind {
        case ACT_SILU: { return z * sigmoid(z); }
        case ACT_RELU: { return max(z, 0.0); }
        case ACT_GELU: { return 0.5 * z * (1.0 + safe_tanh(GELU_C * (z + GELU_K * z * z * z))); }
        case ACT_TANH: { return safe_tanh(z); }
        default: { return nan_f32(); }
    }
}

fn act_grad(kind: u32, z: f32) -> f32 {
    switch kind {
        case ACT_SILU: {
            let s = sigmoid(z);
            return s * (1.0 + z * (1.0 - s));
        }
        case ACT_RELU: { return select(0.0, 1.0, z > 0.0); }
        case ACT_GELU: {
            let zc = clamp(z, -10.0, 10.0);
            let th = safe_tanh(GELU_C * (zc + GELU_K * zc * zc * zc));
            let du = GELU_C * (1.0 + 3.0 * GELU_K * zc * zc);
            return 0.5 * (1.0 + th) + 0.5 * zc * (1.0 - th * th) * du;
        }
        case ACT_TANH: {
            let th = safe_tanh(z);
            return 1.0 - th * th;
        }
        default: { return nan_f32(); }
    }
}

// True for +-Inf and NaN (WGSL has no isnan; compare the exponent bits).
fn non_finite(x: f32) -> bool {
    return (bitcast<u32>(x) & 0x7f800000u) == 0x7f800000u;
}

// sin(π/2·u) for u in [0, 1] to f32 relative precision (Taylor to x^13 in Horner form: the
// remainder is below 7e-10). WGSL only asks sin/cos for an absolute error of 2^-11, and SwiftShader
// (Chromium's software WebGPU) is that coarse: cos(π/2·t) near t = 1, the cosine path's β, came
// out ~1% off there, and the exact field (which divides by β) with it. cos(π/2·t) is
// sin_half_pi(1 - t), exact in f32 for t ≥ 1/2.
fn sin_half_pi(u: f32) -> f32 {
    let x = 1.5707963267948966 * u;
    let x2 = x * x;
    return x * (1.0 - x2 / 6.0 * (1.0 - x2 / 20.0 * (1.0 - x2 / 42.0 * (1.0 - x2 / 72.0 * (1.0 - x2 / 110.0 * (1.0 - x2 / 156.0))))));
}

// The conditional path x_t = α·x1 + β·x0 and its time derivative; returns (α, β, α', β')
// (twin: src/cpu/batch.rs::path_coefficients): PATH_LINEAR with σmin, PATH_COSINE, PATH_VP.

fn path_coefficients(path: u32, t_in: f32, sigma_min: f32) -> vec4<f32> {
    switch path {
        case PATH_LINEAR: {
            return vec4<f32>(t_in, 1.0 - (1.0 - sigma_min) * t_in, 1.0, -(1.0 - sigma_min));
        }
        case PATH_COSINE: {
            let h = 1.5707963267948966;
            let s = sin_half_pi(t_in);
            let c = sin_half_pi(1.0 - t_in);
            return vec4<f32>(s, c, h * c, -h * s);
        }
        case PATH_VP: {
            let t = min(t_in, VP_T_MAX);
            let s = 1.0 - t;
            let big_t = VP_B_MIN * s + 0.5 * (VP_B_MAX - VP_B_MIN) * s * s;
            let alpha = exp(-0.5 * big_t);
            let beta = sqrt(max(1.0 - alpha * alpha, 0.0));
            let d_alpha = 0.5 * alpha * (VP_B_MIN + (VP_B_MAX - VP_B_MIN) * s);
            return vec4<f32>(alpha, beta, d_alpha, -alpha * d_alpha / beta);
        }
        default: { return vec4<f32>(nan_f32()); }
    }
}

fn flat_index(gid: vec3<u32>, nwg: vec3<u32>, wg_size: u32) -> u32 {
    return gid.x + gid.y * nwg.x * wg_size;
}

// The network's layer table for kernels that run the whole MLP per invocation (ode_step.wgsl,
// density.wgsl, meanflow.wgsl): per layer (in_dim, out_dim, w_offset, b_offset), the input
// columns beyond (x, y, t) (r_column: MeanFlow's r; class_column: class 0 of the one-hot row; 0 =
// none), and how a sampler queries it (src/gpu/uniforms.rs: ModelDesc; network.wgsl): the one-hot
// column of the class to follow (0 for unconditional models), the no-class column, and whether
// to mix them with classifier-free guidance weight `guidance`.

struct ModelDesc {
    n_layers: u32, activation: u32, r_column: u32, class_column: u32,
    layers: array<vec4<u32>, MAX_LAYERS>,
    query_column: u32, null_column: u32, guidance: f32, guided: u32,
}

// Per-step scalars of one training step (src/gpu/uniforms.rs: StepParams). The trainer writes one
// 256-byte slot per queued step and binds it with a dynamic offset, so many steps fit in one
// submit without any CPU work between them.
struct StepParams {
    step: u32, seed: u32, batch: u32, n_points: u32,
    sigma_min: f32, lr: f32, beta1: f32, beta2: f32,
    eps: f32, weight_decay: f32, c1: f32, c2: f32,
    n_params: u32, loss_offset: u32, loss_slot: u32, path: u32,
    n_source: u32, _pad0: u32, _pad1: u32, _pad2: u32,
    t_sampling: u32, t_mean: f32, t_std: f32, t_u: f32,
    // The input row (model.rs: InputLayout): columns per sample, r's column and class 0's column
    // (0 = none), the number of classes, and the probability a label becomes the no-class token.
    in_dim: u32, r_column: u32, class_column: u32, n_classes: u32,
    label_dropout: f32, _pad3: u32, _pad4: u32, _pad5: u32,
}

// One linear layer's shape and buffer offsets, in floats (src/gpu/uniforms.rs: LayerParams).
// Written once per model shape, one 256-byte slot per layer, bound with a dynamic offset.
struct LayerParams {
    batch: u32, in_dim: u32, out_dim: u32, activation: u32,
    w_offset: u32, b_offset: u32, x_offset: u32, z_offset: u32,
    a_offset: u32, delta_offset: u32, delta_prev_offset: u32, z_prev_offset: u32,
    dw_groups: u32, has_prev: u32, target_offset: u32, loss_offset: u32,
}

// ---- 4×4 register blocks (software-adapter kernels in mlp_forward.wgsl, mlp_backward.wgsl) ----

// Clamped row offsets of a 4-row block starting at r0 (rows past `n` repeat the last one: they
// are loaded but never stored).
fn rows4(base: u32, r0: u32, n: u32, stride: u32) -> vec4<u32> {
    return vec4<u32>(
        base + min(r0, n - 1u) * stride,
        base + min(r0 + 1u, n - 1u) * stride,
        base + min(r0 + 2u, n - 1u) * stride,
        base + min(r0 + 3u, n - 1u) * stride,
    );
}

// Clamped column indices c0..c0+3 of a row of length n.
fn cols4(c0: u32, n: u32) -> vec4<u32> {
    return min(vec4<u32>(c0, c0 + 1u, c0 + 2u, c0 + 3u), vec4<u32>(n - 1u));
}

// ---- training times (twin: src/cpu/time.rs) ----
// Sample i of step s: u1 on stream T (the uniform draw), u2 on stream T_B (logit-normal only).
// Uniform t = u1; logit-normal t = sigmoid(m + s·z) with z by Box–Muller; U-shaped
// p(t) ∝ cosh(a(t - 1/2)) by its inverse CDF t = 1/2 + asinh((2u1 - 1)·sinh(a/2))/a.
fn draw_time(kind: u32, m: f32, s: f32, a: f32, seed: u32, step: u32, i: u32) -> f32 {
    let u1 = unit(hash4(seed, step, i, STREAM_T));
    switch kind {
        case T_SAMPLING_UNIFORM: { return u1; }
        case T_SAMPLING_LOGITNORMAL: {
            let u2 = unit(hash4(seed, step, i, STREAM_T_B));
            let z = sqrt(-2.0 * log(u1)) * cos(TAU * u2);
            return 1.0 / (1.0 + exp(-(m + s * z)));
        }
        case T_SAMPLING_USHAPED: { return 0.5 + asinh((2.0 * u1 - 1.0) * sinh(0.5 * a)) / a; }
        default: { return nan_f32(); }
    }
}
