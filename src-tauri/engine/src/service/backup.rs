//! Backups: what one needs (checked before it starts), the one backup job every door runs (Backup
//! Now, a scheduled slot, the one-shot CLI), and starting it.

use std::sync::Arc;

use chrono::Local;
use secrecy::SecretString;

use super::{blocking, lock, Service};
use crate::container::DEFAULT_ZSTD_LEVEL;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::history::{RunRecord, Trigger};
use crate::jobs::{self, BackupRequest, JobContext, JobHandle, JobOutcome};
use crate::keys::KeyInit;
use crate::pipeline::BackupResult;
use crate::store::RemoteStore;

/// Everything a backup needs, checked before it starts.
pub struct BackupPlan {
    pub uri: SecretString,
    pub database: String,
    pub store: Arc<dyn RemoteStore>,
    pub recipient: age::x25519::Recipient,
}

/// A one-shot backup's own choices (the CLI's flags); what it leaves out comes from the settings.
#[derive(Clone, Default)]
pub struct OneShot {
    pub uri: Option<SecretString>,
    pub database: Option<String>,
    pub dest: Option<String>,
    pub zstd_level: Option<i32>,
}

impl Service {
    /// Checks the database, the destination and its key (only the public half: making a backup
    /// needs no passphrase). Blocking.
    pub fn plan_backup(&self) -> ApiResult<BackupPlan> {
        let uri = self.require_mongo_uri()?;
        let database = self.require_database()?;
        let store = self.store()?;
        let recipient = self
            .key_ring(store.as_ref(), &super::keys::GivenPassphrase(None))
            .recipient()?
            .ok_or_else(|| {
                ApiError::new(
                    ErrorCode::NoKey,
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

    /// Backup Now: starts a backup and returns at once, or joins the one running. What a backup
    /// needs is checked first, so that the door hears of a problem at once; refused (`busy`)
    /// while a verify or a restore runs.
    pub async fn start_backup(&self, trigger: Trigger) -> ApiResult<JobHandle> {
        let jobs = self.jobs();
        if let Some(other) = jobs.current() {
            if other.kind != crate::jobs::JobKind::Backup {
                return Err(ApiError::busy(other.kind.with_article()));
            }
            return jobs.try_start(trigger);
        }
        let svc = self.clone();
        let plan = blocking(move || svc.plan_backup()).await?;
        *lock(&self.inner.prepared) = Some(plan);
        let started = jobs.try_start(trigger);
        if !matches!(&started, Ok(h) if !h.attached) {
            // Joined a backup that had started meanwhile: it planned for itself.
            lock(&self.inner.prepared).take();
        }
        started
    }

    /// The one-shot backup (`driveback backup`): the same job as Backup Now and a scheduled slot,
    /// recorded, pruned and mailed alike; a destination without a backup key gets one first
    /// (through `passphrase`). Returns the record and the pipeline's result, when one was made.
    pub async fn backup_once(
        &self,
        request: OneShot,
        passphrase: &dyn crate::keys::PassphraseSource,
    ) -> ApiResult<(RunRecord, Option<BackupResult>, Option<KeyInit>)> {
        let init =
            tokio::task::block_in_place(|| self.ensure_key(request.dest.as_deref(), passphrase))?;
        *lock(&self.inner.one_shot) = Some(request);
        let record = self.jobs().start(Trigger::Manual).wait().await;
        let result = lock(&self.inner.results).remove(&record.job_id);
        // Let the email report go out before the process ends.
        self.jobs().notified().await;
        let email = self.email().clone();
        tokio::task::spawn_blocking(move || email.wait_idle(std::time::Duration::from_secs(120)))
            .await
            .ok();
        Ok((record, result, init))
    }

    /// The backup job: resolves what to back up and where from the settings as they are now (or
    /// the one-shot request), then runs the engine's backup (backup, then retention after a
    /// complete backup). Every door's backup runs here.
    pub(crate) async fn run_backup_job(self, ctx: JobContext) -> JobOutcome {
        let one_shot = lock(&self.inner.one_shot).take();
        // Only a run that succeeds leaves a listing for the health watch.
        lock(&self.inner.seen).take();
        let planned = {
            let svc = self.clone();
            let one_shot = one_shot.clone();
            tokio::task::spawn_blocking(move || match one_shot {
                None => match lock(&svc.inner.prepared).take() {
                    Some(p) => Ok((p, true)),
                    None => svc.plan_backup().map(|p| (p, true)),
                },
                Some(req) => svc.plan_one_shot(req),
            })
            .await
        };
        let (plan, managed) = match planned {
            Ok(Ok(p)) => p,
            Ok(Err(e)) => {
                let mut o = JobOutcome::failed(e.code.as_str(), e.message);
                o.database = one_shot
                    .as_ref()
                    .and_then(|r| r.database.clone())
                    .or_else(|| self.database());
                o.dest = one_shot
                    .as_ref()
                    .and_then(|r| r.dest.clone())
                    .or_else(|| self.dest());
                return o;
            }
            Err(e) => return JobOutcome::failed("internal", e.to_string()),
        };
        let results = self.clone();
        let job_id = ctx.id.clone();
        let dest_name = self.dest().unwrap_or_default();
        let keep = one_shot.is_some();
        jobs::run_backup(
            BackupRequest {
                server: self.inner.mongo.clone(),
                mongo_uri: plan.uri,
                database: plan.database,
                zstd_level: one_shot
                    .and_then(|r| r.zstd_level)
                    .unwrap_or(DEFAULT_ZSTD_LEVEL),
                store: plan.store,
                recipient: plan.recipient,
                // The retention policy is the configured destination's: a one-shot backup to
                // another place adds to it and deletes nothing there.
                retention: managed.then(|| self.settings().retention),
                tz: Local,
                on_listing: managed.then(|| {
                    let (svc, dest) = (self.clone(), dest_name.clone());
                    Box::new(move |list: Vec<crate::store::StoredBackup>| {
                        *lock(&svc.inner.seen) = Some((dest, svc.now(), list));
                    })
                        as Box<dyn FnOnce(Vec<crate::store::StoredBackup>) + Send>
                }),
                on_result: keep.then(|| {
                    Box::new(move |r: &BackupResult| {
                        lock(&results.inner.results).insert(job_id, r.clone());
                    }) as Box<dyn FnOnce(&BackupResult) + Send>
                }),
            },
            ctx,
        )
        .await
    }

    /// A one-shot request completed from the settings; whether its destination is the configured
    /// one (whose retention applies). Blocking.
    fn plan_one_shot(&self, req: OneShot) -> ApiResult<(BackupPlan, bool)> {
        let uri = match req.uri {
            Some(u) => u,
            None => self.require_mongo_uri()?,
        };
        let database = match req.database {
            Some(d) => d,
            None => self.require_database()?,
        };
        let configured = self.dest();
        let (store, managed) = match req.dest {
            Some(d) if Some(&d) != configured.as_ref() => (self.open_dest(&d)?, false),
            _ => (self.store()?, true),
        };
        let recipient = self
            .key_ring(store.as_ref(), &super::keys::GivenPassphrase(None))
            .recipient()?
            .ok_or_else(|| ApiError::from(crate::keys::KeyError::NoKey))?;
        Ok((
            BackupPlan {
                uri,
                database,
                store,
                recipient,
            },
            managed,
        ))
    }
}
