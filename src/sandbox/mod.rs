//! The default backend: Python scripts run in the runtime component (CPython 3.14 with
//! the guest library pre-imported into its snapshot), embedded in wasmtime, under fuel,
//! epoch and memory limits, with an outer wall-clock deadline.
//!
//! Everything wasmtime lives here. The rest of the program sees `WasiSandbox` as an
//! `Executor`. Deny by default: a run sees an environment with no host variables, its
//! results folder (read-write, as `/results` and the working directory), the standard
//! library (read-only, as `/python`) and nothing else; no sockets; no stdin. It reaches
//! the host only through the imports of `runtime/wit/metaexec.wit` (`host.rs`), and the
//! host runs it only through the exports: `load` once, then `run` once per run or per
//! sweep scenario, each in a fresh `__main__`.

pub(crate) mod bindings;
pub(crate) mod classify;
mod compile_check;
mod engine;
pub(crate) mod host;
mod limiter;
pub(crate) mod session;
mod streams;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use wasmtime::Store;
use wasmtime::component::{Linker, ResourceTable};
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxBuilder};

pub use compile_check::CompileCheck;
pub use engine::EngineError;
pub use session::{CapturedStream, LogSink};

use crate::executor::Executor;
use crate::job::{Job, Limits};
use crate::outcome::{ErrorKind, Outcome, OutcomeError};
use crate::python_wasm::{self, MANIFEST};
use crate::scenario::ScenarioQueue;
use bindings::{Mode, Sandbox, SandboxPre};
use classify::Ending;
use host::RunState;
use limiter::MemoryLimiter;
use session::{Session, SessionConfig, SweepClock, SweepState};
use streams::GuestOutput;

/// Where the guest sees its results folder.
pub const GUEST_RESULTS: &str = "/results";
/// Where the guest sees the standard library (the snapshot's `sys.path` starts there).
pub const GUEST_PYTHON_HOME: &str = "/python";

/// Extra time the outer deadline allows past the epoch deadline, so that running code is
/// stopped by the epoch (a clean trap) and only a guest blocked in a host call needs the
/// outer one.
const OUTER_DEADLINE_SLACK: Duration = Duration::from_millis(50);

/// The least time a sweep instance gets outside its scenarios (instantiating and
/// compiling the script, between batches), however short the scenario limit.
const MIN_STRETCH_LIMIT: Duration = Duration::from_secs(2);

/// Scripts compiled by the runtime, kept so that the next instance running the same
/// script loads its code instead of compiling it again (`--isolation instance` sweeps,
/// repeated runs): keyed by the SHA-256 of name and source, at most this many.
const COMPILED_SCRIPTS: usize = 32;
/// The largest compiled script kept.
const MAX_COMPILED_SCRIPT: usize = 8 << 20;

/// A compiled runtime with its linker applied, ready to instantiate per run.
struct Prepared {
    engine: wasmtime::Engine,
    pre: SandboxPre<RunState>,
    /// Compiled scripts (see `COMPILED_SCRIPTS`). The bytes are what the runtime's `load`
    /// returned before any of the script's own code ran in that instance, so no script
    /// can put something of its own here.
    compiled: Mutex<std::collections::HashMap<[u8; 32], Arc<[u8]>>>,
    /// The standard library, mounted read-only at `/python`.
    stdlib: PathBuf,
    /// Whether the engine meters fuel; a metered engine runs out at once without any.
    metered: bool,
    /// One permit per slot of the engine's instance pool: a run past the pool's size
    /// waits for a slot instead of failing to instantiate.
    slots: tokio::sync::Semaphore,
}

/// Options of a sandbox.
#[derive(Clone)]
pub struct SandboxOptions {
    /// The cache root (see `crate::cache`).
    pub cache_root: PathBuf,
    /// Build the runtime when it is missing (once per process).
    pub auto_fetch: bool,
    /// Progress lines for the person waiting (fetching, building, compiling).
    pub progress: Arc<dyn Fn(&str) + Send + Sync>,
    /// Where `metaexec.log` lines go as they arrive.
    pub on_log: Option<LogSink>,
    /// The process will start many fresh instances (an `--isolation instance` sweep, a
    /// long-lived process): the instance pool resets a slot for the next instance by
    /// copying the whole snapshot back, which costs a one-off run its tail (see
    /// `engine::config`).
    pub many_instances: bool,
}

