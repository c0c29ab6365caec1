//! "Your own target" on the page: the `App` methods behind `www/targets.js` (draw, text, image,
//! CSV points), and what happens to a custom target when settings change.
//!
//! Validation and rasterising maths live in `targets::custom` / `targets::drawing` (unit-tested
//! natively); this file only routes them to the backend. A new target replaces the training
//! points in place (`GpuView::set_target` → `GpuTrainer::set_target`, `CpuView::set_target`):
//! the weights, Adam moments, step counter and loss curve are KEPT, so the flow morphs from the
//! old target to the new one (Reset starts from fresh weights on the new target). Any error
//! leaves the current target and model untouched and comes back as a message for the page.
//!
//! Settings that rebuild the trainer (width, batch, ...) keep the custom target (it is uploaded
//! again); choosing a standard dataset ends it. Custom targets are not in the URL hash: the hash
//! keeps `dataset=` of the last standard dataset, and the page says so.

use super::{App, Backend, Inner};
use crate::config::Config;
use crate::targets::custom::{bounds, CustomKind, CustomTarget, MAX_POINTS};
use crate::targets::Drawing;
use js_sys::{Float32Array, Object, Reflect};
use wasm_bindgen::prelude::*;

/// The page's custom-target state.
#[derive(Default)]
pub(super) struct CustomState {
    drawing: Drawing,
    /// The custom target being trained on (None: the config's standard dataset).
    active: Option<CustomTarget>,
    /// Targets made so far: varies the shuffle/raster seed between uploads.
    made: u32,
}

fn set(obj: &Object, key: &str, value: impl Into<JsValue>) {
    let _ = Reflect::set(obj, &key.into(), &value.into());
}

impl Inner {
    fn upload_target(&mut self, points: &[[f32; 2]]) -> Result<(), String> {
        match &mut self.backend {
            Backend::Gpu(g) => g.set_target(points),
            Backend::Cpu(c) => c.set_target(points),
        }
    }

    fn next_seed(&mut self) -> u32 {
        self.custom.made = self.custom.made.wrapping_add(1);
        self.config.seed ^ self.custom.made.wrapping_mul(0x9e37_79b9)
    }

    /// Trains on `target` from now on; on error nothing changes.
    fn use_custom(&mut self, target: CustomTarget) -> Result<(), String> {
        self.upload_target(&target.points)?;
        self.custom.active = Some(target);
        Ok(())
    }

    /// Back to the config's standard dataset (same points as a fresh start), keeping the model.
    fn end_custom(&mut self) -> Result<(), String> {
        if self.custom.active.is_none() {
            return Ok(());
        }
        let (data, _) = super::super::gpu_view::training_data(&self.config);
        self.upload_target(&data)?;
        self.custom.active = None;
        Ok(())
    }

    /// Called by `apply` after the backend was rebuilt for `next` (with `next`'s standard
    /// dataset): a new dataset ends the custom target, anything else keeps it.
    pub(super) fn after_retrain(&mut self, old: &Config, next: &Config) {
        if next.dataset != old.dataset {
            self.custom.active = None;
            return;
        }
        if let Some(points) = self.custom.active.as_ref().map(|t| t.points.clone()) {
            if let Err(e) = self.upload_target(&points) {
                self.custom.active = None;
                self.error = Some(format!("your own target could not be kept after the settings change ({e}); training on the dataset instead"));
            }
        }
    }

    /// Called by `App::set("dataset", ..)`: picking a dataset (even the current one) ends the
    /// custom target.
    pub(super) fn chose_dataset(&mut self) {
        if let Err(e) = self.end_custom() {
            self.error = Some(e);
        }
    }

    fn target_info(&self) -> Object {
        let o = Object::new();
        set(&o, "custom", self.custom.active.is_some());
        set(&o, "drawingPoints", self.custom.drawing.len() as u32);
        set(&o, "drawingFull", self.custom.drawing.at_limit());
        set(&o, "maxPoints", MAX_POINTS as u32);
        set(&o, "dataset", self.config.dataset.name());
        if let Some(t) = &self.custom.active {
            set(&o, "kind", t.kind.name());
            set(&o, "label", t.label.as_str());
            set(&o, "points", t.points.len() as u32);
            let tr = Object::new();
            set(&tr, "cx", t.transform.center[0]);
            set(&tr, "cy", t.transform.center[1]);
            set(&tr, "scale", t.transform.scale);
            set(&o, "transform", tr);
            if let Some(b) = bounds(&t.points) {
                set(&o, "bounds", Float32Array::from(&b[..]));
            }
        }
        o
    }
}

#[wasm_bindgen]
impl App {
    /// Trains on points from CSV text (`x,y` per line, header optional; the CLI's format),
    /// centred and scaled into the view. Returns `target_info()`; on bad input throws a message
    /// naming the line and what is allowed, and nothing changes.
    pub fn set_target_csv(&self, text: &str, name: &str) -> Result<Object, JsError> {
        let mut s = self.inner.borrow_mut();
        let seed = s.next_seed();
        let t = CustomTarget::from_csv(text, name, seed).map_err(|e| JsError::new(&e.to_string()))?;
        s.use_custom(t).map_err(|e| JsError::new(&e))?;
        Ok(s.target_info())
    }

