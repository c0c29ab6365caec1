//! Long GPU integrations split into chunks (`budget::ChunkPlan`; issue 15): the fixed-step ODE
//! with trajectories, the adaptive Dormand–Prince solver and the density grid give, in any split,
//! bit for bit what one chunk gives (each chunk pauses and resumes the same f32 operations, the
//! adaptive solver's (t, h, k1, counters) kept as their bits), and still match their CPU twins.
//! The same holds for a guided class-conditional network through the SDE and MeanFlow samplers.
//! Splits use item ranges that are not multiples of the workgroup size. Runs natively and, through
//! `wasm-pack test`, in headless Chromium.

mod common;
use common::{assert_close, gpu};

use flowmatch::budget::ChunkPlan;
use flowmatch::config::{Dataset, Path, Solver};
use flowmatch::cpu::adaptive::{self, AdaptiveOptions};
use flowmatch::cpu::sde::SdeSpec;
use flowmatch::cpu::{density, ode};
use flowmatch::gpu::{GpuDensity, GpuSampler, GpuTrainer, TrainerOptions};
use flowmatch::model::{InputLayout, ModelShape, Query};
use flowmatch::targets::{sample_dataset, sample_dataset_labeled};
use flowmatch::TrainSpec;

#[cfg(target_arch = "wasm32")]
wasm_bindgen_test::wasm_bindgen_test_configure!(run_in_browser);

fn spec() -> TrainSpec {
    common::small_spec()
}

/// Chunk sizes only (the sampler and density fit the totals).
fn sized(items_per_chunk: u32, steps_per_chunk: u32) -> ChunkPlan {
    ChunkPlan { items: 1, steps: 1, items_per_chunk, steps_per_chunk }
}

fn bits(v: &[[f32; 2]]) -> Vec<u32> {
    v.iter().flat_map(|p| [p[0].to_bits(), p[1].to_bits()]).collect()
}

/// A briefly trained model (a curved field) and its parameters.
async fn trained() -> (flowmatch::gpu::GpuContext, GpuTrainer, Vec<f32>) {
    let ctx = gpu().await;
    let s = spec();
    let mut t = GpuTrainer::new(&ctx, s, &sample_dataset(Dataset::Moons, 500, 1)).unwrap();
    t.train(30);
    let params = t.read(&t.params, s.shape.param_len()).await.unwrap();
    (ctx, t, params)
}

/// RK4 over 7 recorded steps of 150 particles: whole, by 2 steps of all particles, and by one
/// step of 37 particles, all equal; and equal to the CPU twin to rounding.
async fn fixed_step_chunks_equal_one_dispatch() {
    let (ctx, t, params) = trained().await;
    let (n, steps) = (150u32, 7u32);
    let mut sampler = GpuSampler::new(&ctx, &spec().shape, &t.params, n, steps).unwrap();
    let mut results = Vec::new();
    for plan in [sized(u32::MAX, u32::MAX), sized(u32::MAX, 2), sized(37, 1)] {
        sampler.reset(5);
        let mut job = sampler.begin(Solver::Rk4, 0.0, 1.0, steps, plan);
        let chunks = job.plan().len();
        sampler.run(&mut job).await.unwrap();
        assert_eq!(job.submitted(), chunks);
        results.push((sampler.read_trajectories().await.unwrap(), chunks));
    }
    assert_eq!(results.iter().map(|r| r.1).collect::<Vec<_>>(), [1, 4, 5 * 7]);
    for (traj, chunks) in &results[1..] {
        assert_eq!(bits(traj), bits(&results[0].0), "{chunks} chunks differ from one");
    }
    let traj = &results[0].0;
    let mut want = traj[..n as usize].to_vec();
    ode::integrate(&spec().shape, &params, Solver::Rk4, &mut want, 0.0, 1.0, steps);
    assert_close("chunked rk4 vs CPU", &traj[steps as usize * n as usize..].concat(), &want.concat(), 1e-4, 1e-4);
}

