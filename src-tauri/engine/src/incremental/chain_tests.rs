//! Tests of the chain files and their merge: a table of two increments, a seeded model of a
//! database changing for two weeks backed up through the real walk, and every way a chain can
//! be refused. No server: archives are built in memory.

use std::collections::BTreeMap;
use std::path::Path;

use bson::oid::ObjectId;
use bson::{doc, Bson, Document, RawDocument};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::*;
use crate::archive::{ArchiveWriter, CollectionMetadata, Item as ArchiveItem};
use crate::incremental::{
    deleted_namespace, promote, Change, DiffError, Differ, IndexHeader, IndexReader, IndexWriter,
    SectionSummary,
};

const DB: &str = "app";

fn header(tool: &str) -> Header {
    Header {
        concurrent_collections: 1,
        version: "0.1".into(),
        server_version: "8.0.4".into(),
        tool_version: tool.into(),
    }
}

/// A collection with the `_id` index and one index per field of `indexed`.
fn collection(name: &str, indexed: &[&str]) -> Namespace {
    let mut indexes = vec![doc! { "v": 2, "key": { "_id": 1 }, "name": "_id_" }];
    for field in indexed {
        indexes.push(doc! { "v": 2, "key": { *field: 1 }, "name": format!("{field}_1") });
    }
    Namespace {
        db: DB.into(),
        collection: name.into(),
        kind: "collection".into(),
        size: 0,
        metadata: CollectionMetadata {
            options: Document::new(),
            indexes,
            uuid: Some(format!("{:0>32}", hex::encode(name))),
            collection_name: name.into(),
            kind: "collection".into(),
        },
    }
}

fn view(name: &str, on: &str) -> Namespace {
    Namespace {
        db: DB.into(),
        collection: name.into(),
        kind: "view".into(),
        size: 0,
        metadata: CollectionMetadata {
            options: doc! { "viewOn": on, "pipeline": [ { "$match": { "active": true } } ] },
            indexes: vec![],
            uuid: None,
            collection_name: name.into(),
            kind: "view".into(),
        },
    }
}

fn raw(d: &Document) -> Vec<u8> {
    let mut out = Vec::new();
    d.to_writer(&mut out).expect("serialize");
    out
}

fn key_of(raw: &[u8]) -> IdKey {
    IdKey::from_document(RawDocument::from_bytes(raw).expect("raw")).expect("key")
}

fn key(id: impl Into<Bson>) -> IdKey {
    IdKey::from_bson(&id.into()).expect("key")
}

fn oid(n: u8) -> ObjectId {
    let mut bytes = [0x65; 12];
    bytes[11] = n;
    ObjectId::from_bytes(bytes)
}

/// A database as the server holds it: its namespaces and each collection's documents by key.
#[derive(Clone, Default)]
struct State {
    namespaces: BTreeMap<String, Namespace>,
    docs: BTreeMap<String, BTreeMap<IdKey, Vec<u8>>>,
}

impl State {
    fn add(&mut self, ns: Namespace) {
        if holds_documents(&ns) {
            self.docs.entry(ns.collection.clone()).or_default();
        }
        self.namespaces.insert(ns.collection.clone(), ns);
    }

    fn drop_namespace(&mut self, name: &str) {
        self.namespaces.remove(name);
        self.docs.remove(name);
    }

    fn put(&mut self, collection: &str, d: Document) {
        let bytes = raw(&d);
        self.docs
            .get_mut(collection)
            .expect("collection exists")
            .insert(key_of(&bytes), bytes);
    }

    fn delete(&mut self, collection: &str, k: &IdKey) {
        self.docs.get_mut(collection).expect("collection").remove(k);
    }

    fn namespace_list(&self) -> Vec<Namespace> {
        self.namespaces.values().cloned().collect()
    }
}

/// The full backup of `state`: what a merged chain must be, byte for byte.
fn full_archive(header: &Header, state: &State) -> Vec<u8> {
    let mut w = IncrementWriter::full(Vec::new(), header, &state.namespace_list()).expect("full");
    let names: Vec<String> = w.collections().map(str::to_owned).collect();
    for name in names {
        w.begin_collection(&name).expect("begin");
        for bytes in state.docs[&name].values() {
            w.document(bytes).expect("document");
        }
        w.end_collection().expect("end");
    }
    w.finish().expect("finish")
}

