//! Every way a user can hand Driveback a bad backup, a wrong key or a dead database ends in one
//! clear error line, and the target database is left exactly as it was.

mod common;

use std::str::FromStr;

use bson::doc;
use common::*;

/// A target database with known contents, and a backup of another database to restore into it.
struct Scene {
    env: Env,
    client: mongodb::Client,
    target: String,
    backup_id: String,
}

async fn scene() -> Scene {
    let server = mongo();
    let client = server.client().await;
    let source = server.fresh_db("bad_src");
    let d = client.database(&source);
    // Enough data for several encryption chunks, in two collections.
    d.collection("alpha")
        .insert_many((0..3000).map(|i| doc! { "_id": i, "pad": format!("{i:0>200}") }))
        .await
        .unwrap();
    d.collection("omega")
        .insert_many((0..3000).map(|i| doc! { "_id": i, "pad": format!("{:x}", i * 7919) }))
        .await
        .unwrap();
    let target = server.fresh_db("bad_target");
    let t = client.database(&target);
    t.collection("alpha")
        .insert_many((0..5).map(|i| doc! { "_id": i, "live": true }))
        .await
        .unwrap();
    t.collection("omega")
        .insert_one(doc! { "_id": 1, "live": true })
        .await
        .unwrap();
    let env = Env::new();
    let backup_id = env.backup(server.uri(), &source)["id"]
        .as_str()
        .unwrap()
        .to_string();
    Scene {
        env,
        client,
        target,
        backup_id,
    }
}

impl Scene {
    fn restore_file(&self, path: &std::path::Path) -> std::process::Output {
        self.env.cli(&[
            "restore",
            "--backup",
            path.to_str().unwrap(),
            "--dest",
            &self.env.dest(),
            "--mongo-uri",
            mongo().uri(),
            "--db",
            &self.target,
            "--yes",
        ])
    }

    /// `driveback restore` of the scene's backup into the target with `--parallel n`.
    fn restore_parallel(&self, n: &str) -> std::process::Output {
        self.env.cli(&[
            "restore",
            "--backup",
            &self.backup_id,
            "--dest",
            &self.env.dest(),
            "--mongo-uri",
            mongo().uri(),
            "--db",
            &self.target,
            "--parallel",
            n,
            "--yes",
        ])
    }

    fn backup_file(&self) -> std::path::PathBuf {
        backup_files(&self.env.dest_path()).pop().unwrap()
    }

    /// A copy of the backup file, changed by `f`, outside the destination.
    fn tampered(&self, name: &str, f: impl FnOnce(&mut Vec<u8>)) -> std::path::PathBuf {
        let mut bytes = std::fs::read(self.backup_file()).unwrap();
        f(&mut bytes);
        let p = self.env.dir.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    }

