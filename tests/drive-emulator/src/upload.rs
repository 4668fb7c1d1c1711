//! The upload endpoints (`/upload/drive/v3/files`): `uploadType=media`, `multipart` and
//! `resumable` (session initiation, chunked PUTs with `Content-Range`, status queries, `308 Resume
//! Incomplete`), plus the injected connection drops and short stores.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt;
use serde_json::Value;

use crate::drive::{
    self, apply_patch, create_file, json_body, lookup, parse_init, render, replace_content,
};
use crate::errors::{json_response, ApiError, ApiResult};
use crate::fields;
use crate::oauth::{authenticate, Ctx};
use crate::state::*;
use crate::util::{encode_query, header_str, origin, query_map, read_body};

/// Marker put on a response to make the connection close without sending it.
#[derive(Clone, Copy, Debug)]
pub struct DropConnection;

const CHUNK_UNIT: u64 = 256 * 1024;

/// `POST /upload/drive/v3/files`
pub async fn post(State(app): State<Arc<App>>, req: Request) -> ApiResult<Response> {
    start(app, None, req).await
}

/// `PATCH /upload/drive/v3/files/{id}`
pub async fn patch(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    req: Request,
) -> ApiResult<Response> {
    start(app, Some(id), req).await
}

/// `PUT /upload/drive/v3/files[/{id}]?upload_id=...`
pub async fn put(State(app): State<Arc<App>>, req: Request) -> ApiResult<Response> {
    chunk(app, req).await
}

pub async fn put_id(
    State(app): State<Arc<App>>,
    Path(_id): Path<String>,
    req: Request,
) -> ApiResult<Response> {
    chunk(app, req).await
}

async fn start(app: Arc<App>, target: Option<String>, req: Request) -> ApiResult<Response> {
    let q = query_map(req.uri());
    if q.contains_key("upload_id") {
        return chunk(app, req).await;
    }
    let ctx = {
        let inner = app.lock();
        authenticate(&inner, req.headers(), &q)?
    };
    let fields = q.get("fields").cloned();
    fields::Mask::parse(
        fields.as_deref().unwrap_or(fields::DEFAULT_FILE),
        fields::FILE,
    )?;
    match q.get("uploadType").map(String::as_str) {
        Some("resumable") => initiate(app, ctx, target, q, req).await,
        Some("multipart") => {
            let ct = header_str(req.headers(), "content-type")
                .unwrap_or("")
                .to_string();
            let body = read_body(req.into_body(), app.config.max_upload_body_bytes).await?;
            let (meta, media, media_type) = parse_multipart(&ct, &body)?;
            store(
                &app,
                &ctx,
                target,
                &meta,
                media,
                media_type.as_deref(),
                fields.as_deref(),
            )
        }
        Some("media") => {
            let ct = header_str(req.headers(), "content-type").map(str::to_string);
            let body = read_body(req.into_body(), app.config.max_upload_body_bytes).await?;
            store(
                &app,
                &ctx,
                target,
                &serde_json::json!({}),
                body,
                ct.as_deref(),
                fields.as_deref(),
            )
        }
        _ => Err(ApiError::invalid_value("uploadType")),
    }
}

/// Create (or update) a file in one request.
fn store(
    app: &App,
    ctx: &Ctx,
    target: Option<String>,
    meta: &Value,
    media: Bytes,
    media_type: Option<&str>,
    fields: Option<&str>,
) -> ApiResult<Response> {
    let mut inner = app.lock();
    let id = match target {
        None => {
            let init = parse_init(&mut inner, ctx, meta)?;
            create_file(app, &mut inner, &ctx.client_id, &init, media, media_type)?
        }
        Some(t) => {
            let real = lookup(&mut inner, ctx, &t)?;
            let q = HashMap::new();
            apply_patch(&mut inner, ctx, &real, meta, &q)?;
            replace_content(app, &mut inner, &real, media, media_type)?;
            app.save(&inner);
            real
        }
    };
    let v = render(app, &inner, &ctx.client_id, &id, fields)?;
    Ok(json_response(StatusCode::OK, &v))
}