/// One entry of a hand-written increment section.
enum Op {
    Del(IdKey),
    Doc(Document),
}

/// An increment of a database whose namespaces are `namespaces`; `sections` gives the ops of
/// the collections that changed (the others are written empty).
fn increment(header: &Header, namespaces: &[Namespace], sections: &[(&str, Vec<Op>)]) -> Vec<u8> {
    let mut w = IncrementWriter::new(Vec::new(), header, namespaces).expect("increment");
    let names: Vec<String> = w.collections().map(str::to_owned).collect();
    for name in names {
        w.begin_collection(&name).expect("begin");
        if let Some((_, ops)) = sections.iter().find(|(n, _)| *n == name) {
            for op in ops {
                match op {
                    Op::Del(k) => w.deleted(k).expect("deleted"),
                    Op::Doc(d) => w.document(&raw(d)).expect("document"),
                }
            }
        }
        w.end_collection().expect("end");
    }
    w.finish().expect("finish")
}

fn merge<T: AsRef<[u8]>>(files: &[T]) -> Result<(Vec<u8>, ChainSummary), ChainError> {
    let mut out = Vec::new();
    let sources: Vec<&[u8]> = files.iter().map(AsRef::as_ref).collect();
    let summary = merge_chain(sources, &mut out)?;
    Ok((out, summary))
}

/// An archive read back: header, prelude, and each namespace's documents in stream order.
#[derive(Debug, PartialEq)]
struct ReadBack {
    header: Header,
    namespaces: Vec<Namespace>,
    docs: Vec<Vec<Vec<u8>>>,
}

fn read_back(bytes: &[u8]) -> ReadBack {
    let mut reader = ArchiveReader::new(bytes).expect("an archive");
    let mut docs = vec![Vec::new(); reader.namespaces().len()];
    while let Some(item) = reader.next_item().expect("item") {
        if let ArchiveItem::Document { ns, raw } = item {
            docs[ns].push(raw);
        }
    }
    ReadBack {
        header: reader.header().clone(),
        namespaces: reader.namespaces().to_vec(),
        docs,
    }
}

/// Checks that `files` merge into exactly the full backup of `state` under `header`.
fn assert_merges_to<T: AsRef<[u8]>>(files: &[T], header: &Header, state: &State) -> ChainSummary {
    let (out, summary) = merge(files).expect("merge");
    let want = full_archive(header, state);
    // Read back first, for a readable failure; then the bytes.
    assert_eq!(read_back(&out), read_back(&want));
    assert!(
        out == want,
        "the merged archive differs from the full backup"
    );
    assert_eq!(summary.header, *header);
    assert_eq!(summary.bytes_written, out.len() as u64);
    for (name, docs) in &state.docs {
        assert_eq!(summary.documents(name), Some(docs.len() as u64), "{name}");
    }
    summary
}

/// The table: a full backup and two increments, with the state each backup was taken of.
struct Table {
    files: Vec<Vec<u8>>,
    headers: Vec<Header>,
    states: Vec<State>,
}

