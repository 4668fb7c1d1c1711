//! Google's OAuth 2.0 for installed apps: the authorization endpoint with its consent page,
//! the token endpoint (authorization_code with PKCE, refresh_token), revocation, userinfo,
//! tokeninfo; and the bearer-token check the Drive endpoints use.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::errors::{json_response, ApiError, ApiResult};
use crate::state::*;
use crate::util::{encode_query, form_map, header_str, query_map, read_body};

/// The caller of a Drive request, from its access token.
#[derive(Debug, Clone)]
pub struct Ctx {
    pub client_id: String,
    pub scopes: Vec<String>,
    pub token: String,
}

impl Ctx {
    pub fn has(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s == scope)
    }
    /// May see every file of My Drive.
    pub fn full_drive(&self) -> bool {
        self.has(SCOPE_DRIVE)
    }
    /// May use the `drive` space at all (full drive or drive.file).
    pub fn drive_space(&self) -> bool {
        self.has(SCOPE_DRIVE) || self.has(SCOPE_FILE)
    }
    pub fn appdata(&self) -> bool {
        self.has(SCOPE_APPDATA) || self.has(SCOPE_DRIVE)
    }
}

/// Check `Authorization: Bearer` (or `access_token=`) against live tokens.
pub fn authenticate(
    inner: &Inner,
    headers: &HeaderMap,
    query: &HashMap<String, String>,
) -> ApiResult<Ctx> {
    let token = header_str(headers, header::AUTHORIZATION.as_str())
        .and_then(|h| {
            let (scheme, rest) = h.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
        })
        .map(str::to_string)
        .or_else(|| query.get("access_token").cloned())
        .ok_or_else(ApiError::unauthenticated)?;
    let at = inner
        .p
        .access_tokens
        .get(&token)
        .ok_or_else(ApiError::unauthenticated)?;
    if at.expires_ms <= inner.now_ms() {
        return Err(ApiError::unauthenticated());
    }
    match inner.p.grants.get(&at.grant) {
        Some(g) if !g.revoked => {}
        _ => return Err(ApiError::unauthenticated()),
    }
    Ok(Ctx {
        client_id: at.client_id.clone(),
        scopes: at.scopes.clone(),
        token,
    })
}

/// Known scopes, with Google's normalisation of the short names.
pub fn normalise_scope(s: &str) -> Option<&'static str> {
    Some(match s {
        "openid" => SCOPE_OPENID,
        "email" | "https://www.googleapis.com/auth/userinfo.email" => SCOPE_EMAIL,
        "profile" | "https://www.googleapis.com/auth/userinfo.profile" => SCOPE_PROFILE,
        "https://www.googleapis.com/auth/drive.appdata" => SCOPE_APPDATA,
        "https://www.googleapis.com/auth/drive.file" => SCOPE_FILE,
        "https://www.googleapis.com/auth/drive" => SCOPE_DRIVE,
        _ => return None,
    })
}

fn client_known(app: &App, inner: &Inner, client_id: &str) -> bool {
    app.config.any_client
        || app.config.clients.iter().any(|(id, _)| id == client_id)
        || inner.p.bound_secrets.contains_key(client_id)
}

