//! The contract with `runtime/ray/driver.py`: the spec it gets on its command line, and the
//! lines it prints into the job's log (documented at the top of the driver).
//!
//! The log also holds Ray's own lines and anything else that reached the driver's stdout;
//! only lines starting with `METAEXEC_` are ours, and a damaged one of those is an error, not
//! noise, because it would mean a part or a shard's fate is lost.

use std::collections::BTreeMap;
use std::path::{Component, Path};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::{RayError, RayEvent, RayJob, ShardFailure};

/// The spec's version; the driver refuses another.
const SPEC_VERSION: u32 = 1;

/// What the driver is told, as JSON, base64-encoded on its command line. Not in the package:
/// the package (binary, runtime cache) then stays the same from one sweep to the next.
#[derive(Debug, Serialize)]
pub(super) struct DriverSpec<'a> {
    version: u32,
    shards: usize,
    cpus: f64,
    retries: u32,
    metaexec: Option<&'a str>,
    args: &'a [String],
    /// `(name, value, relative to the working directory)`.
    env: Vec<(&'a str, &'a str, bool)>,
}

impl<'a> DriverSpec<'a> {
    /// The spec for `job`, or why it cannot run.
    pub(super) fn new(job: &'a RayJob) -> Result<Self, RayError> {
        let invalid = |reason: String| Err(RayError::InvalidJob { reason });
        if job.shards == 0 {
            return invalid("a sweep needs at least one shard".into());
        }
        if !(job.cpus_per_shard.is_finite() && job.cpus_per_shard > 0.0) {
            return invalid(format!("CPUs per shard must be above 0, not {}", job.cpus_per_shard));
        }
        if job.metaexec.is_none() && !job.files.iter().any(|(name, _)| name == "metaexec") {
            return invalid("no metaexec to run: ship one as `metaexec` in the files or name an installed one".into());
        }
        let mut env = Vec::with_capacity(job.env.len());
        for (name, value) in &job.env {
            if name.is_empty() || name.contains('=') || name.contains('\0') || value.contains('\0') {
                return invalid(format!("`{name}` is not a valid environment variable name"));
            }
            env.push((name.as_str(), value.as_str(), shipped(value, &job.files)));
        }
        Ok(Self {
            version: SPEC_VERSION,
            shards: job.shards,
            cpus: job.cpus_per_shard,
            retries: job.max_retries,
            metaexec: job.metaexec.as_deref(),
            args: &job.args,
            env,
        })
    }

    /// The job's entrypoint. Base64 needs no quoting in the shell that runs it.
    pub(super) fn entrypoint(&self) -> String {
        let json = serde_json::to_vec(self).expect("the driver spec serializes");
        format!("python3 driver.py {}", BASE64.encode(json))
    }
}

/// Whether `value` is a relative path into something shipped in `files`.
fn shipped(value: &str, files: &[(String, std::path::PathBuf)]) -> bool {
    let Some(Component::Normal(first)) = Path::new(value).components().next() else { return false };
    files.iter().any(|(name, _)| name.split('/').next() == first.to_str())
}

