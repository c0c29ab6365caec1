//! Adaptive Dormand–Prince 5(4) integration of `dx/dt = v(x, t)`; twin of `shaders/ode_adaptive.wgsl`.
//!
//! Each particle is integrated on its own from `t0` to `t1 > t0` with its own step size:
//!
//! * Stages `k1..k7` of the Dormand–Prince tableau (FSAL: `k7` of an accepted step is `k1` of the
//!   next), the 5th-order solution `y = x + h·Σ b_i k_i` and the error estimate
//!   `err = h·Σ e_i k_i` with `e = b - b*` (`b*` the embedded 4th-order weights).
//! * `sc_j = atol + rtol·max(|x_j|, |y_j|)`, `‖err‖ = sqrt(((err_0/sc_0)² + (err_1/sc_1)²) / 2)`.
//!   The step is accepted when `‖err‖ ≤ 1`, or when `h` is already `h_min` (forced).
//! * Next step `h ← clamp(h·clamp(safety·‖err‖^(-1/5), min_factor, max_factor), h_min, h_max)`
//!   (the factor is at most 1 after a rejection), and never past `t1`.
//! * Budget: the first `k1` costs 1 field evaluation, every attempted step 6 more. A particle that
//!   would exceed `max_nfe` stops where it is and is flagged unfinished.
//! * Output: with `frames > 0` the state at the equally spaced times `t0 + (t1-t0)·k/frames`,
//!   `k = 1..=frames`, is written from each accepted step by cubic Hermite interpolation between
//!   its end points (values and slopes `k1`, `k7`: no extra evaluations). The last frame is the
//!   final state; an unfinished particle repeats its last state in the frames it did not reach.
//!
//! All arithmetic is `f32`, in the order the WGSL kernel uses, so the two agree to rounding.

use super::mlp::velocity;
use crate::model::ModelShape;

/// Step-size control settings (WGSL `AdaptiveParams`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdaptiveOptions {
    pub rtol: f32,
    pub atol: f32,
    pub safety: f32,
    pub min_factor: f32,
    pub max_factor: f32,
    /// First trial step, as a fraction of `t1 - t0`.
    pub h0: f32,
    /// Smallest step, as a fraction of `t1 - t0` (a step this small is accepted whatever its error).
    pub h_min: f32,
    /// Largest step, as a fraction of `t1 - t0`.
    pub h_max: f32,
    /// Field evaluations per particle at most (≥ 7: the first `k1` and one step).
    pub max_nfe: u32,
}

/// Smallest useful budget: `k1` plus one step's six stages.
pub const MIN_NFE: u32 = 7;
/// Allowed tolerances (the computation is `f32`: below 1e-6 the error estimate is rounding noise).
pub const MIN_TOL: f32 = 1e-6;
pub const MAX_TOL: f32 = 0.1;
/// Tolerance used when none is given.
pub const DEFAULT_TOL: f32 = 1e-3;

impl AdaptiveOptions {
    /// `rtol = atol = tol` with the usual controller constants and a budget of `max_nfe`
    /// evaluations. Errors name the value and the allowed range.
    pub fn new(tol: f32, max_nfe: u32) -> Result<Self, String> {
        if !(tol.is_finite() && (MIN_TOL..=MAX_TOL).contains(&tol)) {
            return Err(format!("invalid tolerance {tol} for solver dopri5: expected a number in [{MIN_TOL}, {MAX_TOL}]"));
        }
        if max_nfe < MIN_NFE {
            return Err(format!(
                "invalid nfe {max_nfe} for solver dopri5: nfe is its budget of field evaluations per particle, expected at least {MIN_NFE} (one step)"
            ));
        }
        Ok(AdaptiveOptions { rtol: tol, atol: tol, safety: 0.9, min_factor: 0.2, max_factor: 5.0, h0: 0.05, h_min: 1e-4, h_max: 1.0, max_nfe })
    }
}

