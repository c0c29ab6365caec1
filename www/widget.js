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
// Attributes (all optional; every one applies live). The lists come from the wasm, so a new
// setting or layer is an attribute with no change here:
//   configuration: every setting of the demo page (`field_specs()`, dashes for underscores: dataset
//     source width depth activation lr batch steps seed sigma-min path coupling weight-decay solver
//     nfe particles tol ...), `train-steps` (= steps: pause at step N, default 2000, 0 = never),
//     and config="dataset=moons&width=64..." (a whole demo-page hash; single attributes win).
//   layers (`layer_specs()`): trajectories field exact exactflow target heatmap = on|off (older names trails and
//     arrows still work; `particles` is the count, the particles layer is always on); loss = on|off.
//   controls = none | minimal (default: play/pause, step and loss) | full (+ step, reset, layers,
//     dataset, exports); autoplay = on|off (default on); size = "W" or "WxH" in CSS pixels;
//     aspect = "4/3", "16:9", "1" (default 4/3); theme = auto | light | dark (default auto:
//     prefers-color-scheme); backend = webgpu | cpu | auto (default webgpu: WebGPU where the
//     browser has it, else the CPU); preset = a figure of the literature by name (`presets_json()`,
//     src/presets.rs: its configuration and its views; `config`, single attributes and layer
//     attributes given beside it win).
// An invalid value shows an inline message naming the attribute and what it accepts, and that
// setting falls back to its default.
//
// Several figures per page share one GPU device (src/web/device.rs) and one requestAnimationFrame
// loop; a figure starts when it first scrolls into view, and runs only while it is on screen
// and the tab is visible (IntersectionObserver, visibilitychange), resuming where it stopped.
// A figure off screen (or in a hidden tab) for `FlowMatchingDemo.releaseAfterMs` (10 s) releases
// its GPU buffers and pipelines: its model file (weights, Adam state, step), loss curve and
// training state are kept in JS memory and the App is freed; back on screen it is rebuilt from
// them (docs/EMBEDDING.md: a page of 40 figures holds GPU memory for the ones on screen only).
//
// JS API: play(), pause(), reset(), step/loss/state/ready/messages getters, toPNG() → Blob,
// samplesCSV() → CSV text (x,y), record(seconds) → WebM Blob, saveModel(format) → the model file
// as a Blob (`model_formats()`: flowmatch | safetensors; the full controls' export buttons); events: ready, progress
// ({step, loss}), error ({message, attribute}).

import init, { App, choices, field_specs, layer_specs, model_formats, preset_views, presets_json } from '../pkg/flowmatch.js';
import { drawChart } from './chart.js';
import { download } from './download.js';
import { skipFrame } from './pace.js';
import * as fmt from './format.js';

let wasmReady = null;
const loadWasm = () => (wasmReady ??= init());
// The attribute lists come from the wasm: load it before the element is defined.
await loadWasm();

const FIELDS = JSON.parse(field_specs()).filter((f) => f.scope === 'all');
const LAYERS = JSON.parse(layer_specs());
/** Attribute → setting, for every page setting (`sigma-min` → `sigma_min`) and the aliases. */
const CONFIG_ATTRS = Object.fromEntries([...FIELDS.map((f) => [f.attr, f.name]), ['train-steps', 'steps']]);
/** Attribute → layer, for every layer name and its older names, except a name that is also a
 *  setting's attribute: `particles` is the particle count (the particles layer is always on). */
const LAYER_ATTRS = Object.fromEntries(LAYERS.flatMap((l) => [[l.name, l.name], ...l.aliases.map((a) => [a, l.name])]).filter(([a]) => !(a in CONFIG_ATTRS)));
const LAYER_DEFAULTS = Object.fromEntries(LAYERS.map((l) => [l.name, l.defaultOn]));
/** Preset name → {name, title, about, paper, url, config, views, compare} (src/presets.rs). */
const PRESETS = new Map(JSON.parse(presets_json()).map((p) => [p.name, p]));
/** The views a preset turns on or off (layer names and `loss`). */
const PRESET_VIEWS = preset_views();
const MODEL_FORMATS = model_formats();
/** The widget's own options (not settings, not layers). */
const OPTIONS = ['config', 'preset', 'controls', 'autoplay', 'size', 'aspect', 'theme', 'loss', 'backend'];
/** Every attribute the element reacts to. */
export const WIDGET_ATTRIBUTES = [...Object.keys(CONFIG_ATTRS), ...Object.keys(LAYER_ATTRS), ...OPTIONS];
/** What embed.html passes on as attributes (the rest of its hash is the `config`): the layers,
 *  the step limit's widget name and the options, less `size` and `aspect` (the frame decides). */
