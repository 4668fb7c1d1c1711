//! Every error the emulator sends, in the shape Google sends it.
//!
//! Three families: the Drive/Google-API JSON envelope (`{"error":{"code",...,"errors":[...]}}`),
//! the flat OAuth token-endpoint shape (`{"error","error_description"}`) and the HTML error page
//! the browser sees at the authorization endpoint.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

/// Google API envelope, as returned by www.googleapis.com.
#[derive(Debug, Clone)]
pub struct DriveError {
    pub code: u16,
    pub domain: String,
    pub reason: String,
    pub message: String,
    /// errors[0].message when it differs from the top-level message.
    pub item_message: Option<String>,
    pub location: Option<(&'static str, String)>,
    pub status: Option<&'static str>,
    pub retry_after: Option<u64>,
    pub www_authenticate: bool,
}

#[derive(Debug, Clone)]
pub enum ApiError {
    Drive(Box<DriveError>),
    /// Flat OAuth error of oauth2.googleapis.com (`/token`, `/revoke`, userinfo).
    OAuth {
        code: u16,
        error: String,
        description: String,
        retry_after: Option<u64>,
    },
    /// The HTML page accounts.google.com shows instead of redirecting back.
    Page {
        code: u16,
        error: String,
        description: String,
    },
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn drive(code: u16, domain: &str, reason: &str, message: impl Into<String>) -> Self {
        ApiError::Drive(Box::new(DriveError {
            code,
            domain: domain.into(),
            reason: reason.into(),
            message: message.into(),
            item_message: None,
            location: None,
            status: None,
            retry_after: None,
            www_authenticate: false,
        }))
    }

    /// Attach `locationType`/`location` to errors[0].
    pub fn at(mut self, kind: &'static str, name: &str) -> Self {
        if let ApiError::Drive(d) = &mut self {
            d.location = Some((kind, name.to_string()));
        }
        self
    }

    pub fn retry_after(mut self, secs: Option<u64>) -> Self {
        match &mut self {
            ApiError::Drive(d) => d.retry_after = secs,
            ApiError::OAuth { retry_after, .. } => *retry_after = secs,
            ApiError::Page { .. } => {}
        }
        self
    }

    pub fn oauth(code: u16, error: &str, description: impl Into<String>) -> Self {
        ApiError::OAuth {
            code,
            error: error.into(),
            description: description.into(),
            retry_after: None,
        }
    }

    pub fn page(code: u16, error: &str, description: impl Into<String>) -> Self {
        ApiError::Page {
            code,
            error: error.into(),
            description: description.into(),
        }
    }

    /// 401 for a missing, expired, revoked or unknown access token.
    pub fn unauthenticated() -> Self {
        ApiError::Drive(Box::new(DriveError {
            code: 401,
            domain: "global".into(),
            reason: "authError".into(),
            message: "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project.".into(),
            item_message: Some("Invalid Credentials".into()),
            location: Some(("header", "Authorization".into())),
            status: Some("UNAUTHENTICATED"),
            retry_after: None,
            www_authenticate: true,
        }))
    }

    /// 403 when the token's scopes do not cover the request.
    pub fn insufficient_permissions() -> Self {
        ApiError::drive(
            403,
            "global",
            "insufficientPermissions",
            "Insufficient Permission: Request had insufficient authentication scopes.",
        )
    }

    /// 403 when the app data folder is used without the drive.appdata scope.
    pub fn insufficient_scopes_appdata() -> Self {
        ApiError::drive(
            403,
            "global",
            "insufficientScopes",
            "The granted scopes do not allow use of the Application Data folder.",
        )
    }

    pub fn not_found(id: &str) -> Self {
        ApiError::drive(404, "global", "notFound", format!("File not found: {id}."))
            .at("parameter", "fileId")
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError::drive(400, "global", "badRequest", message)
    }

    /// Google's answer to a malformed parameter value (`q`, `orderBy`, `pageToken`, ...).
    pub fn invalid_value(parameter: &str) -> Self {
        ApiError::drive(400, "global", "invalid", "Invalid Value").at("parameter", parameter)
    }

    pub fn invalid_parameter(parameter: &str, message: impl Into<String>) -> Self {
        ApiError::drive(400, "global", "invalidParameter", message).at("parameter", parameter)
    }

    pub fn required_parameter(parameter: &str, message: impl Into<String>) -> Self {
        ApiError::drive(400, "global", "required", message).at("parameter", parameter)
    }

    pub fn storage_quota_exceeded() -> Self {
        ApiError::drive(
            403,
            "usageLimits",
            "storageQuotaExceeded",
            "The user's Drive storage quota has been exceeded.",
        )
    }

    pub fn field_not_writable(message: impl Into<String>) -> Self {
        ApiError::drive(403, "global", "fieldNotWritable", message)
    }