/// What one particle's integration did.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdaptiveStats {
    /// Field evaluations used.
    pub nfe: u32,
    /// Whether the particle reached `t1` within the budget.
    pub finished: bool,
    /// The closest of its decisions to flipping, as a relative margin: the smallest over its
    /// steps of `|‖err‖ - 1|` (accept or reject; steps at `h_min`, accepted whatever their
    /// error, excluded) and of `|(t1 - t)/h - 1|` (last step or not). Another implementation of
    /// the same f32 arithmetic that rounds differently (a fused multiply-add, a few ULPs of
    /// `exp`) can decide a step otherwise only where this is small (tests/adaptive.rs).
    pub closest_tie: f32,
}

// The Dormand–Prince tableau of `src/tableau.rs` (the shaders' DP_* constants come from it too).
use crate::tableau::DOPRI5 as DP;
const A21: f32 = DP.a[1][0];
const A31: f32 = DP.a[2][0];
const A32: f32 = DP.a[2][1];
const A41: f32 = DP.a[3][0];
const A42: f32 = DP.a[3][1];
const A43: f32 = DP.a[3][2];
const A51: f32 = DP.a[4][0];
const A52: f32 = DP.a[4][1];
const A53: f32 = DP.a[4][2];
const A54: f32 = DP.a[4][3];
const A61: f32 = DP.a[5][0];
const A62: f32 = DP.a[5][1];
const A63: f32 = DP.a[5][2];
const A64: f32 = DP.a[5][3];
const A65: f32 = DP.a[5][4];
const B1: f32 = DP.b[0];
const B3: f32 = DP.b[2];
const B4: f32 = DP.b[3];
const B5: f32 = DP.b[4];
const B6: f32 = DP.b[5];
const E1: f32 = DP.e[0];
const E3: f32 = DP.e[2];
const E4: f32 = DP.e[3];
const E5: f32 = DP.e[4];
const E6: f32 = DP.e[5];
const E7: f32 = DP.e[6];
const C2: f32 = DP.c[1];
const C3: f32 = DP.c[2];
const C4: f32 = DP.c[3];
const C5: f32 = DP.c[4];

type V = [f32; 2];

/// `x + h·(Σ c_i k_i)` with the sum taken left to right, per component.
fn comb(x: V, h: f32, terms: &[(f32, V)]) -> V {
    let mut out = x;
    for j in 0..2 {
        let mut s = terms[0].0 * terms[0].1[j];
        for &(c, k) in &terms[1..] {
            s += c * k[j];
        }
        out[j] = x[j] + h * s;
    }
    out
}

/// Cubic Hermite interpolation at `θ ∈ [0, 1]` of a step of size `h` from `(y0, f0)` to `(y1, f1)`.
pub fn hermite(y0: V, f0: V, y1: V, f1: V, h: f32, theta: f32) -> V {
    let t2 = theta * theta;
    let t3 = t2 * theta;
    let h00 = 2.0 * t3 - 3.0 * t2 + 1.0;
    let h10 = t3 - 2.0 * t2 + theta;
    let h01 = -2.0 * t3 + 3.0 * t2;
    let h11 = t3 - t2;
    let mut out = [0.0; 2];
    for j in 0..2 {
        out[j] = h00 * y0[j] + h10 * h * f0[j] + h01 * y1[j] + h11 * h * f1[j];
    }
    out
}

