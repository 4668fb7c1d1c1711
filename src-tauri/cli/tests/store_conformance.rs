//! One suite of store behaviours, written once and run against every `RemoteStore`: the folder
//! store, and the Google Drive store (app data folder and visible folder) on the Google
//! emulator over real HTTP. Then the Drive store's own tests against the emulator's fault
//! injection: chunked resumable uploads, dropped connections, short stores, rate limits, 5xx,
//! expired tokens, a full Drive, interrupted uploads picked up by the next run, the visible
//! folder, pagination, resumed downloads.

mod support_drive;

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use chrono::{TimeZone, Utc};
use driveback_engine::manifest::BackupStatus;
use driveback_engine::store::drive::{DriveLocation, DriveStore};
use driveback_engine::store::folder::{FolderStore, STALE_UPLOAD_AGE};
use driveback_engine::store::{
    low_space_warning, BackupSummary, RemoteStore, StoreError, StoredBackup,
};
use serde_json::json;
use sha2::{Digest, Sha256};
use support_drive::{blob, CutProxy, Emu, EmuTokens, SCOPE_APPDATA, SCOPE_FILE, TEST_CHUNK};

// ---------------------------------------------------------------------------------------------
// What the suite needs from each kind of store.

trait Fixture {
    fn store(&self) -> &dyn RemoteStore;
    /// Another handle on the same destination, as a new process or another device opens it.
    fn reopen(&self) -> Box<dyn RemoteStore>;
    /// Changes one byte of a stored backup's content, keeping its size.
    fn tamper(&self, backup: &StoredBackup);
    /// Puts files there that are not Driveback backups; returns how many.
    fn add_foreign_files(&self) -> usize;
    /// How many of those are still there.
    fn foreign_files_left(&self) -> usize;
    /// Leaves what an upload interrupted long ago leaves behind.
    fn leave_stale_upload(&self);
    fn stale_upload_left(&self) -> bool;
}

fn summary(id: &str, hour: u32) -> BackupSummary {
    BackupSummary {
        id: id.into(),
        created: Utc.with_ymd_and_hms(2024, 6, 1, hour, 0, 0).unwrap(),
        database: "shop".into(),
        documents: 42,
        status: BackupStatus::Complete,
        format_version: 1,
        signature: None,
        link: None,
    }
}

fn upload(store: &dyn RemoteStore, name: &str, data: &[u8], s: &BackupSummary) -> StoredBackup {
    let mut sink = store.create(name).unwrap();
    for piece in data.chunks(7777) {
        sink.write_all(piece).unwrap();
    }
    sink.commit(s).unwrap()
}

fn read_all(store: &dyn RemoteStore, b: &StoredBackup) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    store.open(b).unwrap().read_to_end(&mut out)?;
    Ok(out)
}

fn sha256(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

// ---------------------------------------------------------------------------------------------
// The suite.

fn create_commit_list_find_open_delete(fx: &dyn Fixture) {
    let store = fx.store();
    assert!(store.list().unwrap().is_empty());
    let data = blob(600_000, 1); // more than two 256 KiB chunks
    let s = summary("0000aaaa", 1);
    let stored = upload(store, "driveback-shop-a.mdbk", &data, &s);
    assert_eq!(stored.bytes, data.len() as u64);
    assert_eq!(stored.sha256, sha256(&data));
    assert_eq!(stored.id, "0000aaaa");
    assert_eq!(stored.file, "driveback-shop-a.mdbk");
    assert_eq!(stored.documents, 42);
    assert_eq!(stored.database, "shop");
    assert_eq!(stored.created, s.created);
    assert_eq!(stored.status, BackupStatus::Complete);

    assert_eq!(store.list().unwrap(), vec![stored.clone()]);
    assert_eq!(store.find("0000aaaa").unwrap(), stored);
    assert_eq!(store.find("driveback-shop-a.mdbk").unwrap(), stored);
    assert_eq!(store.find("latest").unwrap(), stored);
    let err = store.find("ffffffff").unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("no backup 'ffffffff' at {}", store.location())
    );
    assert_eq!(read_all(store, &stored).unwrap(), data);

    store.delete(&stored).unwrap();
    assert!(store.list().unwrap().is_empty());
    assert!(matches!(
        store.find("latest"),
        Err(StoreError::NotFound { .. })
    ));
    // Deleting again is harmless.
    store.delete(&stored).unwrap();
}

fn list_is_newest_first(fx: &dyn Fixture) {
    let store = fx.store();
    let mut partial = summary("00000002", 2);
    partial.status = BackupStatus::Partial;
    partial.database = "other".into();
    upload(store, "b.mdbk", b"two", &partial);
    upload(store, "a.mdbk", b"three", &summary("00000003", 3));
    upload(store, "c.mdbk", b"one", &summary("00000001", 1));
    let list = store.list().unwrap();
    let ids: Vec<&str> = list.iter().map(|b| b.id.as_str()).collect();
    assert_eq!(ids, ["00000003", "00000002", "00000001"]);
    assert_eq!(list[1].status, BackupStatus::Partial);
    assert_eq!(list[1].database, "other");
    assert_eq!(list[1].bytes, 3);
    assert_eq!(store.find("latest").unwrap().id, "00000003");
}