impl SandboxOptions {
    /// Defaults: the user cache, auto-fetch on, progress to the `tracing` log.
    pub fn new(cache_root: impl Into<PathBuf>) -> Self {
        Self {
            cache_root: cache_root.into(),
            auto_fetch: true,
            progress: Arc::new(|line| tracing::info!("{line}")),
            on_log: None,
            many_instances: false,
        }
    }
}

/// Why the sandbox could not be made ready.
#[derive(Debug, thiserror::Error)]
pub enum PrepareError {
    /// The runtime is missing or broken and was not (or could not be) built.
    #[error("{source}")]
    RuntimeMissing {
        /// What is wrong with it.
        #[source]
        source: EngineError,
        /// Why building it did not help, if it was tried, with what to do.
        fetch_error: Option<(String, String)>,
    },
    /// The engine or the linker failed.
    #[error("{0}")]
    Engine(String),
}

impl PrepareError {
    /// The outcome error for a run that could not start.
    pub fn to_outcome_error(&self) -> OutcomeError {
        match self {
            Self::RuntimeMissing { fetch_error, .. } => {
                let mut message = self.to_string();
                let mut hint = "run `metaexec runtime fetch` (it needs Python 3 with pip, once)".to_owned();
                if let Some((error, fetch_hint)) = fetch_error {
                    message.push_str(&format!("\n{error}"));
                    hint = fetch_hint.clone();
                }
                OutcomeError::new(ErrorKind::RuntimeMissing, message).with_hint(hint)
            }
            Self::Engine(message) => OutcomeError::new(ErrorKind::Internal, message.clone()),
        }
    }
}

struct Inner {
    options: SandboxOptions,
    /// `[unmetered, metered]`, prepared on first use.
    prepared: [Mutex<Option<Arc<Prepared>>>; 2],
    fetch_tried: Mutex<bool>,
}

/// The WASI CPython backend.
#[derive(Clone)]
pub struct WasiSandbox {
    inner: Arc<Inner>,
}

impl WasiSandbox {
    /// A sandbox; nothing is loaded until the first run (or `prepare`).
    pub fn new(options: SandboxOptions) -> Self {
        Self {
            inner: Arc::new(Inner {
                options,
                prepared: [Mutex::new(None), Mutex::new(None)],
                fetch_tried: Mutex::new(false),
            }),
        }
    }

    /// Loads (or builds, verifies and compiles) the runtime for metered or unmetered
    /// runs. Blocking; the first call may take seconds, later calls are free.
    pub fn prepare(&self, metered: bool) -> Result<(), PrepareError> {
        self.inner.prepare(metered).map(|_| ())
    }

    /// The label of the runtime (`CPython 3.14 (wasm32-wasip2 component)`).
    pub fn runtime_label(&self) -> String {
        MANIFEST.label()
    }

    /// Runs a job. Same as `Executor::execute`.
    pub async fn run(&self, job: &Job) -> Outcome {
        let mut outcome = self.run_uncleaned(job).await;
        outcome.sanitized = sanitize_results(&job.results_dir);
        outcome
    }

    /// Runs a job and leaves its results folder as the script left it: for a caller that
    /// cleans the folder itself once many runs are done (`--isolation instance` sweeps,
    /// where walking the folder after every scenario would cost more than the scenario).
    pub async fn run_uncleaned(&self, job: &Job) -> Outcome {
        match self.ready(job).await {
            Ok(prepared) => run_instance(&prepared, self.inner.options.on_log.clone(), job, None).await.0,
            Err(outcome) => outcome,
        }
    }

