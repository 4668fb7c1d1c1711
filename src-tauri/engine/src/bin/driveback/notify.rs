//! `driveback test-email` and `driveback config set-secret smtp.password`.

use std::io::{IsTerminal, Read};
use std::process::ExitCode;

use chrono::Utc;
use driveback_engine::error::EngineError;
use driveback_engine::notify::mail::{self, Mailer, Outgoing};
use driveback_engine::notify::templates;
use driveback_engine::secrets::{self, SecretStore};
use driveback_engine::settings::Settings;
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
