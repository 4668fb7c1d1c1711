//! The crash matrix: the real `driveback` CLI is killed (SIGKILL, through the engine's crash
//! points, see `src/crash.rs`) at every point where an interruption could leave something half
//! done: export, upload (folder and Google Drive), commit, key creation, passphrase change,
//! retention deletes, restore staging and the swaps. After each kill the invariants are checked:
//!
//! - no incomplete backup is ever listed, and every listed backup verifies;
//! - every live collection holds exactly its old or its new contents, never a mix, never
//!   missing;
//! - the next run succeeds and cleans up what the killed one left (partial uploads, temporary
//!   files, commit marks without a file, staging collections).
//!
//! Each point prints a `RELIABILITY crash | ...` line; `scripts/reliability-report` turns them
//! into the table of `docs/RELIABILITY.md`. `DRIVEBACK_CRASH_REPEAT=N` runs every point N times.

mod common;

use std::collections::BTreeSet;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, SystemTime};

use bson::{doc, Document};
use common::*;
use driveback_engine::store::folder::STALE_UPLOAD_AGE;
use driveback_testkit::emulator::Emulator;

fn repeat() -> usize {
    std::env::var("DRIVEBACK_CRASH_REPEAT")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
}

/// One isolated installation of Driveback: config, data, keyring service, destination folder.
struct World {
    env: Env,
    extra: Vec<(String, String)>,
}

impl World {
    fn new() -> World {
        World {
            env: Env::new(),
            extra: Vec::new(),
        }
    }

    fn config(&self) -> PathBuf {
        self.env.dir.path().join("config")
    }

    fn data(&self) -> PathBuf {
        self.env.dir.path().join("data")
    }

    fn cmd(&self, args: &[&str], crash: Option<&str>) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_driveback"));
        c.args(args)
            .env_remove("DRIVEBACK_MONGO_URI")
            .env_remove("DRIVEBACK_CRASH_AT")
            .env("DRIVEBACK_PASSPHRASE", PASSPHRASE)
            .env("DRIVEBACK_KEYRING_SERVICE", &self.env.keyring_service)
            .env("DRIVEBACK_CONFIG_DIR", self.config())
            .env("DRIVEBACK_DATA_DIR", self.data())
            .stdin(Stdio::null());
        for (k, v) in &self.extra {
            c.env(k, v);
        }
        if let Some(point) = crash {
            c.env("DRIVEBACK_CRASH_AT", point);
        }
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.cmd(args, None).output().unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "driveback {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Runs `args` armed to die at `point`, and checks it died there, by SIGKILL.
    fn killed_at(&self, point: &str, args: &[&str]) {
        let out = self.cmd(args, Some(point)).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        let name = point.split(':').next().unwrap();
        assert_eq!(
            out.status.signal(),
            Some(9),
            "driveback {args:?} was to be killed at {point}; it ended with {:?}: {stderr}",
            out.status
        );
        assert!(
            stderr.contains(&format!("crash point {name} reached")),
            "{stderr}"
        );
    }

    /// A backup of `db` to `dest`, killed at `point`.
    fn backup_killed_at(&self, point: &str, db: &str, dest: &str) {
        self.killed_at(point, &backup_args(mongo().uri(), db, dest)[..7]);
    }

    /// Whether backup `id` verifies on a device that has never seen the key: it needs the
    /// passphrase (`passphrase`, or the usual one).
    fn verifies_on_a_new_device(&self, id: &str, dest: &str, passphrase: Option<&str>) -> bool {
        let fresh = World::new();
        let mut c = fresh.cmd(&["verify", "--backup", id, "--dest", dest], None);
        if let Some(p) = passphrase {
            c.env("DRIVEBACK_PASSPHRASE", p);
        }
        let out = c.output().unwrap();
        if !out.status.success() {
            eprintln!("{}", String::from_utf8_lossy(&out.stderr));
        }
        out.status.success()
    }

    fn list(&self, dest: &str) -> Vec<serde_json::Value> {
        let v: serde_json::Value =
            serde_json::from_str(&self.ok(&["list", "--dest", dest, "--json"])).unwrap();
        v["backups"].as_array().unwrap().clone()
    }

    fn ids(&self, dest: &str) -> BTreeSet<String> {
        self.list(dest)
            .iter()
            .map(|b| b["id"].as_str().unwrap().to_string())
            .collect()
    }

