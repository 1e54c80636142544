//! One container's life: created with the job's limits, attached before it starts (so no
//! output is lost), held to its deadline and output caps, classified like a WASI run, and
//! removed whatever happens, by a guard that also runs when the run is dropped (an error,
//! a timeout, Ctrl-C).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bollard::Docker;
use bollard::container::LogOutput;
use bollard::models::{ContainerCreateBody, HealthConfig, HostConfig, PortBinding};
use bollard::query_parameters::{
    AttachContainerOptionsBuilder, CreateContainerOptionsBuilder, KillContainerOptionsBuilder,
    RemoveContainerOptionsBuilder,
};
use futures_util::StreamExt;

use super::LABEL;
use crate::job::Job;

/// Where the script and the socket appear in the container.
pub const APP_DIR: &str = "/app";
/// The socket's folder in the container.
pub const SOCKET_DIR: &str = "/run/metaexec";
/// The port a web app listens on inside its container.
pub const WEB_PORT: u16 = 8000;

/// The limits Docker holds a container to besides the job's memory.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ContainerLimits {
    /// Processes and threads, together.
    pub pids: i64,
    /// CPUs, in whole or part.
    pub cpus: f64,
    /// The size of the writable `/tmp`, in MiB.
    pub tmp_mib: u64,
}

impl Default for ContainerLimits {
    fn default() -> Self {
        Self { pids: 128, cpus: 1.0, tmp_mib: 64 }
    }
}

/// The host folders a run mounts: the results staging folder, the script's folder and
/// the socket's folder, all under one private folder removed when the run ends.
pub struct Staging {
    /// The private folder.
    pub root: PathBuf,
}

impl Staging {
    /// Makes the folders under `root` (which must not exist).
    pub fn create(root: PathBuf, script: &str, owner: Option<(u32, u32)>) -> std::io::Result<Self> {
        use std::os::unix::fs::PermissionsExt;
        let staging = Self { root };
        std::fs::create_dir_all(&staging.root)?;
        std::fs::set_permissions(&staging.root, std::fs::Permissions::from_mode(0o711))?;
        for dir in [staging.results(), staging.app(), staging.socket_dir()] {
            std::fs::create_dir(&dir)?;
        }
        std::fs::write(staging.app().join("script.py"), script)?;
        std::fs::set_permissions(staging.app(), std::fs::Permissions::from_mode(0o755))?;
        std::fs::set_permissions(staging.app().join("script.py"), std::fs::Permissions::from_mode(0o644))?;
        std::fs::set_permissions(staging.socket_dir(), std::fs::Permissions::from_mode(0o755))?;
        if let Some((uid, gid)) = owner {
            std::os::unix::fs::chown(staging.results(), Some(uid), Some(gid))?;
        }
        Ok(staging)
    }

    /// Mounted read-write at `/results`.
    pub fn results(&self) -> PathBuf {
        self.root.join("results")
    }

    /// Mounted read-only at `/app`.
    pub fn app(&self) -> PathBuf {
        self.root.join("app")
    }

    /// Where the socket of a staging folder at `root` is.
    pub fn socket_path(root: &Path) -> PathBuf {
        root.join("socket").join("host.sock")
    }

