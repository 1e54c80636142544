//! A cancellation flag shared by everything one command runs: the command line sets it on
//! the first Ctrl-C, and the stages that can stop early (a sweep handing out scenarios,
//! its running instances at their next epoch check, the pipeline between stages) read it.
//!
//! A flag rather than dropping futures: a sweep that is told to stop still has finished
//! scenarios to write, so it has to wind down on its own instead of vanishing mid-write.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::Notify;

/// A cheap, cloneable cancellation flag; every clone sees the same state.
#[derive(Debug, Clone, Default)]
pub struct Cancel(Arc<Inner>);

#[derive(Debug, Default)]
struct Inner {
    cancelled: AtomicBool,
    notify: Notify,
}

impl Cancel {
    /// A flag that is not set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the flag and wakes everything waiting in [`Cancel::cancelled`]. Setting it
    /// twice is harmless.
    pub fn cancel(&self) {
        self.0.cancelled.store(true, Ordering::SeqCst);
        self.0.notify.notify_waiters();
    }

    /// Whether the flag is set. Cheap enough for an epoch callback.
    pub fn is_cancelled(&self) -> bool {
        self.0.cancelled.load(Ordering::Relaxed)
    }

    /// Resolves once the flag is set (at once if it already is).
    pub async fn cancelled(&self) {
        // Created before the check: `notify_waiters` reaches a `Notified` from the moment
        // it exists, so a `cancel` between the check and the await is not lost.
        let notified = self.0.notify.notified();
        if self.is_cancelled() {
            return;
        }
        notified.await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clones_share_the_flag_and_waiters_wake() {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let cancel = Cancel::new();
        let other = cancel.clone();
        assert!(!other.is_cancelled());
        runtime.block_on(async {
            let waiter = tokio::spawn(async move { other.cancelled().await });
            tokio::task::yield_now().await;
            cancel.cancel();
            waiter.await.unwrap();
        });
        assert!(cancel.is_cancelled());
        // Already set: resolves at once.
        runtime.block_on(cancel.cancelled());
    }
}
