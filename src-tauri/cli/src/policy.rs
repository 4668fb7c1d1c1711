//! `driveback prune`, `daemon`, `status` and `config`: retention, automatic backups, health and
//! settings from the command line.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration as StdDuration;

use chrono::{DateTime, Local, Utc};
use clap::{Args, Subcommand};
use driveback_engine::error::EngineError;
use driveback_engine::health::Status;
use driveback_engine::history::Outcome;
use driveback_engine::jobs::{JobEvent, JobKind};
use driveback_engine::retention::{self, Decision};
use driveback_engine::schedule;
use driveback_engine::service::{blocking, BackgroundOptions, Service};
use driveback_engine::settings::{self, Settings, SettingsError};
use driveback_engine::store::StoredBackup;

use super::{mongo_uri, one_line, open_dest, print_json, CliError, CliPassphrase, CliResult};

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

#[derive(Args)]
pub struct PauseArgs {
    /// When automatic backups start again, RFC 3339 (e.g. 2025-06-02T09:00:00+02:00); default:
    /// tomorrow at 09:00 local time.
    #[arg(long)]
    until: Option<String>,
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

fn settings_error(e: SettingsError) -> CliError {
    CliError::new(e.to_string())
}

fn blocking_error(e: tokio::task::JoinError) -> CliError {
    EngineError::Internal(e.to_string()).into()
}

/// The settings the service read; a settings file that does not read is an error here (the
/// service would go on with the defaults).
fn load_settings(svc: &Service) -> CliResult<Settings> {
    match svc.settings_problem() {
        Some(why) => Err(CliError::new(why)),
        None => Ok(svc.settings()),
    }
}

fn dest_of(flag: Option<String>, settings: &Settings) -> CliResult<String> {
    flag.or_else(|| settings.backup.dest.clone()).ok_or_else(|| {
        CliError::new(
            "no destination: pass --dest, or set one with `driveback config set backup.dest folder:/path`",
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

pub async fn prune(svc: &Service, args: PruneArgs) -> CliResult<ExitCode> {
    let settings = load_settings(svc)?;
    let dest = dest_of(args.dest, &settings)?;
    let store = open_dest(svc, &dest)?;
    let policy = settings.retention;
    let now = svc.now();
    let protected = svc.alarms().protected(&store.location());
    let plan = {
        let store = store.clone();
        tokio::task::spawn_blocking(move || {
            store.list().map(|backups| {
                retention::protect(retention::plan(&backups, &policy, now, &Local), &protected)
            })
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
                    retention::RetentionError::Store(s) => CliError::from(s),
                    other => EngineError::Verification(other.to_string()).into(),
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

pub fn config(command: ConfigCommand) -> CliResult<ExitCode> {
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
                .map_err(|m| CliError::new(format!("smtp.preset: {m}")))?;
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
            ))
            .into())
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

/// `driveback pause`: no automatic backup before tomorrow 09:00 (or `--until`).
pub fn pause(svc: &Service, args: PauseArgs) -> CliResult<ExitCode> {
    load_settings(svc)?;
    let until = match args.until {
        Some(text) => settings::parse_paused_until(&text)
            .map_err(|m| CliError::new(format!("--until: {m}")))?
            .ok_or_else(|| {
                CliError::new("--until: give a date and time; `driveback resume` lifts a pause")
            })?,
        None => schedule::pause_until_tomorrow(svc.now(), &Local),
    };
    let until = super::sync(|| svc.pause_automatic_until(until))?;
    println!(
        "Automatic backups paused until {} ({}). `driveback backup` and Backup Now still work; \
         `driveback resume` lifts the pause.",
        driveback_engine::glance::when(until, svc.now(), &Local),
        local_time(until)
    );
    Ok(ExitCode::SUCCESS)
}

/// `driveback resume`: automatic backups as scheduled again.
pub fn resume(svc: &Service) -> CliResult<ExitCode> {
    load_settings(svc)?;
    let was = svc
        .settings()
        .schedule
        .paused_until
        .filter(|t| *t > svc.now());
    super::sync(|| svc.resume_automatic())?;
    println!(
        "{}: {}.",
        if was.is_some() {
            "Automatic backups resumed"
        } else {
            "Automatic backups were not paused"
        },
        schedule::describe(&svc.settings().schedule)
    );
    Ok(ExitCode::SUCCESS)
}

pub async fn status(svc: &Service, args: StatusArgs) -> CliResult<ExitCode> {
    let settings = load_settings(svc)?;
    if let Some(d) = &args.dest {
        // A destination named on the command line must at least be a destination's name.
        driveback_engine::store::parse_dest(d)?;
    }
    let dest = args.dest.clone().or_else(|| settings.backup.dest.clone());
    // The history, and the health: the backups at the destination and, for one with a quota
    // (Google Drive), its free space; the scheduler's heartbeat.
    let report = {
        let svc = svc.clone();
        blocking(move || {
            let records = svc.load_history()?;
            let (_, report) = svc.health_report(&records, args.dest.as_deref(), None)?;
            Ok(report)
        })
        .await?
    };
    let now = svc.now();
    let (h, next_due, scheduler_running) =
        (&report.health, report.next_due, report.scheduler_running);
    let newest = report.latest_backup.clone();
    if args.json {
        print_json(&serde_json::json!({
            "glance": report.glance,
            "status": h.status,
            "checks": h.checks,
            "metrics": h.metrics,
            "schedule": report.schedule_text,
            "next_due": next_due,
            "scheduler_running": scheduler_running,
            "retention": report.retention_text,
            "dest": dest,
            "latest_backup": newest,
            "last_run": report.last_run,
            "last_test_restore": report.last_test_restore,
        }));
    } else {
        let word = |s: Status| match s {
            Status::Healthy => "healthy",
            Status::Warning => "warning",
            Status::Critical => "critical",
        };
        // The same line as the app's home card and its tray.
        println!("{}", report.glance.text);
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
        if let Some(t) = driveback_engine::health::trend_text(m) {
            println!("Trend: {t}");
        }
        if let Some(e) = &m.last_error {
            println!("Last error: {}", one_line(e));
        }
        if let Some(a) = &report.last_test_restore {
            println!(
                "Last restore test: {} of backup {}, {}",
                local_time(a.ended),
                a.backup_id.as_deref().unwrap_or("?"),
                match &a.error {
                    None => "passed".to_string(),
                    Some(e) => format!("not passed: {}", one_line(&e.message)),
                }
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn log_event(event: &JobEvent) {
    match event {
        JobEvent::Started { job } if job.kind == JobKind::Backup => {
            tracing::info!(job = %job.id, trigger = ?job.trigger, "backup started")
        }
        JobEvent::Started { .. } | JobEvent::Progress { .. } | JobEvent::Ended { .. } => {}
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

/// `driveback daemon`: the service's background work (the scheduler, settings reload, the health
/// watch and weekly summary) until SIGINT/SIGTERM.
pub async fn daemon(svc: &Service, args: DaemonArgs) -> CliResult<ExitCode> {
    let settings = load_settings(svc)?;
    let (Some(database), Some(dest)) = (&settings.backup.database, &settings.backup.dest) else {
        return Err(CliError::new(
            "set what to back up and where first: `driveback config set backup.database NAME` and `driveback config set backup.dest folder:/path`",
        ));
    };
    mongo_uri(svc, None)?;
    // The destination and its key, checked (or made) now rather than at 02:00.
    let init = super::sync(|| svc.ensure_key(None, &CliPassphrase))?;
    if let Some(init) = init {
        eprintln!(
            "driveback: created a new backup key for {} ({}); keep your passphrase safe",
            super::location_of(dest),
            init.recipient
        );
    }
    let mut events = svc.jobs().subscribe();
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
    // Settings changed with `driveback config set` (or by the app) apply without a restart.
    let background = svc.spawn_background(BackgroundOptions {
        scheduler: true,
        wait_until_set_up: false,
        tick,
        catch_up_delay: chrono::Duration::seconds(args.catch_up_secs.max(0)),
        reload_every: tick.max(StdDuration::from_millis(200)),
        ..BackgroundOptions::default()
    });
    tracing::info!(
        database = %database,
        dest = %dest,
        history = %svc.history().path().display(),
        "driveback daemon started: {}; {}",
        schedule::describe(&settings.schedule),
        settings.retention.describe()
    );

    #[cfg(unix)]
    {
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                .map_err(|e| EngineError::io("listening for SIGTERM", e))?;
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;

    tracing::info!("stopping");
    background.stop().await;
    if let Some(running) = svc.jobs().attach() {
        svc.jobs().cancel(Some(&running.id));
        if tokio::time::timeout(STOP_GRACE, running.wait())
            .await
            .is_err()
        {
            tracing::warn!("the running backup did not stop in time");
        }
    }
    Ok(ExitCode::SUCCESS)
}
