//! The HTTP side of the Drive store: access tokens, Google's error envelope, retries.
//!
//! Every call goes through [`Api::run`]: it adds the bearer token, refreshes it once when Google
//! answers 401, and retries what Google says is worth retrying (see [`super::retry`]) with
//! backoff. The resumable upload has its own loop (a failed chunk is followed by a status query,
//! not by the same request again) but uses the same pieces.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use reqwest::blocking::{Client, RequestBuilder, Response};
use reqwest::StatusCode;
use secrecy::ExposeSecret;
use serde::de::DeserializeOwned;

use super::retry::{is_retryable, parse_retry_after, RetryPolicy};
use crate::auth::{AccessTokens, GoogleEndpoints, TokenError};

/// Error bodies are small; anything beyond this is not read.
const MAX_ERROR_BODY: usize = 64 * 1024;

/// What went wrong with one Google call, before the caller adds what it was doing.
#[derive(Debug, Clone)]
pub(crate) enum CallError {
    /// Google answered with an error status.
    Status {
        status: StatusCode,
        reason: Option<String>,
        message: String,
        tries: u32,
    },
    /// No (complete) answer: connection refused or dropped, timeout.
    Transport { error: String, tries: u32 },
    /// The Google sign-in is gone or does not cover what was asked: connect again.
    Auth(String),
    /// The access token could not be refreshed right now.
    TokenUnavailable(String),
    /// `storageQuotaExceeded`: never retried.
    QuotaExceeded,
}

impl CallError {
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            CallError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    pub fn is_not_found(&self) -> bool {
        self.status() == Some(StatusCode::NOT_FOUND)
    }

    /// The same error, counting `tries` tries.
    pub fn with_tries(self, n: u32) -> Self {
        match self {
            CallError::Status {
                status,
                reason,
                message,
                ..
            } => CallError::Status {
                status,
                reason,
                message,
                tries: n,
            },
            CallError::Transport { error, .. } => CallError::Transport { error, tries: n },
            other => other,
        }
    }

    /// One line, without the context: "Backend Error (HTTP 500 backendError; gave up after 6
    /// tries)".
    pub fn describe(&self) -> String {
        let tries = |n: u32| {
            if n > 1 {
                format!("; gave up after {n} tries")
            } else {
                String::new()
            }
        };
        match self {
            CallError::Status {
                status,
                reason,
                message,
                tries: n,
            } => {
                let message = if message.is_empty() {
                    status.canonical_reason().unwrap_or("error").to_string()
                } else {
                    message.clone()
                };
                let reason = reason
                    .as_deref()
                    .map(|r| format!(" {r}"))
                    .unwrap_or_default();
                format!("{message} (HTTP {}{reason}{})", status.as_u16(), tries(*n))
            }
            CallError::Transport { error, tries: n } => {
                format!("no answer from Google Drive ({error}{})", tries(*n))
            }
            CallError::Auth(m) | CallError::TokenUnavailable(m) => m.clone(),
            CallError::QuotaExceeded => "Your Google Drive is full".to_string(),
        }
    }
}

/// Status, reason and message of a Google error response, and its `Retry-After`.
#[derive(Debug)]
pub(crate) struct ErrorReply {
    pub status: StatusCode,
    pub reason: Option<String>,
    pub message: String,
    pub retry_after: Option<Duration>,
}

impl ErrorReply {
    /// Reads the error envelope (`{"error": {"message", "errors": [{"reason"}]}}`, or OAuth's flat
    /// `{"error", "error_description"}`) from a response that is not a success.
    pub fn read(resp: Response) -> ErrorReply {
        use std::io::Read;
        let status = resp.status();
        let retry_after = parse_retry_after(
            resp.headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok()),
        );
        let mut body = Vec::new();
        let _ = resp.take(MAX_ERROR_BODY as u64).read_to_end(&mut body);
        let (reason, message) = parse_error_body(&body);
        ErrorReply {
            status,
            reason,
            message,
            retry_after,
        }
    }

    pub fn is_quota_exceeded(&self) -> bool {
        self.status == StatusCode::FORBIDDEN
            && self.reason.as_deref() == Some("storageQuotaExceeded")
    }

    pub fn is_retryable(&self) -> bool {
        is_retryable(self.status, self.reason.as_deref())
    }

    /// A 403 that no retry cures but connecting again with the right access does.
    fn is_scope_problem(&self) -> bool {
        self.status == StatusCode::FORBIDDEN
            && matches!(
                self.reason.as_deref(),
                Some("insufficientPermissions" | "insufficientScopes" | "appNotAuthorizedToFile")
            )
    }

    pub fn into_error(self, tries: u32) -> CallError {
        if self.is_quota_exceeded() {
            return CallError::QuotaExceeded;
        }
        if self.is_scope_problem() {
            return CallError::Auth(format!(
                "Google Drive needs reconnecting: the access Driveback was given does not allow this ({})",
                self.message
            ));
        }
        CallError::Status {
            status: self.status,
            reason: self.reason,
            message: self.message,
            tries,
        }
    }
}

