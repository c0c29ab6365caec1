// www/app.js — page glue for index.html: loads the wasm package, builds labelled controls for
// every configuration field, runs the animation-frame loop (App.frame), keeps the configuration
// in the URL hash, draws the loss curve, and publishes the page state as `window.flowmatch`
// (read by tests/e2e and benchmarks: step, loss, stepsPerSec, backend, ready, error, ...).

import init, { App, choices, fields } from '../pkg/flowmatch.js';
import { initTargets } from './targets.js';
import { initQuality } from './quality.js';

const $ = (id) => document.getElementById(id);

// Controls in display order. Fields the wasm knows but this table does not (added later) get a
// plain text input under "More settings", so every field stays reachable and round-trips.
const CONTROLS = [
  { key: 'dataset', label: 'Target dataset', kind: 'select' },
  { key: 'width', label: 'Width (units per layer)', kind: 'number', min: 1, max: 1024, step: 1 },
  { key: 'depth', label: 'Depth (hidden layers)', kind: 'number', min: 1, max: 8, step: 1 },
  { key: 'activation', label: 'Activation', kind: 'select' },
  { key: 'lr', label: 'Learning rate', kind: 'number', min: 0, step: 'any' },
  { key: 'schedule', label: 'Learning-rate schedule (over Steps)', kind: 'select' },
  { key: 'batch', label: 'Batch size', kind: 'number', min: 1, max: 65536, step: 1 },
  { key: 'sigma_min', label: 'σ min (path width at t = 1)', kind: 'number', min: 0, max: 0.999, step: 'any' },
  { key: 'seed', label: 'Seed', kind: 'number', min: 0, step: 1 },
  { key: 'solver', label: 'ODE solver', kind: 'select' },
  { key: 'nfe', label: 'Solver steps', kind: 'number', min: 1, max: 10000, step: 1 },
  { key: 'tol', label: 'Tolerance (dopri5; its steps = evaluation budget)', kind: 'number', min: 0.000001, max: 0.1, step: 'any', advanced: true },
  { key: 'particles', label: 'Particles', kind: 'number', min: 1, max: 1000000, step: 1 },
  { key: 'source', label: 'Source at t = 0', kind: 'select', advanced: true },
  { key: 'path', label: 'Probability path', kind: 'select', advanced: true },
  { key: 'coupling', label: 'Coupling', kind: 'select', advanced: true },
  { key: 'weight_decay', label: 'Weight decay', kind: 'number', min: 0, max: 1, step: 'any', advanced: true },
  { key: 'steps', label: 'Steps (schedule length; command line runs)', kind: 'number', min: 0, step: 1, advanced: true },
  { key: 'samples', label: 'Samples (command line runs)', kind: 'number', min: 1, step: 1, advanced: true },
];

const state = {
  ready: false, error: null, notice: null, backend: null, adapter: null, step: 0, loss: NaN,
  lossStart: NaN, lossRecent: NaN, stepsPerSec: 0, t: 0, hashErrors: [], app: null,
};
window.flowmatch = state;

let app = null;

// WebGPU validation errors and device loss would otherwise only reach the browser's console:
// record them (window.flowmatch.gpuErrors) and show the first in the error banner.
state.gpuErrors = [];
if (globalThis.GPUAdapter) {

  const request = GPUAdapter.prototype.requestDevice;
  GPUAdapter.prototype.requestDevice = async function (...args) {
    const device = await request.apply(this, args);
    device.addEventListener('uncapturederror', (e) => {
      const msg = `WebGPU error: ${e.error && e.error.message}`;
      if (state.gpuErrors.length < 20) state.gpuErrors.push(msg);
      console.error(msg);
      showText($('error'), state.gpuErrors[0]);
    });
    device.lost.then((info) => {
      if (info.reason === 'destroyed') return;
      // The App recovers on a new device by itself (src/web/reliability.rs); just record it.
      state.gpuErrors.push(`WebGPU device lost: ${info.message}`);
    });
    return device;
  };
}
const inputs = new Map(); // field -> input/select element

function showText(el, text) {
  el.textContent = text || '';
  el.hidden = !text;
}

