//! `metaexec serve`: the dashboard and its API over the runs folder.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use clap::Args;

use super::db::DbArgs;
use super::note;
use crate::serve::{self, AppState, ServeOptions};

/// The token's environment variable.
pub const TOKEN_ENV: &str = "METAEXEC_TOKEN";

/// Arguments of `metaexec serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The port; 0 picks a free one (printed).
    #[arg(long, default_value_t = 8080)]
    pub port: u16,

    /// The address to bind. Anything but loopback requires --token.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: IpAddr,

    /// The bearer token requests must carry (API: `Authorization: Bearer TOKEN`;
    /// browsers: open a page once with `?token=TOKEN`).
    #[arg(long, env = TOKEN_ENV, value_name = "TOKEN", hide_env_values = true)]
    pub token: Option<String>,

    /// Sandbox runs (what-if scenarios) at once; more wait their turn
    /// [default: twice the cores].
    #[arg(long, value_name = "N")]
    pub max_sandboxes: Option<usize>,

    #[command(flatten)]
    pub(crate) db: DbArgs,

    /// Use the offline planner for new requests even when a model is configured.
    #[arg(long)]
    pub offline: bool,
}

/// Runs the command; returns the exit code.
pub fn run(args: ServeArgs, cache_root: PathBuf, runs: PathBuf) -> i32 {
    let token = args.token.clone().filter(|t| !t.trim().is_empty());
    if !args.host.is_loopback() && token.is_none() {
        eprintln!("error[usage]: serving on {} (not loopback) needs a token", args.host);
        eprintln!("hint: pass --token TOKEN or set {TOKEN_ENV} (e.g. `openssl rand -hex 16`), or bind 127.0.0.1");
        return 2;
    }
    if token.as_ref().is_some_and(|t| t.len() < 16) {
        eprintln!("error[usage]: the token is shorter than 16 characters: anyone could guess it");
        return 2;
    }
    let default_db = match args.db.url(&cache_root) {
        Ok(url) => url,
        Err(e) => {
            super::render::print_error(&e);
            return 2;
        }
    };
    let llm = if args.offline {
        None
    } else {
        match crate::llm::config::resolve(&Default::default(), &crate::llm::config::Environment::read()) {
            Ok(llm) => llm,
            Err(e) => {
                eprintln!("error[usage]: {e}");
                return 2;
            }
        }
    };
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let mut sandbox = crate::sandbox::SandboxOptions::new(cache_root.clone());
    sandbox.many_instances = true;
    sandbox.progress = std::sync::Arc::new(|line| note(&format!("metaexec: {line}")));
    let options = ServeOptions {
        runs: runs.clone(),
        cache_root,
        token,
        default_db,
        database_url: std::env::var(crate::db::url::DATABASE_URL_ENV).ok(),
        llm,
        sandbox_slots: args.max_sandboxes.unwrap_or(cores * 2).max(1),
        pipeline_slots: 1,
        sandbox: crate::sandbox::WasiSandbox::new(sandbox),
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error[internal]: failed to start the async runtime: {e}");
            return 2;
        }
    };
    runtime.block_on(async move {
        let address = SocketAddr::new(args.host, args.port);
        let listener = match tokio::net::TcpListener::bind(address).await {
            Ok(listener) => listener,
            Err(e) => {
                eprintln!("error[usage]: cannot listen on {address}: {e}");
                eprintln!("hint: pick another --port (0 takes a free one)");
                return 2;
            }
        };
        let bound = listener.local_addr().unwrap_or(address);
        let state = AppState::new(options);
        // The runtime is loaded before the first what-if asks for it.
        let warm = state.clone();
        tokio::spawn(async move { warm.warm_up().await });
        println!("metaexec serves the runs in {} on http://{bound}/ (Ctrl-C stops it)", runs.display());
        let shutdown = async {
            let _ = tokio::signal::ctrl_c().await;
            note("metaexec: stopping");
        };
        match axum::serve(listener, serve::router(state)).with_graceful_shutdown(shutdown).await {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("error[internal]: the server stopped: {e}");
                2
            }
        }
    })
}