    /// The default error for an injected fault of a given status/reason.
    pub fn injected_drive(
        code: u16,
        reason: Option<&str>,
        message: Option<&str>,
        retry_after: Option<u64>,
    ) -> Self {
        let (domain, default_reason, default_message) = match code {
            401 => return ApiError::unauthenticated(),
            403 => (
                "usageLimits",
                "userRateLimitExceeded",
                "User Rate Limit Exceeded",
            ),
            429 => ("usageLimits", "rateLimitExceeded", "Rate Limit Exceeded"),
            500 => ("global", "backendError", "Backend Error"),
            502 => ("global", "badGateway", "Bad Gateway"),
            503 => ("global", "backendError", "Service Unavailable"),
            504 => ("global", "backendError", "Gateway Timeout"),
            404 => ("global", "notFound", "Not Found"),
            _ => ("global", "badRequest", "Bad Request"),
        };
        let reason = reason.unwrap_or(default_reason);
        let known_message = match reason {
            "userRateLimitExceeded" => Some("User Rate Limit Exceeded"),
            "rateLimitExceeded" => Some("Rate Limit Exceeded"),
            "dailyLimitExceeded" => Some("Daily Limit Exceeded"),
            "sharingRateLimitExceeded" => Some("Rate limit exceeded. User message: \"These item(s) could not be shared because a rate limit was exceeded\""),
            "storageQuotaExceeded" => Some("The user's Drive storage quota has been exceeded."),
            "backendError" if code == 500 => Some("Backend Error"),
            _ => None,
        };
        let domain = match reason {
            "userRateLimitExceeded"
            | "rateLimitExceeded"
            | "dailyLimitExceeded"
            | "storageQuotaExceeded" => "usageLimits",
            _ => domain,
        };
        let message = message
            .or(known_message)
            .unwrap_or(default_message)
            .to_string();
        ApiError::drive(code, domain, reason, message).retry_after(retry_after)
    }

    pub fn injected_oauth(
        code: u16,
        reason: Option<&str>,
        message: Option<&str>,
        retry_after: Option<u64>,
    ) -> Self {
        let (error, description) = match code {
            400 => ("invalid_request", "Bad Request"),
            401 => ("invalid_client", "Unauthorized"),
            403 => ("access_denied", "Forbidden"),
            429 => ("rate_limit_exceeded", "Rate Limit Exceeded"),
            503 => ("temporarily_unavailable", "Service Unavailable"),
            _ => ("internal_failure", "Backend Error"),
        };
        ApiError::oauth(
            code,
            reason.unwrap_or(error),
            message.unwrap_or(description),
        )
        .retry_after(retry_after)
    }

    pub fn code(&self) -> u16 {
        match self {
            ApiError::Drive(d) => d.code,
            ApiError::OAuth { code, .. } | ApiError::Page { code, .. } => *code,
        }
    }

    pub fn body(&self) -> Value {
        match self {
            ApiError::Drive(d) => {
                let mut item = json!({
                    "domain": d.domain,
                    "reason": d.reason,
                    "message": d.item_message.as_deref().unwrap_or(&d.message),
                });
                if let Some((kind, name)) = &d.location {
                    item["locationType"] = json!(kind);
                    item["location"] = json!(name);
                }
                let mut err = json!({"code": d.code, "message": d.message, "errors": [item]});
                if let Some(status) = d.status {
                    err["status"] = json!(status);
                }
                json!({ "error": err })
            }
            ApiError::OAuth {
                error, description, ..
            } => json!({"error": error, "error_description": description}),
            ApiError::Page {
                error, description, ..
            } => json!({"error": error, "error_description": description}),
        }
    }
}

fn escape_html(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.code()).unwrap_or(StatusCode::BAD_REQUEST);
        let mut resp = match &self {
            ApiError::Page {
                code,
                error,
                description,
            } => {
                let html = format!(
                    "<!doctype html><html><head><meta charset=\"utf-8\"><title>Error {code}: {e}</title></head>\
                     <body><h1>Access blocked: Authorization Error</h1><p>{d}</p>\
                     <p id=\"error\">Error {code}: {e}</p></body></html>",
                    e = escape_html(error),
                    d = escape_html(description),
                );
                (
                    status,
                    [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
                    html,
                )
                    .into_response()
            }
            _ => json_response(status, &self.body()),
        };
        match &self {
            ApiError::Drive(d) => {
                if d.www_authenticate {
                    resp.headers_mut().insert(
                        header::WWW_AUTHENTICATE,
                        HeaderValue::from_static(
                            "Bearer realm=\"https://accounts.google.com/\", error=\"invalid_token\"",
                        ),
                    );
                }
                if let Some(secs) = d.retry_after {
                    resp.headers_mut()
                        .insert(header::RETRY_AFTER, HeaderValue::from(secs));
                }
            }
            ApiError::OAuth {
                retry_after: Some(secs),
                ..
            } => {
                resp.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(*secs));
            }
            _ => {}
        }
        resp
    }
}

/// A JSON response with Google's content type.
pub fn json_response(status: StatusCode, value: &Value) -> Response {
    let body = serde_json::to_vec_pretty(value).unwrap_or_default();
    (
        status,
        [(header::CONTENT_TYPE, "application/json; charset=UTF-8")],
        body,
    )
        .into_response()
}