fn uncommitted_uploads_are_never_listed_and_are_cleaned_up(fx: &dyn Fixture) {
    let store = fx.store();
    let kept = upload(
        store,
        "kept.mdbk",
        b"a committed backup",
        &summary("0000000f", 1),
    );

    // An upload in progress (one chunk already sent) is invisible.
    let mut running = store.create("running.mdbk").unwrap();
    running.write_all(&blob(TEST_CHUNK + 1000, 2)).unwrap();
    running.flush().unwrap();
    assert_eq!(store.list().unwrap(), vec![kept.clone()]);

    // What an upload interrupted long ago left behind is removed; nothing else is.
    fx.leave_stale_upload();
    assert_eq!(store.list().unwrap(), vec![kept.clone()]);
    assert!(store.cleanup_incomplete().unwrap() >= 1);
    assert!(!fx.stale_upload_left());
    assert_eq!(store.list().unwrap(), vec![kept.clone()]);

    // The running upload survived the cleanup and still commits.
    running.write_all(b"the end").unwrap();
    let done = running.commit(&summary("0000000e", 2)).unwrap();
    assert_eq!(store.list().unwrap(), vec![done, kept.clone()]);

    // Aborted and dropped uploads leave no backup.
    let mut aborted = store.create("aborted.mdbk").unwrap();
    aborted.write_all(&blob(TEST_CHUNK * 2, 3)).unwrap();
    aborted.abort().unwrap();
    let mut dropped = store.create("dropped.mdbk").unwrap();
    dropped.write_all(b"abc").unwrap();
    drop(dropped);
    assert_eq!(store.list().unwrap().len(), 2);
    assert!(store.find("aborted.mdbk").is_err());
    // A name can be used again after an abort.
    let again = upload(
        store,
        "aborted.mdbk",
        b"second try",
        &summary("0000000d", 3),
    );
    assert_eq!(store.find("latest").unwrap(), again);
}

fn side_files_are_read_and_replaced(fx: &dyn Fixture) {
    let store = fx.store();
    assert_eq!(store.read_file("driveback-key.pub").unwrap(), None);
    store.write_file("driveback-key.pub", b"age1first").unwrap();
    store.write_file("driveback-key.age", b"wrapped").unwrap();
    store
        .write_file("driveback-key.pub", b"age1second")
        .unwrap();
    assert_eq!(
        store.read_file("driveback-key.pub").unwrap().unwrap(),
        b"age1second"
    );
    assert_eq!(
        store.read_file("driveback-key.age").unwrap().unwrap(),
        b"wrapped"
    );
    // Side files are not backups, and neither cleanup nor deleting backups touches them.
    let b = upload(store, "x.mdbk", b"data", &summary("00000010", 1));
    assert_eq!(store.list().unwrap(), vec![b.clone()]);
    store.cleanup_incomplete().unwrap();
    store.delete(&b).unwrap();
    assert_eq!(
        store.read_file("driveback-key.age").unwrap().unwrap(),
        b"wrapped"
    );
    // A new device finds them.
    let other = fx.reopen();
    assert_eq!(
        other.read_file("driveback-key.pub").unwrap().unwrap(),
        b"age1second"
    );
    for bad in ["../escape", "a/b", ".hidden", ""] {
        assert!(store.write_file(bad, b"x").is_err(), "{bad}");
        assert!(store.read_file(bad).is_err(), "{bad}");
    }
}

fn foreign_files_are_ignored_and_never_deleted(fx: &dyn Fixture) {
    let store = fx.store();
    let stored = upload(store, "real.mdbk", b"data", &summary("0000000b", 1));
    let foreign = fx.add_foreign_files();
    assert!(foreign >= 3);
    assert_eq!(store.list().unwrap(), vec![stored.clone()]);
    store.cleanup_incomplete().unwrap();
    store.delete(&stored).unwrap();
    assert!(store.list().unwrap().is_empty());
    assert_eq!(fx.foreign_files_left(), foreign);
}

fn a_tampered_file_fails_its_checksum_on_read(fx: &dyn Fixture) {
    let store = fx.store();
    let data = blob(300_000, 4);
    let stored = upload(store, "x.mdbk", &data, &summary("0000000a", 1));
    fx.tamper(&stored);
    // Same size, one byte changed: still listed, but reading it to the end fails.
    assert_eq!(store.list().unwrap().len(), 1);
    let err = read_all(store, &stored).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    assert_eq!(
        err.to_string(),
        "the backup file does not match its recorded checksum"
    );
}

fn a_committed_backup_is_never_replaced(fx: &dyn Fixture) {
    let store = fx.store();
    let first = store.create("same.mdbk").unwrap();
    assert!(store.create("same.mdbk").is_err());
    first.abort().unwrap();
    let second = store.create("same.mdbk").unwrap();
    second.commit(&summary("0000000c", 1)).unwrap();
    let mut third = store.create("same.mdbk").unwrap();
    third.write_all(b"other").unwrap();
    assert!(third.commit(&summary("0000000d", 2)).is_err());
    let list = store.list().unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].id, "0000000c");
    assert_eq!(list[0].bytes, 0);
}

fn a_new_device_lists_and_reads_what_another_wrote(fx: &dyn Fixture) {
    let data = blob(TEST_CHUNK * 3, 5); // an exact multiple of the chunk
    let empty = upload(fx.store(), "empty.mdbk", b"", &summary("00000020", 1));
    let full = upload(fx.store(), "full.mdbk", &data, &summary("00000021", 2));
    let other = fx.reopen();
    assert_eq!(other.list().unwrap(), vec![full.clone(), empty.clone()]);
    assert_eq!(read_all(other.as_ref(), &full).unwrap(), data);
    assert_eq!(read_all(other.as_ref(), &empty).unwrap(), b"");
    assert_eq!(empty.sha256, sha256(b""));
}

macro_rules! suite {
    ($fixture:expr; $($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                let fx = $fixture;
                super::$name(&fx);
            }
        )*
    };
}

macro_rules! conformance {
    ($fixture:expr) => {
        suite!($fixture;
            create_commit_list_find_open_delete,
            list_is_newest_first,
            uncommitted_uploads_are_never_listed_and_are_cleaned_up,
            side_files_are_read_and_replaced,
            foreign_files_are_ignored_and_never_deleted,
            a_tampered_file_fails_its_checksum_on_read,
            a_committed_backup_is_never_replaced,
            a_new_device_lists_and_reads_what_another_wrote,
        );
    };
}