fn table() -> Table {
    // Day 0: two collections and a view.
    let mut s0 = State::default();
    s0.add(collection("projects", &[]));
    s0.add(collection("users", &["email"]));
    s0.add(view("activeUsers", "users"));
    for i in 1..=4 {
        s0.put("projects", doc! { "_id": i, "name": format!("p{i}") });
    }
    s0.put("users", doc! { "_id": "ann", "active": true });
    s0.put("users", doc! { "_id": "bob", "active": false });
    for n in [10, 20, 30] {
        s0.put(
            "users",
            doc! { "_id": oid(n), "active": true, "n": i32::from(n) },
        );
    }
    let h0 = header("day-0");
    let full = full_archive(&h0, &s0);

    // Day 1: users updated, inserted and deleted; a new collection; an index on projects.
    let mut s1 = s0.clone();
    s1.add(collection("projects", &["name"]));
    s1.add(collection("tags", &[]));
    let bob = doc! { "_id": "bob", "active": true };
    let cid = doc! { "_id": "cid", "active": true };
    let o30 = doc! { "_id": oid(30), "active": false, "n": 31 };
    let o40 = doc! { "_id": oid(40), "active": true, "n": 40 };
    let tags: Vec<Document> = (1..=3)
        .map(|i| doc! { "_id": i, "t": format!("t{i}") })
        .collect();
    for d in [&bob, &cid, &o30, &o40] {
        s1.put("users", d.clone());
    }
    s1.delete("users", &key(oid(10)));
    for d in &tags {
        s1.put("tags", d.clone());
    }
    let h1 = header("day-1");
    let inc1 = increment(
        &h1,
        &s1.namespace_list(),
        &[
            (
                "users",
                vec![
                    Op::Doc(bob),
                    Op::Doc(cid),
                    Op::Del(key(oid(10))),
                    Op::Doc(o30),
                    Op::Doc(o40),
                ],
            ),
            ("tags", tags.into_iter().map(Op::Doc).collect()),
        ],
    );

    // Day 2: projects dropped; documents inserted on day 1 deleted; a deleted _id back.
    let mut s2 = s1.clone();
    s2.drop_namespace("projects");
    let o10 = doc! { "_id": oid(10), "active": true, "n": 100 };
    let t4 = doc! { "_id": 4_i64, "t": "t4" };
    s2.delete("users", &key("cid"));
    s2.delete("users", &key(oid(40)));
    s2.put("users", o10.clone());
    s2.delete("tags", &key(2));
    s2.put("tags", t4.clone());
    let h2 = header("day-2");
    let inc2 = increment(
        &h2,
        &s2.namespace_list(),
        &[
            ("tags", vec![Op::Del(key(2)), Op::Doc(t4)]),
            (
                "users",
                vec![Op::Del(key("cid")), Op::Doc(o10), Op::Del(key(oid(40)))],
            ),
        ],
    );

    Table {
        files: vec![full, inc1, inc2],
        headers: vec![h0, h1, h2],
        states: vec![s0, s1, s2],
    }
}

#[test]
fn a_chain_of_two_increments_merges_into_the_full_backup_of_its_newest_state() {
    let t = table();
    let files: Vec<&[u8]> = t.files.iter().map(Vec::as_slice).collect();

    let summary = assert_merges_to(&files, &t.headers[2], &t.states[2]);
    let names: Vec<(&str, &str, u64)> = summary
        .namespaces
        .iter()
        .map(|n| (n.name.as_str(), n.kind.as_str(), n.summary.documents))
        .collect();
    assert_eq!(
        names,
        vec![
            ("activeUsers", "view", 0),
            ("tags", "collection", 3),
            ("users", "collection", 5)
        ]
    );

    // The merged output, read back, spelled out.
    let back = read_back(&merge(&files).expect("merge").0);
    assert_eq!(back.header.tool_version, "day-2");
    let prelude: Vec<&str> = back
        .namespaces
        .iter()
        .map(|n| n.collection.as_str())
        .collect();
    assert_eq!(prelude, vec!["activeUsers", "tags", "users"]);
    let users: Vec<Document> = back.docs[2]
        .iter()
        .map(|r| Document::from_reader(r.as_slice()).expect("doc"))
        .collect();
    assert_eq!(
        users,
        vec![
            doc! { "_id": "ann", "active": true },
            doc! { "_id": "bob", "active": true },
            doc! { "_id": oid(10), "active": true, "n": 100 },
            doc! { "_id": oid(20), "active": true, "n": 20 },
            doc! { "_id": oid(30), "active": false, "n": 31 },
        ]
    );
    let tags: Vec<Document> = back.docs[1]
        .iter()
        .map(|r| Document::from_reader(r.as_slice()).expect("doc"))
        .collect();
    assert_eq!(
        tags,
        vec![
            doc! { "_id": 1, "t": "t1" },
            doc! { "_id": 3, "t": "t3" },
            doc! { "_id": 4_i64, "t": "t4" },
        ]
    );

    // Each prefix of the chain merges into the backup it ends with; the index added on day 1
    // is in the day-1 merge's metadata.
    let summary = assert_merges_to(&files[..2], &t.headers[1], &t.states[1]);
    assert_eq!(summary.documents("projects"), Some(4));
    let day1 = read_back(&merge(&files[..2]).expect("merge").0);
    let projects = day1
        .namespaces
        .iter()
        .find(|n| n.collection == "projects")
        .expect("projects");
    assert_eq!(projects.metadata.indexes.len(), 2);
    assert_merges_to(&files[..1], &t.headers[0], &t.states[0]);
}

