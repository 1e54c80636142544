//! `metaexec runtime fetch|info`: build and inspect the runtime component.

use std::path::Path;
use std::time::Instant;

use clap::Subcommand;
use serde::Serialize;

use super::note;
use crate::python_wasm::{self, MANIFEST};
use crate::sandbox::{SandboxOptions, WasiSandbox};

/// Runtime subcommands.
#[derive(Debug, Subcommand)]
pub enum RuntimeCommand {
    /// Obtain the pinned build tool (componentize-py, with the machine's pip; its wheel's
    /// SHA-256 is checked), build the runtime component from the guest app embedded in
    /// this binary, and compile it once. Every command that needs the runtime does this
    /// by itself the first time; this does it ahead of time.
    Fetch {
        /// Build and compile again even if a verified runtime is installed.
        #[arg(long)]
        force: bool,
    },
    /// Show what is installed, whether it verifies, and the licences.
    Info {
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
}

/// Runs the command; returns the exit code.
pub fn run(command: RuntimeCommand, cache_root: &Path) -> i32 {
    match command {
        RuntimeCommand::Fetch { force } => fetch(cache_root, force),
        RuntimeCommand::Info { json } => info(cache_root, json),
    }
}

fn fetch(cache_root: &Path, force: bool) -> i32 {
    let started = Instant::now();
    if force {
        // The compiled forms go too: they are rebuilt from the new component.
        let _ = std::fs::remove_dir_all(python_wasm::runtime_dir(cache_root).join("compiled"));
    }
    let installed = match python_wasm::fetch(cache_root, force, &|line| note(&format!("metaexec: {line}"))) {
        Ok(installed) => installed,
        Err(e) => {
            eprintln!("error[runtime_missing]: {e}");
            eprintln!("hint: {}", e.hint());
            return 2;
        }
    };
    let mut options = SandboxOptions::new(cache_root);
    options.auto_fetch = false;
    options.progress = std::sync::Arc::new(|line| note(&format!("metaexec: {line}")));
    if let Err(e) = WasiSandbox::new(options).prepare(false) {
        let error = e.to_outcome_error();
        eprintln!("error[{}]: {}", error.kind.as_str(), error.message);
        if let Some(hint) = &error.hint {
            eprintln!("hint: {hint}");
        }
        return 2;
    }
    note(&format!("metaexec: the runtime is ready ({:.1} s)", started.elapsed().as_secs_f64()));
    println!("{}", installed.component.display());
    0
}

/// What `runtime info --json` prints.
#[derive(Serialize)]
struct Info<'a> {
    runtime: &'a str,
    python_version: &'a str,
    interface: &'a str,
    build_tool: String,
    platform: String,
    tool_wheel: Option<&'a str>,
    tool_sha256: Option<&'a str>,
    build_id: String,
    component: String,
    component_sha256: Option<String>,
    stdlib: Option<String>,
    installed: bool,
    verified: bool,
    problem: Option<String>,
    compiled: Vec<String>,
    licenses: &'a [&'a str],
}

fn info(cache_root: &Path, json: bool) -> i32 {
    let wheel = python_wasm::tool_wheel();
    let installed = python_wasm::installed(cache_root);
    let verification = installed
        .as_ref()
        .map_err(ToString::to_string)
        .and_then(|installed| python_wasm::read_component(installed).map(|_| ()).map_err(|e| e.to_string()));
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
        runtime: MANIFEST.label,
        python_version: MANIFEST.python_version,
        interface: MANIFEST.interface,
        build_tool: MANIFEST.tool_requirement(),
        platform: python_wasm::platform(),
        tool_wheel: wheel.map(|w| w.file),
        tool_sha256: wheel.map(|w| w.sha256),
        build_id: python_wasm::build_id(),
        component: python_wasm::component_path(cache_root).display().to_string(),
        component_sha256: installed.as_ref().ok().map(|i| i.sha256.clone()),
        stdlib: installed.as_ref().ok().map(|i| i.stdlib.display().to_string()),
        installed: installed.is_ok(),
        verified: verification.is_ok(),
        problem: verification.as_ref().err().cloned(),
        compiled,
        licenses: &MANIFEST.licenses,
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&info).expect("info serialises"));
    } else {
        println!("runtime:    {} (interface {})", info.runtime, info.interface);
        println!("built with: {} for {}", info.build_tool, info.platform);
        match (info.tool_wheel, info.tool_sha256) {
            (Some(file), Some(sha)) => println!("tool wheel: {file}, sha256 {sha}"),
            _ => println!("tool wheel: none pinned for this platform"),
        }
        println!("component:  {}", info.component);
        if let Some(sha) = &info.component_sha256 {
            println!("sha256:     {sha}");
        }
        if let Some(stdlib) = &info.stdlib {
            println!("stdlib:     {stdlib}");
        }
        match &info.problem {
            None => println!("status:     built, verified"),
            Some(problem) => {
                println!("status:     {problem}");
                println!("hint:       run `metaexec runtime fetch`");
            }
        }
        for file in &info.compiled {
            println!("compiled:   {file}");
        }
        for license in info.licenses {
            println!("licence:    {license}");
        }
    }
    if info.verified { 0 } else { 1 }
}
