//! The archive codec against archives written by the real mongodump 100.8.0
//! (tests/testdata/mongodump-100.8.0, see its README.md).

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::PathBuf;

use bson::{Bson, Document};
use driveback_engine::archive::{
    crc64, ArchiveError, ArchiveReader, ArchiveWriter, Header, Item, Namespace, NamespaceSummary,
};
use flate2::read::MultiGzDecoder;

const GOLDEN: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../tests/testdata/mongodump-100.8.0"
);

const COLLECTIONS: [&str; 8] = [
    "feedback",
    "feedbackVotes",
    "samples",
    "timeEntries",
    "userGoals",
    "users",
    "dayReflections",
    "events_capped",
];

fn golden_path(name: &str) -> PathBuf {
    PathBuf::from(GOLDEN).join(name)
}

fn golden_bytes() -> Vec<u8> {
    std::fs::read(golden_path("timetrack.archive")).unwrap()
}

/// Everything a reader yields from one archive.
struct Contents {
    header: Header,
    namespaces: Vec<Namespace>,
    items: Vec<Item>,
    end_offset: u64,
}

impl Contents {
    fn documents(&self, ns: usize) -> Vec<&[u8]> {
        self.items
            .iter()
            .filter_map(|item| match item {
                Item::Document { ns: n, raw } if *n == ns => Some(&raw[..]),
                _ => None,
            })
            .collect()
    }

    fn summary(&self, ns: usize) -> NamespaceSummary {
        let ends: Vec<NamespaceSummary> = self
            .items
            .iter()
            .filter_map(|item| match item {
                Item::EndOfNamespace { ns: n, summary } if *n == ns => Some(*summary),
                _ => None,
            })
            .collect();
        assert_eq!(ends.len(), 1, "namespace {ns} ends exactly once");
        ends[0]
    }

    fn index_of(&self, collection: &str) -> usize {
        self.namespaces
            .iter()
            .position(|ns| ns.collection == collection)
            .unwrap_or_else(|| panic!("{collection} is not in the prelude"))
    }
}

fn read_contents(input: impl Read) -> Contents {
    let mut reader = ArchiveReader::new(input).unwrap();
    let mut items = Vec::new();
    while let Some(item) = reader.next_item().unwrap() {
        items.push(item);
    }
    Contents {
        header: reader.header().clone(),
        namespaces: reader.namespaces().to_vec(),
        items,
        end_offset: reader.offset(),
    }
}

fn read_plain() -> Contents {
    read_contents(BufReader::new(
        File::open(golden_path("timetrack.archive")).unwrap(),
    ))
}

fn read_gzip() -> Contents {
    let file = File::open(golden_path("timetrack.archive.gz")).unwrap();
    read_contents(BufReader::new(MultiGzDecoder::new(BufReader::new(file))))
}

fn canonical_json(raw: &[u8]) -> String {
    let doc = Document::from_reader(raw).unwrap();
    Bson::Document(doc).into_canonical_extjson().to_string()
}

/// Re-serialized compactly, key order kept (serde_json preserves order in this build).
fn normalize_json(text: &str) -> String {
    serde_json::from_str::<serde_json::Value>(text)
        .unwrap()
        .to_string()
}

/// CRCs stored in the golden archive's EOF headers (as int64), read off the file independently.
fn golden_crcs() -> BTreeMap<&'static str, i64> {
    BTreeMap::from([
        ("events_capped", -3217391723072532556),
        ("feedbackVotes", 4028508440920208791),
        ("dayReflections", 8180489540021898157),
        ("userGoals", 7955137099545758430),
        ("users", -7742609573622297381),
        ("feedback", -7356441048770369719),
        ("timeEntries", -7842005681199281291),
        ("samples", -1693114999939954469),
    ])
}

