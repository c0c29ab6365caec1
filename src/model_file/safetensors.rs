//! The `.safetensors` format: the model as PyTorch and numpy read it (`docs/MODEL_FORMAT.md`).
//!
//! Tensors (F32, little-endian, row-major), named as `state_dict()` of
//! `nn.Sequential(Linear(3, W), Act, Linear(W, W), Act, …, Linear(W, 2))` names them: linear
//! layer l is module `2l` (`ModelShape::torch_index`), so
//! ```text
//! {2l}.weight   (out, in)      {2l}.bias   (out)          for l = 0 … depth
//! adam.exp_avg.{2l}.weight, adam.exp_avg.{2l}.bias          Adam's m    } optional, all
//! adam.exp_avg_sq.{2l}.weight, adam.exp_avg_sq.{2l}.bias    Adam's v    } or none
//! adam.step     I64, shape ()  steps taken                               }
//! adam.schedule_start  I64, shape ()  the learning-rate schedule's start  } (optional: 0)
//! ```
//! Metadata (all strings): `format` = `flowmatch-mlp`, `format_version` = 1, every pair of
//! `ModelShape::describe` (inputs `x,y,t`, outputs, width, depth, activation, the PyTorch
//! activation module, the linear layers' module indices), the path-defining settings of
//! [`CONFIG_KEYS`] (path, sigma_min, source), and `config`: the whole run configuration as a
//! query string. Reading checks every stated pair against the model the configuration builds,
//! every tensor's name, dtype and shape, and refuses anything unknown: a file for another network
//! is never half-loaded. A file without `config` (written by other tools) is read from the
//! stated pairs alone (`inputs`, `width`, `depth` and `activation` are required).

use super::{max_file_bytes, ModelFile, ModelFileError, MAX_HEADER_BYTES};
use crate::config::{field, Config};
use crate::model::ModelShape;
use ::safetensors::tensor::TensorView;
use ::safetensors::{Dtype, SafeTensors};

/// `format` metadata value.
pub const FORMAT: &str = "flowmatch-mlp";
/// `format_version` metadata value.
pub const FORMAT_VERSION: &str = "1";
/// Settings stated in the metadata besides the network's shape: they say what the field means
/// (the probability path it was trained on and what t = 0 is). Names of `config::FIELDS`.
pub const CONFIG_KEYS: [&str; 3] = ["path", "sigma_min", "source"];
/// Prefix of the optional optimizer-state tensors.
const ADAM: &str = "adam.";
const STEP: &str = "adam.step";
const SCHEDULE_START: &str = "adam.schedule_start";
const MOMENTS: [&str; 2] = ["adam.exp_avg.", "adam.exp_avg_sq."];

/// True when `bytes` starts like a safetensors file: an 8-byte header length that fits, then `{`.
pub(super) fn looks_like(bytes: &[u8]) -> bool {
    header_len(bytes).is_some_and(|n| n <= MAX_HEADER_BYTES && bytes.get(8) == Some(&b'{'))
}

fn header_len(bytes: &[u8]) -> Option<usize> {
    let n = u64::from_le_bytes(bytes.get(..8)?.try_into().ok()?);
    usize::try_from(n).ok()
}

/// The tensor names and `(offset, rows, cols)` of every tensor of `shape` in the packed buffer
/// (`cols` = 0 for a bias, a vector).
fn tensors(shape: &ModelShape) -> Vec<(String, usize, usize, usize)> {
    let mut out = Vec::new();
    for (l, ll) in shape.layers().iter().enumerate() {
        let i = ModelShape::torch_index(l);
        out.push((format!("{i}.weight"), ll.w_offset as usize, ll.out_dim as usize, ll.in_dim as usize));
        out.push((format!("{i}.bias"), ll.b_offset as usize, ll.out_dim as usize, 0));
    }
    out
}

fn dims(rows: usize, cols: usize) -> Vec<usize> {
    if cols == 0 { vec![rows] } else { vec![rows, cols] }
}

