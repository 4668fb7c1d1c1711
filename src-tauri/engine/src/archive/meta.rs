//! The archive's small BSON documents: the header, the per-namespace prelude entries (with their
//! Extended JSON collection metadata) and the namespace headers that open segments and end namespaces.

use bson::raw::RawBsonRef;
use bson::{doc, Bson, Document, RawDocument};
use serde_json::{Map, Value};

use super::ArchiveError;

/// The archive header: the BSON document right after the magic number.
#[derive(Clone, Debug, PartialEq)]
pub struct Header {
    /// How many collections the dumper wrote concurrently (mongorestore uses it as a parallelism hint).
    pub concurrent_collections: i32,
    /// Archive format version; only "0.1" exists.
    pub version: String,
    /// Version of the server the data came from, e.g. "8.2.11".
    pub server_version: String,
    /// Version of the tool that wrote the archive, e.g. "100.8.0".
    pub tool_version: String,
}

impl Header {
    /// `{concurrent_collections: int32, version, server_version, tool_version}` in this order.
    pub(crate) fn to_bson_bytes(&self) -> Vec<u8> {
        let doc = doc! {
            "concurrent_collections": self.concurrent_collections,
            "version": self.version.as_str(),
            "server_version": self.server_version.as_str(),
            "tool_version": self.tool_version.as_str(),
        };
        doc_bytes(&doc)
    }

    /// Reads a header document. The version is checked by the caller (so a header from a future
    /// format is reported as unsupported rather than malformed whenever its version is readable).
    pub(crate) fn from_raw(raw: &RawDocument) -> Result<Self, String> {
        let concurrent_collections = match get(raw, "concurrent_collections")? {
            None => 0,
            Some(RawBsonRef::Int32(n)) => n,
            Some(RawBsonRef::Int64(n)) => i32::try_from(n).unwrap_or(i32::MAX),
            Some(other) => return Err(wrong_type("concurrent_collections", "an integer", other)),
        };
        Ok(Header {
            concurrent_collections,
            version: opt_str(raw, "version")?.unwrap_or_default(),
            server_version: opt_str(raw, "server_version")?.unwrap_or_default(),
            tool_version: opt_str(raw, "tool_version")?.unwrap_or_default(),
        })
    }
}

/// A collection's metadata as mongodump stores it (the contents of `<coll>.metadata.json` in a
/// directory dump; in an archive, a string field of the namespace's prelude document).
#[derive(Clone, Debug, PartialEq, Default)]
pub struct CollectionMetadata {
    /// Collection options (capped, size, validator, viewOn, pipeline, ...); empty when none, and then
    /// omitted from the JSON.
    pub options: Document,
    /// The `listIndexes` output, one document per index, key order preserved.
    pub indexes: Vec<Document>,
    /// The collection UUID as mongodump writes it (32 lowercase hex digits, no dashes).
    pub uuid: Option<String>,
    pub collection_name: String,
    /// "collection" | "view" | "timeseries" (JSON key "type"); omitted from the JSON when empty.
    pub kind: String,
}

impl CollectionMetadata {
    /// Compact canonical Extended JSON v2, keys in mongodump's order:
    /// `{"options":{..},"indexes":[..],"uuid":"..","collectionName":"..","type":".."}`.
    pub fn to_extjson(&self) -> String {
        let mut map = Map::new();
        if !self.options.is_empty() {
            map.insert(
                "options".into(),
                Bson::Document(self.options.clone()).into_canonical_extjson(),
            );
        }
        map.insert(
            "indexes".into(),
            Value::Array(
                self.indexes
                    .iter()
                    .map(|index| Bson::Document(index.clone()).into_canonical_extjson())
                    .collect(),
            ),
        );
        if let Some(uuid) = &self.uuid {
            map.insert("uuid".into(), Value::String(uuid.clone()));
        }
        map.insert(
            "collectionName".into(),
            Value::String(self.collection_name.clone()),
        );
        if !self.kind.is_empty() {
            map.insert("type".into(), Value::String(self.kind.clone()));
        }
        Value::Object(map).to_string()
    }

    /// Parses canonical or relaxed Extended JSON v2. Unknown top-level keys are ignored; missing ones
    /// take their defaults (empty options/indexes, no uuid, empty name/kind).
    pub fn from_extjson(s: &str) -> Result<Self, ArchiveError> {
        Self::parse(s).map_err(|reason| ArchiveError::Malformed { offset: 0, reason })
    }

