//! A query's rows, gathered by column as they arrive, under the row cap, the byte cap and
//! the job's host memory budget.
//!
//! The guest receives the rows by typed column ([`Rows`]): a column whose values are all
//! floats (or NULL) crosses as floats, all integers as integers, all strings as strings;
//! anything else (booleans, exact decimals, JSON, a mix) as one JSON array. Each column
//! starts as the narrowest kind and widens when a value does not fit, so a column keeps
//! every value's own type: an integer in a REAL column of SQLite stays an integer.
//!
//! The byte cap does not depend on how rows cross: it counts the rows as the JSON records
//! `{"columns": [...], "records": [{"column": value, ...}, ...], "decimals": bool, "read":
//! bool}` would be written (every record's keys, JSON escapes, commas), and is checked
//! value by value, before a value is kept. What is kept is charged to the [`HostBudget`]
//! before it is allocated: the columns' storage as it grows, each string's bytes, and at
//! the end the finished columns before the builders are freed.

use serde_json::Value;

use super::error::ProxyError;
use super::policy::Denial;
use crate::budget::{HostBudget, Reservation};
use crate::guest_db::{Column, Rows, json_float};
use crate::guest_value::{VALUE_BYTES, value_cost};

/// What the reservations of rows are called in budget messages.
const WHAT: &str = "the query's rows";

/// One column as it fills: the narrowest kind that holds every value so far.
#[derive(Debug)]
enum Cells {
    /// Only NULLs so far: how many.
    Nulls(usize),
    Floats(Vec<Option<f64>>),
    Integers(Vec<Option<i64>>),
    Texts(Vec<Option<Box<str>>>),
    Values(Vec<Value>),
}

/// What one value is, for the column that receives it.
enum Cell<'a> {
    Null,
    Float(f64),
    Integer(i64),
    Text(&'a str),
    Other,
}

fn cell(value: &Value) -> Cell<'_> {
    match value {
        Value::Null => Cell::Null,
        Value::Number(n) => match n.as_i64() {
            Some(i) => Cell::Integer(i),
            // Past i64 (a JSON value of PostgreSQL) an integer is still no float.
            None if n.is_u64() => Cell::Other,
            None => n.as_f64().map_or(Cell::Other, Cell::Float),
        },
        Value::String(s) => Cell::Text(s),
        _ => Cell::Other,
    }
}

/// A column being filled, with the bytes it holds (all reserved in the collector's
/// reservation): its storage, and what its strings and JSON values hold besides.
#[derive(Debug)]
struct Builder {
    cells: Cells,
    /// Bytes of strings and nested values (beyond the storage).
    heap: usize,
    /// Bytes of the JSON array the values would be written as, brackets included.
    json: usize,
}

impl Builder {
    fn new() -> Self {
        Self { cells: Cells::Nulls(0), heap: 0, json: 2 }
    }

    fn len(&self) -> usize {
        self.cells.len()
    }

    /// Bytes of storage.
    fn storage(&self) -> usize {
        self.cells.capacity() * self.cells.cell_size()
    }

    fn held(&self) -> usize {
        self.storage() + self.heap
    }
}

/// The capacity a column grows to for one more value: doubling, so copies stay rare.
fn grown(len: usize) -> usize {
    len.saturating_mul(2).max(8)
}

/// Pushes `item` onto `cells`, growing it to `grown(len)` first when it is full (the
/// growth already reserved by the caller).
fn push<T>(cells: &mut Vec<T>, item: T) {
    if cells.len() == cells.capacity() {
        cells.reserve_exact(grown(cells.len()) - cells.len());
    }
    cells.push(item);
}

