// tests/e2e/firefox/drive.mjs — runs one flow of the demo page in headless Firefox ESR through
// puppeteer-core over WebDriver BiDi (Debian has no geckodriver) and prints one JSON line with
// what it saw; tests/e2e/test_firefox.py starts it and makes the assertions.
//   node drive.mjs <page URL> <flow>        flow: cpu | webgpu
// cpu: default prefs (no navigator.gpu: the no-WebGPU case most Firefox users on Linux see): the
//   notice, CPU training, a setting through its control, a layer checkbox, a sample-quality reading
//   and the solver comparison on the CPU engine.
// webgpu: dom.webgpu.enabled + gfx.webgpu.ignore-blocklist (Firefox's WebGPU on Mesa's lavapipe):
//   WebGPU training lowers the loss and frames reach the canvas; then the auto backend choice.

import puppeteer from 'puppeteer-core';

const [url, flow] = process.argv.slice(2);
const prefs = flow === 'webgpu' ? { 'dom.webgpu.enabled': true, 'gfx.webgpu.ignore-blocklist': true } : {};
const browser = await puppeteer.launch({
  browser: 'firefox', executablePath: process.env.FIREFOX || '/usr/bin/firefox-esr', headless: true,
  protocol: 'webDriverBiDi', extraPrefsFirefox: prefs,
});
const out = { flow, errors: [] };
const state = (page) => page.evaluate(() => {
  const s = window.flowmatch;
  return s && { ready: s.ready, error: s.error, backend: s.backend, reason: s.backendReason, step: s.step, stepsRead: s.stepsRead,
    lossStart: s.lossStart, lossRecent: s.lossRecent, framesPresented: s.framesPresented, sw2: s.sw2, qualityError: s.qualityError,
    notice: s.notice, gpu: !!navigator.gpu };
});
const until = async (page, fn, what, seconds) => {
  try {
    await page.waitForFunction(fn, { timeout: seconds * 1000, polling: 500 });
  } catch (e) {
    throw new Error(`timed out after ${seconds}s waiting for ${what}: ${JSON.stringify(await state(page))}`);
  }
};

try {
  const page = await browser.newPage();
  page.on('pageerror', (e) => out.errors.push(String(e)));
  page.on('console', (m) => { if (m.type() === 'error') out.errors.push(m.text()); });
  if (flow === 'cpu') {
    await page.goto(`${url}?case=firefox-cpu#dataset=moons`);
    await until(page, () => window.flowmatch && (window.flowmatch.ready || window.flowmatch.error), 'the page to start', 90);
    out.start = await state(page);
    out.noticeShown = await page.evaluate(() => { const n = document.getElementById('notice'); return !n.hidden && n.textContent; });
    await until(page, () => window.flowmatch.stepsRead >= 150, '150 CPU steps', 120);
    await until(page, () => window.flowmatch.qualityError || Number.isFinite(window.flowmatch.sw2), 'a sample-quality reading', 120);
    out.trained = await state(page);
    // A setting through its control (a new model: the step counter restarts), and a layer checkbox.
    // Read before and after in one script: no frame runs in between, so the step read after is
    // the new model's (0), not however far a fast CPU trained it before the next evaluate (an idle
    // machine trained 900 steps of the new model between two evaluates, more than the 470 before).
    const changed = await page.evaluate(() => {
      const before = window.flowmatch.app.state().step;
      const e = document.getElementById('f-width'); e.value = '16'; e.dispatchEvent(new Event('change'));
      return { before, after: { step: window.flowmatch.app.state().step, hash: location.hash, width: window.flowmatch.app.get('width') } };
    });
    out.before = changed.before;
    out.after = changed.after;
    await page.click('[data-layer=trajectories]');
    await until(page, () => window.flowmatch.stepsRead >= 50, 'training on the new model', 120);
    await page.evaluate(() => { window.flowmatch.app.pause(); document.getElementById('compare-solvers').click(); });
    await until(page, () => window.flowmatch.qualityError || (!window.flowmatch.comparing && window.flowmatch.solverComparison), 'the solver comparison', 240);
    out.comparison = await page.evaluate(() => window.flowmatch.solverComparison);
    out.end = await state(page);
  } else {
    await page.goto(`${url}?backend=webgpu&case=firefox-webgpu#dataset=moons`);
    await until(page, () => window.flowmatch && (window.flowmatch.ready || window.flowmatch.error), 'the page to start', 120);
    out.start = await state(page);
    await until(page, () => window.flowmatch.error || (window.flowmatch.stepsRead >= 300 && window.flowmatch.framesPresented >= 3), '300 WebGPU steps and frames', 240);
    out.trained = await state(page);
    await page.goto(`${url}?case=firefox-auto#dataset=moons`);
    await until(page, () => window.flowmatch && (window.flowmatch.ready || window.flowmatch.error), 'the auto page to start', 120);
    await until(page, () => window.flowmatch.error || window.flowmatch.stepsRead >= 50, 'auto: 50 steps', 120);
    out.auto = await state(page);
  }
} catch (e) {
  out.failure = String((e && e.message) || e);
} finally {
  await browser.close();
}
console.log(JSON.stringify(out));
