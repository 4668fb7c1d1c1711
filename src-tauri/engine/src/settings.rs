//! The user's settings: when to back up, what and where, and how many backups to keep.
//!
//! Stored as `settings.json` in the OS config directory (the same folder Tauri's
//! `app_config_dir` uses; `DRIVEBACK_CONFIG_DIR` overrides it), written atomically (temporary file,
//! fsync, rename), versioned, and validated field by field on load so that a bad value is named.
//! Secrets (connection strings, tokens, passwords) never go here: they live in the OS keyring.
//!
//! Every setting is reachable by a dotted key (`schedule.time`, `retention.daily`, ...) through one
//! table, [`KEYS`]: the loader, `driveback config get/set` and the app all go through it, so a new
//! setting is one field plus one table entry.

use std::fmt;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use chrono::{NaiveTime, Weekday};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Version of the settings file this build writes and the newest it reads.
pub const SETTINGS_VERSION: u32 = 1;

/// File name inside the config directory.
pub const SETTINGS_FILE: &str = "settings.json";

/// Identifier of the app (as in `tauri.conf.json`): the config and data folders are named after it,
/// like Tauri's own `app_config_dir` and `app_data_dir`.
pub const APP_IDENTIFIER: &str = "app.driveback.desktop";

/// Larger numbers in a retention policy are almost certainly a typo.
pub const MAX_RETENTION_COUNT: u32 = 1000;

/// How often automatic backups run ("only when I tap Back up" is `Off`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Frequency {
    #[default]
    Daily,
    Weekly,
    Monthly,
    /// Only when the user taps Back up.
    Off,
}

impl Frequency {
    pub fn as_str(self) -> &'static str {
        match self {
            Frequency::Daily => "daily",
            Frequency::Weekly => "weekly",
            Frequency::Monthly => "monthly",
            Frequency::Off => "off",
        }
    }

    pub fn parse(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "daily" => Ok(Frequency::Daily),
            "weekly" => Ok(Frequency::Weekly),
            "monthly" => Ok(Frequency::Monthly),
            "off" | "manual" | "never" => Ok(Frequency::Off),
            _ => Err(format!(
                "'{s}' is not a frequency (daily, weekly, monthly or off)"
            )),
        }
    }
}

impl fmt::Display for Frequency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A local time of day, minute precision, written `HH:MM` (24-hour).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct TimeOfDay {
    hour: u8,
    minute: u8,
}

impl TimeOfDay {
    pub fn new(hour: u8, minute: u8) -> Option<Self> {
        (hour < 24 && minute < 60).then_some(TimeOfDay { hour, minute })
    }

    pub fn hour(self) -> u8 {
        self.hour
    }

    pub fn minute(self) -> u8 {
        self.minute
    }

    pub fn to_naive(self) -> NaiveTime {
        NaiveTime::from_hms_opt(self.hour.into(), self.minute.into(), 0)
            .expect("hour and minute are in range")
    }

    pub fn parse(s: &str) -> Result<Self, String> {
        let bad = || format!("'{s}' is not a time of day (HH:MM, 24-hour, e.g. 02:00)");
        let (h, m) = s.trim().split_once(':').ok_or_else(bad)?;
        if h.is_empty() || h.len() > 2 || m.len() != 2 {
            return Err(bad());
        }
        let hour: u8 = h.parse().map_err(|_| bad())?;
        let minute: u8 = m.parse().map_err(|_| bad())?;
        TimeOfDay::new(hour, minute).ok_or_else(bad)
    }
}

impl Default for TimeOfDay {
    fn default() -> Self {
        TimeOfDay { hour: 2, minute: 0 }
    }
}

impl fmt::Display for TimeOfDay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02}:{:02}", self.hour, self.minute)
    }
}

