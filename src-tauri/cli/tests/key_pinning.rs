//! A destination someone else can write to cannot redirect the backups: the backup key a device
//! confirmed is pinned (`key-pins.json`), a replaced `driveback-key.pub` is ignored by backups and
//! refused by restores, and a new device accepts a public key only when the passphrase proves it
//! belongs with the wrapped key.

mod common;

use bson::doc;
use common::*;
use driveback_engine::keys::{BackupKey, PUBLIC_KEY_FILE, WRAPPED_KEY_FILE};
use secrecy::SecretString;

async fn small_db() -> String {
    let server = mongo();
    let client = server.client().await;
    let db = server.fresh_db("pins");
    client
        .database(&db)
        .collection("items")
        .insert_many((0..25).map(|i| doc! { "_id": i }))
        .await
        .unwrap();
    db
}

/// Puts an attacker's public key where the destination's was.
fn swap_public_key(env: &Env) -> BackupKey {
    let attacker = BackupKey::generate();
    std::fs::write(
        env.dest_path().join(PUBLIC_KEY_FILE),
        format!("{}\n", attacker.recipient()),
    )
    .unwrap();
    attacker
}

#[tokio::test(flavor = "multi_thread")]
async fn a_replaced_public_key_stops_backups_and_restores_until_the_user_checks() {
    let db = small_db().await;
    let env = Env::new();
    let first = env.backup(mongo().uri(), &db);
    let ours = env.ok(&["key", "show", "--dest", &env.dest()]);
    let files = || {
        let mut f: Vec<String> = files_under(&env.dest_path())
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        f.sort();
        f
    };
    let attacker = swap_public_key(&env);
    let before = files();

    // The next backup, with or without the passphrase, is refused: nothing is written to the
    // attacker's key, nothing is deleted.
    for passphrase in [&[][..], &[("DRIVEBACK_PASSPHRASE", PASSPHRASE)][..]] {
        let out = env.cli_with(&backup_args(mongo().uri(), &db, &env.dest()), passphrase);
        let line = one_error_line(&out);
        assert!(
            line.contains("is not the one this device confirmed"),
            "{line}"
        );
        assert!(line.contains(&attacker.recipient().to_string()), "{line}");
        assert!(line.contains("nothing is backed up there"), "{line}");
    }
    assert_eq!(files(), before, "nothing was written or deleted");
    // Restore and verify are refused alike.
    for out in [
        env.cli(&[
            "verify",
            "--backup",
            first["id"].as_str().unwrap(),
            "--dest",
            &env.dest(),
        ]),
        env.cli(&restore_args("latest", &env.dest(), &db)),
    ] {
        let line = one_error_line(&out);
        assert!(
            line.contains("is not the one this device confirmed"),
            "{line}"
        );
    }
    assert_eq!(files(), before);

    // The way out: put the confirmed key back, and everything goes on.
    std::fs::write(env.dest_path().join(PUBLIC_KEY_FILE), &ours).unwrap();
    env.backup(mongo().uri(), &db);

    // Or, after replacing the key on purpose, forget the confirmed one: the passphrase must then
    // open the new key, which a planted public key alone does not.
    swap_public_key(&env);
    env.ok(&["key", "forget", "--dest", &env.dest()]);
    let line = one_error_line(&env.cli(&backup_args(mongo().uri(), &db, &env.dest())));
    assert!(line.contains("hold different keys"), "{line}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_new_device_accepts_a_public_key_only_with_the_passphrase_that_matches_it() {
    let db = small_db().await;
    let first = Env::new();
    first.backup(mongo().uri(), &db);
    let before = backup_files(&first.dest_path()).len();
    swap_public_key(&first);

    // A second device: its own settings and keyring, the same destination folder.
    let second = Env {
        dir: tempfile::tempdir().unwrap(),
        keyring_service: format!("driveback-test-{:08x}", rand::random::<u32>()),
    };
    let dest = first.dest();
    let args = backup_args(mongo().uri(), &db, &dest);
    // Without the passphrase it cannot confirm the key: nothing is backed up.
    let line = one_error_line(&second.cli_with(&args, &[]));
    assert!(line.contains("DRIVEBACK_PASSPHRASE"), "{line}");
    // With it, the wrapped key does not match the planted public key: refused.
    let line = one_error_line(&second.cli(&args));
    assert!(line.contains("hold different keys"), "{line}");
    assert_eq!(
        backup_files(&first.dest_path()).len(),
        before,
        "nothing was added"
    );

    // Once the public key is put back, the passphrase confirms it and backups go on.
    let wrapped = std::fs::read(first.dest_path().join(WRAPPED_KEY_FILE)).unwrap();
    let key = BackupKey::unwrap(&wrapped, &SecretString::from(PASSPHRASE.to_string())).unwrap();
    std::fs::write(
        first.dest_path().join(PUBLIC_KEY_FILE),
        format!("{}\n", key.recipient()),
    )
    .unwrap();
    second.ok(&args);
    assert_eq!(backup_files(&first.dest_path()).len(), before + 1);
    let pins = std::fs::read_to_string(second.config_dir().join("key-pins.json")).unwrap();
    assert!(pins.contains(&key.recipient().to_string()), "{pins}");
    // The pins file is this user's only.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(second.config_dir().join("key-pins.json"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o077, 0, "{mode:o}");
}

/// Backups someone else put at the destination (anyone can encrypt to the public key) and entries
/// dated in the future do not count: they are not listed, not "latest", not restored, not pruned,
/// and they are reported; the user's own backups go on working.
#[tokio::test(flavor = "multi_thread")]
async fn backups_this_key_did_not_sign_do_not_count() {
    use driveback_engine::authenticity::Signer;
    use driveback_engine::manifest::{self, BackupStatus};
    use driveback_engine::store::{folder::FolderStore, BackupSummary, RemoteStore};
    use std::io::Write;
    use std::sync::Arc;

    let db = small_db().await;
    let env = Env::new();
    let ours = env.backup(mongo().uri(), &db);
    let ours_id = ours["id"].as_str().unwrap().to_string();
    let raw = Arc::new(FolderStore::new(env.dest_path()));

    // 1. A well-formed backup of a different database state, made with the public key but not
    // signed (what anyone who can write there can make), dated after ours.
    let client = mongo().client().await;
    client
        .database(&db)
        .collection("items")
        .insert_one(doc! { "_id": 1000, "planted": true })
        .await
        .unwrap();
    let recipient: age::x25519::Recipient =
        std::fs::read_to_string(env.dest_path().join(PUBLIC_KEY_FILE))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
    let planted = driveback_engine::pipeline::backup(
        mongo().uri(),
        &driveback_engine::pipeline::BackupOptions {
            database: db.clone(),
            zstd_level: 3,
            expected_documents: None,
            listed: None,
            started_at: None,
            signer: None,
            cancel: None,
            incremental: None,
            lock: None,
        },
        raw.clone(),
        recipient,
        Arc::new(driveback_engine::progress::NoProgress),
    )
    .await
    .unwrap()
    .backup;

    // 2. Our own backup's bytes and signed mark, under a newer name: the signature is bound to
    // the name, so the copy does not verify.
    let ours_file = ours["file"].as_str().unwrap();
    let renamed_created = chrono::Utc::now() + chrono::Duration::minutes(1);
    let renamed = manifest::backup_file_name(&db, renamed_created, "0000beef");
    std::fs::copy(
        env.dest_path().join(ours_file),
        env.dest_path().join(&renamed),
    )
    .unwrap();
    let mut sidecar: serde_json::Value = serde_json::from_slice(
        &std::fs::read(env.dest_path().join(format!("{ours_file}.json"))).unwrap(),
    )
    .unwrap();
    sidecar["file"] = renamed.clone().into();
    sidecar["summary"]["id"] = "0000beef".into();
    sidecar["summary"]["created"] = serde_json::to_value(renamed_created).unwrap();
    std::fs::write(
        env.dest_path().join(format!("{renamed}.json")),
        serde_json::to_vec(&sidecar).unwrap(),
    )
    .unwrap();

    // 3. A backup signed with the right key but dated in the future (a device with a wrong
    // clock, or a replayed mark): it would stay "latest" for years.
    let secret = env.ok(&["key", "show", "--secret", "--dest", &env.dest()]);
    let signer = Signer::for_key(&BackupKey::from_secret_str(secret.trim()).unwrap());
    let future = chrono::Utc::now() + chrono::Duration::days(400);
    let future_name = manifest::backup_file_name(&db, future, "0000f00d");
    let mut sink = raw.create(&future_name).unwrap();
    sink.write_all(b"not a backup at all").unwrap();
    signer
        .commit(
            &future_name,
            sink,
            &BackupSummary {
                id: "0000f00d".into(),
                created: future,
                database: db.clone(),
                documents: 99,
                status: BackupStatus::Complete,
                format_version: manifest::FORMAT_VERSION,
                signature: None,
                link: None,
            },
        )
        .unwrap();
    assert_eq!(
        raw.list().unwrap().len(),
        4,
        "the folder holds four marked files"
    );

    // Listed: only ours, and the rest is reported with why.
    let listed: serde_json::Value =
        serde_json::from_str(&env.ok(&["list", "--dest", &env.dest(), "--json"])).unwrap();
    let ids: Vec<&str> = listed["backups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [ours_id.as_str()]);
    let mut reasons: Vec<(String, String)> = listed["ignored"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["id"].as_str().unwrap().to_string(),
                i["reason"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    reasons.sort();
    assert_eq!(reasons.len(), 3, "{reasons:?}");
    assert_eq!(reasons[0].0, "0000beef");
    assert!(
        reasons[0].1.contains("signature does not match"),
        "{reasons:?}"
    );
    assert_eq!(reasons[1].0, "0000f00d");
    assert!(reasons[1].1.contains("in the future"), "{reasons:?}");
    assert_eq!(reasons[2].0, planted.id);
    assert_eq!(reasons[2].1, "it is not signed by your backup key");
    let text = env.cli(&["list", "--dest", &env.dest()]);
    let warned = String::from_utf8_lossy(&text.stderr);
    assert!(warned.contains("ignoring 3 file(s)"), "{warned}");
    assert!(warned.contains(&planted.file), "{warned}");

    // Not restorable by name, and "latest" is ours.
    let refused = env.cli(&restore_args(&planted.id, &env.dest(), &db));
    let line = one_error_line(&refused);
    assert!(line.contains("is not one of your backups"), "{line}");
    assert!(line.contains("not signed by your backup key"), "{line}");
    let restored = env.cli(&restore_args("latest", &env.dest(), &db));
    assert!(
        restored.status.success(),
        "{}",
        String::from_utf8_lossy(&restored.stderr)
    );
    let count = client
        .database(&db)
        .collection::<bson::Document>("items")
        .count_documents(doc! {})
        .await
        .unwrap();
    assert_eq!(
        count, 25,
        "latest is our backup (25 items), not the planted one (26)"
    );

    // Health says so.
    env.ok(&["config", "set", "backup.dest", &env.dest()]);
    let status: serde_json::Value = serde_json::from_str(&env.ok(&["status", "--json"])).unwrap();
    let foreign = status["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "foreign_files")
        .unwrap_or_else(|| panic!("no foreign_files check: {status}"));
    assert_eq!(foreign["status"], "warning");

    // A policy that keeps one backup: the next backup of ours prunes our older one, and leaves
    // every file that is not ours where it is.
    env.ok(&["config", "set", "retention.daily", "1"]);
    env.ok(&["config", "set", "retention.monthly", "0"]);
    env.ok(&["config", "set", "backup.database", &db]);
    let second = env.backup(mongo().uri(), &db);
    env.ok(&["prune", "--dest", &env.dest()]);
    let left: Vec<String> = raw.list().unwrap().into_iter().map(|b| b.id).collect();
    let mut left = left;
    left.sort();
    let mut want = vec![
        second["id"].as_str().unwrap().to_string(),
        planted.id.clone(),
        "0000beef".to_string(),
        "0000f00d".to_string(),
    ];
    want.sort();
    assert_eq!(left, want, "our older backup went; nothing else did");
}