mod folder {
    use super::*;
    conformance!(FolderFixture::new());
}

mod drive_appdata {
    use super::*;
    conformance!(DriveFixture::new(DriveLocation::AppData));
}

mod drive_folder {
    use super::*;
    conformance!(DriveFixture::new(DriveLocation::Folder));
}

// ---------------------------------------------------------------------------------------------
// The folder store as a fixture.

struct FolderFixture {
    dir: tempfile::TempDir,
    store: FolderStore,
}

impl FolderFixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = FolderStore::new(dir.path().join("backups"));
        FolderFixture { dir, store }
    }

    fn root(&self) -> PathBuf {
        self.dir.path().join("backups")
    }

    const FOREIGN: [&'static str; 4] = ["notes.txt", "other.mdbk", "config.json", "broken.json"];
}

fn make_old(path: &Path) {
    let f = File::options().write(true).open(path).unwrap();
    f.set_modified(SystemTime::now() - STALE_UPLOAD_AGE - Duration::from_secs(60))
        .unwrap();
}

impl Fixture for FolderFixture {
    fn store(&self) -> &dyn RemoteStore {
        &self.store
    }

    fn reopen(&self) -> Box<dyn RemoteStore> {
        Box::new(FolderStore::new(self.root()))
    }

    fn tamper(&self, b: &StoredBackup) {
        let path = self.root().join(&b.file);
        let mut bytes = fs::read(&path).unwrap();
        let mid = bytes.len() / 2;
        bytes[mid] ^= 1;
        fs::write(&path, &bytes).unwrap();
    }

    fn add_foreign_files(&self) -> usize {
        fs::create_dir_all(self.root()).unwrap();
        let contents: [&[u8]; 4] = [b"hello", b"no sidecar", br#"{"a": 1}"#, b"{not json"];
        for (name, content) in Self::FOREIGN.iter().zip(contents) {
            fs::write(self.root().join(name), content).unwrap();
        }
        Self::FOREIGN.len()
    }

    fn foreign_files_left(&self) -> usize {
        Self::FOREIGN
            .iter()
            .filter(|n| self.root().join(n).exists())
            .count()
    }

    fn leave_stale_upload(&self) {
        fs::create_dir_all(self.root()).unwrap();
        let p = self.root().join(".crashed.mdbk.partial");
        fs::write(&p, b"never finished").unwrap();
        make_old(&p);
    }

    fn stale_upload_left(&self) -> bool {
        self.root().join(".crashed.mdbk.partial").exists()
    }
}

// ---------------------------------------------------------------------------------------------
// The Drive store on the emulator as a fixture.

struct DriveFixture {
    emu: Emu,
    tokens: Arc<EmuTokens>,
    location: DriveLocation,
    state: tempfile::TempDir,
    store: DriveStore,
}

impl DriveFixture {
    fn new(location: DriveLocation) -> Self {
        Self::with_args(location, &[])
    }

    fn with_args(location: DriveLocation, args: &[&str]) -> Self {
        let emu = Emu::start(args);
        let tokens = emu.login(location.scope());
        let state = tempfile::tempdir().unwrap();
        let store = emu.store(tokens.clone(), location, state.path());
        DriveFixture {
            emu,
            tokens,
            location,
            state,
            store,
        }
    }

    fn parent(&self) -> String {
        match self.location {
            DriveLocation::AppData => "appDataFolder".into(),
            DriveLocation::Folder => self.emu.drive(&self.tokens).backups_folder(),
        }
    }

    fn spaces(&self) -> &'static str {
        match self.location {
            DriveLocation::AppData => "appDataFolder",
            DriveLocation::Folder => "drive",
        }
    }

    fn file_id(&self, name: &str) -> String {
        let q = format!("name = '{name}' and trashed = false");
        let found = self.emu.drive(&self.tokens).search(&q, self.spaces());
        assert_eq!(found.len(), 1, "{name}: {found:?}");
        found[0]["id"].as_str().unwrap().to_string()
    }

    const FOREIGN: [&'static str; 4] =
        ["notes.txt", "other.mdbk", "lookalike.mdbk", "damaged.mdbk"];

    /// A new store on the same account and state folder (the next run of the app).
    fn next_run(&self) -> DriveStore {
        self.emu
            .store(self.tokens.clone(), self.location, self.state.path())
    }
}

impl Fixture for DriveFixture {
    fn store(&self) -> &dyn RemoteStore {
        &self.store
    }

    /// Another device: its own sign-in and its own (empty) state folder.
    fn reopen(&self) -> Box<dyn RemoteStore> {
        let tokens = self.emu.login(self.location.scope());
        let state = tempfile::tempdir().unwrap().keep();
        Box::new(self.emu.store(tokens, self.location, &state))
    }

    fn tamper(&self, b: &StoredBackup) {
        let drive = self.emu.drive(&self.tokens);
        let id = self.file_id(&b.file);
        let mut bytes = drive.download(&id);
        let mid = bytes.len() / 2;
        bytes[mid] ^= 1;
        drive.replace_content(&id, bytes);
    }

    fn add_foreign_files(&self) -> usize {
        let drive = self.emu.drive(&self.tokens);
        let parent = self.parent();
        // No app properties; another role; another app's idea of a backup; a commit mark
        // whose size does not match the content.
        drive.create(json!({"name": "notes.txt", "parents": [parent]}), b"hello");
        drive.create(
            json!({"name": "other.mdbk", "parents": [parent], "appProperties": {"driveback": "something-else"}}),
            b"x",
        );
        drive.create(
            json!({"name": "lookalike.mdbk", "parents": [parent], "appProperties": {"kind": "backup"}}),
            b"y",
        );
        drive.create(
            json!({"name": "damaged.mdbk", "parents": [parent], "appProperties": {
                "driveback": "backup", "format": "1", "backupId": "deadbeef", "database": "shop",
                "created": "2024-06-01T00:00:00Z", "documents": "1", "bytes": "999",
                "status": "complete", "sha256": "00".repeat(32)}}),
            b"not 999 bytes",
        );
        Self::FOREIGN.len()
    }

