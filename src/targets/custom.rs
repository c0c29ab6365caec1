//! Targets a person brings: pasted/uploaded CSV points, and raster densities (a drawing, typed
//! text rendered to an offscreen canvas, an uploaded image), plus the map that centres and scales
//! them into the default view.
//!
//! Every entry point validates and returns a [`TargetError`] that says what was wrong and what is
//! allowed; on error the caller keeps its current target and model.

use crate::rng::Stream;

/// Most points a custom CSV target may have.
pub const MAX_POINTS: usize = 200_000;
/// Fewest distinct points that define a distribution worth training on.
pub const MIN_POINTS: usize = 2;
/// Points drawn from a raster (drawing, text, image) as the training target.
pub const RASTER_POINTS: usize = 1 << 15;
/// Largest raster accepted (pixels).
pub const MAX_PIXELS: usize = 4096 * 4096;
/// After normalisation the points' largest |coordinate| from the centre is this (inside [-5, 5]²).
pub const VIEW_HALF_EXTENT: f32 = 3.5;

#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum TargetError {
    #[error("the points file is empty: expected lines of 'x,y' numbers (a header line 'x,y' is optional)")]
    Empty,
    #[error("line {line}: '{text}' is not a pair of numbers: expected 'x,y' (two numbers separated by a comma)")]
    NotAPair { line: usize, text: String },
    #[error("line {line}: {what} is not a finite number ('{text}'); NaN and infinity are not allowed")]
    NotFinite { line: usize, what: &'static str, text: String },
    #[error("only {0} distinct point(s): a target needs at least {MIN_POINTS} distinct points")]
    TooFew(usize),
    #[error("{0} points is more than the limit of {MAX_POINTS}; thin the data first")]
    TooMany(usize),
    #[error("this does not look like a CSV text file (it contains binary data)")]
    NotText,
    #[error("the image is blank: nothing dark enough to learn (draw, type or upload something with dark pixels)")]
    Blank,
    #[error("the image is {width}×{height}: expected between 1×1 and {MAX_PIXELS} pixels with one value per pixel")]
    BadRaster { width: usize, height: usize },
    #[error("the drawing is empty: paint on the canvas with the brush first")]
    EmptyDrawing,
    #[error("the points span {half:e} either side of their centre: scaling that into the view needs a factor of {factor:e}, which 32-bit numbers cannot hold; rescale the coordinates (to a spread between about 1e-30 and 1e30)")]
    Spread { half: f64, factor: f64 },
}

/// Parses CSV text: one `x,y` per line (also `x, y`, `x;y` or whitespace-separated), blank lines
/// and `#` comments ignored, an optional non-numeric header on the first non-blank line.
pub fn parse_points(text: &str) -> Result<Vec<[f32; 2]>, TargetError> {
    use crate::csv::{parse_rows, CsvError};
    let values = parse_rows(text, &["x", "y"], MAX_POINTS).map_err(|e| match e {
        CsvError::NotText => TargetError::NotText,
        CsvError::Empty { .. } => TargetError::Empty,
        CsvError::WrongCount { line, text, .. } => TargetError::NotAPair { line, text },
        CsvError::NotFinite { line, column, text } => TargetError::NotFinite { line, what: column, text },
        CsvError::TooMany { max } => TargetError::TooMany(text.lines().count().max(max + 1)),
    })?;
    let points: Vec<[f32; 2]> = values.chunks_exact(2).map(|p| [p[0], p[1]]).collect();
    let distinct = count_distinct(&points, MIN_POINTS);
    if distinct < MIN_POINTS {
        return Err(TargetError::TooFew(distinct));
    }
    Ok(points)
}

/// Distinct points, counting up to `enough`.
fn count_distinct(points: &[[f32; 2]], enough: usize) -> usize {
    let mut seen: Vec<[f32; 2]> = Vec::new();
    for p in points {
        if !seen.contains(p) {
            seen.push(*p);
            if seen.len() >= enough {
                break;
            }
        }
    }
    seen.len()
}

/// Where normalised points came from: `original = centre + normalised / scale`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ViewTransform {
    pub center: [f32; 2],
    pub scale: f32,
}