    /// The prepared runtime (metered or not, as `job` needs), preparing it on first use
    /// off the async threads; the outcome of a run that could not start otherwise.
    async fn ready(&self, job: &Job) -> Result<Arc<Prepared>, Outcome> {
        let metered = job.limits.fuel.is_some();
        if let Some(prepared) = self.inner.cached(metered) {
            return Ok(prepared);
        }
        let inner = self.inner.clone();
        match tokio::task::spawn_blocking(move || inner.prepare(metered)).await {
            Ok(Ok(prepared)) => Ok(prepared),
            Ok(Err(e)) => Err(not_started(e.to_outcome_error())),
            Err(e) => {
                let message = format!("preparing the sandbox panicked: {e}");
                Err(not_started(OutcomeError::new(ErrorKind::Internal, message)))
            }
        }
    }

    /// Runs `job`'s script over every scenario `queue` hands out, in one warm instance
    /// after another: the script is compiled once per instance and each scenario runs in
    /// a fresh module namespace; one that raises is recorded and the next starts at once;
    /// one that stops the instance (a limit, a trap) is recorded and a fresh instance
    /// takes over the rest. `job.limits` hold per scenario, and to every stretch of guest
    /// time between scenarios too; `metaexec.log` lines are kept per scenario, not sent
    /// to `on_log`. `Err` when an instance fails outside any scenario (the script does
    /// not compile, the runtime is missing, it ran past a limit while starting): nothing
    /// more can run. The caller cleans the results folder (`sanitize_results`) once all
    /// workers are done.
    pub async fn run_sweep(&self, job: &Job, queue: Arc<dyn ScenarioQueue>) -> Result<(), Box<Outcome>> {
        let prepared = self.ready(job).await.map_err(Box::new)?;
        loop {
            // Log lines stay with their scenario's outcome: thousands of scenarios a second
            // would drown a live log.
            let (outcome, end) = run_instance(&prepared, None, job, Some(queue.clone())).await;
            // Told to stop: however the instance ended, what finished is recorded and
            // the rest is not to be run.
            if queue.cancelled() {
                return Ok(());
            }
            // Each replacement follows a settled scenario, so this loop ends.
            if end.failed_running {
                continue;
            }
            if let Some(error) = outcome.error.clone().filter(|e| e.kind == ErrorKind::Protocol && end.settled > 0) {
                queue.instance_failed(error);
                continue;
            }
            return if outcome.is_ok() { Ok(()) } else { Err(Box::new(outcome)) };
        }
    }
}

fn not_started(error: OutcomeError) -> Outcome {
    let mut outcome = Outcome::failed_before_start(error, "wasi");
    outcome.runtime = MANIFEST.label();
    outcome
}

/// Removes what a guest left in its results folder that the host or the user's tools
/// could be led astray by (see `GuestDir::sanitize`); what was removed.
pub fn sanitize_results(dir: &Path) -> Vec<crate::guest_dir::Sanitized> {
    match crate::guest_dir::GuestDir::open(dir).and_then(|dir| dir.sanitize()) {
        Ok(removed) => {
            for item in &removed {
                // Debug formatting: the name is the guest's, and may hold control characters.
                tracing::warn!(path = ?item.path, kind = %item.kind, "removed from the results folder");
            }
            removed
        }
        Err(e) => {
            tracing::warn!("could not check the results folder `{}`: {e}", dir.display());
            Vec::new()
        }
    }
}

/// How a sweep instance ended, besides its outcome.
#[derive(Debug, Default, Clone, Copy)]
struct InstanceEnd {
    /// A running scenario was stopped with the instance (and recorded as failed).
    failed_running: bool,
    /// Scenarios the instance settled, that one included.
    settled: usize,
}

