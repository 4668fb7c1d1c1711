//! The engine's error: one clear line for a person, and a short stable code for the UI.

use crate::archive::ArchiveError;
use crate::auth::AuthError;
use crate::container::ContainerError;
use crate::keys::KeyError;
use crate::mongo::MongoError;
use crate::store::StoreError;

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
}

impl EngineError {
    /// A short, stable code the UI switches on (never on message text).
    pub fn code(&self) -> &'static str {
        match self {
            EngineError::Mongo(MongoError::Unreachable { .. }) => "database_unreachable",
            EngineError::Mongo(MongoError::BadUri(_)) => "bad_mongo_uri",
            EngineError::Mongo(MongoError::NoSuchDatabase(_))
            | EngineError::Mongo(MongoError::NoSuchCollection(_)) => "not_found",
            EngineError::Mongo(_) => "database_error",
            EngineError::Archive(_) => "corrupt_backup",
            EngineError::Container(ContainerError::WrongKey) => "wrong_key",
            EngineError::Container(ContainerError::Manifest(_)) => "unsupported_format",
            EngineError::Container(_) => "corrupt_backup",
            EngineError::Key(KeyError::WrongPassphrase) => "wrong_passphrase",
            EngineError::Key(KeyError::NoKey) => "no_key",
            // The key could not be read or written at the destination: the destination's problem.
            EngineError::Key(KeyError::Store(StoreError::Auth(_))) => "reconnect_needed",
            EngineError::Key(KeyError::Store(StoreError::Full(_))) => "destination_full",
            EngineError::Key(KeyError::Store(_)) => "destination_error",
            EngineError::Key(_) => "key_error",
            EngineError::Store(StoreError::NotFound { .. }) => "not_found",
            EngineError::Store(StoreError::Auth(_)) => "reconnect_needed",
            EngineError::Store(StoreError::Full(_)) => "destination_full",
            EngineError::Auth(e) => e.code(),
            EngineError::Store(_) => "destination_error",
            EngineError::Mail(e) => e.code(),
            EngineError::Verification(_) => "verification_failed",
            EngineError::Input(_) => "bad_input",
            EngineError::Io { .. } => "io_error",
            EngineError::Internal(_) => "internal",
        }
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
