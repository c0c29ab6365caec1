// www/targets.js — the "Your own target" card of index.html: draw on the flow canvas (mouse, pen
// or touch through pointer events; brush, eraser, clear), type a word, upload or drop an image,
// paste or upload CSV points. Rasters (text, images) go to the wasm App as RGBA bytes
// (App.set_target_image), CSV as text (App.set_target_csv), drawing strokes as segments in view
// coordinates (App.draw_stroke, then App.commit_drawing, throttled while the pointer is down).
// All validation happens in Rust (src/targets/); a rejected input shows its message next to its
// control and leaves the current target and model as they were. The App keeps the weights when
// the target changes, so training follows the drawing live.
//
// Published for tests: window.flowmatch.target (App.target_info() after each change) and
// window.flowmatch.targetErrors ({draw, text, image, points} → last message or '').

import { brush_classes, max_custom_points } from '../pkg/flowmatch.js';
import { download } from './download.js';
import { imageSize } from './imagesize.js';

const $ = (id) => document.getElementById(id);

/// Brush colours (RGB), one per class of the drawing (brush_classes() of them, src/targets/drawing.rs).
const BRUSH_RGB = ['158,171,199', '255,158,100', '158,206,106', '187,154,247', '125,207,255', '224,175,104'];

/// Commits of the drawing while a stroke goes on, at most one per this many milliseconds.
const COMMIT_MS = 300;
/// Longest side of an uploaded image after downscaling (pixels); the density needs no more.
const IMAGE_SIDE = 256;
/// Largest file read (bytes).
const MAX_FILE = 20 * 1024 * 1024;
/// Most pixels of an image to decode (its header is read first: RGBA, 4 bytes a pixel, 160 MB).
const MAX_IMAGE_PIXELS = 40_000_000;
/// Text rendering: font size in pixels and the font (bold sans).
const TEXT_PX = 160;
const TEXT_FONT = `bold ${TEXT_PX}px "Helvetica Neue", Arial, "DejaVu Sans", "Liberation Sans", sans-serif`;

let app = null;
let state = null;
const errors = { draw: '', text: '', image: '', points: '' };

function showError(which, message) {
  errors[which] = message || '';
  const el = $(`err-${which}`);
  el.textContent = errors[which];
  el.hidden = !errors[which];
  const control = { draw: 'draw-commit', text: 'target-text', image: 'image-file', points: 'points-text' }[which];
  $(control).setAttribute('aria-invalid', errors[which] ? 'true' : 'false');
  state.targetErrors = { ...errors };
}

const fmtInt = (n) => Number(n).toLocaleString('en');
const fmtNum = (x) => (Math.abs(x) >= 1e4 || (Math.abs(x) < 1e-2 && x !== 0) ? x.toExponential(2) : Number(x.toPrecision(4)).toString());

/// Runs `f` (an App call that may throw a validation message); shows the result or the error.
function attempt(which, f, describe) {
  try {
    const info = f();
    showError(which, '');
    took(info, describe);
    return true;
  } catch (e) {
    showError(which, String((e && e.message) || e));
    return false;
  }
}

function took(info, describe) {
  state.target = info;
  const extent = state.extent || 5;
  let text = info.custom ? describe(info) : `Training on the ${info.dataset} dataset.`;
  if (info.custom && info.kind === 'points') {
    const t = info.transform;
    const lo = (c) => fmtNum(c - extent / t.scale), hi = (c) => fmtNum(c + extent / t.scale);
    text += ` Centred and scaled into the view: view = (original − (${fmtNum(t.cx)}, ${fmtNum(t.cy)})) × ${fmtNum(t.scale)};`
      + ` the canvas spans x ∈ [${lo(t.cx)}, ${hi(t.cx)}], y ∈ [${lo(t.cy)}, ${hi(t.cy)}] in your coordinates.`;
  }
  $('target-status').textContent = text;
  $('target-dataset').hidden = !info.custom;
  // CSV targets: the canvas' corners labelled in the original coordinates.
  const axes = info.custom && info.kind === 'points';
  $('axes').hidden = !axes;
  if (axes) {
    const t = info.transform, e = extent / t.scale;
    $('axis-lo').textContent = `(${fmtNum(t.cx - e)}, ${fmtNum(t.cy - e)})`;
    $('axis-hi').textContent = `(${fmtNum(t.cx + e)}, ${fmtNum(t.cy + e)})`;
  }
  markDatasetSelect();
}