impl Serialize for TimeOfDay {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for TimeOfDay {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        TimeOfDay::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// Weekdays as settings write them: `mon` .. `sun`.
mod weekday_serde {
    use chrono::Weekday;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(w: &Weekday, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(super::weekday_name(*w))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Weekday, D::Error> {
        let s = String::deserialize(d)?;
        super::parse_weekday(&s).map_err(serde::de::Error::custom)
    }
}

fn weekday_name(w: Weekday) -> &'static str {
    match w {
        Weekday::Mon => "mon",
        Weekday::Tue => "tue",
        Weekday::Wed => "wed",
        Weekday::Thu => "thu",
        Weekday::Fri => "fri",
        Weekday::Sat => "sat",
        Weekday::Sun => "sun",
    }
}

fn parse_weekday(s: &str) -> Result<Weekday, String> {
    s.trim()
        .parse::<Weekday>()
        .map_err(|_| format!("'{s}' is not a day of the week (mon, tue, ..., sun)"))
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ScheduleSettings {
    pub frequency: Frequency,
    /// Local time of day of the automatic backup.
    pub time: TimeOfDay,
    /// Day of a weekly backup.
    #[serde(with = "weekday_serde")]
    pub weekday: Weekday,
    /// Day of the month of a monthly backup, 1-31; in shorter months, the month's last day.
    pub day_of_month: u8,
    /// No automatic backup, retry or catch-up starts before this time (Backup Now still works);
    /// a slot missed meanwhile runs once when it ends. `None`, or a time past: not paused.
    #[serde(with = "paused_serde")]
    pub paused_until: Option<chrono::DateTime<chrono::Utc>>,
}

/// A pause's end as the settings file and `driveback config` write it: RFC 3339 in UTC.
pub fn format_paused_until(t: &chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// A pause's end from text: RFC 3339 (any offset); empty, `none` or `off` for no pause.
pub fn parse_paused_until(s: &str) -> Result<Option<chrono::DateTime<chrono::Utc>>, String> {
    let t = s.trim();
    if t.is_empty() || t.eq_ignore_ascii_case("none") || t.eq_ignore_ascii_case("off") {
        return Ok(None);
    }
    chrono::DateTime::parse_from_rfc3339(t)
        .map(|d| Some(d.with_timezone(&chrono::Utc)))
        .map_err(|_| {
            format!(
                "'{s}' is not a date and time (RFC 3339, e.g. 2025-06-02T09:00:00+02:00), or none"
            )
        })
}

mod paused_serde {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => s.serialize_str(&super::format_paused_until(t)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
        match Option::<String>::deserialize(d)? {
            None => Ok(None),
            Some(s) => super::parse_paused_until(&s).map_err(serde::de::Error::custom),
        }
    }
}

impl Default for ScheduleSettings {
    fn default() -> Self {
        ScheduleSettings {
            frequency: Frequency::Daily,
            time: TimeOfDay::default(),
            weekday: Weekday::Sun,
            day_of_month: 1,
            paused_until: None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct BackupSettings {
    /// The database to back up.
    pub database: Option<String>,
    /// Where backups go, e.g. `folder:/path`.
    pub dest: Option<String>,
    /// The layout chosen for each destination (by its name); one not listed has
    /// [`Layout::default_for`].
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub layouts: std::collections::BTreeMap<String, Layout>,
    /// The incremental layout starts a new chain (a full backup) once the chain's increments add
    /// up to this percent of its full backup (docs/INCREMENTAL.md measured 100 as the best).
    #[serde(default = "default_full_after_percent")]
    pub full_after_percent: u32,
}

impl Default for BackupSettings {
    fn default() -> Self {
        BackupSettings {
            database: None,
            dest: None,
            layouts: Default::default(),
            full_after_percent: default_full_after_percent(),
        }
    }
}

fn default_full_after_percent() -> u32 {
    100
}

/// How backups are kept at a destination (docs/FORMAT.md).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Layout {
    /// One self-contained file per backup.
    Files,
    /// Chains: a full backup, then increments holding only what changed.
    Incremental,
}

impl Layout {
    pub fn as_str(self) -> &'static str {
        match self {
            Layout::Files => "files",
            Layout::Incremental => "incremental",
        }
    }

    pub fn parse(s: &str) -> Result<Layout, String> {
        match s.trim() {
            "files" => Ok(Layout::Files),
            "incremental" => Ok(Layout::Incremental),
            other => Err(format!(
                "unknown layout '{other}' (use files or incremental)"
            )),
        }
    }

    /// The layout of a destination nobody chose one for: incremental on Google Drive, where
    /// uploads and storage are what a backup costs (docs/INCREMENTAL.md), one file per backup
    /// in a folder.
    pub fn default_for(dest: &str) -> Layout {
        if dest.starts_with("drive") {
            Layout::Incremental
        } else {
            Layout::Files
        }
    }
}

impl BackupSettings {
    /// The layout of backups at `dest`: the one chosen for it, else its default.
    pub fn layout_for(&self, dest: &str) -> Layout {
        let key = crate::store::parse_dest(dest)
            .map(|d| d.location())
            .unwrap_or_else(|_| dest.to_string());
        self.layouts
            .get(&key)
            .copied()
            .unwrap_or_else(|| Layout::default_for(&key))
    }

    /// Remembers `layout` for `dest`.
    pub fn set_layout(&mut self, dest: &str, layout: Layout) {
        let key = crate::store::parse_dest(dest)
            .map(|d| d.location())
            .unwrap_or_else(|_| dest.to_string());
        self.layouts.insert(key, layout);
    }
}

/// Which backups to keep. See `retention::plan` for the exact rules.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RetentionPolicy {
    /// The newest complete backup of each of the last `daily` days that have backups.
    pub daily: u32,
    /// The newest complete backup of each of the last `weekly` weeks that have backups.
    pub weekly: u32,
    /// The first complete backup of the current month and of each of the `monthly` months before.
    pub monthly: u32,
    /// At least this many of the most recent complete backups (1 at minimum: the newest complete
    /// backup is never deleted).
    pub keep_last: u32,
}

impl Default for RetentionPolicy {
    /// "7 daily backups + 1 backup about 30 days old".
    fn default() -> Self {
        RetentionPolicy {
            daily: 7,
            weekly: 0,
            monthly: 1,
            keep_last: 1,
        }
    }
}

impl RetentionPolicy {
    /// The policy in one plain sentence, for the settings screen and `driveback prune`.
    pub fn describe(&self) -> String {
        let mut parts: Vec<String> = Vec::new();
        match self.daily {
            0 => {}
            1 => parts.push("the newest backup of the last day with backups".into()),
            n => parts.push(format!(
                "the newest backup of each of the last {n} days with backups"
            )),
        }
        match self.weekly {
            0 => {}
            1 => parts.push("the newest backup of the last week with backups".into()),
            n => parts.push(format!(
                "the newest backup of each of the last {n} weeks with backups"
            )),
        }
        match self.monthly {
            0 => {}
            1 => parts.push("the first backup of this month and of last month".into()),
            n => parts.push(format!(
                "the first backup of this month and of each of the {n} months before"
            )),
        }
        if self.keep_last > 1 {
            parts.push(format!(
                "at least the {} most recent backups",
                self.keep_last
            ));
        }
        match parts.len() {
            0 => "Keeps only the most recent backup.".into(),
            1 => format!("Keeps {}.", parts[0]),
            _ => {
                let last = parts.pop().expect("two or more parts");
                format!("Keeps {}, and {last}.", parts.join(", "))
            }
        }
    }
}

/// How the connection to the SMTP server is protected.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpSecurity {
    /// Plain connection upgraded with STARTTLS (port 587). Required, never optional.
    #[default]
    Starttls,
    /// TLS from the first byte ("SMTPS", port 465).
    Tls,
    /// No encryption: only for a server on this computer (localhost, 127.0.0.1, ::1).
    None,
}

impl SmtpSecurity {
    pub fn as_str(self) -> &'static str {
        match self {
            SmtpSecurity::Starttls => "starttls",
            SmtpSecurity::Tls => "tls",
            SmtpSecurity::None => "none",
        }
    }

    pub fn parse(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "starttls" => Ok(SmtpSecurity::Starttls),
            "tls" | "ssl" | "smtps" => Ok(SmtpSecurity::Tls),
            "none" => Ok(SmtpSecurity::None),
            _ => Err(format!(
                "'{s}' is not a connection security (starttls, tls or none)"
            )),
        }
    }
}

/// Whether `host` names this computer (where an unencrypted SMTP connection is allowed).
pub fn is_local_host(host: &str) -> bool {
    let h = host.trim().trim_start_matches('[').trim_end_matches(']');
    h.eq_ignore_ascii_case("localhost") || h == "127.0.0.1" || h == "::1"
}

const NONE_ONLY_LOCAL: &str =
    "security 'none' (no encryption) is only allowed for a server on this computer (localhost, 127.0.0.1 or ::1); use starttls or tls";

/// The SMTP server that sends email reports. The password is not here: it comes from
/// `DRIVEBACK_SMTP_PASSWORD` or the OS keyring (`secrets::SMTP_PASSWORD`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SmtpSettings {
    pub host: Option<String>,
    pub port: u16,
    pub security: SmtpSecurity,
    /// Login name (often the email address); no login when unset.
    pub user: Option<String>,
    /// Sender address; the user when unset.
    pub from: Option<String>,
    /// Recipients, separated by commas.
    pub to: Option<String>,
    /// An extra root certificate (PEM file) to trust, for a server with a private certificate
    /// authority. The public roots are trusted either way; verification is never turned off.
    pub ca_file: Option<String>,
}

