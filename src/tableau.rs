//! Explicit Runge–Kutta methods as data: one Butcher tableau per [`Solver`], one generic stepper.
//!
//! A step of size `h` from `(x, t)` with `s` stages computes
//! `k_i = f(x + h·Σ_{j<i} a_ij·k_j, t + c_i·h)` and returns `x + h·Σ_i b_i·k_i`; sums run left to
//! right over the nonzero coefficients, in `f32`, exactly as the WGSL the same tableau generates
//! ([`wgsl_step_fns`], emitted into the sampling and density kernels by `src/gpu/shaders.rs`), so
//! the CPU twins and the shaders agree to rounding. Dormand–Prince 5(4) also carries its error
//! weights `e = b - b*` (with the FSAL stage `k7 = f(y, t + h)`), used by the adaptive integrator
//! (`src/cpu/adaptive.rs`, `shaders/ode_adaptive.wgsl`, whose constants come from here too).
//!
//! Adding a fixed-step solver: a variant of `config::Solver` (appended), its tableau below, and
//! its `evals_per_step` — the CPU stepper, the WGSL step functions and the shader's switch follow.

use crate::config::Solver;
use std::ops::{Add, Mul};

/// A Butcher tableau. `a[i]` holds the `i` coefficients of stage `i` (`a[0]` is empty).
#[derive(Debug)]
pub struct Tableau {
    pub c: &'static [f32],
    pub a: &'static [&'static [f32]],
    pub b: &'static [f32],
    /// Error weights `b - b*` of an embedded pair, one per stage plus the FSAL stage (empty when
    /// the method has no error estimate).
    pub e: &'static [f32],
}

impl Tableau {
    pub fn stages(&self) -> usize {
        self.b.len()
    }
}

/// `n/d` rounded once to f32 (the exact fraction, as the shaders' constants).
const fn q(n: f64, d: f64) -> f32 {
    (n / d) as f32
}

pub const EULER: Tableau = Tableau { c: &[0.0], a: &[&[]], b: &[1.0], e: &[] };

pub const MIDPOINT: Tableau = Tableau { c: &[0.0, 0.5], a: &[&[], &[0.5]], b: &[0.0, 1.0], e: &[] };

pub const RK4: Tableau = Tableau {
    c: &[0.0, 0.5, 0.5, 1.0],
    a: &[&[], &[0.5], &[0.0, 0.5], &[0.0, 0.0, 1.0]],
    b: &[q(1.0, 6.0), q(1.0, 3.0), q(1.0, 3.0), q(1.0, 6.0)],
    e: &[],
};

/// Dormand–Prince 5(4): six stages for the 5th-order solution; `e` has a 7th entry for the FSAL
/// stage `k7 = f(y, t + h)`.
pub const DOPRI5: Tableau = Tableau {
    c: &[0.0, q(1.0, 5.0), q(3.0, 10.0), q(4.0, 5.0), q(8.0, 9.0), 1.0],
    a: &[
        &[],
        &[q(1.0, 5.0)],
        &[q(3.0, 40.0), q(9.0, 40.0)],
        &[q(44.0, 45.0), q(-56.0, 15.0), q(32.0, 9.0)],
        &[q(19372.0, 6561.0), q(-25360.0, 2187.0), q(64448.0, 6561.0), q(-212.0, 729.0)],
        &[q(9017.0, 3168.0), q(-355.0, 33.0), q(46732.0, 5247.0), q(49.0, 176.0), q(-5103.0, 18656.0)],
    ],
    b: &[q(35.0, 384.0), 0.0, q(500.0, 1113.0), q(125.0, 192.0), q(-2187.0, 6784.0), q(11.0, 84.0)],
    e: &[q(71.0, 57600.0), 0.0, q(-71.0, 16695.0), q(71.0, 1920.0), q(-17253.0, 339200.0), q(22.0, 525.0), q(-1.0, 40.0)],
};

impl Solver {
    /// The method's tableau (for dopri5: one fixed step of its 5th-order solution).
    pub fn tableau(self) -> &'static Tableau {
        match self {
            Solver::Euler => &EULER,
            Solver::Midpoint => &MIDPOINT,
            Solver::Rk4 => &RK4,
            Solver::Dopri5 => &DOPRI5,
        }
    }
}

