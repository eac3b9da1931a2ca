//! File-system helpers: atomic writes and checksums.

use std::fs;
use std::io::{Read, Write};
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::error::{Error, IoContext, Result};

/// Writes `bytes` to `path` atomically: a temporary file in the same directory, fsync, rename.
/// A crash or error at any point leaves either the old file or none, never a partial one.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic_with(path, |f| f.write_all(bytes))
}

/// Like [`write_atomic`], with a writer callback (for streaming large outputs).
pub fn write_atomic_with(path: &Path, write: impl FnOnce(&mut fs::File) -> std::io::Result<()>) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    if !dir.is_dir() {
        return Err(Error::io(
            dir,
            std::io::Error::new(std::io::ErrorKind::NotFound, "output directory does not exist"),
        ));
    }
    let mut tmp = tempfile::Builder::new().prefix(".stabilize-").suffix(".tmp").tempfile_in(dir).with_path(dir)?;
    write(tmp.as_file_mut()).with_path(path)?;
    // Temporary files are created 0600; outputs are ordinary files (rw-r--r--).
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        tmp.as_file().set_permissions(fs::Permissions::from_mode(0o644)).with_path(path)?;
    }
    tmp.as_file().sync_all().with_path(path)?;
    tmp.persist(path).map_err(|e| Error::io(path, e.error))?;
    // Persist the rename itself (best effort: not every file system supports fsync on directories).
    if let Ok(d) = fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Lower-case hex sha256 of a file's contents, streamed.
pub fn sha256_file(path: &Path) -> Result<String> {
    let mut file = fs::File::open(path).with_path(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = file.read(&mut buf).with_path(path)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}

/// Lower-case hex sha256 of bytes.
pub fn sha256_bytes(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Checks that `dir` exists (creating it if needed) and is writable, by creating and removing a
/// probe file. Call before long work so an unwritable output fails at once, not hours later.
pub fn ensure_writable_dir(dir: &Path) -> Result<()> {
    fs::create_dir_all(dir).with_path(dir)?;
    let probe = tempfile::Builder::new().prefix(".stabilize-probe-").tempfile_in(dir).with_path(dir)?;
    drop(probe);
    Ok(())
}

/// Bytes available to this user on the file system holding `dir` (`statvfs`), if the OS says.
pub fn available_space(dir: &Path) -> Option<u64> {
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        let c = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
        let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
        // SAFETY: `c` is a valid NUL-terminated path and `st` a properly sized out-parameter.
        if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
            return None;
        }
        Some(st.f_bavail as u64 * st.f_frsize as u64)
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        None
    }
}

/// Fails at once, with a clear message, when the file system holding `dir` has fewer than `need`
/// bytes free for `what`: a full disk is found before hours of work, not after.
pub fn ensure_space(dir: &Path, need: u64, what: &str) -> Result<()> {
    match available_space(dir) {
        Some(free) if free < need => Err(Error::Invalid(format!(
            "{}: only {} free, {what} needs about {}; free some space or choose another --out",
            dir.display(),
            human_bytes(free),
            human_bytes(need)
        ))),
        _ => Ok(()),
    }
}

/// `1.5 MiB`-style sizes.
pub fn human_bytes(n: u64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < units.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 { format!("{n} B") } else { format!("{v:.1} {}", units[u]) }
}

/// A path as text that names it exactly, for output a script acts on (`dupes`' JSON/CSV, the
/// move manifest, `embed`'s paths.txt): the path's bytes with `\\` written `\\\\`, and each byte
/// that is an ASCII control character (a line break, a tab) or not part of valid UTF-8 written
/// `\\xNN` (two lower-case hex digits). A UTF-8 path without a backslash or control character,
/// nearly every path, is its own text; [`text_path`] reads any of them back byte for byte.
pub fn path_text(path: &Path) -> String {
    let bytes = path_bytes(path);
    let mut out = String::with_capacity(bytes.len());
    let hex = |out: &mut String, b: u8| out.push_str(&format!("\\x{b:02x}"));
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                c if c.is_ascii_control() => hex(&mut out, c as u8),
                c => out.push(c),
            }
        }
        for &b in chunk.invalid() {
            hex(&mut out, b);
        }
    }
    out
}

/// The path [`path_text`] wrote as `text`; an error names a malformed escape (a lone `\\`, or
/// `\\x` without two hex digits).
pub fn text_path(text: &str) -> std::result::Result<std::path::PathBuf, String> {
    if !text.contains('\\') {
        return Ok(std::path::PathBuf::from(text));
    }
    let bad = || format!("{text:?}: a malformed escape (paths write a backslash as \\\\ and other bytes as \\xNN)");
    let mut bytes = Vec::with_capacity(text.len());
    let mut rest = text.as_bytes();
    while let Some((&b, tail)) = rest.split_first() {
        rest = tail;
        if b != b'\\' {
            bytes.push(b);
            continue;
        }
        match rest {
            [b'\\', tail @ ..] => {
                bytes.push(b'\\');
                rest = tail;
            }
            [b'x', h, l, tail @ ..] => {
                let digit = |d: u8| (d as char).to_digit(16).map(|v| v as u8);
                bytes.push(digit(*h).zip(digit(*l)).map(|(h, l)| h << 4 | l).ok_or_else(bad)?);
                rest = tail;
            }
            _ => return Err(bad()),
        }
    }
    path_from_bytes(bytes).ok_or_else(|| format!("{text:?}: not a path on this system (not UTF-8)"))
}