pub(crate) fn parse_error_body(body: &[u8]) -> (Option<String>, String) {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) else {
        let text = String::from_utf8_lossy(body);
        let line = text.lines().next().unwrap_or("").trim();
        return (None, line.chars().take(200).collect());
    };
    let err = &v["error"];
    if err.is_object() {
        let reason = err["errors"][0]["reason"]
            .as_str()
            .or_else(|| err["status"].as_str())
            .map(str::to_string);
        let message = err["message"].as_str().unwrap_or("").to_string();
        return (reason, message);
    }
    // OAuth's flat shape.
    let reason = err.as_str().map(str::to_string);
    let message = v["error_description"].as_str().unwrap_or("").to_string();
    (reason, message)
}

/// A transport error in one line, without the URL (a session URI is a credential): what
/// failed at the bottom, e.g. "Connection reset by peer (os error 104)".
pub(crate) fn describe_transport(e: &reqwest::Error) -> String {
    use std::error::Error;
    let mut innermost: Option<String> = None;
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !text.is_empty() {
            innermost = Some(text);
        }
        source = s.source();
    }
    let top = e.to_string();
    let top = top.split(" for url").next().unwrap_or("").to_string();
    let cause = innermost.unwrap_or(top);
    if e.is_timeout() {
        format!("the request timed out: {cause}")
    } else if e.is_connect() {
        format!("could not connect: {cause}")
    } else {
        cause
    }
}

/// The shared client: tokens, endpoints, retry policy, and one HTTP connection pool.
pub(crate) struct Api {
    tokens: Arc<dyn AccessTokens>,
    pub endpoints: GoogleEndpoints,
    pub retry: RetryPolicy,
    timeout: Duration,
    http: OnceLock<Result<Client, String>>,
}

impl Drop for Api {
    fn drop(&mut self) {
        // reqwest's blocking client owns a runtime that cannot be shut down from inside an async
        // context (where the app and the CLI may drop a store): a plain thread drops it.
        if let Some(client) = self.http.take() {
            std::thread::spawn(move || drop(client));
        }
    }
}

impl Api {
    pub fn new(
        tokens: Arc<dyn AccessTokens>,
        endpoints: GoogleEndpoints,
        retry: RetryPolicy,
        timeout: Duration,
    ) -> Self {
        Api {
            tokens,
            endpoints,
            retry,
            timeout,
            http: OnceLock::new(),
        }
    }

    /// The HTTP client, built on first use (on the blocking thread that makes the first call:
    /// reqwest's blocking client cannot be built inside an async runtime).
    pub fn http(&self) -> Result<&Client, CallError> {
        let built = self.http.get_or_init(|| {
            // Google answers an unfinished upload chunk with 308 "Resume Incomplete", which is
            // not a redirect to follow.
            let redirects = reqwest::redirect::Policy::custom(|a| {
                if a.status() == StatusCode::PERMANENT_REDIRECT {
                    a.stop()
                } else if a.previous().len() >= 10 {
                    a.error("too many redirects")
                } else {
                    a.follow()
                }
            });
            Client::builder()
                .redirect(redirects)
                .connect_timeout(Duration::from_secs(30))
                // Per phase: sending a request and its body, waiting for the answer, and each
                // read of a response body. Downloads of any length stream under it.
                .timeout(self.timeout)
                .user_agent(concat!("driveback/", env!("CARGO_PKG_VERSION")))
                .build()
                .map_err(|e| describe_transport(&e))
        });
        built.as_ref().map_err(|e| CallError::Transport {
            error: e.clone(),
            tries: 1,
        })
    }

    /// The current access token.
    pub fn token(&self) -> Result<String, CallError> {
        match self.tokens.access_token() {
            Ok(t) => Ok(t.expose_secret().to_string()),
            Err(e @ TokenError::ReconnectNeeded(_)) | Err(e @ TokenError::Keyring(_)) => {
                Err(CallError::Auth(e.to_string()))
            }
            Err(e @ TokenError::Unavailable(_)) => Err(CallError::TokenUnavailable(e.to_string())),
        }
    }

    /// Google refused the token: the next call refreshes it.
    pub fn invalidate_token(&self) {
        self.tokens.invalidate();
    }

