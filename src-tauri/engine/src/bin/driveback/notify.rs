//! `driveback test-email`, `driveback config set-secret smtp.password`, and what follows a
//! one-shot backup (its history record and email report).

use std::io::{IsTerminal, Read};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use driveback_engine::error::EngineError;
use driveback_engine::history::{History, RunRecord};
use driveback_engine::notify::email::EmailNotifier;
use driveback_engine::notify::mail::{self, Mailer, Outgoing};
use driveback_engine::notify::templates;
use driveback_engine::notify::Event;
use driveback_engine::secrets::{self, SecretStore};
use driveback_engine::settings::Settings;
use driveback_engine::store::{RemoteStore, StoredBackup};
use secrecy::{ExposeSecret, SecretString};

/// Sends the test email with the saved SMTP settings: one line either way.
pub async fn test_email(secrets: Option<&dyn SecretStore>) -> Result<ExitCode, EngineError> {
    let settings = Settings::load().map_err(|e| EngineError::Input(e.to_string()))?;
    let smtp = settings.smtp.clone();
    let password = mail::smtp_password(secrets)?;
    let (server, to) = tokio::task::spawn_blocking(move || {
        let mailer = Mailer::new(&smtp, password)?;
        let mail = templates::test_email(smtp.host.as_deref().unwrap_or(""), smtp.port, Utc::now());
        mailer.send(&Outgoing {
            mail: &mail,
            attachment: None,
        })?;
        Ok::<_, EngineError>((mailer.server(), mailer.recipients()))
    })
    .await
    .map_err(|e| EngineError::Internal(e.to_string()))??;
    println!("Sent a test email to {} through {server}.", to.join(", "));
    Ok(ExitCode::SUCCESS)
}

/// Stores a secret setting in the OS keyring, reading it from standard input (one line).
pub fn set_secret(key: &str, secrets: Option<&dyn SecretStore>) -> Result<ExitCode, EngineError> {
    let entry = match key {
        "smtp.password" => secrets::SMTP_PASSWORD,
        other => {
            return Err(EngineError::Input(format!(
                "there is no secret setting '{other}' (known: smtp.password)"
            )))
        }
    };
    let store = secrets.ok_or_else(|| {
        EngineError::Input(format!(
            "no OS keyring is available to keep {key}; set {} in the environment instead",
            mail::PASSWORD_ENV
        ))
    })?;
    if std::io::stdin().is_terminal() {
        eprintln!("Type the {key} and press Enter:");
    }
    let mut text = String::new();
    std::io::stdin()
        .read_to_string(&mut text)
        .map_err(|e| EngineError::io("reading standard input", e))?;
    let value = SecretString::from(text.trim_end_matches(['\r', '\n']).to_string());
    if value.expose_secret().is_empty() {
        store
            .delete(entry)
            .map_err(|e| EngineError::Input(e.to_string()))?;
        println!("{key} removed from the OS keyring");
    } else {
        store
            .set(entry, &value)
            .map_err(|e| EngineError::Input(e.to_string()))?;
        println!("{key} saved in the OS keyring");
    }
    Ok(ExitCode::SUCCESS)
}

/// After a one-shot `driveback backup`: the run goes into the history (so that `status` and the
/// health count it), and when email reports are set up the report is sent now, with one retry.
/// Neither can change the command's outcome: problems are warnings.
pub async fn after_backup(
    secrets: Option<&dyn SecretStore>,
    record: RunRecord,
    backup: Option<StoredBackup>,
    store: Arc<dyn RemoteStore>,
) {
    let history = match History::open_default() {
        Ok(h) => Some(Arc::new(h)),
        Err(e) => {
            eprintln!("driveback: warning: the run is not recorded in the history: {e}");
            None
        }
    };
    let settings = match Settings::load() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("driveback: warning: no email report: {e}");
            Settings::default()
        }
    };
    let password = if settings.smtp.is_configured() {
        mail::smtp_password(secrets).unwrap_or_else(|e| {
            eprintln!("driveback: warning: email report: {e}");
            None
        })
    } else {
        None
    };
    let done = tokio::task::spawn_blocking(move || {
        if let Some(h) = &history {
            if let Err(e) = h.append(&record) {
                eprintln!("driveback: warning: the run is not recorded in the history: {e}");
            }
        }
        let last_good = history
            .as_ref()
            .and_then(|h| h.load().ok())
            .and_then(|rs| driveback_engine::history::last_success(&rs).map(|r| r.ended));
        let notifier = EmailNotifier::new(settings, password, history)
            .with_store(store)
            .with_retry(vec![Duration::from_secs(2)]);
        let event = Event::for_run(&record, backup, last_good)?;
        notifier.deliver(&event)
    })
    .await;
    if let Ok(Some(d)) = done {
        if let Some(e) = d.record.error {
            eprintln!("driveback: warning: {}", super::one_line(&e.message));
        }
    }
}