/// Gathers rows under the row and byte caps and the host memory budget.
#[derive(Debug)]
pub struct Collector {
    columns: Option<Vec<String>>,
    /// The length of each column's key as written in a record: `"name":`.
    keys: Vec<usize>,
    builders: Vec<Builder>,
    /// Bytes of the answer as JSON, finished rows only.
    bytes: usize,
    /// Bytes of the row being written, as JSON.
    row_bytes: usize,
    rows: usize,
    /// Values written in the current row.
    values: usize,
    decimals: bool,
    max_rows: usize,
    max_bytes: usize,
    /// The statement only reads: the guest may keep its answer for identical requests.
    read: bool,
    reservation: Reservation,
    /// Where a value is written to measure it (numbers and nested values only).
    scratch: Vec<u8>,
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
            builders: Vec::new(),
            bytes: 0,
            row_bytes: 0,
            rows: 0,
            values: 0,
            decimals: false,
            max_rows,
            max_bytes,
            read,
            reservation: budget.empty(),
            scratch: Vec::new(),
        }
    }

    /// True once the column names are known.
    pub fn has_columns(&self) -> bool {
        self.columns.is_some()
    }

    /// Sets the column names (from the first row).
    pub fn set_columns(&mut self, columns: Vec<String>) -> Result<(), ProxyError> {
        self.keys = columns.iter().map(|c| json_str_len(c) + 1).collect();
        // `{"columns":[...],"records":[`
        let names = columns.iter().map(|c| json_str_len(c)).sum::<usize>() + columns.len().saturating_sub(1) + 2;
        let head = r#"{"columns":"#.len() + names + r#","records":["#.len();
        self.check_size(head)?;
        let names_held = columns.iter().map(|c| c.capacity() + size_of::<String>()).sum();
        self.reservation.grow(names_held, WHAT).map_err(Denial::HostMemory)?;
        self.bytes = head;
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
        self.values = 0;
        // `,{` or `{`
        self.row_bytes = if self.rows > 0 { 2 } else { 1 };
        Ok(())
    }

    /// Adds the next value of the row being written.
    pub fn push_value(&mut self, value: &Value) -> Result<(), ProxyError> {
        let i = self.values;
        // More values than columns cannot come from a driver; name them anyway.
        let key = match self.keys.get(i) {
            Some(&key) => key,
            None => json_str_len(&format!("column{}", i + 1)) + 1,
        };
        let size = self.json_len(value)?;
        self.row_bytes += usize::from(i > 0) + key + size;
        self.check_size(self.bytes.saturating_add(self.row_bytes))?;
        if self.builders.len() <= i {
            // A column the first rows did not have: NULL in each of them.
            let mut builder = Builder::new();
            builder.cells = Cells::Nulls(self.rows);
            builder.json += 5 * self.rows;
            self.builders.push(builder);
        }
        self.keep(i, value, size)?;
        self.decimals |= has_decimal(value, 0);
        self.values += 1;
        Ok(())
    }

    /// Closes the row being written and keeps it.
    pub fn end_row(&mut self) -> Result<(), ProxyError> {
        self.row_bytes += 1;
        self.check_size(self.bytes.saturating_add(self.row_bytes))?;
        // Columns this row had no value for (none, from a driver) hold NULL.
        for i in self.values..self.builders.len() {
            self.keep(i, &Value::Null, 4)?;
        }
        self.bytes += self.row_bytes;
        self.row_bytes = 0;
        self.rows += 1;
        Ok(())
    }

    /// Rows so far.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Bytes of the answer so far, as JSON.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// The finished rows, their column names, the bytes of the answer as JSON, and the
    /// reservation that keeps the rows counted for as long as they are kept.
    pub fn finish(mut self) -> Result<(Rows, usize, Reservation), ProxyError> {
        if !self.has_columns() {
            self.set_columns(Vec::new())?;
        }
        let tail = format!(r#"],"decimals":{},"read":{}}}"#, self.decimals, self.read);
        let bytes = self.bytes + tail.len();
        let names = self.columns.take().unwrap_or_default();
        let mut columns = Vec::with_capacity(self.builders.len());
        self.reservation.grow(self.builders.len() * size_of::<Column>(), WHAT).map_err(Denial::HostMemory)?;
        for builder in std::mem::take(&mut self.builders) {
            columns.push(self.seal(builder)?);
        }
        let rows = Rows {
            names: names.into(),
            columns: columns.into(),
            count: self.rows,
            read: self.read,
            decimals: self.decimals,
        };
        Ok((rows, bytes, self.reservation))
    }

    /// The finished column of `builder`, its final storage reserved before it is built
    /// and the builder's given back once it is.
    fn seal(&mut self, builder: Builder) -> Result<Column, ProxyError> {
        let held = builder.held();
        let len = builder.len();
        // An upper bound on what the finished column takes besides the builder: the
        // `Arc` copies the cells (strings move, and collecting into a `Vec` of a smaller
        // or equal cell reuses the builder's storage).
        let storage = match &builder.cells {
            Cells::Nulls(_) | Cells::Floats(_) | Cells::Integers(_) => len * size_of::<Option<f64>>(),
            Cells::Texts(_) => len * size_of::<Option<Box<str>>>(),
            Cells::Values(_) => builder.json,
        };
        self.reservation.grow(storage, WHAT).map_err(Denial::HostMemory)?;
        let column = match builder.cells {
            // A column of NULLs only: typed as floats, the kind NULLs are most often in.
            Cells::Nulls(n) => Column::MaybeFloats(vec![None; n].into()),
            Cells::Floats(cells) if cells.iter().all(Option::is_some) => {
                Column::Floats(cells.into_iter().map(Option::unwrap_or_default).collect::<Vec<_>>().into())
            }
            Cells::Floats(cells) => Column::MaybeFloats(cells.into()),
            Cells::Integers(cells) if cells.iter().all(Option::is_some) => {
                Column::Integers(cells.into_iter().map(Option::unwrap_or_default).collect::<Vec<_>>().into())
            }
            Cells::Integers(cells) => Column::MaybeIntegers(cells.into()),
            Cells::Texts(cells) if cells.iter().all(Option::is_some) => {
                Column::Texts(cells.into_iter().map(Option::unwrap_or_default).collect::<Vec<_>>().into())
            }
            Cells::Texts(cells) => Column::MaybeTexts(cells.into()),
            Cells::Values(cells) => {
                let mut json = String::with_capacity(builder.json);
                serde_json::to_writer(JsonText(&mut json), &cells)
                    .map_err(|e| ProxyError::invalid(format!("metaexec could not encode the rows as JSON: {e}")))?;
                Column::Values(json.into())
            }
        };
        let total = self.reservation.bytes();
        self.reservation.shrink_to(total - held - storage + column.held_bytes());
        Ok(column)
    }

    /// Keeps `value` (of `size` bytes as JSON) in column `i`, widening the column when
    /// the value does not fit its kind; what it takes is reserved first.
    fn keep(&mut self, i: usize, value: &Value, size: usize) -> Result<(), ProxyError> {
        let builder = &mut self.builders[i];
        let len = builder.len();
        let cell = cell(value);
        let fits = matches!(
            (&builder.cells, &cell),
            (Cells::Floats(_), Cell::Float(_) | Cell::Null)
                | (Cells::Integers(_), Cell::Integer(_) | Cell::Null)
                | (Cells::Texts(_), Cell::Text(_) | Cell::Null)
                | (Cells::Values(_), _)
                | (Cells::Nulls(_), Cell::Null)
        );
        if !fits {
            let storage = builder.storage();
            let wider = match (&builder.cells, &cell) {
                (Cells::Nulls(_), Cell::Float(_)) => Cells::Floats(Vec::new()),
                (Cells::Nulls(_), Cell::Integer(_)) => Cells::Integers(Vec::new()),
                (Cells::Nulls(_), Cell::Text(_)) => Cells::Texts(Vec::new()),
                _ => Cells::Values(Vec::new()),
            };
            let capacity = grown(len);
            self.reservation.grow(capacity * wider.cell_size(), WHAT).map_err(Denial::HostMemory)?;
            let old = std::mem::replace(&mut builder.cells, wider);
            widen(old, &mut builder.cells, capacity);
            self.reservation.shrink_to(self.reservation.bytes() - storage);
        }
        let builder = &mut self.builders[i];
        let extra = match (&builder.cells, &cell) {
            (_, Cell::Text(s)) if !matches!(builder.cells, Cells::Values(_)) => s.len(),
            (Cells::Values(_), _) => value_cost(value).saturating_sub(VALUE_BYTES),
            _ => 0,
        };
        let growth = match &builder.cells {
            Cells::Nulls(_) => 0,
            cells if cells.len() < cells.capacity() => 0,
            cells => (grown(len) - len) * cells.cell_size(),
        };
        self.reservation.grow(extra + growth, WHAT).map_err(Denial::HostMemory)?;
        builder.heap += extra;
        builder.json += size + usize::from(len > 0);
        match (&mut builder.cells, cell) {
            (Cells::Nulls(n), _) => *n += 1,
            (Cells::Floats(cells), Cell::Float(x)) => push(cells, Some(x)),
            (Cells::Floats(cells), _) => push(cells, None),
            (Cells::Integers(cells), Cell::Integer(x)) => push(cells, Some(x)),
            (Cells::Integers(cells), _) => push(cells, None),
            (Cells::Texts(cells), Cell::Text(s)) => push(cells, Some(s.into())),
            (Cells::Texts(cells), _) => push(cells, None),
            (Cells::Values(cells), _) => push(cells, value.clone()),
        }
        Ok(())
    }

    /// The bytes of `value` as JSON.
    fn json_len(&mut self, value: &Value) -> Result<usize, ProxyError> {
        if let Value::String(s) = value {
            return Ok(json_str_len(s));
        }
        self.scratch.clear();
        serde_json::to_writer(&mut self.scratch, value)
            .map_err(|e| ProxyError::invalid(format!("metaexec could not encode the rows as JSON: {e}")))?;
        let len = self.scratch.len();
        // A large nested value should not keep its scratch space.
        if self.scratch.capacity() > 1 << 20 {
            self.scratch = Vec::new();
        }
        Ok(len)
    }

    fn check_size(&self, bytes: usize) -> Result<(), ProxyError> {
        if bytes.saturating_add(TAIL) > self.max_bytes {
            return Err(Denial::ByteCap { max: self.max_bytes }.into());
        }
        Ok(())
    }
}

