use bson::{doc, Document};

use super::*;

fn raw(doc: &Document) -> Vec<u8> {
    let mut out = Vec::new();
    doc.to_writer(&mut out).unwrap();
    out
}

fn header() -> Header {
    Header {
        concurrent_collections: 4,
        version: "0.1".into(),
        server_version: "8.0.4".into(),
        tool_version: "driveback-test".into(),
    }
}

fn collection(db: &str, name: &str) -> Namespace {
    Namespace {
        db: db.into(),
        collection: name.into(),
        kind: "collection".into(),
        size: 0,
        metadata: CollectionMetadata {
            options: Document::new(),
            indexes: vec![doc! { "v": 2, "key": { "_id": 1 }, "name": "_id_" }],
            uuid: Some("be3053792b5c4d5d9b1fb7faeaf4d947".into()),
            collection_name: name.into(),
            kind: "collection".into(),
        },
    }
}

fn view(db: &str, name: &str, on: &str) -> Namespace {
    Namespace {
        db: db.into(),
        collection: name.into(),
        kind: "view".into(),
        size: 0,
        metadata: CollectionMetadata {
            options: doc! { "viewOn": on, "pipeline": [ { "$match": { "n": { "$gt": 1 } } } ] },
            indexes: vec![],
            uuid: None,
            collection_name: name.into(),
            kind: "view".into(),
        },
    }
}

fn namespaces() -> Vec<Namespace> {
    vec![
        collection("app", "users"),
        collection("app", "entries"),
        collection("app", "empty"),
        view("app", "bigEntries", "entries"),
    ]
}

/// Writes (ns, doc) pairs in order, then ends namespace 1 explicitly and finishes.
fn write_archive(writes: &[(usize, Vec<u8>)]) -> (Vec<u8>, Vec<NamespaceSummary>) {
    let nss = namespaces();
    let mut writer = ArchiveWriter::new(Vec::new(), &header(), &nss).unwrap();
    for (ns, doc) in writes {
        writer.write_document(*ns, doc).unwrap();
    }
    let mut summaries = vec![NamespaceSummary::default(); nss.len()];
    summaries[1] = writer.end_namespace(1).unwrap();
    for (i, summary) in summaries.iter_mut().enumerate() {
        let docs: Vec<&Vec<u8>> = writes
            .iter()
            .filter(|(ns, _)| *ns == i)
            .map(|(_, d)| d)
            .collect();
        let mut crc = Crc64::new();
        for d in &docs {
            crc.update(d);
        }
        *summary = NamespaceSummary {
            documents: docs.len() as u64,
            bytes: docs.iter().map(|d| d.len() as u64).sum(),
            crc: crc.value(),
        };
    }
    let written = writer.bytes_written();
    let out = writer.finish().unwrap();
    assert!(written <= out.len() as u64);
    (out, summaries)
}

fn sample_writes() -> Vec<(usize, Vec<u8>)> {
    let mut writes = Vec::new();
    for i in 0..3 {
        writes.push((0, raw(&doc! { "_id": i, "name": format!("user {i}") })));
    }
    for i in 0..2 {
        writes.push((1, raw(&doc! { "_id": i, "n": i as i64 * 10, "t": "x" })));
    }
    writes.push((0, raw(&doc! { "_id": 3, "name": "late user" })));
    writes.push((1, raw(&doc! { "_id": 2, "n": 20_i64 })));
    writes
}

/// Documents per namespace, end summary per namespace.
type ReadBack = (Vec<Vec<Vec<u8>>>, Vec<Option<NamespaceSummary>>);

/// Reads everything; returns documents per namespace and end summaries per namespace.
fn read_all(bytes: &[u8]) -> Result<ReadBack, ArchiveError> {
    let mut reader = ArchiveReader::new(bytes)?;
    let n = reader.namespaces().len();
    let mut docs = vec![Vec::new(); n];
    let mut ends = vec![None; n];
    while let Some(item) = reader.next_item()? {
        match item {
            Item::Document { ns, raw } => {
                assert!(ends[ns].is_none(), "document after end of namespace");
                docs[ns].push(raw)
            }
            Item::EndOfNamespace { ns, summary } => {
                assert!(ends[ns].is_none(), "namespace ended twice");
                ends[ns] = Some(summary)
            }
        }
    }
    assert_eq!(reader.offset(), bytes.len() as u64);
    Ok((docs, ends))
}

