//! How the CPU engine draws: a small 2D-canvas-like interface. `src/web/present.rs` implements it
//! over a `CanvasRenderingContext2d`; [`CountingPainter`] records what was drawn for tests.

/// The drawing calls the CPU engine makes (a subset of the 2D canvas API, in device pixels).
pub trait Painter {
    /// Resizes the drawing surface.
    fn resize(&mut self, width: u32, height: u32);
    fn set_alpha(&mut self, alpha: f64);
    /// Fill colour as CSS text (`rgb(…)`, `rgba(…)`, `#…`).
    fn set_fill(&mut self, css: &str);
    fn set_stroke(&mut self, css: &str);
    fn set_line_width(&mut self, width: f64);
    fn fill_rect(&mut self, x: f64, y: f64, w: f64, h: f64);
    fn begin_path(&mut self);
    fn move_to(&mut self, x: f64, y: f64);
    fn line_to(&mut self, x: f64, y: f64);
    /// Strokes the current path.
    fn stroke(&mut self);
}

/// A painter that only counts: rectangles and strokes drawn, and the last fill colour.
#[derive(Debug, Default)]
pub struct CountingPainter {
    pub size: (u32, u32),
    pub rects: u64,
    pub strokes: u64,
    pub fill: String,
}

impl Painter for CountingPainter {
    fn resize(&mut self, width: u32, height: u32) {
        self.size = (width, height);
    }
    fn set_alpha(&mut self, _alpha: f64) {}
    fn set_fill(&mut self, css: &str) {
        self.fill = css.to_string();
    }
    fn set_stroke(&mut self, _css: &str) {}
    fn set_line_width(&mut self, _width: f64) {}
    fn fill_rect(&mut self, _x: f64, _y: f64, _w: f64, _h: f64) {
        self.rects += 1;
    }
    fn begin_path(&mut self) {}
    fn move_to(&mut self, _x: f64, _y: f64) {}
    fn line_to(&mut self, _x: f64, _y: f64) {}
    fn stroke(&mut self) {
        self.strokes += 1;
    }
}

/// `rgb(r,g,b)` of a colour in [0, 1].
pub fn css_rgb(c: [f32; 3]) -> String {
    let b = |v: f32| (v.clamp(0.0, 1.0) * 255.0).round() as u8;
    format!("rgb({},{},{})", b(c[0]), b(c[1]), b(c[2]))
}
