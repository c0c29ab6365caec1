// www/app.js — page glue for index.html: loads the wasm package, builds a labelled control for
// every setting, a checkbox for every canvas layer (both lists come from the wasm: field_specs,
// layer_specs), a preset menu (presets_json: src/presets.rs; a preset sets its configuration over
// the defaults and its views), runs the animation-frame loop (App.frame), keeps the configuration in the URL
// hash, draws the loss curve (chart.js), and publishes the page state as `window.flowmatch`
// (read by tests/e2e and the benchmarks: step, loss, stepsPerSec, backend, ready, error, ...).
//
// URL parameters (before the #): backend=auto|webgpu|cpu (default auto: on a software adapter the
// faster of WebGPU and the CPU), cpu=1 (= backend=cpu), present=surface|readback.

import init, { App, dataset_classes, field_specs, layer_specs, preset_views, presets_json } from '../pkg/flowmatch.js';
import { initTargets } from './targets.js';
import { initQuality } from './quality.js';
import { initReflow } from './reflow.js';
import { guarded, initKeep, resetWithUndo } from './keep.js';
import { drawChart } from './chart.js';
import * as fmt from './format.js';
import { skipFrame } from './pace.js';

const $ = (id) => document.getElementById(id);

// Numbers the page does not know yet are null (never NaN: see www/format.js).
const state = {
  ready: false, error: null, notice: null, backend: null, adapter: null, step: 0, loss: null,
  lossStart: null, lossRecent: null, stepsPerSec: 0, t: 0, hashErrors: [], app: null,
  // Input responsiveness (benchmarks): per key press, ms from the event to its handler and to the
  // next frame; the worst lateness of a 50 ms timer since `maxTimerLagMs` was last reset.
  inputDelays: [], maxTimerLagMs: 0,
};
window.flowmatch = state;

let app = null;

// WebGPU validation errors and device loss, recorded for tests (window.flowmatch.gpuErrors). The
// App itself reports GPU errors in its state's `error` (src/web/page.rs), which the banner shows.
state.gpuErrors = [];
if (globalThis.GPUAdapter) {
  const request = GPUAdapter.prototype.requestDevice;
  GPUAdapter.prototype.requestDevice = async function (...args) {
    const device = await request.apply(this, args);
    device.addEventListener('uncapturederror', (e) => {
      const msg = `WebGPU error: ${e.error && e.error.message}`;
      if (state.gpuErrors.length < 20) state.gpuErrors.push(msg);
      console.error(msg);
    });
    device.lost.then((info) => {
      if (info.reason === 'destroyed') return;
      // The App recovers on a new device by itself (src/web/page.rs); just record it.
      state.gpuErrors.push(`WebGPU device lost: ${info.message}`);
    });
    return device;
  };
}
const inputs = new Map(); // field -> input/select element
/** The layers a preset switches (its `views`; the others keep the person's choice). */
let VIEW_LAYERS = new Set();

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

// ---- controls, from the wasm's field table (src/config.rs FIELDS) ----------------------------

function control(spec) {
  let input;
  if (spec.kind === 'choice') {
    input = document.createElement('select');
    for (const o of spec.choices) {
      const opt = document.createElement('option');
      opt.value = o;
      opt.textContent = o;
      input.append(opt);
    }
  } else {
    input = document.createElement('input');
    input.type = 'number';
    input.inputMode = 'decimal';
    if (spec.min !== null && !spec.minOpen) input.min = spec.min;
    if (spec.max !== null) input.max = spec.max;
    input.step = spec.kind === 'int' ? 1 : 'any';
  }
  return input;
}

// Settings that also get a slider, applied while it moves (issue 19: guidance re-samples live,
// the SDE's noise shows jittering paths): field -> slider step.
const SLIDERS = new Map([['guidance', 0.25], ['noise', 0.05]]);

function slider(spec) {
  const range = document.createElement('input');
  range.type = 'range';
  range.id = `r-${spec.name}`;
  range.min = spec.min;
  range.max = spec.max;
  range.step = SLIDERS.get(spec.name);
  range.title = spec.help;
  range.setAttribute('aria-label', spec.label);
  range.dataset.slider = spec.name;
  range.addEventListener('input', () => applyField(spec.name, range.value));
  return range;
}

// The class picker offers `all` and the current dataset's classes (dataset_classes: its labels in
// shared/spec/datasets.md); MeanFlow's step buttons show with objective=meanflow.
function syncGeneration() {
  const n = dataset_classes(app.get('dataset'));
  const select = inputs.get('class');
  if (select) {
    for (const opt of select.options) {
      const off = opt.value !== 'all' && Number(opt.value) >= n;
      opt.hidden = off;
      opt.disabled = off;
    }
  }
  const box = $('meanflow-steps');
  if (box) {
    box.hidden = app.get('objective') !== 'meanflow';
    for (const b of box.querySelectorAll('button')) b.setAttribute('aria-pressed', String(b.dataset.nfe === app.get('nfe')));
  }
}