/// One of the driver's lines.
#[derive(Debug, PartialEq)]
enum Line<'a> {
    Warning(String),
    Done { index: usize, attempt: u32 },
    Retry { index: usize, attempt: u32, message: String },
    Failed { index: usize, attempts: u32, message: String },
    PartsBegin,
    Part { index: usize, seq: usize, chunk: &'a str },
    PartEnd { index: usize, sha256: &'a str },
}

/// Parses a log line: `None` when it is not ours, `Err` when it is ours but damaged.
fn parse_line(line: &str) -> Option<Result<Line<'_>, String>> {
    let line = line.strip_suffix('\r').unwrap_or(line);
    let (tag, rest) = line.split_once(' ').unwrap_or((line, ""));
    let fields = || rest.splitn(3, ' ').collect::<Vec<_>>();
    let number = |s: Option<&&str>| s.and_then(|s| s.parse::<usize>().ok());
    let text = |s: Option<&&str>| s.and_then(|s| serde_json::from_str::<String>(s).ok());
    let parsed = match tag {
        "METAEXEC_WARNING" => serde_json::from_str::<String>(rest).ok().map(Line::Warning),
        "METAEXEC_SHARD_DONE" => {
            let f = fields();
            number(f.first()).zip(number(f.get(1))).map(|(index, a)| Line::Done { index, attempt: a as u32 })
        }
        "METAEXEC_SHARD_RETRY" => {
            let f = fields();
            match (number(f.first()), number(f.get(1)), text(f.get(2))) {
                (Some(index), Some(a), Some(message)) => Some(Line::Retry { index, attempt: a as u32, message }),
                _ => None,
            }
        }
        "METAEXEC_SHARD_FAILED" => {
            let f = fields();
            match (number(f.first()), number(f.get(1)), text(f.get(2))) {
                (Some(index), Some(a), Some(message)) => Some(Line::Failed { index, attempts: a as u32, message }),
                _ => None,
            }
        }
        "METAEXEC_PARTS_BEGIN" => Some(Line::PartsBegin),
        "METAEXEC_PART" => {
            let f = fields();
            match (number(f.first()), number(f.get(1)), f.get(2)) {
                (Some(index), Some(seq), Some(chunk)) => Some(Line::Part { index, seq, chunk }),
                _ => None,
            }
        }
        "METAEXEC_PART_END" => {
            let f = fields();
            match (number(f.first()), f.get(1)) {
                (Some(index), Some(sha256)) if sha256.len() == 64 => Some(Line::PartEnd { index, sha256 }),
                _ => None,
            }
        }
        _ if tag.starts_with("METAEXEC_") => return Some(Err(format!("unknown driver line `{}`", shorten(line)))),
        _ => return None,
    };
    Some(parsed.ok_or_else(|| format!("malformed driver line `{}`", shorten(line))))
}

fn shorten(line: &str) -> String {
    match line.char_indices().nth(120) {
        Some((at, _)) => format!("{}...", &line[..at]),
        None => line.to_owned(),
    }
}

/// The progress lines reported so far, so that each poll of the (append-only) log reports
/// only the new ones.
#[derive(Debug, Default)]
pub(super) struct Progress {
    reported: usize,
    parts_begun: bool,
}

impl Progress {
    /// Reports the progress lines of `logs` not reported yet.
    pub(super) fn report(&mut self, logs: &str, emit: &mut dyn FnMut(RayEvent)) {
        let mut count = 0;
        for line in logs.lines() {
            let event = match parse_line(line) {
                Some(Ok(Line::Done { index, attempt })) => RayEvent::ShardDone { index, attempt },
                Some(Ok(Line::Retry { index, attempt, message })) => RayEvent::ShardRetry { index, attempt, message },
                Some(Ok(Line::Warning(message))) => RayEvent::Warning(message),
                Some(Ok(Line::PartsBegin)) => {
                    self.parts_begun = true;
                    // Nothing but parts follows.
                    break;
                }
                _ => continue,
            };
            if count >= self.reported {
                emit(event);
            }
            count += 1;
        }
        self.reported = self.reported.max(count);
    }

    /// Whether the driver has started printing the parts (all shards have finished).
    pub(super) fn parts_begun(&self) -> bool {
        self.parts_begun
    }
}

/// What the driver reported, read from the whole log once the job has ended.
#[derive(Debug, Default)]
pub(super) struct DriverLog {
    /// Part I's zip bytes, checked against its SHA-256, where the log holds it.
    pub(super) parts: Vec<Option<Vec<u8>>>,
    /// The shards that failed for good, by index.
    pub(super) failures: Vec<ShardFailure>,
}

/// A part being read: its bytes so far and the next chunk expected.
struct Partial {
    bytes: Vec<u8>,
    next_seq: usize,
}

