//! One backup job at a time.
//!
//! [`Jobs::start`] returns a job id at once; the job runs on the tokio runtime. Starting while a
//! job runs (Backup Now during a scheduled run, or the other way round) attaches to the running
//! job instead of starting a second one. A job can be cancelled through its [`CancelToken`]. Every
//! run, whatever its outcome, is recorded in the history and announced as a [`JobEvent`].
//!
//! What a job does is a [`JobRunner`]: the product's is [`run_backup`] (backup, then retention
//! after a complete backup); tests give a fake.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, TimeZone, Utc};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use tokio::sync::{broadcast, watch, Notify};

use crate::error::{ApiError, ErrorCode};
use crate::history::{History, Outcome, RunError, RunKind, RunRecord, Trigger};
use crate::manifest::{BackupStatus, CollectionStatus};
use crate::notify::{Event, Notifier};
use crate::pipeline::{self, BackupOptions};
pub use crate::progress::JobKind;
use crate::progress::{ProgressSink, ProgressTracker, ProgressView};
use crate::retention;
use crate::settings::RetentionPolicy;
use crate::store::{RemoteStore, StoredBackup};

/// The time, injected so that tests can move it.
pub trait Clock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;
}

/// The system's wall clock.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that starts at a given instant and runs at the system clock's pace: what a
/// benchmark uses to date the backups of a simulated day (`DRIVEBACK_SIMULATED_NOW`, read by the
/// command line only).
pub struct ShiftedClock {
    start: DateTime<Utc>,
    at: std::time::Instant,
}

impl ShiftedClock {
    pub fn starting_at(start: DateTime<Utc>) -> Self {
        ShiftedClock {
            start,
            at: std::time::Instant::now(),
        }
    }
}

impl Clock for ShiftedClock {
    fn now(&self) -> DateTime<Utc> {
        self.start + chrono::Duration::from_std(self.at.elapsed()).unwrap_or_default()
    }
}

/// Asks a job to stop. Cheap to clone; all clones see the same state.
#[derive(Clone, Default)]
pub struct CancelToken {
    inner: Arc<(AtomicBool, Notify)>,
}

impl CancelToken {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn cancel(&self) {
        self.inner.0.store(true, Ordering::SeqCst);
        self.inner.1.notify_waiters();
    }

    pub fn is_cancelled(&self) -> bool {
        self.inner.0.load(Ordering::SeqCst)
    }

    /// Completes once the token is cancelled.
    pub async fn cancelled(&self) {
        loop {
            let notified = self.inner.1.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.is_cancelled() {
                return;
            }
            notified.await;
        }
    }
}

/// What a job gets to work with.
#[derive(Clone)]
pub struct JobContext {
    pub id: String,
    pub trigger: Trigger,
    pub cancel: CancelToken,
    /// Progress goes to subscribers as [`JobEvent::Progress`].
    pub progress: Arc<dyn ProgressSink>,
    pub clock: Arc<dyn Clock>,
}

/// How a job ended, as the runner reports it.
#[derive(Clone, Debug, PartialEq)]
pub struct JobOutcome {
    pub outcome: Outcome,
    pub database: Option<String>,
    pub dest: Option<String>,
    pub backup: Option<StoredBackup>,
    pub verified: Option<bool>,
    pub pruned: Option<u32>,
    pub error: Option<RunError>,
    pub warnings: Vec<crate::alarms::DataWarning>,
}

impl JobOutcome {
    fn new(outcome: Outcome) -> Self {
        JobOutcome {
            outcome,
            database: None,
            dest: None,
            backup: None,
            verified: None,
            pruned: None,
            error: None,
            warnings: Vec::new(),
        }
    }

    pub fn success(backup: StoredBackup) -> Self {
        JobOutcome {
            database: Some(backup.database.clone()),
            backup: Some(backup),
            ..Self::new(Outcome::Success)
        }
    }

    pub fn failed(code: &str, message: impl Into<String>) -> Self {
        JobOutcome {
            error: Some(RunError {
                code: code.to_string(),
                message: message.into(),
            }),
            ..Self::new(Outcome::Failed)
        }
    }

