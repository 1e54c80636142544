//! A shard's part: the self-describing folder `metaexec sweep --shard I/N --out DIR`
//! writes, and the checks `metaexec sweep merge` makes before it adds parts up.
//!
//! A part holds `part.json` (which plan, script and runtime it ran, by SHA-256; its
//! shard and scenario range; its failures and what the script read), `scenarios.parquet`
//! (one row per scenario: index, id, status, wall time, the portfolio DSCR, and the
//! parameters, error, results, output and log lines as JSON text, so the merge rebuilds
//! every outcome exactly), and copies of `plan.json`, the script and the database
//! snapshot it answered from. `part.json` is written last: a folder without it is a
//! shard that did not finish.

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::{Array, ArrayRef, Float64Array, RecordBatch, StringArray, UInt64Array};
use arrow_schema::{DataType, Field, Schema};
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use serde::{Deserialize, Serialize};

use crate::outcome::{OutcomeError, ParamsRead, Sanitized};
use crate::scenario::{ScenarioOutcome, ScenarioStatus};

/// The format a `part.json` declares.
pub const PART_FORMAT: &str = "metaexec-sweep-part/1";
/// The part's description, written last.
pub const PART_FILE: &str = "part.json";
/// The per-scenario rows.
pub const ROWS_FILE: &str = "scenarios.parquet";
/// The plan the part ran.
pub const PLAN_FILE: &str = "plan.json";
/// The database snapshot the part answered from, when it had one.
pub const SNAPSHOT_FILE: &str = "snapshot.json";
/// Rows per Parquet row group: memory stays bounded however long the shard.
const BATCH: usize = 4096;

/// Why parts cannot be written, read or merged.
#[derive(Debug, thiserror::Error)]
pub enum PartError {
    /// A file cannot be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The folder holds no finished part.
    #[error("`{dir}` is not a finished part: {reason}")]
    NotAPart {
        /// The folder.
        dir: PathBuf,
        /// What is missing or wrong.
        reason: String,
    },
    /// A part from another sweep.
    #[error(
        "`{dir}` ran another {what} than `{first}` (SHA-256 {theirs}… against {ours}…): parts merge only with the parts of the same sweep"
    )]
    Foreign {
        /// The odd part.
        dir: PathBuf,
        /// The first part given.
        first: PathBuf,
        /// `plan`, `script` or `runtime`.
        what: &'static str,
        /// The odd part's hash (shortened).
        theirs: String,
        /// The first part's hash (shortened).
        ours: String,
    },
    /// A part that read other data than the first part.
    #[error(
        "`{dir}` read {theirs}, but `{first}` read {ours}: the parts of one sweep read the same data (give every shard the same --snapshot or database)"
    )]
    OtherData {
        /// The odd part.
        dir: PathBuf,
        /// The first part given.
        first: PathBuf,
        /// Where the odd part's reads came from.
        theirs: DataSource,
        /// Where the first part's came from.
        ours: DataSource,
    },
    /// A shard given twice.
    #[error("shard {index}/{count} is given twice: `{first}` and `{second}`; give each shard once")]
    Duplicate {
        /// The shard.
        index: usize,
        /// Of how many.
        count: usize,
        /// One folder.
        first: PathBuf,
        /// The other.
        second: PathBuf,
    },
    /// A shard missing.
    #[error(
        "shard {index}/{count} (scenarios {start}..{end}) is missing: run `metaexec sweep … --shard {index}/{count} --out DIR` and merge its part too"
    )]
    Missing {
        /// The shard.
        index: usize,
        /// Of how many.
        count: usize,
        /// Its first scenario.
        start: usize,
        /// Past its last scenario.
        end: usize,
    },
    /// Parts that split the sweep differently.
    #[error("`{dir}` is shard {index}/{count}, but `{first}` is one of {first_count}: parts of one split only")]
    Split {
        /// The odd part.
        dir: PathBuf,
        /// Its shard.
        index: usize,
        /// Its count.
        count: usize,
        /// The first part given.
        first: PathBuf,
        /// The first part's count.
        first_count: usize,
    },
    /// A part whose files disagree with its description.
    #[error("`{dir}` is damaged: {reason}")]
    Corrupt {
        /// The folder.
        dir: PathBuf,
        /// What disagrees.
        reason: String,
    },
}

