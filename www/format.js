// www/format.js — the one way numbers become text on the page, in the widget and on the charts'
// axes: anything that is not a finite number (NaN, ±Infinity, null, undefined, a string) is shown
// as a dash, so "NaN" or "Infinity" can never reach a readout, a caption or an axis label.

export const DASH = '–';

const finite = (x) => typeof x === 'number' && Number.isFinite(x);

/** `x` to `digits` significant digits (`toPrecision`), or a dash. */
export function num(x, digits = 4) {
  return finite(x) ? x.toPrecision(digits) : DASH;
}

/** `x` rounded to a whole number with thousands separators (`1,234`), or a dash. */
export function int(x) {
  return finite(x) ? Math.round(x).toLocaleString('en') : DASH;
}

/** `x` with `decimals` digits after the point (`toFixed`), or a dash. */
export function fixed(x, decimals) {
  return finite(x) ? x.toFixed(decimals) : DASH;
}

/** A short form for coordinates: exponent notation for very large or small magnitudes, else at
 *  most 4 significant digits without trailing zeros; or a dash. */
export function short(x) {
  if (!finite(x)) return DASH;
  return Math.abs(x) >= 1e4 || (Math.abs(x) < 1e-2 && x !== 0) ? x.toExponential(2) : Number(x.toPrecision(4)).toString();
}
