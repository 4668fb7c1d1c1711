//! `driveback`: the headless command line of Driveback, for servers and scripts. It drives the
//! same engine as the desktop app.

mod google;
mod notify;
mod policy;

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use driveback_engine::container::{InputKind, DEFAULT_ZSTD_LEVEL};
use driveback_engine::error::EngineError;
use driveback_engine::history::{Outcome, RunError, RunKind, RunRecord, Trigger};
use driveback_engine::keys::{KeyError, KeyRing, PassphrasePurpose, PassphraseSource};
use driveback_engine::manifest::BackupStatus;
use driveback_engine::pipeline::{self, BackupOptions, ExportFormat, RestoreOptions, Source};
use driveback_engine::progress::{NoProgress, Progress, ProgressSink};
use driveback_engine::secrets::{self, KeyringSecretStore, SecretStore};
use driveback_engine::store::RemoteStore;
use secrecy::{ExposeSecret, SecretString};

#[derive(Parser)]
#[command(name = "driveback", version, about = "Encrypted MongoDB backups to Google Drive or a folder", long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Back up a database to a destination.
    Backup {
        /// MongoDB connection string (or DRIVEBACK_MONGO_URI, or the one saved in the OS keyring).
        /// Prefer those two for a URI with credentials: process arguments are visible to others.
        #[arg(long)]
        mongo_uri: Option<String>,
        /// The database to back up.
        #[arg(long)]
        db: String,
        /// Where backups live: folder:/path
        #[arg(long)]
        dest: String,
        /// zstd level (1-19).
        #[arg(long, default_value_t = DEFAULT_ZSTD_LEVEL, value_parser = clap::value_parser!(i32).range(1..=19))]
        level: i32,
        #[arg(long)]
        json: bool,
    },
    /// List the backups at a destination, newest first.
    List {
        #[arg(long)]
        dest: String,
        #[arg(long)]
        json: bool,
    },
    /// Replace a database's collections with a backup's (verified in staging first).
    Restore {
        /// Backup id, file name, "latest", or the path of a backup or mongodump archive file.
        #[arg(long)]
        backup: String,
        #[arg(long)]
        dest: Option<String>,
        #[arg(long)]
        mongo_uri: Option<String>,
        /// The database to restore into (may differ from the one backed up).
        #[arg(long)]
        db: String,
        /// Only these collections (comma-separated).
        #[arg(long, value_delimiter = ',')]
        collections: Option<Vec<String>>,
        /// Confirm that the target's collections are replaced.
        #[arg(long)]
        yes: bool,
        #[arg(long)]
        json: bool,
    },
    /// Download, decrypt and check a backup's counts and checksums without touching a database.
    Verify {
        #[arg(long)]
        backup: String,
        #[arg(long)]
        dest: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Write a backup out as a plain mongodump archive or as Extended JSON files.
    Export {
        #[arg(long)]
        backup: String,
        #[arg(long)]
        dest: Option<String>,
        #[arg(long)]
        out: PathBuf,
        #[arg(long, value_enum, default_value = "archive")]
        format: ExportFormat,
    },
    /// Manage the destination's backup key.
    Key {
        #[command(subcommand)]
        command: KeyCommand,
    },
    /// Connect Google Drive: sign in with Google in your browser.
    Connect(google::ConnectArgs),
    /// Show the connected Google account, its storage and the access Driveback has.
    Whoami(google::WhoamiArgs),
    /// Revoke Driveback's access to Google Drive and forget the sign-in on this computer.
    Disconnect,
    /// Delete the backups the retention policy does not keep (--dry-run: only show why).
    Prune(policy::PruneArgs),
    /// Run automatic backups on the configured schedule until stopped (SIGINT/SIGTERM).
    Daemon(policy::DaemonArgs),
    /// Health of the backups: checks, latest backup, next backup, recent runs.
    Status(policy::StatusArgs),
    /// Send a test email with the SMTP settings (smtp.*).
    TestEmail,
    /// Read or change settings (schedule, what to back up, retention, email).
    Config {
        #[command(subcommand)]
        command: policy::ConfigCommand,
    },
}

#[derive(Subcommand)]
enum KeyCommand {
    /// Create the backup key of a destination, protected by your passphrase.
    Init {
        #[arg(long)]
        dest: String,
    },
    /// Change the passphrase that protects the backup key.
    Passwd {
        #[arg(long)]
        dest: String,
    },
    /// Show the backup key's public part, or with --secret the key itself for safekeeping.
    Show {
        #[arg(long)]
        dest: String,
        #[arg(long)]
        secret: bool,
    },
}

