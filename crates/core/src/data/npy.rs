//! Writing little-endian `f32` arrays as NumPy `.npy` files (format version 1.0), so check
//! scripts can read exactly what the Rust side computed.

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
}