impl Default for SmtpSettings {
    fn default() -> Self {
        SmtpSettings {
            host: None,
            port: 587,
            security: SmtpSecurity::Starttls,
            user: None,
            from: None,
            to: None,
            ca_file: None,
        }
    }
}

impl SmtpSettings {
    /// Whether email reports can be sent (a server and at least one recipient).
    pub fn is_configured(&self) -> bool {
        self.host.is_some() && !self.recipients().is_empty()
    }

    /// The recipients, one address each.
    pub fn recipients(&self) -> Vec<String> {
        self.to
            .as_deref()
            .unwrap_or("")
            .split([',', ';'])
            .map(str::trim)
            .filter(|a| !a.is_empty())
            .map(str::to_string)
            .collect()
    }

    /// Fills in the server of a well-known provider: `gmail` (an app password is needed),
    /// `outlook` (Microsoft 365 / Outlook.com), or `custom` (leaves everything as it is).
    pub fn apply_preset(&mut self, preset: &str) -> Result<(), String> {
        let (host, port) = match preset.trim().to_ascii_lowercase().as_str() {
            "gmail" | "google" => ("smtp.gmail.com", 587),
            "outlook" | "office365" | "microsoft" => ("smtp.office365.com", 587),
            "custom" => return Ok(()),
            _ => {
                return Err(format!(
                    "'{preset}' is not a preset (gmail, outlook or custom)"
                ))
            }
        };
        self.host = Some(host.into());
        self.port = port;
        self.security = SmtpSecurity::Starttls;
        Ok(())
    }
}

/// Default size limit of an emailed backup copy: Gmail accepts 25 MB messages, and base64 makes an
/// attachment about a third larger, so about 18 MB of file fits.
pub const DEFAULT_EMAIL_COPY_MAX_MB: u32 = 18;

/// What to tell the user about, and how.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct NotifySettings {
    /// A desktop notification after a successful backup (the app; failures are always shown).
    pub desktop_on_success: bool,
    pub email_on_success: bool,
    pub email_on_failure: bool,
    /// A summary of the week by email, on Mondays.
    pub weekly_summary: bool,
    /// Attach the encrypted backup file to the success email when it is small enough.
    pub email_copy: bool,
    /// Largest backup file attached, in MB (10^6 bytes).
    pub email_copy_max_mb: u32,
    /// A collection that lost more than this percentage of its documents since the previous
    /// backup raises a data-loss alarm.
    pub data_loss_percent: u32,
}

impl Default for NotifySettings {
    fn default() -> Self {
        NotifySettings {
            desktop_on_success: false,
            email_on_success: false,
            email_on_failure: true,
            weekly_summary: true,
            email_copy: false,
            email_copy_max_mb: DEFAULT_EMAIL_COPY_MAX_MB,
            data_loss_percent: 20,
        }
    }
}

/// Audits of the backups: a test restore into a scratch database, and a full read (verify).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct AuditSettings {
    /// Test-restore the newest backup every N days (0: never).
    pub test_restore_days: u32,
    /// Read and check the newest backup every N days (0: never).
    pub verify_days: u32,
    /// The scratch database of test restores (default: `<db>_driveback_audit`).
    pub scratch_db: Option<String>,
}

impl Default for AuditSettings {
    fn default() -> Self {
        AuditSettings {
            test_restore_days: 30,
            verify_days: 7,
            scratch_db: None,
        }
    }
}

/// How a restore treats the server.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RestoreSettings {
    /// Requests a restore keeps in flight at once: insert batches, and the count and index build
    /// of each collection as soon as it is loaded (1 to [`MAX_RESTORE_PARALLEL`]).
    pub parallel: u32,
}

/// The most requests a restore may keep in flight.
pub const MAX_RESTORE_PARALLEL: u32 = 16;

impl Default for RestoreSettings {
    fn default() -> Self {
        RestoreSettings {
            parallel: crate::mongo::restore::DEFAULT_PARALLEL as u32,
        }
    }
}

/// The Google OAuth client the user set up; its secret is in the OS keyring
/// (`secrets::GOOGLE_CLIENT_SECRET`), never here.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct GoogleSettings {
    /// `...apps.googleusercontent.com` of a "Desktop app" client.
    pub client_id: Option<String>,
}

/// Everything the user chose. Secrets are not here.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    pub version: u32,
    pub schedule: ScheduleSettings,
    pub backup: BackupSettings,
    pub retention: RetentionPolicy,
    pub smtp: SmtpSettings,
    pub notify: NotifySettings,
    pub audit: AuditSettings,
    pub restore: RestoreSettings,
    pub google: GoogleSettings,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            version: SETTINGS_VERSION,
            schedule: ScheduleSettings::default(),
            backup: BackupSettings::default(),
            retention: RetentionPolicy::default(),
            smtp: SmtpSettings::default(),
            notify: NotifySettings::default(),
            audit: AuditSettings::default(),
            restore: RestoreSettings::default(),
            google: GoogleSettings::default(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// A value that is not allowed; `key` is the dotted name of the setting.
    #[error("{key}: {message}")]
    Invalid { key: String, message: String },
    #[error("there is no setting '{0}' (known settings: {known})", known = known_keys())]
    UnknownKey(String),
    #[error("the settings file {path} is not valid JSON: {message}")]
    Syntax { path: PathBuf, message: String },
    #[error("the settings file {path} has an invalid value for {key}: {message}")]
    InvalidInFile {
        path: PathBuf,
        key: String,
        message: String,
    },
    #[error("the settings file {path} was written by a newer Driveback (settings version {version}); update Driveback")]
    NewerVersion { path: PathBuf, version: u64 },
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },
    #[error("no home folder was found to keep the settings in; set DRIVEBACK_CONFIG_DIR")]
    NoConfigDir,
}

impl SettingsError {
    /// A short stable code for the UI.
    pub fn code(&self) -> &'static str {
        match self {
            SettingsError::Invalid { .. } | SettingsError::UnknownKey(_) => "bad_input",
            SettingsError::Syntax { .. }
            | SettingsError::InvalidInFile { .. }
            | SettingsError::NewerVersion { .. } => "bad_settings",
            SettingsError::Io { .. } | SettingsError::NoConfigDir => "io_error",
        }
    }
}

