//! JSON parameters to bound values. Values are always bound, never spliced into the SQL.
//!
//! SQLite takes any value in any place, so a JSON value is bound as its natural type.
//! PostgreSQL types every placeholder: the server's own inference (from a `describe` of
//! the statement) decides what each one is, and the JSON value is encoded in that type's
//! binary form, so `WHERE maturity_date < ?` with `"2030-01-01"` compares dates and a
//! NULL parameter is a NULL of the right type. A value that does not fit its place is an
//! error naming the parameter, the type and the fix.

use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime};
use serde_json::Value;
use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::postgres::{PgArgumentBuffer, PgHasArrayType, PgTypeInfo};
use sqlx::{Encode, Postgres, Sqlite, TypeInfo};

use super::value::pg_epoch_date;

/// A parameter that does not fit where it is used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("parameter {position} ({value}) does not fit its place in the query, which expects {expected}")]
pub struct ParamError {
    /// 1-based position among the `?`.
    pub position: usize,
    /// The value, shortened.
    pub value: String,
    /// What the database expects there.
    pub expected: String,
}

impl ParamError {
    fn new(position: usize, value: &Value, expected: impl Into<String>) -> Self {
        Self { position, value: shorten(&value.to_string(), 60), expected: expected.into() }
    }

    /// How to fix it.
    pub fn hint(&self) -> String {
        format!(
            "pass a value of that type, or convert in SQL: CAST(CAST(? AS text) AS {})",
            self.expected.split_whitespace().next().unwrap_or("text")
        )
    }
}

/// `text` cut to at most `max` characters (not bytes: guest text is any Unicode), with
/// `...` when cut.
fn shorten(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut shown: String = text.chars().take(max.saturating_sub(3)).collect();
    shown.push_str("...");
    shown
}

/// Binds `params` to a SQLite query.
pub fn bind_sqlite<'q>(
    mut query: sqlx::query::Query<'q, Sqlite, sqlx::sqlite::SqliteArguments<'q>>,
    params: &[Value],
) -> Result<sqlx::query::Query<'q, Sqlite, sqlx::sqlite::SqliteArguments<'q>>, ParamError> {
    for (i, value) in params.iter().enumerate() {
        query = match value {
            Value::Null => query.bind(None::<i64>),
            Value::Bool(b) => query.bind(*b),
            Value::Number(n) => match n.as_i64() {
                Some(i) => query.bind(i),
                None => query.bind(n.as_f64().unwrap_or(f64::NAN)),
            },
            Value::String(s) => query.bind(s.clone()),
            Value::Object(o) if o.len() == 1 && o.get("$decimal").is_some_and(Value::is_string) => {
                let text = o.get("$decimal").and_then(Value::as_str).unwrap_or_default();
                let x: f64 = text.parse().map_err(|_| ParamError::new(i + 1, value, "a decimal number"))?;
                query.bind(x)
            }
            Value::Array(_) | Value::Object(_) => {
                return Err(ParamError::new(i + 1, value, "a number, text, a boolean or None"));
            }
        };
    }
    Ok(query)
}

/// One PostgreSQL parameter, already encoded in the binary form of the type it is
/// declared as.
#[derive(Debug, Clone)]
pub struct PgParam {
    type_info: PgTypeInfo,
    bytes: Option<Vec<u8>>,
}

impl sqlx::Type<Postgres> for PgParam {
    fn type_info() -> PgTypeInfo {
        // Only a fallback: `produces` gives each value's own type.
        <String as sqlx::Type<Postgres>>::type_info()
    }
}

impl PgHasArrayType for PgParam {
    fn array_type_info() -> PgTypeInfo {
        <String as PgHasArrayType>::array_type_info()
    }
}

impl Encode<'_, Postgres> for PgParam {
    fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
        match &self.bytes {
            Some(bytes) => {
                buf.extend_from_slice(bytes);
                Ok(IsNull::No)
            }
            None => Ok(IsNull::Yes),
        }
    }

    fn produces(&self) -> Option<PgTypeInfo> {
        Some(self.type_info.clone())
    }

    fn size_hint(&self) -> usize {
        self.bytes.as_ref().map_or(0, Vec::len)
    }
}

/// Encodes `params` for the placeholder types the server inferred (`expected`, one per
/// placeholder, from a describe of the statement).
pub fn encode_postgres(params: &[Value], expected: &[PgTypeInfo]) -> Result<Vec<PgParam>, ParamError> {
    params
        .iter()
        .enumerate()
        .map(|(i, value)| {
            let expected = expected.get(i).cloned().unwrap_or_else(<String as sqlx::Type<Postgres>>::type_info);
            encode_one(i + 1, value, expected)
        })
        .collect()
}

