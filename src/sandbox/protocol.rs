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

use super::marshal::{self, MarshalError};

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
    Marshal(#[from] MarshalError),
}

/// Reads one frame's payload, JSON or binary.
pub fn decode_frame(payload: &[u8]) -> Result<GuestFrame, FrameError> {
    let value = match payload.split_first() {
        Some((&BINARY_PAYLOAD, data)) => marshal::decode(data)?,
        _ => serde_json::from_slice(payload)?,
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