/// Split a `multipart/related` body into (metadata JSON, media, media Content-Type).
fn parse_multipart(content_type: &str, body: &[u8]) -> ApiResult<(Value, Bytes, Option<String>)> {
    let bad = |m: &str| ApiError::bad_request(m.to_string());
    let base = crate::util::mime_base(content_type);
    if !base.starts_with("multipart/") {
        return Err(bad(
            "Multipart uploads need a multipart/related Content-Type.",
        ));
    }
    let boundary = content_type
        .split(';')
        .filter_map(|p| p.trim().strip_prefix("boundary="))
        .next()
        .map(|b| b.trim_matches('"').to_string())
        .ok_or_else(|| bad("Missing multipart boundary."))?;
    let delim = format!("--{boundary}").into_bytes();
    let find = |from: usize| -> Option<usize> {
        body.get(from..)?
            .windows(delim.len())
            .position(|w| w == delim.as_slice())
            .map(|p| p + from)
    };
    let mut parts: Vec<(String, &[u8])> = vec![];
    let mut pos = find(0).ok_or_else(|| bad("Malformed multipart body."))?;
    loop {
        let after = pos + delim.len();
        if body.get(after..after + 2) == Some(b"--") {
            break;
        }
        let start = after
            + if body.get(after..after + 2) == Some(b"\r\n") {
                2
            } else {
                1
            };
        let next = find(start).ok_or_else(|| bad("Malformed multipart body."))?;
        let mut end = next;
        if end >= 2 && &body[end - 2..end] == b"\r\n" {
            end -= 2;
        } else if end >= 1 && body[end - 1] == b'\n' {
            end -= 1;
        }
        let part = body
            .get(start..end)
            .ok_or_else(|| bad("Malformed multipart body."))?;
        let (head, content) = match part.windows(4).position(|w| w == b"\r\n\r\n") {
            Some(i) => (&part[..i], &part[i + 4..]),
            None => match part.windows(2).position(|w| w == b"\n\n") {
                Some(i) => (&part[..i], &part[i + 2..]),
                None if part.starts_with(b"\r\n") => (&part[..0], &part[2..]),
                None => return Err(bad("Malformed multipart part.")),
            },
        };
        let head = String::from_utf8_lossy(head);
        let ctype = head
            .lines()
            .filter_map(|l| l.split_once(':'))
            .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-type"))
            .map(|(_, v)| v.trim().to_string())
            .unwrap_or_default();
        parts.push((ctype, content));
        pos = next;
    }
    if parts.len() != 2 {
        return Err(bad(
            "A multipart upload must have exactly two parts: metadata and media.",
        ));
    }
    let meta = json_body(parts[0].1)?;
    let media_type = Some(parts[1].0.clone()).filter(|s| !s.is_empty());
    Ok((meta, Bytes::copy_from_slice(parts[1].1), media_type))
}