/// Loopback redirect URIs as Google accepts them for desktop clients (any port, any path).
fn loopback_ok(uri: &str) -> bool {
    let Some(rest) = uri.strip_prefix("http://") else {
        return false;
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = if let Some(h) = authority.strip_prefix('[') {
        h.split(']').next().unwrap_or("")
    } else {
        authority.split(':').next().unwrap_or("")
    };
    matches!(host, "127.0.0.1" | "localhost" | "::1")
}

fn valid_pkce_string(s: &str) -> bool {
    (43..=128).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
}

fn redirect_with(uri: &str, params: &[(&str, &str)]) -> Response {
    let sep = if uri.contains('?') { '&' } else { '?' };
    let location = format!("{uri}{sep}{}", encode_query(params));
    (StatusCode::FOUND, [(header::LOCATION, location)]).into_response()
}

fn issue_code(inner: &mut Inner, app: &App, req: &PendingConsent) -> Response {
    // Granular consent: the user may untick some of the scopes asked for; the code (and so the
    // token response's `scope`) carries only what was granted.
    let mut req = req.clone();
    if let Some(only) = inner.rt.grant_only.take() {
        req.scopes.retain(|s| only.contains(s));
    }
    let req = &req;
    let code = new_token("4/0Ab", 60);
    let expires_ms = inner.now_ms() + app.config.code_lifetime_secs as i64 * 1000;
    inner.rt.codes.insert(
        code.clone(),
        AuthCode {
            client_id: req.client_id.clone(),
            redirect_uri: req.redirect_uri.clone(),
            scopes: req.scopes.clone(),
            challenge: req.challenge.clone(),
            expires_ms,
            used: false,
        },
    );
    let scope = req.scopes.join(" ");
    let mut params: Vec<(&str, &str)> = vec![];
    if let Some(state) = &req.state {
        params.push(("state", state));
    }
    params.extend([
        ("code", code.as_str()),
        ("scope", scope.as_str()),
        ("authuser", "0"),
        ("prompt", "consent"),
    ]);
    redirect_with(&req.redirect_uri, &params)
}

fn deny(req: &PendingConsent) -> Response {
    let mut params = vec![("error", "access_denied")];
    if let Some(state) = &req.state {
        params.push(("state", state));
    }
    redirect_with(&req.redirect_uri, &params)
}

/// `GET /o/oauth2/v2/auth`
pub async fn authorize(State(app): State<Arc<App>>, req: Request) -> ApiResult<Response> {
    let q = query_map(req.uri());
    let mut inner = app.lock();
    let client_id = q
        .get("client_id")
        .filter(|s| !s.is_empty())
        .ok_or_else(|| {
            ApiError::page(
                400,
                "invalid_request",
                "Missing required parameter: client_id",
            )
        })?;
    if !client_known(&app, &inner, client_id) {
        return Err(ApiError::page(
            401,
            "invalid_client",
            "The OAuth client was not found.",
        ));
    }
    let redirect_uri = q
        .get("redirect_uri")
        .filter(|s| !s.is_empty())
        .ok_or_else(|| {
            ApiError::page(
                400,
                "invalid_request",
                "Missing required parameter: redirect_uri",
            )
        })?;
    if redirect_uri.starts_with("urn:ietf:wg:oauth:2.0:oob") {
        return Err(ApiError::page(
            400,
            "invalid_request",
            "The out-of-band (OOB) flow has been blocked in order to keep users secure.",
        ));
    }
    if !loopback_ok(redirect_uri) {
        return Err(ApiError::page(
            400,
            "redirect_uri_mismatch",
            format!(
                "You can't sign in to this app because it doesn't comply with Google's OAuth 2.0 policy. redirect_uri={redirect_uri}"
            ),
        ));
    }
    match q.get("response_type").map(String::as_str) {
        Some("code") => {}
        None => {
            return Err(ApiError::page(
                400,
                "invalid_request",
                "Required parameter is missing: response_type",
            ))
        }
        Some(other) => {
            return Err(ApiError::page(
                400,
                "unsupported_response_type",
                format!("Invalid response_type: {other}"),
            ))
        }
    }
    let raw_scope = q
        .get("scope")
        .filter(|s| !s.trim().is_empty())
        .ok_or_else(|| {
            ApiError::page(400, "invalid_request", "Missing required parameter: scope")
        })?;
    let mut scopes: Vec<String> = vec![];
    let mut bad = vec![];
    for s in raw_scope.split_whitespace() {
        match normalise_scope(s) {
            Some(n) if !scopes.iter().any(|x| x == n) => scopes.push(n.to_string()),
            Some(_) => {}
            None => bad.push(s.to_string()),
        }
    }
    if !bad.is_empty() {
        return Err(ApiError::page(
            400,
            "invalid_scope",
            format!(
                "Some requested scopes were invalid. {{invalid=[{}]}}",
                bad.join(", ")
            ),
        ));
    }
    let challenge = match q.get("code_challenge") {
        None => None,
        Some(ch) => {
            let method = q
                .get("code_challenge_method")
                .cloned()
                .unwrap_or_else(|| "plain".into());
            if method != "S256" && method != "plain" {
                return Err(ApiError::page(
                    400,
                    "invalid_request",
                    format!("Invalid code_challenge_method: {method}"),
                ));
            }
            if !valid_pkce_string(ch) {
                return Err(ApiError::page(
                    400,
                    "invalid_request",
                    "Invalid code_challenge.",
                ));
            }
            Some((method, ch.clone()))
        }
    };
    let pending = PendingConsent {
        client_id: client_id.clone(),
        redirect_uri: redirect_uri.clone(),
        scopes,
        state: q.get("state").cloned(),
        challenge,
    };
    if inner.rt.deny_next_consent {
        inner.rt.deny_next_consent = false;
        return Ok(deny(&pending));
    }
    if app.config.auto_consent {
        return Ok(issue_code(&mut inner, &app, &pending));
    }
    let id = new_token("", 24);
    let page = consent_page(&app, &id, &pending);
    inner.rt.consents.insert(id, pending);
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        page,
    )
        .into_response())
}

