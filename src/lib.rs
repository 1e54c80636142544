//! metaexec turns a request into a Python script, checks it, runs it in a sandbox and
//! hands back results.
//!
//! The stages, each depending only on the ones before it: `job` and `outcome` are the
//! shared types; `python_wasm` provides the pinned interpreter; `sandbox` runs jobs in
//! it behind the `executor::Executor` trait; `cli` is the command line on top.

pub mod cache;
pub mod cli;
pub mod db;
pub mod executor;
pub mod guest_db;
pub mod job;
pub mod outcome;
pub mod python_wasm;
pub mod report;
pub mod sandbox;
pub mod scenario;
pub mod sweep;