// While a custom target is active the dataset select shows "your own target", so picking any
// dataset (even the one in the link) is a change that ends it.
function markDatasetSelect() {
  const select = $('f-dataset');
  if (!select) return;
  let own = select.querySelector('option[data-own]');
  if (state.target && state.target.custom) {
    if (!own) {
      own = document.createElement('option');
      own.dataset.own = '1';
      own.value = '';
      own.disabled = true;
      own.textContent = 'your own target';
      select.prepend(own);
    }
    if (document.activeElement !== select) select.value = '';
  } else if (own) {
    own.remove();
    select.value = app.get('dataset');
  }
}

// ---- tabs --------------------------------------------------------------------------------------

function wireTabs() {
  const tabs = [...document.querySelectorAll('#own-target [role=tab]')];
  const select = (tab) => {
    for (const t of tabs) {
      const on = t === tab;
      t.setAttribute('aria-selected', String(on));
      t.tabIndex = on ? 0 : -1;
      $(t.getAttribute('aria-controls')).hidden = !on;
    }
    if (tab.id !== 'tab-draw') setDrawing(false);
  };
  tabs.forEach((tab, i) => {
    tab.addEventListener('click', () => select(tab));
    tab.addEventListener('keydown', (e) => {
      const d = e.key === 'ArrowRight' ? 1 : e.key === 'ArrowLeft' ? -1 : 0;
      if (!d) return;
      const next = tabs[(i + d + tabs.length) % tabs.length];
      select(next);
      next.focus();
    });
  });
}

// ---- draw --------------------------------------------------------------------------------------

let drawing = false; // the canvas takes pointer input
let stroke = null;   // {id, last: [x, y], dirty, lastCommit}
let commitTimer = 0;

function setDrawing(on) {
  drawing = on;
  const b = $('draw-toggle');
  b.setAttribute('aria-pressed', String(on));
  b.textContent = on ? 'Stop drawing' : 'Draw on the canvas';
  $('canvas-wrap').classList.toggle('drawing', on);
  if (on) {
    // The drawing shows through the faint target layer: make sure it is on.
    const box = document.querySelector('#layers input[data-layer=target]');
    if (box && !box.checked) { box.checked = true; app.set_layer('target', true); }
  }
}

/// Client (CSS pixel) → view coordinates: the inverse of window.flowmatch.worldToClient.
function clientToWorld(cx, cy) {
  const r = $('flow').getBoundingClientRect();
  const extent = state.extent || 5;
  const unit = (2 * extent) / Math.min(r.width, r.height);
  return [(cx - (r.left + r.width / 2)) * unit, (r.top + r.height / 2 - cy) * unit];
}

const brushRadius = () => Number($('brush-size').value);
let brushClass = 0;

// One radio per brush colour: the colour is the class of the points it deposits (a conditional
// model learns one class per colour; `class` k samples colour k + 1).
function wireBrushColours() {
  const box = $('brush-colours');
  const n = brush_classes();
  for (let k = 0; k < n; k++) {
    const label = document.createElement('label');
    const input = document.createElement('input');
    input.type = 'radio';
    input.name = 'brush-colour';
    input.value = String(k);
    input.checked = k === 0;
    input.addEventListener('change', () => { brushClass = k; app.set_brush_class(k); });
    const swatch = document.createElement('span');
    swatch.className = 'swatch';
    swatch.style.background = `rgb(${BRUSH_RGB[k % BRUSH_RGB.length]})`;
    label.append(input, swatch, ` class ${k}`);
    box.append(label);
  }
}
const erasing = () => document.querySelector('input[name=brush]:checked').value === 'eraser';

function commitDrawing() {
  clearTimeout(commitTimer);
  commitTimer = 0;
  if (stroke) { stroke.dirty = false; stroke.lastCommit = performance.now(); }
  return attempt('draw', () => app.commit_drawing(), (i) => `Training on your drawing (${fmtInt(i.points)} points).`);
}

function paint(e) {
  const events = e.getCoalescedEvents ? e.getCoalescedEvents() : [];
  for (const ev of events.length ? events : [e]) {
    const p = clientToWorld(ev.clientX, ev.clientY);
    app.draw_stroke(stroke.last[0], stroke.last[1], p[0], p[1], brushRadius(), erasing());
    inkOverlay(stroke.last, p);
    stroke.last = p;
  }
  stroke.dirty = true;
  const wait = COMMIT_MS - (performance.now() - stroke.lastCommit);
  if (wait <= 0) commitDrawing();
  else if (!commitTimer) commitTimer = setTimeout(commitDrawing, wait);
}

