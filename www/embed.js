// www/embed.js — glue of embed.html: the URL hash (the demo page's fields plus the widget's own
// options) becomes the attributes of the page's single <flow-matching-demo>, which fills the
// frame (www/embed.css stretches its shadow parts); `hashchange` re-applies it live. Configuration fields go through the widget's `config`
// attribute, so an invalid one is reported inline by the widget and falls back to its default.

import './widget.js';

const WIDGET_OPTIONS = ['controls', 'autoplay', 'train-steps', 'theme', 'trajectories', 'field', 'target', 'loss'];
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