impl ViewTransform {
    pub const IDENTITY: ViewTransform = ViewTransform { center: [0.0, 0.0], scale: 1.0 };

    pub fn to_original(&self, p: [f32; 2]) -> [f32; 2] {
        [self.center[0] + p[0] / self.scale, self.center[1] + p[1] / self.scale]
    }
    pub fn to_view(&self, p: [f32; 2]) -> [f32; 2] {
        [(p[0] - self.center[0]) * self.scale, (p[1] - self.center[1]) * self.scale]
    }
}

/// Centres points on their bounding box and scales the larger half-extent to
/// [`VIEW_HALF_EXTENT`], keeping the aspect ratio.
pub fn normalize(points: &[[f32; 2]]) -> (Vec<[f32; 2]>, ViewTransform) {
    let (t, _) = view_transform(points);
    (points.iter().map(|p| t.to_view(*p)).collect(), t)
}

/// The transform of [`normalize`] (centre and half-extent taken in f64, so a spread near the
/// f32 range does not overflow) and the half-extent.
fn view_transform(points: &[[f32; 2]]) -> (ViewTransform, f64) {
    let (mut lo, mut hi) = ([f64::MAX; 2], [f64::MIN; 2]);
    for p in points {
        for k in 0..2 {
            lo[k] = lo[k].min(p[k] as f64);
            hi[k] = hi[k].max(p[k] as f64);
        }
    }
    let center = [(0.5 * (lo[0] + hi[0])) as f32, (0.5 * (lo[1] + hi[1])) as f32];
    let half = (0.5 * (hi[0] - lo[0])).max(0.5 * (hi[1] - lo[1]));
    let scale = if half > 0.0 && half.is_finite() { (VIEW_HALF_EXTENT as f64 / half) as f32 } else { 1.0 };
    (ViewTransform { center, scale }, half)
}

/// [`normalize`], refusing a spread that cannot be scaled into the view with finite 32-bit
/// numbers (a huge or tiny one: the scale factor over- or underflows, or a point leaves the view).
pub fn normalize_checked(points: &[[f32; 2]]) -> Result<(Vec<[f32; 2]>, ViewTransform), TargetError> {
    let (t, half) = view_transform(points);
    let factor = VIEW_HALF_EXTENT as f64 / half;
    let spread_err = TargetError::Spread { half, factor };
    if half > 0.0 && !t.scale.is_normal() {
        return Err(spread_err);
    }
    let limit = 1.01 * VIEW_HALF_EXTENT;
    let mut out = Vec::with_capacity(points.len());
    for p in points {
        let v = t.to_view(*p);
        let inside = v[0].abs() <= limit && v[1].abs() <= limit; // false for NaN too
        if !(inside && t.to_original(v).iter().all(|x| x.is_finite())) {
            return Err(spread_err);
        }
        out.push(v);
    }
    Ok((out, t))
}

/// Draws `n` points from a raster density: `values` is row-major, `width × height`, top row
/// first, each value the density at that pixel (e.g. darkness in [0, 1]; negative and non-finite
/// values count as 0). Points are jittered uniformly inside their pixel, y points up, and the
/// raster is centred and scaled into the view keeping its aspect ratio.
pub fn points_from_density(values: &[f32], width: usize, height: usize, n: usize, seed: u32) -> Result<Vec<[f32; 2]>, TargetError> {
    if width == 0 || height == 0 || width.saturating_mul(height) > MAX_PIXELS || values.len() != width * height {
        return Err(TargetError::BadRaster { width, height });
    }
    let clean = |v: f32| if v.is_finite() && v > 0.0 { v as f64 } else { 0.0 };
    let mut cdf = Vec::with_capacity(values.len());
    let mut total = 0.0f64;
    for &v in values {
        total += clean(v);
        cdf.push(total);
    }
    // Below 1/1000 of one fully dark pixel in total there is nothing to learn.
    if total <= 1e-3 {
        return Err(TargetError::Blank);
    }
    let mut rng = Stream::new(seed, crate::rng::stream::CUSTOM_CSV);
    let half = 0.5 * width.max(height) as f32;
    let scale = VIEW_HALF_EXTENT / half;
    let points = (0..n)
        .map(|_| {
            let u = rng.uniform() as f64 * total;
            let idx = cdf.partition_point(|&c| c <= u).min(values.len() - 1);
            let (px, py) = ((idx % width) as f32 + rng.uniform(), (idx / width) as f32 + rng.uniform());
            [(px - 0.5 * width as f32) * scale, (0.5 * height as f32 - py) * scale]
        })
        .collect();
    Ok(points)
}

