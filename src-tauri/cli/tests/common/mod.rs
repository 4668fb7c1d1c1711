//! Helpers for the end-to-end tests: run the real `driveback` CLI against the real test
//! server, seed data, compare databases byte for byte.
#![allow(dead_code, unused_imports)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use bson::{doc, Document, RawDocumentBuf};
use futures_util::TryStreamExt;
use mongodb::Client;

pub use driveback_testkit::mongo;

pub const PASSPHRASE: &str = "correct horse battery staple";

/// One test's private world: a destination folder and its own keyring service name.
pub struct Env {
    pub dir: tempfile::TempDir,
    pub keyring_service: String,
}

impl Env {
    pub fn new() -> Self {
        Env {
            dir: tempfile::tempdir().unwrap(),
            keyring_service: format!("driveback-test-{:08x}", rand::random::<u32>()),
        }
    }

    pub fn dest(&self) -> String {
        format!("folder:{}", self.dest_path().display())
    }

    pub fn config_dir(&self) -> PathBuf {
        self.dir.path().join("config")
    }

    pub fn dest_path(&self) -> PathBuf {
        self.dir.path().join("backups")
    }

    /// Runs the CLI with the passphrase in the environment (as a script would).
    pub fn cli(&self, args: &[&str]) -> Output {
        self.cli_with(args, &[("DRIVEBACK_PASSPHRASE", PASSPHRASE)])
    }

    pub fn cli_with(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_driveback"));
        cmd.args(args)
            .env_remove("DRIVEBACK_PASSPHRASE")
            .env_remove("DRIVEBACK_MONGO_URI")
            .env("DRIVEBACK_KEYRING_SERVICE", &self.keyring_service)
            // Its own settings and history (a backup records its run).
            .env("DRIVEBACK_CONFIG_DIR", self.config_dir())
            .env_remove("DRIVEBACK_DATA_DIR")
            // The lock of the incremental layout waits this long for a racing process's lock
            // file to show (2 s by default).
            .env("DRIVEBACK_LOCK_SETTLE_MS", "200")
            .stdin(std::process::Stdio::null());
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.output().expect("run driveback")
    }

    /// Runs the CLI and expects success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.cli(args);
        assert!(
            out.status.success(),
            "driveback {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    pub fn backup(&self, uri: &str, db: &str) -> serde_json::Value {
        let out = self.ok(&backup_args(uri, db, &self.dest()));
        serde_json::from_str(&out).expect("backup --json output")
    }
}

/// A `driveback` run (passphrase in the environment) held at the pause point `point` for
/// `scope` (see `crash::pause_point`): returns the process and its stderr so far, once it is
/// there. `extra` adds environment variables (`DRIVEBACK_PAUSE_RELEASE`).
pub fn paused_at(
    env: &Env,
    args: &[&str],
    point: &str,
    scope: &str,
    extra: &[(&str, &std::ffi::OsStr)],
) -> (
    std::process::Child,
    std::io::BufReader<std::process::ChildStderr>,
    String,
) {
    use std::io::BufRead;
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_driveback"));
    cmd.args(args)
        .env("DRIVEBACK_PASSPHRASE", PASSPHRASE)
        .env_remove("DRIVEBACK_MONGO_URI")
        .env("DRIVEBACK_KEYRING_SERVICE", &env.keyring_service)
        .env("DRIVEBACK_CONFIG_DIR", env.config_dir())
        .env_remove("DRIVEBACK_DATA_DIR")
        .env("DRIVEBACK_PAUSE_AT", format!("{point}:{scope}"))
        .env("DRIVEBACK_LOCK_SETTLE_MS", "200")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    for (k, v) in extra {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("run driveback");
    let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut seen = String::new();
    loop {
        let mut line = String::new();
        assert!(
            stderr.read_line(&mut line).unwrap() > 0,
            "driveback ended before reaching {point}: {seen}"
        );
        seen.push_str(&line);
        if line.contains(&format!("paused at {point}")) {
            return (child, stderr, seen);
        }
    }
}

/// `driveback backup` of `db` to `dest`, with `--json` last.
pub fn backup_args<'a>(uri: &'a str, db: &'a str, dest: &'a str) -> [&'a str; 8] {
    [
        "backup",
        "--mongo-uri",
        uri,
        "--db",
        db,
        "--dest",
        dest,
        "--json",
    ]
}

