//! The test-control API under `/_emulator/` (JSON, no auth) and fault injection.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::de::DeserializeOwned;
use serde_json::{json, Value};

use crate::errors::{json_response, ApiError, ApiResult};
use crate::oauth::revoke_grant;
use crate::state::*;
use crate::util::read_body;

/// The routes a fault can target; `upload` covers every `upload_*` route, `*` all of them.
pub const ROUTES: &[&str] = &[
    "*",
    "token",
    "revoke",
    "userinfo",
    "about",
    "list",
    "get",
    "media",
    "create",
    "update",
    "delete",
    "upload",
    "upload_init",
    "upload_chunk",
    "upload_multipart",
    "upload_media",
];

/// Name the route of an API request (None for control and unknown paths).
pub fn classify(method: &str, path: &str, query: &str) -> Option<&'static str> {
    let has = |k: &str| {
        form_urlencoded::parse(query.as_bytes())
            .any(|(n, v)| n == k && (k != "alt" || v == "media"))
    };
    let param = |k: &str| {
        form_urlencoded::parse(query.as_bytes())
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.into_owned())
    };
    Some(match (method, path) {
        ("POST", "/token") | ("POST", "/o/oauth2/token") => "token",
        (_, "/revoke") | (_, "/o/oauth2/revoke") => "revoke",
        (_, "/o/oauth2/v2/auth") | (_, "/o/oauth2/auth") | (_, "/o/oauth2/v2/consent") => {
            "authorize"
        }
        (_, "/oauth2/v3/userinfo") | (_, "/v1/userinfo") => "userinfo",
        (_, "/oauth2/v3/tokeninfo") => "tokeninfo",
        ("GET", "/drive/v3/about") => "about",
        ("GET", "/drive/v3/files") => "list",
        ("POST", "/drive/v3/files") => "create",
        (m, p) if p.starts_with("/drive/v3/files/") => match m {
            "GET" if has("alt") => "media",
            "GET" => "get",
            "PATCH" => "update",
            "DELETE" => "delete",
            _ => return None,
        },
        (m, p) if p.starts_with("/upload/drive/v3/files") => {
            if has("upload_id") || m == "PUT" {
                "upload_chunk"
            } else {
                match param("uploadType").as_deref() {
                    Some("resumable") => "upload_init",
                    Some("multipart") => "upload_multipart",
                    _ => "upload_media",
                }
            }
        }
        _ => return None,
    })
}

fn fault_matches(f: &Fault, route: &str) -> bool {
    match f.route.as_str() {
        "*" => route != "authorize" && route != "tokeninfo",
        "upload" => route.starts_with("upload"),
        r => r == route,
    }
}

/// Count the request and, if a fault is armed for its route, build the injected error.
pub fn before_request(app: &App, route: &str) -> Option<ApiError> {
    let mut inner = app.lock();
    *inner.rt.requests.entry(route.to_string()).or_default() += 1;
    let pos = inner
        .rt
        .faults
        .iter()
        .position(|f| fault_matches(f, route))?;
    let f = &mut inner.rt.faults[pos];
    f.count -= 1;
    let f = f.clone();
    if f.count == 0 {
        inner.rt.faults.remove(pos);
    }
    inner.rt.faults_fired += 1;
    let oauth_route = matches!(route, "token" | "revoke" | "userinfo");
    Some(if oauth_route {
        ApiError::injected_oauth(
            f.status,
            f.reason.as_deref(),
            f.message.as_deref(),
            f.retry_after,
        )
    } else {
        ApiError::injected_drive(
            f.status,
            f.reason.as_deref(),
            f.message.as_deref(),
            f.retry_after,
        )
    })
}

async fn body_json<T: DeserializeOwned>(req: Request) -> ApiResult<T> {
    let bytes = read_body(req.into_body(), 64 * 1024).await?;
    let bytes = if bytes.iter().all(u8::is_ascii_whitespace) {
        axum::body::Bytes::from_static(b"{}")
    } else {
        bytes
    };
    serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::bad_request(format!("Invalid control request: {e}")))
}

