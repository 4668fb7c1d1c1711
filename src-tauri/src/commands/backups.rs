//! Backup Now, the list of backups, verify and "save a copy".

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use driveback_engine::history::Trigger;
use driveback_engine::keys::KeyRing;
use driveback_engine::manifest::BackupStatus;
use driveback_engine::pipeline::{self, Source};
use driveback_engine::store::StoredBackup;
use serde::Serialize;
use tauri::ipc::Channel;
use tauri::State;

use super::blocking;
use super::passphrase::{backup_key, GivenPassphrase};
use crate::bridge::{JobEvent, JobKind};
use crate::error::{ApiError, ApiResult};
use crate::jobs::{busy, JobGuard};
use crate::state::{AppState, Shared};

/// A backup as the list shows it.
#[derive(Clone, Debug, Serialize)]
pub struct BackupView {
    pub id: String,
    pub file: String,
    pub bytes: u64,
    pub created: DateTime<Utc>,
    pub database: String,
    pub documents: u64,
    pub status: BackupStatus,
    pub latest: bool,
}

impl BackupView {
    pub fn new(b: &StoredBackup, latest: bool) -> Self {
        Self {
            id: b.id.clone(),
            file: b.file.clone(),
            bytes: b.bytes,
            created: b.created,
            database: b.database.clone(),
            documents: b.documents,
            status: b.status,
            latest,
        }
    }
}

#[derive(Serialize)]
pub struct JobStarted {
    pub job_id: String,
    /// A backup was already running: this call joined it.
    pub attached: bool,
}

/// Starts a backup and returns at once; progress and the outcome arrive on `on_event`. While a
/// backup runs (Backup Now or a scheduled one), this joins it instead of starting another.
#[tauri::command]
pub async fn backup_now(
    state: State<'_, Shared>,
    on_event: Channel<JobEvent>,
) -> ApiResult<JobStarted> {
    let backups = state.backups()?;
    if backups.current().is_none() {
        if let Some(other) = state.jobs.current() {
            return Err(busy(other.kind));
        }
        // What a backup needs is checked here, so that the UI hears of it at once.
        let shared = state.inner().clone();
        blocking(move || plan_backup(&shared).map(|_| ())).await?;
    }
    let handle = backups.start(Trigger::Manual);
    state.jobs.follow_backup(&handle.id, on_event);
    Ok(JobStarted {
        job_id: handle.id,
        attached: handle.attached,
    })
}

/// Follows the running backup (Backup Now or a scheduled one), if one runs; starts nothing.
#[tauri::command]
pub fn follow_backup(
    state: State<'_, Shared>,
    on_event: Channel<JobEvent>,
) -> ApiResult<Option<JobStarted>> {
    Ok(state.backups()?.attach().map(|handle| {
        state.jobs.follow_backup(&handle.id, on_event);
        JobStarted {
            job_id: handle.id,
            attached: true,
        }
    }))
}

/// Everything a backup needs, checked before it starts.
pub struct BackupPlan {
    pub uri: secrecy::SecretString,
    pub database: String,
    pub store: Arc<dyn driveback_engine::store::RemoteStore>,
    pub recipient: age::x25519::Recipient,
}

/// Checks the database, the destination and its key (only the public half: making a backup
/// needs no passphrase). Blocking.
pub fn plan_backup(state: &AppState) -> ApiResult<BackupPlan> {
    let uri = state.require_mongo_uri()?;
    let database = state.require_database()?;
    let store = state.store()?;
    let recipient = KeyRing::new(store.as_ref(), None, &GivenPassphrase(None))
        .recipient()?
        .ok_or_else(|| {
            ApiError::new(
                "no_key",
                "set the passphrase that protects your backups before the first backup",
            )
        })?;
    Ok(BackupPlan {
        uri,
        database,
        store,
        recipient,
    })
}

