//! The host functions a script reaches through the guest library: results, log lines and
//! the database (the imports of `runtime/wit/metaexec.wit`). Each runs against the
//! instance's session; a refusal the guest must not get past (a cap, the budget, a
//! misuse) traps the instance.
//!
//! They are linked by hand rather than through the generated `Host` trait so that they
//! read their string arguments where they lie, in the guest's memory: a guest handing
//! over a string as large as its memory allows makes the host copy nothing before the
//! caps and the budget have had their say. (A table's columns are copied as they are
//! lifted; wasmtime bounds what one call may copy, `hostcall_fuel`.)
//!
//! A query's rows go back by typed column straight from the proxy's copy (the snapshot's,
//! on a hit): the types below lower the proxy's `Arc`-shared columns into the guest's
//! memory without copying them on the host first.

use std::sync::Arc;

use serde_json::Value;
use wasmtime::StoreContextMut;
use wasmtime::component::{ComponentType, Linker, Lower, ResourceTable, WasmStr};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::bindings::{Failure, Table};
use super::limiter::MemoryLimiter;
use super::session::{Session, Stop};
use crate::db::policy::MAX_SQL_BYTES;
use crate::guest_db::{self, AuditEntry, DbAnswer, DbFailure, DbFailureKind, DbRequest, DbResponse};
use crate::guest_value::DecodeError;

/// The instance the imports live in.
const HOST_INTERFACE: &str = "metaexec:sandbox/host@1.2.0";

/// Per-instance store data.
pub struct RunState {
    /// WASI: stdio, the preopened folders, clocks and randomness; no sockets.
    pub wasi: WasiCtx,
    /// WASI's resources (streams, descriptors).
    pub table: ResourceTable,
    /// The memory cap.
    pub limiter: MemoryLimiter,
    /// What the instance produced.
    pub session: Session,
}

impl WasiView for RunState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

fn trap(stop: Stop) -> wasmtime::Error {
    wasmtime::Error::new(stop)
}

/// The interface's `column`, lowered from the proxy's shared columns.
#[derive(ComponentType, Lower)]
#[component(variant)]
enum ColumnOut {
    #[component(name = "floats")]
    Floats(Arc<[f64]>),
    #[component(name = "integers")]
    Integers(Arc<[i64]>),
    #[component(name = "texts")]
    Texts(Arc<[Box<str>]>),
    #[component(name = "maybe-floats")]
    MaybeFloats(Arc<[Option<f64>]>),
    #[component(name = "maybe-integers")]
    MaybeIntegers(Arc<[Option<i64>]>),
    #[component(name = "maybe-texts")]
    MaybeTexts(Arc<[Option<Box<str>>]>),
    #[component(name = "values")]
    Values(Arc<str>),
}

impl From<&guest_db::Column> for ColumnOut {
    fn from(column: &guest_db::Column) -> Self {
        use guest_db::Column as C;
        match column {
            C::Floats(v) => Self::Floats(v.clone()),
            C::Integers(v) => Self::Integers(v.clone()),
            C::Texts(v) => Self::Texts(v.clone()),
            C::MaybeFloats(v) => Self::MaybeFloats(v.clone()),
            C::MaybeIntegers(v) => Self::MaybeIntegers(v.clone()),
            C::MaybeTexts(v) => Self::MaybeTexts(v.clone()),
            C::Values(v) => Self::Values(v.clone()),
        }
    }
}

/// The interface's `table`, lowered.
#[derive(ComponentType, Lower)]
#[component(record)]
struct TableOut {
    names: Arc<[String]>,
    columns: Vec<ColumnOut>,
}

/// The interface's `rows`: a query's answer.
#[derive(ComponentType, Lower)]
#[component(record)]
struct RowsOut {
    table: TableOut,
    count: u64,
    read: bool,
    decimals: bool,
}

impl From<&guest_db::Rows> for RowsOut {
    fn from(rows: &guest_db::Rows) -> Self {
        Self {
            table: TableOut { names: rows.names.clone(), columns: rows.columns.iter().map(ColumnOut::from).collect() },
            count: rows.count as u64,
            read: rows.read,
            decimals: rows.decimals,
        }
    }
}

