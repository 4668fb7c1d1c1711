//! Server errors in the middle of an export: a transient loss of the snapshot resumes where it
//! stopped (every document exactly once, the manifest honest about consistency); a hard error on
//! one collection makes a partial backup that still holds the others. Uses the server's
//! `failCommand` fail point, scoped to the CLI's connection by appName.

mod common;

use bson::{doc, oid::ObjectId, Bson};
use common::*;

/// The server has one `failCommand` fail point: tests that arm it take turns.
static FAIL_POINT: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn seed(client: &mongodb::Client, db: &str) {
    let d = client.database(db);
    // Mixed _id types, so resuming "after the last _id" must cross type brackets.
    // More documents than one cursor batch (2000), so that reading needs a getMore.
    let mut docs: Vec<bson::Document> = (0..2500).map(|i| doc! { "_id": i, "v": i }).collect();
    docs.extend((0..300).map(|i| doc! { "_id": format!("s{i:03}"), "v": i }));
    docs.extend((0..300).map(|i| doc! { "_id": ObjectId::new(), "v": i }));
    d.collection("mixed").insert_many(docs).await.unwrap();
    d.collection("other")
        .insert_many((0..300).map(|i| doc! { "_id": i }))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn lost_snapshot_resumes_after_the_last_id() {
    let _turn = FAIL_POINT.lock().await;
    let server = mongo();
    let client = server.client().await;
    let db = server.fresh_db("resume");
    seed(&client, &db).await;
    let app = format!("resume-{:08x}", rand::random::<u32>());
    // The first getMore (after the first batch) fails as if the server ended the transaction.
    server
        .fail_command(&app, &["getMore"], 1, 251, &["TransientTransactionError"])
        .await;
    let env = Env::new();
    let uri = format!("{}&appName={app}", server.uri());
    let backup = env.backup(&uri, &db);
    assert_eq!(backup["status"], "complete");
    assert_eq!(
        backup["snapshot"], false,
        "two snapshots were used, and the backup says so"
    );
    assert!(
        backup["consistency"]
            .as_str()
            .unwrap()
            .contains("2 snapshots"),
        "{}",
        backup["consistency"]
    );

    let target = server.fresh_db("resume_restored");
    env.ok(&[
        "restore",
        "--backup",
        backup["id"].as_str().unwrap(),
        "--dest",
        &env.dest(),
        "--mongo-uri",
        server.uri(),
        "--db",
        &target,
        "--yes",
    ]);
    for coll in ["mixed", "other"] {
        assert_eq!(
            raw_docs(&client, &target, coll).await,
            raw_docs(&client, &db, coll).await,
            "{coll}: every document exactly once"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn failed_collection_makes_a_partial_backup() {
    let _turn = FAIL_POINT.lock().await;
    let server = mongo();
    let client = server.client().await;
    let db = server.fresh_db("partial");
    seed(&client, &db).await;
    let app = format!("partial-{:08x}", rand::random::<u32>());
    // A hard error (BadValue) on the first getMore: collection "mixed" cannot be read completely.
    server.fail_command(&app, &["getMore"], 1, 2, &[]).await;
    let env = Env::new();
    let uri = format!("{}&appName={app}", server.uri());
    let out = env.cli(&[
        "backup",
        "--mongo-uri",
        &uri,
        "--db",
        &db,
        "--dest",
        &env.dest(),
        "--json",
    ]);
    assert_eq!(
        out.status.code(),
        Some(3),
        "a partial backup exits 3: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("collection mixed could not be backed up"),
        "{stderr}"
    );
    let backup: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(backup["status"], "partial");
    let colls = backup["collections"].as_array().unwrap();
    let mixed = colls.iter().find(|c| c["name"] == "mixed").unwrap();
    assert_eq!(mixed["status"]["state"], "failed");
    let other = colls.iter().find(|c| c["name"] == "other").unwrap();
    assert_eq!(other["documents"], 300);

    let list: serde_json::Value =
        serde_json::from_str(&env.ok(&["list", "--dest", &env.dest(), "--json"])).unwrap();
    assert_eq!(list["backups"][0]["status"], "partial");

    // Restoring it brings back what is complete and says what is not.
    let target = server.fresh_db("partial_restored");
    client
        .database(&target)
        .collection("mixed")
        .insert_one(doc! { "_id": "live", "keep": Bson::Boolean(true) })
        .await
        .unwrap();
    let out = env.cli(&[
        "restore",
        "--backup",
        backup["id"].as_str().unwrap(),
        "--dest",
        &env.dest(),
        "--mongo-uri",
        server.uri(),
        "--db",
        &target,
        "--yes",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("collection mixed was not restored"));
    assert_eq!(
        raw_docs(&client, &target, "other").await,
        raw_docs(&client, &db, "other").await
    );
    assert_eq!(
        raw_docs(&client, &target, "mixed").await.len(),
        1,
        "the live collection the backup could not read is left alone"
    );
}