impl DriverLog {
    /// Reads the parts and failures of a job with `shards` shards out of its log. The error
    /// names the shard (0 when the line names none) and what is wrong.
    pub(super) fn parse(logs: &str, shards: usize) -> Result<Self, (usize, String)> {
        let mut parts: Vec<Option<Vec<u8>>> = vec![None; shards];
        let mut open: BTreeMap<usize, Partial> = BTreeMap::new();
        let mut failures = BTreeMap::new();
        let check_index = |index: usize| {
            if index < shards { Ok(index) } else { Err((index, format!("shard {index} is not one of the {shards}"))) }
        };
        for line in logs.lines() {
            let line = match parse_line(line) {
                None => continue,
                Some(parsed) => parsed.map_err(|reason| (0, reason))?,
            };
            match line {
                Line::Failed { index, attempts, message } => {
                    failures.insert(check_index(index)?, ShardFailure { index, attempts, message });
                }
                Line::Part { index, seq, chunk } => {
                    let index = check_index(index)?;
                    if parts[index].is_some() {
                        return Err((index, "the log holds this part twice".into()));
                    }
                    let partial = open.entry(index).or_insert(Partial { bytes: Vec::new(), next_seq: 0 });
                    if seq != partial.next_seq {
                        return Err((
                            index,
                            format!("chunk {seq} follows chunk {} (a chunk is missing)", partial.next_seq),
                        ));
                    }
                    BASE64
                        .decode_vec(chunk, &mut partial.bytes)
                        .map_err(|e| (index, format!("chunk {seq} is not valid base64: {e}")))?;
                    partial.next_seq += 1;
                }
                Line::PartEnd { index, sha256 } => {
                    let index = check_index(index)?;
                    let partial =
                        open.remove(&index).ok_or((index, "the part's end has no chunks before it".into()))?;
                    let actual = hex(&Sha256::digest(&partial.bytes));
                    if !actual.eq_ignore_ascii_case(sha256) {
                        return Err((index, format!("its SHA-256 is {actual}, the driver sent {sha256}")));
                    }
                    parts[index] = Some(partial.bytes);
                }
                Line::Warning(_) | Line::Done { .. } | Line::Retry { .. } | Line::PartsBegin => {}
            }
        }
        if let Some((&index, _)) = open.iter().next() {
            return Err((index, "the log ends inside the part (it was cut short)".into()));
        }
        Ok(Self { parts, failures: failures.into_values().collect() })
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The lines the driver prints for part `index` holding `bytes`, in chunks of `chunk`
    /// base64 characters.
    fn part_lines(index: usize, bytes: &[u8], chunk: usize) -> String {
        let encoded = BASE64.encode(bytes);
        let mut out = String::new();
        for (seq, piece) in encoded.as_bytes().chunks(chunk).enumerate() {
            out += &format!("METAEXEC_PART {index} {seq} {}\n", std::str::from_utf8(piece).unwrap());
        }
        out + &format!("METAEXEC_PART_END {index} {}\n", hex(&Sha256::digest(bytes)))
    }

    fn job() -> RayJob {
        RayJob {
            address: "http://127.0.0.1:8265".into(),
            files: vec![("metaexec".into(), "/bin/true".into()), ("cache".into(), "/tmp".into())],
            metaexec: None,
            args: vec!["sweep".into(), "model.py".into()],
            env: vec![
                ("METAEXEC_CACHE_DIR".into(), "cache".into()),
                ("DEEPER".into(), "cache/python-wasm".into()),
                ("RUST_LOG".into(), "info".into()),
                ("ABSOLUTE".into(), "/tmp/cache".into()),
            ],
            shards: 3,
            cpus_per_shard: 1.0,
            max_retries: 2,
        }
    }

    #[test]
    fn parts_are_read_across_chunk_lines_among_other_output() {
        let first: Vec<u8> = (0..=255u8).cycle().take(10_000).collect();
        let logs = format!(
            "2026-01-01 INFO job_manager.py -- Runtime env is setting up.\n\
             METAEXEC_SHARD_DONE 1 1\nMETAEXEC_SHARD_DONE 0 2\nMETAEXEC_PARTS_BEGIN 2\n{}some stray line\n{}",
            part_lines(0, &first, 400),
            part_lines(1, b"second", 4),
        );
        let log = DriverLog::parse(&logs, 3).unwrap();
        assert_eq!(log.parts, vec![Some(first), Some(b"second".to_vec()), None]);
        assert!(log.failures.is_empty());
    }

    #[test]
    fn a_part_with_a_wrong_sha_is_refused() {
        let logs = part_lines(0, b"part", 8).replace(&hex(&Sha256::digest(b"part")), &hex(&Sha256::digest(b"trap")));
        let (index, reason) = DriverLog::parse(&logs, 1).unwrap_err();
        assert_eq!(index, 0);
        assert!(reason.contains("SHA-256"), "{reason}");
    }

    #[test]
    fn a_missing_chunk_or_a_cut_log_is_refused() {
        let lines = part_lines(0, b"a longer part than one chunk", 8);
        let gap: String = lines.lines().enumerate().filter(|(i, _)| *i != 1).map(|(_, l)| format!("{l}\n")).collect();
        assert!(DriverLog::parse(&gap, 1).unwrap_err().1.contains("missing"));
        let cut: String = lines.lines().take(2).map(|l| format!("{l}\n")).collect();
        assert!(DriverLog::parse(&cut, 1).unwrap_err().1.contains("cut short"));
        assert!(DriverLog::parse(&part_lines(5, b"x", 8), 3).unwrap_err().1.contains("not one of"));
    }

    #[test]
    fn failures_carry_their_message() {
        let logs =
            "METAEXEC_SHARD_RETRY 2 1 \"exit 3\"\nMETAEXEC_SHARD_FAILED 2 2 \"exited with code 3; stderr:\\nboom\"\n";
        let log = DriverLog::parse(logs, 3).unwrap();
        assert_eq!(
            log.failures,
            vec![ShardFailure { index: 2, attempts: 2, message: "exited with code 3; stderr:\nboom".into() }]
        );
        assert!(DriverLog::parse("METAEXEC_SHARD_FAILED 2 x\n", 3).is_err());
    }

    #[test]
    fn progress_reports_each_line_once_and_stops_at_the_parts() {
        let mut progress = Progress::default();
        let mut events = Vec::new();
        let early = "noise\nMETAEXEC_SHARD_DONE 0 1\n";
        progress.report(early, &mut |e| events.push(e));
        let later =
            format!("{early}METAEXEC_SHARD_RETRY 1 1 \"boom\"\nMETAEXEC_WARNING \"w\"\nMETAEXEC_PARTS_BEGIN 1\n");
        progress.report(&later, &mut |e| events.push(e));
        progress.report(&later, &mut |e| events.push(e));
        assert_eq!(
            events,
            vec![
                RayEvent::ShardDone { index: 0, attempt: 1 },
                RayEvent::ShardRetry { index: 1, attempt: 1, message: "boom".into() },
                RayEvent::Warning("w".into()),
            ]
        );
        assert!(progress.parts_begun());
    }

    #[test]
    fn the_spec_marks_values_inside_the_package() {
        let job = job();
        let spec = DriverSpec::new(&job).unwrap();
        assert_eq!(
            spec.env,
            vec![
                ("METAEXEC_CACHE_DIR", "cache", true),
                ("DEEPER", "cache/python-wasm", true),
                ("RUST_LOG", "info", false),
                ("ABSOLUTE", "/tmp/cache", false),
            ]
        );
        let entrypoint = spec.entrypoint();
        let encoded = entrypoint.strip_prefix("python3 driver.py ").unwrap();
        let json: serde_json::Value = serde_json::from_slice(&BASE64.decode(encoded).unwrap()).unwrap();
        assert_eq!(json["version"], 1);
        assert_eq!(json["shards"], 3);
        assert_eq!(json["metaexec"], serde_json::Value::Null);
        assert_eq!(json["env"][0], serde_json::json!(["METAEXEC_CACHE_DIR", "cache", true]));
    }

    #[test]
    fn a_job_that_cannot_run_is_refused() {
        let mut no_shards = job();
        no_shards.shards = 0;
        assert!(DriverSpec::new(&no_shards).is_err());
        let mut no_metaexec = job();
        no_metaexec.files.clear();
        assert!(DriverSpec::new(&no_metaexec).is_err());
        let mut no_cpus = job();
        no_cpus.cpus_per_shard = f64::NAN;
        assert!(DriverSpec::new(&no_cpus).is_err());
    }
}
