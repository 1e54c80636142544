//! The host side of the guest channel, protocol version 1 (mirrored by
//! `runtime/metaexec/_channel.py`).
//!
//! Guest → host frames travel on the guest's fd 1 as
//! `"\x1eMX1 " NONCE " " LENGTH "\n" PAYLOAD`, where NONCE is the run's token (so nothing
//! a script prints can pass for a frame by accident) and PAYLOAD one object tagged by
//! `op`: JSON text, or a NUL byte and the object in CPython's `marshal` format (see
//! [`super::marshal`]), which the guest writes whenever its value allows. Host → guest
//! replies travel on fd 0 as a ten-digit LENGTH, `"\n"`, PAYLOAD, and only for ops that
//! ask for one. Adding an op is one variant here and one function on the Python side.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;

pub mod marshal;

use marshal::{ENTRY_BYTES, MAX_VALUES, MarshalError, VALUE_BYTES};

use crate::budget::{BudgetExceeded, Reservation};

/// The protocol version both sides speak.
pub const PROTOCOL_VERSION: u32 = 1;

/// The start of every guest frame, before the nonce.
pub const FRAME_MAGIC: &[u8] = b"\x1eMX1 ";

/// Starts a payload in `marshal` format (JSON text never starts with NUL).
pub const BINARY_PAYLOAD: u8 = 0;

/// Why a frame's payload could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// Malformed JSON, or JSON of the wrong shape.
    #[error("{0}")]
    Json(#[from] serde_json::Error),
    /// Malformed `marshal` data.
    #[error("{0}")]
    Marshal(MarshalError),
    /// Decoding it would take the host past the job's memory budget.
    #[error("{0}")]
    Budget(BudgetExceeded),
}

impl From<MarshalError> for FrameError {
    fn from(e: MarshalError) -> Self {
        match e {
            MarshalError::Budget(e) => Self::Budget(e),
            other => Self::Marshal(other),
        }
    }
}

/// Reads one frame's payload, JSON or binary, charging what the decoded value costs the
/// host to `held` before building it.
pub fn decode_frame(payload: &[u8], held: &mut Reservation) -> Result<GuestFrame, FrameError> {
    let value = match payload.split_first() {
        Some((&BINARY_PAYLOAD, data)) => marshal::decode(data, held)?,
        _ => {
            let (values, entries) = json_shape(payload);
            if values > MAX_VALUES {
                return Err(MarshalError::TooManyValues.into());
            }
            let cost = values.saturating_mul(VALUE_BYTES).saturating_add(entries.saturating_mul(ENTRY_BYTES));
            held.grow(cost.saturating_add(payload.len()), "a frame's decoded values").map_err(FrameError::Budget)?;
            serde_json::from_slice(payload)?
        }
    };
    // Results, the large frames, are moved out as they are: serde would copy a tagged
    // enum's content twice on the way.
    let (id, mut map) = match (value.get("id").and_then(Value::as_u64), value) {
        (Some(id), Value::Object(map)) => (id, map),
        // Not an object with an id: serde says what is wrong with it.
        (_, value) => return Ok(serde_json::from_value(value)?),
    };
    let message = match (map.get("op").and_then(Value::as_str), map.get("name")) {
        (Some("result"), _) if map.contains_key("value") => {
            Some(GuestMessage::Result { value: map.remove("value").unwrap_or_default() })
        }
        (Some("emit"), Some(Value::String(_))) if map.contains_key("value") => match map.remove("name") {
            Some(Value::String(name)) => {
                Some(GuestMessage::Emit { name, value: map.remove("value").unwrap_or_default() })
            }
            _ => None,
        },
        _ => None,
    };
    match message {
        Some(message) => Ok(GuestFrame { id, message }),
        None => Ok(serde_json::from_value(Value::Object(map))?),
    }
}

/// About what `value` costs the host in memory, by the same measure the decoder charges.
pub fn value_cost(value: &Value) -> usize {
    VALUE_BYTES
        + match value {
            Value::String(text) => text.len(),
            Value::Array(items) => items.iter().map(value_cost).sum(),
            Value::Object(map) => map.iter().map(|(key, value)| ENTRY_BYTES + key.len() + value_cost(value)).sum(),
            _ => 0,
        }
}

/// An upper bound on the values and object entries in JSON text, from its punctuation
/// outside strings: every value but the first follows a `,`, `:` or opening bracket.
fn json_shape(text: &[u8]) -> (usize, usize) {
    let (mut values, mut entries) = (1usize, 0usize);
    let mut in_string = false;
    let mut escaped = false;
    for &b in text {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b',' | b'[' | b'{' => values += 1,
            b':' => entries += 1,
            _ => {}
        }
    }
    (values, entries)
}

