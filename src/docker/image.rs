//! The images a script runs in. A **base image** holds Python: the user's choice
//! (`python:3.12-slim` where a registry is reachable) or one built here from Debian
//! packages, no registry needed ([`build_base_image`]). An **environment image** adds the
//! script's packages and the guest library to it; it is tagged by a hash of what went
//! into it, so a second script with the same requirements reuses it instead of
//! installing again.
//!
//! Packages are fetched on the host, by the machine's own pip and its configuration
//! (index, proxy, certificates), as wheels for the base image's Python; the image is then
//! built from a tar context with no network at all.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use bollard::Docker;
use bollard::query_parameters::{BuildImageOptionsBuilder, CreateImageOptionsBuilder};
use futures_util::StreamExt;
use sha2::{Digest, Sha256};

use super::engine::{Unavailable, is_not_found};
use super::{LABEL, Progress};

/// The base image used when none is configured: built here by `metaexec docker base-image`.
pub const DEFAULT_BASE_IMAGE: &str = "metaexec-python:bookworm";

/// The label that records a base image's Python version (`3.11`).
const PYTHON_LABEL: &str = "metaexec.python";

/// The repository environment images are tagged in.
pub const ENV_REPOSITORY: &str = "metaexec-env";

/// Where the guest library lives in every image.
pub const LIBRARY_DIR: &str = "/opt/metaexec";

/// A base image, inspected.
#[derive(Debug, Clone)]
pub struct Base {
    /// The name it was asked for by.
    pub name: String,
    /// The engine's id for it: environment images are keyed by it.
    pub id: String,
    /// Its Python's version, `major.minor`.
    pub python: String,
}

/// Finds the base image, pulling it when it is a registry's and missing.
pub async fn base(docker: &Docker, name: &str, progress: &Progress) -> Result<Base, Unavailable> {
    let inspected = match docker.inspect_image(name).await {
        Ok(inspected) => inspected,
        Err(e) if is_not_found(&e) && name == DEFAULT_BASE_IMAGE => {
            return Err(Unavailable::new(
                format!("The base image `{name}` has not been built on this machine"),
                "run `metaexec docker base-image` once (about 2 minutes; needs root and debootstrap), or pass \
                 --base-image python:3.12-slim where a registry is reachable",
            ));
        }
        Err(e) if is_not_found(&e) => {
            progress(&format!("pulling the base image {name}"));
            pull(docker, name).await?;
            docker.inspect_image(name).await.map_err(|e| base_error(name, e))?
        }
        Err(e) => return Err(base_error(name, e)),
    };
    let config = inspected.config.unwrap_or_default();
    let labelled = config.labels.as_ref().and_then(|labels| labels.get(PYTHON_LABEL)).cloned();
    // The official Python images say their version in the environment.
    let from_env = || config.env.iter().flatten().find_map(|var| var.strip_prefix("PYTHON_VERSION=")).map(major_minor);
    let Some(python) = labelled.or_else(from_env) else {
        return Err(Unavailable::new(
            format!("Cannot tell which Python the base image `{name}` holds"),
            format!("label it `{PYTHON_LABEL}=3.X`, or use an official python image"),
        ));
    };
    Ok(Base { name: name.to_owned(), id: inspected.id.unwrap_or_default(), python })
}

fn base_error(name: &str, error: bollard::errors::Error) -> Unavailable {
    Unavailable::new(
        format!("The base image `{name}` is not available: {error}"),
        "run `metaexec docker base-image` to build one here, or pass --base-image with an image the engine has",
    )
}

async fn pull(docker: &Docker, name: &str) -> Result<(), Unavailable> {
    let options = CreateImageOptionsBuilder::default().from_image(name).build();
    let mut stream = docker.create_image(Some(options), None, None);
    while let Some(item) = stream.next().await {
        item.map_err(|e| base_error(name, e))?;
    }
    Ok(())
}

fn major_minor(version: &str) -> String {
    version.split('.').take(2).collect::<Vec<_>>().join(".")
}

