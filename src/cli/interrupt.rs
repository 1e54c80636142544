//! Ctrl-C for the commands that run for long (`sweep`, `run`): the first SIGINT asks the
//! work to wind down (a [`Cancel`] the sweep and the pipeline read), so that what finished
//! is still written and the command exits with [`INTERRUPTED`]; a second SIGINT exits at
//! once, writing nothing more.
//!
//! The handler is installed before the work starts and stays for the life of the process:
//! once it is, SIGINT no longer kills the process by itself.

use crate::cancel::Cancel;

/// The exit code of an interrupted command: 128 + SIGINT, as shells report it.
pub const INTERRUPTED: i32 = 130;

/// Installs the handler on the current tokio runtime (call it inside `Runtime::enter` or
/// `block_on`). On the first SIGINT it sets `cancel` and calls `on_first` (to tell the
/// person what happens now); on the second it exits the process with [`INTERRUPTED`].
pub fn watch(cancel: Cancel, on_first: impl Fn() + Send + 'static) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        // One stream for both signals: a second `ctrl_c()` registered after the first
        // fired could miss a SIGINT sent in between.
        let mut signals = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?;
        tokio::spawn(async move {
            if signals.recv().await.is_none() {
                return;
            }
            cancel.cancel();
            on_first();
            if signals.recv().await.is_some() {
                super::note("interrupted again: exiting at once");
                std::process::exit(INTERRUPTED);
            }
        });
    }
    #[cfg(not(unix))]
    {
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_err() {
                return;
            }
            cancel.cancel();
            on_first();
            if tokio::signal::ctrl_c().await.is_ok() {
                super::note("interrupted again: exiting at once");
                std::process::exit(INTERRUPTED);
            }
        });
    }
    Ok(())
}
