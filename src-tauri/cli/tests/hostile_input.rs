//! Crafted inputs, end to end through the real CLI and the real server: odd and very long
//! namespace names, files at a folder destination that look like backups but are not committed
//! or whose commit mark was tampered with, a manifest claiming terabytes, a mongodump archive of
//! a newer format. Each ends in one clear error line (or a correct round trip) and loses nothing.
//! (A wrong passphrase, another destination's key, truncated and flipped files and a newer
//! backup format are in `bad_input.rs`.)

mod common;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use bson::doc;
use common::*;
use driveback_engine::container::{BackupReader, BackupWriter};
use driveback_engine::keys::BackupKey;
use driveback_engine::manifest::Manifest;

type Snapshot = Vec<(
    String,
    String,
    bson::Document,
    Vec<bson::Document>,
    Vec<Vec<u8>>,
)>;

/// Prints one line of the hostile-input tally that `scripts/reliability-report` collects.
fn tally(case: &str, inputs: usize) {
    println!("RELIABILITY hostile-input | {case} | {inputs} | 0");
}

/// Every file under `dir`, recursively, relative to it.
fn tree(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                todo.push(p.clone());
            }
            out.push(p.strip_prefix(dir).unwrap().to_path_buf());
        }
    }
    out.sort();
    out
}

/// A target database with known contents, to check that failed restores leave it alone.
async fn target_with_data(client: &mongodb::Client, prefix: &str) -> (String, Snapshot) {
    let target = mongo().fresh_db(prefix);
    let t = client.database(&target);
    t.collection("orders")
        .insert_many((0..20).map(|i| doc! { "_id": i, "live": true }))
        .await
        .unwrap();
    let before = snapshot(client, &target).await;
    (target, before)
}

/// Archive namespaces of plain collections of database `x`.
fn plain_namespaces(names: &[&str]) -> Vec<driveback_engine::archive::Namespace> {
    use driveback_engine::archive::{CollectionMetadata, Namespace};
    names
        .iter()
        .map(|c| Namespace {
            db: "x".into(),
            collection: c.to_string(),
            kind: "collection".into(),
            size: 0,
            metadata: CollectionMetadata {
                collection_name: c.to_string(),
                kind: "collection".into(),
                ..Default::default()
            },
        })
        .collect()
}

async fn assert_unchanged(client: &mongodb::Client, db: &str, before: &Snapshot) {
    let after = snapshot(client, db).await;
    assert!(
        after.iter().all(|c| !c.0.starts_with("driveback_staging_")),
        "no staging collection is left in {db}"
    );
    assert!(&after == before, "{db} is unchanged");
}

