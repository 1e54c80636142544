//! Reads the guest's binary frames: CPython's `marshal` format (version 4), as written by
//! the pinned interpreter's `marshal.dumps`, into JSON values.
//!
//! The guest library encodes frames with `marshal` because it is several times faster
//! than JSON in the sandbox: floats travel as their eight bytes instead of through the
//! interpreter's shortest-repr printer, which dominates encoding a table of numbers.
//! Values map as JSON encoding maps them on the guest side: tuples, sets and lists become
//! arrays, dict keys become strings, non-finite floats become null, bytes become text.
//! Only code objects have no JSON form; a frame holding one is refused.
//!
//! Input is untrusted: every length is checked against the bytes left before anything is
//! allocated, nesting is bounded (as serde_json bounds the JSON frames), and so is what
//! the decoded value costs the host: every container, string and copied back-reference is
//! charged to the job's [`HostBudget`](crate::budget::HostBudget) before it is built, so
//! a small frame whose back-references expand exponentially is refused, not expanded.

use serde_json::{Map, Number, Value};

use crate::budget::{BudgetExceeded, Reservation};

/// Containers nested deeper than this are refused (serde_json's own limit for JSON).
const MAX_DEPTH: usize = 128;
/// The most values one frame may hold. A 10,000-row table of 50 columns is 500,000.
pub const MAX_VALUES: usize = 8_000_000;
/// What a value costs the host where it sits in an array (`size_of::<Value>()`).
pub const VALUE_BYTES: usize = 32;
/// What an object entry costs the host beyond its key's text: the value, the key's
/// `String`, the hash and the index of an insertion-ordered map.
pub const ENTRY_BYTES: usize = 80;

/// Set on a type byte when the object is added to the reference table.
const FLAG_REF: u8 = 0x80;

/// Why a binary frame could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MarshalError {
    /// The frame ends inside a value.
    #[error("the frame ends in the middle of a value")]
    Truncated,
    /// A type byte this reader does not know.
    #[error("unknown type code {0:#04x} at byte {1}")]
    UnknownType(u8, usize),
    /// A code object (it has no JSON form).
    #[error("a code object cannot be sent as a result")]
    Code,
    /// Nesting past [`MAX_DEPTH`].
    #[error("values nested more than {MAX_DEPTH} levels deep")]
    TooDeep,
    /// A back-reference to an object that was never defined.
    #[error("a reference to object {0}, which was never defined")]
    BadReference(u32),
    /// Bytes after the value.
    #[error("{0} stray bytes after the value")]
    Trailing(usize),
    /// More than [`MAX_VALUES`] values.
    #[error("a frame holding more than {MAX_VALUES} values")]
    TooManyValues,
    /// Building the value would take the host past the job's memory budget.
    #[error("{0}")]
    Budget(BudgetExceeded),
}

/// Decodes one marshalled value that fills all of `data`, charging what it builds to
/// `held` (which keeps it for as long as the value is kept).
pub fn decode(data: &[u8], held: &mut Reservation) -> Result<Value, MarshalError> {
    let mut reader = Reader { data, pos: 0, refs: Vec::new(), depth: 0, held, values: 0 };
    reader.charge(VALUE_BYTES)?;
    let value = reader.value()?;
    match data.len() - reader.pos {
        0 => Ok(value),
        extra => Err(MarshalError::Trailing(extra)),
    }
}

struct Reader<'a, 'b> {
    data: &'a [u8],
    pos: usize,
    /// Objects flagged for reuse, in order, with what each cost to build; `None` while a
    /// container is being filled.
    refs: Vec<Option<(Value, usize)>>,
    depth: usize,
    held: &'b mut Reservation,
    values: usize,
}

impl Reader<'_, '_> {
    fn charge(&mut self, bytes: usize) -> Result<(), MarshalError> {
        self.held.grow(bytes, "a frame's decoded values").map_err(MarshalError::Budget)
    }

    fn take(&mut self, n: usize) -> Result<&[u8], MarshalError> {
        let end = self.pos.checked_add(n).filter(|&end| end <= self.data.len()).ok_or(MarshalError::Truncated)?;
        let bytes = &self.data[self.pos..end];
        self.pos = end;
        Ok(bytes)
    }

    fn byte(&mut self) -> Result<u8, MarshalError> {
        Ok(self.take(1)?[0])
    }