    fn backup(&self, db: &str, dest: &str) -> String {
        let out = self.ok(&backup_args(mongo().uri(), db, dest));
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        v["id"].as_str().unwrap().to_string()
    }

    fn verify(&self, id: &str, dest: &str) {
        self.ok(&["verify", "--backup", id, "--dest", dest]);
    }

    /// What `prune` would do at `dest` (its JSON), and the ids it keeps.
    fn planned_keep(&self, dest: &str) -> (serde_json::Value, BTreeSet<String>) {
        let plan: serde_json::Value =
            serde_json::from_str(&self.ok(&["prune", "--dry-run", "--dest", dest, "--json"]))
                .unwrap();
        let keep = plan["decisions"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|d| d["keep"] == true)
            .map(|d| d["id"].as_str().unwrap().to_string())
            .collect();
        (plan, keep)
    }
}

/// Makes every file under `dir` look older than the stale-upload age, as if the killed run had
/// happened long ago (cleanup leaves younger files alone: another process may own them).
fn age_files(dir: &Path) {
    let old = SystemTime::now() - STALE_UPLOAD_AGE - Duration::from_secs(60);
    for e in std::fs::read_dir(dir).into_iter().flatten() {
        let p = e.unwrap().path();
        if p.is_file() {
            let f = std::fs::File::options().write(true).open(&p).unwrap();
            f.set_modified(old).unwrap();
        }
    }
}

/// A folder destination holds exactly: the key files, and each listed backup with its sidecar.
fn assert_folder_clean(dir: &Path, listed: &[serde_json::Value]) {
    let mut want: BTreeSet<String> = ["driveback-key.pub", "driveback-key.age"]
        .into_iter()
        .map(String::from)
        .collect();
    for b in listed {
        let f = b["file"].as_str().unwrap();
        want.insert(f.to_string());
        want.insert(format!("{f}.json"));
    }
    let have: BTreeSet<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(have, want, "leftovers in {}", dir.display());
}

/// Every `.mdbk` file under its own name at a folder destination is a listed backup.
fn assert_no_unlisted_backup_file(dir: &Path, listed: &[serde_json::Value]) {
    let listed: BTreeSet<&str> = listed.iter().map(|b| b["file"].as_str().unwrap()).collect();
    for e in std::fs::read_dir(dir).unwrap() {
        let name = e.unwrap().file_name().into_string().unwrap();
        if name.ends_with(".mdbk") && !name.starts_with('.') {
            assert!(
                listed.contains(name.as_str()),
                "{name} is there but not listed"
            );
        }
    }
}

fn record(scenario: &str, point: &str, runs: usize) {
    println!("RELIABILITY crash | {scenario} | {point} | {runs} | {runs} | 0");
}

async fn seed_source(prefix: &str) -> String {
    let client = mongo().client().await;
    let db = mongo().fresh_db(prefix);
    let d = client.database(&db);
    // Hex of a multiplicative hash: about half the size after compression, so the backup spans
    // several encryption chunks and writes.
    let noise = |i: u64| -> String {
        (0..20)
            .map(|k| format!("{:016x}", (i * 20 + k).wrapping_mul(0x9E37_79B9_7F4A_7C15)))
            .collect()
    };
    d.collection("alpha")
        .insert_many((0..3000).map(|i| doc! { "_id": i, "pad": noise(i as u64) }))
        .await
        .unwrap();
    d.collection("beta")
        .insert_many((0..2000).map(|i| doc! { "_id": i, "x": (i * 7919) % 1013 }))
        .await
        .unwrap();
    d.collection("gamma")
        .insert_many((0..50).map(|i| doc! { "_id": format!("g{i}") }))
        .await
        .unwrap();
    db
}