#[test]
fn crc_check_value() {
    assert_eq!(crc64(b"123456789"), 0x995d_c9bb_df19_39fa);
    assert_eq!(crc64(b""), 0);
    let mut streaming = Crc64::new();
    assert_eq!(streaming.value(), 0);
    streaming.update(b"1234");
    let partial = streaming.value();
    streaming.update(b"");
    streaming.update(b"56789");
    assert_eq!(streaming.value(), 0x995d_c9bb_df19_39fa);
    assert_eq!(partial, crc64(b"1234"));
    assert_eq!(Crc64::default().value(), Crc64::new().value());
}

#[test]
fn round_trip_interleaved_with_empty_namespace_and_view() {
    let writes = sample_writes();
    let (bytes, summaries) = write_archive(&writes);
    assert_eq!(&bytes[..4], &ARCHIVE_MAGIC);

    let reader = ArchiveReader::new(&bytes[..]).unwrap();
    assert_eq!(reader.header(), &header());
    assert_eq!(reader.namespaces(), &namespaces()[..]);

    let (docs, ends) = read_all(&bytes).unwrap();
    for (i, ns_docs) in docs.iter().enumerate() {
        let expected: Vec<Vec<u8>> = writes
            .iter()
            .filter(|(ns, _)| *ns == i)
            .map(|(_, d)| d.clone())
            .collect();
        assert_eq!(ns_docs, &expected, "namespace {i}");
        assert_eq!(ends[i], Some(summaries[i]), "namespace {i}");
    }
    assert_eq!(ends[2].unwrap().documents, 0);
    assert_eq!(ends[2].unwrap().crc, 0);
    assert_eq!(ends[3].unwrap(), NamespaceSummary::default());

    // The item sequence shows one segment per run of one namespace's documents.
    let mut reader = ArchiveReader::new(&bytes[..]).unwrap();
    let mut order = Vec::new();
    while let Some(item) = reader.next_item().unwrap() {
        order.push(match item {
            Item::Document { ns, .. } => format!("d{ns}"),
            Item::EndOfNamespace { ns, .. } => format!("e{ns}"),
        });
    }
    assert_eq!(
        order.join(" "),
        "d0 d0 d0 d1 d1 d0 d1 e1 e0 e2 e3",
        "documents come back in write order, ends in end order"
    );
    assert!(reader.next_item().unwrap().is_none(), "None stays None");
    assert_eq!(reader.into_inner().len(), 0);
}

#[test]
fn segments_and_headers_are_laid_out_like_mongodump() {
    let d = raw(&doc! { "_id": 1 });
    let nss = vec![collection("db", "a"), collection("db", "b")];
    let mut w = ArchiveWriter::new(Vec::new(), &header(), &nss).unwrap();
    let prelude_len = w.bytes_written() as usize;
    w.write_document(0, &d).unwrap();
    w.write_document(1, &d).unwrap();
    w.write_document(1, &d).unwrap();
    let out = w.finish().unwrap();

    let ns_header = |c: &str, eof: bool, crc: i64| {
        raw(&doc! { "db": "db", "collection": c, "EOF": eof, "CRC": crc })
    };
    let mut expected = Vec::new();
    expected.extend(ns_header("a", false, 0));
    expected.extend(&d);
    expected.extend(TERMINATOR);
    expected.extend(ns_header("b", false, 0));
    expected.extend(&d);
    expected.extend(&d);
    expected.extend(TERMINATOR);
    expected.extend(ns_header("a", true, crc64(&d) as i64));
    expected.extend(TERMINATOR);
    let mut both = d.clone();
    both.extend(&d);
    expected.extend(ns_header("b", true, crc64(&both) as i64));
    expected.extend(TERMINATOR);
    assert_eq!(&out[prelude_len..], &expected[..]);
    assert_eq!(&out[prelude_len - 4..prelude_len], &TERMINATOR);
}

