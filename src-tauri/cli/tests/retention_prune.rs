//! `driveback prune` against a folder destination holding real committed backups (made cheaply
//! through the store, with chosen creation times) and files that are not Driveback's.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use chrono::{DateTime, Datelike, Duration, NaiveDateTime, TimeZone, Utc};
use driveback_engine::authenticity::Signer;
use driveback_engine::keys::BackupKey;
use driveback_engine::manifest::{self, BackupStatus};
use driveback_engine::store::{self, BackupSummary, Dest, RemoteStore};

struct Env {
    dir: tempfile::TempDir,
    /// Signs the planted backups as a backup of this destination's key would be signed.
    signer: Signer,
}

const PASSPHRASE: &str = "correct horse battery staple";

impl Env {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let dest = format!("folder:{}", dir.path().join("backups").display());
        std::fs::create_dir_all(dir.path().join("backups")).unwrap();
        let mut env = Env {
            dir,
            signer: Signer::for_key(&BackupKey::generate()),
        };
        // The destination's key, made (and so confirmed) by this device.
        env.ok(&["key", "init", "--dest", &dest]);
        let secret = env.ok(&["key", "show", "--secret", "--dest", &dest]);
        env.signer = Signer::for_key(&BackupKey::from_secret_str(secret.trim()).unwrap());
        env
    }

    fn dest_path(&self) -> PathBuf {
        self.dir.path().join("backups")
    }

    fn dest(&self) -> String {
        format!("folder:{}", self.dest_path().display())
    }

    fn store(&self) -> Box<dyn RemoteStore> {
        store::open_store(&Dest::Folder(self.dest_path())).unwrap()
    }

    fn cli(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_driveback"))
            .args(args)
            .env("DRIVEBACK_CONFIG_DIR", self.dir.path().join("config"))
            .env_remove("DRIVEBACK_DATA_DIR")
            .env("DRIVEBACK_KEYRING_SERVICE", "driveback-test-prune-unused")
            .env("TZ", "UTC")
            .env("DRIVEBACK_PASSPHRASE", PASSPHRASE)
            .stdin(std::process::Stdio::null())
            .output()
            .expect("run driveback")
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.cli(args);
        assert!(
            out.status.success(),
            "driveback {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Commits a small backup of `db` made at `created`.
    fn backup(&self, db: &str, created: DateTime<Utc>, status: BackupStatus) -> String {
        let id = format!("{:08x}", rand::random::<u32>());
        let name = manifest::backup_file_name(db, created, &id);
        let store = self.store();
        let mut sink = store.create(&name).unwrap();
        sink.write_all(format!("not really encrypted: {name}").as_bytes())
            .unwrap();
        let stored = self
            .signer
            .commit(
                &name,
                sink,
                &BackupSummary {
                    id: id.clone(),
                    created,
                    database: db.into(),
                    documents: 3,
                    status,
                    format_version: manifest::FORMAT_VERSION,
                    signature: None,
                    link: None,
                },
            )
            .unwrap();
        assert_eq!(stored.created, created);
        id
    }

    fn files(&self) -> BTreeSet<String> {
        names(&self.dest_path())
    }

    fn listed(&self) -> BTreeSet<String> {
        self.store()
            .list()
            .unwrap()
            .into_iter()
            .map(|b| b.id)
            .collect()
    }
}

fn names(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect()
}

fn utc(s: &str) -> DateTime<Utc> {
    Utc.from_utc_datetime(&NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M").unwrap())
}

fn json(s: &str) -> serde_json::Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("not JSON ({e}): {s}"))
}

