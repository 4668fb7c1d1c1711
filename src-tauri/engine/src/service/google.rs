//! The Google OAuth client Driveback signs in with: found in order (the environment, the client
//! the user set up, the one built into this copy, the emulator's), set up from a pasted ID and
//! secret or from the client file Google Cloud Console downloads, shown, and forgotten. The ID
//! is kept in the settings (`google.client_id`), the secret in the OS keyring only.

use std::path::Path;
use std::sync::Arc;

use secrecy::SecretString;
use serde::Serialize;

use super::{lock, Service};
use crate::auth::{
    check_client, configured_client, parse_client_file, AccountFile, ClientSource, GoogleAuth,
    GoogleEndpoints,
};
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::secrets::{self, SecretStore};
use crate::settings::Settings;

/// Which OAuth client sign-in uses. Never the secret.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct GoogleClientStatus {
    /// A client is there to sign in with.
    pub configured: bool,
    /// Where it comes from.
    pub source: Option<ClientSource>,
    pub client_id: Option<String>,
    /// Why none can be used (how to set one up), when none can.
    pub problem: Option<String>,
}

/// Google sign-in with the client found, or why there is none.
pub(super) fn sign_in(
    secrets: Option<&Arc<dyn SecretStore>>,
    keyring_problem: Option<&str>,
    config_dir: &Path,
    settings: &Settings,
) -> ApiResult<(Arc<GoogleAuth>, ClientSource)> {
    let Some(store) = secrets else {
        return Err(ApiError::new(
            ErrorCode::DriveUnavailable,
            format!(
                "Google Drive needs the OS keyring to keep its sign-in: {}",
                keyring_problem.unwrap_or("none is available")
            ),
        ));
    };
    let saved = settings.google.client_id.clone();
    let (client, source) = configured_client(Some(store.as_ref()), || Ok(saved))?;
    let auth = GoogleAuth::new(
        GoogleEndpoints::from_env(),
        client,
        store.clone(),
        AccountFile::in_dir(config_dir),
    )?;
    Ok((Arc::new(auth), source))
}

impl Service {
    /// Which OAuth client sign-in uses, and from where; or how to set one up. Blocking (the
    /// keyring).
    pub fn google_client_status(&self) -> GoogleClientStatus {
        let saved = self.settings().google.client_id;
        match configured_client(self.secrets(), || Ok(saved)) {
            Ok((client, source)) => GoogleClientStatus {
                configured: true,
                source: Some(source),
                client_id: Some(client.id),
                problem: None,
            },
            Err(e) => GoogleClientStatus {
                configured: false,
                source: None,
                client_id: None,
                problem: Some(e.to_string()),
            },
        }
    }

    /// Sets up the user's own OAuth client from its ID and secret as pasted from Google Cloud
    /// Console. A value that cannot be a client is refused in one sentence, and nothing changes
    /// (a client set up before stays). The environment's client, when set, still wins. Blocking.
    pub fn set_google_client(&self, id: &str, secret: &str) -> ApiResult<GoogleClientStatus> {
        let (id, secret) = check_client(id, secret)?;
        self.save_google_client(&id, SecretString::from(secret))
    }

    /// Sets up the user's own OAuth client from the `client_secret_*.json` file Google Cloud
    /// Console downloads (its contents). As [`Service::set_google_client`].
    pub fn set_google_client_file(&self, contents: &[u8]) -> ApiResult<GoogleClientStatus> {
        let (id, secret) = parse_client_file(contents)?;
        self.save_google_client(&id, SecretString::from(secret))
    }

    /// Keeps the secret of the client whose ID is `google.client_id` (set on its own, as
    /// `driveback config set-secret google.client_secret` does); empty: forgets it. Blocking.
    pub fn set_google_client_secret(&self, secret: &str) -> ApiResult<GoogleClientStatus> {
        let store = self.client_keyring()?;
        if secret.trim().is_empty() {
            store.delete(secrets::GOOGLE_CLIENT_SECRET)?;
        } else {
            let id = self
                .settings()
                .google
                .client_id
                .unwrap_or_else(|| "id.apps.googleusercontent.com".into());
            let (_, secret) = check_client(&id, secret)?;
            store.set(secrets::GOOGLE_CLIENT_SECRET, &SecretString::from(secret))?;
        }
        self.reload_google();
        Ok(self.google_client_status())
    }

    /// Forgets the client the user set up (the ID in the settings, the secret in the keyring).
    /// A connected account stays connected until its sign-in is next refreshed. Blocking.
    pub fn forget_google_client(&self) -> ApiResult<GoogleClientStatus> {
        let store = self.client_keyring()?;
        self.update_settings(|s| s.google.client_id = None)?;
        store.delete(secrets::GOOGLE_CLIENT_SECRET)?;
        self.reload_google();
        Ok(self.google_client_status())
    }

    fn client_keyring(&self) -> ApiResult<&dyn SecretStore> {
        self.secrets().ok_or_else(|| {
            ApiError::new(
                ErrorCode::KeyringUnavailable,
                format!(
                    "no OS keyring is available to keep the Google client's secret: {}",
                    self.keyring_problem().unwrap_or("none answers")
                ),
            )
        })
    }

    /// The secret to the keyring, then the ID to the settings; a failure puts the old secret
    /// back, so the client set up before stays whole.
    fn save_google_client(&self, id: &str, secret: SecretString) -> ApiResult<GoogleClientStatus> {
        let store = self.client_keyring()?;
        let before = store.get(secrets::GOOGLE_CLIENT_SECRET)?;
        store.set(secrets::GOOGLE_CLIENT_SECRET, &secret)?;
        if let Err(e) = self.update_settings(|s| s.google.client_id = Some(id.to_string())) {
            let undone = match &before {
                Some(old) => store.set(secrets::GOOGLE_CLIENT_SECRET, old),
                None => store.delete(secrets::GOOGLE_CLIENT_SECRET),
            };
            if let Err(u) = undone {
                tracing::warn!(error = %u, "could not put the previous Google client secret back");
            }
            return Err(e);
        }
        drop(before);
        tracing::info!(client_id = %id, "saved the Google OAuth client");
        self.reload_google();
        Ok(self.google_client_status())
    }

    /// Finds the client again (after it was set up, forgotten, or the settings changed).
    pub(super) fn reload_google(&self) {
        let settings = self.settings();
        let next = sign_in(
            self.inner.secrets.as_ref(),
            self.inner.keyring_problem.as_deref(),
            &self.inner.config_dir,
            &settings,
        )
        .map(|(auth, _)| auth);
        *lock(&self.inner.google) = next;
        self.forget_store();
    }
}