impl Cells {
    fn len(&self) -> usize {
        match self {
            Self::Nulls(n) => *n,
            Self::Floats(v) => v.len(),
            Self::Integers(v) => v.len(),
            Self::Texts(v) => v.len(),
            Self::Values(v) => v.len(),
        }
    }

    /// Cells the storage has room for (NULLs only are counted, not stored).
    fn capacity(&self) -> usize {
        match self {
            Self::Nulls(_) => 0,
            Self::Floats(v) => v.capacity(),
            Self::Integers(v) => v.capacity(),
            Self::Texts(v) => v.capacity(),
            Self::Values(v) => v.capacity(),
        }
    }

    /// Bytes of storage one cell takes.
    fn cell_size(&self) -> usize {
        match self {
            Self::Nulls(_) => 0,
            Self::Floats(_) => size_of::<Option<f64>>(),
            Self::Integers(_) => size_of::<Option<i64>>(),
            Self::Texts(_) => size_of::<Option<Box<str>>>(),
            Self::Values(_) => size_of::<Value>(),
        }
    }
}

/// Moves the cells of `old` into `wider` (empty, of a kind that holds them all), with
/// room for `capacity` cells.
fn widen(old: Cells, wider: &mut Cells, capacity: usize) {
    fn values<T>(cells: Vec<Option<T>>, out: &mut Vec<Value>, f: impl Fn(T) -> Value) {
        out.extend(cells.into_iter().map(|c| c.map_or(Value::Null, &f)));
    }
    // A typed column only ever widens from NULLs.
    fn from_nulls<T: Clone>(old: &Cells, out: &mut Vec<Option<T>>, capacity: usize) {
        out.reserve_exact(capacity);
        if let Cells::Nulls(n) = *old {
            out.resize(n, None);
        }
    }
    match wider {
        Cells::Floats(out) => from_nulls(&old, out, capacity),
        Cells::Integers(out) => from_nulls(&old, out, capacity),
        Cells::Texts(out) => from_nulls(&old, out, capacity),
        Cells::Values(out) => {
            out.reserve_exact(capacity);
            match old {
                Cells::Nulls(n) => out.resize(n, Value::Null),
                Cells::Floats(cells) => {
                    values(cells, out, json_float);
                }
                Cells::Integers(cells) => values(cells, out, Value::from),
                Cells::Texts(cells) => values(cells, out, |s| Value::String(s.into())),
                Cells::Values(cells) => out.extend(cells),
            }
        }
        Cells::Nulls(_) => {}
    }
}

