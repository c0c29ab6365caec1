//! A trained model as a file: configuration, packed parameters, and the training state (Adam's
//! moments and step), in two formats that hold the same things:
//!
//! - `.flowmatch` ([`native`]): this project's binary format, CRC-checked, bit-identical.
//! - `.safetensors` ([`safetensors`]): readable by PyTorch and numpy without this project, the
//!   tensors named as `nn.Sequential(Linear, Act, …, Linear).state_dict()` names them, the
//!   configuration in the metadata (`docs/MODEL_FORMAT.md`).
//!
//! [`ModelFile::decode`] tells the formats apart by their first bytes; [`ModelFormat::from_path`]
//! picks one by extension for writing. Every size is checked against [`max_file_bytes`] before
//! anything is read or allocated (a model file can come from anywhere), and nothing is applied
//! on error: each kind of bad file gets its own message.

pub mod native;
pub mod safetensors;

use crate::config::{limits, Activation, Config};
use crate::model::ModelShape;
use crate::spec::TrainSpec;

/// A model and its training state.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelFile {
    pub config: Config,
    /// Training steps taken (the next step's number).
    pub step: u32,
    /// Packed parameters (`model.rs` layout, padding zero).
    pub params: Vec<f32>,
    /// Adam's moments, m then v, in the same packed layout (2 × `params.len()`); `None` for a
    /// file without optimizer state (a version-1 `.flowmatch`, or weights exported from elsewhere).
    pub moments: Option<Vec<f32>>,
    /// The step the learning-rate schedule counts from (`AdamHyper::schedule_start`: 0, or where
    /// the page changed the target or the learning rate); part of the optimizer state.
    pub schedule_start: u32,
}

/// Where training resumes from (see [`ModelFile::resume_state`]).
#[derive(Clone, Debug, PartialEq)]
pub struct ResumeState {
    pub step: u32,
    pub schedule_start: u32,
    /// Adam's m then v.
    pub moments: Vec<f32>,
}

/// The two file formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ModelFormat {
    Flowmatch,
    Safetensors,
}

impl ModelFormat {
    pub const ALL: [ModelFormat; 2] = [ModelFormat::Flowmatch, ModelFormat::Safetensors];

    /// The file extension, without the dot.
    pub fn extension(self) -> &'static str {
        match self {
            ModelFormat::Flowmatch => "flowmatch",
            ModelFormat::Safetensors => "safetensors",
        }
    }

    /// The format a path's extension names (case-insensitive), if any.
    pub fn from_path(path: &str) -> Option<ModelFormat> {
        let ext = path.rsplit_once('.')?.1.to_ascii_lowercase();
        Self::ALL.into_iter().find(|f| f.extension() == ext)
    }

    /// `.flowmatch or .safetensors`, for messages.
    pub fn choices() -> String {
        Self::ALL.iter().map(|f| format!(".{}", f.extension())).collect::<Vec<_>>().join(" or ")
    }
}

#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum ModelFileError {
    #[error("not a model file: it is neither a .flowmatch file (which starts with FLOWMTCH) nor safetensors")]
    NotAModel,
    #[error("model file format version {0} is not supported (this build reads versions 1 and 2)")]
    Version(u32),
    #[error("the model file is {bytes} bytes, more than the largest model this build can hold ({max} bytes)")]
    TooLarge { bytes: u64, max: u64 },
    #[error("the model file is truncated: expected {expected} bytes, found {found}")]
    Truncated { expected: usize, found: usize },
    #[error("the model file is corrupt: its checksum does not match its contents")]
    Checksum,
    #[error("the model file's configuration is invalid: {0}")]
    Config(String),
    #[error("the model file holds {found} parameters but its configuration needs {expected}")]
    ParamCount { expected: usize, found: usize },
    #[error("the model file holds a width {file_width} × depth {file_depth} {file_act} model, but the current model is width {width} × depth {depth} {act}")]
    ShapeMismatch { file_width: u32, file_depth: u32, file_act: String, width: u32, depth: u32, act: String },
    #[error("the model file contains non-finite parameters")]
    NonFinite,
    #[error("the model file's training step {step} (learning-rate schedule from step {schedule_start}) is out of range: expected steps from 0 to {max}")]
    Step { step: u32, schedule_start: u32, max: u64 },
    #[error("the safetensors file is malformed: {0}")]
    Safetensors(String),
    #[error("the safetensors metadata does not fit: {0}")]
    Metadata(String),
    #[error("the safetensors tensor '{name}' does not fit: {problem}")]
    Tensor { name: String, problem: String },
}

/// The largest parameter buffer a valid configuration can need.
pub fn max_param_len() -> usize {
    let inputs = crate::model::InputLayout { n_classes: limits::MAX_CLASSES, mean_flow: true };
    ModelShape { width: limits::MAX_WIDTH, depth: limits::MAX_DEPTH, activation: Activation::Silu, inputs }.param_len()
}