/// Every metadata pair this build writes for `m`.
pub fn metadata(m: &ModelFile) -> Vec<(String, String)> {
    let mut meta = vec![("format".to_string(), FORMAT.to_string()), ("format_version".to_string(), FORMAT_VERSION.to_string())];
    meta.extend(m.shape().describe().into_iter().map(|(k, v)| (k.to_string(), v)));
    for key in CONFIG_KEYS {
        meta.push((key.to_string(), field(key).expect("a config field").get(&m.config)));
    }
    meta.push(("config".to_string(), m.config.to_query()));
    meta
}

pub(super) fn encode(m: &ModelFile) -> Vec<u8> {
    let shape = m.shape();
    let le = |v: &[f32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
    // Owned little-endian bytes of every tensor, then views over them.
    let mut owned: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = Vec::new();
    let n = m.params.len();
    let mut buffers: Vec<(&str, &[f32])> = vec![("", &m.params[..])];
    if let Some(mo) = &m.moments {
        buffers.push((MOMENTS[0], &mo[..n]));
        buffers.push((MOMENTS[1], &mo[n..]));
    }
    for (prefix, buf) in buffers {
        for (name, off, rows, cols) in tensors(&shape) {
            let len = rows * cols.max(1);
            owned.push((format!("{prefix}{name}"), Dtype::F32, dims(rows, cols), le(&buf[off..off + len])));
        }
    }
    if m.moments.is_some() {
        owned.push((STEP.to_string(), Dtype::I64, vec![], (m.step as i64).to_le_bytes().to_vec()));
        owned.push((SCHEDULE_START.to_string(), Dtype::I64, vec![], (m.schedule_start as i64).to_le_bytes().to_vec()));
    }
    let views: Vec<(String, TensorView<'_>)> = owned
        .iter()
        .map(|(name, dtype, shape, data)| (name.clone(), TensorView::new(*dtype, shape.clone(), data).expect("sizes match by construction")))
        .collect();
    ::safetensors::serialize(views, Some(metadata(m).into_iter().collect())).expect("a small header of valid tensors")
}

fn meta_err(msg: impl Into<String>) -> ModelFileError {
    ModelFileError::Metadata(msg.into())
}

fn tensor_err(name: &str, problem: impl Into<String>) -> ModelFileError {
    ModelFileError::Tensor { name: name.to_string(), problem: problem.into() }
}

pub(super) fn decode(bytes: &[u8]) -> Result<ModelFile, ModelFileError> {
    if bytes.len() as u64 > max_file_bytes() {
        return Err(ModelFileError::TooLarge { bytes: bytes.len() as u64, max: max_file_bytes() });
    }
    match header_len(bytes) {
        Some(n) if n <= MAX_HEADER_BYTES => {
            if 8 + n > bytes.len() {
                return Err(ModelFileError::Truncated { expected: 8 + n, found: bytes.len() });
            }
        }
        _ => return Err(ModelFileError::NotAModel),
    }
    let (_, header) = SafeTensors::read_metadata(bytes).map_err(|e| ModelFileError::Safetensors(e.to_string()))?;
    let st = SafeTensors::deserialize(bytes).map_err(|e| ModelFileError::Safetensors(e.to_string()))?;
    let meta: Vec<(String, String)> = header.metadata().iter().flatten().map(|(k, v)| (k.clone(), v.clone())).collect();
    let get = |key: &str| meta.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str());

    if let Some(f) = get("format") {
        if f != FORMAT {
            return Err(meta_err(format!("format is '{f}', expected '{FORMAT}'")));
        }
    }
    if let Some(v) = get("format_version") {
        if v != FORMAT_VERSION {
            return Err(meta_err(format!("format_version is '{v}'; this build reads version {FORMAT_VERSION}")));
        }
    }
    let config = config_from(&get)?;
    let shape = crate::spec::TrainSpec::from_config(&config).shape;
    // Every pair the file states about the network must be what its configuration builds.
    let required = ["inputs", "width", "depth", "activation"];
    for (key, want) in shape.describe() {
        match get(key) {
            Some(have) if have == want => {}
            Some(have) => return Err(meta_err(format!("'{key}' is '{have}' but the configuration builds '{want}'"))),
            None if required.contains(&key) => return Err(meta_err(format!("'{key}' is missing (expected '{want}')"))),
            None => {}
        }
    }
    for key in CONFIG_KEYS {
        let want = field(key).expect("a config field").get(&config);
        if let Some(have) = get(key) {
            if have != want {
                return Err(meta_err(format!("'{key}' is '{have}' but the configuration says '{want}'")));
            }
        }
    }

    let n = shape.param_len();
    let layout = tensors(&shape);
    let has_adam = st.names().iter().any(|k| k.starts_with(ADAM));
    let prefixes: &[&str] = if has_adam { &["", MOMENTS[0], MOMENTS[1]] } else { &[""] };
    let mut known: Vec<String> = Vec::new();
    let mut packed = vec![0.0f32; n * prefixes.len()];
    for (p, prefix) in prefixes.iter().enumerate() {
        for (name, off, rows, cols) in &layout {
            let full = format!("{prefix}{name}");
            let t = st.tensor(&full).map_err(|_| tensor_err(&full, "missing"))?;
            if t.dtype() != Dtype::F32 {
                return Err(tensor_err(&full, format!("its dtype is {:?}, expected F32", t.dtype())));
            }
            let want = dims(*rows, *cols);
            if t.shape() != want.as_slice() {
                return Err(tensor_err(&full, format!("its shape is {:?}, expected {want:?}", t.shape())));
            }
            let dst = &mut packed[p * n + off..p * n + off + rows * (*cols).max(1)];
            for (d, c) in dst.iter_mut().zip(t.data().chunks_exact(4)) {
                *d = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
            }
            known.push(full);
        }
    }
    let (step, schedule_start) = if has_adam {
        let step = step_scalar(&st, STEP)?.ok_or_else(|| tensor_err(STEP, "missing (the Adam moments need the step they were taken at)"))?;
        known.push(STEP.to_string());
        let start = step_scalar(&st, SCHEDULE_START)?.unwrap_or(0);
        known.push(SCHEDULE_START.to_string());
        (step, start)
    } else {
        (0, 0)
    };
    if let Some(extra) = st.names().into_iter().find(|k| !known.iter().any(|n| n == k)) {
        return Err(tensor_err(extra, format!("not part of a width {} × depth {} model (expected {})", shape.width, shape.depth, layout.iter().map(|t| t.0.as_str()).collect::<Vec<_>>().join(", "))));
    }
    let moments = has_adam.then(|| packed.split_off(n));
    let file = ModelFile { config, step, params: packed, moments, schedule_start };
    file.check_contents()?;
    Ok(file)
}

/// The step-count scalar `name` (I64, shape []), if present.
fn step_scalar(st: &SafeTensors<'_>, name: &str) -> Result<Option<u32>, ModelFileError> {
    let Ok(t) = st.tensor(name) else { return Ok(None) };
    if t.dtype() != Dtype::I64 || !t.shape().is_empty() {
        return Err(tensor_err(name, format!("it is {:?} of shape {:?}, expected an I64 scalar (shape [])", t.dtype(), t.shape())));
    }
    let s = i64::from_le_bytes(t.data().try_into().expect("8 bytes for an I64 scalar"));
    u32::try_from(s).map(Some).map_err(|_| tensor_err(name, format!("{s} is not a step count from 0 to {}", u32::MAX)))
}

/// The configuration: `config` if present (every stated pair is checked against it later), else
/// the default with the stated shape and `CONFIG_KEYS` applied.
fn config_from<'a>(get: &impl Fn(&str) -> Option<&'a str>) -> Result<Config, ModelFileError> {
    let mut config = Config::default();
    if let Some(q) = get("config") {
        if q.len() > MAX_HEADER_BYTES {
            return Err(meta_err("'config' is too long"));
        }
        if let Some(e) = config.apply_query(q).into_iter().next() {
            return Err(ModelFileError::Config(e.to_string()));
        }
        return Ok(config);
    }
    for key in ["width", "depth", "activation"].into_iter().chain(CONFIG_KEYS) {
        if let Some(v) = get(key) {
            config.set(key, v).map_err(|e| ModelFileError::Config(e.to_string()))?;
        }
    }
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::super::tests::sample;
    use super::super::ModelFormat;
    use super::*;

    /// Re-encodes `m`'s tensors with `edit` applied to the list of (name, dtype, shape, bytes)
    /// and the metadata.
    fn rewrite(
        m: &ModelFile,
        edit_tensors: impl FnOnce(&mut Vec<(String, Dtype, Vec<usize>, Vec<u8>)>),
        edit_meta: impl FnOnce(&mut Vec<(String, String)>),
    ) -> Vec<u8> {
        let bytes = m.encode_as(ModelFormat::Safetensors);
        let st = SafeTensors::deserialize(&bytes).unwrap();
        let mut t: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> =
            st.tensors().into_iter().map(|(k, v)| (k, v.dtype(), v.shape().to_vec(), v.data().to_vec())).collect();
        edit_tensors(&mut t);
        let mut meta = metadata(m);
        edit_meta(&mut meta);
        let views: Vec<(String, TensorView<'_>)> = t.iter().map(|(k, d, s, b)| (k.clone(), TensorView::new(*d, s.clone(), b).unwrap())).collect();
        ::safetensors::serialize(views, Some(meta.into_iter().collect())).unwrap()
    }

    fn err(bytes: &[u8]) -> String {
        ModelFile::decode(bytes).unwrap_err().to_string()
    }

    #[test]
    fn names_shapes_and_metadata_are_pytorchs() {
        let m = sample();
        let bytes = m.encode_as(ModelFormat::Safetensors);
        let st = SafeTensors::deserialize(&bytes).unwrap();
        assert_eq!(st.tensor("0.weight").unwrap().shape(), &[8, 3]);
        assert_eq!(st.tensor("2.weight").unwrap().shape(), &[8, 8]);
        assert_eq!(st.tensor("4.weight").unwrap().shape(), &[2, 8]);
        assert_eq!(st.tensor("4.bias").unwrap().shape(), &[2]);
        assert_eq!(st.tensor("adam.step").unwrap().shape(), &[] as &[usize]);
        assert_eq!(st.len(), 6 * 3 + 2);
        // Row-major (out, in): element (o, i) of layer 0 is params[w_offset + 3 o + i].
        let w = st.tensor("0.weight").unwrap();
        let l0 = m.shape().layers()[0];
        let at = |o: usize, i: usize| f32::from_le_bytes(w.data()[4 * (3 * o + i)..][..4].try_into().unwrap());
        assert_eq!(at(5, 2).to_bits(), m.params[l0.w_offset as usize + 3 * 5 + 2].to_bits());
        let meta: std::collections::HashMap<_, _> = metadata(&m).into_iter().collect();
        assert_eq!(meta["inputs"], "x,y,t");
        assert_eq!(meta["linear_layers"], "0,2,4");
        assert_eq!(meta["torch_activation"], "torch.nn.GELU(approximate='tanh')");
        assert_eq!((meta["width"].as_str(), meta["depth"].as_str(), meta["path"].as_str(), meta["sigma_min"].as_str()), ("8", "2", "linear", "0.01"));
    }

    #[test]
    fn weights_only_files_from_other_tools_load() {
        let mut m = sample();
        m.moments = None;
        let bytes = rewrite(&m, |_| {}, |meta| meta.retain(|(k, _)| ["inputs", "width", "depth", "activation", "sigma_min"].contains(&k.as_str())));
        let back = ModelFile::decode(&bytes).unwrap();
        assert_eq!((back.config.width, back.config.depth, back.config.activation, back.config.sigma_min), (8, 2, m.config.activation, 0.01));
        assert_eq!(back.params, m.params);
        assert_eq!((back.moments, back.step), (None, 0));
    }

    #[test]
    fn files_that_do_not_fit_are_refused_with_a_message() {
        let m = sample();
        let set = |key: &'static str, value: &'static str| {
            move |meta: &mut Vec<(String, String)>| {
                for (k, v) in meta.iter_mut() {
                    if k == key {
                        *v = value.to_string();
                    }
                }
            }
        };
        let cases: Vec<(Vec<u8>, &[&str])> = vec![
            (rewrite(&m, |_| {}, set("width", "16")), &["width", "'16'", "'8'"]),
            (rewrite(&m, |_| {}, set("inputs", "x,y")), &["inputs", "x,y,t"]),
            (rewrite(&m, |_| {}, set("path", "vp")), &["path", "vp", "linear"]),
            (rewrite(&m, |_| {}, set("format", "gguf")), &["format", "gguf"]),
            (rewrite(&m, |_| {}, set("config", "width=abc")), &["configuration", "width", "abc"]),
            (rewrite(&m, |_| {}, |meta| meta.retain(|(k, _)| k != "config" && k != "depth")), &["'depth' is missing"]),
            (rewrite(&m, |t| t.retain(|x| x.0 != "2.bias"), |_| {}), &["'2.bias'", "missing"]),
            (rewrite(&m, |t| t.retain(|x| x.0 != "adam.step"), |_| {}), &["adam.step", "missing"]),
            (rewrite(&m, |t| t.retain(|x| x.0 != "adam.exp_avg_sq.0.bias"), |_| {}), &["adam.exp_avg_sq.0.bias", "missing"]),
            (
                rewrite(&m, |t| {
                    let x = t.iter_mut().find(|x| x.0 == "0.weight").unwrap();
                    x.2 = vec![3, 8];
                }, |_| {}),
                &["'0.weight'", "[3, 8]", "[8, 3]"],
            ),
            (
                rewrite(&m, |t| {
                    let x = t.iter_mut().find(|x| x.0 == "4.bias").unwrap();
                    x.1 = Dtype::I32;
                }, |_| {}),
                &["'4.bias'", "I32", "F32"],
            ),
            (rewrite(&m, |t| t.push(("6.weight".into(), Dtype::F32, vec![1], vec![0; 4])), |_| {}), &["'6.weight'", "not part of"]),
            (
                rewrite(&m, |t| {
                    let x = t.iter_mut().find(|x| x.0 == "2.weight").unwrap();
                    x.3[0..4].copy_from_slice(&f32::NAN.to_le_bytes());
                }, |_| {}),
                &["non-finite"],
            ),
        ];
        let mut messages = std::collections::HashSet::new();
        for (bytes, needles) in &cases {
            let e = err(bytes);
            for n in *needles {
                assert!(e.contains(n), "message should mention {n}: {e}");
            }
            messages.insert(e);
        }
        assert_eq!(messages.len(), cases.len(), "every case has its own message");
        let good = m.encode_as(ModelFormat::Safetensors);
        assert!(matches!(ModelFile::decode(&good[..good.len() - 3]), Err(ModelFileError::Safetensors(_))), "{}", err(&good[..good.len() - 3]));
        assert!(matches!(ModelFile::decode(&good[..40]), Err(ModelFileError::Truncated { .. })));
        let mut huge = good.clone();
        huge[..8].copy_from_slice(&(u64::MAX / 2).to_le_bytes());
        assert_eq!(ModelFile::decode(&huge), Err(ModelFileError::NotAModel));
    }
}