/// The bytes of `text` as a JSON string, quotes and escapes included, as serde_json
/// writes it: `"` and `\` take two bytes, control characters two (`\n`, `\t` ...) or six
/// (`\u001f`).
fn json_str_len(text: &str) -> usize {
    2 + text
        .bytes()
        .map(|b| match b {
            b'"' | b'\\' | b'\x08' | b'\x0c' | b'\n' | b'\r' | b'\t' => 2,
            0..=0x1f => 6,
            _ => 1,
        })
        .sum::<usize>()
}

/// Writes JSON into a `String` (serde_json writes only UTF-8).
struct JsonText<'a>(&'a mut String);

impl std::io::Write for JsonText<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let text = std::str::from_utf8(buf).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
        self.0.push_str(text);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
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

/// The answer as the JSON text the byte cap counts (for tests and tools: the guest
/// receives [`Rows`]); [`Collector::finish`] gives its length without writing it.
pub fn to_json(rows: &Rows) -> String {
    let mut out = format!(r#"{{"columns":{},"records":["#, Value::from(rows.names.to_vec()));
    for (r, values) in rows.records().into_iter().enumerate() {
        out.push_str(if r > 0 { ",{" } else { "{" });
        for (i, value) in values.into_iter().enumerate() {
            let name = rows.names.get(i).cloned().unwrap_or_else(|| format!("column{}", i + 1));
            if i > 0 {
                out.push(',');
            }
            out.push_str(&format!("{}:{value}", Value::String(name)));
        }
        out.push('}');
    }
    out.push_str(&format!(r#"],"decimals":{},"read":{}}}"#, rows.decimals, rows.read));
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn collect(columns: &[&str], rows: &[Vec<Value>], max_bytes: usize) -> Result<(Rows, usize, usize), ProxyError> {
        let budget = HostBudget::new(1 << 30);
        let mut c = Collector::new(1000, max_bytes, true, &budget);
        c.set_columns(columns.iter().map(|s| s.to_string()).collect())?;
        for row in rows {
            c.push(row)?;
        }
        let (rows, bytes, reservation) = c.finish()?;
        assert_eq!(budget.used(), reservation.bytes());
        Ok((rows, bytes, reservation.bytes()))
    }

    /// What is counted is exactly the JSON answer: keys per record and escapes included.
    #[test]
    fn the_byte_count_is_the_json_answers_length() {
        let columns = ["a", "quote\"d", "é"];
        let rows = vec![
            vec![json!(1), json!("line\nbreak \"quoted\" \u{1}\u{8}\u{7f}"), Value::Null],
            vec![json!(2.5), json!({"$decimal": "1.10"}), json!([true, false])],
        ];
        let (got, bytes, _) = collect(&columns, &rows, 1 << 20).unwrap();
        let records: Vec<String> = rows
            .iter()
            .map(|r| {
                let fields: Vec<String> =
                    columns.iter().zip(r).map(|(c, v)| format!("{}:{v}", Value::from(*c))).collect();
                format!("{{{}}}", fields.join(","))
            })
            .collect();
        let expected = format!(
            r#"{{"columns":{},"records":[{}],"decimals":true,"read":true}}"#,
            json!(columns),
            records.join(",")
        );
        assert_eq!(to_json(&got), expected);
        assert_eq!(bytes, expected.len());
        assert_eq!(got.count, 2);
        assert!(got.decimals);
        assert_eq!(got.records(), rows);
    }

    #[test]
    fn strings_are_measured_as_serde_json_writes_them() {
        for text in ["", "plain", "é ✓ 😀", "\"\\/", "\u{0}\u{1f}\u{20}\u{7f}", "\u{8}\u{c}\n\r\t\u{b}"] {
            assert_eq!(json_str_len(text), serde_json::to_string(text).unwrap().len(), "{text:?}");
        }
    }

    /// Each column takes the narrowest kind that holds all its values, with NULLs; a
    /// value of another kind widens it to JSON, keeping every value's own type.
    #[test]
    fn columns_are_typed_and_widen_to_json() {
        let columns = ["f", "i", "t", "mf", "mi", "mt", "null", "bool", "mixed", "late", "big"];
        let rows = vec![
            vec![
                json!(1.5),
                json!(1),
                json!("a"),
                Value::Null,
                json!(-7),
                json!("x"),
                Value::Null,
                json!(true),
                json!(1),
                Value::Null,
                json!(1),
            ],
            vec![
                json!(-0.0),
                json!(i64::MIN),
                json!(""),
                json!(2.25),
                Value::Null,
                Value::Null,
                Value::Null,
                json!(false),
                json!(1.0),
                Value::Null,
                json!(u64::MAX),
            ],
            vec![
                json!(1e300),
                json!(i64::MAX),
                json!("é"),
                json!(3.0),
                json!(8),
                json!("z"),
                Value::Null,
                Value::Null,
                json!("1"),
                json!("now text"),
                json!(2),
            ],
        ];
        let (got, bytes, held) = collect(&columns, &rows, 1 << 20).unwrap();
        assert_eq!(got.records(), rows);
        assert_eq!(bytes, to_json(&got).len());
        let kinds: Vec<&str> = got
            .columns
            .iter()
            .map(|c| match c {
                Column::Floats(_) => "floats",
                Column::Integers(_) => "integers",
                Column::Texts(_) => "texts",
                Column::MaybeFloats(_) => "maybe-floats",
                Column::MaybeIntegers(_) => "maybe-integers",
                Column::MaybeTexts(_) => "maybe-texts",
                Column::Values(_) => "values",
            })
            .collect();
        assert_eq!(
            kinds,
            [
                "floats",
                "integers",
                "texts",
                "maybe-floats",
                "maybe-integers",
                "maybe-texts",
                "maybe-floats",
                "values",
                "values",
                "maybe-texts",
                "values"
            ]
        );
        assert_eq!(got.columns[8], Column::Values(r#"[1,1.0,"1"]"#.into()));
        let names: usize = columns.iter().map(|c| c.len() + size_of::<String>()).sum();
        let columns_held: usize = got.columns.iter().map(Column::held_bytes).sum();
        assert_eq!(held, names + columns_held + got.columns.len() * size_of::<Column>());
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
        let (rows, bytes, _) = Collector::new(5, 100, true, &budget).finish().unwrap();
        assert!(rows.names.is_empty() && rows.columns.is_empty() && rows.count == 0 && !rows.decimals);
        assert_eq!(to_json(&rows), r#"{"columns":[],"records":[],"decimals":false,"read":true}"#);
        assert_eq!(bytes, to_json(&rows).len());
        // Rows without columns are still counted.
        let mut c = Collector::new(5, 100, true, &budget);
        c.set_columns(Vec::new()).unwrap();
        c.push(&[]).unwrap();
        c.push(&[]).unwrap();
        let (rows, bytes, _) = c.finish().unwrap();
        assert_eq!(rows.count, 2);
        assert_eq!(to_json(&rows), r#"{"columns":[],"records":[{},{}],"decimals":false,"read":true}"#);
        assert_eq!(bytes, to_json(&rows).len());
    }
}
