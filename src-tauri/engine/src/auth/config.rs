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

    /// The client from the environment alone (no saved client): see [`OAuthClient::resolve`].
    pub fn from_env() -> Result<Self, AuthError> {
        Self::resolve(ClientSources::from_env(None)).map(|(c, _)| c)
    }

    /// Where the client comes from, first found wins: the environment
    /// (`DRIVEBACK_GOOGLE_CLIENT_ID` and `DRIVEBACK_GOOGLE_CLIENT_SECRET`), the client the user
    /// saved (ID in the settings, secret in the OS keyring), the client built into this copy of
    /// Driveback, the emulator's demo client when `DRIVEBACK_GOOGLE_BASE_URL` is set; else
    /// `not_configured`, saying how to set one up.
    pub fn resolve(s: ClientSources) -> Result<(Self, ClientSource), AuthError> {
        let client =
            |id: &str, secret: &str| Self::new(id.trim(), SecretString::from(secret.to_string()));
        match (&s.env_id, &s.env_secret) {
            (Some(id), Some(secret)) => return Ok((client(id, secret), ClientSource::Env)),
            (Some(_), None) => return Err(AuthError::NotConfigured(
                "DRIVEBACK_GOOGLE_CLIENT_ID is set but DRIVEBACK_GOOGLE_CLIENT_SECRET is not: Google requires a desktop client's secret too".into(),
            )),
            (None, Some(_)) => return Err(AuthError::NotConfigured(
                "DRIVEBACK_GOOGLE_CLIENT_SECRET is set but DRIVEBACK_GOOGLE_CLIENT_ID is not".into(),
            )),
            (None, None) => {}
        }
        match (&s.saved_id, &s.saved_secret) {
            (Some(id), Some(secret)) => return Ok((client(id, secret), ClientSource::Settings)),
            (Some(_), None) => return Err(AuthError::NotConfigured(
                "the Google OAuth client's ID is saved (google.client_id) but its secret is not in the OS keyring: set up the client again in the app, or run `driveback connect --client-file PATH` (or `driveback config set-secret google.client_secret`)".into(),
            )),
            // A secret alone (the ID not saved yet, or forgotten) is no client.
            (None, _) => {}
        }
        if let Some((id, secret)) = &s.built_in {
            return Ok((client(id, secret), ClientSource::BuiltIn));
        }
        if s.emulated {
            return Ok((
                client(DEMO_CLIENT_ID, DEMO_CLIENT_SECRET),
                ClientSource::Emulator,
            ));
        }
        Err(AuthError::NotConfigured(NOT_CONFIGURED.into()))
    }
}

/// What `not_configured` says when no client is found anywhere.
pub const NOT_CONFIGURED: &str = "no Google OAuth client is set up: create a \"Desktop app\" OAuth client in Google Cloud Console, then add it in the app (Connect Google Drive) or run `driveback connect --client-file PATH` with its downloaded JSON (see the README, \"Your own Google OAuth client\")";

/// Where the OAuth client in use came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientSource {
    /// `DRIVEBACK_GOOGLE_CLIENT_ID` and `DRIVEBACK_GOOGLE_CLIENT_SECRET`.
    Env,
    /// The client the user set up: ID in the settings (`google.client_id`), secret in the keyring.
    Settings,
    /// The client built into this copy of Driveback by its distributor.
    BuiltIn,
    /// The local emulator's demo client.
    Emulator,
}

/// Everything a client may come from, already read (see [`OAuthClient::resolve`]).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ClientSources {
    pub env_id: Option<String>,
    pub env_secret: Option<String>,
    /// `google.client_id` of the settings.
    pub saved_id: Option<String>,
    /// [`crate::secrets::GOOGLE_CLIENT_SECRET`] of the OS keyring.
    pub saved_secret: Option<String>,
    /// [`built_in_client`].
    pub built_in: Option<(String, String)>,
    /// `DRIVEBACK_GOOGLE_BASE_URL` is set.
    pub emulated: bool,
}

impl std::fmt::Debug for ClientSources {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientSources")
            .field("env_id", &self.env_id)
            .field("env_secret", &self.env_secret.is_some())
            .field("saved_id", &self.saved_id)
            .field("saved_secret", &self.saved_secret.is_some())
            .field("built_in", &self.built_in.as_ref().map(|(id, _)| id))
            .field("emulated", &self.emulated)
            .finish()
    }
}

