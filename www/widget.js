// www/widget.js — <flow-matching-demo>: a live, trainable flow-matching figure for blog posts.
//
// One ES module defines the custom element. It imports the wasm-bindgen glue from the package
// directory (PKG below: `../pkg/` in the repository, `./` in the published npm package, where
// scripts/build-wasm.sh copies this file and widget.css next to flowmatch.js and
// flowmatch_bg.wasm), so a blog can host the four files anywhere and include only
//   <script type="module" src="/any/path/widget.js"></script>
//   <flow-matching-demo dataset="moons"></flow-matching-demo>
// The styles load from widget.css next to this module through a <link> in the shadow root, so the
// element works under a strict CSP (style-src 'self'; no inline styles anywhere).
//
// Attributes (all optional; every one applies live):
//   configuration: dataset source width depth activation lr schedule batch seed sigma-min path coupling
//     weight-decay solver nfe particles (the demo page's hash fields, dashes for underscores), and
//     config="dataset=moons&width=64..." (a whole demo-page hash; single attributes win over it).
//   shown: trajectories field target loss = on|off (defaults off, off, on, on); particles always.
//   controls = none | minimal (default: play/pause, step and loss) | full (+ step, reset, layers,
//     dataset, exports); autoplay = on|off (default on); train-steps = N (pause at step N;
//     default 2000; 0 = never); size = "W" or "WxH" in CSS pixels; aspect = "4/3", "16:9", "1"
//     (default 4/3); theme = auto | light | dark (default auto: prefers-color-scheme).
// An invalid value shows an inline message naming the attribute and what it accepts, and that
// setting falls back to its default.
//
// Several figures per page share one GPU device (src/web/device.rs) and one requestAnimationFrame
// loop; a figure starts when it first scrolls into view, and runs only while it is on screen
// and the tab is visible (IntersectionObserver, visibilitychange), resuming where it stopped.
//
// JS API: play(), pause(), reset(), step/loss/state/ready/messages getters, toPNG() → Blob,
// samplesCSV() → CSV text (x,y), record(seconds) → WebM Blob; events: ready, progress
// ({step, loss}), error ({message, attribute}).

import init, { App, choices, config_defaults } from '../pkg/flowmatch.js';

const CONFIG_ATTRS = [
  'dataset', 'source', 'width', 'depth', 'activation', 'lr', 'schedule', 'batch', 'seed', 'sigma-min', 'path',
  'coupling', 'weight-decay', 'solver', 'nfe', 'particles',
];
// Widget attribute → App layer.
const LAYER_ATTRS = { trajectories: 'trails', field: 'arrows', target: 'target' };
const LAYER_DEFAULTS = { trajectories: false, field: false, target: true, loss: true };
const WIDGET_ATTRS = ['config', 'controls', 'autoplay', 'train-steps', 'size', 'aspect', 'theme', 'trajectories', 'field', 'target', 'loss'];
const DEFAULT_TRAIN_STEPS = 2000;
const DEFAULT_ASPECT = '4 / 3';
const STYLE_URL = new URL('widget.css', import.meta.url).href;

let wasmReady = null;
const loadWasm = () => (wasmReady ??= init());

// ---- one animation loop and one observer for every instance -------------------------------------

const running = new Set();
let rafId = 0;
function tick(now) {
  rafId = 0;
  for (const w of running) w._tick(now);
  wake();
}
function wake() {
  if (!rafId && running.size && !document.hidden) rafId = requestAnimationFrame(tick);
}
const all = new Set();
document.addEventListener('visibilitychange', () => { for (const w of all) w._updateRunning(); });
let observer = null;
function observe(el) {
  observer ??= new IntersectionObserver((entries) => {
    for (const e of entries) e.target._onIntersect(e.isIntersecting);
  }, { rootMargin: '0px' });
  observer.observe(el);
}

// ---- attribute parsing (widget-only attributes; the wasm validates the configuration) -----------

