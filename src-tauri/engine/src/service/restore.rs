//! Verify, restore in two steps, and save a copy.
//!
//! [`Service::prepare_restore`] shows what would be replaced and issues a one-time confirmation
//! token, with no side effects; [`Service::restore`] runs only with that token. The current data
//! is backed up first (on this device), and the result offers an undo token that restores that
//! safety backup.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use secrecy::ExposeSecret;
use serde::Serialize;

use super::{blocking, lock, BackupView, Service, TICKET_TTL};
use crate::container::{self, InputKind};
use crate::error::{ApiError, ApiResult, EngineError, ErrorCode};
use crate::jobs::{ExclusiveJob, JobKind, JobResult};
use crate::keys::BackupKey;
use crate::manifest::CollectionStatus;
use crate::notify::Event;
use crate::pipeline::{self, BackupOptions, RestoreOptions, Source};
use crate::progress::Step;
use crate::store::{RemoteStore, StoredBackup};

/// Safety backups kept on this device.
const SAFETY_BACKUPS_KEPT: usize = 3;

/// What a confirmed restore reads.
enum Origin {
    /// A backup at a destination (or a safety backup on this device).
    Stored {
        store: Arc<dyn RemoteStore>,
        backup: StoredBackup,
    },
    /// A file on this computer: a Driveback backup (opened with the ticket's key) or a plain
    /// mongodump archive; as it was when the plan read it (size and modification time).
    File {
        path: PathBuf,
        encrypted: bool,
        stamp: (u64, Option<std::time::SystemTime>),
    },
}

/// A file's size and modification time: a file that changed after its plan is not restored.
fn file_stamp(path: &std::path::Path) -> ApiResult<(u64, Option<std::time::SystemTime>)> {
    let meta = std::fs::metadata(path).map_err(|e| {
        ApiError::new(
            ErrorCode::IoError,
            format!("could not read {}: {e}", path.display()),
        )
    })?;
    Ok((meta.len(), meta.modified().ok()))
}

/// A restore the user was shown and may confirm (or the undo of one).
pub(crate) struct Ticket {
    origin: Origin,
    /// The backup's id (a file's name when it has none), for the notification.
    label: String,
    /// The key that opens the backup and encrypts the safety backup; none only for a plain
    /// archive restored into an empty database (no safety backup to encrypt).
    key: Option<BackupKey>,
    target_db: String,
    /// Restore only these (None: everything in the backup).
    collections: Option<Vec<String>>,
    /// Expected documents, for the progress percentage.
    documents: u64,
    /// Back up the current data first (off for an undo).
    safety_backup: bool,
    /// The collections the plan was built from (the manifest's): the restore acts on these only,
    /// and no more documents or bytes than they list.
    expected: Vec<crate::manifest::CollectionEntry>,
    issued: chrono::DateTime<chrono::Utc>,
}