fn check_against_expected(contents: &Contents) {
    assert_eq!(
        contents.header,
        Header {
            concurrent_collections: 4,
            version: "0.1".into(),
            server_version: "8.2.11".into(),
            tool_version: "100.8.0".into(),
        }
    );
    // Each mongodump run lists the collections in its own order.
    let mut names: Vec<&str> = contents
        .namespaces
        .iter()
        .map(|ns| ns.collection.as_str())
        .collect();
    names.sort_unstable();
    let mut expected_names = COLLECTIONS;
    expected_names.sort_unstable();
    assert_eq!(names, expected_names, "prelude");

    for (i, ns) in contents.namespaces.iter().enumerate() {
        let name = ns.collection.as_str();
        assert_eq!(ns.db, "timetrack");
        assert_eq!(ns.kind, "collection", "{name}");
        assert_eq!(ns.size, 0, "{name}: mongodump writes size 0");
        assert_eq!(ns.metadata.collection_name, name);
        assert_eq!(ns.metadata.kind, "collection", "{name}");
        let uuid = ns.metadata.uuid.as_deref().unwrap();
        assert!(
            uuid.len() == 32 && uuid.bytes().all(|b| b.is_ascii_hexdigit()),
            "{name}: uuid {uuid}"
        );

        // Documents: as sets of canonical Extended JSON strings (the archive holds them in natural
        // order, the expected files sorted by _id).
        let docs = contents.documents(i);
        let mut actual: Vec<String> = docs.iter().map(|raw| canonical_json(raw)).collect();
        let expected_text =
            std::fs::read_to_string(golden_path(&format!("expected/{name}.ejson"))).unwrap();
        let mut expected: Vec<String> = expected_text
            .lines()
            .filter(|line| !line.trim().is_empty())
            .map(normalize_json)
            .collect();
        assert_eq!(actual.len(), expected.len(), "{name}: document count");
        actual.sort();
        expected.sort();
        assert_eq!(actual, expected, "{name}: documents");

        // Indexes, key order included.
        let indexes = serde_json::Value::Array(
            ns.metadata
                .indexes
                .iter()
                .map(|index| Bson::Document(index.clone()).into_canonical_extjson())
                .collect(),
        )
        .to_string();
        let expected_indexes = normalize_json(
            &std::fs::read_to_string(golden_path(&format!("expected/{name}.indexes.json")))
                .unwrap(),
        );
        assert_eq!(indexes, expected_indexes, "{name}: indexes");

        // What the reader verified against the EOF header, and its bookkeeping.
        let summary = contents.summary(i);
        assert_eq!(summary.crc as i64, golden_crcs()[name], "{name}: CRC");
        let concatenated: Vec<u8> = docs.concat();
        assert_eq!(summary.crc, crc64(&concatenated), "{name}");
        assert_eq!(summary.documents, docs.len() as u64, "{name}");
        assert_eq!(summary.bytes, concatenated.len() as u64, "{name}");
    }

    let capped = &contents.namespaces[contents.index_of("events_capped")];
    assert_eq!(
        capped.metadata.options,
        bson::doc! { "capped": true, "size": 65536 }
    );
    for ns in contents
        .namespaces
        .iter()
        .filter(|ns| ns.collection != "events_capped")
    {
        assert!(ns.metadata.options.is_empty(), "{}", ns.collection);
    }
}

#[test]
fn reads_golden_archive() {
    let contents = read_plain();
    check_against_expected(&contents);
    let names: Vec<&str> = contents
        .namespaces
        .iter()
        .map(|ns| ns.collection.as_str())
        .collect();
    assert_eq!(names, COLLECTIONS, "prelude order");
    assert_eq!(contents.end_offset, golden_bytes().len() as u64);
}