async fn initiate(
    app: Arc<App>,
    ctx: Ctx,
    target: Option<String>,
    q: HashMap<String, String>,
    req: Request,
) -> ApiResult<Response> {
    let headers = req.headers().clone();
    let body = read_body(req.into_body(), drive::METADATA_LIMIT).await?;
    let meta = json_body(&body)?;
    let declared = match header_str(&headers, "x-upload-content-length") {
        None => None,
        Some(s) => Some(
            s.trim()
                .parse::<u64>()
                .map_err(|_| ApiError::bad_request("Invalid X-Upload-Content-Length header."))?,
        ),
    };
    let mut inner = app.lock();
    let (init, patch, replaced) = match &target {
        None => (parse_init(&mut inner, &ctx, &meta)?, None, 0),
        Some(t) => {
            let real = lookup(&mut inner, &ctx, t)?;
            let old = inner.p.files[&real].size.unwrap_or(0);
            (FileInit::default(), Some(meta.clone()), old)
        }
    };
    let target = match target {
        Some(t) => Some(lookup(&mut inner, &ctx, &t)?),
        None => None,
    };
    if let Some(n) = declared {
        if inner.usage().saturating_sub(replaced).saturating_add(n) > inner.p.quota_limit {
            return Err(ApiError::storage_quota_exceeded());
        }
    }
    let now = inner.now_ms();
    let id = new_upload_id();
    inner.p.sessions.insert(
        id.clone(),
        UploadSession {
            id: id.clone(),
            client_id: ctx.client_id.clone(),
            scopes: ctx.scopes.clone(),
            target: target.clone(),
            init,
            patch,
            content_type: header_str(&headers, "x-upload-content-type").map(str::to_string),
            declared_total: declared,
            created_ms: now,
            expires_ms: now + app.config.session_lifetime_secs as i64 * 1000,
            fields: q.get("fields").cloned(),
            completed: None,
            data: vec![],
        },
    );
    app.save(&inner);
    let mut pairs: Vec<(&str, &str)> = vec![("uploadType", "resumable")];
    let mut rest: Vec<(&String, &String)> = q
        .iter()
        .filter(|(k, _)| *k != "uploadType" && *k != "upload_id" && *k != "access_token")
        .collect();
    rest.sort();
    pairs.extend(rest.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    pairs.push(("upload_id", &id));
    let path = match &target {
        Some(t) => format!("/upload/drive/v3/files/{t}"),
        None => "/upload/drive/v3/files".to_string(),
    };
    let location = format!("{}{path}?{}", origin(&headers, &app), encode_query(&pairs));
    Ok((
        StatusCode::OK,
        [
            (header::LOCATION, location),
            (header::HeaderName::from_static("x-guploader-uploadid"), id),
        ],
    )
        .into_response())
}

#[derive(Debug, Clone, Copy)]
enum Range {
    /// No Content-Range: the body is the whole file.
    Whole,
    /// `bytes */T` or `bytes */*`: a status query.
    Query(Option<u64>),
    /// `bytes a-b/T` or `bytes a-b/*`.
    Data(u64, u64, Option<u64>),
}

fn parse_range(headers: &HeaderMap) -> ApiResult<Range> {
    let Some(h) = header_str(headers, "content-range") else {
        return Ok(Range::Whole);
    };
    let bad = || ApiError::bad_request(format!("Failed to parse Content-Range header: {h}"));
    let rest = h.trim().strip_prefix("bytes ").ok_or_else(bad)?;
    let (span, total) = rest.split_once('/').ok_or_else(bad)?;
    let total = match total.trim() {
        "*" => None,
        t => Some(t.parse::<u64>().map_err(|_| bad())?),
    };
    if span.trim() == "*" {
        return Ok(Range::Query(total));
    }
    let (a, b) = span.split_once('-').ok_or_else(bad)?;
    let a = a.trim().parse::<u64>().map_err(|_| bad())?;
    let b = b.trim().parse::<u64>().map_err(|_| bad())?;
    if b < a {
        return Err(bad());
    }
    Ok(Range::Data(a, b, total))
}

fn resume_incomplete(id: &str, received: u64) -> Response {
    let mut resp = Response::new(Body::empty());
    *resp.status_mut() = StatusCode::PERMANENT_REDIRECT;
    resp.extensions_mut()
        .insert(hyper::ext::ReasonPhrase::from_static(b"Resume Incomplete"));
    let h = resp.headers_mut();
    if received > 0 {
        h.insert(
            header::RANGE,
            HeaderValue::from_str(&format!("bytes=0-{}", received - 1)).expect("ascii"),
        );
    }
    if let Ok(v) = HeaderValue::from_str(id) {
        h.insert("x-guploader-uploadid", v);
    }
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(0));
    resp
}

fn session_not_found() -> ApiError {
    ApiError::drive(
        404,
        "global",
        "notFound",
        "Upload session not found or expired. Start a new upload.",
    )
}

