//! Property tests for the parsers every untrusted input goes through (URL hash / attributes via
//! `Config::apply_query` and `Config::set`, pasted or uploaded points via `parse_points`):
//! arbitrary input never panics, and it either parses to something valid or yields an error that
//! names what was wrong.
#![cfg(not(target_arch = "wasm32"))]

use flowmatch::config::Config;
use flowmatch::rng::Stream;
use flowmatch::targets::{parse_points, points_from_density};

const ALPHABET: &[&str] = &[
    "0", "1", "7", "-", "+", ".", "e", "E", ",", ";", " ", "\t", "\n", "\r\n", "=", "&", "#", "%", "%2", "%zz",
    "nan", "NaN", "inf", "-inf", "x", "y", "x,y", "width", "depth", "lr", "dataset", "moons", "batch", "seed",
    "sigma-min", "solver", "rk4", "1e40", "1e-45", "4294967296", "-0", "é", "💥", "\u{0}", "\u{7f}", "\\", "\"",
];

fn random_text(rng: &mut Stream, max_tokens: u32) -> String {
    let n = rng.below(max_tokens + 1);
    (0..n).map(|_| ALPHABET[rng.below(ALPHABET.len() as u32) as usize]).collect()
}

#[test]
fn config_query_never_panics_and_stays_valid() {
    let mut rng = Stream::new(1, 0);
    for _ in 0..20_000 {
        let text = random_text(&mut rng, 24);
        let mut c = Config::default();
        let errors = c.apply_query(&text);
        for e in &errors {
            let msg = e.to_string();
            assert!(msg.contains(e.field()), "error must name its field: {msg}");
        }
        // Whatever was applied is within range: it round-trips through the query form.
        let mut d = Config::default();
        assert!(d.apply_query(&c.to_query()).is_empty(), "{text:?} produced an unserialisable config {c:?}");
        assert_eq!(c, d);
        assert!(c.lr.is_finite() && c.lr > 0.0 && c.width >= 1 && c.batch >= 1 && c.sigma_min < 1.0);
    }
}

#[test]
fn points_parser_never_panics() {
    let mut rng = Stream::new(2, 0);
    for _ in 0..20_000 {
        let text = random_text(&mut rng, 40);
        match parse_points(&text) {
            Ok(points) => {
                assert!(points.len() >= 2 && points.iter().all(|p| p[0].is_finite() && p[1].is_finite()), "{text:?}");
            }
            Err(e) => assert!(!e.to_string().is_empty()),
        }
    }
    // Random bytes, as from a file that is not CSV.
    for _ in 0..2_000 {
        let bytes: Vec<u8> = (0..rng.below(64)).map(|_| rng.below(256) as u8).collect();
        let _ = parse_points(&String::from_utf8_lossy(&bytes));
    }
}

#[test]
fn density_sampler_never_panics() {
    let mut rng = Stream::new(3, 0);
    for _ in 0..2_000 {
        let (w, h) = (rng.below(6) as usize, rng.below(6) as usize);
        let len = if rng.below(4) == 0 { rng.below(40) as usize } else { w * h };
        let values: Vec<f32> = (0..len).map(|_| [0.0, 1.0, -1.0, f32::NAN, f32::INFINITY, 0.5][rng.below(6) as usize]).collect();
        if let Ok(points) = points_from_density(&values, w, h, 50, 1) {
            assert!(points.iter().all(|p| p[0].is_finite() && p[1].is_finite()));
        }
    }
}
