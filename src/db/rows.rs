//! A query's rows, serialized for the guest as they arrive, under the row cap, the byte
//! cap and the job's host memory budget.
//!
//! The guest receives `{"columns": [...], "records": [{"column": value, ...}, ...],
//! "decimals": bool, "read": bool}`. The [`Collector`] writes exactly that text row by
//! row, so the byte cap counts what is sent (every record's keys, JSON escapes, commas)
//! and is checked before a row is kept: the host never holds more than the cap plus the
//! row in hand. The buffer grows in steps it first reserves in the [`HostBudget`], never
//! past the cap. The finished text is the only copy kept ([`Rows`]): host callers that
//! want values parse it back.

use serde::de::{Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use serde_json::Value;
use serde_json::value::RawValue;

use super::error::ProxyError;
use super::policy::Denial;
use crate::budget::{HostBudget, Reservation};

/// What the reservations of rows are called in budget messages.
const WHAT: &str = "the query's rows";

/// The rows of one query, kept once, as the JSON text the guest receives.
#[derive(Debug)]
pub struct Rows {
    json: Box<RawValue>,
    len: usize,
}

impl Rows {
    /// How many rows.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The rows, each a list of values in column order, parsed back from the JSON (for
    /// callers on the host; the guest gets [`Rows::json`]).
    pub fn iter(&self) -> std::vec::IntoIter<Vec<Value>> {
        #[derive(Deserialize)]
        struct Payload {
            records: Vec<Record>,
        }
        serde_json::from_str::<Payload>(self.json.get())
            .map(|p| p.records.into_iter().map(|r| r.0).collect::<Vec<_>>())
            .unwrap_or_default()
            .into_iter()
    }

    /// The whole answer as the guest receives it.
    pub fn json(&self) -> &RawValue {
        &self.json
    }
}

impl Serialize for Rows {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.iter())
    }
}

/// One record's values in order; duplicate column names keep every value.
struct Record(Vec<Value>);

impl<'de> Deserialize<'de> for Record {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Values;
        impl<'de> Visitor<'de> for Values {
            type Value = Record;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a record")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Record, A::Error> {
                let mut values = Vec::new();
                while let Some((_, value)) = map.next_entry::<serde::de::IgnoredAny, Value>()? {
                    values.push(value);
                }
                Ok(Record(values))
            }
        }
        deserializer.deserialize_map(Values)
    }
}

/// Gathers rows under the row and byte caps and the host memory budget.
#[derive(Debug)]
pub struct Collector {
    columns: Option<Vec<String>>,
    /// Each column's key as written in a record: `"name":`.
    keys: Vec<Vec<u8>>,
    /// The answer so far.
    out: Vec<u8>,
    /// The row being written.
    row: Vec<u8>,
    rows: usize,
    /// Values written in the current row.
    values: usize,
    decimals: bool,
    max_rows: usize,
    max_bytes: usize,
    /// The statement only reads: the guest may keep its answer for identical requests.
    read: bool,
    reservation: Reservation,
}

/// The longest end of an answer: `],"decimals":false,"read":false}`.
const TAIL: usize = 32;

impl Collector {
    /// A collector refusing more than `max_rows` rows or `max_bytes` bytes, holding its
    /// memory against `budget`.
    pub fn new(max_rows: usize, max_bytes: usize, read: bool, budget: &HostBudget) -> Self {
        Self {
            columns: None,
            keys: Vec::new(),
            out: Vec::new(),
            row: Vec::new(),
            rows: 0,
            values: 0,
            decimals: false,
            max_rows,
            max_bytes,
            read,
            reservation: budget.empty(),
        }
    }

    /// True once the column names are known.
    pub fn has_columns(&self) -> bool {
        self.columns.is_some()
    }