/// One frame from the guest.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct GuestFrame {
    /// Increasing per run; a reply carries the id of the frame it answers.
    pub id: u64,
    /// What the guest asks or tells.
    #[serde(flatten)]
    pub message: GuestMessage,
}

/// What a guest frame says.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum GuestMessage {
    /// Sent by `import metaexec`: the guest's protocol version. Answered with the params.
    Hello {
        /// The guest's protocol version.
        v: u32,
    },
    /// `metaexec.emit(name, value)`.
    Emit {
        /// The result's name.
        name: String,
        /// Its value.
        value: Value,
    },
    /// `metaexec.result(obj)`.
    Result {
        /// The main result.
        value: Value,
    },
    /// `metaexec.log(msg)`.
    Log {
        /// The progress line.
        message: String,
    },
    /// An uncaught exception, reported by the boot script before the guest exits.
    Exception(ExceptionReport),
    /// `metaexec.db.query(sql, params)`. Answered with `{"columns": [...], "records": [{...}]}`.
    #[serde(rename = "db.query")]
    DbQuery {
        /// The statement, with `?` placeholders.
        sql: String,
        /// The placeholder values.
        #[serde(default)]
        params: Vec<Value>,
        /// NUMERIC/DECIMAL as `{"$decimal": "..."}` instead of floats.
        #[serde(default)]
        exact_decimals: bool,
    },
    /// `metaexec.db.schema()`. Answered with the inspected schema.
    #[serde(rename = "db.schema")]
    DbSchema {},
    /// Sweep mode: a request for the next batch of scenarios, sent once the last batch
    /// has ended. Answered with the batch's params objects, in order (empty when there
    /// are no more); the first starts at once, each `sweep.end` starts the next.
    #[serde(rename = "sweep.next")]
    SweepNext {},
    /// Sweep mode: the running scenario has ended. Batching hand-outs and telling ends
    /// one way keeps a scenario's channel cost to one small write, while the host still
    /// knows which scenario is running (for its limits and for what it prints).
    #[serde(rename = "sweep.end")]
    SweepEnd(ScenarioEnd),
}

/// How a scenario ended, as the guest's sweep driver reports it.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct ScenarioEnd {
    /// `ok` or `error`.
    pub status: String,
    /// The exception, for `error`.
    #[serde(default)]
    pub error: Option<ExceptionReport>,
}

/// An exception as the guest describes it: the run's uncaught exception, or a failed
/// scenario's.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct ExceptionReport {
    /// The exception's class name (`ZeroDivisionError`).
    #[serde(rename = "type")]
    pub type_name: String,
    /// `str(exc)`.
    pub message: String,
    /// The formatted traceback, frames of the user's file only.
    #[serde(default)]
    pub traceback: String,
    /// The line of the user's script where it was raised.
    #[serde(default)]
    pub line: Option<u32>,
    /// For the guest library's own errors, the failure kind they stand for (`db_denied`,
    /// `db_error`); the host trusts it only if it refused or failed a request itself.
    #[serde(default)]
    pub kind: Option<String>,
}

impl GuestMessage {
    /// True for the ops the guest waits on a reply for.
    pub fn expects_reply(&self) -> bool {
        matches!(self, Self::Hello { .. } | Self::DbQuery { .. } | Self::DbSchema {} | Self::SweepNext {})
    }
}

/// The host's answer to a frame that expects one.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Reply {
    /// The id of the frame answered.
    pub id: u64,
    /// Whether the request succeeded.
    pub ok: bool,
    /// The answer, when `ok`, already serialized (database rows are serialized once and
    /// may be sent to many scenarios from the snapshot).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<Box<RawValue>>,
    /// Why not, when not `ok`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ReplyError>,
}

/// A refusal or failure reported to the guest, raised there as an exception.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReplyError {
    /// The error kind (`db_denied`, `protocol`, ...).
    pub kind: String,
    /// What was wrong.
    pub message: String,
    /// What to do instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

impl Reply {
    /// A successful reply.
    pub fn ok(id: u64, value: Box<RawValue>) -> Self {
        Self { id, ok: true, value: Some(value), error: None }
    }

    /// A refusal.
    pub fn error(id: u64, kind: &str, message: impl Into<String>) -> Self {
        let error = ReplyError { kind: kind.into(), message: message.into(), hint: None };
        Self { id, ok: false, value: None, error: Some(error) }
    }

