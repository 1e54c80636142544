//! The run record of `exec` and `sweep`: a run folder like `run`'s, started before the
//! script runs and finished after, so every command leaves a run that can be listed,
//! shown, re-run and served.

use std::path::Path;

use super::note;
use super::script::ScriptArgs;
use crate::job::Job;
use crate::report::run_page::PageInputs;
use crate::store::{self, Entry, JobRecord, RunDir, RunKind, RunStatus};

/// A run being recorded.
pub(super) struct Recorder {
    /// Its folder.
    pub dir: RunDir,
    /// Its entry, finished by [`Recorder::finish`].
    pub entry: Entry,
}

impl Recorder {
    /// Creates the run folder under `root` and records the job. A folder that cannot be
    /// made is a warning: the script still runs, unrecorded.
    pub fn start(root: &Path, kind: RunKind, job: &Job, record: &JobRecord) -> Option<Self> {
        let started = RunDir::create(root, &job.script_name).and_then(|dir| {
            dir.write_text("script.py", &job.source)?;
            let mut entry = Entry::started(&dir.id, kind, &job.script_name);
            entry.rerun_of = record.rerun_of.clone();
            store::finish::start(&dir, &entry, record)?;
            Ok(Self { dir, entry })
        });
        match started {
            Ok(recorder) => Some(recorder),
            Err(e) => {
                note(&format!(
                    "warning: the run is not recorded: no run folder in {} ({e}); pass --runs DIR",
                    root.display()
                ));
                None
            }
        }
    }

    /// Writes `name` as JSON into the run folder; a failure is a warning.
    pub fn write_json<T: serde::Serialize>(&self, name: &str, value: &T) {
        if let Err(e) = self.dir.write_json(name, value) {
            note(&format!("warning: could not write {name} into {}: {e}", self.dir.path.display()));
        }
    }

    /// Finishes the record with the run's status and page, and says where it is.
    pub fn finish(
        mut self,
        status: RunStatus,
        error_kind: Option<String>,
        headline: Option<String>,
        page: PageInputs<'_>,
    ) {
        self.entry.status = status;
        self.entry.error_kind = error_kind;
        self.entry.headline = headline;
        let page = PageInputs {
            id: &self.entry.id,
            title: &self.entry.title,
            kind: self.entry.kind.as_str(),
            created: &self.entry.created,
            status: self.entry.status.as_str(),
            ..page
        };
        store::finish::finish_or_warn(&self.dir, &self.entry, &page);
        note(&format!("metaexec: recorded as run {} ({})", self.entry.id, self.dir.path.display()));
    }
}

/// The job record of a script run from the command line.
pub(super) fn job_record(
    kind: RunKind,
    args: &ScriptArgs,
    backend: crate::validate::BackendRequest,
    job: &Job,
    cache_root: &Path,
) -> JobRecord {
    JobRecord {
        kind,
        request: None,
        script_name: job.script_name.clone(),
        params: job.params.clone(),
        limits: job.limits.clone(),
        host_memory_bytes: args.host_memory.saturating_mul(1024 * 1024),
        capability: args.capability.capability().unwrap_or_else(|_| crate::db::Capability::read_only()),
        database: args.db.url(cache_root).map(|u| u.masked()).unwrap_or_default(),
        backend,
        runtime: crate::python_wasm::installed(cache_root).ok().map(|i| i.sha256),
        seed: job.seed,
        results_dir: std::path::absolute(&job.results_dir).ok(),
        model: None,
        sweep: None,
        rerun_of: None,
    }
}