/// Exit code of a backup that completed with some collections missing.
const EXIT_PARTIAL: u8 = 3;

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("DRIVEBACK_LOG").unwrap_or_else(|_| {
                // The daemon's log is its output.
                let level = if matches!(cli.command, Command::Daemon(_)) {
                    "info"
                } else {
                    "warn"
                };
                level.into()
            }),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    match rt.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("driveback: error: {}", one_line(&e.to_string()));
            ExitCode::FAILURE
        }
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Passphrases come from DRIVEBACK_PASSPHRASE, else a prompt on the terminal; never from a flag.
struct CliPassphrase;

impl PassphraseSource for CliPassphrase {
    fn passphrase(&self, purpose: PassphrasePurpose) -> Result<SecretString, KeyError> {
        let env_name = match purpose {
            PassphrasePurpose::New => "DRIVEBACK_NEW_PASSPHRASE",
            _ => "DRIVEBACK_PASSPHRASE",
        };
        // A new passphrase that is weak is allowed (scripts may have their reasons) but said.
        let checked = |p: String| {
            if matches!(purpose, PassphrasePurpose::New) {
                if let Some(why) = driveback_engine::keys::passphrase_weakness(&p) {
                    eprintln!("driveback: warning: a weak passphrase ({why}): anyone who gets a backup file can try to guess it");
                }
            }
            Ok(SecretString::from(p))
        };
        if let Ok(p) = std::env::var(env_name) {
            return checked(p);
        }
        if matches!(purpose, PassphrasePurpose::New) {
            if let Ok(p) = std::env::var("DRIVEBACK_PASSPHRASE") {
                return checked(p);
            }
        }
        if !std::io::stdin().is_terminal() {
            return Err(KeyError::NoPassphrase(format!(
                "no passphrase: set {env_name} or run in a terminal"
            )));
        }
        let prompt = |text: &str| {
            rpassword::prompt_password(text).map_err(|e| KeyError::NoPassphrase(e.to_string()))
        };
        match purpose {
            PassphrasePurpose::New => {
                eprintln!("Choose a passphrase for your backups. Without it (or the key shown by `driveback key show --secret`), your backups cannot be restored: nobody can recover it for you.");
                let a = prompt("New passphrase: ")?;
                let b = prompt("Repeat the passphrase: ")?;
                if a != b {
                    return Err(KeyError::NoPassphrase("the two passphrases differ".into()));
                }
                checked(a)
            }
            PassphrasePurpose::Current => Ok(SecretString::from(prompt("Current passphrase: ")?)),
            PassphrasePurpose::Unlock => Ok(SecretString::from(prompt(
                "Passphrase of the backup key: ",
            )?)),
        }
    }
}

/// The OS keyring when it answers; otherwise None (the CLI then works from the passphrase).
fn secret_store() -> Option<KeyringSecretStore> {
    // Tests and side-by-side installs can keep their entries apart.
    let service =
        std::env::var("DRIVEBACK_KEYRING_SERVICE").unwrap_or_else(|_| secrets::SERVICE.to_string());
    let store = KeyringSecretStore::with_service(&service);
    match store.check_available() {
        Ok(()) => Some(store),
        Err(e) => {
            tracing::info!(error = %e, "no OS keyring");
            None
        }
    }
}

fn mongo_uri(
    flag: Option<String>,
    secrets: Option<&dyn SecretStore>,
) -> Result<String, EngineError> {
    if let Some(u) = flag {
        return Ok(u);
    }
    if let Ok(u) = std::env::var("DRIVEBACK_MONGO_URI") {
        if !u.is_empty() {
            return Ok(u);
        }
    }
    if let Some(s) = secrets {
        if let Ok(Some(u)) = s.get(secrets::MONGO_URI) {
            return Ok(u.expose_secret().to_string());
        }
    }
    Err(EngineError::Input("no MongoDB connection string: pass --mongo-uri, set DRIVEBACK_MONGO_URI, or save one in the app".into()))
}