/// A state the stepper can combine: a point, or a point with extra components (the density's
/// `(x, y, log p)`).
pub trait State: Copy + Add<Output = Self> + Mul<f32, Output = Self> {}
impl<T: Copy + Add<Output = T> + Mul<f32, Output = T>> State for T {}

/// `x + h·(Σ w_j·k_j)` over the nonzero `w_j`, left to right (the WGSL expression's order).
pub fn combine<S: State>(x: S, h: f32, w: &[f32], k: &[S]) -> S {
    let mut sum: Option<S> = None;
    for (&wj, &kj) in w.iter().zip(k) {
        if wj != 0.0 {
            let term = kj * wj;
            sum = Some(match sum {
                None => term,
                Some(s) => s + term,
            });
        }
    }
    match sum {
        Some(s) => x + s * h,
        None => x,
    }
}

/// One step of `tab` from `(x, t)` with size `h` through the field `f` (CPU twin of the WGSL
/// `rk_step_<solver>` functions).
pub fn step<S: State>(tab: &Tableau, f: impl FnMut(S, f32) -> S, x: S, t: f32, h: f32) -> S {
    combine(x, h, tab.b, &stages(tab, f, x, t, h))
}

/// The stage values `k_i` of one step.
fn stages<S: State>(tab: &Tableau, mut f: impl FnMut(S, f32) -> S, x: S, t: f32, h: f32) -> Vec<S> {
    let mut k: Vec<S> = Vec::with_capacity(tab.stages());
    for i in 0..tab.stages() {
        let xi = combine(x, h, tab.a[i], &k);
        k.push(f(xi, t + tab.c[i] * h));
    }
    k
}

/// One step of `tab` that also returns the step's quadrature of the kinetic energy,
/// `h·Σ_i b_i·|k_i|²` (sum left to right over the nonzero `b_i`, as the WGSL `rk_energy_<solver>`
/// functions of [`wgsl_energy_step_fns`]). Since `Σ b_i = 1`, the same weights integrate
/// `|d - v|²` for any constant `d`, so along a path the straightness `∫|(x1 - x0) - v|² dt`
/// equals the summed energy minus `|x1 - x0|²` exactly (see `src/gpu/flow_stats.rs`).
pub fn step_energy(tab: &Tableau, f: impl FnMut(V2, f32) -> V2, x: V2, t: f32, h: f32) -> (V2, f32) {
    let k = stages(tab, f, x, t, h);
    let mut e: Option<f32> = None;
    for (&bi, ki) in tab.b.iter().zip(&k) {
        if bi != 0.0 {
            let term = (ki.0[0] * ki.0[0] + ki.0[1] * ki.0[1]) * bi;
            e = Some(e.map_or(term, |s| s + term));
        }
    }
    (combine(x, h, tab.b, &k), e.unwrap_or(0.0) * h)
}

/// A 2-vector for the stepper (`[f32; 2]` has no arithmetic).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct V2(pub [f32; 2]);

impl Add for V2 {
    type Output = V2;
    fn add(self, o: V2) -> V2 {
        V2([self.0[0] + o.0[0], self.0[1] + o.0[1]])
    }
}
impl Mul<f32> for V2 {
    type Output = V2;
    fn mul(self, s: f32) -> V2 {
        V2([self.0[0] * s, self.0[1] * s])
    }
}

/// A 3-vector for the stepper (the density's augmented state).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct V3(pub [f32; 3]);

impl Add for V3 {
    type Output = V3;
    fn add(self, o: V3) -> V3 {
        V3([self.0[0] + o.0[0], self.0[1] + o.0[1], self.0[2] + o.0[2]])
    }
}
impl Mul<f32> for V3 {
    type Output = V3;
    fn mul(self, s: f32) -> V3 {
        V3([self.0[0] * s, self.0[1] * s, self.0[2] * s])
    }
}

/// An f32 as a WGSL literal that parses back to the same f32.
pub fn wgsl_f32(x: f32) -> String {
    let s = format!("{x:?}");
    if s.contains('.') || s.contains('e') || s.contains("inf") || s.contains("NaN") {
        s
    } else {
        format!("{s}.0")
    }
}

/// `x + h * (w0 * k0 + ...)` in WGSL over the nonzero weights (the order of [`combine`]).
fn wgsl_combine(x: &str, w: &[f32]) -> String {
    let terms: Vec<String> = w.iter().enumerate().filter(|(_, &wj)| wj != 0.0).map(|(j, &wj)| format!("k{j} * {}", wgsl_f32(wj))).collect();
    if terms.is_empty() {
        x.to_string()
    } else {
        format!("{x} + ({}) * h", terms.join(" + "))
    }
}