/// One setting reachable by a dotted key.
pub struct SettingKey {
    pub name: &'static str,
    /// What it means and which values it takes, for `driveback config` and the app.
    pub help: &'static str,
    /// The current value as JSON (`null` when unset).
    pub get: fn(&Settings) -> Value,
    /// Parses a value given as text and stores it; the error says what is allowed.
    pub set: fn(&mut Settings, &str) -> Result<(), String>,
}

fn parse_count(s: &str, min: u32) -> Result<u32, String> {
    let n: u32 = s
        .trim()
        .parse()
        .map_err(|_| format!("'{s}' is not a whole number"))?;
    if n < min || n > MAX_RETENTION_COUNT {
        return Err(format!(
            "{n} is out of range ({min} to {MAX_RETENTION_COUNT})"
        ));
    }
    Ok(n)
}

fn optional_text(s: &str) -> Option<String> {
    let t = s.trim();
    (!t.is_empty()).then(|| t.to_string())
}

fn text_or_null(v: &Option<String>) -> Value {
    v.as_ref().map_or(Value::Null, |s| Value::String(s.clone()))
}

fn parse_bool(s: &str) -> Result<bool, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "true" | "on" | "yes" | "1" => Ok(true),
        "false" | "off" | "no" | "0" => Ok(false),
        _ => Err(format!("'{s}' is not on or off (true or false)")),
    }
}

/// A plausible email address: something@domain, no spaces or brackets.
fn check_address(a: &str) -> Result<(), String> {
    let ok = a.split_once('@').is_some_and(|(local, domain)| {
        !local.is_empty() && !domain.is_empty() && !domain.contains('@')
    }) && !a.contains(|c: char| c.is_whitespace() || "<>,;\"".contains(c));
    if ok {
        Ok(())
    } else {
        Err(format!("'{a}' is not an email address"))
    }
}