function fieldError(key, message) {
  const input = inputs.get(key);
  if (!input) return;
  const msg = $(`err-${key}`);
  input.setAttribute('aria-invalid', message ? 'true' : 'false');
  if (msg) showText(msg, message);
}

function buildControls() {
  const known = fields();
  const table = CONTROLS.filter((c) => known.includes(c.key));
  for (const key of known) {
    if (!table.some((c) => c.key === key)) table.push({ key, label: key, kind: 'text', advanced: true });
  }
  for (const c of table) {
    const wrap = document.createElement('div');
    wrap.className = 'field';
    const id = `f-${c.key}`;
    const label = document.createElement('label');
    label.htmlFor = id;
    label.textContent = c.label;
    let input;
    const options = c.kind === 'select' ? choices(c.key) : [];
    if (options.length) {
      input = document.createElement('select');
      for (const o of options) {
        const opt = document.createElement('option');
        opt.value = o;
        opt.textContent = o;
        input.append(opt);
      }
    } else {
      input = document.createElement('input');
      input.type = c.kind === 'number' ? 'number' : 'text';
      if (c.min !== undefined) input.min = c.min;
      if (c.max !== undefined) input.max = c.max;
      if (c.step !== undefined) input.step = c.step;
      input.inputMode = c.kind === 'number' ? 'decimal' : 'text';
    }
    input.id = id;
    input.name = c.key;
    input.dataset.field = c.key;
    const err = document.createElement('p');
    err.className = 'field-error';
    err.id = `err-${c.key}`;
    err.hidden = true;
    input.setAttribute('aria-describedby', err.id);
    input.addEventListener('change', () => applyField(c.key, input.value));
    wrap.append(label, input, err);
    (c.advanced ? $('fields-advanced') : $('fields')).append(wrap);
    inputs.set(c.key, input);
  }
}

function syncControls() {
  for (const [key, input] of inputs) {
    const v = app.get(key);
    if (v !== undefined && document.activeElement !== input) input.value = v;
  }
}

function writeHash() {
  history.replaceState(null, '', `#${app.query()}`);
}

function applyField(key, value) {
  try {
    app.set(key, value.trim());
    fieldError(key, '');
    state.hashErrors = state.hashErrors.filter((e) => e.field !== key);
    renderHashErrors();
    writeHash();
    syncControls();
    lossDirty = true;
  } catch (e) {
    fieldError(key, String(e.message || e));
    const input = inputs.get(key);
    if (input) input.value = app.get(key) ?? input.value;
  }
}

function renderHashErrors() {
  const box = $('hash-errors');
  box.replaceChildren();
  if (!state.hashErrors.length) { box.hidden = true; return; }
  const p = document.createElement('p');
  p.textContent = 'Some settings in the link could not be used; those keep their defaults:';
  const ul = document.createElement('ul');
  for (const e of state.hashErrors) {
    const li = document.createElement('li');
    li.dataset.field = e.field;
    li.textContent = e.message;
    ul.append(li);
  }
  box.append(p, ul);
  box.hidden = false;
}

function takeHashErrors(list) {
  state.hashErrors = Array.from(list, (e) => ({ field: e.field, message: e.message }));
  for (const key of inputs.keys()) fieldError(key, '');
  for (const e of state.hashErrors) {
    fieldError(e.field, `${e.message} (default kept)`);
    if (inputs.has(e.field) && !$('fields').contains(inputs.get(e.field))) $('advanced').open = true;
  }
  renderHashErrors();
}

// ---- canvas size -------------------------------------------------------------------------------

function fitCanvas() {
  const wrap = $('canvas-wrap');
  const canvas = $('flow');
  const dpr = Math.min(window.devicePixelRatio || 1, 3);
  const css = wrap.getBoundingClientRect();
  const w = Math.max(1, Math.round(css.width * dpr));
  const h = Math.max(1, Math.round(css.height * dpr));
  if (canvas.width !== w || canvas.height !== h || !app) {
    canvas.width = w;
    canvas.height = h;
    if (app) app.resize(w, h, dpr);
  }
}

