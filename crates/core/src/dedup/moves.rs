//! Acting on a search, safely: [`move_files`] moves files into a folder under their relative
//! paths and lists each in a manifest there *before* touching it; [`undo`] puts them back.
//!
//! Guarantees (tested by killing a move half way, `crates/cli/tests/cli.rs`):
//! - nothing is overwritten: a file is placed by a hard link, which fails if the name exists
//!   (a rename after a check where links are not supported);
//! - across file systems a file is copied to a temporary name beside its target, fsynced, given
//!   the source's modification time, linked into place, and only then is the source removed;
//! - a run killed at any point leaves each file in place, or moved and listed in the manifest, or
//!   both (a finished copy whose source was not yet removed); [`undo`] reads the files' state, not
//!   a log of what finished, so it handles each case and can itself be killed and re-run.
//!
//! The manifest, `DIR/`[`MANIFEST`], is JSON lines, one [`MoveEntry`] per file, paths written by
//! [`path_text`] (exact for any name). Runs into the same folder append to it.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::fsutil::{path_text, sha256_file, text_path};

/// The manifest's file name inside the destination folder.
pub const MANIFEST: &str = "stabilize-moves.jsonl";
/// Prefix of the temporary copies made across file systems (swept by [`undo`]).
const PARTIAL_PREFIX: &str = ".stabilize-partial-";

/// One moved file: where it was (absolute), where it went (relative to the destination folder),
/// and the file its cluster kept.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MoveEntry {
    pub from: String,
    pub to: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub keep: String,
}

/// A file that was left where it was, and why.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct NotMoved {
    pub path: String,
    pub reason: String,
}

/// What [`move_files`] did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct MoveReport {
    pub dir: String,
    pub moved: usize,
    /// Of them, copied across file systems.
    pub copied: usize,
    pub not_moved: Vec<NotMoved>,
}

/// What [`undo`] did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct UndoReport {
    pub restored: usize,
    /// Listed but already in place (a move killed before it happened, or a finished copy whose
    /// source had not been removed: the copy is removed).
    pub in_place: usize,
    /// Entries that could not be resolved; they stay in the manifest.
    pub left: Vec<NotMoved>,
    /// Whether the manifest is gone (everything resolved).
    pub manifest_removed: bool,
}

/// Errors that stop a move or an undo as a whole (one file's trouble is a [`NotMoved`]).
#[derive(Debug, thiserror::Error)]
pub enum MoveError {
    #[error("{0}")]
    Io(#[from] crate::Error),
    #[error("{path}: no {MANIFEST} here; nothing to undo")]
    NoManifest { path: PathBuf },
    #[error("{path} line {line}: {why}")]
    Manifest { path: PathBuf, line: usize, why: String },
}

/// The deepest folder holding every root (a file root counts by its folder), absolute. Files
/// found under the roots are moved under their path relative to it.
pub fn common_base(roots: &[PathBuf]) -> PathBuf {
    let dirs: Vec<PathBuf> = roots
        .iter()
        .map(|r| {
            let abs = std::path::absolute(r).unwrap_or_else(|_| r.clone());
            if abs.is_dir() { abs } else { abs.parent().map(Path::to_path_buf).unwrap_or(abs) }
        })
        .collect();
    let Some(first) = dirs.first() else { return PathBuf::from("/") };
    let mut base = first.clone();
    while !dirs.iter().all(|d| d.starts_with(&base)) {
        if !base.pop() {
            break;
        }
    }
    base
}

/// Moves each `(file, keep)` of `files` into `dir` under its path relative to `base`
/// ([`common_base`] of the searched roots; a file outside it goes under its absolute path), in
/// order, never overwriting, listing each in `dir/`[`MANIFEST`] before it is touched. `pause`
/// runs between the steps of each file (a test's hook to kill a run half way; `|| {}` otherwise)
/// and `progress` after each file.
pub fn move_files(
    files: &[(PathBuf, String)],
    base: &Path,
    dir: &Path,
    pause: &dyn Fn(),
    progress: &dyn Fn(),
) -> Result<MoveReport, MoveError> {
    fs::create_dir_all(dir).map_err(|e| crate::Error::io(dir, e))?;
    let manifest_path = dir.join(MANIFEST);
    let mut manifest = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&manifest_path)
        .map_err(|e| crate::Error::io(&manifest_path, e))?;
    let mut report = MoveReport { dir: path_text(dir), ..Default::default() };
    for (file, keep) in files {
        let from = std::path::absolute(file).unwrap_or_else(|_| file.clone());
        let rel = relative_under(&from, base);
        let to = dir.join(&rel);
        let not_moved = |reason: String| NotMoved { path: path_text(&from), reason };
        let outcome = (|| -> Result<bool, String> {
            let meta = fs::symlink_metadata(&from).map_err(|e| e.to_string())?;
            if meta.file_type().is_symlink() {
                return Err("a symbolic link (moving it would not move the picture)".into());
            }
            if fs::symlink_metadata(&to).is_ok() {
                return Err(format!("{} exists; nothing is overwritten", path_text(&to)));
            }
            if let Some(parent) = to.parent() {
                fs::create_dir_all(parent).map_err(|e| e.to_string())?;
            }
            let entry = MoveEntry { from: path_text(&from), to: path_text(&rel), keep: keep.clone() };
            let line = serde_json::to_string(&entry).expect("entries serialise") + "\n";
            manifest
                .write_all(line.as_bytes())
                .and_then(|_| manifest.sync_data())
                .map_err(|e| format!("writing {}: {e} (the file was not touched)", path_text(&manifest_path)))?;
            pause();
            relocate(&from, &to, pause)
        })();
        match outcome {
            Ok(copied) => {
                report.moved += 1;
                report.copied += copied as usize;
            }
            Err(reason) => report.not_moved.push(not_moved(reason)),
        }
        progress();
    }
    Ok(report)
}

