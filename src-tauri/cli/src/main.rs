//! `driveback`: the headless command line of Driveback, for servers and scripts. It is wiring over
//! the engine's [`Service`], the same one the desktop app runs: a one-shot backup is the same job
//! as a scheduled one (recorded, pruned, mailed), and `driveback daemon` is the service's
//! background work. What only a command line does (restore from a file path, export, the key
//! commands) uses the engine's modules directly.

mod google;
mod notify;
mod policy;

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::{Parser, Subcommand};
use driveback_engine::container::{InputKind, DEFAULT_ZSTD_LEVEL};
use driveback_engine::error::{one_line, ApiError, EngineError, ErrorCode};
use driveback_engine::history::{Outcome, RunKind, RunRecord};
use driveback_engine::jobs::JobEvent;
use driveback_engine::keys::{KeyError, PassphrasePurpose, PassphraseSource};
use driveback_engine::manifest::{BackupStatus, CollectionStatus};
use driveback_engine::pipeline::{self, ExportFormat, RestoreOptions, Source};
use driveback_engine::progress::{NoProgress, Progress, ProgressSink, ProgressView};
use driveback_engine::service::{EnvDefaults, OneShot, Service};
use driveback_engine::settings::Settings;
use driveback_engine::store::{self, RemoteStore};
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
        /// How backups are kept at the destination: files (one file per backup) or incremental
        /// (a full backup, then only what changed). Remembered for the destination; without it,
        /// the destination's remembered layout (by default incremental on Google Drive, files in
        /// a folder).
        #[arg(long, value_parser = ["files", "incremental"])]
        layout: Option<String>,
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
        /// Requests kept in flight on the server at once: insert batches, counts and index
        /// builds (1-16; default: the setting restore.parallel).
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..=16))]
        parallel: Option<u32>,
        #[arg(long)]
        json: bool,
    },
    /// Download, decrypt and check a backup's counts and checksums without touching a database;
    /// with --test-restore, restore it into a scratch database, compare what the server gives
    /// back, and drop the scratch database (exit 0 only when it passed).
    Verify {
        #[arg(long)]
        backup: String,
        #[arg(long)]
        dest: Option<String>,
        #[arg(long)]
        json: bool,
        #[arg(long)]
        test_restore: bool,
        /// The scratch database of --test-restore (default: <db>_driveback_audit).
        #[arg(long, requires = "test_restore")]
        scratch_db: Option<String>,
        /// The server of --test-restore (default: DRIVEBACK_MONGO_URI or the saved one).
        #[arg(long, requires = "test_restore")]
        mongo_uri: Option<String>,
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
        format: FormatArg,
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
    /// Hold automatic backups back until tomorrow 09:00 (or --until); `driveback backup` and
    /// Backup Now still work.
    Pause(policy::PauseArgs),
    /// Let automatic backups run as scheduled again (a slot missed during the pause runs now).
    Resume,
    /// Send a test email with the SMTP settings (smtp.*).
    TestEmail,
    /// Acknowledge the data-loss alarms: the backups they kept follow the retention policy again.
    Acknowledge,
    /// Read or change settings (schedule, what to back up, retention, email).
    Config {
        #[command(subcommand)]
        command: policy::ConfigCommand,
    },
}

/// `export --format`.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum FormatArg {
    /// The decrypted mongodump archive (`mongorestore --archive=PATH` reads it).
    Archive,
    /// One canonical Extended JSON v2 file per collection, one document per line.
    Ejson,
}

impl From<FormatArg> for ExportFormat {
    fn from(f: FormatArg) -> Self {
        match f {
            FormatArg::Archive => ExportFormat::Archive,
            FormatArg::Ejson => ExportFormat::Ejson,
        }
    }
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
    /// Forget the backup key this device confirmed for a destination (after replacing the key
    /// there on purpose): the next use asks for the passphrase that opens the new key.
    Forget {
        #[arg(long)]
        dest: String,
    },
}

/// Exit code of a backup that completed with some collections missing.
const EXIT_PARTIAL: u8 = 3;

