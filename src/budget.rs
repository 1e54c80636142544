//! The host memory budget of one job (or one sweep): everything a guest can make the
//! host hold is counted against it, so that no script can make the host allocate without
//! bound, whatever the per-stream caps say.
//!
//! What counts: values decoded from the guest, the database audit trail, database rows as
//! they are sent, the snapshot cache, and scenario outcomes kept during a sweep. A
//! [`Reservation`] holds its bytes until it is dropped; past the limit a reservation is
//! refused with [`BudgetExceeded`], which callers turn into a named error.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Default budget: 1 GiB of host memory per job.
pub const DEFAULT_HOST_MEMORY_BYTES: usize = 1024 * 1024 * 1024;

/// A job's host memory budget, shared by every part of the host that holds guest data.
#[derive(Debug, Clone)]
pub struct HostBudget {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    limit: usize,
    used: AtomicUsize,
    peak: AtomicUsize,
}

/// A reservation would take the job past its host memory budget.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} would take the host past this job's memory budget ({asked} bytes asked, {used} of {limit} in use)")]
pub struct BudgetExceeded {
    /// What asked for the memory (`a value from the script`, `the database audit trail`, ...).
    pub what: &'static str,
    /// Bytes asked for.
    pub asked: usize,
    /// Bytes in use when it was asked.
    pub used: usize,
    /// The budget.
    pub limit: usize,
}

/// What the user can do when the budget runs out.
pub const BUDGET_HINT: &str =
    "return less data (aggregate in the script or in the query), or raise the budget with --host-memory MIB";

impl BudgetExceeded {
    /// What the user can do about it.
    pub fn hint(&self) -> &'static str {
        BUDGET_HINT
    }
}

impl HostBudget {
    /// A budget of `limit` bytes.
    pub fn new(limit: usize) -> Self {
        Self { inner: Arc::new(Inner { limit, used: AtomicUsize::new(0), peak: AtomicUsize::new(0) }) }
    }

    /// The budget in bytes.
    pub fn limit(&self) -> usize {
        self.inner.limit
    }

    /// Bytes reserved now.
    pub fn used(&self) -> usize {
        self.inner.used.load(Ordering::Relaxed)
    }

    /// The most bytes ever reserved at once.
    pub fn peak(&self) -> usize {
        self.inner.peak.load(Ordering::Relaxed)
    }

    /// Reserves `bytes` for `what`, held until the reservation is dropped.
    pub fn reserve(&self, bytes: usize, what: &'static str) -> Result<Reservation, BudgetExceeded> {
        self.take(bytes, what)?;
        Ok(Reservation { budget: self.clone(), bytes })
    }

    /// An empty reservation, to grow as data arrives.
    pub fn empty(&self) -> Reservation {
        Reservation { budget: self.clone(), bytes: 0 }
    }

    fn take(&self, bytes: usize, what: &'static str) -> Result<(), BudgetExceeded> {
        let inner = &*self.inner;
        let mut used = inner.used.load(Ordering::Relaxed);
        loop {
            let next = used.checked_add(bytes).filter(|&next| next <= inner.limit).ok_or(BudgetExceeded {
                what,
                asked: bytes,
                used,
                limit: inner.limit,
            })?;
            match inner.used.compare_exchange_weak(used, next, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => {
                    inner.peak.fetch_max(next, Ordering::Relaxed);
                    return Ok(());
                }
                Err(actual) => used = actual,
            }
        }
    }

    fn give_back(&self, bytes: usize) {
        self.inner.used.fetch_sub(bytes, Ordering::Relaxed);
    }
}

/// Two handles are equal when they share one budget.
impl PartialEq for HostBudget {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }
}

impl Default for HostBudget {
    fn default() -> Self {
        Self::new(DEFAULT_HOST_MEMORY_BYTES)
    }
}

/// Bytes held against a [`HostBudget`]; given back when dropped.
#[derive(Debug)]
pub struct Reservation {
    budget: HostBudget,
    bytes: usize,
}

impl Reservation {
    /// Holds `bytes` more.
    pub fn grow(&mut self, bytes: usize, what: &'static str) -> Result<(), BudgetExceeded> {
        self.budget.take(bytes, what)?;
        self.bytes += bytes;
        Ok(())
    }

    /// Gives back all but `bytes` (no-op when it holds less).
    pub fn shrink_to(&mut self, bytes: usize) {
        if bytes < self.bytes {
            self.budget.give_back(self.bytes - bytes);
            self.bytes = bytes;
        }
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.budget.give_back(self.bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_are_refused_past_the_limit_and_given_back_on_drop() {
        let budget = HostBudget::new(100);
        let a = budget.reserve(60, "a").unwrap();
        let err = budget.reserve(41, "b").unwrap_err();
        assert_eq!((err.what, err.asked, err.used, err.limit), ("b", 41, 60, 100));
        let mut b = budget.reserve(40, "b").unwrap();
        assert_eq!(budget.used(), 100);
        assert!(b.grow(1, "b").is_err());
        drop(a);
        b.grow(50, "b").unwrap();
        b.shrink_to(10);
        assert_eq!(budget.used(), 10);
        drop(b);
        assert_eq!((budget.used(), budget.peak()), (0, 100));
        assert!(budget.reserve(usize::MAX, "huge").is_err());
    }
}