#[test]
fn an_increment_is_laid_out_as_documented() {
    let t = table();
    let back = read_back(&t.files[1]);
    let prelude: Vec<(&str, &str)> = back
        .namespaces
        .iter()
        .map(|n| (n.collection.as_str(), n.kind.as_str()))
        .collect();
    assert_eq!(
        prelude,
        vec![
            ("activeUsers", "view"),
            ("__driveback_deleted.projects", "collection"),
            ("projects", "collection"),
            ("__driveback_deleted.tags", "collection"),
            ("tags", "collection"),
            ("__driveback_deleted.users", "collection"),
            ("users", "collection"),
        ]
    );
    assert_eq!(back.namespaces[5].metadata, CollectionMetadata::default());
    assert_eq!(back.namespaces[6].metadata.indexes.len(), 2);
    // The deletion is `{_id: <value>}`; nothing changed in projects.
    assert_eq!(back.docs[5], vec![raw(&doc! { "_id": oid(10) })]);
    assert!(back.docs[1].is_empty() && back.docs[2].is_empty());
    assert_eq!(back.docs[6].len(), 4);

    // In stream order, the users' deletions and documents come in one ascending _id order.
    let mut reader = ArchiveReader::new(t.files[1].as_slice()).expect("read");
    let mut users = Vec::new();
    while let Some(item) = reader.next_item().expect("item") {
        if let ArchiveItem::Document {
            ns: ns @ (5 | 6),
            raw,
        } = item
        {
            users.push((ns, key_of(&raw)));
        }
    }
    assert_eq!(
        users,
        vec![
            (6, key("bob")),
            (6, key("cid")),
            (5, key(oid(10))),
            (6, key(oid(30))),
            (6, key(oid(40))),
        ]
    );
}

#[test]
fn a_collection_dropped_and_created_again_starts_over() {
    let mut s0 = State::default();
    s0.add(collection("c", &[]));
    s0.add(collection("keep", &[]));
    for i in 1..=3 {
        s0.put("c", doc! { "_id": i, "old": true });
    }
    s0.put("keep", doc! { "_id": 1 });
    let h = header("t");
    let full = full_archive(&h, &s0);

    // Day 1: c dropped. Day 2: c created again: all its documents are new, no deletions.
    let mut s1 = s0.clone();
    s1.drop_namespace("c");
    let inc1 = increment(&h, &s1.namespace_list(), &[]);
    let mut s2 = s1.clone();
    s2.add(collection("c", &["x"]));
    s2.put("c", doc! { "_id": 2, "old": false });
    let inc2 = increment(
        &h,
        &s2.namespace_list(),
        &[("c", vec![Op::Doc(doc! { "_id": 2, "old": false })])],
    );
    assert_merges_to(&[&full, &inc1, &inc2], &h, &s2);

    // c replaced by a view of the same name, then by a collection again.
    let mut s1 = s0.clone();
    s1.drop_namespace("c");
    s1.add(view("c", "keep"));
    let inc1 = increment(&h, &s1.namespace_list(), &[]);
    assert_merges_to(&[&full, &inc1], &h, &s1);
    assert_merges_to(&[&full, &inc1, &inc2], &h, &s2);
}

// ---------------------------------------------------------------------------------------------
// The model: a database changing for two weeks, backed up every day through the real walk.

fn random_string(rng: &mut StdRng, max: usize) -> String {
    const ALPHABET: [char; 8] = ['a', 'b', 'z', 'A', '0', '\0', 'é', '😀'];
    let n = rng.gen_range(0..=max);
    (0..n)
        .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())])
        .collect()
}

