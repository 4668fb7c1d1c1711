//! The ceiling for the backup benchmark: read every collection of a database with the plain
//! driver (raw BSON, natural order, nothing else) and print docs, bytes and seconds as JSON.
//!
//! Usage: raw_read URI DB

use bson::{doc, RawDocumentBuf};

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (uri, db) = (&args[1], &args[2]);
    let client = mongodb::Client::with_uri_str(uri).await.expect("connect");
    let db = client.database(db);
    let started = std::time::Instant::now();
    let (mut docs, mut bytes) = (0u64, 0u64);
    for name in db.list_collection_names().await.expect("list collections") {
        if name.starts_with("system.") {
            continue;
        }
        let mut cursor = db
            .collection::<RawDocumentBuf>(&name)
            .find(doc! {})
            .await
            .expect("find");
        while cursor.advance().await.expect("read") {
            docs += 1;
            bytes += cursor.current().as_bytes().len() as u64;
        }
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{}",
        serde_json::json!({ "documents": docs, "bytes": bytes, "seconds": secs })
    );
}