/// Defines the host interface's functions in `linker`.
pub fn add_to_linker(linker: &mut Linker<RunState>) -> wasmtime::Result<()> {
    let mut host = linker.instance(HOST_INTERFACE)?;
    host.func_wrap("emit", |store: StoreContextMut<'_, RunState>, (name, value): (WasmStr, WasmStr)| {
        let session = store.data().session.clone();
        let (name, value) = (name.to_str(&store)?, value.to_str(&store)?);
        session.lock().emit(&name, &value).map_err(trap)
    })?;
    host.func_wrap("emit-table", |store: StoreContextMut<'_, RunState>, (name, rows): (WasmStr, Table)| {
        let session = store.data().session.clone();
        let name = name.to_str(&store)?;
        session.lock().emit_table(&name, rows).map_err(trap)
    })?;
    host.func_wrap("log", |store: StoreContextMut<'_, RunState>, (message,): (WasmStr,)| {
        let session = store.data().session.clone();
        let message = message.to_str(&store)?;
        session.lock().log(&message).map_err(trap)
    })?;
    host.func_wrap_async(
        "db-query",
        |store: StoreContextMut<'_, RunState>, (sql, params, exact_decimals): (WasmStr, WasmStr, bool)| {
            Box::new(async move {
                let session = store.data().session.clone();
                let request = query_request(&session, &sql.to_str(&store)?, &params.to_str(&store)?, exact_decimals)
                    .map_err(trap)?;
                let answer =
                    db_request(&session, request).await.map_err(trap)?.map_err(failure).and_then(
                        |answer| match answer {
                            DbAnswer::Rows(rows) => Ok(RowsOut::from(&rows)),
                            DbAnswer::Schema(_) => Err(unexpected_answer()),
                        },
                    );
                Ok((answer,))
            })
        },
    )?;
    host.func_wrap_async("db-schema", |store: StoreContextMut<'_, RunState>, (): ()| {
        Box::new(async move {
            let session = store.data().session.clone();
            session.lock().check().map_err(trap)?;
            let answer =
                db_request(&session, DbRequest::Schema).await.map_err(trap)?.map_err(failure).and_then(|answer| {
                    match answer {
                        DbAnswer::Schema(json) => Ok(String::from(Box::<str>::from(json))),
                        DbAnswer::Rows(_) => Err(unexpected_answer()),
                    }
                });
            Ok((answer,))
        })
    })?;
    Ok(())
}

/// The query the guest asked for, with its parameters decoded under the budget. A
/// statement past the policy's length limit is passed on cut just past it, so that the
/// policy refuses it (and the audit records it) without the host copying all of it.
/// Shared by every transport a guest reaches the host over.
pub(crate) fn query_request(
    session: &Session,
    sql: &str,
    params: &str,
    exact_decimals: bool,
) -> Result<DbRequest, Stop> {
    let mut state = session.lock();
    state.check()?;
    // Held only while the request is decoded: the audit charges its own copy.
    let mut held = state.budget.empty();
    let params = match crate::guest_value::decode(params, &mut held) {
        Ok(Value::Array(params)) => params,
        Ok(_) => return Err(state.violation("query parameters that are not a list")),
        Err(e @ (DecodeError::Budget(_) | DecodeError::TooManyValues)) => {
            return Err(state.over_budget(e.to_string()));
        }
        Err(e @ DecodeError::Json(_)) => {
            return Err(state.violation(format!("query parameters that are not JSON ({e})")));
        }
    };
    let mut cut = sql.len().min(MAX_SQL_BYTES + 1);
    while !sql.is_char_boundary(cut) {
        cut += 1;
    }
    Ok(DbRequest::Query { sql: sql[..cut].to_owned(), params, exact_decimals })
}

/// Answers a database request through the job's proxy (or refuses it when the run has
/// none), recording it in the audit. Shared by every transport.
pub(crate) async fn db_request(session: &Session, request: DbRequest) -> Result<Result<DbAnswer, DbFailure>, Stop> {
    let db = session.lock().db.clone();
    let response = match db {
        Some(db) => db.0.handle(request).await,
        None => no_database(&request),
    };
    let failure_kind = response.result.as_ref().err().map(|failure| failure.kind);
    session.lock().record_db(response.audit, failure_kind)?;
    Ok(response.result)
}

/// A proxy failure as the interface's `failure`.
fn failure(failure: DbFailure) -> Failure {
    Failure { kind: failure.kind.as_str().into(), message: failure.message, hint: failure.hint }
}

/// An implementation of `GuestDb` answered a request with the other request's kind of
/// answer: the script gets a failure, not a wrong value.
fn unexpected_answer() -> Failure {
    Failure {
        kind: DbFailureKind::Error.as_str().into(),
        message: "the database answered with the wrong kind of value".into(),
        hint: None,
    }
}

/// The answer to a database request in a run without a database.
fn no_database(request: &DbRequest) -> DbResponse {
    let failure = DbFailure {
        kind: DbFailureKind::Error,
        message: "this run has no database attached".into(),
        hint: Some("run the script with `--db URL` (or set DATABASE_URL)".into()),
    };
    let mut audit = AuditEntry::for_request(request);
    audit.allowed = false;
    audit.status = failure.kind.as_str().into();
    audit.reason = Some(failure.message.clone());
    DbResponse { result: Err(failure), audit }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The instance the imports are linked under names the version of the interface the
    /// runtime is built against.
    #[test]
    fn the_host_interface_is_the_manifests_version() {
        let interface = crate::python_wasm::MANIFEST.interface;
        assert_eq!(HOST_INTERFACE, interface.replacen("sandbox@", "sandbox/host@", 1));
        let wit = include_str!("../../runtime/wit/metaexec.wit");
        assert!(wit.contains(&format!("package {interface};")), "{interface}");
    }
}
