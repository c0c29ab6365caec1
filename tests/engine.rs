//! One suite, both engines: everything the page does goes through `engine::Engine`, so the WebGPU
//! engine (lavapipe here) and the CPU engine must behave the same way — training and its status,
//! reset replaying a run, snapshots restoring bit-identically, custom targets, configuration
//! changes (live / resample / retrain), the shown flow and its samples, sample quality, the solver
//! comparison and the density. Then both engines get the same weights and must agree on what they
//! measure: the solver comparison's distances and log p on a grid.
#![cfg(not(target_arch = "wasm32"))]

mod common;

use flowmatch::config::{Config, Effect, Solver};
use flowmatch::engine::painter::CountingPainter;
use flowmatch::engine::{jobs::now_ms, Build, CpuEngine, Engine, FaultKind, FrameInput, GpuEngine, OffscreenPresenter};
use flowmatch::render::{Layers, Viewport};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

fn small() -> Config {
    Config { width: 16, depth: 2, batch: 64, particles: 64, nfe: 8, seed: 3, ..Config::default() }
}

fn frame_input(layers: Layers) -> FrameInput {
    FrameInput {
        now: now_ms() / 1000.0,
        t: 1.0,
        wrapped: false,
        layers,
        viewport: Viewport { width: 64, height: 64, extent: 5.0 },
        point_px: 2.0,
        work_ms: 50.0,
    }
}

/// Runs frames until `fut` resolves (CPU jobs advance in frames; GPU reads resolve on polls).
fn drive<T>(e: &mut dyn Engine, mut fut: Pin<Box<dyn Future<Output = Result<T, String>>>>) -> T {
    let mut cx = Context::from_waker(Waker::noop());
    let t0 = now_ms();
    loop {
        if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
            return v.unwrap_or_else(|e| panic!("engine future failed: {e}"));
        }
        e.frame(&frame_input(Layers::default()));
        assert!(now_ms() - t0 < 600_000.0, "an engine future never resolved");
    }
}

