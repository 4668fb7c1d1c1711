//! What the UI receives when a command fails: `{ code, message }`. The UI switches on `code`
//! (a short, stable list) and shows `message`, which is written for a person.

use driveback_engine::error::EngineError;
use driveback_engine::keys::KeyError;
use driveback_engine::mongo::MongoError;
use driveback_engine::secrets::SecretError;
use driveback_engine::store::StoreError;
use serde::Serialize;

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ApiError {
    pub code: String,
    pub message: String,
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn new(code: &str, message: impl Into<String>) -> Self {
        Self {
            code: code.to_string(),
            message: message.into(),
        }
    }

    /// A feature whose engine part has not landed yet. The UI shows the message as it is.
    pub fn not_available(message: impl Into<String>) -> Self {
        Self::new("not_available", message)
    }

    pub fn internal(message: impl std::fmt::Display) -> Self {
        Self::new("internal", format!("internal error: {message}"))
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> Self {
        match &e {
            // The app asks for a passphrase only when it needs one: the UI then shows its dialog.
            EngineError::Key(KeyError::NoPassphrase(_)) => Self::new(
                "passphrase_required",
                "enter the passphrase of your backups to continue",
            ),
            EngineError::Key(KeyError::Secret(s)) => secret_error(s),
            _ => Self::new(e.code(), one_line(&e.to_string())),
        }
    }
}

impl From<driveback_engine::auth::AuthError> for ApiError {
    fn from(e: driveback_engine::auth::AuthError) -> Self {
        Self::new(e.code(), one_line(&e.to_string()))
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

impl From<SecretError> for ApiError {
    fn from(e: SecretError) -> Self {
        secret_error(&e)
    }
}

fn secret_error(e: &SecretError) -> ApiError {
    let code = match e {
        SecretError::Locked(_) => "keyring_locked",
        _ => "keyring_unavailable",
    };
    ApiError::new(code, one_line(&e.to_string()))
}

/// Messages reach a single line in the UI.
fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_errors_keep_their_code() {
        let e: ApiError = EngineError::from(MongoError::NoSuchDatabase("x".into())).into();
        assert_eq!(e.code, "not_found");
        assert!(e.message.contains("\"x\""));
        let e: ApiError = KeyError::WrongPassphrase.into();
        assert_eq!(e.code, "wrong_passphrase");
        let e: ApiError = KeyError::NoPassphrase("none".into()).into();
        assert_eq!(e.code, "passphrase_required");
        let e: ApiError = SecretError::Locked("locked".into()).into();
        assert_eq!(e.code, "keyring_locked");
    }

    #[test]
    fn serializes_as_code_and_message() {
        let v = serde_json::to_value(ApiError::not_available("later")).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"code": "not_available", "message": "later"})
        );
    }
}
