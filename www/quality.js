// www/quality.js — the "Sample quality" card: the sliced Wasserstein-2 distance between fresh
// samples and the target, read from the GPU every few seconds while training and plotted against
// the step (App.sample_quality, src/web/quality_view.rs), and the solver comparison, SW2 against
// field evaluations per sample for euler, midpoint, rk4 and dopri5 on a log-log chart
// (App.compare_solvers). Publishes window.flowmatch.sw2 / sw2Initial / sw2History /
// solverComparison / qualityError for tests. WebGPU backend only: the CPU backend says so.

import * as fmt from './format.js';

const $ = (id) => document.getElementById(id);
const EVERY_MS = 2500;
const COLORS = { euler: '#ff9e64', midpoint: '#9ece6a', rk4: '#7aa2ff', dopri5: '#f7768e' };

function setup(g, c) {
  const dpr = window.devicePixelRatio || 1;
  const w = Math.round(c.clientWidth * dpr), h = Math.round(c.clientHeight * dpr);
  if (c.width !== w || c.height !== h) { c.width = w; c.height = h; }
  g.clearRect(0, 0, w, h);
  g.font = `${11 * dpr}px system-ui, sans-serif`;
  g.fillStyle = '#8a94a7';
  return { w, h, dpr };
}

// A line chart of SW2 (log scale) against the training step.
function drawHistory(state) {
  const c = $('quality');
  if (!c) return;
  const g = c.getContext('2d');
  const { w, h, dpr } = setup(g, c);
  const pts = state.sw2History;
  if (pts.length < 1) { g.fillText('sliced W2 (log scale) appears here', 8 * dpr, h / 2); return; }
  const ys = pts.map((p) => Math.log10(Math.max(p.sw2, 1e-6)));
  let lo = Math.min(...ys), hi = Math.max(...ys);
  if (hi - lo < 0.1) { lo -= 0.05; hi += 0.05; }
  const x0 = pts[0].step, x1 = Math.max(pts[pts.length - 1].step, x0 + 1);
  const pad = { l: 34 * dpr, r: 6 * dpr, t: 8 * dpr, b: 16 * dpr };
  const X = (x) => pad.l + ((x - x0) / (x1 - x0)) * (w - pad.l - pad.r);
  const Y = (y) => pad.t + (1 - (y - lo) / (hi - lo)) * (h - pad.t - pad.b);
  g.fillText(fmt.num(10 ** hi, 2), 2 * dpr, Y(hi) + 8 * dpr);
  g.fillText(fmt.num(10 ** lo, 2), 2 * dpr, Y(lo));
  g.fillText(`step ${fmt.int(pts[pts.length - 1].step)}`, w - 80 * dpr, h - 3 * dpr);
  g.strokeStyle = '#e0af68';
  g.fillStyle = '#e0af68';
  g.lineWidth = 1.5 * dpr;
  g.beginPath();
  pts.forEach((p, i) => (i ? g.lineTo : g.moveTo).call(g, X(p.step), Y(ys[i])));
  g.stroke();
  pts.forEach((p, i) => g.fillRect(X(p.step) - 1.5 * dpr, Y(ys[i]) - 1.5 * dpr, 3 * dpr, 3 * dpr));
}

