//! `driveback prune`, `daemon`, `status` and `config`: retention, automatic backups, health and
//! settings from the command line.

use std::io::Write;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration as StdDuration;

use chrono::{DateTime, Local, Utc};
use clap::{Args, Subcommand};
use driveback_engine::container::DEFAULT_ZSTD_LEVEL;
use driveback_engine::error::EngineError;
use driveback_engine::health::Status;
use driveback_engine::history::{History, Outcome};
use driveback_engine::jobs::{
    self, BackupRequest, JobContext, JobEvent, JobOutcome, Jobs, SystemClock,
};
use driveback_engine::keys::{KeyError, KeyRing, PassphrasePurpose, PassphraseSource};
use driveback_engine::notify::email::EmailNotifier;
use driveback_engine::retention::{self, Decision};
use driveback_engine::schedule;
use driveback_engine::scheduler::{self, SchedulerConfig, SchedulerStatus};
use driveback_engine::secrets::SecretStore;
use driveback_engine::settings::{self, Settings, SettingsError};
use driveback_engine::status::{self, DestinationSeen};
use driveback_engine::store::StoredBackup;
use secrecy::SecretString;

use super::{mongo_uri, one_line, open_dest, print_json, CliPassphrase};

#[derive(Args)]
pub struct PruneArgs {
    /// Where backups live (default: the `backup.dest` setting).
    #[arg(long)]
    dest: Option<String>,
    /// Show what would be kept and deleted, and why, without deleting anything.
    #[arg(long)]
    dry_run: bool,
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub struct DaemonArgs {
    /// How often the clock is checked, in milliseconds (for tests).
    #[arg(long, hide = true, default_value_t = 30_000)]
    tick_ms: u64,
    /// Delay before a missed backup is caught up, in seconds (for tests).
    #[arg(long, hide = true, default_value_t = 120)]
    catch_up_secs: i64,
}

#[derive(Args)]
pub struct StatusArgs {
    /// Where backups live (default: the `backup.dest` setting).
    #[arg(long)]
    dest: Option<String>,
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand)]
pub enum ConfigCommand {
    /// Print a setting, or all of them.
    Get { key: Option<String> },
    /// Change a setting (an empty value unsets text settings).
    Set { key: String, value: String },
    /// Store a secret setting (smtp.password) in the OS keyring, read from standard input.
    SetSecret { key: String },
}

fn settings_error(e: SettingsError) -> EngineError {
    EngineError::Input(e.to_string())
}

fn blocking_error(e: tokio::task::JoinError) -> EngineError {
    EngineError::Internal(e.to_string())
}

fn load_settings() -> Result<Settings, EngineError> {
    Settings::load().map_err(settings_error)
}

fn dest_of(flag: Option<String>, settings: &Settings) -> Result<String, EngineError> {
    flag.or_else(|| settings.backup.dest.clone()).ok_or_else(|| {
        EngineError::Input(
            "no destination: pass --dest, or set one with `driveback config set backup.dest folder:/path`"
                .into(),
        )
    })
}

fn local_time(t: DateTime<Utc>) -> String {
    t.with_timezone(&Local)
        .format("%Y-%m-%d %H:%M %:z")
        .to_string()
}

fn status_word(s: driveback_engine::manifest::BackupStatus) -> &'static str {
    match s {
        driveback_engine::manifest::BackupStatus::Complete => "complete",
        driveback_engine::manifest::BackupStatus::Partial => "partial",
    }
}

fn decision_json(d: &Decision) -> serde_json::Value {
    let b = &d.backup;
    serde_json::json!({
        "id": b.id,
        "file": b.file,
        "created": b.created,
        "database": b.database,
        "status": b.status,
        "bytes": b.bytes,
        "keep": d.keep,
        "reasons": d.reasons.iter().map(|r| {
            let mut v = serde_json::to_value(r).expect("reasons serialise");
            v["text"] = serde_json::Value::from(r.to_string());
            v
        }).collect::<Vec<_>>(),
    })
}

