//! The preset table (`crate::presets`) for the page's menu and the widget's `preset` attribute.
#![cfg(target_arch = "wasm32")]

use wasm_bindgen::prelude::*;

/// Every preset as JSON: `[{name, title, about, paper, url, config, views, compare}]`.
#[wasm_bindgen]
pub fn presets_json() -> String {
    crate::presets::presets_json()
}

/// The views a preset may turn on (`crate::presets::VIEWS`: layer names and `loss`, the chart).
#[wasm_bindgen]
pub fn preset_views() -> Vec<String> {
    crate::presets::VIEWS.iter().map(|v| v.to_string()).collect()
}