/// dopri5 with frames and a budget that runs out for some particles: any split equals one
/// dispatch (particles, frames, evaluations per particle, unfinished count).
async fn adaptive_chunks_equal_one_dispatch() {
    let (ctx, t, params) = trained().await;
    let (n, frames) = (130u32, 6u32);
    let mut sampler = GpuSampler::new(&ctx, &spec().shape, &t.params, n, frames).unwrap();
    let opts = AdaptiveOptions::new(1e-5, 19).unwrap();
    let mut results = Vec::new();
    for plan in [sized(u32::MAX, u32::MAX), sized(u32::MAX, 1), sized(50, 2)] {
        sampler.reset(8);
        let mut job = sampler.begin_adaptive(0.0, 1.0, &opts, frames, plan);
        while sampler.advance(&mut job) {}
        let summary = sampler.read_adaptive_summary().await.unwrap();
        results.push((sampler.read_trajectories().await.unwrap(), summary, job.plan().len()));
    }
    // A budget of 19 evaluations is 3 step attempts after the first evaluation (at this
    // tolerance most particles need 3, some 4): 3 chunks of one, or 2 step ranges × 3 particle
    // ranges.
    assert_eq!(results.iter().map(|r| r.2).collect::<Vec<_>>(), [1, 3, 2 * 3]);
    let (traj0, summary0, _) = &results[0];
    assert!(summary0.unfinished > 0 && summary0.unfinished < n as usize, "some particles run out of budget: {}", summary0.unfinished);
    for (traj, summary, chunks) in &results[1..] {
        assert_eq!(bits(traj), bits(traj0), "{chunks} chunks: trajectories differ from one dispatch");
        assert_eq!(summary, summary0, "{chunks} chunks: evaluations differ from one dispatch");
    }
    let mut want = traj0[..n as usize].to_vec();
    let (stats, want_traj) = adaptive::integrate(&spec().shape, &params, &mut want, 0.0, 1.0, &opts, frames);
    assert_eq!(summary0.nfe, stats.iter().map(|s| s.nfe).collect::<Vec<_>>());
    // Frames at fixed times are interpolated inside accepted steps, so they match the CPU to
    // rounding. Where a particle's last accepted step ended (its last frame, and whether that was
    // t = 1 within the budget) moves with the step sizes: at tol 1e-5 these come from an error
    // estimate that cancels near-equal f32 terms, and f32 rounding moves them by ~1e-3 (measured:
    // with the budget raised to 25, GPU and CPU reach t = 1 at the same point to 1e-6). So the
    // last frame is compared only by the splits above, bit for bit.
    let (rows, nu) = (frames as usize, n as usize);
    let pick = |t: &[[f32; 2]]| t[nu..rows * nu].to_vec();
    assert_close("chunked dopri5 frames vs CPU", &pick(traj0).concat(), &pick(&want_traj).concat(), 1e-4, 1e-4);
}

/// With a budget far above what the tolerance needs, `run` stops after the round in which the
/// last particle finished instead of submitting every chunk of the budget.
async fn adaptive_run_stops_when_every_particle_finished() {
    let (ctx, t, _) = trained().await;
    let n = 100u32;
    let mut sampler = GpuSampler::new(&ctx, &spec().shape, &t.params, n, 0).unwrap();
    sampler.set_tol(1e-3).unwrap();
    sampler.reset(2);
    let mut job = sampler.begin(Solver::Dopri5, 0.0, 1.0, 6001, sized(u32::MAX, 2));
    assert_eq!(job.plan().len(), 500);
    sampler.run(&mut job).await.unwrap();
    let s = sampler.read_adaptive_summary().await.unwrap();
    assert_eq!(s.unfinished, 0);
    let rounds_needed = (s.nfe.iter().max().unwrap() - 1).div_ceil(12) as usize;
    assert!(job.is_done() && job.submitted() <= rounds_needed + 1, "{} chunks submitted, {rounds_needed} rounds needed", job.submitted());
}

/// The density grid: whole, by 3 steps of every point, by one step of 41 points: equal; and
/// equal to the CPU twin to rounding.
async fn density_chunks_equal_one_dispatch() {
    let (ctx, t, params) = trained().await;
    let points: Vec<[f32; 2]> = (0..200).map(|i| [(i % 20) as f32 * 0.3 - 3.0, (i / 20) as f32 * 0.6 - 3.0]).collect();
    let d = GpuDensity::new(&ctx, &spec().shape, &t.params, 256).unwrap();
    let mut results = Vec::new();
    for plan in [sized(u32::MAX, u32::MAX), sized(u32::MAX, 3), sized(41, 1)] {
        results.push(d.log_density_chunked(&points, Solver::Midpoint, 8, plan).await.unwrap());
    }
    let to_bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    for r in &results[1..] {
        assert_eq!(to_bits(r), to_bits(&results[0]));
    }
    let want: Vec<f32> = points.iter().map(|&p| density::log_density(&spec().shape, &params, Solver::Midpoint, p, 8)).collect();
    assert_close("chunked density vs CPU", &results[0], &want, 1e-3, 1e-4);
}