pub async fn prune(args: PruneArgs) -> Result<ExitCode, EngineError> {
    let settings = load_settings()?;
    let dest = dest_of(args.dest, &settings)?;
    let store = open_dest(&dest)?;
    let policy = settings.retention;
    let now = Utc::now();
    let plan = {
        let store = store.clone();
        tokio::task::spawn_blocking(move || {
            store
                .list()
                .map(|backups| retention::plan(&backups, &policy, now, &Local))
        })
        .await
        .map_err(blocking_error)??
    };
    let report = if args.dry_run {
        None
    } else {
        let store = store.clone();
        let plan = plan.clone();
        Some(
            tokio::task::spawn_blocking(move || retention::apply(store.as_ref(), &plan))
                .await
                .map_err(blocking_error)?
                .map_err(|e| match e {
                    retention::RetentionError::Store(s) => EngineError::Store(s),
                    other => EngineError::Verification(other.to_string()),
                })?,
        )
    };
    let doomed: Vec<&StoredBackup> = plan.iter().filter(|d| !d.keep).map(|d| &d.backup).collect();
    let doomed_bytes: u64 = doomed.iter().map(|b| b.bytes).sum();
    if args.json {
        let mut out = serde_json::json!({
            "dest": store.location(),
            "dry_run": args.dry_run,
            "policy": policy,
            "description": policy.describe(),
            "decisions": plan.iter().map(decision_json).collect::<Vec<_>>(),
        });
        if let Some(r) = &report {
            out["deleted"] = r.deleted.iter().map(|b| b.id.clone()).collect();
            out["skipped"] = r
                .skipped
                .iter()
                .map(|(b, why)| serde_json::json!({"id": b.id, "reason": why}))
                .collect();
            out["failed"] = r
                .failed
                .iter()
                .map(|(b, e)| serde_json::json!({"id": b.id, "error": e}))
                .collect();
        }
        print_json(&out);
    } else {
        println!("{}", policy.describe());
        if plan.is_empty() {
            println!("No backups at {} yet.", store.location());
        }
        let mut out = std::io::stdout().lock();
        for d in &plan {
            let b = &d.backup;
            let reasons: Vec<String> = d.reasons.iter().map(|r| r.to_string()).collect();
            let _ = writeln!(
                out,
                "{:<6}  {:<8}  {}  {:<8}  {}  {}",
                if d.keep { "keep" } else { "delete" },
                b.id,
                local_time(b.created),
                status_word(b.status),
                b.database,
                reasons.join("; ")
            );
        }
        drop(out);
        match &report {
            _ if doomed.is_empty() => println!("Nothing to delete."),
            None => println!(
                "Would delete {} of {} backups ({:.1} MB). Run without --dry-run to delete them.",
                doomed.len(),
                plan.len(),
                doomed_bytes as f64 / 1e6
            ),
            Some(r) => {
                println!("Deleted {} of {} backups.", r.deleted.len(), plan.len());
                for (b, why) in &r.skipped {
                    println!("Left {} alone: {why}.", b.id);
                }
            }
        }
    }
    if let Some(r) = &report {
        for (b, e) in &r.failed {
            eprintln!(
                "driveback: error: could not delete {}: {}",
                b.id,
                one_line(e)
            );
        }
        if !r.failed.is_empty() {
            return Ok(ExitCode::FAILURE);
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn config(command: ConfigCommand) -> Result<ExitCode, EngineError> {
    let path = settings::settings_path().map_err(settings_error)?;
    let text = |v: serde_json::Value| match v {
        serde_json::Value::String(s) => s,
        serde_json::Value::Null => String::new(),
        other => other.to_string(),
    };
    match command {
        ConfigCommand::Get { key: Some(key) } => {
            let settings = Settings::load_from(&path).map_err(settings_error)?;
            println!("{}", text(settings.get_key(&key).map_err(settings_error)?));
        }
        ConfigCommand::Get { key: None } => {
            let settings = Settings::load_from(&path).map_err(settings_error)?;
            for key in settings::KEYS {
                let v = (key.get)(&settings);
                let shown = if v.is_null() {
                    "(not set)".to_string()
                } else {
                    text(v)
                };
                println!("{} = {shown}", key.name);
            }
            eprintln!("driveback: settings file: {}", path.display());
        }
        ConfigCommand::Set { key, value } if key == "smtp.preset" => {
            // Not a setting of its own: fills in smtp.host, smtp.port and smtp.security.
            let mut settings = Settings::load_from(&path).map_err(settings_error)?;
            settings
                .smtp
                .apply_preset(&value)
                .map_err(|m| EngineError::Input(format!("smtp.preset: {m}")))?;
            settings.save_to(&path).map_err(settings_error)?;
            for k in ["smtp.host", "smtp.port", "smtp.security"] {
                println!(
                    "{k} = {}",
                    text(settings.get_key(k).map_err(settings_error)?)
                );
            }
        }
        ConfigCommand::SetSecret { key } => {
            return Err(EngineError::Internal(format!(
                "config set-secret {key} is handled with the keyring"
            )))
        }
        ConfigCommand::Set { key, value } => {
            let mut settings = Settings::load_from(&path).map_err(settings_error)?;
            settings.set_key(&key, &value).map_err(settings_error)?;
            settings.save_to(&path).map_err(settings_error)?;
            let shown = text(settings.get_key(&key).map_err(settings_error)?);
            println!("{key} = {shown}");
            if key.starts_with("retention.") {
                println!("{}", settings.retention.describe());
            } else if key.starts_with("schedule.") {
                println!("{}", schedule::describe(&settings.schedule));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn heartbeat_path() -> Result<std::path::PathBuf, EngineError> {
    Ok(settings::data_dir()
        .map_err(settings_error)?
        .join(scheduler::HEARTBEAT_FILE))
}

fn open_history() -> Result<History, EngineError> {
    History::open_default().map_err(settings_error)
}

pub async fn status(args: StatusArgs) -> Result<ExitCode, EngineError> {
    let settings = load_settings()?;
    let history = open_history()?;
    let records = tokio::task::spawn_blocking(move || history.load())
        .await
        .map_err(blocking_error)?
        .map_err(|e| EngineError::Input(e.to_string()))?;
    let dest = args.dest.or_else(|| settings.backup.dest.clone());
    // The backups there and, for a destination with a quota (Google Drive), its free space.
    let opened = dest.as_deref().map(open_dest);
    let seen = tokio::task::spawn_blocking(move || status::observe_destination(opened))
        .await
        .map_err(blocking_error)??;
    let heartbeat = SchedulerStatus::read(&heartbeat_path()?);
    let now = Utc::now();
    let report = status::report(
        &records,
        &settings,
        &seen,
        None,
        heartbeat.as_ref(),
        now,
        &Local,
    );
    let (h, next_due, scheduler_running) =
        (&report.health, report.next_due, report.scheduler_running);
    let newest = report.latest_backup.clone();
    if args.json {
        print_json(&serde_json::json!({
            "status": h.status,
            "checks": h.checks,
            "metrics": h.metrics,
            "schedule": report.schedule_text,
            "next_due": next_due,
            "scheduler_running": scheduler_running,
            "retention": report.retention_text,
            "dest": dest,
            "latest_backup": newest,
            "last_run": records.last(),
        }));
    } else {
        let word = |s: Status| match s {
            Status::Healthy => "healthy",
            Status::Warning => "warning",
            Status::Critical => "critical",
        };
        println!("Status: {}", word(h.status));
        for c in &h.checks {
            println!("  [{:<8}] {}", word(c.status), c.message);
        }
        let when = match next_due {
            None => String::new(),
            Some(t) if t <= now => "; a backup is due now".to_string(),
            Some(t) => format!("; next backup {}", local_time(t)),
        };
        let who = if next_due.is_some() && !scheduler_running {
            " (nothing runs it: keep Driveback open, or run `driveback daemon`)"
        } else {
            ""
        };
        println!(
            "Schedule: {}{when}{who}",
            schedule::describe(&settings.schedule)
        );
        println!("Retention: {}", settings.retention.describe());
        if let Some(b) = &newest {
            println!(
                "Latest backup: {} of {}, {} ({}, {:.1} MB)",
                b.id,
                b.database,
                local_time(b.created),
                status_word(b.status),
                b.bytes as f64 / 1e6
            );
        }
        let m = &h.metrics;
        if m.runs_30d > 0 {
            println!(
                "Last 30 days: {} runs{}{}",
                m.runs_30d,
                m.success_rate_30d
                    .map(|r| format!(", {:.0}% succeeded", r * 100.0))
                    .unwrap_or_default(),
                m.average_interval_hours
                    .map(|x| format!(", a good backup every {x:.1} hours on average"))
                    .unwrap_or_default()
            );
        }
        if let Some(e) = &m.last_error {
            println!("Last error: {}", one_line(e));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The daemon never prompts: a destination without a backup key is an error for the run.
struct NoPrompt;

impl PassphraseSource for NoPrompt {
    fn passphrase(&self, _purpose: PassphrasePurpose) -> Result<SecretString, KeyError> {
        Err(KeyError::NoPassphrase(
            "the daemon does not ask for passphrases".into(),
        ))
    }
}

/// One scheduled (or attached manual) run, with the settings as they are now.
async fn daemon_run(settings: Settings, uri: SecretString, ctx: JobContext) -> JobOutcome {
    let (Some(database), Some(dest)) = (settings.backup.database, settings.backup.dest) else {
        return JobOutcome::failed(
            "bad_input",
            "no database or destination in the settings (driveback config set backup.database / backup.dest)",
        );
    };
    let store = match open_dest(&dest) {
        Ok(s) => s,
        Err(e) => return JobOutcome::failed(e.code(), e.to_string()),
    };
    let recipient = {
        let store = store.clone();
        tokio::task::spawn_blocking(move || {
            KeyRing::new(store.as_ref(), None, &NoPrompt).recipient()
        })
        .await
    };
    let recipient = match recipient {
        Ok(Ok(Some(r))) => r,
        Ok(Ok(None)) => {
            return JobOutcome::failed(
                "no_key",
                format!("{dest} has no backup key: run `driveback key init --dest {dest}`"),
            )
        }
        Ok(Err(e)) => {
            let e = EngineError::from(e);
            return JobOutcome::failed(e.code(), e.to_string());
        }
        Err(e) => return JobOutcome::failed("internal", e.to_string()),
    };
    jobs::run_backup(
        BackupRequest {
            mongo_uri: uri,
            database,
            zstd_level: DEFAULT_ZSTD_LEVEL,
            store,
            recipient,
            retention: Some(settings.retention),
            tz: Local,
        },
        ctx,
    )
    .await
}

fn log_event(event: &JobEvent) {
    match event {
        JobEvent::Started { job } => {
            tracing::info!(job = %job.id, trigger = ?job.trigger, "backup started")
        }
        JobEvent::Progress { .. } => {}
        JobEvent::Finished { record: r } => {
            let error = r.error.as_ref().map(|e| e.message.as_str()).unwrap_or("");
            match r.outcome {
                Outcome::Success => tracing::info!(
                    job = %r.job_id,
                    backup = r.backup_id.as_deref().unwrap_or(""),
                    documents = r.documents.unwrap_or(0),
                    bytes = r.bytes.unwrap_or(0),
                    pruned = r.pruned.unwrap_or(0),
                    "backup succeeded"
                ),
                Outcome::Partial => tracing::warn!(job = %r.job_id, error, "backup partial"),
                Outcome::Failed => tracing::error!(job = %r.job_id, error, "backup failed"),
                Outcome::Cancelled => tracing::warn!(job = %r.job_id, "backup cancelled"),
            }
        }
    }
}

/// How long a running backup gets to stop after SIGINT/SIGTERM.
const STOP_GRACE: StdDuration = StdDuration::from_secs(60);

pub async fn daemon(
    args: DaemonArgs,
    secrets: Option<&dyn SecretStore>,
) -> Result<ExitCode, EngineError> {
    let settings = load_settings()?;
    let (Some(database), Some(dest)) = (&settings.backup.database, &settings.backup.dest) else {
        return Err(EngineError::Input(
            "set what to back up and where first: `driveback config set backup.database NAME` and `driveback config set backup.dest folder:/path`".into(),
        ));
    };
    let uri = SecretString::from(mongo_uri(None, secrets)?);
    // The destination and its key, checked (or made) now rather than at 02:00.
    let store = open_dest(dest)?;
    let (_, init) =
        super::sync(|| KeyRing::new(store.as_ref(), secrets, &CliPassphrase).recipient_or_init())?;
    if let Some(init) = init {
        eprintln!(
            "driveback: created a new backup key for {} ({}); keep your passphrase safe",
            store.location(),
            init.recipient
        );
    }
    let shared = Arc::new(Mutex::new(settings.clone()));
    let runner = {
        let shared = shared.clone();
        move |ctx: JobContext| {
            let settings = shared.lock().unwrap_or_else(|p| p.into_inner()).clone();
            daemon_run(settings, uri.clone(), ctx)
        }
    };
    let history = Arc::new(open_history()?);
    let jobs = Jobs::new(runner, Arc::new(SystemClock), Some(history.clone()));
    // Email reports, sent in the background; a missing password is reported when one is due.
    let mailer = settings.smtp.is_configured().then(|| {
        let password = driveback_engine::notify::mail::smtp_password(secrets).unwrap_or_else(|e| {
            tracing::warn!(error = %e, "email reports: no SMTP password");
            None
        });
        Arc::new(
            EmailNotifier::new(settings.clone(), password, Some(history.clone()))
                .with_store(store.clone()),
        )
    });
    if let Some(m) = &mailer {
        jobs.add_notifier(Arc::new(m.clone()));
    }
    let mut events = jobs.subscribe();
    tokio::spawn(async move {
        loop {
            match events.recv().await {
                Ok(e) => log_event(&e),
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(_) => break,
            }
        }
    });
    let tick = StdDuration::from_millis(args.tick_ms.max(1));
    let sched = scheduler::spawn(
        jobs.clone(),
        settings.schedule.clone(),
        Arc::new(SystemClock),
        Local,
        SchedulerConfig {
            tick,
            catch_up_delay: chrono::Duration::seconds(args.catch_up_secs.max(0)),
            heartbeat_file: Some(heartbeat_path()?),
            ..SchedulerConfig::default()
        },
    );
    tracing::info!(
        database = %database,
        dest = %dest,
        history = %history.path().display(),
        "driveback daemon started: {}; {}",
        schedule::describe(&settings.schedule),
        settings.retention.describe()
    );

    #[cfg(unix)]
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| EngineError::io("listening for SIGTERM", e))?;
    let stopped = async {
        #[cfg(unix)]
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = terminate.recv() => {}
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
    };
    tokio::pin!(stopped);
    // Settings changed with `driveback config set` (or by the app) apply without a restart.
    let mut reload = tokio::time::interval(tick.max(StdDuration::from_millis(200)));
    let mut last_reload_error = String::new();
    // The weekly summary goes out on Monday, or at the first look after it when the computer was
    // off (each look is cheap: it reads the history).
    let mut summary = tokio::time::interval(StdDuration::from_secs(15 * 60));
    loop {
        tokio::select! {
            _ = &mut stopped => break,
            _ = summary.tick(), if mailer.is_some() => {
                let m = mailer.clone().expect("checked by the guard");
                let settings = shared.lock().unwrap_or_else(|p| p.into_inner()).clone();
                tokio::task::spawn_blocking(move || {
                    let sent = m.weekly_summary_if_due(
                        |records| {
                            let seen = DestinationSeen::default();
                            Some(status::report(records, &settings, &seen, None, None, Utc::now(), &Local).health)
                        },
                        Utc::now(),
                    );
                    if let Some(r) = sent {
                        tracing::info!(outcome = r.outcome.label(), "weekly summary");
                    }
                });
            }
            _ = reload.tick() => {
                match Settings::load() {
                    Ok(new) => {
                        last_reload_error.clear();
                        let mut cur = shared.lock().unwrap_or_else(|p| p.into_inner());
                        if *cur != new {
                            tracing::info!("settings changed: {}; {}", schedule::describe(&new.schedule), new.retention.describe());
                            sched.set_schedule(new.schedule.clone());
                            if let Some(m) = &mailer {
                                m.set_settings(new.clone());
                            }
                            *cur = new;
                        }
                    }
                    Err(e) => {
                        let msg = e.to_string();
                        if msg != last_reload_error {
                            tracing::warn!("keeping the previous settings: {msg}");
                            last_reload_error = msg;
                        }
                    }
                }
            }
        }
    }
    tracing::info!("stopping");
    sched.stop().await;
    if let Some(running) = jobs.attach() {
        jobs.cancel(Some(&running.id));
        if tokio::time::timeout(STOP_GRACE, running.wait())
            .await
            .is_err()
        {
            tracing::warn!("the running backup did not stop in time");
        }
    }
    Ok(ExitCode::SUCCESS)
}
