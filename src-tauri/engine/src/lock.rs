//! The lock that keeps two Driveback processes, on two machines, from writing one database's
//! chain at one destination at the same time (docs/INCREMENTAL.md, "The lock for two
//! machines"). Destinations have no create-if-absent, so the lock is a protocol over plain side
//! files, as restic and Kopia do it:
//!
//! 1. Write `driveback-<db>.lock-<yyyymmddThhmmssZ>-<8 random hex>`: when this process took
//!    the lock, by its clock, and a random id (no host name: the destination sees the file). A
//!    record of it, file-locked while the process lives, stays on this machine: a lock left by
//!    a killed process of this machine is removed at once by the next one.
//! 2. List the database's lock files at once, and again just before the backup commits
//!    ([`LockCheck::confirm`]), at least [`settle`] after the lock file was written: two
//!    processes that wrote their files at the same moment and missed each other at first see
//!    each other then, and neither commits.
//! 3. A lock file the destination has not seen written for [`EXPIRY`] belongs to a process that
//!    died: it is deleted. Times come from the destination's clock (Drive's `modifiedTime`, the
//!    folder's mtimes), compared with this process's own lock file, so two machines' clocks do
//!    not matter.
//! 4. A process that sees any other live lock file deletes its own and stops: "another
//!    Driveback has been backing up this database here since ...". Two processes that raced
//!    both stop, never both go on; a scheduled backup tries again later, at its own moment.
//! 5. The winner rewrites its file every [`REFRESH`] while it works and deletes it at the end
//!    ([`RemoteLock`]'s drop).
//!
//! Pure decisions ([`decide`]) take the listing and the time, and are tested with tables.

use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::EngineError;
use crate::store::{RemoteStore, SideFile};

/// A lock file not written for this long belongs to a process that died.
pub const EXPIRY: chrono::Duration = chrono::Duration::minutes(30);
/// How often a held lock is written again.
pub const REFRESH: Duration = Duration::from_secs(5 * 60);

/// How long to wait between writing the lock file and listing the others: two seconds, or
/// `DRIVEBACK_LOCK_SETTLE_MS` (the tests' shorter wait).
pub fn settle() -> Duration {
    std::env::var("DRIVEBACK_LOCK_SETTLE_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .map(Duration::from_millis)
        .unwrap_or(Duration::from_secs(2))
}

/// The lock files' names for `database` start with this.
pub fn prefix(database: &str) -> String {
    // The backup file names' form of the database name.
    let name = crate::manifest::backup_file_name(database, DateTime::<Utc>::UNIX_EPOCH, "00000000");
    let db = name
        .strip_prefix("driveback-")
        .and_then(|n| n.strip_suffix("-19700101T000000Z-00000000.mdbk"))
        .unwrap_or("_");
    format!("driveback-{db}.lock-")
}

/// What a lock file holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockBody {
    /// When the process took the lock, by its own clock: the order every process agrees on.
    pub started: DateTime<Utc>,
}

/// One lock file as listed and read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listed {
    pub file: SideFile,
    /// `None`: unreadable (being written, or not a lock): it is ordered by its time.
    pub body: Option<LockBody>,
}

/// What [`decide`] says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    /// Lock files of processes that died, to delete.
    pub expired: Vec<String>,
    /// `None`: no other live lock. `Some(since)`: another process holds one, since then.
    pub held_by_other: Option<DateTime<Utc>>,
    /// Whether this process's own lock file was listed (just after it is written, a destination
    /// may not show it yet; later, a missing one was deleted as expired by another process).
    pub own_listed: bool,
}