/// Shard `index` (from 0) of `count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    /// From 0.
    pub index: usize,
    /// How many shards split the sweep.
    pub count: usize,
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// Where a part's reads came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum DataSource {
    /// A snapshot shipped with the shard (copied into the part).
    Snapshot {
        /// Its SHA-256.
        sha256: String,
    },
    /// A database (its URL with the password masked).
    Database {
        /// The masked URL.
        url: String,
    },
    /// No database.
    None,
}

impl std::fmt::Display for DataSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DataSource::Snapshot { sha256 } => {
                write!(f, "the snapshot {}…", sha256.chars().take(12).collect::<String>())
            }
            DataSource::Database { url } => write!(f, "the database {url}"),
            DataSource::None => f.write_str("no database"),
        }
    }
}

/// A failed scenario, as `part.json` lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PartFailure {
    /// Its index in the plan.
    pub index: usize,
    /// Its id.
    pub id: String,
    /// The error kind.
    pub kind: String,
    /// The message.
    pub message: String,
}

/// What a shard cost.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct PartMetrics {
    /// Wall-clock time of the shard's scenarios.
    pub wall_ms: f64,
    /// Sandbox instances it ran.
    pub workers: usize,
    /// Queries that reached a database.
    pub db_queries: u64,
}

/// `part.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PartInfo {
    /// [`PART_FORMAT`].
    pub format: String,
    /// SHA-256 of the plan's JSON.
    pub plan_sha256: String,
    /// SHA-256 of the script's text.
    pub script_sha256: String,
    /// SHA-256 of the runtime component that ran it.
    pub runtime_sha256: String,
    /// SHA-256 of `scenarios.parquet`: a damaged or edited file is refused before it is
    /// decoded.
    pub rows_sha256: String,
    /// The script's file name (its text is beside this file under that name).
    pub script_name: String,
    /// Which shard.
    pub shard: Shard,
    /// Its scenarios: indices `start..end` of the plan.
    pub range: Range<usize>,
    /// Scenarios in the whole plan.
    pub total: usize,
    /// Scenarios that finished.
    pub ok: usize,
    /// Every failed scenario.
    pub failures: Vec<PartFailure>,
    /// What the script read of its parameters, over the part's finished scenarios.
    pub params_read: ParamsRead,
    /// Instances stopped between scenarios and replaced.
    #[serde(default)]
    pub instance_errors: Vec<OutcomeError>,
    /// What the host removed from the shard's results folder.
    #[serde(default)]
    pub sanitized: Vec<Sanitized>,
    /// The limits the scenarios ran under.
    pub limits: crate::job::Limits,
    /// Where the reads came from.
    pub data: DataSource,
    /// What it cost.
    pub metrics: PartMetrics,
    /// When it finished (RFC 3339).
    pub finished: String,
}

/// A part folder, its description read.
#[derive(Debug, Clone)]
pub struct Part {
    /// The folder.
    pub dir: PathBuf,
    /// `part.json`.
    pub info: PartInfo,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> PartError + '_ {
    move |source| PartError::Io { path: path.to_owned(), source }
}

fn corrupt(dir: &Path, reason: impl Into<String>) -> PartError {
    PartError::Corrupt { dir: dir.to_owned(), reason: reason.into() }
}