/// `from`'s path under `base`, or its absolute path without the root when it is not under it.
fn relative_under(from: &Path, base: &Path) -> PathBuf {
    match from.strip_prefix(base) {
        Ok(rel) if !rel.as_os_str().is_empty() => rel.to_path_buf(),
        _ => from.components().filter(|c| matches!(c, std::path::Component::Normal(_))).collect(),
    }
}

/// Puts `from` at `to` (which must not exist) and removes `from`: a hard link where the two share
/// a file system, else a copy beside `to` that is fsynced and linked into place. Returns whether
/// it copied. `from` is removed only once `to` holds the whole file.
fn relocate(from: &Path, to: &Path, pause: &dyn Fn()) -> Result<bool, String> {
    let copied = match fs::hard_link(from, to) {
        Ok(()) => false,
        Err(e) if e.kind() == std::io::ErrorKind::CrossesDevices => {
            copy_into_place(from, to, pause)?;
            true
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Err(format!("{}: {e}", path_text(to))),
        // No hard links on this file system (FAT, some network ones): a rename, checked first
        // so nothing is replaced; it moves the file in one step.
        Err(_) if fs::symlink_metadata(to).is_err() => {
            fs::rename(from, to).map_err(|e| e.to_string())?;
            sync_parent(to);
            sync_parent(from);
            return Ok(false);
        }
        Err(e) => return Err(e.to_string()),
    };
    sync_parent(to);
    pause();
    fs::remove_file(from).map_err(|e| format!("placed at {} but not removed: {e}", path_text(to)))?;
    sync_parent(from);
    Ok(copied)
}

/// Copies `from` to a temporary file beside `to`, fsyncs it, gives it `from`'s permissions and
/// modification time, and links it to `to` (never replacing it).
fn copy_into_place(from: &Path, to: &Path, pause: &dyn Fn()) -> Result<(), String> {
    let parent = to.parent().unwrap_or(Path::new("."));
    let name = to.file_name().map(path_text_os).unwrap_or_default();
    let tmp = parent.join(format!("{PARTIAL_PREFIX}{}-{name}", std::process::id()));
    let result = (|| -> std::io::Result<()> {
        let mut src = fs::File::open(from)?;
        let meta = src.metadata()?;
        let mut dst = fs::OpenOptions::new().write(true).create_new(true).open(&tmp)?;
        std::io::copy(&mut src, &mut dst)?;
        dst.set_permissions(meta.permissions())?;
        if let Ok(m) = meta.modified() {
            dst.set_modified(m)?;
        }
        dst.sync_all()?;
        pause();
        fs::hard_link(&tmp, to).or_else(|e| {
            if fs::symlink_metadata(to).is_err() && e.kind() != std::io::ErrorKind::AlreadyExists {
                fs::rename(&tmp, to)
            } else {
                Err(e)
            }
        })
    })();
    let _ = fs::remove_file(&tmp);
    result.map_err(|e| format!("copying to {}: {e}", path_text(to)))
}

fn path_text_os(name: &std::ffi::OsStr) -> String {
    path_text(Path::new(name)).replace(['/', '\\'], "_")
}

fn sync_parent(p: &Path) {
    if let Some(d) = p.parent().and_then(|d| fs::File::open(d).ok()) {
        let _ = d.sync_all();
    }
}

/// Whether `a` and `b` are the same file, or two files with the same bytes.
fn same_content(a: &Path, b: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        if let (Ok(x), Ok(y)) = (fs::metadata(a), fs::metadata(b))
            && x.dev() == y.dev()
            && x.ino() == y.ino()
        {
            return true;
        }
    }
    match (fs::metadata(a), fs::metadata(b)) {
        (Ok(x), Ok(y)) if x.len() == y.len() => matches!((sha256_file(a), sha256_file(b)), (Ok(h), Ok(g)) if h == g),
        _ => false,
    }
}

