//! The engine: one wasmtime `Engine` and one compiled runtime component per
//! configuration (metered or not: fuel changes the generated code), loaded from the
//! on-disk cache of compiled components or compiled once with Cranelift and stored there.
//!
//! A `.cwasm` is valid only for the same wasmtime build and `Config`, so its file name
//! carries the component's SHA-256 and the engine's compatibility hash; a stale file is
//! simply never looked up.
//!
//! A `.cwasm` is native code that runs as it is: loading one is `unsafe` precisely
//! because a tampered file is arbitrary code in the host. So it is written with its own
//! SHA-256 beside it (`.cwasm.sha256`, both through temporary files and renames, in an
//! owner-only folder, files 0600), and loaded only from bytes read into memory and
//! checked against that hash: the bytes checked are the bytes loaded. A file without a
//! hash, with a wrong one, or that wasmtime does not accept (foreign or corrupt) is
//! discarded and the component recompiled, with a line saying why. The component itself
//! is read only through `python_wasm::read_component`, which checks it against the
//! digest recorded when it was built; one that does not verify is deleted, to be built
//! again.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::time::Duration;

use wasmtime::component::Component;
use wasmtime::{Config, Engine};

use crate::python_wasm::{self, Installed};

/// How often the epoch advances; the wall-clock limit is enforced to this granularity.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// The largest compiled runtime read from the cache (it is read into memory to be
/// checked); anything larger is not one metaexec wrote.
const MAX_COMPILED_BYTES: u64 = 2 << 30;

/// Native stack the guest may use. CPython's recursion guard stops Python-level
/// recursion well before this; the margin is for deep C recursion (e.g. `repr` of a
/// deeply nested list), which then traps instead of crashing the host.
const MAX_WASM_STACK: usize = 8 << 20;

/// Why the runtime could not be made ready.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The runtime is not built or does not verify.
    #[error(transparent)]
    Runtime(#[from] python_wasm::VerifyError),
    /// wasmtime refused the configuration.
    #[error("Failed to configure the wasm engine: {0}")]
    Config(String),
    /// Cranelift failed on the component.
    #[error("Failed to compile `{}`: {message}", path.display())]
    Compile {
        /// The wasm.
        path: PathBuf,
        /// wasmtime's message.
        message: String,
    },
}

/// What an engine is configured for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Profile {
    /// Fuel is metered.
    pub metered: bool,
    /// Many fresh instances will follow one another (see `config`).
    pub many_instances: bool,
}

/// The `Config` for a sandbox engine.
pub fn config(profile: Profile) -> Config {
    let mut config = Config::new();
    config.epoch_interruption(true);
    config.consume_fuel(profile.metered);
    // wasmtime-wasi runs host calls on a fiber, whose stack must hold the wasm stack:
    // raise the fiber stack first, or `max_wasm_stack` is rejected.
    config.async_stack_size(MAX_WASM_STACK + (1 << 20));
    config.max_wasm_stack(MAX_WASM_STACK);
    config.wasm_component_model(true);
    // A run starts from the snapshot in the component's data: mapped copy-on-write, not
    // copied, so a fresh instance costs page faults only where the guest writes.
    config.memory_init_cow(true);
    // Instances come from a pool of slots reserved once per engine. A slot keeps its
    // memory resident between instances, up to `KEEP_RESIDENT`, and is reset to the
    // snapshot when an instance ends, so the next one takes fewer page faults. How:
    // - One-off runs (`exec`, `run`): the pages the instance wrote are found with Linux's
    //   PAGEMAP_SCAN and copied back. wasmtime copies at most 32 such stretches and gives
    //   the rest back to the kernel, which costs a process that is about to exit little.
    // - Many fresh instances (`--isolation instance`): the whole snapshot (13 MB) is
    //   copied back. CPython writes all over its heap (reference counts), so after a scan
    //   nearly every page came back as a copy-on-write fault, each a cross-core TLB
    //   shootdown: 1,000 isolated scenarios took 3.1 s with the scan (455,000 page faults)
    //   and 1.5 s with the copy (8,500), on 2 cores. A one-off `exec` pays ~10 ms for the
    //   copy, at exit.
    let pagemap = if profile.many_instances { wasmtime::Enabled::No } else { wasmtime::Enabled::Auto };
    let mut pool = wasmtime::PoolingAllocationConfig::new();
    pool.total_component_instances(POOL_INSTANCES)
        // The runtime is CPython linked from a handful of core modules (libc, libpython,
        // the bindings, the WASI adapter and the glue between them) sharing one memory;
        // it has two tables.
        .max_core_instances_per_component(16)
        .max_memories_per_component(1)
        .max_tables_per_component(2)
        .total_core_instances(POOL_INSTANCES * 16)
        .total_memories(POOL_INSTANCES)
        .total_tables(POOL_INSTANCES * 2)
        .total_stacks(POOL_INSTANCES)
        .linear_memory_keep_resident(KEEP_RESIDENT)
        .table_keep_resident(1 << 20)
        .pagemap_scan(pagemap);
    config.allocation_strategy(pool);
    config
}

/// Instances of one engine alive at once: runs past this wait for a slot (see
/// `Prepared::slots`).
pub const POOL_INSTANCES: u32 = 16;

