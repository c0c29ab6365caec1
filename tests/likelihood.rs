//! Exact log-likelihood (`shaders/density.wgsl`): the GPU against the CPU twin, against a closed
//! form, and a trained model's density integrating to one.

mod common;
use common::{assert_close, gpu};

use flowmatch::config::{Activation, Config, Dataset, Solver};
use flowmatch::cpu::density::log_density;
use flowmatch::gpu::{GpuDensity, GpuTrainer};
use flowmatch::model::ModelShape;
use flowmatch::targets::sample_dataset;
use flowmatch::TrainSpec;

#[cfg(target_arch = "wasm32")]
wasm_bindgen_test::wasm_bindgen_test_configure!(run_in_browser);

/// A width-5 ReLU network that is exactly the time-dependent linear field
/// `v(x, t) = diag(a)·x + b + c·t` (t ∈ [0, 1], so relu(t) = t): hidden = (relu(x), relu(-x),
/// relu(y), relu(-y), relu(t)), v = (a1(h0 - h1) + c1·h4 + b1, a2(h2 - h3) + c2·h4 + b2).
/// The `c·t` term makes the answer depend on the time the field is evaluated at, so integrating
/// with the time running the wrong way (t from 0 up while x goes back from t = 1) fails the
/// closed form; a field without `t` could not tell.
fn linear_field(a: [f32; 2], b: [f32; 2], c: [f32; 2]) -> (ModelShape, Vec<f32>) {
    let shape = ModelShape::new(5, 1, Activation::Relu);
    let layers = shape.layers();
    let mut p = vec![0.0; shape.param_len()];
    let w0 = layers[0].w_offset as usize;
    let rows = [[1.0, 0.0, 0.0], [-1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, -1.0, 0.0], [0.0, 0.0, 1.0]];
    for (o, row) in rows.iter().enumerate() {
        p[w0 + 3 * o..w0 + 3 * o + 3].copy_from_slice(row);
    }
    let (w1, b1) = (layers[1].w_offset as usize, layers[1].b_offset as usize);
    p[w1..w1 + 5].copy_from_slice(&[a[0], -a[0], 0.0, 0.0, c[0]]);
    p[w1 + 5..w1 + 10].copy_from_slice(&[0.0, 0.0, a[1], -a[1], c[1]]);
    p[b1] = b[0];
    p[b1 + 1] = b[1];
    (shape, p)
}

/// Under `dx/dt = a·x + b + c·t` (per axis) from N(0, 1) at t = 0,
/// `x(1) = e^a·x0 + ∫_0^1 e^{a(1-s)}(b + c·s) ds = e^a·x0 + b(e^a - 1)/a + c((e^a - 1)/a² - 1/a)`,
/// so p1 is Gaussian with that mean and standard deviation e^a on each axis.
fn analytic_log_p(a: [f32; 2], b: [f32; 2], c: [f32; 2], x: [f32; 2]) -> f32 {
    (0..2)
        .map(|i| {
            let (a, b, c, x) = (a[i] as f64, b[i] as f64, c[i] as f64, x[i] as f64);
            let mean = b * (a.exp() - 1.0) / a + c * ((a.exp() - 1.0) / (a * a) - 1.0 / a);
            -0.5 * (2.0 * std::f64::consts::PI).ln() - a - (x - mean).powi(2) / (2.0 * (2.0 * a).exp())
        })
        .sum::<f64>() as f32
}

fn grid(n: usize, half: f32) -> Vec<[f32; 2]> {
    let step = 2.0 * half / n as f32;
    (0..n * n).map(|k| [-half + step * ((k % n) as f32 + 0.5), -half + step * ((k / n) as f32 + 0.5)]).collect()
}