/// The stderr of a failed run: exactly one line, which is returned.
pub fn one_error_line(out: &Output) -> String {
    assert!(
        !out.status.success(),
        "expected a failure, got success: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    let lines: Vec<&str> = err
        .lines()
        .filter(|l| l.starts_with("driveback: error"))
        .collect();
    assert_eq!(lines.len(), 1, "expected one error line, got: {err}");
    assert!(!err.contains("panicked"), "the CLI panicked: {err}");
    lines[0].to_string()
}

/// Every document of a collection as raw bytes, in `_id` order.
pub async fn raw_docs(client: &Client, db: &str, coll: &str) -> Vec<Vec<u8>> {
    let c = client.database(db).collection::<RawDocumentBuf>(coll);
    let docs: Vec<RawDocumentBuf> = c
        .find(doc! {})
        .sort(doc! { "_id": 1 })
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    docs.into_iter().map(|d| d.into_bytes()).collect()
}

/// listIndexes, sorted by name, without fields that name the namespace.
pub async fn indexes(client: &Client, db: &str, coll: &str) -> Vec<Document> {
    let mut ix: Vec<Document> = client
        .database(db)
        .collection::<Document>(coll)
        .list_indexes()
        .await
        .unwrap()
        .try_collect::<Vec<_>>()
        .await
        .unwrap()
        .into_iter()
        .map(|m| bson::to_document(&m).unwrap())
        .collect();
    for i in ix.iter_mut() {
        i.remove("ns");
    }
    ix.sort_by(|a, b| {
        a.get_str("name")
            .unwrap_or("")
            .cmp(b.get_str("name").unwrap_or(""))
    });
    ix
}

/// listCollections: name -> (type, options), staging collections included (tests look for leftovers).
pub async fn collections(client: &Client, db: &str) -> Vec<(String, String, Document)> {
    let mut out: Vec<(String, String, Document)> = client
        .database(db)
        .run_cursor_command(doc! { "listCollections": 1 })
        .await
        .unwrap()
        .try_collect::<Vec<Document>>()
        .await
        .unwrap()
        .into_iter()
        .map(|d| {
            (
                d.get_str("name").unwrap().to_string(),
                d.get_str("type").unwrap_or("collection").to_string(),
                d.get_document("options").cloned().unwrap_or_default(),
            )
        })
        .filter(|(n, _, _)| !n.starts_with("system."))
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// A full picture of a database: collections, options, indexes and every document's bytes.
pub async fn snapshot(
    client: &Client,
    db: &str,
) -> Vec<(String, String, Document, Vec<Document>, Vec<Vec<u8>>)> {
    let mut out = Vec::new();
    for (name, kind, options) in collections(client, db).await {
        let (ix, docs) = if kind == "view" {
            (vec![], vec![])
        } else {
            (
                indexes(client, db, &name).await,
                raw_docs(client, db, &name).await,
            )
        };
        out.push((name, kind, options, ix, docs));
    }
    out
}

pub fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/testdata/mongodump-100.8.0")
}

/// The backup files (not sidecars) in a folder destination.
pub fn backup_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().map(|e| e == "mdbk").unwrap_or(false))
        .collect();
    v.sort();
    v
}

/// Whether the real Secret Service is there; without it a test that needs it skips, unless
/// `DRIVEBACK_REQUIRE_KEYRING=1` (then `require_keyring` fails the test).
pub fn keyring_or_skip() -> bool {
    if driveback_testkit::require_keyring() {
        return true;
    }
    eprintln!("skipping: no Secret Service (DRIVEBACK_REQUIRE_KEYRING=1 to fail instead)");
    false
}

/// Every file under `dir`, recursively.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = vec![];
    for e in std::fs::read_dir(dir).into_iter().flatten() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(files_under(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// `driveback restore --yes` of `backup` from `dest` into `db` on the test server.
pub fn restore_args<'a>(backup: &'a str, dest: &'a str, db: &'a str) -> [&'a str; 10] {
    [
        "restore",
        "--backup",
        backup,
        "--dest",
        dest,
        "--mongo-uri",
        mongo().uri(),
        "--db",
        db,
        "--yes",
    ]
}

/// Inserts `n` documents `{_id: 0..n}` into `db.coll`.
pub async fn seed_ids(client: &Client, db: &str, coll: &str, n: i32) {
    client
        .database(db)
        .collection::<Document>(coll)
        .insert_many((0..n).map(|i| doc! { "_id": i }))
        .await
        .unwrap();
}

/// `age -d -i key FILE | zstd -d`: the plain archive of one backup file, with the standard tools.
pub fn decrypt_with_tools(key: &std::path::Path, file: &std::path::Path) -> Vec<u8> {
    use std::process::{Command, Stdio};
    let age = Command::new("age")
        .args(["-d", "-i"])
        .arg(key)
        .arg(file)
        .stdout(Stdio::piped())
        .spawn()
        .expect("age is installed");
    let zstd = Command::new("zstd")
        .args(["-d", "-c"])
        .stdin(age.stdout.unwrap())
        .output()
        .expect("zstd is installed");
    assert!(
        zstd.status.success(),
        "{}",
        String::from_utf8_lossy(&zstd.stderr)
    );
    zstd.stdout
}
