//! The MongoDB seam: what the service asks of a database server, in one small trait. The
//! product's [`MongoDriver`] is the official driver through the engine's export and restore; the
//! service never connects by itself.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use mongodb::bson::Document;

use crate::error::EngineError;
use crate::pipeline::{self, BackupOptions, BackupResult, RestoreOptions, RestoreResult, Source};
use crate::progress::ProgressSink;
use crate::store::RemoteStore;

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A live collection (or view) of a database, with its document count (an estimate from the
/// server; none when it could not be read, and for views).
#[derive(Clone, Debug, PartialEq)]
pub struct LiveCollection {
    pub name: String,
    /// "collection" or "view".
    pub kind: String,
    pub documents: Option<u64>,
}

/// A MongoDB server, as the service uses it.
pub trait DatabaseServer: Send + Sync {
    /// The databases a person may back up (the server's own left out), sorted.
    fn list_databases<'a>(
        &'a self,
        uri: &'a str,
    ) -> BoxFuture<'a, Result<Vec<String>, EngineError>>;

    /// Connects and pings.
    fn ping<'a>(&'a self, uri: &'a str) -> BoxFuture<'a, Result<(), EngineError>>;

    /// The collections and views of `database`, with counts.
    fn describe<'a>(
        &'a self,
        uri: &'a str,
        database: &'a str,
    ) -> BoxFuture<'a, Result<Vec<LiveCollection>, EngineError>>;

    /// Exports `opts.database` into a backup at `store`.
    fn backup<'a>(
        &'a self,
        uri: &'a str,
        opts: &'a BackupOptions,
        store: Arc<dyn RemoteStore>,
        recipient: age::x25519::Recipient,
        progress: Arc<dyn ProgressSink>,
    ) -> BoxFuture<'a, Result<BackupResult, EngineError>>;

    /// Restores `source` (staging, verify, swap).
    fn restore<'a>(
        &'a self,
        uri: &'a str,
        source: Source,
        opts: &'a RestoreOptions,
        progress: Arc<dyn ProgressSink>,
    ) -> BoxFuture<'a, Result<RestoreResult, EngineError>>;
}

/// Databases a person may back up: the server's own are left out.
const SYSTEM_DATABASES: [&str; 3] = ["admin", "local", "config"];

/// The official driver.
pub struct MongoDriver;

impl DatabaseServer for MongoDriver {
    fn list_databases<'a>(
        &'a self,
        uri: &'a str,
    ) -> BoxFuture<'a, Result<Vec<String>, EngineError>> {
        Box::pin(async move {
            let client = crate::mongo::connect(uri).await?;
            let mut names = client
                .list_database_names()
                .await
                .map_err(|e| crate::mongo::MongoError::server("listing the databases", e))?;
            names.retain(|n| !SYSTEM_DATABASES.contains(&n.as_str()));
            names.sort();
            Ok(names)
        })
    }

    fn ping<'a>(&'a self, uri: &'a str) -> BoxFuture<'a, Result<(), EngineError>> {
        Box::pin(async move {
            crate::mongo::connect(uri).await?.shutdown().await;
            Ok(())
        })
    }

    fn describe<'a>(
        &'a self,
        uri: &'a str,
        database: &'a str,
    ) -> BoxFuture<'a, Result<Vec<LiveCollection>, EngineError>> {
        Box::pin(async move {
            let client = crate::mongo::connect(uri).await?;
            let db = client.database(database);
            let infos = crate::mongo::export::describe_database(&db).await?;
            let mut out = Vec::with_capacity(infos.len());
            for info in infos {
                let documents = if info.kind == "view" {
                    None
                } else {
                    db.collection::<Document>(&info.name)
                        .estimated_document_count()
                        .await
                        .ok()
                };
                out.push(LiveCollection {
                    name: info.name,
                    kind: info.kind,
                    documents,
                });
            }
            Ok(out)
        })
    }

    fn backup<'a>(
        &'a self,
        uri: &'a str,
        opts: &'a BackupOptions,
        store: Arc<dyn RemoteStore>,
        recipient: age::x25519::Recipient,
        progress: Arc<dyn ProgressSink>,
    ) -> BoxFuture<'a, Result<BackupResult, EngineError>> {
        Box::pin(pipeline::backup(uri, opts, store, recipient, progress))
    }

    fn restore<'a>(
        &'a self,
        uri: &'a str,
        source: Source,
        opts: &'a RestoreOptions,
        progress: Arc<dyn ProgressSink>,
    ) -> BoxFuture<'a, Result<RestoreResult, EngineError>> {
        Box::pin(pipeline::restore(uri, source, opts, progress))
    }
}