/// Every setting, by dotted key. Add new settings here (and to [`Settings`]).
pub static KEYS: &[SettingKey] = &[
    SettingKey {
        name: "schedule.frequency",
        help: "how often automatic backups run: daily, weekly, monthly, or off (only when you tap Back up)",
        get: |s| Value::from(s.schedule.frequency.as_str()),
        set: |s, v| {
            s.schedule.frequency = Frequency::parse(v)?;
            Ok(())
        },
    },
    SettingKey {
        name: "schedule.time",
        help: "local time of day of automatic backups, HH:MM (24-hour)",
        get: |s| Value::from(s.schedule.time.to_string()),
        set: |s, v| {
            s.schedule.time = TimeOfDay::parse(v)?;
            Ok(())
        },
    },
    SettingKey {
        name: "schedule.weekday",
        help: "day of weekly backups: mon, tue, wed, thu, fri, sat or sun",
        get: |s| Value::from(weekday_name(s.schedule.weekday)),
        set: |s, v| {
            s.schedule.weekday = parse_weekday(v)?;
            Ok(())
        },
    },
    SettingKey {
        name: "schedule.day_of_month",
        help: "day of monthly backups, 1-31 (in shorter months, the last day)",
        get: |s| Value::from(s.schedule.day_of_month),
        set: |s, v| {
            let d: u8 = v
                .trim()
                .parse()
                .map_err(|_| format!("'{v}' is not a day of the month (1-31)"))?;
            if !(1..=31).contains(&d) {
                return Err(format!("{d} is not a day of the month (1-31)"));
            }
            s.schedule.day_of_month = d;
            Ok(())
        },
    },
    SettingKey {
        name: "schedule.paused_until",
        help: "no automatic backup starts before this time, RFC 3339 (e.g. 2025-06-02T09:00:00+02:00); none to resume (`driveback pause` and `driveback resume` set it)",
        get: |s| {
            s.schedule
                .paused_until
                .as_ref()
                .map_or(Value::Null, |t| Value::from(format_paused_until(t)))
        },
        set: |s, v| {
            s.schedule.paused_until = parse_paused_until(v)?;
            Ok(())
        },
    },
    SettingKey {
        name: "backup.database",
        help: "the MongoDB database to back up (empty to unset)",
        get: |s| text_or_null(&s.backup.database),
        set: |s, v| {
            s.backup.database = optional_text(v);
            Ok(())
        },
    },
    SettingKey {
        name: "backup.dest",
        help: "where backups go, e.g. folder:/path (empty to unset)",
        get: |s| text_or_null(&s.backup.dest),
        set: |s, v| {
            let dest = optional_text(v);
            if let Some(d) = &dest {
                crate::store::parse_dest(d).map_err(|e| e.to_string())?;
            }
            s.backup.dest = dest;
            Ok(())
        },
    },
    SettingKey {
        name: "backup.layout",
        help: "how backups are kept at the destination: files (one file per backup) or incremental (a full backup, then only what changed); remembered per destination",
        get: |s| match &s.backup.dest {
            Some(d) => Value::from(s.backup.layout_for(d).as_str()),
            None => Value::Null,
        },
        set: |s, v| {
            let layout = Layout::parse(v)?;
            let dest = s
                .backup
                .dest
                .clone()
                .ok_or("set backup.dest first: the layout is remembered per destination")?;
            s.backup.set_layout(&dest, layout);
            Ok(())
        },
    },
    SettingKey {
        name: "backup.full_after_percent",
        help: "incremental layout: start a new chain once its increments add up to this percent of its full backup (10-1000)",
        get: |s| Value::from(s.backup.full_after_percent),
        set: |s, v| {
            let n: u32 = v
                .trim()
                .parse()
                .map_err(|_| format!("'{v}' is not a whole number"))?;
            if !(10..=1000).contains(&n) {
                return Err(format!("{n} is out of range (10 to 1000)"));
            }
            s.backup.full_after_percent = n;
            Ok(())
        },
    },
    SettingKey {
        name: "retention.daily",
        help: "keep the newest backup of each of the last N days that have backups",
        get: |s| Value::from(s.retention.daily),
        set: |s, v| {
            s.retention.daily = parse_count(v, 0)?;
            Ok(())
        },
    },
    SettingKey {
        name: "retention.weekly",
        help: "keep the newest backup of each of the last N weeks that have backups",
        get: |s| Value::from(s.retention.weekly),
        set: |s, v| {
            s.retention.weekly = parse_count(v, 0)?;
            Ok(())
        },
    },
    SettingKey {
        name: "retention.monthly",
        help: "keep the first backup of this month and of each of the N months before",
        get: |s| Value::from(s.retention.monthly),
        set: |s, v| {
            s.retention.monthly = parse_count(v, 0)?;
            Ok(())
        },
    },
    SettingKey {
        name: "retention.keep_last",
        help: "keep at least the N most recent backups (1 or more)",
        get: |s| Value::from(s.retention.keep_last),
        set: |s, v| {
            s.retention.keep_last = parse_count(v, 1)?;
            Ok(())
        },
    },
    SettingKey {
        name: "smtp.host",
        help: "SMTP server for email reports, e.g. smtp.gmail.com (Gmail, with an app password) or smtp.office365.com (Outlook); empty turns email off",
        get: |s| text_or_null(&s.smtp.host),
        set: |s, v| {
            let host = optional_text(v);
            if let Some(h) = &host {
                if h.contains(|c: char| c.is_whitespace() || c == '/') {
                    return Err(format!("'{h}' is not a server name"));
                }
                if s.smtp.security == SmtpSecurity::None && !is_local_host(h) {
                    return Err(NONE_ONLY_LOCAL.into());
                }
            }
            s.smtp.host = host;
            Ok(())
        },
    },
    SettingKey {
        name: "smtp.port",
        help: "SMTP port: 587 for starttls, 465 for tls",
        get: |s| Value::from(s.smtp.port),
        set: |s, v| {
            s.smtp.port = v
                .trim()
                .parse::<u16>()
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| format!("'{v}' is not a port number (1-65535)"))?;
            Ok(())
        },
    },
    SettingKey {
        name: "smtp.security",
        help: "starttls (port 587), tls (port 465), or none (only for a server on this computer)",
        get: |s| Value::from(s.smtp.security.as_str()),
        set: |s, v| {
            let sec = SmtpSecurity::parse(v)?;
            if sec == SmtpSecurity::None && s.smtp.host.as_deref().is_some_and(|h| !is_local_host(h)) {
                return Err(NONE_ONLY_LOCAL.into());
            }
            s.smtp.security = sec;
            Ok(())
        },
    },
    SettingKey {
        name: "smtp.user",
        help: "SMTP login, usually your email address (the password: `driveback config set-secret smtp.password`)",
        get: |s| text_or_null(&s.smtp.user),
        set: |s, v| {
            s.smtp.user = optional_text(v);
            Ok(())
        },
    },
    SettingKey {
        name: "smtp.from",
        help: "sender address of email reports (the SMTP login when empty)",
        get: |s| text_or_null(&s.smtp.from),
        set: |s, v| {
            let from = optional_text(v);
            if let Some(a) = &from {
                check_address(a)?;
            }
            s.smtp.from = from;
            Ok(())
        },
    },
    SettingKey {
        name: "smtp.to",
        help: "who receives email reports: one or more addresses, separated by commas",
        get: |s| text_or_null(&s.smtp.to),
        set: |s, v| {
            let list: Vec<&str> = v
                .split([',', ';'])
                .map(str::trim)
                .filter(|a| !a.is_empty())
                .collect();
            for a in &list {
                check_address(a)?;
            }
            s.smtp.to = (!list.is_empty()).then(|| list.join(", "));
            Ok(())
        },
    },
    SettingKey {
        name: "smtp.ca_file",
        help: "an extra root certificate (PEM file) to trust, for a server with a private certificate authority",
        get: |s| text_or_null(&s.smtp.ca_file),
        set: |s, v| {
            s.smtp.ca_file = optional_text(v);
            Ok(())
        },
    },
    SettingKey {
        name: "notify.desktop_on_success",
        help: "a desktop notification after every successful backup, in the app (on or off; failures are always shown)",
        get: |s| Value::from(s.notify.desktop_on_success),
        set: |s, v| {
            s.notify.desktop_on_success = parse_bool(v)?;
            Ok(())
        },
    },
    SettingKey {
        name: "notify.email_on_success",
        help: "email after every successful backup (on or off)",
        get: |s| Value::from(s.notify.email_on_success),
        set: |s, v| {
            s.notify.email_on_success = parse_bool(v)?;
            Ok(())
        },
    },
    SettingKey {
        name: "notify.email_on_failure",
        help: "email when a backup fails or is partial (on or off)",
        get: |s| Value::from(s.notify.email_on_failure),
        set: |s, v| {
            s.notify.email_on_failure = parse_bool(v)?;
            Ok(())
        },
    },
    SettingKey {
        name: "audit.test_restore_days",
        help: "test-restore the newest backup into a scratch database every N days (0: never)",
        get: |s| Value::from(s.audit.test_restore_days),
        set: |s, v| {
            s.audit.test_restore_days = parse_count(v, 0)?;
            Ok(())
        },
    },
    SettingKey {
        name: "audit.verify_days",
        help: "read and check the newest backup every N days (0: never)",
        get: |s| Value::from(s.audit.verify_days),
        set: |s, v| {
            s.audit.verify_days = parse_count(v, 0)?;
            Ok(())
        },
    },
    SettingKey {
        name: "audit.scratch_db",
        help: "the scratch database of test restores (empty: <database>_driveback_audit)",
        get: |s| text_or_null(&s.audit.scratch_db),
        set: |s, v| {
            s.audit.scratch_db = optional_text(v);
            Ok(())
        },
    },
    SettingKey {
        name: "restore.parallel",
        help: "requests a restore keeps in flight on the server at once: insert batches, counts and index builds (1-16)",
        get: |s| Value::from(s.restore.parallel),
        set: |s, v| {
            let n = parse_count(v, 0)?;
            if !(1..=MAX_RESTORE_PARALLEL).contains(&n) {
                return Err(format!("{n} is out of range (1 to {MAX_RESTORE_PARALLEL})"));
            }
            s.restore.parallel = n;
            Ok(())
        },
    },
    SettingKey {
        name: "notify.data_loss_percent",
        help: "warn when a collection lost more than this percentage of its documents since the previous backup (1-100)",
        get: |s| Value::from(s.notify.data_loss_percent),
        set: |s, v| {
            let n = parse_count(v, 1)?;
            if n > 100 {
                return Err(format!("{n} is out of range (1 to 100)"));
            }
            s.notify.data_loss_percent = n;
            Ok(())
        },
    },
    SettingKey {
        name: "notify.weekly_summary",
        help: "a summary of the week by email, on Mondays (on or off)",
        get: |s| Value::from(s.notify.weekly_summary),
        set: |s, v| {
            s.notify.weekly_summary = parse_bool(v)?;
            Ok(())
        },
    },
    SettingKey {
        name: "notify.email_copy",
        help: "attach the encrypted backup file to the success email when it is small enough (on or off)",
        get: |s| Value::from(s.notify.email_copy),
        set: |s, v| {
            s.notify.email_copy = parse_bool(v)?;
            Ok(())
        },
    },
    SettingKey {
        name: "notify.email_copy_max_mb",
        help: "largest backup file emailed, in MB (18 fits Gmail's 25 MB message limit)",
        get: |s| Value::from(s.notify.email_copy_max_mb),
        set: |s, v| {
            s.notify.email_copy_max_mb = v
                .trim()
                .parse::<u32>()
                .ok()
                .filter(|n| (1..=1000).contains(n))
                .ok_or_else(|| format!("'{v}' is not a size in MB (1 to 1000)"))?;
            Ok(())
        },
    },
    SettingKey {
        name: "google.client_id",
        help: "the Client ID of your own Google OAuth client, type Desktop app (its secret: `driveback config set-secret google.client_secret`); empty: none",
        get: |s| text_or_null(&s.google.client_id),
        set: |s, v| {
            s.google.client_id = match optional_text(v) {
                None => None,
                // The ID alone is checked here; the secret goes to the keyring.
                Some(id) => Some(
                    crate::auth::check_client(&id, "-")
                        .map_err(|e| e.to_string())?
                        .0,
                ),
            };
            Ok(())
        },
    },
];

