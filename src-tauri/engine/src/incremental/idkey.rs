//! An order-preserving, reversible byte encoding of a document's `_id`.
//!
//! The incremental backup walks the collection (read with `sort({_id: 1})`) beside the local
//! index of the previous backup, and a restore merges a chain of backups, both in `_id` order.
//! Both walks compare `_id`s constantly, so each `_id` is turned once into an [`IdKey`]: bytes
//! whose `memcmp` order is exactly the server's order of `{_id: 1}` under the simple collation.
//! Then "smaller", "equal" and "greater" are byte comparisons, and the index stores the bytes
//! as they are.
//!
//! The encoding is a one-byte class tag followed by the value:
//!
//! | class | tag | value bytes |
//! |---|---:|---|
//! | numbers (int32, int64, integral doubles within ±2^53) | 10 | the integer as a big-endian `i64` with its sign bit flipped (8 bytes) |
//! | string | 15 | the UTF-8 bytes, each 0x00 written as 0x00 0xFF, then the terminator 0x00 0x00 |
//! | ObjectId | 35 | the 12 bytes |
//! | boolean | 40 | 0x00 (false) or 0x01 (true) |
//! | date | 45 | milliseconds since the epoch as a big-endian `i64` with its sign bit flipped |
//!
//! The tags are MongoDB's canonical type order (the server's `canonicalizeBSONType`: MinKey <
//! Null < Numbers < String/Symbol < Object < Array < BinData < ObjectId < Boolean < Date <
//! Timestamp < Regex < MaxKey), so values of different classes sort like the server sorts them.
//! Within a class:
//!
//! - **numbers** compare by value across types in MongoDB: `1`, `NumberLong(1)` and `1.0` are the
//!   same `_id` (a second insert of any of them is a duplicate key). Every int32 and int64 is
//!   exact as an `i64`; a double is accepted only when it is an integer within ±2^53, where the
//!   double is exact and equal to that `i64`, so comparing the `i64`s is the server's comparison.
//!   Other doubles (fractions, NaN, infinities, larger magnitudes) are not supported: their order
//!   against 64-bit integers would need more than 8 bytes to reproduce.
//! - **strings** under the simple collation compare by their UTF-8 bytes, a prefix first. The
//!   escape keeps that: a 0x00 inside the string becomes 0x00 0xFF, which sorts after the
//!   terminator 0x00 0x00, and any other byte is greater than 0x00.
//! - **ObjectIds** compare as their 12 bytes.
//!
//! Any other `_id` type returns [`IdKeyError::Unsupported`] naming the type: the caller then backs
//! that collection up in full, which is always correct, only larger.

use std::fmt;

use bson::oid::ObjectId;
use bson::spec::ElementType;
use bson::{Bson, RawBsonRef, RawDocument};

/// Tag of the numbers class (int32, int64 and integral doubles, compared by value).
const TAG_NUMBER: u8 = 10;
/// Tag of the string class.
const TAG_STRING: u8 = 15;
/// Tag of the ObjectId class.
const TAG_OBJECT_ID: u8 = 35;
/// Tag of the boolean class.
const TAG_BOOLEAN: u8 = 40;
/// Tag of the date class (BSON UTC datetime).
const TAG_DATE: u8 = 45;

/// 2^53: the largest magnitude up to which every integer is exactly a double.
const MAX_EXACT_DOUBLE: f64 = 9_007_199_254_740_992.0;

/// The sign bit of an `i64`, flipped so that the big-endian bytes of negative numbers sort first.
const SIGN_FLIP: u64 = 1 << 63;

/// Why an `_id` has no key, or a byte string is not a key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdKeyError {
    /// The document has no `_id` field. A document read from a collection always has one, so
    /// this only happens on documents that did not come from the server.
    #[error("the document has no _id")]
    MissingId,
    /// The `_id` is of a type (or a value) whose server order the key cannot reproduce. The
    /// caller backs the collection up in full instead.
    #[error("an _id of BSON type {bson_type}{detail} cannot be ordered like the server orders it")]
    Unsupported {
        /// The BSON type, by MongoDB's `$type` alias (`double`, `decimal`, `object`, ...).
        bson_type: &'static str,
        /// More about the value, when the type alone is supported (a double that is not an
        /// integer within ±2^53); empty otherwise.
        detail: &'static str,
    },
    /// The document's BSON could not be read up to its `_id`.
    #[error("the document's BSON is malformed: {0}")]
    Malformed(String),
    /// Bytes given as a key (read from an index file) are not a valid key.
    #[error("not a valid _id key: {0}")]
    InvalidKey(&'static str),
}