fn main() -> ExitCode {
    // Before any thread starts: no child process inherits a secret given in the environment.
    driveback_engine::envsecrets::take_from_env();
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

/// Why a command failed: the one line printed after `driveback: error: `.
#[derive(Debug)]
pub(crate) struct CliError(String);

impl CliError {
    pub(crate) fn new(message: impl Into<String>) -> Self {
        CliError(message.into())
    }
}

impl std::fmt::Display for CliError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<EngineError> for CliError {
    fn from(e: EngineError) -> Self {
        CliError(e.to_string())
    }
}

impl From<ApiError> for CliError {
    fn from(e: ApiError) -> Self {
        // The service words a missing passphrase for the app ("enter the passphrase"); here the
        // reason the command line could not get one says what to do (set the variable, use a
        // terminal).
        if e.code == ErrorCode::PassphraseRequired {
            if let Some(why) = lock(&REFUSED).clone() {
                return CliError(why);
            }
        }
        CliError(e.message)
    }
}

impl From<KeyError> for CliError {
    fn from(e: KeyError) -> Self {
        EngineError::from(e).into()
    }
}

impl From<store::StoreError> for CliError {
    fn from(e: store::StoreError) -> Self {
        EngineError::from(e).into()
    }
}

pub(crate) type CliResult<T> = Result<T, CliError>;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Why [`CliPassphrase`] last gave no passphrase.
static REFUSED: Mutex<Option<String>> = Mutex::new(None);

fn refuse(why: impl Into<String>) -> KeyError {
    let why = why.into();
    *lock(&REFUSED) = Some(why.clone());
    KeyError::NoPassphrase(why)
}

/// Passphrases come from DRIVEBACK_PASSPHRASE, else a prompt on the terminal; never from a flag.
pub(crate) struct CliPassphrase;

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
                if p.is_empty() {
                    return Err(refuse("an empty passphrase cannot protect the backup key"));
                }
            }
            Ok(SecretString::from(p))
        };
        if let Some(p) = driveback_engine::envsecrets::var(env_name) {
            return checked(p);
        }
        if matches!(purpose, PassphrasePurpose::New) {
            if let Some(p) = driveback_engine::envsecrets::var("DRIVEBACK_PASSPHRASE") {
                return checked(p);
            }
        }
        if !std::io::stdin().is_terminal() {
            return Err(refuse(format!(
                "no passphrase: set {env_name} or run in a terminal"
            )));
        }
        let prompt =
            |text: &str| rpassword::prompt_password(text).map_err(|e| refuse(e.to_string()));
        match purpose {
            PassphrasePurpose::New => {
                eprintln!("Choose a passphrase for your backups. Without it (or the key shown by `driveback key show --secret`), your backups cannot be restored: nobody can recover it for you.");
                let a = prompt("New passphrase: ")?;
                let b = prompt("Repeat the passphrase: ")?;
                if a != b {
                    return Err(refuse("the two passphrases differ"));
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

/// The engine's service, as the command line uses it: the OS folders and keyring (none when it
/// does not answer: the CLI then works from the passphrase), and `DRIVEBACK_MONGO_URI`.
/// Blocking: it asks the keyring, and the Google sign-in's HTTP client is a blocking one.
fn service() -> CliResult<Service> {
    let env = EnvDefaults {
        mongo_uri: driveback_engine::envsecrets::var("DRIVEBACK_MONGO_URI")
            .filter(|u| !u.is_empty()),
        ..EnvDefaults::default()
    };
    // A benchmark simulating days dates each run's backups (and its retention) with this.
    let clock = match std::env::var("DRIVEBACK_SIMULATED_NOW") {
        Ok(t) if !t.is_empty() => {
            let start = chrono::DateTime::parse_from_rfc3339(&t)
                .map_err(|e| CliError::new(format!("DRIVEBACK_SIMULATED_NOW: {e}")))?
                .with_timezone(&chrono::Utc);
            Some(
                Arc::new(driveback_engine::jobs::ShiftedClock::starting_at(start))
                    as Arc<dyn driveback_engine::jobs::Clock>,
            )
        }
        _ => None,
    };
    let svc = Service::open_default_with(env, clock)?;
    if let Some(why) = svc.keyring_problem() {
        tracing::info!(error = %why, "no OS keyring");
    }
    Ok(svc)
}

/// The connection string: the flag, else the environment or the keyring (through the service).
pub(crate) fn mongo_uri(svc: &Service, flag: Option<String>) -> CliResult<SecretString> {
    if let Some(u) = flag {
        return Ok(SecretString::from(u));
    }
    svc.mongo_uri().map(|(u, _)| u).ok_or_else(|| {
        CliError::new("no MongoDB connection string: pass --mongo-uri, set DRIVEBACK_MONGO_URI, or save one in the app")
    })
}

/// Runs blocking work (destinations, the keyring, key unwrapping) from async code: Google Drive's
/// blocking HTTP client must not run on an async worker.
pub(crate) fn sync<T>(f: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(f)
}

/// Opens a destination by name through the service.
pub(crate) fn open_dest(svc: &Service, dest: &str) -> CliResult<Arc<dyn RemoteStore>> {
    Ok(sync(|| svc.open_dest(dest))?)
}

/// How a destination is named in messages (`folder:/path`, `drive`).
fn location_of(dest: &str) -> String {
    store::parse_dest(dest)
        .map(|d| d.location())
        .unwrap_or_else(|_| dest.to_string())
}

/// A progress bar on a terminal.
struct Bar(indicatif::ProgressBar);

impl Bar {
    /// Whether to show one: on a terminal, and not with JSON output.
    fn wanted(json: bool) -> bool {
        !json && std::io::stderr().is_terminal()
    }

    fn new(json: bool) -> Option<Bar> {
        if !Bar::wanted(json) {
            return None;
        }
        let bar = indicatif::ProgressBar::new(0);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} {msg} [{bar:30}] {pos}/{len} docs ({eta})",
            )
            .unwrap()
            .progress_chars("=> "),
        );
        bar.enable_steady_tick(Duration::from_millis(120));
        Some(Bar(bar))
    }

    fn show(
        &self,
        label: &str,
        collection: Option<&str>,
        done_docs: u64,
        total_docs: u64,
        done_bytes: u64,
    ) {
        let coll = collection.map(|c| format!(" {c}")).unwrap_or_default();
        if total_docs > 0 {
            self.0.set_length(total_docs);
            self.0.set_position(done_docs.min(total_docs));
        }
        self.0
            .set_message(format!("{label}{coll} · {:.1} MB", done_bytes as f64 / 1e6));
    }

    fn show_view(&self, v: &ProgressView) {
        self.show(
            v.label,
            v.collection.as_deref(),
            v.done_docs,
            v.total_docs,
            v.done_bytes,
        );
    }
}

