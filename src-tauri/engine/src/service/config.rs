//! Settings, the SMTP password and test email, Google Drive's connection, and the health view.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use chrono::{DateTime, Local, Timelike, Utc};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;

use super::{lock, Service};
use crate::auth::{
    Browser, ConnectEvent, ConnectOptions, DriveScope, Revocation, DEFAULT_CONNECT_TIMEOUT,
};
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::history::RunRecord;
use crate::notify::mail::{self, MailTransport, Outgoing, Smtp};
use crate::notify::templates;
use crate::schedule;
use crate::secrets;
use crate::settings::{Frequency, Settings};
use crate::status::Report;

/// Where backups go once Drive is connected: its hidden app folder.
pub const DRIVE_DEST: &str = "drive";
/// The visible "Driveback Backups" folder (the `drive.file` scope).
pub const DRIVE_FOLDER_DEST: &str = "drive:folder";

/// The destination a Drive sign-in with `scope` backs up to.
pub fn drive_dest(scope: DriveScope) -> &'static str {
    match scope {
        DriveScope::AppData => DRIVE_DEST,
        DriveScope::File => DRIVE_FOLDER_DEST,
    }
}

/// How many runs the health view shows.
const RECENT_RUNS: usize = 20;

#[derive(Serialize)]
pub struct SettingsView {
    pub settings: Settings,
    /// "Daily at 02:00".
    pub schedule_text: String,
    /// The retention policy in one plain sentence.
    pub retention_text: String,
    /// An SMTP password is kept in the OS keyring (or given in the environment).
    pub smtp_password_set: bool,
    /// The settings file could not be read: the defaults are shown.
    pub problem: Option<String>,
    /// The configured destination as `backup.layouts` names it, and its layout ("files" or
    /// "incremental"); `None` without a destination.
    pub layout_dest: Option<String>,
    pub layout: Option<&'static str>,
}

#[derive(Serialize)]
pub struct TestEmailSent {
    pub to: Vec<String>,
    pub server: String,
}

#[derive(Serialize)]
pub struct HealthView {
    #[serde(flatten)]
    pub report: Report,
    /// The latest runs (backups and emails), newest first.
    pub recent_runs: Vec<RunRecord>,
}

/// How a Google sign-in ended.
pub struct DriveConnected {
    pub email: String,
    pub notices: Vec<String>,
}

impl Service {
    /// The settings as a settings screen shows them. Blocking (the keyring).
    pub fn settings_view(&self) -> SettingsView {
        let settings = self.settings();
        // The destination backups go to (the settings', or the one the app was started with).
        let layout_dest = self
            .dest()
            .and_then(|d| crate::store::parse_dest(&d).ok())
            .map(|d| d.location());
        SettingsView {
            layout: layout_dest
                .as_deref()
                .map(|d| settings.backup.layout_for(d).as_str()),
            layout_dest,
            schedule_text: schedule::describe(&settings.schedule),
            retention_text: settings.retention.describe(),
            smtp_password_set: mail::smtp_password(self.secrets()).ok().flatten().is_some(),
            problem: self.settings_problem(),
            settings,
        }
    }

    /// Saves the schedule, retention, notification and SMTP settings of `given`, and the layout
    /// chosen per destination. What to back up and where are changed elsewhere (connection,
    /// Drive, folder) and kept as they are. A value
    /// that is not valid is refused with the setting named, and nothing changes. Blocking.
    pub fn save_settings(&self, given: serde_json::Value) -> ApiResult<SettingsView> {
        let given: Settings = serde_json::from_value(given)
            .map_err(|e| ApiError::bad_input(format!("these settings are not valid: {e}")))?;
        self.update_settings(|s| {
            let (backup, version, google) = (s.backup.clone(), s.version, s.google.clone());
            let paused_until = s.schedule.paused_until;
            let (layouts, full_after) = (
                given.backup.layouts.clone(),
                given.backup.full_after_percent,
            );
            *s = given;
            s.backup = backup;
            s.backup.layouts = layouts;
            s.backup.full_after_percent = full_after;
            s.version = version;
            // The OAuth client is set up with its secret (see `google.rs`), not here.
            s.google = google;
            // A pause is set and lifted with `pause_automatic_until` / `resume_automatic` (the
            // tray, `driveback pause`): a settings screen opened before does not undo it.
            s.schedule.paused_until = paused_until;
        })?;
        Ok(self.settings_view())
    }

