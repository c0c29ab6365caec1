// www/chart.js — the one chart component of the page and the widget: line series on a canvas,
// either axis linear or logarithmic, optional smoothing (a moving average in the plotted space),
// dots, a legend, and axis labels through format.js (no NaN or Infinity ever reaches a label).
// Used for the loss curve (app.js, widget.js), the sliced-W2 history and the solver comparison
// (quality.js).
//
//   drawChart(canvas, {
//     series: [{ points: [[x, y], ...], color: '#7aa2ff', label: 'rk4', dots: false }],
//     logX: false, logY: true,       // log10 axes (values ≤ 0 are dropped)
//     smooth: 0,                     // moving-average window as a fraction of the points (0: none)
//     axes: true,                    // tick labels and the x caption
//     xCaption: (x) => `step ${x}`,  // text at the bottom right for the last x
//     legend: false,                 // series labels on the right
//     empty: 'appears here',         // text when there is nothing to draw
//   })

import * as fmt from './format.js';

function fit(canvas) {
  const dpr = window.devicePixelRatio || 1;
  const w = Math.max(1, Math.round(canvas.clientWidth * dpr)), h = Math.max(1, Math.round(canvas.clientHeight * dpr));
  if (canvas.width !== w || canvas.height !== h) { canvas.width = w; canvas.height = h; }
  return { w, h, dpr };
}

/** Points of a series in plotted space (log10 where asked), finite only, optionally smoothed. */
function project(points, logX, logY, smooth) {
  const out = [];
  for (const [x, y] of points) {
    const px = logX ? (x > 0 ? Math.log10(x) : NaN) : x;
    const py = logY ? (y > 0 ? Math.log10(y) : NaN) : y;
    if (Number.isFinite(px) && Number.isFinite(py)) out.push([px, py]);
  }
  if (smooth > 0 && out.length > 2) {
    const alpha = Math.min(1, 1 / (smooth * out.length));
    let ema = out[0][1];
    for (const p of out) { ema += alpha * (p[1] - ema); p[1] = ema; }
  }
  return out;
}

export function drawChart(canvas, opts) {
  const { series = [], logX = false, logY = false, smooth = 0, axes = true, xCaption = null, legend = false, empty = '' } = opts;
  const { w, h, dpr } = fit(canvas);
  const g = canvas.getContext('2d');
  g.clearRect(0, 0, w, h);
  g.font = `${11 * dpr}px system-ui, sans-serif`;
  g.fillStyle = '#8a94a7';
  const lines = series.map((s) => ({ ...s, pts: project(s.points, logX, logY, smooth) })).filter((s) => s.pts.length);
  const all = lines.flatMap((s) => s.pts);
  if (all.length < 1 || (all.length < 2 && !lines.some((s) => s.dots))) {
    if (empty) g.fillText(empty, 8 * dpr, h / 2);
    return;
  }
  let [xlo, xhi, ylo, yhi] = [Infinity, -Infinity, Infinity, -Infinity];
  for (const [x, y] of all) { xlo = Math.min(xlo, x); xhi = Math.max(xhi, x); ylo = Math.min(ylo, y); yhi = Math.max(yhi, y); }
  if (logY) { ylo = Math.floor(ylo * 4) / 4; yhi = Math.ceil(yhi * 4) / 4; }
  const minSpan = logY ? 0.25 : Math.max(Math.abs(yhi) * 0.05, 1e-6);
  if (yhi - ylo < minSpan) { const m = (yhi + ylo) / 2; ylo = m - minSpan / 2; yhi = m + minSpan / 2; }
  if (xhi - xlo < (logX ? 0.1 : 1)) xhi = xlo + (logX ? 0.1 : 1);
  const pad = axes ? { l: 34 * dpr, r: (legend ? 70 : 6) * dpr, t: 8 * dpr, b: 16 * dpr } : { l: 2, r: 2, t: 2, b: 2 };
  const X = (x) => pad.l + ((x - xlo) / (xhi - xlo)) * (w - pad.l - pad.r);
  const Y = (y) => pad.t + (1 - (y - ylo) / (yhi - ylo)) * (h - pad.t - pad.b);
  const un = (v, log) => (log ? 10 ** v : v);
  if (axes) {
    g.strokeStyle = '#1f2633';
    g.lineWidth = 1;
    if (logY) {
      for (let d = Math.ceil(ylo * 4) / 4; d <= yhi + 1e-9; d += 0.25) {
        g.beginPath(); g.moveTo(pad.l, Y(d)); g.lineTo(w - pad.r, Y(d)); g.stroke();
        if (Math.abs(d - Math.round(d)) < 1e-9 || yhi - ylo <= 1) g.fillText(fmt.num(10 ** d, 2), 2 * dpr, Y(d) + 4 * dpr);
      }
    } else {
      g.fillText(fmt.num(yhi, 2), 2 * dpr, Y(yhi) + 8 * dpr);
      g.fillText(fmt.num(ylo, 2), 2 * dpr, Y(ylo));
    }
    if (logX) {
      g.fillText(fmt.int(un(xlo, true)), pad.l, h - 3 * dpr);
    }
    const caption = xCaption ? xCaption(un(xhi, logX)) : '';
    if (caption) g.fillText(caption, w - pad.r - g.measureText(caption).width, h - 3 * dpr);
  }
  let row = 0;
  for (const s of lines) {
    g.strokeStyle = g.fillStyle = s.color || '#7aa2ff';
    g.lineWidth = 1.5 * (axes ? dpr : 1);
    const pts = s.sort ? [...s.pts].sort((a, b) => a[0] - b[0]) : s.pts;
    g.beginPath();
    pts.forEach(([x, y], i) => (i ? g.lineTo : g.moveTo).call(g, X(x), Y(y)));
    g.stroke();
    if (s.dots) {
      const r = (s.dotSize || 3) * dpr;
      for (const [x, y] of pts) g.fillRect(X(x) - r / 2, Y(y) - r / 2, r, r);
    }
    if (legend && s.label) g.fillText(s.label, w - pad.r + 8 * dpr, pad.t + (12 + 14 * row++) * dpr);
  }
}