    fn foreign_files_left(&self) -> usize {
        let names = self.emu.file_names();
        Self::FOREIGN
            .iter()
            .filter(|n| names.iter().any(|m| m == *n))
            .count()
    }

    fn leave_stale_upload(&self) {
        let drive = self.emu.drive(&self.tokens);
        let parent = self.parent();
        // Finished but never committed, an hour ago (the process died before the commit mark).
        let old = (Utc::now() - chrono::Duration::hours(1)).to_rfc3339();
        drive.create(
            json!({"name": "crashed.mdbk", "parents": [parent], "createdTime": old,
                   "appProperties": {"driveback": "upload", "started": old}}),
            b"never committed",
        );
        // One that finished a moment ago may belong to another process about to commit it.
        drive.create(
            json!({"name": "committing.mdbk", "parents": [parent],
                   "appProperties": {"driveback": "upload"}}),
            b"being committed elsewhere",
        );
    }

    fn stale_upload_left(&self) -> bool {
        let names = self.emu.file_names();
        assert!(names.iter().any(|n| n == "committing.mdbk"));
        names.iter().any(|n| n == "crashed.mdbk")
    }
}

// ---------------------------------------------------------------------------------------------
// The Drive store's own behaviour under the emulator's faults.

mod drive {
    use super::*;

    fn fixture() -> DriveFixture {
        DriveFixture::new(DriveLocation::AppData)
    }

    /// Writes `data` in pieces, calling `at(offset)` before each piece.
    fn upload_with(
        store: &dyn RemoteStore,
        name: &str,
        data: &[u8],
        piece: usize,
        mut at: impl FnMut(usize),
    ) -> Result<StoredBackup, StoreError> {
        let mut sink = store.create(name)?;
        let mut off = 0;
        for p in data.chunks(piece) {
            at(off);
            sink.write_all(p)
                .map_err(|e| StoreError::Remote(e.to_string()))?;
            off += p.len();
        }
        sink.commit(&summary("0000abcd", 1))
    }

    #[test]
    fn a_multi_chunk_upload_sends_each_byte_once() {
        let fx = fixture();
        let data = blob(TEST_CHUNK * 5 + 12_345, 10);
        let b = upload(&fx.store, "big.mdbk", &data, &summary("00000001", 1));
        assert_eq!(b.sha256, sha256(&data));
        // Six requests on the session: five full chunks and the last one.
        assert_eq!(fx.emu.requests("upload_init"), 1);
        assert_eq!(fx.emu.requests("upload_chunk"), 6);
        assert_eq!(fx.emu.upload_bytes_received(), data.len() as u64);
        assert_eq!(read_all(&fx.store, &b).unwrap(), data);
        // The file on Drive carries the commit mark with the summary.
        let st = fx.emu.state();
        let item = st["files"]["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["name"] == "big.mdbk")
            .unwrap()
            .clone();
        assert_eq!(item["space"], "appDataFolder");
        let p = &item["appProperties"];
        assert_eq!(p["driveback"], "backup");
        assert_eq!(p["backupId"], "00000001");
        assert_eq!(p["database"], "shop");
        assert_eq!(p["documents"], "42");
        assert_eq!(p["status"], "complete");
        assert_eq!(p["format"], "1");
        assert_eq!(p["bytes"], data.len().to_string());
        assert_eq!(p["sha256"], sha256(&data));
        assert_eq!(p["created"], "2024-06-01T01:00:00Z");
        assert!(st["sessions"]["active"] == 0);
    }

    #[test]
    fn dropped_connections_resume_with_at_most_one_chunk_sent_again() {
        let fx = fixture();
        let data = blob(TEST_CHUNK * 20 + 999, 11);
        let marks = [data.len() / 10, data.len() / 2, data.len() * 9 / 10];
        let mut armed = 0;
        let b = upload_with(&fx.store, "drops.mdbk", &data, 10_000, |off| {
            if armed < marks.len() && off >= marks[armed] {
                // The next chunk's connection drops after 100 000 bytes; the middle one keeps
                // what arrived (as Google may), the others lose it.
                fx.emu.control(
                    "drop-connection",
                    json!({"after_bytes": 100_000, "store_partial": armed == 1}),
                );
                armed += 1;
            }
        })
        .unwrap();
        assert_eq!(armed, 3);
        let st = fx.emu.state();
        assert_eq!(st["connections_dropped"], 3);
        let received = st["upload_bytes_received"].as_u64().unwrap();
        let resent = received - data.len() as u64;
        assert!(
            resent <= 3 * TEST_CHUNK as u64,
            "{resent} bytes sent again for 3 drops"
        );
        assert_eq!(read_all(&fx.store, &b).unwrap(), data);
    }

    /// Deterministic content of any length without holding it: a pseudo-random MiB, stamped
    /// with its index so that a misplaced chunk changes the checksum.
    struct Generated {
        block: Vec<u8>,
        len: u64,
        pos: u64,
    }

    impl Generated {
        fn new(len: u64) -> Self {
            Generated {
                block: blob(1 << 20, 23),
                len,
                pos: 0,
            }
        }
    }

    impl Read for Generated {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let left = self.len - self.pos;
            if left == 0 || buf.is_empty() {
                return Ok(0);
            }
            let mib = self.pos >> 20;
            let at = (self.pos & ((1 << 20) - 1)) as usize;
            let n = buf.len().min(self.block.len() - at).min(left as usize);
            buf[..n].copy_from_slice(&self.block[at..at + n]);
            // Stamp the first 8 bytes of each MiB with its index.
            if at < 8 {
                let stamp_end = (at + n).min(8);
                buf[..stamp_end - at].copy_from_slice(&mib.to_le_bytes()[at..stamp_end]);
            }
            self.pos += n as u64;
            Ok(n)
        }
    }

