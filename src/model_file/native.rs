//! The `.flowmatch` format: configuration + packed parameters (+ Adam state), bit-identical.
//!
//! Layout (all integers little-endian):
//! ```text
//! 0   8 B   magic "FLOWMTCH"
//! 8   u32   format version (2; version 1 files still load)
//! 12  u32   config length C in bytes (at most MAX_HEADER_BYTES)
//! 16  C B   the configuration as a query string (`Config::to_query`)
//! ..  u32   training step
//! ..  u32   parameter count P (the packed length, padding included)
//! ..  P×f32 parameters, as their IEEE-754 bits
//! ..  u32   optimizer state: 0 none, 1 Adam         (version 2 only)
//! ..  u32   the learning-rate schedule's start step  (version 2, state 1 only)
//! ..  2P×f32 Adam m then v, packed like the parameters (version 2, state 1 only)
//! ..  u32   CRC-32 (IEEE) of every byte before it
//! ```
//! Decoding checks each part and says which one is wrong; nothing is applied on error.

use super::{max_param_len, ModelFile, ModelFileError, MAX_HEADER_BYTES};
use crate::config::Config;

const MAGIC: &[u8; 8] = b"FLOWMTCH";
const VERSION: u32 = 2;
/// Optimizer-state tags of version 2.
const NO_STATE: u32 = 0;
const ADAM_STATE: u32 = 1;

pub(super) fn is_native(bytes: &[u8]) -> bool {
    bytes.len() >= 8 && &bytes[..8] == MAGIC
}

pub(super) fn encode(m: &ModelFile) -> Vec<u8> {
    let cfg = m.config.to_query();
    let moments = m.moments.as_deref().unwrap_or(&[]);
    let mut out = Vec::with_capacity(40 + cfg.len() + 4 * (m.params.len() + moments.len()));
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&(cfg.len() as u32).to_le_bytes());
    out.extend_from_slice(cfg.as_bytes());
    out.extend_from_slice(&m.step.to_le_bytes());
    out.extend_from_slice(&(m.params.len() as u32).to_le_bytes());
    put_floats(&mut out, &m.params);
    out.extend_from_slice(&(if m.moments.is_some() { ADAM_STATE } else { NO_STATE }).to_le_bytes());
    if m.moments.is_some() {
        out.extend_from_slice(&m.schedule_start.to_le_bytes());
    }
    put_floats(&mut out, moments);
    let crc = crc32(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

fn put_floats(out: &mut Vec<u8>, v: &[f32]) {
    for p in v {
        out.extend_from_slice(&p.to_bits().to_le_bytes());
    }
}

fn floats(bytes: &[u8]) -> Vec<f32> {
    bytes.chunks_exact(4).map(|c| f32::from_bits(u32::from_le_bytes([c[0], c[1], c[2], c[3]]))).collect()
}

pub(super) fn decode(bytes: &[u8]) -> Result<ModelFile, ModelFileError> {
    if !is_native(bytes) {
        return Err(ModelFileError::NotAModel);
    }
    let mut r = Reader { bytes, pos: 8 };
    let version = r.u32()?;
    if !(1..=VERSION).contains(&version) {
        return Err(ModelFileError::Version(version));
    }
    let clen = r.u32()? as usize;
    if clen > MAX_HEADER_BYTES {
        return Err(ModelFileError::Config(format!("its length {clen} bytes is over the limit of {MAX_HEADER_BYTES}")));
    }
    let cfg_bytes = r.take(clen)?;
    let step = r.u32()?;
    let count = r.u32()? as usize;
    if count > max_param_len() {
        return Err(ModelFileError::ParamCount { expected: max_param_len(), found: count });
    }
    let body = r.take(4 * count)?;
    let mut schedule_start = 0;
    let moments_body = if version >= 2 {
        match r.u32()? {
            NO_STATE => None,
            ADAM_STATE => {
                schedule_start = r.u32()?;
                Some(r.take(8 * count)?)
            }
            other => return Err(ModelFileError::Config(format!("unknown optimizer-state tag {other} (expected 0 or 1)"))),
        }
    } else {
        None
    };
    let end = r.pos;
    let crc = r.u32()?;
    if r.pos != bytes.len() || crc32(&bytes[..end]) != crc {
        return Err(ModelFileError::Checksum);
    }
    let cfg_text = std::str::from_utf8(cfg_bytes).map_err(|_| ModelFileError::Config("not UTF-8".into()))?;
    let mut config = Config::default();
    if let Some(e) = config.apply_query(cfg_text).into_iter().next() {
        return Err(ModelFileError::Config(e.to_string()));
    }
    let file = ModelFile { config, step, params: floats(body), moments: moments_body.map(floats), schedule_start };
    file.check_contents()?;
    Ok(file)
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
    use super::super::tests::{bits, sample};
    use super::*;
    use crate::spec::TrainSpec;

    /// A version-1 file as the previous build wrote it: no optimizer-state tag.
    fn encode_v1(m: &ModelFile) -> Vec<u8> {
        let cfg = m.config.to_query();
        let mut out = MAGIC.to_vec();
        out.extend_from_slice(&1u32.to_le_bytes());
        out.extend_from_slice(&(cfg.len() as u32).to_le_bytes());
        out.extend_from_slice(cfg.as_bytes());
        out.extend_from_slice(&m.step.to_le_bytes());
        out.extend_from_slice(&(m.params.len() as u32).to_le_bytes());
        put_floats(&mut out, &m.params);
        let crc = crc32(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        out
    }

    #[test]
    fn version_1_files_still_load() {
        let m = sample();
        let back = decode(&encode_v1(&m)).unwrap();
        assert_eq!((back.config.clone(), back.step, bits(&back.params)), (m.config.clone(), m.step, bits(&m.params)));
        assert_eq!(back.moments, None);
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
        let mut v9 = bytes.clone();
        v9[8] = 9;
        assert_eq!(ModelFile::decode(&v9), Err(ModelFileError::Version(9)));
        // A huge declared config length is refused without reading on.
        let mut huge = bytes.clone();
        huge[12..16].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(ModelFile::decode(&huge), Err(ModelFileError::Config(_))));
        let other = TrainSpec::from_config(&Config::default()).shape;
        let err = sample().check_shape(&other).unwrap_err().to_string();
        assert!(err.contains("width 8 × depth 2") && err.contains("width 64 × depth 3"), "{err}");
        let msgs: std::collections::HashSet<String> = [
            ModelFile::decode(&bytes[..bytes.len() - 9]).unwrap_err().to_string(),
            ModelFile::decode(&random).unwrap_err().to_string(),
            ModelFile::decode(&flipped).unwrap_err().to_string(),
            err,
        ]
        .into_iter()
        .collect();
        assert_eq!(msgs.len(), 4);
    }

    #[test]
    fn crc_matches_the_standard_check_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }
}
