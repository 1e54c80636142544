//! Database values to JSON, by hand, so that every type's mapping is explicit: integers,
//! floats, NUMERIC (float, or `{"$decimal": "..."}` when exact decimals are asked for),
//! text, booleans, dates and times (ISO 8601 strings), binary (base64), JSON (as JSON),
//! NULL. A type that has no faithful mapping is an error that names the column and says
//! how to cast it, never a silently wrong value.

use base64::Engine as _;
use chrono::{DateTime, Duration as ChronoDuration, NaiveDate, NaiveDateTime, NaiveTime};
use serde_json::Value;
use sqlx::postgres::{PgRow, PgValueFormat, PgValueRef};
use sqlx::sqlite::{SqliteRow, SqliteValueRef};
use sqlx::{Column, Decode, Row, TypeInfo, ValueRef};

use crate::guest_db::json_float as float;

/// How NUMERIC/DECIMAL values are returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decimals {
    /// As floats (the default; what Python code expects for arithmetic).
    Float,
    /// As `{"$decimal": "123.45"}`, turned into `decimal.Decimal` by the guest library.
    Exact,
}

/// A value that could not be mapped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the column `{column}` has the {database} type `{type_name}`, which metaexec cannot return as-is")]
pub struct UnmappedType {
    /// The column.
    pub column: String,
    /// The database's type name.
    pub type_name: String,
    /// `SQLite` or `PostgreSQL`.
    pub database: &'static str,
}

impl UnmappedType {
    /// How to get the value anyway.
    pub fn hint(&self) -> String {
        format!("cast it in the query, e.g. `CAST({} AS text)`", self.column)
    }
}

/// The column names of a row.
pub fn column_names<R: Row>(row: &R) -> Vec<String> {
    row.columns().iter().map(|c| c.name().to_owned()).collect()
}

/// One SQLite row as JSON values (SQLite has no exact decimals: NUMERIC is stored as
/// an integer or a float).
pub fn sqlite_row(row: &SqliteRow) -> Result<Vec<Value>, UnmappedType> {
    (0..row.len()).map(|i| sqlite_cell(row, i)).collect()
}

/// The `i`-th value of a SQLite row as JSON (one at a time, so a wide row of large
/// values is never converted whole before the caps see it).
pub fn sqlite_cell(row: &SqliteRow, i: usize) -> Result<Value, UnmappedType> {
    let Some(column) = row.columns().get(i) else { return Err(unmapped(&format!("#{i}"), "?", "SQLite")) };
    let raw = row.try_get_raw(i).map_err(|_| unmapped(column.name(), "?", "SQLite"))?;
    sqlite_value(raw, column.type_info().name())
        .ok_or_else(|| unmapped(column.name(), column.type_info().name(), "SQLite"))
}

/// SQLite stores one of five classes whatever the declared type; the declared type only
/// decides booleans.
fn sqlite_value(raw: SqliteValueRef<'_>, declared: &str) -> Option<Value> {
    if raw.is_null() {
        return Some(Value::Null);
    }
    let class = raw.type_info().name().to_owned();
    Some(match class.as_str() {
        "INTEGER" => {
            let v = <i64 as Decode<sqlx::Sqlite>>::decode(raw).ok()?;
            if declared.eq_ignore_ascii_case("BOOLEAN") || declared.eq_ignore_ascii_case("BOOL") {
                Value::Bool(v != 0)
            } else {
                Value::from(v)
            }
        }
        "REAL" => float(<f64 as Decode<sqlx::Sqlite>>::decode(raw).ok()?),
        "TEXT" => Value::String(<String as Decode<sqlx::Sqlite>>::decode(raw).ok()?),
        "BLOB" => Value::String(base64(&<Vec<u8> as Decode<sqlx::Sqlite>>::decode(raw).ok()?)),
        _ => return None,
    })
}

/// One PostgreSQL row as JSON values.
pub fn postgres_row(row: &PgRow, decimals: Decimals) -> Result<Vec<Value>, UnmappedType> {
    (0..row.len()).map(|i| postgres_cell(row, i, decimals)).collect()
}

