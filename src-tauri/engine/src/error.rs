//! The engine's error: one clear line for a person, and a short stable code for the UI.
//!
//! [`ErrorCode`] is the one list of codes; [`ApiError`] is what every front door hands on
//! (`{ code, message }`). The UI's TypeScript type of the codes is generated from [`ErrorCode`]
//! (`ui/src/generated/ErrorCode.ts`, checked by a test), so a code without a UI message does not
//! compile.

use crate::archive::ArchiveError;
use crate::auth::AuthError;
use crate::container::ContainerError;
use crate::keys::KeyError;
use crate::mongo::MongoError;
use crate::store::StoreError;

/// The short, stable codes the UI switches on (never on message text).
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize, ts_rs::TS,
)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    // The database.
    DatabaseUnreachable,
    BadMongoUri,
    DatabaseError,
    NotFound,
    // Backup files and keys.
    CorruptBackup,
    WrongKey,
    UnsupportedFormat,
    VerificationFailed,
    PartialBackup,
    WrongPassphrase,
    WeakPassphrase,
    PassphraseRequired,
    NoKey,
    KeyExists,
    KeyChanged,
    KeyError,
    // Where backups go.
    DestinationError,
    DestinationFull,
    IoError,
    // Google.
    DriveUnavailable,
    NotConnected,
    ReconnectNeeded,
    AccessDenied,
    ScopeNotGranted,
    AuthorizationFailed,
    TimedOut,
    ListenerFailed,
    GoogleUnavailable,
    // The keyring.
    KeyringUnavailable,
    KeyringLocked,
    // Email.
    EmailNotConfigured,
    EmailLoginFailed,
    EmailUnreachable,
    EmailRejected,
    // Jobs and the app.
    Busy,
    Cancelled,
    NotCancellable,
    InvalidToken,
    NotConfigured,
    BadInput,
    Internal,
}

impl ErrorCode {
    /// Every code, for the exhaustiveness checks.
    pub const ALL: &'static [ErrorCode] = &[
        ErrorCode::DatabaseUnreachable,
        ErrorCode::BadMongoUri,
        ErrorCode::DatabaseError,
        ErrorCode::NotFound,
        ErrorCode::CorruptBackup,
        ErrorCode::WrongKey,
        ErrorCode::UnsupportedFormat,
        ErrorCode::VerificationFailed,
        ErrorCode::PartialBackup,
        ErrorCode::WrongPassphrase,
        ErrorCode::WeakPassphrase,
        ErrorCode::PassphraseRequired,
        ErrorCode::NoKey,
        ErrorCode::KeyExists,
        ErrorCode::KeyChanged,
        ErrorCode::KeyError,
        ErrorCode::DestinationError,
        ErrorCode::DestinationFull,
        ErrorCode::IoError,
        ErrorCode::DriveUnavailable,
        ErrorCode::NotConnected,
        ErrorCode::ReconnectNeeded,
        ErrorCode::AccessDenied,
        ErrorCode::ScopeNotGranted,
        ErrorCode::AuthorizationFailed,
        ErrorCode::TimedOut,
        ErrorCode::ListenerFailed,
        ErrorCode::GoogleUnavailable,
        ErrorCode::KeyringUnavailable,
        ErrorCode::KeyringLocked,
        ErrorCode::EmailNotConfigured,
        ErrorCode::EmailLoginFailed,
        ErrorCode::EmailUnreachable,
        ErrorCode::EmailRejected,
        ErrorCode::Busy,
        ErrorCode::Cancelled,
        ErrorCode::NotCancellable,
        ErrorCode::InvalidToken,
        ErrorCode::NotConfigured,
        ErrorCode::BadInput,
        ErrorCode::Internal,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::DatabaseUnreachable => "database_unreachable",
            ErrorCode::BadMongoUri => "bad_mongo_uri",
            ErrorCode::DatabaseError => "database_error",
            ErrorCode::NotFound => "not_found",
            ErrorCode::CorruptBackup => "corrupt_backup",
            ErrorCode::WrongKey => "wrong_key",
            ErrorCode::UnsupportedFormat => "unsupported_format",
            ErrorCode::VerificationFailed => "verification_failed",
            ErrorCode::PartialBackup => "partial_backup",
            ErrorCode::WrongPassphrase => "wrong_passphrase",
            ErrorCode::WeakPassphrase => "weak_passphrase",
            ErrorCode::PassphraseRequired => "passphrase_required",
            ErrorCode::NoKey => "no_key",
            ErrorCode::KeyExists => "key_exists",
            ErrorCode::KeyChanged => "key_changed",
            ErrorCode::KeyError => "key_error",
            ErrorCode::DestinationError => "destination_error",
            ErrorCode::DestinationFull => "destination_full",
            ErrorCode::IoError => "io_error",
            ErrorCode::DriveUnavailable => "drive_unavailable",
            ErrorCode::NotConnected => "not_connected",
            ErrorCode::ReconnectNeeded => "reconnect_needed",
            ErrorCode::AccessDenied => "access_denied",
            ErrorCode::ScopeNotGranted => "scope_not_granted",
            ErrorCode::AuthorizationFailed => "authorization_failed",
            ErrorCode::TimedOut => "timed_out",
            ErrorCode::ListenerFailed => "listener_failed",
            ErrorCode::GoogleUnavailable => "google_unavailable",
            ErrorCode::KeyringUnavailable => "keyring_unavailable",
            ErrorCode::KeyringLocked => "keyring_locked",
            ErrorCode::EmailNotConfigured => "email_not_configured",
            ErrorCode::EmailLoginFailed => "email_login_failed",
            ErrorCode::EmailUnreachable => "email_unreachable",
            ErrorCode::EmailRejected => "email_rejected",
            ErrorCode::Busy => "busy",
            ErrorCode::Cancelled => "cancelled",
            ErrorCode::NotCancellable => "not_cancellable",
            ErrorCode::InvalidToken => "invalid_token",
            ErrorCode::NotConfigured => "not_configured",
            ErrorCode::BadInput => "bad_input",
            ErrorCode::Internal => "internal",
        }
    }

    /// The code named `s` (a code read back from the run history); `Internal` when unknown.
    pub fn parse(s: &str) -> ErrorCode {
        ErrorCode::ALL
            .iter()
            .copied()
            .find(|c| c.as_str() == s)
            .unwrap_or(ErrorCode::Internal)
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<ErrorCode> for String {
    fn from(c: ErrorCode) -> String {
        c.as_str().to_string()
    }
}

impl PartialEq<&str> for ErrorCode {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

/// What a front door hands on when an operation fails: a code from the one list, and one line
/// written for a person.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError {
            code,
            message: one_line(&message.into()),
        }
    }

    pub fn internal(message: impl std::fmt::Display) -> Self {
        Self::new(ErrorCode::Internal, format!("internal error: {message}"))
    }

    pub fn bad_input(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::BadInput, message)
    }

    pub fn busy(what: &str) -> Self {
        Self::new(
            ErrorCode::Busy,
            format!("{what} is running; wait for it to finish and try again"),
        )
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ApiError {}

/// Messages reach a single line.
pub fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> Self {
        match &e {
            // Front doors ask for a passphrase only when one is needed: the app shows its dialog.
            EngineError::Key(KeyError::NoPassphrase(_)) => Self::new(
                ErrorCode::PassphraseRequired,
                "enter the passphrase of your backups to continue",
            ),
            EngineError::Key(KeyError::Secret(s)) => s.into(),
            _ => Self::new(e.error_code(), e.to_string()),
        }
    }
}