async fn chunk(app: Arc<App>, req: Request) -> ApiResult<Response> {
    let q = query_map(req.uri());
    let id = q.get("upload_id").cloned().unwrap_or_default();
    let range = parse_range(req.headers());
    let drop = match range {
        Ok(Range::Data(..) | Range::Whole) => {
            let mut inner = app.lock();
            let now = inner.now_ms();
            let live = inner
                .p
                .sessions
                .get(&id)
                .is_some_and(|s| s.completed.is_none() && s.expires_ms > now);
            let spec = if live {
                inner.rt.drops.first_mut().map(|d| {
                    d.count = d.count.saturating_sub(1);
                    d.clone()
                })
            } else {
                None
            };
            inner.rt.drops.retain(|d| d.count > 0);
            spec
        }
        _ => None,
    };
    if let Some(d) = drop {
        let mut body = req.into_body();
        let mut got: Vec<u8> = vec![];
        while (got.len() as u64) < d.after_bytes {
            match body.frame().await {
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        got.extend_from_slice(&data);
                    }
                }
                _ => break,
            }
        }
        got.truncate(d.after_bytes as usize);
        let mut inner = app.lock();
        inner.rt.upload_bytes_received += got.len() as u64;
        inner.rt.connections_dropped += 1;
        if d.store_partial && !got.is_empty() {
            if let Ok(Range::Data(a, _, total)) = range {
                // Keep what arrived as if it had been a chunk of that length.
                let end = a + got.len() as u64 - 1;
                let _ = process(
                    &app,
                    &mut inner,
                    &id,
                    Range::Data(a, end, total),
                    &got,
                    true,
                );
            }
        }
        let mut resp = Response::new(Body::empty());
        resp.extensions_mut().insert(DropConnection);
        return Ok(resp);
    }
    // Read the whole body before answering anything, so errors reach the client intact.
    let body = read_body(req.into_body(), app.config.max_upload_body_bytes).await?;
    let mut inner = app.lock();
    inner.rt.upload_bytes_received += body.len() as u64;
    let now = inner.now_ms();
    match inner.p.sessions.get(&id) {
        None => return Err(session_not_found()),
        Some(s) if s.completed.is_none() && s.expires_ms <= now => {
            inner.p.sessions.remove(&id);
            app.remove_upload(&id);
            app.save(&inner);
            return Err(session_not_found());
        }
        Some(_) => {}
    }
    let range = range?;
    process(&app, &mut inner, &id, range, &body, false)
}