function parseSwitch(v) {
  const s = v.trim().toLowerCase();
  if (['', 'on', 'true', 'yes', '1'].includes(s)) return true;
  if (['off', 'false', 'no', '0'].includes(s)) return false;
  throw new Error('expected on or off (true/false)');
}
function parseChoice(v, options) {
  const s = v.trim().toLowerCase();
  if (options.includes(s)) return s;
  throw new Error(`expected one of ${options.join('|')}`);
}
function parseSize(v) {
  const m = v.trim().toLowerCase().match(/^(\d+(?:\.\d+)?)(?:px)?(?:\s*[x×]\s*(\d+(?:\.\d+)?)(?:px)?)?$/);
  const w = m && Number(m[1]), h = m && m[2] !== undefined ? Number(m[2]) : null;
  if (!m || !(w >= 50 && w <= 4000) || (h !== null && !(h >= 50 && h <= 4000))) {
    throw new Error('expected a width in CSS pixels from 50 to 4000, optionally with a height ("480" or "480x360")');
  }
  return { w, h };
}
function parseAspect(v) {
  const m = v.trim().match(/^(\d+(?:\.\d+)?)\s*(?:[/:]\s*(\d+(?:\.\d+)?))?$/);
  const r = m && Number(m[1]) / (m[2] !== undefined ? Number(m[2]) : 1);
  if (!m || !(r >= 0.2 && r <= 5)) throw new Error('expected a ratio such as 4/3, 16:9 or 1, between 0.2 and 5');
  return `${Number(m[1])} / ${m[2] !== undefined ? Number(m[2]) : 1}`;
}
function parseCount(v) {
  const s = v.trim();
  if (!/^\d+$/.test(s) || Number(s) > 100000000) throw new Error('expected a whole number of steps from 0 (never stop) to 100000000');
  return Number(s);
}

const fmtLoss = (x) => (Number.isFinite(x) ? x.toPrecision(3) : '–');

function el(tag, props = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (k === 'class') e.className = v;
    else if (k.startsWith('data-') || k.startsWith('aria-') || k === 'role' || k === 'part') e.setAttribute(k, v);
    else e[k] = v;
  }
  e.append(...children);
  return e;
}

function download(blob, name) {
  const a = document.createElement('a');
  a.href = URL.createObjectURL(blob);
  a.download = name;
  a.click();
  setTimeout(() => URL.revokeObjectURL(a.href), 10000);
}

export class FlowMatchingDemo extends HTMLElement {
  static get observedAttributes() { return [...CONFIG_ATTRS, ...WIDGET_ATTRS]; }

  constructor() {
    super();
    this._app = null;
    this._starting = false;
    this._visible = false;
    this._last = null;
    this._messages = new Map(); // attribute → message
    this._userPaused = false;
    this._defaults = null;
    this._lastUi = 0;
    this._lastStep = -1;
    this._errorShown = null;
    this._build();
  }

  // ---- public API ------------------------------------------------------------------------------

  /** Trains (again): past a reached `train-steps` limit, training continues without one. */
  play() {
    this._userPaused = false;
    if (!this._app) return;
    if (this._app.step_limit() && this._app.state().step >= this._app.step_limit()) this._app.set_step_limit(0);
    this._app.play();
    this._refresh();
  }
  pause() {
    this._userPaused = true;
    if (this._app) { this._app.pause(); this._refresh(); }
  }
  /** Restarts training from the seed's initial weights (with the `train-steps` limit again). */
  reset() {
    if (!this._app) return;
    this._app.reset();
    this._app.set_step_limit(this._trainSteps());
    if (this._autoplay() && !this._userPaused) this._app.play();
    this._refresh();
  }
  get step() { return this._app ? this._app.state().step : 0; }
  /** Mean of the last ten losses read back (NaN before the first). */
  get loss() { return this._app ? this._app.state().lossRecent : NaN; }
  get ready() { return !!this._app; }
  /** The App's state object (step, loss, stepsPerSec, backend, devicesOpened, ...). */
  get state() { return this._app ? this._app.state() : null; }
  /** `[{attribute, message}]` for attributes that were rejected. */
  get messages() { return [...this._messages].map(([attribute, message]) => ({ attribute, message })); }
  /** The configuration in use, as a demo-page hash. */
  get config() { return this._app ? this._app.query() : null; }

