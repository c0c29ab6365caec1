// www/keep.js — nothing the person trained is lost by a key press, a link or a closed tab
// (index.html; issue 15, item 8). The model file is the wasm's own (App.save_model / load_model:
// configuration, weights, Adam's moments and the step), so what comes back trains on as before.
//
// - Undo: Reset (button or R) reads the model first (App.save_model) and then offers "Undo" in a
//   toast for UNDO_MS; so does any change that retrains a trained model (a model-shaping setting,
//   a preset, Back/Forward changing the hash): those apply at once, and Undo puts back the page's
//   last good snapshot from before the change (App.last_good_model: taken every 2 s of training
//   for divergence and device-loss recovery, so no readback of its own) with its settings.
// - Browser storage: that snapshot of a trained model (at least TRAINED_STEPS steps) goes to
//   IndexedDB (database "flowmatch", store "models", key "last") every STORE_MS and when the page
//   is hidden or left; the next visit offers it back ("Restore your model from <time>?") and
//   stores nothing over it until the offer is answered.
// - Leaving with a trained model that was not saved to a file (Save model) asks first
//   (beforeunload).
// Published as window.flowmatch.keep: {storedStep, storedAt, offer, toast, forget()}.

const $ = (id) => document.getElementById(id);

/** Steps after which a model counts as trained (worth asking about and storing). */
const TRAINED_STEPS = 100;
/** Browser-storage interval (ms); longer when encoding the model is slow. */
const STORE_MS = 15000;
/** How long an Undo stays offered (ms). */
const UNDO_MS = 10000;

let app = null;
let state = null;
let onRestore = () => {};
let storeCost = 0;        // ms the last store took to encode
let offerPending = false; // a stored model is offered back: store nothing over it
let forgotten = false;
let toastTimer = 0;

const keep = { storedStep: null, storedAt: null, offer: null, toast: null, forget };

// ---- the toast ---------------------------------------------------------------------------------

function toastBox() {
  let box = $('keep-toast');
  if (!box) {
    box = document.createElement('div');
    box.id = 'keep-toast';
    box.className = 'toast';
    box.setAttribute('role', 'status');
    box.hidden = true;
    document.body.append(box);
  }
  return box;
}

/** Shows `text` with buttons ([label, action] pairs) for `ms` (0: until a button is pressed). */
function toast(text, actions, ms) {
  const box = toastBox();
  clearTimeout(toastTimer);
  const p = document.createElement('span');
  p.textContent = text;
  box.replaceChildren(p);
  for (const [label, action] of actions) {
    const b = document.createElement('button');
    b.type = 'button';
    b.textContent = label;
    b.addEventListener('click', () => { hideToast(); action(); });
    box.append(b);
  }
  box.hidden = false;
  keep.toast = { text, actions: actions.map(([l]) => l) };
  if (ms) toastTimer = setTimeout(hideToast, ms);
}

function hideToast() {
  clearTimeout(toastTimer);
  toastBox().hidden = true;
  keep.toast = null;
}

// ---- snapshots ---------------------------------------------------------------------------------

/** The page's last good snapshot {bytes, step, at} (null before the first of this run). */
function latest() {
  const m = app.last_good_model();
  return m ? { bytes: m.bytes, step: m.step, at: Date.now() } : null;
}

/** The model as it is now (read back): exact, for Reset. Null when it cannot be read. */
async function capture() {
  const step = app.state().step;
  try {
    return { bytes: await app.save_model(), step, at: Date.now() };
  } catch {
    return null; // (a lost device)
  }
}

function restore(snap, resume, what) {
  try {
    app.load_model(snap.bytes, true);
    if (resume) app.play();
    onRestore();
    toast(`${what}: back at step ${snap.step.toLocaleString('en')}.`, [], 4000);
  } catch (e) {
    toast(`Could not restore the model: ${e.message || e}`, [], UNDO_MS);
  }
}

function offerUndo(text, snap, resume) {
  toast(text, [['Undo', () => restore(snap, resume, 'Undone')]], UNDO_MS);
}

/** Reset (button or R): the model is snapshotted first, then reset, and Undo offered. */
export async function resetWithUndo() {
  const s = app.state();
  const snap = s.step > 0 ? ((await capture()) || latest()) : null;
  const resume = app.state().training;
  app.reset();
  onRestore();
  if (snap) offerUndo(`Training restarted from step 0 (it was at step ${snap.step.toLocaleString('en')}).`, snap, resume);
}