    /// Holds the socket; mounted at `/run/metaexec`.
    pub fn socket_dir(&self) -> PathBuf {
        self.root.join("socket")
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// The user a container runs as: the host user's ids, so that its files are the user's;
/// never root (as root, `nobody`'s).
pub fn container_user() -> (u32, u32) {
    // SAFETY: getuid and getgid cannot fail and touch no memory.
    let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
    if uid == 0 { (65534, 65534) } else { (uid, gid) }
}

/// What to create.
pub struct Spec<'a> {
    /// The image.
    pub image: &'a str,
    /// The job (its limits, its script's name).
    pub job: &'a Job,
    /// The host folders.
    pub staging: &'a Staging,
    /// The run's label value.
    pub run: &'a str,
    /// Docker's own limits.
    pub limits: ContainerLimits,
    /// For a web app: the host port on 127.0.0.1 its port is published on.
    pub web_port: Option<u16>,
}

/// Creates the container; a guard that removes it.
pub async fn create(docker: &Docker, spec: &Spec<'_>) -> Result<Guard, bollard::errors::Error> {
    let (uid, gid) = container_user();
    let mount = |host: PathBuf, inside: &str, mode: &str| format!("{}:{inside}:{mode}", host.display());
    let mut env = vec![
        format!("METAEXEC_SOCKET={SOCKET_DIR}/host.sock"),
        format!("METAEXEC_SCRIPT_NAME={}", spec.job.script_name),
        "HOME=/tmp".to_owned(),
    ];
    let mut host = HostConfig {
        memory: Some(i64::try_from(spec.job.limits.memory_bytes).unwrap_or(i64::MAX)),
        // No swap: the memory cap is the cap.
        memory_swap: Some(i64::try_from(spec.job.limits.memory_bytes).unwrap_or(i64::MAX)),
        nano_cpus: Some((spec.limits.cpus * 1e9) as i64),
        pids_limit: Some(spec.limits.pids),
        readonly_rootfs: Some(true),
        tmpfs: Some(HashMap::from([(
            "/tmp".to_owned(),
            format!("rw,nosuid,nodev,noexec,size={}m", spec.limits.tmp_mib),
        )])),
        binds: Some(vec![
            mount(spec.staging.results(), "/results", "rw"),
            mount(spec.staging.app(), APP_DIR, "ro"),
            mount(spec.staging.socket_dir(), SOCKET_DIR, "rw"),
        ]),
        network_mode: Some("none".into()),
        cap_drop: Some(vec!["ALL".into()]),
        security_opt: Some(vec!["no-new-privileges".into()]),
        init: Some(true),
        ..Default::default()
    };
    let mut exposed = None;
    let mut healthcheck = None;
    if let Some(port) = spec.web_port {
        env.push("METAEXEC_WEB=1".into());
        env.push(format!("METAEXEC_PORT={WEB_PORT}"));
        // A web app needs a network to be reached on; it is published on loopback only.
        host.network_mode = Some("bridge".into());
        host.port_bindings = Some(HashMap::from([(
            format!("{WEB_PORT}/tcp"),
            Some(vec![PortBinding { host_ip: Some("127.0.0.1".into()), host_port: Some(port.to_string()) }]),
        )]));
        exposed = Some(vec![format!("{WEB_PORT}/tcp")]);
        healthcheck = Some(HealthConfig {
            test: Some(vec![
                "CMD".into(),
                "python3".into(),
                "-c".into(),
                format!("import urllib.request; urllib.request.urlopen('http://127.0.0.1:{WEB_PORT}/', timeout=2)"),
            ]),
            interval: Some(2_000_000_000),
            timeout: Some(3_000_000_000),
            retries: Some(3),
            start_period: Some(1_000_000_000),
            start_interval: Some(250_000_000),
        });
    }
    let body = ContainerCreateBody {
        image: Some(spec.image.to_owned()),
        cmd: Some(vec!["python3".into(), "-m".into(), "metaexec._container".into(), format!("{APP_DIR}/script.py")]),
        env: Some(env),
        user: Some(format!("{uid}:{gid}")),
        working_dir: Some("/results".into()),
        labels: Some(HashMap::from([(LABEL.to_owned(), spec.run.to_owned())])),
        attach_stdout: Some(true),
        attach_stderr: Some(true),
        tty: Some(false),
        exposed_ports: exposed,
        healthcheck,
        network_disabled: Some(spec.web_port.is_none()),
        stop_timeout: Some(5),
        host_config: Some(host),
        ..Default::default()
    };
    let options = CreateContainerOptionsBuilder::default().name(&format!("metaexec-{}", spec.run)).build();
    let created = docker.create_container(Some(options), body).await?;
    Ok(Guard { docker: Some(docker.clone()), id: created.id })
}

/// Removes its container when dropped, unless [`Guard::remove`] did already. Removal on
/// drop runs on a thread of its own, so it happens even while the async runtime winds
/// down (Ctrl-C, a panic).
pub struct Guard {
    docker: Option<Docker>,
    /// The container's id.
    pub id: String,
}

impl Guard {
    /// Kills and removes the container now.
    pub async fn remove(mut self) {
        if let Some(docker) = self.docker.take() {
            remove(&docker, &self.id).await;
        }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        let Some(docker) = self.docker.take() else { return };
        let id = std::mem::take(&mut self.id);
        let worker = std::thread::spawn(move || {
            if let Ok(runtime) = tokio::runtime::Builder::new_current_thread().enable_all().build() {
                runtime.block_on(remove(&docker, &id));
            }
        });
        let _ = worker.join();
    }
}

async fn remove(docker: &Docker, id: &str) {
    let options = RemoveContainerOptionsBuilder::default().force(true).v(true).build();
    if let Err(e) = docker.remove_container(id, Some(options)).await
        && !super::engine::is_not_found(&e)
    {
        tracing::warn!("could not remove the container {id}: {e}");
    }
}

/// Kills a container (it may have ended already).
pub async fn kill(docker: &Docker, id: &str) {
    let _ = docker.kill_container(id, Some(KillContainerOptionsBuilder::default().signal("SIGKILL").build())).await;
}

/// How a watched container ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// It exited by itself with this status.
    Exited(i64),
    /// It ran past its deadline and was killed.
    Deadline,
    /// The host stopped it (a cap, a misuse of the socket).
    Stopped,
    /// The person running it asked to stop.
    Cancelled,
}