/// What a pool slot keeps of its last run's pages (see `config`).
const KEEP_RESIDENT: usize = 32 << 20;

/// The file the compiled form of `installed` for `engine` is cached in.
pub fn compiled_path(cache_root: &Path, installed: &Installed, engine: &Engine, metered: bool) -> PathBuf {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut hasher);
    let compat = hasher.finish();
    python_wasm::runtime_dir(cache_root).join("compiled").join(format!(
        "metaexec-sandbox-{}-{compat:016x}{}.cwasm",
        &installed.sha256[..16],
        if metered { "-fuel" } else { "" }
    ))
}

/// A ready engine and its compiled runtime.
pub struct CompiledRuntime {
    /// The engine (shared by every run of this configuration).
    pub engine: Engine,
    /// The compiled component.
    pub component: Component,
    /// What it was compiled from (and the standard library beside it).
    pub installed: Installed,
    /// True if loaded from the cache, false if compiled just now.
    pub from_cache: bool,
}

/// What [`load_or_compile`] tells the person waiting.
#[derive(Debug)]
pub enum CompileNotice {
    /// A cached compiled runtime was refused and deleted; the text says why.
    Discarded(String),
    /// The slow path (verify and compile the `.wasm`) is about to run.
    Compiling,
}

impl fmt::Display for CompileNotice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Discarded(reason) => write!(f, "discarded the cached compiled runtime: {reason}; recompiling"),
            Self::Compiling => f.write_str("compiling the runtime component once (about 10 s; cached afterwards)"),
        }
    }
}

/// Loads the compiled runtime from the cache, or verifies the built component, compiles
/// it and caches the result, telling `notice` both that the slow path runs and why a
/// cached file was refused.
pub fn load_or_compile(
    cache_root: &Path,
    profile: Profile,
    notice: &dyn Fn(CompileNotice),
) -> Result<CompiledRuntime, EngineError> {
    let metered = profile.metered;
    let installed = python_wasm::installed(cache_root)?;
    let engine = Engine::new(&config(profile)).map_err(|e| EngineError::Config(e.to_string()))?;
    let cached = compiled_path(cache_root, &installed, &engine, metered);
    match load_cached(&engine, &cached) {
        Ok(Some(component)) => {
            start_epoch_ticker(&engine);
            return Ok(CompiledRuntime { engine, component, installed, from_cache: true });
        }
        Ok(None) => {}
        Err(reason) => {
            crate::cache::remove_with_digest(&cached);
            notice(CompileNotice::Discarded(reason));
        }
    }
    let bytes = match python_wasm::read_component(&installed) {
        Ok(bytes) => bytes,
        Err(e) => {
            // Not what was built: delete it, so that the runtime is built again.
            crate::cache::remove_with_digest(&installed.component);
            return Err(e.into());
        }
    };
    notice(CompileNotice::Compiling);
    let compile_error = |message: String| EngineError::Compile { path: installed.component.clone(), message };
    let component = Component::new(&engine, &bytes).map_err(|e| compile_error(format!("{e:#}")))?;
    match component.serialize() {
        Ok(serialized) => {
            // The folder holds native code: owner-only even if an older metaexec made it.
            let stored = cached
                .parent()
                .map_or(Ok(()), crate::cache::restrict_dir)
                .and_then(|()| crate::cache::write_with_digest(&cached, &serialized));
            if let Err(e) = stored {
                tracing::warn!(path = %cached.display(), error = %e, "could not cache the compiled runtime");
            }
        }
        Err(e) => tracing::warn!(error = %e, "could not serialise the compiled runtime"),
    }
    start_epoch_ticker(&engine);
    Ok(CompiledRuntime { engine, component, installed, from_cache: false })
}

/// The cached compiled runtime at `path`: `Ok(None)` when there is none, `Err` with the
/// reason when there is one that must not be used.
fn load_cached(engine: &Engine, path: &Path) -> Result<Option<Component>, String> {
    let refused = |e: wasmtime::Error| format!("wasmtime refused `{}` (foreign or corrupt): {e}", path.display());
    if crate::cache::verified_unchanged(path) {
        // SAFETY: the file is, by device, inode, size and change time, the one whose bytes
        // matched their SHA-256 at an earlier start (see `crate::cache`), in an owner-only
        // folder. Mapping it instead of reading and hashing it again saves ~70 ms a start.
        return unsafe { Component::deserialize_file(engine, path) }.map(Some).map_err(refused);
    }
    let Some(bytes) = crate::cache::read_with_digest(path, MAX_COMPILED_BYTES).map_err(|e| e.to_string())? else {
        return Ok(None);
    };
    // SAFETY: `bytes` are exactly the bytes whose SHA-256 metaexec stored beside the file
    // when it wrote them from `Component::serialize` (in an owner-only folder), so they are
    // what this process's wasmtime produced; wasmtime itself refuses an artefact of
    // another version or `Config` (the name carries the compatibility hash too).
    let component = unsafe { Component::deserialize(engine, &bytes) }.map_err(refused)?;
    if let Err(e) = crate::cache::mark_verified(path) {
        tracing::debug!("could not record that `{}` verified: {e}", path.display());
    }
    Ok(Some(component))
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