/// Backups to a folder, killed at every point between the first document read and the commit.
#[tokio::test(flavor = "multi_thread")]
async fn backup_to_a_folder_survives_a_kill_anywhere() {
    let source = seed_source("crash_backup").await;
    let w = World::new();
    let dest = w.env.dest();
    let dir = w.env.dest_path();
    let first = w.backup(&source, &dest);
    let mut verified: BTreeSet<String> = [first].into();
    let points = [
        "backup.upload_created",
        "export.document:1",
        "export.document:2500",
        "export.document:4000",
        "export.collection_end:1",
        "export.collection_end:3",
        "folder.write:1",
        "folder.write:6",
        "backup.archive_written",
        "backup.before_commit",
        "folder.synced",
        "folder.side_file_temp",
        "folder.sidecar_written",
        "backup.committed",
    ];
    for point in points {
        for _ in 0..repeat() {
            let before = w.ids(&dest);
            w.backup_killed_at(point, &source, &dest);
            let listed = w.list(&dest);
            let now = w.ids(&dest);
            assert_no_unlisted_backup_file(&dir, &listed);
            if point == "backup.committed" {
                assert_eq!(
                    now.len(),
                    before.len() + 1,
                    "{point}: the committed one is listed"
                );
            } else {
                assert_eq!(now, before, "{point}: nothing new is listed");
            }
            for id in now.difference(&verified.clone()) {
                w.verify(id, &dest);
                verified.insert(id.clone());
            }
            // The next run works, and once the leftovers are stale it removes them.
            age_files(&dir);
            w.backup(&source, &dest);
            assert_folder_clean(&dir, &w.list(&dest));
        }
        record("backup to a folder", point, repeat());
    }
    // Whatever was killed, every backup verifies and the newest restores to exactly the source.
    for id in w.ids(&dest).difference(&verified) {
        w.verify(id, &dest);
    }
    let client = mongo().client().await;
    let target = mongo().fresh_db("crash_backup_check");
    w.ok(&restore_args("latest", &dest, &target));
    assert_eq!(
        snapshot(&client, &target).await,
        snapshot(&client, &source).await
    );
}

/// The first backup to a new destination makes the key; a kill there must not leave backups
/// made to a key nobody can open. A kill while the passphrase changes keeps the old one valid.
#[tokio::test(flavor = "multi_thread")]
async fn key_creation_and_passphrase_change_survive_a_kill() {
    let source = seed_source("crash_key").await;
    for point in ["key.wrapped_written", "folder.side_file_temp:1"] {
        for _ in 0..repeat() {
            let w = World::new();
            let dest = w.env.dest();
            w.backup_killed_at(point, &source, &dest);
            assert!(w.ids(&dest).is_empty());
            let id = w.backup(&source, &dest);
            // A new device, with only the passphrase, opens it.
            assert!(w.verifies_on_a_new_device(&id, &dest, None));
            age_files(&w.env.dest_path());
            w.backup(&source, &dest);
            assert_folder_clean(&w.env.dest_path(), &w.list(&dest));
        }
        record("first backup: key creation", point, repeat());
    }

    let point = "folder.side_file_temp";
    for _ in 0..repeat() {
        let mut w = World::new();
        let dest = w.env.dest();
        let id = w.backup(&source, &dest);
        let new_pass = "a new passphrase for the crash test";
        w.extra = vec![("DRIVEBACK_NEW_PASSPHRASE".into(), new_pass.into())];
        w.killed_at(point, &["key", "passwd", "--dest", &dest]);
        // The old passphrase still opens the key, on a device without it in its keyring.
        assert!(w.verifies_on_a_new_device(&id, &dest, None));
        assert!(!w.verifies_on_a_new_device(&id, &dest, Some(new_pass)));
        w.ok(&["key", "passwd", "--dest", &dest]);
        w.extra.clear();
        assert!(w.verifies_on_a_new_device(&id, &dest, Some(new_pass)));
        assert!(!w.verifies_on_a_new_device(&id, &dest, None));
        age_files(&w.env.dest_path());
        w.backup(&source, &dest);
        assert_folder_clean(&w.env.dest_path(), &w.list(&dest));
    }
    record("passphrase change", point, repeat());
}

/// Retention deletes, killed before, between and after the deletes of one prune.
#[tokio::test(flavor = "multi_thread")]
async fn retention_deletes_survive_a_kill() {
    let client = mongo().client().await;
    let source = mongo().fresh_db("crash_prune");
    seed_ids(&client, &source, "c", 10).await;
    let w = World::new();
    let dest = w.env.dest();
    let dir = w.env.dest_path();
    let points = [
        "retention.delete:1",
        "folder.delete_unlisted:1",
        "retention.deleted:1",
        "retention.delete:2",
        "folder.delete_unlisted:3",
    ];
    for point in points {
        for _ in 0..repeat() {
            // Enough backups today that the policy deletes at least three (it keeps the newest
            // of the day and the first of the month).
            let kept = w.ids(&dest).len();
            for _ in 0..(5 - kept.min(2)) {
                w.backup(&source, &dest);
            }
            let (plan, keep) = w.planned_keep(&dest);
            let before = w.ids(&dest);
            assert!(before.len() >= keep.len() + 3, "{plan}");
            w.killed_at(point, &["prune", "--dest", &dest]);
            let listed = w.list(&dest);
            let now = w.ids(&dest);
            assert!(
                now.is_superset(&keep),
                "{point}: every kept backup is still listed"
            );
            assert!(now.is_subset(&before));
            assert_no_unlisted_backup_file(&dir, &listed);
            for id in &now {
                w.verify(id, &dest);
            }
            w.ok(&["prune", "--dest", &dest]);
            assert_eq!(
                w.ids(&dest),
                keep,
                "{point}: the next prune finishes the job"
            );
            age_files(&dir);
            w.backup(&source, &dest);
            assert_folder_clean(&dir, &w.list(&dest));
        }
        record("retention deletes", point, repeat());
    }
}