impl ProgressSink for Bar {
    fn report(&self, p: Progress) {
        self.show(
            p.phase.label(),
            p.collection.as_deref(),
            p.done_docs,
            p.total_docs,
            p.done_bytes,
        );
    }
}

/// Progress of a pipeline run directly (restore, verify, export).
fn progress(json: bool) -> Arc<dyn ProgressSink> {
    match Bar::new(json) {
        Some(bar) => Arc::new(bar),
        None => Arc::new(NoProgress),
    }
}

/// Shows the progress the service's jobs report. The bar appears when the backup starts, after
/// any passphrase prompt for a new backup key.
fn follow_backup(svc: &Service, json: bool) -> Option<tokio::task::JoinHandle<()>> {
    if !Bar::wanted(json) {
        return None;
    }
    let mut events = svc.jobs().subscribe();
    Some(tokio::spawn(async move {
        let mut bar = None;
        loop {
            match events.recv().await {
                Ok(JobEvent::Started { .. }) => bar = Bar::new(false),
                Ok(JobEvent::Progress { progress, .. }) => {
                    if let Some(b) = &bar {
                        b.show_view(&progress)
                    }
                }
                Ok(JobEvent::Finished { .. }) => break,
                Ok(_) => {}
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(_) => break,
            }
        }
    }))
}

