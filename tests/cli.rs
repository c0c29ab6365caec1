//! The `flowmatch` binary's contract: flags, CSV output, the JSON result line, exit codes.
#![cfg(not(target_arch = "wasm32"))]

use std::process::{Command, Output};

fn flowmatch(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_flowmatch")).args(args).output().expect("run flowmatch")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn train_writes_csv_and_one_json_line() {
    let dir = std::env::temp_dir().join(format!("flowmatch-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join("samples.csv");
    let o = flowmatch(&[
        "train", "--dataset", "8gaussians", "--steps", "30", "--batch", "64", "--width", "16", "--depth", "2",
        "--lr", "0.01", "--seed", "7", "--solver", "rk4", "--nfe", "4", "--samples", "123", "--out", out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "exit {:?}: {}", o.status, stderr(&o));
    let stdout = String::from_utf8(o.stdout).unwrap();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "exactly one line on stdout: {stdout}");
    let json = lines[0];
    assert!(json.starts_with('{') && json.ends_with('}'));
    for key in ["\"steps\":30", "\"steps_per_s\":", "\"final_loss\":", "\"train_seconds\":", "\"adapter\":\"", "\"backend\":\""] {
        assert!(json.contains(key), "missing {key} in {json}");
    }
    let csv = std::fs::read_to_string(&out).unwrap();
    let mut rows = csv.lines();
    assert_eq!(rows.next(), Some("x,y"));
    let points: Vec<(f32, f32)> = rows
        .map(|r| {
            let (x, y) = r.split_once(',').unwrap();
            (x.parse().unwrap(), y.parse().unwrap())
        })
        .collect();
    assert_eq!(points.len(), 123);
    assert!(points.iter().all(|(x, y)| x.is_finite() && y.is_finite()));
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn bad_flags_exit_nonzero_naming_the_flag_and_allowed_values() {
    let cases: &[(&[&str], &[&str])] = &[
        (&["train", "--dataset", "moon"], &["dataset", "moons", "8gaussians", "checkerboard"]),
        (&["train", "--batch", "0"], &["batch", "1 to 65536"]),
        (&["train", "--width", "100000"], &["width", "1 to 1024"]),
        (&["train", "--steps", "many"], &["steps", "integer"]),
        (&["train", "--lr", "fast"], &["lr", "number"]),
        (&["train", "--solver", "heun"], &["solver", "euler|midpoint|rk4"]),
        (&["train", "--nfe"], &["--nfe", "needs a value"]),
        (&["train", "--t-sampling", "beta"], &["t_sampling", "uniform|logit-normal|u-shaped"]),
        (&["train", "--reflow-pairs", "0"], &["reflow_pairs", "1 to 1048576"]),
        (&["train", "--colour", "red"], &["--colour", "dataset"]),
        (&["fly"], &["fly", "train", "nll"]),
    ];
    for (args, needles) in cases {
        let o = flowmatch(args);
        assert_eq!(o.status.code(), Some(2), "{args:?} should exit 2");
        let err = stderr(&o);
        for n in *needles {
            assert!(err.contains(n), "{args:?}: message should mention '{n}': {err}");
        }
        assert!(o.stdout.is_empty(), "{args:?}: nothing on stdout on error");
    }
}

/// Reflow rounds each get a report (round 0 is the first training); the top level is the last
/// model's, with the flow's straightness, energy, transport cost, W2² and the field error.
#[test]
fn reflow_reports_every_round() {
    let o = flowmatch(&[
        "train", "--dataset", "8gaussians", "--steps", "30", "--batch", "64", "--width", "16", "--depth", "2", "--samples", "300",
        "--nfe", "4", "--points", "500", "--reflow", "2", "--reflow-pairs", "200", "--reflow-steps", "20", "--t-sampling", "u-shaped",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let json = String::from_utf8(o.stdout).unwrap();
    let number = |key: &str, from: &str| -> f64 {
        let at = from.find(&format!("\"{key}\":")).unwrap_or_else(|| panic!("no {key} in {from}")) + key.len() + 3;
        let end = from[at..].find([',', '}']).unwrap() + at;
        from[at..end].parse().unwrap_or_else(|_| panic!("{key} is not a number in {from}"))
    };
    for key in ["straightness", "kinetic_energy", "transport_cost", "w2_squared", "field_error", "sw2", "sw2_one_step"] {
        let v = number(key, &json);
        assert!(v.is_finite() && v >= -1e-3, "{key} = {v}");
    }
    assert!(json.contains("\"t_sampling\":\"u-shaped\"") && json.contains("\"points\":500"), "{json}");
    let rounds = &json[json.find("\"rounds\":[").expect("a rounds array")..];
    for (r, steps) in [(0, 30), (1, 50), (2, 70)] {
        let at = rounds.find(&format!("{{\"round\":{r},")).unwrap_or_else(|| panic!("round {r} missing: {rounds}"));
        assert_eq!(number("total_steps", &rounds[at..]), steps as f64);
        assert!(number("straightness", &rounds[at..]).is_finite());
    }
    // With a dataset as the source there is no exact field to compare with.
    let o = flowmatch(&["train", "--source", "moons", "--dataset", "8gaussians", "--steps", "10", "--width", "8", "--samples", "50", "--nfe", "2"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("\"field_error\":null"));
}

#[test]
fn a_dataset_can_be_the_source() {
    let o = flowmatch(&["train", "--source", "8gaussians", "--dataset", "moons", "--steps", "20", "--width", "8", "--samples", "10", "--nfe", "2"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("\"source\":\"8gaussians\""));
    let o = flowmatch(&["train", "--source", "uniform"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("gaussian|checkerboard|moons"), "{}", stderr(&o));
}

#[test]
fn nll_reports_the_held_out_likelihood() {
    let o = flowmatch(&["nll", "--dataset", "8gaussians", "--steps", "200", "--width", "16", "--depth", "2", "--held-out", "200", "--grid", "24", "--nfe", "8", "--solver", "midpoint"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let json = String::from_utf8(o.stdout).unwrap();
    for key in ["\"command\":\"nll\"", "\"nll\":", "\"grid_mass\":", "\"held_out\":200"] {
        assert!(json.contains(key), "missing {key} in {json}");
    }
    let o = flowmatch(&["nll", "--source", "moons"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("standard normal source"), "{}", stderr(&o));
    let o = flowmatch(&["nll", "--grid", "1"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("grid"), "{}", stderr(&o));
}

#[test]
fn divergence_stops_training_and_names_the_step() {
    let o = flowmatch(&["train", "--lr", "10000", "--steps", "300", "--samples", "10"]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("non-finite") && err.contains("at step"), "{err}");
}
