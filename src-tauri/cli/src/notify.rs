//! `driveback test-email` and `driveback config set-secret smtp.password`.

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
    if key != "smtp.password" {
        return Err(CliError::new(format!(
            "there is no secret setting '{key}' (known: smtp.password)"
        )));
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