/** Runs `change` (a settings change, applied at once); when it retrained a trained model, offers
 *  Undo back to the latest snapshot. `what` names the change ("Changing width", "The link"). */
export function guarded(what, change) {
  const before = app.state();
  const snap = before.step >= TRAINED_STEPS ? latest() : null;
  const result = change();
  const after = app.state();
  if (snap && after.step < before.step) {
    offerUndo(`${what} restarted training (it was at step ${before.step.toLocaleString('en')}).`, snap, before.training);
  }
  return result;
}

// ---- browser storage ---------------------------------------------------------------------------

let dbPromise = null;
function db() {
  if (!dbPromise) {
    dbPromise = new Promise((resolve, reject) => {
      const r = indexedDB.open('flowmatch', 1);
      r.onupgradeneeded = () => r.result.createObjectStore('models');
      r.onsuccess = () => {
        const d = r.result;
        d.onversionchange = () => { d.close(); forgotten = true; }; // deleted elsewhere
        resolve(d);
      };
      r.onerror = () => reject(r.error);
    });
  }
  return dbPromise;
}

async function request(mode, f) {
  const d = await db();
  return new Promise((resolve, reject) => {
    const t = d.transaction('models', mode);
    const r = f(t.objectStore('models'));
    t.oncomplete = () => resolve(r.result);
    t.onerror = t.onabort = () => reject(t.error);
  });
}

function store() {
  if (forgotten || offerPending) return;
  const t0 = performance.now();
  const snap = latest();
  storeCost = performance.now() - t0;
  if (!snap || snap.step < TRAINED_STEPS || snap.step === keep.storedStep) return;
  const rec = { bytes: snap.bytes, step: snap.step, savedAt: snap.at, query: app.query() };
  request('readwrite', (s) => s.put(rec, 'last')).then(() => {
    keep.storedStep = rec.step;
    keep.storedAt = rec.savedAt;
  }, () => {});
}

/** Forgets the stored model and leaves without asking (a fresh start; tests between pages). */
function forget() {
  forgotten = true;
  offerPending = false;
  hideToast();
  return request('readwrite', (s) => s.delete('last')).catch(() => {});
}

async function offerStored() {
  let rec = null;
  try {
    rec = await request('readonly', (s) => s.get('last'));
  } catch {
    return;
  }
  if (!rec || !rec.bytes || !(rec.step >= TRAINED_STEPS) || forgotten) return;
  offerPending = true;
  const when = new Date(rec.savedAt);
  const day = when.toDateString() === new Date().toDateString() ? '' : `${when.toLocaleDateString()} `;
  keep.offer = { step: rec.step, savedAt: rec.savedAt };
  toast(`Restore your model from ${day}${when.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' })} (step ${rec.step.toLocaleString('en')})?`, [
    ['Restore', () => { offerPending = false; keep.offer = null; restore({ bytes: rec.bytes, step: rec.step }, false, 'Restored'); }],
    ['Dismiss', () => { offerPending = false; keep.offer = null; }],
  ], 0);
}

// ---- wiring ------------------------------------------------------------------------------------

/** Wires undo, snapshots, storage and the leave warning to `theApp`; `pageState` is
 *  window.flowmatch; `restored` runs after the model (and so the settings) came back. */
export function initKeep(theApp, pageState, restored) {
  app = theApp;
  state = pageState;
  onRestore = restored;
  state.keep = keep;
  const every = () => { if (!document.hidden) store(); setTimeout(every, Math.max(STORE_MS, 200 * storeCost)); };
  setTimeout(every, STORE_MS);
  const leave = () => store();
  window.addEventListener('pagehide', leave);
  document.addEventListener('visibilitychange', () => { if (document.hidden) leave(); });
  window.addEventListener('beforeunload', (e) => {
    const step = app.state().step;
    const saved = state.savedModel && state.savedModel.step === step;
    if (forgotten || saved || step < TRAINED_STEPS) return;
    e.preventDefault();
    e.returnValue = ''; // (older browsers need a value to ask)
  });
  if (globalThis.indexedDB) offerStored();
}