    #[test]
    fn a_300_mb_upload_survives_drops_at_10_50_and_90_percent() {
        let emu = Emu::start(&[]);
        let tokens = emu.login(SCOPE_APPDATA);
        let state = tempfile::tempdir().unwrap();
        let mut config = emu.config(DriveLocation::AppData, state.path());
        config.chunk_size = driveback_engine::store::drive::DEFAULT_CHUNK_SIZE; // 8 MiB
        let chunk = config.chunk_size as u64;
        let store = DriveStore::new(tokens, config).unwrap();
        let total: u64 = 300 * 1000 * 1000;
        let marks = [total / 10, total / 2, total * 9 / 10];

        let started = Instant::now();
        let mut source = Generated::new(total);
        let mut hasher = Sha256::new();
        let mut sink = store.create("big-300mb.mdbk").unwrap();
        let mut buf = vec![0u8; 1 << 20];
        let (mut sent, mut armed) = (0u64, 0usize);
        loop {
            let n = source.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            if armed < marks.len() && sent >= marks[armed] {
                emu.control(
                    "drop-connection",
                    json!({"after_bytes": 3 << 20, "store_partial": armed == 1}),
                );
                armed += 1;
            }
            hasher.update(&buf[..n]);
            sink.write_all(&buf[..n]).unwrap();
            sent += n as u64;
        }
        let b = sink.commit(&summary("30030030", 1)).unwrap();
        let upload_time = started.elapsed();
        assert_eq!(b.bytes, total);
        assert_eq!(b.sha256, hex::encode(hasher.finalize()));

        let st = emu.state();
        assert_eq!(st["connections_dropped"], 3);
        let resent = st["upload_bytes_received"].as_u64().unwrap() - total;
        assert!(resent <= 3 * chunk, "{resent} bytes sent again for 3 drops");
        let requests: u64 = ["upload_init", "upload_chunk", "update", "list", "get"]
            .iter()
            .map(|r| st["requests"][r].as_u64().unwrap_or(0))
            .sum();

        let started = Instant::now();
        let mut reader = store.open(&b).unwrap();
        let mut check = Sha256::new();
        let mut read = 0u64;
        loop {
            let n = reader.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            check.update(&buf[..n]);
            read += n as u64;
        }
        assert_eq!(read, total);
        assert_eq!(hex::encode(check.finalize()), b.sha256);
        eprintln!(
            "300 MB: upload {:.1} s ({:.0} MB/s, {requests} requests, {resent} bytes sent twice), download {:.1} s",
            upload_time.as_secs_f64(),
            total as f64 / 1e6 / upload_time.as_secs_f64(),
            started.elapsed().as_secs_f64()
        );
    }

    #[test]
    fn the_client_follows_the_range_the_server_kept() {
        let fx = fixture();
        let data = blob(TEST_CHUNK * 4 + 5, 12);
        fx.emu
            .control("short-store", json!({"keep_bytes": 1000, "count": 2}));
        let b = upload(&fx.store, "short.mdbk", &data, &summary("00000002", 1));
        assert_eq!(b.sha256, sha256(&data));
        assert_eq!(read_all(&fx.store, &b).unwrap(), data);
        let st = fx.emu.state();
        assert_eq!(st["short_stores_pending"].as_array().unwrap().len(), 0);
        let resent = st["upload_bytes_received"].as_u64().unwrap() - data.len() as u64;
        assert!(resent <= 2 * TEST_CHUNK as u64, "{resent}");
    }

    #[test]
    fn rate_limit_storms_and_5xx_bursts_back_off_and_succeed() {
        let fx = fixture();
        let data = blob(TEST_CHUNK * 3, 13);
        for fault in [
            json!({"route": "upload_chunk", "status": 503, "count": 2}),
            json!({"route": "upload_init", "status": 429, "count": 1, "retry_after": 1}),
            json!({"route": "update", "status": 403, "reason": "userRateLimitExceeded", "count": 2}),
            json!({"route": "list", "status": 403, "reason": "rateLimitExceeded", "count": 2}),
            json!({"route": "list", "status": 500, "count": 1}),
        ] {
            fx.emu.fault(fault);
        }
        let started = Instant::now();
        let b = upload(&fx.store, "storm.mdbk", &data, &summary("00000003", 1));
        // The Retry-After of 1 s was honoured.
        assert!(started.elapsed() >= Duration::from_secs(1));
        assert_eq!(fx.store.list().unwrap(), vec![b.clone()]);
        assert_eq!(fx.emu.state()["faults_fired"], 8);
        assert_eq!(read_all(&fx.store, &b).unwrap(), data);
    }