fn ok(v: Value) -> ApiResult<Response> {
    Ok(json_response(StatusCode::OK, &v))
}

/// `POST /_emulator/faults`
pub async fn add_fault(State(app): State<Arc<App>>, req: Request) -> ApiResult<Response> {
    let f: Fault = body_json(req).await?;
    if !ROUTES.contains(&f.route.as_str()) {
        return Err(ApiError::bad_request(format!(
            "Unknown route '{}'; one of {ROUTES:?}",
            f.route
        )));
    }
    if !(400..=599).contains(&f.status) || f.count == 0 {
        return Err(ApiError::bad_request(
            "status must be 400..599 and count >= 1",
        ));
    }
    let mut inner = app.lock();
    inner.rt.faults.push(f);
    ok(json!({"faults": inner.rt.faults}))
}

/// `GET /_emulator/faults`
pub async fn list_faults(State(app): State<Arc<App>>) -> ApiResult<Response> {
    ok(json!({"faults": app.lock().rt.faults}))
}

/// `DELETE /_emulator/faults`: disarm every pending fault, drop and short store.
pub async fn clear_faults(State(app): State<Arc<App>>) -> ApiResult<Response> {
    let mut inner = app.lock();
    inner.rt.faults.clear();
    inner.rt.drops.clear();
    inner.rt.short_stores.clear();
    ok(json!({}))
}

/// `POST /_emulator/drop-connection`
pub async fn drop_connection(State(app): State<Arc<App>>, req: Request) -> ApiResult<Response> {
    let d: DropSpec = body_json(req).await?;
    if d.count == 0 {
        return Err(ApiError::bad_request("count must be >= 1"));
    }
    let mut inner = app.lock();
    inner.rt.drops.push(d);
    ok(json!({"drops": inner.rt.drops}))
}

/// `POST /_emulator/short-store`
pub async fn short_store(State(app): State<Arc<App>>, req: Request) -> ApiResult<Response> {
    let s: ShortStore = body_json(req).await?;
    if s.count == 0 {
        return Err(ApiError::bad_request("count must be >= 1"));
    }
    let mut inner = app.lock();
    inner.rt.short_stores.push(s);
    ok(json!({"short_stores": inner.rt.short_stores}))
}

/// `POST /_emulator/expire-tokens`: every access token expires now; refresh tokens stay valid.
pub async fn expire_tokens(State(app): State<Arc<App>>) -> ApiResult<Response> {
    let mut inner = app.lock();
    let now = inner.now_ms();
    let mut n = 0;
    for t in inner.p.access_tokens.values_mut() {
        if t.expires_ms > now {
            t.expires_ms = now;
            n += 1;
        }
    }
    app.save(&inner);
    ok(json!({"expired": n}))
}

/// `POST /_emulator/revoke-all`: revoke every grant (refresh and access tokens).
pub async fn revoke_all(State(app): State<Arc<App>>) -> ApiResult<Response> {
    let mut inner = app.lock();
    let grants: Vec<String> = inner
        .p
        .grants
        .values()
        .filter(|g| !g.revoked)
        .map(|g| g.refresh_token.clone())
        .collect();
    for g in &grants {
        revoke_grant(&mut inner, g);
    }
    app.save(&inner);
    ok(json!({"revoked": grants.len()}))
}

#[derive(serde::Deserialize)]
struct Advance {
    seconds: i64,
}

/// `POST /_emulator/advance-clock {"seconds": N}`
pub async fn advance_clock(State(app): State<Arc<App>>, req: Request) -> ApiResult<Response> {
    let a: Advance = body_json(req).await?;
    let mut inner = app.lock();
    inner.p.clock_offset_ms += a.seconds * 1000;
    app.save(&inner);
    ok(json!({"now": rfc3339(inner.now_ms()), "offset_seconds": inner.p.clock_offset_ms / 1000}))
}

#[derive(serde::Deserialize)]
struct Quota {
    limit: u64,
}

