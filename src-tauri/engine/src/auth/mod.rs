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

mod account;
mod config;
mod flow;
mod google;
mod listener;
mod session;

use std::sync::Arc;

pub use account::{config_dir_from_env, Account, AccountFile, ACCOUNT_FILE};
pub use config::{
    built_in_client, check_client, parse_client_file, ClientSource, ClientSources, DriveScope,
    OAuthClient, DEMO_CLIENT_ID, MAX_CLIENT_FILE, SCOPE_APPDATA, SCOPE_FILE,
};
pub use flow::{Browser, ConnectEvent, ConnectOptions, Connected, DEFAULT_CONNECT_TIMEOUT};
pub use google::{About, Revocation};
pub use listener::REDIRECT_PATH;
pub use session::{GoogleSession, REFRESH_MARGIN};

use crate::secrets::{self, KeyringSecretStore, SecretError, SecretStore};
use google::{AboutError, Google};

/// Why connecting, describing or disconnecting the Google account failed. One clear line each.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("{0}")]
    NotConfigured(String),
    /// A client ID, secret or client file that cannot be used, in one sentence.
    #[error("{0}")]
    InvalidClient(String),
    #[error(transparent)]
    Keyring(#[from] SecretError),
    #[error("Google Drive is not connected: run `driveback connect` (or Connect in the app)")]
    NotConnected,
    #[error("you declined access to Google Drive in the browser, so Driveback is not connected; connect again and choose Allow to back up to Drive")]
    Declined,
    #[error("you did not allow Driveback to use Google Drive ({}); connect again and leave the Drive permission ticked", .0.url())]
    ScopeNotGranted(DriveScope),
    #[error("{0}")]
    Authorization(String),
    #[error("no answer came back from the browser in time; connect again and finish the sign-in in the browser")]
    TimedOut,
    #[error("connecting Google Drive was cancelled")]
    Cancelled,
    #[error("{0}")]
    Listener(String),
    #[error(transparent)]
    Token(#[from] TokenError),
    #[error("Google could not be reached: {0}")]
    Unavailable(String),
    #[error("{0}")]
    Io(String),
}

impl AuthError {
    /// A short, stable code the UI switches on.
    pub fn code(&self) -> crate::error::ErrorCode {
        use crate::error::ErrorCode;
        match self {
            AuthError::NotConfigured(_) => ErrorCode::NotConfigured,
            AuthError::InvalidClient(_) => ErrorCode::BadInput,
            AuthError::Keyring(_) | AuthError::Token(TokenError::Keyring(_)) => {
                ErrorCode::KeyringUnavailable
            }
            AuthError::NotConnected => ErrorCode::NotConnected,
            AuthError::Declined => ErrorCode::AccessDenied,
            AuthError::ScopeNotGranted(_) => ErrorCode::ScopeNotGranted,
            AuthError::Authorization(_) => ErrorCode::AuthorizationFailed,
            AuthError::TimedOut => ErrorCode::TimedOut,
            AuthError::Cancelled => ErrorCode::Cancelled,
            AuthError::Listener(_) => ErrorCode::ListenerFailed,
            AuthError::Token(TokenError::ReconnectNeeded(_)) => ErrorCode::ReconnectNeeded,
            AuthError::Token(TokenError::Unavailable(_)) | AuthError::Unavailable(_) => {
                ErrorCode::GoogleUnavailable
            }
            AuthError::Io(_) => ErrorCode::IoError,
        }
    }
}

/// What `disconnect` did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Disconnected {
    /// The account that was connected, when the record said.
    pub email: Option<String>,
    /// What Google's revocation endpoint said; None when there was no token to revoke.
    pub revocation: Option<Revocation>,
}

/// Google sign-in for this device: the OAuth client and endpoints, the OS keyring that holds
/// the refresh token, and the account record. Every method blocks (HTTP, keyring): call them
/// from a thread that may block, e.g. `tokio::task::spawn_blocking`.
pub struct GoogleAuth {
    google: Arc<Google>,
    secrets: Arc<dyn SecretStore>,
    account: AccountFile,
}

impl GoogleAuth {
    pub fn new(
        endpoints: GoogleEndpoints,
        client: OAuthClient,
        secrets: Arc<dyn SecretStore>,
        account: AccountFile,
    ) -> Result<Self, AuthError> {
        Ok(GoogleAuth {
            google: Arc::new(Google::new(endpoints, client)?),
            secrets,
            account,
        })
    }

    /// Everything from the environment: [`GoogleEndpoints::from_env`], the client
    /// [`configured_client`] finds (the saved one's ID in the settings file), the OS keyring
    /// (service `DRIVEBACK_KEYRING_SERVICE`, else Driveback's) and the account record in
    /// [`config_dir_from_env`].
    pub fn from_env() -> Result<Self, AuthError> {
        let store: Arc<dyn SecretStore> = Arc::new(os_keyring());
        let (client, _) = configured_client(Some(store.as_ref()), saved_client_id)?;
        Self::new(
            GoogleEndpoints::from_env(),
            client,
            store,
            AccountFile::in_dir(&config_dir_from_env()?),
        )
    }

    pub fn endpoints(&self) -> &GoogleEndpoints {
        &self.google.endpoints
    }

    pub fn account_file(&self) -> &AccountFile {
        &self.account
    }