    /// Sends the request `build` makes (a fresh one per try) with the access token, and hands
    /// a successful (2xx) response to `finish`. 401 refreshes the token once; 429, 5xx,
    /// rate-limit 403s and transport errors (including ones while `finish` reads the body) are
    /// retried with backoff, up to the policy's number of tries.
    pub fn run<T>(
        &self,
        build: &dyn Fn(&Client) -> RequestBuilder,
        finish: &dyn Fn(Response) -> Result<T, reqwest::Error>,
    ) -> Result<T, CallError> {
        let http = self.http()?;
        let mut tries = 0u32;
        let mut refreshed = false;
        loop {
            tries += 1;
            let last = tries >= self.retry.max_tries;
            let token = match self.token() {
                Ok(t) => t,
                Err(CallError::TokenUnavailable(m)) if !last => {
                    tracing::debug!(error = %m, "token refresh failed; retrying");
                    self.retry.wait(tries - 1, None);
                    continue;
                }
                Err(e) => return Err(e),
            };
            let outcome = build(http).bearer_auth(token).send();
            let resp = match outcome {
                Ok(r) => r,
                Err(e) => {
                    if last {
                        return Err(CallError::Transport {
                            error: describe_transport(&e),
                            tries,
                        });
                    }
                    tracing::debug!(error = %describe_transport(&e), "Google Drive call failed; retrying");
                    self.retry.wait(tries - 1, None);
                    continue;
                }
            };
            if resp.status().is_success() {
                match finish(resp) {
                    Ok(v) => return Ok(v),
                    Err(e) if !last => {
                        tracing::debug!(error = %describe_transport(&e), "reading a Google Drive answer failed; retrying");
                        self.retry.wait(tries - 1, None);
                        continue;
                    }
                    Err(e) => {
                        return Err(CallError::Transport {
                            error: describe_transport(&e),
                            tries,
                        })
                    }
                }
            }
            let reply = ErrorReply::read(resp);
            if reply.status == StatusCode::UNAUTHORIZED {
                if refreshed {
                    return Err(CallError::Auth(
                        "Google Drive needs reconnecting: Google refused the access token even after a refresh".into(),
                    ));
                }
                refreshed = true;
                self.invalidate_token();
                tries -= 1; // a refresh is not a retry
                continue;
            }
            if reply.is_retryable() && !last {
                tracing::debug!(status = reply.status.as_u16(), reason = ?reply.reason, "Google Drive asked to retry");
                self.retry.wait(tries - 1, reply.retry_after);
                continue;
            }
            return Err(reply.into_error(tries));
        }
    }

    /// A call whose answer is JSON.
    pub fn json<T: DeserializeOwned>(
        &self,
        build: &dyn Fn(&Client) -> RequestBuilder,
    ) -> Result<T, CallError> {
        let bytes = self.run(build, &|r| r.bytes())?;
        serde_json::from_slice(&bytes).map_err(|e| CallError::Status {
            status: StatusCode::OK,
            reason: None,
            message: format!("an answer Driveback does not understand ({e})"),
            tries: 1,
        })
    }

    /// A call whose answer body does not matter.
    pub fn empty(&self, build: &dyn Fn(&Client) -> RequestBuilder) -> Result<(), CallError> {
        self.run(build, &|r| r.bytes().map(|_| ()))
    }

    pub fn drive_url(&self, path: &str) -> String {
        format!("{}/{}", self.endpoints.drive, path.trim_start_matches('/'))
    }

    pub fn upload_url(&self, path: &str) -> String {
        format!("{}/{}", self.endpoints.upload, path.trim_start_matches('/'))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn google_error_envelopes_are_read() {
        let body = br#"{"error": {"code": 403, "message": "The user's Drive storage quota has been exceeded.",
            "errors": [{"domain": "usageLimits", "reason": "storageQuotaExceeded", "message": "x"}]}}"#;
        assert_eq!(
            parse_error_body(body),
            (
                Some("storageQuotaExceeded".into()),
                "The user's Drive storage quota has been exceeded.".into()
            )
        );
        let oauth = br#"{"error": "invalid_grant", "error_description": "Token has been expired or revoked."}"#;
        assert_eq!(
            parse_error_body(oauth),
            (
                Some("invalid_grant".into()),
                "Token has been expired or revoked.".into()
            )
        );
        let status_only =
            br#"{"error": {"code": 401, "message": "bad", "status": "UNAUTHENTICATED"}}"#;
        assert_eq!(
            parse_error_body(status_only),
            (Some("UNAUTHENTICATED".into()), "bad".into())
        );
        assert_eq!(
            parse_error_body(b"<html>\nNot Found</html>"),
            (None, "<html>".into())
        );
    }

    #[test]
    fn call_errors_read_as_one_line() {
        let e = CallError::Status {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            reason: Some("backendError".into()),
            message: "Backend Error".into(),
            tries: 6,
        };
        assert_eq!(
            e.describe(),
            "Backend Error (HTTP 500 backendError; gave up after 6 tries)"
        );
        let e = CallError::Status {
            status: StatusCode::NOT_FOUND,
            reason: None,
            message: String::new(),
            tries: 1,
        };
        assert!(e.is_not_found());
        assert_eq!(e.describe(), "Not Found (HTTP 404)");
        let e = CallError::Transport {
            error: "could not connect".into(),
            tries: 1,
        };
        assert_eq!(
            e.with_tries(3).describe(),
            "no answer from Google Drive (could not connect; gave up after 3 tries)"
        );
    }
}