#[test]
fn truncation_at_every_offset_is_reported() {
    let (bytes, _) = write_archive(&sample_writes());
    read_all(&bytes).unwrap();
    for cut in 0..bytes.len() {
        let result = read_all(&bytes[..cut]);
        match result {
            Err(ArchiveError::Truncated { offset }) => {
                assert_eq!(offset, cut as u64, "cut at {cut}")
            }
            Err(ArchiveError::Malformed { .. }) => {}
            Err(other) => panic!("cut at {cut}: unexpected error {other:?}"),
            Ok(_) => panic!("cut at {cut}: truncated archive read as complete"),
        }
    }
}

#[test]
fn flipped_byte_in_document_data_is_a_crc_mismatch() {
    let marker = raw(&doc! { "_id": 7, "payload": "MARKER-STRING" });
    let writes = vec![(0, marker.clone()), (1, raw(&doc! { "_id": 1 }))];
    let (mut bytes, _) = write_archive(&writes);
    let at = bytes
        .windows(13)
        .position(|w| w == b"MARKER-STRING")
        .unwrap();
    bytes[at + 3] ^= 0x20;
    match read_all(&bytes) {
        Err(ArchiveError::CrcMismatch { namespace }) => assert_eq!(namespace, "app.users"),
        other => panic!("expected a CRC mismatch, got {other:?}"),
    }
}

/// Prelude with the sample namespaces, then the given tail.
fn archive_with_tail(tail: &[u8]) -> Vec<u8> {
    let w = ArchiveWriter::new(Vec::new(), &header(), &namespaces()).unwrap();
    let prelude_len = w.bytes_written() as usize;
    let mut bytes = w.finish().unwrap();
    bytes.truncate(prelude_len);
    bytes.extend_from_slice(tail);
    bytes
}

fn segment_header(collection: &str, eof: bool, crc: i64) -> Vec<u8> {
    raw(&doc! { "db": "app", "collection": collection, "EOF": eof, "CRC": crc })
}

fn expect_malformed(bytes: &[u8]) -> (u64, String) {
    match read_all(bytes) {
        Err(ArchiveError::Malformed { offset, reason }) => (offset, reason),
        other => panic!("expected Malformed, got {other:?}"),
    }
}

#[test]
fn huge_or_tiny_length_prefix_is_malformed() {
    let prelude_len = archive_with_tail(&[]).len() as u64;
    let seg = segment_header("users", false, 0);
    for bad in [0x7fff_fff0_u32, 0x8000_0000, 4, 0, 0xffff_fffe] {
        let mut tail = seg.clone();
        tail.extend_from_slice(&bad.to_le_bytes());
        tail.extend_from_slice(&[0; 16]);
        let (offset, reason) = expect_malformed(&archive_with_tail(&tail));
        assert_eq!(offset, prelude_len + seg.len() as u64, "{bad:#x}: {reason}");
    }
    // Same in header position and in the prelude.
    let mut tail = Vec::new();
    tail.extend_from_slice(&0x7fff_fff0_u32.to_le_bytes());
    let (offset, _) = expect_malformed(&archive_with_tail(&tail));
    assert_eq!(offset, prelude_len);
    let mut bytes = ARCHIVE_MAGIC.to_vec();
    bytes.extend_from_slice(&(MAX_DOCUMENT_BYTES as u32 + 1).to_le_bytes());
    assert!(matches!(
        ArchiveReader::new(&bytes[..]),
        Err(ArchiveError::Malformed { offset: 4, .. })
    ));
}

#[test]
fn document_without_trailing_zero_is_malformed() {
    let mut tail = segment_header("users", false, 0);
    let mut d = raw(&doc! { "_id": 1 });
    *d.last_mut().unwrap() = 1;
    tail.extend(d);
    expect_malformed(&archive_with_tail(&tail));
}

