//! Training end to end on the GPU (natively; lavapipe where there is no GPU):
//! the GPU run tracks the CPU reference step for step, and the default configuration learns moons.
#![cfg(not(target_arch = "wasm32"))]

mod common;
use common::gpu;

use flowmatch::config::{Config, Coupling, Dataset, Solver};
use flowmatch::cpu::CpuTrainer;
use flowmatch::gpu::flow_stats::FlowStats;
use flowmatch::gpu::{GpuFlowStats, GpuSampler, GpuTrainer};
use flowmatch::metrics::sliced_wasserstein2;
use flowmatch::targets::{sample_dataset, DATASET_POINTS};
use flowmatch::TrainSpec;

/// 50 steps from the same seed see the same batches (the PRNG is shared bit for bit) and must
/// give the same losses. Tolerance: each step's loss within 1e-3 relative. f32 sums in a different
/// order differ by ~1e-6 per step; Adam turns gradient differences into parameter differences of
/// at most lr·(relative gradient error), so after 50 steps the loss drifts by ~1e-5–1e-4; a real
/// kernel bug (a wrong term, a missed sample) shifts it by percent.
#[test]
fn gpu_training_tracks_cpu_reference_for_50_steps() {
    pollster::block_on(async {
        let ctx = gpu().await;
        let mut config = Config::default();
        config.width = 32;
        config.batch = 100;
        config.seed = 3;
        let spec = TrainSpec::from_config(&config);
        let data = sample_dataset(Dataset::Moons, 4096, 3);
        let mut cpu = CpuTrainer::new(spec, data.clone());
        let mut gpu = GpuTrainer::new(&ctx, spec, &data).unwrap();
        let cpu_losses: Vec<f32> = (0..50).map(|_| cpu.step()).collect();
        gpu.train(50);
        let status = gpu.status(50).await.unwrap();
        assert_eq!(status.first_bad_step, None);
        let mut worst = 0.0f32;
        for ((step, g), c) in status.losses.iter().zip(&cpu_losses) {
            let rel = (g - c).abs() / c.abs();
            worst = worst.max(rel);
            assert!(rel <= 1e-3, "step {step}: gpu loss {g} vs cpu {c} (relative {rel:e})");
        }
        assert!(cpu_losses[49] < cpu_losses[0], "loss must fall over 50 steps: {cpu_losses:?}");
        let p_gpu = gpu.read_params().await.unwrap();
        let max_diff = p_gpu.iter().zip(&cpu.params).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
        // Params move by at most lr per step under Adam: 50 steps at lr 1e-2 is 0.5 in total.
        assert!(max_diff < 5e-3, "parameters drifted by {max_diff} (worst loss rel diff {worst:e})");
        eprintln!("worst relative loss difference {worst:e}; max parameter difference {max_diff:e}");
    });
}

/// The quality bar: with the defaults (moons, width 64, depth 3, batch 256, lr 1e-2,
/// Adam, SiLU, 2000 steps, Euler with 100 steps), a PyTorch implementation reaches a sliced
/// Wasserstein-2 distance of about 0.11 to 20000 fresh target samples, where two target sets
/// score about 0.013 against each other (the estimator's floor).
///
/// The software driver is slow, so we sample 4000 particles against 4000 fresh target points. At
/// that size the floor is larger (measured ~0.064 with this estimator), so we compare the
/// floor-corrected distance `sqrt(SW² - floor²)`: PyTorch's 0.11 at a floor of 0.013 corrects to
/// ~0.109. Measured here: 0.126 raw, ~0.109 corrected. Threshold 0.13 on the corrected value is
/// PyTorch's figure plus ~20% for seed-to-seed variation, and fails any real regression: standard
/// normal samples (an untrained flow) score ~0.56.
#[test]
fn default_config_learns_moons() {
    pollster::block_on(async {
        let ctx = gpu().await;
        let config = Config::default();
        assert_eq!((config.dataset, config.steps, config.solver, config.nfe), (Dataset::Moons, 2000, Solver::Euler, 100));
        let spec = TrainSpec::from_config(&config);
        let data = sample_dataset(config.dataset, DATASET_POINTS, config.seed);
        let mut trainer = GpuTrainer::new(&ctx, spec, &data).unwrap();
        trainer.train(config.steps as u32);
        let status = trainer.status(100).await.unwrap();
        assert_eq!(status.first_bad_step, None);
        let n = 4000;
        let mut sampler = GpuSampler::new(&ctx, &spec.shape, &trainer.params, n, 0).unwrap();
        sampler.reset(12345);
        let untrained_like = sampler.read_particles().await.unwrap();
        sampler.integrate(config.solver, 0.0, 1.0, config.nfe);
        let samples = sampler.read_particles().await.unwrap();
        let fresh = sample_dataset(Dataset::Moons, n as usize, 987_654);
        let sw = sliced_wasserstein2(&samples, &fresh, 256, 1);
        let floor = sliced_wasserstein2(&sample_dataset(Dataset::Moons, n as usize, 55), &fresh, 256, 1);
        let noise = sliced_wasserstein2(&untrained_like, &fresh, 256, 1);
        let mean_loss: f32 = status.losses.iter().map(|(_, l)| l).sum::<f32>() / status.losses.len() as f32;
        eprintln!("SW2 trained {sw:.4}, target-vs-target floor {floor:.4}, N(0,I) {noise:.4}; mean loss of last 100 steps {mean_loss:.4}");
        let corrected = (sw * sw - floor * floor).max(0.0).sqrt();
        assert!(corrected < 0.13, "samples are not on the moons: SW2 {sw:.4}, floor {floor:.4}, corrected {corrected:.4}");
    });
}

