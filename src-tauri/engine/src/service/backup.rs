//! Backups: what one needs (checked before it starts), the one backup job every door runs (Backup
//! Now, a scheduled slot, the one-shot CLI), and starting it.

use std::sync::Arc;

use chrono::Local;
use secrecy::SecretString;

use super::{blocking, lock, Service};
use crate::authenticity::Signer;
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
    /// Signs the backup (this device holds the key: keyring or passphrase).
    pub signer: Arc<Signer>,
}

/// A one-shot backup's own choices (the CLI's flags); what it leaves out comes from the settings.
#[derive(Clone, Default)]
pub struct OneShot {
    pub uri: Option<SecretString>,
    pub database: Option<String>,
    pub dest: Option<String>,
    pub zstd_level: Option<i32>,
    /// The layout for the destination (`--layout`), remembered for it in the settings.
    pub layout: Option<crate::settings::Layout>,
}

impl Service {
    /// Checks the database, the destination and its key (from this device's keyring: a
    /// scheduled backup asks for no passphrase). Blocking.
    pub fn plan_backup(&self) -> ApiResult<BackupPlan> {
        let uri = self.require_mongo_uri()?;
        let database = self.require_database()?;
        let store = self.store()?;
        let ring = self.key_ring(store.as_ref(), &super::keys::GivenPassphrase(None));
        let recipient = ring.recipient()?.ok_or_else(|| {
            ApiError::new(
                ErrorCode::NoKey,
                "set the passphrase that protects your backups before the first backup",
            )
        })?;
        let signer = self.signer(&ring, &recipient)?;
        Ok(BackupPlan {
            uri,
            database,
            store,
            recipient,
            signer,
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
        let started = self.now();
        let plan = match blocking(move || svc.plan_backup()).await {
            Ok(p) => p,
            Err(e) => {
                // A backup that could not start is an attempt too: in the history and in the
                // recent runs, with why.
                self.record_unstarted(trigger, started, &e).await;
                return Err(e);
            }
        };
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
        if let Some(layout) = request.layout {
            let dest = request
                .dest
                .clone()
                .or_else(|| self.dest())
                .ok_or_else(|| {
                    ApiError::new(
                        ErrorCode::NotConfigured,
                        "no destination to remember the layout for",
                    )
                })?;
            self.update_settings(|s| s.backup.set_layout(&dest, layout))?;
        }
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
        let layout_dest = one_shot
            .as_ref()
            .and_then(|r| r.dest.clone())
            .unwrap_or_else(|| dest_name.clone());
        let incremental = self.incremental_options(&layout_dest);
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
                signer: Some(plan.signer),
                // The retention policy is the configured destination's: a one-shot backup to
                // another place adds to it and deletes nothing there.
                retention: managed.then(|| self.settings().retention),
                alarms: Some((
                    self.inner.alarms.clone(),
                    f64::from(self.settings().notify.data_loss_percent) / 100.0,
                )),
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
                incremental,
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
        let ring = self.key_ring(store.as_ref(), &super::keys::GivenPassphrase(None));
        let recipient = ring
            .recipient()?
            .ok_or_else(|| ApiError::from(crate::keys::KeyError::NoKey))?;
        let signer = self.signer(&ring, &recipient)?;
        Ok((
            BackupPlan {
                uri,
                database,
                store,
                recipient,
                signer,
            },
            managed,
        ))
    }
}

impl Service {
    /// The incremental layout's options for backups to `dest`, when that is its layout.
    pub(crate) fn incremental_options(
        &self,
        dest: &str,
    ) -> Option<crate::pipeline::IncrementalOptions> {
        let settings = self.settings();
        if settings.backup.layout_for(dest) != crate::settings::Layout::Incremental {
            return None;
        }
        let data = match crate::settings::data_dir() {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(error = %e, "no data folder for the incremental layout's index; backing up in one file");
                return None;
            }
        };
        Some(crate::pipeline::IncrementalOptions {
            index_root: data.join("index"),
            lock_dir: data.join("locks"),
            full_every: f64::from(settings.backup.full_after_percent) / 100.0,
        })
    }

    /// Records a backup that could not start (nothing to back up yet is not one).
    async fn record_unstarted(
        &self,
        trigger: Trigger,
        started: chrono::DateTime<chrono::Utc>,
        e: &ApiError,
    ) {
        if matches!(
            e.code,
            ErrorCode::NotConfigured | ErrorCode::NoKey | ErrorCode::Busy
        ) {
            return;
        }
        let record = RunRecord {
            warnings: Vec::new(),
            job_id: format!("unstarted-{}", started.format("%Y%m%dT%H%M%S%3f")),
            kind: crate::history::RunKind::Backup,
            trigger,
            started,
            ended: self.now(),
            outcome: crate::history::Outcome::Failed,
            database: self.database(),
            dest: self.dest(),
            backup_id: None,
            bytes: None,
            documents: None,
            verified: None,
            pruned: None,
            error: Some(crate::history::RunError {
                code: e.code.as_str().into(),
                message: e.message.clone(),
            }),
        };
        self.record_run(record).await;
    }

    /// After the user fixed what blocked the automatic backups (signed in again, gave the
    /// passphrase): when the latest run failed for a reason only the user could fix, the
    /// scheduler of this process runs the backup now rather than at the next slot.
    pub(crate) fn retry_after_fix(&self) {
        if lock(&self.inner.scheduler).is_none()
            || self.settings().schedule.frequency == crate::settings::Frequency::Off
            || tokio::runtime::Handle::try_current().is_err()
        {
            return;
        }
        let started = self.jobs().start_if(Trigger::Scheduled, |recent| {
            recent.first().is_some_and(|r| {
                crate::schedule::Attempt::of(r.outcome, r.error.as_ref().map(|e| e.code.as_str()))
                    == crate::schedule::Attempt::Blocked
            })
        });
        if let Some(h) = started {
            tracing::info!(job = %h.id, "the cause of the failed backup was fixed: backing up now");
        }
    }

    /// The key that signs backups to `recipient` at `ring`'s destination: unlocked earlier in
    /// this process (the daemon or CLI without a keyring), else from the keyring, else asked
    /// of `ring`'s passphrase source. Kept in memory for the next backup. Blocking.
    pub(crate) fn signer(
        &self,
        ring: &crate::keys::KeyRing<'_>,
        recipient: &age::x25519::Recipient,
    ) -> ApiResult<Arc<Signer>> {
        let location = ring.store.location();
        let recipient = recipient.to_string();
        if let Some((r, s)) = lock(&self.inner.signers).get(&location) {
            if *r == recipient {
                return Ok(s.clone());
            }
        }
        let signer = Arc::new(
            ring.signer(&recipient.parse().expect("a recipient parses"))
                .map_err(signer_needed)?,
        );
        lock(&self.inner.signers).insert(location, (recipient, signer.clone()));
        Ok(signer)
    }
}

/// A backup needs the key itself to sign: says so when this device does not hold it yet.
fn signer_needed(e: crate::keys::KeyError) -> ApiError {
    match e {
        crate::keys::KeyError::NoPassphrase(_) => ApiError::new(
            ErrorCode::PassphraseRequired,
            "this device does not hold your backup key yet: enter the passphrase once, and \
             backups are signed with it from then on",
        ),
        other => other.into(),
    }
}
