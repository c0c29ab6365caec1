//! The MLP velocity field's shape and the memory layouts shared by the CPU reference and the GPU.
//!
//! Network: input row ([`InputLayout`]: `(x, y, t)`, then `r` for MeanFlow, then a one-hot class
//! row for class-conditional models) → `depth` hidden layers of `width` units with an activation
//! → 2 outputs (the velocity, or MeanFlow's average velocity). Linear layer `l` maps
//! `in_l → out_l`: `z = W_l a + b_l` with `W_l` stored row-major `(out_l, in_l)`.
//!
//! **Parameters** live in one packed f32 buffer: for each layer, `W_l` then `b_l`, every tensor
//! starting at a multiple of 4 floats (16 B). Gradients and both Adam moments use the same layout,
//! so Adam is one loop over one array and the CPU and GPU buffers compare index for index.
//!
//! **Activations** (training scratch, one f32 buffer, batch `B`), in order:
//! `input (B, in)` = one [`InputLayout`] row per sample, `target (B, 2)` = `u`, then for each hidden layer
//! `z_l (B, width)` (pre-activation) and `a_l (B, width)` (post-activation), then `v (B, 2)`.
//! **Deltas** (`dL/dz`, one f32 buffer): `delta_l (B, out_l)` for every layer, then the per-sample
//! loss terms `(B)`.

use crate::config::Activation;
use crate::rng::{hash4, stream, unit};

/// The network's inputs, in the order of its first layer's columns: the position and the time
/// (t = 0 the source, t = 1 the target). Conditioning inputs are appended here; saved models
/// describe their inputs from this list (`ModelShape::describe`).
pub const INPUTS: [&str; 3] = ["x", "y", "t"];
/// Input features: x, y, t.
pub const IN_DIM: u32 = INPUTS.len() as u32;
/// The network's outputs: the velocity.
pub const OUTPUTS: [&str; 2] = ["vx", "vy"];
/// Output: the 2D velocity.
pub const OUT_DIM: u32 = OUTPUTS.len() as u32;

/// The network's input row, in order:
///
/// | column | name | what |
/// |---|---|---|
/// | 0, 1 | `x`, `y` | the point (z for MeanFlow) |
/// | 2 | `t` | its time (noise at 0, data at 1) |
/// | 3 (MeanFlow only) | `r` | the end of the interval `[t, r]` the average velocity spans (`r = t`: the instantaneous velocity) |
/// | next K + 1 (conditional only) | `class=0` … `class=K-1`, `class=none` | one-hot class; `none` is the "no class" token of classifier-free guidance |
///
/// The first layer's weights on the one-hot columns are the learned class embedding (one column
/// per class, plus the no-class embedding). [`InputLayout::names`] lists the columns.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct InputLayout {
    /// Class labels of a conditional model (0: unconditional, no class columns).
    pub n_classes: u32,
    /// MeanFlow: the `r` column.
    pub mean_flow: bool,
}

impl InputLayout {
    /// `(x, y, t)` only: an unconditional flow-matching model.
    pub const PLAIN: InputLayout = InputLayout { n_classes: 0, mean_flow: false };

    /// Number of input columns.
    pub fn dim(&self) -> u32 {
        IN_DIM + self.mean_flow as u32 + if self.n_classes > 0 { self.n_classes + 1 } else { 0 }
    }
    /// Column of `r` (MeanFlow models).
    pub fn r_column(&self) -> Option<u32> {
        self.mean_flow.then_some(IN_DIM)
    }
    /// Column of class 0 (conditional models); class `c` is at `+ c`, the no-class token at `+ n_classes`.
    pub fn class_column(&self) -> Option<u32> {
        (self.n_classes > 0).then_some(IN_DIM + self.mean_flow as u32)
    }
    /// The one-hot column set for a sample of class `c` (`None`: the no-class token); `None` for an
    /// unconditional model. Classes past the model's count are the no-class token.
    pub fn one_hot_column(&self, class: Option<u32>) -> Option<u32> {
        let first = self.class_column()?;
        Some(first + class.filter(|&c| c < self.n_classes).unwrap_or(self.n_classes))
    }
    /// The name of every column, in order (e.g. for a model file's metadata).
    pub fn names(&self) -> Vec<String> {
        let mut v: Vec<String> = ["x", "y", "t"].iter().map(|s| s.to_string()).collect();
        if self.mean_flow {
            v.push("r".into());
        }
        if self.n_classes > 0 {
            v.extend((0..self.n_classes).map(|c| format!("class={c}")));
            v.push("class=none".into());
        }
        v
    }
}

/// How a sampler queries a (conditional) network: which class, and the classifier-free guidance
/// weight `w` in `v = v(∅) + w·(v(c) - v(∅))` (Ho & Salimans 2022). `class: None` (or an
/// unconditional model) evaluates the no-class field once; `w = 1` the class field once.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Query {
    pub class: Option<u32>,
    pub guidance: f32,
}

impl Default for Query {
    fn default() -> Self {
        Query { class: None, guidance: 1.0 }
    }
}