/// The environment image for `packages` on `base`, built when it is missing. `run` is
/// the label of the run that asks (recorded on an image it builds).
pub async fn environment(
    docker: &Docker,
    base: &Base,
    packages: &[String],
    cache_root: &Path,
    run: &str,
    progress: &Progress,
) -> Result<String, Unavailable> {
    let dockerfile = environment_dockerfile(&base.name, !packages.is_empty());
    let requirements = requirements_txt(packages);
    let mut hash = Sha256::new();
    for part in [base.id.as_str(), &base.python, &dockerfile, &requirements] {
        hash.update(part.as_bytes());
        hash.update([0]);
    }
    for (path, text) in library_files() {
        hash.update(path.as_bytes());
        hash.update(text.as_bytes());
    }
    let digest = hex(&hash.finalize()[..8]);
    let tag = format!("{ENV_REPOSITORY}:{digest}");
    if docker.inspect_image(&tag).await.is_ok() {
        return Ok(tag);
    }
    let wheels = if packages.is_empty() {
        None
    } else {
        progress(&format!("fetching {} for Python {} with pip", packages.join(", "), base.python));
        Some(download_wheels(packages, &requirements, &base.python, &cache_root.join("docker").join("wheels"))?)
    };
    progress(&format!("building the image {tag}"));
    let context = environment_context(&dockerfile, &requirements, wheels.as_deref())
        .map_err(|e| Unavailable::new(format!("Could not pack the image's build context: {e}"), "check the disk"))?;
    let labels = HashMap::from([(LABEL, run), ("metaexec.requirements", requirements.trim())]);
    build(docker, &tag, &labels, context).await.map_err(|log| {
        Unavailable::new(
            format!("Could not build the image for the script's packages ({}): {log}", packages.join(", ")),
            "check the package names the script imports; `metaexec check SCRIPT` lists them",
        )
    })?;
    Ok(tag)
}

/// `requirements.txt` for `packages`: one per line.
pub fn requirements_txt(packages: &[String]) -> String {
    packages.iter().map(|p| format!("{p}\n")).collect()
}

/// The guest library's files (`metaexec/...`), as the binary carries them.
pub fn library_files() -> impl Iterator<Item = (&'static str, &'static str)> {
    crate::python_wasm::GUEST_APP.iter().copied().filter(|(path, _)| path.starts_with("metaexec/"))
}

fn environment_dockerfile(base: &str, with_packages: bool) -> String {
    let mut file = format!("FROM {base}\n");
    if with_packages {
        // No index, no network: the wheels came in with the context.
        file.push_str(&format!(
            "COPY requirements.txt wheels/ {LIBRARY_DIR}/wheels/\n\
             RUN python3 -m pip install --no-index --no-cache-dir --disable-pip-version-check \
             --break-system-packages --find-links {LIBRARY_DIR}/wheels -r {LIBRARY_DIR}/wheels/requirements.txt \
             && rm -rf {LIBRARY_DIR}/wheels\n"
        ));
    }
    file.push_str(&format!(
        "COPY metaexec {LIBRARY_DIR}/metaexec\n\
         ENV PYTHONPATH={LIBRARY_DIR} PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PYTHONIOENCODING=utf-8\n"
    ));
    file
}