/// Apply one PUT to a session; `partial` marks bytes salvaged from a dropped connection.
fn process(
    app: &App,
    inner: &mut Inner,
    id: &str,
    range: Range,
    body: &[u8],
    partial: bool,
) -> ApiResult<Response> {
    let s = inner.p.sessions.get(id).ok_or_else(session_not_found)?;
    if let Some(file_id) = s.completed.clone() {
        let fields = s.fields.clone();
        let client = s.client_id.clone();
        let v = render(app, inner, &client, &file_id, fields.as_deref())
            .map_err(|_| session_not_found())?;
        return Ok(json_response(StatusCode::OK, &v));
    }
    let received = s.data.len() as u64;
    let range = match range {
        Range::Whole if body.is_empty() => Range::Query(Some(0)),
        Range::Whole => Range::Data(0, body.len() as u64 - 1, Some(body.len() as u64)),
        r => r,
    };
    let check_total = |declared: Option<u64>, t: u64| -> ApiResult<()> {
        match declared {
            Some(d) if d != t => Err(ApiError::bad_request(format!(
                "The total size in Content-Range ({t}) differs from the upload's declared size ({d})."
            ))),
            _ => Ok(()),
        }
    };
    match range {
        Range::Whole => unreachable!("mapped above"),
        Range::Query(total) => {
            if let Some(t) = total {
                check_total(s.declared_total, t)?;
                if t == received {
                    return finalize(app, inner, id);
                }
                if t < received {
                    return Err(ApiError::bad_request(format!(
                        "The total size {t} is smaller than the {received} bytes already received."
                    )));
                }
            }
            Ok(resume_incomplete(id, received))
        }
        Range::Data(a, b, total) => {
            let len = b - a + 1;
            if !partial && body.len() as u64 != len {
                return Err(ApiError::bad_request(format!(
                    "The Content-Range header ({a}-{b}) does not match the {} bytes of the request body.",
                    body.len()
                )));
            }
            if let Some(t) = total {
                if b >= t {
                    return Err(ApiError::bad_request(format!(
                        "The Content-Range end {b} is past the total size {t}."
                    )));
                }
                check_total(s.declared_total, t)?;
            }
            if a > received {
                return Err(ApiError::bad_request(format!(
                    "Invalid request. According to the Content-Range header, the upload offset is {a} byte(s), which exceeds already uploaded size of {received} byte(s)."
                )));
            }
            let last = total == Some(b + 1);
            if !partial && !last && len % CHUNK_UNIT != 0 {
                return Err(ApiError::bad_request(format!(
                    "Invalid request. The number of bytes uploaded is required to be a multiple of 262144 bytes, except for the final request. The received request contained {len} bytes, which does not meet this requirement."
                )));
            }
            let skip = (received - a) as usize;
            let mut fresh: &[u8] = body.get(skip.min(body.len())..).unwrap_or(&[]);
            if !partial {
                if let Some(ss) = inner.rt.short_stores.first_mut() {
                    ss.count = ss.count.saturating_sub(1);
                    let keep = (ss.keep_bytes as usize).min(fresh.len());
                    fresh = &fresh[..keep];
                    inner.rt.short_stores.retain(|s| s.count > 0);
                }
            }
            let s = &inner.p.sessions[id];
            let replaced = s
                .target
                .as_ref()
                .and_then(|t| inner.p.files.get(t))
                .and_then(|f| f.size)
                .unwrap_or(0);
            let after = received + fresh.len() as u64;
            if inner.usage().saturating_sub(replaced).saturating_add(after) > inner.p.quota_limit {
                return Err(ApiError::storage_quota_exceeded());
            }
            app.append_upload(id, fresh);
            let s = inner.p.sessions.get_mut(id).expect("checked");
            s.data.extend_from_slice(fresh);
            if let Some(t) = total {
                s.declared_total = Some(t);
            }
            let done = s.declared_total == Some(after);
            if done && !partial {
                return finalize(app, inner, id);
            }
            app.save(inner);
            Ok(resume_incomplete(id, after))
        }
    }
}

fn finalize(app: &App, inner: &mut Inner, id: &str) -> ApiResult<Response> {
    let s = inner.p.sessions.get_mut(id).ok_or_else(session_not_found)?;
    let data = Bytes::from(std::mem::take(&mut s.data));
    let s = s.clone();
    let ctx = Ctx {
        client_id: s.client_id.clone(),
        scopes: s.scopes.clone(),
        token: String::new(),
    };
    let result = match &s.target {
        None => create_file(
            app,
            inner,
            &s.client_id,
            &s.init,
            data.clone(),
            s.content_type.as_deref(),
        ),
        Some(t) => {
            if !inner.p.files.contains_key(t) {
                Err(ApiError::not_found(t))
            } else {
                let q = HashMap::new();
                let patch = s.patch.clone().unwrap_or_else(|| serde_json::json!({}));
                apply_patch(inner, &ctx, t, &patch, &q)
                    .and_then(|_| {
                        replace_content(app, inner, t, data.clone(), s.content_type.as_deref())
                    })
                    .map(|_| t.clone())
            }
        }
    };
    let file_id = match result {
        Ok(f) => f,
        Err(e) => {
            if let Some(sess) = inner.p.sessions.get_mut(id) {
                sess.data = data.to_vec();
            }
            return Err(e);
        }
    };
    if let Some(sess) = inner.p.sessions.get_mut(id) {
        sess.completed = Some(file_id.clone());
    }
    app.remove_upload(id);
    app.save(inner);
    let v = render(app, inner, &s.client_id, &file_id, s.fields.as_deref())?;
    Ok(json_response(StatusCode::OK, &v))
}