/// WGSL step functions for every fixed-step solver over a field `field(state, t) -> state`:
/// `fn rk_step_<name>(x: T, t: f32, h: f32) -> T` per solver and
/// `fn rk_step(solver: u32, x: T, t: f32, h: f32) -> T`, whose `default:` arm returns NaN (an
/// unknown solver code is a bug that must show, not a silent Euler step).
/// `field` is a WGSL expression template with `{x}` and `{t}` placeholders.
pub fn wgsl_step_fns(state_ty: &str, field: &str) -> String {
    step_fns("rk_step", state_ty, field, false)
}

/// As [`wgsl_step_fns`] with another name prefix (`{prefix}_<name>` and `{prefix}`), for a
/// kernel that steps two fields.
pub fn wgsl_step_fns_named(prefix: &str, state_ty: &str, field: &str) -> String {
    step_fns(prefix, state_ty, field, false)
}

/// As [`wgsl_step_fns`] over a `vec2<f32>` field, but each function returns
/// `vec3<f32>(x_new, h·Σ_i b_i·dot(k_i, k_i))` (the CPU twin is [`step_energy`]):
/// `fn rk_energy_<name>(x, t, h)` and `fn rk_energy(solver, x, t, h)`.
pub fn wgsl_energy_step_fns(field: &str) -> String {
    step_fns("rk_energy", "vec2<f32>", field, true)
}

fn step_fns(prefix: &str, state_ty: &str, field: &str, energy: bool) -> String {
    let ret_ty = if energy { "vec3<f32>" } else { state_ty };
    let mut out = String::new();
    let mut cases = String::new();
    for &solver in Solver::ALL {
        let tab = solver.tableau();
        let name = solver.name();
        out.push_str(&format!("fn {prefix}_{name}(x: {state_ty}, t: f32, h: f32) -> {ret_ty} {{\n"));
        for i in 0..tab.stages() {
            let xi = wgsl_combine("x", tab.a[i]);
            let ti = if tab.c[i] == 0.0 { "t".to_string() } else { format!("t + {} * h", wgsl_f32(tab.c[i])) };
            let call = field.replace("{x}", &format!("({xi})")).replace("{t}", &format!("({ti})"));
            out.push_str(&format!("    let k{i} = {call};\n"));
        }
        if energy {
            let terms: Vec<String> =
                tab.b.iter().enumerate().filter(|(_, &b)| b != 0.0).map(|(j, &b)| format!("dot(k{j}, k{j}) * {}", wgsl_f32(b))).collect();
            out.push_str(&format!("    return vec3<f32>({}, ({}) * h);\n}}\n", wgsl_combine("x", tab.b), terms.join(" + ")));
        } else {
            out.push_str(&format!("    return {};\n}}\n", wgsl_combine("x", tab.b)));
        }
        cases.push_str(&format!("        case SOLVER_{}: {{ return {prefix}_{name}(x, t, h); }}\n", format!("{solver:?}").to_ascii_uppercase()));
    }
    out.push_str(&format!(
        "fn {prefix}(solver: u32, x: {state_ty}, t: f32, h: f32) -> {ret_ty} {{\n    switch solver {{\n{cases}        default: {{ return {ret_ty}(nan_f32()); }}\n    }}\n}}\n"
    ));
    out
}

