//! A signed-in session: the refresh token from the keyring, and an access token kept in memory
//! and refreshed shortly before it expires, or after Google refused it (`invalidate`).

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use secrecy::{ExposeSecret, SecretString};

use super::google::{Fresh, Google};
use super::{AccessTokens, AccountFile, TokenError};
use crate::secrets::{self, SecretStore};

/// Refresh this long before the access token expires (less for very short-lived tokens).
pub const REFRESH_MARGIN: Duration = Duration::from_secs(60);
/// Assumed lifetime when the token endpoint does not say (Google always does).
const DEFAULT_LIFETIME: Duration = Duration::from_secs(600);

/// The token endpoint as the session sees it (a fake in unit tests).
pub(crate) trait Refresher: Send + Sync {
    fn refresh(&self, refresh_token: &SecretString) -> Result<Fresh, TokenError>;
}

impl Refresher for Google {
    fn refresh(&self, refresh_token: &SecretString) -> Result<Fresh, TokenError> {
        Google::refresh(self, refresh_token)
    }
}

impl<T: Refresher + ?Sized> Refresher for Arc<T> {
    fn refresh(&self, refresh_token: &SecretString) -> Result<Fresh, TokenError> {
        (**self).refresh(refresh_token)
    }
}

type Clock = Box<dyn Fn() -> Instant + Send + Sync>;

struct Cached {
    token: SecretString,
    refresh_at: Instant,
}

struct State {
    refresh_token: SecretString,
    access: Option<Cached>,
    /// Set once Google said the grant is gone: no more calls to the token endpoint.
    gone: Option<String>,
    refreshes: u64,
}

/// Access tokens for Google Drive calls. Cheap to share (`Arc`); blocking: call it from a thread
/// that may block (not from inside an async task).
pub struct GoogleSession {
    refresher: Box<dyn Refresher>,
    secrets: Arc<dyn SecretStore>,
    account: Option<AccountFile>,
    clock: Clock,
    state: Mutex<State>,
}

impl std::fmt::Debug for GoogleSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GoogleSession").finish_non_exhaustive()
    }
}

impl GoogleSession {
    pub(crate) fn new(
        refresher: Box<dyn Refresher>,
        refresh_token: SecretString,
        secrets: Arc<dyn SecretStore>,
        account: Option<AccountFile>,
    ) -> Self {
        GoogleSession {
            refresher,
            secrets,
            account,
            clock: Box::new(Instant::now),
            state: Mutex::new(State {
                refresh_token,
                access: None,
                gone: None,
                refreshes: 0,
            }),
        }
    }

    #[cfg(test)]
    fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// Start with an access token already in hand (just after connecting).
    pub(crate) fn prime(&self, access: SecretString, expires_in: Option<Duration>) {
        let now = (self.clock)();
        self.lock().access = Some(Cached {
            token: access,
            refresh_at: refresh_at(now, expires_in),
        });
    }