// Log-log chart of SW2 against evaluations per sample, one line per solver.
function drawComparison(state) {
  const c = $('solvers');
  if (!c) return;
  const g = c.getContext('2d');
  const { w, h, dpr } = setup(g, c);
  const pts = state.solverComparison || [];
  if (!pts.length) { g.fillText(state.comparing ? 'computing on the GPU…' : 'press "Compare solvers"', 8 * dpr, h / 2); return; }
  const lx = pts.map((p) => Math.log10(p.nfe)), ly = pts.map((p) => Math.log10(Math.max(p.sw2, 1e-6)));
  let xlo = Math.min(...lx), xhi = Math.max(...lx), ylo = Math.min(...ly), yhi = Math.max(...ly);
  if (xhi - xlo < 0.1) xhi = xlo + 0.1;
  if (yhi - ylo < 0.1) yhi = ylo + 0.1;
  const pad = { l: 34 * dpr, r: 70 * dpr, t: 8 * dpr, b: 16 * dpr };
  const X = (x) => pad.l + ((x - xlo) / (xhi - xlo)) * (w - pad.l - pad.r);
  const Y = (y) => pad.t + (1 - (y - ylo) / (yhi - ylo)) * (h - pad.t - pad.b);
  g.fillText(fmt.num(10 ** yhi, 2), 2 * dpr, Y(yhi) + 8 * dpr);
  g.fillText(fmt.num(10 ** ylo, 2), 2 * dpr, Y(ylo));
  g.fillText(fmt.int(10 ** xlo), pad.l, h - 3 * dpr);
  g.fillText(`${fmt.int(10 ** xhi)} evals`, w - pad.r - 40 * dpr, h - 3 * dpr);
  let row = 0;
  for (const solver of Object.keys(COLORS)) {
    const idx = pts.map((p, i) => i).filter((i) => pts[i].solver === solver);
    if (!idx.length) continue;
    g.strokeStyle = g.fillStyle = COLORS[solver];
    g.lineWidth = 1.5 * dpr;
    g.beginPath();
    idx.sort((a, b) => lx[a] - lx[b]).forEach((i, k) => (k ? g.lineTo : g.moveTo).call(g, X(lx[i]), Y(ly[i])));
    g.stroke();
    idx.forEach((i) => g.fillRect(X(lx[i]) - 2 * dpr, Y(ly[i]) - 2 * dpr, 4 * dpr, 4 * dpr));
    g.fillText(solver, w - pad.r + 8 * dpr, pad.t + (12 + 14 * row++) * dpr);
  }
}

// Wires the card to `app`; `state` is window.flowmatch.
export function initQuality(app, state) {
  state.sw2 = null;
  state.sw2Initial = null;
  state.sw2History = [];
  state.solverComparison = null;
  state.comparing = false;
  state.qualityError = null;
  const note = $('quality-note');
  const show = (msg) => { state.qualityError = msg; if (note) { note.textContent = msg; note.hidden = !msg; } };
  let inFlight = false, lastStep = -1, lastAt = -Infinity, generation = 0;

  // `state.qualityAuto = false` stops the periodic reading (tests that count engine buffers turn
  // it off: each reading briefly allocates a probe sampler, freed when it resolves);
  // `state.qualityInFlight` tells whether one is running.
  state.qualityAuto = true;
  state.qualityInFlight = false;
  const measure = async () => {
    if (inFlight || state.diverged) return;
    inFlight = true;
    state.qualityInFlight = true;
    const step = state.step, gen = generation;
    try {
      // A number, or null when the weights it measured had already diverged (the reading can
      // start before the status read that reports the divergence comes back; the divergence
      // message comes from that read): no reading then.
      const v = await app.sample_quality();
      if (gen !== generation || v === null || state.diverged) return;
      state.sw2 = v;
      if (!Number.isFinite(state.sw2Initial)) state.sw2Initial = v;
      state.sw2History.push({ step, sw2: v });
      if (state.sw2History.length > 400) state.sw2History.splice(1, 1);
      $('stat-sw2') && ($('stat-sw2').textContent = fmt.num(v, 3));
      drawHistory(state);
    } catch (e) {
      show(String(e && e.message ? e.message : e));
    } finally {
      inFlight = false;
      state.qualityInFlight = false;
    }
  };

  const tick = () => {
    if (state.backend !== 'webgpu') {
      show('Sample quality and the solver comparison need WebGPU; the CPU backend does not compute them.');
      return;
    }
    // A new run (reset / retrain) starts a new history.
    if (state.step < lastStep) { state.sw2History = []; state.sw2Initial = null; generation++; }
    lastStep = state.step;
    if (state.qualityAuto === false) return;
    const now = performance.now();
    if (state.sw2History.length === 0 || (state.training && now - lastAt >= EVERY_MS)) {
      lastAt = now;
      measure();
    }
  };
  setInterval(tick, 500);
  drawHistory(state);
  drawComparison(state);

  const button = $('compare-solvers');
  if (button) {
    button.addEventListener('click', async () => {
      if (state.comparing) return;
      if (state.backend !== 'webgpu') { show('The solver comparison needs WebGPU.'); return; }
      state.comparing = true;
      button.disabled = true;
      state.solverComparison = null;
      drawComparison(state);
      try {
        const pts = await app.compare_solvers();
        state.solverComparison = Array.from(pts, (p) => ({ solver: p.solver, nfe: p.nfe, sw2: p.sw2, setting: p.setting }));
      } catch (e) {
        show(String(e && e.message ? e.message : e));
      } finally {
        state.comparing = false;
        button.disabled = false;
        drawComparison(state);
      }
    });
  }
}