#[test]
fn bad_magic_is_not_an_archive() {
    let (mut bytes, _) = write_archive(&[]);
    bytes[0] = 0x6e;
    assert!(matches!(
        ArchiveReader::new(&bytes[..]),
        Err(ArchiveError::NotAnArchive)
    ));
    // A plain BSON dump (a .bson file) is not an archive either.
    let plain = raw(&doc! { "_id": 1 });
    assert!(matches!(
        ArchiveReader::new(&plain[..]),
        Err(ArchiveError::NotAnArchive)
    ));
    assert!(matches!(
        ArchiveReader::new(&b"\x6d\xe2"[..]),
        Err(ArchiveError::Truncated { offset: 2 })
    ));
}

#[test]
fn other_versions_are_unsupported() {
    let mut bytes = ARCHIVE_MAGIC.to_vec();
    bytes.extend(raw(&doc! {
        "concurrent_collections": 4,
        "version": "0.2",
        "server_version": "9.0.0",
        "tool_version": "200.0.0",
    }));
    bytes.extend_from_slice(&TERMINATOR);
    match ArchiveReader::new(&bytes[..]) {
        Err(ArchiveError::UnsupportedVersion(v)) => assert_eq!(v, "0.2"),
        other => panic!("expected UnsupportedVersion, got {:?}", other.err()),
    }
    let mut h = header();
    h.version = "0.2".into();
    assert!(ArchiveWriter::new(Vec::new(), &h, &[]).is_err());
}

#[test]
fn archive_without_namespaces() {
    let w = ArchiveWriter::new(Vec::new(), &header(), &[]).unwrap();
    let bytes = w.finish().unwrap();
    let mut reader = ArchiveReader::new(&bytes[..]).unwrap();
    assert!(reader.namespaces().is_empty());
    assert!(reader.next_item().unwrap().is_none());
    assert_eq!(reader.offset(), bytes.len() as u64);
}

#[test]
fn unknown_namespace_is_reported() {
    let tail = segment_header("ghost", false, 0);
    let prelude_len = archive_with_tail(&[]).len() as u64;
    match read_all(&archive_with_tail(&tail)) {
        Err(ArchiveError::UnknownNamespace { namespace, offset }) => {
            assert_eq!(namespace, "app.ghost");
            assert_eq!(offset, prelude_len);
        }
        other => panic!("expected UnknownNamespace, got {other:?}"),
    }
}

#[test]
fn data_after_end_or_second_end_is_malformed() {
    let d = raw(&doc! { "_id": 1 });
    let mut end_users = segment_header("users", true, 0);
    end_users.extend_from_slice(&TERMINATOR);

    let mut twice = end_users.clone();
    twice.extend(&end_users);
    expect_malformed(&archive_with_tail(&twice));

    let mut after = end_users.clone();
    after.extend(segment_header("users", false, 0));
    after.extend(&d);
    after.extend_from_slice(&TERMINATOR);
    expect_malformed(&archive_with_tail(&after));

    // An EOF header must be followed by the terminator, not documents.
    let mut eof_with_data = segment_header("users", true, 0);
    eof_with_data.extend(&d);
    expect_malformed(&archive_with_tail(&eof_with_data));

    // Two terminators in a row.
    let mut doubled = end_users.clone();
    doubled.extend_from_slice(&TERMINATOR);
    expect_malformed(&archive_with_tail(&doubled));
}

#[test]
fn stream_ending_before_every_namespace_ended_is_truncated() {
    let mut tail = segment_header("users", false, 0);
    tail.extend(raw(&doc! { "_id": 1 }));
    tail.extend_from_slice(&TERMINATOR);
    let bytes = archive_with_tail(&tail);
    match read_all(&bytes) {
        Err(ArchiveError::Truncated { offset }) => assert_eq!(offset, bytes.len() as u64),
        other => panic!("expected Truncated, got {other:?}"),
    }
}

