//! A scenario's results, with its main result (a list of rows) kept by column.
//!
//! A sweep keeps every scenario's rows until it ends. As JSON objects, each row is an
//! insertion-ordered map with its own copy of every key: ten rows of five fields took
//! about 13 KB of host memory per scenario, and building them took a tenth of a sweep's
//! host time, most of it the kernel zeroing fresh pages. By column, the names are shared
//! by every row (and by every scenario that sends the same ones), and a cell is one
//! [`Value`]. Serialized, a [`ResultTable`] is the list of row objects it stands for, so a
//! sweep's files are the same either way.

use std::sync::Arc;

use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Deserialize, Serialize, Serializer};
use serde_json::{Map, Value};

use crate::guest_value::{VALUE_BYTES, value_cost};

/// The key of a script's main result (`metaexec.result(...)`).
pub const MAIN: &str = "result";

/// Rows by column: `columns[c][r]` is row `r`'s value for `names[c]`.
#[derive(Debug, Clone, PartialEq)]
pub struct ResultTable {
    names: Arc<[String]>,
    columns: Vec<Vec<Value>>,
    rows: usize,
}

impl ResultTable {
    /// The table of `names` and `columns` (one per name, all of `rows` values). A name
    /// given twice keeps its first place and its last column, as a JSON object with a
    /// repeated key does. `None` if a column's length is not `rows` or the counts differ.
    pub fn new(names: Arc<[String]>, columns: Vec<Vec<Value>>, rows: usize) -> Option<Self> {
        if names.len() != columns.len() || columns.iter().any(|c| c.len() != rows) {
            return None;
        }
        if !has_repeats(&names) {
            return Some(Self { names, columns, rows });
        }
        let mut kept: Vec<(String, Vec<Value>)> = Vec::with_capacity(names.len());
        for (name, column) in names.iter().zip(columns) {
            match kept.iter_mut().find(|(n, _)| n == name) {
                Some((_, earlier)) => *earlier = column,
                None => kept.push((name.clone(), column)),
            }
        }
        let (names, columns): (Vec<String>, Vec<Vec<Value>>) = kept.into_iter().unzip();
        Some(Self { names: names.into(), columns, rows })
    }

    /// The column names, shared.
    pub fn names(&self) -> &Arc<[String]> {
        &self.names
    }

    /// Row `index`.
    pub fn row(&self, index: usize) -> Row<'_> {
        Row::Column(self, index)
    }

    /// About what it costs the host while kept (the names are shared, so not counted).
    pub fn cost(&self) -> usize {
        self.columns.iter().flatten().map(value_cost).sum::<usize>() + self.columns.len() * VALUE_BYTES
    }

    /// The list of row objects it stands for.
    pub fn into_value(self) -> Value {
        let mut columns: Vec<std::vec::IntoIter<Value>> = self.columns.into_iter().map(Vec::into_iter).collect();
        let row = |_| {
            let cells = self.names.iter().zip(columns.iter_mut());
            Value::Object(cells.map(|(n, c)| (n.clone(), c.next().unwrap_or_default())).collect())
        };
        Value::Array((0..self.rows).map(row).collect())
    }
}

fn has_repeats(names: &[String]) -> bool {
    if names.len() <= 16 {
        names.iter().enumerate().any(|(i, n)| names[..i].contains(n))
    } else {
        let mut seen = std::collections::HashSet::with_capacity(names.len());
        !names.iter().all(|n| seen.insert(n.as_str()))
    }
}

impl Serialize for ResultTable {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut rows = serializer.serialize_seq(Some(self.rows))?;
        for r in 0..self.rows {
            rows.serialize_element(&RowObject(self, r))?;
        }
        rows.end()
    }
}

struct RowObject<'a>(&'a ResultTable, usize);

impl Serialize for RowObject<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let RowObject(table, r) = *self;
        let mut row = serializer.serialize_map(Some(table.names.len()))?;
        for (name, column) in table.names.iter().zip(&table.columns) {
            row.serialize_entry(name, &column[r])?;
        }
        row.end()
    }
}