#[tokio::test(flavor = "multi_thread")]
async fn odd_and_long_collection_names_round_trip_and_stay_inside() {
    let server = mongo();
    let client = server.client().await;
    let source = server.fresh_db("names_src");
    let long = "L".repeat(230);
    let wanted = [
        "a/b",
        "a_b",
        "back\\slash",
        "..",
        "../../escape",
        "dots..in..name",
        "-leading-dash",
        "ünïcødé 名前",
        long.as_str(),
    ];
    let db = client.database(&source);
    let mut created = Vec::new();
    for (i, name) in wanted.iter().enumerate() {
        let r = db
            .collection(name)
            .insert_many((0..3).map(|j| doc! { "_id": j, "from": *name, "i": i as i32 }))
            .await;
        match r {
            Ok(_) => created.push(name.to_string()),
            Err(e) => println!("the server refuses the collection name {name:?}: {e}"),
        }
    }
    assert!(
        created.len() >= 6,
        "the server takes most of these names: {created:?}"
    );
    let before_src = snapshot(&client, &source).await;

    let env = Env::new();
    let backup = env.backup(server.uri(), &source);
    assert_eq!(
        backup["documents"].as_u64(),
        Some(3 * created.len() as u64),
        "{backup}"
    );
    // The destination holds the backup, its commit mark and the key files: nothing else, no
    // folder, whatever the names inside.
    let files = tree(&env.dest_path());
    assert_eq!(files.len(), 4, "{files:?}");
    assert!(files.iter().all(|p| p.components().count() == 1));

    let target = server.fresh_db("names_dst");
    env.ok(&restore_args("latest", &env.dest(), &target));
    let restored = snapshot(&client, &target).await;
    assert_eq!(restored, before_src, "every collection came back exactly");
    assert_eq!(snapshot(&client, &source).await, before_src);

    // Export as one Extended JSON file per collection: every file lands inside the folder.
    let out = env.dir.path().join("export");
    env.ok(&[
        "export",
        "--backup",
        "latest",
        "--dest",
        &env.dest(),
        "--out",
        out.to_str().unwrap(),
        "--format",
        "ejson",
    ]);
    let exported = tree(&out);
    assert_eq!(
        exported.len(),
        created.len(),
        "one file per collection: {exported:?}"
    );
    for f in &exported {
        let text = std::fs::read_to_string(out.join(f)).unwrap();
        assert_eq!(text.lines().count(), 3, "{}: {text}", f.display());
    }
    assert!(exported
        .iter()
        .all(|p| p.components().count() == 1 && p.extension().is_some_and(|e| e == "ejson")));
    let outside: Vec<PathBuf> = tree(env.dir.path())
        .into_iter()
        // (The run history of each backup goes to the test's own config folder.)
        .filter(|p| {
            !p.starts_with("export") && !p.starts_with("backups") && !p.starts_with("config")
        })
        .collect();
    assert!(outside.is_empty(), "nothing written elsewhere: {outside:?}");
    tally(
        "collection names with / \\ .. and 230 characters: backup, restore, export",
        created.len(),
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn odd_database_names_make_plain_file_names() {
    let server = mongo();
    let client = server.client().await;
    let suffix = format!("{:08x}", rand::random::<u32>());
    let candidates = [
        format!("a..b-{suffix}"),
        format!("{}{suffix}", "d".repeat(52)),
        format!("ünï-{suffix}"),
        format!("sp ace-{suffix}"),
    ];
    let env = Env::new();
    let mut tried = 0;
    for name in &candidates {
        if let Err(e) = client
            .database(name)
            .collection("c")
            .insert_one(doc! { "_id": 1 })
            .await
        {
            println!("the server refuses the database name {name:?}: {e}");
            continue;
        }
        tried += 1;
        let b = env.backup(server.uri(), name);
        let file = b["file"].as_str().unwrap().to_string();
        assert!(
            file.starts_with("driveback-")
                && file.ends_with(".mdbk")
                && file.len() <= "driveback-".len() + 64 + 1 + 16 + 1 + 8 + 5
                && file
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c)),
            "{file}"
        );
        let target = server.fresh_db("dbname_dst");
        env.ok(&restore_args(
            b["id"].as_str().unwrap(),
            &env.dest(),
            &target,
        ));
        assert_eq!(
            raw_docs(&client, &target, "c").await,
            raw_docs(&client, name, "c").await
        );
        client.database(name).drop().await.unwrap();
    }
    assert!(tried >= 2, "the server takes some of these database names");
    assert!(tree(&env.dest_path())
        .iter()
        .all(|p| p.components().count() == 1));
    tally(
        "database names with dots, spaces, non-ASCII, 60 characters",
        tried,
    );
}

/// A committed backup of a small database, and the key that opens it.
struct Made {
    env: Env,
    source: String,
    id: String,
    file: PathBuf,
}

async fn made(prefix: &str) -> Made {
    let server = mongo();
    let client = server.client().await;
    let source = server.fresh_db(prefix);
    client
        .database(&source)
        .collection("orders")
        .insert_many((0..500).map(|i| doc! { "_id": i, "v": format!("{i:0>40}") }))
        .await
        .unwrap();
    let env = Env::new();
    let b = env.backup(server.uri(), &source);
    let id = b["id"].as_str().unwrap().to_string();
    let file = env.dest_path().join(b["file"].as_str().unwrap());
    Made {
        env,
        source,
        id,
        file,
    }
}

