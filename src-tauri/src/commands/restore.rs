//! Restore in two steps: `prepare_restore` shows what would be replaced and issues a one-time
//! confirmation token, with no side effects; `restore` runs only with that token. The current
//! data is backed up first (on this device), and the result offers an undo token that restores
//! that safety backup.

use std::sync::Arc;

use driveback_engine::container;
use driveback_engine::manifest::CollectionStatus;
use driveback_engine::mongo::{self, export};
use driveback_engine::notify::Event;
use driveback_engine::pipeline::{self, BackupOptions, RestoreOptions, Source};
use driveback_engine::progress::ProgressSink;
use driveback_engine::store::RemoteStore;
use secrecy::ExposeSecret;
use serde::Serialize;
use tauri::ipc::Channel;
use tauri::State;

use super::backups::{BackupView, CollectionCount};
use super::blocking;
use super::passphrase::backup_key;
use crate::bridge::{JobEvent, JobKind, JobProgress, Step};
use crate::error::{ApiError, ApiResult};
use crate::jobs::JobGuard;
use crate::state::{Shared, Ticket};

/// Safety backups kept on this device.
const SAFETY_BACKUPS_KEPT: usize = 3;

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

#[derive(Serialize)]
pub struct RestorePlan {
    /// Give this to `restore` to confirm. Valid once, for 15 minutes.
    pub token: String,
    pub backup: BackupView,
    pub target_db: String,
    pub host: Option<String>,
    /// What will be replaced (or created).
    pub collections: Vec<PlannedCollection>,
    /// Collections of the database that are not in the backup: left as they are.
    pub untouched: Vec<String>,
    /// The current data is backed up first (when there is any).
    pub safety_backup: bool,
    pub warnings: Vec<String>,
}

/// What restoring backup `id` would do, read from the backup's manifest (this reads and
/// decrypts the file) and the database; changes nothing.
#[tauri::command]
pub async fn prepare_restore(
    state: State<'_, Shared>,
    id: String,
    passphrase: Option<String>,
) -> ApiResult<RestorePlan> {
    let shared = state.inner().clone();
    let store = super::store_of(&shared).await?;
    let uri = state.require_mongo_uri()?;
    let (backup, key, manifest) = {
        let store = store.clone();
        blocking(move || {
            let backup = store.find(&id)?;
            let key = backup_key(&shared, store.as_ref(), passphrase)?;
            let manifest = container::read_manifest(store.open(&backup)?, key.identity())
                .map_err(driveback_engine::error::EngineError::from)?;
            Ok((backup, key, manifest))
        })
        .await?
    };
    let target_db = state.database().unwrap_or_else(|| backup.database.clone());
    let client = mongo::connect(uri.expose_secret()).await?;
    let current = export::describe_database(&client.database(&target_db)).await?;
    // What each live collection holds now (the export itself does not count).
    let mut counts = std::collections::HashMap::new();
    for info in current.iter().filter(|i| i.kind != "view") {
        let coll = client
            .database(&target_db)
            .collection::<mongodb::bson::Document>(&info.name);
        if let Ok(n) = coll.estimated_document_count().await {
            counts.insert(info.name.clone(), n);
        }
    }
    let collections: Vec<PlannedCollection> = manifest
        .collections
        .iter()
        .map(|c| PlannedCollection {
            name: c.name.clone(),
            kind: c.kind.clone(),
            in_backup: c.documents,
            now: counts.get(&c.name).copied(),
            restorable: matches!(c.status, CollectionStatus::Ok),
        })
        .collect();
    let untouched = current
        .iter()
        .filter(|i| !manifest.collections.iter().any(|c| c.name == i.name))
        .map(|i| i.name.clone())
        .collect();
    let mut warnings = Vec::new();
    if !collections.iter().all(|c| c.restorable) {
        warnings.push(
            "this backup is partial: collections it could not read completely are left as they are"
                .to_string(),
        );
    }
    if !manifest.point_in_time {
        warnings.push(format!("this backup is {}", manifest.consistency));
    }
    let safety_backup = !current.is_empty();
    let latest = {
        let (store, id) = (store.clone(), backup.id.clone());
        blocking(move || {
            Ok(store
                .list()
                .ok()
                .and_then(|l| l.first().map(|b| b.id == id))
                .unwrap_or(false))
        })
        .await?
    };
    let token = state.issue_ticket(Ticket {
        store,
        backup: backup.clone(),
        key,
        target_db: target_db.clone(),
        documents: manifest.total_documents(),
        safety_backup,
        issued: std::time::Instant::now(),
    });
    Ok(RestorePlan {
        token,
        backup: BackupView::new(&backup, latest),
        target_db,
        host: state.uri_host(),
        collections,
        untouched,
        safety_backup,
        warnings,
    })
}