/// One row of a main result, however it is kept.
#[derive(Debug, Clone, Copy)]
pub enum Row<'a> {
    /// A row object (a result sent as JSON, or read back from a file).
    Object(&'a Map<String, Value>),
    /// A row of a table kept by column.
    Column(&'a ResultTable, usize),
}

impl<'a> Row<'a> {
    /// The value of `key`. A row has a handful of fields, and comparing them in turn is
    /// several times faster than hashing `key` (maps hash with SipHash): a sweep's summary
    /// and files look up a few fields in every row of every scenario.
    pub fn get(self, key: &str) -> Option<&'a Value> {
        match self {
            Row::Object(map) if map.len() <= 16 => map.iter().find_map(|(k, v)| (k == key).then_some(v)),
            Row::Object(map) => map.get(key),
            Row::Column(table, r) => table.names.iter().position(|n| n == key).map(|c| &table.columns[c][r]),
        }
    }

    /// The field names, in order.
    pub fn keys(self) -> Box<dyn Iterator<Item = &'a str> + 'a> {
        match self {
            Row::Object(map) => Box::new(map.keys().map(String::as_str)),
            Row::Column(table, _) => Box::new(table.names.iter().map(String::as_str)),
        }
    }
}

/// What a script emitted, by name in the order first emitted; the main result may be kept
/// by column ([`ResultTable`]), in which case `values` holds a null in its place.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(from = "Map<String, Value>")]
pub struct Results {
    values: Map<String, Value>,
    table: Option<ResultTable>,
    /// The table as row objects, made the first time the main result is asked for as a
    /// value ([`Results::get`]); the sweep's own readers use [`Results::main_rows`].
    #[serde(skip)]
    materialized: std::sync::OnceLock<Value>,
}

impl PartialEq for Results {
    fn eq(&self, other: &Self) -> bool {
        self.values == other.values && self.table == other.table
    }
}

impl Results {
    /// `values`, with `table` as the main result if given (it takes the main result's
    /// place, or the end if there is none).
    pub fn new(mut values: Map<String, Value>, table: Option<ResultTable>) -> Self {
        if table.is_some() && !values.contains_key(MAIN) {
            values.insert(MAIN.to_owned(), Value::Null);
        }
        Self { values, table, materialized: std::sync::OnceLock::new() }
    }

    /// The result emitted as `name`, as a JSON value.
    pub fn get(&self, name: &str) -> Option<&Value> {
        match &self.table {
            Some(table) if name == MAIN => Some(self.materialized.get_or_init(|| table.clone().into_value())),
            _ => self.values.get(name),
        }
    }

    /// The rows of the main result: the table's, or the row objects of a list.
    pub fn main_rows(&self) -> Box<dyn Iterator<Item = Row<'_>> + '_> {
        match &self.table {
            Some(table) => Box::new((0..table.rows).map(move |r| table.row(r))),
            None => Box::new(
                self.values
                    .get(MAIN)
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_object)
                    .map(Row::Object),
            ),
        }
    }

    /// The column names of the main result, when it is kept by column.
    pub fn table_names(&self) -> Option<&Arc<[String]>> {
        self.table.as_ref().map(ResultTable::names)
    }

    /// Drops everything.
    pub fn clear(&mut self) {
        *self = Self::default();
    }

    /// About what it costs the host while kept.
    pub fn cost(&self) -> usize {
        self.values.values().map(value_cost).sum::<usize>() + self.table.as_ref().map_or(0, ResultTable::cost)
    }

    /// Every result as a JSON value (the table as its row objects).
    pub fn into_map(self) -> Map<String, Value> {
        let Self { mut values, table, .. } = self;
        if let Some(table) = table {
            values.insert(MAIN.to_owned(), table.into_value());
        }
        values
    }
}

impl From<Map<String, Value>> for Results {
    fn from(values: Map<String, Value>) -> Self {
        Self::new(values, None)
    }
}

impl std::ops::Index<&str> for Results {
    type Output = Value;

    /// The result emitted as `name`; panics if there is none, as a map does.
    fn index(&self, name: &str) -> &Value {
        self.get(name).unwrap_or_else(|| panic!("no result named {name:?}"))
    }
}

