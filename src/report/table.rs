//! Which results are tables: a list of row objects, or an object of plain values. The
//! terminal, CSV and XLSX outputs all show the same results as the same tables.

use serde_json::Value;

/// A result laid out as a table.
#[derive(Debug, Clone, PartialEq)]
pub struct Tabular {
    /// Column names: the rows' keys in first-seen order, or `key`, `value`.
    pub columns: Vec<String>,
    /// One cell per column; `null` where a row lacks a key.
    pub rows: Vec<Vec<Value>>,
}

/// `value` as a table, when it is one: a non-empty list of objects, or a non-empty object
/// whose values are all plain (neither objects nor lists).
pub fn tabular(value: &Value) -> Option<Tabular> {
    match value {
        Value::Array(items) if !items.is_empty() && items.iter().all(Value::is_object) => {
            let objects: Vec<_> = items.iter().filter_map(Value::as_object).collect();
            let mut columns: Vec<String> = Vec::new();
            for key in objects.iter().flat_map(|o| o.keys()) {
                if !columns.contains(key) {
                    columns.push(key.clone());
                }
            }
            let rows = objects
                .iter()
                .map(|o| columns.iter().map(|c| o.get(c).cloned().unwrap_or(Value::Null)).collect())
                .collect();
            Some(Tabular { columns, rows })
        }
        Value::Object(map) if !map.is_empty() && map.values().all(|v| !v.is_object() && !v.is_array()) => {
            let rows = map.iter().map(|(k, v)| vec![Value::String(k.clone()), v.clone()]).collect();
            Some(Tabular { columns: vec!["key".into(), "value".into()], rows })
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rows_objects_and_everything_else() {
        let rows = tabular(&json!([{"a": 1}, {"b": 2, "a": 3}])).unwrap();
        assert_eq!(rows.columns, ["a", "b"]);
        assert_eq!(rows.rows, [vec![json!(1), Value::Null], vec![json!(3), json!(2)]]);
        let pairs = tabular(&json!({"n": 2, "s": "x"})).unwrap();
        assert_eq!((pairs.columns.len(), pairs.rows[1].clone()), (2, vec![json!("s"), json!("x")]));
        for other in [json!([]), json!({}), json!([1, 2]), json!({"nested": {"a": 1}}), json!(3)] {
            assert!(tabular(&other).is_none(), "{other}");
        }
    }
}