  /** PNG of the current view. */
  toPNG() {
    return new Promise((resolve, reject) => {
      if (!this._app) return reject(new Error('the figure has not started yet'));
      this._app.frame(0); // draw into the canvas in this task (WebGPU canvases present at its end)
      this._canvas.toBlob((b) => (b ? resolve(b) : reject(new Error('the canvas could not be encoded as PNG'))), 'image/png');
    });
  }
  /** The particles' positions at t = 1 as CSV text with a header `x,y`. */
  async samplesCSV() {
    if (!this._app) throw new Error('the figure has not started yet');
    return await this._app.export_samples_csv();
  }
  /** A WebM recording of the canvas for `seconds` (the flow animation plays meanwhile). */
  record(seconds = 4) {
    return new Promise((resolve, reject) => {
      if (!this._app) return reject(new Error('the figure has not started yet'));
      if (!this._canvas.captureStream || !globalThis.MediaRecorder) return reject(new Error('this browser cannot record a canvas (no captureStream/MediaRecorder)'));
      const type = ['video/webm;codecs=vp9', 'video/webm;codecs=vp8', 'video/webm'].find((t) => MediaRecorder.isTypeSupported(t));
      if (!type) return reject(new Error('this browser cannot record WebM'));
      const stream = this._canvas.captureStream(30);
      const rec = new MediaRecorder(stream, { mimeType: type, videoBitsPerSecond: 2500000 });
      const chunks = [];
      rec.ondataavailable = (e) => { if (e.data.size) chunks.push(e.data); };
      rec.onerror = (e) => reject(e.error || new Error('recording failed'));
      rec.onstop = () => {
        stream.getTracks().forEach((t) => t.stop());
        resolve(new Blob(chunks, { type: 'video/webm' }));
      };
      this._app.set_flow_playing(true);
      rec.start(250);
      setTimeout(() => rec.state !== 'inactive' && rec.stop(), Math.max(0.2, Math.min(Number(seconds) || 4, 30)) * 1000);
    });
  }

  // ---- element lifecycle -----------------------------------------------------------------------

  connectedCallback() {
    all.add(this);
    this._applyWidgetAttrs();
    observe(this);
    this._updateRunning();
  }
  disconnectedCallback() {
    all.delete(this);
    if (observer) observer.unobserve(this);
    this._visible = false;
    this._updateRunning();
    // Removed for good (not just moved): release the model and its GPU buffers.
    queueMicrotask(() => { if (!this.isConnected) this._destroy(); });
  }
  _destroy() {
    if (!this._app) return;
    running.delete(this);
    this._app.free();
    this._app = null;
    this._status.textContent = 'Stopped.';
    this._status.hidden = false;
  }
  attributeChangedCallback(name, oldValue, value) {
    if (oldValue === value) return;
    if (WIDGET_ATTRS.includes(name) && name !== 'config') {
      this._applyWidgetAttrs();
      if (this._app && name === 'train-steps') this._app.set_step_limit(this._trainSteps());
      if (this._app && name === 'autoplay' && !this._userPaused) (this._autoplay() ? this._app.play() : this._app.pause());
      if (this._app && (name in LAYER_ATTRS)) this._app.set_layer(LAYER_ATTRS[name], this._layer(name));
      this._refresh();
    } else if (this._app && !this._configQueued) {
      // Several attributes set in a row (a script switching setups) apply as one change.
      this._configQueued = true;
      queueMicrotask(() => { this._configQueued = false; if (this._app) this._applyConfig(); });
    }
  }

  _onIntersect(visible) {
    this._visible = visible;
    if (visible && !this._app && !this._starting) this._start();
    this._updateRunning();
  }
  _updateRunning() {
    const on = !!this._app && this._visible && this.isConnected && !document.hidden;
    if (on && !running.has(this)) {
      this._last = null; // the first frame after a pause has dt = 0: resume where it was
      running.add(this);
      wake();
    } else if (!on) {
      running.delete(this);
    }
    this._stage.classList.toggle('offscreen', !!this._app && !on);
  }

  // ---- shadow DOM ------------------------------------------------------------------------------