export const EMBED_OPTIONS = [...Object.keys(LAYER_ATTRS), 'train-steps', ...OPTIONS.filter((o) => !['config', 'size', 'aspect'].includes(o))];
const DEFAULT_ASPECT = '4 / 3';
const STYLE_URL = new URL('widget.css', import.meta.url).href;

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

export class FlowMatchingDemo extends HTMLElement {
  static get observedAttributes() { return WIDGET_ATTRIBUTES; }
  /** Milliseconds off screen (or in a hidden tab) before a figure releases its GPU buffers. */
  static releaseAfterMs = 10000;

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
    // Released off screen: {bytes, losses, training, stepLimit, hash, state} to rebuild from.
    this._kept = null;
    this._releaseTimer = 0;
    this._releasing = false;
    this._build();
  }

  // ---- public API ------------------------------------------------------------------------------

  /** Trains (again): after a run of `train-steps` steps has ended, another run of as many. */
  play() {
    this._userPaused = false;
    if (this._kept) this._kept.training = true;
    if (!this._app) return;
    this._app.play();
    this._refresh();
  }
  pause() {
    this._userPaused = true;
    if (this._kept) this._kept.training = false;
    if (this._app) { this._app.pause(); this._refresh(); }
  }
  /** Restarts training from the seed's initial weights (with the step limit of the attributes). */
  reset() {
    if (!this._app) return;
    this._app.reset();
    this._applyConfig(); // the step limit the attributes give, again
  }
  get step() { return this.state ? this.state.step : 0; }
  /** Mean of the last ten losses read back (null before the first, or when one is not finite). */
  get loss() { return this.state ? this.state.lossRecent : null; }
  get ready() { return !!this._app; }
  /** The App's state object (step, loss, stepsPerSec, backend, devicesOpened, ...). */
  get state() { return this._app ? this._app.state() : this._kept ? this._kept.state : null; }
  /** `[{attribute, message}]` for attributes that were rejected. */
  get messages() { return [...this._messages].map(([attribute, message]) => ({ attribute, message })); }
  /** The configuration in use, as a demo-page hash. */
  get config() { return this._app ? this._app.query() : null; }

  /** The configuration the figure falls back to for what it is not told (the defaults for its
   *  engine: a GPU, a software adapter or the CPU), as a demo-page hash; null before it starts. */
  get defaults() { return this._app ? this._app.defaults() : null; }

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
  /** The model (configuration, weights, training state) as a file in `format`
   *  (`model_formats()`: flowmatch, the default, or safetensors). */
  async saveModel(format = MODEL_FORMATS[0]) {
    if (!this._app && this._kept && format === 'flowmatch') return new Blob([this._kept.bytes], { type: 'application/octet-stream' });
    if (!this._app) throw new Error(this._kept ? 'the figure released its GPU buffers off screen: scroll it into view to save it in this format' : 'the figure has not started yet');
    if (!MODEL_FORMATS.includes(format)) throw new Error(`unknown model format "${format}": expected one of ${MODEL_FORMATS.join('|')}`);
    return new Blob([await this._app.save_model(format)], { type: 'application/octet-stream' });
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
      // At least `seconds`, and until two frames reached the canvas: a software adapter on a
      // loaded machine may draw less than one frame a second (drawing keeps to its share of the
      // device), and a recording without a frame is empty. 30 s at most.
      const presented = () => this._app.state().framesPresented || 0;
      const first = presented(), t0 = performance.now(), ms = Math.max(0.2, Math.min(Number(seconds) || 4, 30)) * 1000;
      const check = () => {
        if (rec.state === 'inactive') return;
        const waited = performance.now() - t0;
        if ((waited >= ms && presented() >= first + 2) || waited >= 30000) rec.stop();
        else setTimeout(check, 100);
      };
      setTimeout(check, ms);
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
    clearTimeout(this._releaseTimer);
    this._releaseTimer = 0;
    this._kept = null;
    if (!this._app) return;
    running.delete(this);
    const app = this._app;
    this._app = null;
    try { app.free(); } catch { /* a save in flight holds it: freed when the page drops it */ }
    this._status.textContent = 'Stopped.';
    this._status.hidden = false;
  }
  attributeChangedCallback(name, oldValue, value) {
    if (oldValue === value) return;
    if (name === 'preset') {
      this._applyWidgetAttrs();
      if (this._app) for (const l of LAYERS) this._app.set_layer(l.name, this._layerOn(l.name));
    }
    if (!(name in CONFIG_ATTRS) && name !== 'config' && name !== 'preset') {
      this._applyWidgetAttrs();
      if (this._app && name === 'autoplay' && !this._userPaused) (this._autoplay() ? this._app.play() : this._app.pause());
      if (this._app && (name in LAYER_ATTRS)) this._app.set_layer(LAYER_ATTRS[name], this._layerOn(LAYER_ATTRS[name]));
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
    const wanted = this._visible && this.isConnected && !document.hidden;
    const on = !!this._app && wanted;
    if (on && !running.has(this)) {
      this._last = null; // the first frame after a pause has dt = 0: resume where it was
      running.add(this);
      wake();
    } else if (!on) {
      running.delete(this);
    }
    if (wanted || !this._app) {
      clearTimeout(this._releaseTimer);
      this._releaseTimer = 0;
    } else if (!this._releaseTimer && this.isConnected) {
      this._releaseTimer = setTimeout(() => { this._releaseTimer = 0; this._release(); }, FlowMatchingDemo.releaseAfterMs);
    }
    if (wanted && !this._app && this._kept && !this._starting) this._start();
    this._stage.classList.toggle('offscreen', (!!this._app || !!this._kept) && !on);
  }

  /** Off screen long enough: keeps the model file (weights, Adam state, step), the loss curve
   *  and whether it trained, and frees the App with its GPU buffers and pipelines. */
  async _release() {
    const app = this._app;
    if (!app || this._releasing || this._starting || running.has(this)) return;
    this._releasing = true;
    try {
      const bytes = await app.save_model();
      // Back on screen (or removed) meanwhile: it stays as it is.
      if (this._app !== app || running.has(this) || !this.isConnected || (this._visible && !document.hidden)) return;
      const state = { ...app.state(), released: true };
      this._kept = { bytes, losses: app.losses(), training: state.training, stepLimit: app.step_limit(), hash: this._hash(), state };
      this._app = null;
      app.free();
      this._stage.classList.add('offscreen');
    } catch (e) {
      console.warn(`<flow-matching-demo>: keeping the GPU buffers (the model could not be read: ${(e && e.message) || e})`);
    } finally {
      this._releasing = false;
    }
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
    for (const name of [...LAYERS.map((l) => l.name), 'loss']) {
      const box = el('input', { type: 'checkbox' });
      box.addEventListener('change', () => this.setAttribute(name === 'loss' ? name : this._layerAttr(name), box.checked ? 'on' : 'off'));
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
    for (const f of MODEL_FORMATS) exp(`.${f}`, `Download the model (settings, weights, training state) as .${f}`, async () => download(await this.saveModel(f), `${base()}.${f}`));
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
  _autoplay() { return this._widgetAttr('autoplay', parseSwitch, true, 'on'); }
  _backend() { return this._widgetAttr('backend', (v) => parseChoice(v, ['webgpu', 'cpu', 'auto']), 'webgpu', 'webgpu'); }
  /** The preset named by `preset` (null when absent or unknown: an unknown name gets a message
   *  listing the allowed ones). */
  _preset() {
    const list = [...PRESETS.keys()].join('|');
    return this._widgetAttr('preset', (v) => {
      const p = PRESETS.get(v.trim().toLowerCase());
      if (!p) throw new Error(`unknown preset; expected one of ${list}`);
      return p;
    }, null, 'no preset');
  }
  /** Whether a view is on when no attribute says: the preset's views, else the default. */
  _viewDefault(view, fallback) {
    const p = this._preset();
    return p ? p.views.includes(view) : fallback;
  }
  _lossOn() {
    const on = this._viewDefault('loss', true);
    return this._widgetAttr('loss', parseSwitch, on, on ? 'on' : 'off');
  }
  /** The attribute that sets `layer`: the last of its names present (the name itself if none). */
  _layerAttr(layer) {
    const given = Object.keys(LAYER_ATTRS).filter((a) => LAYER_ATTRS[a] === layer && this.hasAttribute(a));
    return given.length ? given[given.length - 1] : layer;
  }
  _layerOn(layer) {
    const attr = this._layerAttr(layer);
    for (const a of Object.keys(LAYER_ATTRS)) if (LAYER_ATTRS[a] === layer && a !== attr) this._message(a, '');
    // A layer a preset may show (its `views`) follows the preset; the particles and the others
    // keep their defaults.
    const on = PRESET_VIEWS.includes(layer) ? this._viewDefault(layer, LAYER_DEFAULTS[layer]) : LAYER_DEFAULTS[layer];
    // A layer no attribute can switch (`particles`: that attribute is the count) keeps its default.
    if (!(attr in LAYER_ATTRS)) return on;
    return this._widgetAttr(attr, parseSwitch, on, on ? 'on' : 'off');
  }

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
    for (const l of LAYERS) this._layerBoxes[l.name].checked = this._layerOn(l.name);
    this._layerBoxes.loss.checked = this._lossOn();
    this._lossCanvas.hidden = !this._lossOn();
    this._autoplay();
    this._backend();
    this._preset();
  }

  /** The attribute (or `config (field)`) a configuration field came from. */
  _attrFor(field) {
    const given = Object.keys(CONFIG_ATTRS).filter((a) => CONFIG_ATTRS[a] === field && this.hasAttribute(a));
    return given.length ? given[given.length - 1] : `config (${field})`;
  }

  /** The preset's configuration, then `config`, then the single attributes, as one hash (later
   *  pairs win). */
  _hash() {
    const parts = [];
    const preset = this._preset();
    if (preset) parts.push(preset.config);
    const config = (this.getAttribute('config') || '').trim().replace(/^#/, '');
    if (config) parts.push(config);
    for (const [a, field] of Object.entries(CONFIG_ATTRS)) {
      const v = this.getAttribute(a);
      if (v !== null) parts.push(`${field}=${encodeURIComponent(v.trim())}`);
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
    for (const a of [...Object.keys(CONFIG_ATTRS), 'config']) this._message(a, texts.get(a) || '');
  }

  /** Applies the configuration attributes live: defaults, then `config`, then single attributes,
   *  so a rejected value leaves that field at its default. */
  _applyConfig() {
    const before = this._app.state().step;
    const defaults = Object.entries(this._defaults).map(([k, v]) => `${k}=${encodeURIComponent(v)}`).join('&');
    const errors = Array.from(this._app.apply_hash(`${defaults}&${this._hash()}`), (e) => ({ field: e.field, message: e.message }));
    this._showConfigErrors(errors);
    this._syncControls();
    if ((this._app.state().step < before || before === 0) && this._autoplay() && !this._userPaused) this._app.play();
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
      const app = await App.start(this._canvas, this._hash(), this._backend(), '', true);
      if (!this.isConnected) { app.free(); this._status.textContent = 'Stopped.'; return; }
      const kept = this._kept;
      const s = app.state();
      this._defaults = Object.fromEntries(app.defaults().split('&').map((kv) => kv.split('=')));
      this._app = app;
      this._fit(true);
      this._showConfigErrors(Array.from(app.hash_errors(), (e) => ({ field: e.field, message: e.message })));
      for (const l of LAYERS) app.set_layer(l.name, this._layerOn(l.name));
      if (kept) {
        // Rebuilt after a release: the same model, curve and training state as when it left.
        this._kept = null;
        app.load_model(kept.bytes, true);
        app.set_losses(kept.losses);
        app.set_step_limit(kept.stepLimit);
        if (kept.training) app.play();
        if (kept.hash !== this._hash()) this._applyConfig(); // attributes changed meanwhile
      } else if (!this._autoplay() || this._userPaused) app.pause();
      if (window.matchMedia('(prefers-reduced-motion: reduce)').matches) app.set_time(1);
      this._syncControls();
      this._status.hidden = true;
      if (s.notice) {
        this._notice.textContent = s.backend === 'cpu' ? 'No WebGPU in this browser: training on the CPU (the same model and maths, fewer particles drawn).' : s.notice;
        this._notice.title = s.notice;
        this._notice.hidden = false;
      }
      this._refresh();
      if (!kept) this.dispatchEvent(new CustomEvent('ready', { detail: { backend: s.backend, adapter: s.adapter } }));
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
    if (skipFrame(this._engineKind, now, this._last)) return; // www/pace.js
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
    this._engineKind = { software: s.software, backend: s.backend };
    this._stats.textContent = `step ${fmt.int(s.step)} · loss ${fmt.num(s.lossRecent, 3)}`;
    this._playBtn.textContent = s.training ? 'Pause' : s.runDone ? 'Train more' : 'Train';
    this._playBtn.title = s.runNote || '';
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
    const flat = this._app.losses();
    const points = [];
    for (let i = 0; i + 1 < flat.length; i += 2) points.push([flat[i], flat[i + 1]]);
    drawChart(this._lossCanvas, { series: [{ points, color: getComputedStyle(this._lossCanvas).color || '#7aa2ff' }], logY: true, smooth: 1 / 30, axes: false });
  }
}

if (!customElements.get('flow-matching-demo')) customElements.define('flow-matching-demo', FlowMatchingDemo);