/// Placeholder types chosen from the values themselves, for statements where the server
/// cannot infer them (`? IS NULL`): text for strings and NULL, int8, float8, bool,
/// numeric for exact decimals.
pub fn natural_pg_types(params: &[Value]) -> Vec<PgTypeInfo> {
    params
        .iter()
        .map(|value| match value {
            Value::Bool(_) => <bool as sqlx::Type<Postgres>>::type_info(),
            Value::Number(n) if n.is_i64() => <i64 as sqlx::Type<Postgres>>::type_info(),
            Value::Number(_) => <f64 as sqlx::Type<Postgres>>::type_info(),
            Value::Object(o) if o.contains_key("$decimal") => PgTypeInfo::with_name("numeric"),
            _ => <String as sqlx::Type<Postgres>>::type_info(),
        })
        .collect()
}

fn encode_one(position: usize, value: &Value, expected: PgTypeInfo) -> Result<PgParam, ParamError> {
    let name = expected.name().to_owned();
    let err = |what: &str| ParamError::new(position, value, format!("{} ({what})", name.to_lowercase()));
    if value.is_null() {
        return Ok(PgParam { type_info: expected, bytes: None });
    }
    let typed = |bytes: Vec<u8>| Ok(PgParam { type_info: expected.clone(), bytes: Some(bytes) });
    let text = value.as_str();
    match name.as_str() {
        "BOOL" => match value {
            Value::Bool(b) => typed(vec![u8::from(*b)]),
            _ => Err(err("True or False")),
        },
        // Every value is encoded as exactly the type the server inferred: the driver
        // keeps one prepared statement per SQL text, so a value sent as another type on a
        // later call would be read as the first call's type.
        "INT2" => typed(
            i16::try_from(integer(value).ok_or_else(|| err("an integer"))?)
                .map_err(|_| err("a small integer"))?
                .to_be_bytes()
                .to_vec(),
        ),
        "INT4" => typed(
            i32::try_from(integer(value).ok_or_else(|| err("an integer"))?)
                .map_err(|_| err("a 32-bit integer"))?
                .to_be_bytes()
                .to_vec(),
        ),
        "INT8" => typed(integer(value).ok_or_else(|| err("an integer"))?.to_be_bytes().to_vec()),
        "OID" => typed(
            u32::try_from(integer(value).ok_or_else(|| err("an integer"))?)
                .map_err(|_| err("an OID"))?
                .to_be_bytes()
                .to_vec(),
        ),
        "FLOAT4" => typed((number(value).ok_or_else(|| err("a number"))? as f32).to_be_bytes().to_vec()),
        "FLOAT8" => typed(number(value).ok_or_else(|| err("a number"))?.to_be_bytes().to_vec()),
        "NUMERIC" => {
            let text = match value {
                Value::Number(n) => n.to_string(),
                _ => value.get("$decimal").and_then(Value::as_str).unwrap_or_default().to_owned(),
            };
            typed(numeric_from_text(&text).ok_or_else(|| err("a number"))?)
        }
        "TEXT" | "VARCHAR" | "BPCHAR" | "NAME" | "CITEXT" | "UNKNOWN" | "XML" => match value {
            Value::String(s) => typed(s.as_bytes().to_vec()),
            Value::Number(n) => typed(n.to_string().into_bytes()),
            Value::Bool(b) => typed(b.to_string().into_bytes()),
            _ => Err(err("text")),
        },
        "JSON" => typed(value.to_string().into_bytes()),
        "JSONB" => {
            let mut bytes = vec![1];
            bytes.extend(value.to_string().into_bytes());
            typed(bytes)
        }
        "DATE" => {
            let date = text.and_then(parse_date).ok_or_else(|| err("a date as 'YYYY-MM-DD'"))?;
            let days = i32::try_from((date - pg_epoch_date()).num_days()).map_err(|_| err("a date in range"))?;
            typed(days.to_be_bytes().to_vec())
        }
        "TIMESTAMP" | "TIMESTAMPTZ" => {
            let at = text.and_then(parse_timestamp).ok_or_else(|| err("a date and time as ISO 8601"))?;
            let micros = (at - pg_epoch_date().and_time(NaiveTime::MIN))
                .num_microseconds()
                .ok_or_else(|| err("a timestamp in range"))?;
            typed(micros.to_be_bytes().to_vec())
        }
        "UUID" => {
            let hex: Vec<u8> = text.unwrap_or_default().bytes().filter(|c| *c != b'-').collect();
            // Checked byte by byte: slicing guest text by byte index could cut a character.
            let bytes: Option<Vec<u8>> = (hex.len() == 32 && hex.iter().all(u8::is_ascii_hexdigit))
                .then(|| hex.chunks(2).map(|pair| Some(hex_value(pair[0])? << 4 | hex_value(pair[1])?)).collect())
                .flatten();
            typed(bytes.ok_or_else(|| err("a UUID"))?)
        }
        _ => Err(err("a type metaexec cannot send parameters as")),
    }
}