impl From<&crate::secrets::SecretError> for ApiError {
    fn from(e: &crate::secrets::SecretError) -> Self {
        let code = match e {
            crate::secrets::SecretError::Locked(_) => ErrorCode::KeyringLocked,
            _ => ErrorCode::KeyringUnavailable,
        };
        ApiError::new(code, e.to_string())
    }
}

impl From<crate::secrets::SecretError> for ApiError {
    fn from(e: crate::secrets::SecretError) -> Self {
        (&e).into()
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        EngineError::from(e).into()
    }
}

impl From<KeyError> for ApiError {
    fn from(e: KeyError) -> Self {
        EngineError::from(e).into()
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        EngineError::from(e).into()
    }
}

impl From<MongoError> for ApiError {
    fn from(e: MongoError) -> Self {
        EngineError::from(e).into()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Mongo(#[from] MongoError),
    #[error(transparent)]
    Archive(ArchiveError),
    #[error(transparent)]
    Container(ContainerError),
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error(transparent)]
    Mail(#[from] crate::notify::mail::MailError),
    #[error("{0}")]
    Verification(String),
    #[error("{0}")]
    Input(String),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("internal error: {0}")]
    Internal(String),
    /// The user cancelled: nothing was committed.
    #[error("the backup was cancelled: nothing was kept")]
    Cancelled,
    /// Another process is doing the same job at the same place.
    #[error("{0}")]
    Busy(String),
}

impl EngineError {
    /// A short, stable code the UI switches on (never on message text).
    pub fn error_code(&self) -> ErrorCode {
        match self {
            EngineError::Cancelled => ErrorCode::Cancelled,
            EngineError::Mongo(MongoError::Unreachable { .. }) => ErrorCode::DatabaseUnreachable,
            EngineError::Mongo(MongoError::BadUri(_)) => ErrorCode::BadMongoUri,
            EngineError::Mongo(MongoError::NoSuchDatabase(_))
            | EngineError::Mongo(MongoError::NoSuchCollection(_)) => ErrorCode::NotFound,
            EngineError::Mongo(_) => ErrorCode::DatabaseError,
            EngineError::Archive(_) => ErrorCode::CorruptBackup,
            EngineError::Container(ContainerError::WrongKey) => ErrorCode::WrongKey,
            EngineError::Container(ContainerError::Manifest(_)) => ErrorCode::UnsupportedFormat,
            EngineError::Container(_) => ErrorCode::CorruptBackup,
            EngineError::Key(KeyError::WrongPassphrase) => ErrorCode::WrongPassphrase,
            EngineError::Key(KeyError::NoKey) => ErrorCode::NoKey,
            EngineError::Key(KeyError::Changed { .. }) => ErrorCode::KeyChanged,
            // The key could not be read or written at the destination: the destination's problem.
            EngineError::Key(KeyError::Store(StoreError::Auth(_))) => ErrorCode::ReconnectNeeded,
            EngineError::Key(KeyError::Store(StoreError::Full(_))) => ErrorCode::DestinationFull,
            EngineError::Key(KeyError::Store(_)) => ErrorCode::DestinationError,
            EngineError::Key(_) => ErrorCode::KeyError,
            EngineError::Store(StoreError::NotFound { .. }) => ErrorCode::NotFound,
            EngineError::Store(StoreError::Auth(_)) => ErrorCode::ReconnectNeeded,
            EngineError::Store(StoreError::Full(_)) => ErrorCode::DestinationFull,
            EngineError::Auth(e) => e.code(),
            EngineError::Store(_) => ErrorCode::DestinationError,
            EngineError::Mail(e) => e.code(),
            EngineError::Verification(_) => ErrorCode::VerificationFailed,
            EngineError::Input(_) => ErrorCode::BadInput,
            EngineError::Io { .. } => ErrorCode::IoError,
            EngineError::Internal(_) => ErrorCode::Internal,
            EngineError::Busy(_) => ErrorCode::Busy,
        }
    }