    fn i32(&mut self) -> Result<i32, MarshalError> {
        let bytes = self.take(4)?;
        Ok(i32::from_le_bytes(bytes.try_into().expect("four bytes")))
    }

    fn f64(&mut self) -> Result<f64, MarshalError> {
        let bytes = self.take(8)?;
        Ok(f64::from_le_bytes(bytes.try_into().expect("eight bytes")))
    }

    /// A count of items still to come, each at least `min_size` bytes: a count that
    /// could not fit in the rest of the frame is a truncated frame, found before any
    /// allocation.
    fn count(&mut self, min_size: usize) -> Result<usize, MarshalError> {
        let n = self.i32()?;
        let n = usize::try_from(n).map_err(|_| MarshalError::Truncated)?;
        if n.saturating_mul(min_size) > self.data.len() - self.pos {
            return Err(MarshalError::Truncated);
        }
        Ok(n)
    }

    fn text(&mut self, len: usize) -> Result<Value, MarshalError> {
        // Lossy decoding at most triples invalid bytes (each becomes U+FFFD).
        self.charge(len)?;
        Ok(Value::String(String::from_utf8_lossy(self.take(len)?).into_owned()))
    }

    fn value(&mut self) -> Result<Value, MarshalError> {
        let at = self.pos;
        self.values += 1;
        if self.values > MAX_VALUES {
            return Err(MarshalError::TooManyValues);
        }
        let code = self.byte()?;
        let flagged = code & FLAG_REF != 0;
        let code = code & !FLAG_REF;
        if code == b'r' {
            let index = self.i32()? as u32;
            return match self.refs.get(index as usize) {
                // JSON has no shared values: a reference is a copy, charged as one
                // before it is made.
                Some(Some((_, cost))) => {
                    let cost = *cost;
                    self.charge(cost)?;
                    self.values = self.values.saturating_add(cost / VALUE_BYTES);
                    if self.values > MAX_VALUES {
                        return Err(MarshalError::TooManyValues);
                    }
                    Ok(self.refs[index as usize].as_ref().map_or(Value::Null, |(value, _)| value.clone()))
                }
                // A container referring to itself: JSON cannot say that.
                Some(None) => Ok(Value::Null),
                None => Err(MarshalError::BadReference(index)),
            };
        }
        // A flagged object takes its slot before its contents are read, as CPython
        // numbers them: references inside it count from after it.
        let slot = flagged.then(|| {
            self.refs.push(None);
            self.refs.len() - 1
        });
        let before = self.held.bytes();
        let value = match code {
            b'N' => Value::Null,
            b'F' => Value::Bool(false),
            b'T' => Value::Bool(true),
            b'S' => Value::String("StopIteration".into()),
            b'.' => Value::String("Ellipsis".into()),
            b'i' => Value::from(self.i32()?),
            b'l' => self.long()?,
            b'g' => float(self.f64()?),
            b'f' => {
                let len = self.byte()? as usize;
                let text = String::from_utf8_lossy(self.take(len)?).into_owned();
                float(text.parse().unwrap_or(f64::NAN))
            }
            b'y' => {
                let (re, im) = (self.f64()?, self.f64()?);
                Value::String(complex_text(re, im))
            }
            b'x' => {
                let len = self.byte()? as usize;
                let re = String::from_utf8_lossy(self.take(len)?).into_owned();
                let len = self.byte()? as usize;
                let im = String::from_utf8_lossy(self.take(len)?).into_owned();
                Value::String(complex_text(re.parse().unwrap_or(f64::NAN), im.parse().unwrap_or(f64::NAN)))
            }
            b'u' | b't' | b'a' | b'A' | b's' => {
                let len = self.count(1)?;
                self.text(len)?
            }
            b'z' | b'Z' => {
                let len = self.byte()? as usize;
                self.text(len)?
            }
            b'(' | b'[' | b'<' | b'>' => {
                let n = self.count(1)?;
                self.array(n)?
            }
            b')' => {
                let n = self.byte()? as usize;
                self.array(n)?
            }
            b'{' => self.dict()?,
            b'c' => return Err(MarshalError::Code),
            other => return Err(MarshalError::UnknownType(other, at)),
        };
        if let Some(slot) = slot {
            // What the value cost (at least one slot), charged again for the copy kept
            // in the table.
            let cost = (self.held.bytes() - before).max(VALUE_BYTES);
            self.charge(cost)?;
            self.refs[slot] = Some((value.clone(), cost));
        }
        Ok(value)
    }