/// Reads `dir/`[`MANIFEST`].
pub fn read_manifest(dir: &Path) -> Result<Vec<MoveEntry>, MoveError> {
    let path = dir.join(MANIFEST);
    let text = match fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(MoveError::NoManifest { path: dir.to_path_buf() });
        }
        Err(e) => return Err(crate::Error::io(&path, e).into()),
    };
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    for (k, line) in lines.iter().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<MoveEntry>(line) {
            Ok(e) => out.push(e),
            // A run killed while appending leaves at most a partial last line, for a file it had
            // not yet touched.
            Err(_) if k + 1 == lines.len() && !text.ends_with('\n') => {}
            Err(e) => return Err(MoveError::Manifest { path, line: k + 1, why: e.to_string() }),
        }
    }
    Ok(out)
}

/// Puts back every file listed in `dir/`[`MANIFEST`], newest first, never overwriting: a file
/// moved is moved back (recreating its folders); one that never left, or whose copy was finished
/// but not yet removed from its place, stays and the copy in `dir` is removed. Entries that
/// cannot be resolved (both copies present and different, or neither present) stay in the
/// manifest; when none is left the manifest, temporary copies and the folders the move made are
/// removed. `progress` runs after each entry.
pub fn undo(dir: &Path, progress: &dyn Fn()) -> Result<UndoReport, MoveError> {
    let entries = read_manifest(dir)?;
    let mut report = UndoReport::default();
    let mut left: Vec<MoveEntry> = Vec::new();
    for entry in entries.iter().rev() {
        let outcome = (|| -> Result<bool, String> {
            let from = text_path(&entry.from)?;
            let rel = text_path(&entry.to)?;
            if rel.is_absolute() || rel.components().any(|c| matches!(c, std::path::Component::ParentDir)) {
                return Err(format!("{}: not a path inside {}", entry.to, path_text(dir)));
            }
            let to = dir.join(rel);
            let at_from = fs::symlink_metadata(&from).is_ok();
            let at_to = fs::symlink_metadata(&to).is_ok();
            match (at_from, at_to) {
                (true, false) => Ok(false),
                (true, true) if same_content(&from, &to) => {
                    fs::remove_file(&to).map_err(|e| e.to_string())?;
                    Ok(false)
                }
                (true, true) => {
                    Err(format!("{} exists and differs from the moved copy {}; both kept", entry.from, path_text(&to)))
                }
                (false, true) => {
                    if let Some(parent) = from.parent() {
                        fs::create_dir_all(parent).map_err(|e| e.to_string())?;
                    }
                    relocate(&to, &from, &|| {})?;
                    Ok(true)
                }
                (false, false) => Err(format!("{}: neither it nor its moved copy exists", entry.from)),
            }
        })();
        match outcome {
            Ok(true) => report.restored += 1,
            Ok(false) => report.in_place += 1,
            Err(reason) => {
                report.left.push(NotMoved { path: entry.from.clone(), reason });
                left.push(entry.clone());
            }
        }
        progress();
    }
    let manifest = dir.join(MANIFEST);
    if left.is_empty() {
        fs::remove_file(&manifest).map_err(|e| crate::Error::io(&manifest, e))?;
        report.manifest_removed = true;
        remove_partials_and_empty_dirs(dir);
    } else {
        left.reverse();
        let text: String = left.iter().map(|e| serde_json::to_string(e).expect("entries serialise") + "\n").collect();
        crate::fsutil::write_atomic(&manifest, text.as_bytes())?;
    }
    Ok(report)
}

