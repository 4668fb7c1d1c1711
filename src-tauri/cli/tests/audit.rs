//! Audits by test restore through the real CLI, server and folder: a good backup passes and
//! its scratch database is gone afterwards; a scratch restore that comes back different fails
//! (critical in the health, exit code not 0) and is dropped too; a scratch database that holds
//! someone's data is refused and left as it was.

mod common;

use bson::doc;
use common::*;

async fn databases(client: &mongodb::Client) -> Vec<String> {
    client.list_database_names().await.unwrap()
}

fn last_test_restore(env: &Env) -> (serde_json::Value, serde_json::Value) {
    let status: serde_json::Value = serde_json::from_str(&env.ok(&["status", "--json"])).unwrap();
    let check = status["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "last_test_restore")
        .cloned()
        .unwrap_or_else(|| panic!("no last_test_restore check: {status}"));
    (status["last_test_restore"].clone(), check)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_good_backup_passes_and_a_changed_restore_fails() {
    let server = mongo();
    let client = server.client().await;
    let db = server.fresh_db("audit");
    seed_ids(&client, &db, "entries", 300).await;
    client
        .database(&db)
        .collection::<bson::Document>("entries")
        .create_index(
            mongodb::IndexModel::builder()
                .keys(doc! { "n": 1 })
                .options(
                    mongodb::options::IndexOptions::builder()
                        .name("n_1".to_string())
                        .build(),
                )
                .build(),
        )
        .await
        .unwrap();
    seed_ids(&client, &db, "users", 7).await;
    let env = Env::new();
    env.ok(&["config", "set", "backup.dest", &env.dest()]);
    let made = env.backup(server.uri(), &db);
    let id = made["id"].as_str().unwrap();
    let scratch = format!("{db}_driveback_audit");
    let dest = env.dest();
    let audit = |extra: &[&str]| {
        let mut args = vec![
            "verify",
            "--backup",
            id,
            "--dest",
            &dest,
            "--test-restore",
            "--mongo-uri",
            server.uri(),
            "--json",
        ];
        args.extend_from_slice(extra);
        env.cli(&args)
    };

    // 1. It passes, and the scratch database is gone.
    let out = audit(&[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["verdict"], "passed", "{report}");
    assert_eq!(report["scratch_db"], scratch.as_str());
    let counts: Vec<(String, u64)> = report["collections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap().to_string(),
                c["documents"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        counts,
        [("entries".to_string(), 300), ("users".to_string(), 7)]
    );
    assert!(!databases(&client).await.contains(&scratch));
    let (last, check) = last_test_restore(&env);
    assert_eq!(last["outcome"], "success", "{last}");
    assert_eq!(last["backup_id"], id);
    assert_eq!(check["status"], "healthy", "{check}");

    // 2. The scratch restore comes back different (held at a pause point while one document is
    // changed and another deleted): it fails, and the scratch database is still dropped.
    let release = env.dir.path().join("release");
    let (mut child, mut stderr, _) = paused_at(
        &env,
        &[
            "verify",
            "--backup",
            id,
            "--dest",
            &dest,
            "--test-restore",
            "--mongo-uri",
            server.uri(),
        ],
        "audit.restored",
        &scratch,
        &[("DRIVEBACK_PAUSE_RELEASE", release.as_os_str())],
    );
    let entries = client
        .database(&scratch)
        .collection::<bson::Document>("entries");
    entries
        .update_one(doc! { "_id": 5 }, doc! { "$set": { "n": -1 } })
        .await
        .unwrap();
    client
        .database(&scratch)
        .collection::<bson::Document>("users")
        .delete_one(doc! { "_id": 3 })
        .await
        .unwrap();
    std::fs::write(&release, b"").unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut rest).unwrap();
    let status = child.wait().unwrap();
    assert!(!status.success());
    assert!(rest.contains("the restore test of backup"), "{rest}");
    assert!(
        rest.contains("entries: the documents read back differ from the backup's"),
        "{rest}"
    );
    assert!(
        rest.contains("users: the server gave back 6 documents, the backup holds 7"),
        "{rest}"
    );
    assert!(!databases(&client).await.contains(&scratch));
    let (last, check) = last_test_restore(&env);
    assert_eq!(last["outcome"], "failed", "{last}");
    assert_eq!(check["status"], "critical", "{check}");

    // 3. A server that does not answer: the audit is skipped, with a warning (not a failure).
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dead = format!("mongodb://127.0.0.1:{closed}/?serverSelectionTimeoutMS=500");
    let out = env.cli(&[
        "verify",
        "--backup",
        id,
        "--dest",
        &dest,
        "--test-restore",
        "--mongo-uri",
        &dead,
    ]);
    let line = one_error_line(&out);
    assert!(
        line.contains("was skipped: the server refused the test restore"),
        "{line}"
    );
    let (last, check) = last_test_restore(&env);
    assert_eq!(last["error"]["code"], "audit_skipped", "{last}");
    assert_eq!(check["status"], "warning", "{check}");

    // 4. A scratch database that holds someone's data is refused and left alone.
    let theirs = server.fresh_db("audit_theirs");
    seed_ids(&client, &theirs, "precious", 3).await;
    let out = audit(&["--scratch-db", &theirs]);
    let line = one_error_line(&out);
    assert!(line.contains("already holds data"), "{line}");
    let left = client
        .database(&theirs)
        .collection::<bson::Document>("precious")
        .count_documents(doc! {})
        .await
        .unwrap();
    assert_eq!(left, 3);
}
