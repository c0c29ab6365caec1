// www/quality.js — the "Sample quality" card: the sliced Wasserstein-2 distance between fresh
// samples and the target, read every few seconds while training and plotted against the step
// (App.sample_quality), and the solver comparison, SW2 against field evaluations per sample for
// every solver (App.compare_solvers) on a log-log chart with one series per solver of the wasm's
// solver list (solver_specs). Both engines measure it: WebGPU on the GPU, the CPU engine a slice
// per frame. The straightness and kinetic energy of the model's flow (App.flow_stats; the wasm keeps
// the latest as state.straightness / state.kinetic) and the field error against the exact field
// (App.field_error; state.fieldError, shown in the training card) are read on their own pace, after the first
// sliced W2, each taking a 24th of the time at most. On top of that spacing by wall time, the
// engine keeps all readings together (this card's and the one-step preview's) to a share of
// the device's time (App.state()'s readingAllowed, Engine::reading_allowed). Publishes window.flowmatch.sw2 / sw2Initial / sw2History / solverComparison /
// qualityError for tests (null, never NaN, for values not known).

import { solver_specs } from '../pkg/flowmatch.js';
import { drawChart } from './chart.js';
import * as fmt from './format.js';

const $ = (id) => document.getElementById(id);
// Readings every 2.5 s, or less often when one takes long (a slow device): a reading may take a
// twelfth of the time at most, so it never crowds out training.
const EVERY_MS = 2500;
const SHARE = 12;
// Series colours by the solver's position in the wasm's list (a new solver takes the next one).
const PALETTE = ['#ff9e64', '#9ece6a', '#7aa2ff', '#f7768e', '#bb9af7', '#7dcfff', '#e0af68'];

function drawHistory(state) {
  const c = $('quality');
  if (!c) return;
  drawChart(c, {
    series: [{ points: state.sw2History.map((p) => [p.step, p.sw2]), color: '#e0af68', dots: true }],
    logY: true, xCaption: (x) => `step ${fmt.int(x)}`, empty: 'sliced W2 (log scale) appears here',
  });
}

function drawComparison(state, solvers) {
  const c = $('solvers');
  if (!c) return;
  const pts = state.solverComparison || [];
  drawChart(c, {
    series: solvers.map((s, i) => ({
      label: s.name, color: PALETTE[i % PALETTE.length], dots: true, dotSize: 4, sort: true,
      points: pts.filter((p) => p.solver === s.name).map((p) => [p.nfe, p.sw2]),
    })),
    logX: true, logY: true, legend: true, xCaption: (x) => `${fmt.int(x)} evals`,
    empty: state.comparing ? 'computing…' : 'press "Compare solvers"',
  });
}

