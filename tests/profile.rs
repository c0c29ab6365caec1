//! The kernel profiler (`flowmatch bench --profile`, `gpu::profile`): timing every dispatch must
//! not change the training it times, must see every dispatch of every step, and must report
//! non-negative times whose matmul share is part of the total. Native only (timestamp queries
//! inside passes are not exposed by browsers); runs on lavapipe, which supports them.

#![cfg(not(target_arch = "wasm32"))]

use flowmatch::config::Config;
use flowmatch::gpu::profile::{self, MATMUL_KERNELS};
use flowmatch::gpu::{GpuContext, GpuTrainer, KernelVariant, TrainerOptions};
use flowmatch::targets::{sample_dataset, DATASET_POINTS};
use flowmatch::TrainSpec;

fn spec() -> TrainSpec {
    let mut c = Config::default();
    c.width = 24;
    c.depth = 2;
    c.batch = 40;
    TrainSpec::from_config(&c)
}

#[test]
fn profiled_steps_equal_plain_steps_and_cover_every_dispatch() {
    pollster::block_on(async {
        let ctx = GpuContext::with_features(profile::features())
            .await
            .unwrap_or_else(|e| panic!("no GPU adapter ({e}); install mesa-vulkan-drivers. Tests never skip."));
        assert!(profile::supported(&ctx), "the adapter {} lacks timestamp queries inside passes", ctx.adapter);
        let spec = spec();
        let data = sample_dataset(flowmatch::config::Dataset::Moons, DATASET_POINTS, spec.seed);
        for variant in [KernelVariant::Software, KernelVariant::Tiled] {
            let options = TrainerOptions { variant: Some(variant), splits: None, forward_rows: None, backward_rows: None };
            let mut plain = GpuTrainer::with_options(&ctx, spec, &data, &[], options).unwrap();
            let mut timed = GpuTrainer::with_options(&ctx, spec, &data, &[], options).unwrap();
            let steps = 5;
            plain.train(steps);
            let p = profile::profile(&mut timed, steps).await.unwrap();
            assert_eq!(timed.step(), steps);
            let (a, b) = (plain.read_params().await.unwrap(), timed.read_params().await.unwrap());
            assert!(a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits()), "{variant:?}: profiling changed the training");

            assert_eq!(p.steps, steps);
            let dispatches: u32 = p.kernels.iter().map(|k| k.1).sum();
            assert_eq!(dispatches, steps * timed.dispatches_per_step(), "{variant:?}: {:?}", p.kernels);
            // Issue 7's bound, counted from the dispatches actually encoded.
            assert!(dispatches <= steps * (2 * spec.shape.depth + 4), "{variant:?}: {dispatches} dispatches in {steps} steps");
            assert!(p.kernels.iter().any(|k| k.0 == "adam") && p.kernels.iter().any(|k| k.0 == "batch"));
            assert!(p.kernels.iter().all(|k| k.2 >= 0.0 && k.2.is_finite()), "{:?}", p.kernels);
            let matmul = p.matmul_ns();
            assert!(matmul > 0.0 && matmul <= p.step_ns(), "{variant:?}: matmul {matmul} ns of step {} ns", p.step_ns());
            assert!(p.kernels.iter().any(|k| MATMUL_KERNELS.contains(&k.0)));
        }
    });
}