fn schema() -> Arc<Schema> {
    let text = |name: &str, nullable: bool| Field::new(name, DataType::Utf8, nullable);
    Arc::new(Schema::new(vec![
        Field::new("index", DataType::UInt64, false),
        text("id", false),
        text("status", false),
        Field::new("wall_ms", DataType::Float64, false),
        Field::new("portfolio_dscr", DataType::Float64, true),
        text("params", false),
        text("error", true),
        text("results", false),
        text("stdout", false),
        text("logs", false),
    ]))
}

fn json<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "null".into())
}

/// Writes `outcomes` (the shard's scenarios, in plan order from `info.range.start`) as
/// `scenarios.parquet` in `dir`, and returns the file's SHA-256 for `part.json`.
pub fn write_rows(dir: &Path, outcomes: &[ScenarioOutcome], start: usize) -> Result<String, PartError> {
    let path = dir.join(ROWS_FILE);
    // Built in memory: its digest is taken from the bytes written, without reading the
    // file back, and the file appears whole or not at all.
    let properties = WriterProperties::builder().set_compression(Compression::SNAPPY).build();
    let schema = schema();
    let parquet_error = |e: parquet::errors::ParquetError| PartError::Io { path: path.clone(), source: e.into() };
    let mut writer = ArrowWriter::try_new(Vec::new(), schema.clone(), Some(properties)).map_err(parquet_error)?;
    for (n, chunk) in outcomes.chunks(BATCH).enumerate() {
        let first = start + n * BATCH;
        let texts = |f: &dyn Fn(&ScenarioOutcome) -> String| -> ArrayRef {
            Arc::new(StringArray::from_iter_values(chunk.iter().map(f)))
        };
        let columns: Vec<ArrayRef> = vec![
            Arc::new(UInt64Array::from_iter_values((first..first + chunk.len()).map(|i| i as u64))),
            texts(&|o| o.id.clone()),
            texts(&|o| status_name(o.status).to_owned()),
            Arc::new(Float64Array::from_iter_values(chunk.iter().map(|o| o.wall_ms))),
            Arc::new(Float64Array::from_iter(chunk.iter().map(super::analysis::portfolio_dscr))),
            texts(&|o| json(&o.params)),
            Arc::new(StringArray::from_iter(chunk.iter().map(|o| o.error.as_ref().map(json)))),
            texts(&|o| json(&o.results)),
            texts(&|o| o.stdout.clone()),
            texts(&|o| json(&o.logs)),
        ];
        let batch = RecordBatch::try_new(schema.clone(), columns)
            .map_err(|e| PartError::Io { path: path.clone(), source: std::io::Error::other(e) })?;
        writer.write(&batch).map_err(parquet_error)?;
    }
    // `into_inner` writes the footer, as `close` would.
    let bytes = writer.into_inner().map_err(parquet_error)?;
    crate::cache::write_atomically(&path, &bytes).map_err(io(&path))?;
    Ok(crate::cache::sha256_hex(&bytes))
}

fn status_name(status: ScenarioStatus) -> &'static str {
    match status {
        ScenarioStatus::Ok => "ok",
        ScenarioStatus::Error => "error",
    }
}

/// Writes `part.json` (last: it marks the part finished).
pub fn write_info(dir: &Path, info: &PartInfo) -> Result<(), PartError> {
    let path = dir.join(PART_FILE);
    let mut text = serde_json::to_string_pretty(info).unwrap_or_default();
    text.push('\n');
    crate::cache::write_atomically(&path, text.as_bytes()).map_err(io(&path))
}