    fn nested<T>(&mut self, read: impl FnOnce(&mut Self) -> Result<T, MarshalError>) -> Result<T, MarshalError> {
        if self.depth >= MAX_DEPTH {
            return Err(MarshalError::TooDeep);
        }
        self.depth += 1;
        let result = read(self);
        self.depth -= 1;
        result
    }

    fn array(&mut self, n: usize) -> Result<Value, MarshalError> {
        self.charge(n.saturating_mul(VALUE_BYTES))?;
        self.nested(|reader| {
            let mut items = Vec::with_capacity(n);
            for _ in 0..n {
                items.push(reader.value()?);
            }
            Ok(Value::Array(items))
        })
    }

    fn dict(&mut self) -> Result<Value, MarshalError> {
        self.nested(|reader| {
            let mut map = Map::new();
            loop {
                if reader.data.get(reader.pos) == Some(&b'0') {
                    reader.pos += 1;
                    return Ok(Value::Object(map));
                }
                reader.charge(ENTRY_BYTES)?;
                let key = key_text(reader.value()?);
                let value = reader.value()?;
                map.insert(key, value);
            }
        })
    }

    /// An arbitrary-size int: a signed count of 15-bit digits, least significant first.
    /// Ints past 64 bits become floats, as serde_json reads such JSON numbers.
    fn long(&mut self) -> Result<Value, MarshalError> {
        let n = self.i32()?;
        let negative = n < 0;
        let digits = n.unsigned_abs() as usize;
        if digits.saturating_mul(2) > self.data.len() - self.pos {
            return Err(MarshalError::Truncated);
        }
        let mut exact: Option<u128> = Some(0);
        let mut approx = 0.0f64;
        for i in 0..digits {
            let bytes = self.take(2)?;
            let digit = u16::from_le_bytes([bytes[0], bytes[1]]) as u128;
            let shift = 15 * i as u32;
            exact = exact.and_then(|acc| digit.checked_shl(shift).filter(|_| shift < 128 - 15).map(|d| acc | d));
            approx += digit as f64 * 2f64.powi(shift as i32);
        }
        let value = match exact {
            Some(magnitude) if !negative => u64::try_from(magnitude).ok().map(Value::from),
            Some(magnitude) => i64::try_from(magnitude).ok().map(|m| Value::from(-m)).or_else(|| {
                // i64::MIN's magnitude does not fit in i64 itself.
                (magnitude == 1u128 << 63).then(|| Value::from(i64::MIN))
            }),
            None => None,
        };
        Ok(value.unwrap_or_else(|| float(if negative { -approx } else { approx })))
    }
}

/// A float as JSON: null when not finite, as the guest's JSON encoder writes it.
fn float(x: f64) -> Value {
    Number::from_f64(x).map_or(Value::Null, Value::Number)
}

fn complex_text(re: f64, im: f64) -> String {
    let sign = if im.is_sign_negative() { '-' } else { '+' };
    format!("({re}{sign}{}j)", im.abs())
}

