//! The incremental layout end to end, through the real CLI and the real server: a full backup,
//! increments that hold only what changed, and every backup of the chain restored, verified and
//! exported exactly; an increment alone, or a chain with a link missing, is refused clearly.

mod common;

use bson::{doc, oid::ObjectId, Document};
use common::*;
use mongodb::{options::IndexOptions, IndexModel};

fn backup_layout(env: &Env, db: &str, dest: &str, layout: &str) -> serde_json::Value {
    let uri = mongo().uri();
    let mut args = backup_args(uri, db, dest).to_vec();
    args.extend(["--layout", layout]);
    serde_json::from_str(&env.ok(&args)).expect("backup --json output")
}

fn listing(env: &Env) -> Vec<serde_json::Value> {
    let out = env.ok(&["list", "--dest", &env.dest(), "--json"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    v["backups"].as_array().unwrap().clone()
}

fn count(v: &serde_json::Value, field: &str) -> u64 {
    v["chain"][field]
        .as_u64()
        .unwrap_or_else(|| panic!("{field} in {v}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_chain_of_increments_restores_every_backup_exactly() {
    if !keyring_or_skip() {
        return;
    }
    let env = Env::new();
    let client = mongo().client().await;
    let db = format!("incr_{:08x}", rand::random::<u32>());
    let d = client.database(&db);
    let entries = d.collection::<Document>("entries");
    let ids: Vec<ObjectId> = (0..600).map(|_| ObjectId::new()).collect();
    entries
        .insert_many(ids.iter().enumerate().map(|(i, id)| {
            // Random text, so that the full backup's size is the data's, not zstd's.
            let note: String = (0..3)
                .map(|_| format!("{:032x}", rand::random::<u128>()))
                .collect();
            doc! { "_id": *id, "n": i as i32, "note": note }
        }))
        .await
        .unwrap();
    entries
        .create_index(IndexModel::builder().keys(doc! { "n": 1 }).build())
        .await
        .unwrap();
    seed_ids(&client, &db, "users", 40).await;
    d.create_collection("big_users")
        .view_on("users".to_string())
        .pipeline(vec![doc! { "$match": { "_id": { "$gte": 20 } } }])
        .await
        .unwrap();

    let first = backup_layout(&env, &db, &env.dest(), "incremental");
    assert_eq!(first["chain"]["kind"], "full", "{first}");
    assert_eq!(count(&first, "inserted"), 640);
    let full_bytes = first["bytes"].as_u64().unwrap();
    let day0 = snapshot(&client, &db).await;

    // Day 1: 10 updated, 5 inserted, 3 deleted, a new collection, a new index.
    for id in &ids[100..110] {
        entries
            .update_one(doc! { "_id": id }, doc! { "$set": { "note": "changed" } })
            .await
            .unwrap();
    }
    entries
        .insert_many((0..5).map(|i| doc! { "_id": ObjectId::new(), "n": 1000 + i }))
        .await
        .unwrap();
    entries
        .delete_many(doc! { "_id": { "$in": [ids[0], ids[300], ids[599]] } })
        .await
        .unwrap();
    seed_ids(&client, &db, "tags", 7).await;
    entries
        .create_index(
            IndexModel::builder()
                .keys(doc! { "note": 1 })
                .options(IndexOptions::builder().name("by_note".to_string()).build())
                .build(),
        )
        .await
        .unwrap();
    // Without --layout, the destination's remembered layout applies.
    let second = env.backup(mongo().uri(), &db);
    assert_eq!(second["chain"]["kind"], "increment", "{second}");
    assert_eq!(
        (
            count(&second, "changed"),
            count(&second, "inserted"),
            count(&second, "deleted")
        ),
        (10, 5 + 7, 3)
    );
    assert!(second["file"].as_str().unwrap().ends_with(".mdbi"));
    assert!(
        second["bytes"].as_u64().unwrap() * 4 < full_bytes,
        "an increment of 25 documents is far smaller than the full backup: {second}"
    );
    let day1 = snapshot(&client, &db).await;

    // Day 2: users dropped, more updates and deletions.
    d.collection::<Document>("users").drop().await.unwrap();
    entries
        .update_many(
            doc! { "n": { "$lt": 20 } },
            doc! { "$set": { "note": "again" } },
        )
        .await
        .unwrap();
    entries
        .delete_many(doc! { "n": { "$gte": 500, "$lt": 510 } })
        .await
        .unwrap();
    let third = env.backup(mongo().uri(), &db);
    assert_eq!(third["chain"]["kind"], "increment", "{third}");
    assert_eq!(count(&third, "deleted"), 10);
    let day2 = snapshot(&client, &db).await;

    // The listing says what each backup is.
    let listed = listing(&env);
    let kinds: Vec<&str> = listed.iter().map(|b| b["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["increment", "increment", "full"]);
    let full_id = first["id"].as_str().unwrap();
    assert!(listed.iter().all(|b| b["chain"] == full_id));
    assert_eq!(listed[0]["parent"], second["id"]);
    assert_eq!(listed[1]["parent"], first["id"]);

    // Every backup of the chain restores exactly what the database held then.
    for (backup, expected) in [
        (first["id"].as_str().unwrap(), &day0),
        (second["id"].as_str().unwrap(), &day1),
        ("latest", &day2),
    ] {
        let target = format!("{db}_r");
        env.ok(&restore_args(backup, &env.dest(), &target));
        let restored = snapshot(&client, &target).await;
        assert_eq!(&restored, expected, "restore of {backup}");
        client.database(&target).drop().await.unwrap();
    }
    env.ok(&["verify", "--backup", "latest", "--dest", &env.dest()]);

    // The export of the newest increment is the plain archive a full backup of the same state
    // holds, byte for byte.
    let other = Env::new();
    backup_layout(&other, &db, &other.dest(), "files");
    let out = env.dir.path().join("chain.archive");
    env.ok(&[
        "export",
        "--backup",
        "latest",
        "--dest",
        &env.dest(),
        "--out",
        out.to_str().unwrap(),
    ]);
    let plain = other.dir.path().join("plain.archive");
    other.ok(&[
        "export",
        "--backup",
        "latest",
        "--dest",
        &other.dest(),
        "--out",
        plain.to_str().unwrap(),
    ]);
    assert!(
        std::fs::read(&out).unwrap() == std::fs::read(&plain).unwrap(),
        "the merged chain differs from a full backup's archive"
    );

    // An increment on its own is refused with why.
    let increment_file = env.dest_path().join(third["file"].as_str().unwrap());
    let target = format!("{db}_alone");
    let err = one_error_line(&env.cli(&restore_args(
        increment_file.to_str().unwrap(),
        &env.dest(),
        &target,
    )));
    assert!(err.contains("this file is an increment"), "{err}");
    assert!(collections(&client, &target).await.is_empty());

    // A link removed by hand: the backups after it are no longer listed (they cannot be
    // restored), and what is left still restores.
    let middle = env.dest_path().join(second["file"].as_str().unwrap());
    std::fs::remove_file(&middle).unwrap();
    std::fs::remove_file(middle.with_extension("mdbi.json")).ok();
    let listed = listing(&env);
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["id"], first["id"]);
    let err = one_error_line(&env.cli(&restore_args(
        third["id"].as_str().unwrap(),
        &env.dest(),
        &target,
    )));
    assert!(err.contains("cannot be restored"), "{err}");
    assert!(collections(&client, &target).await.is_empty());
    d.drop().await.unwrap();
}

/// `first` backs up `db` to `dest` (incremental) and is held while writing; `second` (this
/// computer or another) tries the same meanwhile and is refused with one error line, which is
/// returned once `first` has been let go and has committed.
fn refused_while_another_backs_up(first: &Env, second: &Env, db: &str, dest: &str) -> String {
    let release = first.dir.path().join("release");
    let mut args = backup_args(mongo().uri(), db, dest).to_vec();
    args.extend(["--layout", "incremental"]);
    let (mut child, mut stderr, _) = paused_at(
        first,
        &args,
        "backup.writing",
        db,
        &[("DRIVEBACK_PAUSE_RELEASE", release.as_os_str())],
    );
    let refused = one_error_line(&second.cli(&args));
    std::fs::write(&release, b"").unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut rest).unwrap();
    assert!(child.wait().unwrap().success(), "{rest}");
    refused
}

/// docs/FORMAT.md's recipe for rebuilding an incremental backup, step by step: each file is
/// decrypted and decompressed by `age` and `zstd`; the full backup is restored, then each
/// increment's documents are upserted by `_id` and the `_id`s of its
/// `__driveback_deleted.<collection>` namespaces deleted. mongorestore and mongosh are not on
/// this machine, so their steps (`--mode=upsert`, the deleteOne loop) are made with the driver,
/// one operation per document as they make them.
#[tokio::test(flavor = "multi_thread")]
async fn the_standard_tools_recipe_rebuilds_an_incremental_backup() {
    use driveback_engine::archive::{ArchiveReader, Item};
    if !keyring_or_skip() {
        return;
    }
    let env = Env::new();
    let client = mongo().client().await;
    let db = mongo().fresh_db("incr_recipe");
    let items = client.database(&db).collection::<Document>("items");
    items
        .insert_many((0..50).map(|i| doc! { "_id": i, "v": 0, "name": format!("item {i}") }))
        .await
        .unwrap();
    seed_ids(&client, &db, "other", 5).await;
    // Increments of a database this small weigh as much as its full backup (age's header, the
    // manifest): keep the chain going.
    env.ok(&["config", "set", "backup.full_after_percent", "1000"]);
    backup_layout(&env, &db, &env.dest(), "incremental");
    items
        .update_many(doc! { "_id": { "$lt": 5 } }, doc! { "$set": { "v": 1 } })
        .await
        .unwrap();
    items
        .delete_many(doc! { "_id": { "$gte": 40 } })
        .await
        .unwrap();
    items.insert_one(doc! { "_id": 100, "v": 1 }).await.unwrap();
    backup_layout(&env, &db, &env.dest(), "incremental");
    items
        .update_one(doc! { "_id": 100 }, doc! { "$set": { "v": 2 } })
        .await
        .unwrap();
    items.delete_one(doc! { "_id": 0 }).await.unwrap();
    let last = backup_layout(&env, &db, &env.dest(), "incremental");
    assert_eq!(last["chain"]["kind"], "increment");

    let secret = env.ok(&["key", "show", "--dest", &env.dest(), "--secret"]);
    let key = env.dir.path().join("key.txt");
    std::fs::write(&key, secret).unwrap();
    // Oldest first, as the listing's parents chain them (three backups made within one second
    // have names of the same time).
    let mut files: Vec<std::path::PathBuf> = listing(&env)
        .iter()
        .rev()
        .map(|b| env.dest_path().join(b["file"].as_str().unwrap()))
        .collect();
    let listed = listing(&env);
    assert_eq!(listed[0]["parent"], listed[1]["id"]);
    assert_eq!(listed[1]["parent"], listed[2]["id"]);
    files.dedup();
    assert_eq!(files.len(), 3);
    assert!(files[0].extension().unwrap() == "mdbk");

    let target = mongo().fresh_db("incr_recipe_rebuilt");
    let out = client.database(&target);
    for (i, file) in files.iter().enumerate() {
        let plain = decrypt_with_tools(&key, file);
        let mut archive = ArchiveReader::new(&plain[..]).unwrap();
        let namespaces = archive.namespaces().to_vec();
        while let Some(item) = archive.next_item().unwrap() {
            let Item::Document { ns, raw } = item else {
                continue;
            };
            let doc = bson::RawDocumentBuf::from_bytes(raw)
                .unwrap()
                .to_document()
                .unwrap();
            let name = &namespaces[ns].collection;
            let c = out
                .collection::<Document>(name.strip_prefix("__driveback_deleted.").unwrap_or(name));
            if i == 0 {
                c.insert_one(doc).await.unwrap();
            } else if name.starts_with("__driveback_deleted.") {
                c.delete_one(doc! { "_id": doc.get("_id").unwrap().clone() })
                    .await
                    .unwrap();
            } else {
                c.replace_one(doc! { "_id": doc.get("_id").unwrap().clone() }, doc)
                    .upsert(true)
                    .await
                    .unwrap();
            }
        }
    }
    for coll in ["items", "other"] {
        assert_eq!(
            raw_docs(&client, &target, coll).await,
            raw_docs(&client, &db, coll).await,
            "{coll}"
        );
    }
}

/// Two backups of one database to one destination from this computer at once (the app and a
/// one-shot command, say): the second is refused with why (the destination's lock, and behind
/// it this device's index is held too), and the first goes on and commits.
#[tokio::test(flavor = "multi_thread")]
async fn a_second_backup_of_the_same_chain_on_this_computer_waits_its_turn() {
    if !keyring_or_skip() {
        return;
    }
    let env = Env::new();
    let client = mongo().client().await;
    let db = mongo().fresh_db("incr_twice");
    seed_ids(&client, &db, "items", 20).await;
    backup_layout(&env, &db, &env.dest(), "incremental");
    seed_ids(&client, &db, "more", 3).await;
    let second = refused_while_another_backs_up(&env, &env, &db, &env.dest());
    assert!(
        second.contains("another Driveback has been backing up"),
        "{second}"
    );
    let listed = listing(&env);
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0]["kind"], "increment");
    env.ok(&["verify", "--backup", "latest", "--dest", &env.dest()]);
}

/// Two machines back up one database to one destination: while one writes the chain, the
/// other is refused with why (the lock at the destination); a lock left by a machine that died
/// expires; every listed backup restores.
#[tokio::test(flavor = "multi_thread")]
async fn two_machines_take_turns_at_one_destination() {
    if !keyring_or_skip() {
        return;
    }
    let a = Env::new();
    // The other machine: its own settings, index and keyring, the same destination.
    let b = Env::new();
    let dest = a.dest();
    let client = mongo().client().await;
    let db = mongo().fresh_db("incr_two");
    seed_ids(&client, &db, "items", 30).await;
    backup_layout(&a, &db, &dest, "incremental");
    seed_ids(&client, &db, "more", 3).await;

    let refused = refused_while_another_backs_up(&a, &b, &db, &dest);
    assert!(
        refused.contains("another Driveback has been backing up"),
        "{refused}"
    );
    // Nothing of the refused run is left: only the key files and the backups with their marks.
    let leftovers: Vec<String> = std::fs::read_dir(a.dest_path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".lock-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    // Now the other machine's turn: the newest backup is not from its index, so a new chain.
    let other = backup_layout(&b, &db, &dest, "incremental");
    assert_eq!(other["chain"]["kind"], "full", "{other}");

    // A lock file of a machine that died 31 minutes ago does not stop anyone, and goes.
    let dead = a
        .dest_path()
        .join(format!("driveback-{db}.lock-20260101T000000Z-0badf00d"));
    std::fs::write(&dead, br#"{"started":"2026-01-01T00:00:00Z"}"#).unwrap();
    let old = std::time::SystemTime::now() - std::time::Duration::from_secs(31 * 60);
    std::fs::File::options()
        .write(true)
        .open(&dead)
        .unwrap()
        .set_modified(old)
        .unwrap();
    let next = backup_layout(&b, &db, &dest, "incremental");
    assert_eq!(next["chain"]["kind"], "increment", "{next}");
    assert!(!dead.exists(), "the expired lock is removed");

    // A live one (written a minute ago, started before ours) does stop the backup.
    std::fs::write(&dead, br#"{"started":"2026-01-01T00:00:00Z"}"#).unwrap();
    let mut args = backup_args(mongo().uri(), &db, &dest).to_vec();
    args.extend(["--layout", "incremental"]);
    let refused = one_error_line(&b.cli(&args));
    assert!(refused.contains("since 2026-01-01 00:00 UTC"), "{refused}");
    std::fs::remove_file(&dead).unwrap();

    for listed in listing(&a) {
        let id = listed["id"].as_str().unwrap();
        a.ok(&["verify", "--backup", id, "--dest", &dest]);
    }
}

/// Switching a destination between the layouts keeps every backup readable, and the Extended
/// JSON export of an increment holds the whole database as it was.
#[tokio::test(flavor = "multi_thread")]
async fn switching_layouts_keeps_every_backup_readable() {
    if !keyring_or_skip() {
        return;
    }
    let env = Env::new();
    let client = mongo().client().await;
    let db = mongo().fresh_db("incr_switch");
    let items = client.database(&db).collection::<Document>("items");
    seed_ids(&client, &db, "items", 30).await;
    let mut made = Vec::new();
    for (layout, kind) in [
        ("files", None),
        ("incremental", Some("full")),
        ("incremental", Some("increment")),
        ("files", None),
        ("incremental", Some("full")),
    ] {
        let n = made.len() as i32;
        items
            .insert_one(doc! { "_id": 100 + n, "layout": layout })
            .await
            .unwrap();
        let b = backup_layout(&env, &db, &env.dest(), layout);
        assert_eq!(b["chain"]["kind"].as_str(), kind, "{b}");
        made.push((b["id"].as_str().unwrap().to_string(), 31 + n as u64));
    }
    for (id, documents) in &made {
        let out = env.ok(&["verify", "--backup", id, "--dest", &env.dest(), "--json"]);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["documents"].as_u64(), Some(*documents), "{v}");
    }
    // The third backup, an increment, as Extended JSON: every document it stands for.
    let out = env.dir.path().join("json");
    env.ok(&[
        "export",
        "--backup",
        &made[2].0,
        "--dest",
        &env.dest(),
        "--out",
        out.to_str().unwrap(),
        "--format",
        "ejson",
    ]);
    let text = std::fs::read_to_string(out.join("items.ejson")).unwrap();
    assert_eq!(text.lines().count(), 33);
    assert!(text.contains("\"layout\":\"incremental\""));
}
