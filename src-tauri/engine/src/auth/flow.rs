//! "Connect Google Drive": the authorization code flow with PKCE through the system browser and
//! a loopback redirect.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::google::{About, AboutError, Revocation};
use super::listener::LoopbackListener;
use super::{Account, AuthError, DriveScope, GoogleAuth, GoogleSession};
use crate::secrets;

/// How long `connect` waits for the browser by default.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5 * 60);

/// How the consent page is opened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Browser {
    /// The system's default browser.
    System,
    /// This program, run with the URL as its one argument (tests, unusual setups).
    Command(String),
    /// Nobody: the caller shows the URL (from [`ConnectEvent::AuthorizeUrl`]) to the user.
    None,
}

impl Browser {
    /// `DRIVEBACK_BROWSER=<program>` when set, else the system browser; `None` when
    /// `no_browser`.
    pub fn from_env(no_browser: bool) -> Self {
        if no_browser {
            return Browser::None;
        }
        match std::env::var("DRIVEBACK_BROWSER") {
            Ok(cmd) if !cmd.trim().is_empty() => Browser::Command(cmd),
            _ => Browser::System,
        }
    }
}

/// Progress of a connect, for the CLI or the UI to show.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConnectEvent {
    /// The consent page's address (always reported first; show it in case no browser opens).
    AuthorizeUrl(String),
    BrowserOpened,
    /// The browser could not be started: the user must open the address themselves.
    BrowserFailed(String),
    /// An answer reached the listener but was refused (a wrong or repeated `state`); still waiting.
    Refused(String),
    /// Google answered; exchanging the code for tokens.
    Exchanging,
}

pub struct ConnectOptions {
    pub scope: DriveScope,
    pub browser: Browser,
    pub timeout: Duration,
    /// Set to true to give up waiting (the UI's Cancel button).
    pub cancel: Option<Arc<AtomicBool>>,
    pub on_event: Box<dyn Fn(ConnectEvent) + Send + Sync>,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        ConnectOptions {
            scope: DriveScope::default(),
            browser: Browser::System,
            timeout: DEFAULT_CONNECT_TIMEOUT,
            cancel: None,
            on_event: Box::new(|_| {}),
        }
    }
}

/// A completed connect.
#[derive(Clone, Debug)]
pub struct Connected {
    pub account: Account,
    pub about: About,
    /// Ready to use, holding the access token just obtained.
    pub session: Arc<GoogleSession>,
}

impl GoogleAuth {
    /// Run the whole flow: open the consent page, wait for the redirect, exchange the code, keep
    /// the refresh token in the OS keyring and the account record on disk. Blocking.
    ///
    /// The keyring is checked first: without one, nothing is opened and nothing is stored.
    pub fn connect(&self, opts: ConnectOptions) -> Result<Connected, AuthError> {
        // Fails early (before any consent) when the keyring is absent or locked.
        self.secrets
            .get(secrets::GOOGLE_REFRESH_TOKEN)
            .map_err(AuthError::Keyring)?;
        let emit = |e: ConnectEvent| (opts.on_event)(e);

        let listener = LoopbackListener::bind()?;
        let redirect_uri = listener.redirect_uri();
        let (url, state, verifier) = self.google.authorize_url(&redirect_uri, opts.scope)?;
        emit(ConnectEvent::AuthorizeUrl(url.to_string()));
        match open_browser(&opts.browser, url.as_str()) {
            Ok(true) => emit(ConnectEvent::BrowserOpened),
            Ok(false) => {}
            Err(why) => emit(ConnectEvent::BrowserFailed(why)),
        }

        let deadline = Instant::now() + opts.timeout;
        let code = listener.wait(state.secret(), deadline, opts.cancel.as_deref(), &|why| {
            emit(ConnectEvent::Refused(why.to_string()))
        })?;
        emit(ConnectEvent::Exchanging);
        let fresh = self.google.exchange(code, verifier, &redirect_uri)?;

        // From here on a failure must not leave a live grant behind that nothing knows about.
        let abandon = |e: AuthError| {
            if let Some(rt) = &fresh.refresh {
                match self.google.revoke(rt) {
                    Revocation::Revoked | Revocation::AlreadyRevoked => {}
                    Revocation::Failed(why) => {
                        tracing::warn!(%why, "could not revoke the unused Google grant")
                    }
                }
            }
            e
        };
        let Some(refresh_token) = fresh.refresh.clone() else {
            return Err(AuthError::Authorization(
                "Google sent no refresh token, so Driveback could not stay connected; remove Driveback at https://myaccount.google.com/permissions and connect again".into(),
            ));
        };
        let granted: Vec<&str> = fresh.scopes.split_whitespace().collect();
        if !fresh.scopes.is_empty() && !granted.contains(&opts.scope.url()) {
            return Err(abandon(AuthError::ScopeNotGranted(opts.scope)));
        }
        let about = match self.google.about(&fresh.access) {
            Ok(a) => a,
            Err(AboutError::Unauthorized) => {
                return Err(abandon(AuthError::Unavailable(
                    "Google Drive refused the new sign-in's access token".into(),
                )))
            }
            Err(AboutError::Other(m)) => return Err(abandon(AuthError::Unavailable(m))),
        };
        self.secrets
            .set(secrets::GOOGLE_REFRESH_TOKEN, &refresh_token)
            .map_err(|e| abandon(AuthError::Keyring(e)))?;
        let account = Account {
            email: about.email.clone(),
            display_name: about.display_name.clone(),
            scope: opts.scope,
            granted_scopes: fresh.scopes.clone(),
            connected_at: chrono::Utc::now(),
            reconnect_needed: false,
            reconnect_reason: None,
        };
        if let Err(e) = self.account.save(&account) {
            let _ = self.secrets.delete(secrets::GOOGLE_REFRESH_TOKEN);
            return Err(abandon(e));
        }
        tracing::info!(email = %account.email, scope = %account.scope, "connected Google Drive");
        let session = GoogleSession::new(
            Box::new(self.google.clone()),
            refresh_token,
            self.secrets.clone(),
            Some(self.account.clone()),
        );
        session.prime(fresh.access.clone(), fresh.expires_in);
        Ok(Connected {
            account,
            about,
            session: Arc::new(session),
        })
    }
}