  _build() {
    const root = this.attachShadow({ mode: 'open' });
    const link = el('link', { rel: 'stylesheet', href: STYLE_URL });
    this._canvas = el('canvas', { class: 'flow', role: 'img', 'aria-label': 'Particles carried by a learned flow from a Gaussian (t = 0) to the target data (t = 1)' });
    this._lossCanvas = el('canvas', { class: 'loss', 'aria-hidden': 'true', part: 'loss' });
    this._status = el('p', { class: 'status' }, 'Loading…');
    this._stage = el('div', { class: 'stage', part: 'stage' }, this._canvas, this._lossCanvas, this._status);
    this._playBtn = el('button', { type: 'button', class: 'play', 'aria-pressed': 'true' }, 'Pause');
    this._playBtn.addEventListener('click', () => (this._app && this._app.state().training ? this.pause() : this.play()));
    this._stats = el('span', { class: 'stats', 'aria-live': 'off' }, 'step 0 · loss –');
    const stepBtn = el('button', { type: 'button', class: 'full-only', title: 'One training step' }, 'Step');
    stepBtn.addEventListener('click', () => { if (this._app) { this._userPaused = true; this._app.step_once(); this._refresh(); } });
    const resetBtn = el('button', { type: 'button', class: 'full-only', title: "Restart from the seed's initial weights" }, 'Reset');
    resetBtn.addEventListener('click', () => this.reset());
    this._datasetSelect = el('select', { class: 'full-only', 'aria-label': 'Target dataset' });
    this._datasetSelect.addEventListener('change', () => this.setAttribute('dataset', this._datasetSelect.value));
    const layers = el('span', { class: 'layers full-only' });
    this._layerBoxes = {};
    for (const name of ['trajectories', 'field', 'target', 'loss']) {
      const box = el('input', { type: 'checkbox' });
      box.addEventListener('change', () => this.setAttribute(name, box.checked ? 'on' : 'off'));
      this._layerBoxes[name] = box;
      layers.append(el('label', {}, box, ` ${name}`));
    }
    const exports = el('span', { class: 'exports full-only' });
    const exp = (label, title, fn) => {
      const b = el('button', { type: 'button', title }, label);
      b.addEventListener('click', async () => {
        b.disabled = true;
        try { await fn(); } catch (e) { this._fail(String(e.message || e)); } finally { b.disabled = false; }
      });
      exports.append(b);
    };
    const base = () => `flow-${this._app ? this._app.get('dataset') : 'figure'}-step${this.step}`;
    exp('PNG', 'Download the current view as PNG', async () => download(await this.toPNG(), `${base()}.png`));
    exp('CSV', 'Download the samples at t = 1 as CSV', async () => download(new Blob([await this.samplesCSV()], { type: 'text/csv' }), `${base()}.csv`));
    exp('WebM', 'Record 4 seconds of the flow as WebM', async () => download(await this.record(4), `${base()}.webm`));
    this._bar = el('div', { class: 'bar', part: 'controls' }, this._playBtn, stepBtn, resetBtn, this._stats, this._datasetSelect, layers, exports);
    this._messageList = el('ul', { class: 'messages', role: 'alert', hidden: true });
    this._error = el('p', { class: 'error', role: 'alert', hidden: true });
    this._notice = el('p', { class: 'notice', hidden: true });
    const slot = el('slot');
    const caption = el('figcaption', { hidden: true }, slot);
    // The element's own content is the caption; no content, no caption box.
    slot.addEventListener('slotchange', () => {
      caption.hidden = !slot.assignedNodes().some((n) => n.nodeType === 1 || n.textContent.trim());
    });
    this._figure = el('figure', { class: 'fm', part: 'figure' }, this._stage, this._bar, this._messageList, this._error, this._notice, caption);
    root.append(link, this._figure);
    new ResizeObserver(() => this._fit()).observe(this._stage);
  }

  // ---- attributes ------------------------------------------------------------------------------

  _message(attr, text) {
    const same = (this._messages.get(attr) || '') === (text || '');
    if (text) this._messages.set(attr, text); else this._messages.delete(attr);
    if (same) return;
    this._messageList.replaceChildren(...[...this._messages].map(([a, m]) => el('li', { 'data-attribute': a }, m)));
    this._messageList.hidden = this._messages.size === 0;
    if (text) {
      console.warn(`<flow-matching-demo>: ${text}`);
      this.dispatchEvent(new CustomEvent('error', { detail: { message: text, attribute: attr } }));
    }
  }

  /** Parses one widget attribute: its value, or the fallback with an inline message. */
  _widgetAttr(name, parse, fallback, fallbackText) {
    const v = this.getAttribute(name);
    if (v === null) { this._message(name, ''); return fallback; }
    try {
      const out = parse(v);
      this._message(name, '');
      return out;
    } catch (e) {
      if (this._messages.get(name)?.startsWith(`${name}="${v}"`)) return fallback;
      this._message(name, `${name}="${v}": ${e.message}; using the default (${fallbackText})`);
      return fallback;
    }
  }
  _trainSteps() { return this._widgetAttr('train-steps', parseCount, DEFAULT_TRAIN_STEPS, String(DEFAULT_TRAIN_STEPS)); }
  _autoplay() { return this._widgetAttr('autoplay', parseSwitch, true, 'on'); }
  _layer(name) { return this._widgetAttr(name, parseSwitch, LAYER_DEFAULTS[name], LAYER_DEFAULTS[name] ? 'on' : 'off'); }