#[derive(Clone, Debug, Serialize)]
pub struct CollectionCount {
    pub name: String,
    pub documents: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct VerifyView {
    pub id: String,
    pub documents: u64,
    pub collections: Vec<CollectionCount>,
}

#[derive(Serialize)]
pub struct PlannedCollection {
    pub name: String,
    /// "collection" or "view".
    pub kind: String,
    /// Documents in the backup.
    pub in_backup: u64,
    /// Documents in the database now (an estimate from the server); none if it does not exist.
    pub now: Option<u64>,
    /// False when the backup could not read this collection completely: it is not restored.
    pub restorable: bool,
}

/// What the user chose in a restore's "Advanced" part: another database to restore into, and
/// only some of the backup's collections.
#[derive(Clone, Debug, Default, serde::Deserialize)]
#[serde(default)]
pub struct RestoreChoices {
    pub target_db: Option<String>,
    pub collections: Option<Vec<String>>,
}

/// MongoDB's rules for a database name: not empty, none of `/\. "$` (nor NUL), under 64 bytes.
pub fn check_database_name(name: &str) -> ApiResult<()> {
    if name.is_empty() {
        return Err(ApiError::bad_input(
            "give the name of the database to restore into",
        ));
    }
    if let Some(c) = name.chars().find(|c| "/\\. \"$\0".contains(*c)) {
        return Err(ApiError::bad_input(format!(
            "a database name cannot hold {}: choose another name",
            match c {
                ' ' => "a space".to_string(),
                '\0' => "a NUL character".to_string(),
                c => format!("\"{c}\""),
            }
        )));
    }
    if name.len() >= 64 {
        return Err(ApiError::bad_input(
            "a database name must be shorter than 64 bytes: choose a shorter name",
        ));
    }
    Ok(())
}

/// What a backup holds, as a plan needs it.
struct Contents {
    collections: Vec<crate::manifest::CollectionEntry>,
    warnings: Vec<String>,
}

#[derive(Serialize)]
pub struct RestorePlan {
    /// Give this to `restore` to confirm. Valid once, for 15 minutes.
    pub token: String,
    pub backup: BackupView,
    pub target_db: String,
    pub host: Option<String>,
    /// What will be replaced (or created): the chosen collections.
    pub collections: Vec<PlannedCollection>,
    /// Every collection and view the backup holds (what may be chosen).
    pub available: Vec<String>,
    /// Where the backup was read from: "destination", or "file" (then `file` is its path).
    pub source: String,
    pub file: Option<String>,
    /// Collections of the database that are not in the backup: left as they are.
    pub untouched: Vec<String>,
    /// The current data is backed up first (when there is any).
    pub safety_backup: bool,
    pub warnings: Vec<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct RestoreView {
    pub database: String,
    pub collections: Vec<CollectionCount>,
    pub documents: u64,
    pub views: Vec<String>,
    pub warnings: Vec<String>,
    /// Restores the data as it was just before this restore (when a safety backup was taken).
    pub undo_token: Option<String>,
}

/// A backup exported as Extended JSON.
#[derive(Serialize)]
pub struct JsonExport {
    /// The folder made for it, inside the folder the user chose.
    pub folder: String,
    /// One file per collection, `<collection>.ejson`.
    pub files: Vec<String>,
    pub documents: u64,
}

#[derive(Serialize)]
pub struct Copied {
    pub path: String,
    pub bytes: u64,
}

/// Ends an exclusive job with `outcome`, announced to its followers.
/// What to test-restore, and where.
pub struct TestRestore {
    /// A backup id, a file name or `latest`.
    pub id: String,
    /// The destination (default: the configured one).
    pub dest: Option<String>,
    /// The server (default: the configured one).
    pub uri: Option<secrecy::SecretString>,
    /// The scratch database (default: `<db>_driveback_audit`).
    pub scratch: Option<String>,
    pub trigger: crate::history::Trigger,
}

/// The history's line for a restore test.
fn audit_record(
    outcome: &ApiResult<crate::audit::AuditReport>,
    trigger: crate::history::Trigger,
    started: chrono::DateTime<chrono::Utc>,
    ended: chrono::DateTime<chrono::Utc>,
) -> crate::history::RunRecord {
    use crate::audit::Verdict;
    use crate::history::{Outcome, RunError, RunKind, RunRecord};
    let (result, error, backup_id, database, documents) = match outcome {
        Ok(r) => (
            if r.verdict == Verdict::Passed {
                Outcome::Success
            } else {
                Outcome::Failed
            },
            match r.verdict {
                Verdict::Passed => None,
                Verdict::Failed => Some(RunError {
                    code: "verification_failed".into(),
                    message: r.problems.join("; "),
                }),
                Verdict::Skipped => Some(RunError {
                    code: crate::audit::SKIPPED_CODE.into(),
                    message: r.problems.join("; "),
                }),
            },
            Some(r.backup_id.clone()),
            Some(r.database.clone()),
            Some(r.collections.iter().map(|c| c.documents).sum()),
        ),
        Err(e) => (
            Outcome::Failed,
            Some(RunError {
                // What only the user can fix (the passphrase, the sign-in) skips the audit.
                code: if crate::schedule::needs_the_user(e.code.as_str()) {
                    crate::audit::SKIPPED_CODE.into()
                } else {
                    e.code.as_str().into()
                },
                message: e.message.clone(),
            }),
            None,
            None,
            None,
        ),
    };
    RunRecord {
        warnings: Vec::new(),
        job_id: format!("audit-{}", started.format("%Y%m%dT%H%M%S")),
        kind: RunKind::Audit,
        trigger,
        started,
        ended,
        outcome: result,
        database,
        dest: None,
        backup_id,
        bytes: None,
        documents,
        verified: None,
        pruned: None,
        error,
    }
}

fn end_with<T: Serialize>(job: ExclusiveJob, outcome: &ApiResult<T>) {
    job.end(match outcome {
        Ok(v) => JobResult::Finished {
            result: serde_json::to_value(v).unwrap_or_default(),
        },
        Err(e) => JobResult::Failed { error: e.clone() },
    });
}

impl Service {
    fn issue_ticket(&self, ticket: Ticket) -> String {
        let token = format!("{:032x}", rand::random::<u128>());
        let now = self.now();
        let mut tickets = lock(&self.inner.tickets);
        tickets.retain(|_, t| now - t.issued < TICKET_TTL);
        tickets.insert(token.clone(), ticket);
        token
    }