    #[test]
    fn a_persistent_500_gives_up_after_bounded_tries_with_a_clear_error() {
        let fx = fixture();
        fx.emu
            .fault(json!({"route": "list", "status": 500, "count": 1000}));
        let before = fx.emu.requests("list");
        let err = fx.store.list().unwrap_err();
        assert_eq!(
            err.to_string(),
            "could not list the backups on Google Drive: Backend Error (HTTP 500 backendError; gave up after 6 tries)"
        );
        assert_eq!(fx.emu.requests("list") - before, 6);

        // The same on the upload path: the chunk fails, the status query fails, ... then stop.
        fx.emu.clear_faults();
        fx.emu
            .fault(json!({"route": "upload_chunk", "status": 502, "count": 1000}));
        let err = upload_with(
            &fx.store,
            "x.mdbk",
            &blob(TEST_CHUNK * 2, 1),
            50_000,
            |_| {},
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .contains("could not upload x.mdbk to Google Drive")
                && err.to_string().contains("gave up after 6 tries"),
            "{err}"
        );
        fx.emu.clear_faults();
        assert!(fx.store.list().unwrap().is_empty());

        // Every chunk's connection drops while status queries answer: still bounded.
        fx.emu.control(
            "drop-connection",
            json!({"after_bytes": 1000, "count": 1000}),
        );
        let before = fx.emu.state()["connections_dropped"].as_u64().unwrap();
        let err = upload_with(
            &fx.store,
            "y.mdbk",
            &blob(TEST_CHUNK * 2, 1),
            50_000,
            |_| {},
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.starts_with(
                "could not upload y.mdbk to Google Drive: no answer from Google Drive ("
            ) && err.ends_with("; gave up after 6 tries)"),
            "{err}"
        );
        let dropped = fx.emu.state()["connections_dropped"].as_u64().unwrap() - before;
        assert_eq!(dropped, 6);
        fx.emu.clear_faults();
        assert!(fx.store.list().unwrap().is_empty());
    }

    #[test]
    fn an_expired_access_token_is_refreshed_once_and_the_upload_goes_on() {
        let fx = fixture();
        let data = blob(TEST_CHUNK * 4, 14);
        let refreshes = fx.tokens.refreshes.load(Ordering::SeqCst);
        let b = upload_with(&fx.store, "tok.mdbk", &data, 50_000, |off| {
            if off == 300_000 {
                fx.emu.control("expire-tokens", json!({}));
            }
            if off == 600_000 {
                fx.emu
                    .fault(json!({"route": "upload_chunk", "status": 401, "count": 1}));
            }
        })
        .unwrap();
        assert_eq!(read_all(&fx.store, &b).unwrap(), data);
        let done = fx.tokens.refreshes.load(Ordering::SeqCst) - refreshes;
        assert!((1..=2).contains(&done), "{done} refreshes");
        // A grant that is gone asks to reconnect, in one line.
        fx.emu.control("revoke-all", json!({}));
        let err = fx.store.list().unwrap_err();
        assert!(matches!(err, StoreError::Auth(_)), "{err:?}");
        assert_eq!(
            err.to_string(),
            "Google Drive needs reconnecting: Token has been expired or revoked."
        );
    }

    #[test]
    fn a_full_drive_says_so_and_leaves_no_backup() {
        let fx = fixture();
        upload(
            &fx.store,
            "small.mdbk",
            &blob(100_000, 1),
            &summary("00000001", 1),
        );
        fx.emu.control("quota", json!({"limit": 1_048_576}));
        let q = fx.store.storage_quota().unwrap();
        assert_eq!(q.used, 100_000);
        assert_eq!(q.limit, Some(1_048_576));
        // The pre-flight check warns when the expected size does not fit.
        assert_eq!(low_space_warning(&fx.store, 500_000).unwrap(), None);
        assert_eq!(
            low_space_warning(&fx.store, 2_000_000).unwrap().unwrap(),
            "Your Google Drive has 926 KB free (97.7 KB used of 1 MB); this backup needs about 1.9 MB"
        );
        let before = fx.emu.requests("upload_chunk");
        let err =
            upload_with(&fx.store, "big.mdbk", &blob(2_000_000, 2), 10_000, |_| {}).unwrap_err();
        assert_eq!(
            err.to_string(),
            "Your Google Drive is full: 97.7 KB used of 1 MB"
        );
        // Not retried: the request that hit the limit was the last one.
        assert_eq!(fx.emu.requests("upload_chunk") - before, 4);
        let list = fx.store.list().unwrap();
        assert_eq!(list.len(), 1);
        assert_eq!(list[0].file, "small.mdbk");
        // The sink's error keeps its kind for callers that look (io::ErrorKind::StorageFull).
        let mut sink = fx.store.create("again.mdbk").unwrap();
        let err = sink.write_all(&blob(2_000_000, 3)).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::StorageFull);
        let inner = err.into_inner().unwrap().downcast::<StoreError>().unwrap();
        assert!(inner.is_disk_full());
    }

    #[test]
    fn a_killed_upload_is_resumed_by_the_next_run() {
        let fx = fixture();
        let data = blob(TEST_CHUNK * 8 + 4321, 15);
        let mut sink = fx.store.create("resume.mdbk").unwrap();
        sink.write_all(&data[..TEST_CHUNK * 5 + 100]).unwrap();
        // The process dies: no commit, no abort, no drop.
        std::mem::forget(sink);
        let sent_before = fx.emu.upload_bytes_received();
        assert_eq!(sent_before, (TEST_CHUNK * 5) as u64);

        let next = fx.next_run();
        assert!(next.list().unwrap().is_empty());
        let b = upload(&next, "resume.mdbk", &data, &summary("00000005", 1));
        assert_eq!(b.sha256, sha256(&data));
        // The five chunks the server had were not sent again.
        assert_eq!(fx.emu.upload_bytes_received(), data.len() as u64);
        assert_eq!(fx.emu.requests("upload_init"), 1);
        assert_eq!(read_all(&next, &b).unwrap(), data);
        // The record of the session is gone once committed.
        assert_eq!(fs::read_dir(fx.state.path()).unwrap().count(), 0);
    }

