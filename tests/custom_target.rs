//! Replacing the target while training (custom targets on the page): `GpuTrainer::set_target`
//! keeps the weights, Adam moments and step count, and the GPU run keeps tracking the CPU
//! reference that switches its data at the same step, both when the new points fit the existing
//! buffer (written in place) and when they need a larger one (buffer and bind group replaced).
//! Runs natively and in headless Chromium's WebGPU (wasm-pack test --test custom_target).

mod common;
use common::gpu;

use flowmatch::config::{Config, Dataset};
use flowmatch::cpu::CpuTrainer;
use flowmatch::gpu::GpuTrainer;
use flowmatch::targets::{sample_dataset, CustomKind, CustomTarget};
use flowmatch::TrainSpec;

#[cfg(target_arch = "wasm32")]
wasm_bindgen_test::wasm_bindgen_test_configure!(run_in_browser);

/// Tolerance as in tests/training.rs: the same batches (bit-identical PRNG) give losses within
/// 1e-3 relative (f32 summation order only); a batch drawn from the wrong target set, or a
/// stale `n_points`, changes the loss by percent or more.
fn assert_tracks(what: &str, gpu: &[(u32, f32)], cpu: &[f32]) {
    assert_eq!(gpu.len(), cpu.len(), "{what}: step counts differ");
    for ((step, g), c) in gpu.iter().zip(cpu) {
        let rel = (g - c).abs() / c.abs();
        assert!(rel <= 1e-3, "{what}, step {step}: gpu loss {g} vs cpu {c} (relative {rel:e})");
    }
}

async fn swap_targets() {
    {
        let ctx = gpu().await;
        let config = Config { width: 32, batch: 100, seed: 3, ..Default::default() };
        let spec = TrainSpec::from_config(&config);
        let moons = sample_dataset(Dataset::Moons, 4096, 3);
        let mut cpu = CpuTrainer::new(spec, moons.clone());
        let mut gpu = GpuTrainer::new(&ctx, spec, &moons).unwrap();
        let k = 20;
        let mut cpu_losses: Vec<f32> = (0..k).map(|_| cpu.step()).collect();
        gpu.train(k);

        // 1. Fewer points: written into the existing buffer; nothing is allocated.
        let bytes = gpu.allocated_bytes();
        let before = gpu.read_params().await.unwrap();
        let small = CustomTarget::from_csv(
            &sample_dataset(Dataset::EightGaussians, 1000, 9).iter().map(|p| format!("{},{}\n", p[0], p[1])).collect::<String>(),
            "8g.csv",
            1,
        )
        .unwrap();
        gpu.set_target(&small.points).unwrap();
        assert_eq!(gpu.allocated_bytes(), bytes, "an in-place target write must not allocate");
        assert_eq!(gpu.step(), k, "the step count is kept");
        assert_eq!(gpu.target_len(), 1000);
        assert_eq!(gpu.read_params().await.unwrap(), before, "the weights are kept");
        let on_gpu = gpu.read(&gpu.data, 2 * 1000).await.unwrap();
        assert_eq!(on_gpu, small.points.iter().flat_map(|p| [p[0], p[1]]).collect::<Vec<_>>());
        cpu.set_target(small.points.clone());
        cpu_losses.extend((0..k).map(|_| cpu.step()));
        gpu.train(k);

        // 2. More points than the buffer holds: a new buffer and batch bind group.
        let text: Vec<u8> = (0..64 * 16).flat_map(|i| if (i % 64) / 8 % 2 == 0 { [0, 0, 0, 255] } else { [255; 4] }).collect();
        let big = CustomTarget::from_rgba(CustomKind::Text, "stripes", &text, 64, 16, false, 2).unwrap();
        assert!(big.points.len() > 4096);
        gpu.set_target(&big.points).unwrap();
        assert_eq!(gpu.allocated_bytes(), bytes - 4096 * 8 + big.points.len() as u64 * 8);
        assert_eq!(gpu.target_len() as usize, big.points.len());
        cpu.set_target(big.points.clone());
        cpu_losses.extend((0..k).map(|_| cpu.step()));
        gpu.train(k);

        let status = gpu.status(3 * k).await.unwrap();
        assert_eq!(status.first_bad_step, None);
        assert_eq!(status.step, 3 * k);
        assert_tracks("three targets in one run", &status.losses, &cpu_losses);
        // (Tracking the CPU, which trains on the new points, is what shows the GPU used them: the
        // loss levels of the three targets differ by far more than the tolerance; logged here.)
        #[cfg(not(target_arch = "wasm32"))]
        let mean = |a: &[f32]| a.iter().sum::<f32>() / a.len() as f32;
        #[cfg(not(target_arch = "wasm32"))]
        eprintln!(
            "mean loss per phase: moons {:.4}, 8gaussians {:.4}, stripes {:.4}",
            mean(&cpu_losses[..k as usize]),
            mean(&cpu_losses[k as usize..2 * k as usize]),
            mean(&cpu_losses[2 * k as usize..])
        );
        // Empty input is refused and changes nothing.
        assert!(gpu.set_target(&[]).is_err());
        assert_eq!(gpu.target_len() as usize, big.points.len());
    }
}

gpu_test!(replacing_the_target_keeps_the_model_and_tracks_the_cpu_reference, swap_targets());
