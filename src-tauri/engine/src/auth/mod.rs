//! Google sign-in for an installed app, and the access tokens the Drive store uses.

use secrecy::SecretString;

/// Where every Google call goes. `DRIVEBACK_GOOGLE_BASE_URL` sends all of them to one origin
/// with Google's own paths (that is how the local emulator is used).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GoogleEndpoints {
    pub authorize: String,
    pub token: String,
    pub revoke: String,
    pub userinfo: String,
    pub drive: String,
    pub upload: String,
}

impl GoogleEndpoints {
    pub fn google() -> Self {
        GoogleEndpoints {
            authorize: "https://accounts.google.com/o/oauth2/v2/auth".into(),
            token: "https://oauth2.googleapis.com/token".into(),
            revoke: "https://oauth2.googleapis.com/revoke".into(),
            userinfo: "https://openidconnect.googleapis.com/v1/userinfo".into(),
            drive: "https://www.googleapis.com/drive/v3".into(),
            upload: "https://www.googleapis.com/upload/drive/v3".into(),
        }
    }

    /// Every endpoint on one origin, with Google's paths.
    pub fn with_base(base: &str) -> Self {
        let b = base.trim_end_matches('/');
        GoogleEndpoints {
            authorize: format!("{b}/o/oauth2/v2/auth"),
            token: format!("{b}/token"),
            revoke: format!("{b}/revoke"),
            userinfo: format!("{b}/oauth2/v3/userinfo"),
            drive: format!("{b}/drive/v3"),
            upload: format!("{b}/upload/drive/v3"),
        }
    }

    /// Google's, or the origin in `DRIVEBACK_GOOGLE_BASE_URL`.
    pub fn from_env() -> Self {
        match std::env::var("DRIVEBACK_GOOGLE_BASE_URL") {
            Ok(b) if !b.is_empty() => Self::with_base(&b),
            _ => Self::google(),
        }
    }
}

/// Why no access token could be had.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The grant is gone (revoked, expired, a 7-day testing client): the user must connect again.
    #[error("Google Drive needs reconnecting: {0}")]
    ReconnectNeeded(String),
    /// Google could not be reached or answered with an error; trying later may work.
    #[error("could not refresh the Google sign-in: {0}")]
    Unavailable(String),
    /// The refresh token could not be read from the OS keyring.
    #[error("{0}")]
    Keyring(String),
}

/// A source of OAuth access tokens for Google Drive calls.
pub trait AccessTokens: Send + Sync {
    /// A valid access token, refreshed first when it is about to expire.
    fn access_token(&self) -> Result<SecretString, TokenError>;
    /// Google refused the current token (401): forget it so that the next call refreshes.
    fn invalidate(&self);
}