/// Like [`text_path`] for a `String` known to come from [`path_text`] (a search's own output); a
/// malformed one is taken as written.
pub fn text_path_or_same(text: &str) -> std::path::PathBuf {
    text_path(text).unwrap_or_else(|_| std::path::PathBuf::from(text))
}

#[cfg(unix)]
fn path_bytes(path: &Path) -> std::borrow::Cow<'_, [u8]> {
    use std::os::unix::ffi::OsStrExt;
    std::borrow::Cow::Borrowed(path.as_os_str().as_bytes())
}

#[cfg(not(unix))]
fn path_bytes(path: &Path) -> std::borrow::Cow<'_, [u8]> {
    match path.to_string_lossy() {
        std::borrow::Cow::Borrowed(s) => std::borrow::Cow::Borrowed(s.as_bytes()),
        std::borrow::Cow::Owned(s) => std::borrow::Cow::Owned(s.into_bytes()),
    }
}

#[cfg(unix)]
fn path_from_bytes(bytes: Vec<u8>) -> Option<std::path::PathBuf> {
    use std::os::unix::ffi::OsStringExt;
    Some(std::path::PathBuf::from(std::ffi::OsString::from_vec(bytes)))
}

#[cfg(not(unix))]
fn path_from_bytes(bytes: Vec<u8>) -> Option<std::path::PathBuf> {
    String::from_utf8(bytes).ok().map(std::path::PathBuf::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_and_leaves_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.bin");
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        let names: Vec<_> = fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names.len(), 1, "temp files left behind: {names:?}");
    }

    #[test]
    fn atomic_write_to_missing_dir_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let err = write_atomic(&dir.path().join("no/such/dir/x"), b"x").unwrap_err();
        assert!(err.to_string().contains("does not exist"), "{err}");
    }

    #[test]
    fn space_check_passes_with_room_and_names_the_shortfall() {
        let dir = tempfile::tempdir().unwrap();
        assert!(available_space(dir.path()).unwrap() > 0);
        ensure_space(dir.path(), 1, "a test").unwrap();
        let err = ensure_space(dir.path(), u64::MAX, "a test").unwrap_err().to_string();
        assert!(err.contains("only ") && err.contains("a test needs about 16777216.0 TiB"), "{err}");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(12), "12 B");
    }

    #[test]
    fn sha256_known_answer() {
        // sha256("abc") from FIPS 180-2.
        assert_eq!(sha256_bytes(b"abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("abc");
        fs::write(&p, b"abc").unwrap();
        assert_eq!(sha256_file(&p).unwrap(), sha256_bytes(b"abc"));
    }

    #[test]
    fn path_text_is_the_path_when_plain_and_round_trips_every_byte() {
        use std::path::PathBuf;
        assert_eq!(path_text(Path::new("photos/été 2020/a.jpg")), "photos/été 2020/a.jpg");
        assert_eq!(path_text(Path::new("a\\b\nc\td")), "a\\\\b\\x0ac\\x09d");
        assert_eq!(text_path("a\\\\b\\x0ac\\x09d").unwrap(), PathBuf::from("a\\b\nc\td"));
        // A literal "\x41" in a name is escaped, so it does not read back as "A".
        assert_eq!(text_path(&path_text(Path::new("\\x41"))).unwrap(), PathBuf::from("\\x41"));
        for bad in ["a\\", "a\\q", "a\\x4", "a\\xzz"] {
            assert!(text_path(bad).unwrap_err().contains("malformed"), "{bad}");
        }
        #[cfg(unix)]
        {
            use std::os::unix::ffi::OsStrExt;
            let raw = std::ffi::OsStr::from_bytes(b"bad\xff\xfename\xc3.png");
            let text = path_text(Path::new(raw));
            assert_eq!(text, "bad\\xff\\xfename\\xc3.png");
            assert_eq!(text_path(&text).unwrap().as_os_str(), raw);
            // Every byte value but NUL (no path holds one), alone and after a UTF-8 lead byte.
            for b in 1..=255u8 {
                for name in [vec![b'x', b], vec![0xe2, b, b'y']] {
                    let p = Path::new(std::ffi::OsStr::from_bytes(&name));
                    assert_eq!(text_path(&path_text(p)).unwrap(), p, "{name:?}");
                }
            }
        }
    }
}