/// Fetches wheels for `packages` (and what they depend on) for CPython `python` on
/// Linux, through this machine's pip; cached by what was asked for.
fn download_wheels(packages: &[String], requirements: &str, python: &str, root: &Path) -> Result<PathBuf, Unavailable> {
    let mut hash = Sha256::new();
    hash.update(requirements.as_bytes());
    hash.update(python.as_bytes());
    let dir = root.join(hex(&hash.finalize()[..8]));
    if dir.join(".complete").is_file() {
        return Ok(dir);
    }
    let failed = |problem: String| {
        Unavailable::new(
            format!("Could not fetch the script's packages ({}) with pip: {problem}", packages.join(", ")),
            "check the package names and this machine's pip configuration (`pip config list`); packages are \
             installed from wheels, so each needs one for Linux",
        )
    };
    let partial = dir.with_extension("partial");
    let _ = std::fs::remove_dir_all(&partial);
    std::fs::create_dir_all(&partial).map_err(|e| failed(e.to_string()))?;
    std::fs::write(partial.join("requirements.txt"), requirements).map_err(|e| failed(e.to_string()))?;
    let arch = std::env::consts::ARCH;
    let abi = format!("cp{}", python.replace('.', ""));
    let mut command = Command::new(python_command());
    command.args(["-m", "pip", "download", "--quiet", "--disable-pip-version-check", "--only-binary=:all:"]);
    command.args([
        "--implementation",
        "cp",
        "--python-version",
        python,
        "--abi",
        &abi,
        "--abi",
        "abi3",
        "--abi",
        "none",
    ]);
    // The manylinux tags a glibc-based image accepts, newest last.
    for platform in ["linux", "manylinux1", "manylinux2010", "manylinux2014"]
        .into_iter()
        .map(str::to_owned)
        .chain((5..=36).map(|minor| format!("manylinux_2_{minor}")))
    {
        command.args(["--platform", &format!("{platform}_{arch}")]);
    }
    command.arg("--dest").arg(&partial).arg("-r").arg(partial.join("requirements.txt"));
    let output = command.output().map_err(|e| failed(format!("could not start `{}`: {e}", python_command())))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let tail: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).rev().take(3).collect();
        return Err(failed(tail.into_iter().rev().collect::<Vec<_>>().join(" / ")));
    }
    std::fs::write(partial.join(".complete"), b"").map_err(|e| failed(e.to_string()))?;
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::rename(&partial, &dir).map_err(|e| failed(e.to_string()))?;
    Ok(dir)
}

fn python_command() -> String {
    std::env::var("METAEXEC_PIP_PYTHON").unwrap_or_else(|_| "python3".into())
}

/// The build context: the Dockerfile, the wheels with `requirements.txt` among them, and
/// the guest library.
fn environment_context(dockerfile: &str, requirements: &str, wheels: Option<&Path>) -> std::io::Result<Vec<u8>> {
    let mut tar = tar::Builder::new(Vec::new());
    append(&mut tar, "Dockerfile", dockerfile.as_bytes(), 0o644)?;
    append(&mut tar, "requirements.txt", requirements.as_bytes(), 0o644)?;
    if let Some(wheels) = wheels {
        let mut names: Vec<_> = std::fs::read_dir(wheels)?.collect::<Result<_, _>>()?;
        names.sort_by_key(|e| e.file_name());
        for entry in names {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.ends_with(".whl") {
                append(&mut tar, &format!("wheels/{name}"), &std::fs::read(entry.path())?, 0o644)?;
            }
        }
    }
    for (path, text) in library_files() {
        append(&mut tar, path, text.as_bytes(), 0o644)?;
    }
    tar.into_inner()
}

/// Adds a file to a tar being built.
pub fn append(tar: &mut tar::Builder<Vec<u8>>, path: &str, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    let mut header = tar::Header::new_gnu();
    header.set_size(bytes.len() as u64);
    header.set_mode(mode);
    header.set_mtime(0);
    header.set_cksum();
    tar.append_data(&mut header, path, bytes)
}

/// Builds `tag` from a tar context with no network, intermediate containers removed
/// whatever happens; the build's last lines when it fails.
pub async fn build(docker: &Docker, tag: &str, labels: &HashMap<&str, &str>, context: Vec<u8>) -> Result<(), String> {
    let options = BuildImageOptionsBuilder::default()
        .dockerfile("Dockerfile")
        .t(tag)
        .rm(true)
        .forcerm(true)
        .networkmode("none")
        .labels(labels)
        .build();
    let mut stream = docker.build_image(options, None, Some(bollard::body_full(context.into())));
    let mut log: Vec<String> = Vec::new();
    while let Some(item) = stream.next().await {
        match item {
            Ok(info) => {
                if let Some(detail) = info.error_detail.and_then(|d| d.message) {
                    log.push(detail);
                    return Err(last_lines(&log));
                }
                if let Some(line) = info.stream {
                    log.extend(line.lines().filter(|l| !l.trim().is_empty()).map(str::to_owned));
                }
            }
            Err(e) => {
                log.push(e.to_string());
                return Err(last_lines(&log));
            }
        }
    }
    Ok(())
}