/// Pixel darkness as a density, from RGBA bytes (row-major, top row first, 4 bytes per pixel).
///
/// darkness = α·(1 − luminance) with Rec. 709 luma of the 8-bit values (a transparent pixel is
/// paper, not ink). The lightest pixel is taken as the background and subtracted, and what is
/// left below `NOISE` (JPEG ringing, paper texture) is dropped, so a uniform image of any colour
/// is blank. With `invert` light pixels are the ink (α·luminance).
pub fn darkness_from_rgba(rgba: &[u8], width: usize, height: usize, invert: bool) -> Result<Vec<f32>, TargetError> {
    if width == 0 || height == 0 || width.saturating_mul(height) > MAX_PIXELS || rgba.len() != width * height * 4 {
        return Err(TargetError::BadRaster { width, height });
    }
    const NOISE: f32 = 0.04;
    let ink: Vec<f32> = rgba
        .chunks_exact(4)
        .map(|p| {
            let lum = (0.2126 * p[0] as f32 + 0.7152 * p[1] as f32 + 0.0722 * p[2] as f32) / 255.0;
            let a = p[3] as f32 / 255.0;
            a * if invert { lum } else { 1.0 - lum }
        })
        .collect();
    let background = ink.iter().copied().fold(f32::INFINITY, f32::min);
    Ok(ink.into_iter().map(|d| if d - background > NOISE { d - background } else { 0.0 }).collect())
}

/// Shuffles points in place (Fisher–Yates, reproducible from `seed`), so that any prefix is a
/// random subset: the renderer draws the first few thousand target points faintly.
pub fn shuffle_points<T>(points: &mut [T], seed: u32) {
    let mut rng = Stream::new(seed, crate::rng::stream::CUSTOM_RASTER);
    for i in (1..points.len()).rev() {
        let j = rng.below(i as u32 + 1) as usize;
        points.swap(i, j);
    }
}

/// What a custom target came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CustomKind {
    Drawing,
    Text,
    Image,
    Points,
}

impl CustomKind {
    pub fn name(self) -> &'static str {
        match self {
            CustomKind::Drawing => "drawing",
            CustomKind::Text => "text",
            CustomKind::Image => "image",
            CustomKind::Points => "points",
        }
    }
}

/// A validated custom target: points in view coordinates (shuffled), and the map back to the
/// coordinates they came in (identity for drawings, which are made in view coordinates).
#[derive(Clone, Debug, PartialEq)]
pub struct CustomTarget {
    pub kind: CustomKind,
    /// What the person gave (the text, the file name, ...), for the page.
    pub label: String,
    pub points: Vec<[f32; 2]>,
    /// The class of each point (a drawing's brush colours); empty for targets without classes.
    pub labels: Vec<u32>,
    pub transform: ViewTransform,
}

impl CustomTarget {
    /// CSV text → points centred and scaled into the view, remembering the original coordinates.
    pub fn from_csv(text: &str, label: &str, seed: u32) -> Result<Self, TargetError> {
        let (mut points, transform) = normalize_checked(&parse_points(text)?)?;
        shuffle_points(&mut points, seed);
        Ok(CustomTarget { kind: CustomKind::Points, label: label.to_string(), points, labels: Vec::new(), transform })
    }

    /// RGBA pixels (typed text or an uploaded image) → [`RASTER_POINTS`] points drawn from the
    /// darkness, centred and scaled into the view on their bounding box.
    pub fn from_rgba(kind: CustomKind, label: &str, rgba: &[u8], width: usize, height: usize, invert: bool, seed: u32) -> Result<Self, TargetError> {
        let density = darkness_from_rgba(rgba, width, height, invert)?;
        let raw = points_from_density(&density, width, height, RASTER_POINTS, seed)?;
        let (points, _) = normalize(&raw);
        Ok(CustomTarget { kind, label: label.to_string(), points, labels: Vec::new(), transform: ViewTransform::IDENTITY })
    }

