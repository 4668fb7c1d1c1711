//! The backup key from the command line: init, show, passphrase change, the OS keyring as a
//! cache (and life without one), and restoring with the standard `age` and `zstd` tools.

mod common;

use bson::doc;
use common::*;

async fn small_db() -> (mongodb::Client, String) {
    let server = mongo();
    let client = server.client().await;
    let db = server.fresh_db("keys");
    client
        .database(&db)
        .collection("items")
        .insert_many((0..40).map(|i| doc! { "_id": i, "name": format!("item {i}") }))
        .await
        .unwrap();
    (client, db)
}

#[tokio::test(flavor = "multi_thread")]
async fn standard_tools_restore_a_backup_with_the_shown_key() {
    let (client, db) = small_db().await;
    let env = Env::new();
    env.backup(mongo().uri(), &db);
    let out = env.cli(&["key", "show", "--dest", &env.dest(), "--secret"]);
    assert!(out.status.success());
    let secret = String::from_utf8(out.stdout).unwrap();
    assert!(
        secret.trim().starts_with("AGE-SECRET-KEY-1"),
        "the key itself"
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("cannot be recovered"),
        "with the warning"
    );
    let public = env.ok(&["key", "show", "--dest", &env.dest()]);
    assert!(public.trim().starts_with("age1"));

    // age -d -i key.txt FILE | zstd -d > plain.archive   (as the README says)
    let key_file = env.dir.path().join("key.txt");
    std::fs::write(&key_file, &secret).unwrap();
    let backup = backup_files(&env.dest_path()).pop().unwrap();
    let plain_bytes = decrypt_with_tools(&key_file, &backup);
    let plain = env.dir.path().join("plain.archive");
    std::fs::write(&plain, &plain_bytes).unwrap();
    assert_eq!(&plain_bytes[..4], &[0x6d, 0xe2, 0x99, 0x81]);

    let target = mongo().fresh_db("keys_plain");
    env.ok(&[
        "restore",
        "--backup",
        plain.to_str().unwrap(),
        "--mongo-uri",
        mongo().uri(),
        "--db",
        &target,
        "--yes",
    ]);
    assert_eq!(
        raw_docs(&client, &target, "items").await,
        raw_docs(&client, &db, "items").await
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn passphrase_change_keeps_backups_readable() {
    let (_client, db) = small_db().await;
    let env = Env::new();
    env.ok(&["key", "init", "--dest", &env.dest()]);
    let again = env.cli(&["key", "init", "--dest", &env.dest()]);
    assert!(
        one_error_line(&again).contains("already"),
        "a destination has one key"
    );
    let id = env.backup(mongo().uri(), &db)["id"]
        .as_str()
        .unwrap()
        .to_string();
    let out = env.cli_with(
        &["key", "passwd", "--dest", &env.dest()],
        &[
            ("DRIVEBACK_PASSPHRASE", PASSPHRASE),
            ("DRIVEBACK_NEW_PASSPHRASE", "a brand new passphrase"),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // A new device (an empty keyring) opens the old backup with the new passphrase only.
    let fresh = |pass: &str| {
        let svc = format!("driveback-test-{:08x}", rand::random::<u32>());
        env.cli_with(
            &["verify", "--backup", &id, "--dest", &env.dest()],
            &[
                ("DRIVEBACK_PASSPHRASE", pass),
                ("DRIVEBACK_KEYRING_SERVICE", svc.as_str()),
            ],
        )
    };
    assert!(fresh("a brand new passphrase").status.success());
    assert!(one_error_line(&fresh(PASSPHRASE)).contains("wrong passphrase"));
}

#[tokio::test(flavor = "multi_thread")]
async fn keyring_caches_the_key_and_life_goes_on_without_one() {
    let (_client, db) = small_db().await;
    assert!(
        driveback_testkit::require_keyring(),
        "this test needs the Secret Service"
    );
    let env = Env::new();
    let id = env.backup(mongo().uri(), &db)["id"]
        .as_str()
        .unwrap()
        .to_string();
    // The key went into the keyring at init: no passphrase needed on this machine.
    let out = env.cli_with(&["verify", "--backup", &id, "--dest", &env.dest()], &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // A headless server without a Secret Service: the passphrase opens the key, and the CLI says
    // once that it could not keep it.
    let no_bus = [
        ("DRIVEBACK_PASSPHRASE", PASSPHRASE),
        ("DBUS_SESSION_BUS_ADDRESS", "unix:path=/nonexistent/bus"),
    ];
    let out = env.cli_with(&["verify", "--backup", &id, "--dest", &env.dest()], &no_bus);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stderr.matches("could not save the backup key").count(),
        1,
        "{stderr}"
    );
    // Without a keyring and without a passphrase there is nothing to open it with.
    let out = env.cli_with(
        &["verify", "--backup", &id, "--dest", &env.dest()],
        &no_bus[1..],
    );
    assert!(one_error_line(&out).contains("DRIVEBACK_PASSPHRASE"));
}

/// A weak new passphrase is allowed from a script but said, once, on stderr; a good one is not.
#[test]
fn a_weak_new_passphrase_is_warned_about() {
    let env = Env::new();
    let out = env.cli_with(
        &["key", "init", "--dest", &env.dest()],
        &[("DRIVEBACK_PASSPHRASE", "hunter2")],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("driveback: warning: a weak passphrase (use at least 8 characters)"),
        "{err}"
    );
    assert!(
        !err.contains("hunter2"),
        "the passphrase itself is never printed: {err}"
    );
    let strong = Env::new();
    let out = strong.cli(&["key", "init", "--dest", &strong.dest()]);
    assert!(out.status.success());
    assert!(!String::from_utf8_lossy(&out.stderr).contains("weak passphrase"));
}
