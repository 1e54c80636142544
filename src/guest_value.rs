//! Values a guest hands the host through the runtime's interface (`emit`'s value, a
//! query's parameters): one JSON text per call, decoded under the job's host memory
//! budget.
//!
//! The text is already in the host's memory (the guest's bytes, copied out by the call);
//! what the decoded tree would add is estimated from the text's punctuation and charged
//! before a single value is built, so a guest cannot make the host build a tree its budget
//! does not cover.

use serde_json::Value;

use crate::budget::{BudgetExceeded, Reservation};

/// The most values one text may decode to, whatever the budget: past that the guest is
/// sending something no result needs.
pub const MAX_VALUES: usize = 8_000_000;
/// What a value costs the host where it sits in an array (`size_of::<Value>()`).
pub const VALUE_BYTES: usize = 32;
/// What an object entry costs the host beyond its key's text: the value, the key's
/// `String`, the hash and the index of an insertion-ordered map.
pub const ENTRY_BYTES: usize = 80;

/// Why a guest's value was not taken.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// Not JSON (the guest library always sends JSON; something else called the
    /// interface).
    #[error("malformed JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// More values than any result needs.
    #[error("a value of more than {MAX_VALUES} items")]
    TooManyValues,
    /// Decoding it would take the host past the job's memory budget.
    #[error("{0}")]
    Budget(#[from] BudgetExceeded),
}

/// Decodes `text`, first charging what the decoded value will cost to `held`.
pub fn decode(text: &str, held: &mut Reservation) -> Result<Value, DecodeError> {
    let (values, entries) = json_shape(text.as_bytes());
    if values > MAX_VALUES {
        return Err(DecodeError::TooManyValues);
    }
    let cost = values.saturating_mul(VALUE_BYTES).saturating_add(entries.saturating_mul(ENTRY_BYTES));
    held.grow(cost.saturating_add(text.len()), "a value from the script")?;
    // serde_json stops at 128 levels of nesting: no deep value can exhaust the stack.
    Ok(serde_json::from_str(text)?)
}

/// About what `value` costs the host in memory, by the same measure `decode` charges.
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::budget::HostBudget;

    #[test]
    fn values_are_charged_before_they_are_parsed() {
        let text = format!("[{}0]", "0,".repeat(100_000));
        let budget = HostBudget::new(1 << 20);
        let err = decode(&text, &mut budget.empty()).unwrap_err();
        assert!(matches!(err, DecodeError::Budget(_)), "{err}");
        assert_eq!(budget.peak(), 0, "refused before anything was held");
        let budget = HostBudget::new(64 << 20);
        let mut held = budget.empty();
        let value = decode(&text, &mut held).unwrap();
        assert_eq!(value.as_array().map(Vec::len), Some(100_001));
        assert!(held.bytes() >= value_cost(&value), "the charge covers the value");
    }

    #[test]
    fn the_charge_bounds_what_is_built() {
        for text in [r#"{"a":[1,2,{"b":"xyz"}],"c":null}"#, r#""text""#, "[[[[]]]]", r#"{"k\"":","}"#] {
            let budget = HostBudget::new(1 << 20);
            let mut held = budget.empty();
            let value = decode(text, &mut held).unwrap();
            assert!(held.bytes() >= value_cost(&value), "{text}: held {} < cost {}", held.bytes(), value_cost(&value));
        }
    }

    #[test]
    fn deep_nesting_and_garbage_are_errors_not_crashes() {
        let budget = HostBudget::new(64 << 20);
        let deep = "[".repeat(100_000);
        assert!(matches!(decode(&deep, &mut budget.empty()), Err(DecodeError::Json(_))));
        assert!(matches!(decode("{not json", &mut budget.empty()), Err(DecodeError::Json(_))));
        assert!(matches!(decode(&",".repeat(MAX_VALUES + 1), &mut budget.empty()), Err(DecodeError::TooManyValues)));
    }
}