/// What the lock files `all` say to the process whose lock file is `mine`. Ages are measured
/// against `mine`'s time at the destination, or `now` when it is not listed. Pure.
pub fn decide(mine: &str, all: &[Listed], now: DateTime<Utc>) -> Decision {
    let own = all.iter().find(|l| l.file.name == mine);
    let now = own.map(|l| l.file.modified).unwrap_or(now);
    let (expired, live): (Vec<&Listed>, Vec<&Listed>) = all
        .iter()
        .filter(|l| l.file.name != mine)
        .partition(|l| l.file.modified < now - EXPIRY);
    // Any other live lock stops this process. Two processes that wrote their files at the same
    // moment both stop (and try again later) rather than trust an order of clocks and names: one
    // of them may have gone on before the other's file existed.
    let since = |l: &Listed| {
        l.body
            .as_ref()
            .map(|b| b.started)
            .unwrap_or(l.file.modified)
    };
    Decision {
        expired: expired.iter().map(|l| l.file.name.clone()).collect(),
        held_by_other: live.iter().map(|l| since(l)).min(),
        own_listed: own.is_some(),
    }
}

/// A lock held at a destination; released (its file deleted) when dropped.
pub struct RemoteLock {
    store: Arc<dyn RemoteStore>,
    name: String,
    stop: Option<mpsc::Sender<()>>,
    refresher: Option<std::thread::JoinHandle<()>>,
    record: Option<std::fs::File>,
    local: std::path::PathBuf,
    check: LockCheck,
}

impl std::fmt::Debug for RemoteLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RemoteLock({})", self.name)
    }
}

const NAME_TIME: &str = "%Y%m%dT%H%M%SZ";

/// Takes the lock of `database` at `store`, or says who holds it (the first look; the second is
/// [`LockCheck::confirm`], before the commit). `local` is this machine's
/// folder of lock records (`<data dir>/locks`): each lock this machine takes has a record there,
/// file-locked while its process lives, so that a lock left at the destination by a process of
/// this machine that was killed is recognised at once rather than after [`EXPIRY`]. Blocking.
pub fn acquire(
    store: Arc<dyn RemoteStore>,
    database: &str,
    local: &std::path::Path,
) -> Result<RemoteLock, EngineError> {
    use rand::RngCore;
    let mut id = [0u8; 4];
    rand::rngs::OsRng.fill_bytes(&mut id);
    let prefix = prefix(database);
    let started = Utc::now();
    let name = format!("{prefix}{}-{}", started.format(NAME_TIME), hex::encode(id));
    let record = hold_record(local, &name)?;
    let body = serde_json::to_vec(&LockBody { started }).expect("a lock body serialises");
    if let Err(e) = store.create_side_file(&name, &body) {
        drop(record);
        let _ = std::fs::remove_file(local.join(&name));
        return Err(e.into());
    }
    let check = LockCheck {
        store: store.clone(),
        name: name.clone(),
        prefix,
        local: local.to_path_buf(),
        database: database.to_string(),
        written: std::time::Instant::now(),
    };
    // The first look goes at once: a process already at work is seen now. Two processes that
    // start together may miss each other's file here; `confirm` looks again before the commit,
    // after the destination has had time to show it.
    if let Err(e) = check.look(false) {
        drop(record);
        let _ = std::fs::remove_file(local.join(&name));
        return Err(e);
    }
    let (stop, stopped) = mpsc::channel::<()>();
    let refresher = {
        let (store, name) = (store.clone(), name.clone());
        std::thread::spawn(move || {
            while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(REFRESH) {
                if let Err(e) = store.write_file(&name, &body) {
                    tracing::warn!(error = %e, "could not refresh the lock at the destination");
                }
            }
        })
    };
    Ok(RemoteLock {
        store,
        name,
        stop: Some(stop),
        refresher: Some(refresher),
        record: Some(record),
        local: local.to_path_buf(),
        check,
    })
}

/// Looks at the destination's lock files for one held lock: at once when it is taken, and
/// again just before the backup commits ([`LockCheck::confirm`]).
#[derive(Clone)]
pub struct LockCheck {
    store: Arc<dyn RemoteStore>,
    name: String,
    prefix: String,
    local: std::path::PathBuf,
    database: String,
    written: std::time::Instant,
}