/// The `i`-th value of a PostgreSQL row as JSON (one at a time, as [`sqlite_cell`]).
pub fn postgres_cell(row: &PgRow, i: usize, decimals: Decimals) -> Result<Value, UnmappedType> {
    let Some(column) = row.columns().get(i) else { return Err(unmapped(&format!("#{i}"), "?", "PostgreSQL")) };
    let type_name = column.type_info().name();
    let raw = row.try_get_raw(i).map_err(|_| unmapped(column.name(), type_name, "PostgreSQL"))?;
    postgres_value(&raw, type_name, decimals).ok_or_else(|| unmapped(column.name(), type_name, "PostgreSQL"))
}

fn postgres_value(raw: &PgValueRef<'_>, type_name: &str, decimals: Decimals) -> Option<Value> {
    if raw.is_null() {
        return Some(Value::Null);
    }
    let bytes = raw.as_bytes().ok()?;
    if raw.format() == PgValueFormat::Text {
        return postgres_text(std::str::from_utf8(bytes).ok()?, type_name, decimals);
    }
    Some(match type_name {
        "BOOL" => Value::Bool(*bytes.first()? != 0),
        "INT2" => Value::from(i16::from_be_bytes(bytes.try_into().ok()?)),
        "INT4" => Value::from(i32::from_be_bytes(bytes.try_into().ok()?)),
        "INT8" => Value::from(i64::from_be_bytes(bytes.try_into().ok()?)),
        "OID" => Value::from(u32::from_be_bytes(bytes.try_into().ok()?)),
        "FLOAT4" => float(f64::from(f32::from_be_bytes(bytes.try_into().ok()?))),
        "FLOAT8" => float(f64::from_be_bytes(bytes.try_into().ok()?)),
        "NUMERIC" => decimal(&numeric_to_string(bytes)?, decimals),
        "TEXT" | "VARCHAR" | "BPCHAR" | "NAME" | "CITEXT" | "UNKNOWN" | "XML" => {
            Value::String(std::str::from_utf8(bytes).ok()?.to_owned())
        }
        "CHAR" => Value::String(char::from(*bytes.first()?).to_string()),
        "JSON" => serde_json::from_slice(bytes).ok()?,
        // jsonb's binary form is a version byte (1) and the text.
        "JSONB" => serde_json::from_slice(bytes.strip_prefix(&[1])?).ok()?,
        "BYTEA" => Value::String(base64(bytes)),
        "UUID" => Value::String(uuid(bytes.try_into().ok()?)),
        "DATE" => {
            let days = i32::from_be_bytes(bytes.try_into().ok()?);
            Value::String(pg_epoch_date().checked_add_signed(ChronoDuration::days(days.into()))?.to_string())
        }
        "TIMESTAMP" => {
            Value::String(timestamp(i64::from_be_bytes(bytes.try_into().ok()?))?.to_string().replace(' ', "T"))
        }
        "TIMESTAMPTZ" => {
            let at = timestamp(i64::from_be_bytes(bytes.try_into().ok()?))?;
            Value::String(DateTime::<chrono::Utc>::from_naive_utc_and_offset(at, chrono::Utc).to_rfc3339())
        }
        "TIME" => {
            let micros = i64::from_be_bytes(bytes.try_into().ok()?);
            let time = NaiveTime::MIN.overflowing_add_signed(ChronoDuration::microseconds(micros)).0;
            Value::String(time.to_string())
        }
        _ => return None,
    })
}

/// Values the server sent as text (simple queries; rare, but mapped the same way).
fn postgres_text(text: &str, type_name: &str, decimals: Decimals) -> Option<Value> {
    Some(match type_name {
        "BOOL" => Value::Bool(text == "t"),
        "INT2" | "INT4" | "INT8" | "OID" => Value::from(text.parse::<i64>().ok()?),
        "FLOAT4" | "FLOAT8" => float(text.parse().ok()?),
        "NUMERIC" => decimal(text, decimals),
        "JSON" | "JSONB" => serde_json::from_str(text).ok()?,
        _ => Value::String(text.to_owned()),
    })
}

fn unmapped(column: &str, type_name: &str, database: &'static str) -> UnmappedType {
    UnmappedType { column: column.to_owned(), type_name: type_name.to_lowercase(), database }
}

fn decimal(text: &str, decimals: Decimals) -> Value {
    match decimals {
        Decimals::Exact if text != "NaN" => serde_json::json!({ "$decimal": text }),
        _ => text.parse::<f64>().map_or(Value::Null, float),
    }
}