/// A dict key as JSON wants it: a string, as Python's JSON encoder converts keys.
fn key_text(key: Value) -> String {
    match key {
        Value::String(s) => s,
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::budget::HostBudget;
    use serde_json::json;

    fn decode(data: &[u8]) -> Result<Value, MarshalError> {
        super::decode(data, &mut HostBudget::new(1 << 30).empty())
    }

    /// `marshal.dumps({"op": "result", "id": 1, "value": [1.5, None, True]})` as CPython
    /// writes it: interned keys flagged for reuse, short ASCII strings, a binary float.
    const RESULT_FRAME: &[u8] = b"{\xda\x02op\xda\x06result\xda\x02id\xe9\x01\x00\x00\x00\xda\x05value[\x03\x00\x00\x00\xe7\x00\x00\x00\x00\x00\x00\xf8?NT0";

    #[test]
    fn reads_a_frame_as_python_writes_it() {
        let value = decode(RESULT_FRAME).unwrap();
        assert_eq!(value, json!({"op": "result", "id": 1, "value": [1.5, null, true]}));
    }

    #[test]
    fn back_references_repeat_the_object() {
        // s = "ab"; marshal.dumps([s, s]): the string is object 0, then referred to.
        assert_eq!(decode(b"[\x02\x00\x00\x00\xda\x02abr\x00\x00\x00\x00").unwrap(), json!(["ab", "ab"]));
        assert_eq!(decode(b"r\x05\x00\x00\x00"), Err(MarshalError::BadReference(5)));
        // A list containing itself: the inner reference has no JSON form.
        assert_eq!(decode(b"\xdb\x01\x00\x00\x00r\x00\x00\x00\x00").unwrap(), json!([null]));
    }

    #[test]
    fn big_ints_negative_ints_and_special_floats() {
        // 2**40 = digits [0, 0, 1024] in base 2**15.
        assert_eq!(decode(b"\xec\x03\x00\x00\x00\x00\x00\x00\x00\x00\x04").unwrap(), json!(1u64 << 40));
        assert_eq!(decode(b"\xec\xfd\xff\xff\xff\x00\x00\x00\x00\x00\x04").unwrap(), json!(-(1i64 << 40)));
        assert_eq!(decode(b"i\xff\xff\xff\xff").unwrap(), json!(-1));
        // 2**90 does not fit 64 bits: a float, as serde_json reads the JSON number.
        let mut big = b"l\x07\x00\x00\x00".to_vec();
        big.extend([0u8; 12]);
        big.extend(1u16.to_le_bytes());
        assert_eq!(decode(&big).unwrap(), json!(2f64.powi(90)));
        let nan = [b"g".as_slice(), &f64::NAN.to_le_bytes()].concat();
        assert_eq!(decode(&nan).unwrap(), Value::Null);
    }

    #[test]
    fn keys_become_strings_and_containers_become_arrays() {
        // {1: (True,), None: frozenset()}
        let data = b"{\xe9\x01\x00\x00\x00\xa9\x01TN>\x00\x00\x00\x000";
        assert_eq!(decode(data).unwrap(), json!({"1": [true], "null": []}));
    }

    #[test]
    fn hostile_input_is_refused_without_allocating() {
        assert_eq!(decode(b"[\xff\xff\xff\x7f"), Err(MarshalError::Truncated));
        assert_eq!(decode(b"l\xff\xff\xff\x7f"), Err(MarshalError::Truncated));
        assert_eq!(decode(b"u\x10\x00\x00\x00abc"), Err(MarshalError::Truncated));
        assert_eq!(decode(b"{"), Err(MarshalError::Truncated));
        assert_eq!(decode(b"NN"), Err(MarshalError::Trailing(1)));
        assert_eq!(decode(b"c"), Err(MarshalError::Code));
        assert_eq!(decode(b"Q"), Err(MarshalError::UnknownType(b'Q', 0)));
        let deep = [[b'[', 1, 0, 0, 0]; 200].concat();
        assert_eq!(decode(&deep), Err(MarshalError::TooDeep));
    }

    #[test]
    fn shared_references_are_charged_as_copies_and_refused_past_the_budget() {
        // a = [0]; 40 times: a = [a, a] — 410 bytes that expand to 2**40 values.
        let mut data = Vec::new();
        for _ in 0..40 {
            data.extend(b"\xdb\x02\x00\x00\x00");
        }
        data.extend(b"\xdb\x01\x00\x00\x00\xe9\x00\x00\x00\x00");
        // Each level's second item refers back to its first.
        for level in (1..=40u32).rev() {
            data.push(b'r');
            data.extend(level.to_le_bytes());
        }
        let budget = HostBudget::new(64 << 20);
        let mut held = budget.empty();
        let err = super::decode(&data, &mut held).unwrap_err();
        assert!(matches!(err, MarshalError::Budget(_) | MarshalError::TooManyValues), "{err:?}");
        drop(held);
        assert_eq!(budget.used(), 0);
        assert!(budget.peak() <= 64 << 20);
    }

    #[test]
    fn a_long_list_is_refused_before_it_is_allocated() {
        // [None] * 60_000_000 as marshal writes it: 60 MB of 'N'.
        let n = 60_000_000usize;
        let mut data = vec![b'['];
        data.extend((n as u32).to_le_bytes());
        data.resize(5 + n, b'N');
        let budget = HostBudget::new(1 << 30);
        let err = super::decode(&data, &mut budget.empty()).unwrap_err();
        assert!(matches!(err, MarshalError::Budget(_)), "{err:?}");
        // Nothing was built: the array's slots were asked for first.
        assert!(budget.peak() < 1 << 20, "{}", budget.peak());
    }
}
