//! The engine: one wasmtime `Engine` and one compiled interpreter per configuration
//! (metered or not: fuel changes the generated code), loaded from the on-disk cache of
//! compiled modules or compiled once with Cranelift and stored there.
//!
//! A `.cwasm` is valid only for the same wasmtime build and `Config`, so its file name
//! carries the wasm's SHA-256 and the engine's compatibility hash; a stale or foreign
//! file is simply never looked up, and one that fails to load is recompiled.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::time::Duration;

use wasmtime::{Config, Engine, Module};

use crate::python_wasm::{self, MANIFEST};

/// How often the epoch advances; the wall-clock limit is enforced to this granularity.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Native stack the guest may use. CPython's recursion guard stops Python-level
/// recursion well before this; the margin is for deep C recursion (e.g. `repr` of a
/// deeply nested list), which then traps instead of crashing the host.
const MAX_WASM_STACK: usize = 8 << 20;

/// Why the interpreter could not be made ready.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The runtime is not installed or does not verify.
    #[error(transparent)]
    Runtime(#[from] python_wasm::VerifyError),
    /// wasmtime refused the configuration.
    #[error("Failed to configure the wasm engine: {0}")]
    Config(String),
    /// Cranelift failed on the module.
    #[error("Failed to compile `{}`: {message}", path.display())]
    Compile {
        /// The wasm.
        path: PathBuf,
        /// wasmtime's message.
        message: String,
    },
}

/// The `Config` for a sandbox engine.
pub fn config(metered: bool) -> Config {
    let mut config = Config::new();
    config.epoch_interruption(true);
    config.consume_fuel(metered);
    // wasmtime-wasi runs host calls on a fiber, whose stack must hold the wasm stack:
    // raise the fiber stack first, or `max_wasm_stack` is rejected.
    config.async_stack_size(MAX_WASM_STACK + (1 << 20));
    config.max_wasm_stack(MAX_WASM_STACK);
    config
}

/// The file a compiled module for `engine` is cached in.
pub fn compiled_path(cache_root: &Path, engine: &Engine, metered: bool) -> PathBuf {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut hasher);
    let compat = hasher.finish();
    python_wasm::runtime_dir(cache_root).join("compiled").join(format!(
        "{}-{}-{compat:016x}{}.cwasm",
        MANIFEST.name.trim_end_matches(".wasm"),
        &MANIFEST.sha256[..16],
        if metered { "-fuel" } else { "" }
    ))
}

/// A ready engine and its compiled interpreter.
pub struct CompiledRuntime {
    /// The engine (shared by every run of this configuration).
    pub engine: Engine,
    /// The compiled CPython.
    pub module: Module,
    /// True if loaded from the cache, false if compiled just now.
    pub from_cache: bool,
}

/// Loads the compiled interpreter from the cache, or verifies the installed `.wasm`,
/// compiles it and caches the result. `on_compile` is told before the slow path runs.
pub fn load_or_compile(
    cache_root: &Path,
    metered: bool,
    on_compile: &dyn Fn(),
) -> Result<CompiledRuntime, EngineError> {
    let engine = Engine::new(&config(metered)).map_err(|e| EngineError::Config(e.to_string()))?;
    let cached = compiled_path(cache_root, &engine, metered);
    if cached.exists() {
        // SAFETY: the file was written by `Module::serialize` of this same wasmtime build
        // and config (the name carries the compatibility hash) into metaexec's own cache.
        if let Ok(module) = unsafe { Module::deserialize_file(&engine, &cached) } {
            start_epoch_ticker(&engine);
            return Ok(CompiledRuntime { engine, module, from_cache: true });
        }
        tracing::warn!(path = %cached.display(), "compiled interpreter did not load; recompiling");
    }
    let wasm = python_wasm::wasm_path(cache_root);
    python_wasm::verify_file(&wasm)?;
    on_compile();
    let compile_error = |message: String| EngineError::Compile { path: wasm.clone(), message };
    let bytes = std::fs::read(&wasm).map_err(|e| compile_error(e.to_string()))?;
    let module = Module::new(&engine, &bytes).map_err(|e| compile_error(e.to_string()))?;
    match module.serialize() {
        Ok(serialized) => {
            if let Err(e) = crate::cache::write_atomically(&cached, &serialized) {
                tracing::warn!(path = %cached.display(), error = %e, "could not cache the compiled interpreter");
            }
        }
        Err(e) => tracing::warn!(error = %e, "could not serialise the compiled interpreter"),
    }
    start_epoch_ticker(&engine);
    Ok(CompiledRuntime { engine, module, from_cache: false })
}

/// Advances `engine`'s epoch every `EPOCH_TICK` for the life of the process, so running
/// guest code notices its deadline. One thread per engine; engines live as long as the
/// process.
fn start_epoch_ticker(engine: &Engine) {
    let engine = engine.clone();
    std::thread::Builder::new()
        .name("metaexec-epoch".into())
        .spawn(move || {
            loop {
                std::thread::sleep(EPOCH_TICK);
                engine.increment_epoch();
            }
        })
        .expect("spawning the epoch thread");
}
