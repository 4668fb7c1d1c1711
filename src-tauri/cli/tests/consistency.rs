//! A backup taken while transactions move money between two collections restores to a state
//! where the total is unchanged: the export reads one point-in-time snapshot.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use bson::doc;
use common::*;
use futures_util::TryStreamExt;
use mongodb::Client;
use rand::Rng;

const ACCOUNTS: i32 = 4000;
const START: i64 = 1_000;

async fn total(client: &Client, db: &str) -> i64 {
    let mut sum = 0;
    for coll in ["checking", "savings"] {
        let docs: Vec<bson::Document> = client
            .database(db)
            .collection(coll)
            .find(doc! {})
            .await
            .unwrap()
            .try_collect()
            .await
            .unwrap();
        sum += docs
            .iter()
            .map(|d| d.get_i64("amount").unwrap())
            .sum::<i64>();
    }
    sum
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn backup_during_transfers_restores_an_exact_total() {
    let server = mongo();
    let client = server.client().await;
    let db = server.fresh_db("bank");
    let d = client.database(&db);
    for coll in ["checking", "savings"] {
        d.collection(coll)
            .insert_many(
                (0..ACCOUNTS)
                    .map(|i| doc! { "_id": i, "amount": START, "owner": format!("{i:0>120}") }),
            )
            .await
            .unwrap();
    }
    let expected = 2 * ACCOUNTS as i64 * START;

    let stop = Arc::new(AtomicBool::new(false));
    let committed = Arc::new(AtomicU64::new(0));
    let writer = {
        let (client, db, stop, committed) =
            (client.clone(), db.clone(), stop.clone(), committed.clone());
        tokio::spawn(async move {
            let mut session = client.start_session().await.unwrap();
            while !stop.load(Ordering::Relaxed) {
                let (from, to, id_from, id_to, amount) = {
                    let mut rng = rand::thread_rng();
                    let forward = rng.gen_bool(0.5);
                    let (f, t) = if forward {
                        ("checking", "savings")
                    } else {
                        ("savings", "checking")
                    };
                    (
                        f,
                        t,
                        rng.gen_range(0..ACCOUNTS),
                        rng.gen_range(0..ACCOUNTS),
                        rng.gen_range(1..50i64),
                    )
                };
                session.start_transaction().await.unwrap();
                let d = client.database(&db);
                let a = d
                    .collection::<bson::Document>(from)
                    .update_one(
                        doc! { "_id": id_from },
                        doc! { "$inc": { "amount": -amount } },
                    )
                    .session(&mut session)
                    .await;
                let b = d
                    .collection::<bson::Document>(to)
                    .update_one(doc! { "_id": id_to }, doc! { "$inc": { "amount": amount } })
                    .session(&mut session)
                    .await;
                if a.is_ok() && b.is_ok() && session.commit_transaction().await.is_ok() {
                    committed.fetch_add(1, Ordering::Relaxed);
                } else {
                    let _ = session.abort_transaction().await;
                }
            }
        })
    };
    // Let transfers get going, then back up while they run.
    while committed.load(Ordering::Relaxed) < 20 {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let env = Env::new();
    let before_backup = committed.load(Ordering::Relaxed);
    let uri = server.uri().to_string();
    let dest = env.dest();
    let db2 = db.clone();
    let env_ref = &env;
    let backup = tokio::task::block_in_place(|| {
        env_ref.ok(&[
            "backup",
            "--mongo-uri",
            &uri,
            "--db",
            &db2,
            "--dest",
            &dest,
            "--json",
        ])
    });
    let during = committed.load(Ordering::Relaxed) - before_backup;
    stop.store(true, Ordering::Relaxed);
    writer.await.unwrap();
    assert!(
        during > 5,
        "transfers kept committing during the backup ({during})"
    );
    assert_eq!(
        total(&client, &db).await,
        expected,
        "the writer itself keeps the total"
    );

    let backup: serde_json::Value = serde_json::from_str(&backup).unwrap();
    assert_eq!(backup["snapshot"], true);
    let target = server.fresh_db("bank_restored");
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
    assert_eq!(
        total(&client, &target).await,
        expected,
        "the restored total is exact: the backup is one snapshot"
    );
}
