//! CPython's own verdict on a script's syntax, for the validator: when its parser does not
//! know a construct, the sandboxed interpreter (the one the script will run in) decides.
//! The script is compiled, never run.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde_json::{Value, json};

use super::WasiSandbox;
use crate::job::Job;
use crate::outcome::Status;
use crate::validate::{Compiled, SyntaxOracle};

/// Compiles the source passed as a parameter and reports `SyntaxError`'s position.
const CHECKER: &str = r#"
import metaexec
try:
    compile(metaexec.params["source"], metaexec.params["name"], "exec", dont_inherit=True)
    metaexec.emit("compiled", {"ok": True})
except SyntaxError as e:
    metaexec.emit("compiled", {"ok": False, "line": e.lineno or 1, "column": e.offset or 1, "message": e.msg})
"#;

/// Compiling a script takes well under a second; this only bounds a pathological one.
const TIMEOUT: Duration = Duration::from_secs(20);

/// Asks the sandboxed CPython whether a script compiles.
pub struct CompileCheck {
    sandbox: WasiSandbox,
    scratch: PathBuf,
}

impl CompileCheck {
    /// A check that runs in `sandbox`, with a scratch results folder under `scratch_root`.
    pub fn new(sandbox: WasiSandbox, scratch_root: impl Into<PathBuf>) -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let scratch = scratch_root.into().join(format!("compile-check-{}-{n}", std::process::id()));
        CompileCheck { sandbox, scratch }
    }
}

impl Drop for CompileCheck {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.scratch);
    }
}

impl SyntaxOracle for CompileCheck {
    fn compile(&self, source: &str, file_name: &str) -> Result<Compiled, String> {
        let mut job = Job::new("compile_check.py", CHECKER, &self.scratch);
        job.params.insert("source".into(), json!(source));
        job.params.insert("name".into(), json!(file_name));
        job.limits.timeout = TIMEOUT;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("Failed to start the async runtime: {e}"))?;
        let outcome = runtime.block_on(self.sandbox.run(&job));
        if outcome.status != Status::Ok {
            let why = outcome.error.map_or_else(|| "unknown".to_string(), |e| e.message);
            return Err(format!("CPython could not be asked: {why}"));
        }
        let answer = outcome.results.get("compiled").ok_or("CPython gave no answer")?;
        if answer["ok"] == Value::Bool(true) {
            return Ok(Compiled::Ok);
        }
        let number = |key: &str| answer[key].as_u64().and_then(|n| u32::try_from(n).ok()).unwrap_or(1);
        Ok(Compiled::SyntaxError {
            line: number("line"),
            column: number("column"),
            message: answer["message"].as_str().unwrap_or("invalid syntax").to_string(),
        })
    }
}
