//! `--solver dopri5` and `--tol` through the `flowmatch` binary: sampling and nll accept it,
//! bad values exit 2 naming the flag and what is allowed.
#![cfg(not(target_arch = "wasm32"))]

use std::process::{Command, Output};

fn flowmatch(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_flowmatch")).args(args).output().expect("run flowmatch")
}

fn json_num(line: &str, key: &str) -> f64 {
    let at = line.find(&format!("\"{key}\":")).unwrap_or_else(|| panic!("no {key} in {line}")) + key.len() + 3;
    let end = line[at..].find([',', '}']).unwrap() + at;
    line[at..end].trim().parse().unwrap_or_else(|_| panic!("{key} is not a number in {line}"))
}

const SMALL: &[&str] = &["--dataset", "8gaussians", "--steps", "60", "--batch", "64", "--width", "16", "--depth", "2", "--solver", "dopri5"];

#[test]
fn train_samples_with_dopri5() {
    let o = flowmatch(&[&["train"], SMALL, &["--nfe", "400", "--tol", "1e-4", "--samples", "257"]].concat());
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(out.contains("\"solver\":\"dopri5\""), "{out}");
    let mean_nfe = json_num(&out, "mean_nfe");
    assert!(mean_nfe >= 7.0 && mean_nfe <= 400.0, "mean_nfe {mean_nfe}");
    assert_eq!(json_num(&out, "tol"), 1e-4f32 as f64);
}

#[test]
fn nll_accepts_dopri5() {
    let o = flowmatch(&[&["nll"], SMALL, &["--nfe", "24", "--held-out", "100", "--grid", "8"]].concat());
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(json_num(&String::from_utf8_lossy(&o.stdout), "nll").is_finite());
}

#[test]
fn too_small_budget_or_bad_tolerance_exit_2() {
    for (args, needles) in [
        (vec!["train", "--solver", "dopri5", "--nfe", "6"], vec!["nfe", "'6'", "at least 7 with solver dopri5"]),
        (vec!["train", "--tol", "0"], vec!["tol", "[0.000001, 0.1]"]),
        (vec!["train", "--solver", "heun"], vec!["euler|midpoint|rk4|dopri5"]),
    ] {
        let o = flowmatch(&args);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&o.stderr);
        for n in needles {
            assert!(err.contains(n), "{args:?}: should mention '{n}': {err}");
        }
    }
}

#[test]
fn a_budget_that_runs_out_is_an_error_not_silent() {
    let o = flowmatch(&[&["train"], SMALL, &["--nfe", "13", "--tol", "1e-6", "--samples", "50"]].concat());
    assert_eq!(o.status.code(), Some(3), "{}", String::from_utf8_lossy(&o.stdout));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("dopri5 used its whole budget") && err.contains("raise --nfe or loosen --tol"), "{err}");
}
