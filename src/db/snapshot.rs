//! The snapshot cache: identical reads within a job or a sweep answered from memory,
//! least recently used first out, bounded in bytes.
//!
//! An entry is the answer exactly as the guest receives it ([`QueryResult`], one copy)
//! and its key (the SQL text and parameters as sent). The answer's bytes stay reserved in
//! the job's [`HostBudget`] by the reservation it carries since its rows were collected;
//! the key's bytes are reserved on insertion. The cache keeps at most half the budget
//! (the rest is for the rows in flight, queued replies and decoded values): an insertion
//! that does not fit evicts the least recently used entries, and one that still does not
//! fit is simply not cached. Under memory pressure the proxy empties the cache
//! ([`Snapshots::clear`]) before refusing a query.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use super::proxy::QueryResult;
use crate::budget::{HostBudget, Reservation};

/// What identifies an answer: the SQL as sent, the parameters as JSON, and whether exact
/// decimals were asked for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CacheKey {
    /// The SQL text as the guest sent it.
    pub sql: String,
    /// The parameters, as JSON text.
    pub params: String,
    /// Exact decimals.
    pub exact: bool,
}

impl CacheKey {
    fn bytes(&self) -> usize {
        // Held twice (the map and the recency order share it through an `Arc`) plus the
        // bookkeeping of both maps, rounded up.
        self.sql.len() + self.params.len() + 128
    }
}

#[derive(Debug)]
struct Entry {
    result: Arc<QueryResult>,
    tick: u64,
    bytes: usize,
    _key: Reservation,
}

/// The cache (see the module documentation).
#[derive(Debug)]
pub struct Snapshots {
    entries: HashMap<Arc<CacheKey>, Entry>,
    order: BTreeMap<u64, Arc<CacheKey>>,
    tick: u64,
    bytes: usize,
    limit: usize,
    budget: HostBudget,
}

impl Snapshots {
    /// An empty cache keeping at most half of `budget`.
    pub fn new(budget: HostBudget) -> Self {
        Self { entries: HashMap::new(), order: BTreeMap::new(), tick: 0, bytes: 0, limit: budget.limit() / 2, budget }
    }

    /// The answer for `key`, marked as just used.
    pub fn get(&mut self, key: &CacheKey) -> Option<Arc<QueryResult>> {
        self.tick += 1;
        let tick = self.tick;
        let entry = self.entries.get_mut(key)?;
        if let Some(shared) = self.order.remove(&entry.tick) {
            self.order.insert(tick, shared);
        }
        entry.tick = tick;
        Some(entry.result.clone())
    }

    /// Keeps `result` for `key` if it fits (evicting the least recently used entries);
    /// returns whether it was kept.
    pub fn insert(&mut self, key: CacheKey, result: Arc<QueryResult>) -> bool {
        self.remove(&key);
        let key_bytes = key.bytes();
        let bytes = result.held_bytes().saturating_add(key_bytes);
        if bytes > self.limit {
            return false;
        }
        while self.bytes.saturating_add(bytes) > self.limit && self.evict_one() {}
        let reservation = loop {
            match self.budget.reserve(key_bytes, "the snapshot cache") {
                Ok(reservation) => break reservation,
                Err(_) if self.evict_one() => {}
                Err(_) => return false,
            }
        };
        self.tick += 1;
        let key = Arc::new(key);
        self.order.insert(self.tick, key.clone());
        self.entries.insert(key, Entry { result, tick: self.tick, bytes, _key: reservation });
        self.bytes += bytes;
        true
    }

    /// Forgets every entry (after a write, or to make room for rows).
    pub fn clear(&mut self) {
        self.entries.clear();
        self.order.clear();
        self.bytes = 0;
    }

    /// How many entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Bytes held by the entries.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    fn remove(&mut self, key: &CacheKey) {
        if let Some(entry) = self.entries.remove(key) {
            self.order.remove(&entry.tick);
            self.bytes -= entry.bytes;
        }
    }

    fn evict_one(&mut self) -> bool {
        let Some((_, key)) = self.order.pop_first() else { return false };
        if let Some(entry) = self.entries.remove(&*key) {
            self.bytes -= entry.bytes;
        }
        true
    }
}