    /// Holds automatic backups back until `until`: no scheduled backup, retry or catch-up starts
    /// before it (Backup Now still works); a slot missed meanwhile runs once when it ends. The
    /// scheduler follows at once. Refused when automatic backups are off or `until` is past.
    /// Blocking (the settings file).
    pub fn pause_automatic_until(&self, until: DateTime<Utc>) -> ApiResult<DateTime<Utc>> {
        let until = until.with_nanosecond(0).unwrap_or(until);
        if until <= self.now() {
            return Err(ApiError::bad_input(
                "a pause must end in the future: pick a later time",
            ));
        }
        let mut refused = None;
        self.update_settings(|s| {
            if s.schedule.frequency == Frequency::Off {
                refused = Some(ApiError::bad_input(
                    "automatic backups are off: there is nothing to pause",
                ));
            } else {
                s.schedule.paused_until = Some(until);
            }
        })?;
        match refused {
            Some(e) => Err(e),
            None => Ok(until),
        }
    }

    /// "Pause automatic backups until tomorrow": until 09:00 local time the next day (see
    /// [`schedule::pause_until_tomorrow`]).
    pub fn pause_automatic_until_tomorrow(&self) -> ApiResult<DateTime<Utc>> {
        self.pause_automatic_until(schedule::pause_until_tomorrow(self.now(), &Local))
    }

    /// Lifts a pause: automatic backups run as scheduled again (a slot missed during the pause
    /// runs now). Blocking (the settings file).
    pub fn resume_automatic(&self) -> ApiResult<()> {
        if self.settings().schedule.paused_until.is_none() {
            return Ok(());
        }
        self.update_settings(|s| s.schedule.paused_until = None)?;
        Ok(())
    }

    /// Keeps the SMTP password in the OS keyring (`None` or empty: forgets it). Blocking.
    pub fn set_smtp_password(&self, password: Option<String>) -> ApiResult<()> {
        let store = self.secrets().ok_or_else(|| {
            ApiError::new(
                ErrorCode::KeyringUnavailable,
                format!(
                    "no OS keyring is available to keep the SMTP password: {}",
                    self.keyring_problem().unwrap_or("none answers")
                ),
            )
        })?;
        let password = password.filter(|p| !p.is_empty()).map(SecretString::from);
        match &password {
            Some(p) => store.set(secrets::SMTP_PASSWORD, p)?,
            None => store.delete(secrets::SMTP_PASSWORD)?,
        }
        // The environment's password, when set, still wins.
        self.email().set_password(
            mail::smtp_password(self.secrets())
                .ok()
                .flatten()
                .or(password),
        );
        Ok(())
    }

    /// Sends the test email with the saved SMTP settings and password. Blocking.
    pub fn send_test_email(&self) -> ApiResult<TestEmailSent> {
        let err = |e: mail::MailError| ApiError::new(e.code(), e.to_string());
        let smtp = self.settings().smtp;
        let password = mail::smtp_password(self.secrets()).map_err(err)?;
        let mail = templates::test_email(smtp.host.as_deref().unwrap_or(""), smtp.port, self.now());
        let (server, to) = Smtp
            .send(
                &smtp,
                password,
                &Outgoing {
                    mail: &mail,
                    attachment: None,
                },
                &[],
            )
            .map_err(err)?;
        Ok(TestEmailSent { to, server })
    }