    /// How many times this session has asked the token endpoint for a new access token.
    pub fn refresh_count(&self) -> u64 {
        self.lock().refreshes
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn refresh_at(now: Instant, expires_in: Option<Duration>) -> Instant {
    let lifetime = expires_in.unwrap_or(DEFAULT_LIFETIME);
    let margin = REFRESH_MARGIN.min(lifetime / 2);
    now + (lifetime - margin)
}

impl AccessTokens for GoogleSession {
    fn access_token(&self) -> Result<SecretString, TokenError> {
        // Held across the refresh: concurrent callers wait for one refresh instead of racing.
        let mut st = self.lock();
        if let Some(reason) = &st.gone {
            return Err(TokenError::ReconnectNeeded(reason.clone()));
        }
        let now = (self.clock)();
        if let Some(c) = &st.access {
            if now < c.refresh_at {
                return Ok(c.token.clone());
            }
        }
        st.access = None;
        st.refreshes += 1;
        tracing::debug!("refreshing the Google access token");
        match self.refresher.refresh(&st.refresh_token) {
            Ok(fresh) => {
                if let Some(new_rt) = fresh.refresh {
                    if new_rt.expose_secret() != st.refresh_token.expose_secret() {
                        // Google rotated the refresh token: keep the new one.
                        if let Err(e) = self.secrets.set(secrets::GOOGLE_REFRESH_TOKEN, &new_rt) {
                            tracing::warn!(error = %e, "could not store Google's new refresh token in the OS keyring");
                        }
                        st.refresh_token = new_rt;
                    }
                }
                tracing::debug!(
                    expires_in_s = fresh.expires_in.map(|d| d.as_secs()),
                    "got a new Google access token"
                );
                st.access = Some(Cached {
                    token: fresh.access.clone(),
                    refresh_at: refresh_at((self.clock)(), fresh.expires_in),
                });
                Ok(fresh.access)
            }
            Err(TokenError::ReconnectNeeded(reason)) => {
                tracing::info!(%reason, "Google no longer accepts the sign-in: reconnect needed");
                st.gone = Some(reason.clone());
                if let Some(a) = &self.account {
                    if let Err(e) = a.mark_reconnect_needed(&reason) {
                        tracing::warn!(error = %e, "could not record that Google Drive needs reconnecting");
                    }
                }
                Err(TokenError::ReconnectNeeded(reason))
            }
            Err(e) => Err(e),
        }
    }

    fn invalidate(&self) {
        self.lock().access = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::{Account, DriveScope};
    use crate::secrets::MemorySecretStore;
    use std::collections::VecDeque;

    /// A token endpoint that answers from a script and counts calls.
    struct Script {
        answers: Mutex<VecDeque<Result<Fresh, TokenError>>>,
        calls: Mutex<Vec<String>>,
    }

    impl Refresher for Script {
        fn refresh(&self, rt: &SecretString) -> Result<Fresh, TokenError> {
            self.calls
                .lock()
                .unwrap()
                .push(rt.expose_secret().to_string());
            self.answers
                .lock()
                .unwrap()
                .pop_front()
                .expect("an unexpected refresh")
        }
    }

    fn fresh(access: &str, secs: u64, rt: Option<&str>) -> Result<Fresh, TokenError> {
        Ok(Fresh {
            access: SecretString::from(access),
            expires_in: Some(Duration::from_secs(secs)),
            refresh: rt.map(SecretString::from),
            scopes: String::new(),
        })
    }

    struct Fixture {
        session: GoogleSession,
        script: Arc<Script>,
        offset: Arc<Mutex<Duration>>,
        secrets: Arc<MemorySecretStore>,
        account: AccountFile,
        _dir: tempfile::TempDir,
    }

    impl Fixture {
        fn advance(&self, d: Duration) {
            *self.offset.lock().unwrap() += d;
        }
        fn calls(&self) -> Vec<String> {
            self.script.calls.lock().unwrap().clone()
        }
    }

    fn fixture(answers: Vec<Result<Fresh, TokenError>>) -> Fixture {
        let script = Arc::new(Script {
            answers: Mutex::new(answers.into()),
            calls: Mutex::new(vec![]),
        });
        let dir = tempfile::tempdir().unwrap();
        let account = AccountFile::in_dir(dir.path());
        account
            .save(&Account {
                email: "a@example.com".into(),
                display_name: None,
                scope: DriveScope::AppData,
                granted_scopes: String::new(),
                connected_at: chrono::Utc::now(),
                reconnect_needed: false,
                reconnect_reason: None,
            })
            .unwrap();
        let secrets = Arc::new(MemorySecretStore::new());
        secrets
            .set(secrets::GOOGLE_REFRESH_TOKEN, &SecretString::from("rt1"))
            .unwrap();
        let start = Instant::now();
        let offset = Arc::new(Mutex::new(Duration::ZERO));
        let o = offset.clone();
        let session = GoogleSession::new(
            Box::new(script.clone()),
            SecretString::from("rt1"),
            secrets.clone(),
            Some(account.clone()),
        )
        .with_clock(Box::new(move || start + *o.lock().unwrap()));
        Fixture {
            session,
            script,
            offset,
            secrets,
            account,
            _dir: dir,
        }
    }

    fn token(s: &GoogleSession) -> String {
        s.access_token().unwrap().expose_secret().to_string()
    }

    #[test]
    fn caches_then_refreshes_a_minute_before_expiry() {
        let f = fixture(vec![fresh("a1", 3599, None), fresh("a2", 3599, None)]);
        assert_eq!(token(&f.session), "a1");
        assert_eq!(token(&f.session), "a1");
        f.advance(Duration::from_secs(3599 - 61));
        assert_eq!(token(&f.session), "a1");
        f.advance(Duration::from_secs(2));
        assert_eq!(token(&f.session), "a2");
        assert_eq!(f.calls(), vec!["rt1", "rt1"]);
        assert_eq!(f.session.refresh_count(), 2);
    }

    #[test]
    fn short_lived_tokens_are_not_refreshed_on_every_call() {
        let f = fixture(vec![fresh("a1", 20, None), fresh("a2", 20, None)]);
        assert_eq!(token(&f.session), "a1");
        f.advance(Duration::from_secs(9));
        assert_eq!(token(&f.session), "a1");
        f.advance(Duration::from_secs(1));
        assert_eq!(token(&f.session), "a2");
    }

    #[test]
    fn invalidate_refreshes_once() {
        let f = fixture(vec![fresh("a1", 3599, None), fresh("a2", 3599, None)]);
        f.session
            .prime(SecretString::from("a0"), Some(Duration::from_secs(3599)));
        assert_eq!(token(&f.session), "a0");
        f.session.invalidate();
        assert_eq!(token(&f.session), "a1");
        assert_eq!(token(&f.session), "a1");
        assert_eq!(f.calls().len(), 1);
    }

    #[test]
    fn a_rotated_refresh_token_is_kept_in_the_keyring() {
        let f = fixture(vec![fresh("a1", 1, Some("rt2")), fresh("a2", 3599, None)]);
        assert_eq!(token(&f.session), "a1");
        assert_eq!(
            f.secrets
                .get(secrets::GOOGLE_REFRESH_TOKEN)
                .unwrap()
                .unwrap()
                .expose_secret(),
            "rt2"
        );
        f.advance(Duration::from_secs(1));
        assert_eq!(token(&f.session), "a2");
        assert_eq!(f.calls(), vec!["rt1", "rt2"]);
    }

    #[test]
    fn invalid_grant_means_reconnect_and_sticks() {
        let f = fixture(vec![Err(TokenError::ReconnectNeeded(
            "invalid_grant: Token has been expired or revoked.".into(),
        ))]);
        let e = f.session.access_token().unwrap_err();
        assert!(matches!(e, TokenError::ReconnectNeeded(_)), "{e}");
        assert!(e.to_string().contains("reconnecting"), "{e}");
        let a = f.account.load().unwrap().unwrap();
        assert!(a.reconnect_needed);
        assert!(a.reconnect_reason.unwrap().contains("revoked"));
        // No further calls to the token endpoint.
        assert!(matches!(
            f.session.access_token(),
            Err(TokenError::ReconnectNeeded(_))
        ));
        assert_eq!(f.calls().len(), 1);
    }

    #[test]
    fn an_outage_is_unavailable_and_a_later_call_tries_again() {
        let f = fixture(vec![
            Err(TokenError::Unavailable("down".into())),
            fresh("a1", 3599, None),
        ]);
        assert!(matches!(
            f.session.access_token(),
            Err(TokenError::Unavailable(_))
        ));
        assert!(!f.account.load().unwrap().unwrap().reconnect_needed);
        assert_eq!(token(&f.session), "a1");
    }
}