/// The Dormand–Prince constants as WGSL (`DP_A<i><j>`, `DP_B<i>`, `DP_E<i>`, `DP_C<i>`, 1-based
/// like the literature) for `shaders/ode_adaptive.wgsl`.
pub fn wgsl_dopri5_consts() -> String {
    let t = &DOPRI5;
    let mut out = String::new();
    for (i, row) in t.a.iter().enumerate() {
        for (j, &v) in row.iter().enumerate() {
            out.push_str(&format!("const DP_A{}{}: f32 = {};\n", i + 1, j + 1, wgsl_f32(v)));
        }
    }
    for (i, &v) in t.b.iter().enumerate() {
        out.push_str(&format!("const DP_B{}: f32 = {};\n", i + 1, wgsl_f32(v)));
    }
    for (i, &v) in t.e.iter().enumerate() {
        out.push_str(&format!("const DP_E{}: f32 = {};\n", i + 1, wgsl_f32(v)));
    }
    for (i, &v) in t.c.iter().enumerate() {
        out.push_str(&format!("const DP_C{}: f32 = {};\n", i + 1, wgsl_f32(v)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tableaux_are_consistent() {
        for &s in Solver::ALL {
            let t = s.tableau();
            assert_eq!(t.a.len(), t.stages(), "{s}");
            assert_eq!(t.c.len(), t.stages(), "{s}");
            assert_eq!(s.evals_per_step() as usize, if s == Solver::Dopri5 { 1 } else { t.stages() }, "{s}");
            assert_eq!(s.is_adaptive(), !t.e.is_empty(), "{s}: adaptive exactly when the tableau has error weights");
            // Row sums equal c (the consistency condition) and the weights sum to 1.
            for (i, row) in t.a.iter().enumerate() {
                assert_eq!(row.len(), i, "{s}: a[{i}]");
                let sum: f32 = row.iter().sum();
                assert!((sum - t.c[i]).abs() < 1e-6, "{s}: row {i} sums to {sum}, c = {}", t.c[i]);
            }
            assert!((t.b.iter().sum::<f32>() - 1.0).abs() < 1e-6, "{s}");
        }
        assert!(DOPRI5.e.iter().sum::<f32>().abs() < 1e-6, "b and b* both sum to 1");
    }

    /// Each method integrates y' = y exactly to its order: the global error shrinks by 2^p when h
    /// halves.
    #[test]
    fn orders_of_accuracy() {
        let f = |y: V2, _t: f32| y;
        for (solver, order) in [(Solver::Euler, 1), (Solver::Midpoint, 2), (Solver::Rk4, 4)] {
            let err = |n: u32| {
                let mut y = V2([1.0, 0.0]);
                let h = 1.0 / n as f32;
                for k in 0..n {
                    y = step(solver.tableau(), f, y, k as f32 * h, h);
                }
                ((y.0[0] as f64) - std::f64::consts::E).abs()
            };
            let ratio = err(8) / err(16);
            let expect = 2f64.powi(order);
            assert!((ratio / expect - 1.0).abs() < 0.2, "{solver}: error ratio {ratio}, expected about {expect}");
        }
        let mut y = V2([1.0, 0.0]);
        for k in 0..4 {
            y = step(&DOPRI5, f, y, k as f32 * 0.25, 0.25);
        }
        assert!(((y.0[0] as f64) - std::f64::consts::E).abs() < 2e-6, "dopri5: {}", y.0[0]);
    }

    /// The energy quadrature integrates |v|² with the method's weights: for v = (t, 1) on [0, 1],
    /// ∫|v|² dt = 4/3, exact for midpoint up to O(h²) and for RK4 (a quadratic integrand).
    #[test]
    fn energy_quadrature() {
        let f = |_: V2, t: f32| V2([t, 1.0]);
        let total = |solver: Solver, n: u32| {
            let h = 1.0 / n as f32;
            (0..n).map(|k| step_energy(solver.tableau(), f, V2([0.0, 0.0]), k as f32 * h, h).1 as f64).sum::<f64>()
        };
        assert!((total(Solver::Rk4, 3) - 4.0 / 3.0).abs() < 1e-6);
        assert!((total(Solver::Midpoint, 50) - 4.0 / 3.0).abs() < 1e-4);
        // Euler is the left rule: Σ h(1 + (kh)²) = 1 + (n-1)(2n-1)/(6n²).
        let n = 10.0;
        assert!((total(Solver::Euler, 10) - (1.0 + (n - 1.0) * (2.0 * n - 1.0) / (6.0 * n * n))).abs() < 1e-6);
        let (y, _) = step_energy(&RK4, f, V2([0.0, 0.0]), 0.0, 1.0);
        assert_eq!(y, step(&RK4, f, V2([0.0, 0.0]), 0.0, 1.0));
    }

    #[test]
    fn wgsl_literals_round_trip() {
        for x in [0.2f32, 1.0, -56.0 / 15.0, 1e-7, 3.0e38] {
            let s = wgsl_f32(x);
            assert_eq!(s.parse::<f32>().unwrap(), x, "{s}");
            assert!(s.contains('.') || s.contains('e'), "{s} must be a float literal");
        }
    }
}