/// A document's `_id` as bytes whose `memcmp` order is the server's `{_id: 1}` order.
///
/// Two `_id`s the server considers equal (`1`, `NumberLong(1)`, `1.0`) have the same key. The
/// derived `Ord` is the byte order, so keys can be compared, sorted and stored as they are. A key
/// is only built from a supported `_id` ([`IdKey::from_document`], [`IdKey::from_raw`],
/// [`IdKey::from_bson`]) or from bytes that are checked to be one ([`IdKey::from_bytes`]).
#[derive(PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct IdKey(Vec<u8>);

impl Clone for IdKey {
    fn clone(&self) -> Self {
        IdKey(self.0.clone())
    }

    /// Reuses the allocation: the index walks keep "the previous key" this way without
    /// allocating for every document.
    fn clone_from(&mut self, source: &Self) {
        self.0.clone_from(&source.0);
    }
}

impl IdKey {
    /// The key of the `_id` of a raw document, as read from the server.
    ///
    /// Only the elements up to `_id` are read (the server writes `_id` first).
    pub fn from_document(raw: &RawDocument) -> Result<IdKey, IdKeyError> {
        match raw.get("_id") {
            Ok(Some(value)) => IdKey::from_raw(value),
            Ok(None) => Err(IdKeyError::MissingId),
            Err(e) => Err(IdKeyError::Malformed(e.to_string())),
        }
    }

    /// The key of one raw BSON value (an `_id`, or a deleted `_id` read back from an increment).
    pub fn from_raw(value: RawBsonRef<'_>) -> Result<IdKey, IdKeyError> {
        let id = match value {
            RawBsonRef::Int32(v) => IdValue::Number(i64::from(v)),
            RawBsonRef::Int64(v) => IdValue::Number(v),
            RawBsonRef::Double(v) => IdValue::Number(integral_double(v)?),
            RawBsonRef::String(s) => IdValue::String(s),
            RawBsonRef::ObjectId(oid) => IdValue::ObjectId(oid.bytes()),
            RawBsonRef::Boolean(b) => IdValue::Boolean(b),
            RawBsonRef::DateTime(d) => IdValue::Date(d.timestamp_millis()),
            other => return Err(unsupported(other.element_type())),
        };
        Ok(id.encode())
    }

    /// The key of a [`Bson`] value: the same key [`IdKey::from_raw`] gives for its bytes.
    pub fn from_bson(value: &Bson) -> Result<IdKey, IdKeyError> {
        let id = match value {
            Bson::Int32(v) => IdValue::Number(i64::from(*v)),
            Bson::Int64(v) => IdValue::Number(*v),
            Bson::Double(v) => IdValue::Number(integral_double(*v)?),
            Bson::String(s) => IdValue::String(s),
            Bson::ObjectId(oid) => IdValue::ObjectId(oid.bytes()),
            Bson::Boolean(b) => IdValue::Boolean(*b),
            Bson::DateTime(d) => IdValue::Date(d.timestamp_millis()),
            other => return Err(unsupported(other.element_type())),
        };
        Ok(id.encode())
    }

