//! A drawing made with a brush on the flow canvas, in view (world) coordinates.
//!
//! The brush deposits points: along a stroke segment from `a` to `b`, dabs are placed every
//! `radius / 2`, and each dab scatters [`POINTS_PER_DAB`] points uniformly in the disk of
//! `radius` around it (so the ink density per unit of stroke length is the same for slow and
//! fast pointer moves). The eraser removes every point within `radius` of its segment. What is
//! drawn is the target: no rescaling, so the target appears exactly under the brush.
//! The drawing holds at most [`MAX_POINTS`] points; the brush stops depositing at the limit.
//! Every point carries the class of the brush colour that deposited it (0 to [`BRUSH_CLASSES`] − 1),
//! the label a class-conditional model trains with: one class per brush colour.

use super::custom::{TargetError, MAX_POINTS, MIN_POINTS};
use crate::rng::Stream;

/// Points scattered per dab of the brush.
pub const POINTS_PER_DAB: usize = 24;
/// Brush radius range (view units; the default view spans [-5, 5]²).
pub const MIN_RADIUS: f32 = 0.02;
pub const MAX_RADIUS: f32 = 2.0;
/// Brush colours, each a class of the drawing (`www/targets.js` offers this many).
pub const BRUSH_CLASSES: u32 = 4;

#[derive(Clone, Debug)]
pub struct Drawing {
    points: Vec<[f32; 2]>,
    /// The brush colour (class) of each point.
    labels: Vec<u32>,
    rng: Stream,
}

impl Default for Drawing {
    fn default() -> Self {
        Drawing { points: Vec::new(), labels: Vec::new(), rng: Stream::new(0, crate::rng::stream::DRAWING) }
    }
}

fn clean_radius(r: f32) -> f32 {
    if r.is_finite() { r.clamp(MIN_RADIUS, MAX_RADIUS) } else { MIN_RADIUS }
}

/// Distance from `p` to the segment `a`–`b`.
fn segment_distance(p: [f32; 2], a: [f32; 2], b: [f32; 2]) -> f32 {
    let (dx, dy) = (b[0] - a[0], b[1] - a[1]);
    let len2 = dx * dx + dy * dy;
    let s = if len2 > 0.0 { (((p[0] - a[0]) * dx + (p[1] - a[1]) * dy) / len2).clamp(0.0, 1.0) } else { 0.0 };
    let (qx, qy) = (a[0] + s * dx - p[0], a[1] + s * dy - p[1]);
    (qx * qx + qy * qy).sqrt()
}

fn finite(p: [f32; 2]) -> bool {
    p[0].is_finite() && p[1].is_finite()
}

impl Drawing {
    /// Brush from `a` to `b` (a dab at `a` when they are equal) in the first colour. Returns the
    /// points added (fewer than asked, or 0, at the limit).
    pub fn stroke(&mut self, a: [f32; 2], b: [f32; 2], radius: f32) -> usize {
        self.stroke_class(a, b, radius, 0)
    }

