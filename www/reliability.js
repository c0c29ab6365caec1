// www/reliability.js — the page's model-safety controls (src/web/reliability.rs does the work):
// "Restore last good weights" (shown after a divergence when a good snapshot exists),
// "Save model" (downloads the model: configuration + weights + Adam state, as .flowmatch or
// .safetensors, chosen next to it; the formats come from the wasm's model_formats()) and "Load
// model" (a file input taking either format, told apart by content; a file of another shape
// reconfigures the page to it; a bad file shows its own error and the current model stays).
// Waits for app.js to publish `window.flowmatch.app`.

import { model_formats } from '../pkg/flowmatch.js';
import { download } from './download.js';

const $ = (id) => document.getElementById(id);

function message(text, isError) {
  const p = $('model-msg');
  p.textContent = text || '';
  p.hidden = !text;
  p.classList.toggle('error', !!isError);
}

function syncAfterLoad(app) {
  for (const input of document.querySelectorAll('[data-field]')) {
    const v = app.get(input.dataset.field);
    if (v !== undefined) input.value = v;
  }
  history.replaceState(null, '', `#${app.query()}`);
}

function build() {
  const card = $('play').closest('section');
  const box = document.createElement('div');
  box.className = 'buttons model-buttons';
  box.innerHTML = `
    <button id="restore" type="button" hidden title="Put back the weights from before the divergence">Restore last good weights</button>
    <button id="save-model" type="button" title="Download the model (settings, weights and training state) in the format chosen beside it">Save model</button>
    <label class="visually-hidden" for="model-format">Model file format</label>
    <select id="model-format" title=".flowmatch: this project's format; .safetensors: readable by PyTorch and numpy (see examples/)"></select>
    <label class="file-button"><span>Load model</span><input id="load-model" type="file" accept="${model_formats().map((f) => `.${f}`).join(',')},application/octet-stream"></label>`;
  for (const f of model_formats()) box.querySelector('#model-format').append(new Option(`.${f}`, f));
  const msg = document.createElement('p');
  msg.id = 'model-msg';
  msg.className = 'model-msg';
  msg.setAttribute('role', 'status');
  msg.hidden = true;
  card.append(box, msg);
}

function wire(app) {
  const state = window.flowmatch;
  $('restore').addEventListener('click', () => {
    try {
      const step = app.restore_last_good();
      message(`Restored the weights of step ${step}; training resumed with learning rate ${app.get('lr')}.`);
    } catch (e) {
      message(String(e.message || e), true);
    }
  });
  $('save-model').addEventListener('click', async () => {
    try {
      const format = $('model-format').value;
      const bytes = await app.save_model(format);
      const name = `flowmatch-${app.get('dataset')}-w${app.get('width')}-d${app.get('depth')}-step${state.step}.${format}`;
      state.savedModel = { name, bytes: bytes.length, step: app.state().step }; // (tests read what was downloaded; www/keep.js: saved, no leave warning)
      download(new Blob([bytes], { type: 'application/octet-stream' }), name);
      message(`Saved ${name}: ${bytes.length.toLocaleString('en')} bytes (step ${state.step}).`);
    } catch (e) {
      message(`Saving failed: ${e.message || e}`, true);
    }
  });
  $('load-model').addEventListener('change', async (ev) => {
    const file = ev.target.files && ev.target.files[0];
    ev.target.value = '';
    if (!file) return;
    if (file.size > app.max_model_bytes()) {
      message(`${file.name} is ${file.size.toLocaleString('en')} bytes, more than the largest model file (${app.max_model_bytes().toLocaleString('en')} bytes); it was not read. The current model was kept.`, true);
      return;
    }
    try {
      const bytes = new Uint8Array(await file.arrayBuffer());
      app.load_model(bytes, true);
      syncAfterLoad(app);
      message(`Loaded ${file.name}; press Train to continue training it.`);
    } catch (e) {
      message(`${file.name}: ${e.message || e}. The current model was kept.`, true);
    }
  });
  setInterval(() => {
    $('restore').hidden = !(state.diverged && state.canRestore);
  }, 250);
}

(function waitForApp() {
  const app = window.flowmatch && window.flowmatch.app;
  if (!app || !$('play')) { setTimeout(waitForApp, 100); return; }
  build();
  wire(app);
})();