pub(crate) fn print_json(v: &serde_json::Value) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{v}");
}

/// Resolves `--backup`: a backup at the destination, or a local file.
fn source(svc: &Service, backup: &str, dest: Option<&str>) -> CliResult<(Source, Vec<String>)> {
    let store = dest.map(|d| svc.open_dest(d)).transpose()?;
    let path = PathBuf::from(backup);
    if let Some(store) = &store {
        // A plain archive on this computer needs no key.
        if path.is_file() && !matches!(pipeline::file_kind(&path)?, InputKind::Backup) {
            return Ok((Source::File { path, key: None }, Vec::new()));
        }
        // The key first: it confirms which backups there are the user's own (their signatures).
        let (key, notices) = svc.key_ring(store.as_ref(), &CliPassphrase).identity()?;
        match store.find(backup) {
            Ok(found) => {
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
        return Ok((
            Source::File {
                path,
                key: Some(key),
            },
            notices,
        ));
    }
    if !path.is_file() {
        return Err(CliError::new(format!(
            "no backup {backup:?}: give --dest with a backup id, or the path of a backup file"
        )));
    }
    match pipeline::file_kind(&path)? {
        InputKind::Backup => Err(CliError::new(
            "this file is a Driveback backup: give --dest of the destination whose key opens it",
        )),
        _ => Ok((Source::File { path, key: None }, Vec::new())),
    }
}

fn notify(notices: &[String]) {
    for n in notices {
        eprintln!("driveback: note: {n}");
    }
}

fn joined(e: tokio::task::JoinError) -> CliError {
    CliError::from(EngineError::Internal(e.to_string()))
}

/// Cancels the backup on SIGINT (Ctrl-C) or SIGTERM; returns the exit code the shell expects of
/// such a stop (130, 143). A backup that has not started within two seconds (the process is
/// still asking for a passphrase, say) is not waited for: the process exits with that code.
fn cancel_on_signal(jobs: driveback_engine::jobs::Jobs) -> tokio::task::JoinHandle<Option<u8>> {
    tokio::spawn(async move {
        use tokio::signal::unix::{signal, SignalKind};
        let mut interrupt = signal(SignalKind::interrupt()).ok()?;
        let mut terminate = signal(SignalKind::terminate()).ok()?;
        let code = tokio::select! {
            _ = interrupt.recv() => 130u8,
            _ = terminate.recv() => 143u8,
        };
        eprintln!("driveback: cancelling the backup...");
        for _ in 0..40 {
            if jobs.cancel(None) {
                return Some(code);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        std::process::exit(code.into());
    })
}

/// `driveback backup`: the service's one-shot backup, printed as the command line always has.
async fn backup(
    svc: &Service,
    uri: Option<String>,
    db: String,
    dest: String,
    level: i32,
    layout: Option<driveback_engine::settings::Layout>,
    json: bool,
) -> CliResult<ExitCode> {
    let uri = mongo_uri(svc, uri)?;
    if let Some(why) = svc.settings_problem() {
        eprintln!("driveback: warning: no email report: {why}");
    }
    // A one-shot command waits for its email report: one quick retry, not the daemon's patience.
    svc.email().set_retry(vec![Duration::from_secs(2)]);
    let bar = follow_backup(svc, json);
    let request = OneShot {
        uri: Some(uri),
        database: Some(db),
        dest: Some(dest.clone()),
        zstd_level: Some(level),
        layout,
    };
    let signals = cancel_on_signal(svc.jobs().clone());
    let done = svc.backup_once(request, &CliPassphrase).await;
    let signalled = if signals.is_finished() {
        signals.await.ok().flatten()
    } else {
        signals.abort();
        None
    };
    if let Some(bar) = bar {
        // It ends with the backup; without one (no key could be made) it is stopped.
        bar.abort();
        let _ = bar.await;
    }
    let (record, result, init) = done?;
    if let Some(init) = &init {
        eprintln!(
            "driveback: created a new backup key for {} ({}); keep your passphrase safe",
            location_of(&dest),
            init.recipient
        );
        notify(&init.notices);
    }
    email_warning(svc, &record);
    if let (Outcome::Cancelled, Some(code)) = (record.outcome, signalled) {
        eprintln!("driveback: the backup was cancelled: nothing was kept");
        return Ok(ExitCode::from(code));
    }
    match record.outcome {
        Outcome::Success | Outcome::Partial => {}
        Outcome::Failed | Outcome::Cancelled => {
            return Err(CliError::new(
                record
                    .error
                    .map(|e| e.message)
                    .unwrap_or_else(|| "the backup did not finish".into()),
            ))
        }
    }
    let result = result.ok_or_else(|| {
        CliError::from(EngineError::Internal(
            "the backup finished without its result".into(),
        ))
    })?;
    let location = record.dest.clone().unwrap_or_else(|| location_of(&dest));
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
            "warnings": record.warnings,
            "chain": result.chain,
        }));
    } else {
        println!(
            "Backed up {} ({} collections, {} documents) to {} as {} ({:.1} MB)",
            m.database,
            m.collections.len(),
            m.total_documents(),
            location,
            result.backup.file,
            result.backup.bytes as f64 / 1e6
        );
        if let Some(c) = &result.chain {
            match c.kind {
                "increment" => println!(
                    "An increment: {} changed, {} new and {} deleted documents since the previous backup",
                    c.changed, c.inserted, c.deleted
                ),
                _ => println!(
                    "A full backup{}",
                    c.why.as_deref().map(|w| format!(" ({w})")).unwrap_or_default()
                ),
            }
        }
    }
    for w in &result.warnings {
        eprintln!("driveback: warning: {w}");
    }
    if !record.warnings.is_empty() {
        eprintln!(
            "driveback: warning: data went missing since the previous backup: {}. The previous backup is kept until you run `driveback acknowledge`.",
            record.warnings.iter().map(|w| w.describe()).collect::<Vec<_>>().join("; ")
        );
    }
    if !m.point_in_time {
        eprintln!("driveback: warning: this backup is {}", m.consistency);
    }
    if m.status == BackupStatus::Partial {
        for c in &m.collections {
            if let CollectionStatus::Failed { error } = &c.status {
                eprintln!(
                    "driveback: error: collection {} could not be backed up: {}",
                    c.name,
                    one_line(error)
                );
            }
        }
        eprintln!("driveback: error: the backup is partial: some collections are missing from it");
        return Ok(ExitCode::from(EXIT_PARTIAL));
    }
    Ok(ExitCode::SUCCESS)
}

