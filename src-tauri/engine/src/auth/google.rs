//! The calls to Google: the authorization URL, the token endpoint (code exchange, refresh), the
//! revocation endpoint and Drive's `about.get`. Tokens never appear in a log line or an error.

use std::time::Duration;

use oauth2::basic::{
    BasicClient, BasicErrorResponse, BasicRevocationErrorResponse, BasicTokenResponse,
};
use oauth2::{
    AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, EndpointNotSet, EndpointSet,
    ErrorResponse, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, RefreshToken,
    RequestTokenError, Scope, StandardRevocableToken, TokenResponse, TokenUrl,
};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use super::{AuthError, DriveScope, GoogleEndpoints, OAuthClient, TokenError};

type Client = oauth2::Client<
    BasicErrorResponse,
    BasicTokenResponse,
    oauth2::basic::BasicTokenIntrospectionResponse,
    StandardRevocableToken,
    BasicRevocationErrorResponse,
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointSet,
>;

type OAuthError<E> = RequestTokenError<oauth2::HttpClientError<reqwest::Error>, E>;

/// Timeouts of every call to Google.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// Attempts of a refresh that failed for a transient reason, and the pause before each retry.
const REFRESH_RETRIES: [Duration; 2] = [Duration::from_millis(500), Duration::from_millis(1500)];

/// Tokens fresh from the token endpoint (`Debug` shows no token).
#[derive(Debug)]
pub struct Fresh {
    pub access: SecretString,
    pub expires_in: Option<Duration>,
    /// Google sends a refresh token on a code exchange and, rarely, a new one on a refresh.
    pub refresh: Option<SecretString>,
    /// Granted scopes, space-separated (empty when the endpoint did not say).
    pub scopes: String,
}

impl Fresh {
    fn from_response(r: &BasicTokenResponse) -> Self {
        Fresh {
            access: SecretString::from(r.access_token().secret().clone()),
            expires_in: r.expires_in(),
            refresh: r
                .refresh_token()
                .map(|t| SecretString::from(t.secret().clone())),
            scopes: r
                .scopes()
                .map(|s| s.iter().map(|x| x.as_str()).collect::<Vec<_>>().join(" "))
                .unwrap_or_default(),
        }
    }
}

/// The account as Drive's `about.get` describes it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct About {
    pub email: String,
    pub display_name: Option<String>,
    /// Bytes used across Drive, Gmail and Photos.
    pub quota_used: Option<u64>,
    /// The account's storage limit; None when it has none.
    pub quota_limit: Option<u64>,
}

/// Why `about.get` failed.
pub enum AboutError {
    /// 401: the access token was not accepted.
    Unauthorized,
    Other(String),
}

/// What the revocation endpoint said.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Revocation {
    Revoked,
    /// Google did not know the token any more (already revoked or expired).
    AlreadyRevoked,
    Failed(String),
}

pub struct Google {
    pub endpoints: GoogleEndpoints,
    pub client: OAuthClient,
    /// Always Some until dropped (see `Drop`).
    http: Option<reqwest::blocking::Client>,
}

impl Drop for Google {
    fn drop(&mut self) {
        // reqwest's blocking client owns a runtime that cannot be shut down from inside an async
        // context (where the app and the CLI may drop a session): a plain thread drops it.
        if let Some(http) = self.http.take() {
            std::thread::spawn(move || drop(http));
        }
    }
}