#[test]
fn reads_golden_gzip_archive() {
    // A separate mongodump run: other prelude order, and timeEntries' segment is interrupted by
    // feedback's (timeEntries ends after feedback, with an EOF header and no segment of its own).
    let gz = read_gzip();
    check_against_expected(&gz);
    let plain = read_plain();
    for (i, ns) in gz.namespaces.iter().enumerate() {
        let j = plain.index_of(&ns.collection);
        assert_eq!(ns, &plain.namespaces[j]);
        assert_eq!(gz.documents(i), plain.documents(j), "{}", ns.collection);
        assert_eq!(gz.summary(i), plain.summary(j), "{}", ns.collection);
    }
    let order: Vec<String> = gz
        .items
        .iter()
        .filter_map(|item| match item {
            Item::EndOfNamespace { ns, .. } => Some(gz.namespaces[*ns].collection.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(
        order,
        [
            "events_capped",
            "feedbackVotes",
            "dayReflections",
            "feedback",
            "timeEntries",
            "users",
            "userGoals",
            "samples"
        ]
    );
}

#[test]
fn samples_cover_every_bson_type() {
    let contents = read_plain();
    let docs = contents.documents(contents.index_of("samples"));
    let mut types = std::collections::BTreeSet::new();
    fn walk(value: &Bson, types: &mut std::collections::BTreeSet<String>) {
        types.insert(format!("{:?}", value.element_type()));
        match value {
            Bson::Document(d) => d.values().for_each(|v| walk(v, types)),
            Bson::Array(a) => a.iter().for_each(|v| walk(v, types)),
            _ => {}
        }
    }
    for raw in docs {
        walk(
            &Bson::Document(Document::from_reader(raw).unwrap()),
            &mut types,
        );
    }
    for expected in [
        "Double",
        "String",
        "EmbeddedDocument",
        "Array",
        "Binary",
        "ObjectId",
        "Boolean",
        "DateTime",
        "Null",
        "RegularExpression",
        "JavaScriptCode",
        "Int32",
        "Timestamp",
        "Int64",
        "Decimal128",
        "MinKey",
        "MaxKey",
    ] {
        assert!(
            types.contains(expected),
            "samples lack {expected}: {types:?}"
        );
    }
}

/// Feeds the golden archive's items, in the golden order, to ArchiveWriter.
fn rewrite(contents: &Contents) -> (Vec<u8>, Vec<NamespaceSummary>) {
    let mut writer =
        ArchiveWriter::new(Vec::new(), &contents.header, &contents.namespaces).unwrap();
    let mut summaries = vec![NamespaceSummary::default(); contents.namespaces.len()];
    for item in &contents.items {
        match item {
            Item::Document { ns, raw } => writer.write_document(*ns, raw).unwrap(),
            Item::EndOfNamespace { ns, .. } => summaries[*ns] = writer.end_namespace(*ns).unwrap(),
        }
    }
    let written = writer.bytes_written();
    let bytes = writer.finish().unwrap();
    assert_eq!(written, bytes.len() as u64);
    (bytes, summaries)
}

#[test]
fn rewriting_golden_archive_reproduces_it() {
    check_rewrite(read_plain(), golden_bytes());
}

#[test]
fn rewriting_golden_gzip_archive_reproduces_it() {
    let mut decompressed = Vec::new();
    MultiGzDecoder::new(File::open(golden_path("timetrack.archive.gz")).unwrap())
        .read_to_end(&mut decompressed)
        .unwrap();
    check_rewrite(read_gzip(), decompressed);
}

fn check_rewrite(golden: Contents, golden_bytes: Vec<u8>) {
    let (bytes, summaries) = rewrite(&golden);

    // Re-read: same prelude, byte-identical documents, same CRCs.
    let again = read_contents(&bytes[..]);
    assert_eq!(again.header, golden.header);
    assert_eq!(again.namespaces, golden.namespaces);
    assert_eq!(again.items, golden.items);
    for (i, ns) in golden.namespaces.iter().enumerate() {
        assert_eq!(summaries[i], golden.summary(i), "{}", ns.collection);
        assert_eq!(
            summaries[i].crc as i64,
            golden_crcs()[ns.collection.as_str()]
        );
    }

    // Written in mongodump's order, the archive is mongodump's, byte for byte (prelude and
    // metadata JSON included).
    assert!(
        bytes == golden_bytes,
        "rewritten archive differs from golden at byte {:?} (lengths {} vs {})",
        bytes.iter().zip(&golden_bytes).position(|(a, b)| a != b),
        bytes.len(),
        golden_bytes.len()
    );
}

#[test]
fn rewriting_interleaved_keeps_documents_and_crcs() {
    let golden = read_plain();
    let n = golden.namespaces.len();
    let per_ns: Vec<Vec<&[u8]>> = (0..n).map(|i| golden.documents(i)).collect();
    // Round-robin one document per namespace: a new segment for nearly every document.
    let mut writer = ArchiveWriter::new(Vec::new(), &golden.header, &golden.namespaces).unwrap();
    let longest = per_ns.iter().map(Vec::len).max().unwrap();
    for k in 0..longest {
        for (ns, docs) in per_ns.iter().enumerate() {
            if let Some(raw) = docs.get(k) {
                writer.write_document(ns, raw).unwrap();
            }
        }
    }
    let bytes = writer.finish().unwrap();
    let again = read_contents(&bytes[..]);
    for (i, docs) in per_ns.iter().enumerate() {
        assert_eq!(&again.documents(i), docs);
        assert_eq!(again.summary(i), golden.summary(i));
    }
}

#[test]
fn corrupted_golden_archive_is_rejected() {
    let mut bytes = golden_bytes();
    // Inside the last document of the last namespace (samples): flip a byte of a string value.
    let at = bytes
        .windows(b"plain ascii".len())
        .position(|w| w == b"plain ascii")
        .unwrap();
    bytes[at] ^= 1;
    let mut reader = ArchiveReader::new(&bytes[..]).unwrap();
    let err = loop {
        match reader.next_item() {
            Ok(Some(_)) => continue,
            Ok(None) => panic!("corruption went unnoticed"),
            Err(e) => break e,
        }
    };
    match err {
        ArchiveError::CrcMismatch { namespace } => assert_eq!(namespace, "timetrack.samples"),
        other => panic!("expected a CRC mismatch, got {other:?}"),
    }

    // A cut-off gzip stream reads as truncated.
    let gz = std::fs::read(golden_path("timetrack.archive.gz")).unwrap();
    let cut = &gz[..gz.len() / 2];
    let mut reader = ArchiveReader::new(BufReader::new(MultiGzDecoder::new(cut))).unwrap();
    let err = loop {
        match reader.next_item() {
            Ok(Some(_)) => continue,
            Ok(None) => panic!("truncation went unnoticed"),
            Err(e) => break e,
        }
    };
    assert!(
        matches!(err, ArchiveError::Truncated { .. }),
        "expected Truncated, got {err:?}"
    );
}