// World point → client (CSS) pixel on the canvas, the same mapping as src/render/view.rs.
state.worldToClient = (x, y) => {
  const r = $('flow').getBoundingClientRect();
  const extent = state.extent || 5;
  const unit = (2 * extent) / Math.min(r.width, r.height);
  return [r.left + r.width / 2 + x / unit, r.top + r.height / 2 - y / unit];
};

// ---- loss curve --------------------------------------------------------------------------------

let lossDirty = true;
function drawLoss() {
  const c = $('loss');
  const dpr = window.devicePixelRatio || 1;
  const w = Math.round(c.clientWidth * dpr), h = Math.round(c.clientHeight * dpr);
  if (c.width !== w || c.height !== h) { c.width = w; c.height = h; }
  const g = c.getContext('2d');
  g.clearRect(0, 0, w, h);
  const flat = app.losses();
  const n = flat.length / 2;
  g.font = `${11 * dpr}px system-ui, sans-serif`;
  g.fillStyle = '#8a94a7';
  if (n < 2) { g.fillText('loss (log scale) appears here', 8 * dpr, h / 2); return; }
  // Exponential moving average in log space, window ~2% of the points.
  const alpha = Math.min(1, 50 / n);
  const xs = new Float64Array(n), ys = new Float64Array(n);
  let ema = Math.log10(Math.max(flat[1], 1e-12));
  for (let i = 0; i < n; i++) {
    ema += alpha * (Math.log10(Math.max(flat[2 * i + 1], 1e-12)) - ema);
    xs[i] = flat[2 * i];
    ys[i] = ema;
  }
  let lo = Infinity, hi = -Infinity;
  for (const y of ys) { lo = Math.min(lo, y); hi = Math.max(hi, y); }
  lo = Math.floor(lo * 4) / 4; hi = Math.ceil(hi * 4) / 4;
  if (hi - lo < 0.25) hi = lo + 0.25;
  const x0 = xs[0], x1 = Math.max(xs[n - 1], x0 + 1);
  const pad = { l: 34 * dpr, r: 6 * dpr, t: 8 * dpr, b: 16 * dpr };
  const X = (x) => pad.l + ((x - x0) / (x1 - x0)) * (w - pad.l - pad.r);
  const Y = (y) => pad.t + (1 - (y - lo) / (hi - lo)) * (h - pad.t - pad.b);
  g.strokeStyle = '#1f2633';
  g.lineWidth = 1;
  for (let d = Math.ceil(lo * 4) / 4; d <= hi + 1e-9; d += 0.25) {
    g.beginPath(); g.moveTo(pad.l, Y(d)); g.lineTo(w - pad.r, Y(d)); g.stroke();
    if (Math.abs(d - Math.round(d)) < 1e-9 || hi - lo <= 1) {
      g.fillText(Number(10 ** d).toPrecision(2), 2 * dpr, Y(d) + 4 * dpr);
    }
  }
  g.fillText(`step ${Math.round(xs[n - 1])}`, w - 80 * dpr, h - 3 * dpr);
  g.strokeStyle = '#7aa2ff';
  g.lineWidth = 1.5 * dpr;
  g.beginPath();
  for (let i = 0; i < n; i++) (i ? g.lineTo : g.moveTo).call(g, X(xs[i]), Y(ys[i]));
  g.stroke();
}

// ---- state and UI ------------------------------------------------------------------------------

const fmt = (x, d = 4) => (Number.isFinite(x) ? x.toPrecision(d) : '–');

function publish() {
  const s = app.state();
  Object.assign(state, s);
  state.ready = state.ready || (s.frames > 1 && s.trajStep !== null);
  return s;
}

function updatePanel(s) {
  $('stat-step').textContent = s.step.toLocaleString('en');
  $('stat-loss').textContent = fmt(s.lossRecent);
  $('stat-rate').textContent = s.stepsPerSec > 0 ? Math.round(s.stepsPerSec).toLocaleString('en') : '–';
  $('stat-backend').textContent = s.backend === 'webgpu' ? (s.software ? 'WebGPU (software)' : 'WebGPU') : 'CPU';
  $('stat-backend').title = s.adapter;
  const play = $('play');
  play.textContent = s.training ? 'Pause' : 'Train';
  play.setAttribute('aria-pressed', String(s.training));
  const flow = $('flow-play');
  flow.textContent = s.flowPlaying ? 'Stop flow' : 'Play flow';
  flow.setAttribute('aria-pressed', String(s.flowPlaying));
  showText($('notice'), s.notice);
  showText($('error'), s.error);
}