    /// Sets the column names (from the first row).
    pub fn set_columns(&mut self, columns: Vec<String>) -> Result<(), ProxyError> {
        self.keys = columns.iter().map(|c| key(c)).collect();
        let mut head = br#"{"columns":"#.to_vec();
        write_json(&mut head, &columns)?;
        head.extend_from_slice(br#","records":["#);
        self.check_size(head.len())?;
        self.make_room(head.len())?;
        self.out.extend_from_slice(&head);
        self.columns = Some(columns);
        Ok(())
    }

    /// Adds one row (values in column order), or refuses it past a cap or the budget.
    pub fn push(&mut self, row: &[Value]) -> Result<(), ProxyError> {
        self.start_row()?;
        for value in row {
            self.push_value(value)?;
        }
        self.end_row()
    }

    /// Starts a row, to be filled with [`Collector::push_value`] and closed with
    /// [`Collector::end_row`]: a wide row of large values is refused at the value that
    /// passes the cap, not after all of it was converted.
    pub fn start_row(&mut self) -> Result<(), ProxyError> {
        if self.rows >= self.max_rows {
            return Err(Denial::RowCap { max: self.max_rows }.into());
        }
        if !self.has_columns() {
            self.set_columns(Vec::new())?;
        }
        self.row.clear();
        self.values = 0;
        if self.rows > 0 {
            self.row.push(b',');
        }
        self.row.push(b'{');
        Ok(())
    }

    /// Adds the next value of the row being written.
    pub fn push_value(&mut self, value: &Value) -> Result<(), ProxyError> {
        if self.values > 0 {
            self.row.push(b',');
        }
        match self.keys.get(self.values) {
            Some(key) => self.row.extend_from_slice(key),
            // More values than columns cannot come from a driver; name them anyway.
            None => self.row.extend_from_slice(&key(&format!("column{}", self.values + 1))),
        }
        write_json(&mut self.row, value)?;
        self.decimals |= has_decimal(value, 0);
        self.values += 1;
        self.check_size(self.out.len().saturating_add(self.row.len()))
    }

    /// Closes the row being written and keeps it.
    pub fn end_row(&mut self) -> Result<(), ProxyError> {
        self.row.push(b'}');
        self.check_size(self.out.len().saturating_add(self.row.len()))?;
        self.make_room(self.row.len())?;
        self.out.extend_from_slice(&self.row);
        self.rows += 1;
        // A row far larger than the next ones should not keep its scratch space.
        if self.row.capacity() > 1 << 20 {
            self.row = Vec::new();
        }
        Ok(())
    }

    /// Rows so far.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Bytes of the answer so far.
    pub fn bytes(&self) -> usize {
        self.out.len()
    }

    /// The finished answer, its column names, whether it holds exact decimals, and the
    /// reservation that keeps its bytes counted for as long as it is kept.
    pub fn finish(mut self) -> Result<(Vec<String>, Rows, bool, Reservation), ProxyError> {
        if !self.has_columns() {
            self.set_columns(Vec::new())?;
        }
        let tail = format!(r#"],"decimals":{},"read":{}}}"#, self.decimals, self.read);
        self.make_room(tail.len())?;
        self.out.extend_from_slice(tail.as_bytes());
        let text = String::from_utf8(std::mem::take(&mut self.out))
            .map_err(|_| ProxyError::invalid("metaexec could not encode the rows as JSON"))?;
        let json = RawValue::from_string(text)
            .map_err(|e| ProxyError::invalid(format!("metaexec could not encode the rows as JSON: {e}")))?;
        // `from_string` shrinks the buffer to its length: hold exactly that from now on.
        let mut reservation = self.reservation;
        reservation.shrink_to(json.get().len());
        Ok((self.columns.unwrap_or_default(), Rows { json, len: self.rows }, self.decimals, reservation))
    }

    fn check_size(&self, bytes: usize) -> Result<(), ProxyError> {
        if bytes.saturating_add(TAIL) > self.max_bytes {
            return Err(Denial::ByteCap { max: self.max_bytes }.into());
        }
        Ok(())
    }

    /// Grows the buffer for `extra` more bytes, reserving first; doubles, but never past
    /// the byte cap.
    fn make_room(&mut self, extra: usize) -> Result<(), ProxyError> {
        let needed = self.out.len().saturating_add(extra);
        if needed <= self.out.capacity() {
            return Ok(());
        }
        let doubled = self.out.capacity().saturating_mul(2).max(4096).min(self.max_bytes.saturating_add(TAIL));
        let held = self.reservation.bytes();
        // Doubling keeps copies rare; near the end of the budget, exactly what is needed.
        let mut target = doubled.max(needed);
        if target > held && self.reservation.grow(target - held, WHAT).is_err() {
            target = needed;
            if target > held {
                self.reservation.grow(target - held, WHAT).map_err(Denial::HostMemory)?;
            }
        }
        self.out.reserve_exact(target - self.out.len());
        Ok(())
    }
}

/// `"name":` as written before a value.
fn key(name: &str) -> Vec<u8> {
    let mut out = serde_json::to_vec(name).unwrap_or_else(|_| b"\"\"".to_vec());
    out.push(b':');
    out
}

fn write_json<T: Serialize + ?Sized>(out: &mut Vec<u8>, value: &T) -> Result<(), ProxyError> {
    serde_json::to_writer(out, value)
        .map_err(|e| ProxyError::invalid(format!("metaexec could not encode the rows as JSON: {e}")))
}

/// Whether `value` holds an exact decimal object (`{"$decimal": ...}`), at any depth the
/// JSON parser allows.
fn has_decimal(value: &Value, depth: usize) -> bool {
    if depth > 256 {
        return false;
    }
    match value {
        Value::Object(map) => map.contains_key("$decimal") || map.values().any(|v| has_decimal(v, depth + 1)),
        Value::Array(items) => items.iter().any(|v| has_decimal(v, depth + 1)),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn collect(columns: &[&str], rows: &[Vec<Value>], max_bytes: usize) -> Result<(Rows, usize), ProxyError> {
        let budget = HostBudget::new(1 << 30);
        let mut c = Collector::new(1000, max_bytes, true, &budget);
        c.set_columns(columns.iter().map(|s| s.to_string()).collect())?;
        for row in rows {
            c.push(row)?;
        }
        let (_, rows, _, reservation) = c.finish()?;
        assert_eq!(budget.used(), reservation.bytes());
        Ok((rows, reservation.bytes()))
    }

    /// What is counted is exactly what is sent: keys per record and escapes included.
    #[test]
    fn the_answer_is_the_guests_json_byte_for_byte() {
        let columns = ["a", "quote\"d", "é"];
        let rows = vec![
            vec![json!(1), json!("line\nbreak \"quoted\" \u{1}"), Value::Null],
            vec![json!(2.5), json!({"$decimal": "1.10"}), json!([true, false])],
        ];
        let (got, held) = collect(&columns, &rows, 1 << 20).unwrap();
        let records: Vec<serde_json::Map<String, Value>> =
            rows.iter().map(|r| columns.iter().map(|c| c.to_string()).zip(r.iter().cloned()).collect()).collect();
        let expected = json!({"columns": columns, "records": records, "decimals": true, "read": true}).to_string();
        assert_eq!(got.json().get(), expected);
        assert_eq!(held, expected.len());
        assert_eq!(got.len(), 2);
        assert_eq!(got.iter().collect::<Vec<_>>(), rows);
    }

    #[test]
    fn the_byte_cap_counts_keys_and_escapes() {
        let long = "k".repeat(200);
        let columns: Vec<&str> = vec![&long; 5];
        let row = vec![json!(1); 5];
        // 5 keys of 203 bytes per record: 10 records pass 10,000 bytes.
        let rows = vec![row; 10];
        assert!(matches!(collect(&columns, &rows, 10_000), Err(ProxyError::Denied(Denial::ByteCap { max: 10_000 }))));
        assert!(collect(&columns, &rows, 20_000).is_ok());
        let escaped = vec![vec![json!("\u{1}".repeat(1000))]];
        // 1000 characters, 6000 bytes as JSON.
        assert!(matches!(collect(&["x"], &escaped, 5_000), Err(ProxyError::Denied(Denial::ByteCap { .. }))));
    }

    #[test]
    fn the_budget_refuses_with_a_named_denial_and_is_given_back() {
        let budget = HostBudget::new(10_000);
        let mut c = Collector::new(1000, 1 << 20, true, &budget);
        c.set_columns(vec!["x".into()]).unwrap();
        let mut outcome = Ok(());
        for _ in 0..100 {
            outcome = c.push(&[json!("y".repeat(500))]);
            if outcome.is_err() {
                break;
            }
        }
        let Err(ProxyError::Denied(denial @ Denial::HostMemory(_))) = outcome else { panic!("{outcome:?}") };
        assert!(denial.to_string().contains("memory budget"), "{denial}");
        assert!(denial.hint().unwrap().contains("--host-memory"));
        assert!(budget.used() <= 10_000);
        drop(c);
        assert_eq!(budget.used(), 0);
    }

    #[test]
    fn rows_and_caps() {
        let budget = HostBudget::default();
        let mut c = Collector::new(1, 1 << 20, false, &budget);
        c.push(&[json!(1)]).unwrap();
        assert!(matches!(c.push(&[json!(2)]), Err(ProxyError::Denied(Denial::RowCap { max: 1 }))));
        let (columns, rows, decimals, _) = Collector::new(5, 100, true, &budget).finish().unwrap();
        assert!(columns.is_empty() && rows.is_empty() && !decimals);
        assert_eq!(rows.json().get(), r#"{"columns":[],"records":[],"decimals":false,"read":true}"#);
    }
}