fn known_keys() -> String {
    KEYS.iter().map(|k| k.name).collect::<Vec<_>>().join(", ")
}

pub fn find_key(name: &str) -> Result<&'static SettingKey, SettingsError> {
    KEYS.iter()
        .find(|k| k.name == name)
        .ok_or_else(|| SettingsError::UnknownKey(name.to_string()))
}

/// A JSON value as the text `SettingKey::set` parses; `None` for null (the default applies).
fn value_as_text(v: &Value) -> Result<Option<String>, String> {
    match v {
        Value::Null => Ok(None),
        Value::String(s) => Ok(Some(s.clone())),
        Value::Number(n) => Ok(Some(n.to_string())),
        Value::Bool(b) => Ok(Some(b.to_string())),
        Value::Array(_) | Value::Object(_) => Err("expected a single value".into()),
    }
}

fn lookup<'a>(root: &'a Value, dotted: &str) -> Option<&'a Value> {
    dotted.split('.').try_fold(root, |v, part| v.get(part))
}

impl Settings {
    /// A setting's value as JSON (`null` when unset).
    pub fn get_key(&self, name: &str) -> Result<Value, SettingsError> {
        Ok((find_key(name)?.get)(self))
    }

    /// Changes one setting from text (as `driveback config set` gives it).
    pub fn set_key(&mut self, name: &str, value: &str) -> Result<(), SettingsError> {
        let key = find_key(name)?;
        (key.set)(self, value).map_err(|message| SettingsError::Invalid {
            key: name.to_string(),
            message,
        })
    }

    /// Checks every setting (settings that came from the UI rather than from text).
    pub fn validate(&self) -> Result<(), SettingsError> {
        let mut copy = self.clone();
        for key in KEYS {
            if let Some(text) = value_as_text(&(key.get)(self)).expect("get returns scalars") {
                (key.set)(&mut copy, &text).map_err(|message| SettingsError::Invalid {
                    key: key.name.to_string(),
                    message,
                })?;
            }
        }
        Ok(())
    }

    /// Reads settings from JSON text: every known key is validated and a bad one is named;
    /// missing keys take their defaults; unknown keys are ignored (with a log line).
    pub fn from_json(bytes: &[u8], path: &Path) -> Result<Self, SettingsError> {
        let root: Value = serde_json::from_slice(bytes).map_err(|e| SettingsError::Syntax {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        let invalid = |key: &str, message: String| SettingsError::InvalidInFile {
            path: path.to_path_buf(),
            key: key.to_string(),
            message,
        };
        if !root.is_object() {
            return Err(invalid("(top level)", "expected a JSON object".into()));
        }
        match root.get("version") {
            None => {}
            Some(Value::Number(n)) => match n.as_u64() {
                Some(v) if v > u64::from(SETTINGS_VERSION) => {
                    return Err(SettingsError::NewerVersion {
                        path: path.to_path_buf(),
                        version: v,
                    })
                }
                Some(v) if v >= 1 => {}
                _ => return Err(invalid("version", format!("{n} is not a settings version"))),
            },
            Some(other) => {
                return Err(invalid(
                    "version",
                    format!("{other} is not a settings version"),
                ))
            }
        }
        let mut settings = Settings::default();
        for key in KEYS {
            let Some(v) = lookup(&root, key.name) else {
                continue;
            };
            let text = value_as_text(v).map_err(|m| invalid(key.name, m))?;
            if let Some(text) = text {
                (key.set)(&mut settings, &text).map_err(|m| invalid(key.name, m))?;
            }
        }
        // The layout chosen per destination: a map, not one key.
        if let Some(map) = lookup(&root, "backup.layouts") {
            let map = map.as_object().ok_or_else(|| {
                invalid(
                    "backup.layouts",
                    "expected an object of destination: layout".into(),
                )
            })?;
            for (dest, layout) in map {
                let layout = layout
                    .as_str()
                    .ok_or_else(|| "expected files or incremental".to_string())
                    .and_then(Layout::parse)
                    .map_err(|m| invalid(&format!("backup.layouts.{dest}"), m))?;
                settings.backup.set_layout(dest, layout);
            }
        }
        for (section, v) in root.as_object().expect("checked above") {
            if section == "version" {
                continue;
            }
            let known =
                |name: &str| name == "backup.layouts" || KEYS.iter().any(|k| k.name == name);
            match v.as_object() {
                Some(fields) => {
                    for field in fields.keys() {
                        let name = format!("{section}.{field}");
                        if !known(&name) {
                            tracing::warn!(key = %name, file = %path.display(), "ignoring an unknown setting");
                        }
                    }
                }
                None => {
                    tracing::warn!(key = %section, file = %path.display(), "ignoring an unknown setting")
                }
            }
        }
        Ok(settings)
    }

    pub fn to_json(&self) -> Vec<u8> {
        let out = Settings {
            version: SETTINGS_VERSION,
            ..self.clone()
        };
        let mut bytes = serde_json::to_vec_pretty(&out).expect("settings always serialise");
        bytes.push(b'\n');
        bytes
    }

    /// Loads the settings file at `path`; defaults when there is none yet.
    pub fn load_from(path: &Path) -> Result<Self, SettingsError> {
        match fs::read(path) {
            Ok(bytes) => Settings::from_json(&bytes, path),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Settings::default()),
            Err(e) => Err(SettingsError::Io {
                context: format!("could not read the settings file {}", path.display()),
                source: e,
            }),
        }
    }

    /// Validates, then replaces the settings file at `path` atomically.
    pub fn save_to(&self, path: &Path) -> Result<(), SettingsError> {
        self.validate()?;
        write_atomic(path, &self.to_json()).map_err(|e| SettingsError::Io {
            context: format!("could not write the settings file {}", path.display()),
            source: e,
        })
    }

    /// Loads the settings from the default place ([`settings_path`]).
    pub fn load() -> Result<Self, SettingsError> {
        Settings::load_from(&settings_path()?)
    }

    /// Saves the settings to the default place ([`settings_path`]).
    pub fn save(&self) -> Result<(), SettingsError> {
        self.save_to(&settings_path()?)
    }
}

/// Where settings live: `DRIVEBACK_CONFIG_DIR`, else the OS config folder of the app
/// (`~/.config/app.driveback.desktop` on Linux).
pub fn config_dir() -> Result<PathBuf, SettingsError> {
    if let Some(dir) = std::env::var_os("DRIVEBACK_CONFIG_DIR").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(dir));
    }
    directories::BaseDirs::new()
        .map(|b| b.config_dir().join(APP_IDENTIFIER))
        .ok_or(SettingsError::NoConfigDir)
}