impl Part {
    /// Reads the part in `dir`.
    pub fn open(dir: &Path) -> Result<Part, PartError> {
        let path = dir.join(PART_FILE);
        if !dir.is_dir() {
            return Err(PartError::NotAPart { dir: dir.to_owned(), reason: "no such folder".into() });
        }
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(PartError::NotAPart {
                    dir: dir.to_owned(),
                    reason: format!("it has no {PART_FILE} (the shard did not finish: run it again)"),
                });
            }
            Err(e) => return Err(io(&path)(e)),
        };
        let info: PartInfo = serde_json::from_str(&text)
            .map_err(|e| PartError::NotAPart { dir: dir.to_owned(), reason: format!("{PART_FILE}: {e}") })?;
        if info.format != PART_FORMAT {
            return Err(PartError::NotAPart {
                dir: dir.to_owned(),
                reason: format!("its format is `{}`, this metaexec reads `{PART_FORMAT}`", info.format),
            });
        }
        // The script is read from beside `part.json` under this name: a path would read
        // elsewhere.
        if Path::new(&info.script_name).file_name() != Some(std::ffi::OsStr::new(&info.script_name)) {
            return Err(corrupt(dir, format!("its script name `{}` is not a file name", info.script_name)));
        }
        let expected = super::plan::shard_range(info.total, info.shard.index, info.shard.count);
        if info.shard.index >= info.shard.count || info.range != expected {
            return Err(corrupt(
                dir,
                format!(
                    "shard {} covers {:?}, but that shard of {} scenarios is {expected:?}",
                    info.shard, info.range, info.total
                ),
            ));
        }
        Ok(Part { dir: dir.to_owned(), info })
    }

    /// The part's scenarios, in plan order, checked against its range.
    pub fn outcomes(&self) -> Result<Vec<ScenarioOutcome>, PartError> {
        let path = self.dir.join(ROWS_FILE);
        let bytes = std::fs::read(&path).map_err(io(&path))?;
        if crate::cache::sha256_hex(&bytes) != self.info.rows_sha256 {
            return Err(self.rows_damaged(&format!(
                "its SHA-256 is not the one in {PART_FILE}: the file was damaged or changed after the shard \
                 wrote it (run the shard again)"
            )));
        }
        // The decoder can panic on a malformed file rather than return an error; a part
        // from elsewhere must not abort the merge, so a panic is reported as damage.
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.decode(bytes::Bytes::from(bytes))))
            .unwrap_or_else(|_| Err(self.rows_damaged(&"the Parquet decoder failed on it (the file is malformed)")))
    }

    /// `scenarios.parquet` is damaged: `reason`.
    fn rows_damaged(&self, reason: &dyn std::fmt::Display) -> PartError {
        corrupt(&self.dir, format!("{ROWS_FILE}: {reason}"))
    }

    fn decode(&self, file: bytes::Bytes) -> Result<Vec<ScenarioOutcome>, PartError> {
        let bad = |e: &dyn std::fmt::Display| self.rows_damaged(e);
        let reader =
            ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| bad(&e))?.build().map_err(|e| bad(&e))?;
        let mut out = Vec::with_capacity(self.info.range.len());
        for batch in reader {
            let batch = batch.map_err(|e| bad(&e))?;
            let column = |name: &str| batch.column_by_name(name).ok_or_else(|| bad(&format!("no column `{name}`")));
            let strings = |name: &str| -> Result<StringArray, PartError> {
                column(name)?
                    .as_any()
                    .downcast_ref::<StringArray>()
                    .cloned()
                    .ok_or_else(|| bad(&format!("column `{name}` is not text")))
            };
            let index = column("index")?
                .as_any()
                .downcast_ref::<UInt64Array>()
                .cloned()
                .ok_or_else(|| bad(&"column `index` is not an integer"))?;
            let wall = column("wall_ms")?
                .as_any()
                .downcast_ref::<Float64Array>()
                .cloned()
                .ok_or_else(|| bad(&"column `wall_ms` is not a number"))?;
            let (ids, status, params, error, results, stdout, logs) = (
                strings("id")?,
                strings("status")?,
                strings("params")?,
                strings("error")?,
                strings("results")?,
                strings("stdout")?,
                strings("logs")?,
            );
            for row in 0..batch.num_rows() {
                let expected = self.info.range.start + out.len();
                if index.value(row) as usize != expected {
                    return Err(bad(&format!(
                        "row {} is scenario {}, expected {expected}",
                        out.len(),
                        index.value(row)
                    )));
                }
                fn parse<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, String> {
                    serde_json::from_str(text).map_err(|e| e.to_string())
                }
                let column_error = |what: &str| {
                    let what = what.to_owned();
                    move |e: String| bad(&format!("scenario {expected}: {what}: {e}"))
                };
                out.push(ScenarioOutcome {
                    id: ids.value(row).to_owned(),
                    params: parse(params.value(row)).map_err(column_error("params"))?,
                    status: match status.value(row) {
                        "ok" => ScenarioStatus::Ok,
                        "error" => ScenarioStatus::Error,
                        other => return Err(bad(&format!("scenario {expected}: unknown status `{other}`"))),
                    },
                    error: if error.is_null(row) {
                        None
                    } else {
                        Some(parse(error.value(row)).map_err(column_error("error"))?)
                    },
                    results: parse(results.value(row)).map_err(column_error("results"))?,
                    stdout: stdout.value(row).to_owned(),
                    logs: parse(logs.value(row)).map_err(column_error("logs"))?,
                    wall_ms: wall.value(row),
                    params_read: None,
                });
            }
        }
        if out.len() != self.info.range.len() {
            return Err(bad(&format!(
                "it holds {} scenarios, its range {:?} {}",
                out.len(),
                self.info.range,
                self.info.range.len()
            )));
        }
        Ok(out)
    }
}