/// Trains 8gaussians with the given coupling and returns the sliced W2 of 4000 samples drawn with
/// 2 Euler steps against fresh target points, and the flow's statistics (straightness, ...)
/// measured on 1000 particles with 20 midpoint steps.
async fn two_step_quality(coupling: Coupling) -> (f64, FlowStats) {
    let ctx = gpu().await;
    let mut config = Config::default();
    config.dataset = Dataset::EightGaussians;
    config.coupling = coupling;
    config.batch = 64;
    config.lr = 3e-3;
    let spec = TrainSpec::from_config(&config);
    let data = sample_dataset(config.dataset, DATASET_POINTS, 1);
    let mut trainer = GpuTrainer::new(&ctx, spec, &data).unwrap();
    trainer.train(1000);
    assert_eq!(trainer.status(1).await.unwrap().first_bad_step, None);
    let mut sampler = GpuSampler::new(&ctx, &spec.shape, &trainer.params, 4000, 0).unwrap();
    sampler.reset(3);
    sampler.integrate(Solver::Euler, 0.0, 1.0, 2);
    let samples = sampler.read_particles().await.unwrap();
    let mut measured = GpuSampler::new(&ctx, &spec.shape, &trainer.params, 1000, 0).unwrap();
    let stats = GpuFlowStats::new(&ctx, &spec.shape, &trainer.params, &measured).unwrap();
    measured.reset(4);
    stats.integrate(Solver::Midpoint, 20);
    (sliced_wasserstein2(&samples, &sample_dataset(config.dataset, 4000, 99), 128, 5), stats.read().await.unwrap())
}

/// OT-CFM's point: pairing noise with nearby data makes the learned paths nearly straight, so two
/// Euler steps already land on the modes, while the independently coupled field's curved paths
/// (it learns the average direction to all eight modes near t = 0) need many more steps.
/// Same budget for both (1000 steps, batch 64, lr 3e-3; small because the software driver runs the
/// single-workgroup Sinkhorn on one CPU thread). Threshold: OT's 2-step SW2 at most 60%
/// of the independent coupling's. Measured on lavapipe: independent 0.85, OT 0.22 (ratio 0.26):
/// the threshold leaves room for seed-to-seed variation while any loss of the effect fails.
/// The straightness S = E ∫|(x1 - x0) - v|² dt of OT's flow at most this fraction of the
/// independent coupling's (see the measurements below).
const STRAIGHTNESS_RATIO: f64 = 0.5;

#[test]
fn ot_coupling_gives_good_samples_in_two_euler_steps() {
    pollster::block_on(async {
        let (independent, independent_flow) = two_step_quality(Coupling::Independent).await;
        let (ot, ot_flow) = two_step_quality(Coupling::Ot).await;
        eprintln!("8gaussians, 2 Euler steps: SW2 independent {independent:.4}, OT {ot:.4}");
        eprintln!("flow statistics: independent {independent_flow:?}; OT {ot_flow:?}");
        assert!(ot < 0.6 * independent, "OT coupling should straighten the flow: SW2 {ot:.4} vs independent {independent:.4}");
        let (si, so) = (independent_flow.straightness, ot_flow.straightness);
        assert!(so < STRAIGHTNESS_RATIO * si, "OT coupling should give straighter paths: straightness {so:.4} vs independent {si:.4}");
    });
}