/// Integrates `x` from `t0` to `t1` through the field `v`. With `frames > 0`, `out` receives the
/// `frames` states at `t0 + (t1-t0)·k/frames`, `k = 1..=frames`.
pub fn integrate_field(
    mut v: impl FnMut(V, f32) -> V,
    x: V,
    t0: f32,
    t1: f32,
    opts: &AdaptiveOptions,
    frames: u32,
    mut out: impl FnMut(u32, V),
) -> (V, AdaptiveStats) {
    let span = t1 - t0;
    let h_min = opts.h_min * span;
    let h_max = opts.h_max * span;
    let mut x = x;
    let mut t = t0;
    let mut h = opts.h0 * span;
    let mut k1 = v(x, t);
    let mut nfe = 1u32;
    let mut next_frame = 1u32;
    let mut finished = false;
    let mut closest_tie = f32::INFINITY;
    while nfe + 6 <= opts.max_nfe {
        closest_tie = closest_tie.min(((t1 - t) / h - 1.0).abs());
        let last = t1 - t <= h;
        if last {
            h = t1 - t;
        }
        let k2 = v(comb(x, h, &[(A21, k1)]), t + C2 * h);
        let k3 = v(comb(x, h, &[(A31, k1), (A32, k2)]), t + C3 * h);
        let k4 = v(comb(x, h, &[(A41, k1), (A42, k2), (A43, k3)]), t + C4 * h);
        let k5 = v(comb(x, h, &[(A51, k1), (A52, k2), (A53, k3), (A54, k4)]), t + C5 * h);
        let k6 = v(comb(x, h, &[(A61, k1), (A62, k2), (A63, k3), (A64, k4), (A65, k5)]), t + h);
        let y = comb(x, h, &[(B1, k1), (B3, k3), (B4, k4), (B5, k5), (B6, k6)]);
        let t_new = if last { t1 } else { t + h };
        let k7 = v(y, t_new);
        nfe += 6;
        let err = comb([0.0; 2], h, &[(E1, k1), (E3, k3), (E4, k4), (E5, k5), (E6, k6), (E7, k7)]);
        let mut sum = 0.0f32;
        for j in 0..2 {
            let sc = opts.atol + opts.rtol * x[j].abs().max(y[j].abs());
            let r = err[j] / sc;
            sum += r * r;
        }
        let err_norm = (0.5 * sum).sqrt();
        if h > h_min {
            closest_tie = closest_tie.min((err_norm - 1.0).abs());
        }
        let accept = err_norm <= 1.0 || h <= h_min;
        let mut factor = if err_norm == 0.0 { opts.max_factor } else { (opts.safety * err_norm.powf(-0.2)).clamp(opts.min_factor, opts.max_factor) };
        if accept {
            while frames > 0 && next_frame <= frames {
                let tf = t0 + span * (next_frame as f32 / frames as f32);
                if next_frame < frames && tf <= t_new {
                    out(next_frame, hermite(x, k1, y, k7, h, (tf - t) / h));
                } else if next_frame == frames && last {
                    out(next_frame, y);
                } else {
                    break;
                }
                next_frame += 1;
            }
            x = y;
            k1 = k7;
            t = t_new;
            if last {
                finished = true;
                break;
            }
        } else {
            factor = factor.min(1.0);
        }
        h = (h * factor).clamp(h_min, h_max);
    }
    while frames > 0 && next_frame <= frames {
        out(next_frame, x);
        next_frame += 1;
    }
    (x, AdaptiveStats { nfe, finished, closest_tie })
}

