//! Saving and loading a trained model: configuration + packed parameters, bit-identical.
//!
//! Layout (all integers little-endian):
//! ```text
//! 0   8 B   magic "FLOWMTCH"
//! 8   u32   format version (1)
//! 12  u32   config length C in bytes
//! 16  C B   the configuration as a query string (`Config::to_query`)
//! ..  u32   training step
//! ..  u32   parameter count P (the packed length, padding included)
//! ..  P×f32 parameters, as their IEEE-754 bits
//! ..  u32   CRC-32 (IEEE) of every byte before it
//! ```
//! Decoding checks each part and says which one is wrong; nothing is applied on error.

use crate::config::Config;
use crate::model::ModelShape;
use crate::spec::TrainSpec;

const MAGIC: &[u8; 8] = b"FLOWMTCH";
const VERSION: u32 = 1;

#[derive(Clone, Debug, PartialEq)]
pub struct ModelFile {
    pub config: Config,
    pub step: u32,
    pub params: Vec<f32>,
}

#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum ModelFileError {
    #[error("not a flowmatch model file (it does not start with FLOWMTCH)")]
    NotAModel,
    #[error("model file format version {0} is not supported (this build reads version {VERSION})")]
    Version(u32),
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
}

impl ModelFile {
    pub fn encode(&self) -> Vec<u8> {
        let cfg = self.config.to_query();
        let mut out = Vec::with_capacity(32 + cfg.len() + 4 * self.params.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&VERSION.to_le_bytes());
        out.extend_from_slice(&(cfg.len() as u32).to_le_bytes());
        out.extend_from_slice(cfg.as_bytes());
        out.extend_from_slice(&self.step.to_le_bytes());
        out.extend_from_slice(&(self.params.len() as u32).to_le_bytes());
        for p in &self.params {
            out.extend_from_slice(&p.to_bits().to_le_bytes());
        }
        let crc = crc32(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<ModelFile, ModelFileError> {
        if bytes.len() < 8 || &bytes[..8] != MAGIC {
            return Err(ModelFileError::NotAModel);
        }
        let mut r = Reader { bytes, pos: 8 };
        let version = r.u32()?;
        if version != VERSION {
            return Err(ModelFileError::Version(version));
        }
        let clen = r.u32()? as usize;
        let cfg_bytes = r.take(clen)?;
        let step = r.u32()?;
        let count = r.u32()? as usize;
        let body = r.take(count.checked_mul(4).ok_or(ModelFileError::Truncated { expected: usize::MAX, found: bytes.len() })?)?;
        let end = r.pos;
        let crc = r.u32()?;
        if r.pos != bytes.len() {
            return Err(ModelFileError::Checksum);
        }
        if crc32(&bytes[..end]) != crc {
            return Err(ModelFileError::Checksum);
        }
        let cfg_text = std::str::from_utf8(cfg_bytes).map_err(|_| ModelFileError::Config("not UTF-8".into()))?;
        let mut config = Config::default();
        if let Some(e) = config.apply_query(cfg_text).into_iter().next() {
            return Err(ModelFileError::Config(e.to_string()));
        }
        let expected = TrainSpec::from_config(&config).shape.param_len();
        if count != expected {
            return Err(ModelFileError::ParamCount { expected, found: count });
        }
        let params: Vec<f32> = body.chunks_exact(4).map(|c| f32::from_bits(u32::from_le_bytes([c[0], c[1], c[2], c[3]]))).collect();
        if params.iter().any(|p| !p.is_finite()) {
            return Err(ModelFileError::NonFinite);
        }
        Ok(ModelFile { config, step, params })
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
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], ModelFileError> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.bytes.len());
        match end {
            Some(end) => {
                let s = &self.bytes[self.pos..end];
                self.pos = end;
                Ok(s)
            }
            None => Err(ModelFileError::Truncated { expected: self.pos.saturating_add(n), found: self.bytes.len() }),
        }
    }
    fn u32(&mut self) -> Result<u32, ModelFileError> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
}

/// CRC-32 (IEEE 802.3, reflected, polynomial 0xEDB88320).
pub fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &b in data {
        crc ^= b as u32;
        for _ in 0..8 {
            crc = (crc >> 1) ^ (0xEDB8_8320 & (crc & 1).wrapping_neg());
        }
    }
    !crc
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> ModelFile {
        let mut config = Config::default();
        config.width = 8;
        config.depth = 2;
        let shape = TrainSpec::from_config(&config).shape;
        let mut params = shape.init_params(3);
        params[0] = -0.0;
        params[1] = f32::MIN_POSITIVE / 2.0; // a subnormal survives bit for bit
        ModelFile { config, step: 1234, params }
    }

    #[test]
    fn round_trip_is_bit_identical() {
        let m = sample();
        let bytes = m.encode();
        let back = ModelFile::decode(&bytes).unwrap();
        assert_eq!(back.config, m.config);
        assert_eq!(back.step, 1234);
        let bits = |v: &[f32]| v.iter().map(|p| p.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&back.params), bits(&m.params));
        assert_eq!(back.encode(), bytes);
    }

    #[test]
    fn each_bad_file_gets_its_own_message() {
        let bytes = sample().encode();
        assert!(matches!(ModelFile::decode(&bytes[..bytes.len() - 9]), Err(ModelFileError::Truncated { .. })));
        assert!(matches!(ModelFile::decode(&bytes[..20]), Err(ModelFileError::Truncated { .. })));
        let mut flipped = bytes.clone();
        flipped[60] ^= 1;
        assert_eq!(ModelFile::decode(&flipped), Err(ModelFileError::Checksum));
        let random: Vec<u8> = (0..300u32).map(|i| (crate::rng::pcg(i) & 0xff) as u8).collect();
        assert_eq!(ModelFile::decode(&random), Err(ModelFileError::NotAModel));
        assert_eq!(ModelFile::decode(b""), Err(ModelFileError::NotAModel));
        let other = TrainSpec::from_config(&Config::default()).shape;
        let err = sample().check_shape(&other).unwrap_err().to_string();
        assert!(err.contains("width 8 × depth 2") && err.contains("width 64 × depth 3"), "{err}");
        let msgs: std::collections::HashSet<String> = [
            ModelFile::decode(&bytes[..bytes.len() - 9]).unwrap_err().to_string(),
            ModelFile::decode(&random).unwrap_err().to_string(),
            err,
        ]
        .into_iter()
        .collect();
        assert_eq!(msgs.len(), 3);
    }

    #[test]
    fn crc_matches_the_standard_check_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }
}