impl ClientSources {
    /// The environment, the build and `saved` (the saved client's ID and secret, as read).
    pub fn from_env(saved: Option<(Option<String>, Option<String>)>) -> Self {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        let (saved_id, saved_secret) = saved.unwrap_or_default();
        ClientSources {
            env_id: var("DRIVEBACK_GOOGLE_CLIENT_ID"),
            env_secret: crate::envsecrets::var("DRIVEBACK_GOOGLE_CLIENT_SECRET")
                .filter(|v| !v.trim().is_empty()),
            saved_id: saved_id.filter(|v| !v.trim().is_empty()),
            saved_secret: saved_secret.filter(|v| !v.trim().is_empty()),
            built_in: built_in_client(),
            // `DRIVEBACK_GOOGLE_DEMO_CLIENT=off`: the emulator without its demo client, as a
            // fresh install sees Google (the setup of a client can then be tested end to end).
            emulated: var("DRIVEBACK_GOOGLE_BASE_URL").is_some()
                && var("DRIVEBACK_GOOGLE_DEMO_CLIENT").as_deref() != Some("off"),
        }
    }

    /// Both environment variables are set: nothing saved is looked at.
    pub fn env_complete(&self) -> bool {
        self.env_id.is_some() && self.env_secret.is_some()
    }
}

/// The client a distributor built in: `DRIVEBACK_DEFAULT_GOOGLE_CLIENT_ID` and
/// `DRIVEBACK_DEFAULT_GOOGLE_CLIENT_SECRET` in the environment of the build.
pub fn built_in_client() -> Option<(String, String)> {
    let id = option_env!("DRIVEBACK_DEFAULT_GOOGLE_CLIENT_ID").filter(|v| !v.trim().is_empty())?;
    let secret =
        option_env!("DRIVEBACK_DEFAULT_GOOGLE_CLIENT_SECRET").filter(|v| !v.trim().is_empty())?;
    Some((id.trim().to_string(), secret.trim().to_string()))
}

/// The largest client file read: Google's are well under 1 KB.
pub const MAX_CLIENT_FILE: usize = 64 * 1024;

const CLIENT_ID_SUFFIX: &str = ".apps.googleusercontent.com";

/// Checks a client ID and secret as pasted from Google Cloud Console: trimmed, or one sentence
/// saying what is wrong and what to do.
pub fn check_client(id: &str, secret: &str) -> Result<(String, String), AuthError> {
    let bad = |m: &str| Err(AuthError::InvalidClient(m.into()));
    let (id, secret) = (id.trim(), secret.trim());
    if id.is_empty() {
        return bad("The client ID is missing: copy the Client ID from your Desktop app client in Google Cloud Console (Google Auth Platform, Clients).");
    }
    if secret.is_empty() {
        return bad("The client secret is missing: copy the Client secret from your Desktop app client in Google Cloud Console, or choose its downloaded JSON file.");
    }
    if secret.ends_with(CLIENT_ID_SUFFIX) && !id.ends_with(CLIENT_ID_SUFFIX) {
        return bad("The client ID and the client secret are swapped: the ID is the one that ends in .apps.googleusercontent.com.");
    }
    let id_chars = id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_');
    if !id.ends_with(CLIENT_ID_SUFFIX) || id.len() == CLIENT_ID_SUFFIX.len() || !id_chars {
        return bad("This is not a Google OAuth client ID: it ends in .apps.googleusercontent.com; copy the Client ID from your Desktop app client in Google Cloud Console.");
    }
    if secret.chars().any(char::is_whitespace) || secret.len() > 256 {
        return bad("The client secret has spaces in it: copy the Client secret again from your Desktop app client in Google Cloud Console.");
    }
    Ok((id.to_string(), secret.to_string()))
}