/// Runs blocking work (destinations, the keyring, key unwrapping) from async code: Google Drive's
/// blocking HTTP client must not run on an async worker.
/// The history record of a one-shot `driveback backup`.
fn one_shot_record(
    database: &str,
    dest: &str,
    started: chrono::DateTime<chrono::Utc>,
    result: &Result<pipeline::BackupResult, EngineError>,
) -> RunRecord {
    let ended = chrono::Utc::now();
    let (outcome, backup, verified, error) = match result {
        Ok(r) if r.manifest.status == BackupStatus::Complete => (
            Outcome::Success,
            Some(&r.backup),
            r.verified.then_some(true),
            None,
        ),
        Ok(r) => (
            Outcome::Partial,
            Some(&r.backup),
            r.verified.then_some(true),
            Some(RunError {
                code: "partial_backup".into(),
                message: "some collections could not be backed up".into(),
            }),
        ),
        Err(e) => (
            Outcome::Failed,
            None,
            None,
            Some(RunError {
                code: e.code().into(),
                message: e.to_string(),
            }),
        ),
    };
    RunRecord {
        job_id: format!("cli-{}", started.format("%Y%m%dT%H%M%S%.3f")),
        kind: RunKind::Backup,
        trigger: Trigger::Manual,
        started,
        ended,
        outcome,
        database: Some(database.to_string()),
        dest: Some(dest.to_string()),
        backup_id: backup.map(|b| b.id.clone()),
        bytes: backup.map(|b| b.bytes),
        documents: backup.map(|b| b.documents),
        verified,
        pruned: None,
        error,
    }
}

pub(crate) fn sync<T>(f: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(f)
}

fn open_dest(dest: &str) -> Result<Arc<dyn RemoteStore>, EngineError> {
    sync(|| pipeline::open_destination(dest))
}

/// A progress bar on a terminal; nothing otherwise.
struct Bar(indicatif::ProgressBar);

impl ProgressSink for Bar {
    fn report(&self, p: Progress) {
        let coll = p
            .collection
            .as_deref()
            .map(|c| format!(" {c}"))
            .unwrap_or_default();
        if p.total_docs > 0 {
            self.0.set_length(p.total_docs);
            self.0.set_position(p.done_docs.min(p.total_docs));
        }
        self.0.set_message(format!(
            "{}{coll} · {:.1} MB",
            p.phase.label(),
            p.done_bytes as f64 / 1e6
        ));
    }
}

fn progress(json: bool) -> Arc<dyn ProgressSink> {
    if json || !std::io::stderr().is_terminal() {
        return Arc::new(NoProgress);
    }
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} {msg} [{bar:30}] {pos}/{len} docs ({eta})",
        )
        .unwrap()
        .progress_chars("=> "),
    );
    bar.enable_steady_tick(std::time::Duration::from_millis(120));
    Arc::new(Bar(bar))
}

fn print_json(v: &serde_json::Value) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{v}");
}

/// Resolves `--backup`: a backup at the destination, or a local file.
fn source(
    backup: &str,
    dest: Option<&str>,
    secrets: Option<&dyn SecretStore>,
) -> Result<(Source, Vec<String>), EngineError> {
    let store = dest.map(open_dest).transpose()?;
    let path = PathBuf::from(backup);
    if let Some(store) = &store {
        match store.find(backup) {
            Ok(found) => {
                let ring = KeyRing::new(store.as_ref(), secrets, &CliPassphrase);
                let (key, notices) = ring.identity()?;
                return Ok((
                    Source::Stored {
                        store: store.clone(),
                        backup: found,
                        key,
                    },
                    notices,
                ));
            }
            Err(e) if !path.is_file() => return Err(e.into()),
            Err(_) => {}
        }
    }
    if !path.is_file() {
        return Err(EngineError::Input(format!(
            "no backup {backup:?}: give --dest with a backup id, or the path of a backup file"
        )));
    }
    let (key, notices) = match (pipeline::file_kind(&path)?, &store) {
        (InputKind::Backup, Some(store)) => {
            let (k, n) = KeyRing::new(store.as_ref(), secrets, &CliPassphrase).identity()?;
            (Some(k), n)
        }
        (InputKind::Backup, None) => return Err(EngineError::Input(
            "this file is a Driveback backup: give --dest of the destination whose key opens it"
                .into(),
        )),
        _ => (None, Vec::new()),
    };
    Ok((Source::File { path, key }, notices))
}

fn notify(notices: &[String]) {
    for n in notices {
        eprintln!("driveback: note: {n}");
    }
}

