//! The run store: a folder per run (`run`, `exec` and `sweep` alike),
//! `runs/<timestamp>-<slug>/`, holding the request, the plan, the model's prompts and
//! answers, each script tried with its validation, the job (`job.json`), the outcome, the
//! script's results folder, the exports, an HTML report and a manifest of every file's
//! SHA-256. Every file is written atomically (a temporary file, then a rename), so a
//! process killed mid-write leaves the previous version or none, never half a file.
//!
//! [`index`] lists runs from a SQLite index rebuilt from the folders whenever it is
//! missing or behind them; [`entry`] is the line a run contributes to it.

pub mod entry;
pub mod finish;
pub mod index;
pub mod job_record;
pub mod location;
pub mod manifest;

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

pub use entry::{Entry, RunKind, RunStatus};
pub use job_record::JobRecord;
pub use location::{DEFAULT_RUNS_DIR, RUNS_DIR_ENV, runs_root};

/// A run's folder.
#[derive(Debug, Clone)]
pub struct RunDir {
    /// Its name, which is also the run's id.
    pub id: String,
    /// Its path.
    pub path: PathBuf,
}

impl RunDir {
    /// Creates a fresh folder under `root` for `request`: `20261123-142501-review-the-debt`.
    /// Never reuses an existing folder, so no earlier run is overwritten.
    pub fn create(root: &Path, request: &str) -> std::io::Result<Self> {
        std::fs::create_dir_all(root)?;
        let stem = format!("{}-{}", timestamp(), slug(request));
        for n in 1.. {
            let id = if n == 1 { stem.clone() } else { format!("{stem}-{n}") };
            let path = root.join(&id);
            match std::fs::create_dir(&path) {
                Ok(()) => return Ok(Self { id, path }),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
        }
        unreachable!("an unbounded range ends only by returning")
    }

    /// The folder the script sees as `/results`.
    pub fn results(&self) -> PathBuf {
        self.path.join("results")
    }

    /// An existing run folder: `root/id`, after checking that `id` names one (a plain
    /// folder name, no path).
    pub fn open(root: &Path, id: &str) -> Result<Self, StoreError> {
        if !is_run_id(id) {
            return Err(StoreError::BadId(id.to_owned()));
        }
        let path = root.join(id);
        match std::fs::symlink_metadata(&path) {
            Ok(meta) if meta.is_dir() => Ok(Self { id: id.to_owned(), path }),
            _ => Err(StoreError::NotFound { id: id.to_owned(), root: root.to_owned() }),
        }
    }

    /// Writes `text` to `name` in the folder, atomically.
    pub fn write_text(&self, name: &str, text: &str) -> std::io::Result<PathBuf> {
        self.write_bytes(name, text.as_bytes())
    }

    /// Writes `bytes` to `name` in the folder, atomically: a reader (or a crash) sees
    /// the old file or the new one, never a part.
    pub fn write_bytes(&self, name: &str, bytes: &[u8]) -> std::io::Result<PathBuf> {
        let path = self.path.join(name);
        crate::cache::write_atomically(&path, bytes)?;
        Ok(path)
    }

    /// Reads `name` in the folder as JSON, `None` when it is missing.
    pub fn read_json<T: serde::de::DeserializeOwned>(&self, name: &str) -> Result<Option<T>, StoreError> {
        let path = self.path.join(name);
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| StoreError::Corrupt { path, reason: e.to_string() }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(StoreError::Io { path, source }),
        }
    }

    /// Writes `value` as pretty JSON to `name` in the folder.
    pub fn write_json<T: Serialize>(&self, name: &str, value: &T) -> std::io::Result<PathBuf> {
        let text = serde_json::to_string_pretty(value).map_err(std::io::Error::other)?;
        self.write_text(name, &(text + "\n"))
    }
}

/// Why a run could not be found or read.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Not a plain folder name.
    #[error("`{0}` is not a run id (run ids are folder names like 20261202-164001-calculate-dscr)")]
    BadId(String),
    /// No such run.
    #[error("no run `{id}` in {}", root.display())]
    NotFound {
        /// The id asked for.
        id: String,
        /// The runs folder searched.
        root: PathBuf,
    },
    /// A record that does not parse.
    #[error("{} is not a valid record: {reason}", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What the parser said.
        reason: String,
    },
    /// Reading or writing failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The index could not be read or written.
    #[error("the runs index {}: {reason}", path.display())]
    Index {
        /// The index file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
}

/// Whether `id` can name a run folder: a plain name, no separator, not hidden.
pub fn is_run_id(id: &str) -> bool {
    !id.is_empty()
        && !id.starts_with('.')
        && id.len() <= 200
        && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// `YYYYMMDD-HHMMSS` in UTC.
fn timestamp() -> String {
    utc_now().format("%Y%m%d-%H%M%S").to_string()
}

/// Now, to the second, in UTC (the epoch if the clock is before it).
pub(crate) fn utc_now() -> chrono::DateTime<chrono::Utc> {
    let secs = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    chrono::DateTime::from_timestamp(i64::try_from(secs).unwrap_or(0), 0).unwrap_or_default()
}

/// Now, to the nanosecond, in UTC (the epoch if the clock is before it).
pub(crate) fn utc_now_precise() -> chrono::DateTime<chrono::Utc> {
    let since = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    chrono::DateTime::from_timestamp(i64::try_from(since.as_secs()).unwrap_or(0), since.subsec_nanos())
        .unwrap_or_default()
}

/// The request's first words, lower case, joined by `-`, at most 40 characters.
fn slug(request: &str) -> String {
    let mut slug = String::new();
    for word in request.split(|c: char| !c.is_ascii_alphanumeric()).filter(|w| !w.is_empty()) {
        if slug.len() + word.len() + 1 > 40 {
            break;
        }
        if !slug.is_empty() {
            slug.push('-');
        }
        slug.push_str(&word.to_ascii_lowercase());
    }
    if slug.is_empty() { "run".to_owned() } else { slug }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folders_are_named_by_time_and_request_and_never_reused() {
        assert_eq!(
            slug("Calculate DSCR for Orlando Fashion Square, with 3 scenarios!"),
            "calculate-dscr-for-orlando-fashion"
        );
        assert_eq!(slug("¿¡!"), "run");
        let root = tempfile::tempdir().unwrap();
        let a = RunDir::create(root.path(), "same request").unwrap();
        let b = RunDir::create(root.path(), "same request").unwrap();
        assert_ne!(a.path, b.path);
        assert!(a.id.ends_with("-same-request") && a.id.len() == "20261123-142501-same-request".len(), "{}", a.id);
        a.write_json("sub/x.json", &serde_json::json!({"k": 1})).unwrap();
        assert_eq!(std::fs::read_to_string(a.path.join("sub/x.json")).unwrap(), "{\n  \"k\": 1\n}\n");
    }
}