    /// The reply as it goes on the wire: ten-digit length, newline, JSON.
    pub fn encode(&self) -> Vec<u8> {
        let payload = serde_json::to_vec(self).expect("replies are plain JSON values");
        let mut out = format!("{:010}\n", payload.len()).into_bytes();
        out.extend_from_slice(&payload);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::budget::HostBudget;

    /// A small deterministic generator, so failures replay.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n.max(1) as u64) as usize
        }
    }

    /// A random marshal value: scalars, strings, containers, flagged objects and
    /// back-references (valid or not), with lengths that may lie.
    fn marshal_value(rng: &mut Rng, out: &mut Vec<u8>, depth: usize, refs: &mut u32) {
        let flag = if rng.below(3) == 0 {
            *refs += 1;
            0x80
        } else {
            0
        };
        let kind = if depth > 6 { rng.below(6) } else { rng.below(11) };
        match kind {
            0 => out.push(b'N' | flag),
            1 => {
                out.push(b'i' | flag);
                out.extend((rng.next() as u32).to_le_bytes());
            }
            2 => {
                out.push(b'g' | flag);
                out.extend(rng.next().to_le_bytes());
            }
            3 => {
                let len = rng.below(12);
                out.push(b'z' | flag);
                out.push(len as u8);
                out.extend((0..len).map(|_| rng.next() as u8));
            }
            4 => {
                out.push(b'r');
                out.extend((rng.below(*refs as usize + 2) as u32).to_le_bytes());
            }
            5 => {
                out.push(b'l' | flag);
                let digits = rng.below(12) as i32 - 6;
                out.extend(digits.to_le_bytes());
                out.extend((0..digits.unsigned_abs() * 2).map(|_| rng.next() as u8));
            }
            6 | 7 => {
                let n = rng.below(5);
                out.push(b'[' | flag);
                // Sometimes a count that does not match what follows.
                let claimed = if rng.below(10) == 0 { rng.next() as u32 } else { n as u32 };
                out.extend(claimed.to_le_bytes());
                for _ in 0..n {
                    marshal_value(rng, out, depth + 1, refs);
                }
            }
            8 => {
                out.push(b')' | flag);
                let n = rng.below(4);
                out.push(n as u8);
                for _ in 0..n {
                    marshal_value(rng, out, depth + 1, refs);
                }
            }
            _ => {
                out.push(b'{' | flag);
                for _ in 0..rng.below(4) {
                    marshal_value(rng, out, depth + 1, refs);
                    marshal_value(rng, out, depth + 1, refs);
                }
                out.push(b'0');
            }
        }
    }

    #[test]
    fn random_frames_never_panic_and_never_exceed_the_budget() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let limit = 1 << 20;
        let (mut decoded, mut refused) = (0, 0);
        for round in 0..20_000 {
            let mut frame = Vec::new();
            if round % 2 == 0 {
                frame.push(BINARY_PAYLOAD);
                marshal_value(&mut rng, &mut frame, 0, &mut 0);
            } else {
                let ops = ["result", "emit", "log", "db.query", "sweep.end", "hello", "bogus"];
                let text = format!(
                    r#"{{"id":{},"op":"{}","name":"n","value":[{}],"message":"m","sql":"x","status":"ok","v":1}}"#,
                    rng.below(5),
                    ops[rng.below(ops.len())],
                    "[1,{\"a\":null}],".repeat(rng.below(4)) + "0"
                );
                frame.extend(text.into_bytes());
            }
            // Mutate some frames: flip, cut or repeat bytes.
            for _ in 0..rng.below(3) {
                match rng.below(3) {
                    0 if !frame.is_empty() => {
                        let at = rng.below(frame.len());
                        frame[at] ^= 1 << rng.below(8);
                    }
                    1 => frame.truncate(rng.below(frame.len() + 1)),
                    _ => {
                        let at = rng.below(frame.len() + 1);
                        let copy = frame[..at].to_vec();
                        frame.extend(copy);
                    }
                }
            }
            let budget = HostBudget::new(limit);
            let mut held = budget.empty();
            match decode_frame(&frame, &mut held) {
                Ok(_) => decoded += 1,
                Err(_) => refused += 1,
            }
            assert!(budget.peak() <= limit);
            drop(held);
            assert_eq!(budget.used(), 0);
        }
        // The generator reaches both sides, or the test proves little.
        assert!(decoded > 1000 && refused > 1000, "decoded {decoded}, refused {refused}");
    }

    #[test]
    fn json_frames_are_charged_before_they_are_parsed() {
        let text = format!(r#"{{"id":1,"op":"result","value":[{}0]}}"#, "0,".repeat(100_000));
        let budget = HostBudget::new(1 << 20);
        let err = decode_frame(text.as_bytes(), &mut budget.empty()).unwrap_err();
        assert!(matches!(err, FrameError::Budget(_)), "{err}");
        assert_eq!(budget.peak(), 0, "refused before anything was held");
        let budget = HostBudget::new(64 << 20);
        let mut held = budget.empty();
        let frame = decode_frame(text.as_bytes(), &mut held).unwrap();
        assert!(matches!(frame.message, GuestMessage::Result { .. }));
        assert!(held.bytes() >= 100_000 * VALUE_BYTES);
    }
}
