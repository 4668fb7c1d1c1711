//! Alarms on data loss, through the real CLI, server and folder: a backup holding 40% fewer
//! documents in a collection than the previous one says so (`warnings` in `backup --json`, the
//! health check), the previous backup survives retention until the alarm is acknowledged, and
//! normal growth stays quiet.

mod common;

use bson::doc;
use common::*;

fn ids(listed: &str) -> Vec<String> {
    let v: serde_json::Value = serde_json::from_str(listed).unwrap();
    v["backups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["id"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_drop_raises_an_alarm_and_keeps_the_backup_before_it() {
    let server = mongo();
    let client = server.client().await;
    let db = server.fresh_db("alarm");
    seed_ids(&client, &db, "entries", 100).await;
    seed_ids(&client, &db, "users", 10).await;
    let env = Env::new();
    for (k, v) in [
        ("backup.dest", env.dest()),
        ("backup.database", db.clone()),
        ("retention.daily", "1".into()),
        ("retention.weekly", "0".into()),
        ("retention.monthly", "0".into()),
        ("retention.keep_last", "1".into()),
    ] {
        env.ok(&["config", "set", k, &v]);
    }
    let first = env.backup(server.uri(), &db);
    assert_eq!(first["warnings"], serde_json::json!([]));

    // Growth is quiet.
    let entries = client.database(&db).collection::<bson::Document>("entries");
    entries
        .insert_many((100..120).map(|i| doc! { "_id": i }))
        .await
        .unwrap();
    let second = env.backup(server.uri(), &db);
    assert_eq!(second["warnings"], serde_json::json!([]));
    let second_id = second["id"].as_str().unwrap().to_string();

    // 50 of 120 entries deleted (42%), and the users collection dropped.
    entries
        .delete_many(doc! { "_id": { "$lt": 50 } })
        .await
        .unwrap();
    client
        .database(&db)
        .collection::<bson::Document>("users")
        .drop()
        .await
        .unwrap();
    let third = env.backup(server.uri(), &db);
    assert_eq!(
        third["warnings"],
        serde_json::json!([
            {"code": "documents_dropped", "collection": "entries", "before": 120, "after": 70},
            {"code": "collection_missing", "collection": "users", "before": 10, "after": 0},
        ])
    );
    let third_id = third["id"].as_str().unwrap().to_string();

    // Retention (one daily backup) ran after each backup: the one before the loss stays.
    let listed = ids(&env.ok(&["list", "--dest", &env.dest(), "--json"]));
    assert_eq!(listed, [third_id.clone(), second_id.clone()]);
    let dry = env.ok(&["prune", "--dry-run", "--json"]);
    assert!(dry.contains("\"protected\""), "{dry}");

    // The health says so, with the numbers.
    let status: serde_json::Value = serde_json::from_str(&env.ok(&["status", "--json"])).unwrap();
    let check = status["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "data_loss")
        .unwrap_or_else(|| panic!("no data_loss check: {status}"))
        .clone();
    assert_eq!(check["status"], "warning");
    let message = check["message"].as_str().unwrap();
    assert!(
        message.contains("entries: 120 -> 70 documents"),
        "{message}"
    );
    assert!(
        message.contains("users: gone (10 documents before)"),
        "{message}"
    );

    // Acknowledged: the policy applies again, and the next prune deletes it.
    let ack = env.ok(&["acknowledge"]);
    assert!(ack.contains("Acknowledged 1 data-loss alarm"), "{ack}");
    env.ok(&["prune"]);
    assert_eq!(
        ids(&env.ok(&["list", "--dest", &env.dest(), "--json"])),
        [third_id]
    );
    let status = env.ok(&["status", "--json"]);
    assert!(!status.contains("data_loss"), "{status}");
    // The next backup compares with the new baseline: quiet.
    let fourth = env.backup(server.uri(), &db);
    assert_eq!(fourth["warnings"], serde_json::json!([]));
}
