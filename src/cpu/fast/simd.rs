//! `F4`: four f32 lanes, the register unit of the fast CPU kernels.
//!
//! On wasm32 built with `+simd128` (`.cargo/config.toml`) it is a `v128` driven by
//! `core::arch::wasm32` intrinsics; everywhere else it is a plain `[f32; 4]` whose lane-wise
//! operations LLVM turns into the host's vector instructions (SSE on x86-64). Both compute every
//! lane as `acc + a·b` with a separate multiply and add (no fused multiply-add), so both give the
//! same bits as the scalar reference.

#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod imp {
    use core::arch::wasm32::{f32x4_add, f32x4_mul, f32x4_splat, v128, v128_load, v128_store};

    #[derive(Clone, Copy)]
    pub struct F4(v128);

    impl F4 {
        #[inline(always)]
        pub fn splat(x: f32) -> F4 {
            F4(f32x4_splat(x))
        }

        /// Lanes `s[0..4]`.
        #[inline(always)]
        pub fn load(s: &[f32]) -> F4 {
            let s = &s[..4];
            // SAFETY: `s` holds 4 floats (16 bytes, checked above); v128.load has no alignment requirement.
            F4(unsafe { v128_load(s.as_ptr() as *const v128) })
        }

        /// Writes the lanes to `s[0..4]`.
        #[inline(always)]
        pub fn store(self, s: &mut [f32]) {
            let s = &mut s[..4];
            // SAFETY: as in `load`.
            unsafe { v128_store(s.as_mut_ptr() as *mut v128, self.0) }
        }

        /// `self + a·b` lane-wise (multiply, then add: not fused).
        #[inline(always)]
        pub fn add_mul(self, a: F4, b: F4) -> F4 {
            F4(f32x4_add(self.0, f32x4_mul(a.0, b.0)))
        }

        #[inline(always)]
        pub fn plus(self, a: F4) -> F4 {
            F4(f32x4_add(self.0, a.0))
        }
    }
}

#[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
mod imp {
    #[derive(Clone, Copy)]
    pub struct F4([f32; 4]);

    impl F4 {
        #[inline(always)]
        pub fn splat(x: f32) -> F4 {
            F4([x; 4])
        }

        /// Lanes `s[0..4]`.
        #[inline(always)]
        pub fn load(s: &[f32]) -> F4 {
            let s = &s[..4];
            F4([s[0], s[1], s[2], s[3]])
        }

        /// Writes the lanes to `s[0..4]`.
        #[inline(always)]
        pub fn store(self, s: &mut [f32]) {
            s[..4].copy_from_slice(&self.0);
        }

        /// `self + a·b` lane-wise (multiply, then add: not fused).
        #[inline(always)]
        pub fn add_mul(self, a: F4, b: F4) -> F4 {
            let (c, a, b) = (self.0, a.0, b.0);
            F4([c[0] + a[0] * b[0], c[1] + a[1] * b[1], c[2] + a[2] * b[2], c[3] + a[3] * b[3]])
        }

        #[inline(always)]
        pub fn plus(self, a: F4) -> F4 {
            let (c, a) = (self.0, a.0);
            F4([c[0] + a[0], c[1] + a[1], c[2] + a[2], c[3] + a[3]])
        }
    }
}

pub use imp::F4;

/// Whether this build uses the wasm SIMD128 intrinsics (reported by the benchmarks).
pub const WASM_SIMD128: bool = cfg!(all(target_arch = "wasm32", target_feature = "simd128"));
