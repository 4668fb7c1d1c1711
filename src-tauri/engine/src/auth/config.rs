//! Which OAuth client Driveback signs in with, and which part of Drive it asks for.

use secrecy::SecretString;

use super::AuthError;

/// The emulator's built-in client, used only when `DRIVEBACK_GOOGLE_BASE_URL` points at one.
pub const DEMO_CLIENT_ID: &str = "driveback-demo.apps.googleusercontent.com";
const DEMO_CLIENT_SECRET: &str = "driveback-demo-secret";

pub const SCOPE_APPDATA: &str = "https://www.googleapis.com/auth/drive.appdata";
pub const SCOPE_FILE: &str = "https://www.googleapis.com/auth/drive.file";
/// Asked for alongside the Drive scope (Google's short names).
pub const IDENTITY_SCOPES: [&str; 2] = ["openid", "email"];

/// A "Desktop app" OAuth client. Google does not treat a desktop client's secret as
/// confidential, but Driveback still never logs or prints it.
#[derive(Clone)]
pub struct OAuthClient {
    pub id: String,
    pub secret: SecretString,
}

impl std::fmt::Debug for OAuthClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OAuthClient")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl OAuthClient {
    pub fn new(id: impl Into<String>, secret: SecretString) -> Self {
        OAuthClient {
            id: id.into(),
            secret,
        }
    }

    /// `DRIVEBACK_GOOGLE_CLIENT_ID` / `DRIVEBACK_GOOGLE_CLIENT_SECRET`; without them, the
    /// emulator's demo client when `DRIVEBACK_GOOGLE_BASE_URL` is set, else an error saying how
    /// to create a client.
    pub fn from_env() -> Result<Self, AuthError> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        let emulated = var("DRIVEBACK_GOOGLE_BASE_URL").is_some();
        Self::resolve(
            var("DRIVEBACK_GOOGLE_CLIENT_ID"),
            crate::envsecrets::var("DRIVEBACK_GOOGLE_CLIENT_SECRET")
                .filter(|v| !v.trim().is_empty()),
            emulated,
        )
    }

    fn resolve(
        id: Option<String>,
        secret: Option<String>,
        emulated: bool,
    ) -> Result<Self, AuthError> {
        match (id, secret) {
            (Some(id), Some(secret)) => Ok(Self::new(id.trim(), SecretString::from(secret))),
            (Some(_), None) => Err(AuthError::NotConfigured(
                "DRIVEBACK_GOOGLE_CLIENT_ID is set but DRIVEBACK_GOOGLE_CLIENT_SECRET is not: Google requires a desktop client's secret too".into(),
            )),
            (None, Some(_)) => Err(AuthError::NotConfigured(
                "DRIVEBACK_GOOGLE_CLIENT_SECRET is set but DRIVEBACK_GOOGLE_CLIENT_ID is not".into(),
            )),
            (None, None) if emulated => Ok(Self::new(
                DEMO_CLIENT_ID,
                SecretString::from(DEMO_CLIENT_SECRET),
            )),
            (None, None) => Err(AuthError::NotConfigured(
                "no Google OAuth client is configured: create a \"Desktop app\" OAuth client in Google Cloud Console (see the README, \"Your own Google OAuth client\") and set DRIVEBACK_GOOGLE_CLIENT_ID and DRIVEBACK_GOOGLE_CLIENT_SECRET".into(),
            )),
        }
    }
}

/// The part of the user's Drive that Driveback may use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DriveScope {
    /// The hidden application data folder (`drive.appdata`): the user never sees the files in
    /// Drive's UI and no other app can read them.
    #[default]
    AppData,
    /// Files Driveback creates, in a visible folder (`drive.file`).
    File,
}

impl DriveScope {
    pub fn url(self) -> &'static str {
        match self {
            DriveScope::AppData => SCOPE_APPDATA,
            DriveScope::File => SCOPE_FILE,
        }
    }

    /// The short name used on the command line and in the account file.
    pub fn name(self) -> &'static str {
        match self {
            DriveScope::AppData => "appdata",
            DriveScope::File => "file",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "appdata" | SCOPE_APPDATA => Some(DriveScope::AppData),
            "file" | SCOPE_FILE => Some(DriveScope::File),
            _ => None,
        }
    }

    /// Everything the consent screen asks for.
    pub fn requested(self) -> Vec<&'static str> {
        let mut v = vec![self.url()];
        v.extend(IDENTITY_SCOPES);
        v
    }
}

impl std::fmt::Display for DriveScope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    #[test]
    fn explicit_client_wins_and_demo_client_needs_the_emulator() {
        let c = OAuthClient::resolve(Some("id ".into()), Some("s".into()), true).unwrap();
        assert_eq!(c.id, "id");
        assert_eq!(c.secret.expose_secret(), "s");
        let demo = OAuthClient::resolve(None, None, true).unwrap();
        assert_eq!(demo.id, DEMO_CLIENT_ID);
        let err = OAuthClient::resolve(None, None, false).unwrap_err();
        assert_eq!(err.code(), "not_configured");
        assert!(err.to_string().contains("Desktop app"), "{err}");
        assert!(OAuthClient::resolve(Some("id".into()), None, true).is_err());
        assert!(OAuthClient::resolve(None, Some("s".into()), true).is_err());
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let c = OAuthClient::new("the-id", SecretString::from("hush-hush"));
        let d = format!("{c:?}");
        assert!(d.contains("the-id") && !d.contains("hush-hush"), "{d}");
    }

    #[test]
    fn scopes() {
        assert_eq!(DriveScope::default(), DriveScope::AppData);
        assert_eq!(
            DriveScope::File.requested(),
            vec![SCOPE_FILE, "openid", "email"]
        );
        assert_eq!(DriveScope::parse("appdata"), Some(DriveScope::AppData));
        assert_eq!(DriveScope::parse(SCOPE_FILE), Some(DriveScope::File));
        assert_eq!(DriveScope::parse("drive"), None);
        assert_eq!(
            serde_json::to_string(&DriveScope::AppData).unwrap(),
            "\"appdata\""
        );
    }
}