    pub fn cancelled() -> Self {
        JobOutcome {
            error: Some(RunError {
                code: "cancelled".into(),
                message: "the backup was cancelled".into(),
            }),
            ..Self::new(Outcome::Cancelled)
        }
    }
}

pub type JobFuture = Pin<Box<dyn Future<Output = JobOutcome> + Send + 'static>>;

/// What a job does.
pub trait JobRunner: Send + Sync + 'static {
    fn run(&self, ctx: JobContext) -> JobFuture;
}

impl<F, Fut> JobRunner for F
where
    F: Fn(JobContext) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = JobOutcome> + Send + 'static,
{
    fn run(&self, ctx: JobContext) -> JobFuture {
        Box::pin(self(ctx))
    }
}

/// The running job, as the UI shows it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct JobInfo {
    pub id: String,
    pub kind: JobKind,
    pub trigger: Trigger,
    pub started: DateTime<Utc>,
    pub cancelling: bool,
    /// The latest progress, when there is some.
    pub progress: Option<ProgressView>,
}

/// How a job ended, as a front door shows it.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum JobResult {
    Finished { result: serde_json::Value },
    Failed { error: ApiError },
    Cancelled,
}

/// What subscribers hear.
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum JobEvent {
    Started {
        job: JobInfo,
    },
    Progress {
        id: String,
        progress: ProgressView,
    },
    /// A backup run ended and is recorded.
    Finished {
        record: RunRecord,
    },
    /// Any job ended (after `Finished` for a backup).
    Ended {
        id: String,
        kind: JobKind,
        result: JobResult,
    },
}

/// The answer to [`Jobs::start`].
pub struct JobHandle {
    pub id: String,
    /// True when a job was already running and this handle follows it.
    pub attached: bool,
    done: watch::Receiver<Option<RunRecord>>,
}

impl JobHandle {
    /// Waits for the job to end; its record, as written to the history.
    pub async fn wait(mut self) -> RunRecord {
        loop {
            if let Some(r) = self.done.borrow().clone() {
                return r;
            }
            if self.done.changed().await.is_err() {
                // The sender is only dropped after sending.
                if let Some(r) = self.done.borrow().clone() {
                    return r;
                }
                panic!("job {} ended without a record", self.id);
            }
        }
    }
}

struct Running {
    info: JobInfo,
    cancel: CancelToken,
    tracker: Arc<ProgressTracker>,
    done: watch::Receiver<Option<RunRecord>>,
}

impl Running {
    fn info(&self) -> JobInfo {
        JobInfo {
            progress: self.tracker.last(),
            ..self.info.clone()
        }
    }
}

#[derive(Default)]
struct State {
    /// The running backup (Backup Now or scheduled).
    current: Option<Running>,
    /// The running verify or restore.
    exclusive: Option<Running>,
    /// The latest finished backup runs, newest first (at most `schedule::RECENT_ATTEMPTS`).
    recent: Vec<RunRecord>,
}

struct Inner {
    runner: Arc<dyn JobRunner>,
    clock: Arc<dyn Clock>,
    history: Option<Arc<History>>,
    events: broadcast::Sender<JobEvent>,
    state: Mutex<State>,
    /// Told when a verify or a restore ends (a backup waiting for it starts then).
    exclusive_done: Notify,
    counter: AtomicU64,
    /// Told about every finished run, after it is recorded (desktop notifications, email).
    notifiers: Mutex<Vec<Arc<dyn Notifier>>>,
    /// Runs whose notifiers have not all been told yet.
    telling: watch::Sender<usize>,
}

/// The one job manager: one backup, verify or restore at a time. Cheap to clone.
#[derive(Clone)]
pub struct Jobs {
    inner: Arc<Inner>,
}

/// A verify or a restore holding the job slot. Ending it (or dropping it) frees the slot and
/// tells subscribers how it ended.
pub struct ExclusiveJob {
    jobs: Jobs,
    pub id: String,
    pub kind: JobKind,
    pub tracker: Arc<ProgressTracker>,
    ended: bool,
}

impl ExclusiveJob {
    /// Progress goes to subscribers.
    pub fn progress(&self) -> Arc<dyn ProgressSink> {
        self.tracker.clone()
    }

