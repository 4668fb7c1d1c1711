//! Replays every committed fuzz corpus file (`fuzz/corpus/<target>/`) through the same entry
//! points the fuzz targets call, so a regression shows in `cargo test` without the fuzzer.
//!
//! Seeds named `seed-ok-*` must be accepted, `seed-bad-*` refused; every other file (inputs the
//! fuzzer found, `regression-*` reproducers of fixed crashes) must simply not panic.
//! `cargo test --test fuzz_corpus -- --ignored write_seeds` rewrites the generated seeds.

use std::io::Write;
use std::path::{Path, PathBuf};

use bson::doc;
use driveback_engine::archive::{ArchiveWriter, CollectionMetadata, Header, Namespace};
use driveback_engine::container::{MANIFEST_FRAME_MAGIC, MANIFEST_PREFIX};
use driveback_engine::fuzzing::{Outcome, TARGETS};
use driveback_engine::manifest::{
    BackupStatus, CollectionEntry, CollectionStatus, Manifest, FORMAT_VERSION,
};

fn corpus_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target)
}

#[test]
fn every_committed_corpus_file_replays_without_a_panic() {
    let mut total = 0;
    for (target, run) in TARGETS {
        let dir = corpus_dir(target);
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        let (mut accepted, mut refused) = (0, 0);
        for path in &files {
            let data = std::fs::read(path).unwrap();
            let name = path.file_name().unwrap().to_string_lossy().to_string();
            let outcome = run(&data);
            match outcome {
                Outcome::Accepted => accepted += 1,
                Outcome::Refused => refused += 1,
            }
            if name.starts_with("seed-ok-") {
                assert_eq!(outcome, Outcome::Accepted, "{target}/{name}");
            } else if name.starts_with("seed-bad-") {
                assert_eq!(outcome, Outcome::Refused, "{target}/{name}");
            }
        }
        assert!(
            accepted >= 1 && refused >= 1,
            "{target}: seeds of both kinds"
        );
        println!(
            "RELIABILITY hostile-input | fuzz corpus of the {target} reader replayed ({accepted} accepted, {refused} refused, no panic) | {} | 0",
            files.len()
        );
        total += files.len();
    }
    assert!(total >= 20, "the corpora hold the committed seeds");
}

fn header() -> Header {
    Header {
        concurrent_collections: 1,
        version: "0.1".into(),
        server_version: "8.0.0".into(),
        tool_version: "driveback seeds".into(),
    }
}

fn namespace(collection: &str, kind: &str) -> Namespace {
    Namespace {
        db: "shop".into(),
        collection: collection.into(),
        kind: kind.into(),
        size: 0,
        metadata: CollectionMetadata {
            collection_name: collection.into(),
            kind: kind.into(),
            ..Default::default()
        },
    }
}

fn small_archive() -> Vec<u8> {
    let ns = [
        namespace("orders", "collection"),
        namespace("a/b\\..", "collection"),
        namespace("recent", "view"),
    ];
    let mut w = ArchiveWriter::new(Vec::new(), &header(), &ns).unwrap();
    for i in 0..3 {
        let d = bson::to_vec(&doc! { "_id": i, "item": format!("thing {i}") }).unwrap();
        w.write_document(0, &d).unwrap();
    }
    let d = bson::to_vec(&doc! { "_id": "x", "nested": { "a": [1, 2.5, null] } }).unwrap();
    w.write_document(1, &d).unwrap();
    for i in 0..3 {
        w.end_namespace(i).unwrap();
    }
    w.finish().unwrap()
}

fn manifest() -> Manifest {
    let t = chrono::DateTime::parse_from_rfc3339("2026-11-22T02:00:00Z")
        .unwrap()
        .to_utc();
    Manifest {
        format_version: FORMAT_VERSION,
        app_version: "0.1.0".into(),
        backup_id: "0bee9de7".into(),
        database: "shop".into(),
        server_version: "8.0.0".into(),
        started_at: t,
        finished_at: t,
        point_in_time: true,
        consistency: "point-in-time".into(),
        collections: vec![
            CollectionEntry {
                name: "orders".into(),
                kind: "collection".into(),
                documents: 3,
                bytes: 120,
                crc64: "b5a04b116640b720".into(),
                status: CollectionStatus::Ok,
            },
            CollectionEntry {
                name: "events".into(),
                kind: "collection".into(),
                documents: 1,
                bytes: 20,
                crc64: "0000000000000000".into(),
                status: CollectionStatus::Failed {
                    error: "cursor killed".into(),
                },
            },
        ],
        status: BackupStatus::Partial,
        chain: None,
    }
}