fn base64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn uuid(b: [u8; 16]) -> String {
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!("{}-{}-{}-{}-{}", &hex[0..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..32])
}

/// PostgreSQL counts dates and timestamps from 2000-01-01.
pub(crate) fn pg_epoch_date() -> NaiveDate {
    NaiveDate::from_ymd_opt(2000, 1, 1).expect("a valid date")
}

fn timestamp(micros: i64) -> Option<NaiveDateTime> {
    pg_epoch_date().and_time(NaiveTime::MIN).checked_add_signed(ChronoDuration::microseconds(micros))
}

/// PostgreSQL's binary NUMERIC: digit count, weight (of the first base-10000 digit),
/// sign, display scale, then the base-10000 digits.
pub(crate) fn numeric_to_string(bytes: &[u8]) -> Option<String> {
    let word = |i: usize| -> Option<i16> { Some(i16::from_be_bytes(bytes.get(2 * i..2 * i + 2)?.try_into().ok()?)) };
    let ndigits = usize::try_from(word(0)?).ok()?;
    let weight = i32::from(word(1)?);
    let sign = word(2)? as u16;
    let dscale = usize::try_from(word(3)?).ok()?;
    match sign {
        0x0000 | 0x4000 => {}
        0xC000 => return Some("NaN".into()),
        0xD000 => return Some("Infinity".into()),
        0xF000 => return Some("-Infinity".into()),
        _ => return None,
    }
    let digits: Vec<i16> = (0..ndigits).map(|i| word(4 + i)).collect::<Option<_>>()?;
    let digit = |i: i32| usize::try_from(i).ok().and_then(|i| digits.get(i)).copied().unwrap_or(0);
    let mut out = String::new();
    if sign == 0x4000 {
        out.push('-');
    }
    if weight < 0 {
        out.push('0');
    } else {
        out.push_str(&digit(0).to_string());
        for i in 1..=weight {
            out.push_str(&format!("{:04}", digit(i)));
        }
    }
    if dscale > 0 {
        out.push('.');
        let mut fraction = String::new();
        let mut i = weight + 1;
        while fraction.len() < dscale {
            fraction.push_str(&format!("{:04}", digit(i)));
            i += 1;
        }
        fraction.truncate(dscale);
        out.push_str(&fraction);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numeric(ndigits: i16, weight: i16, sign: u16, dscale: i16, digits: &[i16]) -> Vec<u8> {
        let mut out = Vec::new();
        for w in [ndigits, weight, sign as i16, dscale].iter().chain(digits) {
            out.extend_from_slice(&w.to_be_bytes());
        }
        out
    }

    #[test]
    fn numeric_binary_to_text() {
        assert_eq!(numeric_to_string(&numeric(2, 0, 0, 2, &[123, 4500])).unwrap(), "123.45");
        assert_eq!(numeric_to_string(&numeric(3, 1, 0x4000, 3, &[12, 3456, 7800])).unwrap(), "-123456.780");
        assert_eq!(numeric_to_string(&numeric(1, -1, 0, 4, &[5])).unwrap(), "0.0005");
        assert_eq!(numeric_to_string(&numeric(1, -2, 0, 6, &[1200])).unwrap(), "0.000012");
        assert_eq!(numeric_to_string(&numeric(1, 2, 0, 0, &[7])).unwrap(), "700000000");
        assert_eq!(numeric_to_string(&numeric(0, 0, 0, 2, &[])).unwrap(), "0.00");
        assert_eq!(numeric_to_string(&numeric(0, 0, 0xC000, 0, &[])).unwrap(), "NaN");
        assert_eq!(decimal("123.45", Decimals::Float), serde_json::json!(123.45));
        assert_eq!(decimal("123.45", Decimals::Exact), serde_json::json!({"$decimal": "123.45"}));
        assert_eq!(decimal("NaN", Decimals::Exact), Value::Null);
    }

    #[test]
    fn dates_and_uuids() {
        assert_eq!(pg_epoch_date().checked_add_signed(ChronoDuration::days(-1)).unwrap().to_string(), "1999-12-31");
        assert_eq!(timestamp(1_500_000).unwrap().to_string(), "2000-01-01 00:00:01.500");
        assert_eq!(uuid([0xab; 16]), "abababab-abab-abab-abab-abababababab");
        assert_eq!(float(f64::NAN), Value::Null);
    }
}