/// Where the run history and other local state live: `DRIVEBACK_DATA_DIR`; else, when
/// `DRIVEBACK_CONFIG_DIR` is set (tests, side-by-side installs), that same folder; else the OS
/// data folder of the app (`~/.local/share/app.driveback.desktop` on Linux).
pub fn data_dir() -> Result<PathBuf, SettingsError> {
    if let Some(dir) = std::env::var_os("DRIVEBACK_DATA_DIR").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(dir));
    }
    if let Some(dir) = std::env::var_os("DRIVEBACK_CONFIG_DIR").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(dir));
    }
    directories::BaseDirs::new()
        .map(|b| b.data_dir().join(APP_IDENTIFIER))
        .ok_or(SettingsError::NoConfigDir)
}

pub fn settings_path() -> Result<PathBuf, SettingsError> {
    Ok(config_dir()?.join(SETTINGS_FILE))
}

/// Replaces `path` with `bytes` so that readers see the old or the new content, never a mix:
/// a temporary file in the same folder, fsync, rename, then fsync of the folder. Creates the
/// folder if needed.
/// Writes `bytes` to `path` atomically (a fresh temporary file, fsynced, renamed into place),
/// readable and writable by this user only.
pub fn write_private_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    write_atomic(path, bytes)
}

/// Creates `path` for writing, readable by this user only. It must not exist: a file or symlink
/// planted at that name is never followed or overwritten (`O_CREAT | O_EXCL`).
pub(crate) fn create_new_private(path: &Path) -> io::Result<File> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)
}

/// Replaces `path` with a new private file: whatever was at that name (a stale file of an
/// earlier run, a symlink) is removed first, never written through.
pub(crate) fn replace_private(path: &Path) -> io::Result<File> {
    match fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    create_new_private(path)
}

pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    fs::create_dir_all(&dir)?;
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no file name"))?
        .to_string_lossy()
        .into_owned();
    // An unpredictable name, created fresh (never through a planted file or symlink), readable
    // by this user only.
    let temp = dir.join(format!(".{name}.{:016x}.tmp", rand::random::<u64>()));
    let result = (|| {
        let mut f = create_new_private(&temp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        fs::rename(&temp, path)
    })();
    if let Err(e) = result {
        let _ = fs::remove_file(&temp);
        return Err(e);
    }
    #[cfg(unix)]
    if let Ok(d) = File::open(&dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_products() {
        let s = Settings::default();
        assert_eq!(s.schedule.frequency, Frequency::Daily);
        assert_eq!(s.schedule.time.to_string(), "02:00");
        assert_eq!(
            s.retention,
            RetentionPolicy {
                daily: 7,
                weekly: 0,
                monthly: 1,
                keep_last: 1
            }
        );
        assert_eq!(
            s.retention.describe(),
            "Keeps the newest backup of each of the last 7 days with backups, and the first backup of this month and of last month."
        );
        s.validate().unwrap();
    }

    #[test]
    fn policy_sentences() {
        let p = |daily, weekly, monthly, keep_last| RetentionPolicy {
            daily,
            weekly,
            monthly,
            keep_last,
        };
        let cases = [
            (p(0, 0, 0, 1), "Keeps only the most recent backup."),
            (p(1, 0, 0, 1), "Keeps the newest backup of the last day with backups."),
            (
                p(0, 0, 3, 1),
                "Keeps the first backup of this month and of each of the 3 months before.",
            ),
            (
                p(7, 4, 1, 10),
                "Keeps the newest backup of each of the last 7 days with backups, the newest backup of each of the last 4 weeks with backups, the first backup of this month and of last month, and at least the 10 most recent backups.",
            ),
            (
                p(0, 1, 0, 3),
                "Keeps the newest backup of the last week with backups, and at least the 3 most recent backups.",
            ),
        ];
        for (policy, sentence) in cases {
            assert_eq!(policy.describe(), sentence, "{policy:?}");
        }
    }

    #[test]
    fn round_trip_through_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join(SETTINGS_FILE);
        assert_eq!(Settings::load_from(&path).unwrap(), Settings::default());
        let mut s = Settings::default();
        for (k, v) in [
            ("schedule.frequency", "weekly"),
            ("schedule.time", "23:45"),
            ("schedule.weekday", "wed"),
            ("schedule.day_of_month", "31"),
            ("schedule.paused_until", "2025-06-02T09:00:00+02:00"),
            ("backup.database", "shop"),
            ("backup.dest", "folder:/srv/backups"),
            ("retention.daily", "10"),
            ("retention.weekly", "4"),
            ("retention.monthly", "6"),
            ("retention.keep_last", "3"),
            ("restore.parallel", "6"),
            ("backup.layout", "incremental"),
            ("backup.full_after_percent", "50"),
        ] {
            s.set_key(k, v).unwrap();
        }
        s.save_to(&path).unwrap();
        let text = fs::read_to_string(&path).unwrap();
        assert!(text.contains("\"version\": 1"), "{text}");
        assert!(text.contains("\"time\": \"23:45\""), "{text}");
        assert!(text.contains("\"weekday\": \"wed\""), "{text}");
        let loaded = Settings::load_from(&path).unwrap();
        assert_eq!(loaded, s);
        // The layout is remembered per destination: the key shows the configured one's.
        assert!(
            text.contains("\"folder:/srv/backups\": \"incremental\""),
            "{text}"
        );
        assert_eq!(loaded.get_key("backup.layout").unwrap(), "incremental");
        for key in KEYS.iter().filter(|k| k.name != "backup.layout") {
            assert_eq!(
                lookup(&serde_json::from_str::<Value>(&text).unwrap(), key.name),
                Some(&(key.get)(&s)),
                "the file and the key table agree on {}",
                key.name
            );
        }
        // No temporary files are left behind.
        let names: Vec<_> = fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from(SETTINGS_FILE)]);
    }

    #[test]
    fn bad_values_are_named() {
        let path = Path::new("/cfg/settings.json");
        let cases: &[(&str, &str)] = &[
            (r#"{"schedule": {"time": "25:00"}}"#, "the settings file /cfg/settings.json has an invalid value for schedule.time: '25:00' is not a time of day (HH:MM, 24-hour, e.g. 02:00)"),
            (r#"{"schedule": {"frequency": "hourly"}}"#, "the settings file /cfg/settings.json has an invalid value for schedule.frequency: 'hourly' is not a frequency (daily, weekly, monthly or off)"),
            (r#"{"schedule": {"paused_until": "tomorrow"}}"#, "the settings file /cfg/settings.json has an invalid value for schedule.paused_until: 'tomorrow' is not a date and time (RFC 3339, e.g. 2025-06-02T09:00:00+02:00), or none"),
            (r#"{"retention": {"daily": -1}}"#, "the settings file /cfg/settings.json has an invalid value for retention.daily: '-1' is not a whole number"),
            (r#"{"retention": {"keep_last": 0}}"#, "the settings file /cfg/settings.json has an invalid value for retention.keep_last: 0 is out of range (1 to 1000)"),
            (r#"{"restore": {"parallel": 0}}"#, "the settings file /cfg/settings.json has an invalid value for restore.parallel: 0 is out of range (1 to 16)"),
            (r#"{"restore": {"parallel": 17}}"#, "the settings file /cfg/settings.json has an invalid value for restore.parallel: 17 is out of range (1 to 16)"),
            (r#"{"retention": {"monthly": [1]}}"#, "the settings file /cfg/settings.json has an invalid value for retention.monthly: expected a single value"),
            (r#"{"backup": {"dest": "ftp://x"}}"#, "the settings file /cfg/settings.json has an invalid value for backup.dest: unknown destination 'ftp://x' (use folder:/path, drive, or drive:folder)"),
            (r#"{"version": 2}"#, "the settings file /cfg/settings.json was written by a newer Driveback (settings version 2); update Driveback"),
            (r#"{"version": "one"}"#, "the settings file /cfg/settings.json has an invalid value for version: \"one\" is not a settings version"),
            ("[1]", "the settings file /cfg/settings.json has an invalid value for (top level): expected a JSON object"),
        ];
        for (json, message) in cases {
            let err = Settings::from_json(json.as_bytes(), path).unwrap_err();
            assert_eq!(err.to_string(), *message, "{json}");
        }
        let err = Settings::from_json(b"{\"schedule\": ", path).unwrap_err();
        assert!(matches!(err, SettingsError::Syntax { .. }), "{err}");
        assert_eq!(err.code(), "bad_settings");
    }

    #[test]
    fn partial_and_unknown_content_is_tolerated() {
        let path = Path::new("/cfg/settings.json");
        let s = Settings::from_json(
            br#"{"version": 1, "schedule": {"time": "3:30"}, "backup": {"database": null}, "future": {"x": 1}}"#,
            path,
        )
        .unwrap();
        assert_eq!(s.schedule.time, TimeOfDay::new(3, 30).unwrap());
        assert_eq!(s.schedule.frequency, Frequency::Daily);
        assert_eq!(s.backup.database, None);
        assert_eq!(s.retention, RetentionPolicy::default());
    }

    #[test]
    fn keys_by_name() {
        let mut s = Settings::default();
        assert_eq!(s.get_key("schedule.time").unwrap(), Value::from("02:00"));
        assert_eq!(s.get_key("backup.dest").unwrap(), Value::Null);
        s.set_key("schedule.frequency", "OFF").unwrap();
        assert_eq!(s.schedule.frequency, Frequency::Off);
        s.set_key("backup.database", " shop ").unwrap();
        assert_eq!(s.backup.database.as_deref(), Some("shop"));
        s.set_key("backup.database", "").unwrap();
        assert_eq!(s.backup.database, None);
        let err = s.set_key("schedule.day_of_month", "32").unwrap_err();
        assert_eq!(
            err.to_string(),
            "schedule.day_of_month: 32 is not a day of the month (1-31)"
        );
        let err = s.set_key("smtp.hostname", "x").unwrap_err();
        assert!(
            err.to_string().starts_with(
                "there is no setting 'smtp.hostname' (known settings: schedule.frequency, "
            ),
            "{err}"
        );
        for t in ["2:00", "02:00", "00:00", "23:59"] {
            TimeOfDay::parse(t).unwrap();
        }
        for t in [
            "24:00", "12:60", "12", "12:5", ":30", "-1:00", "ab:cd", "123:00",
        ] {
            assert!(TimeOfDay::parse(t).is_err(), "{t}");
        }
    }

    #[test]
    fn settings_from_the_ui_are_validated() {
        let mut s = Settings::default();
        s.retention.daily = MAX_RETENTION_COUNT + 1;
        let err = s.save_to(Path::new("/nonexistent/x.json")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "retention.daily: 1001 is out of range (0 to 1000)"
        );
        let ui: Settings = serde_json::from_str(r#"{"schedule": {"frequency": "monthly", "time": "04:15", "weekday": "mon", "day_of_month": 15}}"#).unwrap();
        assert_eq!(ui.schedule.frequency, Frequency::Monthly);
        assert_eq!(ui.schedule.weekday, Weekday::Mon);
        ui.validate().unwrap();
    }
}
