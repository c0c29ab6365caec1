// www/embed.js — glue of embed.html: the URL hash (the demo page's fields plus the widget's own
// options, `EMBED_OPTIONS` of widget.js: layers, train-steps, controls, autoplay, theme, loss,
// backend) becomes the attributes of the page's single <flow-matching-demo>, which fills the frame
// (www/embed.css stretches its shadow parts); `hashchange` re-applies it live. Everything else
// goes through the widget's `config` attribute, so an invalid field is reported inline by the
// widget and falls back to its default.

import { EMBED_OPTIONS as WIDGET_OPTIONS } from './widget.js';
const figure = document.getElementById('figure');

function apply() {
  const params = new URLSearchParams(location.hash.replace(/^#/, ''));
  const config = [];
  const seen = new Set();
  for (const [key, value] of params) {
    const k = key.trim().toLowerCase();
    if (WIDGET_OPTIONS.includes(k)) {
      figure.setAttribute(k, value);
      seen.add(k);
    } else {
      config.push(`${encodeURIComponent(key)}=${encodeURIComponent(value)}`);
    }
  }
  for (const k of WIDGET_OPTIONS) if (!seen.has(k)) figure.removeAttribute(k);
  if (!seen.has('controls')) figure.setAttribute('controls', 'minimal');
  figure.setAttribute('config', config.join('&'));
}

apply();
addEventListener('hashchange', apply);
