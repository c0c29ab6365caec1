//! Reliability of the engine natively (lavapipe where there is no GPU):
//! - snapshots: snapshot at step S, train on, restore, train again → the same parameters and
//!   losses bit for bit (the state is complete: parameters, Adam moments, step);
//! - divergence: a huge learning rate sets the GPU's non-finite flag; a snapshot taken before is
//!   good, one taken after is not; restoring the good one clears the flag and training goes on;
//! - resource hygiene: 200 reconfigurations (trainer + samplers of alternating width, batch,
//!   particle count and dataset) leave the live engine buffer count (`gpu::counter`) where it
//!   started;
//! - device limits: a model too big for the device's buffer limit fails with the limits message
//!   before anything is allocated.
//!
//! The buffer counter is process-wide, so the tests take one lock and run one at a time.
#![cfg(not(target_arch = "wasm32"))]

mod common;
use common::gpu;

use flowmatch::config::{Config, Dataset};
use flowmatch::gpu::{counter, GpuSampler, GpuTrainer};
use flowmatch::targets::sample_dataset;
use flowmatch::TrainSpec;
use std::sync::Mutex;

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn small_config() -> Config {
    Config { width: 16, depth: 2, batch: 64, seed: 5, ..Config::default() }
}

#[test]
fn restore_continues_bit_identically() {
    let _g = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    pollster::block_on(async {
        let ctx = gpu().await;
        let c = small_config();
        let data = sample_dataset(Dataset::Moons, 2048, 5);
        let mut t = GpuTrainer::new(&ctx, TrainSpec::from_config(&c), &data).unwrap();
        t.train(30);
        let snap = t.snapshot().await.unwrap();
        assert_eq!(snap.step, 30);
        assert!(snap.is_good());
        assert!(snap.moments.iter().any(|&m| m != 0.0), "Adam moments were captured");
        t.train(20);
        let first = t.read_params().await.unwrap();
        let first_losses = t.status(20).await.unwrap().losses;
        t.restore(&snap).unwrap();
        assert_eq!(t.step(), 30);
        assert_eq!(t.read_params().await.unwrap(), snap.params);
        t.train(20);
        let second = t.read_params().await.unwrap();
        let second_losses = t.status(20).await.unwrap().losses;
        assert_eq!(first_losses, second_losses, "the same 20 steps give the same losses after a restore");
        let same = first.iter().zip(&second).all(|(a, b)| a.to_bits() == b.to_bits());
        assert!(same, "parameters after restore + 20 steps differ from the original run");
        // A snapshot of another shape is refused and changes nothing.
        let mut other = c.clone();
        other.width = 8;
        let mut t2 = GpuTrainer::new(&ctx, TrainSpec::from_config(&other), &data).unwrap();
        let before = t2.read_params().await.unwrap();
        let err = t2.restore(&snap).unwrap_err().to_string();
        assert!(err.contains("parameters and") && err.contains("but this model has"), "{err}");
        assert_eq!(t2.read_params().await.unwrap(), before);
        assert_eq!(t2.step(), 0);
    });
}

#[test]
fn divergence_is_flagged_and_a_good_snapshot_undoes_it() {
    let _g = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    pollster::block_on(async {
        let ctx = gpu().await;
        let c = small_config();
        let data = sample_dataset(Dataset::Moons, 2048, 5);
        let mut t = GpuTrainer::new(&ctx, TrainSpec::from_config(&c), &data).unwrap();
        t.train(10);
        let good = t.snapshot().await.unwrap();
        assert!(good.is_good());
        t.set_lr(1e30, c.schedule, c.schedule_steps());
        t.train(40);
        let status = t.status(40).await.unwrap();
        let bad_step = status.first_bad_step.expect("lr 1e30 must produce a non-finite loss or parameter");
        assert!(bad_step >= 10, "the flag names a step after the good snapshot ({bad_step})");
        let bad = t.snapshot().await.unwrap();
        assert!(!bad.is_good(), "a snapshot after the divergence is not good");
        t.set_lr(c.lr, c.schedule, c.schedule_steps());
        t.restore(&good).unwrap();
        t.train(20);
        let after = t.status(20).await.unwrap();
        assert_eq!(after.first_bad_step, None, "restoring clears the flag and training is finite again");
        assert!(after.losses.iter().all(|(_, l)| l.is_finite()));
        assert!(t.read_params().await.unwrap().iter().all(|p| p.is_finite()));
    });
}