    pub(crate) fn parse(s: &str) -> Result<Self, String> {
        let value: Value = serde_json::from_str(s)
            .map_err(|e| format!("collection metadata is not valid JSON: {e}"))?;
        let Value::Object(mut map) = value else {
            return Err("collection metadata is not a JSON object".into());
        };
        let options = match map.remove("options") {
            None | Some(Value::Null) => Document::new(),
            Some(Value::Object(obj)) => json_to_document("options", obj)?,
            Some(_) => return Err("collection metadata: \"options\" is not an object".into()),
        };
        let indexes = match map.remove("indexes") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) => items
                .into_iter()
                .map(|item| match item {
                    Value::Object(obj) => json_to_document("an index", obj),
                    _ => Err("collection metadata: an index is not an object".to_string()),
                })
                .collect::<Result<_, _>>()?,
            Some(_) => return Err("collection metadata: \"indexes\" is not an array".into()),
        };
        Ok(CollectionMetadata {
            options,
            indexes,
            uuid: json_opt_str(&mut map, "uuid")?,
            collection_name: json_opt_str(&mut map, "collectionName")?.unwrap_or_default(),
            kind: json_opt_str(&mut map, "type")?.unwrap_or_default(),
        })
    }

    /// The prelude's `metadata` string. mongodump leaves it empty for namespaces that have no
    /// metadata file (the oplog); an all-default value maps to that empty string and back.
    pub(crate) fn to_prelude_string(&self) -> String {
        if *self == CollectionMetadata::default() {
            String::new()
        } else {
            self.to_extjson()
        }
    }

    pub(crate) fn from_prelude_string(s: &str) -> Result<Self, String> {
        if s.is_empty() {
            Ok(CollectionMetadata::default())
        } else {
            Self::parse(s)
        }
    }
}

/// One namespace (collection, view, ...) of the archive, as listed in its prelude.
#[derive(Clone, Debug, PartialEq)]
pub struct Namespace {
    pub db: String,
    pub collection: String,
    /// The prelude document's "type": "collection" | "view" | "timeseries".
    pub kind: String,
    /// The prelude document's "size" (mongodump always writes 0; larger values saturate on read).
    pub size: i32,
    pub metadata: CollectionMetadata,
}

impl Namespace {
    /// `db.collection`, as used in messages.
    pub fn full_name(&self) -> String {
        format!("{}.{}", self.db, self.collection)
    }

    /// `{db, collection, metadata, size: int32, type}` in this order, as mongodump writes it.
    pub(crate) fn to_prelude_bytes(&self) -> Vec<u8> {
        let doc = doc! {
            "db": self.db.as_str(),
            "collection": self.collection.as_str(),
            "metadata": self.metadata.to_prelude_string(),
            "size": self.size,
            "type": self.kind.as_str(),
        };
        doc_bytes(&doc)
    }

    pub(crate) fn from_prelude_raw(raw: &RawDocument) -> Result<Self, String> {
        let db = req_str(raw, "db")?;
        let collection = req_str(raw, "collection")?;
        let metadata_json = opt_str(raw, "metadata")?.unwrap_or_default();
        let metadata = CollectionMetadata::from_prelude_string(&metadata_json)
            .map_err(|e| format!("{db}.{collection}: {e}"))?;
        let size = match get(raw, "size")? {
            None => 0,
            Some(RawBsonRef::Int32(n)) => n,
            Some(RawBsonRef::Int64(n)) => n.clamp(0, i32::MAX as i64) as i32,
            Some(RawBsonRef::Double(n)) => n.clamp(0.0, i32::MAX as f64) as i32,
            Some(other) => return Err(wrong_type("size", "an integer", other)),
        };
        // Old mongodumps wrote no "type"; fall back on the metadata's, then on "collection".
        let kind = match opt_str(raw, "type")? {
            Some(kind) if !kind.is_empty() => kind,
            _ if !metadata.kind.is_empty() => metadata.kind.clone(),
            _ => "collection".to_string(),
        };
        Ok(Namespace {
            db,
            collection,
            kind,
            size,
            metadata,
        })
    }