/// `POST /_emulator/quota {"limit": N}`
pub async fn quota(State(app): State<Arc<App>>, req: Request) -> ApiResult<Response> {
    let q: Quota = body_json(req).await?;
    let mut inner = app.lock();
    inner.p.quota_limit = q.limit;
    app.save(&inner);
    ok(json!({"limit": q.limit, "usage": inner.usage()}))
}

/// `POST /_emulator/deny-next-consent`
pub async fn deny_next_consent(State(app): State<Arc<App>>) -> ApiResult<Response> {
    app.lock().rt.deny_next_consent = true;
    ok(json!({}))
}

#[derive(serde::Deserialize)]
struct GrantOnly {
    scopes: Vec<String>,
}

/// `POST /_emulator/grant-only {"scopes": [...]}`: the next consent grants only these of the
/// scopes asked for (Google's granular consent, where the user unticks a permission).
pub async fn grant_only(State(app): State<Arc<App>>, req: Request) -> ApiResult<Response> {
    let g: GrantOnly = body_json(req).await?;
    let mut scopes = vec![];
    for s in &g.scopes {
        match crate::oauth::normalise_scope(s) {
            Some(n) => scopes.push(n.to_string()),
            None => return Err(ApiError::bad_request(format!("Unknown scope '{s}'"))),
        }
    }
    app.lock().rt.grant_only = Some(scopes.clone());
    ok(json!({"grant_only": scopes}))
}

/// `POST /_emulator/reset`
pub async fn reset(State(app): State<Arc<App>>) -> ApiResult<Response> {
    let mut inner = app.lock();
    app.reset(&mut inner);
    ok(json!({}))
}

/// `GET /_emulator/state`
pub async fn state(State(app): State<Arc<App>>) -> ApiResult<Response> {
    let inner = app.lock();
    let now = inner.now_ms();
    let user_files: Vec<&FileRec> = inner.p.files.values().filter(|f| !f.system).collect();
    let files: Vec<Value> = user_files
        .iter()
        .map(|f| {
            json!({
                "id": f.id,
                "name": f.name,
                "mimeType": f.mime_type,
                "space": match f.space { Space::Drive => "drive", Space::AppData => "appDataFolder" },
                "size": f.size,
                "md5Checksum": f.md5,
                "sha256Checksum": f.sha256,
                "trashed": f.trashed,
                "creator": f.creator,
                "appProperties": f.app_properties,
            })
        })
        .collect();
    let sessions = &inner.p.sessions;
    ok(json!({
        "now": rfc3339(now),
        "clock_offset_seconds": inner.p.clock_offset_ms / 1000,
        "files": {
            "count": user_files.len(),
            "folders": user_files.iter().filter(|f| f.is_folder()).count(),
            "bytes": inner.usage(),
            "items": files,
        },
        "quota": {"limit": inner.p.quota_limit, "usage": inner.usage()},
        "grants": {
            "active": inner.p.grants.values().filter(|g| !g.revoked).count(),
            "revoked": inner.p.grants.values().filter(|g| g.revoked).count(),
        },
        "access_tokens": {
            "live": inner.p.access_tokens.values().filter(|t| t.expires_ms > now).count(),
            "expired": inner.p.access_tokens.values().filter(|t| t.expires_ms <= now).count(),
        },
        "sessions": {
            "active": sessions.values().filter(|s| s.completed.is_none() && s.expires_ms > now).count(),
            "completed": sessions.values().filter(|s| s.completed.is_some()).count(),
            "expired": sessions.values().filter(|s| s.completed.is_none() && s.expires_ms <= now).count(),
            "bytes_pending": sessions.values().map(|s| s.data.len()).sum::<usize>(),
        },
        "requests": inner.rt.requests,
        "upload_bytes_received": inner.rt.upload_bytes_received,
        "faults_pending": inner.rt.faults,
        "faults_fired": inner.rt.faults_fired,
        "drops_pending": inner.rt.drops,
        "connections_dropped": inner.rt.connections_dropped,
        "short_stores_pending": inner.rt.short_stores,
        "deny_next_consent": inner.rt.deny_next_consent,
        "grant_only": inner.rt.grant_only,
        "pending_codes": inner.rt.codes.values().filter(|c| !c.used).count(),
    }))
}