fn hex_value(digit: u8) -> Option<u8> {
    char::from(digit).to_digit(16).and_then(|d| u8::try_from(d).ok())
}

/// An integer, also from a float with no fractional part (JSON does not tell 2 from 2.0
/// everywhere).
fn integer(value: &Value) -> Option<i64> {
    value.as_i64().or_else(|| value.as_f64().filter(|x| x.fract() == 0.0 && x.abs() < 9.0e15).map(|x| x as i64))
}

/// A number, also from an exact decimal object.
fn number(value: &Value) -> Option<f64> {
    value.as_f64().or_else(|| value.get("$decimal")?.as_str()?.parse().ok())
}

/// PostgreSQL's binary NUMERIC from decimal text (`-12.50`, `1e-7`, `1.5E+20`): digit
/// count, weight of the first base-10000 digit, sign, display scale, digits.
fn numeric_from_text(text: &str) -> Option<Vec<u8>> {
    let text = text.trim();
    let (negative, text) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let (mantissa, exponent) = match text.split_once(['e', 'E']) {
        Some((m, e)) => (m, e.parse::<i32>().ok()?),
        None => (text, 0),
    };
    let (int_part, frac_part) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if int_part.is_empty() && frac_part.is_empty()
        || !int_part.bytes().chain(frac_part.bytes()).all(|b| b.is_ascii_digit())
    {
        return None;
    }
    // value = digits × 10^scale
    let mut digits: Vec<u8> = int_part.bytes().chain(frac_part.bytes()).map(|b| b - b'0').collect();
    let mut scale = exponent.checked_sub(i32::try_from(frac_part.len()).ok()?)?;
    let dscale = u16::try_from(scale.checked_neg()?.max(0)).ok()?;
    // Align the last digit on a base-10000 boundary, then the first.
    let pad = scale.rem_euclid(4);
    digits.extend(std::iter::repeat_n(0, pad as usize));
    scale -= pad;
    let lead = (4 - digits.len() % 4) % 4;
    let mut padded = vec![0; lead];
    padded.extend(digits);
    let mut groups: Vec<i16> =
        padded.chunks(4).map(|c| c.iter().fold(0i16, |acc, d| acc * 10 + i16::from(*d))).collect();
    let mut weight = (scale / 4).checked_add(i32::try_from(groups.len()).ok()?)?.checked_sub(1)?;
    while groups.first() == Some(&0) {
        groups.remove(0);
        weight -= 1;
    }
    while groups.last() == Some(&0) {
        groups.pop();
    }
    if groups.is_empty() {
        weight = 0;
    }
    let sign: u16 = if negative && !groups.is_empty() { 0x4000 } else { 0 };
    let mut out = Vec::with_capacity(8 + 2 * groups.len());
    out.extend(i16::try_from(groups.len()).ok()?.to_be_bytes());
    out.extend(i16::try_from(weight).ok()?.to_be_bytes());
    out.extend(sign.to_be_bytes());
    out.extend(dscale.to_be_bytes());
    for g in groups {
        out.extend(g.to_be_bytes());
    }
    Some(out)
}

fn parse_date(text: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(text.get(..10)?, "%Y-%m-%d")
        .ok()
        .filter(|_| text.len() == 10 || text[10..].trim().is_empty())
}