    /// Checks that `bytes` are a key as this module writes them (a known tag, the right length,
    /// a well-escaped UTF-8 string) and wraps them. Used for keys read back from an index file.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<IdKey, IdKeyError> {
        decode(&bytes)?;
        Ok(IdKey(bytes))
    }

    /// The key's bytes, as compared and stored.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The key's bytes, owned.
    pub fn into_bytes(self) -> Vec<u8> {
        self.0
    }

    /// The `_id` back as a BSON value, for a deletion (`deleteOne({_id: ...})`) or a message.
    ///
    /// Numbers come back as `Int32` when they fit in an `i32`, as `Int64` otherwise, whatever
    /// type the document had: the key keeps the value, not the type. That is enough to find the
    /// document again, because MongoDB matches numbers by value across types: a deletion by
    /// `{_id: NumberLong(1)}` matches a document whose `_id` is `1` or `1.0`. A restore writes
    /// documents from their own bytes, so their `_id` types are kept exactly.
    ///
    /// Fails only if the bytes are not a key, which [`IdKey::from_bytes`] already refuses, so
    /// the error is not expected in practice; it exists so that no input can panic.
    pub fn to_bson(&self) -> Result<Bson, IdKeyError> {
        Ok(match decode(&self.0)? {
            Decoded::Number(v) => match i32::try_from(v) {
                Ok(small) => Bson::Int32(small),
                Err(_) => Bson::Int64(v),
            },
            Decoded::String(s) => Bson::String(s),
            Decoded::ObjectId(b) => Bson::ObjectId(ObjectId::from_bytes(b)),
            Decoded::Boolean(b) => Bson::Boolean(b),
            Decoded::Date(ms) => Bson::DateTime(bson::DateTime::from_millis(ms)),
        })
    }
}

impl fmt::Debug for IdKey {
    /// Shows the decoded `_id` (`IdKey(Int32(5))`), which is what a test failure or a log needs;
    /// the bytes in hex if they are not a key.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.to_bson() {
            Ok(value) => write!(f, "IdKey({value:?})"),
            Err(_) => write!(f, "IdKey(0x{})", hex::encode(&self.0)),
        }
    }
}

impl fmt::Display for IdKey {
    /// The `_id` in Extended JSON-like notation (`ObjectId("...")`, `5`, `"abc"`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.to_bson() {
            Ok(value) => write!(f, "{value}"),
            Err(_) => write!(f, "0x{}", hex::encode(&self.0)),
        }
    }
}

/// A supported `_id`, borrowed, before encoding.
enum IdValue<'a> {
    Number(i64),
    String(&'a str),
    ObjectId([u8; 12]),
    Boolean(bool),
    Date(i64),
}

impl IdValue<'_> {
    fn encode(&self) -> IdKey {
        let mut out = Vec::with_capacity(16);
        match self {
            IdValue::Number(v) => {
                out.push(TAG_NUMBER);
                out.extend_from_slice(&flip(*v));
            }
            IdValue::String(s) => {
                out.reserve(s.len() + 2);
                out.push(TAG_STRING);
                for &b in s.as_bytes() {
                    out.push(b);
                    if b == 0 {
                        out.push(0xFF);
                    }
                }
                out.extend_from_slice(&[0, 0]);
            }
            IdValue::ObjectId(bytes) => {
                out.push(TAG_OBJECT_ID);
                out.extend_from_slice(bytes);
            }
            IdValue::Boolean(b) => {
                out.push(TAG_BOOLEAN);
                out.push(u8::from(*b));
            }
            IdValue::Date(ms) => {
                out.push(TAG_DATE);
                out.extend_from_slice(&flip(*ms));
            }
        }
        IdKey(out)
    }
}

/// A key decoded back to its value.
enum Decoded {
    Number(i64),
    String(String),
    ObjectId([u8; 12]),
    Boolean(bool),
    Date(i64),
}

/// Decodes (and so validates) key bytes.
fn decode(bytes: &[u8]) -> Result<Decoded, IdKeyError> {
    let (&tag, rest) = bytes
        .split_first()
        .ok_or(IdKeyError::InvalidKey("empty key"))?;
    match tag {
        TAG_NUMBER => Ok(Decoded::Number(unflip(rest)?)),
        TAG_DATE => Ok(Decoded::Date(unflip(rest)?)),
        TAG_OBJECT_ID => {
            let bytes: [u8; 12] = rest
                .try_into()
                .map_err(|_| IdKeyError::InvalidKey("an ObjectId key is not 12 bytes"))?;
            Ok(Decoded::ObjectId(bytes))
        }
        TAG_BOOLEAN => match rest {
            [0] => Ok(Decoded::Boolean(false)),
            [1] => Ok(Decoded::Boolean(true)),
            _ => Err(IdKeyError::InvalidKey("a boolean key is not 0 or 1")),
        },
        TAG_STRING => {
            let mut out = Vec::with_capacity(rest.len());
            let mut i = 0;
            loop {
                match rest.get(i) {
                    None => return Err(IdKeyError::InvalidKey("a string key has no terminator")),
                    Some(0) => match rest.get(i + 1) {
                        Some(0) if i + 2 == rest.len() => break,
                        Some(0) => {
                            return Err(IdKeyError::InvalidKey(
                                "a string key has bytes after its terminator",
                            ))
                        }
                        Some(0xFF) => {
                            out.push(0);
                            i += 2;
                        }
                        _ => return Err(IdKeyError::InvalidKey("a string key has a bad escape")),
                    },
                    Some(&b) => {
                        out.push(b);
                        i += 1;
                    }
                }
            }
            String::from_utf8(out)
                .map(Decoded::String)
                .map_err(|_| IdKeyError::InvalidKey("a string key is not UTF-8"))
        }
        _ => Err(IdKeyError::InvalidKey("unknown type tag")),
    }
}