impl Made {
    fn key(&self) -> BackupKey {
        let wrapped = std::fs::read(self.env.dest_path().join("driveback-key.age")).unwrap();
        BackupKey::unwrap(&wrapped, &secrecy::SecretString::from(PASSPHRASE)).unwrap()
    }

    fn listed(&self) -> Vec<String> {
        let out = self.env.ok(&["list", "--dest", &self.env.dest(), "--json"]);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        v["backups"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b["id"].as_str().unwrap().to_string())
            .collect()
    }

    fn sidecar(&self) -> PathBuf {
        PathBuf::from(format!("{}.json", self.file.display()))
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn files_that_look_like_backups_but_are_not_committed_are_never_used() {
    let m = made("uncommitted").await;
    let client = mongo().client().await;
    let (target, before) = target_with_data(&client, "uncommitted_dst").await;
    let dest = m.env.dest_path();
    let bytes = std::fs::read(&m.file).unwrap();
    let sidecar: serde_json::Value =
        serde_json::from_slice(&std::fs::read(m.sidecar()).unwrap()).unwrap();
    let mut tried = 0;

    // A complete backup file copied in without its commit mark, and a half-written one.
    let copy = "driveback-shop-20300101T000000Z-0badc0de.mdbk";
    std::fs::write(dest.join(copy), &bytes).unwrap();
    let half = "driveback-shop-20300102T000000Z-0badc0df.mdbk";
    std::fs::write(dest.join(half), &bytes[..bytes.len() / 2]).unwrap();
    // Commit marks that lie: about the size, about which file they mark, a path outside the
    // folder, a sidecar without a file.
    let lie = |name: &str, edit: &dyn Fn(&mut serde_json::Value)| {
        let mut s = sidecar.clone();
        edit(&mut s);
        std::fs::write(dest.join(name), serde_json::to_vec(&s).unwrap()).unwrap();
    };
    std::fs::write(
        dest.join("driveback-shop-20300103T000000Z-0badc0e0.mdbk"),
        &bytes,
    )
    .unwrap();
    lie("driveback-shop-20300103T000000Z-0badc0e0.mdbk.json", &|s| {
        s["file"] = "driveback-shop-20300103T000000Z-0badc0e0.mdbk".into();
        s["bytes"] = (bytes.len() as u64 + 1).into();
        s["summary"]["id"] = "0badc0e0".into();
    });
    lie("driveback-shop-20300104T000000Z-0badc0e1.mdbk.json", &|s| {
        s["summary"]["id"] = "0badc0e1".into();
    });
    lie("driveback-shop-20300105T000000Z-0badc0e2.mdbk.json", &|s| {
        s["file"] = "../outside.mdbk".into();
        s["summary"]["id"] = "0badc0e2".into();
    });
    lie("driveback-shop-20300106T000000Z-0badc0e3.mdbk.json", &|s| {
        s["file"] = "driveback-shop-20300106T000000Z-0badc0e3.mdbk".into();
        s["summary"]["id"] = "0badc0e3".into();
    });
    std::fs::write(dest.parent().unwrap().join("outside.mdbk"), &bytes).unwrap();

    assert_eq!(m.listed(), vec![m.id.clone()], "only the committed backup");
    for id in [
        "0badc0de", "0badc0df", "0badc0e0", "0badc0e1", "0badc0e2", "0badc0e3", copy, half,
    ] {
        let line = one_error_line(&m.env.cli(&restore_args(id, &m.env.dest(), &target)));
        assert!(line.contains("no backup"), "{id}: {line}");
        tried += 1;
    }
    assert_unchanged(&client, &target, &before).await;
    // `latest` is the committed backup, not the newer-looking files.
    m.env.ok(&restore_args("latest", &m.env.dest(), &target));
    assert_eq!(
        raw_docs(&client, &target, "orders").await,
        raw_docs(&client, &m.source, "orders").await
    );
    // None of those files was touched or removed by the runs.
    assert_eq!(std::fs::read(dest.join(copy)).unwrap(), bytes);
    assert!(dest.join(half).exists());
    tally(
        "files named like backups without a valid commit mark",
        tried,
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_backup_swapped_under_its_commit_mark_is_refused() {
    let a = made("swapped_a").await;
    let client = mongo().client().await;
    let (target, before) = target_with_data(&client, "swapped_dst").await;
    // The file changed under its commit mark, same size (someone with write access to the
    // folder, or a sync tool mixing up versions).
    let bytes = std::fs::read(&a.file).unwrap();
    let mut other = bytes.clone();
    let i = other.len() / 2;
    other[i] ^= 0xff;
    std::fs::write(&a.file, &other).unwrap();
    let line = one_error_line(&a.env.cli(&restore_args(&a.id, &a.env.dest(), &target)));
    assert!(
        line.contains("does not match its recorded checksum")
            || line.contains("corrupt or truncated"),
        "{line}"
    );
    assert_unchanged(&client, &target, &before).await;
    // The sidecar's checksum tampered with instead: the same refusal.
    std::fs::write(&a.file, &bytes).unwrap();
    let mut s: serde_json::Value =
        serde_json::from_slice(&std::fs::read(a.sidecar()).unwrap()).unwrap();
    s["sha256"] = "00".repeat(32).into();
    std::fs::write(a.sidecar(), serde_json::to_vec(&s).unwrap()).unwrap();
    // The checksum is signed: the changed mark is not one of the user's backups any more.
    let line = one_error_line(&a.env.cli(&restore_args(&a.id, &a.env.dest(), &target)));
    assert!(
        line.contains("is not one of your backups") && line.contains("signature does not match"),
        "{line}"
    );
    let line = one_error_line(
        &a.env
            .cli(&["verify", "--backup", &a.id, "--dest", &a.env.dest()]),
    );
    assert!(line.contains("is not one of your backups"), "{line}");
    assert_unchanged(&client, &target, &before).await;
    tally("backup file or sidecar checksum swapped", 3);
}

/// Decrypts a backup into its archive and manifest.
fn open_backup(file: &Path, key: &BackupKey) -> (Vec<u8>, Manifest) {
    let mut r = BackupReader::open(std::fs::File::open(file).unwrap(), key.identity()).unwrap();
    let mut archive = Vec::new();
    r.read_to_end(&mut archive).unwrap();
    (archive, r.finish().unwrap())
}

/// A backup file with the given archive and manifest, encrypted to `key`.
fn write_backup(path: &Path, key: &BackupKey, archive: &[u8], manifest: &Manifest) {
    let f = std::fs::File::create(path).unwrap();
    let mut w = BackupWriter::new(f, &key.recipient(), 3).unwrap();
    w.write_all(archive).unwrap();
    w.finish(manifest).unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_manifest_claiming_terabytes_is_refused_without_allocating() {
    let m = made("tera").await;
    let client = mongo().client().await;
    let (target, before) = target_with_data(&client, "tera_dst").await;
    let key = m.key();
    let (archive, manifest) = open_backup(&m.file, &key);
    // 2^64 - 1 documents in a collection: the counts no longer match the data.
    let mut lie = manifest.clone();
    lie.collections[0].documents = u64::MAX;
    let docs = m.env.dir.path().join("tera-documents.mdbk");
    write_backup(&docs, &key, &archive, &lie);
    let docs = docs.to_str().unwrap();
    let line = one_error_line(&m.env.cli(&restore_args(docs, &m.env.dest(), &target)));
    assert!(
        line.contains("does not match the backup's manifest"),
        "{line}"
    );
    assert_unchanged(&client, &target, &before).await;
    let line = one_error_line(
        &m.env
            .cli(&["verify", "--backup", docs, "--dest", &m.env.dest()]),
    );
    assert!(
        line.contains("does not match the backup's manifest"),
        "{line}"
    );

    // 5 TiB of bytes, and a phantom collection the archive does not hold: sizes are information
    // only (nothing is allocated or reserved from them), and only what the archive holds, with
    // its checksums, is restored.
    let mut lie = manifest.clone();
    lie.collections[0].bytes = 5 << 40;
    let mut phantom = lie.collections[0].clone();
    phantom.name = "phantom".into();
    phantom.documents = u64::MAX;
    lie.collections.push(phantom);
    let bytes = m.env.dir.path().join("tera-bytes.mdbk");
    write_backup(&bytes, &key, &archive, &lie);
    let bytes = bytes.to_str().unwrap();
    m.env
        .ok(&["verify", "--backup", bytes, "--dest", &m.env.dest()]);
    m.env.ok(&restore_args(bytes, &m.env.dest(), &target));
    assert_eq!(
        raw_docs(&client, &target, "orders").await,
        raw_docs(&client, &m.source, "orders").await
    );
    assert!(!collections(&client, &target)
        .await
        .iter()
        .any(|c| c.0 == "phantom"));
    let tried = 4;
    tally("manifests claiming 2^64 documents or 5 TiB", tried);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_mongodump_archive_of_a_newer_format_is_refused() {
    let m = made("future_archive").await;
    let client = mongo().client().await;
    let (target, before) = target_with_data(&client, "future_dst").await;
    let key = m.key();
    let (archive, manifest) = open_backup(&m.file, &key);
    // The archive's header says version "0.2": as a plain mongodump file and inside a backup.
    let mut future = archive.clone();
    let at = future.windows(4).position(|w| w == b"0.1\0").unwrap();
    future[at..at + 3].copy_from_slice(b"0.2");
    let plain = m.env.dir.path().join("future.archive");
    std::fs::write(&plain, &future).unwrap();
    let wrapped = m.env.dir.path().join("future-inside.mdbk");
    write_backup(&wrapped, &key, &future, &manifest);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&future).unwrap();
    let gzip = m.env.dir.path().join("future.archive.gz");
    std::fs::write(&gzip, gz.finish().unwrap()).unwrap();
    for path in [&plain, &wrapped, &gzip] {
        let line = one_error_line(&m.env.cli(&restore_args(
            path.to_str().unwrap(),
            &m.env.dest(),
            &target,
        )));
        assert!(
            line.contains("unsupported mongodump archive version \"0.2\""),
            "{}: {line}",
            path.display()
        );
    }
    assert_unchanged(&client, &target, &before).await;
    // The unchanged archive still restores: the refusal was about the version only.
    std::fs::write(&plain, &archive).unwrap();
    m.env.ok(&restore_args(
        plain.to_str().unwrap(),
        &m.env.dest(),
        &target,
    ));
    assert_eq!(
        raw_docs(&client, &target, "orders").await,
        raw_docs(&client, &m.source, "orders").await
    );
    tally(
        "mongodump archive format 0.2 (plain, gzip, inside a backup)",
        3,
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_archive_with_names_mongodb_refuses_is_refused_before_anything_changes() {
    use driveback_engine::archive::{ArchiveWriter, Header};
    let client = mongo().client().await;
    let (target, before) = target_with_data(&client, "badnames_dst").await;
    let env = Env::new();
    let header = Header {
        concurrent_collections: 1,
        version: "0.1".into(),
        server_version: "8.0.0".into(),
        tool_version: "crafted".into(),
    };
    let mut tried = 0;
    for bad in ["../../escape", ".hidden", "a$b", "nul\0byte", ""] {
        // "orders" first: with the bad name last, a restore that only failed at the swap would
        // already have replaced it.
        let ns = plain_namespaces(&["orders", bad]);
        let mut w = ArchiveWriter::new(Vec::new(), &header, &ns).unwrap();
        for i in 0..2 {
            w.write_document(
                i,
                &bson::to_vec(&doc! { "_id": 1, "crafted": true }).unwrap(),
            )
            .unwrap();
            w.end_namespace(i).unwrap();
        }
        let path = env.dir.path().join(format!("crafted-{tried}.archive"));
        std::fs::write(&path, w.finish().unwrap()).unwrap();
        let out = env.cli(&restore_args(path.to_str().unwrap(), &env.dest(), &target));
        let line = one_error_line(&out);
        assert!(
            line.contains("which MongoDB does not allow") && line.contains("nothing was restored"),
            "{bad:?}: {line}"
        );
        assert_unchanged(&client, &target, &before).await;
        tried += 1;
    }
    tally(
        "archives naming collections ../../escape, .hidden, a$b, NUL, empty",
        tried,
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn collection_options_that_are_not_options_are_refused_before_anything_changes() {
    use driveback_engine::archive::{ArchiveWriter, CollectionMetadata, Header, Namespace};
    let client = mongo().client().await;
    let (target, before) = target_with_data(&client, "badopts_dst").await;
    let env = Env::new();
    let header = Header {
        concurrent_collections: 1,
        version: "0.1".into(),
        server_version: "8.0.0".into(),
        tool_version: "crafted".into(),
    };
    let mut tried = 0;
    // A `create` key would make the staging collection another (live) one; `$db` another
    // database; a write concern is not the backup's to choose.
    for bad in [
        doc! { "create": "orders" },
        doc! { "$db": "admin" },
        doc! { "writeConcern": { "w": 0 } },
    ] {
        let ns: Vec<Namespace> = ["orders", "extra"]
            .iter()
            .enumerate()
            .map(|(i, c)| Namespace {
                db: "x".into(),
                collection: c.to_string(),
                kind: "collection".into(),
                size: 0,
                metadata: CollectionMetadata {
                    collection_name: c.to_string(),
                    kind: "collection".into(),
                    options: if i == 1 {
                        bad.clone()
                    } else {
                        doc! {}
                    },
                    ..Default::default()
                },
            })
            .collect();
        let mut w = ArchiveWriter::new(Vec::new(), &header, &ns).unwrap();
        for i in 0..2 {
            w.write_document(
                i,
                &bson::to_vec(&doc! { "_id": 1, "crafted": true }).unwrap(),
            )
            .unwrap();
            w.end_namespace(i).unwrap();
        }
        let path = env
            .dir
            .path()
            .join(format!("crafted-options-{tried}.archive"));
        std::fs::write(&path, w.finish().unwrap()).unwrap();
        let out = env.cli(&restore_args(path.to_str().unwrap(), &env.dest(), &target));
        let line = one_error_line(&out);
        assert!(
            line.contains("which is not a collection option")
                && line.contains("nothing was changed"),
            "{bad:?}: {line}"
        );
        assert_unchanged(&client, &target, &before).await;
        tried += 1;
    }
    tally(
        "archives whose collection options hold create, $db, writeConcern",
        tried,
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_older_backup_under_a_newer_name_is_refused() {
    let a = made("renamed").await;
    let client = mongo().client().await;
    // A second backup of the same database: its name and commit mark say "newest".
    let b = a.env.backup(mongo().uri(), &a.source);
    let b_file = a.env.dest_path().join(b["file"].as_str().unwrap());
    let b_sidecar = PathBuf::from(format!("{}.json", b_file.display()));
    // Someone who can write to the folder puts the older backup's bytes under the newer name,
    // with a commit mark whose checksum and size match them (both are public).
    let a_mark: serde_json::Value =
        serde_json::from_slice(&std::fs::read(a.sidecar()).unwrap()).unwrap();
    let mut b_mark: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&b_sidecar).unwrap()).unwrap();
    for k in ["sha256", "bytes", "size"] {
        if let Some(v) = a_mark.get(k) {
            b_mark[k] = v.clone();
        }
    }
    std::fs::copy(&a.file, &b_file).unwrap();
    std::fs::write(&b_sidecar, serde_json::to_vec(&b_mark).unwrap()).unwrap();

    let (target, before) = target_with_data(&client, "renamed_dst").await;
    let b_id = b["id"].as_str().unwrap();
    // The size and checksum are signed with the name: the forged mark does not verify, so the
    // file is not one of the user's backups (restore, verify) and `latest` is the real one.
    let line = one_error_line(&a.env.cli(&restore_args(b_id, &a.env.dest(), &target)));
    assert!(line.contains("is not one of your backups"), "{line}");
    assert!(line.contains("signature does not match"), "{line}");
    assert_unchanged(&client, &target, &before).await;
    let line = one_error_line(
        &a.env
            .cli(&["verify", "--backup", b_id, "--dest", &a.env.dest()]),
    );
    assert!(line.contains("is not one of your backups"), "{line}");
    tally(
        "an older backup renamed as the newest, with a matching commit mark",
        2,
    );
}

/// A restore acts on what its plan showed (the manifest): an archive namespace the manifest does
/// not list is refused before anything is created, and a collection that holds more than the
/// manifest lists stops the load, its staging dropped.
#[tokio::test(flavor = "multi_thread")]
async fn a_restore_does_only_what_its_plan_showed() {
    use driveback_engine::archive::{ArchiveWriter, Header};
    use driveback_engine::manifest::{CollectionEntry, CollectionStatus};
    use driveback_engine::pipeline::{self, RestoreOptions, Source};
    use std::sync::Arc;

    let client = mongo().client().await;
    let (target, before) = target_with_data(&client, "plan_dst").await;
    let env = Env::new();
    std::fs::create_dir_all(env.dir.path()).unwrap();
    let header = Header {
        concurrent_collections: 1,
        version: "0.1".into(),
        server_version: "8.0.0".into(),
        tool_version: "crafted".into(),
    };
    let ns = plain_namespaces(&["orders", "planted"]);
    let mut w = ArchiveWriter::new(Vec::new(), &header, &ns).unwrap();
    for i in 0..2 {
        for n in 0..500 {
            w.write_document(
                i,
                &bson::to_vec(&doc! { "_id": n, "pad": "x".repeat(100) }).unwrap(),
            )
            .unwrap();
        }
        w.end_namespace(i).unwrap();
    }
    let path = env.dir.path().join("crafted.archive");
    std::fs::write(&path, w.finish().unwrap()).unwrap();
    let entry = |name: &str, documents: u64, bytes: u64| CollectionEntry {
        name: name.into(),
        kind: "collection".into(),
        documents,
        bytes,
        crc64: "0000000000000000".into(),
        status: CollectionStatus::Ok,
    };
    let restore = |expected: Vec<CollectionEntry>| {
        let path = path.clone();
        let target = target.clone();
        async move {
            pipeline::restore(
                mongo().uri(),
                Source::File { path, key: None },
                &RestoreOptions {
                    target_db: target,
                    collections: None,
                    expected: Some(expected),
                    parallel: driveback_engine::mongo::restore::DEFAULT_PARALLEL,
                },
                Arc::new(driveback_engine::progress::NoProgress),
            )
            .await
            .map(|_| ())
            .unwrap_err()
            .to_string()
        }
    };
    // The plan showed "orders" only.
    let e = restore(vec![entry("orders", 500, 1 << 20)]).await;
    assert!(
        e.contains("\"planted\", which its manifest does not list"),
        "{e}"
    );
    assert_unchanged(&client, &target, &before).await;
    // The plan showed both, "orders" with 10 documents: the load stops past them.
    let e = restore(vec![
        entry("orders", 10, 1 << 20),
        entry("planted", 500, 1 << 20),
    ])
    .await;
    assert!(e.contains("holds more than the 10 documents"), "{e}");
    assert_unchanged(&client, &target, &before).await;
    // And past its bytes.
    let e = restore(vec![
        entry("orders", 500, 4096),
        entry("planted", 500, 1 << 20),
    ])
    .await;
    assert!(e.contains("(4096 bytes)"), "{e}");
    assert_unchanged(&client, &target, &before).await;
    tally("archives holding more than their plan showed", 3);
}