    /// Takes a confirmation token: each is good for one restore, for a limited time.
    fn take_ticket(&self, token: &str) -> ApiResult<Ticket> {
        let ticket = lock(&self.inner.tickets).remove(token);
        match ticket {
            Some(t) if self.now() - t.issued < TICKET_TTL => Ok(t),
            _ => Err(ApiError::new(
                ErrorCode::InvalidToken,
                "this restore was not confirmed, or the confirmation expired: choose the backup again",
            )),
        }
    }

    /// The backups at the destination, newest first. Blocking.
    pub fn list_backups(&self) -> ApiResult<Vec<BackupView>> {
        let list = self.store()?.list()?;
        Ok(list
            .iter()
            .enumerate()
            .map(|(i, b)| BackupView::new(b, i == 0))
            .collect())
    }

    /// Reads a whole backup as a job: decrypts it and checks every collection's count and
    /// checksum. Touches no database. `passphrase` is needed only when the key is not in this
    /// device's keyring. `started` hears the job's id before it runs (to follow it).
    pub async fn verify(
        &self,
        id: String,
        passphrase: Option<String>,
        started: impl FnOnce(&str),
    ) -> ApiResult<VerifyView> {
        let store = {
            let svc = self.clone();
            blocking(move || svc.store()).await?
        };
        let job = self.jobs().begin(JobKind::Verify)?;
        started(&job.id);
        let (svc, tracker) = (self.clone(), job.tracker.clone());
        let outcome = blocking(move || {
            // The key first: it confirms which backups are the user's own (their signatures).
            let key = svc.backup_key(store.as_ref(), passphrase)?;
            let backup = store.find(&id)?;
            tracker.begin_step(Step::Main, backup.documents);
            let source = Source::Stored {
                store,
                backup: backup.clone(),
                key,
            };
            let result = pipeline::verify(source, tracker.as_ref())?;
            Ok(VerifyView {
                id: backup.id,
                documents: result.collections.iter().map(|(_, s)| s.documents).sum(),
                collections: result
                    .collections
                    .into_iter()
                    .map(|(name, s)| CollectionCount {
                        name,
                        documents: s.documents,
                    })
                    .collect(),
            })
        })
        .await;
        end_with(job, &outcome);
        outcome
    }

    /// The audit by test restore: backup `id` (or `latest`) is restored into `scratch` (default
    /// `<db>_driveback_audit`) on the configured server, read back and compared, and the scratch
    /// database dropped (see [`crate::audit`]). Recorded in the history; a failed audit is told
    /// (desktop, email). A job like a verify: refused while another runs.
    pub async fn test_restore(
        &self,
        req: TestRestore,
        passphrase: Option<String>,
    ) -> ApiResult<crate::audit::AuditReport> {
        let TestRestore {
            id,
            dest,
            uri,
            scratch,
            trigger,
        } = req;
        let uri = match uri {
            Some(u) => u,
            None => self.require_mongo_uri()?,
        };
        let store = {
            let svc = self.clone();
            blocking(move || match dest {
                Some(d) => svc.open_dest(&d),
                None => svc.store(),
            })
            .await?
        };
        let job = self.jobs().begin(JobKind::Verify)?;
        let started = self.now();
        let found = {
            let (svc, store) = (self.clone(), store.clone());
            blocking(move || {
                let key = svc.backup_key(store.as_ref(), passphrase)?;
                Ok((store.find(&id)?, key))
            })
            .await
        };
        let outcome = match found {
            Ok((backup, key)) => {
                job.tracker.begin_step(Step::Main, backup.documents);
                let scratch =
                    scratch.unwrap_or_else(|| crate::audit::scratch_name(&backup.database));
                let source = Source::Stored {
                    store,
                    backup: backup.clone(),
                    key,
                };
                crate::audit::test_restore(
                    uri.expose_secret(),
                    source,
                    &backup.id,
                    &backup.database,
                    &scratch,
                    self.settings().restore.parallel as usize,
                    job.progress(),
                )
                .await
                .map_err(ApiError::from)
            }
            Err(e) => Err(e),
        };
        end_with(job, &outcome);
        // A scheduled audit with nothing to test yet waits for a backup, unrecorded.
        if trigger == crate::history::Trigger::Scheduled
            && matches!(&outcome, Err(e) if e.code == ErrorCode::NotFound)
        {
            return outcome;
        }
        let record = audit_record(&outcome, trigger, started, self.now());
        self.record_run(record.clone()).await;
        if matches!(&outcome, Ok(r) if r.verdict == crate::audit::Verdict::Failed) {
            self.tell(&Event::TestRestoreFailed { record });
        }
        outcome
    }