impl LockCheck {
    /// Before the commit: once [`settle`] has passed since the lock file was written (the
    /// backup's own work usually took longer), the lock files are listed again; any other live
    /// one stops the backup before it commits (its lock file is then deleted when the lock is
    /// released). Blocking.
    pub fn confirm(&self) -> Result<(), EngineError> {
        if let Some(rest) = settle().checked_sub(self.written.elapsed()) {
            std::thread::sleep(rest);
        }
        self.look(true)
    }

    /// Lists the lock files, deletes dead ones, and fails if another live one is there (its own
    /// file is then deleted).
    fn look(&self, own_must_show: bool) -> Result<(), EngineError> {
        let (store, name, local) = (&self.store, &self.name, self.local.as_path());
        let mut decision = match list(store.as_ref(), &self.prefix) {
            Ok(listed) => {
                // Locks of this machine's processes that died: their records are no longer held.
                let dead: Vec<String> = listed
                    .iter()
                    .filter(|l| &l.file.name != name && record_is_dead(local, &l.file.name))
                    .map(|l| l.file.name.clone())
                    .collect();
                let alive: Vec<Listed> = listed
                    .into_iter()
                    .filter(|l| !dead.contains(&l.file.name))
                    .collect();
                let mut d = decide(name, &alive, Utc::now());
                d.expired.extend(dead);
                d
            }
            Err(e) => {
                let _ = store.delete_side_file(name);
                return Err(e);
            }
        };
        decision.expired.sort();
        for expired in &decision.expired {
            tracing::info!(file = %expired, "removing the lock of a Driveback that stopped");
            match store.delete_side_file(expired) {
                Ok(()) => {
                    let _ = std::fs::remove_file(local.join(expired));
                }
                Err(e) => {
                    tracing::warn!(file = %expired, error = %e, "could not remove an expired lock")
                }
            }
        }
        if own_must_show && !decision.own_listed {
            return Err(EngineError::Busy(format!(
                "the lock of this backup of {} at {} was removed by another Driveback (it took more than 30 minutes without refreshing it): try again",
                self.database,
                store.location()
            )));
        }
        if let Some(since) = decision.held_by_other {
            let _ = store.delete_side_file(name);
            return Err(EngineError::Busy(format!(
                "another Driveback has been backing up {} at {} since {}: try again once it is done (automatic backups try again on their own)",
                self.database,
                store.location(),
                since.format("%Y-%m-%d %H:%M UTC")
            )));
        }
        Ok(())
    }
}

impl RemoteLock {
    /// What looks at the lock files again before the commit.
    pub fn check(&self) -> LockCheck {
        self.check.clone()
    }
}

/// This machine's record of a lock it takes, file-locked for as long as the process lives.
fn hold_record(local: &std::path::Path, name: &str) -> Result<std::fs::File, EngineError> {
    let io = |e| EngineError::io(format!("recording the lock in {}", local.display()), e);
    std::fs::create_dir_all(local).map_err(io)?;
    let f = std::fs::File::create(local.join(name)).map_err(io)?;
    f.lock().map_err(io)?;
    Ok(f)
}

/// Whether `name` is a lock this machine took whose process is gone (its record is there and
/// no longer file-locked).
fn record_is_dead(local: &std::path::Path, name: &str) -> bool {
    let Ok(f) = std::fs::File::open(local.join(name)) else {
        return false;
    };
    matches!(f.try_lock_shared(), Ok(()))
}

/// The lock files of a database, each with the start time its name holds.
fn list(store: &dyn RemoteStore, prefix: &str) -> Result<Vec<Listed>, EngineError> {
    Ok(store
        .list_side_files(prefix)?
        .into_iter()
        .map(|file| {
            let body = file
                .name
                .strip_prefix(prefix)
                .and_then(|rest| rest.split_once('-'))
                .and_then(|(time, _)| chrono::NaiveDateTime::parse_from_str(time, NAME_TIME).ok())
                .map(|t| LockBody {
                    started: t.and_utc(),
                });
            Listed { file, body }
        })
        .collect())
}

