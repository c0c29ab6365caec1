//! Training state travels with a saved model: save at step k, load into a fresh trainer, train n
//! more steps, and the parameters (and Adam's moments) are bit for bit those of an uninterrupted
//! run of k + n steps, on the GPU and on the CPU backend, through both file formats. The cosine
//! learning-rate schedule is short (`steps` = k + n + 3) and restarted by a new target at step
//! `RESTART`, so a load that lost the schedule's start would change the rate of every later step.
#![cfg(not(target_arch = "wasm32"))]

mod common;
use common::gpu;

use flowmatch::config::{Activation, Config, Dataset, LrSchedule};
use flowmatch::cpu::{CpuTrainer, FastCpuTrainer};
use flowmatch::gpu::GpuTrainer;
use flowmatch::model_file::{ModelFile, ModelFormat};
use flowmatch::targets::sample_dataset;
use flowmatch::TrainSpec;

const K: u32 = 6;
const N: u32 = 5;
/// The step at which both runs get a new target (which restarts the learning-rate schedule).
const RESTART: u32 = 2;

fn config() -> Config {
    Config {
        dataset: Dataset::EightGaussians,
        width: 13,
        depth: 2,
        activation: Activation::Gelu,
        batch: 37,
        seed: 4,
        lr: 3e-2,
        weight_decay: 0.01,
        schedule: LrSchedule::Cosine,
        steps: (K + N + 3) as u64,
        ..Config::default()
    }
}

fn data() -> Vec<[f32; 2]> {
    sample_dataset(Dataset::EightGaussians, 500, 4)
}

/// The target from `RESTART` on.
fn new_target() -> Vec<[f32; 2]> {
    sample_dataset(Dataset::Moons, 400, 5)
}

/// `k` CPU steps from a fresh trainer, with the new target from `RESTART` on.
fn cpu_run(spec: TrainSpec, k: u32) -> CpuTrainer {
    let mut t = CpuTrainer::new(spec, data());
    for s in 0..k {
        if s == RESTART {
            t.set_target(new_target());
        }
        t.step();
    }
    t
}

/// The same on the GPU (without reading anything back).
fn gpu_run(ctx: &flowmatch::gpu::GpuContext, spec: TrainSpec, k: u32) -> GpuTrainer {
    let mut t = GpuTrainer::new(ctx, spec, &data()).unwrap();
    t.train(RESTART);
    t.set_target(&new_target()).unwrap();
    t.train(k - RESTART);
    t
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// The file as it comes back from disk in `format`.
fn through(file: &ModelFile, format: ModelFormat) -> ModelFile {
    ModelFile::decode(&file.encode_as(format)).unwrap()
}

#[test]
fn cpu_resumes_exactly() {
    let spec = TrainSpec::from_config(&config());
    let straight = cpu_run(spec, K + N);
    for format in ModelFormat::ALL {
        let first = cpu_run(spec, K);
        let saved = through(&first.model_file(config()), format);
        assert_eq!((saved.step, saved.schedule_start), (K, RESTART));
        // A trainer that has trained elsewhere meanwhile: nothing of its own state may survive.
        let mut resumed = CpuTrainer::new(TrainSpec { seed: 99, ..spec }, data());
        resumed.step();
        resumed.spec.seed = spec.seed;
        resumed.set_target(new_target());
        resumed.load_model(&saved).unwrap();
        for _ in 0..N {
            resumed.step();
        }
        assert_eq!(resumed.step, K + N);
        assert_eq!(bits(&resumed.params), bits(&straight.params), "{format:?}: parameters");
        assert_eq!(bits(&resumed.m), bits(&straight.m), "{format:?}: Adam m");
        assert_eq!(bits(&resumed.v), bits(&straight.v), "{format:?}: Adam v");
    }
}

/// The page's fast CPU backend continues the reference's file with the same bits (GELU: the fast
/// kernels give the reference's bits, `tests/cpu_fast.rs`), and saves what it loaded.
#[test]
fn fast_cpu_resumes_exactly() {
    let spec = TrainSpec::from_config(&config());
    let straight = cpu_run(spec, K + N);
    let saved = through(&cpu_run(spec, K).model_file(config()), ModelFormat::Safetensors);
    let mut fast = FastCpuTrainer::new(spec, data());
    fast.step();
    fast.set_target(new_target());
    fast.load_model(&saved).unwrap();
    let again = fast.model_file(config());
    assert_eq!((again.step, again.schedule_start, bits(&again.params)), (K, RESTART, bits(&saved.params)));
    for _ in 0..N {
        fast.step();
    }
    assert_eq!(bits(&fast.params), bits(&straight.params), "parameters");
    assert_eq!(bits(&fast.m), bits(&straight.m), "Adam m");
    assert_eq!(bits(&fast.v), bits(&straight.v), "Adam v");
}

#[test]
fn gpu_resumes_exactly() {
    pollster::block_on(async {
        let ctx = gpu().await;
        let spec = TrainSpec::from_config(&config());
        let p = spec.shape.param_len();
        let straight = gpu_run(&ctx, spec, K + N);
        let want = straight.read_params().await.unwrap();
        let want_moments = straight.read(&straight.moments, 2 * p).await.unwrap();
        let first = gpu_run(&ctx, spec, K);
        let saved = first.model_file_detached(config()).await.unwrap();
        assert_eq!((saved.step, saved.schedule_start), (K, RESTART));
        for format in ModelFormat::ALL {
            let file = through(&saved, format);
            // A trainer with its own history: its moments and step must not survive the load.
            let mut resumed = GpuTrainer::new(&ctx, spec, &data()).unwrap();
            resumed.set_target(&new_target()).unwrap();
            resumed.train(3);
            resumed.load_model(&file).unwrap();
            assert_eq!(resumed.step(), K);
            resumed.train(N);
            assert_eq!(resumed.step(), K + N);
            let got = resumed.read_params().await.unwrap();
            assert_eq!(bits(&got), bits(&want), "{format:?}: parameters after resuming");
            let got_moments = resumed.read(&resumed.moments, 2 * p).await.unwrap();
            assert_eq!(bits(&got_moments), bits(&want_moments), "{format:?}: Adam moments after resuming");
        }
        // The CPU backend reads the GPU's file and continues the same run (to f32 rounding).
        let mut cpu = CpuTrainer::new(spec, new_target());
        cpu.load_model(&through(&saved, ModelFormat::Safetensors)).unwrap();
        for _ in 0..N {
            cpu.step();
        }
        let worst = cpu.params.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
        // f32 sums in another order: Adam moves each parameter by at most lr per step, so rounding
        // differences stay far below N·lr = 0.15 (tests/training.rs: 5e-3 after 50 steps at 1e-2).
        assert!(worst < 2e-3, "CPU continuing the GPU's file differs by {worst}");
    });
}

#[test]
fn a_file_for_another_shape_is_refused_and_nothing_changes() {
    let spec = TrainSpec::from_config(&config());
    let mut t = CpuTrainer::new(spec, data());
    t.step();
    let before = (t.params.clone(), t.m.clone(), t.step);
    let other = Config { width: 14, ..config() };
    let file = CpuTrainer::new(TrainSpec::from_config(&other), data()).model_file(other);
    let e = t.load_model(&file).unwrap_err();
    assert!(e.contains("width 14") && e.contains("width 13"), "{e}");
    assert_eq!((t.params.clone(), t.m.clone(), t.step), before);
}