    /// Frees the slot and announces `result`.
    pub fn end(mut self, result: JobResult) {
        self.finish(result);
    }

    fn finish(&mut self, result: JobResult) {
        if self.ended {
            return;
        }
        self.ended = true;
        {
            let mut state = self.jobs.state();
            if state
                .exclusive
                .as_ref()
                .is_some_and(|r| r.info.id == self.id)
            {
                state.exclusive = None;
            }
        }
        self.jobs.inner.exclusive_done.notify_waiters();
        let _ = self.jobs.inner.events.send(JobEvent::Ended {
            id: self.id.clone(),
            kind: self.kind,
            result,
        });
    }
}

impl Drop for ExclusiveJob {
    fn drop(&mut self) {
        self.finish(JobResult::Failed {
            error: ApiError::internal("the job stopped without a result"),
        });
    }
}

/// What the followers of a backup hear when it ends.
pub fn backup_result(record: &RunRecord) -> JobResult {
    match record.outcome {
        Outcome::Success => JobResult::Finished {
            result: serde_json::json!({
                "id": record.backup_id,
                "bytes": record.bytes,
                "documents": record.documents,
                "database": record.database,
                "created": record.started,
                "status": "complete",
                "latest": true,
                "pruned": record.pruned,
            }),
        },
        Outcome::Partial | Outcome::Failed => JobResult::Failed {
            error: match &record.error {
                Some(e) => ApiError::new(ErrorCode::parse(&e.code), e.message.clone()),
                None => ApiError::internal("the backup did not finish"),
            },
        },
        Outcome::Cancelled => JobResult::Cancelled,
    }
}

