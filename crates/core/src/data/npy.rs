//! Little-endian `f32` arrays as NumPy `.npy` files (format version 1.0): written so check
//! scripts read exactly what the Rust side computed, and read back (`stabilize embed`'s shards).

use std::path::Path;

use crate::error::{Error, Result};
use crate::fsutil::write_atomic;

/// The bytes of a `.npy` file holding `values` with `shape` (C order).
pub fn npy_bytes(values: &[f32], shape: &[usize]) -> Result<Vec<u8>> {
    if shape.iter().product::<usize>() != values.len() {
        return Err(Error::Invalid(format!("npy: shape {shape:?} does not hold {} values", values.len())));
    }
    let dims = match shape {
        [one] => format!("({one},)"),
        _ => format!("({})", shape.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", ")),
    };
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {dims}, }}");
    // Magic (6) + version (2) + header length (2) + header + '\n', padded to a multiple of 64.
    let unpadded = 10 + header.len() + 1;
    header.push_str(&" ".repeat(unpadded.div_ceil(64) * 64 - unpadded));
    header.push('\n');
    let mut out = Vec::with_capacity(10 + header.len() + 4 * values.len());
    out.extend_from_slice(b"\x93NUMPY\x01\x00");
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    for v in values {
        out.extend_from_slice(&v.to_le_bytes());
    }
    Ok(out)
}

/// Writes a `.npy` file atomically.
pub fn write_npy(path: &Path, values: &[f32], shape: &[usize]) -> Result<()> {
    write_atomic(path, &npy_bytes(values, shape)?)
}

/// Reads a C-order little-endian `f32` `.npy` file (versions 1–3): its shape and values. Any
/// other dtype, Fortran order, a malformed header or a file shorter or longer than its shape says
/// is a one-line error naming the file.
pub fn read_npy_f32(path: &Path) -> Result<(Vec<usize>, Vec<f32>)> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let bad = |why: String| Error::Invalid(format!("{}: {why}", path.display()));
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return Err(bad("not a .npy file".into()));
    }
    let (hlen, start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 if bytes.len() >= 12 => (u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize, 12),
        v => return Err(bad(format!("unsupported .npy version {v}"))),
    };
    let header = bytes
        .get(start..start + hlen)
        .and_then(|h| std::str::from_utf8(h).ok())
        .ok_or_else(|| bad("truncated header".into()))?;
    let field = |key: &str| -> Option<&str> {
        let at = header.find(&format!("'{key}'"))? + key.len() + 2;
        Some(header[at..].trim_start().strip_prefix(':')?.trim_start())
    };
    let descr = field("descr").ok_or_else(|| bad("no descr in the header".into()))?;
    if !(descr.starts_with("'<f4'") || descr.starts_with("'float32'")) {
        return Err(bad(format!(
            "dtype {} (expected little-endian float32 '<f4')",
            descr.split(',').next().unwrap_or("")
        )));
    }
    if field("fortran_order").is_some_and(|f| f.starts_with("True")) {
        return Err(bad("Fortran order (expected C order)".into()));
    }
    let shape_text = field("shape")
        .and_then(|s| s.strip_prefix('('))
        .and_then(|s| s.split(')').next())
        .ok_or_else(|| bad("no shape in the header".into()))?;
    let shape: Vec<usize> = shape_text
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .map(|d| d.parse().map_err(|_| bad(format!("bad shape ({shape_text})"))))
        .collect::<Result<_>>()?;
    let count: usize = shape.iter().product();
    let data = &bytes[start + hlen..];
    if data.len() != 4 * count {
        return Err(bad(format!(
            "{} bytes of data for shape {shape:?} ({} expected): truncated or damaged",
            data.len(),
            4 * count
        )));
    }
    Ok((shape, data.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_is_aligned_and_data_follows() {
        let b = npy_bytes(&[1.0, -2.5, 0.0, 4.0, 5.0, 6.0], &[2, 3]).unwrap();
        assert_eq!(&b[..8], b"\x93NUMPY\x01\x00");
        let hlen = u16::from_le_bytes([b[8], b[9]]) as usize;
        assert_eq!((10 + hlen) % 64, 0);
        let header = std::str::from_utf8(&b[10..10 + hlen]).unwrap();
        assert!(header.starts_with("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }"));
        assert!(header.ends_with('\n'));
        assert_eq!(&b[10 + hlen..10 + hlen + 8], &[0, 0, 128, 63, 0, 0, 32, 192]);
        assert_eq!(b.len(), 10 + hlen + 24);
        assert!(npy_bytes(&[1.0], &[2]).is_err());
        assert!(String::from_utf8_lossy(&npy_bytes(&[1.0], &[1]).unwrap()).contains("(1,)"));
    }

    #[test]
    fn what_is_written_reads_back_and_damage_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.npy");
        let v = [1.0f32, -2.5, 0.0, 4.0, 5.0, 6.0];
        write_npy(&p, &v, &[3, 2]).unwrap();
        assert_eq!(read_npy_f32(&p).unwrap(), (vec![3, 2], v.to_vec()));
        let bytes = std::fs::read(&p).unwrap();
        std::fs::write(&p, &bytes[..bytes.len() - 3]).unwrap();
        assert!(read_npy_f32(&p).unwrap_err().to_string().contains("truncated"));
        std::fs::write(&p, String::from_utf8_lossy(&bytes).replace("<f4", "<f8").as_bytes()).unwrap();
        assert!(read_npy_f32(&p).is_err());
        std::fs::write(&p, b"not numpy").unwrap();
        assert!(read_npy_f32(&p).unwrap_err().to_string().contains("not a .npy"));
    }
}