// The stroke in progress is drawn on an overlay until the next render shows the target points.
function inkOverlay(a, b) {
  const c = $('ink');
  const r = c.getBoundingClientRect();
  const dpr = window.devicePixelRatio || 1;
  if (c.width !== Math.round(r.width * dpr)) { c.width = Math.round(r.width * dpr); c.height = Math.round(r.height * dpr); }
  const g = c.getContext('2d');
  const extent = state.extent || 5;
  const px = (Math.min(r.width, r.height) * dpr) / (2 * extent);
  const to = (p) => [c.width / 2 + p[0] * px, c.height / 2 - p[1] * px];
  const [ax, ay] = to(a), [bx, by] = to(b);
  g.lineCap = 'round';
  g.lineWidth = 2 * brushRadius() * px;
  g.globalCompositeOperation = erasing() ? 'destination-out' : 'source-over';
  g.strokeStyle = erasing() ? 'rgba(0,0,0,1)' : `rgba(${BRUSH_RGB[brushClass % BRUSH_RGB.length]},0.35)`;
  g.beginPath(); g.moveTo(ax, ay); g.lineTo(bx, by); g.stroke();
}

function clearOverlay() {
  const c = $('ink');
  c.getContext('2d').clearRect(0, 0, c.width, c.height);
}

function wireDraw() {
  const wrap = $('canvas-wrap');
  $('draw-toggle').addEventListener('click', () => setDrawing(!drawing));
  $('draw-clear').addEventListener('click', () => {
    app.clear_drawing();
    clearOverlay();
    showError('draw', '');
    $('target-status').textContent = 'Drawing cleared: draw something new. Until then training continues on the current target.';
  });
  $('draw-commit').addEventListener('click', commitDrawing);
  wrap.addEventListener('pointerdown', (e) => {
    if (!drawing || (e.pointerType === 'mouse' && e.button !== 0)) return;
    e.preventDefault();
    wrap.setPointerCapture(e.pointerId);
    const p = clientToWorld(e.clientX, e.clientY);
    stroke = { id: e.pointerId, last: p, dirty: true, lastCommit: 0 };
    app.draw_stroke(p[0], p[1], p[0], p[1], brushRadius(), erasing());
    inkOverlay(p, p);
    commitDrawing();
  });
  wrap.addEventListener('pointermove', (e) => {
    if (drawing && stroke && e.pointerId === stroke.id) paint(e);
  });
  const end = (e) => {
    if (!stroke || e.pointerId !== stroke.id) return;
    if (stroke.dirty) commitDrawing();
    stroke = null;
    setTimeout(() => { if (!stroke) clearOverlay(); }, 800);
  };
  wrap.addEventListener('pointerup', end);
  wrap.addEventListener('pointercancel', end);
}

// ---- text --------------------------------------------------------------------------------------

/// Renders `text` in black bold sans on white into an offscreen canvas; returns its ImageData.
function renderText(text) {
  const measure = document.createElement('canvas').getContext('2d');
  measure.font = TEXT_FONT;
  const pad = Math.round(TEXT_PX * 0.25);
  const w = Math.max(1, Math.min(4096, Math.ceil(measure.measureText(text).width) + 2 * pad));
  const h = Math.ceil(TEXT_PX * 1.5);
  const c = document.createElement('canvas');
  c.width = w;
  c.height = h;
  const g = c.getContext('2d', { willReadFrequently: true });
  g.fillStyle = '#fff';
  g.fillRect(0, 0, w, h);
  g.fillStyle = '#000';
  g.font = TEXT_FONT;
  g.textBaseline = 'middle';
  g.fillText(text, pad, h / 2);
  return g.getImageData(0, 0, w, h);
}

function useText() {
  const text = $('target-text').value.trim();
  if (!text) {
    showError('text', 'type a word or a few letters first');
    return false;
  }
  const img = renderText(text);
  return attempt('text', () => app.set_target_image(new Uint8Array(img.data.buffer), img.width, img.height, 'text', text, false),
    (i) => `Training on your text “${i.label}” (${fmtInt(i.points)} points drawn from its dark pixels).`);
}

// ---- image -------------------------------------------------------------------------------------