/// What a run saw of its container besides its output.
#[derive(Debug, Clone, Copy)]
pub struct Ended {
    /// How it ended.
    pub end: End,
    /// The kernel killed it for its memory.
    pub oom_killed: bool,
    /// From start to end.
    pub wall: Duration,
}

/// What watching a container needs besides the engine.
pub struct Watch<'a> {
    /// The wall-clock limit.
    pub timeout: Duration,
    /// Output from the container: true to go on, false once a cap was hit.
    pub on_output: &'a mut (dyn FnMut(bool, &[u8]) -> bool + Send),
    /// Fires when the host stopped the run.
    pub stopped: &'a tokio::sync::Notify,
    /// Set when the person asked to stop.
    pub cancel: Option<&'a crate::cancel::Cancel>,
}

/// Attaches to the container, starts it and follows it to its end.
pub async fn run(docker: &Docker, id: &str, watch: Watch<'_>) -> Result<Ended, bollard::errors::Error> {
    let mut output = attach(docker, id).await?;
    docker.start_container(id, None).await?;
    let started = Instant::now();
    let deadline = tokio::time::Instant::now() + watch.timeout;
    let mut end = None;
    let mut open = true;
    while open && end.is_none() {
        tokio::select! {
            item = output.next() => match item {
                Some(Ok(LogOutput::StdOut { message })) | Some(Ok(LogOutput::Console { message })) => {
                    if !(watch.on_output)(false, &message) { end = Some(End::Stopped) }
                }
                Some(Ok(LogOutput::StdErr { message })) => {
                    if !(watch.on_output)(true, &message) { end = Some(End::Stopped) }
                }
                Some(Ok(LogOutput::StdIn { .. })) => {}
                Some(Err(_)) | None => open = false,
            },
            () = tokio::time::sleep_until(deadline) => end = Some(End::Deadline),
            () = watch.stopped.notified() => end = Some(End::Stopped),
            () = cancelled(watch.cancel) => end = Some(End::Cancelled),
        }
    }
    // The attach connection goes first: a container whose output nobody reads blocks in
    // its writes, and the engine finishes killing it only once its streams are drained.
    drop(output);
    if end.is_some() {
        kill(docker, id).await;
    }
    let wall = started.elapsed();
    // The output ended: the container has exited (or was just killed); its state says how.
    let state = wait_state(docker, id).await?;
    let end = end.unwrap_or(End::Exited(state.exit_code.unwrap_or(-1)));
    Ok(Ended { end, oom_killed: state.oom_killed.unwrap_or(false), wall })
}

/// The container's output, attached to before it starts so that none is lost. Nothing is
/// written to its stdin: that half goes at once, since the connection both halves share
/// closes only when both are gone (and an open, unread connection holds a kill).
pub async fn attach(docker: &Docker, id: &str) -> Result<Output, bollard::errors::Error> {
    let options = AttachContainerOptionsBuilder::default().stdout(true).stderr(true).stream(true).logs(true).build();
    let attached = docker.attach_container(id, Some(options)).await?;
    drop(attached.input);
    Ok(attached.output)
}

/// A container's attached output.
pub type Output = std::pin::Pin<Box<dyn futures_util::Stream<Item = Result<LogOutput, bollard::errors::Error>> + Send>>;

/// Resolves once `cancel` is set; never without one.
pub async fn cancelled(cancel: Option<&crate::cancel::Cancel>) {
    match cancel {
        Some(cancel) => cancel.cancelled().await,
        None => std::future::pending().await,
    }
}

/// The container's state once it is no longer running.
async fn wait_state(docker: &Docker, id: &str) -> Result<bollard::models::ContainerState, bollard::errors::Error> {
    let mut waited = Duration::ZERO;
    loop {
        let state = docker.inspect_container(id, None).await?.state.unwrap_or_default();
        if !state.running.unwrap_or(false) || waited > Duration::from_secs(10) {
            return Ok(state);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        waited += Duration::from_millis(20);
    }
}