impl Drop for RemoteLock {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.refresher.take() {
            let _ = t.join();
        }
        match self.store.delete_side_file(&self.name) {
            Ok(()) => {
                drop(self.record.take());
                let _ = std::fs::remove_file(self.local.join(&self.name));
            }
            // The record stays: once this process is gone, the next backup here removes the lock.
            Err(e) => tracing::warn!(file = %self.name, error = %e, "could not remove the lock"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        format!("2026-12-06T{s}:00Z").parse().unwrap()
    }

    fn lock(name: &str, written: &str, started: Option<&str>) -> Listed {
        Listed {
            file: SideFile {
                name: name.into(),
                modified: t(written),
            },
            body: started.map(|s| LockBody { started: t(s) }),
        }
    }

    #[test]
    fn any_other_live_lock_stops_a_process_and_dead_ones_go() {
        // (mine, listed, expired, held by another since)
        let cases: Vec<(&str, Vec<Listed>, Vec<&str>, Option<&str>)> = vec![
            ("a", vec![lock("a", "10:00", Some("10:00"))], vec![], None),
            // Another is alive: it holds the lock.
            (
                "b",
                vec![
                    lock("a", "09:50", Some("09:45")),
                    lock("b", "10:00", Some("10:00")),
                ],
                vec![],
                Some("09:45"),
            ),
            // The same from the other side: whoever sees another's live file stops (in a race,
            // both do; neither goes on).
            (
                "a",
                vec![
                    lock("a", "09:50", Some("09:45")),
                    lock("b", "10:00", Some("10:00")),
                ],
                vec![],
                Some("10:00"),
            ),
            // Not written for more than 30 minutes by the destination's clock: dead, deleted,
            // whatever its own clock said.
            (
                "b",
                vec![
                    lock("a", "09:29", Some("09:00")),
                    lock("b", "10:00", Some("10:00")),
                ],
                vec!["a"],
                None,
            ),
            (
                "b",
                vec![
                    lock("a", "09:30", Some("09:00")),
                    lock("b", "10:00", Some("10:00")),
                ],
                vec![],
                Some("09:00"),
            ),
            // The same start time: no order is trusted, both stop.
            (
                "a",
                vec![
                    lock("a", "10:00", Some("10:00")),
                    lock("b", "10:00", Some("10:00")),
                ],
                vec![],
                Some("10:00"),
            ),
            // A file whose name holds no time counts by when it was written.
            (
                "b",
                vec![lock("a", "09:59", None), lock("b", "10:00", Some("10:00"))],
                vec![],
                Some("09:59"),
            ),
        ];
        for (i, (mine, listed, expired, other)) in cases.into_iter().enumerate() {
            let d = decide(mine, &listed, t("23:00"));
            assert_eq!(d.expired, expired, "case {i}");
            assert_eq!(d.held_by_other, other.map(t), "case {i}");
            assert!(d.own_listed, "case {i}");
        }
        // Our own file not listed (not shown yet, or deleted as expired by another): ages are
        // measured against the time given, and the caller is told.
        let d = decide(
            "z",
            &[
                lock("a", "10:00", Some("10:00")),
                lock("b", "09:00", Some("09:00")),
            ],
            t("10:01"),
        );
        assert_eq!(d.expired, ["b"]);
        assert_eq!(d.held_by_other, Some(t("10:00")));
        assert!(!d.own_listed);
    }

    #[test]
    fn lock_names_follow_the_backup_names() {
        assert_eq!(prefix("timetrack"), "driveback-timetrack.lock-");
        assert_eq!(prefix("a b/c"), "driveback-a_b_c.lock-");
    }
}