#[derive(Serialize)]
pub struct RestoreView {
    pub database: String,
    pub collections: Vec<CollectionCount>,
    pub documents: u64,
    pub views: Vec<String>,
    pub warnings: Vec<String>,
    /// Restores the data as it was just before this restore (when a safety backup was taken).
    pub undo_token: Option<String>,
}

/// Replaces the target database's collections with the backup's, as confirmed by `token` (from
/// `prepare_restore`, or the `undo_token` of an earlier restore). Progress goes to `on_event`.
#[tauri::command]
pub async fn restore(
    state: State<'_, Shared>,
    token: String,
    on_event: Channel<JobEvent>,
) -> ApiResult<RestoreView> {
    let ticket = state.take_ticket(&token)?;
    let progress = state.start_exclusive(JobKind::Restore, on_event)?;
    let _guard = JobGuard {
        jobs: &state.jobs,
        id: progress.job_id.clone(),
    };
    let (database, backup_id) = (ticket.target_db.clone(), ticket.backup.id.clone());
    let outcome = run_restore(state.inner(), ticket, progress.clone()).await;
    match &outcome {
        Ok(v) => progress.finished(serde_json::to_value(v).unwrap_or_default()),
        Err(e) => {
            tracing::warn!(code = %e.code, "restore failed: {}", e.message);
            progress.failed(e.clone())
        }
    }
    crate::notify::tell(
        &state,
        &Event::RestoreFinished {
            database,
            backup_id,
            ok: outcome.is_ok(),
            message: outcome
                .as_ref()
                .err()
                .map(|e| e.message.clone())
                .unwrap_or_default(),
        },
    );
    outcome
}

async fn run_restore(
    state: &Shared,
    ticket: Ticket,
    progress: Arc<JobProgress>,
) -> ApiResult<RestoreView> {
    let uri = state.require_mongo_uri()?;
    let sink: Arc<dyn ProgressSink> = progress.clone();
    let mut undo = None;
    if ticket.safety_backup {
        progress.begin_step(Step::SafetyBackup, 0);
        let safety = state.safety_store();
        let opts = BackupOptions {
            database: ticket.target_db.clone(),
            zstd_level: 3,
            expected_documents: None,
            started_at: None,
        };
        let taken = pipeline::backup(
            uri.expose_secret(),
            &opts,
            safety.clone(),
            ticket.key.recipient(),
            sink.clone(),
        )
        .await
        .map_err(|e| {
            let e = ApiError::from(e);
            ApiError::new(
                &e.code,
                format!(
                    "nothing was changed: the safety backup of the current data failed ({})",
                    e.message
                ),
            )
        })?;
        undo = Some((safety, taken.backup, taken.manifest.total_documents()));
    }
    progress.begin_step(Step::Main, ticket.documents);
    let opts = RestoreOptions {
        target_db: ticket.target_db.clone(),
        collections: None,
    };
    let source = Source::Stored {
        store: ticket.store.clone(),
        backup: ticket.backup.clone(),
        key: ticket.key.clone(),
    };
    let result = pipeline::restore(uri.expose_secret(), source, &opts, sink).await?;
    let undo_token = match undo {
        Some((safety, backup, documents)) => {
            prune_safety_backups(&safety).await;
            Some(state.issue_ticket(Ticket {
                store: safety,
                backup,
                key: ticket.key,
                target_db: ticket.target_db,
                documents,
                safety_backup: false,
                issued: std::time::Instant::now(),
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