  _applyWidgetAttrs() {
    const controls = this._widgetAttr('controls', (v) => parseChoice(v, ['none', 'minimal', 'full']), 'minimal', 'minimal');
    this._figure.dataset.controls = controls;
    const theme = this._widgetAttr('theme', (v) => parseChoice(v, ['auto', 'light', 'dark']), 'auto', 'auto');
    this._figure.classList.toggle('theme-light', theme === 'light');
    this._figure.classList.toggle('theme-dark', theme === 'dark');
    const size = this._widgetAttr('size', parseSize, null, 'the width of the column');
    const aspect = this._widgetAttr('aspect', parseAspect, DEFAULT_ASPECT, '4/3');
    // CSSOM custom properties (allowed under style-src 'self', unlike style attributes).
    if (size) this.style.setProperty('--fm-width', `${size.w}px`); else this.style.removeProperty('--fm-width');
    this.style.setProperty('--fm-aspect', size && size.h ? `${size.w} / ${size.h}` : aspect);
    for (const name of Object.keys(LAYER_DEFAULTS)) this._layerBoxes[name].checked = this._layer(name);
    this._lossCanvas.hidden = !this._layer('loss');
    this._trainSteps();
    this._autoplay();
  }

  /** The attribute (or `config (field)`) a configuration field came from. */
  _attrFor(field) {
    const attr = field.replace(/_/g, '-');
    return this.hasAttribute(attr) ? attr : `config (${field})`;
  }