/// A random `_id`: a number (of any numeric type), an ObjectId (mostly growing with the day)
/// or a string.
fn random_id(rng: &mut StdRng, day: u32) -> Bson {
    match rng.gen_range(0..10) {
        0..=3 => {
            let v: i64 = rng.gen_range(-500..500);
            match rng.gen_range(0..3) {
                0 => Bson::Int32(v as i32),
                1 => Bson::Int64(v),
                _ => Bson::Double(v as f64),
            }
        }
        4..=7 => {
            let mut bytes: [u8; 12] = rng.gen();
            if rng.gen_bool(0.8) {
                bytes[..4].copy_from_slice(&(1_700_000_000 + day * 86_400).to_be_bytes());
            }
            Bson::ObjectId(ObjectId::from_bytes(bytes))
        }
        _ => Bson::String(random_string(rng, 5)),
    }
}

fn random_doc(rng: &mut StdRng, id: Bson, day: u32) -> Document {
    let mut d = doc! { "_id": id, "day": day as i32, "v": rng.gen_range(0..3) };
    if rng.gen_bool(0.6) {
        d.insert("note", random_string(rng, 10));
    }
    d
}

/// A day of changes to one collection: updates (some writing the same bytes again), deletes and
/// inserts, at rates that vary by day.
fn mutate(rng: &mut StdRng, state: &mut State, name: &str, day: u32) {
    let keys: Vec<IdKey> = state.docs[name].keys().cloned().collect();
    let delete_rate = match rng.gen_range(0..8) {
        0 => 0.0,
        1 => 0.6,
        _ => 0.05,
    };
    for k in &keys {
        let r: f64 = rng.gen();
        if r < delete_rate {
            state.delete(name, k);
        } else if r < delete_rate + 0.1 {
            let id = Document::from_reader(state.docs[name][k].as_slice())
                .expect("doc")
                .get("_id")
                .cloned()
                .expect("_id");
            if rng.gen_bool(0.2) {
                continue; // the same bytes written again: unchanged
            }
            let d = random_doc(rng, id, day);
            state.put(name, d);
        }
    }
    for _ in 0..rng.gen_range(0..=keys.len() / 8 + 4) {
        let id = random_id(rng, day);
        if !state.docs[name].contains_key(&key(id.clone())) {
            let d = random_doc(rng, id, day);
            state.put(name, d);
        }
    }
}

/// Why a day's backup failed (the fields are shown by the test's panic message).
#[derive(Debug)]
#[allow(dead_code)]
enum StepError {
    Diff(DiffError),
    Write(IncrementError),
}

impl From<DiffError> for StepError {
    fn from(e: DiffError) -> Self {
        StepError::Diff(e)
    }
}

impl From<IncrementError> for StepError {
    fn from(e: IncrementError) -> Self {
        StepError::Write(e)
    }
}

/// The day's backup of `state`, as the backup will take it: each collection walked against its
/// previous index with [`Differ`], deletions and changed documents written as the walk finds
/// them, the next index promoted after the file is complete; the indexes of collections no
/// longer in the database are removed.
fn backup(
    dir: &Path,
    day: u32,
    header: &Header,
    state: &State,
) -> Result<(Vec<u8>, SectionSummary), StepError> {
    let namespaces = state.namespace_list();
    let mut w = if day == 0 {
        IncrementWriter::full(Vec::new(), header, &namespaces)?
    } else {
        IncrementWriter::new(Vec::new(), header, &namespaces)?
    };
    let names: Vec<String> = w.collections().map(str::to_owned).collect();
    let mut promotions = Vec::new();
    let mut total = SectionSummary::default();
    for name in &names {
        let current = dir.join(format!("{name}.idx"));
        let next = dir.join(format!("{name}.idx.next"));
        let old = if day > 0 && current.exists() {
            Some(IndexReader::open(&current).map_err(DiffError::OldIndex)?)
        } else {
            None
        };
        let index_header = IndexHeader {
            backup_id: format!("day-{day}"),
            backup_sha256: None,
            collection: name.clone(),
        };
        let new = IndexWriter::create(&next, &index_header).map_err(DiffError::NewIndex)?;
        let mut differ = Differ::new(old, new)?;
        w.begin_collection(name)?;
        for bytes in state.docs[name].values() {
            let doc = RawDocument::from_bytes(bytes).expect("raw");
            let change = differ.push(doc, |k| w.deleted(&k).map_err(StepError::Write))?;
            if change != Change::Unchanged {
                w.document(bytes)?;
            }
        }
        differ.finish(|k| w.deleted(&k).map_err(StepError::Write))?;
        let summary = w.end_collection()?;
        if day == 0 {
            assert_eq!(summary.documents.documents, state.docs[name].len() as u64);
        }
        total.documents.documents += summary.documents.documents;
        total.deleted.documents += summary.deleted.documents;
        promotions.push((next, current));
    }
    let bytes = w.finish()?;
    for (next, current) in promotions {
        promote(&next, &current).map_err(DiffError::NewIndex)?;
    }
    for entry in std::fs::read_dir(dir).expect("read dir") {
        let path = entry.expect("entry").path();
        let stem = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".idx"))
            .map(str::to_owned);
        if let Some(stem) = stem {
            if !names.contains(&stem) {
                std::fs::remove_file(&path).expect("remove a dropped collection's index");
            }
        }
    }
    Ok((bytes, total))
}