/// The seed of `random` for a sweep scenario: derived from the sweep's base seed and the
/// scenario's id, so a scenario draws the same numbers whichever instance runs it.
pub fn scenario_seed(base: u64, scenario_id: &str) -> u64 {
    // FNV-1a over the id, then a SplitMix64 finaliser over both.
    let mut hash = 0xcbf2_9ce4_8422_2325_u64;
    for byte in scenario_id.bytes() {
        hash = (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
    }
    let mut z = base ^ hash.rotate_left(29);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// What a compiled script is kept under: its name (tracebacks carry it) and source.
fn script_key(job: &Job) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    hasher.update(job.script_name.as_bytes());
    hasher.update([0]);
    hasher.update(job.source.as_bytes());
    hasher.finalize().into()
}

/// A fresh seed for a run that asked for none.
fn fresh_seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher
        .write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos());
    hasher.finish()
}

/// The most a guest may hand the host in one call (wasmtime's "hostcall fuel", counted in
/// bytes): room for a result as large as the results cap allows, and never less than
/// wasmtime's own default.
pub(crate) fn hostcall_fuel(limits: &Limits) -> usize {
    limits.results_bytes.saturating_add(1 << 20).max(128 << 20)
}

/// The fuel a call starts with: the job's budget for a script's own code (a run, a
/// scenario), all of it otherwise on a metered engine (instantiating, compiling the
/// script), none on an unmetered one.
fn call_fuel(prepared: &Prepared, limits: &Limits, script: bool) -> Option<u64> {
    if !prepared.metered {
        return None;
    }
    Some(if script { limits.fuel.unwrap_or(u64::MAX) } else { u64::MAX })
}

/// One instance: a single run, or (with `sweep`) one instance of a sweep, running
/// scenarios until the queue is empty or something stops it.
async fn run_instance(
    prepared: &Prepared,
    on_log: Option<LogSink>,
    job: &Job,
    sweep: Option<Arc<dyn ScenarioQueue>>,
) -> (Outcome, InstanceEnd) {
    let started = Instant::now();
    let sweeping = sweep.is_some();
    if let Err(e) = std::fs::create_dir_all(&job.results_dir) {
        return not_started(
            OutcomeError::new(
                ErrorKind::Usage,
                format!("Failed to create the results folder `{}`: {e}", job.results_dir.display()),
            )
            .with_hint("pass a writable folder with `--results DIR`"),
        )
        .into();
    }
    let session = Session::new(SessionConfig {
        stdout_cap: job.limits.stdout_bytes,
        stderr_cap: job.limits.stderr_bytes,
        results_cap: job.limits.results_bytes,
        on_log,
        db: job.db.clone(),
        sweep: sweep.map(|queue| SweepState::new(queue, job.limits.clone())),
        budget: job.budget.clone(),
    });
    let wasi = match build_wasi(job, &prepared.stdlib, &session) {
        Ok(wasi) => wasi,
        Err(e) => return not_started(e).into(),
    };
    // Declared before the store, so dropped after it: the slot is free once the
    // instance is gone. (The semaphore is never closed.)
    let Ok(_slot) = prepared.slots.acquire().await else {
        return not_started(OutcomeError::new(ErrorKind::Internal, "the instance pool was closed")).into();
    };
    let state = RunState {
        wasi,
        table: ResourceTable::new(),
        limiter: MemoryLimiter::new(job.limits.memory_bytes),
        session: session.clone(),
    };
    let mut store = Store::new(&prepared.engine, state);
    store.limiter(|state| &mut state.limiter);
    store.set_hostcall_fuel(hostcall_fuel(&job.limits));
    if let Some(fuel) = call_fuel(prepared, &job.limits, false)
        && let Err(e) = store.set_fuel(fuel)
    {
        return not_started(OutcomeError::new(ErrorKind::Internal, format!("setting fuel: {e}"))).into();
    }
    if sweeping {
        // Limits hold per scenario and per stretch between scenarios: every tick, check
        // the current stretch's clock.
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(scenario_watch(session.clone(), &job.limits));
    } else {
        store.set_epoch_deadline(1);
        // From here, not from `started`: time spent waiting for a pool slot is not the
        // script's.
        store.epoch_deadline_callback(run_watch(Instant::now(), job.limits.timeout));
    }

    let drive = async {
        let t0 = Instant::now();
        let instance = prepared.pre.instantiate_async(&mut store).await?;
        tracing::debug!(elapsed_us = t0.elapsed().as_micros() as u64, "instantiated");
        let outcome = drive_instance(prepared, &instance, &mut store, job, &session).await;
        tracing::debug!(elapsed_us = t0.elapsed().as_micros() as u64, "guest finished");
        outcome
    };
    let deadline = async {
        if sweeping {
            scenario_deadline(&session, &job.limits).await;
        } else {
            tokio::time::sleep(job.limits.timeout + OUTER_DEADLINE_SLACK).await;
        }
    };
    let ending = tokio::select! {
        result = drive => match result {
            Ok(()) => Ending::Returned,
            Err(error) => Ending::from_error(&error),
        },
        () = deadline => Ending::Deadline,
    };
    let fuel_used = match (job.limits.fuel, sweeping) {
        (Some(fuel), false) => Some(fuel.saturating_sub(store.get_fuel().unwrap_or(0))),
        _ => None,
    };
    let limiter = &store.data().limiter;
    let mut state = session.lock();
    let report = classify::RunReport {
        ending,
        state: &mut state,
        memory_hit: limiter.hit,
        peak_memory: limiter.peak as u64,
        fuel_used,
        job,
        wall: started.elapsed(),
        runtime: MANIFEST.label(),
    };
    // A sweep instance that stops always settles its running scenario, even on a clean
    // exit (`os._exit(0)` mid-scenario): every scenario handed out gets an outcome.
    let mut end = InstanceEnd::default();
    if sweeping && report.state.sweep_cancelled() {
        // Stopped by the cancellation, or finished as it came: either way the running
        // scenario (if any) has no answer and is left out rather than failed.
        report.state.abandon_current_scenario();
    } else if sweeping {
        let error = classify::error(&report).map(|(error, _)| error).unwrap_or_else(|| {
            OutcomeError::new(
                ErrorKind::GuestException,
                "the script ended the interpreter before the scenario finished",
            )
        });
        end.failed_running = report.state.fail_current_scenario(error);
        end.settled = report.state.sweep_settled();
    }
    (classify::outcome(report), end)
}