  /** `config` first, then the single attributes, as one hash (later pairs win). */
  _hash() {
    const parts = [];
    const config = (this.getAttribute('config') || '').trim().replace(/^#/, '');
    if (config) parts.push(config);
    for (const a of CONFIG_ATTRS) {
      const v = this.getAttribute(a);
      if (v !== null) parts.push(`${a.replace(/-/g, '_')}=${encodeURIComponent(v.trim())}`);
    }
    return parts.join('&');
  }

  _showConfigErrors(errors) {
    const texts = new Map();
    for (const e of errors) {
      const attr = this._attrFor(e.field);
      const def = this._defaults?.[e.field];
      const key = this.hasAttribute(attr) ? attr : 'config';
      const shown = this.hasAttribute(attr) ? `="${this.getAttribute(attr)}"` : '';
      const text = `${attr}${shown}: ${e.message}${def !== undefined ? `; using the default (${def})` : ''}`;
      texts.set(key, texts.has(key) ? `${texts.get(key)}\n${text}` : text);
    }
    for (const a of [...CONFIG_ATTRS, 'config']) this._message(a, texts.get(a) || '');
  }

  /** Applies the configuration attributes live: defaults, then `config`, then single attributes,
   *  so a rejected value leaves that field at its default. */
  _applyConfig() {
    const before = this._app.state().step;
    const defaults = Object.entries(this._defaults).map(([k, v]) => `${k}=${encodeURIComponent(v)}`).join('&');
    const errors = Array.from(this._app.apply_hash(`${defaults}&${this._hash()}`), (e) => ({ field: e.field, message: e.message }));
    this._showConfigErrors(errors);
    this._syncControls();
    if (this._app.state().step < before || before === 0) {
      this._app.set_step_limit(this._trainSteps());
      if (this._autoplay() && !this._userPaused) this._app.play();
    }
    this._refresh();
  }

  // ---- start and frames ------------------------------------------------------------------------

  async _start() {
    this._starting = true;
    this._status.textContent = 'Starting…';
    this._status.hidden = false;
    try {
      await loadWasm();
      this._fit();
      const app = await App.create(this._canvas, this._hash(), false, '');
      if (!this.isConnected) { app.free(); this._status.textContent = 'Stopped.'; return; }
      const s = app.state();
      this._defaults = Object.fromEntries(config_defaults(s.software).split('&').map((kv) => kv.split('=')));
      this._app = app;
      this._fit(true);
      this._showConfigErrors(Array.from(app.hash_errors(), (e) => ({ field: e.field, message: e.message })));
      for (const name of Object.keys(LAYER_ATTRS)) app.set_layer(LAYER_ATTRS[name], this._layer(name));
      app.set_step_limit(this._trainSteps());
      if (!this._autoplay() || this._userPaused) app.pause();
      if (window.matchMedia('(prefers-reduced-motion: reduce)').matches) app.set_time(1);
      this._syncControls();
      this._status.hidden = true;
      if (s.notice) {
        this._notice.textContent = s.backend === 'cpu' ? 'No WebGPU in this browser: training on the CPU with a smaller model (slower, same maths).' : s.notice;
        this._notice.title = s.notice;
        this._notice.hidden = false;
      }
      this._refresh();
      this.dispatchEvent(new CustomEvent('ready', { detail: { backend: s.backend, adapter: s.adapter } }));
    } catch (e) {
      this._fail(String((e && e.message) || e));
      this._status.textContent = 'This figure could not start.';
    } finally {
      this._starting = false;
      this._updateRunning();
    }
  }

  _syncControls() {
    if (!this._app) return;
    const ds = this._app.get('dataset');
    if (!this._datasetSelect.options.length) {
      for (const name of choices('dataset')) {
        this._datasetSelect.append(el('option', { value: name, textContent: name }));
      }
    }
    this._datasetSelect.value = ds;
  }

  _fit(force = false) {
    const r = this._stage.getBoundingClientRect();
    const software = this._app ? this._app.state().software : true;
    // Software adapters (and the CPU backend) draw every pixel on the CPU: keep them at 1x.
    const dpr = software ? 1 : Math.min(window.devicePixelRatio || 1, 2);
    const w = Math.max(1, Math.round(r.width * dpr)), h = Math.max(1, Math.round(r.height * dpr));
    if (force || this._canvas.width !== w || this._canvas.height !== h) {
      this._canvas.width = w;
      this._canvas.height = h;
      if (this._app) this._app.resize(w, h, dpr);
    }
  }

  _tick(now) {
    const dt = this._last === null ? 0 : now - this._last;
    this._last = now;
    try {
      this._app.frame(dt);
      if (now - this._lastUi > 250) { this._lastUi = now; this._refresh(); }
    } catch (e) {
      running.delete(this);
      this._fail(String((e && e.message) || e));
    }
  }

  _fail(message) {
    this._error.textContent = message;
    this._error.hidden = false;
    console.error(`<flow-matching-demo>: ${message}`);
    this.dispatchEvent(new CustomEvent('error', { detail: { message } }));
  }

  _refresh() {
    if (!this._app) return;
    const s = this._app.state();
    this._stats.textContent = `step ${s.step.toLocaleString('en')} · loss ${fmtLoss(s.lossRecent)}`;
    this._playBtn.textContent = s.training ? 'Pause' : 'Train';
    this._playBtn.setAttribute('aria-pressed', String(s.training));
    if (s.error && s.error !== this._errorShown) { this._errorShown = s.error; this._fail(s.error); }
    if (!s.error && this._errorShown) { this._errorShown = null; this._error.hidden = true; }
    if (s.step !== this._lastStep) {
      this._lastStep = s.step;
      this.dispatchEvent(new CustomEvent('progress', { detail: { step: s.step, loss: s.lossRecent } }));
    }
    if (!this._lossCanvas.hidden) this._drawLoss();
  }

  _drawLoss() {
    const c = this._lossCanvas;
    const w = Math.max(1, Math.round(c.clientWidth)), h = Math.max(1, Math.round(c.clientHeight));
    if (c.width !== w || c.height !== h) { c.width = w; c.height = h; }
    const g = c.getContext('2d');
    g.clearRect(0, 0, w, h);
    const flat = this._app.losses();
    const n = flat.length / 2;
    if (n < 2) return;
    const alpha = Math.min(1, 30 / n);
    const ys = new Float64Array(n);
    let ema = Math.log10(Math.max(flat[1], 1e-12)), lo = Infinity, hi = -Infinity;
    for (let i = 0; i < n; i++) {
      ema += alpha * (Math.log10(Math.max(flat[2 * i + 1], 1e-12)) - ema);
      ys[i] = ema; lo = Math.min(lo, ema); hi = Math.max(hi, ema);
    }
    if (hi - lo < 0.1) hi = lo + 0.1;
    const x0 = flat[0], x1 = Math.max(flat[2 * (n - 1)], x0 + 1);
    g.strokeStyle = getComputedStyle(c).color || '#7aa2ff';
    g.lineWidth = 1.5;
    g.beginPath();
    for (let i = 0; i < n; i++) {
      const x = 2 + ((flat[2 * i] - x0) / (x1 - x0)) * (w - 4);
      const y = 2 + (1 - (ys[i] - lo) / (hi - lo)) * (h - 4);
      (i ? g.lineTo : g.moveTo).call(g, x, y);
    }
    g.stroke();
  }
}

if (!customElements.get('flow-matching-demo')) customElements.define('flow-matching-demo', FlowMatchingDemo);