/// RK4 with 24 steps integrates this linear ODE (its forcing is linear in t, which RK4 integrates
/// exactly) to ~1e-7 relative; the divergence a1 + a2 is constant, so the only error left is f32
/// rounding: 1e-3 absolute on log-densities of order 10. Evaluating the field at the mirrored
/// time (1 - t) moves the mean by 0.20 and 0.11 on the two axes: log p by up to ~1 on this grid.
async fn matches_closed_form() {
    let ctx = gpu().await;
    let (a, b, c) = ([0.6f32, -0.4f32], [0.5f32, -1.0f32], [1.5f32, -2.0f32]);
    let (shape, params) = linear_field(a, b, c);
    let spec = TrainSpec { shape, ..TrainSpec::from_config(&Config::default()) };
    let trainer = GpuTrainer::new(&ctx, spec, &sample_dataset(Dataset::Moons, 16, 0)).unwrap();
    trainer.reset_state(&params);
    let density = GpuDensity::new(&ctx, &shape, &trainer.params, 1024).unwrap();
    // Points off the axes (ReLU's kink) on a 17×17 grid.
    let points: Vec<[f32; 2]> = grid(17, 3.0).into_iter().map(|p| [p[0] + 0.013, p[1] + 0.021]).collect();
    let got = density.log_density(&points, Solver::Rk4, 24).await.unwrap();
    let want: Vec<f32> = points.iter().map(|&x| analytic_log_p(a, b, c, x)).collect();
    assert_close("log p vs closed form (GPU)", &got, &want, 1e-3, 1e-4);
    let cpu: Vec<f32> = points.iter().map(|&x| log_density(&shape, &params, Solver::Rk4, x, 24)).collect();
    assert_close("log p vs closed form (CPU)", &cpu, &want, 1e-3, 1e-4);
}

/// The GPU kernel against its CPU twin for every solver on a random smooth network.
async fn matches_cpu_twin() {
    let ctx = gpu().await;
    let mut config = Config::default();
    config.width = 13;
    config.depth = 3;
    config.activation = Activation::Tanh;
    let spec = TrainSpec::from_config(&config);
    let trainer = GpuTrainer::new(&ctx, spec, &sample_dataset(Dataset::Moons, 16, 0)).unwrap();
    let params = spec.shape.init_params(spec.seed);
    let density = GpuDensity::new(&ctx, &spec.shape, &trainer.params, 200).unwrap();
    let points = grid(9, 2.5);
    // Dopri5 here is equal Dormand–Prince steps (the backward pass has no step-size control).
    for solver in [Solver::Euler, Solver::Midpoint, Solver::Rk4, Solver::Dopri5] {
        let got = density.log_density(&points, solver, 7).await.unwrap();
        let want: Vec<f32> = points.iter().map(|&x| log_density(&spec.shape, &params, solver, x, 7)).collect();
        assert_close(&format!("log p {solver}"), &got, &want, 1e-4, 1e-4);
    }
}

gpu_test!(log_density_matches_closed_form, matches_closed_form());
gpu_test!(log_density_matches_cpu_twin, matches_cpu_twin());

/// A trained model's density is a probability density: its Riemann sum over a box holding the
/// data is 1 up to the mass outside the box and the grid's discretisation. With a 64×64 grid over
/// [-4, 4]² (cells of 0.125, finer than the short-trained model's features) and midpoint with 16
/// steps, we accept 1 ± 0.05. Held-out moons points must also be more likely under the model than
/// under the untrained starting point N(0, I).
#[cfg(not(target_arch = "wasm32"))]
#[test]
fn trained_density_integrates_to_one() {
    pollster::block_on(async {
        let ctx = gpu().await;
        let mut config = Config::default();
        config.width = 32;
        config.depth = 2;
        let spec = TrainSpec::from_config(&config);
        let data = sample_dataset(Dataset::Moons, 1 << 15, 1);
        let mut trainer = GpuTrainer::new(&ctx, spec, &data).unwrap();
        trainer.train(400);
        let density = GpuDensity::new(&ctx, &spec.shape, &trainer.params, 64 * 64).unwrap();
        let cells = grid(64, 4.0);
        let log_p = density.log_density(&cells, Solver::Midpoint, 16).await.unwrap();
        let cell_area = (8.0f64 / 64.0).powi(2);
        let mass: f64 = log_p.iter().map(|&l| (l as f64).exp() * cell_area).sum();
        let held_out = sample_dataset(Dataset::Moons, 1000, 777);
        let nll = -density.log_density(&held_out, Solver::Midpoint, 16).await.unwrap().iter().map(|&l| l as f64).sum::<f64>() / 1000.0;
        let nll_gauss = held_out.iter().map(|p| (2.0 * std::f64::consts::PI).ln() + 0.5 * (p[0] as f64).powi(2) + 0.5 * (p[1] as f64).powi(2)).sum::<f64>() / 1000.0;
        eprintln!("density mass over [-4,4]²: {mass:.4}; held-out NLL {nll:.3} (N(0,I): {nll_gauss:.3})");
        assert!((mass - 1.0).abs() < 0.05, "density integrates to {mass}");
        assert!(nll < nll_gauss - 0.3, "trained NLL {nll} is not better than N(0, I)'s {nll_gauss}");
    });
}