fn run_model(seed: u64, days: u32) {
    let mut rng = StdRng::seed_from_u64(seed);
    let dir = tempfile::tempdir().expect("tempdir");
    let mut state = State::default();
    for name in ["alpha", "beta", "gamma"] {
        state.add(collection(name, &[]));
        for _ in 0..rng.gen_range(0..150) {
            let id = random_id(&mut rng, 0);
            let d = random_doc(&mut rng, id, 0);
            state.put(name, d);
        }
    }
    state.add(view("alphaView", "alpha"));

    let mut files: Vec<Vec<u8>> = Vec::new();
    // Over the increments: documents written, documents deleted, documents in the database.
    let (mut written, mut deleted, mut held) = (0, 0, 0);
    for day in 0..=days {
        if day > 0 {
            let names: Vec<String> = state.docs.keys().cloned().collect();
            for name in &names {
                mutate(&mut rng, &mut state, name, day);
            }
            match day {
                // The shape changes too: an index, a dropped and re-created collection, a new
                // view, a collection emptied.
                3 => state.add(collection("beta", &["v"])),
                5 => state.drop_namespace("gamma"),
                6 => state.add(view("betaView", "beta")),
                9 => {
                    state.add(collection("gamma", &["day"]));
                    for _ in 0..rng.gen_range(1..40) {
                        let id = random_id(&mut rng, day);
                        let d = random_doc(&mut rng, id, day);
                        state.put("gamma", d);
                    }
                }
                11 => {
                    let keys: Vec<IdKey> = state.docs["beta"].keys().cloned().collect();
                    for k in &keys {
                        state.delete("beta", k);
                    }
                }
                12 => state.drop_namespace("alphaView"),
                _ => {}
            }
        }
        let h = header(&format!("day-{day}"));
        let (file, summary) = backup(dir.path(), day, &h, &state)
            .unwrap_or_else(|e| panic!("seed {seed} day {day}: {e:?}"));
        files.push(file);
        if day > 0 {
            written += summary.documents.documents;
            deleted += summary.deleted.documents;
            held += state.docs.values().map(|d| d.len() as u64).sum::<u64>();
        }

        let chain: Vec<&[u8]> = files.iter().map(Vec::as_slice).collect();
        let (out, summary) = merge(&chain).unwrap_or_else(|e| panic!("seed {seed} day {day}: {e}"));
        let want = full_archive(&h, &state);
        assert!(
            out == want,
            "seed {seed} day {day}: the merged chain differs from the full backup"
        );
        for (name, docs) in &state.docs {
            assert_eq!(summary.documents(name), Some(docs.len() as u64));
        }
    }
    // The walk really wrote increments: deletions, and fewer documents than the database held.
    assert!(deleted > 0, "seed {seed}: no deletion in {days} days");
    assert!(
        written > 0 && written < held,
        "seed {seed}: {written} written of {held}"
    );
}

#[test]
fn a_randomized_two_weeks_of_increments_merge_into_each_days_full_backup() {
    for seed in [7, 42, 0x0D81_5EED] {
        run_model(seed, 15);
    }
}

// ---------------------------------------------------------------------------------------------
// Refusals.

