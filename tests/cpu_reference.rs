//! The CPU reference's backward pass against central finite differences, for every parameter
//! tensor and every activation. The CPU reference is the oracle of all GPU tests, so it is checked
//! against the definition of the gradient itself.
#![cfg(not(target_arch = "wasm32"))]

use flowmatch::config::{Activation, Config, Dataset};
use flowmatch::cpu::CpuTrainer;
use flowmatch::targets::sample_dataset;
use flowmatch::TrainSpec;

fn trainer(activation: Activation) -> CpuTrainer {
    let mut c = Config::default();
    c.width = 6;
    c.depth = 2;
    c.batch = 9;
    c.seed = 4;
    c.activation = activation;
    c.sigma_min = 0.1;
    CpuTrainer::new(TrainSpec::from_config(&c), sample_dataset(Dataset::EightGaussians, 300, 1))
}

/// Loss at step 0's batch with parameter `i` set to `value`, and which hidden pre-activations
/// are positive (the ReLU pattern).
fn loss_with(t: &mut CpuTrainer, i: usize, value: f32) -> (f64, Vec<bool>) {
    let old = t.params[i];
    t.params[i] = value;
    let l = t.loss_and_grad() as f64;
    t.params[i] = old;
    let b = t.spec.batch as usize * t.spec.shape.width as usize;
    let pattern = t.layout.hidden.iter().flat_map(|&(z, _)| t.acts[z as usize..z as usize + b].iter().map(|&v| v > 0.0)).collect();
    (l, pattern)
}

/// Central differences with h = 1e-2 on f32 losses of magnitude ~10: truncation error O(h²·f''')
/// ~1e-4 and rounding error ~ε·L/h ~ 1e-4, so |fd - grad| ≤ 1e-3 + 1e-2·|grad|.
/// ReLU is checked away from its kink: parameters whose ±h perturbation flips any hidden unit's
/// sign are skipped (the loss is not differentiable across the kink).
#[test]
fn backward_matches_finite_differences_for_every_tensor() {
    for &act in Activation::ALL {
        let mut t = trainer(act);
        t.loss_and_grad();
        let grads = t.grads.clone();
        let shape = t.spec.shape;
        for (l, layer) in shape.layers().iter().enumerate() {
            let tensors = [
                ("W", layer.w_offset, layer.in_dim * layer.out_dim),
                ("b", layer.b_offset, layer.out_dim),
            ];
            for (name, offset, len) in tensors {
                let mut checked = 0;
                for i in offset as usize..(offset + len) as usize {
                    let h = 1e-2f32;
                    let p = t.params[i];
                    let ((lp, sp), (lm, sm)) = (loss_with(&mut t, i, p + h), loss_with(&mut t, i, p - h));
                    let fd = (lp - lm) / (2.0 * h as f64);
                    if act == Activation::Relu && sp != sm {
                        continue; // the perturbation crossed a ReLU kink
                    }
                    let g = grads[i] as f64;
                    assert!(
                        (fd - g).abs() <= 1e-3 + 1e-2 * g.abs(),
                        "{act}: layer {l} {name}[{}]: backward {g:e} vs finite difference {fd:e}",
                        i - offset as usize
                    );
                    checked += 1;
                }
                assert!(checked > len / 2, "{act}: too few entries of layer {l} {name} checked ({checked}/{len})");
            }
        }
    }
}

/// The CFM target is exactly x1 - (1 - σmin)·x0 for x_t = (1 - (1 - σmin)·t)·x0 + t·x1:
/// d x_t / dt = u.
#[test]
fn batch_target_is_the_path_derivative() {
    let mut t = trainer(Activation::Silu);
    t.loss_and_grad();
    let l = &t.layout;
    for b in 0..l.batch as usize {
        let (xt, tt) = ([t.acts[3 * b], t.acts[3 * b + 1]], t.acts[3 * b + 2]);
        let u = [t.acts[l.target as usize + 2 * b], t.acts[l.target as usize + 2 * b + 1]];
        assert!(tt > 0.0 && tt < 1.0);
        // x1 = x_t + (1 - t)·u·... : recover x0 and x1 and check both lie on the path.
        let s = 1.0 - 0.1f32; // 1 - σmin
        // x_t = x0 + t·(x1 - s·x0) = x0 + t·u  ⇒  x0 = x_t - t·u, x1 = u + s·x0.
        let x0 = [xt[0] - tt * u[0], xt[1] - tt * u[1]];
        let x1 = [u[0] + s * x0[0], u[1] + s * x0[1]];
        assert!(t.data.iter().any(|p| (p[0] - x1[0]).abs() < 1e-4 && (p[1] - x1[1]).abs() < 1e-4), "x1 of sample {b} is not a data point");
    }
}
