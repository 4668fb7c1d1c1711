//! A cancelled backup never commits: `driveback backup` stopped by SIGINT or SIGTERM at a chosen
//! stage (a pause point holds it there until the cancel, so the stop lands every time) exits with
//! the shell's code, lists nothing, leaves no partial file, and is recorded as cancelled.

mod common;

use std::process::Command;

use common::*;
use driveback_engine::history::{History, Outcome, RunKind};

/// About 2.5 MB of documents that do not compress away, so that a backup is still uploading
/// after its first megabyte.
async fn db_with_data(name: &str) -> String {
    let server = mongo();
    let client = server.client().await;
    let db = server.fresh_db(name);
    let docs = (0..8000).map(|i: i32| {
        let noise: String = (0..40)
            .map(|_| format!("{:016x}", rand::random::<u64>()))
            .collect::<Vec<_>>()
            .join("");
        bson::doc! { "_id": i, "noise": &noise[..300] }
    });
    client
        .database(&db)
        .collection::<bson::Document>("items")
        .insert_many(docs)
        .await
        .unwrap();
    db
}

/// Starts a backup paused at `point`, checks `at_pause` there, stops it with `signal`, and
/// returns its exit code and stderr.
fn stopped_backup(
    env: &Env,
    db: &str,
    point: &str,
    signal: &str,
    at_pause: impl Fn(),
) -> (Option<i32>, String) {
    let dest = env.dest();
    let (mut child, mut stderr, mut seen) =
        paused_at(env, &backup_args(mongo().uri(), db, &dest), point, db, &[]);
    at_pause();
    let sent = Command::new("kill")
        .args([&format!("-{signal}"), &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut rest).unwrap();
    seen.push_str(&rest);
    let status = child.wait().unwrap();
    (status.code(), seen)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stopped_backup_keeps_nothing_at_any_stage() {
    let db = db_with_data("cancel").await;
    let env = Env::new();
    // The key first, so that the stop lands in the backup itself.
    env.ok(&["key", "init", "--dest", &env.dest()]);
    let cases = [
        ("backup.writing", "INT", 130),
        ("backup.uploading", "INT", 130),
        ("backup.before_commit", "TERM", 143),
    ];
    let partial_bytes = || -> u64 {
        files_under(&env.dest_path())
            .iter()
            .filter(|p| p.to_string_lossy().ends_with(".partial"))
            .map(|p| std::fs::metadata(p).unwrap().len())
            .sum()
    };
    for (point, signal, code) in cases {
        let (exit, stderr) = stopped_backup(&env, &db, point, signal, || {
            if point == "backup.uploading" {
                // Mid-upload: part of the file is already at the destination.
                assert!(partial_bytes() > 0, "nothing was uploaded yet");
            }
        });
        assert_eq!(exit, Some(code), "{point}: {stderr}");
        assert!(stderr.contains("cancelled: nothing was kept"), "{stderr}");
        let listed: serde_json::Value =
            serde_json::from_str(&env.ok(&["list", "--dest", &env.dest(), "--json"])).unwrap();
        assert_eq!(listed["backups"], serde_json::json!([]), "{point}");
        // Only the key files are left: no backup, no partial upload.
        let mut left: Vec<String> = files_under(&env.dest_path())
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, ["driveback-key.age", "driveback-key.pub"], "{point}");
    }
    let runs: Vec<_> = History::new(env.config_dir().join("history.jsonl"))
        .load()
        .unwrap()
        .into_iter()
        .filter(|r| r.kind == RunKind::Backup)
        .collect();
    assert_eq!(runs.len(), 3);
    assert!(
        runs.iter().all(|r| r.outcome == Outcome::Cancelled),
        "{runs:?}"
    );
    // And the next backup works.
    env.backup(mongo().uri(), &db);
}
