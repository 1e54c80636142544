//! The default backend: Python scripts run in the pinned WASI CPython, embedded in
//! wasmtime, under fuel, epoch and memory limits, with an outer wall-clock deadline.
//!
//! Everything wasmtime lives here. The rest of the program sees `WasiSandbox` as an
//! `Executor`. Deny by default: a run sees a clean environment (only the channel token),
//! its results folder (read-write, as `/results` and the working directory), the guest
//! library (read-only, as `/guestlib`) and nothing else; no sockets; stdin carries only
//! the host's replies.

mod channel;
mod classify;
mod compile_check;
mod engine;
mod guest_lib;
mod limiter;
mod stdlib;
mod streams;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use wasmtime::{InstancePre, Linker, Store};
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::{FsPerms, WasiCtxBuilder};

pub use channel::{CapturedStream, LogSink};
pub use compile_check::CompileCheck;
pub use engine::EngineError;

use crate::executor::Executor;
use crate::job::{Job, Limits};
use crate::outcome::{ErrorKind, Outcome, OutcomeError};
use crate::python_wasm::{self, FetchSource, MANIFEST};
use crate::scenario::ScenarioQueue;
use channel::{Channel, ChannelConfig, SweepClock, SweepState};
use classify::Ending;
use limiter::MemoryLimiter;
use streams::{GuestInput, GuestOutput};

/// Where the guest sees its results folder.
pub const GUEST_RESULTS: &str = "/results";
/// Where the guest sees the guest library.
pub const GUEST_LIBRARY: &str = "/guestlib";
/// Where the guest sees the unpacked standard library (its `PYTHONHOME`).
pub const GUEST_PYTHON_HOME: &str = "/python";

/// Extra time the outer deadline allows past the epoch deadline, so that running code is
/// stopped by the epoch (a clean trap) and only a guest blocked in a host call needs the
/// outer one.
const OUTER_DEADLINE_SLACK: Duration = Duration::from_millis(50);

/// The least time a sweep instance gets outside its scenarios (starting the interpreter
/// and compiling the script, between batches), however short the scenario limit.
const MIN_STRETCH_LIMIT: Duration = Duration::from_secs(2);

/// Per-run store data.
struct RunState {
    wasi: WasiP1Ctx,
    limiter: MemoryLimiter,
}

/// A compiled interpreter with its linker applied, ready to instantiate per run.
struct Prepared {
    engine: wasmtime::Engine,
    pre: InstancePre<RunState>,
    /// The unpacked standard library, mounted as `PYTHONHOME`; `None` while it is being
    /// unpacked (the interpreter then reads its embedded zip).
    stdlib: Option<PathBuf>,
    /// Whether the engine meters fuel; a metered engine runs out at once without any.
    metered: bool,
}

/// Options of a sandbox.
#[derive(Clone)]
pub struct SandboxOptions {
    /// The cache root (see `crate::cache`).
    pub cache_root: PathBuf,
    /// Fetch the runtime when it is missing (once per process).
    pub auto_fetch: bool,
    /// Progress lines for the person waiting (fetching, compiling).
    pub progress: Arc<dyn Fn(&str) + Send + Sync>,
    /// Where `metaexec.log` lines go as they arrive.
    pub on_log: Option<LogSink>,
}

impl SandboxOptions {
    /// Defaults: the user cache, auto-fetch on, progress to the `tracing` log.
    pub fn new(cache_root: impl Into<PathBuf>) -> Self {
        Self {
            cache_root: cache_root.into(),
            auto_fetch: true,
            progress: Arc::new(|line| tracing::info!("{line}")),
            on_log: None,
        }
    }
}

/// Why the sandbox could not be made ready.
#[derive(Debug, thiserror::Error)]
pub enum PrepareError {
    /// The runtime is missing or broken and was not (or could not be) fetched.
    #[error("{source}")]
    RuntimeMissing {
        /// What is wrong with it.
        #[source]
        source: EngineError,
        /// Why fetching did not help, if it was tried.
        fetch_error: Option<String>,
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
                if let Some(fetch_error) = fetch_error {
                    message.push_str(&format!("\n{fetch_error}"));
                }
                OutcomeError::new(ErrorKind::RuntimeMissing, message)
                    .with_hint("run `metaexec runtime fetch` (it needs pip, or HTTPS access to the release URL)")
            }
            Self::Engine(message) => OutcomeError::new(ErrorKind::Internal, message.clone()),
        }
    }
}