    /// Trains on the darkness of an RGBA raster (`width × height`, top row first): `kind` is
    /// `"text"` or `"image"`, `label` what the person typed or the file name, `invert` to make
    /// light pixels the ink. Throws (and changes nothing) on a blank or malformed raster.
    pub fn set_target_image(&self, rgba: &[u8], width: u32, height: u32, kind: &str, label: &str, invert: bool) -> Result<Object, JsError> {
        let kind = match kind {
            "text" => CustomKind::Text,
            "image" => CustomKind::Image,
            other => return Err(JsError::new(&format!("unknown raster kind '{other}': expected text or image"))),
        };
        let mut s = self.inner.borrow_mut();
        let seed = s.next_seed();
        let t = CustomTarget::from_rgba(kind, label, rgba, width as usize, height as usize, invert, seed)
            .map_err(|e| JsError::new(&e.to_string()))?;
        s.use_custom(t).map_err(|e| JsError::new(&e))?;
        Ok(s.target_info())
    }

    /// Paints (or with `erase`, erases) from `(x0, y0)` to `(x1, y1)` in view coordinates with
    /// a brush of `radius` view units. Only the drawing changes; `commit_drawing` trains on it.
    /// Returns the drawing's point count.
    pub fn draw_stroke(&self, x0: f32, y0: f32, x1: f32, y1: f32, radius: f32, erase: bool) -> u32 {
        let mut s = self.inner.borrow_mut();
        let d = &mut s.custom.drawing;
        if erase {
            d.erase([x0, y0], [x1, y1], radius);
        } else {
            d.stroke([x0, y0], [x1, y1], radius);
        }
        d.len() as u32
    }

    /// Empties the drawing. The target being trained stays until the next commit.
    pub fn clear_drawing(&self) {
        self.inner.borrow_mut().custom.drawing.clear();
    }

    /// Trains on the drawing from now on (the page calls this during and after each stroke).
    /// Throws for an empty drawing, and nothing changes.
    pub fn commit_drawing(&self) -> Result<Object, JsError> {
        let mut s = self.inner.borrow_mut();
        let seed = s.next_seed();
        let t = CustomTarget::from_drawing(&s.custom.drawing, seed).map_err(|e| JsError::new(&e.to_string()))?;
        s.use_custom(t).map_err(|e| JsError::new(&e))?;
        Ok(s.target_info())
    }

    /// Ends the custom target: back to the standard dataset of the settings, keeping the model.
    pub fn use_dataset_target(&self) -> Result<Object, JsError> {
        let mut s = self.inner.borrow_mut();
        s.end_custom().map_err(|e| JsError::new(&e))?;
        Ok(s.target_info())
    }

    /// `{custom, kind, label, points, bounds: [xmin, ymin, xmax, ymax], transform: {cx, cy,
    /// scale}, drawingPoints, drawingFull, maxPoints, dataset}`; view = (original − c)·scale.
    pub fn target_info(&self) -> Object {
        self.inner.borrow().target_info()
    }

    /// The custom target's points in view coordinates (`x0, y0, x1, y1, ...`; empty when
    /// training on a standard dataset).
    pub fn target_points(&self) -> Float32Array {
        let s = self.inner.borrow();
        let flat: Vec<f32> = s.custom.active.iter().flat_map(|t| t.points.iter().flat_map(|p| [p[0], p[1]])).collect();
        Float32Array::from(&flat[..])
    }

    /// Resolves to the particles' positions at t = 1 of the newest integration, in view
    /// coordinates (`Float32Array` of `x0, y0, x1, y1, ...`).
    pub fn samples(&self) -> js_sys::Promise {
        let s = self.inner.borrow();
        match &s.backend {
            Backend::Gpu(g) => {
                let fut = g.samples();
                wasm_bindgen_futures::future_to_promise(async move {
                    let v = fut.await.map_err(|e| JsValue::from(JsError::new(&e.to_string())))?;
                    Ok(Float32Array::from(&v[..]).into())
                })
            }
            Backend::Cpu(c) => {
                let v: JsValue = Float32Array::from(&c.samples()[..]).into();
                js_sys::Promise::resolve(&v)
            }
        }
    }

    /// Resolves to the samples as CSV (`x,y` header) in the custom target's ORIGINAL
    /// coordinates (the inverse of the centring/scaling; view coordinates for drawings, text,
    /// images and standard datasets).
    pub fn samples_csv(&self) -> js_sys::Promise {
        let target = self.inner.borrow().custom.active.clone().unwrap_or(CustomTarget {
            kind: CustomKind::Points,
            label: String::new(),
            points: Vec::new(),
            transform: crate::targets::ViewTransform::IDENTITY,
        });
        let samples = self.samples();
        wasm_bindgen_futures::future_to_promise(async move {
            let v = wasm_bindgen_futures::JsFuture::from(samples).await?;
            let flat = Float32Array::new(&v).to_vec();
            let pts: Vec<[f32; 2]> = flat.chunks_exact(2).map(|c| [c[0], c[1]]).collect();
            Ok(JsValue::from(target.to_original_csv(&pts)))
        })
    }
}

/// Most points a custom target may have (CSV rows or drawn points); the page states it.
#[wasm_bindgen]
pub fn max_custom_points() -> u32 {
    MAX_POINTS as u32
}