/// Headers (configuration, metadata) are at most this many bytes.
pub const MAX_HEADER_BYTES: usize = 1 << 20;

/// The largest model file worth reading: the biggest model's parameters and both Adam moments
/// (12 bytes per parameter) plus a header. Larger inputs are refused before they are read.
pub fn max_file_bytes() -> u64 {
    12 * max_param_len() as u64 + MAX_HEADER_BYTES as u64 + 64
}

impl ModelFile {
    /// A file for `config` with the given state. `moments` (m then v) may be empty for none.
    pub fn new(config: Config, step: u32, params: Vec<f32>, moments: Vec<f32>, schedule_start: u32) -> ModelFile {
        ModelFile { config, step, params, moments: (!moments.is_empty()).then_some(moments), schedule_start }
    }

    /// The network this file's configuration builds.
    pub fn shape(&self) -> ModelShape {
        TrainSpec::from_config(&self.config).shape
    }

    /// The bytes of the file in `format`.
    pub fn encode_as(&self, format: ModelFormat) -> Vec<u8> {
        match format {
            ModelFormat::Flowmatch => native::encode(self),
            ModelFormat::Safetensors => safetensors::encode(self),
        }
    }

    /// The `.flowmatch` bytes.
    pub fn encode(&self) -> Vec<u8> {
        self.encode_as(ModelFormat::Flowmatch)
    }

    /// Reads either format (told apart by the first bytes).
    pub fn decode(bytes: &[u8]) -> Result<ModelFile, ModelFileError> {
        if bytes.len() as u64 > max_file_bytes() {
            return Err(ModelFileError::TooLarge { bytes: bytes.len() as u64, max: max_file_bytes() });
        }
        if native::is_native(bytes) {
            native::decode(bytes)
        } else if safetensors::looks_like(bytes) {
            safetensors::decode(bytes)
        } else {
            Err(ModelFileError::NotAModel)
        }
    }

    /// Where training resumes from. A file with optimizer state resumes exactly (step, moments
    /// and the learning-rate schedule's start); one without restarts Adam as a new optimizer would
    /// (step 0, zero moments, the schedule from its start), since zero moments with a late step's
    /// bias correction would make the first few hundred updates about 3× too large.
    pub fn resume_state(&self) -> ResumeState {
        match &self.moments {
            Some(m) => ResumeState { step: self.step, schedule_start: self.schedule_start, moments: m.clone() },
            None => ResumeState { step: 0, schedule_start: 0, moments: vec![0.0; 2 * self.params.len()] },
        }
    }

    /// Checks the parameter and moment counts, that every value is finite, and the stored step
    /// and the schedule's start (each at most the longest run a configuration may ask for,
    /// `limits::MAX_STEPS`).
    fn check_contents(&self) -> Result<(), ModelFileError> {
        if self.step.max(self.schedule_start) as u64 > limits::MAX_STEPS {
            return Err(ModelFileError::Step { step: self.step, schedule_start: self.schedule_start, max: limits::MAX_STEPS });
        }
        let expected = self.shape().param_len();
        if self.params.len() != expected {
            return Err(ModelFileError::ParamCount { expected, found: self.params.len() });
        }
        if let Some(m) = &self.moments {
            if m.len() != 2 * expected {
                return Err(ModelFileError::ParamCount { expected: 2 * expected, found: m.len() });
            }
        }
        if self.params.iter().chain(self.moments.iter().flatten()).any(|p| !p.is_finite()) {
            return Err(ModelFileError::NonFinite);
        }
        Ok(())
    }

    /// Rejects a file whose network shape differs from `shape`.
    pub fn check_shape(&self, shape: &ModelShape) -> Result<(), ModelFileError> {
        let c = &self.config;
        if (c.width, c.depth, c.activation) != (shape.width, shape.depth, shape.activation) {
            return Err(ModelFileError::ShapeMismatch {
                file_width: c.width,
                file_depth: c.depth,
                file_act: c.activation.to_string(),
                width: shape.width,
                depth: shape.depth,
                act: shape.activation.to_string(),
            });
        }
        Ok(())
    }