/// Retention of the incremental layout, killed before, between and after the deletes of one
/// prune: chains whose backups nobody keeps any more go newest first, so a kill never leaves a
/// listed backup without the backups it needs, every listed backup verifies, and the next prune
/// finishes the job. The runs are dated day by day (`DRIVEBACK_SIMULATED_NOW`) so that the
/// policy keeps the newest two days.
#[tokio::test(flavor = "multi_thread")]
async fn retention_of_chains_survives_a_kill() {
    let client = mongo().client().await;
    let source = mongo().fresh_db("crash_chains");
    let items = client.database(&source).collection::<Document>("items");
    items
        .insert_many((0..200).map(|i| doc! { "_id": i, "v": 0, "pad": "x".repeat(100) }))
        .await
        .unwrap();
    let mut w = World::new();
    let dest = w.env.dest();
    let dir = w.env.dest_path();
    for (key, value) in [
        ("retention.daily", "2"),
        ("retention.weekly", "0"),
        ("retention.monthly", "0"),
        ("retention.keep_last", "1"),
        // A quarter of the documents change each day: a new chain after every increment.
        ("backup.full_after_percent", "10"),
    ] {
        w.ok(&["config", "set", key, value]);
    }
    let start: chrono::DateTime<chrono::Utc> = "2026-03-01T02:00:00Z".parse().unwrap();
    let mut day = 0i64;
    let backup_today = |w: &mut World, day: i64| {
        w.extra = vec![
            (
                "DRIVEBACK_SIMULATED_NOW".into(),
                (start + chrono::Duration::days(day)).to_rfc3339(),
            ),
            ("DRIVEBACK_LOCK_SETTLE_MS".into(), "200".into()),
        ];
        let mut args = backup_args(mongo().uri(), &source, &dest).to_vec();
        args.extend(["--layout", "incremental"]);
        let out: serde_json::Value = serde_json::from_str(&w.ok(&args)).unwrap();
        out["chain"]["kind"].as_str().unwrap().to_string()
    };
    for point in [
        "retention.delete:1",
        "retention.deleted:1",
        "retention.delete:2",
    ] {
        for _ in 0..repeat() {
            let mut kinds = Vec::new();
            for _ in 0..4 {
                items
                    .update_many(doc! { "_id": { "$lt": 50 } }, doc! { "$inc": { "v": 1 } })
                    .await
                    .unwrap();
                kinds.push(backup_today(&mut w, day));
                day += 1;
            }
            assert_eq!(kinds, ["full", "increment", "full", "increment"], "{point}");
            let (plan, keep) = w.planned_keep(&dest);
            let before = w.ids(&dest);
            assert!(before.len() >= keep.len() + 2, "{plan}");
            w.killed_at(point, &["prune", "--dest", &dest]);
            let listed: serde_json::Value =
                serde_json::from_str(&w.ok(&["list", "--dest", &dest, "--json"])).unwrap();
            assert_eq!(
                listed["ignored"].as_array().map(Vec::len),
                Some(0),
                "{point}: no backup is left without what it needs: {listed}"
            );
            let now = w.ids(&dest);
            assert!(
                now.is_superset(&keep),
                "{point}: every kept backup is listed"
            );
            assert!(now.is_subset(&before));
            for id in &now {
                w.verify(id, &dest);
            }
            w.ok(&["prune", "--dest", &dest]);
            assert_eq!(
                w.ids(&dest),
                keep,
                "{point}: the next prune finishes the job"
            );
            age_files(&dir);
        }
        record("retention of chains", point, repeat());
    }
    assert_folder_clean(&dir, &w.list(&dest));
}