    /// The scheduled full read of the newest backup: like Verify, recorded in the history
    /// (`verify`); a backup that does not read back is told like a failed restore test.
    pub async fn scheduled_verify(&self) {
        let started = self.now();
        let outcome = self.verify("latest".into(), None, |_| {}).await;
        if matches!(&outcome, Err(e) if e.code == ErrorCode::Busy) {
            return;
        }
        let as_audit = outcome.map(|v| crate::audit::AuditReport {
            backup_id: v.id,
            database: String::new(),
            scratch_db: String::new(),
            verdict: crate::audit::Verdict::Passed,
            collections: v
                .collections
                .into_iter()
                .map(|c| crate::audit::AuditedCollection {
                    name: c.name,
                    documents: c.documents,
                    ok: true,
                })
                .collect(),
            problems: Vec::new(),
        });
        let mut record = audit_record(
            &as_audit,
            crate::history::Trigger::Scheduled,
            started,
            self.now(),
        );
        record.kind = crate::history::RunKind::Verify;
        record.database = self.database();
        tracing::info!(
            outcome = record.outcome.label(),
            "scheduled check of the newest backup"
        );
        let failed = record.error.as_ref().is_some_and(|e| {
            matches!(
                e.code.as_str(),
                "corrupt_backup" | "verification_failed" | "wrong_key" | "unsupported_format"
            )
        });
        self.record_run(record.clone()).await;
        if failed {
            self.tell(&Event::TestRestoreFailed { record });
        }
    }

    /// Starts the audit the settings call for, if one is due and nothing else runs.
    pub(crate) fn start_due_audit(&self, records: &[crate::history::RunRecord]) {
        let settings = self.settings();
        if self.database().is_none() || self.jobs().current().is_some() {
            return;
        }
        let Some(due) = crate::audit::due(records, &settings.audit, self.now()) else {
            return;
        };
        let svc = self.clone();
        tokio::spawn(async move {
            match due {
                crate::audit::Due::TestRestore => {
                    let r = svc
                        .test_restore(
                            TestRestore {
                                id: "latest".into(),
                                dest: None,
                                uri: None,
                                scratch: settings.audit.scratch_db.clone(),
                                trigger: crate::history::Trigger::Scheduled,
                            },
                            None,
                        )
                        .await;
                    match r {
                        Ok(r) => tracing::info!(verdict = ?r.verdict, "scheduled restore test"),
                        Err(e) => tracing::warn!("scheduled restore test: {}", e.message),
                    }
                }
                crate::audit::Due::Verify => svc.scheduled_verify().await,
            }
        });
    }

    /// What restoring backup `id` would do, read from the backup's manifest (this reads and
    /// decrypts the file) and the database; changes nothing. `choices` restores into another
    /// database, or only some collections.
    pub async fn prepare_restore(
        &self,
        id: String,
        passphrase: Option<String>,
        choices: RestoreChoices,
    ) -> ApiResult<RestorePlan> {
        let uri = self.require_mongo_uri()?;
        let (store, backup, key, manifest, latest) = {
            let svc = self.clone();
            blocking(move || {
                let store = svc.store()?;
                // The key first: it confirms which backups are the user's own (signatures).
                let key = svc.backup_key(store.as_ref(), passphrase)?;
                // One listing finds the backup and tells whether it is the newest.
                let list = store.list()?;
                // A file that is there but not the user's is named with why (`find`).
                let backup = match crate::store::pick(list.clone(), &id) {
                    Some(b) => b,
                    None => store.find(&id)?,
                };
                let latest = list.first().is_some_and(|b| b.id == backup.id);
                let manifest = container::read_manifest(store.open(&backup)?, key.identity())
                    .map_err(EngineError::from)?;
                pipeline::check_identity(&manifest, &backup)?;
                Ok((store, backup, key, manifest, latest))
            })
            .await?
        };
        let view = BackupView::new(&backup, latest);
        let label = backup.id.clone();
        self.plan_restore(
            &uri,
            Origin::Stored { store, backup },
            Some(key),
            view,
            label,
            contents_of(&manifest),
            choices,
            None,
        )
        .await
    }