    /// The code as text (what the run history records).
    pub fn code(&self) -> &'static str {
        self.error_code().as_str()
    }

    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        // An I/O error that carries a decryption or destination error is that error.
        if source
            .get_ref()
            .is_some_and(|inner| inner.is::<ContainerError>())
        {
            let inner = source
                .into_inner()
                .unwrap()
                .downcast::<ContainerError>()
                .unwrap();
            return EngineError::Container(*inner);
        }
        if source
            .get_ref()
            .is_some_and(|inner| inner.is::<StoreError>())
        {
            let inner = source
                .into_inner()
                .unwrap()
                .downcast::<StoreError>()
                .unwrap();
            return EngineError::Store(*inner);
        }
        EngineError::Io {
            context: context.into(),
            source,
        }
    }
}

impl From<ArchiveError> for EngineError {
    fn from(e: ArchiveError) -> Self {
        match e {
            ArchiveError::Io(io) => EngineError::io("reading the backup", io),
            other => EngineError::Archive(other),
        }
    }
}

impl From<ContainerError> for EngineError {
    fn from(e: ContainerError) -> Self {
        match e {
            ContainerError::Io(io) => EngineError::io("reading the backup", io),
            other => EngineError::Container(other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_destination_problem_inside_a_key_operation_keeps_the_destination_code() {
        let auth = EngineError::Key(KeyError::Store(StoreError::Auth(
            "Google Drive needs reconnecting: invalid_grant".into(),
        )));
        assert_eq!(auth.code(), "reconnect_needed");
        let full = EngineError::Key(KeyError::Store(StoreError::Full("no space".into())));
        assert_eq!(full.code(), "destination_full");
        assert_eq!(
            EngineError::Key(KeyError::WrongPassphrase).code(),
            "wrong_passphrase"
        );
        assert_eq!(
            EngineError::Key(KeyError::Corrupt("x".into())).code(),
            "key_error"
        );
    }
}

#[cfg(test)]
mod ts_tests {
    use super::ErrorCode;
    use ts_rs::TS;

    /// The UI's copy of the codes: `ui/src/generated/ErrorCode.ts`.
    fn generated_path() -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../ui/src/generated/ErrorCode.ts")
    }

    fn generated() -> String {
        format!(
            "// Generated from the engine's ErrorCode (src-tauri/engine/src/error.rs) with ts-rs; do not edit.\n\
             // Refresh: DRIVEBACK_WRITE_TS=1 cargo test -p driveback-engine --lib ts_tests\n\
             export {}\n",
            ErrorCode::decl()
        )
    }

    #[test]
    fn the_ui_has_the_current_error_codes() {
        let want = generated();
        if std::env::var_os("DRIVEBACK_WRITE_TS").is_some() {
            std::fs::create_dir_all(generated_path().parent().unwrap()).unwrap();
            std::fs::write(generated_path(), &want).unwrap();
        }
        let have = std::fs::read_to_string(generated_path()).unwrap_or_default();
        assert_eq!(
            have, want,
            "ui/src/generated/ErrorCode.ts is stale: run DRIVEBACK_WRITE_TS=1 cargo test -p driveback-engine --lib ts_tests"
        );
    }

    #[test]
    fn every_code_is_listed_once_and_round_trips() {
        let mut seen = std::collections::HashSet::new();
        for c in ErrorCode::ALL {
            assert!(seen.insert(c.as_str()), "{c} twice");
            assert_eq!(ErrorCode::parse(c.as_str()), *c);
            assert_eq!(
                serde_json::to_value(c).unwrap(),
                serde_json::Value::from(c.as_str())
            );
        }
        // ALL is complete: the declaration names exactly these codes.
        let decl = ErrorCode::decl();
        assert_eq!(
            decl.matches('"').count(),
            2 * ErrorCode::ALL.len(),
            "{decl}"
        );
    }
}