async fn run(cli: Cli) -> Result<ExitCode, EngineError> {
    let keyring = secret_store();
    let secrets: Option<&dyn SecretStore> = keyring.as_ref().map(|k| k as &dyn SecretStore);
    match cli.command {
        Command::Backup {
            mongo_uri: uri,
            db,
            dest,
            level,
            json,
        } => {
            let uri = mongo_uri(uri, secrets)?;
            let store = open_dest(&dest)?;
            let ring = KeyRing::new(store.as_ref(), secrets, &CliPassphrase);
            let (recipient, init) = sync(|| ring.recipient_or_init())?;
            if let Some(init) = init {
                eprintln!(
                    "driveback: created a new backup key for {} ({}); keep your passphrase safe",
                    store.location(),
                    init.recipient
                );
                notify(&init.notices);
            }
            // The previous backup's size is the progress bar's total.
            let expected_documents = {
                let store = store.clone();
                let db = db.clone();
                tokio::task::spawn_blocking(move || {
                    pipeline::previous_documents(store.as_ref(), &db)
                })
                .await
                .ok()
                .flatten()
            };
            let opts = BackupOptions {
                database: db,
                zstd_level: level,
                expected_documents,
                started_at: None,
            };
            let started = chrono::Utc::now();
            let result =
                pipeline::backup(&uri, &opts, store.clone(), recipient, progress(json)).await;
            notify::after_backup(
                secrets,
                one_shot_record(&opts.database, &store.location(), started, &result),
                result.as_ref().ok().map(|r| r.backup.clone()),
                store.clone(),
            )
            .await;
            let result = result?;
            let m = &result.manifest;
            if json {
                print_json(&serde_json::json!({
                    "id": result.backup.id,
                    "file": result.backup.file,
                    "bytes": result.backup.bytes,
                    "database": m.database,
                    "documents": m.total_documents(),
                    "snapshot": m.point_in_time,
                    "consistency": m.consistency,
                    "status": m.status,
                    "collections": m.collections.iter().map(|c| serde_json::json!({
                        "name": c.name, "kind": c.kind, "documents": c.documents, "bytes": c.bytes, "status": c.status,
                    })).collect::<Vec<_>>(),
                }));
            } else {
                println!(
                    "Backed up {} ({} collections, {} documents) to {} as {} ({:.1} MB)",
                    m.database,
                    m.collections.len(),
                    m.total_documents(),
                    store.location(),
                    result.backup.file,
                    result.backup.bytes as f64 / 1e6
                );
            }
            for w in &result.warnings {
                eprintln!("driveback: warning: {w}");
            }
            if !m.point_in_time {
                eprintln!("driveback: warning: this backup is {}", m.consistency);
            }
            if m.status == BackupStatus::Partial {
                for c in &m.collections {
                    if let driveback_engine::manifest::CollectionStatus::Failed { error } =
                        &c.status
                    {
                        eprintln!(
                            "driveback: error: collection {} could not be backed up: {}",
                            c.name,
                            one_line(error)
                        );
                    }
                }
                eprintln!(
                    "driveback: error: the backup is partial: some collections are missing from it"
                );
                return Ok(ExitCode::from(EXIT_PARTIAL));
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::List { dest, json } => {
            let store = open_dest(&dest)?;
            let backups = tokio::task::spawn_blocking(move || store.list())
                .await
                .map_err(|e| EngineError::Internal(e.to_string()))??;
            if json {
                print_json(
                    &serde_json::json!({ "backups": backups.iter().map(|b| serde_json::json!({
                    "id": b.id, "file": b.file, "bytes": b.bytes, "created": b.created, "database": b.database,
                    "documents": b.documents, "status": b.status,
                })).collect::<Vec<_>>() }),
                );
            } else if backups.is_empty() {
                println!("No backups at {dest} yet.");
            } else {
                println!(
                    "{:<10} {:<20} {:>10} {:>12}  {:<9} DATABASE",
                    "ID", "CREATED (UTC)", "SIZE", "DOCUMENTS", "STATUS"
                );
                for (i, b) in backups.iter().enumerate() {
                    println!(
                        "{:<10} {:<20} {:>8.1}MB {:>12}  {:<9} {}{}",
                        b.id,
                        b.created.format("%Y-%m-%d %H:%M:%S"),
                        b.bytes as f64 / 1e6,
                        b.documents,
                        format!("{:?}", b.status).to_lowercase(),
                        b.database,
                        if i == 0 { "  (latest)" } else { "" }
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Restore {
            backup,
            dest,
            mongo_uri: uri,
            db,
            collections,
            yes,
            json,
        } => {
            let uri = mongo_uri(uri, secrets)?;
            if !yes {
                if !std::io::stdin().is_terminal() {
                    return Err(EngineError::Input(format!("restore replaces the collections of database {db:?}: pass --yes to confirm")));
                }
                eprint!("Replace current data in database {db:?} with backup {backup}? [y/N] ");
                let mut answer = String::new();
                let _ = std::io::stdin().read_line(&mut answer);
                if !matches!(answer.trim(), "y" | "Y" | "yes") {
                    eprintln!("driveback: nothing was changed");
                    return Ok(ExitCode::FAILURE);
                }
            }
            // Fail fast on an unreachable database, before downloading or asking for a passphrase.
            driveback_engine::mongo::connect(&uri)
                .await?
                .shutdown()
                .await;
            let (src, notices) = sync(|| source(&backup, dest.as_deref(), secrets))?;
            notify(&notices);
            let opts = RestoreOptions {
                target_db: db,
                collections,
            };
            let result = pipeline::restore(&uri, src, &opts, progress(json)).await?;
            let r = &result.report;
            if json {
                print_json(&serde_json::json!({
                    "database": r.database,
                    "collections": r.collections,
                    "views": r.views,
                    "warnings": r.warnings,
                    "backup_id": result.manifest.as_ref().map(|m| m.backup_id.clone()),
                }));
            } else {
                let docs: u64 = r.collections.iter().map(|c| c.documents).sum();
                println!(
                    "Restored {} collections ({} documents) into {}",
                    r.collections.len(),
                    docs,
                    r.database
                );
            }
            for w in &r.warnings {
                eprintln!("driveback: warning: {w}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Verify { backup, dest, json } => {
            let (src, notices) = sync(|| source(&backup, dest.as_deref(), secrets))?;
            notify(&notices);
            let p = progress(json);
            let result = tokio::task::spawn_blocking(move || pipeline::verify(src, p.as_ref()))
                .await
                .map_err(|e| EngineError::Internal(e.to_string()))??;
            let docs: u64 = result.collections.iter().map(|(_, s)| s.documents).sum();
            if json {
                print_json(&serde_json::json!({
                    "ok": true,
                    "documents": docs,
                    "collections": result.collections.iter().map(|(n, s)| serde_json::json!({"name": n, "documents": s.documents, "crc64": format!("{:016x}", s.crc)})).collect::<Vec<_>>(),
                    "manifest": result.manifest,
                }));
            } else {
                println!(
                    "OK: {} collections, {} documents; every checksum matches",
                    result.collections.len(),
                    docs
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Export {
            backup,
            dest,
            out,
            format,
        } => {
            let (src, notices) = sync(|| source(&backup, dest.as_deref(), secrets))?;
            notify(&notices);
            let p = progress(false);
            let out2 = out.clone();
            tokio::task::spawn_blocking(move || {
                pipeline::export_to(src, &out2, format, p.as_ref())
            })
            .await
            .map_err(|e| EngineError::Internal(e.to_string()))??;
            println!("Wrote {}", out.display());
            Ok(ExitCode::SUCCESS)
        }
        Command::Prune(args) => policy::prune(args).await,
        Command::Daemon(args) => policy::daemon(args, secrets).await,
        Command::Status(args) => policy::status(args).await,
        Command::Config {
            command: policy::ConfigCommand::SetSecret { key },
        } => notify::set_secret(&key, secrets),
        Command::Config { command } => policy::config(command),
        Command::TestEmail => notify::test_email(secrets).await,
        Command::Key { command } => {
            match command {
                KeyCommand::Init { dest } => {
                    let store = open_dest(&dest)?;
                    let init =
                        sync(|| KeyRing::new(store.as_ref(), secrets, &CliPassphrase).init())?;
                    notify(&init.notices);
                    println!(
                        "Created the backup key of {}: {}",
                        store.location(),
                        init.recipient
                    );
                }
                KeyCommand::Passwd { dest } => {
                    let store = open_dest(&dest)?;
                    sync(|| {
                        KeyRing::new(store.as_ref(), secrets, &CliPassphrase).change_passphrase()
                    })?;
                    println!(
                        "Changed the passphrase of the backup key of {}",
                        store.location()
                    );
                }
                KeyCommand::Show { dest, secret } => {
                    let store = open_dest(&dest)?;
                    let ring = KeyRing::new(store.as_ref(), secrets, &CliPassphrase);
                    if secret {
                        let (key, notices) = sync(|| ring.identity())?;
                        notify(&notices);
                        eprintln!("This key opens every backup at {}. Keep it somewhere safe and private: if you lose both it and your passphrase, your backups cannot be recovered.", store.location());
                        println!("{}", key.to_secret_string().expose_secret());
                    } else {
                        match sync(|| ring.recipient())? {
                            Some(r) => println!("{r}"),
                            None => return Err(KeyError::NoKey.into()),
                        }
                    }
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Connect(args) => Ok(google::run_connect(args).await),
        Command::Whoami(args) => Ok(google::run_whoami(args).await),
        Command::Disconnect => Ok(google::run_disconnect().await),
    }
}