impl Query {
    /// True when the field is a mix of two network evaluations (a class and guidance ≠ 1).
    pub fn guided(&self, inputs: &InputLayout) -> bool {
        inputs.n_classes > 0 && self.class.is_some_and(|c| c < inputs.n_classes) && self.guidance != 1.0
    }
}

/// What fixes the number and layout of the parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ModelShape {
    pub width: u32,
    pub depth: u32,
    pub activation: Activation,
    /// The input row (columns beyond `x, y, t`).
    pub inputs: InputLayout,
}

/// Where one linear layer's tensors sit in the packed parameter buffer (offsets in floats).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LayerLayout {
    pub in_dim: u32,
    pub out_dim: u32,
    pub w_offset: u32,
    pub b_offset: u32,
}

fn align4(n: u32) -> u32 {
    n.div_ceil(4) * 4
}

impl ModelShape {
    /// An unconditional flow-matching network reading `(x, y, t)`.
    pub fn new(width: u32, depth: u32, activation: Activation) -> Self {
        ModelShape { width, depth, activation, inputs: InputLayout::PLAIN }
    }

    /// Number of linear layers: `depth` hidden plus the output layer.
    pub fn num_layers(&self) -> usize {
        self.depth as usize + 1
    }

    /// The layout of every layer in the packed buffer.
    pub fn layers(&self) -> Vec<LayerLayout> {
        let mut offset = 0;
        (0..self.num_layers())
            .map(|l| {
                let in_dim = if l == 0 { self.inputs.dim() } else { self.width };
                let out_dim = if l == self.depth as usize { OUT_DIM } else { self.width };
                let w_offset = offset;
                offset += align4(in_dim * out_dim);
                let b_offset = offset;
                offset += align4(out_dim);
                LayerLayout { in_dim, out_dim, w_offset, b_offset }
            })
            .collect()
    }

    /// The module index of linear layer `l` in the equivalent PyTorch model
    /// `nn.Sequential(Linear(3, W), Act, Linear(W, W), Act, …, Linear(W, 2))`: the activations sit
    /// between the linear layers, so the linear layers are modules 0, 2, 4, …, 2·depth and their
    /// tensors are named `{2l}.weight` (out, in) and `{2l}.bias` in a `state_dict`.
    pub fn torch_index(l: usize) -> usize {
        2 * l
    }

    /// What a saved model states about the network, as `(key, value)` text: the safetensors
    /// metadata (`model_file::safetensors`) writes every pair and a loader checks every pair
    /// against the model its configuration builds. A new input or shape field belongs here.
    pub fn describe(&self) -> Vec<(&'static str, String)> {
        let layers: Vec<String> = (0..self.num_layers()).map(|l| Self::torch_index(l).to_string()).collect();
        vec![
            ("inputs", self.inputs.names().join(",")),
            ("outputs", OUTPUTS.join(",")),
            ("width", self.width.to_string()),
            ("depth", self.depth.to_string()),
            ("activation", self.activation.name().to_string()),
            ("torch_activation", torch_activation(self.activation).to_string()),
            ("linear_layers", layers.join(",")),
        ]
    }

    /// Length of the packed parameter buffer, padding included.
    pub fn param_len(&self) -> usize {
        let last = *self.layers().last().expect("at least one layer");
        (last.b_offset + align4(last.out_dim)) as usize
    }

    /// Number of trainable parameters (no padding).
    pub fn param_count(&self) -> usize {
        self.layers().iter().map(|l| (l.in_dim * l.out_dim + l.out_dim) as usize).sum()
    }

    /// Multiply-adds of one forward pass for one sample.
    pub fn macs_per_sample(&self) -> u64 {
        self.layers().iter().map(|l| l.in_dim as u64 * l.out_dim as u64).sum()
    }

    /// Initial parameters, as PyTorch's `nn.Linear` default: `W, b ~ U(-1/√in, 1/√in)`, drawn
    /// from the counter-based generator keyed by (seed, parameter index). Padding is zero.
    pub fn init_params(&self, seed: u32) -> Vec<f32> {
        let mut p = vec![0.0f32; self.param_len()];
        for l in self.layers() {
            let bound = 1.0 / (l.in_dim as f32).sqrt();
            let w = l.w_offset..l.w_offset + l.in_dim * l.out_dim;
            let b = l.b_offset..l.b_offset + l.out_dim;
            for i in w.chain(b) {
                p[i as usize] = bound * (2.0 * unit(hash4(seed, 0, i, stream::INIT)) - 1.0);
            }
        }
        p
    }

    /// Offsets (in floats) of the training activations for batch `batch`.
    pub fn activation_layout(&self, batch: u32) -> ActivationLayout {
        let b = batch;
        let input = 0;
        let in_dim = self.inputs.dim();
        let target = input + b * in_dim;
        let mut offset = target + b * OUT_DIM;
        let mut hidden = Vec::new();
        for _ in 0..self.depth {
            let z = offset;
            let a = z + b * self.width;
            offset = a + b * self.width;
            hidden.push((z, a));
        }
        let output = offset;
        let len = output + b * OUT_DIM;
        let mut deltas = Vec::new();
        let mut doff = 0;
        for l in self.layers() {
            deltas.push(doff);
            doff += b * l.out_dim;
        }
        ActivationLayout { batch, in_dim, input, target, hidden, output, len, deltas, loss_terms: doff, deltas_len: doff + b }
    }
}