/// Checks that `parts` are the shards of one sweep, each once, none missing, and
/// returns them in shard order.
pub fn check_set(mut parts: Vec<Part>) -> Result<Vec<Part>, PartError> {
    let Some(first) = parts.first().cloned() else {
        return Err(PartError::NotAPart { dir: PathBuf::from("."), reason: "no parts given".into() });
    };
    let short = |hash: &str| hash.chars().take(12).collect::<String>();
    for part in &parts[1..] {
        let pairs = [
            ("plan", &part.info.plan_sha256, &first.info.plan_sha256),
            ("script", &part.info.script_sha256, &first.info.script_sha256),
            ("runtime", &part.info.runtime_sha256, &first.info.runtime_sha256),
        ];
        for (what, theirs, ours) in pairs {
            if theirs != ours {
                return Err(PartError::Foreign {
                    dir: part.dir.clone(),
                    first: first.dir.clone(),
                    what,
                    theirs: short(theirs),
                    ours: short(ours),
                });
            }
        }
        if part.info.data != first.info.data {
            return Err(PartError::OtherData {
                dir: part.dir.clone(),
                first: first.dir.clone(),
                theirs: part.info.data.clone(),
                ours: first.info.data.clone(),
            });
        }
        if part.info.shard.count != first.info.shard.count || part.info.total != first.info.total {
            return Err(PartError::Split {
                dir: part.dir.clone(),
                index: part.info.shard.index,
                count: part.info.shard.count,
                first: first.dir.clone(),
                first_count: first.info.shard.count,
            });
        }
    }
    parts.sort_by_key(|p| p.info.shard.index);
    for pair in parts.windows(2) {
        if pair[0].info.shard.index == pair[1].info.shard.index {
            return Err(PartError::Duplicate {
                index: pair[0].info.shard.index,
                count: pair[0].info.shard.count,
                first: pair[0].dir.clone(),
                second: pair[1].dir.clone(),
            });
        }
    }
    let (count, total) = (first.info.shard.count, first.info.total);
    for index in 0..count {
        if parts.get(index).is_none_or(|p| p.info.shard.index != index) {
            let range = super::plan::shard_range(total, index, count);
            return Err(PartError::Missing { index, count, start: range.start, end: range.end });
        }
    }
    Ok(parts)
}

