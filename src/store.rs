//! The run store: a folder per run, `runs/<timestamp>-<slug>/`, holding the request, the
//! plan, the model's prompts and answers, each script tried with its validation, the
//! outcome, the script's results folder and the exports.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

/// The default runs folder, relative to the working directory.
pub const DEFAULT_RUNS_DIR: &str = "runs";

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

    /// Writes `text` to `name` in the folder.
    pub fn write_text(&self, name: &str, text: &str) -> std::io::Result<PathBuf> {
        let path = self.path.join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&path, text)?;
        Ok(path)
    }

    /// Writes `value` as pretty JSON to `name` in the folder.
    pub fn write_json<T: Serialize>(&self, name: &str, value: &T) -> std::io::Result<PathBuf> {
        let text = serde_json::to_string_pretty(value).map_err(std::io::Error::other)?;
        self.write_text(name, &(text + "\n"))
    }
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