function buildControls() {
  for (const spec of JSON.parse(field_specs()).filter((f) => f.scope === 'all')) {
    const wrap = document.createElement('div');
    wrap.className = 'field';
    const id = `f-${spec.name}`;
    const label = document.createElement('label');
    label.htmlFor = id;
    label.textContent = spec.label;
    label.title = spec.help;
    const input = control(spec);
    input.id = id;
    input.name = spec.name;
    input.title = spec.help;
    input.dataset.field = spec.name;
    input.dataset.effect = spec.effect;
    const err = document.createElement('p');
    err.className = 'field-error';
    err.id = `err-${spec.name}`;
    err.hidden = true;
    input.setAttribute('aria-describedby', err.id);
    input.addEventListener('change', () => applyField(spec.name, input.value));
    wrap.append(label, input, err);
    if (SLIDERS.has(spec.name)) wrap.insertBefore(slider(spec), err);
    (spec.advanced ? $('fields-advanced') : $('fields')).append(wrap);
    inputs.set(spec.name, input);
  }
}

// ---- layers, from the wasm's layer table (src/render/mod.rs LAYERS) -------------------------

function buildLayers() {
  const box = $('layers');
  for (const spec of JSON.parse(layer_specs())) {
    const input = document.createElement('input');
    input.type = 'checkbox';
    input.dataset.layer = spec.name;
    input.checked = spec.defaultOn;
    const label = document.createElement('label');
    label.title = spec.help;
    label.append(input, ` ${spec.label}`);
    box.append(label);
  }
}

function syncControls() {
  for (const [key, input] of inputs) {
    const v = app.get(key);
    if (v !== undefined && document.activeElement !== input) input.value = v;
  }
  for (const range of document.querySelectorAll('[data-slider]')) {
    if (document.activeElement !== range) range.value = app.get(range.dataset.slider);
  }
  syncGeneration();
}

function writeHash() {
  history.replaceState(null, '', `#${app.query()}`);
}