    /// What restoring the file at `path` would do: a Driveback backup (a saved copy, the copy an
    /// email brought: the destination's key opens it, through the keyring or `passphrase`) or a
    /// plain `mongodump --archive` file (gzip or not). The whole file is read and checked first
    /// (a file that is not a backup, a wrong key, a truncated file are refused here); nothing
    /// changes. The token runs the restore like a backup's: staging, verify, swap, safety
    /// backup, undo.
    pub async fn prepare_restore_file(
        &self,
        path: String,
        passphrase: Option<String>,
        choices: RestoreChoices,
    ) -> ApiResult<RestorePlan> {
        let uri = self.require_mongo_uri()?;
        let path = PathBuf::from(path.trim());
        if !path.is_absolute() {
            return Err(ApiError::bad_input(
                "give the file's full path, starting with /",
            ));
        }
        if !path.is_file() {
            return Err(ApiError::new(
                ErrorCode::NotFound,
                format!("there is no file {}", path.display()),
            ));
        }
        let (view, label, contents, key, encrypted, stamp) = {
            let (svc, path, passphrase) = (self.clone(), path.clone(), passphrase.clone());
            blocking(move || {
                let stamp = file_stamp(&path)?;
                let encrypted = matches!(pipeline::file_kind(&path)?, InputKind::Backup);
                // A Driveback backup opens only with the destination's key.
                let key = if encrypted {
                    Some(svc.backup_key(svc.store()?.as_ref(), passphrase)?)
                } else {
                    None
                };
                let source = Source::File {
                    path: path.clone(),
                    key: key.clone(),
                };
                let (read, namespaces) = pipeline::inspect(source, &crate::progress::NoProgress)?;
                let name = path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let (view, label, contents) = match &read.manifest {
                    Some(m) => (
                        BackupView {
                            id: m.backup_id.clone(),
                            file: name,
                            bytes: stamp.0,
                            created: m.started_at,
                            database: m.database.clone(),
                            documents: m.total_documents(),
                            status: m.status,
                            latest: false,
                            from_history: false,
                            link: None,
                        },
                        m.backup_id.clone(),
                        contents_of(m),
                    ),
                    None => {
                        let (database, contents) = archive_contents(&read, &namespaces)?;
                        let created = std::fs::metadata(&path)
                            .and_then(|m| m.modified())
                            .map(chrono::DateTime::<chrono::Utc>::from)
                            .unwrap_or_else(|_| svc.now());
                        (
                            BackupView {
                                id: String::new(),
                                file: name.clone(),
                                bytes: stamp.0,
                                created,
                                database,
                                documents: contents.collections.iter().map(|c| c.documents).sum(),
                                status: crate::manifest::BackupStatus::Complete,
                                latest: false,
                                from_history: false,
                                link: None,
                            },
                            name,
                            contents,
                        )
                    }
                };
                Ok((view, label, contents, key, encrypted, stamp))
            })
            .await?
        };
        let file = path.display().to_string();
        self.plan_restore(
            &uri,
            Origin::File {
                path,
                encrypted,
                stamp,
            },
            key,
            view,
            label,
            contents,
            choices,
            Some((file, passphrase)),
        )
        .await
    }

    /// The plan and its ticket, for what `contents` lists and the user's `choices`. `file`: the
    /// path a file restore reads, and the passphrase given (a plain archive needs the key only
    /// for the safety backup, so only when the database has data).
    #[allow(clippy::too_many_arguments)]
    async fn plan_restore(
        &self,
        uri: &secrecy::SecretString,
        origin: Origin,
        mut key: Option<BackupKey>,
        view: BackupView,
        label: String,
        contents: Contents,
        choices: RestoreChoices,
        file: Option<(String, Option<String>)>,
    ) -> ApiResult<RestorePlan> {
        let target_db = match choices.target_db.map(|d| d.trim().to_string()) {
            Some(d) => {
                check_database_name(&d)?;
                d
            }
            None => self.database().unwrap_or_else(|| view.database.clone()),
        };
        let available: Vec<String> = contents
            .collections
            .iter()
            .map(|c| c.name.clone())
            .collect();
        if let Some(chosen) = &choices.collections {
            if chosen.is_empty() {
                return Err(ApiError::bad_input(
                    "choose at least one collection to restore",
                ));
            }
            if let Some(missing) = chosen.iter().find(|c| !available.contains(c)) {
                return Err(ApiError::bad_input(format!(
                    "the backup holds no collection {missing:?}"
                )));
            }
        }
        let is_chosen = |name: &str| {
            choices
                .collections
                .as_ref()
                .is_none_or(|c| c.iter().any(|n| n == name))
        };
        let current = self
            .mongo()
            .describe(uri.expose_secret(), &target_db)
            .await?;
        let collections: Vec<PlannedCollection> = contents
            .collections
            .iter()
            .filter(|c| is_chosen(&c.name))
            .map(|c| PlannedCollection {
                name: c.name.clone(),
                kind: c.kind.clone(),
                in_backup: c.documents,
                now: current
                    .iter()
                    .find(|l| l.name == c.name)
                    .and_then(|l| l.documents),
                restorable: matches!(c.status, CollectionStatus::Ok),
            })
            .collect();
        let untouched = current
            .iter()
            .filter(|i| !collections.iter().any(|c| c.name == i.name))
            .map(|i| i.name.clone())
            .collect();
        let mut warnings = Vec::new();
        if !collections.iter().all(|c| c.restorable) {
            warnings.push(
                "this backup is partial: collections it could not read completely are left as they are"
                    .to_string(),
            );
        }
        warnings.extend(contents.warnings);
        // Everything restored: a safety backup when the database has any data (as it always
        // was); only some collections: when one of them is there now.
        let safety_backup = match &choices.collections {
            None => !current.is_empty(),
            Some(_) => current
                .iter()
                .any(|l| collections.iter().any(|c| c.name == l.name)),
        };
        if safety_backup && key.is_none() {
            // A plain archive: the safety backup is encrypted with the destination's key.
            let passphrase = file.as_ref().and_then(|(_, p)| p.clone());
            let svc = self.clone();
            key = Some(blocking(move || svc.backup_key(svc.store()?.as_ref(), passphrase)).await?);
        }
        let documents = contents
            .collections
            .iter()
            .filter(|c| is_chosen(&c.name))
            .map(|c| c.documents)
            .sum();
        let source = match &file {
            Some(_) => "file",
            None => "destination",
        };
        let token = self.issue_ticket(Ticket {
            origin,
            label,
            key,
            target_db: target_db.clone(),
            collections: choices.collections.clone(),
            documents,
            safety_backup,
            expected: contents.collections,
            issued: self.now(),
        });
        Ok(RestorePlan {
            token,
            backup: view,
            target_db,
            host: self.uri_host(),
            collections,
            available,
            source: source.into(),
            file: file.map(|(f, _)| f),
            untouched,
            safety_backup,
            warnings,
        })
    }

