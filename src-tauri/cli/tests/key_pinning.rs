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
async fn a_replaced_public_key_does_not_redirect_backups() {
    let db = small_db().await;
    let env = Env::new();
    env.backup(mongo().uri(), &db);
    let ours = env.ok(&["key", "show", "--dest", &env.dest()]);
    let attacker = swap_public_key(&env);

    // The next backup, with no passphrase at hand, still goes to this device's key.
    let out = env.cli_with(&backup_args(mongo().uri(), &db, &env.dest()), &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let made: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(env.ok(&["key", "show", "--dest", &env.dest()]), ours);
    // The attacker's key cannot open it; ours can (verify decrypts every byte).
    let file = env.dest_path().join(made["file"].as_str().unwrap());
    let opened = driveback_engine::container::read_manifest(
        std::fs::File::open(&file).unwrap(),
        attacker.identity(),
    );
    assert!(opened.is_err(), "the attacker's key opened the backup");
    let verify = env.cli(&[
        "verify",
        "--backup",
        made["id"].as_str().unwrap(),
        "--dest",
        &env.dest(),
    ]);
    // Restoring needs the key, and the destination's files no longer agree with this device:
    // the user is told, not handed a key that is not theirs.
    let line = one_error_line(&verify);
    assert!(
        line.contains("is not the one this device backs up to"),
        "{line}"
    );
    assert!(line.contains(&attacker.recipient().to_string()), "{line}");
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
