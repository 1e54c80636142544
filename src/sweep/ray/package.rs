//! The job's package: the files to ship and the driver, as one zip that Ray unpacks as the
//! job's working directory.
//!
//! Ray unpacks a `gcs://` working directory as it is (no top-level folder is stripped; that
//! only happens for remote `https://` zips) and, since Ray 2.60, restores the mode bits
//! stored in the zip; the driver still makes `metaexec` executable for older clusters.
//!
//! The zip is written to a temp file, never held in memory: the binary and the runtime cache
//! are tens of megabytes each. Entries are stored uncompressed (the payload is mostly compiled
//! code, zipping it costs seconds for little), unless that would exceed what the dashboard
//! takes in one upload ([`UPLOAD_LIMIT`]); then they are deflated at the fastest level. Names
//! are sorted and times fixed, so the same files give the same zip, the same SHA-256 and the
//! same package name, and a package still on the cluster is not uploaded again.

use std::fs::{self, File};
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Component, Path, PathBuf};

use sha2::{Digest, Sha256};
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, DateTime, ZipWriter};

use super::RayError;

/// The largest request body the dashboard reads (`DASHBOARD_CLIENT_MAX_SIZE`, 100 MiB); a
/// bigger upload is answered 413.
pub(super) const UPLOAD_LIMIT: u64 = 100 * 1024 * 1024;
/// The name the driver has inside the package.
const DRIVER_NAME: &str = "driver.py";
/// Room for the zip's own headers when deciding whether stored entries fit.
const ENTRY_OVERHEAD: u64 = 256;
/// Folder depth past which a folder is taken for a symlink loop.
const MAX_DEPTH: usize = 64;

/// A zip written to a temp file (removed when this is dropped), named after its SHA-256.
#[derive(Debug)]
pub(super) struct Package {
    file: tempfile::NamedTempFile,
    name: String,
    bytes: u64,
}

impl Package {
    /// `_ray_pkg_<sha256>.zip`: Ray's prefix for uploaded packages, content-addressed.
    pub(super) fn name(&self) -> &str {
        &self.name
    }

    /// The working directory's URI for the job's runtime environment.
    pub(super) fn uri(&self) -> String {
        format!("gcs://{}", self.name)
    }

    /// The zip's size.
    pub(super) fn bytes(&self) -> u64 {
        self.bytes
    }

    /// The zip on disk.
    pub(super) fn path(&self) -> &Path {
        self.file.path()
    }
}

/// One zip entry: a folder, or a file read from `source` (the driver's text when `None`).
struct Entry {
    name: String,
    source: Option<PathBuf>,
    mode: u32,
    len: u64,
    dir: bool,
}

/// Zips `files` (name inside the package → local file or folder) with the driver.
pub(super) fn build(files: &[(String, PathBuf)], driver: &str) -> Result<Package, RayError> {
    let entries = collect(files, driver)?;
    let payload: u64 = entries.iter().map(|e| e.len + ENTRY_OVERHEAD + e.name.len() as u64 * 2).sum();
    let method = if payload > UPLOAD_LIMIT { CompressionMethod::Deflated } else { CompressionMethod::Stored };

    let file = tempfile::Builder::new()
        .prefix("metaexec-ray-")
        .suffix(".zip")
        .tempfile()
        .map_err(|source| RayError::Package { path: std::env::temp_dir(), source })?;
    let zip_path = file.path().to_owned();
    let package_error = |source: io::Error| RayError::Package { path: zip_path.clone(), source };
    let mut zip = ZipWriter::new(BufWriter::new(file.reopen().map_err(package_error)?));
    for entry in &entries {
        let deflate = method == CompressionMethod::Deflated && !entry.dir;
        let options = SimpleFileOptions::default()
            .compression_method(if deflate { CompressionMethod::Deflated } else { CompressionMethod::Stored })
            .compression_level(if deflate { Some(1) } else { None })
            .last_modified_time(DateTime::default())
            .unix_permissions(entry.mode)
            .large_file(entry.len >= u64::from(u32::MAX));
        if entry.dir {
            zip.add_directory(entry.name.as_str(), options).map_err(|e| package_error(e.into()))?;
            continue;
        }
        zip.start_file(entry.name.as_str(), options).map_err(|e| package_error(e.into()))?;
        match &entry.source {
            None => zip.write_all(driver.as_bytes()).map_err(package_error)?,
            Some(source) => {
                let mut input =
                    File::open(source).map_err(|e| RayError::Package { path: source.clone(), source: e })?;
                io::copy(&mut input, &mut zip).map_err(|e| RayError::Package { path: source.clone(), source: e })?;
            }
        }
    }
    let mut writer = zip.finish().map_err(|e| package_error(e.into()))?;
    writer.flush().map_err(package_error)?;
    let written = writer.into_inner().map_err(|e| package_error(e.into_error()))?;
    let bytes = written.metadata().map_err(package_error)?.len();
    if bytes > UPLOAD_LIMIT {
        return Err(RayError::PackageTooLarge { bytes });
    }
    let sha = sha256_file(file.path()).map_err(package_error)?;
    Ok(Package { file, name: format!("_ray_pkg_{sha}.zip"), bytes })
}

