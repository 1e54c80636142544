//! The guest library, embedded in the binary at build time (see `build.rs`) and unpacked
//! into the cache on first use, one folder per content hash. The sandbox mounts that
//! folder read-only, so a script can import `metaexec` but cannot change it.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

include!(concat!(env!("OUT_DIR"), "/guest_library.rs"));

/// The boot script the interpreter runs with `-c`.
pub const BOOT: &str = include_str!("../../runtime/boot.py");

/// A short hash of the library's contents, naming its folder in the cache.
pub fn content_hash() -> String {
    let mut hasher = Sha256::new();
    for (path, contents) in GUEST_LIBRARY {
        hasher.update(path.as_bytes());
        hasher.update([0]);
        hasher.update(contents.as_bytes());
        hasher.update([0]);
    }
    crate::python_wasm::hex(&hasher.finalize()[..8])
}

/// Unpacks the library under `cache_root` unless it is there already; returns the folder
/// to mount (it contains the `metaexec` package).
pub fn ensure(cache_root: &Path) -> std::io::Result<PathBuf> {
    let dir = cache_root.join("guestlib").join(content_hash());
    if dir.join(".complete").exists() {
        return Ok(dir);
    }
    let staging = cache_root.join("guestlib").join(format!(".staging-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&staging);
    for (path, contents) in GUEST_LIBRARY {
        let target = staging.join(path);
        std::fs::create_dir_all(target.parent().expect("library files live in a package"))?;
        std::fs::write(target, contents)?;
    }
    std::fs::write(staging.join(".complete"), b"")?;
    match std::fs::rename(&staging, &dir) {
        Ok(()) => Ok(dir),
        // Another process unpacked the same contents first.
        Err(_) if dir.join(".complete").exists() => {
            let _ = std::fs::remove_dir_all(&staging);
            Ok(dir)
        }
        Err(e) => Err(e),
    }
}