/// A plain archive of namespaces `nss` (in the order given) with `writes` (namespace index,
/// document, in ascending namespace order) in the order given, each namespace ended before the
/// next one's data, as the layout has it.
fn hand_made(nss: &[Namespace], writes: &[(usize, Document)]) -> Vec<u8> {
    let mut w = ArchiveWriter::new(Vec::new(), &header("hand"), nss).expect("writer");
    let mut ended = 0;
    for (ns, d) in writes {
        while ended < *ns {
            w.end_namespace(ended).expect("end");
            ended += 1;
        }
        w.write_document(*ns, &raw(d)).expect("write");
    }
    w.finish().expect("finish")
}

fn deletions_of(name: &str) -> Namespace {
    Namespace {
        db: DB.into(),
        collection: deleted_namespace(name),
        kind: "collection".into(),
        size: 0,
        metadata: CollectionMetadata::default(),
    }
}

fn good_full() -> Vec<u8> {
    let mut s = State::default();
    s.add(collection("a", &[]));
    s.add(collection("b", &[]));
    s.put("a", doc! { "_id": 1 });
    s.put("b", doc! { "_id": 1 });
    full_archive(&header("full"), &s)
}

#[test]
fn a_prelude_out_of_name_order_is_refused() {
    let bad = hand_made(&[collection("b", &[]), collection("a", &[])], &[]);
    let err = merge(&[&good_full(), &bad]).expect_err("refused");
    assert!(
        matches!(&err, ChainError::PreludeOrder { index: 1, collection } if collection == "a"),
        "{err:?}"
    );

    for nss in [
        vec![deletions_of("a"), collection("b", &[])],
        vec![deletions_of("a"), deletions_of("a2"), collection("a", &[])],
        vec![collection("a", &[]), deletions_of("a")],
        vec![deletions_of("v"), view("v", "a")],
    ] {
        let bad = hand_made(&nss, &[]);
        let err = merge(&[&good_full(), &bad]).expect_err("refused");
        assert!(
            matches!(err, ChainError::StrayDeletions { index: 1, .. }),
            "{err:?}"
        );
    }
}

#[test]
fn sections_out_of_name_order_or_interleaved_are_refused() {
    let nss = [collection("a", &[]), collection("b", &[])];
    // b's data before a's.
    let mut w = ArchiveWriter::new(Vec::new(), &header("hand"), &nss).expect("writer");
    w.write_document(1, &raw(&doc! { "_id": 1 })).expect("b");
    w.end_namespace(1).expect("end b");
    w.write_document(0, &raw(&doc! { "_id": 1 })).expect("a");
    let swapped = w.finish().expect("finish");
    // a and b interleaved.
    let mut w = ArchiveWriter::new(Vec::new(), &header("hand"), &nss).expect("writer");
    for (ns, id) in [(0, 1), (1, 1), (0, 2)] {
        w.write_document(ns, &raw(&doc! { "_id": id }))
            .expect("write");
    }
    let interleaved = w.finish().expect("finish");
    let full = good_full();
    for bad in [swapped, interleaved] {
        for files in [vec![bad.as_slice()], vec![full.as_slice(), bad.as_slice()]] {
            let index = files.len() - 1;
            let err = merge(&files).expect_err("refused");
            assert!(
                matches!(&err, ChainError::SectionOrder { index: i, namespace, section }
                    if *i == index && namespace == "b" && section == "a"),
                "{err:?}"
            );
        }
    }
}

#[test]
fn documents_out_of_id_order_are_refused() {
    let nss = [collection("a", &[]), collection("b", &[])];
    let descending = hand_made(&nss, &[(0, doc! { "_id": 2 }), (0, doc! { "_id": 1 })]);
    let twice = hand_made(&nss, &[(1, doc! { "_id": 1 }), (1, doc! { "_id": 1.0 })]);
    let full = good_full();
    for (bad, collection) in [(&descending, "a"), (&twice, "b")] {
        let err = merge(&[&full, bad]).expect_err("refused");
        assert!(
            matches!(&err, ChainError::OutOfOrder { index: 1, collection: c } if c == collection),
            "{err:?}"
        );
    }

    // A deletion and a document of the same _id in one increment.
    let nss = [
        deletions_of("a"),
        collection("a", &[]),
        collection("b", &[]),
    ];
    let both = hand_made(
        &nss,
        &[(0, doc! { "_id": 1 }), (1, doc! { "_id": 1, "x": 1 })],
    );
    let err = merge(&[&full, &both]).expect_err("refused");
    assert!(
        matches!(&err, ChainError::OutOfOrder { index: 1, collection } if collection == "a"),
        "{err:?}"
    );
}