function updateTime(s) {
  const time = $('time');
  if (document.activeElement !== time || s.flowPlaying) time.value = s.t;
  const label = `t = ${s.t.toFixed(2)}`;
  $('time-out').textContent = label;
  $('hud-t').textContent = label;
}

let last = performance.now();
let lastPanel = 0;
function loop(now) {
  const dt = now - last;
  last = now;
  try {
    app.frame(dt);
    const s = publish();
    updateTime(s);
    if (now - lastPanel > 250 || lossDirty) {
      updatePanel(s);
      drawLoss();
      lastPanel = now;
      lossDirty = false;
    }
  } catch (e) {
    fail(e);
    return;
  }
  requestAnimationFrame(loop);
}

function fail(e) {
  const msg = String((e && e.message) || e);
  state.error = msg;
  showText($('error'), msg);
  $('loading').hidden = true;
  console.error(e);
}

function wire() {
  $('play').addEventListener('click', () => (state.training ? app.pause() : app.play()));
  $('step').addEventListener('click', () => { app.step_once(); });
  $('reset').addEventListener('click', () => { app.reset(); lossDirty = true; });
  $('flow-play').addEventListener('click', () => app.set_flow_playing(!state.flowPlaying));
  $('time').addEventListener('input', (e) => app.set_time(Number(e.target.value)));
  for (const box of document.querySelectorAll('#layers input')) {
    app.set_layer(box.dataset.layer, box.checked);
    box.addEventListener('change', () => app.set_layer(box.dataset.layer, box.checked));
  }
  $('settings').addEventListener('submit', (e) => e.preventDefault());
  $('copy-link').addEventListener('click', async () => {
    writeHash();
    try {
      await navigator.clipboard.writeText(location.href);
      $('copied').textContent = 'copied';
    } catch {
      $('copied').textContent = 'copy the address bar';
    }
    setTimeout(() => { $('copied').textContent = ''; }, 2000);
  });
  window.addEventListener('hashchange', () => {
    takeHashErrors(app.apply_hash(location.hash));
    writeHash();
    syncControls();
    lossDirty = true;
  });
  document.addEventListener('keydown', (e) => {
    const tag = (e.target.tagName || '').toLowerCase();
    if (['input', 'select', 'textarea', 'button', 'summary'].includes(tag) || e.ctrlKey || e.metaKey || e.altKey) return;
    if (e.key === ' ') { e.preventDefault(); state.training ? app.pause() : app.play(); }
    else if (e.key === '.') app.step_once();
    else if (e.key === 'r' || e.key === 'R') { app.reset(); lossDirty = true; }
    else if (e.key === 'f' || e.key === 'F') app.set_flow_playing(!state.flowPlaying);
  });
  // Reduced motion: no looping animation; show the result (t = 1) and let the scrubber move it.
  const reduce = window.matchMedia('(prefers-reduced-motion: reduce)');
  const applyMotion = () => { if (reduce.matches) app.set_time(1); };
  applyMotion();
  reduce.addEventListener('change', applyMotion);
  new ResizeObserver(fitCanvas).observe($('canvas-wrap'));
}

async function main() {
  try {
    await init();
    buildControls();
    fitCanvas();
    const params = new URLSearchParams(location.search);
    app = await App.create($('flow'), location.hash, params.get('cpu') === '1', params.get('present') || '');
    state.app = app;
    fitCanvas();
    app.resize($('flow').width, $('flow').height, Math.min(window.devicePixelRatio || 1, 3));
    takeHashErrors(app.hash_errors());
    writeHash();
    syncControls();
    wire();
    initTargets(app, state);
    initQuality(app, state);
    $('loading').hidden = true;
    requestAnimationFrame((t) => { last = t; loop(t); });
  } catch (e) {
    fail(e);
  }
}

main();
