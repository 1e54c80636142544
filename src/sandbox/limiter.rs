//! The memory cap. Growth past the cap is refused with `Ok(false)`, which CPython turns
//! into a `MemoryError` the script may catch; the `hit` flag lets the outcome say
//! `memory_limit` when the refusal ends the run instead.

use wasmtime::ResourceLimiter;

/// Tracks linear-memory growth against a cap.
#[derive(Debug)]
pub struct MemoryLimiter {
    cap: usize,
    /// The largest size any memory grew to.
    pub peak: usize,
    /// True once a growth was refused.
    pub hit: bool,
}

impl MemoryLimiter {
    /// A limiter for `cap` bytes.
    pub fn new(cap: u64) -> Self {
        Self { cap: usize::try_from(cap).unwrap_or(usize::MAX), peak: 0, hit: false }
    }
}

/// Tables are small for CPython (its function table); a generous fixed cap keeps a
/// pathological guest from growing one without bound.
const MAX_TABLE_ELEMENTS: usize = 1 << 20;

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        if desired > self.cap {
            self.hit = true;
            return Ok(false);
        }
        self.peak = self.peak.max(desired);
        Ok(true)
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }
}