fn manifest_frame(json: &[u8]) -> Vec<u8> {
    let mut f = MANIFEST_FRAME_MAGIC.to_le_bytes().to_vec();
    f.extend_from_slice(&((MANIFEST_PREFIX.len() + json.len()) as u32).to_le_bytes());
    f.extend_from_slice(MANIFEST_PREFIX);
    f.extend_from_slice(json);
    f
}

/// Writes the generated seeds (run by hand after a format change, then commit them).
#[test]
#[ignore]
fn write_seeds() {
    let golden = std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/testdata/mongodump-100.8.0/timetrack.archive"),
    )
    .unwrap();
    let archive = small_archive();
    let mut seeds: Vec<(&str, String, Vec<u8>)> = vec![
        ("archive", "seed-ok-small".into(), archive.clone()),
        (
            "archive",
            "seed-bad-truncated-small".into(),
            archive[..archive.len() - 9].to_vec(),
        ),
        (
            "archive",
            "seed-bad-timetrack-head-4k".into(),
            golden[..4096].to_vec(),
        ),
        (
            "archive",
            "seed-bad-timetrack-head-16k".into(),
            golden[..16384].to_vec(),
        ),
    ];
    let empty = ArchiveWriter::new(Vec::new(), &header(), &[])
        .unwrap()
        .finish()
        .unwrap();
    seeds.push(("archive", "seed-ok-empty".into(), empty.clone()));
    // A future archive format, and a header claiming a 2 GiB document.
    let mut future = archive.clone();
    let at = future.windows(4).position(|w| w == b"0.1\0").unwrap();
    future[at..at + 3].copy_from_slice(b"9.9");
    seeds.push(("archive", "seed-bad-future-version".into(), future));
    let mut huge = archive[..4].to_vec();
    huge.extend_from_slice(&i32::MAX.to_le_bytes());
    huge.extend_from_slice(&archive[8..64]);
    seeds.push(("archive", "seed-bad-length-2gib".into(), huge));

    let m = manifest();
    let json = m.to_json();
    seeds.push(("manifest", "seed-ok-partial".into(), json.clone()));
    let mut complete = m.clone();
    complete.status = BackupStatus::Complete;
    complete.collections.truncate(1);
    seeds.push(("manifest", "seed-ok-complete".into(), complete.to_json()));
    let mut tera = m.clone();
    for c in &mut tera.collections {
        c.documents = u64::MAX;
        c.bytes = 5 << 40;
    }
    seeds.push((
        "manifest",
        "seed-ok-claims-terabytes".into(),
        tera.to_json(),
    ));
    let text = String::from_utf8(json.clone()).unwrap();
    seeds.push((
        "manifest",
        "seed-bad-newer-format".into(),
        text.replacen("\"format_version\":1", "\"format_version\":2", 1)
            .into_bytes(),
    ));
    seeds.push((
        "manifest",
        "seed-bad-negative-count".into(),
        text.replacen("\"documents\":3", "\"documents\":-3", 1)
            .into_bytes(),
    ));
    seeds.push((
        "manifest",
        "seed-bad-cut".into(),
        json[..json.len() / 2].to_vec(),
    ));

    let zstd_archive = zstd::encode_all(&archive[..], 3).unwrap();
    let mut payload = zstd_archive.clone();
    payload.extend_from_slice(&manifest_frame(&complete.to_json()));
    seeds.push(("container", "seed-ok-payload".into(), payload.clone()));
    seeds.push((
        "container",
        "seed-bad-no-manifest".into(),
        zstd_archive.clone(),
    ));
    let mut empty_payload = zstd::encode_all(&empty[..], 3).unwrap();
    empty_payload.extend_from_slice(&manifest_frame(&json));
    seeds.push(("container", "seed-ok-empty-archive".into(), empty_payload));
    seeds.push((
        "container",
        "seed-bad-cut-manifest".into(),
        payload[..payload.len() - 20].to_vec(),
    ));
    let mut trailing = payload.clone();
    trailing.extend_from_slice(b"more");
    seeds.push(("container", "seed-bad-trailing-bytes".into(), trailing));
    let mut claims = zstd_archive.clone();
    claims.extend_from_slice(&MANIFEST_FRAME_MAGIC.to_le_bytes());
    claims.extend_from_slice(&u32::MAX.to_le_bytes());
    claims.extend_from_slice(MANIFEST_PREFIX);
    seeds.push(("container", "seed-bad-manifest-claims-4gib".into(), claims));
    seeds.push((
        "container",
        "seed-bad-plain-archive".into(),
        archive.clone(),
    ));

    for (target, name, bytes) in seeds {
        let dir = corpus_dir(target);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::File::create(dir.join(name))
            .unwrap()
            .write_all(&bytes)
            .unwrap();
    }
}
