//! Backups while the app is open: the engine's one-job-at-a-time `Jobs` runs every backup (Backup
//! Now and the scheduler's), the engine's scheduler starts them when a slot is due (a slot missed
//! while the app was closed or the computer slept runs once, shortly after), and a watch looks at
//! the health every half hour to raise desktop alerts and send the weekly summary email.

use std::sync::Arc;
use std::time::Duration;

use chrono::{Local, Utc};
use driveback_engine::container::DEFAULT_ZSTD_LEVEL;
use driveback_engine::health::DestinationProblem;
use driveback_engine::history::{Outcome, RunRecord};
use driveback_engine::jobs::{self, BackupRequest, JobContext, JobEvent, JobOutcome, SystemClock};
use driveback_engine::notify::email::EmailNotifier;
use driveback_engine::notify::mail::smtp_password;
use driveback_engine::progress::{Progress, ProgressSink};
use driveback_engine::scheduler::{self, SchedulerConfig, SchedulerStatus, HEARTBEAT_FILE};
use driveback_engine::status::{self, DestinationSeen, Report};

use crate::bridge::{self, JobKind};
use crate::commands::backups::plan_backup;
use crate::error::ApiError;
use crate::notify::{alerts, AlertMemory, DesktopNotifier};
use crate::state::{AppState, Hooks, Shared};

/// How the background parts run.
#[derive(Clone, Debug)]
pub struct StartOptions {
    /// Run the scheduler (off in command tests that start backups themselves).
    pub scheduler: bool,
    pub tick: Duration,
    pub catch_up_delay: chrono::Duration,
    /// How often the health watch looks.
    pub watch_every: Duration,
}

impl Default for StartOptions {
    fn default() -> Self {
        StartOptions {
            scheduler: true,
            tick: SchedulerConfig::default().tick,
            catch_up_delay: SchedulerConfig::default().catch_up_delay,
            watch_every: Duration::from_secs(30 * 60),
        }
    }
}

impl StartOptions {
    /// The defaults, with `DRIVEBACK_SCHEDULER_TICK_MS` and `DRIVEBACK_CATCH_UP_SECS` (the
    /// end-to-end tests shorten them).
    pub fn from_env() -> Self {
        let num = |k: &str| {
            std::env::var(k)
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok())
        };
        let mut o = StartOptions::default();
        if let Some(ms) = num("DRIVEBACK_SCHEDULER_TICK_MS") {
            o.tick = Duration::from_millis(ms.max(10));
        }
        if let Some(s) = num("DRIVEBACK_CATCH_UP_SECS") {
            o.catch_up_delay = chrono::Duration::seconds(s as i64);
        }
        o
    }
}