/// Variables that may hold Driveback's secrets: a browser started for sign-in does not inherit
/// them.
pub const SECRET_ENV: [&str; 4] = [
    "DRIVEBACK_PASSPHRASE",
    "DRIVEBACK_NEW_PASSPHRASE",
    "DRIVEBACK_SMTP_PASSWORD",
    "DRIVEBACK_MONGO_URI",
];

/// Ok(true) when a browser was started, Ok(false) when none was asked for.
fn open_browser(browser: &Browser, url: &str) -> Result<bool, String> {
    match browser {
        Browser::None => Ok(false),
        // The desktop's opener, run without the secret variables; elsewhere (or without
        // xdg-open) the platform's way through the webbrowser crate.
        #[cfg(target_os = "linux")]
        Browser::System if which_xdg_open() => spawn_scrubbed("xdg-open", url),
        Browser::System => webbrowser::open(url)
            .map(|()| true)
            .map_err(|e| e.to_string()),
        Browser::Command(cmd) => spawn_scrubbed(cmd, url),
    }
}

#[cfg(target_os = "linux")]
fn which_xdg_open() -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join("xdg-open").is_file()))
}

fn spawn_scrubbed(cmd: &str, url: &str) -> Result<bool, String> {
    let mut command = std::process::Command::new(cmd);
    for k in SECRET_ENV {
        command.env_remove(k);
    }
    let mut child = command
        .arg(url)
        .stdin(std::process::Stdio::null())
        .spawn()
        .map_err(|e| format!("could not run {cmd}: {e}"))?;
    // Reap it whenever it ends; the flow does not wait for it.
    std::thread::spawn(move || {
        let _ = child.wait();
    });
    Ok(true)
}

#[cfg(all(test, unix))]
mod scrub_tests {
    #[test]
    fn the_browser_does_not_inherit_secrets() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("env.txt");
        let script = dir.path().join("browser.sh");
        std::fs::write(
            &script,
            format!(
                "#!/bin/sh\nenv > {}.tmp && mv {}.tmp {}\n",
                out.display(),
                out.display(),
                out.display()
            ),
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::env::set_var("DRIVEBACK_PASSPHRASE", "do-not-leak-this");
        std::env::set_var("DRIVEBACK_UNRELATED", "kept");
        assert!(super::spawn_scrubbed(script.to_str().unwrap(), "http://127.0.0.1/").unwrap());
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !out.exists() {
            assert!(
                std::time::Instant::now() < deadline,
                "the browser did not run"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let env = std::fs::read_to_string(&out).unwrap();
        assert!(env.contains("DRIVEBACK_UNRELATED=kept"), "{env}");
        assert!(!env.contains("do-not-leak-this"), "{env}");
    }
}
