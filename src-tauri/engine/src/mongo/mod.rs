//! MongoDB side of Driveback: connecting, exporting a database as raw BSON, restoring it through
//! staging collections.

pub mod export;
pub mod restore;

use std::time::Duration;

use bson::{doc, Document};
use mongodb::options::ClientOptions;
use mongodb::Client;

/// Errors talking to the database, worded for the person running the backup.
#[derive(Debug, thiserror::Error)]
pub enum MongoError {
    #[error("the MongoDB connection string is not valid: {0}")]
    BadUri(String),
    #[error("the database server at {host} is unreachable: {reason}")]
    Unreachable { host: String, reason: String },
    #[error("database {0:?} does not exist or has no collections")]
    NoSuchDatabase(String),
    #[error("the backup has no collection named {0:?}")]
    NoSuchCollection(String),
    #[error("{0}")]
    Mismatch(String),
    #[error("MongoDB error during {context}: {source}")]
    Server {
        context: String,
        #[source]
        source: mongodb::error::Error,
    },
}

impl MongoError {
    pub fn server(context: impl Into<String>, source: mongodb::error::Error) -> Self {
        MongoError::Server {
            context: context.into(),
            source,
        }
    }
}

/// The hosts of a connection string, with user, password and options left out, for messages.
pub fn redact_uri(uri: &str) -> String {
    let rest = uri.split_once("://").map(|(_, r)| r).unwrap_or(uri);
    let rest = rest.rsplit_once('@').map(|(_, r)| r).unwrap_or(rest);
    rest.split(['/', '?']).next().unwrap_or("").to_string()
}

/// Connects and checks the server answers (a `ping`), with timeouts short enough for a person
/// waiting on a button.
pub async fn connect(uri: &str) -> Result<Client, MongoError> {
    let mut opts = ClientOptions::parse(uri)
        .await
        .map_err(|e| MongoError::BadUri(redacted_error(&e, uri)))?;
    opts.app_name
        .get_or_insert_with(|| format!("driveback/{}", crate::VERSION));
    opts.server_selection_timeout
        .get_or_insert(Duration::from_secs(10));
    opts.connect_timeout.get_or_insert(Duration::from_secs(10));
    let client =
        Client::with_options(opts).map_err(|e| MongoError::BadUri(redacted_error(&e, uri)))?;
    client
        .database("admin")
        .run_command(doc! { "ping": 1 })
        .await
        .map_err(|e| MongoError::Unreachable {
            host: redact_uri(uri),
            reason: short_reason(&e),
        })?;
    Ok(client)
}

/// A driver error's message with the URI's secrets removed.
fn redacted_error(e: &mongodb::error::Error, uri: &str) -> String {
    let mut msg = e.to_string();
    if let Some((creds, _)) = uri.split_once("://").and_then(|(_, r)| r.rsplit_once('@')) {
        msg = msg.replace(creds, "***");
    }
    msg
}

/// The first line of a driver error, which is what a person can act on.
pub fn short_reason(e: &mongodb::error::Error) -> String {
    use mongodb::error::ErrorKind;
    match e.kind.as_ref() {
        ErrorKind::ServerSelection { .. } => {
            "no server answered within the timeout (is it running, and is the address right?)"
                .into()
        }
        ErrorKind::Authentication { message, .. } => format!("authentication failed: {message}"),
        _ => e.to_string().lines().next().unwrap_or_default().to_string(),
    }
}

/// What the server is and can do, from `hello` and `buildInfo`.
#[derive(Clone, Debug)]
pub struct ServerInfo {
    pub version: String,
    /// A replica set member or mongos: multi-document transactions and snapshot reads exist.
    pub supports_snapshots: bool,
}

pub async fn server_info(client: &Client) -> Result<ServerInfo, MongoError> {
    let admin = client.database("admin");
    let hello = admin
        .run_command(doc! { "hello": 1 })
        .await
        .map_err(|e| MongoError::server("hello", e))?;
    let build = admin
        .run_command(doc! { "buildInfo": 1 })
        .await
        .map_err(|e| MongoError::server("buildInfo", e))?;
    let replica_set = hello.get_str("setName").is_ok();
    let mongos = hello
        .get_str("msg")
        .map(|m| m == "isdbgrid")
        .unwrap_or(false);
    Ok(ServerInfo {
        version: build.get_str("version").unwrap_or("unknown").to_string(),
        supports_snapshots: replica_set || mongos,
    })
}

/// Runs a cursor-returning command and collects every document (small results: collection and
/// index lists).
pub(crate) async fn cursor_command(
    db: &mongodb::Database,
    cmd: Document,
) -> Result<Vec<Document>, mongodb::error::Error> {
    use futures_util::TryStreamExt;
    db.run_cursor_command(cmd).await?.try_collect().await
}

#[cfg(test)]
mod tests {
    use super::redact_uri;

    #[test]
    fn redaction_keeps_hosts_only() {
        let cases = [
            (
                "mongodb://user:p%40ss@db1:27017,db2:27018/app?authSource=admin",
                "db1:27017,db2:27018",
            ),
            (
                "mongodb+srv://u:secret@cluster0.example.net/?retryWrites=true",
                "cluster0.example.net",
            ),
            ("mongodb://127.0.0.1:27017", "127.0.0.1:27017"),
            ("mongodb://a:b@c@host/", "host"),
        ];
        for (uri, want) in cases {
            assert_eq!(redact_uri(uri), want, "{uri}");
            assert!(!redact_uri(uri).contains("secret"));
        }
    }
}