/// Reads the `client_secret_*.json` that Google Cloud Console downloads for an OAuth client
/// (`{"installed": {"client_id", "client_secret", ...}}`): its ID and secret, or one sentence
/// saying what is wrong and what to do.
pub fn parse_client_file(bytes: &[u8]) -> Result<(String, String), AuthError> {
    let bad = |m: &str| Err(AuthError::InvalidClient(m.into()));
    if bytes.len() > MAX_CLIENT_FILE {
        return bad("This file is too large to be a Google OAuth client file: choose the client_secret_….json file you downloaded from Google Cloud Console.");
    }
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(bytes) else {
        return bad("This file is not a Google OAuth client file (it is not JSON): on your Desktop app client in Google Cloud Console, use Download JSON and choose that file.");
    };
    let field = |section: &serde_json::Value, name: &str| {
        section
            .get(name)
            .and_then(|x| x.as_str())
            .map(str::trim)
            .filter(|x| !x.is_empty())
            .map(str::to_string)
    };
    let Some(installed) = v.get("installed").filter(|i| i.is_object()) else {
        if v.get("web").is_some_and(|w| w.is_object()) {
            return bad("This is a Web application client; create one of type Desktop app in Google Cloud Console and download its JSON.");
        }
        return bad("This JSON file is not a Google OAuth client file: on your Desktop app client in Google Cloud Console, use Download JSON and choose that file.");
    };
    let Some(id) = field(installed, "client_id") else {
        return bad("This client file has no client ID: download the JSON of your Desktop app client again from Google Cloud Console.");
    };
    let Some(secret) = field(installed, "client_secret") else {
        return bad("This client file has no client secret (Google shows it only when a client or secret is created): add a secret on your client's page in Google Cloud Console and paste it, or create a new Desktop app client and download its JSON right away.");
    };
    check_client(&id, &secret)
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

    fn sources(
        env: (Option<&str>, Option<&str>),
        saved: (Option<&str>, Option<&str>),
        built_in: bool,
        emulated: bool,
    ) -> ClientSources {
        let o = |v: Option<&str>| v.map(str::to_string);
        ClientSources {
            env_id: o(env.0),
            env_secret: o(env.1),
            saved_id: o(saved.0),
            saved_secret: o(saved.1),
            built_in: built_in
                .then(|| ("built.apps.googleusercontent.com".into(), "b-secret".into())),
            emulated,
        }
    }

    #[test]
    fn where_the_client_comes_from() {
        use ClientSource::*;
        let (e, s) = (
            (Some("env.apps.googleusercontent.com "), Some("e-secret")),
            (Some("saved.apps.googleusercontent.com"), Some("s-secret")),
        );
        let none = (None, None);
        // (sources, Ok((id, secret, source)) or Err(words in the error))
        type Row = (
            ClientSources,
            Result<(&'static str, &'static str, ClientSource), &'static str>,
        );
        let table: Vec<Row> = vec![
            (
                sources(e, s, true, true),
                Ok(("env.apps.googleusercontent.com", "e-secret", Env)),
            ),
            (
                sources(none, s, true, true),
                Ok(("saved.apps.googleusercontent.com", "s-secret", Settings)),
            ),
            (
                sources(none, none, true, true),
                Ok(("built.apps.googleusercontent.com", "b-secret", BuiltIn)),
            ),
            (
                sources(none, none, false, true),
                Ok((DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, Emulator)),
            ),
            (
                sources(none, (None, Some("s-secret")), false, true),
                Ok((DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, Emulator)),
            ),
            (
                sources(none, none, false, false),
                Err("driveback connect --client-file PATH"),
            ),
            (
                sources(
                    none,
                    (Some("saved.apps.googleusercontent.com"), None),
                    true,
                    true,
                ),
                Err("not in the OS keyring"),
            ),
            (
                sources((Some("x"), None), s, true, true),
                Err("DRIVEBACK_GOOGLE_CLIENT_SECRET is not"),
            ),
            (
                sources((None, Some("x")), s, true, true),
                Err("DRIVEBACK_GOOGLE_CLIENT_ID is not"),
            ),
        ];
        for (i, (given, want)) in table.into_iter().enumerate() {
            let got = OAuthClient::resolve(given.clone());
            match (got, want) {
                (Ok((c, src)), Ok((id, secret, source))) => {
                    assert_eq!(
                        (c.id.as_str(), c.secret.expose_secret(), src),
                        (id, secret, source),
                        "row {i}: {given:?}"
                    );
                }
                (Err(err), Err(words)) => {
                    assert_eq!(err.code(), "not_configured", "row {i}");
                    assert!(err.to_string().contains(words), "row {i}: {err}");
                }
                (got, want) => panic!(
                    "row {i}: {given:?}: got {:?}, want {want:?}",
                    got.map(|(c, s)| (c.id, s))
                ),
            }
        }
        let err = OAuthClient::resolve(sources(none, none, false, false)).unwrap_err();
        assert!(
            err.to_string().contains("Desktop app") && err.to_string().contains("in the app"),
            "{err}"
        );
    }

    #[test]
    fn pasted_clients_are_checked() {
        let id = "1234-abc.apps.googleusercontent.com";
        type Row<'a> = (&'a str, &'a str, Result<(&'a str, &'a str), &'a str>);
        let table: Vec<Row> = vec![
            (id, "GOCSPX-secret", Ok((id, "GOCSPX-secret"))),
            (
                "  1234-abc.apps.googleusercontent.com\n",
                " GOCSPX-secret\n",
                Ok((id, "GOCSPX-secret")),
            ),
            ("", "GOCSPX-secret", Err("The client ID is missing")),
            (id, "  ", Err("The client secret is missing")),
            (
                "1234-abc",
                "GOCSPX-secret",
                Err("ends in .apps.googleusercontent.com"),
            ),
            (
                ".apps.googleusercontent.com",
                "GOCSPX-secret",
                Err("not a Google OAuth client ID"),
            ),
            (
                "12 34.apps.googleusercontent.com",
                "GOCSPX-secret",
                Err("not a Google OAuth client ID"),
            ),
            ("GOCSPX-secret", id, Err("swapped")),
            (id, "GOCSPX secret", Err("spaces")),
        ];
        for (i, (id, secret, want)) in table.into_iter().enumerate() {
            match (check_client(id, secret), want) {
                (Ok(got), Ok((a, b))) => assert_eq!(got, (a.to_string(), b.to_string()), "row {i}"),
                (Err(e), Err(words)) => {
                    assert_eq!(e.code(), "bad_input", "row {i}");
                    let m = e.to_string();
                    assert!(m.contains(words), "row {i}: {m}");
                    assert!(
                        !m.contains('\n') && m.ends_with('.'),
                        "row {i}: one sentence: {m}"
                    );
                }
                (got, want) => panic!("row {i}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn client_files_are_checked() {
        let installed = r#"{"installed":{"client_id":"1234-abc.apps.googleusercontent.com","project_id":"driveback-123","auth_uri":"https://accounts.google.com/o/oauth2/auth","token_uri":"https://oauth2.googleapis.com/token","auth_provider_x509_cert_url":"https://www.googleapis.com/oauth2/v1/certs","client_secret":"GOCSPX-abc","redirect_uris":["http://localhost"]}}"#;
        let web = r#"{"web":{"client_id":"1234-abc.apps.googleusercontent.com","client_secret":"GOCSPX-abc","redirect_uris":["https://example.com/cb"]}}"#;
        let big = format!(
            r#"{{"installed":{{"client_id":"1234-abc.apps.googleusercontent.com","client_secret":"GOCSPX-abc","x":"{}"}}}}"#,
            "a".repeat(MAX_CLIENT_FILE)
        );
        type Row<'a> = (&'a [u8], Result<(&'a str, &'a str), &'a str>);
        let table: Vec<Row> = vec![
            (installed.as_bytes(), Ok(("1234-abc.apps.googleusercontent.com", "GOCSPX-abc"))),
            (web.as_bytes(), Err("This is a Web application client; create one of type Desktop app")),
            (b"client_id=1234", Err("it is not JSON")),
            (b"\xff\xfe\x00", Err("it is not JSON")),
            (b"", Err("it is not JSON")),
            (br#"{"type": "service_account", "private_key": "x"}"#, Err("not a Google OAuth client file")),
            (br#"[1, 2]"#, Err("not a Google OAuth client file")),
            (br#"{"installed": "x"}"#, Err("not a Google OAuth client file")),
            (br#"{"installed":{"client_id":"1234-abc.apps.googleusercontent.com"}}"#, Err("has no client secret")),
            (br#"{"installed":{"client_id":"1234-abc.apps.googleusercontent.com","client_secret":""}}"#, Err("has no client secret")),
            (br#"{"installed":{"client_secret":"GOCSPX-abc"}}"#, Err("has no client ID")),
            (br#"{"installed":{"client_id":"1234-abc","client_secret":"GOCSPX-abc"}}"#, Err("ends in .apps.googleusercontent.com")),
            (big.as_bytes(), Err("too large")),
        ];
        for (i, (bytes, want)) in table.into_iter().enumerate() {
            match (parse_client_file(bytes), want) {
                (Ok(got), Ok((a, b))) => assert_eq!(got, (a.to_string(), b.to_string()), "row {i}"),
                (Err(e), Err(words)) => {
                    assert_eq!(e.code(), "bad_input", "row {i}");
                    let m = e.to_string();
                    assert!(m.contains(words), "row {i}: {m}");
                    assert!(
                        !m.contains('\n') && m.ends_with('.'),
                        "row {i}: one sentence: {m}"
                    );
                    assert!(!m.contains("GOCSPX"), "row {i}: never the secret: {m}");
                }
                (got, want) => panic!("row {i}: got {got:?}, want {want:?}"),
            }
        }
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
