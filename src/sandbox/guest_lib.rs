//! The guest library, embedded in the binary at build time (see `build.rs`) and unpacked
//! into the cache on first use, one folder per content hash. The sandbox mounts that
//! folder read-only, so a script can import `metaexec` but cannot change it.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

include!(concat!(env!("OUT_DIR"), "/guest_library.rs"));

/// What the interpreter runs with `-c`: the boot module, from the guest library.
pub const BOOT: &str = "import _metaexec_boot";

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

/// Compiles the library to `.pyc` in a setup run (with `run`, which runs a job whose
/// `/results` is the library folder, writable for this once).
///
/// The library is mounted read-only, so the interpreter could never cache its bytecode
/// itself and would compile every module from source on every run: ~70 ms for the whole
/// library. The folder is content-addressed, so unchecked-hash `.pyc` files stay valid
/// for its life and spare each import a source check.
pub fn compile(
    dir: &Path,
    run: impl FnOnce(crate::job::Job) -> Result<crate::outcome::Outcome, String>,
) -> Result<(), String> {
    const COMPILE_SCRIPT: &str = r#"
import compileall, py_compile
ok = compileall.compile_dir(".", quiet=1, invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)
print("ok" if ok else "failed")
"#;
    let marker = dir.join(".compiled");
    if marker.exists() {
        return Ok(());
    }
    let mut job = crate::job::Job::new("compile_library.py", COMPILE_SCRIPT, dir);
    job.limits.timeout = std::time::Duration::from_secs(120);
    let outcome = run(job)?;
    if !outcome.is_ok() || outcome.stdout.trim() != "ok" {
        return Err(format!(
            "compiling the guest library failed: {}{}",
            outcome.error.map(|e| e.message).unwrap_or_default(),
            outcome.stderr
        ));
    }
    std::fs::write(marker, b"").map_err(|e| e.to_string())
}