/// Every part's scenarios in plan order, and what the script read over all of them.
pub fn merge_outcomes(parts: &[Part]) -> Result<(Vec<ScenarioOutcome>, ParamsRead), PartError> {
    let mut outcomes = Vec::with_capacity(parts.first().map_or(0, |p| p.info.total));
    let mut read: Option<ParamsRead> = None;
    for part in parts {
        outcomes.extend(part.outcomes()?);
        read = Some(match read {
            Some(mut read) => {
                read.merge(part.info.params_read.clone());
                read
            }
            None => part.info.params_read.clone(),
        });
    }
    Ok((outcomes, read.unwrap_or_default()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::result_table::Results;
    use rand::{Rng, SeedableRng};
    use serde_json::json;

    fn outcome(i: usize, ok: bool) -> ScenarioOutcome {
        let results: Results = serde_json::from_value(json!({"result": [
            {"property_name": format!("P{i}"), "dscr": 1.0 + i as f64 / 7.0, "noi": 100.0, "debt_service": 80.0}
        ]}))
        .unwrap();
        ScenarioOutcome {
            id: format!("s{i}"),
            params: json!({"x": i, "tag": "é\n"}).as_object().unwrap().clone(),
            status: if ok { ScenarioStatus::Ok } else { ScenarioStatus::Error },
            error: (!ok).then(|| OutcomeError::new(crate::outcome::ErrorKind::GuestException, "boom")),
            results,
            stdout: format!("line {i}\n"),
            logs: vec![format!("log {i}")],
            wall_ms: 0.1 * i as f64,
            params_read: None,
        }
    }

    fn info(index: usize, count: usize, total: usize, plan: &str) -> PartInfo {
        PartInfo {
            format: PART_FORMAT.into(),
            plan_sha256: plan.into(),
            script_sha256: "s".repeat(64),
            runtime_sha256: "r".repeat(64),
            rows_sha256: String::new(),
            script_name: "script.py".into(),
            shard: Shard { index, count },
            range: super::super::plan::shard_range(total, index, count),
            total,
            ok: 0,
            failures: Vec::new(),
            params_read: ParamsRead::default(),
            instance_errors: Vec::new(),
            sanitized: Vec::new(),
            limits: crate::job::Limits::default(),
            data: DataSource::None,
            metrics: PartMetrics::default(),
            finished: String::new(),
        }
    }

    fn write_part(root: &Path, name: &str, info: &PartInfo) -> PathBuf {
        let dir = root.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        let outcomes: Vec<_> = info.range.clone().map(|i| outcome(i, i % 3 != 0)).collect();
        let rows_sha256 = write_rows(&dir, &outcomes, info.range.start).unwrap();
        write_info(&dir, &PartInfo { rows_sha256, ..info.clone() }).unwrap();
        dir
    }

    #[test]
    fn parts_round_trip_every_outcome_exactly() {
        let root = tempfile::tempdir().unwrap();
        let total = 10_000;
        let dirs: Vec<PathBuf> =
            (0..3).map(|i| write_part(root.path(), &format!("part-{i}"), &info(i, 3, total, "p"))).collect();
        // Given in any order, they come back in shard order.
        let parts: Vec<Part> = dirs.iter().rev().map(|d| Part::open(d).unwrap()).collect();
        let parts = check_set(parts).unwrap();
        let (outcomes, _) = merge_outcomes(&parts).unwrap();
        assert_eq!(outcomes.len(), total);
        for (i, o) in outcomes.iter().enumerate() {
            assert_eq!(o, &outcome(i, i % 3 != 0), "scenario {i}");
        }
    }

    #[test]
    fn missing_duplicated_foreign_and_unfinished_parts_are_refused() {
        let root = tempfile::tempdir().unwrap();
        let dirs: Vec<PathBuf> =
            (0..3).map(|i| write_part(root.path(), &format!("part-{i}"), &info(i, 3, 30, "p"))).collect();
        let open = |d: &PathBuf| Part::open(d).unwrap();
        let e = check_set(vec![open(&dirs[0]), open(&dirs[2])]).unwrap_err().to_string();
        assert!(e.starts_with("shard 1/3 (scenarios 10..20) is missing"), "{e}");
        let copy = write_part(root.path(), "copy-of-2", &info(2, 3, 30, "p"));
        let e = check_set(vec![open(&dirs[0]), open(&dirs[1]), open(&dirs[2]), open(&copy)]).unwrap_err().to_string();
        assert!(e.contains("shard 2/3 is given twice") && e.contains("copy-of-2"), "{e}");
        let foreign = write_part(root.path(), "other", &info(1, 3, 30, "q"));
        let e = check_set(vec![open(&dirs[0]), open(&foreign), open(&dirs[2])]).unwrap_err().to_string();
        assert!(e.contains("`") && e.contains("other") && e.contains("another plan"), "{e}");
        let other_data = PartInfo { data: DataSource::Snapshot { sha256: "d".repeat(64) }, ..info(1, 3, 30, "p") };
        let other_data = write_part(root.path(), "other-data", &other_data);
        let e = check_set(vec![open(&dirs[0]), open(&other_data), open(&dirs[2])]).unwrap_err().to_string();
        assert!(e.contains("other-data` read the snapshot dddddddddddd…") && e.contains("read no database"), "{e}");
        let split = write_part(root.path(), "split", &info(1, 4, 30, "p"));
        let e = check_set(vec![open(&dirs[0]), open(&split)]).unwrap_err().to_string();
        assert!(e.contains("shard 1/4") && e.contains("one of 3"), "{e}");
        std::fs::remove_file(dirs[1].join(PART_FILE)).unwrap();
        let e = Part::open(&dirs[1]).unwrap_err().to_string();
        assert!(e.contains("did not finish"), "{e}");
        // A part whose rows disagree with its range.
        let mut wrong = info(0, 3, 30, "p");
        wrong.range = 0..9;
        let dir = write_part(root.path(), "wrong", &wrong);
        assert!(Part::open(&dir).unwrap_err().to_string().contains("damaged"));
        for name in ["../../etc/passwd", "/etc/passwd", "..", "sub/script.py"] {
            let dir = write_part(root.path(), "named", &PartInfo { script_name: name.into(), ..info(0, 3, 30, "p") });
            let e = Part::open(&dir).unwrap_err().to_string();
            assert!(e.contains("is not a file name"), "{name}: {e}");
        }
    }

    #[test]
    fn damaged_rows_are_refused_and_never_abort_the_merge() {
        let root = tempfile::tempdir().unwrap();
        let dir = write_part(root.path(), "part-0", &info(0, 1, 50, "p"));
        let rows = dir.join(ROWS_FILE);
        let good = std::fs::read(&rows).unwrap();
        let mut flipped = good.clone();
        flipped[good.len() / 2] ^= 0x40;
        std::fs::write(&rows, &flipped).unwrap();
        let e = Part::open(&dir).unwrap().outcomes().unwrap_err().to_string();
        assert!(e.contains("SHA-256") && e.contains("run the shard again"), "{e}");
        // Malformed files that carry a matching digest (written by hand, or by another
        // tool) reach the decoder: each is an error or rows, never a panic.
        let mut random = rand_chacha::ChaCha8Rng::seed_from_u64(20);
        for round in 0..300 {
            let mut bytes = good.clone();
            if round % 3 == 0 {
                bytes.truncate(random.random_range(0..good.len()));
            } else {
                for _ in 0..random.random_range(1..16) {
                    let at = random.random_range(0..bytes.len());
                    bytes[at] = random.random();
                }
            }
            std::fs::write(&rows, &bytes).unwrap();
            let rows_sha256 = crate::cache::sha256_hex(&bytes);
            write_info(&dir, &PartInfo { rows_sha256, ..info(0, 1, 50, "p") }).unwrap();
            if let Err(e) = Part::open(&dir).unwrap().outcomes() {
                assert!(e.to_string().contains(ROWS_FILE), "{e}");
            }
        }
    }
}