/// Sets up the backup jobs, notifications, the scheduler and the health watch. Call once, on the
/// async runtime or from the app's setup.
pub fn start(state: &Shared, hooks: Hooks, opts: StartOptions) {
    state.set_hooks(hooks);
    let weak = Arc::downgrade(state);
    let runner = move |ctx: JobContext| {
        let weak = weak.clone();
        async move {
            match weak.upgrade() {
                Some(state) => app_backup(state, ctx).await,
                None => JobOutcome::failed("internal", "Driveback is closing"),
            }
        }
    };
    let backups = driveback_engine::jobs::Jobs::new(
        runner,
        Arc::new(SystemClock),
        Some(state.history.clone()),
    );
    backups.add_notifier(Arc::new(DesktopNotifier {
        state: Arc::downgrade(state),
    }));
    let password = smtp_password(state.secrets()).unwrap_or_else(|e| {
        tracing::warn!(error = %e, "email reports: no SMTP password");
        None
    });
    let email = Arc::new(EmailNotifier::new(
        state.settings(),
        password,
        Some(state.history.clone()),
    ));
    backups.add_notifier(Arc::new(EmailCopy {
        email: email.clone(),
        state: Arc::downgrade(state),
    }));
    let _ = state.email.set(email);
    state.set_backups(backups.clone());

    let _ = state.start_options.set(opts.clone());
    let state = state.clone();
    tauri::async_runtime::spawn(async move {
        let mut events = backups.subscribe();
        // Automatic backups start once Driveback is set up (or has made backups before): a new
        // install has no missed slot to catch up while the user is still choosing a database.
        let set_up = {
            let state = state.clone();
            tokio::task::spawn_blocking(move || {
                !state.history.load().unwrap_or_default().is_empty() || is_set_up(&state)
            })
            .await
            .unwrap_or(false)
        };
        if set_up {
            ensure_scheduler(&state);
        }
        let memory = Arc::new(AlertMemory::default());
        let mut watch = tokio::time::interval(opts.watch_every);
        loop {
            tokio::select! {
                event = events.recv() => match event {
                    Ok(JobEvent::Started { job }) => state.emit(
                        "job-started",
                        serde_json::json!({ "job_id": job.id, "trigger": job.trigger }),
                    ),
                    Ok(JobEvent::Finished { record }) => {
                        state.jobs.end_backup(&record.job_id, ui_event(&record));
                        ensure_scheduler(&state);
                        state.emit("state-changed", serde_json::Value::Null);
                        spawn_watch(&state, &memory);
                    }
                    Ok(JobEvent::Progress { .. }) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                    Err(_) => break,
                },
                _ = watch.tick() => spawn_watch(&state, &memory),
            }
        }
    });
}

/// Whether a backup could run: a database, a destination and its backup key. Blocking.
fn is_set_up(state: &AppState) -> bool {
    crate::commands::backups::plan_backup(state).is_ok()
}

/// Starts the scheduler unless it runs (or the options say not to). Needs the async runtime.
pub fn ensure_scheduler(state: &Shared) {
    let Some(opts) = state.start_options.get().filter(|o| o.scheduler) else {
        return;
    };
    let Ok(backups) = state.backups() else {
        return;
    };
    let mut slot = state.scheduler.lock().unwrap();
    if slot.is_some() {
        return;
    }
    *slot = Some(scheduler::spawn(
        backups.clone(),
        state.settings().schedule,
        Arc::new(SystemClock),
        Local,
        SchedulerConfig {
            tick: opts.tick,
            catch_up_delay: opts.catch_up_delay,
            heartbeat_file: Some(state.data_dir().join(HEARTBEAT_FILE)),
            ..SchedulerConfig::default()
        },
    ));
}

/// The email notifier, told of the store backups are read from for "email a copy".
struct EmailCopy {
    email: Arc<EmailNotifier>,
    state: std::sync::Weak<AppState>,
}

impl driveback_engine::notify::Notifier for EmailCopy {
    fn notify(&self, event: &driveback_engine::notify::Event) {
        if !self.email.wants(event) {
            return;
        }
        let (email, state, event) = (self.email.clone(), self.state.clone(), event.clone());
        // Opening the destination may refresh the Google sign-in: not on the caller's thread.
        std::thread::spawn(move || {
            if let Some(store) = state.upgrade().and_then(|s| s.store().ok()) {
                email.set_store(store);
            }
            driveback_engine::notify::Notifier::notify(&email, &event);
        });
    }
}

