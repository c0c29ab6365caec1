//! The lists JavaScript needs, written once in Rust and exported as JSON text: the settings
//! (`config::FIELDS`: name, label, help, range or choices, default, effect, scope), the canvas
//! layers (`render::LAYERS`) and the solvers (`config::Solver`). The page builds its controls and
//! checkboxes from them, the widget its observed attributes, the embed page its options, and the
//! quality charts their series (`www/app.js`, `www/widget.js`, `www/embed.js`, `www/quality.js`).

use crate::config::{Effect, FieldKind, Scope, Solver, FIELDS};
use crate::render::LAYERS;
use std::fmt::Write;

/// A JSON string literal.
fn s(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn list(items: impl IntoIterator<Item = String>) -> String {
    format!("[{}]", items.into_iter().collect::<Vec<_>>().join(","))
}

/// A finite number as JSON.
fn num(x: f64) -> String {
    if x.is_finite() { format!("{x}") } else { "null".into() }
}

/// The widget attribute of a setting: its name with `-` for `_`, and `fm-` before a name that is
/// a global HTML attribute (`class` styles an element: the sampling class is `fm-class`).
pub fn attr_name(name: &str) -> String {
    const GLOBAL: [&str; 9] = ["class", "id", "style", "title", "hidden", "lang", "dir", "slot", "part"];
    let attr = name.replace('_', "-");
    if GLOBAL.contains(&attr.as_str()) { format!("fm-{attr}") } else { attr }
}

/// Every setting: `{name, attr, label, help, kind: "int"|"float"|"choice", min, max, minOpen,
/// logScale, choices, default, effect: "retrain"|"resample"|"live", scope: "all"|"cli", advanced}`.
pub fn fields_json() -> String {
    list(FIELDS.iter().map(|f| {
        let (kind, min, max, min_open, log_scale, choices) = match f.kind {
            FieldKind::Int { min, max } => ("int", min as f64, max as f64, false, false, Vec::new()),
            FieldKind::Float { min, min_open, max, log_scale } => ("float", min as f64, max as f64, min_open, log_scale, Vec::new()),
            FieldKind::Choice(names) => ("choice", f64::NAN, f64::NAN, false, false, names()),
        };
        let effect = match f.effect {
            Effect::Retrain => "retrain",
            Effect::Resample => "resample",
            Effect::Live => "live",
        };
        let scope = match f.scope {
            Scope::All => "all",
            Scope::Cli => "cli",
        };
        format!(
            "{{\"name\":{},\"attr\":{},\"label\":{},\"help\":{},\"kind\":{},\"min\":{},\"max\":{},\"minOpen\":{},\"logScale\":{},\"choices\":{},\"default\":{},\"effect\":{},\"scope\":{},\"advanced\":{}}}",
            s(f.name),
            s(&attr_name(f.name)),
            s(f.label),
            s(f.help),
            s(kind),
            num(min),
            num(max),
            min_open,
            log_scale,
            list(choices.into_iter().map(s)),
            s(&f.default_value()),
            s(effect),
            s(scope),
            f.advanced
        )
    }))
}

/// Every canvas layer: `{name, aliases, label, help, defaultOn}`.
pub fn layers_json() -> String {
    list(LAYERS.iter().map(|l| {
        format!(
            "{{\"name\":{},\"aliases\":{},\"label\":{},\"help\":{},\"defaultOn\":{}}}",
            s(l.name),
            list(l.aliases.iter().map(|a| s(a))),
            s(l.label),
            s(l.help),
            l.default_on
        )
    }))
}

/// Every solver: `{name, evalsPerStep, adaptive}`, in `Solver::ALL` order.
pub fn solvers_json() -> String {
    list(Solver::ALL.iter().map(|v| format!("{{\"name\":{},\"evalsPerStep\":{},\"adaptive\":{}}}", s(v.name()), v.evals_per_step(), v.is_adaptive())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_name_every_entry_and_are_valid_json_shapes() {
        let f = fields_json();
        for field in FIELDS {
            assert!(f.contains(&format!("\"name\":\"{}\"", field.name)), "{}", field.name);
        }
        assert!(f.contains("\"attr\":\"fm-class\""), "the sampling class is not HTML's class attribute");
        assert!(f.contains("\"attr\":\"sigma-min\"") && f.contains("\"choices\":[\"euler\",\"midpoint\",\"rk4\",\"dopri5\"]"), "{f}");
        assert!(f.contains("\"scope\":\"cli\""), "samples is command-line only");
        assert_eq!(f.matches('{').count(), FIELDS.len());
        let l = layers_json();
        assert!(l.contains("\"name\":\"trajectories\",\"aliases\":[\"trails\"]"), "{l}");
        assert!(solvers_json().contains("{\"name\":\"dopri5\",\"evalsPerStep\":1,\"adaptive\":true}"));
        assert_eq!(s("a\"b\\c\n"), "\"a\\\"b\\\\c\\n\"");
    }
}

/// The lists as wasm exports (`JSON.parse` them in JavaScript).
#[cfg(target_arch = "wasm32")]
mod js {
    use wasm_bindgen::prelude::*;

    /// Every setting (see [`super::fields_json`]), as JSON text.
    #[wasm_bindgen]
    pub fn field_specs() -> String {
        super::fields_json()
    }

    /// Every canvas layer (see [`super::layers_json`]), as JSON text.
    #[wasm_bindgen]
    pub fn layer_specs() -> String {
        super::layers_json()
    }

    /// Every solver (see [`super::solvers_json`]), as JSON text.
    #[wasm_bindgen]
    pub fn solver_specs() -> String {
        super::solvers_json()
    }

    /// The allowed values of an enum field (`dataset`, `activation`, `solver`, ...).
    #[wasm_bindgen]
    pub fn choices(field: &str) -> Vec<String> {
        match crate::config::field(field).map(|f| f.kind) {
            Some(crate::config::FieldKind::Choice(names)) => names().into_iter().map(String::from).collect(),
            _ => Vec::new(),
        }
    }

    /// Class labels of a dataset (`shared/spec/datasets.md`; 0 for an unknown name): the page's
    /// class picker offers `all` and `0..n`.
    #[wasm_bindgen]
    pub fn dataset_classes(dataset: &str) -> u32 {
        dataset.parse::<crate::config::Dataset>().map_or(0, |d| d.num_classes())
    }

    /// The model file formats Save writes and Load reads (`flowmatch` first: the default of
    /// `App.save_model`), as file extensions without the dot.
    #[wasm_bindgen]
    pub fn model_formats() -> Vec<String> {
        crate::model_file::ModelFormat::ALL.iter().map(|f| f.extension().to_string()).collect()
    }

    /// The field names the page's link holds, in hash order.
    #[wasm_bindgen]
    pub fn fields() -> Vec<String> {
        crate::config::FIELDS.iter().filter(|f| f.scope == crate::config::Scope::All).map(|f| f.name.to_string()).collect()
    }

    /// Most points a custom target may have (CSV rows or drawn points); the page states it.
    #[wasm_bindgen]
    pub fn max_custom_points() -> u32 {
        crate::targets::custom::MAX_POINTS as u32
    }

    /// Brush colours of the drawing, each a class (`targets::drawing::BRUSH_CLASSES`).
    #[wasm_bindgen]
    pub fn brush_classes() -> u32 {
        crate::targets::drawing::BRUSH_CLASSES
    }
}