    /// A drawing's points, as drawn (view coordinates), shuffled.
    pub fn from_drawing(drawing: &super::drawing::Drawing, seed: u32) -> Result<Self, TargetError> {
        let points = drawing.target()?;
        // Points and their brush colours shuffled together.
        let mut labelled: Vec<([f32; 2], u32)> = points.into_iter().zip(drawing.labels().iter().copied()).collect();
        shuffle_points(&mut labelled, seed);
        let (points, labels) = labelled.into_iter().unzip();
        Ok(CustomTarget { kind: CustomKind::Drawing, label: String::new(), points, labels, transform: ViewTransform::IDENTITY })
    }

    /// Points given in view coordinates as CSV in the target's original coordinates (`x,y` with
    /// a header line, the format the CLI writes and `parse_points` reads).
    pub fn to_original_csv(&self, view_points: &[[f32; 2]]) -> String {
        let mut out = String::with_capacity(16 * view_points.len() + 4);
        out.push_str("x,y\n");
        for p in view_points {
            let q = self.transform.to_original(*p);
            if q[0].is_finite() && q[1].is_finite() {
                out.push_str(&format!("{},{}\n", q[0], q[1]));
            }
        }
        out
    }
}

/// Axis-aligned bounds `[xmin, ymin, xmax, ymax]` of points (None when empty).
pub fn bounds(points: &[[f32; 2]]) -> Option<[f32; 4]> {
    let first = points.first()?;
    Some(points.iter().fold([first[0], first[1], first[0], first[1]], |b, p| [b[0].min(p[0]), b[1].min(p[1]), b[2].max(p[0]), b[3].max(p[1])]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_cli_format_with_and_without_header() {
        let with = parse_points("x,y\n1,2\n-3.5,4e-1\n").unwrap();
        assert_eq!(with, vec![[1.0, 2.0], [-3.5, 0.4]]);
        assert_eq!(parse_points("1,2\r\n3,4\r\n").unwrap(), vec![[1.0, 2.0], [3.0, 4.0]]);
        assert_eq!(parse_points("# comment\n\n1 2\n3;4\n5,\t6").unwrap().len(), 3);
    }

    #[test]
    fn rejects_bad_input_with_its_own_message() {
        assert_eq!(parse_points(""), Err(TargetError::Empty));
        assert_eq!(parse_points("x,y\n"), Err(TargetError::Empty));
        assert!(matches!(parse_points("1,2\n3,abc\n"), Err(TargetError::NotAPair { line: 2, .. })));
        assert!(matches!(parse_points("1,2,3\n"), Err(TargetError::NotAPair { line: 1, .. })));
        assert!(matches!(parse_points("1,2\nNaN,1\n"), Err(TargetError::NotFinite { line: 2, what: "x", .. })));
        assert!(matches!(parse_points("1,inf\n"), Err(TargetError::NotFinite { what: "y", .. })));
        assert!(matches!(parse_points("1,1e39\n2,2"), Err(TargetError::NotFinite { .. })));
        assert_eq!(parse_points("5,5\n"), Err(TargetError::TooFew(1)));
        assert_eq!(parse_points("5,5\n5,5\n5,5\n"), Err(TargetError::TooFew(1)));
        assert_eq!(parse_points("\u{89}PNG\r\n\u{1a}\n\0\0"), Err(TargetError::NotText));
        let many: String = (0..MAX_POINTS + 5).map(|i| format!("{i},1\n")).collect();
        assert!(matches!(parse_points(&many), Err(TargetError::TooMany(n)) if n > MAX_POINTS));
        let msg = parse_points("1,2\n3,abc\n").unwrap_err().to_string();
        assert!(msg.contains("line 2") && msg.contains("x,y"), "{msg}");
    }

    #[test]
    fn normalise_centres_scales_and_inverts() {
        let pts = vec![[100.0, 10.0], [110.0, 10.0], [105.0, 12.0]];
        let (v, t) = normalize(&pts);
        let max = v.iter().flat_map(|p| [p[0].abs(), p[1].abs()]).fold(0.0f32, f32::max);
        assert!((max - VIEW_HALF_EXTENT).abs() < 1e-4);
        for (a, b) in pts.iter().zip(&v) {
            let back = t.to_original(*b);
            assert!((back[0] - a[0]).abs() < 1e-3 && (back[1] - a[1]).abs() < 1e-3);
        }
    }

    #[test]
    fn density_points_follow_the_dark_pixels() {
        // A 4×2 raster with only the top-right pixel dark.
        let mut img = vec![0.0f32; 8];
        img[3] = 1.0;
        let pts = points_from_density(&img, 4, 2, 500, 1).unwrap();
        let s = VIEW_HALF_EXTENT / 2.0; // units per pixel
        assert!(pts.iter().all(|p| p[0] >= 1.0 * s - 1e-5 && p[0] <= 2.0 * s + 1e-5 && p[1] >= 0.0 && p[1] <= 1.0 * s + 1e-5), "{:?}", &pts[..3]);
        assert_eq!(points_from_density(&[0.0; 8], 4, 2, 10, 1), Err(TargetError::Blank));
        assert_eq!(points_from_density(&[f32::NAN; 8], 4, 2, 10, 1), Err(TargetError::Blank));
        assert!(matches!(points_from_density(&[1.0; 7], 4, 2, 10, 1), Err(TargetError::BadRaster { .. })));
        assert!(matches!(points_from_density(&[], 0, 0, 10, 1), Err(TargetError::BadRaster { .. })));
    }

    /// RGBA of a `w × h` white image with the pixels in `ink` black.
    fn rgba(w: usize, h: usize, ink: &[(usize, usize)]) -> Vec<u8> {
        let mut px = vec![255u8; w * h * 4];
        for &(x, y) in ink {
            px[4 * (y * w + x)..4 * (y * w + x) + 3].fill(0);
        }
        px
    }

    #[test]
    fn darkness_subtracts_the_background_and_rejects_blank_images() {
        let d = darkness_from_rgba(&rgba(3, 2, &[(1, 0)]), 3, 2, false).unwrap();
        assert_eq!(d, vec![0.0, 1.0, 0.0, 0.0, 0.0, 0.0]);
        // Grey paper with a black mark: the paper is background.
        let mut grey = vec![200u8; 4 * 4];
        grey[..3].fill(0);
        grey.iter_mut().skip(3).step_by(4).for_each(|a| *a = 255);
        let d = darkness_from_rgba(&grey, 2, 2, false).unwrap();
        assert!(d[0] > 0.7 && d[1..].iter().all(|&v| v == 0.0), "{d:?}");
        // Transparent pixels are paper; inverted, light pixels are ink.
        let d = darkness_from_rgba(&[0, 0, 0, 0, 0, 0, 0, 255], 2, 1, false).unwrap();
        assert_eq!(d, vec![0.0, 1.0]);
        let d = darkness_from_rgba(&rgba(2, 1, &[(0, 0)]), 2, 1, true).unwrap();
        assert_eq!(d, vec![0.0, 1.0]);
        // Uniform images of any colour, and white ones, have nothing to learn.
        for colour in [255u8, 128, 0] {
            let img = vec![colour; 4 * 64].iter().enumerate().map(|(i, &c)| if i % 4 == 3 { 255 } else { c }).collect::<Vec<_>>();
            let err = CustomTarget::from_rgba(CustomKind::Image, "x.png", &img, 8, 8, false, 1).unwrap_err();
            assert_eq!(err, TargetError::Blank, "colour {colour}");
        }
        assert!(matches!(darkness_from_rgba(&[0; 7], 2, 1, false), Err(TargetError::BadRaster { .. })));
        assert!(matches!(darkness_from_rgba(&[], 0, 0, false), Err(TargetError::BadRaster { .. })));
    }

    #[test]
    fn raster_targets_fill_the_view_on_their_ink() {
        // An L of ink in the top-left corner of a 20×10 image: after normalisation the points
        // span the view's half extent on the longer side, centred on the ink, not the image.
        let ink: Vec<(usize, usize)> = (0..6).map(|y| (1, y)).chain((1..4).map(|x| (x, 5))).collect();
        let t = CustomTarget::from_rgba(CustomKind::Text, "L", &rgba(20, 10, &ink), 20, 10, false, 3).unwrap();
        assert_eq!(t.points.len(), RASTER_POINTS);
        let b = bounds(&t.points).unwrap();
        assert!((b[0] + b[2]).abs() < 1e-3 && (b[1] + b[3]).abs() < 1e-3, "not centred: {b:?}");
        assert!((b[3] - VIEW_HALF_EXTENT).abs() < 1e-3, "taller side not at the half extent: {b:?}");
        // Ink is 3 px wide and 6 px tall: the aspect ratio is kept (within the pixel jitter).
        let aspect = (b[2] - b[0]) / (b[3] - b[1]);
        assert!((aspect - 0.5).abs() < 0.05, "aspect {aspect}");
    }

    #[test]
    fn csv_targets_round_trip_to_original_coordinates() {
        let t = CustomTarget::from_csv("x,y\n100,10\n110,10\n105,12\n", "p.csv", 1).unwrap();
        assert_eq!(t.kind, CustomKind::Points);
        assert_eq!(t.points.len(), 3);
        let back = parse_points(&t.to_original_csv(&t.points)).unwrap();
        let mut want = vec![[100.0, 10.0], [110.0, 10.0], [105.0, 12.0]];
        let mut got = back.clone();
        for v in [&mut want, &mut got] {
            v.sort_by(|a, b| a.partial_cmp(b).unwrap());
        }
        for (a, b) in got.iter().zip(&want) {
            assert!((a[0] - b[0]).abs() < 1e-3 && (a[1] - b[1]).abs() < 1e-3, "{got:?}");
        }
        // Non-finite samples are left out of the export rather than written as NaN.
        assert_eq!(t.to_original_csv(&[[f32::NAN, 0.0]]), "x,y\n");
        assert!(matches!(CustomTarget::from_csv("1,abc", "p.csv", 1), Err(TargetError::NotAPair { line: 1, .. })));
    }

    #[test]
    fn shuffle_is_a_reproducible_permutation() {
        let pts: Vec<[f32; 2]> = (0..1000).map(|i| [i as f32, 0.0]).collect();
        let (mut a, mut b) = (pts.clone(), pts.clone());
        shuffle_points(&mut a, 5);
        shuffle_points(&mut b, 5);
        assert_eq!(a, b);
        assert_ne!(a, pts);
        // The first tenth is spread over the whole range (what the faint target layer shows).
        let mean = a[..100].iter().map(|p| p[0]).sum::<f32>() / 100.0;
        assert!((mean - 500.0).abs() < 100.0, "prefix mean {mean}");
        a.sort_by(|x, y| x[0].partial_cmp(&y[0]).unwrap());
        assert_eq!(a, pts);
    }

    /// Coordinates whose spread cannot be normalised to finite 32-bit view coordinates are
    /// refused with their own message (not trained into NaN); large but representable ones work.
    #[test]
    fn spreads_that_cannot_be_normalised_are_refused() {
        for csv in ["-3e38,0\n3e38,1\n0,2\n", "0,0\n1e-45,0\n0,1e-45\n", "0,0\n0,1e-44\n1e-44,0\n"] {
            let e = CustomTarget::from_csv(csv, "x.csv", 1).err().unwrap_or_else(|| panic!("{csv} was accepted"));
            assert!(matches!(e, TargetError::Spread { .. }), "{csv}: {e}");
            assert!(e.to_string().contains("rescale") && !e.to_string().contains("learning rate"), "{e}");
        }
        for csv in ["1e38,1e38\n-1e38,-1e38\n3e38,0\n", "-1e30,0\n1e30,1\n0,2\n", "0,0\n1e-30,0\n0,1e-30\n", "1e6,1e6\n1e6,1.5e6\n1.2e6,1e6\n"] {
            let t = CustomTarget::from_csv(csv, "x.csv", 1).unwrap_or_else(|e| panic!("{csv}: {e}"));
            assert!(t.points.iter().all(|p| p[0].is_finite() && p[1].is_finite() && p[0].abs() <= 1.01 * VIEW_HALF_EXTENT), "{csv}: {:?}", t.points);
            let back = t.transform.to_original(t.points[0]);
            assert!(back.iter().all(|x| x.is_finite()), "{csv}");
        }
    }
}