impl Jobs {
    /// `history`, when given, receives every run, and its last backup run tells the scheduler
    /// when the last attempt was.
    pub fn new(
        runner: impl JobRunner,
        clock: Arc<dyn Clock>,
        history: Option<Arc<History>>,
    ) -> Self {
        let recent = match history.as_ref().map(|h| h.load()) {
            None => Vec::new(),
            Some(Ok(records)) => records
                .into_iter()
                .rev()
                .filter(|r| r.kind == RunKind::Backup)
                .take(crate::schedule::RECENT_ATTEMPTS)
                .collect(),
            Some(Err(e)) => {
                tracing::warn!(error = %e, "could not read the backup history");
                Vec::new()
            }
        };
        let (events, _) = broadcast::channel(256);
        Jobs {
            inner: Arc::new(Inner {
                runner: Arc::new(runner),
                clock,
                history,
                events,
                state: Mutex::new(State {
                    current: None,
                    exclusive: None,
                    recent,
                }),
                exclusive_done: Notify::new(),
                counter: AtomicU64::new(0),
                notifiers: Mutex::new(Vec::new()),
                telling: watch::channel(0).0,
            }),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.inner.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds a notifier: it hears about every run that ends from now on, once the run is recorded
    /// and its waiters are released, so it cannot delay or fail the run.
    pub fn add_notifier(&self, notifier: Arc<dyn Notifier>) {
        self.inner
            .notifiers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(notifier);
    }

    pub fn subscribe(&self) -> broadcast::Receiver<JobEvent> {
        self.inner.events.subscribe()
    }

    /// The running job, if any (a backup, a verify or a restore).
    pub fn current(&self) -> Option<JobInfo> {
        let state = self.state();
        state
            .exclusive
            .as_ref()
            .or(state.current.as_ref())
            .map(Running::info)
    }

    /// The last finished backup run (from this process, or the history at start).
    pub fn last_finished(&self) -> Option<RunRecord> {
        self.state().recent.first().cloned()
    }

    /// The latest finished backup runs, newest first (a few: what the schedule's retries need).
    pub fn recent_runs(&self) -> Vec<RunRecord> {
        self.state().recent.clone()
    }

    /// Starts a backup, or attaches to the running one. Returns at once. Needs a tokio runtime.
    /// While a verify or a restore runs, the backup waits for it to end.
    pub fn start(&self, trigger: Trigger) -> JobHandle {
        let state = self.state();
        if let Some(running) = &state.current {
            return JobHandle {
                id: running.info.id.clone(),
                attached: true,
                done: running.done.clone(),
            };
        }
        self.start_locked(state, trigger)
    }

    /// Backup Now: starts a backup or attaches to the running one; refused while a verify or a
    /// restore runs.
    pub fn try_start(&self, trigger: Trigger) -> Result<JobHandle, ApiError> {
        let state = self.state();
        if let Some(other) = &state.exclusive {
            return Err(ApiError::busy(other.info.kind.with_article()));
        }
        drop(state);
        Ok(self.start(trigger))
    }

    /// Starts a backup only if no job is running and `wanted` (given the latest finished runs,
    /// newest first) agrees, both judged at once: a run that ends meanwhile cannot make the
    /// decision stale.
    pub fn start_if(
        &self,
        trigger: Trigger,
        wanted: impl FnOnce(&[RunRecord]) -> bool,
    ) -> Option<JobHandle> {
        let state = self.state();
        if state.current.is_some() || state.exclusive.is_some() || !wanted(&state.recent) {
            return None;
        }
        Some(self.start_locked(state, trigger))
    }

    /// Takes the slot for a verify or a restore: refused (`busy`) while any job runs.
    pub fn begin(&self, kind: JobKind) -> Result<ExclusiveJob, ApiError> {
        let mut state = self.state();
        if let Some(r) = state.exclusive.as_ref().or(state.current.as_ref()) {
            return Err(ApiError::busy(r.info.kind.with_article()));
        }
        let started = self.inner.clock.now();
        let n = self.inner.counter.fetch_add(1, Ordering::Relaxed);
        let id = format!(
            "{}-{}-{n}",
            kind_word(kind),
            started.format("%Y%m%dT%H%M%S")
        );
        let tracker = self.tracker(&id, kind);
        let cancel = CancelToken::new();
        let info = JobInfo {
            id: id.clone(),
            kind,
            trigger: Trigger::Manual,
            started,
            cancelling: false,
            progress: None,
        };
        // Nobody waits on an exclusive job's record: the sender goes with this receiver.
        let (_tx, done) = watch::channel(None);
        state.exclusive = Some(Running {
            info: info.clone(),
            cancel,
            tracker: tracker.clone(),
            done,
        });
        drop(state);
        let _ = self.inner.events.send(JobEvent::Started { job: info });
        Ok(ExclusiveJob {
            jobs: self.clone(),
            id,
            kind,
            tracker,
            ended: false,
        })
    }

    fn tracker(&self, id: &str, kind: JobKind) -> Arc<ProgressTracker> {
        let events = self.inner.events.clone();
        let job = id.to_string();
        Arc::new(ProgressTracker::new(id.to_string(), kind, move |view| {
            let _ = events.send(JobEvent::Progress {
                id: job.clone(),
                progress: view,
            });
        }))
    }

    fn start_locked(
        &self,
        mut state: std::sync::MutexGuard<'_, State>,
        trigger: Trigger,
    ) -> JobHandle {
        let started = self.inner.clock.now();
        let n = self.inner.counter.fetch_add(1, Ordering::Relaxed);
        let id = format!("{}-{n}", started.format("%Y%m%dT%H%M%S"));
        let info = JobInfo {
            id: id.clone(),
            kind: JobKind::Backup,
            trigger,
            started,
            cancelling: false,
            progress: None,
        };
        let cancel = CancelToken::new();
        let tracker = self.tracker(&id, JobKind::Backup);
        let (done_tx, done_rx) = watch::channel(None);
        state.current = Some(Running {
            info: info.clone(),
            cancel: cancel.clone(),
            tracker: tracker.clone(),
            done: done_rx.clone(),
        });
        drop(state);

        let _ = self.inner.events.send(JobEvent::Started { job: info });
        let ctx = JobContext {
            id: id.clone(),
            trigger,
            cancel: cancel.clone(),
            progress: tracker,
            clock: self.inner.clock.clone(),
        };
        let jobs = self.clone();
        let job_id = id.clone();
        tokio::spawn(async move {
            let id = job_id;
            // A verify or a restore that runs goes first.
            loop {
                let freed = jobs.inner.exclusive_done.notified();
                tokio::pin!(freed);
                freed.as_mut().enable();
                if jobs.state().exclusive.is_none() {
                    break;
                }
                tokio::select! {
                    _ = &mut freed => {}
                    _ = cancel.cancelled() => break,
                }
            }
            let outcome = if cancel.is_cancelled() {
                JobOutcome::cancelled()
            } else {
                let work = tokio::spawn(jobs.inner.runner.run(ctx));
                match work.await {
                    Ok(o) => o,
                    Err(e) => {
                        JobOutcome::failed("internal", format!("the backup job crashed: {e}"))
                    }
                }
            };
            let stored = outcome.backup.clone();
            let record = RunRecord {
                warnings: outcome.warnings,
                job_id: id.clone(),
                kind: RunKind::Backup,
                trigger,
                started,
                ended: jobs.inner.clock.now(),
                outcome: outcome.outcome,
                database: outcome
                    .database
                    .or_else(|| outcome.backup.as_ref().map(|b| b.database.clone())),
                dest: outcome.dest,
                backup_id: outcome.backup.as_ref().map(|b| b.id.clone()),
                bytes: outcome.backup.as_ref().map(|b| b.bytes),
                documents: outcome.backup.as_ref().map(|b| b.documents),
                verified: outcome.verified,
                pruned: outcome.pruned,
                error: outcome.error,
            };
            if let Some(history) = jobs.inner.history.clone() {
                let r = record.clone();
                let written = tokio::task::spawn_blocking(move || history.append(&r)).await;
                match written {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => tracing::warn!(error = %e, "could not record the run"),
                    Err(e) => tracing::warn!(error = %e, "could not record the run"),
                }
            }
            {
                let mut state = jobs.state();
                state.current = None;
                state.recent.insert(0, record.clone());
                state.recent.truncate(crate::schedule::RECENT_ATTEMPTS);
            }
            let notifiers = jobs
                .inner
                .notifiers
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone();
            if !notifiers.is_empty() {
                // Counted before the waiters are released: a waiter can then wait for them.
                jobs.inner.telling.send_modify(|n| *n += 1);
            }
            let _ = done_tx.send(Some(record.clone()));
            let _ = jobs.inner.events.send(JobEvent::Finished {
                record: record.clone(),
            });
            let _ = jobs.inner.events.send(JobEvent::Ended {
                id: id.clone(),
                kind: JobKind::Backup,
                result: backup_result(&record),
            });
            if !notifiers.is_empty() {
                let telling = jobs.inner.telling.clone();
                let history = jobs.inner.history.clone();
                // Off the async workers: reading the history and the notifiers' own work.
                tokio::task::spawn_blocking(move || {
                    let last_good = history
                        .and_then(|h| h.load().ok())
                        .and_then(|rs| crate::history::last_success(&rs).map(|r| r.ended));
                    if let Some(event) = Event::for_run(&record, stored, last_good) {
                        for n in notifiers {
                            n.notify(&event);
                        }
                    }
                    telling.send_modify(|n| *n -= 1);
                });
            }
        });
        JobHandle {
            id,
            attached: false,
            done: done_rx,
        }
    }

    /// Cancels the running backup (only if its id is `id`, when given). Whether one was
    /// cancelled.
    pub fn cancel(&self, id: Option<&str>) -> bool {
        let mut state = self.state();
        match &mut state.current {
            Some(r) if id.is_none_or(|id| id == r.info.id) => {
                r.info.cancelling = true;
                r.cancel.cancel();
                true
            }
            _ => false,
        }
    }

    /// Waits until every notifier has been told of the runs that ended (a one-shot command waits
    /// for its email before it exits).
    pub async fn notified(&self) {
        let mut rx = self.inner.telling.subscribe();
        let _ = rx.wait_for(|n| *n == 0).await;
    }

    /// Follows the running backup, if any.
    pub fn attach(&self) -> Option<JobHandle> {
        self.state().current.as_ref().map(|r| JobHandle {
            id: r.info.id.clone(),
            attached: true,
            done: r.done.clone(),
        })
    }
}

fn kind_word(kind: JobKind) -> &'static str {
    match kind {
        JobKind::Backup => "backup",
        JobKind::Verify => "verify",
        JobKind::Restore => "restore",
    }
}

/// Everything the product's backup job needs, resolved by the caller (settings, keyring).
pub struct BackupRequest<Tz: TimeZone> {
    /// The database server (the official driver in the product).
    pub server: Arc<dyn crate::service::DatabaseServer>,
    pub mongo_uri: SecretString,
    pub database: String,
    pub zstd_level: i32,
    pub store: Arc<dyn RemoteStore>,
    /// The destination's public backup key.
    pub recipient: age::x25519::Recipient,
    /// Signs the backup (see [`crate::authenticity`]).
    pub signer: Option<Arc<crate::authenticity::Signer>>,
    /// Applied after a complete backup; `None` keeps everything.
    pub retention: Option<RetentionPolicy>,
    /// Compares a complete backup with the previous good one and keeps the backups before a
    /// loss beyond the given share of a collection's documents (see [`crate::alarms`]); `None`:
    /// no alarms.
    pub alarms: Option<(Arc<crate::alarms::AlarmBook>, f64)>,
    /// Local time zone of retention's days and months.
    pub tz: Tz,
    /// Hears the pipeline's full result (the one-shot CLI prints the manifest from it).
    pub on_result: Option<Box<dyn FnOnce(&pipeline::BackupResult) + Send>>,
    /// Hears the destination's backups after retention (newest first), as this job knows them:
    /// the health watch after a run reads them instead of listing again.
    pub on_listing: Option<Box<dyn FnOnce(Vec<StoredBackup>) + Send>>,
    /// The destination's layout is incremental (docs/FORMAT.md); `None`: one file per backup.
    pub incremental: Option<pipeline::IncrementalOptions>,
}

/// The product's job: back up, then (only after a complete backup) apply the retention policy.
///
/// Cancelling stops the backup at its next look at the token (every stage, every write, just
/// before the commit): the upload is dropped, so no backup appears, and the run is recorded as
/// cancelled. A cancel that lands after that last look finds the backup committed: the run is
/// then what it was (a backup), and retention is skipped.
pub async fn run_backup<Tz>(req: BackupRequest<Tz>, ctx: JobContext) -> JobOutcome
where
    Tz: TimeZone + Send + Sync + 'static,
    Tz::Offset: Send + Sync,
{
    // A chain is written by one process at a time, whatever the machine (`lock`): taken before
    // the listing the backup decides from, held through retention, released at the end (on a
    // blocking thread: releasing it is a request to the destination).
    let lock = match &req.incremental {
        Some(inc) => {
            let (store, database) = (req.store.clone(), req.database.clone());
            let local = inc.lock_dir.clone();
            match tokio::task::spawn_blocking(move || {
                crate::lock::acquire(store, &database, &local)
            })
            .await
            {
                Ok(Ok(lock)) => Some(lock),
                Ok(Err(e)) => {
                    let e = crate::error::ApiError::from(e);
                    let mut o = JobOutcome::failed(e.code.as_str(), e.message);
                    o.database = Some(req.database.clone());
                    o.dest = Some(req.store.location());
                    return o;
                }
                Err(e) => return JobOutcome::failed("internal", e.to_string()),
            }
        }
        None => None,
    };
    let check = lock.as_ref().map(|l| l.check());
    let outcome = run_backup_held(req, ctx, check).await;
    if let Some(lock) = lock {
        let _ = tokio::task::spawn_blocking(move || drop(lock)).await;
    }
    outcome
}

async fn run_backup_held<Tz>(
    req: BackupRequest<Tz>,
    ctx: JobContext,
    lock: Option<crate::lock::LockCheck>,
) -> JobOutcome
where
    Tz: TimeZone + Send + Sync + 'static,
    Tz::Offset: Send + Sync,
{
    let dest = req.store.location();
    let with_context = |mut o: JobOutcome| {
        o.database = Some(req.database.clone());
        o.dest = Some(dest.clone());
        o
    };
    // One listing of the destination serves the progress total (the previous backup's size) and
    // retention afterwards (with the new backup added): each listing is a round trip on Drive.
    let listed = {
        let store = req.store.clone();
        tokio::task::spawn_blocking(move || store.list())
            .await
            .ok()
            .and_then(|r| r.ok())
    };
    let expected_documents = listed.as_ref().and_then(|l| {
        l.iter()
            .find(|b| b.database == req.database)
            .map(|b| b.documents)
    });
    let opts = BackupOptions {
        database: req.database.clone(),
        zstd_level: req.zstd_level,
        expected_documents,
        listed: listed.clone(),
        // The job's clock dates the backup (the system clock in the product).
        started_at: Some(ctx.clock.now()),
        signer: req.signer.clone(),
        cancel: Some(ctx.cancel.clone()),
        incremental: req.incremental.clone(),
        lock,
    };
    // The pipeline looks at the token at every stage and returns once its upload is dropped.
    let result = req
        .server
        .backup(
            req.mongo_uri.expose_secret(),
            &opts,
            req.store.clone(),
            req.recipient.clone(),
            ctx.progress.clone(),
        )
        .await;
    let result = match result {
        Ok(r) => r,
        Err(_) if ctx.cancel.is_cancelled() => return with_context(JobOutcome::cancelled()),
        Err(e) => return with_context(JobOutcome::failed(e.code(), e.to_string())),
    };
    if let Some(tell) = req.on_result {
        tell(&result);
    }
    // Set only when the destination checked the stored bytes while committing; a failed check
    // fails the commit, so it never reaches here as `false`.
    let verified = result.verified.then_some(true);
    if result.manifest.status != BackupStatus::Complete {
        let missing: Vec<&str> = result
            .manifest
            .collections
            .iter()
            .filter(|c| matches!(c.status, CollectionStatus::Failed { .. }))
            .map(|c| c.name.as_str())
            .collect();
        let mut o = JobOutcome::success(result.backup);
        o.outcome = Outcome::Partial;
        o.verified = verified;
        o.error = Some(RunError {
            code: "partial_backup".into(),
            message: format!(
                "some collections could not be backed up: {}",
                missing.join(", ")
            ),
        });
        // Never prune after a run that did not make a complete backup.
        return with_context(o);
    }
    let mut outcome = JobOutcome::success(result.backup);
    outcome.verified = verified;
    // Compared with the previous good backup: a loss keeps that one from retention.
    let protected = match &req.alarms {
        Some((book, share)) => {
            let (book, share, dest, manifest, now) = (
                book.clone(),
                *share,
                dest.clone(),
                result.manifest.clone(),
                ctx.clock.now(),
            );
            tokio::task::spawn_blocking(move || {
                let warnings = book.check(&dest, &manifest, now, share);
                (warnings, book.protected(&dest))
            })
            .await
            .unwrap_or_default()
        }
        None => Default::default(),
    };
    let (warnings, protected) = protected;
    for w in &warnings {
        tracing::warn!(collection = %w.collection, "data-loss alarm: {}", w.describe());
    }
    outcome.warnings = warnings;
    if let Some(policy) = req.retention.filter(|_| !ctx.cancel.is_cancelled()) {
        let store = req.store.clone();
        let now = ctx.clock.now();
        let tz = req.tz.clone();
        let made = outcome.backup.clone();
        let pruned = tokio::task::spawn_blocking(move || {
            let backups = match (listed, made) {
                (Some(mut before), Some(made)) => {
                    before.retain(|b| b.id != made.id);
                    before.push(made);
                    before.sort_by(|a, b| {
                        b.created.cmp(&a.created).then_with(|| b.file.cmp(&a.file))
                    });
                    before
                }
                _ => store.list()?,
            };
            let plan = retention::protect(retention::plan(&backups, &policy, now, &tz), &protected);
            retention::apply(store.as_ref(), &plan).map(|report| (backups, report))
        })
        .await;
        match pruned {
            Ok(Ok((mut backups, report))) => {
                if let Some(tell) = req.on_listing {
                    backups.retain(|b| !report.deleted.iter().any(|d| d.id == b.id));
                    tell(backups);
                }
                outcome.pruned = Some(report.deleted.len() as u32);
                for (b, e) in &report.failed {
                    tracing::warn!(id = %b.id, error = %e, "an old backup could not be deleted");
                }
            }
            Ok(Err(e)) => tracing::warn!(error = %e, "retention was not applied"),
            Err(e) => tracing::warn!(error = %e, "retention was not applied"),
        }
    }
    with_context(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::BackupStatus;
    use std::time::Duration;

    fn stored(id: &str) -> StoredBackup {
        StoredBackup {
            id: id.into(),
            file: format!("driveback-shop-20240101T000000Z-{id}.mdbk"),
            bytes: 1234,
            created: Utc::now(),
            database: "shop".into(),
            documents: 5,
            status: BackupStatus::Complete,
            sha256: String::new(),
            signature: None,
            link: None,
        }
    }

    #[tokio::test]
    async fn start_returns_at_once_and_a_second_start_attaches() {
        let release = Arc::new(Notify::new());
        let runs = Arc::new(AtomicU64::new(0));
        let (r2, n2) = (release.clone(), runs.clone());
        let jobs = Jobs::new(
            move |_ctx: JobContext| {
                let (release, runs) = (r2.clone(), n2.clone());
                async move {
                    runs.fetch_add(1, Ordering::SeqCst);
                    release.notified().await;
                    JobOutcome::success(stored("0000000a"))
                }
            },
            Arc::new(SystemClock),
            None,
        );
        let mut events = jobs.subscribe();
        let first = jobs.start(Trigger::Scheduled);
        assert!(!first.attached);
        assert_eq!(jobs.current().unwrap().id, first.id);
        let second = jobs.start(Trigger::Manual);
        assert!(second.attached);
        assert_eq!(second.id, first.id);
        while runs.load(Ordering::SeqCst) == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        release.notify_one();
        let (a, b) = (first.wait().await, second.wait().await);
        assert_eq!(a, b);
        assert_eq!(a.outcome, Outcome::Success);
        assert_eq!(a.trigger, Trigger::Scheduled);
        assert_eq!(a.backup_id.as_deref(), Some("0000000a"));
        assert_eq!(a.bytes, Some(1234));
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        assert!(jobs.current().is_none());
        assert_eq!(jobs.last_finished(), Some(a));
        assert!(matches!(
            events.recv().await.unwrap(),
            JobEvent::Started { .. }
        ));
        assert!(matches!(
            events.recv().await.unwrap(),
            JobEvent::Finished { .. }
        ));
    }

    #[tokio::test]
    async fn cancel_and_crash_are_recorded() {
        let dir = tempfile::tempdir().unwrap();
        let history = Arc::new(History::new(dir.path().join("history.jsonl")));
        let jobs = Jobs::new(
            |ctx: JobContext| async move {
                if ctx.trigger == Trigger::Manual {
                    panic!("boom");
                }
                ctx.cancel.cancelled().await;
                JobOutcome::cancelled()
            },
            Arc::new(SystemClock),
            Some(history.clone()),
        );
        let h = jobs.start(Trigger::Scheduled);
        assert!(!jobs.cancel(Some("not-this-one")));
        assert!(jobs.current().unwrap().cancelling.eq(&false));
        assert!(jobs.cancel(Some(&h.id)));
        let r = h.wait().await;
        assert_eq!(r.outcome, Outcome::Cancelled);
        assert!(!jobs.cancel(None));
        let r2 = jobs.start(Trigger::Manual).wait().await;
        assert_eq!(r2.outcome, Outcome::Failed);
        assert_eq!(r2.error.as_ref().unwrap().code, "internal");
        assert_eq!(history.load().unwrap(), vec![r, r2.clone()]);
        // A new manager (the next launch) knows the last run from the history.
        let again = Jobs::new(
            |_ctx: JobContext| async { JobOutcome::cancelled() },
            Arc::new(SystemClock),
            Some(history),
        );
        assert_eq!(again.last_finished(), Some(r2));
    }

    #[tokio::test]
    async fn a_cancel_token_wakes_every_waiter() {
        let t = CancelToken::new();
        let waiters: Vec<_> = (0..3)
            .map(|_| {
                let t = t.clone();
                tokio::spawn(async move { t.cancelled().await })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(10)).await;
        t.cancel();
        for w in waiters {
            tokio::time::timeout(Duration::from_secs(5), w)
                .await
                .unwrap()
                .unwrap();
        }
        // Already cancelled: returns at once.
        t.cancelled().await;
    }
}