/// Waits for every queued step to be confirmed by the completion signal.
fn settle(e: &dyn Engine) {
    let t0 = now_ms();
    while e.done() < e.step() {
        assert!(now_ms() - t0 < 120_000.0, "completion stuck at {} of {}", e.done(), e.step());
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
}

fn losses(e: &mut dyn Engine, since: u32) -> Vec<(u32, f32)> {
    let fut = e.status(since);
    drive(e, fut).losses
}

/// The suite every engine passes.
fn suite(name: &str, e: &mut dyn Engine, c: &Config) {
    let info = e.info();
    eprintln!("{name}: {} on {} ({})", info.backend, info.adapter, info.present);

    // Training, the completion signal and the status read.
    e.train(12);
    assert_eq!(e.step(), 12);
    settle(e);
    let fut = e.status(0);
    let st = drive(e, fut);
    assert_eq!(st.step, 12);
    assert_eq!(st.losses.iter().map(|l| l.0).collect::<Vec<_>>(), (0..12).collect::<Vec<_>>(), "{name}: one loss per step");
    assert!(st.losses.iter().all(|l| l.1.is_finite() && l.1 > 0.0), "{name}: {:?}", st.losses);
    assert_eq!(st.first_bad_step, None);
    assert_eq!(losses(e, 8).len(), 4, "{name}: status(since) returns the steps from `since` on");

    // Reset replays the run; a snapshot restores it bit for bit.
    e.reset(c.seed);
    assert_eq!(e.step(), 0);
    e.train(6);
    let first = losses(e, 0);
    e.reset(c.seed);
    e.train(3);
    let fut = e.snapshot();
    let snap = drive(e, fut);
    assert_eq!(snap.step, 3);
    assert!(snap.is_good());
    e.train(3);
    assert_eq!(losses(e, 0), first, "{name}: reset did not replay the run");
    let fut = e.params();
    let after6 = drive(e, fut);
    e.restore(&snap).unwrap();
    assert_eq!(e.step(), 3);
    e.train(3);
    let fut = e.params();
    let again = drive(e, fut);
    assert!(after6.iter().zip(&again).all(|(a, b)| a.to_bits() == b.to_bits()), "{name}: restore + 3 steps differs");
    assert_eq!(losses(e, 3), first[3..].to_vec(), "{name}: the losses after a restore differ");

    // The shown flow and its samples.
    let fut = e.samples();
    let mut cx = Context::from_waker(Waker::noop());
    if e.shown_step().is_none() {
        let mut fut = fut;
        assert!(matches!(fut.as_mut().poll(&mut cx), Poll::Ready(Err(_))), "{name}: samples before the first integration");
    }
    e.frame(&frame_input(Layers { particles: true, trails: true, arrows: true, target: true, heatmap: true, exact: true, exact_flow: true }));
    assert_eq!(e.shown_step(), Some(6), "{name}: the flow was not integrated with the current weights");
    assert_eq!(e.ode_steps(), c.nfe);
    assert!(e.frames_presented() >= 1.0);
    let fut = e.samples();
    let samples = drive(e, fut);
    assert_eq!(samples.len(), c.particles as usize);
    assert!(samples.iter().all(|p| p[0].is_finite() && p[1].is_finite()));

    // A custom target keeps the run; an empty one is refused.
    e.set_target(&[[1.0, 1.0], [2.0, 0.5], [-1.0, 0.0]]).unwrap();
    assert_eq!(e.step(), 6);
    assert!(e.set_target(&[]).unwrap_err().contains("no points"));
    e.train(2);
    assert!(losses(e, 6).iter().all(|l| l.1.is_finite()));

    // Live, resample and retrain changes.
    let mut next = c.clone();
    next.lr = 1e-3;
    e.apply(&next, Effect::Live).unwrap();
    assert_eq!(e.step(), 8);
    next.particles = 40;
    next.solver = Solver::Midpoint;
    e.apply(&next, Effect::Resample).unwrap();
    assert_eq!((e.step(), e.shown_step()), (8, None), "{name}: resample keeps the model and shows new particles");
    e.frame(&frame_input(Layers::default()));
    let fut = e.samples();
    assert_eq!(drive(e, fut).len(), 40);
    next.width = 8;
    e.apply(&next, Effect::Retrain).unwrap();
    assert_eq!(e.step(), 0, "{name}: a new width is a new model");
    let fut = e.params();
    assert_eq!(drive(e, fut).len(), flowmatch::TrainSpec::from_config(&next).shape.param_len());
    assert!(e.load(&[0.0; 3], 5).is_err(), "{name}: parameters of another shape are refused");
    next.coupling = flowmatch::config::Coupling::Ot;
    next.batch = 4096;
    assert!(e.apply(&next, Effect::Retrain).is_err(), "{name}: an impossible model is refused");
    assert_eq!(e.step(), 0);

    // Measurements: one reading and the comparison, and log p.
    e.train(10);
    let fut = e.sample_quality(Solver::Euler, 4, 1e-3);
    let q = drive(e, fut);
    assert!(q.sw2.is_finite() && q.sw2 > 0.0 && q.nfe == 4.0, "{name}: {q:?}");
    let fut = e.flow_stats(Solver::Euler, 4, false);
    let st = drive(e, fut);
    assert!(st.kinetic_energy.is_finite() && st.kinetic_energy > 0.0 && st.straightness.is_finite() && st.w2_squared.is_nan(), "{name}: {st:?}");
    let fut = e.log_density(vec![[0.0, 0.0], [1.0, -1.0], [3.0, 3.0]], Solver::Midpoint, 8);
    let lp = drive(e, fut);
    assert!(lp.len() == 3 && lp.iter().all(|v| v.is_finite()), "{name}: {lp:?}");
}

fn gpu_engine(ctx: &flowmatch::gpu::GpuContext, c: &Config) -> GpuEngine {
    GpuEngine::new(ctx.clone(), c, Box::new(OffscreenPresenter::new(ctx, 64, 64))).unwrap()
}

#[test]
fn both_engines_pass_one_suite_and_agree() {
    let ctx = pollster::block_on(common::gpu());
    let c = small();
    let t0 = now_ms();
    let mut gpu = gpu_engine(&ctx, &c);
    eprintln!("[{:.1}s] gpu engine built", (now_ms() - t0) / 1e3);
    let mut cpu = CpuEngine::new(&c, Box::new(CountingPainter::default())).unwrap();
    suite("gpu", &mut gpu, &c);
    eprintln!("[{:.1}s] gpu suite", (now_ms() - t0) / 1e3);
    suite("cpu", &mut cpu, &c);
    eprintln!("[{:.1}s] cpu suite", (now_ms() - t0) / 1e3);

    // The same weights in both: the comparison and log p agree.
    let mut gpu = gpu_engine(&ctx, &c);
    let mut cpu = CpuEngine::new(&c, Box::new(CountingPainter::default())).unwrap();
    gpu.train(40);
    let fut = gpu.params();
    let params = drive(&mut gpu, fut);
    cpu.load(&params, 40).unwrap();
    gpu.load(&params, 40).unwrap();
    // The comparison's plan on the CPU engine (the GPU's runs in tests/e2e/test_quality.py), and
    // three of its readings on both engines.
    let fut = cpu.compare_solvers();
    let k = drive(&mut cpu, fut);
    eprintln!("[{:.1}s] cpu comparison", (now_ms() - t0) / 1e3);
    assert_eq!(k.len(), 20);
    let plan = flowmatch::engine::quality::comparison_plan();
    assert_eq!(k.iter().map(|p| (p.solver, p.setting)).collect::<Vec<_>>(), plan.iter().map(|p| (p.solver, p.setting())).collect::<Vec<_>>());
    assert!(k.iter().all(|p| p.sw2.is_finite() && p.nfe >= 1.0), "{k:?}");
    for p in [plan[0], plan[12], plan[17]] {
        let fut = gpu.sample_quality(p.solver, p.steps, p.tol);
        let a = drive(&mut gpu, fut);
        let b = k.iter().find(|q| (q.solver, q.setting) == (p.solver, p.setting())).unwrap();
        // Same particles, subsets and directions; the GPU's sin/cos and summation order move a
        // reading by well under 1% (tests/quality.rs), the integration agrees to rounding.
        assert!((a.sw2 - b.sw2).abs() <= 2e-3 + 1e-2 * b.sw2, "{p:?}: gpu {} cpu {}", a.sw2, b.sw2);
        if p.solver.is_adaptive() {
            assert!((a.nfe - b.nfe).abs() <= 0.02 * b.nfe, "{p:?}: gpu nfe {} cpu {}", a.nfe, b.nfe);
        } else {
            assert_eq!(a.nfe, b.nfe);
        }
    }
    eprintln!("[{:.1}s] gpu readings", (now_ms() - t0) / 1e3);
    let grid: Vec<[f32; 2]> = (0..49).map(|i| [(i % 7) as f32 - 3.0, (i / 7) as f32 - 3.0]).collect();
    let fut = gpu.log_density(grid.clone(), Solver::Midpoint, 8);
    let lg = drive(&mut gpu, fut);
    let fut = cpu.log_density(grid, Solver::Midpoint, 8);
    let lc = drive(&mut cpu, fut);
    common::assert_close("log p, GPU vs CPU engine (tests/likelihood.rs: kernel vs twin to 1e-4)", &lg, &lc, 1e-4, 1e-4);
    // Straightness readings of the same weights agree (same probe particles, measured step vs
    // its twin; tests/rectified.rs checks the kernels to the same precision), and hold the
    // identities of cpu::flow_stats: S = K - T >= 0 up to rounding, T >= the minibatch W2².
    for (solver, nfe, w2) in [(Solver::Rk4, 8, true), (Solver::Dopri5, 30, false)] {
        let fut = gpu.flow_stats(solver, nfe, w2);
        let a = drive(&mut gpu, fut);
        let fut = cpu.flow_stats(solver, nfe, w2);
        let b = drive(&mut cpu, fut);
        for (what, x, y) in [("K", a.kinetic_energy, b.kinetic_energy), ("T", a.transport_cost, b.transport_cost), ("S", a.straightness, b.straightness)] {
            assert!(x.is_finite() && (x - y).abs() <= 1e-4 + 1e-3 * y.abs(), "{solver} {what}: gpu {a:?} cpu {b:?}");
        }
        assert!(b.straightness > -1e-6 && (b.kinetic_energy - b.transport_cost - b.straightness).abs() < 1e-6 * b.kinetic_energy.max(1.0), "{b:?}");
        if w2 {
            assert!((a.w2_squared - b.w2_squared).abs() <= 1e-4 + 1e-3 * b.w2_squared && b.w2_squared <= b.transport_cost + 1e-6, "gpu {a:?} cpu {b:?}");
        } else {
            assert!(a.w2_squared.is_nan() && b.w2_squared.is_nan());
        }
    }
    eprintln!("[{:.1}s] straightness readings", (now_ms() - t0) / 1e3);
    // The field error against the exact field of the 32,768 training points: the same queries
    // on both engines (chunks of FIELD_ERROR_CHUNK keyed alike); f32 log-sum-exp on the GPU against
    // the f64 twin (tests/rectified.rs: the field itself to 1e-3 relative).
    let fut = gpu.field_error(1);
    let a = drive(&mut gpu, fut);
    let fut = cpu.field_error(1);
    let b = drive(&mut cpu, fut);
    eprintln!("[{:.1}s] field error: gpu {a:.5} cpu {b:.5}", (now_ms() - t0) / 1e3);
    assert!(a.is_finite() && b > 0.0 && (a - b).abs() <= 1e-2 * b, "field error: gpu {a} cpu {b}");
    let fut = cpu.field_error(2);
    assert_ne!(drive(&mut cpu, fut), b, "another reading draws other queries");
    eprintln!("comparison: {}", k.iter().map(|p| format!("{} {:.0}: {:.4}", p.solver, p.nfe, p.sw2)).collect::<Vec<_>>().join(", "));
}

/// Reflow through the engine interface (the page's Rectified-flow card): from the same weights
/// both engines make the pairs of `cpu::reflow::make_pairs` (the same noise points, carried by 8
/// midpoint steps), and with the pairs set a training step draws its batch from them on both
/// (the same loss, unlike a step on independent draws); `set_pairs(None)` goes back to those.
/// A one-step preview is the probe's draw moved by one Euler step on both.
#[test]
fn both_engines_reflow_alike() {
    use flowmatch::cpu::reflow;
    let ctx = pollster::block_on(common::gpu());
    let c = small();
    let mut gpu = gpu_engine(&ctx, &c);
    let mut cpu = CpuEngine::new(&c, Box::new(CountingPainter::default())).unwrap();
    gpu.train(30);
    let fut = gpu.params();
    let params = drive(&mut gpu, fut);
    let snap = {
        let fut = gpu.snapshot();
        drive(&mut gpu, fut)
    };
    cpu.restore(&snap).unwrap();
    let shape = flowmatch::TrainSpec::from_config(&c).shape;
    let (seed, n) = (reflow::noise_seed(c.seed, 0), 300);
    let want = reflow::make_pairs(&shape, &params, Solver::Midpoint, 8, c.seed, 0, n);
    let fut = gpu.integrate_fresh(seed, n, Solver::Midpoint, 8, c.tol);
    let a = drive(&mut gpu, fut);
    let fut = cpu.integrate_fresh(seed, n, Solver::Midpoint, 8, c.tol);
    let b = drive(&mut cpu, fut);
    assert_eq!(b, want, "the CPU engine's pairs are cpu::reflow::make_pairs'");
    // Box–Muller in WGSL (sin/cos to 2^-11) and the GPU's f32 sums: 4e-3 absolute, as tests/kernels.rs.
    for (k, (g, w)) in a.0.iter().chain(&a.1).zip(want.0.iter().chain(&want.1)).enumerate() {
        assert!((g[0] - w[0]).abs() <= 4e-3 && (g[1] - w[1]).abs() <= 4e-3, "point {k}: gpu {g:?} cpu {w:?}");
    }
    assert!(gpu.set_pairs(Some(&(vec![[0.0; 2]; 2], vec![[0.0; 2]; 3]))).is_err() && cpu.set_pairs(Some(&(vec![], vec![]))).is_err());

    // One step on the same pairs from the same state: the same loss on both engines.
    assert_eq!((gpu.schedule_start(), cpu.schedule_start()), (0, 0));
    gpu.set_pairs(Some(&want)).unwrap();
    cpu.set_pairs(Some(&want)).unwrap();
    let step = gpu.step();
    assert_eq!((step, cpu.step()), (30, 30));
    assert_eq!((gpu.schedule_start(), cpu.schedule_start()), (30, 30), "new pairs restart the learning-rate schedule on both engines");
    gpu.train(1);
    cpu.train(1);
    let (lg, lc) = (losses(&mut gpu, step)[0].1, losses(&mut cpu, step)[0].1);
    assert!((lg - lc).abs() <= 1e-3 * lc.abs(), "loss on pairs: gpu {lg} cpu {lc}");
    // The same step on independent draws is another batch.
    for e in [&mut gpu as &mut dyn Engine, &mut cpu] {
        e.restore(&snap).unwrap();
        e.set_pairs(None).unwrap();
    }
    gpu.train(1);
    cpu.train(1);
    let (ig, ic) = (losses(&mut gpu, step)[0].1, losses(&mut cpu, step)[0].1);
    assert!((ig - lg).abs() > 1e-3 * lg.abs() && (ic - lc).abs() > 1e-3 * lc.abs(), "pairs and independent draws gave the same loss: {lg} {ig} / {lc} {ic}");
    // The page's Train more after a run's end: the schedule starts over where the engine is.
    for e in [&mut gpu as &mut dyn Engine, &mut cpu] {
        assert_eq!(e.step(), 31);
        e.set_schedule_start(31);
        assert_eq!(e.schedule_start(), 31);
    }

    // The one-step preview: the probe's draw moved by one Euler step.
    let probe = flowmatch::engine::quality::PROBE_SEED;
    let fut = gpu.integrate_fresh(probe, 64, Solver::Euler, 1, c.tol);
    let (x0g, x1g) = drive(&mut gpu, fut);
    let fut = cpu.integrate_fresh(probe, 64, Solver::Euler, 1, c.tol);
    let (x0c, x1c) = drive(&mut cpu, fut);
    assert_eq!(x0c, flowmatch::cpu::ode::initial_particles(probe, 64));
    for (g, w) in x0g.iter().chain(&x1g).zip(x0c.iter().chain(&x1c)) {
        assert!((g[0] - w[0]).abs() <= 4e-3 && (g[1] - w[1]).abs() <= 4e-3, "gpu {g:?} cpu {w:?}");
    }
}

/// The exact flow layer (`exactflow`) on both engines: the shown particles' starting draw carried
/// by the exact field of 16 training points (σmin = 0, 100 Euler steps: tests/rectified.rs
/// measured 294–297 of 300 particles within 1e-3 of a point, all within 0.04) lands on the
/// points — memorisation — on both engines alike, spread over most of them; a new target and a
/// dataset source are handled.
#[test]
fn both_engines_show_the_exact_flow_memorising() {
    let ctx = pollster::block_on(common::gpu());
    let c = Config { points: 16, nfe: 100, particles: 64, ..small() };
    let layers = Layers { exact_flow: true, ..Layers::default() };
    let mut gpu = gpu_engine(&ctx, &c);
    let mut cpu = CpuEngine::new(&c, Box::new(CountingPainter::default())).unwrap();
    let mut results = Vec::new();
    for (name, e) in [("gpu", &mut gpu as &mut dyn Engine), ("cpu", &mut cpu)] {
        assert_eq!(e.exact_flow(), None, "{name}: nothing before the layer is shown");
        let t0 = now_ms();
        let state = loop {
            // Natively the completion callbacks run when the device is polled, which the page's
            // loop does every frame (`done`, `work_done`).
            e.work_done();
            e.frame(&frame_input(layers));
            let s = e.exact_flow().expect("the layer is on");
            assert_eq!((s.particles, s.points, s.steps, s.note.as_deref()), (64, 16, 100, None), "{name}: {s:?}");
            if s.landed.is_some() {
                break s;
            }
            assert!(now_ms() - t0 < 300_000.0, "{name}: the exact flow never finished: {s:?}");
        };
        let (landed, hit) = state.landed.unwrap();
        eprintln!("{name}: {landed} of 64 landed on {hit} of 16 points: {}", flowmatch::engine::exact_flow::caption(&state));
        assert!(landed >= 62 && hit >= 8, "{name}: {state:?}");
        results.push((landed, hit));
        // A new target forgets it; it is made again for the new points.
        e.set_target(&[[1.0, 1.0], [-1.0, -1.0]]).unwrap();
        assert_eq!(e.exact_flow(), None, "{name}: the exact flow of the old target is kept");
        let t0 = now_ms();
        while e.exact_flow().and_then(|s| s.landed).is_none() {
            e.work_done();
            e.frame(&frame_input(layers));
            assert!(now_ms() - t0 < 300_000.0, "{name}: the second exact flow never finished");
        }
        assert_eq!(e.exact_flow().unwrap().landed.unwrap().1, 2, "{name}: both of two far-apart points are hit");
    }
    // The same starting draw (to Box–Muller's rounding) and the same field: the same landings
    // but for a particle near the boundary between two points' basins.
    assert!(results[0].0.abs_diff(results[1].0) <= 2 && results[0].1.abs_diff(results[1].1) <= 2, "gpu {:?} cpu {:?}", results[0], results[1]);
    // A dataset source has no exact field: refused with a note on both.
    let d = Config { source: flowmatch::config::Source::Dataset(flowmatch::config::Dataset::Circles), ..c };
    for e in [&mut gpu_engine(&ctx, &d) as &mut dyn Engine, &mut CpuEngine::new(&d, Box::new(CountingPainter::default())).unwrap()] {
        e.frame(&frame_input(layers));
        let note = e.exact_flow().and_then(|s| s.note).unwrap_or_default();
        assert!(note.contains("Gaussian source"), "{note}");
    }
}

/// Work that runs over several frames keeps its own copies of what it reads: a quality probe
/// outlives the trainer's target buffer (a larger custom target replaces and destroys it), and a
/// density job outlives the engine (a retrain or the page's move to the CPU drops it). Before,
/// both dispatched over a destroyed buffer (Firefox: "Buffer with 'target.points' label has been
/// destroyed"; natively wgpu's validation panics).
#[test]
fn gpu_errors_reach_the_page_once_and_a_failed_build_keeps_the_model() {
    let ctx = pollster::block_on(common::gpu());
    // A real validation error in a checked build's scope is that build's fault.
    let (_, check) = ctx.checked(|| {
        ctx.device.create_buffer(&wgpu::BufferDescriptor { label: Some("too.big"), size: (ctx.limits.max_buffer_size + 4) & !3, usage: wgpu::BufferUsages::STORAGE, mapped_at_creation: false })
    });
    let f = pollster::block_on(check).expect("the scope caught the oversized buffer");
    assert!(f.kind == FaultKind::Validation && !f.message.is_empty(), "{f:?}");
    let (_, clean) = ctx.checked(|| ());
    assert_eq!(pollster::block_on(clean), None, "a clean build reports nothing");

    let c = small();
    let mut e = gpu_engine(&ctx, &c);
    e.train(5);
    settle(&e);
    assert_eq!(e.gpu_fault(), None);
    // A new model the device refuses: the engine goes back to the model it had (same step, same
    // shape, same weights), and says so once.
    let before = { let fut = e.params(); drive(&mut e, fut) };
    ctx.fail_next_build();
    let wide = Config { width: 64, ..c.clone() };
    e.apply(&wide, Effect::Retrain).unwrap();
    let r = e.gpu_fault().expect("the failed build is reported");
    assert!(r.fault.kind == FaultKind::Validation && r.during == Some(Build::Model) && r.reverted && !r.broken, "{r:?}");
    // Errors of work queued on the failed build before the device's check came back (its invalid
    // buffers trained on, drawn from) arrive before the fence the report set: part of that report.
    ctx.errors.record(&wgpu::Error::Validation { source: Box::new(std::io::Error::other("injected")), description: "[Invalid BindGroup] is invalid due to a previous error".into() });
    assert_eq!(e.gpu_fault(), None, "reported once");
    assert!(!e.checking());
    assert_eq!((e.step(), e.trainer().spec.shape.width), (5, 16), "the model from before the change is back");
    let after = { let fut = e.params(); drive(&mut e, fut) };
    assert_eq!(after, before, "its weights too");
    e.train(3);
    settle(&e);
    e.frame(&frame_input(Layers::default()));
    assert_eq!((e.step(), e.gpu_fault()), (8, None), "it trains on, with no further errors");
    // New samples the device refuses: the shown particles from before come back.
    let more = Config { particles: 300, ..c.clone() };
    ctx.fail_next_build();
    e.apply(&more, Effect::Resample).unwrap();
    let r = e.gpu_fault().expect("the failed samples are reported");
    assert!(r.during == Some(Build::Samples) && r.reverted, "{r:?}");
    let fut = e.samples();
    assert_eq!(drive(&mut e, fut).len(), c.particles as usize, "the shown particles from before");
    // A build that checks clean replaces what was there for good.
    e.apply(&wide, Effect::Retrain).unwrap();
    assert_eq!((e.gpu_fault(), e.trainer().spec.shape.width), (None, 64));
    // A first build with nothing to go back to is broken (the page starts again with its defaults).
    ctx.fail_next_build();
    let mut fresh = gpu_engine(&ctx, &c);
    let r = fresh.gpu_fault().expect("the failed first build is reported");
    assert!(!r.reverted && r.broken, "{r:?}");
    assert_eq!(fresh.gpu_fault(), None, "reported once");
    // Errors no scope caught (the uncaptured-error handler's body, here with injected errors): a
    // burst is one report, to every engine on the device, and none repeats.
    for _ in 0..3 {
        ctx.errors.record(&wgpu::Error::OutOfMemory { source: Box::new(std::io::Error::other("injected")) });
    }
    ctx.errors.record(&wgpu::Error::Validation { source: Box::new(std::io::Error::other("injected")), description: "injected validation error".into() });
    for engine in [&mut e, &mut fresh] {
        let r = engine.gpu_fault().expect("the uncaptured errors are reported");
        assert!(r.fault.kind == FaultKind::OutOfMemory && r.during.is_none() && !r.reverted && !r.broken, "{r:?}");
        assert_eq!(engine.gpu_fault(), None, "a burst is reported once");
    }
    ctx.errors.record(&wgpu::Error::Validation { source: Box::new(std::io::Error::other("injected")), description: "later".into() });
    let r = e.gpu_fault().unwrap();
    assert_eq!((r.fault.kind, r.fault.message.as_str()), (FaultKind::Validation, "later"));
    // Past the kept ones, a new error is still the one reported (not an old kept one).
    for i in 0..20 {
        ctx.errors.record(&wgpu::Error::Validation { source: Box::new(std::io::Error::other("injected")), description: format!("burst {i}") });
    }
    assert_eq!(fresh.gpu_fault().map(|r| r.fault.message), Some("burst 12".to_string()), "the oldest still kept of the unseen");
    ctx.errors.record(&wgpu::Error::Validation { source: Box::new(std::io::Error::other("injected")), description: "newest".into() });
    assert_eq!(e.gpu_fault().map(|r| r.fault.message), Some("burst 13".to_string()));
    assert_eq!(fresh.gpu_fault().map(|r| r.fault.message), Some("newest".to_string()));
}

#[test]
fn gpu_jobs_outlive_the_buffers_they_started_from() {
    let ctx = pollster::block_on(common::gpu());
    let c = small();
    let mut e = gpu_engine(&ctx, &c);
    e.train(4);
    let fut = e.sample_quality(Solver::Euler, 8, 1e-3);
    let (stats, field) = (e.flow_stats(Solver::Euler, 8, false), e.field_error(0));
    // More points than the trainer's buffer holds (DATA_POINTS), so the buffer is replaced.
    let n = flowmatch::engine::flow::DATA_POINTS + 1000;
    let bigger: Vec<[f32; 2]> = (0..n).map(|i| [(i % 100) as f32 / 25.0 - 2.0, (i / 100) as f32 * 4.0 / n as f32 * 100.0 - 2.0]).collect();
    e.set_target(&bigger).unwrap();
    let q = drive(&mut e, fut);
    assert!(q.sw2.is_finite() && q.sw2 > 0.0, "{q:?}");
    let st = drive(&mut e, stats);
    let fe = drive(&mut e, field);
    assert!(st.kinetic_energy.is_finite() && fe.is_finite() && fe > 0.0, "{st:?} {fe}");
    let fut = e.log_density(vec![[0.0, 0.0], [1.0, 1.0]], Solver::Midpoint, 8);
    drop(e);
    let lp = pollster::block_on(fut).unwrap();
    assert!(lp.iter().all(|v| v.is_finite()), "{lp:?}");
}

/// The readings' submissions are accounted as reading work (`state().gpuBusyS.reading`), and the
/// engine keeps them to their share of the device: right after a reading the next one waits
/// (`reading_allowed`) until the share of the time since has paid for its device time; a new
/// run's first reading may start at once. Frames at chosen instants make it deterministic.
#[test]
fn gpu_readings_keep_to_their_share() {
    let ctx = pollster::block_on(common::gpu());
    let c = small();
    let mut e = gpu_engine(&ctx, &c);
    let at = |now: f64| FrameInput { now, ..frame_input(Layers::default()) };
    let spent = |e: &GpuEngine| e.busy().iter().find(|(k, _)| *k == "reading").map_or(0.0, |&(_, s)| s);
    e.train(4);
    let t = 1.0e4;
    e.frame(&at(t));
    assert!(e.reading_allowed(), "the first reading starts at once");
    let before = spent(&e);
    let q = pollster::block_on(e.sample_quality(Solver::Euler, 8, 1e-3)).unwrap();
    assert!(q.sw2.is_finite());
    let cost = spent(&e) - before;
    assert!(cost > 0.0, "the reading's device time was not accounted: {:?}", e.busy());
    e.frame(&at(t));
    assert!(!e.reading_allowed(), "a reading of {cost} s right after another");
    // The share is at least 0.05 (a software adapter's while training; 0.1 on a GPU, 5x either
    // when training is idle, at most 0.5).
    let wait = cost / 0.05 + 1.0;
    e.frame(&at(t + wait));
    assert!(e.reading_allowed(), "the share of {wait:.3} s has paid for a reading of {cost} s");
    let t = t + wait;
    let before = spent(&e);
    pollster::block_on(e.integrate_fresh(7, 256, Solver::Euler, 1, 1e-3)).unwrap();
    assert!(spent(&e) > before, "the preview's integration is a reading too");
    // Readings at one instant worth more than the most credit saved up (CAP_S) go into debt.
    // As many readings as it takes (a fixed count was too few on an H200, where one takes 0.3 ms),
    // within a wall-clock guard.
    let cap = flowmatch::engine::gpu_time::ReadingBudget::CAP_S;
    let t0 = now_ms();
    while spent(&e) - before <= cap {
        assert!(now_ms() - t0 < 120_000.0, "readings for 120 s spent only {} s of device time", spent(&e) - before);
        pollster::block_on(e.sample_quality(Solver::Euler, 8, 1e-3)).unwrap();
    }
    e.frame(&at(t));
    assert!(!e.reading_allowed(), "{} s of readings at once", spent(&e) - before);
    e.reset(c.seed);
    assert!(e.reading_allowed(), "a new run's first reading starts at once");
}

/// Runs frames with the heat map shown until it is computed for the current weights.
fn heat_map(e: &mut GpuEngine) -> Vec<f32> {
    let t0 = now_ms();
    while e.heatmap_step() != Some(e.step()) {
        e.frame(&frame_input(Layers { heatmap: true, ..Layers::default() }));
        assert!(now_ms() - t0 < 120_000.0, "the heat map was never computed");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let fut = e.heatmap_log_p().expect("a heat map");
    drive(e, fut)
}

/// The heat map, log p and the sample-quality reading follow the chosen class and guidance (issue
/// 19): on a conditional MeanFlow model and then a conditional SDE one, each against the CPU twins
/// with the same weights — log p of the guided field at r = t (`cpu::density`), the probe's
/// particles stepped the shown flow's way (MeanFlow jumps, Euler–Maruyama) and compared with the
/// class's own target points (`metrics::sliced_w2_reading`).
#[test]
fn measurements_follow_the_class_and_guidance() {
    use flowmatch::config::{Dataset, Objective, OnOff, Sampler, SampleClass};
    use flowmatch::cpu::{density, meanflow, ode, sde};
    use flowmatch::engine::flow::{training_data, training_labels};
    use flowmatch::engine::quality::{DIRECTIONS, PROBE_SEED, QUALITY_SAMPLES};
    use flowmatch::metrics::sliced_w2_reading;
    use flowmatch::model::Query;
    let ctx = pollster::block_on(common::gpu());
    let t0 = now_ms();
    let mut c = Config { dataset: Dataset::EightGaussians, conditional: OnOff::On, objective: Objective::MeanFlow, solver: Solver::Euler, nfe: 2, ..small() };
    let mut e = gpu_engine(&ctx, &c);
    e.train(30);
    settle(&e);
    let before = heat_map(&mut e);
    (c.class, c.guidance) = (SampleClass::One(3), 2.5);
    e.apply(&c, Effect::Resample).unwrap();
    let fut = e.params();
    let params = drive(&mut e, fut);
    let shape = flowmatch::TrainSpec::from_config(&c).shape;
    let query = Query { class: Some(3), guidance: 2.5 };

    // The heat map (64 × 64 cells, 8 midpoint steps) and log_density: the guided class field.
    let heat = heat_map(&mut e);
    let cells = flowmatch::render::heatmap::cell_centres(5.0);
    let want: Vec<f32> = cells.iter().map(|&x| density::log_density_query(&shape, &params, query, Solver::Midpoint, x, 8)).collect();
    common::assert_close("heat map of class 3 at w = 2.5 vs the twin", &heat, &want, 1e-4, 1e-4);
    assert!(heat.iter().zip(&before).any(|(a, b)| (a - b).abs() > 0.1), "the heat map did not change with the class");
    let pts = vec![[0.0, 0.0], [2.8, 2.8], [-4.0, 0.5]];
    let fut = e.log_density(pts.clone(), Solver::Rk4, 4);
    let lp = drive(&mut e, fut);
    let want: Vec<f32> = pts.iter().map(|&x| density::log_density_query(&shape, &params, query, Solver::Rk4, x, 4)).collect();
    common::assert_close("log_density of class 3 at w = 2.5 vs the twin", &lp, &want, 1e-4, 1e-4);
    eprintln!("[{:.1}s] heat map and log p", (now_ms() - t0) / 1e3);

    // The reading: MeanFlow's 2 jumps of the guided class field, against class 3's points.
    let (data, _) = training_data(&c);
    let labels = training_labels(&c);
    let class3: Vec<[f32; 2]> = data.iter().zip(&labels).filter(|p| *p.1 == 3).map(|p| *p.0).collect();
    let reading = |e: &mut GpuEngine| {
        let fut = e.sample_quality(Solver::Euler, 2, 1e-3);
        drive(e, fut)
    };
    let q = reading(&mut e);
    let mut p = ode::initial_particles_from(PROBE_SEED, QUALITY_SAMPLES, &[]);
    meanflow::integrate(&shape, &params, query, &mut p, 0.0, 1.0, 2);
    let (want, whole) = (sliced_w2_reading(&p, &class3, DIRECTIONS, PROBE_SEED), sliced_w2_reading(&p, &data, DIRECTIONS, PROBE_SEED));
    eprintln!("meanflow reading: gpu {} cpu {want} (whole target {whole})", q.sw2);
    assert!((q.sw2 - want).abs() <= 2e-3 + 1e-2 * want, "MeanFlow reading {} vs the twin's {want}", q.sw2);
    assert!((whole - want).abs() > 0.1 * want, "the class's points must matter: {whole} vs {want}");
    assert_eq!(q.nfe, 2.0);

    // The SDE: a conditional flow-matching model sampled by Euler–Maruyama (noise 1).
    (c.objective, c.sampler, c.noise) = (Objective::Fm, Sampler::Sde, 1.0);
    e.apply(&c, Effect::Retrain).unwrap();
    e.train(20);
    let fut = e.params();
    let params = drive(&mut e, fut);
    let shape = flowmatch::TrainSpec::from_config(&c).shape;
    let q = reading(&mut e);
    let mut p = ode::initial_particles_from(PROBE_SEED, QUALITY_SAMPLES, &[]);
    let spec = sde::SdeSpec { path: c.path, sigma_min: c.sigma_min, noise: 1.0 };
    sde::integrate(&shape, &params, query, &spec, &mut p, 0.0, 1.0, 2, PROBE_SEED);
    let want = sliced_w2_reading(&p, &class3, DIRECTIONS, PROBE_SEED);
    eprintln!("sde reading: gpu {} cpu {want}", q.sw2);
    // Euler–Maruyama agrees with its twin to 2e-3 per particle (tests/kernels.rs sde_matches_cpu).
    assert!((q.sw2 - want).abs() <= 5e-3 + 1e-2 * want, "SDE reading {} vs the twin's {want}", q.sw2);
    eprintln!("[{:.1}s] readings", (now_ms() - t0) / 1e3);
}