/// The entries to write, sorted, folders before their contents, the driver first.
fn collect(files: &[(String, PathBuf)], driver: &str) -> Result<Vec<Entry>, RayError> {
    let mut entries =
        vec![Entry { name: DRIVER_NAME.into(), source: None, mode: 0o644, len: driver.len() as u64, dir: false }];
    let mut names: Vec<&str> = Vec::new();
    let mut sorted: Vec<&(String, PathBuf)> = files.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    for (name, source) in sorted {
        check_name(name)?;
        let name = name.trim_end_matches('/');
        let clash = names.iter().find(|n| **n == name || inside(name, n) || inside(n, name));
        if let Some(other) = clash {
            return Err(RayError::InvalidJob { reason: format!("`{name}` and `{other}` overlap in the job's files") });
        }
        names.push(name);
        add(&mut entries, name, source, 0)?;
    }
    Ok(entries)
}

/// Whether `name` lies inside the folder `folder`.
fn inside(name: &str, folder: &str) -> bool {
    name.strip_prefix(folder).is_some_and(|rest| rest.starts_with('/'))
}

/// A name in the package must be a plain relative path, and not the driver's.
fn check_name(name: &str) -> Result<(), RayError> {
    let trimmed = name.trim_end_matches('/');
    let plain = !trimmed.is_empty()
        && !trimmed.contains('\\')
        && Path::new(trimmed).components().all(|c| matches!(c, Component::Normal(_)))
        && !trimmed.split('/').any(|c| c.is_empty() || c == ".");
    if !plain {
        return Err(RayError::InvalidJob {
            reason: format!("`{name}` is not a relative path for the job's working directory"),
        });
    }
    if trimmed.split('/').next() == Some(DRIVER_NAME) {
        return Err(RayError::InvalidJob { reason: format!("`{DRIVER_NAME}` is the driver's name in the package") });
    }
    Ok(())
}

/// Adds `source` (a file, or a folder with everything under it) as `name`.
fn add(entries: &mut Vec<Entry>, name: &str, source: &Path, depth: usize) -> Result<(), RayError> {
    let error = |e: io::Error| RayError::Package { path: source.to_owned(), source: e };
    // Symlinks are followed: the runtime cache may link into another folder.
    let meta = fs::metadata(source).map_err(error)?;
    let mode = unix_mode(&meta);
    if meta.is_file() {
        entries.push(Entry { name: name.into(), source: Some(source.to_owned()), mode, len: meta.len(), dir: false });
        return Ok(());
    }
    if !meta.is_dir() {
        return Err(error(io::Error::other("neither a file nor a folder")));
    }
    if depth > MAX_DEPTH {
        return Err(error(io::Error::other(format!("folders nest more than {MAX_DEPTH} deep (a symlink loop?)"))));
    }
    entries.push(Entry { name: format!("{name}/"), source: None, mode, len: 0, dir: true });
    let mut children = Vec::new();
    for child in fs::read_dir(source).map_err(error)? {
        let child = child.map_err(error)?;
        let child_name = child
            .file_name()
            .into_string()
            .map_err(|n| error(io::Error::other(format!("`{}` is not valid UTF-8", n.to_string_lossy()))))?;
        children.push(child_name);
    }
    children.sort();
    for child in children {
        add(entries, &format!("{name}/{child}"), &source.join(&child), depth + 1)?;
    }
    Ok(())
}

