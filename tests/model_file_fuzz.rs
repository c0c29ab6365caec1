//! The model-file decoder (`ModelFile::decode`, both formats) fuzzed: random bytes, random bytes
//! behind each format's magic, and mutations of valid files (flipped bytes, truncations,
//! insertions, deletions, and 4- and 8-byte words overwritten with extremes, which hit the length
//! and count fields). Every input either decodes to a file that holds together (the parameter and
//! moment counts of its configuration's network, finite values, the step within its bound) or
//! is refused with a message; nothing panics and nothing allocates by what a header claims.
//! Runs natively and, through wasm-bindgen-test-runner (scripts/test.sh's browser tests), in
//! headless Chromium, where a panic or an oversized allocation aborts the wasm module. About 1 s.

use flowmatch::config::{limits, Activation, Config};
use flowmatch::model_file::native::crc32;
use flowmatch::model_file::{ModelFile, ModelFormat};
use flowmatch::rng::Stream;
use flowmatch::TrainSpec;

#[cfg(target_arch = "wasm32")]
wasm_bindgen_test::wasm_bindgen_test_configure!(run_in_browser);

/// A small valid file's content: width 8, depth 2, with Adam moments.
fn valid() -> ModelFile {
    let config = Config { width: 8, depth: 2, activation: Activation::Silu, ..Config::default() };
    let shape = TrainSpec::from_config(&config).shape;
    let moments: Vec<f32> = shape.init_params(4).into_iter().chain(shape.init_params(5)).map(|x| x.abs() * 1e-3).collect();
    ModelFile::new(config, 321, shape.init_params(3), moments, 0)
}

/// Decodes `bytes`; a file it accepts must hold together, a refusal must say something.
fn check(bytes: &[u8], what: &str) -> bool {
    match ModelFile::decode(bytes) {
        Ok(m) => {
            let expected = m.shape().param_len();
            assert_eq!(m.params.len(), expected, "{what}: accepted with the wrong parameter count");
            if let Some(moments) = &m.moments {
                assert_eq!(moments.len(), 2 * expected, "{what}: accepted with the wrong moment count");
            }
            assert!(m.params.iter().chain(m.moments.iter().flatten()).all(|p| p.is_finite()), "{what}: accepted non-finite values");
            assert!(m.step.max(m.schedule_start) as u64 <= limits::MAX_STEPS, "{what}: accepted step {}", m.step);
            true
        }
        Err(e) => {
            assert!(e.to_string().len() > 10, "{what}: a refusal without a message: {e:?}");
            false
        }
    }
}

fn random_bytes(r: &mut Stream, n: usize) -> Vec<u8> {
    (0..n).map(|_| r.next_u32() as u8).collect()
}

#[cfg_attr(not(target_arch = "wasm32"), test)]
#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
fn random_bytes_are_refused_with_a_message() {
    let mut r = Stream::new(11, 0);
    let magics: Vec<Vec<u8>> = ModelFormat::ALL.iter().map(|&f| valid().encode_as(f)[..8].to_vec()).collect();
    for i in 0..3000 {
        let n = [0, 1, 7, 8, 9, 16, 64, 300, 4096][i % 9];
        let mut bytes = random_bytes(&mut r, n);
        // Every other input starts like a real file, so the format's own parser runs on it.
        if i % 2 == 1 {
            let magic = &magics[(i / 2) % magics.len()];
            let k = magic.len().min(bytes.len());
            bytes[..k].copy_from_slice(&magic[..k]);
        }
        assert!(!check(&bytes, &format!("random input {i} ({n} bytes)")), "random input {i} decoded as a model");
    }
}

#[cfg_attr(not(target_arch = "wasm32"), test)]
#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
fn mutated_files_decode_whole_or_are_refused() {
    let mut r = Stream::new(12, 0);
    const EXTREMES: [u64; 6] = [0, 1, 0x7fff_ffff, 0xffff_ffff, u64::MAX, 1 << 40];
    for format in ModelFormat::ALL {
        let good = valid().encode_as(format);
        assert!(check(&good, &format!("{format:?}: the valid file")), "{format:?}: the valid file was refused");
        let (mut accepted, mut refused) = (0, 0);
        for i in 0..2500 {
            let mut b = good.clone();
            let at = r.below(b.len() as u32) as usize;
            let kind = i % 6;
            match kind {
                0 => {
                    for _ in 0..1 + r.below(4) {
                        let k = r.below(b.len() as u32) as usize;
                        b[k] ^= 1 << r.below(8);
                    }
                }
                1 => b.truncate(at),
                2 => {
                    let n = 1 + r.below(16) as usize;
                    let extra = random_bytes(&mut r, n);
                    b.splice(at..at, extra);
                }
                3 => {
                    let end = (at + 1 + r.below(16) as usize).min(b.len());
                    b.drain(at..end);
                }
                _ => {
                    // A 4-byte (kind 4) or 8-byte (kind 5) little-endian word set to an extreme.
                    let width = if kind == 4 { 4 } else { 8 };
                    let v = EXTREMES[r.below(EXTREMES.len() as u32) as usize].to_le_bytes();
                    let at = at.min(b.len().saturating_sub(width));
                    b[at..at + width].copy_from_slice(&v[..width]);
                }
            }
            // A `.flowmatch` file ends in a CRC-32 of the rest, which refuses nearly every mutation
            // at once; every other mutation gets a fresh CRC, so the parser behind it is fuzzed too.
            if format == ModelFormat::Flowmatch && i % 2 == 1 && b.len() >= 4 {
                let body = b.len() - 4;
                let crc = crc32(&b[..body]).to_le_bytes();
                b[body..].copy_from_slice(&crc);
            }
            if check(&b, &format!("{format:?} mutation {i} (kind {kind} at byte {at})")) {
                accepted += 1;
            } else {
                refused += 1;
            }
        }
        // Both outcomes occur: a flipped bit in a weight is still a model (and must decode whole),
        // a cut header is not.
        eprintln!("{format:?}: {accepted} mutations decoded whole, {refused} refused");
        assert!(accepted > 0 && refused > 0, "{format:?}: {accepted} accepted, {refused} refused");
    }
}