/// Removes the temporary copies of killed moves under `dir`, then the folders left empty below it.
fn remove_partials_and_empty_dirs(dir: &Path) {
    fn walk(d: &Path) {
        let Ok(rd) = fs::read_dir(d) else { return };
        for e in rd.flatten() {
            let p = e.path();
            match e.file_type() {
                Ok(t) if t.is_dir() => {
                    walk(&p);
                    let _ = fs::remove_dir(&p); // only succeeds when empty
                }
                Ok(t) if t.is_file() && e.file_name().to_string_lossy().starts_with(PARTIAL_PREFIX) => {
                    let _ = fs::remove_file(&p);
                }
                _ => {}
            }
        }
    }
    walk(dir);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(p: &Path, bytes: &[u8]) {
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, bytes).unwrap();
    }

    #[test]
    fn common_base_is_the_deepest_shared_folder() {
        let t = tempfile::tempdir().unwrap();
        let (a, b) = (t.path().join("lib/2020"), t.path().join("lib/2021"));
        write(&a.join("x.jpg"), b"x");
        write(&b.join("y.jpg"), b"y");
        assert_eq!(common_base(&[a.clone(), b.clone()]), t.path().join("lib"));
        assert_eq!(common_base(&[a.join("x.jpg")]), a);
        assert_eq!(common_base(std::slice::from_ref(&a)), a);
        assert_eq!(relative_under(&a.join("x.jpg"), &t.path().join("lib")), PathBuf::from("2020/x.jpg"));
        assert_eq!(relative_under(Path::new("/elsewhere/y.jpg"), &a), PathBuf::from("elsewhere/y.jpg"));
    }

    #[test]
    fn move_then_undo_restores_every_byte_and_never_overwrites() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("photos");
        let files = [root.join("a/1.jpg"), root.join("b/2.png"), root.join("3.jpg")];
        for (k, f) in files.iter().enumerate() {
            write(f, format!("content {k}").as_bytes());
        }
        let dest = t.path().join("moved");
        // A file already at one target: that one is not moved.
        write(&dest.join("3.jpg"), b"someone else's");
        let list: Vec<(PathBuf, String)> = files.iter().map(|f| (f.clone(), "keep.jpg".into())).collect();
        let r = move_files(&list, &root, &dest, &|| {}, &|| {}).unwrap();
        assert_eq!((r.moved, r.copied, r.not_moved.len()), (2, 0, 1), "{r:?}");
        assert!(r.not_moved[0].reason.contains("exists"));
        assert!(!files[0].exists() && !files[1].exists() && files[2].exists());
        assert_eq!(fs::read(dest.join("a/1.jpg")).unwrap(), b"content 0");
        assert_eq!(fs::read(dest.join("3.jpg")).unwrap(), b"someone else's");
        let listed = read_manifest(&dest).unwrap();
        assert_eq!(listed.len(), 2);
        assert_eq!(listed[1].to, "b/2.png");
        assert_eq!(listed[0].keep, "keep.jpg");

        let u = undo(&dest, &|| {}).unwrap();
        assert_eq!((u.restored, u.in_place, u.left.len(), u.manifest_removed), (2, 0, 0, true), "{u:?}");
        for (k, f) in files.iter().enumerate() {
            assert_eq!(fs::read(f).unwrap(), format!("content {k}").as_bytes());
        }
        assert!(!dest.join("a").exists() && !dest.join(MANIFEST).exists(), "emptied folders removed");
        assert!(dest.join("3.jpg").exists(), "what was not ours stays");
        assert!(matches!(undo(&dest, &|| {}), Err(MoveError::NoManifest { .. })));
    }

    /// Each state a killed move can leave, built by hand, is undone without loss.
    #[test]
    fn undo_resolves_every_state_a_killed_move_leaves() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("photos");
        let dest = t.path().join("moved");
        let entry = |name: &str| MoveEntry { from: path_text(&root.join(name)), to: name.into(), keep: String::new() };
        // never.jpg: listed, never touched. linked.jpg: hard-linked, source not yet removed.
        // copied.jpg: copied across, source not yet removed. moved.jpg: done. partial: a copy cut short.
        write(&root.join("never.jpg"), b"never");
        write(&root.join("linked.jpg"), b"linked");
        fs::create_dir_all(&dest).unwrap();
        fs::hard_link(root.join("linked.jpg"), dest.join("linked.jpg")).unwrap();
        write(&root.join("copied.jpg"), b"copied");
        write(&dest.join("copied.jpg"), b"copied");
        write(&dest.join("moved.jpg"), b"moved");
        write(&dest.join(format!("{PARTIAL_PREFIX}1-never.jpg")), b"nev");
        let names = ["never.jpg", "linked.jpg", "copied.jpg", "moved.jpg"];
        let mut text: String = names.iter().map(|n| serde_json::to_string(&entry(n)).unwrap() + "\n").collect();
        text.push_str("{\"from\":\"/half"); // the line being appended when killed
        fs::write(dest.join(MANIFEST), text).unwrap();
        let u = undo(&dest, &|| {}).unwrap();
        assert_eq!((u.restored, u.in_place, u.left.len()), (1, 3, 0), "{u:?}");
        for n in names {
            assert_eq!(fs::read(root.join(n)).unwrap(), n.trim_end_matches(".jpg").as_bytes());
        }
        assert_eq!(fs::read_dir(&dest).unwrap().count(), 0, "copies and the partial removed");
    }

    #[test]
    fn undo_keeps_both_when_they_differ_and_leaves_the_entry() {
        let t = tempfile::tempdir().unwrap();
        let (root, dest) = (t.path().join("p"), t.path().join("m"));
        write(&root.join("x.jpg"), b"new file made since");
        write(&dest.join("x.jpg"), b"the moved one");
        let e = MoveEntry { from: path_text(&root.join("x.jpg")), to: "x.jpg".into(), keep: String::new() };
        fs::write(dest.join(MANIFEST), serde_json::to_string(&e).unwrap() + "\n").unwrap();
        let u = undo(&dest, &|| {}).unwrap();
        assert_eq!(u.left.len(), 1);
        assert!(u.left[0].reason.contains("differs"), "{}", u.left[0].reason);
        assert_eq!(fs::read(dest.join("x.jpg")).unwrap(), b"the moved one");
        assert_eq!(read_manifest(&dest).unwrap(), vec![e]);
        // A manifest entry pointing outside the folder is refused, not followed.
        let evil = MoveEntry { from: path_text(&root.join("y.jpg")), to: "../../etc/x".into(), keep: String::new() };
        fs::write(dest.join(MANIFEST), serde_json::to_string(&evil).unwrap() + "\n").unwrap();
        assert!(undo(&dest, &|| {}).unwrap().left[0].reason.contains("not a path inside"));
    }

    /// Across file systems (when /dev/shm is another one): copied, fsynced, same bytes and
    /// modification time, source removed; and back.
    #[test]
    fn a_move_across_file_systems_copies_then_removes() {
        let shm = Path::new("/dev/shm");
        let t = tempfile::tempdir().unwrap();
        let src = t.path().join("photos/a.jpg");
        write(&src, b"across");
        let old = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_500_000_000);
        fs::File::options().write(true).open(&src).unwrap().set_modified(old).unwrap();
        let (dest, copied_expected) = match tempfile::tempdir_in(shm) {
            Ok(d) => (d, 1),
            Err(_) => (tempfile::tempdir().unwrap(), 0),
        };
        #[cfg(unix)]
        let copied_expected = {
            use std::os::unix::fs::MetadataExt;
            let same = fs::metadata(t.path()).unwrap().dev() == fs::metadata(dest.path()).unwrap().dev();
            if same { 0 } else { copied_expected }
        };
        let r =
            move_files(&[(src.clone(), String::new())], &t.path().join("photos"), dest.path(), &|| {}, &|| {}).unwrap();
        assert_eq!((r.moved, r.copied), (1, copied_expected));
        let moved = dest.path().join("a.jpg");
        assert_eq!(fs::read(&moved).unwrap(), b"across");
        assert_eq!(fs::metadata(&moved).unwrap().modified().unwrap(), old);
        assert!(!src.exists());
        let u = undo(dest.path(), &|| {}).unwrap();
        assert_eq!(u.restored, 1);
        assert_eq!(fs::read(&src).unwrap(), b"across");
        assert_eq!(fs::metadata(&src).unwrap().modified().unwrap(), old);
    }
}