/// Loads the script into a fresh instance and runs it: once, or (in a sweep) once per
/// scenario the queue hands out. A script's exception is recorded in the session and
/// ends the call normally; `Err` is a trap, after which the instance is never used again.
async fn drive_instance(
    prepared: &Prepared,
    instance: &Sandbox,
    store: &mut Store<RunState>,
    job: &Job,
    session: &Session,
) -> wasmtime::Result<()> {
    let runner = instance.metaexec_sandbox_runner();
    let sweeping = session.lock().sweep_clock().is_some();
    let mode = if sweeping { Mode::Sweep } else { Mode::Single };
    let key = script_key(job);
    let known = prepared.compiled.lock().unwrap_or_else(|e| e.into_inner()).get(&key).cloned();
    match runner.call_load(&mut *store, &job.script_name, &job.source, mode, known.as_deref()).await? {
        Ok(Some(code)) if code.len() <= MAX_COMPILED_SCRIPT => {
            let mut compiled = prepared.compiled.lock().unwrap_or_else(|e| e.into_inner());
            if compiled.len() >= COMPILED_SCRIPTS {
                compiled.clear();
            }
            compiled.insert(key, code.into());
        }
        Ok(_) => {}
        Err(error) => {
            // The script does not compile: nothing can run, in a sweep either.
            session.lock().exception = Some(error);
            return Ok(());
        }
    }
    if !sweeping {
        if let Some(fuel) = call_fuel(prepared, &job.limits, true) {
            store.set_fuel(fuel)?;
        }
        let params = serde_json::to_string(&job.params)?;
        let seed = job.seed.unwrap_or_else(fresh_seed);
        match runner.call_run(&mut *store, &params, &seed.to_le_bytes()).await? {
            Ok(read) => session.lock().params_read = Some(read.into()),
            Err(error) => session.lock().exception = Some(error),
        }
        return Ok(());
    }
    let base_seed = job.seed.unwrap_or(0);
    while session.lock().next_batch() {
        loop {
            let next = session.lock().start_next();
            let Some((params, id)) = next else { break };
            if let Some(fuel) = call_fuel(prepared, &job.limits, true) {
                store.set_fuel(fuel)?;
            }
            let params = serde_json::to_string(&params)?;
            let seed = scenario_seed(base_seed, &id).to_le_bytes();
            let ended = runner.call_run(&mut *store, &params, &seed).await?;
            session.lock().settle(ended.map(Into::into));
        }
    }
    Ok(())
}