    /// Replaces the target database's collections with the backup's, as confirmed by `token`
    /// (from [`Service::prepare_restore`], or the `undo_token` of an earlier restore), as a job.
    /// `started` hears the job's id before it runs.
    pub async fn restore(
        &self,
        token: String,
        started: impl FnOnce(&str),
    ) -> ApiResult<RestoreView> {
        let ticket = self.take_ticket(&token)?;
        let job = self.jobs().begin(JobKind::Restore)?;
        started(&job.id);
        let (database, backup_id) = (ticket.target_db.clone(), ticket.label.clone());
        let outcome = self.run_restore(ticket, &job).await;
        if let Err(e) = &outcome {
            tracing::warn!(code = %e.code, "restore failed: {}", e.message);
        }
        end_with(job, &outcome);
        self.tell(&Event::RestoreFinished {
            database,
            backup_id,
            ok: outcome.is_ok(),
            message: outcome
                .as_ref()
                .err()
                .map(|e| e.message.clone())
                .unwrap_or_default(),
        });
        outcome
    }

    async fn run_restore(&self, ticket: Ticket, job: &ExclusiveJob) -> ApiResult<RestoreView> {
        let uri = self.require_mongo_uri()?;
        let sink = job.progress();
        let mut undo = None;
        let missing_key = || ApiError::internal("a restore ticket without its key");
        if ticket.safety_backup {
            let key = ticket.key.as_ref().ok_or_else(missing_key)?;
            job.tracker.begin_step(Step::SafetyBackup, 0);
            let safety = self.safety_store();
            let opts = BackupOptions {
                database: ticket.target_db.clone(),
                zstd_level: 3,
                expected_documents: None,
                listed: None,
                started_at: None,
                signer: Some(Arc::new(crate::authenticity::Signer::for_key(key))),
                cancel: None,
                incremental: None,
                lock: None,
            };
            let taken = self
                .mongo()
                .backup(
                    uri.expose_secret(),
                    &opts,
                    safety.clone(),
                    key.recipient(),
                    sink.clone(),
                )
                .await
                .map_err(|e| {
                    let e = ApiError::from(e);
                    ApiError::new(
                        e.code,
                        format!(
                            "nothing was changed: the safety backup of the current data failed ({})",
                            e.message
                        ),
                    )
                })?;
            undo = Some((
                safety,
                taken.backup,
                taken.manifest.total_documents(),
                taken.manifest.collections,
            ));
        }
        job.tracker.begin_step(Step::Main, ticket.documents);
        let opts = RestoreOptions {
            target_db: ticket.target_db.clone(),
            collections: ticket.collections.clone(),
            expected: Some(ticket.expected.clone()),
            parallel: self.settings().restore.parallel as usize,
        };
        let source = match &ticket.origin {
            Origin::Stored { store, backup } => Source::Stored {
                store: store.clone(),
                backup: backup.clone(),
                key: ticket.key.clone().ok_or_else(missing_key)?,
            },
            Origin::File {
                path,
                encrypted,
                stamp,
            } => {
                // The file the user was shown, not one put in its place since.
                let now = {
                    let path = path.clone();
                    blocking(move || file_stamp(&path)).await?
                };
                if now != *stamp {
                    return Err(ApiError::bad_input(format!(
                        "{} changed after the restore was prepared: nothing was changed; choose the file again",
                        path.display()
                    )));
                }
                Source::File {
                    path: path.clone(),
                    key: if *encrypted { ticket.key.clone() } else { None },
                }
            }
        };
        let result = self
            .mongo()
            .restore(uri.expose_secret(), source, &opts, sink)
            .await?;
        let undo_token = match undo {
            Some((safety, backup, documents, expected)) => {
                prune_safety_backups(&safety).await;
                // Only some collections restored: the undo puts back those of them that were
                // there, and leaves the others as they are now.
                let collections = ticket.collections.as_ref().map(|chosen| {
                    expected
                        .iter()
                        .filter(|c| chosen.contains(&c.name))
                        .map(|c| c.name.clone())
                        .collect::<Vec<_>>()
                });
                let documents = match &collections {
                    None => documents,
                    Some(names) => expected
                        .iter()
                        .filter(|c| names.contains(&c.name))
                        .map(|c| c.documents)
                        .sum(),
                };
                Some(self.issue_ticket(Ticket {
                    label: backup.id.clone(),
                    origin: Origin::Stored {
                        store: safety,
                        backup,
                    },
                    key: ticket.key,
                    target_db: ticket.target_db,
                    collections,
                    documents,
                    safety_backup: false,
                    expected,
                    issued: self.now(),
                }))
            }
            None => None,
        };
        let r = result.report;
        Ok(RestoreView {
            database: r.database,
            documents: r.collections.iter().map(|c| c.documents).sum(),
            collections: r
                .collections
                .into_iter()
                .map(|c| CollectionCount {
                    name: c.name,
                    documents: c.documents,
                })
                .collect(),
            views: r.views,
            warnings: r.warnings,
            undo_token,
        })
    }

