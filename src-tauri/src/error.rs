//! What the UI receives when a command fails: the engine's `{ code, message }`. The UI switches
//! on `code` (the engine's `ErrorCode`, generated into `ui/src/generated/ErrorCode.ts`) and shows
//! `message`, which is written for a person.

pub use driveback_engine::error::{ApiError, ApiResult, ErrorCode};

#[cfg(test)]
mod tests {
    use super::*;
    use driveback_engine::error::EngineError;
    use driveback_engine::keys::KeyError;
    use driveback_engine::mongo::MongoError;
    use driveback_engine::secrets::SecretError;

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
        let v = serde_json::to_value(ApiError::new(ErrorCode::PartialBackup, "later")).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"code": "partial_backup", "message": "later"})
        );
    }
}