    /// The child side of the next test: uploads part of a backup, says so, and waits to be
    /// killed. Does nothing unless started by that test.
    #[test]
    #[ignore = "run by a_process_killed_mid_upload_is_resumed_by_the_next_run"]
    fn child_uploads_until_killed() {
        let Ok(base) = std::env::var("DRIVEBACK_TEST_CHILD_EMULATOR") else {
            return;
        };
        let state = std::env::var("DRIVEBACK_TEST_CHILD_STATE").unwrap();
        let emu = Emu::attach(&base);
        let store = emu.store(
            emu.login(SCOPE_APPDATA),
            DriveLocation::AppData,
            Path::new(&state),
        );
        let data = blob(TEST_CHUNK * 8 + 4321, 24);
        let mut sink = store.create("killed.mdbk").unwrap();
        sink.write_all(&data[..TEST_CHUNK * 5 + 100]).unwrap();
        println!("uploaded");
        std::io::stdout().flush().unwrap();
        std::thread::sleep(Duration::from_secs(120));
        unreachable!("killed before");
    }

    #[test]
    fn a_process_killed_mid_upload_is_resumed_by_the_next_run() {
        use std::io::BufRead;
        let fx = fixture();
        let mut child = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "drive::child_uploads_until_killed",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("DRIVEBACK_TEST_CHILD_EMULATOR", fx.emu.base())
            .env("DRIVEBACK_TEST_CHILD_STATE", fx.state.path())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = io::BufReader::new(child.stdout.take().unwrap()).lines();
        assert!(lines.any(|l| l.unwrap().contains("uploaded")));
        child.kill().unwrap(); // SIGKILL: no destructor runs
        child.wait().unwrap();
        assert_eq!(
            fx.emu.upload_bytes_received(),
            (TEST_CHUNK * 5) as u64,
            "five chunks were sent before the kill"
        );
        // No half backup is listed, and the next run picks the upload up.
        assert!(fx.store.list().unwrap().is_empty());
        let data = blob(TEST_CHUNK * 8 + 4321, 24);
        let b = upload(
            &fx.next_run(),
            "killed.mdbk",
            &data,
            &summary("0000001a", 1),
        );
        assert_eq!(fx.emu.upload_bytes_received(), data.len() as u64);
        assert_eq!(fx.store.list().unwrap(), vec![b.clone()]);
        assert_eq!(read_all(&fx.store, &b).unwrap(), data);
    }

    #[test]
    fn a_killed_upload_whose_session_expired_starts_over() {
        let fx = fixture();
        let data = blob(TEST_CHUNK * 3 + 7, 16);
        let mut sink = fx.store.create("expired.mdbk").unwrap();
        sink.write_all(&data[..TEST_CHUNK * 2]).unwrap();
        std::mem::forget(sink);
        // A week and a day later (access tokens have expired too).
        fx.emu
            .control("advance-clock", json!({"seconds": 8 * 24 * 3600}));
        let next = fx.next_run();
        let b = upload(&next, "expired.mdbk", &data, &summary("00000006", 1));
        assert_eq!(read_all(&next, &b).unwrap(), data);
        assert_eq!(fx.emu.requests("upload_init"), 2);
        assert_eq!(next.list().unwrap(), vec![b]);
    }

    #[test]
    fn a_killed_upload_with_other_content_under_the_same_name_starts_over() {
        let fx = fixture();
        let old = blob(TEST_CHUNK * 3, 17);
        let mut sink = fx.store.create("same-name.mdbk").unwrap();
        sink.write_all(&old).unwrap();
        std::mem::forget(sink);
        let new = blob(TEST_CHUNK * 3 + 10, 18);
        let next = fx.next_run();
        let b = upload(&next, "same-name.mdbk", &new, &summary("00000007", 1));
        assert_eq!(read_all(&next, &b).unwrap(), new);
        assert_eq!(fx.emu.requests("upload_init"), 2);
    }

    #[test]
    fn an_expired_session_mid_upload_fails_clearly_and_leaves_nothing() {
        let fx =
            DriveFixture::with_args(DriveLocation::AppData, &["--session-lifetime-secs", "3600"]);
        let data = blob(TEST_CHUNK * 4, 19);
        let err = upload_with(&fx.store, "late.mdbk", &data, TEST_CHUNK, |off| {
            if off == TEST_CHUNK * 2 {
                fx.emu.control("advance-clock", json!({"seconds": 7200}));
            }
        })
        .unwrap_err();
        assert!(
            err.to_string()
                .contains("the upload session on Google Drive expired"),
            "{err}"
        );
        assert!(fx.store.list().unwrap().is_empty());
        // A session that is gone before anything was acknowledged is simply started again.
        let inits = fx.emu.requests("upload_init");
        fx.emu
            .fault(json!({"route": "upload_chunk", "status": 404, "count": 1}));
        let data = blob(TEST_CHUNK * 2 + 5, 20);
        let b = upload(&fx.store, "small.mdbk", &data, &summary("00000008", 1));
        assert_eq!(read_all(&fx.store, &b).unwrap(), data);
        assert_eq!(fx.emu.requests("upload_init") - inits, 2);
    }