/// The email report of a backup run cannot change the command's outcome, but a problem with it
/// is said.
fn email_warning(svc: &Service, backup: &RunRecord) {
    let records = match sync(|| svc.load_history()) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("driveback: warning: {}", e.message);
            return;
        }
    };
    let emailed = records
        .iter()
        .rev()
        .find(|r| r.kind == RunKind::Email && r.job_id == backup.job_id);
    if let Some(e) = emailed.and_then(|r| r.error.as_ref()) {
        eprintln!("driveback: warning: {}", one_line(&e.message));
    }
}

async fn run(cli: Cli) -> CliResult<ExitCode> {
    match cli.command {
        // `config` works on the settings file itself, and the Google sign-in commands on the
        // account and the keyring: no service for them (`set-secret` keeps the password through it).
        Command::Config {
            command: policy::ConfigCommand::SetSecret { key },
        } => return notify::set_secret(&sync(service)?, &key),
        Command::Config { command } => return policy::config(command),
        Command::Connect(args) => return Ok(google::run_connect(args).await),
        Command::Whoami(args) => return Ok(google::run_whoami(args).await),
        Command::Disconnect => return Ok(google::run_disconnect().await),
        _ => {}
    }
    if matches!(
        cli.command,
        Command::Status(_)
            | Command::Prune(_)
            | Command::Daemon(_)
            | Command::TestEmail
            | Command::Pause(_)
            | Command::Resume
    ) {
        // These work from the settings: a settings file that does not read is their error (the
        // service would say it goes on with the defaults).
        Settings::load().map_err(|e| CliError::new(e.to_string()))?;
    }
    let svc = sync(service)?;
    match cli.command {
        Command::Backup {
            mongo_uri: uri,
            db,
            dest,
            level,
            layout,
            json,
        } => {
            let layout = layout
                .map(|l| driveback_engine::settings::Layout::parse(&l))
                .transpose()
                .map_err(CliError::new)?;
            backup(&svc, uri, db, dest, level, layout, json).await
        }
        Command::List { dest, json } => {
            let store = open_dest(&svc, &dest)?;
            let (backups, ignored) = tokio::task::spawn_blocking(move || {
                store.list().map(|list| (list, store.ignored()))
            })
            .await
            .map_err(joined)??;
            if json {
                print_json(&serde_json::json!({
                    "backups": backups.iter().map(|b| serde_json::json!({
                        "id": b.id, "file": b.file, "bytes": b.bytes, "created": b.created,
                        "database": b.database, "documents": b.documents, "status": b.status,
                        "kind": match &b.link {
                            None => "file",
                            Some(l) if l.parent.is_none() => "full",
                            Some(_) => "increment",
                        },
                        "chain": b.link.as_ref().map(|l| &l.chain),
                        "parent": b.link.as_ref().and_then(|l| l.parent.as_ref()),
                    })).collect::<Vec<_>>(),
                    "ignored": ignored,
                }));
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
                        match (i, b.is_increment()) {
                            (0, true) => "  (latest, increment)",
                            (0, false) => "  (latest)",
                            (_, true) => "  (increment)",
                            _ => "",
                        }
                    );
                }
            }
            if !json && !ignored.is_empty() {
                eprintln!(
                    "driveback: ignoring {} file(s) at {dest} that are not your backups \
                     (someone else may be able to write there; see SECURITY.md):",
                    ignored.len()
                );
                for i in &ignored {
                    eprintln!("  {}: {}", i.file, i.reason);
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
            parallel,
            json,
        } => {
            let uri = mongo_uri(&svc, uri)?;
            if !yes {
                if !std::io::stdin().is_terminal() {
                    return Err(CliError::new(format!("restore replaces the collections of database {db:?}: pass --yes to confirm")));
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
            svc.mongo().ping(uri.expose_secret()).await?;
            let (src, notices) = sync(|| source(&svc, &backup, dest.as_deref()))?;
            notify(&notices);
            // No plan was shown here; what the listing holds is signed by the user's key, and
            // the staging is checked against the manifest before anything is swapped in.
            let opts = RestoreOptions {
                target_db: db,
                collections,
                expected: None,
                parallel: parallel.unwrap_or(svc.settings().restore.parallel) as usize,
            };
            let result = svc
                .mongo()
                .restore(uri.expose_secret(), src, &opts, progress(json))
                .await?;
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
        Command::Verify {
            backup,
            dest,
            json,
            test_restore: true,
            scratch_db,
            mongo_uri: uri,
        } => {
            let uri = match uri {
                Some(u) => Some(mongo_uri(&svc, Some(u))?),
                None => None,
            };
            let report = svc
                .test_restore(
                    driveback_engine::service::TestRestore {
                        id: backup,
                        dest,
                        uri,
                        scratch: scratch_db,
                        trigger: driveback_engine::history::Trigger::Manual,
                    },
                    driveback_engine::envsecrets::var("DRIVEBACK_PASSPHRASE"),
                )
                .await?;
            use driveback_engine::audit::Verdict;
            if json {
                print_json(&serde_json::to_value(&report).expect("report serialises"));
            } else {
                match report.verdict {
                    Verdict::Passed => println!(
                        "Restore test passed: backup {} of {} restored into {} ({} collections, {} documents, every one read back as it was); {} was dropped",
                        report.backup_id,
                        report.database,
                        report.scratch_db,
                        report.collections.len(),
                        report.collections.iter().map(|c| c.documents).sum::<u64>(),
                        report.scratch_db
                    ),
                    _ => {}
                }
            }
            match report.verdict {
                Verdict::Passed => Ok(ExitCode::SUCCESS),
                Verdict::Failed => Err(CliError::new(format!(
                    "the restore test of backup {} failed: {} ({} was dropped)",
                    report.backup_id,
                    report.problems.join("; "),
                    report.scratch_db
                ))),
                Verdict::Skipped => Err(CliError::new(format!(
                    "the restore test of backup {} was skipped: {}",
                    report.backup_id,
                    report.problems.join("; ")
                ))),
            }
        }
        Command::Verify {
            backup, dest, json, ..
        } => {
            let (src, notices) = sync(|| source(&svc, &backup, dest.as_deref()))?;
            notify(&notices);
            let p = progress(json);
            let result = tokio::task::spawn_blocking(move || pipeline::verify(src, p.as_ref()))
                .await
                .map_err(joined)??;
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
            let (src, notices) = sync(|| source(&svc, &backup, dest.as_deref()))?;
            notify(&notices);
            let p = progress(false);
            let out2 = out.clone();
            tokio::task::spawn_blocking(move || {
                pipeline::export_to(src, &out2, format.into(), p.as_ref())
            })
            .await
            .map_err(joined)??;
            println!("Wrote {}", out.display());
            Ok(ExitCode::SUCCESS)
        }
        Command::Prune(args) => policy::prune(&svc, args).await,
        Command::Daemon(args) => policy::daemon(&svc, args).await,
        Command::Status(args) => policy::status(&svc, args).await,
        Command::Pause(args) => policy::pause(&svc, args),
        Command::Resume => policy::resume(&svc),
        Command::TestEmail => notify::test_email(&svc).await,
        Command::Acknowledge => {
            let alarms = svc.alarms().open();
            for a in &alarms {
                println!(
                    "{} at {} ({}): {}",
                    a.database,
                    a.dest,
                    a.raised.format("%Y-%m-%d %H:%M UTC"),
                    a.warnings
                        .iter()
                        .map(|w| w.describe())
                        .collect::<Vec<_>>()
                        .join("; ")
                );
            }
            let n = sync(|| svc.acknowledge_alarms());
            println!(
                "{}",
                match n {
                    0 => "No data-loss alarm is open.".to_string(),
                    n => format!("Acknowledged {n} data-loss alarm(s): the backups they kept follow the retention policy again."),
                }
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Key { command } => {
            match command {
                KeyCommand::Init { dest } => {
                    let store = open_dest(&svc, &dest)?;
                    let init = sync(|| svc.key_ring(store.as_ref(), &CliPassphrase).init())?;
                    notify(&init.notices);
                    println!(
                        "Created the backup key of {}: {}",
                        store.location(),
                        init.recipient
                    );
                }
                KeyCommand::Passwd { dest } => {
                    let store = open_dest(&svc, &dest)?;
                    sync(|| {
                        svc.key_ring(store.as_ref(), &CliPassphrase)
                            .change_passphrase()
                    })?;
                    println!(
                        "Changed the passphrase of the backup key of {}",
                        store.location()
                    );
                }
                KeyCommand::Forget { dest } => {
                    let store = open_dest(&svc, &dest)?;
                    let location = store.location();
                    if sync(|| svc.key_pins().forget(&location))? {
                        println!("Forgot the confirmed backup key of {location}: the next backup or restore asks for the passphrase.");
                    } else {
                        println!("This device had no confirmed backup key for {location}.");
                    }
                }
                KeyCommand::Show { dest, secret } => {
                    let store = open_dest(&svc, &dest)?;
                    let ring = svc.key_ring(store.as_ref(), &CliPassphrase);
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
        Command::Config { .. } | Command::Connect(_) | Command::Whoami(_) | Command::Disconnect => {
            unreachable!("handled above")
        }
    }
}