fn consent_page(app: &App, id: &str, req: &PendingConsent) -> String {
    let scopes: String = req
        .scopes
        .iter()
        .map(|s| format!("<li><code>{s}</code></li>"))
        .collect();
    format!(
        r#"<!doctype html>
<html><head><meta charset="utf-8"><title>Sign in - Google Accounts (drive-emulator)</title>
<style>body{{font-family:sans-serif;max-width:36em;margin:3em auto}}button{{margin-right:1em;padding:.5em 1.5em}}</style>
</head><body>
<h1>Drive emulator</h1>
<p><b>{client}</b> wants to access your Google Account <b>{email}</b> ({name}):</p>
<ul>{scopes}</ul>
<form method="post" action="/o/oauth2/v2/consent">
<input type="hidden" name="consent_id" value="{id}">
<button type="submit" name="decision" value="deny" id="deny">Deny</button>
<button type="submit" name="decision" value="allow" id="allow">Allow</button>
</form>
</body></html>"#,
        client = req.client_id.replace('<', "&lt;"),
        email = app.config.user_email,
        name = app.config.user_name,
    )
}

/// `POST /o/oauth2/v2/consent` (form: consent_id, decision=allow|deny)
pub async fn consent(State(app): State<Arc<App>>, req: Request) -> ApiResult<Response> {
    let body = read_body(req.into_body(), 64 * 1024).await?;
    let form = form_map(&body);
    let mut inner = app.lock();
    let pending = form
        .get("consent_id")
        .and_then(|id| inner.rt.consents.remove(id))
        .ok_or_else(|| {
            ApiError::page(
                400,
                "invalid_request",
                "This consent request is unknown or was already answered.",
            )
        })?;
    let allow = form.get("decision").map(String::as_str) == Some("allow");
    if !allow || inner.rt.deny_next_consent {
        inner.rt.deny_next_consent = false;
        return Ok(deny(&pending));
    }
    Ok(issue_code(&mut inner, &app, &pending))
}

fn token_response(status: StatusCode, v: &Value) -> Response {
    let mut resp = json_response(status, v);
    let h = resp.headers_mut();
    h.insert(
        header::CACHE_CONTROL,
        "no-cache, no-store, max-age=0, must-revalidate"
            .parse()
            .unwrap(),
    );
    h.insert(header::PRAGMA, "no-cache".parse().unwrap());
    resp
}

/// Parse a form (or JSON) body into a string map.
async fn body_params(req: Request) -> ApiResult<(HeaderMap, HashMap<String, String>)> {
    let (parts, body) = req.into_parts();
    let bytes = read_body(body, 64 * 1024).await?;
    let ct = header_str(&parts.headers, "content-type").unwrap_or("");
    let mut map = if ct.starts_with("application/json") {
        match serde_json::from_slice::<Value>(&bytes) {
            Ok(Value::Object(o)) => o
                .into_iter()
                .filter_map(|(k, v)| v.as_str().map(|s| (k, s.to_string())))
                .collect(),
            _ => {
                return Err(ApiError::oauth(
                    400,
                    "invalid_request",
                    "Invalid JSON payload.",
                ))
            }
        }
    } else {
        form_map(&bytes)
    };
    for (k, v) in query_map(&parts.uri) {
        map.entry(k).or_insert(v);
    }
    Ok((parts.headers, map))
}