#[test]
fn empty_segments_are_accepted() {
    let mut tail = Vec::new();
    for (i, ns) in ["users", "entries", "empty", "bigEntries"]
        .iter()
        .enumerate()
    {
        if i == 0 {
            tail.extend(segment_header(ns, false, 0));
            tail.extend_from_slice(&TERMINATOR);
        }
        tail.extend(segment_header(ns, true, 0));
        tail.extend_from_slice(&TERMINATOR);
    }
    let (docs, ends) = read_all(&archive_with_tail(&tail)).unwrap();
    assert!(docs.iter().all(|d| d.is_empty()));
    assert!(ends.iter().all(|e| *e == Some(NamespaceSummary::default())));
}

#[test]
fn writer_rejects_misuse() {
    let mut w = ArchiveWriter::new(Vec::new(), &header(), &namespaces()).unwrap();
    let d = raw(&doc! { "_id": 1 });
    assert!(w.write_document(9, &d).is_err());
    assert!(w.end_namespace(9).is_err());
    assert!(w.write_document(0, &d[..d.len() - 1]).is_err());
    assert!(w.write_document(0, &[4, 0, 0, 0]).is_err());
    let mut no_nul = d.clone();
    *no_nul.last_mut().unwrap() = 7;
    assert!(w.write_document(0, &no_nul).is_err());
    let before = w.bytes_written();
    w.write_document(0, &d).unwrap();
    assert!(w.bytes_written() > before);
    let summary = w.end_namespace(0).unwrap();
    assert_eq!(
        summary,
        NamespaceSummary {
            documents: 1,
            bytes: d.len() as u64,
            crc: crc64(&d)
        }
    );
    assert!(w.end_namespace(0).is_err(), "second end of one namespace");
    assert!(w.write_document(0, &d).is_err(), "document after end");
    let out = w.finish().unwrap();
    let (docs, _) = read_all(&out).unwrap();
    assert_eq!(docs[0], vec![d]);

    let dup = vec![collection("app", "a"), collection("app", "a")];
    assert!(ArchiveWriter::new(Vec::new(), &header(), &dup).is_err());
}

