//! `F4`: four f32 lanes, the register unit of the fast CPU kernels.
//!
//! On wasm32 built with `+simd128` (`.cargo/config.toml`) it is a `v128` driven by
//! `core::arch::wasm32` intrinsics; everywhere else it is a plain `[f32; 4]` whose lane-wise
//! operations LLVM turns into the host's vector instructions (SSE on x86-64). Every operation is
//! an IEEE single-precision operation per lane (multiply and add stay separate: no fused
//! multiply-add; `round` is round-half-to-even), so both give the same bits; the multiply-adds
//! also give the scalar reference's bits.

#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod imp {
    use core::arch::wasm32::*;

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

        #[inline(always)]
        pub fn minus(self, a: F4) -> F4 {
            F4(f32x4_sub(self.0, a.0))
        }

        #[inline(always)]
        pub fn times(self, a: F4) -> F4 {
            F4(f32x4_mul(self.0, a.0))
        }

        #[inline(always)]
        pub fn over(self, a: F4) -> F4 {
            F4(f32x4_div(self.0, a.0))
        }

        /// The lane-wise maximum (wasm's pmax: `a` where `self < a`, else `self`).
        #[inline(always)]
        pub fn max(self, a: F4) -> F4 {
            F4(f32x4_pmax(self.0, a.0))
        }

        /// Each lane clamped to `[lo, hi]`.
        #[inline(always)]
        pub fn clamp(self, lo: f32, hi: f32) -> F4 {
            F4(f32x4_pmin(f32x4_splat(hi), f32x4_pmax(f32x4_splat(lo), self.0)))
        }

        /// Each lane rounded to the nearest integer, ties to even.
        #[inline(always)]
        pub fn round(self) -> F4 {
            F4(f32x4_nearest(self.0))
        }

        /// `2^n` for lanes holding integers `n` in [-126, 127] (and 0 for -127).
        #[inline(always)]
        pub fn exp2_int(self) -> F4 {
            let n = i32x4_trunc_sat_f32x4(self.0);
            F4(i32x4_shl(i32x4_add(n, i32x4_splat(127)), 23))
        }
    }
}

#[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
mod imp {
    #[derive(Clone, Copy)]
    pub struct F4([f32; 4]);

    impl F4 {
        #[inline(always)]
        fn map2(self, a: F4, f: impl Fn(f32, f32) -> f32) -> F4 {
            F4([f(self.0[0], a.0[0]), f(self.0[1], a.0[1]), f(self.0[2], a.0[2]), f(self.0[3], a.0[3])])
        }

        #[inline(always)]
        fn map(self, f: impl Fn(f32) -> f32) -> F4 {
            F4([f(self.0[0]), f(self.0[1]), f(self.0[2]), f(self.0[3])])
        }

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
            self.map2(a, |x, y| x + y)
        }

        #[inline(always)]
        pub fn minus(self, a: F4) -> F4 {
            self.map2(a, |x, y| x - y)
        }

        #[inline(always)]
        pub fn times(self, a: F4) -> F4 {
            self.map2(a, |x, y| x * y)
        }

        #[inline(always)]
        pub fn over(self, a: F4) -> F4 {
            self.map2(a, |x, y| x / y)
        }

        /// The lane-wise maximum (as wasm's pmax: `a` where `self < a`, else `self`).
        #[inline(always)]
        pub fn max(self, a: F4) -> F4 {
            self.map2(a, |x, y| if x < y { y } else { x })
        }

        /// Each lane clamped to `[lo, hi]`.
        #[inline(always)]
        pub fn clamp(self, lo: f32, hi: f32) -> F4 {
            // As wasm's pmin(hi, pmax(lo, x)): a NaN lane becomes `lo`.
            self.map(|x| {
                let x = if lo < x { x } else { lo };
                if x < hi { x } else { hi }
            })
        }

        /// Each lane rounded to the nearest integer, ties to even.
        #[inline(always)]
        pub fn round(self) -> F4 {
            self.map(f32::round_ties_even)
        }

        /// `2^n` for lanes holding integers `n` in [-126, 127] (and 0 for -127).
        #[inline(always)]
        pub fn exp2_int(self) -> F4 {
            self.map(|n| f32::from_bits(((n as i32 + 127) as u32) << 23))
        }
    }
}

pub use imp::F4;

/// Whether this build uses the wasm SIMD128 intrinsics (reported by the benchmarks).
pub const WASM_SIMD128: bool = cfg!(all(target_arch = "wasm32", target_feature = "simd128"));