/// The PyTorch module computing `act` exactly as `cpu::activation` does (GELU is the tanh
/// approximation; `tanh`'s ±15 clamp changes nothing in f32).
pub fn torch_activation(act: Activation) -> &'static str {
    match act {
        Activation::Silu => "torch.nn.SiLU()",
        Activation::Relu => "torch.nn.ReLU()",
        Activation::Gelu => "torch.nn.GELU(approximate='tanh')",
        Activation::Tanh => "torch.nn.Tanh()",
    }
}

/// Offsets (in floats) into the activation and delta buffers; see the module docs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ActivationLayout {
    pub batch: u32,
    /// Columns of one input row ([`InputLayout::dim`]).
    pub in_dim: u32,
    pub input: u32,
    pub target: u32,
    /// `(z_l, a_l)` for each hidden layer.
    pub hidden: Vec<(u32, u32)>,
    pub output: u32,
    pub len: u32,
    /// `delta_l` for each linear layer.
    pub deltas: Vec<u32>,
    pub loss_terms: u32,
    pub deltas_len: u32,
}

impl ActivationLayout {
    /// Offset of the input to linear layer `l` (the batch input for l = 0, else `a_{l-1}`).
    pub fn layer_input(&self, l: usize) -> u32 {
        if l == 0 { self.input } else { self.hidden[l - 1].1 }
    }
    /// Offset of linear layer `l`'s output (`z_l`; the velocity for the last layer).
    pub fn layer_output(&self, l: usize) -> u32 {
        if l < self.hidden.len() { self.hidden[l].0 } else { self.output }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_is_aligned_and_counts_match() {
        let s = ModelShape::new(5, 2, Activation::Silu);
        let layers = s.layers();
        assert_eq!(layers.len(), 3);
        assert_eq!((layers[0].in_dim, layers[0].out_dim), (3, 5));
        assert_eq!((layers[2].in_dim, layers[2].out_dim), (5, 2));
        for l in &layers {
            assert_eq!(l.w_offset % 4, 0);
            assert_eq!(l.b_offset % 4, 0);
        }
        assert_eq!(s.param_count(), 3 * 5 + 5 + 5 * 5 + 5 + 5 * 2 + 2);
        assert!(s.param_len() >= s.param_count());
    }

    #[test]
    fn init_is_bounded_and_padding_zero() {
        let s = ModelShape::new(7, 3, Activation::Relu);
        let p = s.init_params(1);
        let mut used = vec![false; p.len()];
        for l in s.layers() {
            let bound = 1.0 / (l.in_dim as f32).sqrt();
            for i in (l.w_offset..l.w_offset + l.in_dim * l.out_dim).chain(l.b_offset..l.b_offset + l.out_dim) {
                assert!(p[i as usize].abs() <= bound);
                used[i as usize] = true;
            }
        }
        assert!(p.iter().zip(&used).all(|(v, u)| *u || *v == 0.0));
        assert_ne!(p, s.init_params(2));
    }

    #[test]
    fn input_layout_columns() {
        let plain = InputLayout::PLAIN;
        assert_eq!((plain.dim(), plain.r_column(), plain.class_column(), plain.one_hot_column(Some(1))), (3, None, None, None));
        let mf = InputLayout { n_classes: 0, mean_flow: true };
        assert_eq!((mf.dim(), mf.r_column(), mf.names()), (4, Some(3), vec!["x".to_string(), "y".into(), "t".into(), "r".into()]));
        let both = InputLayout { n_classes: 8, mean_flow: true };
        assert_eq!(both.dim(), 3 + 1 + 9);
        assert_eq!(both.class_column(), Some(4));
        assert_eq!(both.one_hot_column(Some(3)), Some(7));
        assert_eq!(both.one_hot_column(None), Some(12));
        assert_eq!(both.one_hot_column(Some(8)), Some(12), "an out-of-range class is the no-class token");
        let names = both.names();
        assert_eq!((names.len() as u32, names[7].as_str(), names[12].as_str()), (both.dim(), "class=3", "class=none"));
        let s = ModelShape { inputs: both, ..ModelShape::new(5, 2, Activation::Silu) };
        assert_eq!(s.layers()[0].in_dim, 13);
        assert_eq!(s.activation_layout(7).target, 7 * 13);
        assert!(Query { class: Some(3), guidance: 4.0 }.guided(&both));
        assert!(!Query { class: Some(3), guidance: 1.0 }.guided(&both));
        assert!(!Query { class: None, guidance: 4.0 }.guided(&both));
        assert!(!Query { class: Some(3), guidance: 4.0 }.guided(&plain));
    }
}