#[test]
fn writer_stops_after_an_io_error() {
    struct Failing(usize);
    impl std::io::Write for Failing {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            if self.0 < buf.len() {
                return Err(std::io::Error::other("disk full"));
            }
            self.0 -= buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let prelude_len = archive_with_tail(&[]).len();
    let mut w = ArchiveWriter::new(Failing(prelude_len + 10), &header(), &namespaces()).unwrap();
    let big = raw(&doc! { "_id": 1, "s": "x".repeat(100) });
    assert!(w.write_document(0, &big).is_err());
    assert!(w.write_document(0, &raw(&doc! {})).is_err());
    assert!(w.finish().is_err());
}

#[test]
fn metadata_json_matches_mongodump() {
    let golden = r#"{"options":{"capped":true,"size":{"$numberInt":"65536"}},"indexes":[{"v":{"$numberInt":"2"},"key":{"_id":{"$numberInt":"1"}},"name":"_id_"},{"v":{"$numberInt":"2"},"key":{"userId":{"$numberInt":"1"},"start":{"$numberInt":"-1"}},"name":"userId_1_start_-1","unique":true}],"uuid":"7831b9c5602946fc869f8b05cf817eba","collectionName":"events_capped","type":"collection"}"#;
    let meta = CollectionMetadata::from_extjson(golden).unwrap();
    assert_eq!(meta.options, doc! { "capped": true, "size": 65536 });
    assert_eq!(meta.indexes.len(), 2);
    let keys: Vec<&String> = meta.indexes[1]
        .get_document("key")
        .unwrap()
        .keys()
        .collect();
    assert_eq!(keys, ["userId", "start"], "index key order is preserved");
    assert_eq!(
        meta.uuid.as_deref(),
        Some("7831b9c5602946fc869f8b05cf817eba")
    );
    assert_eq!(meta.collection_name, "events_capped");
    assert_eq!(meta.kind, "collection");
    assert_eq!(meta.to_extjson(), golden);

    let plain = CollectionMetadata {
        collection_name: "x".into(),
        ..Default::default()
    };
    assert_eq!(plain.to_extjson(), r#"{"indexes":[],"collectionName":"x"}"#);
    assert_eq!(
        CollectionMetadata::from_extjson(&plain.to_extjson()).unwrap(),
        plain
    );
    // Relaxed Extended JSON is accepted too.
    let relaxed = CollectionMetadata::from_extjson(
        r#"{"indexes":[{"v":2,"key":{"_id":1},"name":"_id_"}],"collectionName":"y"}"#,
    )
    .unwrap();
    assert_eq!(
        relaxed.indexes,
        vec![doc! { "v": 2, "key": { "_id": 1 }, "name": "_id_" }]
    );
    for bad in ["", "[]", "{\"indexes\":{}}", "{\"uuid\":5}", "{"] {
        assert!(
            matches!(
                CollectionMetadata::from_extjson(bad),
                Err(ArchiveError::Malformed { .. })
            ),
            "{bad:?}"
        );
    }
}

#[test]
fn timeseries_data_goes_under_the_buckets_collection_before_8_3() {
    let ts = Namespace {
        db: "app".into(),
        collection: "metrics".into(),
        kind: "timeseries".into(),
        size: 0,
        metadata: CollectionMetadata {
            options: doc! { "timeseries": { "timeField": "t", "granularity": "seconds" } },
            indexes: vec![],
            uuid: None,
            collection_name: "metrics".into(),
            kind: "timeseries".into(),
        },
    };
    let d = raw(&doc! { "_id": 1, "control": { "version": 1 } });
    for (server, data_name) in [
        ("7.0.12", "system.buckets.metrics"),
        ("8.2.1", "system.buckets.metrics"),
        ("8.3.0", "metrics"),
        ("10.0.0", "metrics"),
    ] {
        let mut h = header();
        h.server_version = server.into();
        let mut w = ArchiveWriter::new(Vec::new(), &h, std::slice::from_ref(&ts)).unwrap();
        w.write_document(0, &d).unwrap();
        let bytes = w.finish().unwrap();
        let needle =
            raw(&doc! { "db": "app", "collection": data_name, "EOF": false, "CRC": 0_i64 });
        assert!(
            bytes.windows(needle.len()).any(|w| w == &needle[..]),
            "{server}: segment named {data_name}"
        );
        let (docs, ends) = read_all(&bytes).unwrap();
        assert_eq!(docs[0], vec![d.clone()], "{server}");
        assert_eq!(ends[0].unwrap().crc, crc64(&d));
    }
}

#[test]
fn oplog_style_namespace_with_empty_metadata() {
    let oplog = Namespace {
        db: String::new(),
        collection: "oplog".into(),
        kind: String::new(),
        size: 0,
        metadata: CollectionMetadata::default(),
    };
    let w = ArchiveWriter::new(Vec::new(), &header(), std::slice::from_ref(&oplog)).unwrap();
    let bytes = w.finish().unwrap();
    let needle =
        raw(&doc! { "db": "", "collection": "oplog", "metadata": "", "size": 0, "type": "" });
    assert!(bytes.windows(needle.len()).any(|w| w == &needle[..]));
    let reader = ArchiveReader::new(&bytes[..]).unwrap();
    assert_eq!(
        reader.namespaces()[0].metadata,
        CollectionMetadata::default()
    );
    assert_eq!(reader.namespaces()[0].kind, "collection");
    read_all(&bytes).unwrap();
}

#[test]
fn large_documents_stream_through() {
    let big = raw(
        &doc! { "_id": 1, "blob": bson::Binary { subtype: bson::spec::BinarySubtype::Generic, bytes: vec![0xab; 3 << 20] } },
    );
    let writes = vec![
        (0, big.clone()),
        (1, raw(&doc! { "_id": 2 })),
        (0, big.clone()),
    ];
    let (bytes, summaries) = write_archive(&writes);
    let (docs, ends) = read_all(&bytes).unwrap();
    assert_eq!(docs[0], vec![big.clone(), big]);
    assert_eq!(ends[0], Some(summaries[0]));
}