    /// The health checks (database, destination, last backup, schedule, free space, ...),
    /// metrics and recent runs. Asks the database and the destination, so it takes a moment.
    pub async fn health_view(&self) -> ApiResult<HealthView> {
        let database = match self.mongo_uri() {
            None => None,
            Some((uri, _)) => Some(
                match tokio::time::timeout(
                    std::time::Duration::from_secs(10),
                    self.mongo().ping(uri.expose_secret()),
                )
                .await
                {
                    Ok(Ok(())) => Ok(()),
                    Ok(Err(e)) => Err(ApiError::from(e).message),
                    Err(_) => Err("the database did not answer within 10 seconds".to_string()),
                },
            ),
        };
        let svc = self.clone();
        super::blocking(move || {
            let mut recent_runs = svc.load_history()?;
            let (_, report) = svc.health_report(&recent_runs, None, database)?;
            recent_runs.reverse();
            recent_runs.truncate(RECENT_RUNS);
            Ok(HealthView {
                report,
                recent_runs,
            })
        })
        .await
    }

    /// Opens Google's consent page in the system browser and waits (up to five minutes) for the
    /// answer on a loopback address; then backups go to Google Drive: its hidden app folder
    /// (`DriveScope::AppData`, `drive.appdata`) or a visible "Driveback Backups" folder
    /// (`DriveScope::File`, `drive.file`); the key comes along. `on_url` hears the consent page's
    /// address, in case no browser opened. Blocking.
    pub fn connect_drive(
        &self,
        scope: DriveScope,
        on_url: impl Fn(&str) + Send + Sync + 'static,
    ) -> ApiResult<DriveConnected> {
        let google = self.google()?;
        let cancel = Arc::new(AtomicBool::new(false));
        {
            let mut waiting = lock(self.connect_cancel());
            if waiting.is_some() {
                return Err(ApiError::busy("a Google sign-in waiting for the browser"));
            }
            *waiting = Some(cancel.clone());
        }
        let connected = google.connect(ConnectOptions {
            scope,
            browser: Browser::from_env(false),
            timeout: DEFAULT_CONNECT_TIMEOUT,
            cancel: Some(cancel),
            on_event: Box::new(move |e| match e {
                ConnectEvent::AuthorizeUrl(url) => on_url(&url),
                ConnectEvent::BrowserFailed(why) => {
                    tracing::warn!(%why, "could not open the browser for Google sign-in")
                }
                ConnectEvent::Refused(why) => {
                    tracing::warn!(%why, "refused an answer that was not for this sign-in")
                }
                ConnectEvent::BrowserOpened | ConnectEvent::Exchanging => {}
            }),
        });
        *lock(self.connect_cancel()) = None;
        let connected = connected?;
        self.forget_store();
        let notices = self.switch_destination(drive_dest(scope))?;
        self.retry_after_fix();
        Ok(DriveConnected {
            email: connected.account.email,
            notices,
        })
    }

    /// Gives up a sign-in that is waiting for the browser. Whether one was waiting.
    pub fn cancel_connect_drive(&self) -> bool {
        match lock(self.connect_cancel()).as_ref() {
            Some(c) => {
                c.store(true, Ordering::SeqCst);
                true
            }
            None => false,
        }
    }

    /// Revokes Driveback's access at Google and forgets the sign-in on this computer; what
    /// happened, in words. Backups already on Drive stay there. Blocking.
    pub fn disconnect_drive(&self) -> ApiResult<String> {
        let google = self.google()?;
        let done = google.disconnect()?;
        self.forget_store();
        let who = done.email.unwrap_or_else(|| "the Google account".into());
        Ok(match done.revocation {
            None | Some(Revocation::Revoked) | Some(Revocation::AlreadyRevoked) => {
                format!("Disconnected {who}: Driveback's access to Google Drive is revoked.")
            }
            Some(Revocation::Failed(why)) => format!(
                "Disconnected {who} on this computer, but Google could not be told ({why}): remove Driveback at https://myaccount.google.com/permissions"
            ),
        })
    }
}
