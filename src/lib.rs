//! metaexec turns a request into a Python script, checks it, runs it in a sandbox and
//! hands back results.
//!
//! The stages, each depending only on the ones before it: `job` and `outcome` are the
//! shared types; `python_wasm` builds the runtime component; `sandbox` runs jobs in
//! it behind the `executor::Executor` trait; `validate` checks a script before it runs;
//! `cli` is the command line on top.
//!
//! Everything but `validate`, the SQL policy (`db`'s pure parts), the decoder of guest
//! values (`guest_value`) and the host memory budget (`budget`) sits behind the default `engine`
//! feature, so those build alone (for the fuzz targets) without wasmtime or the database
//! drivers.

pub mod budget;
#[cfg(feature = "engine")]
pub mod cache;
#[cfg(feature = "engine")]
pub mod cancel;
#[cfg(feature = "engine")]
pub mod cli;
pub mod db;
#[cfg(feature = "engine")]
pub mod docker;
#[cfg(feature = "engine")]
pub mod executor;
#[cfg(feature = "engine")]
pub mod guest_db;
#[cfg(feature = "engine")]
pub mod guest_dir;
pub mod guest_value;
#[cfg(feature = "engine")]
pub mod job;
#[cfg(feature = "engine")]
pub mod llm;
#[cfg(feature = "engine")]
pub mod outcome;
#[cfg(feature = "engine")]
pub mod pipeline;
#[cfg(feature = "engine")]
pub mod python_wasm;
#[cfg(feature = "engine")]
pub mod report;
#[cfg(feature = "engine")]
pub mod result_table;
#[cfg(feature = "engine")]
pub mod sandbox;
#[cfg(feature = "engine")]
pub mod scenario;
#[cfg(feature = "engine")]
pub mod serve;
#[cfg(feature = "engine")]
pub mod store;
#[cfg(feature = "engine")]
pub mod sweep;
#[cfg(feature = "engine")]
pub mod task;
pub mod validate;