    /// As [`Drawing::stroke`] in brush colour `class` (0 to `BRUSH_CLASSES` − 1; others are
    /// refused: nothing is drawn).
    pub fn stroke_class(&mut self, a: [f32; 2], b: [f32; 2], radius: f32, class: u32) -> usize {
        if !finite(a) || !finite(b) || class >= BRUSH_CLASSES {
            return 0;
        }
        let r = clean_radius(radius);
        let len = ((b[0] - a[0]).powi(2) + (b[1] - a[1]).powi(2)).sqrt();
        let dabs = ((len / (0.5 * r)).ceil() as usize).clamp(1, 10_000);
        let before = self.points.len();
        'dabs: for k in 0..dabs {
            // Dabs at the segment's far end up to (not including) its start, so consecutive
            // segments of one stroke do not double the ink at their joints; a lone dab sits at a.
            let s = if len > 0.0 { (k + 1) as f32 / dabs as f32 } else { 0.0 };
            let c = [a[0] + s * (b[0] - a[0]), a[1] + s * (b[1] - a[1])];
            for _ in 0..POINTS_PER_DAB {
                if self.points.len() >= MAX_POINTS {
                    break 'dabs;
                }
                // Uniform in the disk: radius r·sqrt(u).
                let rho = r * self.rng.uniform().sqrt();
                let th = std::f32::consts::TAU * self.rng.uniform();
                self.points.push([c[0] + rho * th.cos(), c[1] + rho * th.sin()]);
                self.labels.push(class);
            }
        }
        self.points.len() - before
    }

    /// Eraser from `a` to `b`: removes the points within `radius` of the segment. Returns how many.
    pub fn erase(&mut self, a: [f32; 2], b: [f32; 2], radius: f32) -> usize {
        if !finite(a) || !finite(b) {
            return 0;
        }
        let r = clean_radius(radius);
        let before = self.points.len();
        let keep: Vec<bool> = self.points.iter().map(|&p| segment_distance(p, a, b) > r).collect();
        let mut k = keep.iter();
        self.points.retain(|_| *k.next().unwrap_or(&false));
        let mut k = keep.iter();
        self.labels.retain(|_| *k.next().unwrap_or(&false));
        before - self.points.len()
    }

    pub fn clear(&mut self) {
        self.points.clear();
        self.labels.clear();
    }

    /// The brush colour (class) of each point, in the order of [`Drawing::points`].
    pub fn labels(&self) -> &[u32] {
        &self.labels
    }

    pub fn points(&self) -> &[[f32; 2]] {
        &self.points
    }

    pub fn len(&self) -> usize {
        self.points.len()
    }

    pub fn is_empty(&self) -> bool {
        self.points.is_empty()
    }

    /// True when the brush can deposit no more points.
    pub fn at_limit(&self) -> bool {
        self.points.len() >= MAX_POINTS
    }

    /// The drawing as a training target (a copy of its points), or why it cannot be one.
    pub fn target(&self) -> Result<Vec<[f32; 2]>, TargetError> {
        if self.points.is_empty() {
            return Err(TargetError::EmptyDrawing);
        }
        if self.points.len() < MIN_POINTS {
            return Err(TargetError::TooFew(self.points.len()));
        }
        Ok(self.points.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn brush_deposits_evenly_along_the_stroke_within_its_radius() {
        let mut d = Drawing::default();
        let n = d.stroke([-2.0, 0.0], [2.0, 0.0], 0.5);
        // 4 units at a dab every 0.25 → 16 dabs.
        assert_eq!(n, 16 * POINTS_PER_DAB);
        assert!(d.points().iter().all(|p| segment_distance(*p, [-2.0, 0.0], [2.0, 0.0]) <= 0.5 + 1e-5));
        // The same stroke as many short moves (as pointer events come): the same ink.
        let mut e = Drawing::default();
        for k in 0..16 {
            let x = -2.0 + 0.25 * k as f32;
            e.stroke([x, 0.0], [x + 0.25, 0.0], 0.5);
        }
        assert_eq!(e.len(), n);
        // Left and right halves get the same share.
        let left = d.points().iter().filter(|p| p[0] < 0.0).count() as f32 / n as f32;
        assert!((left - 0.5).abs() < 0.07, "left share {left}");
        // A click is one dab.
        let mut f = Drawing::default();
        assert_eq!(f.stroke([1.0, 1.0], [1.0, 1.0], 0.5), POINTS_PER_DAB);
    }

    #[test]
    fn every_point_keeps_its_brush_colour_through_the_eraser() {
        let mut d = Drawing::default();
        let a = d.stroke_class([-3.0, 0.0], [-1.0, 0.0], 0.3, 0);
        let b = d.stroke_class([1.0, 0.0], [3.0, 0.0], 0.3, 2);
        assert_eq!(d.stroke_class([0.0, 2.0], [0.0, 3.0], 0.3, BRUSH_CLASSES), 0, "an unknown colour draws nothing");
        assert_eq!(d.labels().len(), a + b);
        assert!(d.points().iter().zip(d.labels()).all(|(p, &l)| (p[0] < 0.0) == (l == 0) && (l == 0 || l == 2)));
        // Erase the left half of the colour-2 stroke: the rest keep their colours.
        let gone = d.erase([1.0, -1.0], [1.0, 1.0], 0.9);
        assert!(gone > 0);
        assert_eq!(d.labels().len(), d.len());
        assert!(d.points().iter().zip(d.labels()).all(|(p, &l)| if p[0] < 0.0 { l == 0 } else { l == 2 && p[0] > 1.9 - 1e-4 }));
        d.clear();
        assert!(d.labels().is_empty());
    }

    #[test]
    fn eraser_removes_only_near_points_and_clear_empties() {
        let mut d = Drawing::default();
        d.stroke([-2.0, 0.0], [2.0, 0.0], 0.2);
        d.stroke([-2.0, 2.0], [2.0, 2.0], 0.2);
        let before = d.len();
        let removed = d.erase([-3.0, 2.0], [3.0, 2.0], 0.5);
        assert_eq!(removed, before / 2);
        assert!(d.points().iter().all(|p| p[1].abs() <= 0.2 + 1e-5));
        d.clear();
        assert!(d.is_empty());
        assert_eq!(d.target(), Err(TargetError::EmptyDrawing));
    }

    #[test]
    fn bad_input_is_ignored_and_the_limit_holds() {
        let mut d = Drawing::default();
        assert_eq!(d.stroke([f32::NAN, 0.0], [1.0, 1.0], 0.2), 0);
        assert_eq!(d.erase([0.0, f32::INFINITY], [1.0, 1.0], 0.2), 0);
        // A NaN radius falls back to the smallest brush instead of poisoning the points.
        d.stroke([0.0, 0.0], [0.0, 0.0], f32::NAN);
        assert!(d.points().iter().all(|p| p[0].is_finite() && p[1].is_finite()));
        let mut big = Drawing::default();
        let mut k = 0;
        while !big.at_limit() && k < 100_000 {
            big.stroke([-4.0, 0.0], [4.0, 0.0], 0.05);
            k += 1;
        }
        assert_eq!(big.len(), MAX_POINTS);
        assert_eq!(big.stroke([0.0, 0.0], [1.0, 0.0], 0.1), 0);
        assert_eq!(big.target().unwrap().len(), MAX_POINTS);
    }
}