#[test]
fn an_unsupported_or_missing_id_is_refused() {
    let nss = [collection("a", &[]), collection("b", &[])];
    for (d, check) in [
        (doc! { "_id": 1.5 }, "unsupported"),
        (doc! { "x": 1 }, "missing"),
    ] {
        let bad = hand_made(&nss, &[(1, d)]);
        let err = merge(&[&bad]).expect_err("refused");
        let ok = match (&err, check) {
            (
                ChainError::Id {
                    index: 0,
                    collection,
                    error: IdKeyError::Unsupported { .. },
                },
                "unsupported",
            )
            | (
                ChainError::Id {
                    index: 0,
                    collection,
                    error: IdKeyError::MissingId,
                },
                "missing",
            ) => collection == "b",
            _ => false,
        };
        assert!(ok, "{err:?}");
    }
}

#[test]
fn a_truncated_increment_fails_the_merge_at_every_length() {
    let t = table();
    let (full, inc1, inc2) = (&t.files[0], &t.files[1], &t.files[2]);
    for cut in 0..inc1.len() {
        let err = merge(&[full.as_slice(), &inc1[..cut], inc2.as_slice()])
            .expect_err("a truncated file is refused");
        assert!(
            matches!(
                err,
                ChainError::Archive {
                    index: 1,
                    error: ArchiveError::Truncated { .. }
                }
            ),
            "cut at {cut}: {err:?}"
        );
    }
}

#[test]
fn a_corrupt_document_is_found_even_in_a_collection_dropped_since() {
    let mut s0 = State::default();
    s0.add(collection("dropped", &[]));
    s0.add(collection("kept", &[]));
    s0.put("dropped", doc! { "_id": 1, "text": "MARKER" });
    s0.put("kept", doc! { "_id": 1 });
    let h = header("t");
    let mut full = full_archive(&h, &s0);
    let mut s1 = s0.clone();
    s1.drop_namespace("dropped");
    let inc = increment(&h, &s1.namespace_list(), &[]);
    assert_merges_to(&[&full, &inc], &h, &s1);

    let at = full
        .windows(6)
        .position(|w| w == b"MARKER")
        .expect("the marker is in the archive");
    full[at] = b'N';
    let err = merge(&[&full, &inc]).expect_err("refused");
    assert!(
        matches!(
            &err,
            ChainError::Archive { index: 0, error: ArchiveError::CrcMismatch { namespace } }
                if namespace == "app.dropped"
        ),
        "{err:?}"
    );
}

#[test]
fn files_of_another_database_or_no_file_are_refused() {
    let mut other = collection("a", &[]);
    other.db = "elsewhere".into();
    let bad = hand_made(&[other], &[]);
    let err = merge(&[&good_full(), &bad]).expect_err("refused");
    assert!(
        matches!(&err, ChainError::Database { index: 1, expected, found }
            if expected == DB && found == "elsewhere"),
        "{err:?}"
    );
    assert!(matches!(merge::<&[u8]>(&[]), Err(ChainError::NoSources)));
    let err = merge(&[b"not an archive".as_slice()]).expect_err("refused");
    assert!(
        matches!(
            err,
            ChainError::Archive {
                index: 0,
                error: ArchiveError::NotAnArchive
            }
        ),
        "{err:?}"
    );
}

#[test]
fn a_database_collection_with_the_reserved_prefix_cannot_be_backed_up_incrementally() {
    let mut s = State::default();
    s.add(collection("a", &[]));
    s.add(collection("__driveback_deleted.x", &[]));
    for r in [
        IncrementWriter::new(Vec::new(), &header("t"), &s.namespace_list()),
        IncrementWriter::full(Vec::new(), &header("t"), &s.namespace_list()),
    ] {
        assert!(matches!(
            r,
            Err(IncrementError::ReservedName { collection }) if collection == "__driveback_deleted.x"
        ));
    }
}
