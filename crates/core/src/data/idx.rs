//! IDX files (the MNIST container), optionally gzip-compressed.
//!
//! Layout: two zero bytes, a type code (0x08 = unsigned byte, the only one MNIST-style data uses),
//! the number of dimensions, each dimension as a big-endian u32, then the values row-major.

use std::io::Read;
use std::path::Path;

use crate::error::{Error, IoContext, Result};

/// An IDX array of unsigned bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdxArray {
    /// Dimensions, outermost first (e.g. `[60000, 28, 28]`).
    pub dims: Vec<usize>,
    /// Values, row-major; `data.len()` is the product of `dims`.
    pub data: Vec<u8>,
}

/// The largest array accepted (elements), so a corrupt header cannot ask for terabytes.
pub const MAX_ELEMENTS: usize = 1 << 32;

/// Reads an IDX file; gzip is detected from its magic bytes, not from the name.
pub fn read_idx_file(path: &Path) -> Result<IdxArray> {
    let bytes = std::fs::read(path).with_path(path)?;
    parse_idx(&bytes).map_err(|reason| Error::Idx { path: path.to_path_buf(), reason })
}

/// Parses IDX bytes (plain or gzip); the error is a human-readable reason.
pub fn parse_idx(bytes: &[u8]) -> std::result::Result<IdxArray, String> {
    if bytes.starts_with(&[0x1f, 0x8b]) {
        let mut dec = flate2::read::GzDecoder::new(bytes);
        let mut head = [0u8; 4];
        dec.read_exact(&mut head).map_err(|e| format!("gzip: {e}"))?;
        let ndim = check_magic(&head)?;
        let mut dims_raw = vec![0u8; 4 * ndim];
        dec.read_exact(&mut dims_raw).map_err(|e| format!("gzip: {e}"))?;
        let dims = parse_dims(&dims_raw)?;
        let n: usize = dims.iter().product();
        let mut data = Vec::with_capacity(n.min(1 << 28));
        // One byte more than needed, to notice trailing garbage.
        (&mut dec).take(n as u64 + 1).read_to_end(&mut data).map_err(|e| format!("gzip: {e}"))?;
        finish(dims, data, n)
    } else {
        if bytes.len() < 4 {
            return Err(format!("{} bytes is too short for an IDX header", bytes.len()));
        }
        let ndim = check_magic(&bytes[..4])?;
        let header = 4 + 4 * ndim;
        if bytes.len() < header {
            return Err("truncated header".into());
        }
        let dims = parse_dims(&bytes[4..header])?;
        let n: usize = dims.iter().product();
        finish(dims, bytes[header..].to_vec(), n)
    }
}

fn check_magic(head: &[u8]) -> std::result::Result<usize, String> {
    if head[0] != 0 || head[1] != 0 {
        return Err(format!("bad magic {:02x}{:02x} (expected 0000)", head[0], head[1]));
    }
    if head[2] != 0x08 {
        return Err(format!("element type 0x{:02x} is not supported (only 0x08, unsigned byte)", head[2]));
    }
    let ndim = head[3] as usize;
    if ndim == 0 || ndim > 4 {
        return Err(format!("{ndim} dimensions (expected 1 to 4)"));
    }
    Ok(ndim)
}

fn parse_dims(raw: &[u8]) -> std::result::Result<Vec<usize>, String> {
    let dims: Vec<usize> = raw.chunks_exact(4).map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]) as usize).collect();
    let mut n: usize = 1;
    for &d in &dims {
        n = n.checked_mul(d).filter(|&n| n <= MAX_ELEMENTS).ok_or("declared size is too large")?;
    }
    Ok(dims)
}

fn finish(dims: Vec<usize>, data: Vec<u8>, n: usize) -> std::result::Result<IdxArray, String> {
    match data.len().cmp(&n) {
        std::cmp::Ordering::Less => Err(format!("truncated: header declares {n} values, file has {}", data.len())),
        std::cmp::Ordering::Greater => Err(format!("trailing data after the {n} declared values")),
        std::cmp::Ordering::Equal => Ok(IdxArray { dims, data }),
    }
}

#[cfg(test)]
pub(crate) fn encode_idx(dims: &[u32], data: &[u8]) -> Vec<u8> {
    let mut out = vec![0, 0, 0x08, dims.len() as u8];
    for d in dims {
        out.extend_from_slice(&d.to_be_bytes());
    }
    out.extend_from_slice(data);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gz(bytes: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(bytes).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn reads_plain_and_gzip() {
        let raw = encode_idx(&[2, 3], &[1, 2, 3, 4, 5, 6]);
        let want = IdxArray { dims: vec![2, 3], data: vec![1, 2, 3, 4, 5, 6] };
        assert_eq!(parse_idx(&raw).unwrap(), want);
        assert_eq!(parse_idx(&gz(&raw)).unwrap(), want);
    }

    #[test]
    fn rejects_corrupt_files() {
        let raw = encode_idx(&[2, 3], &[1, 2, 3, 4, 5, 6]);
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (raw[..raw.len() - 1].to_vec(), "truncated"),
            ([raw.clone(), vec![9]].concat(), "trailing"),
            (vec![1, 0, 8, 1], "magic"),
            (vec![0, 0, 0x0d, 1, 0, 0, 0, 1, 0, 0, 0, 0], "not supported"),
            (encode_idx(&[u32::MAX, u32::MAX], &[]), "too large"),
            (vec![0, 0], "too short"),
            (gz(&raw)[..20].to_vec(), "gzip"),
        ];
        for (bytes, want) in cases {
            let err = parse_idx(&bytes).unwrap_err();
            assert!(err.contains(want), "expected '{want}' in '{err}'");
        }
    }
}