/// Stops the running backup: nothing of it is kept at the destination. A verify or a restore
/// cannot be stopped half way.
#[tauri::command]
pub fn cancel_job(state: State<'_, Shared>, job_id: String) -> ApiResult<bool> {
    if state.backups()?.cancel(Some(&job_id)) {
        return Ok(true);
    }
    match state.jobs.current() {
        Some(j) if j.id == job_id && j.kind != JobKind::Backup => Err(ApiError::new(
            "not_cancellable",
            "a restore or a verification cannot be stopped half way; wait for it to finish",
        )),
        _ => Ok(false),
    }
}

/// The backups at the destination, newest first.
#[tauri::command]
pub async fn list_backups(state: State<'_, Shared>) -> ApiResult<Vec<BackupView>> {
    let store = super::store_of(state.inner()).await?;
    blocking(move || {
        let list = store.list()?;
        Ok(list
            .iter()
            .enumerate()
            .map(|(i, b)| BackupView::new(b, i == 0))
            .collect())
    })
    .await
}

#[derive(Serialize)]
pub struct CollectionCount {
    pub name: String,
    pub documents: u64,
}

#[derive(Serialize)]
pub struct VerifyView {
    pub id: String,
    pub documents: u64,
    pub collections: Vec<CollectionCount>,
}

/// Reads a whole backup: decrypts it and checks every collection's count and checksum. Touches
/// no database. `passphrase` is needed only when the key is not in this device's keyring.
#[tauri::command]
pub async fn verify_backup(
    state: State<'_, Shared>,
    id: String,
    passphrase: Option<String>,
    on_event: Channel<JobEvent>,
) -> ApiResult<VerifyView> {
    let store = super::store_of(state.inner()).await?;
    let progress = state.start_exclusive(JobKind::Verify, on_event)?;
    let _guard = JobGuard {
        jobs: &state.jobs,
        id: progress.job_id.clone(),
    };
    let shared = state.inner().clone();
    let p = progress.clone();
    let outcome = blocking(move || {
        let backup = store.find(&id)?;
        let key = backup_key(&shared, store.as_ref(), passphrase)?;
        p.begin_step(crate::bridge::Step::Main, backup.documents);
        let source = Source::Stored {
            store,
            backup: backup.clone(),
            key,
        };
        let result = pipeline::verify(source, p.as_ref())?;
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
    match &outcome {
        Ok(v) => progress.finished(serde_json::to_value(v).unwrap_or_default()),
        Err(e) => progress.failed(e.clone()),
    }
    outcome
}

#[derive(Serialize)]
pub struct Copied {
    pub path: String,
    pub bytes: u64,
}

/// Copies a backup's encrypted file into `folder` (it stays encrypted: the passphrase or the key
/// opens it, e.g. with `driveback restore --backup FILE`).
#[tauri::command]
pub async fn save_copy(state: State<'_, Shared>, id: String, folder: String) -> ApiResult<Copied> {
    let store = super::store_of(state.inner()).await?;
    let folder = PathBuf::from(folder.trim());
    if !folder.is_absolute() {
        return Err(ApiError::new(
            "bad_input",
            "give the folder's full path, starting with /",
        ));
    }
    blocking(move || {
        let backup = store.find(&id)?;
        let io = |what: &str, e: std::io::Error| {
            ApiError::new(
                "io_error",
                format!("could not {what} in {}: {e}", folder.display()),
            )
        };
        std::fs::create_dir_all(&folder).map_err(|e| io("create the folder", e))?;
        let path = folder.join(&backup.file);
        let tmp = folder.join(format!(".{}.partial", backup.file));
        let mut reader = store.open(&backup)?;
        let mut out = std::fs::File::create(&tmp).map_err(|e| io("write the copy", e))?;
        let copied = std::io::copy(&mut reader, &mut out).map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            ApiError::from(driveback_engine::error::EngineError::io(
                "copying the backup",
                e,
            ))
        })?;
        out.flush().map_err(|e| io("write the copy", e))?;
        drop(out);
        std::fs::rename(&tmp, &path).map_err(|e| io("write the copy", e))?;
        Ok(Copied {
            path: path.display().to_string(),
            bytes: copied,
        })
    })
    .await
}
