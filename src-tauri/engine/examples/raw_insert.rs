//! The ceiling for the restore benchmark: the documents of a database inserted by the plain driver
//! into fresh collections, nothing else. Reads every collection of DB into memory (not timed),
//! then for each PARALLEL value P inserts them all into a new database `<DB>_ceiling_<P>` in
//! batches of 1000 with P `insert_many` calls in flight at once (across all collections), times
//! only the inserts, drops that database, and prints one JSON line per P.
//!
//! Usage: raw_insert URI DB PARALLEL...

use std::sync::Arc;

use bson::{doc, RawDocumentBuf};

const BATCH: usize = 1000;

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (uri, name) = (&args[1], &args[2]);
    let parallel: Vec<usize> = args[3..]
        .iter()
        .map(|p| p.parse().expect("PARALLEL is a number"))
        .collect();
    let client = mongodb::Client::with_uri_str(uri).await.expect("connect");
    let source = client.database(name);
    let mut collections = Vec::new();
    let (mut docs, mut bytes) = (0u64, 0u64);
    for coll in source
        .list_collection_names()
        .await
        .expect("list collections")
    {
        if coll.starts_with("system.") {
            continue;
        }
        let mut cursor = source
            .collection::<RawDocumentBuf>(&coll)
            .find(doc! {})
            .await
            .expect("find");
        let mut all = Vec::new();
        while cursor.advance().await.expect("read") {
            bytes += cursor.current().as_bytes().len() as u64;
            all.push(cursor.current().to_raw_document_buf());
        }
        docs += all.len() as u64;
        collections.push((coll, all));
    }
    let collections = Arc::new(collections);
    // Every batch as (collection index, first document, end), collection by collection.
    let batches: Vec<(usize, usize, usize)> = collections
        .iter()
        .enumerate()
        .flat_map(|(i, (_, all))| {
            (0..all.len())
                .step_by(BATCH)
                .map(move |s| (i, s, (s + BATCH).min(all.len())))
        })
        .collect();
    for p in parallel {
        let target = client.database(&format!("{name}_ceiling_{p}"));
        target.drop().await.expect("drop before");
        let started = std::time::Instant::now();
        let mut in_flight = tokio::task::JoinSet::new();
        for &(i, s, e) in &batches {
            while in_flight.len() >= p.max(1) {
                in_flight
                    .join_next()
                    .await
                    .expect("in flight")
                    .expect("task");
            }
            let (collections, target) = (collections.clone(), target.clone());
            in_flight.spawn(async move {
                let (coll, all) = &collections[i];
                target
                    .collection::<RawDocumentBuf>(coll)
                    .insert_many(&all[s..e])
                    .ordered(true)
                    .bypass_document_validation(true)
                    .await
                    .expect("insert");
            });
        }
        while let Some(r) = in_flight.join_next().await {
            r.expect("task");
        }
        let secs = started.elapsed().as_secs_f64();
        target.drop().await.expect("drop after");
        println!(
            "{}",
            serde_json::json!({ "parallel": p, "documents": docs, "bytes": bytes, "seconds": secs })
        );
    }
}
