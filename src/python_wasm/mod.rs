//! The runtime: CPython 3.14 as a WebAssembly component whose memory snapshot already
//! holds the interpreter, the guest library and the common standard-library modules.
//!
//! It is built on this machine, from the guest app embedded in the binary (`app`), by the
//! pinned componentize-py (`tool`), whose copy of the standard library serves the imports
//! the snapshot does not hold (`stdlib`). `fetch` does all of it; `installed` says whether
//! it is done.
//!
//! Invariant: nothing outside this module hands a component to the engine, and this
//! module hands over only bytes whose SHA-256 matches the digest recorded beside them
//! when they were built (`read_component`).

mod app;
mod component;
mod manifest;
mod stdlib;
mod tool;

use std::io::Read;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

pub use app::{GUEST_APP, content_hash as app_hash};
pub use manifest::{MANIFEST, Manifest, Tool, Wheel};
pub use tool::{install_tool_from_wheel, platform, tool_wheel};

/// The largest component read back from the cache (it is read into memory to be
/// checked); anything larger is not one metaexec built.
const MAX_COMPONENT_BYTES: u64 = 1 << 30;

/// Why the installed runtime cannot be used as it is.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// Nothing is installed yet (or only part of it).
    #[error("The runtime is not built yet (looked for `{}`)", path.display())]
    Missing {
        /// What was looked for.
        path: PathBuf,
    },
    /// The component's bytes do not match the digest recorded when it was built.
    #[error("`{}` does not verify ({reason}); refusing to use it", path.display())]
    Corrupt {
        /// The component.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

/// Why the runtime could not be obtained or built.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The tool has no pinned wheel for this machine.
    #[error("{requirement} has no pinned wheel for this platform ({platform}); pinned: {pinned}")]
    Unsupported {
        /// `componentize-py==0.25.1`.
        requirement: String,
        /// This machine.
        platform: String,
        /// The platforms that have one.
        pinned: String,
    },
    /// No `python3 -m pip` on this machine.
    #[error(
        "Python 3 with pip is not available (tried `python3 -m pip` and `python -m pip`); it is needed once, to obtain and run the runtime's build tool"
    )]
    NoPip,
    /// pip ran and failed.
    #[error("`pip download {requirement}` failed: {stderr}")]
    Pip {
        /// The requirement.
        requirement: String,
        /// What pip said.
        stderr: String,
    },
    /// The wheel is not the pinned one, or cannot be read.
    #[error("The wheel `{}` was refused: {reason}", wheel.display())]
    Wheel {
        /// The wheel.
        wheel: PathBuf,
        /// What was wrong.
        reason: String,
    },
    /// The tool ran and failed.
    #[error("Building the runtime component failed: {0}")]
    Build(String),
    /// The standard library could not be unpacked.
    #[error("Unpacking the standard library failed: {0}")]
    Stdlib(String),
    /// A file operation failed.
    #[error("Failed to write `{}`: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

impl RuntimeError {
    /// What the person can do about it.
    pub fn hint(&self) -> String {
        match self {
            Self::Unsupported { .. } => format!(
                "the runtime is built with {}, which ships native wheels only for the pinned platforms; run metaexec on one of them",
                MANIFEST.tool_requirement()
            ),
            Self::NoPip => "install Python 3 with pip (e.g. `apt-get install python3-pip`), then run `metaexec runtime fetch`".into(),
            Self::Pip { .. } => "check access to the package index (pip's own settings apply: PIP_INDEX_URL, proxies), then run `metaexec runtime fetch`".into(),
            Self::Wheel { .. } => "the package index served a different file than the one pinned in python-wasm/manifest.json: check which index pip uses".into(),
            Self::Build(_) | Self::Stdlib(_) | Self::Io { .. } => {
                "run `metaexec runtime fetch --force` to build it again; `metaexec runtime info` shows what is installed".into()
            }
        }
    }
}

/// The built runtime, as found in the cache.
#[derive(Debug, Clone)]
pub struct Installed {
    /// The component.
    pub component: PathBuf,
    /// Its SHA-256, as recorded when it was built.
    pub sha256: String,
    /// The standard library to mount at `/python`.
    pub stdlib: PathBuf,
}

/// The folder holding the runtime inside a cache root.
pub fn runtime_dir(cache_root: &Path) -> PathBuf {
    cache_root.join("python-wasm")
}