    #[test]
    fn the_visible_folder_is_created_once_and_found_again() {
        let emu = Emu::start(&[]);
        let tokens = emu.login(SCOPE_FILE);
        let state = tempfile::tempdir().unwrap();
        let store = emu.store(tokens.clone(), DriveLocation::Folder, state.path());
        assert_eq!(store.location(), "drive:folder");
        // Listing an account that has no folder yet creates nothing.
        assert!(store.list().unwrap().is_empty());
        assert!(emu.folders().is_empty());
        let b = upload(&store, "v.mdbk", b"visible", &summary("00000009", 1));
        store.write_file("driveback-key.pub", b"age1pub").unwrap();
        let folders = emu.folders();
        assert_eq!(folders.len(), 1);
        assert_eq!(folders[0]["name"], "Driveback Backups");
        assert_eq!(folders[0]["space"], "drive");
        // Renamed by the user: still found by its app property, by a new run and another device.
        let id = folders[0]["id"].as_str().unwrap();
        let r = emu
            .http
            .patch(emu.url(&format!("/drive/v3/files/{id}")))
            .bearer_auth(tokens.current())
            .json(&json!({"name": "My old backups"}))
            .send()
            .unwrap();
        assert!(r.status().is_success());
        let again = emu.store(emu.login(SCOPE_FILE), DriveLocation::Folder, state.path());
        assert_eq!(again.list().unwrap(), vec![b.clone()]);
        upload(&again, "w.mdbk", b"second", &summary("0000000a", 2));
        assert_eq!(
            again.read_file("driveback-key.pub").unwrap().unwrap(),
            b"age1pub"
        );
        assert_eq!(emu.folders().len(), 1);
        assert_eq!(again.list().unwrap().len(), 2);
        // The app data scope cannot use the visible folder: connect again, in one line.
        let appdata_only = emu.store(
            emu.login(SCOPE_APPDATA),
            DriveLocation::Folder,
            state.path(),
        );
        let err = appdata_only.list().unwrap_err();
        assert!(matches!(err, StoreError::Auth(_)), "{err:?}");
        assert!(err
            .to_string()
            .starts_with("Google Drive needs reconnecting:"));
    }

    #[test]
    fn listing_follows_every_page() {
        let fx = fixture();
        let drive = fx.emu.drive(&fx.tokens);
        let sha = sha256(b"c");
        // 1001 committed backups made elsewhere, and foreign files among them.
        for i in 0..1001u32 {
            let created = Utc.timestamp_opt(1_700_000_000 + i as i64 * 60, 0).unwrap();
            drive.create(
                json!({"name": format!("driveback-db-{i:04}.mdbk"), "parents": ["appDataFolder"],
                       "appProperties": {
                           "driveback": "backup", "format": "1", "backupId": format!("{i:08x}"),
                           "database": "db", "created": created.to_rfc3339(), "documents": "1",
                           "bytes": "1", "status": "complete", "sha256": sha}}),
                b"c",
            );
            if i % 250 == 0 {
                drive.create(
                    json!({"name": format!("foreign-{i}.txt"), "parents": ["appDataFolder"]}),
                    b"x",
                );
            }
        }
        let before = fx.emu.requests("list");
        let list = fx.store.list().unwrap();
        assert_eq!(fx.emu.requests("list") - before, 2);
        assert_eq!(list.len(), 1001);
        assert_eq!(list[0].id, format!("{:08x}", 1000));
        assert_eq!(list[1000].id, format!("{:08x}", 0));
        assert!(list.windows(2).all(|w| w[0].created > w[1].created));
        // With small pages, the same.
        let mut config = fx.emu.config(DriveLocation::AppData, fx.state.path());
        config.page_size = 97;
        let small = DriveStore::new(fx.tokens.clone(), config).unwrap();
        let before = fx.emu.requests("list");
        assert_eq!(small.list().unwrap(), list);
        assert_eq!(fx.emu.requests("list") - before, 11);
        assert_eq!(
            small.find("000003e8").unwrap().file,
            "driveback-db-1000.mdbk"
        );
    }

    #[test]
    fn a_download_cut_mid_file_resumes_where_it_stopped() {
        let emu = Emu::start(&[]);
        let proxy = CutProxy::start(emu.base());
        let tokens = emu.login(SCOPE_APPDATA);
        let state = tempfile::tempdir().unwrap();
        let mut config = emu.config(DriveLocation::AppData, state.path());
        config.endpoints = driveback_engine::auth::GoogleEndpoints::with_base(&proxy.base_url);
        let store = DriveStore::new(tokens, config).unwrap();
        let data = blob(3_000_000, 21);
        let b = upload(&store, "dl.mdbk", &data, &summary("0000000b", 1));
        proxy.cut_after(1_200_000);
        let mut reader = store.open(&b).unwrap();
        let mut out = Vec::new();
        reader.read_to_end(&mut out).unwrap();
        assert_eq!(out.len(), data.len());
        assert!(out == data);
        assert_eq!(proxy.cuts.load(Ordering::SeqCst), 1);
        assert_eq!(emu.requests("media"), 2);
    }

    #[test]
    fn a_download_that_keeps_failing_gives_up() {
        let fx = fixture();
        let b = upload(&fx.store, "f.mdbk", b"content", &summary("0000000c", 1));
        fx.emu
            .fault(json!({"route": "media", "status": 503, "count": 100}));
        let mut out = Vec::new();
        let err = fx
            .store
            .open(&b)
            .unwrap()
            .read_to_end(&mut out)
            .unwrap_err();
        assert!(
            err.to_string()
                == "could not download f.mdbk from Google Drive: Service Unavailable (HTTP 503 backendError; gave up after 6 tries)",
            "{err}"
        );
        assert_eq!(fx.emu.requests("media"), 6);
    }

    #[test]
    fn stale_upload_records_are_cleaned_up() {
        let fx = fixture();
        let mut sink = fx.store.create("killed.mdbk").unwrap();
        sink.write_all(&blob(TEST_CHUNK + 1, 22)).unwrap();
        std::mem::forget(sink);
        let records: Vec<PathBuf> = fs::read_dir(fx.state.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert_eq!(records.len(), 1);
        // A fresh record (maybe another process's live upload) is kept.
        let next = fx.next_run();
        assert_eq!(next.cleanup_incomplete().unwrap(), 0);
        assert!(records[0].exists());
        // Old and expired on the server: removed.
        make_old(&records[0]);
        fx.emu
            .control("advance-clock", json!({"seconds": 8 * 24 * 3600}));
        assert_eq!(next.cleanup_incomplete().unwrap(), 1);
        assert!(!records[0].exists());
    }
}