/// The big-endian bytes of `v` with the sign bit flipped: `memcmp` order is numeric order.
fn flip(v: i64) -> [u8; 8] {
    ((v as u64) ^ SIGN_FLIP).to_be_bytes()
}

/// The inverse of [`flip`].
fn unflip(bytes: &[u8]) -> Result<i64, IdKeyError> {
    let bytes: [u8; 8] = bytes
        .try_into()
        .map_err(|_| IdKeyError::InvalidKey("a numeric key is not 8 bytes"))?;
    Ok((u64::from_be_bytes(bytes) ^ SIGN_FLIP) as i64)
}

/// The integer a double `_id` equals, if it is an integer within ±2^53 (`-0.0` is 0).
fn integral_double(v: f64) -> Result<i64, IdKeyError> {
    if v.is_finite() && v.fract() == 0.0 && v.abs() <= MAX_EXACT_DOUBLE {
        // Exact: an integral double of magnitude at most 2^53 is representable as an i64.
        Ok(v as i64)
    } else {
        Err(IdKeyError::Unsupported {
            bson_type: "double",
            detail: " (not an integer within ±2^53)",
        })
    }
}

fn unsupported(t: ElementType) -> IdKeyError {
    IdKeyError::Unsupported {
        bson_type: type_alias(t),
        detail: "",
    }
}