/// Where the component for this binary's guest app and the pinned tool lives.
pub fn component_path(cache_root: &Path) -> PathBuf {
    runtime_dir(cache_root).join(format!("metaexec-sandbox-{}.wasm", build_id()))
}

/// Names a build: the tool's wheel for this platform and the guest app's contents.
/// A binary with another guest library builds (and uses) its own component.
pub fn build_id() -> String {
    let mut hasher = Sha256::new();
    hasher.update(tool_wheel().map_or("unsupported", |wheel| wheel.sha256).as_bytes());
    hasher.update([0]);
    hasher.update(app_hash().as_bytes());
    hex(&hasher.finalize()[..8])
}

/// The runtime, if it is built: the component has its recorded digest beside it and the
/// standard library is unpacked. Cheap: nothing is hashed here (see `read_component`).
pub fn installed(cache_root: &Path) -> Result<Installed, VerifyError> {
    let component = component_path(cache_root);
    let digest_file = crate::cache::digest_path(&component);
    let sha256 = recorded_digest(&digest_file).unwrap_or_default();
    if !component.exists() || sha256.len() != 64 {
        return Err(VerifyError::Missing { path: component });
    }
    let stdlib = stdlib::ready(cache_root).ok_or_else(|| VerifyError::Missing { path: stdlib::dir(cache_root) })?;
    Ok(Installed { component, sha256, stdlib })
}

/// The component's bytes, checked against the digest recorded when it was built.
pub fn read_component(installed: &Installed) -> Result<Vec<u8>, VerifyError> {
    let corrupt = |reason: String| VerifyError::Corrupt { path: installed.component.clone(), reason };
    match crate::cache::read_with_digest(&installed.component, MAX_COMPONENT_BYTES) {
        Ok(Some(bytes)) => Ok(bytes),
        Ok(None) => Err(VerifyError::Missing { path: installed.component.clone() }),
        Err(e) => Err(corrupt(e.to_string())),
    }
}

/// Obtains the tool, unpacks the standard library and builds the component, each only if
/// it is not there yet (all of them again with `force`). `progress` gets one line per
/// slow step.
pub fn fetch(cache_root: &Path, force: bool, progress: &dyn Fn(&str)) -> Result<Installed, RuntimeError> {
    if !force && let Ok(installed) = installed(cache_root) {
        return Ok(installed);
    }
    let dir = runtime_dir(cache_root);
    // The cache will hold native code: owner-only folders.
    crate::cache::create_private_dir(&dir).map_err(|source| RuntimeError::Io { path: dir.clone(), source })?;
    let tool = tool::ensure(cache_root, force, progress)?;
    let stdlib = stdlib::ensure(cache_root, &tool, force, progress)?;
    let component = component_path(cache_root);
    if force || installed(cache_root).is_err() {
        component::build(cache_root, &tool, &component, progress)?;
    }
    let digest_file = crate::cache::digest_path(&component);
    let sha256 = recorded_digest(&digest_file).map_err(|source| RuntimeError::Io { path: digest_file, source })?;
    Ok(Installed { component, sha256, stdlib })
}

/// The hash in a digest file (`sha256sum` format).
fn recorded_digest(path: &Path) -> std::io::Result<String> {
    let text = std::fs::read_to_string(path)?;
    Ok(text.split_whitespace().next().unwrap_or_default().to_owned())
}

/// Fills a fresh staging folder beside `target` with `fill`, marks it complete (a
/// `.complete` file holding `marker`) and moves it into place, replacing what was there.
/// On failure the staging folder is removed and nothing half-made is left at `target`.
fn install_dir<E>(
    target: &Path,
    marker: &[u8],
    io: impl Fn(&Path, std::io::Error) -> E,
    fill: impl FnOnce(&Path) -> Result<(), E>,
) -> Result<(), E> {
    let staging = target.with_extension(format!("staging-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&staging);
    let installed = crate::cache::create_private_dir(&staging)
        .map_err(|e| io(&staging, e))
        .and_then(|()| fill(&staging))
        .and_then(|()| std::fs::write(staging.join(".complete"), marker).map_err(|e| io(&staging, e)))
        .and_then(|()| {
            let _ = std::fs::remove_dir_all(target);
            std::fs::rename(&staging, target).map_err(|e| io(target, e))
        });
    if installed.is_err() {
        let _ = std::fs::remove_dir_all(&staging);
    }
    installed
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
