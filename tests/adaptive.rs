//! The adaptive Dormand–Prince kernel (`shaders/ode_adaptive.wgsl`) against its CPU twin
//! (`cpu::adaptive`), at particle counts that are not multiples of the workgroup size. Runs
//! natively and, through `wasm-pack test`, in headless Chromium.
//!
//! Both run the same f32 operations in the same order, so each particle takes the same steps:
//! its count of field evaluations must match exactly, and its states agree to rounding
//! (`atol 1e-4 + rtol 1e-4`, as the fixed-step ODE kernels of tests/kernels.rs).
//! Tolerances stay ≥ 1e-5: near 1e-6 the f32 error estimate is itself rounding noise, a step's
//! accept/reject decision can flip between two correct implementations and the paths part.

mod common;
use common::{assert_close, gpu};

use flowmatch::config::{Activation, Coupling, Dataset, Path, Solver};
use flowmatch::cpu::adam::AdamHyper;
use flowmatch::cpu::adaptive::{self, AdaptiveOptions};
use flowmatch::gpu::{GpuSampler, GpuTrainer};
use flowmatch::model::ModelShape;
use flowmatch::targets::sample_dataset;
use flowmatch::TrainSpec;

#[cfg(target_arch = "wasm32")]
wasm_bindgen_test::wasm_bindgen_test_configure!(run_in_browser);

fn spec() -> TrainSpec {
    TrainSpec {
        shape: ModelShape::new(19, 2, Activation::Silu),
        batch: 64,
        seed: 3,
        sigma_min: 0.0,
        path: Path::Linear,
        coupling: Coupling::Independent,
        adam: AdamHyper::new(1e-2, 0.0),
        time: Default::default(),
        label_dropout: 0.0,
    }
}

/// A briefly trained model (a curved field), the GPU's starting points and its parameters.
async fn setup(n: u32, frames: u32) -> (GpuTrainer, GpuSampler, Vec<f32>, Vec<[f32; 2]>) {
    let ctx = gpu().await;
    let s = spec();
    let mut t = GpuTrainer::new(&ctx, s, &sample_dataset(Dataset::Moons, 500, 1)).unwrap();
    t.train(40);
    let params = t.read(&t.params, s.shape.param_len()).await.unwrap();
    let mut sampler = GpuSampler::new(&ctx, &s.shape, &t.params, n, frames).unwrap();
    sampler.reset(4);
    let x0 = sampler.read_particles().await.unwrap();
    (t, sampler, params, x0)
}

async fn adaptive_matches_cpu(tol: f32, max_nfe: u32, n: u32, frames: u32) {
    let (_t, mut sampler, params, x0) = setup(n, frames).await;
    let opts = AdaptiveOptions::new(tol, max_nfe).unwrap();
    let (t0, t1) = (0.1, 0.9);
    sampler.integrate_adaptive(t0, t1, &opts, frames);
    let got = sampler.read_particles().await.unwrap();
    let summary = sampler.read_adaptive_summary().await.unwrap();
    let mut want = x0.clone();
    let (stats, traj) = adaptive::integrate(&spec().shape, &params, &mut want, t0, t1, &opts, frames);
    let label = format!("dopri5 tol {tol:e} budget {max_nfe}");
    assert_close(&label, &got.concat(), &want.concat(), 1e-4, 1e-4);
    let want_nfe: Vec<u32> = stats.iter().map(|s| s.nfe).collect();
    assert_eq!(summary.nfe, want_nfe, "{label}: field evaluations per particle");
    assert_eq!(summary.unfinished, stats.iter().filter(|s| !s.finished).count(), "{label}: unfinished particles");
    // The controller really adapts: particles do not all take the same number of steps.
    let (lo, hi) = (want_nfe.iter().min().unwrap(), want_nfe.iter().max().unwrap());
    if tol <= 1e-5 {
        assert!(lo < hi && summary.unfinished == 0, "{label}: evaluations {lo}..{hi}, {} unfinished", summary.unfinished);
    }
    if max_nfe < 20 {
        assert_eq!(summary.unfinished, n as usize, "{label}: every particle runs out of budget");
    }
    if frames > 0 {
        let got_traj = sampler.read_trajectories().await.unwrap();
        let rows = n as usize;
        assert_eq!(&got_traj[..rows], &x0[..], "row 0 is left as the starting points");
        assert_close(&format!("{label} frames"), &got_traj[rows..].concat(), &traj[rows..].concat(), 1e-4, 1e-4);
        assert_eq!(&got_traj[frames as usize * rows..], &got[..], "last frame is the final state");
    }
}

/// `integrate(Solver::Dopri5, .., steps)` is the adaptive solver with `steps` as the budget,
/// recording `traj_steps` frames over [0, 1].
async fn sampler_routes_dopri5() {
    let (n, frames) = (77, 60);
    let (_t, mut sampler, params, x0) = setup(n, frames).await;
    sampler.set_tol(1e-4).unwrap();
    assert!(sampler.set_tol(0.0).unwrap_err().contains("[0.000001, 0.1]"));
    sampler.integrate(Solver::Dopri5, 0.0, 1.0, frames);
    let got = sampler.read_trajectories().await.unwrap();
    let mut want = x0.clone();
    let opts = AdaptiveOptions::new(1e-4, frames).unwrap();
    let (_, traj) = adaptive::integrate(&spec().shape, &params, &mut want, 0.0, 1.0, &opts, frames);
    assert_close("dopri5 via integrate", &got.concat(), &traj.concat(), 1e-4, 1e-4);
    // A budget that does not equal the recorded steps records nothing new but still integrates.
    sampler.rewind();
    sampler.integrate(Solver::Dopri5, 0.0, 1.0, 500);
    let end = sampler.read_particles().await.unwrap();
    let summary = sampler.read_adaptive_summary().await.unwrap();
    assert_eq!(summary.unfinished, 0);
    let mut want = x0.clone();
    adaptive::integrate(&spec().shape, &params, &mut want, 0.0, 1.0, &AdaptiveOptions::new(1e-4, 500).unwrap(), 0);
    assert_close("dopri5 end state", &end.concat(), &want.concat(), 1e-4, 1e-4);
}

gpu_test!(dopri5_matches_cpu_tight_tolerance, adaptive_matches_cpu(1e-5, 2000, 333, 0));
gpu_test!(dopri5_matches_cpu_with_frames, adaptive_matches_cpu(1e-3, 500, 130, 9));
gpu_test!(dopri5_matches_cpu_when_the_budget_runs_out, adaptive_matches_cpu(1e-4, 13, 65, 4));
gpu_test!(dopri5_through_sampler_integrate, sampler_routes_dopri5());