/// MongoDB's `$type` alias of a BSON type, the name a user sees in the shell.
fn type_alias(t: ElementType) -> &'static str {
    match t {
        ElementType::Double => "double",
        ElementType::String => "string",
        ElementType::EmbeddedDocument => "object",
        ElementType::Array => "array",
        ElementType::Binary => "binData",
        ElementType::Undefined => "undefined",
        ElementType::ObjectId => "objectId",
        ElementType::Boolean => "bool",
        ElementType::DateTime => "date",
        ElementType::Null => "null",
        ElementType::RegularExpression => "regex",
        ElementType::DbPointer => "dbPointer",
        ElementType::JavaScriptCode => "javascript",
        ElementType::Symbol => "symbol",
        ElementType::JavaScriptCodeWithScope => "javascriptWithScope",
        ElementType::Int32 => "int",
        ElementType::Timestamp => "timestamp",
        ElementType::Int64 => "long",
        ElementType::Decimal128 => "decimal",
        ElementType::MaxKey => "maxKey",
        ElementType::MinKey => "minKey",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cmp::Ordering;

    /// Compares two supported `_id` values through their keys.
    fn compare_ids(a: &Bson, b: &Bson) -> Option<Ordering> {
        Some(IdKey::from_bson(a).ok()?.cmp(&IdKey::from_bson(b).ok()?))
    }
    use bson::{doc, Binary, Decimal128, RawDocumentBuf};
    use rand::{Rng, SeedableRng};

    fn oid(hex: &str) -> Bson {
        Bson::ObjectId(ObjectId::parse_str(hex).expect("test ObjectId"))
    }

    fn key(v: &Bson) -> IdKey {
        IdKey::from_bson(v).unwrap_or_else(|e| panic!("{v:?}: {e}"))
    }

    fn raw_key(v: Bson) -> Result<IdKey, IdKeyError> {
        let raw = RawDocumentBuf::from_document(&doc! { "_id": v, "x": 1 }).expect("raw doc");
        IdKey::from_document(&raw)
    }

    /// `_id`s in the order `sort({_id: 1})` returns them, one group per distinct value; the
    /// values in a group are equal for the server (numbers across types).
    fn server_order() -> Vec<Vec<Bson>> {
        let two53 = 1_i64 << 53;
        vec![
            vec![Bson::Int64(i64::MIN)],
            vec![Bson::Int64(i64::MIN + 1)],
            vec![Bson::Int64(-two53 - 1)],
            vec![Bson::Int64(-two53), Bson::Double(-(two53 as f64))],
            vec![Bson::Int64(-two53 + 1), Bson::Double(-(two53 as f64) + 1.0)],
            vec![Bson::Int64(i64::from(i32::MIN) - 1)],
            vec![Bson::Int32(i32::MIN), Bson::Int64(i64::from(i32::MIN))],
            vec![Bson::Int32(-256)],
            vec![Bson::Int32(-255), Bson::Double(-255.0)],
            vec![Bson::Int32(-1), Bson::Int64(-1), Bson::Double(-1.0)],
            vec![
                Bson::Int32(0),
                Bson::Int64(0),
                Bson::Double(0.0),
                Bson::Double(-0.0),
            ],
            vec![Bson::Int32(1), Bson::Int64(1), Bson::Double(1.0)],
            vec![Bson::Int32(2)],
            vec![Bson::Int32(255)],
            vec![Bson::Int32(256), Bson::Double(256.0)],
            vec![Bson::Int32(i32::MAX), Bson::Int64(i64::from(i32::MAX))],
            vec![Bson::Int64(i64::from(i32::MAX) + 1)],
            vec![Bson::Int64(two53 - 1), Bson::Double(two53 as f64 - 1.0)],
            vec![Bson::Int64(two53), Bson::Double(two53 as f64)],
            vec![Bson::Int64(two53 + 1)],
            vec![Bson::Int64(i64::MAX - 1)],
            vec![Bson::Int64(i64::MAX)],
            // Strings: UTF-8 byte order, a prefix first; "\0" sorts before any other character
            // and after the end of the string.
            vec![Bson::String(String::new())],
            vec![Bson::String("\0".into())],
            vec![Bson::String("\0\0".into())],
            vec![Bson::String("\0a".into())],
            vec![Bson::String("\x01".into())],
            vec![Bson::String("A".into())],
            vec![Bson::String("Z".into())],
            vec![Bson::String("a".into())],
            vec![Bson::String("a\0".into())],
            vec![Bson::String("a\0b".into())],
            vec![Bson::String("a\x01".into())],
            vec![Bson::String("ab".into())],
            vec![Bson::String("abc".into())],
            vec![Bson::String("b".into())],
            vec![Bson::String("\x7f".into())],
            vec![Bson::String("é".into())],        // C3 A9
            vec![Bson::String("éa".into())],       // C3 A9 61
            vec![Bson::String("€".into())],        // E2 82 AC
            vec![Bson::String("\u{FFFF}".into())], // EF BF BF
            vec![Bson::String("😀".into())],       // F0 9F 98 80: after U+FFFF in UTF-8 order
            vec![Bson::String("\u{10FFFF}".into())],
            vec![oid("000000000000000000000000")],
            vec![oid("000000000000000000000001")],
            vec![oid("00000000000000000000ff00")],
            vec![oid("65a000000000000000000000")],
            vec![oid("65a0000000000000000000ff")],
            vec![oid("65a100000000000000000000")],
            vec![oid("ffffffffffffffffffffffff")],
            vec![Bson::Boolean(false)],
            vec![Bson::Boolean(true)],
            vec![Bson::DateTime(bson::DateTime::from_millis(i64::MIN))],
            vec![Bson::DateTime(bson::DateTime::from_millis(-1))],
            vec![Bson::DateTime(bson::DateTime::from_millis(0))],
            vec![Bson::DateTime(bson::DateTime::from_millis(
                1_700_000_000_000,
            ))],
            vec![Bson::DateTime(bson::DateTime::from_millis(i64::MAX))],
        ]
    }

    #[test]
    fn keys_sort_like_the_server_across_every_supported_type() {
        let groups = server_order();
        let keys: Vec<Vec<IdKey>> = groups.iter().map(|g| g.iter().map(key).collect()).collect();
        for (g, group) in keys.iter().enumerate() {
            for k in group {
                assert_eq!(k, &group[0], "equal for the server: {:?}", groups[g]);
            }
        }
        for (i, (ki, gi)) in keys.iter().zip(&groups).enumerate() {
            for (j, (kj, gj)) in keys.iter().zip(&groups).enumerate() {
                assert_eq!(ki[0].cmp(&kj[0]), i.cmp(&j), "{:?} vs {:?}", gi[0], gj[0]);
                assert_eq!(compare_ids(&gi[0], &gj[0]), Some(i.cmp(&j)));
            }
        }
    }

    #[test]
    fn raw_and_bson_values_give_the_same_key() {
        for group in server_order() {
            for v in group {
                assert_eq!(raw_key(v.clone()), Ok(key(&v)), "{v:?}");
            }
        }
    }

    #[test]
    fn keys_decode_back_to_their_value() {
        for group in server_order() {
            for v in group {
                let k = key(&v);
                let back = k.to_bson().expect("decodes");
                // Numbers come back as Int32 when they fit, Int64 otherwise.
                let expected = match v {
                    Bson::Int32(_) | Bson::Int64(_) | Bson::Double(_) => {
                        let n = match v {
                            Bson::Int32(n) => i64::from(n),
                            Bson::Int64(n) => n,
                            Bson::Double(d) => d as i64,
                            _ => unreachable!(),
                        };
                        match i32::try_from(n) {
                            Ok(s) => Bson::Int32(s),
                            Err(_) => Bson::Int64(n),
                        }
                    }
                    other => other,
                };
                assert_eq!(back, expected);
                assert_eq!(key(&back), k, "re-encoding gives the same key");
                let again = IdKey::from_bytes(k.as_bytes().to_vec()).expect("valid bytes");
                assert_eq!(again, k);
            }
        }
    }

    #[test]
    fn integers_compare_by_value_at_random() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(0x1d_4e7);
        for _ in 0..20_000 {
            let a: i64 = match rng.gen_range(0..3) {
                0 => rng.gen(),
                1 => rng.gen_range(-1000..1000),
                _ => rng.gen_range(-(1 << 53)..=(1 << 53)),
            };
            let b: i64 = if rng.gen_bool(0.1) {
                a
            } else {
                rng.gen_range(-1000..1000)
            };
            assert_eq!(
                key(&Bson::Int64(a)).cmp(&key(&Bson::Int64(b))),
                a.cmp(&b),
                "{a} vs {b}"
            );
            if a.abs() <= 1 << 53 {
                assert_eq!(key(&Bson::Double(a as f64)), key(&Bson::Int64(a)));
            }
        }
    }

    #[test]
    fn strings_compare_by_utf8_bytes_at_random() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let alphabet = ['\0', '\x01', 'a', 'b', 'é', '€', '\u{FFFF}', '😀'];
        let make = |rng: &mut rand::rngs::StdRng| -> String {
            let n = rng.gen_range(0..5);
            (0..n)
                .map(|_| alphabet[rng.gen_range(0..alphabet.len())])
                .collect()
        };
        for _ in 0..20_000 {
            let a = make(&mut rng);
            let b = make(&mut rng);
            assert_eq!(
                key(&Bson::String(a.clone())).cmp(&key(&Bson::String(b.clone()))),
                a.as_bytes().cmp(b.as_bytes()),
                "{a:?} vs {b:?}"
            );
        }
    }

    #[test]
    fn unsupported_id_types_are_named() {
        let cases: Vec<(Bson, &str)> = vec![
            (Bson::Double(1.5), "double"),
            (Bson::Double(f64::NAN), "double"),
            (Bson::Double(f64::INFINITY), "double"),
            (Bson::Double(2f64.powi(53) + 2.0), "double"),
            (Bson::Double(-(2f64.powi(60))), "double"),
            (Bson::Decimal128(Decimal128::from_bytes([0; 16])), "decimal"),
            (Bson::Document(doc! { "a": 1 }), "object"),
            (Bson::Array(vec![Bson::Int32(1)]), "array"),
            (
                Bson::Binary(Binary {
                    subtype: bson::spec::BinarySubtype::Generic,
                    bytes: vec![1, 2],
                }),
                "binData",
            ),
            (Bson::Null, "null"),
            (Bson::MinKey, "minKey"),
            (Bson::MaxKey, "maxKey"),
            (Bson::Symbol("s".into()), "symbol"),
            (
                Bson::Timestamp(bson::Timestamp {
                    time: 1,
                    increment: 2,
                }),
                "timestamp",
            ),
        ];
        for (v, name) in cases {
            for result in [IdKey::from_bson(&v), raw_key(v.clone())] {
                match result {
                    Err(IdKeyError::Unsupported { bson_type, .. }) => {
                        assert_eq!(bson_type, name, "{v:?}")
                    }
                    other => panic!("{v:?}: {other:?}"),
                }
            }
            let message = IdKey::from_bson(&v).expect_err("unsupported").to_string();
            assert!(message.contains(name), "{message}");
        }
    }

    #[test]
    fn a_document_without_id_or_with_malformed_bson_is_refused() {
        let raw = RawDocumentBuf::from_document(&doc! { "x": 1 }).expect("raw");
        assert_eq!(IdKey::from_document(&raw), Err(IdKeyError::MissingId));

        // A document whose length prefix claims more bytes than there are, after a valid
        // first element: `RawDocument::from_bytes` checks only the frame, `get` finds the rest.
        let mut bytes = RawDocumentBuf::from_document(&doc! { "x": 1, "_id": "abc" })
            .expect("raw")
            .into_bytes();
        // Make the string's length prefix point past the end.
        let at = bytes.len() - 1 - 4 - 4; // terminator, "abc\0", the length
        bytes[at..at + 4].copy_from_slice(&100_i32.to_le_bytes());
        let raw = RawDocument::from_bytes(&bytes).expect("frame is fine");
        assert!(matches!(
            IdKey::from_document(raw),
            Err(IdKeyError::Malformed(_))
        ));
    }

    #[test]
    fn invalid_key_bytes_are_refused() {
        let cases: Vec<Vec<u8>> = vec![
            vec![],
            vec![99],
            vec![TAG_NUMBER, 1, 2, 3],
            vec![TAG_NUMBER, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            vec![TAG_DATE],
            vec![TAG_OBJECT_ID, 1, 2],
            vec![TAG_BOOLEAN, 2],
            vec![TAG_BOOLEAN],
            vec![TAG_STRING],
            vec![TAG_STRING, b'a'],
            vec![TAG_STRING, b'a', 0],
            vec![TAG_STRING, b'a', 0, 1],
            vec![TAG_STRING, 0, 0, b'a'],
            vec![TAG_STRING, 0, 0, 0, 0],
            vec![TAG_STRING, 0xC3, 0, 0], // a lone UTF-8 lead byte
        ];
        for bytes in cases {
            assert!(
                matches!(
                    IdKey::from_bytes(bytes.clone()),
                    Err(IdKeyError::InvalidKey(_))
                ),
                "{bytes:?}"
            );
            // Debug and Display of such bytes never panic.
            let k = IdKey(bytes);
            assert!(format!("{k:?} {k}").contains("0x"));
        }
    }

    #[test]
    fn encoding_is_as_documented() {
        assert_eq!(
            key(&Bson::Int32(1)).as_bytes(),
            &[TAG_NUMBER, 0x80, 0, 0, 0, 0, 0, 0, 1]
        );
        assert_eq!(
            key(&Bson::Int32(-1)).as_bytes(),
            &[TAG_NUMBER, 0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF]
        );
        assert_eq!(
            key(&Bson::String("a\0".into())).as_bytes(),
            &[TAG_STRING, b'a', 0, 0xFF, 0, 0]
        );
        assert_eq!(
            key(&Bson::String(String::new())).as_bytes(),
            &[TAG_STRING, 0, 0]
        );
        assert_eq!(key(&Bson::Boolean(true)).as_bytes(), &[TAG_BOOLEAN, 1]);
        let o = key(&oid("65a0000000000000000000ff"));
        assert_eq!(o.as_bytes().len(), 13);
        assert_eq!(o.as_bytes()[0], TAG_OBJECT_ID);
        assert_eq!(format!("{:?}", key(&Bson::Int64(7))), "IdKey(Int32(7))");
    }
}