async fn fill(client: &mongodb::Client, db: &str, tag: &str, sizes: [i32; 3]) {
    let d = client.database(db);
    for (name, n) in ["a", "b", "c"].into_iter().zip(sizes) {
        let c = d.collection::<Document>(name);
        c.drop().await.unwrap();
        c.insert_many((0..n).map(|i| doc! { "_id": i, "v": tag, "pad": format!("{i:0>100}") }))
            .await
            .unwrap();
    }
    d.collection::<Document>("a")
        .create_index(mongodb::IndexModel::builder().keys(doc! { "v": 1 }).build())
        .await
        .unwrap();
}

/// Restores killed while staging, before the swap and between the swaps of the collections.
#[tokio::test(flavor = "multi_thread")]
async fn restore_survives_a_kill_anywhere() {
    let client = mongo().client().await;
    let source = mongo().fresh_db("crash_restore_new");
    fill(&client, &source, "new", [2200, 800, 300]).await;
    let new = snapshot(&client, &source).await;
    let w = World::new();
    let dest = w.env.dest();
    let id = w.backup(&source, &dest);
    let target = mongo().fresh_db("crash_restore_live");
    let points = [
        "restore.staging_created",
        "restore.batch:1",
        "restore.batch:3",
        "restore.verified",
        "restore.indexed:1",
        "restore.before_swap",
        "restore.swapped:1",
        "restore.swapped:2",
        "restore.swapped:3",
    ];
    for point in points {
        for _ in 0..repeat() {
            fill(&client, &target, "old", [100, 200, 300]).await;
            let untouched = client.database(&target).collection::<Document>("untouched");
            untouched.drop().await.unwrap();
            untouched.insert_one(doc! { "_id": 1 }).await.unwrap();
            let old = snapshot(&client, &target).await;
            let args = restore_args(&id, &dest, &target);
            w.killed_at(point, &args);
            let after = snapshot(&client, &target).await;
            let live: Vec<_> = after
                .iter()
                .filter(|c| !c.0.starts_with("driveback_staging_"))
                .collect();
            assert_eq!(live.len(), old.len(), "{point}: no collection went missing");
            let mut swapped = 0;
            for c in &live {
                let was = old.iter().find(|o| o.0 == c.0).unwrap();
                let is_new = new.iter().any(|n| n == *c);
                assert!(
                    *c == was || is_new,
                    "{point}: {} holds a mix of its old and new contents",
                    c.0
                );
                if is_new && *c != was {
                    swapped += 1;
                }
            }
            let expected = point
                .strip_prefix("restore.swapped:")
                .map(|n| n.parse().unwrap())
                .unwrap_or(0);
            assert_eq!(swapped, expected, "{point}: collections swapped in");
            // The next restore succeeds and drops the staging collections the killed one left.
            w.ok(&args);
            let done = snapshot(&client, &target).await;
            assert!(done.iter().all(|c| !c.0.starts_with("driveback_staging_")));
            for n in &new {
                assert!(done.contains(n), "{point}: {} restored", n.0);
            }
        }
        record("restore", point, repeat());
    }
}