function applyField(key, value) {
  try {
    guarded(`Changing ${key}`, () => app.set(key, value.trim()));
    fieldError(key, '');
    state.hashErrors = state.hashErrors.filter((e) => e.field !== key);
    if (state.preset) { $('preset').value = ''; applyPreset(''); } // no longer the preset's figure
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

// ---- presets, from the wasm's preset table (src/presets.rs PRESETS) ----------------------------

const PRESETS = new Map(); // name -> {name, title, about, paper, url, config, views, compare}

function buildPresets() {
  VIEW_LAYERS = new Set(preset_views());
  const select = $('preset');
  for (const p of JSON.parse(presets_json())) {
    PRESETS.set(p.name, p);
    const opt = document.createElement('option');
    opt.value = p.name;
    opt.textContent = p.title;
    opt.title = p.about;
    select.append(opt);
  }
}

/** The preset's configuration over the page's defaults, and its views (the layers it names on,
 *  the other view layers off; the page always shows its loss chart). */
function applyPreset(name) {
  const p = PRESETS.get(name);
  const about = $('preset-about');
  if (!p) { about.replaceChildren(); state.preset = null; return; }
  takeHashErrors(guarded('The preset', () => app.apply_hash(`${app.defaults()}&${p.config}`)));
  for (const box of document.querySelectorAll('#layers input')) {
    if (!VIEW_LAYERS.has(box.dataset.layer)) continue;
    box.checked = p.views.includes(box.dataset.layer);
    app.set_layer(box.dataset.layer, box.checked);
  }
  const link = document.createElement('a');
  link.href = p.url;
  link.textContent = p.paper;
  link.rel = 'noopener';
  about.replaceChildren(`${p.about} From: `, link, '.');
  if (p.compare.length) about.append(` Compare with: ${p.compare.filter((c) => c !== p.name).map((c) => PRESETS.get(c).title).join('; ')}.`);
  state.preset = p.name;
  writeHash();
  syncControls();
  lossDirty = true;
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
  const flat = app.losses();
  const points = [];
  for (let i = 0; i + 1 < flat.length; i += 2) points.push([flat[i], flat[i + 1]]);
  drawChart($('loss'), {
    series: [{ points, color: '#7aa2ff' }], logY: true, smooth: 0.02,
    xCaption: (x) => `step ${fmt.int(x)}`, empty: 'loss (log scale) appears here',
  });
}

// ---- state and UI ------------------------------------------------------------------------------

function publish() {
  const s = app.state();
  Object.assign(state, s);
  state.ready = state.ready || (s.frames > 1 && s.trajStep !== null);
  return s;
}

function updatePanel(s) {
  $('stat-step').textContent = fmt.int(s.step);
  $('stat-loss').textContent = fmt.num(s.lossRecent);
  $('stat-rate').textContent = s.training && s.stepsPerSec > 0 ? fmt.int(s.stepsPerSec) : fmt.DASH;
  $('stat-backend').textContent = s.backendLabel;
  $('stat-backend').title = `${s.adapter}. ${s.backendReason}`;
  showText($('backend-reason'), s.backendReason);
  const play = $('play');
  play.textContent = s.training ? 'Pause' : s.runDone ? 'Train more' : 'Train';
  showText($('run-note'), s.runNote);
  play.setAttribute('aria-pressed', String(s.training));
  const flow = $('flow-play');
  flow.textContent = s.flowPlaying ? 'Stop flow' : 'Play flow';
  flow.setAttribute('aria-pressed', String(s.flowPlaying));
  showText($('heatmap-note'), s.heatmapNote);
  showText($('exact-note'), s.exactNote);
  showText($('exactflow-note'), s.exactFlow ? s.exactFlow.caption : null);
  showText($('quality-about'), s.qualityNote);
  showText($('notice'), s.notice);
  showText($('error'), s.error);
}

function updateTime(s) {
  const time = $('time');
  if (document.activeElement !== time || s.flowPlaying) time.value = s.t;
  const label = `t = ${fmt.fixed(s.t, 2)}`;
  $('time-out').textContent = label;
  $('hud-t').textContent = label;
}

let last = performance.now();
let lastPanel = 0;
let pendingInput = [];
function loop(now) {
  if (skipFrame(state, now, last, pendingInput.length > 0)) { // www/pace.js
    requestAnimationFrame(loop);
    return;
  }
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
  for (const d of pendingInput) d.frameMs = performance.now() - d.at;
  if (pendingInput.length) { state.inputDelays.push(...pendingInput); state.inputDelays.splice(0, Math.max(0, state.inputDelays.length - 200)); }
  pendingInput = [];
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
  $('reset').addEventListener('click', resetWithUndo);
  $('flow-play').addEventListener('click', () => app.set_flow_playing(!state.flowPlaying));
  $('time').addEventListener('input', (e) => app.set_time(Number(e.target.value)));
  for (const box of document.querySelectorAll('#layers input')) {
    app.set_layer(box.dataset.layer, box.checked);
    box.addEventListener('change', () => app.set_layer(box.dataset.layer, box.checked));
  }
  $('settings').addEventListener('submit', (e) => e.preventDefault());
  $('preset').addEventListener('change', (e) => applyPreset(e.target.value));
  for (const b of document.querySelectorAll('#meanflow-steps button')) b.addEventListener('click', () => applyField('nfe', b.dataset.nfe));
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
    takeHashErrors(guarded('The link', () => app.apply_hash(location.hash)));
    writeHash();
    syncControls();
    lossDirty = true;
  });
  document.addEventListener('keydown', (e) => {
    const at = performance.now();
    pendingInput.push({ key: e.key, handlerMs: at - e.timeStamp, at });
    const tag = (e.target.tagName || '').toLowerCase();
    if (['input', 'select', 'textarea', 'button', 'summary'].includes(tag) || e.ctrlKey || e.metaKey || e.altKey) return;
    if (e.key === ' ') { e.preventDefault(); state.training ? app.pause() : app.play(); }
    else if (e.key === '.') app.step_once();
    else if (e.key === 'r' || e.key === 'R') resetWithUndo();
    else if (e.key === 'f' || e.key === 'F') app.set_flow_playing(!state.flowPlaying);
  });
  let tick = performance.now();
  setInterval(() => {
    const t = performance.now();
    state.maxTimerLagMs = Math.max(state.maxTimerLagMs, t - tick - 50);
    tick = t;
  }, 50);
  // Reduced motion: no looping animation; show the result (t = 1) and let the scrubber move it.
  const reduce = window.matchMedia('(prefers-reduced-motion: reduce)');
  const applyMotion = () => { if (reduce.matches) app.set_time(1); };
  applyMotion();
  reduce.addEventListener('change', applyMotion);
  new ResizeObserver(fitCanvas).observe($('canvas-wrap'));
}

async function main() {
  try {
    // The wasm instance's linear memory: the soak checks it stops growing (a Rust-side leak does
    // not show in the JS heap).
    state.wasmMemory = (await init()).memory;
    buildControls();
    buildLayers();
    buildPresets();
    fitCanvas();
    const params = new URLSearchParams(location.search);
    const backend = params.get('cpu') === '1' ? 'cpu' : (params.get('backend') || 'auto');
    app = await App.start($('flow'), location.hash, backend, params.get('present') || '', false);
    state.app = app;
    fitCanvas();
    app.resize($('flow').width, $('flow').height, Math.min(window.devicePixelRatio || 1, 3));
    takeHashErrors(app.hash_errors());
    writeHash();
    syncControls();
    wire();
    initTargets(app, state);
    initQuality(app, state);
    initReflow(app, state);
    initKeep(app, state, () => { writeHash(); syncControls(); lossDirty = true; });
    $('loading').hidden = true;
    requestAnimationFrame((t) => { last = t; loop(t); });
  } catch (e) {
    fail(e);
  }
}

main();