/// Client credentials from HTTP Basic or from the body.
fn client_credentials(
    headers: &HeaderMap,
    params: &HashMap<String, String>,
) -> (Option<String>, Option<String>) {
    if let Some(basic) = header_str(headers, "authorization").and_then(|h| h.strip_prefix("Basic "))
    {
        if let Ok(raw) = STANDARD.decode(basic.trim()) {
            let raw = String::from_utf8_lossy(&raw).to_string();
            if let Some((id, secret)) = raw.split_once(':') {
                let dec = |s: &str| {
                    form_urlencoded::parse(format!("x={s}").as_bytes())
                        .next()
                        .map(|(_, v)| v.into_owned())
                        .unwrap_or_default()
                };
                return (Some(dec(id)), Some(dec(secret)));
            }
        }
    }
    (
        params.get("client_id").cloned(),
        params.get("client_secret").cloned(),
    )
}

fn check_client(
    app: &App,
    inner: &mut Inner,
    id: Option<String>,
    secret: Option<String>,
) -> ApiResult<String> {
    let id = id.filter(|s| !s.is_empty()).ok_or_else(|| {
        ApiError::oauth(
            400,
            "invalid_request",
            "Could not determine client ID from request.",
        )
    })?;
    if !client_known(app, inner, &id) {
        return Err(ApiError::oauth(
            401,
            "invalid_client",
            "The OAuth client was not found.",
        ));
    }
    let secret = secret
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ApiError::oauth(400, "invalid_request", "client_secret is missing."))?;
    let expected = app
        .config
        .clients
        .iter()
        .find(|(cid, _)| *cid == id)
        .map(|(_, s)| s.clone())
        .or_else(|| inner.p.bound_secrets.get(&id).cloned());
    match expected {
        Some(e) if e == secret => Ok(id),
        Some(_) => Err(ApiError::oauth(401, "invalid_client", "Unauthorized")),
        None => {
            inner.p.bound_secrets.insert(id.clone(), secret);
            Ok(id)
        }
    }
}

fn id_token(app: &App, client_id: &str, now_ms: i64, lifetime: u64) -> String {
    let header = json!({"alg": "RS256", "kid": "drive-emulator-unsigned", "typ": "JWT"});
    let claims = json!({
        "iss": "https://accounts.google.com",
        "azp": client_id,
        "aud": client_id,
        "sub": subject(app),
        "email": app.config.user_email,
        "email_verified": true,
        "name": app.config.user_name,
        "iat": now_ms / 1000,
        "exp": now_ms / 1000 + lifetime as i64,
    });
    let enc = |v: &Value| URL_SAFE_NO_PAD.encode(v.to_string());
    format!(
        "{}.{}.{}",
        enc(&header),
        enc(&claims),
        URL_SAFE_NO_PAD.encode(b"unsigned-emulator-token")
    )
}

/// A stable numeric `sub` derived from the email.
pub fn subject(app: &App) -> String {
    let digest = Sha256::digest(app.config.user_email.as_bytes());
    let n = u64::from_be_bytes(digest[..8].try_into().unwrap_or([0; 8]));
    format!("1{:020}", n % 100_000_000_000_000_000_000u128 as u64)
}

fn mint_access(
    app: &App,
    inner: &mut Inner,
    grant: &str,
    client_id: &str,
    scopes: &[String],
) -> Value {
    let token = new_token("ya29.a0Emu", 120);
    let lifetime = app.config.token_lifetime_secs;
    let now = inner.now_ms();
    inner.p.access_tokens.insert(
        token.clone(),
        AccessToken {
            grant: grant.to_string(),
            client_id: client_id.to_string(),
            scopes: scopes.to_vec(),
            expires_ms: now + lifetime as i64 * 1000,
        },
    );
    let mut v = json!({
        "access_token": token,
        "expires_in": lifetime,
        "scope": scopes.join(" "),
        "token_type": "Bearer",
    });
    if scopes.iter().any(|s| s == SCOPE_OPENID) {
        v["id_token"] = json!(id_token(app, client_id, now, lifetime));
    }
    v
}