#[test]
fn two_hundred_reconfigurations_free_what_they_replace() {
    let _g = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    pollster::block_on(async {
        let ctx = gpu().await;
        let start = counter::live_buffers();
        let created0 = counter::buffers_created();
        let datasets = [Dataset::Moons, Dataset::Circles, Dataset::Checkerboard];
        let mut held: Option<(GpuTrainer, GpuSampler, GpuSampler)> = None;
        let mut peak = 0;
        for i in 0..200u32 {
            let mut c = small_config();
            c.width = [8, 16, 24][(i % 3) as usize];
            c.batch = [32, 64][(i % 2) as usize];
            c.particles = [100, 300, 200, 50][(i % 4) as usize];
            c.dataset = datasets[(i % 3) as usize];
            let data = sample_dataset(c.dataset, 1024, i);
            let t = GpuTrainer::new(&ctx, TrainSpec::from_config(&c), &data).unwrap();
            let s = GpuSampler::new(&ctx, &t.spec.shape, &t.params, c.particles, 4).unwrap();
            let f = GpuSampler::new(&ctx, &t.spec.shape, &t.params, 16, 0).unwrap();
            let mut t = t;
            t.train(1);
            held = Some((t, s, f)); // the previous trio is dropped here, as a reconfiguration does
            if i % 50 == 0 {
                let (t, _, _) = held.as_ref().unwrap();
                t.status(1).await.unwrap();
            }
            peak = peak.max(counter::live_buffers() - start);
        }
        let per_model = counter::live_buffers() - start;
        assert!(per_model > 0 && per_model == peak, "one model's buffers live at a time ({per_model} now, peak {peak})");
        drop(held);
        ctx.wait_idle();
        assert_eq!(counter::live_buffers(), start, "every buffer of the 200 models was freed");
        assert!(counter::buffers_created() - created0 >= 200 * per_model as u64);
    });
}

#[test]
fn a_model_too_big_for_the_device_is_refused_with_the_largest_batch_that_fits() {
    let _g = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    pollster::block_on(async {
        let mut ctx = gpu().await;
        // Pretend the device allows 4 MiB per buffer: width 256 depth 4 at batch 4096 needs
        // 4·4096·(7 + 2·256·4) B ≈ 32 MiB of activations.
        ctx.limits.max_storage_buffer_binding_size = 4 << 20;
        let mut c = small_config();
        c.width = 256;
        c.depth = 4;
        c.batch = 4096;
        let data = sample_dataset(Dataset::Moons, 1024, 1);
        let start = counter::live_buffers();
        let err = GpuTrainer::new(&ctx, TrainSpec::from_config(&c), &data).err().expect("must not fit").to_string();
        assert!(err.contains("activations buffer needs"), "{err}");
        // 4·B·(7 + 2048) ≤ 4 MiB → B ≤ 510.
        assert!(err.contains("the largest batch that fits at width 256 is 510"), "{err}");
        assert_eq!(counter::live_buffers(), start, "nothing was allocated");
    });
}

/// The OT coupling's two 16 KiB side buffers exist only in trainers with coupling = ot: an
/// independent-coupling trainer allocates two buffers fewer (and 32 KiB less).
#[test]
fn ot_side_buffers_only_with_ot_coupling() {
    let _g = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    pollster::block_on(async {
        let ctx = gpu().await;
        let data = sample_dataset(Dataset::Moons, 1024, 5);
        let count = |coupling: flowmatch::config::Coupling| {
            let start = counter::live_buffers();
            let t = GpuTrainer::new(&ctx, TrainSpec::from_config(&Config { coupling, ..small_config() }), &data).unwrap();
            (counter::live_buffers() - start, t.allocated_bytes())
        };
        let (independent, independent_bytes) = count(flowmatch::config::Coupling::Independent);
        let (ot, ot_bytes) = count(flowmatch::config::Coupling::Ot);
        assert_eq!(ot, independent + 2, "OT trainer {ot} buffers, independent {independent}");
        assert_eq!(ot_bytes, independent_bytes + 2 * flowmatch::gpu::trainer::OT_SIDE_BYTES);
    });
}