/// What the followers of a backup hear when it ends.
fn ui_event(record: &driveback_engine::history::RunRecord) -> bridge::JobEvent {
    let job_id = record.job_id.clone();
    let error = || {
        let e = record
            .error
            .clone()
            .unwrap_or(driveback_engine::history::RunError {
                code: "internal".into(),
                message: "the backup did not finish".into(),
            });
        ApiError::new(&e.code, e.message)
    };
    match record.outcome {
        Outcome::Success => bridge::JobEvent::Finished {
            job_id,
            kind: JobKind::Backup,
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
        Outcome::Partial | Outcome::Failed => bridge::JobEvent::Failed {
            job_id,
            kind: JobKind::Backup,
            error: error(),
        },
        Outcome::Cancelled => bridge::JobEvent::Cancelled {
            job_id,
            kind: JobKind::Backup,
        },
    }
}

/// Both the engine's subscribers and the UI's progress bar hear a backup's progress.
struct Tee(Vec<Arc<dyn ProgressSink>>);

impl ProgressSink for Tee {
    fn report(&self, p: Progress) {
        for s in &self.0 {
            s.report(p.clone());
        }
    }
}

/// One backup run, as the engine's job runner: waits while a verify or a restore holds the slot,
/// resolves what to back up and where with the settings as they are now, then runs the engine's
/// backup job (backup, then retention after a complete backup).
async fn app_backup(state: Shared, ctx: JobContext) -> JobOutcome {
    let progress = loop {
        if let Some(p) = state.jobs.begin_backup(&ctx.id) {
            break p;
        }
        tokio::select! {
            _ = ctx.cancel.cancelled() => return JobOutcome::cancelled(),
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
        }
    };
    let planned = {
        let state = state.clone();
        tokio::task::spawn_blocking(move || plan_backup(&state)).await
    };
    let plan = match planned {
        Ok(Ok(p)) => p,
        Ok(Err(e)) => {
            let mut o = JobOutcome::failed(&e.code, e.message);
            o.database = state.database();
            o.dest = state.dest();
            return o;
        }
        Err(e) => return JobOutcome::failed("internal", e.to_string()),
    };
    let ctx = JobContext {
        progress: Arc::new(Tee(vec![ctx.progress.clone(), progress])),
        ..ctx
    };
    let settings = state.settings();
    jobs::run_backup(
        BackupRequest {
            mongo_uri: plan.uri,
            database: plan.database,
            zstd_level: DEFAULT_ZSTD_LEVEL,
            store: plan.store,
            recipient: plan.recipient,
            retention: Some(settings.retention),
            tz: Local,
        },
        ctx,
    )
    .await
}

/// Looks at the health in the background: raises the alerts that are new, and sends the weekly
/// summary when it is due.
fn spawn_watch(state: &Shared, memory: &Arc<AlertMemory>) {
    let (state, memory) = (state.clone(), memory.clone());
    tauri::async_runtime::spawn_blocking(move || {
        let report = load_history(&state).and_then(|records| health_report(&state, &records, None));
        let (seen, report) = match report {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, "the health watch could not look");
                return;
            }
        };
        for event in memory.fresh(alerts(&seen, &report)) {
            crate::notify::tell(&state, &event);
        }
        if let Some(email) = state.email.get() {
            let health = report.health.clone();
            email.weekly_summary_if_due(move |_| Some(health), Utc::now());
        }
    });
}

/// The run history, oldest first. Blocking.
pub fn load_history(state: &AppState) -> Result<Vec<RunRecord>, ApiError> {
    state
        .history
        .load()
        .map_err(|e| ApiError::new("io_error", e.to_string()))
}

/// The health report now: history, settings, the destination (listed, with its quota) and the
/// scheduler's heartbeat. Blocking.
pub fn health_report(
    state: &AppState,
    records: &[RunRecord],
    database: Option<Result<(), String>>,
) -> Result<(DestinationSeen, Report), ApiError> {
    let settings = state.settings();
    // A destination that cannot be opened is a finding of the health, not an error here.
    let seen = match state.dest().map(|_| state.store()) {
        None => DestinationSeen::default(),
        Some(Ok(store)) => status::observe_destination(Some(Ok(store)))?,
        Some(Err(e)) => DestinationSeen {
            listed: Some(Err(if status::is_sign_in_problem(&e.code) {
                status::reconnect_needed(e.message)
            } else {
                DestinationProblem::Unreachable(e.message)
            })),
            quota: None,
        },
    };
    let heartbeat = SchedulerStatus::read(&state.data_dir().join(HEARTBEAT_FILE));
    let report = status::report(
        records,
        &settings,
        &seen,
        database,
        heartbeat.as_ref(),
        Utc::now(),
        &Local,
    );
    Ok((seen, report))
}
