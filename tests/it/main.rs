//! Integration tests: the real wasmtime sandbox running the real WASI CPython, and the
//! real `metaexec` binary. One test binary, shared helpers in `common`.

mod channel;
mod cli;
mod common;
mod fetch;
mod isolation;
mod library;
mod limits;