#[cfg(unix)]
fn unix_mode(meta: &fs::Metadata) -> u32 {
    std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o777
}

#[cfg(not(unix))]
fn unix_mode(meta: &fs::Metadata) -> u32 {
    if meta.is_dir() { 0o755 } else { 0o644 }
}

fn sha256_file(path: &Path) -> io::Result<String> {
    let mut reader = BufReader::with_capacity(1 << 20, File::open(path)?);
    let mut hasher = Sha256::new();
    let mut buffer = vec![0; 1 << 20];
    loop {
        let n = reader.read(&mut buffer)?;
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
    }
    Ok(hasher.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("metaexec"), "#!/bin/sh\n").unwrap();
        #[cfg(unix)]
        fs::set_permissions(dir.path().join("metaexec"), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        fs::create_dir_all(dir.path().join("cache/stdlib/json")).unwrap();
        fs::create_dir_all(dir.path().join("cache/empty")).unwrap();
        fs::write(dir.path().join("cache/stdlib/json/__init__.py"), "x = 1\n").unwrap();
        fs::write(dir.path().join("cache/runtime.wasm"), vec![7u8; 5000]).unwrap();
        dir
    }

    fn files(dir: &Path) -> Vec<(String, PathBuf)> {
        vec![("metaexec".into(), dir.join("metaexec")), ("cache".into(), dir.join("cache"))]
    }

    #[test]
    fn the_package_holds_the_driver_and_the_files_with_their_modes() {
        let dir = tree();
        let package = build(&files(dir.path()), "print('driver')\n").unwrap();
        assert!(package.name().starts_with("_ray_pkg_") && package.name().ends_with(".zip"));
        assert_eq!(package.name().len(), "_ray_pkg_".len() + 64 + ".zip".len());
        let mut zip = zip::ZipArchive::new(File::open(package.path()).unwrap()).unwrap();
        let names: Vec<String> = zip.file_names().map(str::to_owned).collect();
        assert_eq!(
            names,
            [
                "driver.py",
                "cache/",
                "cache/empty/",
                "cache/runtime.wasm",
                "cache/stdlib/",
                "cache/stdlib/json/",
                "cache/stdlib/json/__init__.py",
                "metaexec"
            ]
        );
        let mut driver = String::new();
        zip.by_name("driver.py").unwrap().read_to_string(&mut driver).unwrap();
        assert_eq!(driver, "print('driver')\n");
        let binary = zip.by_name("metaexec").unwrap();
        assert_eq!(binary.compression(), CompressionMethod::Stored);
        #[cfg(unix)]
        assert_eq!(binary.unix_mode().unwrap() & 0o777, 0o755);
    }

    #[test]
    fn the_same_files_give_the_same_package_name() {
        let dir = tree();
        let first = build(&files(dir.path()), "d").unwrap();
        let second = build(&files(dir.path()), "d").unwrap();
        assert_eq!(first.name(), second.name());
        assert_eq!(first.bytes(), second.bytes());
        let other = build(&files(dir.path()), "another driver").unwrap();
        assert_ne!(first.name(), other.name());
    }

    #[test]
    fn names_that_leave_the_working_directory_or_clash_are_refused() {
        let dir = tree();
        let bin = dir.path().join("metaexec");
        for name in ["../metaexec", "/metaexec", "a/../b", "", "./x", "driver.py", "a\\b"] {
            let error = build(&[(name.into(), bin.clone())], "d").unwrap_err();
            assert!(matches!(error, RayError::InvalidJob { .. }), "{name}: {error:?}");
        }
        let overlap = [("cache".into(), dir.path().join("cache")), ("cache/x".into(), bin.clone())];
        assert!(matches!(build(&overlap, "d").unwrap_err(), RayError::InvalidJob { .. }));
        let missing = build(&[("x".into(), dir.path().join("nothing"))], "d").unwrap_err();
        assert!(matches!(missing, RayError::Package { .. }), "{missing:?}");
    }
}
