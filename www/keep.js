// www/keep.js — nothing the person trained is lost by a key press, a link or a closed tab
// (index.html; issue 15, item 8). The model file is the wasm's own (App.save_model / load_model:
// configuration, weights, Adam's moments and the step), so what comes back trains on as before.
//
// - Undo: Reset (button or R) snapshots the model first and then offers "Undo" in a toast for
//   UNDO_MS; so does any change that retrains a trained model (a model-shaping setting, a preset,
//   Back/Forward changing the hash): those apply at once, and Undo puts back the latest snapshot
//   (taken every SNAPSHOT_MS while training moves: at most that much older) with its settings.
// - Browser storage: the latest snapshot of a trained model (at least TRAINED_STEPS steps) goes
//   to IndexedDB (database "flowmatch", store "models", key "last") every STORE_MS and when the
//   page is hidden or left; the next visit offers it back ("Restore your model from <time>?")
//   and stores nothing over it until the offer is answered.
// - Leaving with a trained model that was not saved to a file (Save model) asks first
//   (beforeunload).
// Published as window.flowmatch.keep: {snapshotStep, storedStep, storedAt, offer, toast, forget()}.

const $ = (id) => document.getElementById(id);

/** Steps after which a model counts as trained (worth asking about and storing). */
const TRAINED_STEPS = 100;
/** In-memory snapshot interval while training moves (ms); longer when a snapshot is slow. */
const SNAPSHOT_MS = 3000;
/** Browser-storage interval (ms). */
const STORE_MS = 15000;
/** How long an Undo stays offered (ms). */
const UNDO_MS = 10000;

let app = null;
let state = null;
let onRestore = () => {};
let snapshot = null;      // {bytes, step, at}
let snapshotting = null;  // the save_model promise in flight
let snapshotCost = 0;     // ms the last snapshot took
let lastStored = 0;
let offerPending = false; // a stored model is offered back: store nothing over it
let forgotten = false;
let toastTimer = 0;

const keep = { snapshotStep: null, storedStep: null, storedAt: null, offer: null, toast: null, forget };

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

/** A fresh snapshot of the model (the file's bytes and its step); null when it cannot be read. */
async function capture() {
  if (snapshotting) await snapshotting.catch(() => {});
  const step = app.state().step;
  const t0 = performance.now();
  snapshotting = app.save_model();
  try {
    const bytes = await snapshotting;
    snapshotCost = performance.now() - t0;
    snapshot = { bytes, step, at: Date.now() };
    keep.snapshotStep = step;
    return snapshot;
  } catch {
    return null; // (a lost device: the last snapshot stays)
  } finally {
    snapshotting = null;
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
  const snap = s.step > 0 ? ((await capture()) || snapshot) : null;
  const resume = app.state().training;
  app.reset();
  onRestore();
  if (snap) offerUndo(`Training restarted from step 0 (the model of step ${snap.step.toLocaleString('en')} is gone).`, snap, resume);
}

/** Runs `change` (a settings change, applied at once); when it retrained a trained model, offers
 *  Undo back to the latest snapshot. `what` names the change ("width 16", "the link"). */
export function guarded(what, change) {
  const before = app.state();
  const snap = snapshot;
  const result = change();
  const after = app.state();
  if (snap && before.step >= TRAINED_STEPS && after.step < before.step) {
    offerUndo(`${what} restarted training (the model of step ${before.step.toLocaleString('en')} is gone).`, snap, before.training);
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
  if (!snapshot || forgotten || offerPending || snapshot.step < TRAINED_STEPS || snapshot.step === keep.storedStep) return;
  const rec = { bytes: snapshot.bytes, step: snapshot.step, savedAt: snapshot.at, query: app.query() };
  lastStored = performance.now();
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

function tick() {
  const s = app.state();
  if (document.hidden || snapshotting || s.step === 0 || (snapshot && s.step === snapshot.step)) return;
  capture().then(() => { if (performance.now() - lastStored >= STORE_MS) store(); });
}

/** Wires undo, snapshots, storage and the leave warning to `theApp`; `pageState` is
 *  window.flowmatch; `restored` runs after the model (and so the settings) came back. */
export function initKeep(theApp, pageState, restored) {
  app = theApp;
  state = pageState;
  onRestore = restored;
  state.keep = keep;
  const every = () => { tick(); setTimeout(every, Math.max(SNAPSHOT_MS, 20 * snapshotCost)); };
  setTimeout(every, SNAPSHOT_MS);
  const leave = () => store();
  window.addEventListener('pagehide', leave);
  document.addEventListener('visibilitychange', () => { if (document.hidden) leave(); });
  window.addEventListener('beforeunload', (e) => {
    const saved = state.savedModel && state.savedModel.step === state.step;
    if (forgotten || saved || !(state.step >= TRAINED_STEPS)) return;
    e.preventDefault();
    e.returnValue = ''; // (older browsers need a value to ask)
  });
  if (globalThis.indexedDB) offerStored();
}
