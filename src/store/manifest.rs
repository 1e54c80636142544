//! `manifest.json`: the SHA-256 of every file in a run folder, written last, so a run's
//! files can be checked later (`metaexec runs show --verify`) and a download proven whole.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The manifest's file name.
pub const MANIFEST: &str = "manifest.json";

/// Every file of a run folder with its digest.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// `sha256`.
    pub algorithm: String,
    /// Path inside the folder (with `/`) to its hex SHA-256.
    pub files: BTreeMap<String, String>,
    /// Bytes over all files.
    pub bytes: u64,
}

/// A difference between a folder and its manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum Mismatch {
    /// Listed, but not there.
    Missing {
        /// The file.
        path: String,
    },
    /// There, but with other contents.
    Changed {
        /// The file.
        path: String,
    },
    /// There, but not listed.
    Added {
        /// The file.
        path: String,
    },
}

/// The manifest of `dir` as it is now: regular files only (links are neither followed
/// nor listed), the manifest itself and unfinished temporary files left out.
pub fn compute(dir: &Path) -> std::io::Result<Manifest> {
    let mut manifest = Manifest { algorithm: "sha256".into(), ..Manifest::default() };
    for (relative, path) in files(dir)?.into_iter().filter(|(relative, _)| relative != MANIFEST) {
        let mut file = std::fs::File::open(&path)?;
        let mut hasher = Sha256::new();
        manifest.bytes += std::io::copy(&mut file, &mut hasher)?;
        manifest.files.insert(relative, hex(&hasher.finalize()));
    }
    Ok(manifest)
}

/// Computes and writes the manifest of `dir`, atomically.
pub fn write(dir: &Path) -> std::io::Result<Manifest> {
    write_with(dir, &[])
}

/// Computes and writes the manifest of `dir` as it will be once each `(name, bytes)` of
/// `pending` is written: a run's last file (its entry, which says it finished) is written
/// after the manifest that lists it, so a finished run always has its manifest.
pub fn write_with(dir: &Path, pending: &[(&str, &[u8])]) -> std::io::Result<Manifest> {
    let mut manifest = compute(dir)?;
    for (name, bytes) in pending {
        if let Some(old) = std::fs::symlink_metadata(dir.join(name)).ok().filter(|m| m.is_file()) {
            manifest.bytes -= old.len().min(manifest.bytes);
        }
        manifest.bytes += bytes.len() as u64;
        manifest.files.insert((*name).to_owned(), hex(&Sha256::digest(bytes)));
    }
    let text = serde_json::to_string_pretty(&manifest).map_err(std::io::Error::other)?;
    crate::cache::write_atomically(&dir.join(MANIFEST), format!("{text}\n").as_bytes())?;
    Ok(manifest)
}

/// What differs between `dir` and the manifest it holds.
pub fn verify(dir: &Path) -> std::io::Result<Vec<Mismatch>> {
    let text = std::fs::read(dir.join(MANIFEST))?;
    let recorded: Manifest = serde_json::from_slice(&text).map_err(std::io::Error::other)?;
    let now = compute(dir)?;
    let mut mismatches = Vec::new();
    for (path, digest) in &recorded.files {
        match now.files.get(path) {
            None => mismatches.push(Mismatch::Missing { path: path.clone() }),
            Some(d) if d != digest => mismatches.push(Mismatch::Changed { path: path.clone() }),
            Some(_) => {}
        }
    }
    for path in now.files.keys().filter(|p| !recorded.files.contains_key(*p)) {
        mismatches.push(Mismatch::Added { path: path.clone() });
    }
    Ok(mismatches)
}

/// The regular files under `dir`, sorted, as `(relative path with '/', path)`. Links
/// and special files are skipped, never followed, and so are unfinished temporary files.
pub fn files(dir: &Path) -> std::io::Result<Vec<(String, PathBuf)>> {
    let mut out = Vec::new();
    let mut pending = vec![(String::new(), dir.to_owned())];
    while let Some((prefix, folder)) = pending.pop() {
        for item in std::fs::read_dir(&folder)? {
            let item = item?;
            let name = item.file_name().to_string_lossy().into_owned();
            let relative = if prefix.is_empty() { name.clone() } else { format!("{prefix}/{name}") };
            let kind = item.file_type()?;
            if kind.is_dir() {
                pending.push((relative, item.path()));
            } else if kind.is_file() && !(name.starts_with('.') && name.ends_with(".tmp")) {
                out.push((relative, item.path()));
            }
        }
    }
    out.sort();
    Ok(out)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_regular_files_and_finds_every_change() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("results/sub")).unwrap();
        std::fs::write(root.join("run.json"), "{}").unwrap();
        std::fs::write(root.join("results/sub/a.csv"), "a,b\n").unwrap();
        std::fs::write(root.join(".run.json.1.0.tmp"), "half").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", root.join("results/link")).unwrap();
        let manifest = write(root).unwrap();
        let names: Vec<&str> = manifest.files.keys().map(String::as_str).collect();
        assert_eq!(names, ["results/sub/a.csv", "run.json"]);
        assert_eq!(manifest.bytes, 6);
        // sha256("{}")
        assert_eq!(manifest.files["run.json"], "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a");
        assert!(verify(root).unwrap().is_empty());
        // A file listed before it is written: the folder matches once it is.
        write_with(root, &[("entry.json", b"{\"status\": \"ok\"}")]).unwrap();
        assert_eq!(verify(root).unwrap(), [Mismatch::Missing { path: "entry.json".into() }]);
        std::fs::write(root.join("entry.json"), b"{\"status\": \"ok\"}").unwrap();
        assert!(verify(root).unwrap().is_empty());
        std::fs::remove_file(root.join("entry.json")).unwrap();
        write(root).unwrap();
        std::fs::write(root.join("run.json"), "{ }").unwrap();
        std::fs::remove_file(root.join("results/sub/a.csv")).unwrap();
        std::fs::write(root.join("new.txt"), "x").unwrap();
        assert_eq!(
            verify(root).unwrap(),
            [
                Mismatch::Missing { path: "results/sub/a.csv".into() },
                Mismatch::Changed { path: "run.json".into() },
                Mismatch::Added { path: "new.txt".into() },
            ]
        );
    }
}
