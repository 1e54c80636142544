//! Where metaexec keeps what it downloads and derives: the WASI CPython, its compiled
//! form and the unpacked guest library.
//!
//! `METAEXEC_CACHE_DIR` wins; otherwise the platform's user cache directory
//! (`~/.cache/metaexec` on Linux). Everything in it can be deleted at any time and is
//! rebuilt on demand. It lives outside any target or project folder so that builds,
//! test runs and projects share one compiled interpreter.

use std::path::{Path, PathBuf};

/// The environment variable that moves the cache.
pub const CACHE_DIR_ENV: &str = "METAEXEC_CACHE_DIR";

/// The cache root.
pub fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os(CACHE_DIR_ENV).filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    dirs::cache_dir().unwrap_or_else(std::env::temp_dir).join("metaexec")
}

/// Writes `bytes` to `path` through a temporary file in the same folder and a rename,
/// so a concurrent reader never sees a half-written file.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("file"),
        std::process::id()
    ));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

/// A folder for short-lived files of this process's commands (removed by whoever creates
/// entries in it).
pub fn scratch_dir(cache_root: &Path) -> PathBuf {
    cache_root.join("scratch")
}