impl Serialize for Results {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.values.len()))?;
        for (name, value) in &self.values {
            match &self.table {
                Some(table) if name == MAIN => map.serialize_entry(name, table)?,
                _ => map.serialize_entry(name, value)?,
            }
        }
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn names(list: &[&str]) -> Arc<[String]> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    fn table() -> ResultTable {
        ResultTable::new(
            names(&["property_name", "dscr", "note"]),
            vec![vec![json!("A"), json!("B")], vec![json!(1.5), Value::Null], vec![json!(null), json!("x")]],
            2,
        )
        .unwrap()
    }

    #[test]
    fn a_table_serializes_as_the_row_objects_it_stands_for() {
        let rows = json!([
            {"property_name": "A", "dscr": 1.5, "note": null},
            {"property_name": "B", "dscr": null, "note": "x"},
        ]);
        assert_eq!(serde_json::to_string(&table()).unwrap(), rows.to_string());
        assert_eq!(table().into_value(), rows);
        let mut values = Map::new();
        values.insert("before".into(), json!(1));
        values.insert(MAIN.into(), Value::Null);
        values.insert("after".into(), json!([2]));
        let results = Results::new(values, Some(table()));
        let expected = json!({"before": 1, "result": rows, "after": [2]});
        assert_eq!(serde_json::to_string(&results).unwrap(), expected.to_string());
        // Read back, the same results come as row objects, and read the same.
        let back: Results = serde_json::from_str(&serde_json::to_string(&results).unwrap()).unwrap();
        let read = |r: &Results| -> Vec<Vec<(String, Value)>> {
            r.main_rows().map(|row| row.keys().map(|k| (k.to_owned(), row.get(k).unwrap().clone())).collect()).collect()
        };
        assert_eq!(read(&back), read(&results));
        assert_eq!(back[MAIN], results[MAIN]);
        assert_eq!(results.get(MAIN), Some(&rows));
        assert_eq!(results.get("after"), Some(&json!([2])));
        assert_eq!(back.into_map(), results.clone().into_map());
        assert_eq!(results.into_map(), expected.as_object().unwrap().clone());
    }

    #[test]
    fn a_repeated_name_keeps_its_first_place_and_its_last_column_as_a_json_object_does() {
        let table =
            ResultTable::new(names(&["a", "b", "a"]), vec![vec![json!(1)], vec![json!(2)], vec![json!(3)]], 1).unwrap();
        let object: Value = serde_json::from_str(r#"[{"a": 1, "b": 2, "a": 3}]"#).unwrap();
        assert_eq!(table.clone().into_value(), object);
        assert_eq!(serde_json::to_value(&table).unwrap(), object);
        assert_eq!(table.row(0).keys().collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(table.row(0).get("a"), Some(&json!(3)));
        let wide: Vec<String> = (0..20).map(|i| format!("k{}", i % 19)).collect();
        let columns = (0..20).map(|i| vec![json!(i)]).collect();
        let wide = ResultTable::new(wide.into(), columns, 1).unwrap();
        assert_eq!(wide.names().len(), 19);
        assert_eq!(wide.row(0).get("k0"), Some(&json!(19)));
    }

    #[test]
    fn columns_that_do_not_line_up_are_refused() {
        assert!(ResultTable::new(names(&["a", "b"]), vec![vec![json!(1)]], 1).is_none());
        assert!(ResultTable::new(names(&["a", "b"]), vec![vec![json!(1)], vec![]], 1).is_none());
    }

    #[test]
    fn a_row_finds_a_field_as_the_map_would_in_small_rows_and_wide_ones() {
        for width in [1, 5, 16, 17, 40] {
            let row: Map<String, Value> = (0..width).map(|i| (format!("k{i}"), json!(i))).collect();
            for key in ["k0", "k4", "k15", "k16", "k39", "missing", ""] {
                assert_eq!(Row::Object(&row).get(key), row.get(key), "{key} in a row of {width}");
            }
        }
        assert_eq!(table().row(1).get("note"), Some(&json!("x")));
        assert_eq!(table().row(1).get("missing"), None);
    }
}
