//! "Your own target": the drawing in progress and the custom target being trained on (free of
//! browser types). Validation and rasterising live in `targets::custom` / `targets::drawing`; the
//! page hands a new target to the engine (`Engine::set_target`) and only then records it here, so
//! an error leaves the current target and model as they were. A new target keeps the weights (the
//! flow morphs to it); a new model keeps the custom target (it is uploaded again); choosing a
//! standard dataset ends it. Custom targets are not part of the URL hash.

use crate::targets::custom::{bounds, CustomKind, CustomTarget};
use crate::targets::{Drawing, ViewTransform};

#[derive(Default)]
pub struct CustomTargets {
    pub drawing: Drawing,
    /// The custom target being trained on (None: the configuration's dataset).
    active: Option<CustomTarget>,
    /// Targets made so far: varies the shuffle/raster seed between uploads.
    made: u32,
    /// The brush colour (the class of the points it deposits).
    pub brush: u32,
}

/// What the page shows about the target (`App::target_info`).
#[derive(Clone, Debug, PartialEq)]
pub struct TargetInfo {
    pub custom: bool,
    pub kind: Option<&'static str>,
    pub label: Option<String>,
    pub points: Option<u32>,
    pub transform: Option<ViewTransform>,
    pub bounds: Option<[f32; 4]>,
    pub drawing_points: u32,
    pub drawing_full: bool,
}

impl CustomTargets {
    /// A seed for the next target made from `config_seed`.
    pub fn next_seed(&mut self, config_seed: u32) -> u32 {
        self.made = self.made.wrapping_add(1);
        config_seed ^ self.made.wrapping_mul(0x9e37_79b9)
    }

    /// `t` is being trained on now.
    pub fn activate(&mut self, t: CustomTarget) {
        self.active = Some(t);
    }

    /// Back to the dataset.
    pub fn end(&mut self) {
        self.active = None;
    }

    pub fn active(&self) -> Option<&CustomTarget> {
        self.active.as_ref()
    }

    /// The active target's points to upload again after a new model (None: no custom target).
    pub fn points(&self) -> Option<&[[f32; 2]]> {
        self.active.as_ref().map(|t| &t.points[..])
    }

    /// The target used to turn samples back into the user's coordinates (identity without one).
    pub fn for_export(&self) -> CustomTarget {
        self.active.clone().unwrap_or(CustomTarget { kind: CustomKind::Points, label: String::new(), points: Vec::new(), labels: Vec::new(), transform: ViewTransform::IDENTITY })
    }

    pub fn info(&self) -> TargetInfo {
        let t = self.active.as_ref();
        TargetInfo {
            custom: t.is_some(),
            kind: t.map(|t| t.kind.name()),
            label: t.map(|t| t.label.clone()),
            points: t.map(|t| t.points.len() as u32),
            transform: t.map(|t| t.transform),
            bounds: t.and_then(|t| bounds(&t.points)),
            drawing_points: self.drawing.len() as u32,
            drawing_full: self.drawing.at_limit(),
        }
    }
}