// Wires the card to `app`; `state` is window.flowmatch.
export function initQuality(app, state) {
  const solvers = JSON.parse(solver_specs());
  state.sw2 = null;
  state.sw2Initial = null;
  state.sw2History = [];
  state.solverComparison = null;
  state.comparing = false;
  state.qualityError = null;
  const note = $('quality-note');
  const show = (msg) => { state.qualityError = msg; if (note) { note.textContent = msg; note.hidden = !msg; } };
  // sw2Step / statsStep: the step the last reading of each kind started at (once training stops,
  // one more reading of the weights it stopped at, e.g. a run's end, so the card shows the final
  // model; one try, whatever it gives).
  let inFlight = false, lastStep = -1, lastAt = -Infinity, generation = 0, tookMs = 0, measured = 0, sw2Step = -1, statsStep = -1;

  // `state.qualityAuto = false` stops the periodic readings (tests that count engine buffers turn
  // it off: each reading briefly allocates a probe), here and the rectified-flow card's one-step
  // preview (www/reflow.js); `state.qualityInFlight` tells whether one of this card's runs (a
  // sliced-W2 or a straightness reading), `state.previewInFlight` whether a preview does.
  state.qualityAuto = true;
  state.qualityInFlight = false;
  const measure = async () => {
    if (inFlight || statsInFlight || state.diverged) return;
    inFlight = true;
    state.qualityInFlight = true;
    const step = state.step, gen = generation, t0 = performance.now();
    try {
      // A number, or null when the weights it measured had already diverged (the reading can
      // start before the status read that reports the divergence lands): no reading then.
      const v = await app.sample_quality();
      if (gen !== generation || v === null || state.diverged) return;
      state.sw2 = v;
      if (!Number.isFinite(state.sw2Initial)) state.sw2Initial = v;
      state.sw2History.push({ step, sw2: v });
      if (state.sw2History.length > 400) state.sw2History.splice(1, 1);
      if ($('stat-sw2')) $('stat-sw2').textContent = fmt.num(v, 3);
      drawHistory(state);
    } catch (e) {
      show(String(e && e.message ? e.message : e));
    } finally {
      inFlight = false;
      state.qualityInFlight = statsInFlight;
      // The page's first reading also compiles the probe's pipelines (seconds on a software
      // adapter): its time would space the next readings far too wide.
      if (measured++ > 0) tookMs = performance.now() - t0;
    }
  };

  // Straightness and kinetic energy: one reading at a time, spaced by their own cost to a 24th of
  // the time (state.straightnessMs: the last reading's time; the first also compiles pipelines).
  let statsInFlight = false, statsAt = -Infinity, statsMs = 0, statsMeasured = 0;
  state.straightnessMs = null;
  const measureStats = async () => {
    statsInFlight = true;
    state.qualityInFlight = true;
    const gen = generation, t0 = performance.now();
    try {
      // null: a new run replaced the model it measured (no reading).
      const st = await app.flow_stats();
      if (st === null || gen !== generation || state.diverged) return;
      if ($('stat-straightness')) $('stat-straightness').textContent = fmt.num(st.straightness, 3);
      if ($('stat-kinetic')) $('stat-kinetic').textContent = fmt.num(st.kinetic, 3);
      // The field error against the exact field (null for a dataset source: no exact field).
      const fe = await app.field_error();
      if (gen !== generation || state.diverged) return;
      if ($('stat-field-error')) $('stat-field-error').textContent = fmt.num(fe, 3);
    } catch (e) {
      if (!state.diverged) show(String(e && e.message ? e.message : e));
    } finally {
      statsInFlight = false;
      state.qualityInFlight = inFlight;
      state.straightnessMs = performance.now() - t0;
      if (statsMeasured++ > 0) statsMs = state.straightnessMs;
    }
  };

  const tick = () => {
    // A new run (reset / retrain) starts a new history.
    if (state.step < lastStep) {
      state.sw2History = []; state.sw2Initial = null; generation++; sw2Step = -1; statsStep = -1; drawHistory(state);
      for (const id of ['stat-straightness', 'stat-kinetic', 'stat-field-error']) if ($(id)) $(id).textContent = fmt.DASH;
    }
    lastStep = state.step;
    if (state.qualityAuto === false) return;
    // The engine keeps all readings together to their share of the device (App.state()'s
    // readingAllowed; on a software adapter a reading can cost as much as 100 training steps).
    if (state.readingAllowed === false) return;
    const now = performance.now();
    // One reading at a time (sliced W2 first): a reading's time is its own, not the other's too.
    if (statsInFlight) return;
    const stopped = !state.training && state.stepsDone === state.step;
    // Not while a reading is in flight: measure() would return at once, and sw2Step would mark
    // the final weights as read (a reading started at step 1840 and still running when the run
    // ended at 2000 left the card without the final reading: CI, e2e page cpu).
    if (!inFlight && (state.sw2History.length === 0 || (stopped && sw2Step !== state.step) || (state.training && now - lastAt >= Math.max(EVERY_MS, SHARE * tookMs)))) {
      lastAt = now;
      sw2Step = state.step;
      measure();
    }
    const first = state.straightness === null || state.straightness === undefined;
    if (!inFlight && !state.diverged && state.sw2History.length > 0 && ((first && statsMeasured === 0) || (stopped && statsStep !== state.step) || (state.training && now - statsAt >= Math.max(EVERY_MS, 2 * SHARE * statsMs)))) {
      statsAt = now;
      statsStep = state.step;
      measureStats();
    }
  };
  setInterval(tick, 500);
  drawHistory(state);
  drawComparison(state, solvers);

  const button = $('compare-solvers');
  if (button) {
    button.addEventListener('click', async () => {
      if (state.comparing) return;
      state.comparing = true;
      button.disabled = true;
      state.solverComparison = null;
      drawComparison(state, solvers);
      try {
        const pts = await app.compare_solvers();
        state.solverComparison = Array.from(pts, (p) => ({ solver: p.solver, nfe: p.nfe, sw2: p.sw2, setting: p.setting }));
      } catch (e) {
        show(String(e && e.message ? e.message : e));
      } finally {
        state.comparing = false;
        button.disabled = false;
        drawComparison(state, solvers);
      }
    });
  }
}
