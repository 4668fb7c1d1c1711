//! Backup Now, the list of backups, verify and "save a copy".

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use driveback_engine::container::DEFAULT_ZSTD_LEVEL;
use driveback_engine::keys::KeyRing;
use driveback_engine::manifest::BackupStatus;
use driveback_engine::pipeline::{self, BackupOptions, Source};
use driveback_engine::progress::ProgressSink;
use driveback_engine::store::StoredBackup;
use secrecy::ExposeSecret;
use serde::Serialize;
use tauri::ipc::Channel;
use tauri::State;

use super::blocking;
use super::passphrase::{backup_key, GivenPassphrase};
use crate::bridge::{JobEvent, JobKind, JobProgress};
use crate::error::{ApiError, ApiResult};
use crate::jobs::{JobGuard, Started};
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
/// backup runs, this joins it instead of starting another.
#[tauri::command]
pub fn backup_now(state: State<'_, Shared>, on_event: Channel<JobEvent>) -> ApiResult<JobStarted> {
    // What a backup needs is checked here, so that the UI hears of it at once.
    let plan = if state.jobs.current().is_some() {
        None
    } else {
        Some(plan_backup(&state)?)
    };
    let progress = match state.jobs.start(JobKind::Backup, Some(on_event), true)? {
        Started::Attached(job_id) => {
            return Ok(JobStarted {
                job_id,
                attached: true,
            })
        }
        Started::New(p) => p,
    };
    let job_id = progress.job_id.clone();
    let shared = state.inner().clone();
    let task = tauri::async_runtime::spawn(async move {
        let outcome = match plan {
            Some(plan) => run_backup(plan, progress.clone()).await,
            None => match plan_backup(&shared) {
                Ok(plan) => run_backup(plan, progress.clone()).await,
                Err(e) => Err(e),
            },
        };
        // A cancelled job is already over; its task ends here only if the abort came late.
        if shared.jobs.is_running(&progress.job_id) {
            shared.jobs.finish(&progress.job_id);
            match outcome {
                Ok(view) => progress.finished(serde_json::to_value(view).unwrap_or_default()),
                Err(e) => {
                    tracing::warn!(code = %e.code, "backup failed: {}", e.message);
                    progress.failed(e)
                }
            }
        }
    });
    state.jobs.set_task(&job_id, task);
    Ok(JobStarted {
        job_id,
        attached: false,
    })
}

/// Everything a backup needs, checked before it starts.
pub struct BackupPlan {
    uri: secrecy::SecretString,
    store: Arc<dyn driveback_engine::store::RemoteStore>,
    recipient: age::x25519::Recipient,
    opts: BackupOptions,
}

/// Checks the database, the destination and its key (only the public half: making a backup
/// needs no passphrase).
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
    let expected_documents = pipeline::previous_documents(store.as_ref(), &database);
    Ok(BackupPlan {
        uri,
        store,
        recipient,
        opts: BackupOptions {
            expected_documents,
            database,
            zstd_level: DEFAULT_ZSTD_LEVEL,
            started_at: None,
        },
    })
}

pub async fn run_backup(plan: BackupPlan, progress: Arc<JobProgress>) -> ApiResult<BackupView> {
    let sink: Arc<dyn ProgressSink> = progress;
    let result = pipeline::backup(
        plan.uri.expose_secret(),
        &plan.opts,
        plan.store,
        plan.recipient,
        sink,
    )
    .await?;
    Ok(BackupView::new(&result.backup, true))
}

/// Stops the running backup: nothing of it is kept at the destination.
#[tauri::command]
pub fn cancel_job(state: State<'_, Shared>, job_id: String) -> ApiResult<bool> {
    state.jobs.cancel(&job_id)
}

/// The backups at the destination, newest first.
#[tauri::command]
pub async fn list_backups(state: State<'_, Shared>) -> ApiResult<Vec<BackupView>> {
    let store = state.store()?;
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
    let store = state.store()?;
    let progress = match state.jobs.start(JobKind::Verify, Some(on_event), false)? {
        Started::New(p) => p,
        Started::Attached(_) => unreachable!("verify never attaches"),
    };
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
    let store = state.store()?;
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