    /// Reads a model file from disk, refusing one larger than [`max_file_bytes`] before reading.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn read(path: &str) -> Result<ModelFile, String> {
        use std::io::Read;
        let file = std::fs::File::open(path).map_err(|e| format!("cannot open {path}: {e}"))?;
        let len = file.metadata().map_err(|e| format!("cannot read {path}: {e}"))?.len();
        if len > max_file_bytes() {
            return Err(format!("{path}: {}", ModelFileError::TooLarge { bytes: len, max: max_file_bytes() }));
        }
        let mut bytes = Vec::with_capacity(len as usize);
        file.take(max_file_bytes() + 1).read_to_end(&mut bytes).map_err(|e| format!("cannot read {path}: {e}"))?;
        ModelFile::decode(&bytes).map_err(|e| format!("{path}: {e}"))
    }

    /// Writes the file in the format its extension names.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn write(&self, path: &str) -> Result<(), String> {
        let format = ModelFormat::from_path(path)
            .ok_or_else(|| format!("cannot tell the model format of {path}: its name must end in {}", ModelFormat::choices()))?;
        std::fs::write(path, self.encode_as(format)).map_err(|e| format!("cannot write {path}: {e}"))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A small model with optimizer state and awkward values (-0, a subnormal).
    pub fn sample() -> ModelFile {
        let config = Config { width: 8, depth: 2, activation: Activation::Gelu, sigma_min: 0.01, ..Config::default() };
        let shape = TrainSpec::from_config(&config).shape;
        let mut params = shape.init_params(3);
        params[0] = -0.0;
        params[1] = f32::MIN_POSITIVE / 2.0; // a subnormal survives bit for bit
        // Padding stays zero, as in a trainer (init_params leaves it zero).
        let moments: Vec<f32> = shape.init_params(4).into_iter().chain(shape.init_params(5)).map(|x| x.abs() * 1e-3).collect();
        ModelFile::new(config, 1234, params, moments, 1000)
    }

    pub fn bits(v: &[f32]) -> Vec<u32> {
        v.iter().map(|p| p.to_bits()).collect()
    }

    #[test]
    fn both_formats_round_trip_bit_identically() {
        let m = sample();
        for format in ModelFormat::ALL {
            let bytes = m.encode_as(format);
            let back = ModelFile::decode(&bytes).unwrap_or_else(|e| panic!("{format:?}: {e}"));
            assert_eq!(back.config, m.config, "{format:?}");
            assert_eq!((back.step, back.schedule_start), (1234, 1000));
            assert_eq!(bits(&back.params), bits(&m.params), "{format:?}");
            assert_eq!(bits(back.moments.as_ref().unwrap()), bits(m.moments.as_ref().unwrap()), "{format:?}");
            // `.flowmatch` bytes are deterministic; safetensors writes its metadata map in hash order.
            if format == ModelFormat::Flowmatch {
                assert!(back.encode_as(format) == bytes, "re-encoding changed the bytes");
            }
            // And across formats.
            let other = ModelFormat::ALL.into_iter().find(|f| *f != format).unwrap();
            assert_eq!(ModelFile::decode(&back.encode_as(other)).unwrap(), back);
        }
    }

    /// The stored step and schedule start are bounded (a file cannot claim 4 billion steps).
    #[test]
    fn the_stored_step_is_bounded() {
        for format in ModelFormat::ALL {
            for (step, start) in [(limits::MAX_STEPS as u32 + 1, 0), (u32::MAX, 5), (10, limits::MAX_STEPS as u32 + 1)] {
                let mut m = sample();
                (m.step, m.schedule_start) = (step, start);
                let e = ModelFile::decode(&m.encode_as(format)).unwrap_err();
                assert!(matches!(e, ModelFileError::Step { .. }) && e.to_string().contains("training step"), "{format:?}: {e}");
            }
            let mut m = sample();
            (m.step, m.schedule_start) = (limits::MAX_STEPS as u32, 7);
            assert_eq!(ModelFile::decode(&m.encode_as(format)).unwrap().step, limits::MAX_STEPS as u32);
        }
    }

    #[test]
    fn resume_state_without_moments_restarts_adam() {
        let mut m = sample();
        assert_eq!((m.resume_state().step, m.resume_state().schedule_start), (1234, 1000));
        m.moments = None;
        let r = m.resume_state();
        assert_eq!((r.step, r.schedule_start), (0, 0));
        assert!(r.moments.len() == 2 * m.params.len() && r.moments.iter().all(|&x| x == 0.0));
        for format in ModelFormat::ALL {
            assert_eq!(ModelFile::decode(&m.encode_as(format)).unwrap().moments, None, "{format:?}");
        }
    }

    #[test]
    fn formats_by_extension() {
        assert_eq!(ModelFormat::from_path("a/m.SafeTensors"), Some(ModelFormat::Safetensors));
        assert_eq!(ModelFormat::from_path("m.flowmatch"), Some(ModelFormat::Flowmatch));
        assert_eq!(ModelFormat::from_path("m.pt"), None);
        assert_eq!(ModelFormat::from_path("model"), None);
    }

    #[test]
    fn oversized_input_is_refused_before_parsing() {
        let max = max_file_bytes();
        // The cap holds the largest model with both moments and nothing much more.
        assert!(max >= 12 * max_param_len() as u64 && max < 13 * max_param_len() as u64);
        let big = vec![0u8; max as usize + 1];
        assert!(matches!(ModelFile::decode(&big), Err(ModelFileError::TooLarge { .. })));
    }
}