fn last_lines(log: &[String]) -> String {
    let start = log.len().saturating_sub(4);
    log[start..].join(" / ")
}

/// Lower-case hexadecimal.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// What `metaexec docker base-image` did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BaseImageReport {
    /// The tag.
    pub tag: String,
    /// The Python it holds, `major.minor`.
    pub python: String,
    /// Whether it was built now (false: it was there already).
    pub built: bool,
}

/// Builds a Python base image from Debian packages with debootstrap (minbase, python3,
/// pip, CA certificates) and imports it as `tag`; reuses it when it exists, unless
/// `rebuild`. Needs root and `debootstrap`; no registry.
pub async fn build_base_image(
    docker: &Docker,
    tag: &str,
    suite: &str,
    mirror: &str,
    work: &Path,
    rebuild: bool,
    progress: &Progress,
) -> anyhow::Result<BaseImageReport> {
    use anyhow::Context as _;
    if !rebuild && let Ok(inspected) = docker.inspect_image(tag).await {
        let python = inspected.config.and_then(|c| c.labels).and_then(|l| l.get(PYTHON_LABEL).cloned());
        if let Some(python) = python {
            return Ok(BaseImageReport { tag: tag.to_owned(), python, built: false });
        }
    }
    let rootfs = work.join("rootfs");
    let _ = std::fs::remove_dir_all(work);
    std::fs::create_dir_all(work).with_context(|| format!("creating {}", work.display()))?;
    progress(&format!("debootstrap {suite} (minbase, python3, pip) from {mirror}: about 2 minutes"));
    let status = Command::new("debootstrap")
        .args(["--variant=minbase", "--include=python3,python3-pip,ca-certificates", suite])
        .arg(&rootfs)
        .arg(mirror)
        .stdout(std::process::Stdio::null())
        .status()
        .context("could not start debootstrap: install it (`apt-get install debootstrap`); it must run as root")?;
    anyhow::ensure!(status.success(), "debootstrap failed ({status}); it must run as root, with {mirror} reachable");
    let python = python_version_in(&rootfs).context("the new root file system has no python3")?;
    progress(&format!("importing it as {tag} (Python {python})"));
    let rootfs_tar = work.join("rootfs.tar");
    let status = Command::new("tar")
        .arg("-C")
        .arg(&rootfs)
        .args(["--numeric-owner", "-cf"])
        .arg(&rootfs_tar)
        .arg(".")
        .status()
        .context("could not start tar")?;
    anyhow::ensure!(status.success(), "tar failed ({status})");
    let dockerfile = "FROM scratch\nADD rootfs.tar /\n\
         ENV LANG=C.UTF-8 PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\nCMD [\"python3\"]\n";
    let mut context = tar::Builder::new(Vec::new());
    append(&mut context, "Dockerfile", dockerfile.as_bytes(), 0o644)?;
    let mut file = std::fs::File::open(&rootfs_tar)?;
    context.append_file("rootfs.tar", &mut file)?;
    let context = context.into_inner()?;
    let _ = std::fs::remove_dir_all(work);
    let labels = HashMap::from([(LABEL, "base"), (PYTHON_LABEL, python.as_str())]);
    build(docker, tag, &labels, context).await.map_err(|log| anyhow::anyhow!("building {tag} failed: {log}"))?;
    Ok(BaseImageReport { tag: tag.to_owned(), python, built: true })
}

/// The `major.minor` of the `python3` in a root file system (`usr/bin/python3` links to
/// `python3.11`).
fn python_version_in(rootfs: &Path) -> Option<String> {
    let target = std::fs::read_link(rootfs.join("usr/bin/python3")).ok()?;
    let name = target.file_name()?.to_string_lossy().into_owned();
    name.strip_prefix("python").filter(|v| v.contains('.')).map(str::to_owned)
}