    /// Copies a backup's encrypted file into `folder` (it stays encrypted: the passphrase or the
    /// key opens it, e.g. with `driveback restore --backup FILE`). For an increment of the
    /// incremental layout, every file of its chain (docs/FORMAT.md rebuilds it). Blocking.
    pub fn save_copy(&self, id: &str, folder: &str) -> ApiResult<Copied> {
        let folder = PathBuf::from(folder.trim());
        if !folder.is_absolute() {
            return Err(ApiError::bad_input(
                "give the folder's full path, starting with /",
            ));
        }
        let store = self.store()?;
        let backup = store.find(id)?;
        let io = |what: &str, e: std::io::Error| {
            ApiError::new(
                ErrorCode::IoError,
                format!("could not {what} in {}: {e}", folder.display()),
            )
        };
        std::fs::create_dir_all(&folder).map_err(|e| io("create the folder", e))?;
        // An increment is of no use alone: its whole chain is copied, full backup first.
        let files = if backup.is_increment() {
            pipeline::chain_files(&store.list()?, &backup)?
        } else {
            vec![backup.clone()]
        };
        let mut copied = 0;
        for file in &files {
            let path = folder.join(&file.file);
            let tmp = folder.join(format!(".{}.partial", file.file));
            let mut reader = store.open(file)?;
            let mut out = std::fs::File::create(&tmp).map_err(|e| io("write the copy", e))?;
            copied += std::io::copy(&mut reader, &mut out).map_err(|e| {
                let _ = std::fs::remove_file(&tmp);
                ApiError::from(EngineError::io("copying the backup", e))
            })?;
            out.flush().map_err(|e| io("write the copy", e))?;
            drop(out);
            std::fs::rename(&tmp, &path).map_err(|e| io("write the copy", e))?;
        }
        Ok(Copied {
            path: folder.join(&backup.file).display().to_string(),
            bytes: copied,
        })
    }
}

/// What a Driveback backup holds, from its manifest.
fn contents_of(manifest: &crate::manifest::Manifest) -> Contents {
    let mut warnings = Vec::new();
    if !manifest.point_in_time {
        warnings.push(format!("this backup is {}", manifest.consistency));
    }
    Contents {
        collections: manifest.collections.clone(),
        warnings,
    }
}

/// What a plain mongodump archive holds, as it was read (every collection complete, its CRC
/// checked): its database and its collections and views. An archive of several databases is
/// refused (its collections would be mixed in one).
fn archive_contents(
    read: &pipeline::VerifyResult,
    namespaces: &[crate::archive::Namespace],
) -> ApiResult<(String, Contents)> {
    let namespaces: Vec<_> = namespaces
        .iter()
        .filter(|ns| !ns.collection.starts_with("system."))
        .collect();
    let mut databases: Vec<&str> = namespaces.iter().map(|ns| ns.db.as_str()).collect();
    databases.dedup();
    databases.sort_unstable();
    databases.dedup();
    let database = match databases.as_slice() {
        [] => {
            return Err(ApiError::bad_input(
                "this archive holds no collections: there is nothing to restore",
            ))
        }
        [one] => one.to_string(),
        several => {
            return Err(ApiError::bad_input(format!(
                "this archive holds {} databases ({}): Driveback restores one; make the archive with mongodump --db",
                several.len(),
                several.join(", ")
            )))
        }
    };
    let collections = namespaces
        .iter()
        .map(|ns| {
            let seen = read
                .collections
                .iter()
                .find(|(name, _)| name == &ns.collection)
                .map(|(_, s)| *s)
                .unwrap_or_default();
            crate::manifest::CollectionEntry {
                name: ns.collection.clone(),
                kind: if ns.kind == "view" {
                    "view"
                } else {
                    "collection"
                }
                .into(),
                documents: seen.documents,
                bytes: seen.bytes,
                crc64: format!("{:016x}", seen.crc),
                status: CollectionStatus::Ok,
            }
        })
        .collect();
    Ok((
        database,
        Contents {
            collections,
            warnings: Vec::new(),
        },
    ))
}

impl Service {
    /// Writes backup `id` as canonical Extended JSON v2, one `<collection>.ejson` file per
    /// collection (one document a line), into a new folder inside `folder` named after the
    /// backup (`driveback-<db>-<time>-<id>-json`). Blocking.
    ///
    /// A new folder rather than `folder` itself: a chosen folder (Downloads, Documents) often
    /// holds other files, and collection names are common words (`users.ejson`); the export's
    /// own folder never mixes with them, keeps one backup's files together, and says which
    /// backup they are. If that folder exists already (an earlier export of the same backup),
    /// nothing is overwritten: the export is refused. It is written under a hidden name and
    /// renamed once complete, so a failed export leaves nothing half written.
    pub fn export_json(
        &self,
        id: &str,
        folder: &str,
        passphrase: Option<String>,
    ) -> ApiResult<JsonExport> {
        let folder = PathBuf::from(folder.trim());
        if !folder.is_absolute() {
            return Err(ApiError::bad_input(
                "give the folder's full path, starting with /",
            ));
        }
        if !folder.is_dir() {
            return Err(ApiError::new(
                ErrorCode::NotFound,
                format!("there is no folder {}", folder.display()),
            ));
        }
        let store = self.store()?;
        // The key first: it confirms which backups are the user's own (signatures).
        let key = self.backup_key(store.as_ref(), passphrase)?;
        let backup = store.find(id)?;
        let name = format!(
            "{}-json",
            backup
                .file
                .strip_suffix(&format!(".{}", crate::manifest::BACKUP_EXTENSION))
                .or_else(|| {
                    backup
                        .file
                        .strip_suffix(&format!(".{}", crate::manifest::INCREMENT_EXTENSION))
                })
                .unwrap_or(&backup.file)
        );
        let out = folder.join(&name);
        if out.exists() {
            return Err(ApiError::new(
                ErrorCode::BadInput,
                format!(
                    "{} already exists: nothing was overwritten; choose another folder, or move that one away",
                    out.display()
                ),
            ));
        }
        let tmp = folder.join(format!(".{name}.partial"));
        let _ = std::fs::remove_dir_all(&tmp);
        let source = Source::Stored { store, backup, key };
        let done = pipeline::export_to(
            source,
            &tmp,
            pipeline::ExportFormat::Ejson,
            &crate::progress::NoProgress,
        )
        .and_then(|r| {
            std::fs::rename(&tmp, &out)
                .map_err(|e| EngineError::io(format!("writing {}", out.display()), e))?;
            Ok(r)
        });
        let result = match done {
            Ok(r) => r,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&tmp);
                return Err(e.into());
            }
        };
        let mut files: Vec<String> = std::fs::read_dir(&out)
            .map_err(|e| ApiError::from(EngineError::io(format!("reading {}", out.display()), e)))?
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        files.sort();
        Ok(JsonExport {
            folder: out.display().to_string(),
            files,
            documents: result.collections.iter().map(|(_, s)| s.documents).sum(),
        })
    }
}

async fn prune_safety_backups(store: &Arc<dyn RemoteStore>) {
    let store = store.clone();
    let _ = blocking(move || {
        for old in store.list()?.iter().skip(SAFETY_BACKUPS_KEPT) {
            store.delete(old)?;
        }
        Ok(())
    })
    .await
    .map_err(|e| tracing::warn!("could not prune safety backups: {}", e.message));
}