async function useImage(file) {
  if (!file) return;
  if (file.size > MAX_FILE) {
    showError('image', `"${file.name}" is ${(file.size / 1048576).toFixed(1)} MB: images up to ${MAX_FILE / 1048576} MB are accepted`);
    return;
  }
  // The size from the header, before anything is decoded.
  const size = await imageSize(file).catch(() => null);
  if (!size || !size.width || !size.height) {
    showError('image', `"${file.name}" is not an image this page can read: use PNG, JPEG, GIF, WebP or BMP`);
    return;
  }
  const pixels = size.width * size.height;
  if (pixels > MAX_IMAGE_PIXELS) {
    showError('image', `"${file.name}" is ${fmtInt(size.width)} × ${fmtInt(size.height)} pixels (${fmtInt(Math.round(pixels / 1e6))} megapixels):`
      + ` images up to ${MAX_IMAGE_PIXELS / 1e6} megapixels are accepted (this one would decode to ${fmtInt(Math.round(pixels * 4 / 1e6))} MB); scale it down first`);
    return;
  }
  let bitmap;
  try {
    bitmap = await createImageBitmap(file);
  } catch {
    showError('image', `"${file.name}" is not an image this browser can read: use PNG, JPEG, GIF, WebP or BMP`);
    return;
  }
  const scale = Math.min(1, IMAGE_SIDE / Math.max(bitmap.width, bitmap.height));
  const w = Math.max(1, Math.round(bitmap.width * scale)), h = Math.max(1, Math.round(bitmap.height * scale));
  const c = document.createElement('canvas');
  c.width = w;
  c.height = h;
  const g = c.getContext('2d', { willReadFrequently: true });
  g.drawImage(bitmap, 0, 0, w, h);
  bitmap.close && bitmap.close();
  const img = g.getImageData(0, 0, w, h);
  attempt('image', () => app.set_target_image(new Uint8Array(img.data.buffer), w, h, 'image', file.name, $('image-invert').checked),
    (i) => `Training on your image “${i.label}” (${fmtInt(i.points)} points drawn from its ${$('image-invert').checked ? 'light' : 'dark'} pixels).`);
}

function wireImage() {
  $('image-file').addEventListener('change', (e) => { useImage(e.target.files[0]); e.target.value = ''; });
  const zones = [$('image-drop'), $('canvas-wrap')];
  for (const zone of zones) {
    zone.addEventListener('dragover', (e) => {
      if (![...e.dataTransfer.types].includes('Files')) return;
      e.preventDefault();
      zone.classList.add('over');
    });
    zone.addEventListener('dragleave', () => zone.classList.remove('over'));
    zone.addEventListener('drop', (e) => {
      e.preventDefault();
      zone.classList.remove('over');
      const file = e.dataTransfer.files[0];
      if (!file) return;
      // A CSV dropped anywhere goes to the points tab; anything else is read as an image.
      if (/\.(csv|txt)$/i.test(file.name) || file.type === 'text/csv') usePointsFile(file);
      else useImage(file);
    });
  }
}

// ---- points ------------------------------------------------------------------------------------

function usePointsText(text, name) {
  return attempt('points', () => app.set_target_csv(text, name),
    (i) => `Training on your ${fmtInt(i.points)} points${name === 'pasted' ? '' : ` from ${name}`}.`);
}

async function usePointsFile(file) {
  if (!file) return;
  if (file.type.startsWith('image/')) {
    showError('points', `"${file.name}" is an image, not a CSV file: use the Image tab for pictures`);
    return;
  }
  if (file.size > MAX_FILE) {
    showError('points', `"${file.name}" is ${(file.size / 1048576).toFixed(1)} MB: CSV files up to ${MAX_FILE / 1048576} MB are accepted`);
    return;
  }
  const text = await file.text();
  if (usePointsText(text, file.name) && text.length < 100_000) $('points-text').value = text;
}

function wirePoints() {
  $('points-use').addEventListener('click', () => usePointsText($('points-text').value, 'pasted'));
  $('points-file').addEventListener('change', (e) => { usePointsFile(e.target.files[0]); e.target.value = ''; });
  $('points-download').addEventListener('click', async () => {
    try {
      const csv = await app.samples_csv();
      download(new Blob([csv], { type: 'text/csv' }), 'flowmatch-samples.csv');
    } catch (e) {
      showError('points', `reading the samples failed: ${String((e && e.message) || e)}`);
    }
  });
}

// ---- entry -------------------------------------------------------------------------------------

/// Wires the card to `theApp`; `pageState` is window.flowmatch.
export function initTargets(theApp, pageState) {
  app = theApp;
  state = pageState;
  state.targetErrors = { ...errors };
  state.target = app.target_info();
  state.useText = useText; // for tests and the console
  $('max-points').textContent = fmtInt(max_custom_points());
  wireTabs();
  wireDraw();
  wireBrushColours();
  $('text-use').addEventListener('click', useText);
  $('target-text').addEventListener('keydown', (e) => { if (e.key === 'Enter') { e.preventDefault(); useText(); } });
  wireImage();
  wirePoints();
  $('target-dataset').addEventListener('click', () => attempt('points', () => app.use_dataset_target(), () => ''));
  // Settings changes (a new dataset ends the custom target; other changes keep it).
  setInterval(() => {
    const info = app.target_info();
    if (info.custom !== (state.target && state.target.custom)) took(info, () => $('target-status').textContent);
    else markDatasetSelect();
  }, 500);
}