    async fn assert_target_unchanged(
        &self,
        before: &[(
            String,
            String,
            bson::Document,
            Vec<bson::Document>,
            Vec<Vec<u8>>,
        )],
    ) {
        let after = snapshot(&self.client, &self.target).await;
        assert!(
            after.iter().all(|c| !c.0.starts_with("driveback_staging_")),
            "staging collections were dropped"
        );
        assert!(after == before, "the target database is unchanged");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn wrong_passphrase_is_refused() {
    let s = scene().await;
    let before = snapshot(&s.client, &s.target).await;
    // A fresh keyring service: the key is not cached there, so the passphrase must open it.
    let other = Env {
        dir: tempfile::tempdir().unwrap(),
        keyring_service: format!("driveback-test-{:08x}", rand::random::<u32>()),
    };
    let mut cmd_env = vec![("DRIVEBACK_PASSPHRASE", "not the passphrase")];
    cmd_env.push(("DRIVEBACK_KEYRING_SERVICE", other.keyring_service.as_str()));
    let out = s.env.cli_with(
        &[
            "restore",
            "--backup",
            &s.backup_id,
            "--dest",
            &s.env.dest(),
            "--mongo-uri",
            mongo().uri(),
            "--db",
            &s.target,
            "--yes",
        ],
        &cmd_env,
    );
    let line = one_error_line(&out);
    assert!(line.contains("wrong passphrase"), "{line}");
    s.assert_target_unchanged(&before).await;

    // The right passphrase on that same fresh keyring works (the key is read from the destination).
    let out = s.env.cli_with(
        &["verify", "--backup", &s.backup_id, "--dest", &s.env.dest()],
        &[
            ("DRIVEBACK_PASSPHRASE", PASSPHRASE),
            ("DRIVEBACK_KEYRING_SERVICE", other.keyring_service.as_str()),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn backup_encrypted_to_another_key_is_refused() {
    let s = scene().await;
    let before = snapshot(&s.client, &s.target).await;
    let other = Env::new();
    other.ok(&["key", "init", "--dest", &other.dest()]);
    let out = other.cli(&[
        "restore",
        "--backup",
        s.backup_file().to_str().unwrap(),
        "--dest",
        &other.dest(),
        "--mongo-uri",
        mongo().uri(),
        "--db",
        &s.target,
        "--yes",
    ]);
    let line = one_error_line(&out);
    assert!(line.contains("different backup key"), "{line}");
    s.assert_target_unchanged(&before).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn truncated_flipped_and_random_files_are_refused() {
    let s = scene().await;
    let before = snapshot(&s.client, &s.target).await;
    let len = std::fs::metadata(s.backup_file()).unwrap().len() as usize;

    // Truncated at several points: in the header, in the middle, just before the end.
    for cut in [20, len / 2, len - 10] {
        let p = s.tampered(&format!("cut{cut}.mdbk"), |b| b.truncate(cut));
        let line = one_error_line(&s.restore_file(&p));
        assert!(
            line.contains("corrupt or truncated")
                || line.contains("not a Driveback backup")
                || line.contains("incomplete"),
            "cut at {cut}: {line}"
        );
        s.assert_target_unchanged(&before).await;
    }

    // One flipped byte near the end: detected while later collections are being staged; the
    // collections already staged are dropped and live data is untouched.
    let p = s.tampered("flip-end.mdbk", |b| {
        let i = b.len() - 100;
        b[i] ^= 0x01;
    });
    let line = one_error_line(&s.restore_file(&p));
    assert!(line.contains("corrupt or truncated at offset"), "{line}");
    s.assert_target_unchanged(&before).await;

    // One flipped byte in the middle.
    let p = s.tampered("flip-mid.mdbk", |b| {
        let i = b.len() / 2;
        b[i] ^= 0x80;
    });
    let line = one_error_line(&s.restore_file(&p));
    assert!(line.contains("corrupt or truncated at offset"), "{line}");
    s.assert_target_unchanged(&before).await;

    // A random file.
    let p = s.env.dir.path().join("random.bin");
    std::fs::write(
        &p,
        (0..5000).map(|i| (i * 7 % 251) as u8).collect::<Vec<u8>>(),
    )
    .unwrap();
    let line = one_error_line(&s.restore_file(&p));
    assert!(
        line.contains("neither a Driveback backup nor a mongodump archive"),
        "{line}"
    );
    s.assert_target_unchanged(&before).await;

    // Verify says the same as restore about a flipped byte, without a database.
    let p = s.tampered("flip-verify.mdbk", |b| {
        let i = b.len() / 3;
        b[i] ^= 0x10;
    });
    let out = s.env.cli(&[
        "verify",
        "--backup",
        p.to_str().unwrap(),
        "--dest",
        &s.env.dest(),
    ]);
    assert!(one_error_line(&out).contains("corrupt or truncated at offset"));
}

#[tokio::test(flavor = "multi_thread")]
async fn newer_format_version_is_refused() {
    use driveback_engine::archive::{ArchiveWriter, Header};
    use driveback_engine::container::BackupWriter;
    use driveback_engine::manifest::{BackupStatus, Manifest};
    let s = scene().await;
    let before = snapshot(&s.client, &s.target).await;
    let pubkey = std::fs::read_to_string(s.env.dest_path().join("driveback-key.pub")).unwrap();
    let recipient = age::x25519::Recipient::from_str(pubkey.trim()).unwrap();
    let path = s.env.dir.path().join("future.mdbk");
    let file = std::fs::File::create(&path).unwrap();
    let w = BackupWriter::new(file, &recipient, 3).unwrap();
    let header = Header {
        concurrent_collections: 1,
        version: "0.1".into(),
        server_version: "9.0".into(),
        tool_version: "future".into(),
    };
    let archive = ArchiveWriter::new(w, &header, &[]).unwrap();
    let w = archive.finish().unwrap();
    let now = chrono::Utc::now();
    let manifest = Manifest {
        format_version: 99,
        app_version: "99.0.0".into(),
        backup_id: "0badf00d".into(),
        database: "x".into(),
        server_version: "9.0".into(),
        started_at: now,
        finished_at: now,
        point_in_time: true,
        consistency: "future".into(),
        collections: vec![],
        status: BackupStatus::Complete,
        chain: None,
    };
    w.finish(&manifest).unwrap();
    let line = one_error_line(&s.restore_file(&path));
    assert!(
        line.contains("newer Driveback") && line.contains("99"),
        "{line}"
    );
    s.assert_target_unchanged(&before).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn unreachable_database_is_one_clear_line() {
    let env = Env::new();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let uri =
        format!("mongodb://127.0.0.1:{port}/?serverSelectionTimeoutMS=1500&connectTimeoutMS=1000");
    let out = env.cli(&[
        "backup",
        "--mongo-uri",
        &uri,
        "--db",
        "x",
        "--dest",
        &env.dest(),
    ]);
    let line = one_error_line(&out);
    assert!(
        line.contains("unreachable") && line.contains(&format!("127.0.0.1:{port}")),
        "{line}"
    );
    assert!(
        backup_files(&env.dest_path()).is_empty(),
        "no backup file was left"
    );

    // Restore checks the database before it downloads anything.
    let out = env.cli(&[
        "restore",
        "--backup",
        "latest",
        "--dest",
        &env.dest(),
        "--mongo-uri",
        &uri,
        "--db",
        "x",
        "--yes",
    ]);
    let line = one_error_line(&out);
    assert!(line.contains("unreachable"), "{line}");

    // A URI with credentials never shows them.
    let uri = format!("mongodb://admin:s3cret-pw@127.0.0.1:{port}/?serverSelectionTimeoutMS=1500");
    let out = env.cli(&[
        "backup",
        "--mongo-uri",
        &uri,
        "--db",
        "x",
        "--dest",
        &env.dest(),
    ]);
    let line = one_error_line(&out);
    assert!(
        !line.contains("s3cret-pw") && !line.contains("admin:"),
        "{line}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn restore_without_confirmation_changes_nothing() {
    let s = scene().await;
    let before = snapshot(&s.client, &s.target).await;
    let out = s.env.cli(&[
        "restore",
        "--backup",
        &s.backup_id,
        "--dest",
        &s.env.dest(),
        "--mongo-uri",
        mongo().uri(),
        "--db",
        &s.target,
    ]);
    assert!(one_error_line(&out).contains("--yes"));
    s.assert_target_unchanged(&before).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn restore_parallel_out_of_range_is_refused_before_anything_changes() {
    let s = scene().await;
    let before = snapshot(&s.client, &s.target).await;
    for bad in ["0", "17", "many"] {
        let out = s.restore_parallel(bad);
        assert_eq!(
            out.status.code(),
            Some(2),
            "--parallel {bad} is a usage error"
        );
        let err = String::from_utf8_lossy(&out.stderr);
        let first = err.lines().next().unwrap_or_default();
        assert!(
            first.contains("--parallel") && first.contains(bad),
            "the first line names the option and the value: {err}"
        );
        s.assert_target_unchanged(&before).await;
    }
    // The bounds themselves restore the backup exactly.
    for good in ["1", "16"] {
        let out = s.restore_parallel(good);
        assert!(
            out.status.success(),
            "--parallel {good}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let t = s.client.database(&s.target);
        for (name, pad) in [
            ("alpha", format!("{:0>200}", 2999)),
            ("omega", format!("{:x}", 2999 * 7919)),
        ] {
            let c = t.collection::<bson::Document>(name);
            assert_eq!(
                c.count_documents(doc! {}).await.unwrap(),
                3000,
                "{name} with --parallel {good}"
            );
            let last = c.find_one(doc! {"_id": 2999}).await.unwrap().unwrap();
            assert_eq!(
                last.get_str("pad").unwrap(),
                pad,
                "{name} holds the backup's documents"
            );
        }
    }
}