    /// The collection name that carries this namespace's documents in the archive. mongodump dumps
    /// a time-series collection `x` from a server older than 8.3 as its buckets collection
    /// `system.buckets.x` (the prelude lists `x`, the segments name `system.buckets.x`).
    pub(crate) fn data_collection(&self, server_version: &str) -> String {
        if self.kind == "timeseries" && !server_at_least_8_3(server_version) {
            format!("system.buckets.{}", self.collection)
        } else {
            self.collection.clone()
        }
    }
}

fn server_at_least_8_3(version: &str) -> bool {
    let mut parts = version.split('.').map(|part| {
        let digits: String = part.chars().take_while(|c| c.is_ascii_digit()).collect();
        digits.parse::<u32>().ok()
    });
    match (parts.next().flatten(), parts.next().flatten()) {
        (Some(major), Some(minor)) => (major, minor) >= (8, 3),
        (Some(major), None) => major > 8,
        _ => false,
    }
}

/// What was written to or read from an archive for one namespace.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct NamespaceSummary {
    pub documents: u64,
    /// Total raw BSON bytes of the documents (the bytes the CRC covers).
    pub bytes: u64,
    /// CRC-64/XZ of those bytes (stored in the archive as the same 64 bits read as an int64).
    pub crc: u64,
}

/// A segment header (`eof == false`, `crc == 0`) or an end-of-namespace header.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct NamespaceHeader {
    pub db: String,
    pub collection: String,
    pub eof: bool,
    pub crc: i64,
}

impl NamespaceHeader {
    /// `{db, collection, EOF: bool, CRC: int64}` in this order, as mongodump writes it.
    pub(crate) fn bytes(db: &str, collection: &str, eof: bool, crc: u64) -> Vec<u8> {
        let doc = doc! {
            "db": db,
            "collection": collection,
            "EOF": eof,
            "CRC": Bson::Int64(crc as i64),
        };
        doc_bytes(&doc)
    }

    pub(crate) fn from_raw(raw: &RawDocument) -> Result<Self, String> {
        let db = req_str(raw, "db")?;
        let collection = req_str(raw, "collection")?;
        if collection.is_empty() {
            return Err("namespace header has an empty collection name".into());
        }
        let eof = match get(raw, "EOF")? {
            None => false,
            Some(RawBsonRef::Boolean(b)) => b,
            Some(other) => return Err(wrong_type("EOF", "a boolean", other)),
        };
        let crc = match get(raw, "CRC")? {
            None => 0,
            Some(RawBsonRef::Int64(n)) => n,
            Some(RawBsonRef::Int32(n)) => n as i64,
            Some(other) => return Err(wrong_type("CRC", "an int64", other)),
        };
        Ok(NamespaceHeader {
            db,
            collection,
            eof,
            crc,
        })
    }
}

pub(crate) fn raw_document(bytes: &[u8]) -> Result<&RawDocument, String> {
    RawDocument::from_bytes(bytes).map_err(|e| format!("invalid BSON document: {e}"))
}

fn doc_bytes(doc: &Document) -> Vec<u8> {
    let mut out = Vec::with_capacity(128);
    doc.to_writer(&mut out)
        .expect("serializing a document of strings and numbers into memory cannot fail");
    out
}

fn get<'a>(raw: &'a RawDocument, key: &str) -> Result<Option<RawBsonRef<'a>>, String> {
    raw.get(key)
        .map_err(|e| format!("invalid BSON document (reading {key:?}): {e}"))
}

fn opt_str(raw: &RawDocument, key: &str) -> Result<Option<String>, String> {
    match get(raw, key)? {
        None => Ok(None),
        Some(RawBsonRef::String(s)) => Ok(Some(s.to_string())),
        Some(other) => Err(wrong_type(key, "a string", other)),
    }
}

fn req_str(raw: &RawDocument, key: &str) -> Result<String, String> {
    opt_str(raw, key)?.ok_or_else(|| format!("missing field {key:?}"))
}

fn wrong_type(key: &str, expected: &str, found: RawBsonRef<'_>) -> String {
    format!(
        "field {key:?} should be {expected}, found {:?}",
        found.element_type()
    )
}

fn json_to_document(what: &str, obj: Map<String, Value>) -> Result<Document, String> {
    Document::try_from(obj)
        .map_err(|e| format!("collection metadata: {what} is not valid Extended JSON: {e}"))
}

fn json_opt_str(map: &mut Map<String, Value>, key: &str) -> Result<Option<String>, String> {
    match map.remove(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(format!("collection metadata: {key:?} is not a string")),
    }
}