/// A class-conditional MeanFlow network (moons' 2 classes) at its initial weights, queried for
/// class 1 with guidance 2.5 (two evaluations per field evaluation): the fixed-step ODE, the SDE
/// (its noise is keyed by particle index and step, so the chunks draw the same), MeanFlow's jumps,
/// dopri5 and the density each give in chunks bit for bit what one dispatch gives.
async fn guided_chunks_equal_one_dispatch() {
    let ctx = gpu().await;
    let base = spec();
    let s = TrainSpec { shape: ModelShape { inputs: InputLayout { n_classes: 2, mean_flow: true }, ..base.shape }, label_dropout: 0.2, ..base };
    let (data, labels) = sample_dataset_labeled(Dataset::Moons, 300, 1);
    let t = GpuTrainer::with_labels(&ctx, s, &data, &labels, &[], TrainerOptions::default()).unwrap();
    let query = Query { class: Some(1), guidance: 2.5 };
    assert!(query.guided(&s.shape.inputs));
    let (n, steps) = (130u32, 5u32);
    let mut sampler = GpuSampler::new(&ctx, &s.shape, &t.params, n, steps).unwrap();
    sampler.set_query(query);
    let sde = SdeSpec { path: Path::Linear, sigma_min: 0.0, noise: 0.8 };
    let plans = [sized(u32::MAX, u32::MAX), sized(u32::MAX, 2), sized(37, 1)];
    for what in ["ode", "sde", "meanflow", "dopri5"] {
        let mut results = Vec::new();
        for plan in plans {
            sampler.reset(6);
            let mut job = match what {
                "ode" => sampler.begin(Solver::Rk4, 0.0, 1.0, steps, plan),
                "sde" => sampler.begin_sde(sde, 0.0, 1.0, steps, plan),
                "meanflow" => sampler.begin_mean_flow(0.0, 1.0, steps, plan),
                _ => sampler.begin(Solver::Dopri5, 0.0, 1.0, 25, plan),
            };
            sampler.run(&mut job).await.unwrap();
            results.push((sampler.read_particles().await.unwrap(), sampler.read_trajectories().await.unwrap(), job.submitted()));
        }
        assert!(results[2].2 > 3, "{what}: the last split has several chunks");
        for (particles, traj, chunks) in &results[1..] {
            assert_eq!(bits(particles), bits(&results[0].0), "{what}: {chunks} chunks differ from one dispatch");
            assert_eq!(bits(traj), bits(&results[0].1), "{what}: {chunks} chunks: trajectories differ");
        }
    }
    // The guided density (the divergence of the mixed field), whole and by one step of 41 points.
    let d = GpuDensity::new(&ctx, &s.shape, &t.params, 256).unwrap();
    d.set_query(query);
    let points: Vec<[f32; 2]> = (0..150).map(|i| [(i % 15) as f32 * 0.4 - 3.0, (i / 15) as f32 * 0.6 - 3.0]).collect();
    let whole = d.log_density_chunked(&points, Solver::Midpoint, 6, sized(u32::MAX, u32::MAX)).await.unwrap();
    let split = d.log_density_chunked(&points, Solver::Midpoint, 6, sized(41, 1)).await.unwrap();
    let to_bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert_eq!(to_bits(&split), to_bits(&whole), "guided density: chunks differ from one dispatch");
}

gpu_test!(guided_sde_meanflow_chunks_equal_one_dispatch, guided_chunks_equal_one_dispatch());
gpu_test!(fixed_step_chunks_equal_one_dispatch_and_the_cpu, fixed_step_chunks_equal_one_dispatch());
gpu_test!(adaptive_chunks_equal_one_dispatch_and_the_cpu, adaptive_chunks_equal_one_dispatch());
gpu_test!(adaptive_run_stops_early, adaptive_run_stops_when_every_particle_finished());
gpu_test!(density_chunks_equal_one_dispatch_and_the_cpu, density_chunks_equal_one_dispatch());