/// Integrates every point through the learned field from `t0` to `t1`. With `frames > 0`, the
/// trajectories `(frames + 1, N)` (row 0 the starting points) are returned too.
pub fn integrate(
    shape: &ModelShape,
    params: &[f32],
    points: &mut [[f32; 2]],
    t0: f32,
    t1: f32,
    opts: &AdaptiveOptions,
    frames: u32,
) -> (Vec<AdaptiveStats>, Vec<[f32; 2]>) {
    let n = points.len();
    let mut scratch = vec![0.0f32; 2 * shape.width as usize];
    let mut traj = if frames > 0 { vec![[0.0f32; 2]; (frames as usize + 1) * n] } else { Vec::new() };
    let mut stats = Vec::with_capacity(n);
    for (i, p) in points.iter_mut().enumerate() {
        if frames > 0 {
            traj[i] = *p;
        }
        let field = |x: V, t: f32| velocity(shape, params, x, t, &mut scratch);
        let (end, s) = integrate_field(field, *p, t0, t1, opts, frames, |k, y| traj[k as usize * n + i] = y);
        *p = end;
        stats.push(s);
    }
    (stats, traj)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `closest_tie` names the particles whose evaluation count a slightly different rounding can
    /// change: moving every error norm by a relative 1% (both tolerances × 1.01, more than
    /// rounding moves it: tests/adaptive.rs) changes the count only of particles whose closest
    /// tie was below 5% (the first flipped decision was within the shift, plus the step sizes'
    /// own shift before it), and it does change some.
    #[test]
    fn closest_tie_marks_the_decisions_rounding_can_flip() {
        let field = |x: V, t: f32| [-x[1] * (1.0 + t) + 0.3 * (2.0 * x[0]).sin(), x[0] * (1.0 + t) + 0.2 * x[1] * x[1].cos()];
        let opts = AdaptiveOptions::new(1e-5, 2000).unwrap();
        let shifted = AdaptiveOptions { rtol: opts.rtol * 1.01, atol: opts.atol * 1.01, ..opts };
        let starts: Vec<V> = (0..20000).map(|i| [(i % 200) as f32 / 50.0 - 2.0, (i / 200) as f32 / 25.0 - 2.0]).collect();
        let (mut flipped, mut near) = (0, 0);
        for &x in &starts {
            let (_, a) = integrate_field(field, x, 0.0, 1.0, &opts, 0, |_, _| {});
            let (_, b) = integrate_field(field, x, 0.0, 1.0, &shifted, 0, |_, _| {});
            near += (a.closest_tie < 0.05) as u32;
            if a.nfe != b.nfe {
                flipped += 1;
                assert!(a.closest_tie < 0.05, "{x:?}: {} and {} evaluations, closest tie {}", a.nfe, b.nfe, a.closest_tie);
            }
        }
        eprintln!("{flipped} of {} particles flipped; {near} had a tie below 0.05", starts.len());
        assert!(flipped > 0, "no particle flipped: the test tests nothing");
    }

    /// Rotation with a sharp burst of speed around t = 0.7: `v = ω(t)·(-y, x)`,
    /// `ω(t) = 1 + a/(ε + (t - 0.7)²)`, so the exact solution rotates x0 by
    /// `Θ(t) = t + a/√ε·(atan((t - 0.7)/√ε) + atan(0.7/√ε))`.
    fn burst() -> (impl Fn(V, f32) -> V, impl Fn(V, f32) -> V) {
        let (a, eps) = (0.1f64, 0.01f64);
        let omega = move |t: f32| (1.0 + a / (eps + (t as f64 - 0.7).powi(2))) as f32;
        let field = move |x: V, t: f32| {
            let w = omega(t);
            [-w * x[1], w * x[0]]
        };
        let exact = move |x0: V, t: f32| {
            let s = eps.sqrt();
            let th = t as f64 + a / s * (((t as f64 - 0.7) / s).atan() + (0.7 / s).atan());
            let (c, sn) = (th.cos(), th.sin());
            [(c * x0[0] as f64 - sn * x0[1] as f64) as f32, (sn * x0[0] as f64 + c * x0[1] as f64) as f32]
        };
        (field, exact)
    }

    fn rk4(v: &impl Fn(V, f32) -> V, mut x: V, steps: u32) -> V {
        let h = 1.0 / steps as f32;
        for k in 0..steps {
            let t = k as f32 * h;
            let k1 = v(x, t);
            let k2 = v(comb(x, 0.5 * h, &[(1.0, k1)]), t + 0.5 * h);
            let k3 = v(comb(x, 0.5 * h, &[(1.0, k2)]), t + 0.5 * h);
            let k4 = v(comb(x, h, &[(1.0, k3)]), t + h);
            x = comb(x, h / 6.0, &[(1.0, k1), (2.0, k2), (2.0, k3), (1.0, k4)]);
        }
        x
    }

    fn dist(a: V, b: V) -> f32 {
        ((a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2)).sqrt()
    }

    #[test]
    fn tableau_is_consistent() {
        // Rows of A sum to c; b and b* both sum to 1 (so e sums to 0).
        let close = |a: f32, b: f32| (a - b).abs() < 1e-6;
        assert!(close(A21, C2) && close(A31 + A32, C3) && close(A41 + A42 + A43, C4));
        assert!(close(A51 + A52 + A53 + A54, C5) && close(A61 + A62 + A63 + A64 + A65, 1.0));
        assert!(close(B1 + B3 + B4 + B5 + B6, 1.0));
        assert!(close(E1 + E3 + E4 + E5 + E6 + E7, 0.0));
    }

    /// On the burst field the global error meets the tolerance (within a small multiple: the
    /// controller bounds the local error per step), and tighter tolerances cost more evaluations.
    #[test]
    fn error_meets_tolerance() {
        let (field, exact) = burst();
        let x0 = [1.0f32, 0.5];
        let want = exact(x0, 1.0);
        let mut last_nfe = 0;
        for tol in [1e-3f32, 1e-4, 1e-5] {
            let opts = AdaptiveOptions::new(tol, 10_000).unwrap();
            let (got, s) = integrate_field(&field, x0, 0.0, 1.0, &opts, 0, |_, _| {});
            assert!(s.finished, "tol {tol}: did not finish in {} evaluations", s.nfe);
            let e = dist(got, want);
            assert!(e <= 10.0 * tol, "tol {tol}: error {e:e} with {} evaluations", s.nfe);
            assert!(s.nfe > last_nfe, "tol {tol}: {} evaluations, not more than {last_nfe} at a looser tolerance", s.nfe);
            last_nfe = s.nfe;
        }
    }

    /// Step-size control pays off on a field whose speed varies: RK4 with as many evaluations as
    /// dopri5 used (equal steps) has a larger error.
    #[test]
    fn fewer_evaluations_than_rk4_at_equal_error() {
        let (field, exact) = burst();
        let x0 = [1.0f32, 0.5];
        let want = exact(x0, 1.0);
        let opts = AdaptiveOptions::new(1e-4, 10_000).unwrap();
        let (got, s) = integrate_field(&field, x0, 0.0, 1.0, &opts, 0, |_, _| {});
        let e_dp = dist(got, want);
        let e_rk4 = dist(rk4(&field, x0, s.nfe / 4), want);
        assert!(e_dp < e_rk4, "dopri5: error {e_dp:e} with {} evaluations; rk4 with {} steps: {e_rk4:e}", s.nfe, s.nfe / 4);
    }

    /// Frames are the interpolated states at equally spaced times; the last one is the end state.
    #[test]
    fn frames_follow_the_exact_solution() {
        let (field, exact) = burst();
        let x0 = [0.3f32, -1.2];
        let opts = AdaptiveOptions::new(1e-5, 10_000).unwrap();
        let mut frames = vec![[f32::NAN; 2]; 11];
        let (end, s) = integrate_field(&field, x0, 0.0, 1.0, &opts, 10, |k, y| frames[k as usize] = y);
        assert!(s.finished);
        assert_eq!(frames[10], end);
        for (k, y) in frames.iter().enumerate().skip(1) {
            let want = exact(x0, k as f32 / 10.0);
            // Cubic Hermite is 3rd order between the steps' end points.
            assert!(dist(*y, want) < 2e-3, "frame {k}: {y:?} vs {want:?}");
        }
    }

    /// A budget too small to reach t1 stops the particle, flags it, and fills the remaining frames.
    #[test]
    fn budget_stops_and_flags() {
        let (field, _) = burst();
        let opts = AdaptiveOptions::new(1e-6, 19).unwrap();
        let mut frames = vec![[f32::NAN; 2]; 5];
        let (end, s) = integrate_field(&field, [1.0, 0.0], 0.0, 1.0, &opts, 4, |k, y| frames[k as usize] = y);
        assert!(!s.finished);
        assert!(s.nfe <= 19 && s.nfe == 19);
        assert_eq!(frames[4], end);
        assert!(frames[1..].iter().all(|p| p[0].is_finite() && p[1].is_finite()));
    }

    #[test]
    fn options_reject_bad_values_with_clear_messages() {
        let e = AdaptiveOptions::new(1e-3, 6).unwrap_err();
        assert!(e.contains("nfe 6") && e.contains("at least 7"), "{e}");
        let e = AdaptiveOptions::new(0.0, 100).unwrap_err();
        assert!(e.contains("tolerance") && e.contains("[0.000001, 0.1]"), "{e}");
        assert!(AdaptiveOptions::new(f32::NAN, 100).is_err());
    }
}
