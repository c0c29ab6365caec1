// www/reflow.js — the "Rectified flow" card (Liu, Gong and Liu 2022, "Flow Straight and Fast",
// arXiv 2209.03003): the Reflow button (App.reflow: the engine integrates Reflow-pairs noise points
// with the page's solver into (noise, sample) pairs, then training continues from the current
// weights on those fixed pairs for Reflow-steps steps), the round ("k-rectified", from
// state.reflowRound), and two small previews side by side: the shown flow's samples (many solver
// steps, App.samples) and the same kind of draw moved by ONE Euler step (App.one_step_preview),
// with the one-step sliced W2. The previews are refreshed on their own pace, spaced by their own
// cost (a 12th of the time at most). Each preview allocates a transient sampler and probe on the
// engine, like the quality card's readings: `state.qualityAuto = false` stops them too, and
// `state.previewInFlight` tells whether one runs. Publishes window.flowmatch.reflowError /
// oneStepSw2 / oneStepHistory / previewStep / previewInFlight for tests.

import * as fmt from './format.js';

const $ = (id) => document.getElementById(id);
const EVERY_MS = 3000;
const SHARE = 12;

// Points (flat x0, y0, x1, y1, ...) on a small canvas: the world square [-extent, extent]².
function drawPoints(canvas, flat, extent, color) {
  if (!canvas) return;
  const g = canvas.getContext('2d');
  const { width: w, height: h } = canvas;
  g.fillStyle = '#0d1119';
  g.fillRect(0, 0, w, h);
  if (!flat) return;
  const unit = Math.min(w, h) / (2 * extent);
  g.fillStyle = color;
  g.globalAlpha = 0.75;
  for (let i = 0; i + 1 < flat.length; i += 2) {
    const x = w / 2 + flat[i] * unit, y = h / 2 - flat[i + 1] * unit;
    if (Number.isFinite(x) && Number.isFinite(y)) g.fillRect(x - 1, y - 1, 2, 2);
  }
  g.globalAlpha = 1;
}

// "1-rectified" before any reflow, "2-rectified" once round 1 started, ...
const roundName = (round) => `${round + 1}-rectified`;

// Wires the card to `app`; `state` is window.flowmatch.
export function initReflow(app, state) {
  const button = $('reflow');
  const status = $('reflow-status');
  state.reflowError = null;
  state.oneStepSw2 = null;
  state.oneStepHistory = [];
  state.previewStep = null;
  state.previewInFlight = false;
  const say = (msg) => { if (status) status.textContent = msg || ''; };
  if (!button) return;

  button.addEventListener('click', async () => {
    state.reflowError = null;
    button.disabled = true;
    const pairs = app.get('reflow_pairs'), steps = app.get('reflow_steps');
    say(`Making ${fmt.int(Number(pairs))} (noise, sample) pairs with ${app.get('solver')}…`);
    try {
      const round = await app.reflow();
      if (round === null) { say(''); return; } // a new run replaced the model meanwhile
      say(`Round ${round}: training ${fmt.int(Number(steps))} steps on ${fmt.int(Number(pairs))} fixed pairs from the current weights.`);
    } catch (e) {
      state.reflowError = String(e && e.message ? e.message : e);
      say(state.reflowError);
    } finally {
      button.disabled = false;
    }
  });

  let lastAt = -Infinity, tookMs = 0, lastStep = -1, measured = 0, generation = 0, endedRound = 0;
  const preview = async () => {
    state.previewInFlight = true;
    const t0 = performance.now(), step = state.step, round = state.reflowRound, gen = generation;
    try {
      const [one, many] = await Promise.all([app.one_step_preview(), app.samples().catch(() => null)]);
      if (one === null || gen !== generation) return;
      const extent = state.extent || 5;
      drawPoints($('preview-one'), one.points, extent, '#ff9e64');
      drawPoints($('preview-many'), many, extent, '#9ece6a');
      state.oneStepSw2 = one.sw2;
      state.oneStepHistory.push({ step, round, sw2: one.sw2 });
      if (state.oneStepHistory.length > 200) state.oneStepHistory.splice(1, 1);
      state.previewStep = step;
      if ($('stat-one-step-sw2')) $('stat-one-step-sw2').textContent = fmt.num(one.sw2, 3);
      if ($('preview-many-caption')) $('preview-many-caption').textContent = `${app.get('solver')}, ${app.get('nfe')} steps`;
    } catch (e) {
      if (!state.diverged) say(String(e && e.message ? e.message : e));
    } finally {
      state.previewInFlight = false;
      if (measured++ > 0) tookMs = performance.now() - t0;
    }
  };

  const tick = () => {
    if (state.step < lastStep) { // a new run: no rounds, old previews are of another model
      generation++;
      state.oneStepHistory = [];
      state.oneStepSw2 = null;
      if ($('stat-one-step-sw2')) $('stat-one-step-sw2').textContent = fmt.DASH;
    }
    lastStep = state.step;
    const round = state.reflowRound || 0;
    if ($('stat-reflow-round')) $('stat-reflow-round').textContent = roundName(round);
    // The round's end (training paused at its last step): say what the model now is.
    if (round > 0 && round !== endedRound && !state.reflowMaking && (state.reflowUntil === null || state.reflowUntil === undefined)) {
      endedRound = round;
      say(`Round ${round} done: the model is the ${roundName(round)} flow. Reflow again for the next round, or Train to go on with these pairs.`);
    }
    if (round === 0) endedRound = 0;
    button.disabled = Boolean(state.reflowMaking);
    button.title = state.reflowRefusal || 'Make (noise, sample) pairs with the current model and the chosen solver, then keep training on those fixed pairs (Reflow pairs and Reflow steps are under More settings)';
    if (state.qualityAuto === false || state.readingAllowed === false || state.reflowMaking || state.diverged || state.previewInFlight || state.trajStep === null || state.trajStep === undefined) return;
    const now = performance.now();
    const moved = state.previewStep !== state.step;
    if (moved && now - lastAt >= Math.max(EVERY_MS, SHARE * tookMs)) {
      lastAt = now;
      preview();
    }
  };
  setInterval(tick, 500);
}