/// `POST /token`
pub async fn token(State(app): State<Arc<App>>, req: Request) -> ApiResult<Response> {
    let (headers, params) = body_params(req).await?;
    let mut inner = app.lock();
    let grant_type = params.get("grant_type").cloned().unwrap_or_default();
    if grant_type != "authorization_code" && grant_type != "refresh_token" {
        return Err(ApiError::oauth(
            400,
            "unsupported_grant_type",
            format!("Invalid grant_type: {grant_type}"),
        ));
    }
    let (id, secret) = client_credentials(&headers, &params);
    let client_id = check_client(&app, &mut inner, id, secret)?;
    let response = if grant_type == "authorization_code" {
        let code = params
            .get("code")
            .filter(|s| !s.is_empty())
            .ok_or_else(|| {
                ApiError::oauth(400, "invalid_request", "Missing required parameter: code")
            })?;
        let redirect_uri = params
            .get("redirect_uri")
            .ok_or_else(|| {
                ApiError::oauth(400, "invalid_request", "Missing parameter: redirect_uri")
            })?
            .clone();
        let now = inner.now_ms();
        let rec = inner
            .rt
            .codes
            .get_mut(code)
            .ok_or_else(|| ApiError::oauth(400, "invalid_grant", "Malformed auth code."))?;
        if rec.used || rec.expires_ms <= now || rec.client_id != client_id {
            return Err(ApiError::oauth(400, "invalid_grant", "Bad Request"));
        }
        // A code is burnt by any redemption attempt, as on Google.
        rec.used = true;
        let rec = rec.clone();
        if rec.redirect_uri != redirect_uri {
            return Err(ApiError::oauth(400, "redirect_uri_mismatch", "Bad Request"));
        }
        if let Some((method, challenge)) = &rec.challenge {
            let verifier = params
                .get("code_verifier")
                .ok_or_else(|| ApiError::oauth(400, "invalid_grant", "Missing code verifier."))?;
            let computed = if method == "S256" {
                URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
            } else {
                verifier.clone()
            };
            if !valid_pkce_string(verifier) || computed != *challenge {
                return Err(ApiError::oauth(
                    400,
                    "invalid_grant",
                    "Invalid code verifier.",
                ));
            }
        }
        let refresh = new_token("1//0gEmu", 100);
        inner.p.grants.insert(
            refresh.clone(),
            Grant {
                refresh_token: refresh.clone(),
                client_id: client_id.clone(),
                scopes: rec.scopes.clone(),
                created_ms: now,
                revoked: false,
            },
        );
        let mut v = mint_access(&app, &mut inner, &refresh, &client_id, &rec.scopes);
        v["refresh_token"] = json!(refresh);
        v
    } else {
        let refresh = params
            .get("refresh_token")
            .filter(|s| !s.is_empty())
            .ok_or_else(|| {
                ApiError::oauth(
                    400,
                    "invalid_request",
                    "Missing required parameter: refresh_token",
                )
            })?
            .clone();
        let grant = match inner.p.grants.get(&refresh) {
            Some(g) if !g.revoked => g.clone(),
            _ => {
                return Err(ApiError::oauth(
                    400,
                    "invalid_grant",
                    "Token has been expired or revoked.",
                ))
            }
        };
        if grant.client_id != client_id {
            return Err(ApiError::oauth(401, "unauthorized_client", "Unauthorized"));
        }
        let scopes = match params.get("scope") {
            None => grant.scopes.clone(),
            Some(s) => {
                let asked: Vec<String> = s
                    .split_whitespace()
                    .map(|x| normalise_scope(x).unwrap_or(x).to_string())
                    .collect();
                if asked.iter().any(|a| !grant.scopes.contains(a)) {
                    return Err(ApiError::oauth(
                        400,
                        "invalid_scope",
                        "The requested scope is not within the scopes of the grant.",
                    ));
                }
                asked
            }
        };
        mint_access(&app, &mut inner, &refresh, &client_id, &scopes)
    };
    app.save(&inner);
    Ok(token_response(StatusCode::OK, &response))
}

