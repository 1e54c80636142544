//! Integration tests: the real wasmtime sandbox running the real CPython component, real SQLite
//! files, a throwaway PostgreSQL cluster (`pg`), real llama.cpp model servers (`llama`), a local
//! Ray head (`ray`) and the real `metaexec` binary. One test binary, shared helpers in `common`.

mod analysis;
mod browser;
mod cdp;
mod cli;
mod common;
mod db_demo;
mod db_proxy;
mod docker;
mod fetch;
mod host_interface;
mod interrupt;
mod isolation;
mod library;
mod limits;
mod llama;
mod llm;
mod llm_server;
mod pg;
mod questions;
mod ray;
mod real_llm;
mod redteam;
mod run;
mod run_model;
mod runs;
mod serve;
mod shards;
mod sweep;
mod validate;
