//! A saved model means the same thing outside this project: `examples/numpy_field.py` (numpy +
//! the `safetensors` package from PyPI, no flowmatch code) reads `flowmatch nll --save
//! m.safetensors` and gives the velocities of `flowmatch field` to 1e-5 and the end points of
//! `flowmatch sample --from` (same solver, same steps) to 1e-4; `flowmatch nll --model` gives the
//! training run's nll exactly.
//!
//! Python comes from `.venv/` (created by `scripts/setup.sh`: numpy and safetensors from PyPI),
//! or from `$FLOWMATCH_PYTHON`. Missing, the test fails and says so: it never skips.
#![cfg(not(target_arch = "wasm32"))]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn flowmatch(args: &[&str]) -> String {
    let o = Command::new(env!("CARGO_BIN_EXE_flowmatch")).args(args).output().expect("run flowmatch");
    assert!(o.status.success(), "flowmatch {args:?} failed: {}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8(o.stdout).unwrap()
}

fn python() -> PathBuf {
    let path = std::env::var_os("FLOWMATCH_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python"));
    let ok = Command::new(&path).args(["-c", "import numpy, safetensors"]).output().is_ok_and(|o| o.status.success());
    assert!(ok, "{} cannot import numpy and safetensors: run scripts/setup.sh (it creates .venv from PyPI) or set FLOWMATCH_PYTHON", path.display());
    path
}

fn numpy_field(args: &[&str]) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/numpy_field.py");
    let o: Output = Command::new(python()).arg(script).args(args).output().expect("run python");
    assert!(o.status.success(), "numpy_field.py {args:?} failed: {}", String::from_utf8_lossy(&o.stderr));
}

/// The rows of a CSV with a header, as f64.
fn read_csv(path: &Path) -> Vec<Vec<f64>> {
    let text = std::fs::read_to_string(path).unwrap();
    text.lines().skip(1).map(|l| l.split(',').map(|v| v.parse().unwrap()).collect()).collect()
}

/// The number after `"key":` in a JSON line.
fn json_field<'a>(json: &'a str, key: &str) -> &'a str {
    let start = json.find(&format!("\"{key}\":")).unwrap_or_else(|| panic!("no {key} in {json}")) + key.len() + 3;
    let end = json[start..].find([',', '}']).unwrap() + start;
    &json[start..end]
}

/// Largest `|a - b| / max(1, |b|)` over matching columns `cols` of two CSVs of the same rows.
fn worst(a: &[Vec<f64>], b: &[Vec<f64>], cols: std::ops::Range<usize>) -> f64 {
    assert_eq!(a.len(), b.len(), "row counts differ");
    let mut w = 0.0f64;
    for (ra, rb) in a.iter().zip(b) {
        for c in cols.clone() {
            w = w.max((ra[c] - rb[c]).abs() / rb[c].abs().max(1.0));
        }
    }
    w
}

/// Uniform numbers in [0, 1) from a fixed LCG (the points need no quality, only variety).
fn uniforms(n: usize) -> Vec<f64> {
    let mut s: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..n)
        .map(|_| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (s >> 11) as f64 / (1u64 << 53) as f64
        })
        .collect()
}

#[test]
fn numpy_reads_the_saved_model_as_flowmatch_runs_it() {
    let dir = std::env::temp_dir().join(format!("flowmatch-interop-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = |name: &str| dir.join(name).to_str().unwrap().to_string();
    let model = p("m.safetensors");
    // GELU (tanh approximation) is the activation a reimplementation most easily gets wrong.
    let trained = flowmatch(&[
        "nll", "--dataset", "moons", "--steps", "150", "--width", "24", "--depth", "3", "--activation", "gelu", "--batch", "128",
        "--held-out", "300", "--grid", "8", "--solver", "rk4", "--nfe", "6", "--save", &model,
    ]);
    let reread = flowmatch(&["nll", "--model", &model, "--held-out", "300", "--grid", "8"]);
    assert_eq!(json_field(&reread, "nll"), json_field(&trained, "nll"), "nll --model must repeat the training run's nll");
    assert_eq!(json_field(&reread, "grid_mass"), json_field(&trained, "grid_mass"));

    // The field at 257 points of [-3, 3]² × [0, 1], written as f32 values (what flowmatch reads).
    let u = uniforms(3 * 257);
    let f = |x: f64| x as f32;
    let rows: Vec<String> = u.chunks(3).map(|r| format!("{},{},{}", f(6.0 * r[0] - 3.0), f(6.0 * r[1] - 3.0), f(r[2]))).collect();
    std::fs::write(p("xyt.csv"), format!("x,y,t\n{}\n", rows.join("\n"))).unwrap();
    flowmatch(&["field", "--model", &model, "--points", &p("xyt.csv"), "--out", &p("v.csv")]);
    numpy_field(&["field", &model, &p("xyt.csv"), "--out", &p("v_numpy.csv")]);
    let (v, v_numpy) = (read_csv(&dir.join("v.csv")), read_csv(&dir.join("v_numpy.csv")));
    assert_eq!(worst(&v, &v_numpy, 0..3), 0.0, "the inputs are echoed unchanged");
    let field_err = worst(&v, &v_numpy, 3..5);
    assert!(field_err <= 1e-5, "flowmatch field vs numpy: {field_err:e}");

    // Sampling from given start points with the same solver and steps.
    let rows: Vec<String> = uniforms(2 * 200).chunks(2).map(|r| format!("{},{}", f(5.0 * r[0] - 2.5), f(5.0 * r[1] - 2.5))).collect();
    std::fs::write(p("x0.csv"), format!("x,y\n{}\n", rows.join("\n"))).unwrap();
    flowmatch(&["sample", "--model", &model, "--from", &p("x0.csv"), "--solver", "rk4", "--nfe", "10", "--out", &p("x1.csv")]);
    numpy_field(&["sample", &model, &p("x0.csv"), "--solver", "rk4", "--nfe", "10", "--out", &p("x1_numpy.csv")]);
    let sample_err = worst(&read_csv(&dir.join("x1.csv")), &read_csv(&dir.join("x1_numpy.csv")), 0..2);
    assert!(sample_err <= 1e-4, "flowmatch sample vs numpy rk4: {sample_err:e}");
    eprintln!("field max error {field_err:e}, rk4 end points max error {sample_err:e}");
    std::fs::remove_dir_all(&dir).ok();
}