impl Google {
    /// Builds a blocking HTTP client: call from a thread where blocking is allowed (not from
    /// inside an async task).
    pub fn new(endpoints: GoogleEndpoints, client: OAuthClient) -> Result<Self, AuthError> {
        let http = reqwest::blocking::Client::builder()
            // The token endpoint must never redirect (a redirect could carry the code elsewhere).
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            .user_agent(concat!("Driveback/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| AuthError::Unavailable(format!("cannot set up HTTPS: {e}")))?;
        Ok(Google {
            endpoints,
            client,
            http: Some(http),
        })
    }

    fn http(&self) -> &reqwest::blocking::Client {
        self.http
            .as_ref()
            .expect("the HTTP client lives until drop")
    }

    fn oauth(&self, redirect_uri: Option<&str>) -> Result<Client, AuthError> {
        let bad = |what: &str, e: url::ParseError| {
            AuthError::NotConfigured(format!(
                "the Google {what} endpoint is not a valid URL ({e})"
            ))
        };
        let mut c = BasicClient::new(ClientId::new(self.client.id.clone()))
            .set_client_secret(ClientSecret::new(
                self.client.secret.expose_secret().to_string(),
            ))
            .set_auth_uri(
                AuthUrl::new(self.endpoints.authorize.clone()).map_err(|e| bad("authorize", e))?,
            )
            .set_token_uri(
                TokenUrl::new(self.endpoints.token.clone()).map_err(|e| bad("token", e))?,
            );
        if let Some(r) = redirect_uri {
            c = c
                .set_redirect_uri(RedirectUrl::new(r.to_string()).map_err(|e| bad("redirect", e))?);
        }
        Ok(c)
    }

    /// The consent page's URL, the `state` it carries, and the PKCE verifier to redeem the code.
    pub fn authorize_url(
        &self,
        redirect_uri: &str,
        scope: DriveScope,
    ) -> Result<(url::Url, CsrfToken, PkceCodeVerifier), AuthError> {
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let (url, state) = self
            .oauth(Some(redirect_uri))?
            .authorize_url(CsrfToken::new_random)
            .add_scopes(scope.requested().into_iter().map(|s| Scope::new(s.into())))
            .set_pkce_challenge(challenge)
            .add_extra_param("access_type", "offline")
            .add_extra_param("prompt", "consent")
            .url();
        Ok((url, state, verifier))
    }

    /// Redeem an authorization code (once: a code is burnt by any attempt).
    pub fn exchange(
        &self,
        code: String,
        verifier: PkceCodeVerifier,
        redirect_uri: &str,
    ) -> Result<Fresh, AuthError> {
        let r = self
            .oauth(Some(redirect_uri))?
            .exchange_code(AuthorizationCode::new(code))
            .set_pkce_verifier(verifier)
            .request(self.http());
        match r {
            Ok(t) => Ok(Fresh::from_response(&t)),
            Err(e) => Err(match classify(&e, &self.endpoints.token) {
                Failure::Grant(why) => AuthError::Authorization(format!(
                    "Google refused the sign-in's authorization code ({why}); run connect again"
                )),
                Failure::Client(why) => client_rejected(&why),
                Failure::Transient(why) | Failure::Other(why) => AuthError::Unavailable(why),
            }),
        }
    }

    /// A new access token from the refresh token, retrying transient failures briefly.
    pub fn refresh(&self, refresh_token: &SecretString) -> Result<Fresh, TokenError> {
        let client = self
            .oauth(None)
            .map_err(|e| TokenError::Unavailable(e.to_string()))?;
        let mut pauses = REFRESH_RETRIES.iter();
        loop {
            let token = RefreshToken::new(refresh_token.expose_secret().to_string());
            let r = client.exchange_refresh_token(&token).request(self.http());
            let failure = match r {
                Ok(t) => return Ok(Fresh::from_response(&t)),
                Err(e) => classify(&e, &self.endpoints.token),
            };
            match failure {
                Failure::Grant(why) => return Err(TokenError::ReconnectNeeded(why)),
                Failure::Client(why) => {
                    return Err(TokenError::Unavailable(client_rejected(&why).to_string()))
                }
                Failure::Other(why) => return Err(TokenError::Unavailable(why)),
                Failure::Transient(why) => match pauses.next() {
                    Some(p) => {
                        tracing::info!(reason = %why, "refreshing the Google sign-in failed; retrying");
                        std::thread::sleep(*p);
                    }
                    None => return Err(TokenError::Unavailable(why)),
                },
            }
        }
    }

    /// Revoke the grant behind `token` (a refresh token revokes the whole grant). Google's
    /// endpoint takes the token in a form body and needs no client authentication.
    pub fn revoke(&self, token: &SecretString) -> Revocation {
        let endpoint = &self.endpoints.revoke;
        let resp = match self
            .http()
            .post(endpoint)
            .form(&[("token", token.expose_secret())])
            .send()
        {
            Ok(r) => r,
            Err(e) => {
                return Revocation::Failed(format!(
                    "could not reach Google at {endpoint}: {}",
                    transport_detail(&e)
                ))
            }
        };
        let status = resp.status();
        if status.is_success() {
            return Revocation::Revoked;
        }
        let body = resp.bytes().unwrap_or_default();
        let (error, description) = serde_json::from_slice::<serde_json::Value>(&body)
            .map(|v| {
                (
                    v["error"].as_str().unwrap_or("").to_string(),
                    v["error_description"].as_str().unwrap_or("").to_string(),
                )
            })
            .unwrap_or_default();
        if status == reqwest::StatusCode::BAD_REQUEST && error == "invalid_token" {
            return Revocation::AlreadyRevoked;
        }
        let detail = match (error.is_empty(), description.is_empty()) {
            (true, _) => "no details".to_string(),
            (false, true) => error,
            (false, false) => format!("{error}: {description}"),
        };
        Revocation::Failed(format!(
            "Google's endpoint {endpoint} answered HTTP {} ({detail})",
            status.as_u16()
        ))
    }

    /// `about.get` with `fields=user(emailAddress,displayName),storageQuota`.
    pub fn about(&self, access: &SecretString) -> Result<About, AboutError> {
        let url = format!("{}/about", self.endpoints.drive);
        let resp = self
            .http()
            .get(&url)
            .query(&[("fields", "user(emailAddress,displayName),storageQuota")])
            .bearer_auth(access.expose_secret())
            .send()
            .map_err(|e| {
                AboutError::Other(format!(
                    "could not reach Google Drive at {}: {}",
                    self.endpoints.drive,
                    transport_detail(&e)
                ))
            })?;
        let status = resp.status();
        if status == reqwest::StatusCode::UNAUTHORIZED {
            return Err(AboutError::Unauthorized);
        }
        let body = resp.bytes().map_err(|e| {
            AboutError::Other(format!(
                "Google Drive's answer was cut off: {}",
                transport_detail(&e)
            ))
        })?;
        if !status.is_success() {
            return Err(AboutError::Other(format!(
                "Google Drive refused to describe the account (HTTP {}: {})",
                status.as_u16(),
                google_error_message(&body)
            )));
        }
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct User {
            email_address: Option<String>,
            display_name: Option<String>,
        }
        #[derive(Deserialize)]
        struct Quota {
            limit: Option<String>,
            usage: Option<String>,
        }
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Raw {
            user: Option<User>,
            storage_quota: Option<Quota>,
        }
        let raw: Raw = serde_json::from_slice(&body).map_err(|e| {
            AboutError::Other(format!(
                "Google Drive's account description is not valid: {e}"
            ))
        })?;
        let user = raw.user.unwrap_or(User {
            email_address: None,
            display_name: None,
        });
        let email = user
            .email_address
            .filter(|e| !e.is_empty())
            .ok_or_else(|| {
                AboutError::Other("Google Drive did not say which account this is".into())
            })?;
        let num = |s: Option<String>| s.and_then(|v| v.parse::<u64>().ok());
        let (limit, usage) = raw
            .storage_quota
            .map(|q| (num(q.limit), num(q.usage)))
            .unwrap_or((None, None));
        Ok(About {
            email,
            display_name: user.display_name.filter(|n| !n.is_empty()),
            quota_used: usage,
            quota_limit: limit,
        })
    }
}

fn client_rejected(why: &str) -> AuthError {
    AuthError::NotConfigured(format!(
        "Google rejected Driveback's OAuth client ({why}): check DRIVEBACK_GOOGLE_CLIENT_ID and DRIVEBACK_GOOGLE_CLIENT_SECRET"
    ))
}

enum Failure {
    /// `invalid_grant`: the code or refresh token is no good any more.
    Grant(String),
    /// The OAuth client itself was refused.
    Client(String),
    /// Worth another try: no connection, a timeout, a 5xx or a rate limit.
    Transient(String),
    Other(String),
}

/// Sort an OAuth endpoint failure. The messages carry Google's error code and description, never
/// a response body (a success body holds tokens).
fn classify<E>(e: &OAuthError<E>, endpoint: &str) -> Failure
where
    E: ErrorResponse + GoogleErrorParts + 'static,
{
    match e {
        RequestTokenError::ServerResponse(r) => {
            let (code, description) = r.parts();
            let why = match description {
                Some(d) if !d.is_empty() => format!("{code}: {d}"),
                _ => code.clone(),
            };
            match code.as_str() {
                "invalid_grant" => Failure::Grant(why),
                "invalid_client" | "unauthorized_client" => Failure::Client(why),
                "temporarily_unavailable"
                | "internal_failure"
                | "server_error"
                | "rate_limit_exceeded"
                | "backend_error" => Failure::Transient(format!(
                    "Google's endpoint {endpoint} is unavailable ({why})"
                )),
                _ => Failure::Other(format!("Google's endpoint {endpoint} answered {why}")),
            }
        }
        RequestTokenError::Request(inner) => Failure::Transient(format!(
            "could not reach Google at {endpoint}: {}",
            http_client_detail(inner)
        )),
        // An error page that is not OAuth JSON (a proxy, an outage page), or a garbled answer.
        RequestTokenError::Parse(_, _) => Failure::Transient(format!(
            "Google's endpoint {endpoint} sent an answer that is not OAuth JSON (is it down?)"
        )),
        RequestTokenError::Other(m) => {
            Failure::Transient(format!("Google's endpoint {endpoint} failed: {m}"))
        }
    }
}

/// The error code and description of an OAuth error response.
pub trait GoogleErrorParts {
    fn parts(&self) -> (String, Option<String>);
}

impl<T: oauth2::ErrorResponseType + std::fmt::Display> GoogleErrorParts
    for oauth2::StandardErrorResponse<T>
{
    fn parts(&self) -> (String, Option<String>) {
        (self.error().to_string(), self.error_description().cloned())
    }
}

fn http_client_detail(e: &oauth2::HttpClientError<reqwest::Error>) -> String {
    match e {
        oauth2::HttpClientError::Reqwest(r) => transport_detail(r),
        other => other.to_string(),
    }
}

/// A transport error with its causes (reqwest's own line says only "error sending request").
fn transport_detail(e: &reqwest::Error) -> String {
    let mut out = if e.is_timeout() {
        "timed out".to_string()
    } else if e.is_connect() {
        "connection failed".to_string()
    } else {
        "request failed".to_string()
    };
    let mut source = std::error::Error::source(e);
    let mut last = String::new();
    while let Some(s) = source {
        let line = s.to_string();
        if line != last {
            out.push_str(": ");
            out.push_str(&line);
            last = line;
        }
        source = s.source();
    }
    out
}

/// `error.message` of Google's error envelope, or a short note.
fn google_error_message(body: &[u8]) -> String {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v["error"]["message"].as_str().map(str::to_string))
        .unwrap_or_else(|| "no details".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn google() -> Google {
        Google::new(
            GoogleEndpoints::with_base("http://127.0.0.1:9"),
            OAuthClient::new("cid.apps.googleusercontent.com", SecretString::from("cs")),
        )
        .unwrap()
    }

    #[test]
    fn authorize_url_has_what_google_documents() {
        let g = google();
        let redirect = "http://127.0.0.1:4567/oauth2/callback";
        let (url, state, verifier) = g.authorize_url(redirect, DriveScope::AppData).unwrap();
        assert_eq!(url.origin().unicode_serialization(), "http://127.0.0.1:9");
        assert_eq!(url.path(), "/o/oauth2/v2/auth");
        let q: std::collections::HashMap<String, String> = url.query_pairs().into_owned().collect();
        assert_eq!(q["response_type"], "code");
        assert_eq!(q["client_id"], "cid.apps.googleusercontent.com");
        assert_eq!(q["redirect_uri"], redirect);
        assert_eq!(
            q["scope"],
            "https://www.googleapis.com/auth/drive.appdata openid email"
        );
        assert_eq!(q["access_type"], "offline");
        assert_eq!(q["prompt"], "consent");
        assert_eq!(q["code_challenge_method"], "S256");
        assert_eq!(q["state"], *state.secret());
        assert!(state.secret().len() >= 16);
        // The challenge is the S256 of the verifier.
        use sha2::Digest;
        let expect = base64_url(&sha2::Sha256::digest(verifier.secret().as_bytes()));
        assert_eq!(q["code_challenge"], expect);
        // The client secret never goes into the browser's URL.
        assert!(!url.as_str().contains("cs&") && !q.values().any(|v| v == "cs"));
        // Each flow gets its own state and verifier.
        let (_, state2, verifier2) = g.authorize_url(redirect, DriveScope::File).unwrap();
        assert_ne!(state.secret(), state2.secret());
        assert_ne!(verifier.secret(), verifier2.secret());
    }

    fn base64_url(bytes: &[u8]) -> String {
        const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let mut out = String::new();
        for chunk in bytes.chunks(3) {
            let n =
                chunk.iter().fold(0u32, |acc, b| acc << 8 | *b as u32) << (8 * (3 - chunk.len()));
            for i in 0..=chunk.len() {
                out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
            }
        }
        out
    }

    #[test]
    fn google_error_messages() {
        assert_eq!(
            google_error_message(br#"{"error":{"code":403,"message":"Nope"}}"#),
            "Nope"
        );
        assert_eq!(google_error_message(b"<html>"), "no details");
    }

    #[test]
    fn unreachable_token_endpoint_is_unavailable() {
        // Port 9 (discard) on loopback is closed on test machines: the connection is refused.
        let e = google().refresh(&SecretString::from("1//rt")).unwrap_err();
        match e {
            TokenError::Unavailable(m) => {
                assert!(m.contains("could not reach Google"), "{m}");
                assert!(!m.contains("1//rt"), "{m}");
            }
            other => panic!("{other}"),
        }
    }
}
