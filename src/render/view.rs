//! Where the world square sits on the canvas, and the colours shared by both drawing paths
//! (the WebGPU pipelines in `shaders/render_*.wgsl` and the 2D-canvas fallback in `src/web`).
//!
//! World → clip: `clip = (p - center) · scale`, with `scale` chosen so that the square
//! `[-extent, extent]²` fits the shorter side of the canvas (no stretching on wide or tall canvases).

use bytemuck::{Pod, Zeroable};

/// Half-width of the square shown by default (`shared/spec/datasets.md`: targets lie in [-5, 5]²).
pub const DEFAULT_EXTENT: f32 = 5.0;

/// The uniform every render shader reads (binding 0). Layout mirrored in each `render_*.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub struct ViewUniform {
    /// World → clip multipliers per axis.
    pub scale: [f32; 2],
    /// World point at the canvas centre.
    pub center: [f32; 2],
    /// One device pixel in clip units (2/width, 2/height).
    pub px: [f32; 2],
    /// Flow time shown, in [0, 1].
    pub t: f32,
    /// Particle diameter in device pixels.
    pub point_px: f32,
    /// Particles in the trajectory buffer.
    pub n: u32,
    /// Recorded ODE steps S (the trajectory buffer holds S + 1 rows of n points).
    pub steps: u32,
    /// Trails are drawn for particles `i · trail_stride`.
    pub trail_stride: u32,
    /// Arrows per side of the velocity grid.
    pub grid: u32,
    /// Half-width of the world square (arrow grid and axes).
    pub extent: f32,
    /// Opacity of particles (lower with many particles so dense regions read as density).
    pub alpha: f32,
    pub _pad: [f32; 2],
}

const _: () = assert!(std::mem::size_of::<ViewUniform>() == 64);

/// Canvas size and the world square; turns into a [`ViewUniform`] and maps points for the CPU path.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Viewport {
    pub width: u32,
    pub height: u32,
    pub extent: f32,
}

impl Viewport {
    /// World units per device pixel.
    pub fn units_per_px(&self) -> f32 {
        2.0 * self.extent / self.width.min(self.height).max(1) as f32
    }

    /// World → clip multipliers.
    pub fn scale(&self) -> [f32; 2] {
        let u = self.units_per_px();
        [2.0 / (self.width.max(1) as f32 * u), 2.0 / (self.height.max(1) as f32 * u)]
    }

    /// World → canvas pixel (origin top left, y down), for the 2D canvas.
    pub fn to_px(&self, p: [f32; 2]) -> [f32; 2] {
        let u = self.units_per_px();
        [self.width as f32 * 0.5 + p[0] / u, self.height as f32 * 0.5 - p[1] / u]
    }

    pub fn uniform(&self) -> ViewUniform {
        ViewUniform {
            scale: self.scale(),
            center: [0.0, 0.0],
            px: [2.0 / self.width.max(1) as f32, 2.0 / self.height.max(1) as f32],
            extent: self.extent,
            ..Default::default()
        }
    }
}

/// Centre of arrow `i` of a `grid × grid` lattice over `[-extent, extent]²` (row-major from the
/// bottom left). Same formula as `arrow_anchor` in `shaders/render_arrows.wgsl`.
pub fn arrow_anchor(i: u32, grid: u32, extent: f32) -> [f32; 2] {
    let cell = 2.0 * extent / grid as f32;
    let (gx, gy) = ((i % grid) as f32, (i / grid) as f32);
    [-extent + (gx + 0.5) * cell, -extent + (gy + 0.5) * cell]
}

/// A particle's colour from its starting point x0: hue from the angle of x0, lighter further out,
/// so a viewer can follow where each part of the Gaussian goes. Twin of `origin_color` in
/// `shaders/render_particles.wgsl`. RGB in [0, 1].
pub fn origin_color(x0: [f32; 2]) -> [f32; 3] {
    let hue = (x0[1].atan2(x0[0]) / std::f32::consts::TAU + 1.0).fract();
    let r = (x0[0] * x0[0] + x0[1] * x0[1]).sqrt();
    let light = 0.5 + 0.18 * (r / 2.5).min(1.0);
    hsl_to_rgb(hue, 0.8, light)
}

/// HSL (all in [0, 1]) → RGB. Twin of `hsl_to_rgb` in the render shaders.
pub fn hsl_to_rgb(h: f32, s: f32, l: f32) -> [f32; 3] {
    let c = (1.0 - (2.0 * l - 1.0).abs()) * s;
    let k = |n: f32| {
        let k = (n + h * 12.0) % 12.0;
        l - c * 0.5 * (k - 3.0).min(9.0 - k).clamp(-1.0, 1.0)
    };
    [k(0.0), k(8.0), k(4.0)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn square_fits_the_short_side() {
        let v = Viewport { width: 800, height: 400, extent: 5.0 };
        assert_eq!(v.to_px([0.0, 0.0]), [400.0, 200.0]);
        assert_eq!(v.to_px([0.0, 5.0]), [400.0, 0.0]);
        assert_eq!(v.to_px([5.0, -5.0]), [600.0, 400.0]);
        let s = v.scale();
        assert!((5.0 * s[1] - 1.0).abs() < 1e-6 && (5.0 * s[0] - 0.5).abs() < 1e-6);
    }

    #[test]
    fn colours_are_saturated_and_in_range() {
        for k in 0..64 {
            let a = k as f32 * 0.1;
            let c = origin_color([a.cos() * 1.5, a.sin() * 1.5]);
            assert!(c.iter().all(|v| (0.0..=1.0).contains(v)), "{c:?}");
            let (mx, mn) = (c.iter().cloned().fold(0.0, f32::max), c.iter().cloned().fold(1.0, f32::min));
            assert!(mx - mn > 0.4, "particles must stand out from the grey target: {c:?}");
        }
        assert_eq!(hsl_to_rgb(0.0, 1.0, 0.5), [1.0, 0.0, 0.0]);
    }

    #[test]
    fn arrow_grid_is_centred() {
        assert_eq!(arrow_anchor(0, 2, 5.0), [-2.5, -2.5]);
        assert_eq!(arrow_anchor(3, 2, 5.0), [2.5, 2.5]);
    }
}