/// The wall-clock limit of a sweep instance's current stretch: the scenario limit, but
/// never less than `MIN_STRETCH_LIMIT` outside scenarios.
fn stretch_limit(clock: &SweepClock, limits: &Limits) -> Duration {
    if clock.running { limits.timeout } else { limits.timeout.max(MIN_STRETCH_LIMIT) }
}

/// The epoch callback of a sweep instance: stops the instance once the current stretch
/// (a scenario, or the time outside scenarios) runs past its wall-clock limit, or the
/// sweep is told to stop. (Fuel is set per call: a scenario starts with its whole budget.)
fn scenario_watch(
    session: Session,
    limits: &Limits,
) -> impl FnMut(wasmtime::StoreContextMut<'_, RunState>) -> wasmtime::Result<wasmtime::UpdateDeadline> + Send + Sync + 'static
{
    let limits = limits.clone();
    move |_store| {
        let state = session.lock();
        let Some(clock) = state.sweep_clock() else {
            return Err(wasmtime::Trap::Interrupt.into());
        };
        if state.sweep_cancelled() || clock.since.elapsed() > stretch_limit(&clock, &limits) {
            return Err(wasmtime::Trap::Interrupt.into());
        }
        // Yield to the async runtime every tick: a sweep's instances share its threads,
        // and an instance woken while another ran on the same thread would otherwise
        // wait, unstealable, until that one finished all its scenarios.
        Ok(wasmtime::UpdateDeadline::Yield(1))
    }
}

/// The epoch callback of a single run: stops it once it runs past `timeout`, and yields
/// to the async runtime every tick until then, so that runs sharing a thread (a sweep's
/// isolated scenarios, concurrent runs of a server) all make progress and an idle thread
/// can take one over.
fn run_watch(
    started: Instant,
    timeout: Duration,
) -> impl FnMut(wasmtime::StoreContextMut<'_, RunState>) -> wasmtime::Result<wasmtime::UpdateDeadline> + Send + Sync + 'static
{
    move |_store| {
        if started.elapsed() > timeout {
            return Err(wasmtime::Trap::Interrupt.into());
        }
        Ok(wasmtime::UpdateDeadline::Yield(1))
    }
}

/// Resolves once the current stretch of a sweep instance has run past its limit, or the
/// sweep was told to stop (the guest is blocked in a host call, where the epoch callback
/// cannot see it).
async fn scenario_deadline(session: &Session, limits: &Limits) {
    loop {
        tokio::time::sleep(engine::EPOCH_TICK * 5).await;
        let state = session.lock();
        let Some(clock) = state.sweep_clock() else { return };
        if state.sweep_cancelled() || clock.since.elapsed() > stretch_limit(&clock, limits) + OUTER_DEADLINE_SLACK {
            return;
        }
    }
}

impl From<Outcome> for (Outcome, InstanceEnd) {
    fn from(outcome: Outcome) -> Self {
        (outcome, InstanceEnd::default())
    }
}

#[async_trait]
impl Executor for WasiSandbox {
    fn backend(&self) -> &'static str {
        "wasi"
    }

    async fn execute(&self, job: &Job) -> Outcome {
        self.run(job).await
    }
}

impl Inner {
    fn cached(&self, metered: bool) -> Option<Arc<Prepared>> {
        self.prepared[usize::from(metered)].lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn prepare(&self, metered: bool) -> Result<Arc<Prepared>, PrepareError> {
        let mut slot = self.prepared[usize::from(metered)].lock().unwrap_or_else(|e| e.into_inner());
        if let Some(prepared) = &*slot {
            return Ok(prepared.clone());
        }
        let cache_root = &self.options.cache_root;
        let progress = &self.options.progress;
        let on_compile = |notice: engine::CompileNotice| progress(&notice.to_string());
        let profile = engine::Profile { metered, many_instances: self.options.many_instances };
        let compiled = match engine::load_or_compile(cache_root, profile, &on_compile) {
            Ok(compiled) => compiled,
            Err(EngineError::Runtime(verify)) => match self.fetch_once(&verify) {
                None => engine::load_or_compile(cache_root, profile, &on_compile)
                    .map_err(|source| PrepareError::RuntimeMissing { source, fetch_error: None })?,
                Some(fetch_error) => {
                    return Err(PrepareError::RuntimeMissing {
                        source: EngineError::Runtime(verify),
                        fetch_error: Some(fetch_error),
                    });
                }
            },
            Err(e) => return Err(PrepareError::Engine(e.to_string())),
        };
        tracing::debug!(metered, from_cache = compiled.from_cache, "runtime ready");
        let mut linker: Linker<RunState> = Linker::new(&compiled.engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)
            .map_err(|e| PrepareError::Engine(format!("linking WASI: {e}")))?;
        host::add_to_linker(&mut linker)
            .map_err(|e| PrepareError::Engine(format!("linking the host interface: {e}")))?;
        let pre = linker
            .instantiate_pre(&compiled.component)
            .and_then(SandboxPre::new)
            .map_err(|e| PrepareError::Engine(format!("pre-instantiating the runtime: {e:#}")))?;
        let prepared = Arc::new(Prepared {
            engine: compiled.engine,
            pre,
            compiled: Mutex::default(),
            stdlib: compiled.installed.stdlib,
            metered,
            slots: tokio::sync::Semaphore::new(engine::POOL_INSTANCES as usize),
        });
        *slot = Some(prepared.clone());
        Ok(prepared)
    }

    /// Builds the runtime if that has not been tried yet in this process; the error and
    /// what to do about it if it failed or was not allowed.
    fn fetch_once(&self, problem: &python_wasm::VerifyError) -> Option<(String, String)> {
        let retry = "run `metaexec runtime fetch` and read what it says".to_owned();
        if !self.options.auto_fetch {
            return Some(("automatic building is off".into(), retry));
        }
        let mut tried = self.fetch_tried.lock().unwrap_or_else(|e| e.into_inner());
        if *tried {
            return Some(("building it was already tried in this process".into(), retry));
        }
        *tried = true;
        let progress = &self.options.progress;
        progress(&format!("{problem}; building it once"));
        match python_wasm::fetch(&self.options.cache_root, false, &|line| progress(line)) {
            Ok(_) => None,
            Err(e) => Some((e.to_string(), e.hint())),
        }
    }
}

/// The WASI context of one run: deny by default, grant exactly what the design lists.
fn build_wasi(job: &Job, stdlib: &Path, session: &Session) -> Result<WasiCtx, OutcomeError> {
    let mut builder = WasiCtxBuilder::new();
    // Must precede the preopens: each preopen captures it. File operations then run on
    // this thread instead of bouncing through a blocking pool.
    builder.allow_blocking_current_thread(true);
    builder
        .stdout(GuestOutput::stdout(session.clone()))
        .stderr(GuestOutput::stderr(session.clone()))
        .allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false);
    builder.preopened_dir(&job.results_dir, GUEST_RESULTS, FsPerms::ReadWrite).map_err(|e| {
        OutcomeError::new(
            ErrorKind::Usage,
            format!("Failed to open the results folder `{}`: {e}", job.results_dir.display()),
        )
    })?;
    builder.preopened_dir(stdlib, GUEST_PYTHON_HOME, FsPerms::ReadOnly).map_err(|e| {
        OutcomeError::new(
            ErrorKind::Internal,
            format!("Failed to open the standard library `{}`: {e}", stdlib.display()),
        )
    })?;
    Ok(builder.build())
}
