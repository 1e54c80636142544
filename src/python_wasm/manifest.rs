//! `python-wasm/manifest.json`, embedded at build time and parsed once.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use serde::Deserialize;

/// The pinned runtime, as described by `python-wasm/manifest.json`.
#[derive(Debug, Deserialize)]
pub struct Manifest {
    /// A short label for outcomes (`CPython 3.14 (wasm32-wasip2 component)`).
    pub label: &'static str,
    /// The CPython version inside.
    pub python_version: &'static str,
    /// The WIT package and version the guest app is built against.
    pub interface: &'static str,
    /// The WIT world.
    pub world: &'static str,
    /// The guest app's entry module.
    pub app_module: &'static str,
    /// The build tool.
    pub tool: Tool,
    /// The licences that cover the component.
    pub licenses: Vec<&'static str>,
}

/// The pinned build tool: a PyPI package shipped as one wheel per platform.
#[derive(Debug, Deserialize)]
pub struct Tool {
    /// Distribution name.
    pub package: &'static str,
    /// Exact version.
    pub version: &'static str,
    /// Platform (`linux-x86_64`, as `std::env::consts` spells OS and architecture) to
    /// its wheel.
    pub wheels: BTreeMap<&'static str, Wheel>,
}

/// One platform's wheel.
#[derive(Debug, Deserialize)]
pub struct Wheel {
    /// Its file name on PyPI.
    pub file: &'static str,
    /// Lower-case hex SHA-256.
    pub sha256: &'static str,
}

const MANIFEST_JSON: &str = include_str!("../../python-wasm/manifest.json");

/// The manifest of the runtime.
pub static MANIFEST: LazyLock<Manifest> = LazyLock::new(|| {
    serde_json::from_str(MANIFEST_JSON).expect("python-wasm/manifest.json is valid (checked by tests)")
});

impl Manifest {
    /// A short label for outcomes.
    pub fn label(&self) -> String {
        self.label.to_owned()
    }

    /// `componentize-py==0.25.1`.
    pub fn tool_requirement(&self) -> String {
        format!("{}=={}", self.tool.package, self.tool.version)
    }
}