struct Inner {
    options: SandboxOptions,
    /// `[unmetered, metered]`, prepared on first use.
    prepared: [Mutex<Option<Arc<Prepared>>>; 2],
    guest_lib: Mutex<Option<PathBuf>>,
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
                guest_lib: Mutex::new(None),
                fetch_tried: Mutex::new(false),
            }),
        }
    }

    /// Loads (or fetches, verifies and compiles) the interpreter for metered or unmetered
    /// runs. Blocking; the first call may take seconds, later calls are free.
    pub fn prepare(&self, metered: bool) -> Result<(), PrepareError> {
        self.inner.prepare(metered).map(|_| ())
    }

    /// The label of the interpreter (`CPython 3.12.0 (wasm32-wasi)`).
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
            Ok((prepared, guest_lib)) => {
                run_prepared(&prepared, &guest_lib, self.inner.options.on_log.clone(), job).await
            }
            Err(outcome) => outcome,
        }
    }

    /// The prepared interpreter (metered or not, as `job` needs) and the guest library,
    /// preparing them on first use off the async threads; the outcome of a run that could
    /// not start otherwise.
    async fn ready(&self, job: &Job) -> Result<(Arc<Prepared>, PathBuf), Outcome> {
        let metered = job.limits.fuel.is_some();
        let prepared = match self.inner.cached(metered) {
            Some(prepared) => prepared,
            None => {
                let inner = self.inner.clone();
                match tokio::task::spawn_blocking(move || inner.prepare(metered)).await {
                    Ok(Ok(prepared)) => prepared,
                    Ok(Err(e)) => return Err(not_started(e.to_outcome_error())),
                    Err(e) => {
                        let message = format!("preparing the sandbox panicked: {e}");
                        return Err(not_started(OutcomeError::new(ErrorKind::Internal, message)));
                    }
                }
            }
        };
        let guest_lib = self.inner.guest_lib().map_err(|e| not_started(OutcomeError::new(ErrorKind::Internal, e)))?;
        Ok((prepared, guest_lib))
    }

    /// Runs `job`'s script over every scenario `queue` hands out, in one warm instance
    /// after another: each scenario runs in a fresh module namespace; one that raises is
    /// recorded and the next starts at once; one that stops the instance (a limit, a
    /// trap, a protocol violation) is recorded and a fresh instance takes over the rest.
    /// `job.limits` hold per scenario, and to every stretch of guest time between
    /// scenarios too; `metaexec.log` lines are kept per scenario, not sent to `on_log`.
    /// `Err` when an instance fails outside any scenario (the script does not compile,
    /// the runtime is missing, it ran past a limit between scenarios): nothing more can
    /// run. The caller cleans the results folder (`sanitize_results`) once all workers
    /// are done.
    pub async fn run_sweep(&self, job: &Job, queue: Arc<dyn ScenarioQueue>) -> Result<(), Box<Outcome>> {
        let (prepared, guest_lib) = self.ready(job).await.map_err(Box::new)?;
        loop {
            // Log lines stay with their scenario's outcome: thousands of scenarios a second
            // would drown a live log.
            let (outcome, end) = run_instance(&prepared, &guest_lib, None, job, Some(queue.clone())).await;
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

/// One run on a prepared interpreter.
async fn run_prepared(prepared: &Prepared, guest_lib: &Path, on_log: Option<LogSink>, job: &Job) -> Outcome {
    run_instance(prepared, guest_lib, on_log, job, None).await.0
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

/// One interpreter instance: a single run, or (with `sweep`) one instance of a sweep,
/// running scenarios until the queue is empty or something stops it.
async fn run_instance(
    prepared: &Prepared,
    guest_lib: &Path,
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
    let nonce = nonce();
    let channel = Channel::new(ChannelConfig {
        nonce: nonce.clone(),
        params: job.params.clone(),
        stdout_cap: job.limits.stdout_bytes,
        stderr_cap: job.limits.stderr_bytes,
        results_cap: job.limits.results_bytes,
        on_log,
        db: job.db.clone(),
        sweep: sweep.map(|queue| SweepState::new(queue, job.limits.clone())),
        budget: job.budget.clone(),
    });
    let wasi = match build_wasi(job, guest_lib, prepared.stdlib.as_deref(), &channel, &nonce, sweeping) {
        Ok(wasi) => wasi,
        Err(e) => return not_started(e).into(),
    };
    let mut store =
        Store::new(&prepared.engine, RunState { wasi, limiter: MemoryLimiter::new(job.limits.memory_bytes) });
    store.limiter(|state| &mut state.limiter);
    // Setup runs carry no budget of their own; on a metered engine they get all of it. So
    // does a sweep instance: its budget is per scenario (`scenario_watch`).
    let budget = if sweeping { None } else { job.limits.fuel };
    let fuel = budget.or(prepared.metered.then_some(u64::MAX));
    if let Some(fuel) = fuel
        && let Err(e) = store.set_fuel(fuel)
    {
        return not_started(OutcomeError::new(ErrorKind::Internal, format!("setting fuel: {e}"))).into();
    }
    if sweeping {
        // Limits hold per scenario and per stretch between scenarios: every tick, check
        // the current stretch's clock and the fuel the running scenario has used.
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(scenario_watch(channel.clone(), &job.limits));
    } else {
        let ticks = job.limits.timeout.as_millis().div_ceil(engine::EPOCH_TICK.as_millis()) as u64 + 1;
        store.set_epoch_deadline(ticks);
        store.epoch_deadline_trap();
    }

    let run = async {
        let t0 = Instant::now();
        let instance = prepared.pre.instantiate_async(&mut store).await?;
        tracing::debug!(elapsed_us = t0.elapsed().as_micros() as u64, "instantiated");
        let start = instance.get_typed_func::<(), ()>(&mut store, "_start")?;
        let result = start.call_async(&mut store, ()).await;
        tracing::debug!(elapsed_us = t0.elapsed().as_micros() as u64, "guest finished");
        result
    };
    let deadline = async {
        if sweeping {
            scenario_deadline(&channel, &job.limits).await;
        } else {
            tokio::time::sleep(job.limits.timeout + OUTER_DEADLINE_SLACK).await;
        }
    };
    let ending = tokio::select! {
        result = run => match result {
            Ok(()) => Ending::Returned,
            Err(error) => Ending::from_error(&error),
        },
        () = deadline => Ending::Deadline,
    };
    let fuel_used = job.limits.fuel.map(|fuel| fuel.saturating_sub(store.get_fuel().unwrap_or(0)));
    let limiter = &store.data().limiter;
    let mut state = channel.lock();
    state.finish();
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
    if sweeping {
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

/// The wall-clock limit of a sweep instance's current stretch: the scenario limit, but
/// never less than `MIN_STRETCH_LIMIT` outside scenarios.
fn stretch_limit(clock: &SweepClock, limits: &Limits) -> Duration {
    if clock.running { limits.timeout } else { limits.timeout.max(MIN_STRETCH_LIMIT) }
}

/// The epoch callback of a sweep instance: stops a scenario past its wall-clock limit or
/// its fuel budget. Fuel is measured from the first tick that sees the scenario, and
/// checked every tick, so a budget holds to within one tick's worth of work. (Refilling
/// the store's fuel from here would not do: running code keeps its own count and writes
/// it back.)
fn scenario_watch(
    channel: Channel,
    limits: &Limits,
) -> impl FnMut(wasmtime::StoreContextMut<'_, RunState>) -> wasmtime::Result<wasmtime::UpdateDeadline> + Send + Sync + 'static
{
    let limits = limits.clone();
    let mut seen = u64::MAX;
    let mut baseline = 0;
    move |store| {
        let Some(clock) = channel.lock().sweep_clock() else {
            return Err(wasmtime::Trap::Interrupt.into());
        };
        let remaining = store.get_fuel().unwrap_or(0);
        if clock.generation != seen {
            seen = clock.generation;
            baseline = remaining;
        }
        if clock.running && limits.fuel.is_some_and(|budget| baseline.saturating_sub(remaining) > budget) {
            return Err(wasmtime::Trap::OutOfFuel.into());
        }
        if clock.since.elapsed() > stretch_limit(&clock, &limits) {
            return Err(wasmtime::Trap::Interrupt.into());
        }
        // Yield to the async runtime every tick: a sweep's instances share its threads,
        // and an instance woken while another ran on the same thread would otherwise
        // wait, unstealable, until that one finished all its scenarios.
        Ok(wasmtime::UpdateDeadline::Yield(1))
    }
}

/// Resolves once the current stretch of a sweep instance has run past its limit (the
/// guest is blocked in a host call, where the epoch callback cannot see it).
async fn scenario_deadline(channel: &Channel, limits: &Limits) {
    loop {
        tokio::time::sleep(engine::EPOCH_TICK * 5).await;
        let Some(clock) = channel.lock().sweep_clock() else { return };
        if clock.since.elapsed() > stretch_limit(&clock, limits) + OUTER_DEADLINE_SLACK {
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
        let compiled = match engine::load_or_compile(cache_root, metered, &on_compile) {
            Ok(compiled) => compiled,
            Err(EngineError::Runtime(verify)) => {
                let fetch_error = self.fetch_once(&verify);
                match fetch_error {
                    None => engine::load_or_compile(cache_root, metered, &on_compile)
                        .map_err(|source| PrepareError::RuntimeMissing { source, fetch_error: None })?,
                    Some(fetch_error) => {
                        return Err(PrepareError::RuntimeMissing {
                            source: EngineError::Runtime(verify),
                            fetch_error: Some(fetch_error),
                        });
                    }
                }
            }
            Err(e) => return Err(PrepareError::Engine(e.to_string())),
        };
        tracing::debug!(metered, from_cache = compiled.from_cache, "interpreter ready");
        let mut linker: Linker<RunState> = Linker::new(&compiled.engine);
        wasmtime_wasi::p1::add_to_linker_async(&mut linker, |state| &mut state.wasi)
            .map_err(|e| PrepareError::Engine(format!("linking WASI: {e}")))?;
        let pre = linker
            .instantiate_pre(&compiled.module)
            .map_err(|e| PrepareError::Engine(format!("pre-instantiating the interpreter: {e}")))?;
        let mut prepared = Prepared { engine: compiled.engine, pre, stdlib: None, metered };
        prepared.stdlib = self.unpack_stdlib(&prepared);
        self.compile_guest_lib(&prepared);
        let prepared = Arc::new(prepared);
        *slot = Some(prepared.clone());
        Ok(prepared)
    }

    /// Fetches the runtime if that has not been tried yet in this process; the error
    /// text if it failed or was not allowed.
    fn fetch_once(&self, problem: &python_wasm::VerifyError) -> Option<String> {
        if !self.options.auto_fetch {
            return Some("automatic fetching is off".into());
        }
        let mut tried = self.fetch_tried.lock().unwrap_or_else(|e| e.into_inner());
        if *tried {
            return Some("fetching was already tried in this process".into());
        }
        *tried = true;
        let progress = &self.options.progress;
        progress(&format!("{problem}; fetching it once"));
        match python_wasm::fetch(&self.options.cache_root, FetchSource::Auto, &|line| progress(line)) {
            Ok(_) => None,
            Err(e) => Some(e.to_string()),
        }
    }

    /// The unpacked standard library, unpacking it on first use by running a setup
    /// script in the sandbox itself. `None` (with a warning) if that fails: runs still
    /// work, only slower, from the embedded zip.
    fn unpack_stdlib(&self, prepared: &Prepared) -> Option<PathBuf> {
        let cache_root = &self.options.cache_root;
        if let Some(dir) = stdlib::ready(cache_root) {
            return Some(dir);
        }
        (self.options.progress)("unpacking the standard library once (under a second)");
        let result = stdlib::unpack(cache_root, |job| self.setup_run(prepared, &job));
        match result {
            Ok(dir) => Some(dir),
            Err(e) => {
                tracing::warn!("could not unpack the standard library, using the embedded zip: {e}");
                None
            }
        }
    }

    /// Compiles the guest library's bytecode once; a failure only costs speed.
    fn compile_guest_lib(&self, prepared: &Prepared) {
        let Ok(dir) = self.guest_lib() else { return };
        if let Err(e) = guest_lib::compile(&dir, |job| self.setup_run(prepared, &job)) {
            tracing::warn!("could not precompile the guest library: {e}");
        }
    }

    /// Runs one of the sandbox's own setup scripts. Blocking: `prepare` runs outside any
    /// async runtime (on a blocking thread), so it may start its own.
    fn setup_run(&self, prepared: &Prepared, job: &Job) -> Result<Outcome, String> {
        let guest_lib = self.guest_lib()?;
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;
        Ok(runtime.block_on(run_prepared(prepared, &guest_lib, None, job)))
    }

    fn guest_lib(&self) -> Result<PathBuf, String> {
        let mut slot = self.guest_lib.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(dir) = &*slot {
            return Ok(dir.clone());
        }
        let dir = guest_lib::ensure(&self.options.cache_root).map_err(|e| {
            format!("Failed to unpack the guest library into `{}`: {e}", self.options.cache_root.display())
        })?;
        *slot = Some(dir.clone());
        Ok(dir)
    }
}

/// The WASI context of one run: deny by default, grant exactly what the design lists.
fn build_wasi(
    job: &Job,
    guest_lib: &Path,
    stdlib: Option<&Path>,
    channel: &Channel,
    nonce: &str,
    sweeping: bool,
) -> Result<WasiP1Ctx, OutcomeError> {
    let mut builder = WasiCtxBuilder::new();
    // Must precede the preopens: each preopen captures it. File operations then run on
    // this thread instead of bouncing through a blocking pool.
    builder.allow_blocking_current_thread(true);
    builder
        .args(&["python", "-S", "-c", guest_lib::BOOT, &job.script_name, &job.source])
        .env("METAEXEC_CHANNEL", nonce)
        .env("PYTHONPATH", GUEST_LIBRARY)
        // A fixed hash seed makes runs reproducible (set and dict-of-str iteration order,
        // and so fuel use); hash flooding is bounded by the run's own limits.
        .env("PYTHONHASHSEED", "0")
        .stdin(GuestInput::new(channel.clone()))
        .stdout(GuestOutput::stdout(channel.clone()))
        .stderr(GuestOutput::stderr(channel.clone()))
        .allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false);
    if sweeping {
        builder.env("METAEXEC_MODE", "sweep");
    }
    builder.preopened_dir(&job.results_dir, GUEST_RESULTS, FsPerms::ReadWrite).map_err(|e| {
        OutcomeError::new(
            ErrorKind::Usage,
            format!("Failed to open the results folder `{}`: {e}", job.results_dir.display()),
        )
    })?;
    if let Some(stdlib) = stdlib {
        builder.env("PYTHONHOME", GUEST_PYTHON_HOME);
        builder.preopened_dir(stdlib, GUEST_PYTHON_HOME, FsPerms::ReadOnly).map_err(|e| {
            OutcomeError::new(
                ErrorKind::Internal,
                format!("Failed to open the unpacked standard library `{}`: {e}", stdlib.display()),
            )
        })?;
    }
    builder.preopened_dir(guest_lib, GUEST_LIBRARY, FsPerms::ReadOnly).map_err(|e| {
        OutcomeError::new(
            ErrorKind::Internal,
            format!("Failed to open the guest library `{}`: {e}", guest_lib.display()),
        )
    })?;
    Ok(builder.build_p1())
}

/// A per-run token that marks the channel's frames.
fn nonce() -> String {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    hasher
        .write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos());
    format!("{:016x}", hasher.finish())
}