/// The ids a prune report marks `keep: false`, and the reasons of each decision.
fn doomed(report: &serde_json::Value) -> BTreeSet<String> {
    report["decisions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["keep"] == false)
        .map(|d| d["id"].as_str().unwrap().to_string())
        .collect()
}

fn reason_texts(report: &serde_json::Value, id: &str) -> Vec<String> {
    let d = report["decisions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["id"] == id)
        .unwrap_or_else(|| panic!("no decision for {id}"));
    d["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["text"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn dry_run_explains_and_prune_deletes_exactly_the_plan() {
    let env = Env::new();
    env.ok(&["config", "set", "retention.daily", "3"]);
    env.ok(&["config", "set", "retention.monthly", "1"]);
    assert_eq!(env.ok(&["config", "get", "retention.daily"]).trim(), "3");

    // Backups of 2023 (so that today's date does not matter: no month of theirs is current).
    let c = |t: &str| env.backup("shop", utc(t), BackupStatus::Complete);
    let p = |t: &str| env.backup("shop", utc(t), BackupStatus::Partial);
    let old_partial = p("2023-01-05 02:00");
    let jan10 = c("2023-01-10 02:00");
    let jan20 = c("2023-01-20 02:00");
    let feb01 = c("2023-02-01 02:00");
    let feb28 = c("2023-02-28 02:00");
    let mar01 = c("2023-03-01 02:00");
    let mar02_partial = p("2023-03-02 02:00");
    let mar03_morning = c("2023-03-03 02:00");
    let mar03_evening = c("2023-03-03 20:00");
    let mar05 = c("2023-03-05 02:00");
    // Another database at the same destination keeps its own newest backup.
    let other = env.backup("crm", utc("2023-01-01 02:00"), BackupStatus::Complete);
    // Files that are not Driveback backups.
    let dest = env.dest_path();
    std::fs::write(dest.join("notes.txt"), b"mine").unwrap();
    std::fs::write(
        dest.join("driveback-shop-20230101T000000Z-0badf00d.mdbk"),
        b"no sidecar",
    )
    .unwrap();
    std::fs::write(dest.join("config.json"), br#"{"a": 1}"#).unwrap();
    let before = env.files();

    let expected_doomed: BTreeSet<String> = [
        &old_partial,
        &jan10,
        &jan20,
        &feb01,
        &feb28,
        &mar02_partial,
        &mar03_morning,
    ]
    .into_iter()
    .cloned()
    .collect();

    // --dry-run --json: every decision with its reasons, nothing deleted.
    let dest_arg = env.dest();
    let report = json(&env.ok(&["prune", "--dry-run", "--dest", &dest_arg, "--json"]));
    assert_eq!(report["dry_run"], true);
    assert_eq!(report["decisions"].as_array().unwrap().len(), 11);
    assert_eq!(doomed(&report), expected_doomed);
    assert_eq!(
        report["description"],
        "Keeps the newest backup of each of the last 3 days with backups, and the first backup of this month and of last month."
    );
    assert_eq!(
        reason_texts(&report, &mar05),
        [
            "the newest complete backup (never deleted)",
            "the newest backup of Sun 5 Mar 2023"
        ]
    );
    assert_eq!(
        reason_texts(&report, &mar03_evening),
        ["the newest backup of Fri 3 Mar 2023"]
    );
    assert_eq!(
        reason_texts(&report, &mar01),
        ["the newest backup of Wed 1 Mar 2023"]
    );
    assert_eq!(
        reason_texts(&report, &mar03_morning),
        ["not needed by the retention policy"]
    );
    assert_eq!(
        reason_texts(&report, &mar02_partial),
        ["a partial backup, replaced by a newer complete backup"]
    );
    assert_eq!(
        reason_texts(&report, &other),
        [
            "the newest complete backup (never deleted)",
            "the newest backup of Sun 1 Jan 2023"
        ]
    );
    let rule = report["decisions"][0]["reasons"][1].clone();
    assert_eq!(rule["rule"], "daily");
    assert_eq!(rule["day"], "2023-03-05");
    assert!(report.get("deleted").is_none());
    assert_eq!(env.files(), before, "a dry run deletes nothing");

    // The same in words.
    let text = env.ok(&["prune", "--dry-run", "--dest", &dest_arg]);
    assert!(
        text.starts_with("Keeps the newest backup of each of the last 3 days"),
        "{text}"
    );
    assert!(
        text.contains(&format!("delete  {mar03_morning}  2023-03-03 02:00 +00:00  complete  shop  not needed by the retention policy")),
        "{text}"
    );
    assert!(text.contains(&format!("keep    {mar05}  ")), "{text}");
    assert!(text.contains("Would delete 7 of 11 backups"), "{text}");
    assert_eq!(env.files(), before);

    // For real: exactly the planned ones go, with their sidecars; foreign files stay.
    let report = json(&env.ok(&["prune", "--dest", &dest_arg, "--json"]));
    assert_eq!(report["dry_run"], false);
    let deleted: BTreeSet<String> = report["deleted"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    assert_eq!(deleted, expected_doomed);
    assert_eq!(report["failed"].as_array().unwrap().len(), 0);
    let kept: BTreeSet<String> = [&mar05, &mar03_evening, &mar01, &other]
        .into_iter()
        .cloned()
        .collect();
    assert_eq!(env.listed(), kept);
    let after = env.files();
    for foreign in [
        "notes.txt",
        "driveback-shop-20230101T000000Z-0badf00d.mdbk",
        "config.json",
        "driveback-key.pub",
        "driveback-key.age",
    ] {
        assert!(after.contains(foreign), "{foreign} was touched");
    }
    assert_eq!(after.len(), 5 + 2 * kept.len(), "{after:?}");

    // Again: nothing left to delete.
    let text = env.ok(&["prune", "--dest", &dest_arg]);
    assert!(text.ends_with("Nothing to delete.\n"), "{text}");
    assert_eq!(env.listed(), kept);
}

#[test]
fn the_newest_complete_backup_survives_any_policy() {
    let env = Env::new();
    let dest_arg = env.dest();
    env.ok(&["config", "set", "backup.dest", &dest_arg]);
    env.ok(&["config", "set", "retention.daily", "0"]);
    env.ok(&["config", "set", "retention.monthly", "0"]);
    let old = env.backup("shop", utc("2023-06-01 02:00"), BackupStatus::Complete);
    let newest = env.backup("shop", utc("2023-06-02 02:00"), BackupStatus::Complete);
    let newer_partial = env.backup("shop", utc("2023-06-03 02:00"), BackupStatus::Partial);
    // --dest defaults to the setting.
    let report = json(&env.ok(&["prune", "--json"]));
    assert_eq!(report["deleted"], serde_json::json!([old]));
    assert_eq!(
        env.listed(),
        [newest.clone(), newer_partial.clone()]
            .into_iter()
            .collect()
    );
    assert_eq!(
        reason_texts(&report, &newer_partial),
        ["a partial backup, kept until a newer complete backup exists"]
    );
    assert_eq!(report["description"], "Keeps only the most recent backup.");
}

#[test]
fn the_default_policy_on_recent_backups() {
    // One backup a day for the last 40 days (UTC), each at the current time of day minus an hour,
    // so that every one falls on its own day whatever the time now.
    let env = Env::new();
    let now = Utc::now();
    let mut made: Vec<(DateTime<Utc>, String)> = Vec::new();
    for k in 0..40 {
        let t = now - Duration::hours(1) - Duration::days(k);
        made.push((t, env.backup("shop", t, BackupStatus::Complete)));
    }
    // Expected: the 7 newest; and the first backup of this month and of last month.
    let month = |t: DateTime<Utc>| t.year() * 12 + t.month0() as i32;
    let current = month(now.max(made[0].0));
    let mut expected: BTreeSet<String> = made[..7].iter().map(|(_, id)| id.clone()).collect();
    for m in [current, current - 1] {
        if let Some((_, id)) = made
            .iter()
            .filter(|(t, _)| month(*t) == m)
            .min_by_key(|(t, _)| *t)
        {
            expected.insert(id.clone());
        }
    }
    let report = json(&env.ok(&["prune", "--dest", &env.dest(), "--json"]));
    assert_eq!(env.listed(), expected, "{report:#}");
    assert!(env.listed().contains(&made[0].1));
}

#[test]
fn config_errors_name_the_setting() {
    let env = Env::new();
    let out = env.cli(&["config", "set", "retention.keep_last", "0"]);
    assert!(!out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim(),
        "driveback: error: retention.keep_last: 0 is out of range (1 to 1000)"
    );
    let out = env.cli(&["config", "set", "schedule.time", "2pm"]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("schedule.time: '2pm' is not a time of day")
    );
    // A hand-edited file with a bad value: the error names the file and the setting.
    let config = env.dir.path().join("config");
    std::fs::create_dir_all(&config).unwrap();
    std::fs::write(
        config.join("settings.json"),
        r#"{"version": 1, "schedule": {"frequency": "hourly"}}"#,
    )
    .unwrap();
    let out = env.cli(&["prune", "--dest", &env.dest(), "--dry-run"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("has an invalid value for schedule.frequency: 'hourly' is not a frequency"),
        "{err}"
    );
    // Unknown keys are refused and the known ones listed.
    std::fs::remove_file(config.join("settings.json")).unwrap();
    let out = env.cli(&["config", "get", "smtp.hostname"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("there is no setting 'smtp.hostname'"));
    let all = env.ok(&["config", "get"]);
    assert!(all.contains("schedule.frequency = daily\n"), "{all}");
    assert!(all.contains("schedule.time = 02:00\n"), "{all}");
    assert!(all.contains("backup.dest = (not set)\n"), "{all}");
    assert!(all.contains("retention.monthly = 1\n"), "{all}");
    let set = env.ok(&["config", "set", "schedule.frequency", "weekly"]);
    assert_eq!(set, "schedule.frequency = weekly\nEvery Sunday at 02:00\n");
}