/// `2024-01-31`, `2024-01-31T12:00:00`, `2024-01-31 12:00:00.5`, with or without an
/// offset (converted to UTC).
fn parse_timestamp(text: &str) -> Option<NaiveDateTime> {
    if let Ok(at) = DateTime::parse_from_rfc3339(text) {
        return Some(at.naive_utc());
    }
    for format in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M"] {
        if let Ok(at) = NaiveDateTime::parse_from_str(text, format) {
            return Some(at);
        }
    }
    parse_date(text).map(|d| d.and_time(NaiveTime::MIN))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ty(name: &'static str) -> PgTypeInfo {
        PgTypeInfo::with_name(name)
    }

    /// Round trip through the decoder of value.rs, which the driver-level tests check
    /// against a real server.
    #[test]
    fn numeric_text_round_trips() {
        for (input, shown) in [
            ("123.45", "123.45"),
            ("-123456.780", "-123456.780"),
            ("0.0005", "0.0005"),
            ("1e-7", "0.0000001"),
            ("1.5E+20", "150000000000000000000"),
            ("700000000", "700000000"),
            ("0", "0"),
            ("-0.00", "0.00"),
            ("62000000.00", "62000000.00"),
            ("12345678.9", "12345678.9"),
        ] {
            let bytes = numeric_from_text(input).unwrap();
            assert_eq!(super::super::value::numeric_to_string(&bytes).unwrap(), shown, "{input}");
        }
        for bad in ["", ".", "1.2.3", "abc", "1e", "--1"] {
            assert!(numeric_from_text(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn values_are_encoded_for_the_inferred_type() {
        let p = encode_one(1, &json!("2000-01-02"), ty("DATE")).unwrap();
        assert_eq!(p.bytes.unwrap(), 1i32.to_be_bytes());
        let p = encode_one(1, &json!("2000-01-01T00:00:01Z"), ty("TIMESTAMPTZ")).unwrap();
        assert_eq!(p.bytes.unwrap(), 1_000_000i64.to_be_bytes());
        let p = encode_one(1, &json!(5), ty("INT4")).unwrap();
        assert_eq!((p.type_info.name(), p.bytes.unwrap()), ("INT4", 5i32.to_be_bytes().to_vec()));
        let p = encode_one(1, &json!(2.0), ty("INT8")).unwrap();
        assert_eq!(p.bytes.unwrap(), 2i64.to_be_bytes());
        assert!(encode_one(1, &json!(2.5), ty("INT8")).is_err());
        assert!(encode_one(1, &json!(1i64 << 40), ty("INT4")).is_err());
        let p = encode_one(1, &json!(3), ty("FLOAT8")).unwrap();
        assert_eq!(p.bytes.unwrap(), 3.0f64.to_be_bytes());
        let p = encode_one(1, &json!(0.5), ty("NUMERIC")).unwrap();
        assert_eq!(p.type_info.name(), "NUMERIC");
        let p = encode_one(1, &Value::Null, ty("DATE")).unwrap();
        assert!(p.bytes.is_none());
        assert_eq!(p.type_info.name(), "DATE");
        let e = encode_one(2, &json!("soon"), ty("DATE")).unwrap_err();
        assert_eq!(e.position, 2);
        assert!(e.to_string().contains("date"), "{e}");
        assert!(encode_one(1, &json!("x"), ty("INT4")).is_err());
        let p = encode_one(1, &json!("00000000-0000-0000-0000-0000000000ff"), ty("UUID")).unwrap();
        assert_eq!(p.bytes.unwrap()[15], 0xff);
    }

    /// Guest text is any Unicode: nothing here may cut it inside a character or
    /// overflow on extreme numbers.
    #[test]
    fn guest_values_never_panic() {
        // 84 bytes, 42 characters: the text once cut at byte 57, inside an `é`.
        let long = format!("ab{}", "é".repeat(40));
        let longer = "é".repeat(100);
        for expected in ["INT4", "DATE", "UUID", "TIMESTAMP", "BOOL", "NUMERIC", "INT2", "OID", "POINT"] {
            let e = encode_one(1, &json!(long), ty(expected)).unwrap_err();
            assert_eq!(e.value, format!("\"{long}\""), "{expected}");
            let e = encode_one(1, &json!(longer), ty(expected)).unwrap_err();
            assert!(e.value.ends_with("...") && e.value.chars().count() == 60, "{expected}: {e}");
            let _ = e.hint();
        }
        let e = ParamError::new(1, &json!(["é".repeat(100)]), "x");
        assert_eq!(e.value.chars().count(), 60);
        assert_eq!(ParamError::new(1, &json!("short"), "x").value, "\"short\"");
        // 32 bytes but not 32 hex digits, with a multi-byte character across a pair.
        assert!(encode_one(1, &json!("a".to_owned() + &"é".repeat(15) + "b"), ty("UUID")).is_err());
        assert!(encode_one(1, &json!("é".repeat(16)), ty("UUID")).is_err());
        for text in ["1e-2147483648", "1e2147483647", "-1e-2147483647", "9.9e-2147483640", "1e99999999999"] {
            let _ = numeric_from_text(text);
            let _ = encode_one(1, &json!({"$decimal": text}), ty("NUMERIC"));
        }
        for text in ["9999-12-31", "+262143-12-31", "-262144-01-01T00:00:00", "2024-01-01é", "é"] {
            let _ = encode_one(1, &json!(text), ty("DATE"));
            let _ = encode_one(1, &json!(text), ty("TIMESTAMPTZ"));
        }
        for number in [json!(f64::MAX), json!(-f64::MAX), json!(u64::MAX), json!(i64::MIN)] {
            for expected in ["INT2", "INT4", "INT8", "OID", "FLOAT4", "FLOAT8", "NUMERIC", "TEXT"] {
                let _ = encode_one(1, &number, ty(expected));
            }
        }
        let query = bind_sqlite(sqlx::query("SELECT ?"), &[json!({"$decimal": "é"})]);
        assert!(query.is_err());
        assert!(bind_sqlite(sqlx::query("SELECT ?"), &[json!([long])]).is_err());
    }
}
