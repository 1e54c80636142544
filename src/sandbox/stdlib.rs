//! The unpacked standard library.
//!
//! The runtime carries its standard library as a zip of `.pyc` files inside the module.
//! Opening it costs a fresh interpreter ~25 ms on every start (zipimport reads the whole
//! directory in Python before it can import `encodings`), half the start-up. So the zip
//! is unpacked once into the cache, by the interpreter itself in a setup run, and every
//! later run mounts that folder read-only as its `PYTHONHOME`, where imports are plain
//! file reads.

use std::path::{Path, PathBuf};

use crate::job::Job;
use crate::outcome::Outcome;
use crate::python_wasm::MANIFEST;

/// Runs in the sandbox with the staging folder as `/results`.
const UNPACK_SCRIPT: &str = r#"
import sys, zipfile
archive = [p for p in sys.path if p.endswith(".zip")][0]
with zipfile.ZipFile(archive) as z:
    names = z.namelist()
    z.extractall("lib/python3.12")
print(len(names))
"#;

fn dir(cache_root: &Path) -> PathBuf {
    crate::python_wasm::runtime_dir(cache_root).join(format!("stdlib-{}", &MANIFEST.sha256[..16]))
}

/// The unpacked standard library, if it is complete.
pub fn ready(cache_root: &Path) -> Option<PathBuf> {
    let dir = dir(cache_root);
    dir.join(".complete").exists().then_some(dir)
}

/// Unpacks the standard library with `run` (which runs a job on the interpreter that
/// still reads its embedded zip) and returns its folder.
pub fn unpack(cache_root: &Path, run: impl FnOnce(Job) -> Result<Outcome, String>) -> Result<PathBuf, String> {
    let target = dir(cache_root);
    let staging = target.with_extension(format!("staging-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&staging);
    let mut job = Job::new("unpack_stdlib.py", UNPACK_SCRIPT, &staging);
    job.limits.timeout = std::time::Duration::from_secs(120);
    let outcome = run(job)?;
    let files: usize = outcome.stdout.trim().parse().unwrap_or(0);
    if !outcome.is_ok() || files == 0 {
        let _ = std::fs::remove_dir_all(&staging);
        return Err(format!(
            "the setup run failed: {}",
            outcome.error.map_or_else(|| outcome.stdout.clone(), |e| e.message)
        ));
    }
    std::fs::write(staging.join(".complete"), files.to_string()).map_err(|e| e.to_string())?;
    match std::fs::rename(&staging, &target) {
        Ok(()) => Ok(target),
        Err(_) if ready(cache_root).is_some() => {
            let _ = std::fs::remove_dir_all(&staging);
            Ok(target)
        }
        Err(e) => Err(format!("Failed to move `{}` into place: {e}", staging.display())),
    }
}