    /// The account record, without asking Google or the keyring.
    pub fn account(&self) -> Result<Option<Account>, AuthError> {
        self.account.load()
    }

    /// A session over the refresh token in the keyring: what the Drive store takes as its
    /// `Arc<dyn AccessTokens>`.
    pub fn session(&self) -> Result<Arc<GoogleSession>, AuthError> {
        let account = self.account.load()?;
        if let Some(a) = account.as_ref().filter(|a| a.reconnect_needed) {
            return Err(TokenError::ReconnectNeeded(
                a.reconnect_reason
                    .clone()
                    .unwrap_or_else(|| "Google no longer accepts the sign-in".into()),
            )
            .into());
        }
        let refresh_token = match self.secrets.get(secrets::GOOGLE_REFRESH_TOKEN)? {
            Some(t) => t,
            None if account.is_some() => {
                return Err(TokenError::ReconnectNeeded(
                    "the sign-in is missing from the OS keyring".into(),
                )
                .into())
            }
            None => return Err(AuthError::NotConnected),
        };
        Ok(Arc::new(GoogleSession::new(
            Box::new(self.google.clone()),
            refresh_token,
            self.secrets.clone(),
            Some(self.account.clone()),
        )))
    }

    /// Drive's description of the account, with one retry through a fresh token after a 401.
    pub fn about(&self, tokens: &dyn AccessTokens) -> Result<About, AuthError> {
        for attempt in 0..2 {
            let token = tokens.access_token()?;
            match self.google.about(&token) {
                Ok(a) => return Ok(a),
                Err(AboutError::Unauthorized) if attempt == 0 => {
                    tracing::debug!("Google Drive refused the access token; refreshing it");
                    tokens.invalidate();
                }
                Err(AboutError::Unauthorized) => {
                    return Err(AuthError::Unavailable(
                        "Google Drive refused a freshly refreshed access token".into(),
                    ))
                }
                Err(AboutError::Other(m)) => return Err(AuthError::Unavailable(m)),
            }
        }
        unreachable!("the loop returns on its second attempt")
    }

    /// The account record brought up to date from Drive (email, name), and Drive's description.
    pub fn whoami(&self) -> Result<(Account, About), AuthError> {
        let session = self.session()?;
        let about = self.about(session.as_ref())?;
        let mut account = self.account.load()?.ok_or(AuthError::NotConnected)?;
        if account.email != about.email || account.display_name != about.display_name {
            account.email = about.email.clone();
            account.display_name = about.display_name.clone();
            self.account.save(&account)?;
        }
        Ok((account, about))
    }

    /// Revoke the grant at Google, then delete the refresh token and the account record. A
    /// failed revocation still deletes both (see [`Disconnected::revocation`]).
    pub fn disconnect(&self) -> Result<Disconnected, AuthError> {
        let token = self.secrets.get(secrets::GOOGLE_REFRESH_TOKEN)?;
        let email = match self.account.load() {
            Ok(a) => a.map(|a| a.email),
            Err(e) => {
                tracing::warn!(error = %e, "ignoring the damaged account record");
                None
            }
        };
        let revocation = token.as_ref().map(|t| self.google.revoke(t));
        if token.is_some() {
            self.secrets.delete(secrets::GOOGLE_REFRESH_TOKEN)?;
        }
        self.account.delete()?;
        Ok(Disconnected { email, revocation })
    }
}

/// The OS keyring under `DRIVEBACK_KEYRING_SERVICE`, else Driveback's service name.
fn os_keyring() -> KeyringSecretStore {
    let service = std::env::var("DRIVEBACK_KEYRING_SERVICE")
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| secrets::SERVICE.to_string());
    KeyringSecretStore::with_service(&service)
}

/// `google.client_id` of the settings file (see [`crate::settings::settings_path`]).
pub fn saved_client_id() -> Result<Option<String>, AuthError> {
    crate::settings::Settings::load()
        .map(|s| s.google.client_id)
        .map_err(|e| AuthError::NotConfigured(e.to_string()))
}

/// The OAuth client to sign in with, and where it came from (see [`OAuthClient::resolve`]). The
/// saved client is read only when the environment names none: its ID from `saved_id`, its
/// secret from `keyring` ([`secrets::GOOGLE_CLIENT_SECRET`]).
pub fn configured_client(
    keyring: Option<&dyn SecretStore>,
    saved_id: impl FnOnce() -> Result<Option<String>, AuthError>,
) -> Result<(OAuthClient, ClientSource), AuthError> {
    use secrecy::ExposeSecret;
    let mut sources = ClientSources::from_env(None);
    if sources.env_id.is_none() && sources.env_secret.is_none() {
        sources.saved_id = saved_id()?.filter(|id| !id.trim().is_empty());
        if sources.saved_id.is_some() {
            if let Some(store) = keyring {
                sources.saved_secret = store
                    .get(secrets::GOOGLE_CLIENT_SECRET)?
                    .map(|s| s.expose_secret().to_string())
                    .filter(|s| !s.trim().is_empty());
            }
        }
    }
    OAuthClient::resolve(sources)
}

/// The access tokens of the connected account, configured from the environment (see
/// [`GoogleAuth::from_env`]): what the Drive store uses.
pub fn access_tokens_from_env() -> Result<Arc<dyn AccessTokens>, AuthError> {
    Ok(GoogleAuth::from_env()?.session()?)
}
