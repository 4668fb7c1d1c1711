//! `driveback test-email` and `driveback config set-secret smtp.password` (and
//! `google.client_secret`).

use std::io::{IsTerminal, Read};
use std::process::ExitCode;

use driveback_engine::error::EngineError;
use driveback_engine::notify::mail;
use driveback_engine::service::{blocking, Service};

use super::{CliError, CliResult};

/// Sends the test email with the saved SMTP settings: one line either way.
pub async fn test_email(svc: &Service) -> CliResult<ExitCode> {
    if let Some(why) = svc.settings_problem() {
        return Err(CliError::new(why));
    }
    let sent = {
        let svc = svc.clone();
        blocking(move || svc.send_test_email()).await?
    };
    println!(
        "Sent a test email to {} through {}.",
        sent.to.join(", "),
        sent.server
    );
    Ok(ExitCode::SUCCESS)
}

/// Stores a secret setting in the OS keyring, reading it from standard input (one line).
pub fn set_secret(svc: &Service, key: &str) -> CliResult<ExitCode> {
    if key != "smtp.password" && key != "google.client_secret" {
        return Err(CliError::new(format!(
            "there is no secret setting '{key}' (known: smtp.password, google.client_secret)"
        )));
    }
    if key == "google.client_secret" {
        return set_google_client_secret(svc);
    }
    if svc.secrets().is_none() {
        return Err(CliError::new(format!(
            "no OS keyring is available to keep {key}; set {} in the environment instead",
            mail::PASSWORD_ENV
        )));
    }
    if std::io::stdin().is_terminal() {
        eprintln!("Type the {key} and press Enter:");
    }
    let mut text = String::new();
    std::io::stdin()
        .read_to_string(&mut text)
        .map_err(|e| EngineError::io("reading standard input", e))?;
    let value = text.trim_end_matches(['\r', '\n']).to_string();
    let removed = value.is_empty();
    super::sync(|| svc.set_smtp_password(Some(value)))?;
    if removed {
        println!("{key} removed from the OS keyring");
    } else {
        println!("{key} saved in the OS keyring");
    }
    Ok(ExitCode::SUCCESS)
}

/// `config set-secret google.client_secret`: the secret of the client whose ID is
/// `google.client_id`, from standard input, into the OS keyring (empty: forgotten).
fn set_google_client_secret(svc: &Service) -> CliResult<ExitCode> {
    let key = "google.client_secret";
    if std::io::stdin().is_terminal() {
        eprintln!("Paste the Client secret of your Google OAuth client and press Enter:");
    }
    let mut text = String::new();
    std::io::stdin()
        .read_to_string(&mut text)
        .map_err(|e| EngineError::io("reading standard input", e))?;
    let value = text.trim().to_string();
    let status = super::sync(|| svc.set_google_client_secret(&value))?;
    if value.is_empty() {
        println!("{key} removed from the OS keyring");
    } else {
        println!("{key} saved in the OS keyring");
    }
    match (&status.source, &status.problem) {
        (Some(source), _) => eprintln!(
            "driveback: Google sign-in uses the client {} ({})",
            status.client_id.as_deref().unwrap_or("?"),
            match source {
                driveback_engine::auth::ClientSource::Env => "from the environment",
                driveback_engine::auth::ClientSource::Settings => "the one you set up",
                driveback_engine::auth::ClientSource::BuiltIn => "built into this copy",
                driveback_engine::auth::ClientSource::Emulator => "the emulator's",
            }
        ),
        (None, Some(why)) => eprintln!("driveback: note: {why}"),
        (None, None) => {}
    }
    Ok(ExitCode::SUCCESS)
}