/// `POST /revoke` (form or query `token=`)
pub async fn revoke(State(app): State<Arc<App>>, req: Request) -> ApiResult<Response> {
    let (_, params) = body_params(req).await?;
    let mut inner = app.lock();
    let token = params.get("token").cloned().unwrap_or_default();
    let now = inner.now_ms();
    let grant = if inner.p.grants.get(&token).is_some_and(|g| !g.revoked) {
        Some(token.clone())
    } else {
        inner
            .p
            .access_tokens
            .get(&token)
            .filter(|t| t.expires_ms > now)
            .map(|t| t.grant.clone())
            .filter(|g| inner.p.grants.get(g).is_some_and(|g| !g.revoked))
    };
    let Some(grant) = grant else {
        return Err(ApiError::oauth(
            400,
            "invalid_token",
            "Token expired or revoked",
        ));
    };
    revoke_grant(&mut inner, &grant);
    app.save(&inner);
    Ok(json_response(StatusCode::OK, &json!({})))
}

pub fn revoke_grant(inner: &mut Inner, grant: &str) {
    if let Some(g) = inner.p.grants.get_mut(grant) {
        g.revoked = true;
    }
    inner.p.access_tokens.retain(|_, t| t.grant != grant);
}

fn userinfo_ctx(app: &App, req: &Request) -> ApiResult<Ctx> {
    let inner = app.lock();
    let ctx = authenticate(&inner, req.headers(), &query_map(req.uri()))
        .map_err(|_| ApiError::oauth(401, "invalid_request", "Invalid Credentials"))?;
    Ok(ctx)
}

/// `GET /oauth2/v3/userinfo`
pub async fn userinfo(State(app): State<Arc<App>>, req: Request) -> ApiResult<Response> {
    let ctx = userinfo_ctx(&app, &req)?;
    if !(ctx.has(SCOPE_OPENID) || ctx.has(SCOPE_EMAIL) || ctx.has(SCOPE_PROFILE)) {
        return Err(ApiError::oauth(
            401,
            "invalid_request",
            "Invalid Credentials",
        ));
    }
    let mut v = json!({ "sub": subject(&app) });
    if ctx.has(SCOPE_EMAIL) {
        v["email"] = json!(app.config.user_email);
        v["email_verified"] = json!(true);
    }
    if ctx.has(SCOPE_PROFILE) {
        v["name"] = json!(app.config.user_name);
    }
    Ok(json_response(StatusCode::OK, &v))
}

/// `GET /oauth2/v3/tokeninfo?access_token=...`
pub async fn tokeninfo(State(app): State<Arc<App>>, req: Request) -> ApiResult<Response> {
    let q = query_map(req.uri());
    let inner = app.lock();
    let token = q.get("access_token").cloned().unwrap_or_default();
    let now = inner.now_ms();
    let at = inner
        .p
        .access_tokens
        .get(&token)
        .filter(|t| t.expires_ms > now)
        .ok_or_else(|| ApiError::oauth(400, "invalid_token", "Invalid Value"))?;
    let mut v = json!({
        "azp": at.client_id,
        "aud": at.client_id,
        "sub": subject(&app),
        "scope": at.scopes.join(" "),
        "exp": (at.expires_ms / 1000).to_string(),
        "expires_in": ((at.expires_ms - now) / 1000).to_string(),
        "access_type": "offline",
    });
    if at.scopes.iter().any(|s| s == SCOPE_EMAIL) {
        v["email"] = json!(app.config.user_email);
        v["email_verified"] = json!("true");
    }
    Ok(json_response(StatusCode::OK, &v))
}

/// `GET /.well-known/openid-configuration`, pointing at this emulator.
pub async fn discovery(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    let o = crate::util::origin(&headers, &app);
    json_response(
        StatusCode::OK,
        &json!({
            "issuer": "https://accounts.google.com",
            "authorization_endpoint": format!("{o}/o/oauth2/v2/auth"),
            "token_endpoint": format!("{o}/token"),
            "userinfo_endpoint": format!("{o}/oauth2/v3/userinfo"),
            "revocation_endpoint": format!("{o}/revoke"),
            "response_types_supported": ["code"],
            "scopes_supported": ["openid", "email", "profile"],
            "code_challenge_methods_supported": ["plain", "S256"],
            "grant_types_supported": ["authorization_code", "refresh_token"],
        }),
    )
}