/// Backups to Google Drive (the emulator), killed mid-upload and between upload and commit.
#[tokio::test(flavor = "multi_thread")]
async fn backup_to_google_drive_survives_a_kill_anywhere() {
    if !keyring_or_skip() {
        return;
    }
    let emu = Emulator::start(&["--auto-consent"]);
    let mut w = World::new();
    // The "browser" follows the consent URL itself.
    let browser = w.env.dir.path().join("browser.sh");
    std::fs::write(
        &browser,
        "#!/bin/sh\n(curl -fsSL \"$1\" >/dev/null 2>&1 &)\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&browser, std::fs::Permissions::from_mode(0o755)).unwrap();
    w.extra = vec![
        ("DRIVEBACK_GOOGLE_BASE_URL".into(), emu.base_url().into()),
        ("DRIVEBACK_BROWSER".into(), browser.display().to_string()),
        ("DRIVEBACK_LOG".into(), "warn".into()),
    ];
    w.ok(&["connect", "--timeout", "60"]);

    // Random bytes do not compress: a backup of a little over one 8 MiB upload chunk.
    let client = mongo().client().await;
    let source = mongo().fresh_db("crash_drive");
    let docs: Vec<Document> = (0..40)
        .map(|i| {
            let bytes: Vec<u8> = (0..256 * 1024).map(|_| rand::random::<u8>()).collect();
            doc! { "_id": i, "blob": bson::Binary { subtype: bson::spec::BinarySubtype::Generic, bytes } }
        })
        .collect();
    for chunk in docs.chunks(8) {
        client
            .database(&source)
            .collection("blobs")
            .insert_many(chunk.to_vec())
            .await
            .unwrap();
    }
    let dest = "drive";
    w.backup(&source, dest);
    let files = |emu: &Emulator| -> usize {
        emu.state()["files"]["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| f["trashed"] != true)
            .filter(|f| {
                let name = f["name"].as_str().unwrap_or("");
                name.ends_with(".mdbk") || name.ends_with(".mdbi")
            })
            .count()
    };
    let points = [
        "drive.session_started",
        "drive.chunk:1",
        "drive.before_mark",
        "backup.before_commit",
        "backup.committed",
    ];
    // Google Drive keeps increments by default: every blob is rewritten before each killed run,
    // so that its increment is as large as a full backup and reaches every upload point.
    let churn = || async {
        for i in 0..40 {
            let bytes: Vec<u8> = (0..256 * 1024).map(|_| rand::random::<u8>()).collect();
            client
                .database(&source)
                .collection::<Document>("blobs")
                .replace_one(
                    doc! { "_id": i },
                    doc! { "_id": i, "blob": bson::Binary { subtype: bson::spec::BinarySubtype::Generic, bytes } },
                )
                .await
                .unwrap();
        }
    };
    for point in points {
        for _ in 0..repeat() {
            let before = w.ids(dest);
            churn().await;
            // The killed run happens a quarter of an hour ago on Google's clock, so that what it
            // left is stale by the next run (cleanup leaves younger files to their owner).
            emu.control("advance-clock", Some(r#"{"seconds": -900}"#));
            w.backup_killed_at(point, &source, dest);
            emu.control("advance-clock", Some(r#"{"seconds": 900}"#));
            let now = w.ids(dest);
            if point == "backup.committed" {
                assert_eq!(now.len(), before.len() + 1, "{point}");
                let new = now.difference(&before).next().unwrap();
                w.verify(new, dest);
            } else {
                assert_eq!(now, before, "{point}: nothing new is listed");
            }
            // The next run removes the leftovers.
            age_files(&w.data().join("drive-uploads"));
            let next = w.backup(&source, dest);
            w.verify(&next, dest);
            assert_eq!(
                files(&emu),
                w.ids(dest).len(),
                "{point}: every backup file on Drive is a listed backup"
            );
        }
        record("backup to Google Drive", point, repeat());
    }
}

/// The destination's disk fills up mid-backup (a file-size limit on the process stands in for
/// it: writes fail with an error, as on a full disk): one clear error, nothing listed, nothing
/// left behind, and the next run, with room again, succeeds.
#[tokio::test(flavor = "multi_thread")]
async fn a_full_disk_fails_cleanly_and_the_next_run_succeeds() {
    let source = seed_source("full_disk").await;
    let w = World::new();
    let dest = w.env.dest();
    let dir = w.env.dest_path();
    let first = w.backup(&source, &dest);
    let mut tried = 0;
    for limit in [0u64, 4 << 10, 64 << 10, 256 << 10] {
        let mut c = w.cmd(&backup_args(mongo().uri(), &source, &dest), None);
        unsafe {
            use std::os::unix::process::CommandExt;
            c.pre_exec(move || {
                libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
                let lim = libc::rlimit {
                    rlim_cur: limit,
                    rlim_max: limit,
                };
                if libc::setrlimit(libc::RLIMIT_FSIZE, &lim) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let out = c.output().unwrap();
        let line = one_error_line(&out);
        assert!(
            line.contains("File too large") || line.contains("writing"),
            "{line}"
        );
        let listed = w.list(&dest);
        assert_eq!(
            w.ids(&dest),
            [first.clone()].into(),
            "{limit}: nothing new listed"
        );
        assert_folder_clean(&dir, &listed);
        tried += 1;
    }
    let next = w.backup(&source, &dest);
    w.verify(&next, &dest);
    println!("RELIABILITY fault | the destination's disk full mid-backup (at 0 B, 4 KiB, 64 KiB, 256 KiB) | {tried} | 0");
}
