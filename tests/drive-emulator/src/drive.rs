//! Drive v3: about.get, files.list/get/create/update/delete, media download, and the shared
//! machinery for storing files (scope checks, metadata validation, quota, checksums).

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use md5::Md5;
use serde_json::{json, Value};
use sha1::Sha1;
use sha2::{Digest, Sha256};

use crate::errors::{json_response, ApiError, ApiResult};
use crate::fields::{self, select};
use crate::oauth::{authenticate, Ctx};
use crate::query;
use crate::state::*;
use crate::util::{header_str, mime_base, query_map, read_body};

pub const METADATA_LIMIT: usize = 1024 * 1024;

/// May `ctx` see file `f`? 403 when its scopes exclude the file's space, 404 when the file
/// belongs to another app or was not created by this app (drive.file).
pub fn check_access(ctx: &Ctx, f: &FileRec, shown_id: &str) -> ApiResult<()> {
    match f.space {
        Space::AppData => {
            if !ctx.appdata() {
                Err(ApiError::insufficient_scopes_appdata())
            } else if f.creator != ctx.client_id {
                Err(ApiError::not_found(shown_id))
            } else {
                Ok(())
            }
        }
        Space::Drive => {
            if !ctx.drive_space() {
                Err(ApiError::insufficient_permissions())
            } else if ctx.full_drive() || f.system || f.creator == ctx.client_id {
                Ok(())
            } else {
                Err(ApiError::not_found(shown_id))
            }
        }
    }
}

/// Resolve an id (or alias) to a file the caller may access.
pub fn lookup(inner: &mut Inner, ctx: &Ctx, id: &str) -> ApiResult<String> {
    if id == "appDataFolder" && !ctx.appdata() {
        return Err(ApiError::insufficient_scopes_appdata());
    }
    let real = inner.resolve(id, &ctx.client_id);
    let f = inner
        .p
        .files
        .get(&real)
        .ok_or_else(|| ApiError::not_found(id))?;
    check_access(ctx, f, id)?;
    Ok(real)
}

/// The 124-byte limit on key + value of each (app) property.
fn check_property(key: &str, value: &str) -> ApiResult<()> {
    if key.is_empty() {
        return Err(ApiError::bad_request("Property keys must not be empty."));
    }
    if key.len() + value.len() > 124 {
        return Err(ApiError::drive(
            403,
            "global",
            "propertyLengthLimitExceeded",
            "Properties and app properties are limited to 124 bytes in UTF-8 encoding, counting both the key and the value.",
        ));
    }
    Ok(())
}

fn prop_value(v: &Value) -> ApiResult<Option<String>> {
    Ok(match v {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => return Err(ApiError::bad_request("Property values must be strings.")),
    })
}

/// Merge a properties patch into `map`: JSON null deletes a key.
fn merge_props(map: &mut BTreeMap<String, String>, patch: &Value) -> ApiResult<()> {
    let obj = patch
        .as_object()
        .ok_or_else(|| ApiError::bad_request("Properties must be a JSON object."))?;
    for (k, v) in obj {
        match prop_value(v)? {
            None => {
                map.remove(k);
            }
            Some(s) => {
                check_property(k, &s)?;
                map.insert(k.clone(), s);
            }
        }
    }
    Ok(())
}

fn opt_str(v: &Value, key: &str) -> ApiResult<Option<String>> {
    match v.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(ApiError::bad_request(format!(
            "Invalid value for field '{key}'."
        ))),
    }
}

fn opt_time(v: &Value, key: &str) -> ApiResult<Option<i64>> {
    match opt_str(v, key)? {
        None => Ok(None),
        Some(s) => parse_time(&s).map(Some).ok_or_else(|| {
            ApiError::drive(
                400,
                "global",
                "invalid",
                format!("Invalid value for: {key}"),
            )
        }),
    }
}

/// Parse a JSON body that must be an object (an empty body is `{}`).
pub fn json_body(bytes: &[u8]) -> ApiResult<Value> {
    if bytes.iter().all(|b| b.is_ascii_whitespace()) {
        return Ok(json!({}));
    }
    match serde_json::from_slice::<Value>(bytes) {
        Ok(v @ Value::Object(_)) => Ok(v),
        Ok(_) | Err(_) => Err(ApiError::drive(400, "global", "parseError", "Parse Error")),
    }
}

/// Validate creation metadata and decide where the file goes.
pub fn parse_init(inner: &mut Inner, ctx: &Ctx, v: &Value) -> ApiResult<FileInit> {
    let mut init = FileInit {
        name: opt_str(v, "name")?,
        mime_type: opt_str(v, "mimeType")?,
        description: opt_str(v, "description")?,
        original_filename: opt_str(v, "originalFilename")?,
        created_ms: opt_time(v, "createdTime")?,
        modified_ms: opt_time(v, "modifiedTime")?,
        starred: v.get("starred").and_then(Value::as_bool).unwrap_or(false),
        ..Default::default()
    };
    for (key, map) in [
        ("appProperties", &mut init.app_properties),
        ("properties", &mut init.properties),
    ] {
        if let Some(p) = v.get(key).filter(|p| !p.is_null()) {
            merge_props(map, p)?;
        }
    }
    let parents: Vec<String> = match v.get("parents") {
        None | Some(Value::Null) => vec![],
        Some(Value::Array(a)) => a
            .iter()
            .map(|p| {
                p.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| ApiError::bad_request("Invalid parents."))
            })
            .collect::<ApiResult<_>>()?,
        Some(_) => return Err(ApiError::bad_request("Invalid parents.")),
    };
    if parents.len() > 1 {
        return Err(ApiError::drive(
            403,
            "global",
            "cannotAddParent",
            "Increasing the number of parents is not allowed.",
        ));
    }
    let parent = match parents.first() {
        Some(p) => lookup(inner, ctx, p)?,
        None => {
            if !ctx.drive_space() {
                return Err(ApiError::insufficient_permissions());
            }
            inner.p.root_id.clone()
        }
    };
    let pf = &inner.p.files[&parent];
    if !pf.is_folder() {
        return Err(ApiError::bad_request(format!(
            "The specified parent is not a folder: {}",
            parents.first().map(String::as_str).unwrap_or("")
        )));
    }
    init.space = Some(pf.space);
    init.parent = Some(parent);
    Ok(init)
}

fn check_quota(inner: &Inner, extra: u64) -> ApiResult<()> {
    if inner.usage().saturating_add(extra) > inner.p.quota_limit {
        return Err(ApiError::storage_quota_exceeded());
    }
    Ok(())
}

pub fn checksums(data: &[u8]) -> (String, String, String) {
    (
        hex::encode(Md5::digest(data)),
        hex::encode(Sha1::digest(data)),
        hex::encode(Sha256::digest(data)),
    )
}

/// Create a file from validated metadata and (for non-folders) its content.
pub fn create_file(
    app: &App,
    inner: &mut Inner,
    client_id: &str,
    init: &FileInit,
    content: Bytes,
    content_type: Option<&str>,
) -> ApiResult<String> {
    let parent = init
        .parent
        .clone()
        .unwrap_or_else(|| inner.p.root_id.clone());
    if !inner.p.files.contains_key(&parent) {
        return Err(ApiError::not_found(&parent));
    }
    let mime = init
        .mime_type
        .clone()
        .or_else(|| content_type.map(mime_base).filter(|m| !m.is_empty()))
        .unwrap_or_else(|| "application/octet-stream".into());
    let folder = mime == FOLDER_MIME;
    if folder && !content.is_empty() {
        return Err(ApiError::bad_request("Folders cannot have content."));
    }
    check_quota(inner, content.len() as u64)?;
    let now = inner.now_ms();
    let (md5, sha1, sha256) = if folder {
        (None, None, None)
    } else {
        let (a, b, c) = checksums(&content);
        (Some(a), Some(b), Some(c))
    };
    let id = new_file_id();
    let rec = FileRec {
        id: id.clone(),
        name: init.name.clone().unwrap_or_else(|| "Untitled".into()),
        mime_type: mime,
        parents: vec![parent],
        space: init.space.unwrap_or(Space::Drive),
        creator: client_id.to_string(),
        system: false,
        created_ms: init.created_ms.unwrap_or(now),
        modified_ms: init.modified_ms.unwrap_or(now),
        app_properties: init.app_properties.clone(),
        properties: init.properties.clone(),
        description: init.description.clone(),
        original_filename: init
            .original_filename
            .clone()
            .or_else(|| (!folder).then(|| init.name.clone()).flatten()),
        starred: init.starred,
        trashed: false,
        trashed_ms: None,
        version: 1,
        md5,
        sha1,
        sha256,
        size: (!folder).then_some(content.len() as u64),
        content,
    };
    if !folder {
        app.write_blob(&id, &rec.content);
    }
    inner.p.files.insert(id.clone(), rec);
    app.save(inner);
    Ok(id)
}

/// Replace a file's content (files.update with media).
pub fn replace_content(
    app: &App,
    inner: &mut Inner,
    id: &str,
    content: Bytes,
    content_type: Option<&str>,
) -> ApiResult<()> {
    let old = inner
        .p
        .files
        .get(id)
        .ok_or_else(|| ApiError::not_found(id))?;
    if old.is_folder() {
        return Err(ApiError::bad_request("Folders cannot have content."));
    }
    let old_size = old.size.unwrap_or(0);
    if inner.usage().saturating_sub(old_size) + content.len() as u64 > inner.p.quota_limit {
        return Err(ApiError::storage_quota_exceeded());
    }
    let now = inner.now_ms();
    let (md5, sha1, sha256) = checksums(&content);
    let f = inner.p.files.get_mut(id).expect("checked above");
    f.md5 = Some(md5);
    f.sha1 = Some(sha1);
    f.sha256 = Some(sha256);
    f.size = Some(content.len() as u64);
    f.modified_ms = now;
    f.version += 1;
    if let Some(ct) = content_type.map(mime_base).filter(|m| !m.is_empty()) {
        if f.mime_type == "application/octet-stream" {
            f.mime_type = ct;
        }
    }
    app.write_blob(id, &content);
    f.content = content;
    Ok(())
}

const READ_ONLY: &[&str] = &[
    "id",
    "kind",
    "size",
    "md5Checksum",
    "sha1Checksum",
    "sha256Checksum",
    "createdTime",
    "version",
    "quotaBytesUsed",
    "spaces",
    "ownedByMe",
    "owners",
    "headRevisionId",
    "fileExtension",
    "fullFileExtension",
    "explicitlyTrashed",
    "trashedTime",
    "isAppAuthorized",
];

/// files.update metadata: merge `patch`, honour addParents/removeParents.
pub fn apply_patch(
    inner: &mut Inner,
    ctx: &Ctx,
    id: &str,
    patch: &Value,
    q: &HashMap<String, String>,
) -> ApiResult<()> {
    if patch.get("parents").is_some() {
        return Err(ApiError::field_not_writable(
            "The parents field is not directly writable in update requests. Use the addParents and removeParents parameters instead.",
        ));
    }
    if READ_ONLY.iter().any(|k| patch.get(*k).is_some()) {
        return Err(ApiError::field_not_writable(
            "The resource body includes fields which are not directly writable.",
        ));
    }
    let mut f = inner.p.files[id].clone();
    if f.system {
        return Err(ApiError::drive(
            403,
            "global",
            "insufficientFilePermissions",
            "The user does not have sufficient permissions for this file.",
        ));
    }
    if let Some(name) = opt_str(patch, "name")? {
        f.name = name;
    }
    if let Some(m) = opt_str(patch, "mimeType")? {
        if (m == FOLDER_MIME) != f.is_folder() {
            return Err(ApiError::bad_request(
                "The mimeType of a file cannot be changed between folder and non-folder.",
            ));
        }
        f.mime_type = m;
    }
    if patch.get("description").is_some() {
        f.description = opt_str(patch, "description")?;
    }
    if let Some(o) = opt_str(patch, "originalFilename")? {
        f.original_filename = Some(o);
    }
    if let Some(s) = patch.get("starred").and_then(Value::as_bool) {
        f.starred = s;
    }
    let now = inner.now_ms();
    if let Some(t) = patch.get("trashed").and_then(Value::as_bool) {
        if t != f.trashed {
            f.trashed = t;
            f.trashed_ms = t.then_some(now);
        }
    }
    if let Some(p) = patch.get("appProperties").filter(|p| !p.is_null()) {
        merge_props(&mut f.app_properties, p)?;
    }
    if let Some(p) = patch.get("properties").filter(|p| !p.is_null()) {
        merge_props(&mut f.properties, p)?;
    }
    let split = |k: &str| -> Vec<String> {
        q.get(k)
            .map(|s| {
                s.split(',')
                    .map(|x| x.trim().to_string())
                    .filter(|x| !x.is_empty())
                    .collect()
            })
            .unwrap_or_default()
    };
    for rid in split("removeParents") {
        let real = inner.resolve(&rid, &ctx.client_id);
        f.parents.retain(|p| *p != real);
    }
    for aid in split("addParents") {
        let real = lookup(inner, ctx, &aid)?;
        let pf = &inner.p.files[&real];
        if !pf.is_folder() {
            return Err(ApiError::bad_request(
                "The specified parent is not a folder.",
            ));
        }
        if pf.space != f.space {
            return Err(ApiError::drive(
                403,
                "global",
                "cannotMoveItemAcrossSpaces",
                "Items cannot be moved between spaces.",
            ));
        }
        if real == f.id || is_ancestor(inner, &f.id, &real) {
            return Err(ApiError::bad_request("The parent would create a cycle."));
        }
        if !f.parents.contains(&real) {
            f.parents.push(real);
        }
    }
    if f.parents.len() > 1 {
        return Err(ApiError::drive(
            403,
            "global",
            "cannotAddParent",
            "Increasing the number of parents is not allowed.",
        ));
    }
    if f.parents.is_empty() {
        f.parents.push(match f.space {
            Space::Drive => inner.p.root_id.clone(),
            Space::AppData => inner.appdata_id(&ctx.client_id),
        });
    }
    f.modified_ms = opt_time(patch, "modifiedTime")?.unwrap_or(now);
    f.version += 1;
    inner.p.files.insert(id.to_string(), f);
    Ok(())
}

/// Is `maybe_child` (or one of its ancestors) `folder`? Guards addParents against cycles.
fn is_ancestor(inner: &Inner, folder: &str, maybe_child: &str) -> bool {
    let mut cur = inner.p.files.get(maybe_child);
    let mut depth = 0;
    while let Some(f) = cur {
        if f.id == folder {
            return true;
        }
        depth += 1;
        if depth > 64 {
            return false;
        }
        cur = f.parents.first().and_then(|p| inner.p.files.get(p));
    }
    false
}

/// The file resource with `fields` applied.
pub fn render(
    app: &App,
    inner: &Inner,
    ctx_client: &str,
    id: &str,
    fields: Option<&str>,
) -> ApiResult<Value> {
    let f = inner
        .p
        .files
        .get(id)
        .ok_or_else(|| ApiError::not_found(id))?;
    let full = inner.file_json(
        f,
        ctx_client,
        (&app.config.user_email, &app.config.user_name),
    );
    select(&full, fields, fields::DEFAULT_FILE, fields::FILE)
}

fn begin(app: &App, req: &Request) -> ApiResult<(HashMap<String, String>, Ctx)> {
    let q = query_map(req.uri());
    let inner = app.lock();
    let ctx = authenticate(&inner, req.headers(), &q)?;
    Ok((q, ctx))
}

/// `GET /drive/v3/about`
pub async fn about(State(app): State<Arc<App>>, req: Request) -> ApiResult<Response> {
    let (q, ctx) = begin(&app, &req)?;
    if !(ctx.drive_space() || ctx.appdata()) {
        return Err(ApiError::insufficient_permissions());
    }
    let fields = q.get("fields").filter(|f| !f.is_empty()).ok_or_else(|| {
        ApiError::required_parameter(
            "fields",
            "The 'fields' parameter is required for this method.",
        )
    })?;
    let inner = app.lock();
    let v = json!({
        "kind": "drive#about",
        "user": {
            "kind": "drive#user",
            "displayName": app.config.user_name,
            "me": true,
            "permissionId": PERMISSION_ID,
            "emailAddress": app.config.user_email,
        },
        "storageQuota": {
            "limit": inner.p.quota_limit.to_string(),
            "usage": inner.usage().to_string(),
            "usageInDrive": inner.usage().to_string(),
            "usageInDriveTrash": inner.usage_in_trash().to_string(),
        },
        "maxUploadSize": "5242880000000",
        "appInstalled": true,
        "canCreateDrives": false,
        "canCreateTeamDrives": false,
        "folderColorPalette": ["#ac725e", "#d06b64", "#f83a22", "#fa573c"],
    });
    let v = select(&v, Some(fields), "", fields::ABOUT)?;
    Ok(json_response(StatusCode::OK, &v))
}

#[derive(Clone, Copy)]
enum SortKey {
    Created,
    Modified,
    Name,
    Folder,
    Quota,
    Starred,
}

fn sort_values(f: &FileRec, keys: &[(SortKey, bool)]) -> Vec<Value> {
    let mut out: Vec<Value> = keys
        .iter()
        .map(|(k, _)| match k {
            SortKey::Created => json!(f.created_ms),
            SortKey::Modified => json!(f.modified_ms),
            SortKey::Name => json!(f.name.to_lowercase()),
            SortKey::Folder => json!(if f.is_folder() { 0 } else { 1 }),
            SortKey::Quota => json!(f.size.unwrap_or(0)),
            SortKey::Starred => json!(if f.starred { 1 } else { 0 }),
        })
        .collect();
    out.push(json!(f.id));
    out
}

fn cmp_values(a: &[Value], b: &[Value], keys: &[(SortKey, bool)]) -> Ordering {
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        let o = match (x, y) {
            (Value::Number(m), Value::Number(n)) => {
                m.as_i64().unwrap_or(0).cmp(&n.as_i64().unwrap_or(0))
            }
            (Value::String(m), Value::String(n)) => m.cmp(n),
            _ => Ordering::Equal,
        };
        let desc = keys.get(i).is_some_and(|(_, d)| *d);
        let o = if desc { o.reverse() } else { o };
        if o != Ordering::Equal {
            return o;
        }
    }
    Ordering::Equal
}

fn parse_order(s: &str) -> ApiResult<Vec<(SortKey, bool)>> {
    let mut keys = vec![];
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let mut words = part.split_whitespace();
        let key = match words.next().unwrap_or("") {
            "createdTime" => SortKey::Created,
            "modifiedTime" | "recency" | "modifiedByMeTime" | "viewedByMeTime" => SortKey::Modified,
            "name" | "name_natural" => SortKey::Name,
            "folder" => SortKey::Folder,
            "quotaBytesUsed" => SortKey::Quota,
            "starred" => SortKey::Starred,
            _ => return Err(ApiError::invalid_value("orderBy")),
        };
        let desc = match words.next() {
            None | Some("asc") => false,
            Some("desc") => true,
            Some(_) => return Err(ApiError::invalid_value("orderBy")),
        };
        if words.next().is_some() {
            return Err(ApiError::invalid_value("orderBy"));
        }
        keys.push((key, desc));
    }
    Ok(keys)
}

/// `GET /drive/v3/files`
pub async fn list(State(app): State<Arc<App>>, req: Request) -> ApiResult<Response> {
    let (q, ctx) = begin(&app, &req)?;
    let (mut want_drive, mut want_app) = (false, false);
    for s in q
        .get("spaces")
        .map(String::as_str)
        .unwrap_or("drive")
        .split(',')
    {
        match s.trim() {
            "drive" => want_drive = true,
            "appDataFolder" => want_app = true,
            _ => return Err(ApiError::invalid_value("spaces")),
        }
    }
    if want_drive && !ctx.drive_space() {
        return Err(ApiError::insufficient_permissions());
    }
    if want_app && !ctx.appdata() {
        return Err(ApiError::insufficient_scopes_appdata());
    }
    match q.get("corpora").map(String::as_str) {
        None | Some("user") | Some("allDrives") => {}
        Some(_) => return Err(ApiError::invalid_value("corpora")),
    }
    let page_size = match q.get("pageSize") {
        None => 100,
        Some(s) => match s.parse::<usize>() {
            Ok(n) if (1..=1000).contains(&n) => n,
            _ => {
                return Err(ApiError::invalid_parameter(
                    "pageSize",
                    format!("Invalid value '{s}'. Values must be within the range: [1, 1000]"),
                ))
            }
        },
    };
    let mask = fields::Mask::parse(
        q.get("fields")
            .map(String::as_str)
            .unwrap_or(fields::DEFAULT_LIST),
        fields::FILE_LIST,
    )?;
    let keys = parse_order(q.get("orderBy").map(String::as_str).unwrap_or(""))?;
    let mut inner = app.lock();
    let mut expr = match q.get("q").filter(|s| !s.trim().is_empty()) {
        Some(s) => Some(query::parse(s)?),
        None => None,
    };
    if let Some(e) = &mut expr {
        e.resolve(&mut inner, &ctx.client_id);
    }
    let fingerprint = hex::encode(
        &Sha256::digest(
            format!(
                "{}|{}|{}|{}",
                q.get("q").map(String::as_str).unwrap_or(""),
                q.get("spaces").map(String::as_str).unwrap_or(""),
                q.get("orderBy").map(String::as_str).unwrap_or(""),
                ctx.client_id
            )
            .as_bytes(),
        )[..8],
    );
    let cursor: Option<Vec<Value>> = match q.get("pageToken").filter(|s| !s.is_empty()) {
        None => None,
        Some(tok) => {
            let v: Value = URL_SAFE_NO_PAD
                .decode(tok)
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok())
                .ok_or_else(|| ApiError::invalid_value("pageToken"))?;
            if v["h"] != json!(fingerprint) {
                return Err(ApiError::invalid_value("pageToken"));
            }
            Some(
                v["k"]
                    .as_array()
                    .cloned()
                    .ok_or_else(|| ApiError::invalid_value("pageToken"))?,
            )
        }
    };
    let mut hits: Vec<(Vec<Value>, &FileRec)> = inner
        .p
        .files
        .values()
        .filter(|f| !f.system)
        .filter(|f| match f.space {
            Space::Drive => want_drive && (ctx.full_drive() || f.creator == ctx.client_id),
            Space::AppData => want_app && f.creator == ctx.client_id,
        })
        .filter(|f| expr.as_ref().is_none_or(|e| e.matches(f, &inner)))
        .map(|f| (sort_values(f, &keys), f))
        .collect();
    hits.sort_by(|a, b| cmp_values(&a.0, &b.0, &keys));
    if let Some(c) = &cursor {
        hits.retain(|(k, _)| cmp_values(k, c, &keys) == Ordering::Greater);
    }
    let more = hits.len() > page_size;
    hits.truncate(page_size);
    let user = (
        app.config.user_email.as_str(),
        app.config.user_name.as_str(),
    );
    let files: Vec<Value> = hits
        .iter()
        .map(|(_, f)| inner.file_json(f, &ctx.client_id, user))
        .collect();
    let mut v = json!({"kind": "drive#fileList", "incompleteSearch": false, "files": files});
    if more {
        let last = &hits.last().expect("page_size >= 1").0;
        let tok = json!({"k": last, "h": fingerprint});
        v["nextPageToken"] = json!(URL_SAFE_NO_PAD.encode(tok.to_string()));
    }
    Ok(json_response(StatusCode::OK, &mask.apply(&v)))
}

/// `GET /drive/v3/files/{id}` (metadata, or content with `alt=media`)
pub async fn get(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    req: Request,
) -> ApiResult<Response> {
    let (q, ctx) = begin(&app, &req)?;
    let mut inner = app.lock();
    let real = lookup(&mut inner, &ctx, &id)?;
    match q.get("alt").map(String::as_str) {
        None | Some("json") => {
            let v = render(
                &app,
                &inner,
                &ctx.client_id,
                &real,
                q.get("fields").map(String::as_str),
            )?;
            Ok(json_response(StatusCode::OK, &v))
        }
        Some("media") => media(&inner.p.files[&real], req.headers()),
        Some(_) => Err(ApiError::invalid_value("alt")),
    }
}

fn media(f: &FileRec, headers: &HeaderMap) -> ApiResult<Response> {
    if f.is_folder() || f.system {
        return Err(ApiError::drive(
            403,
            "global",
            "fileNotDownloadable",
            "Only files with binary content can be downloaded. Use Export with Docs Editors files.",
        )
        .at("parameter", "alt"));
    }
    let total = f.content.len() as u64;
    let range = header_str(headers, "range").and_then(|r| r.strip_prefix("bytes="));
    let range = match range {
        Some(r) if !r.contains(',') => {
            let (a, b) = r.split_once('-').unwrap_or(("", ""));
            let parsed = match (a.trim(), b.trim()) {
                ("", n) => n
                    .parse::<u64>()
                    .ok()
                    .map(|n| (total.saturating_sub(n), total.saturating_sub(1))),
                (a, "") => a.parse::<u64>().ok().map(|a| (a, total.saturating_sub(1))),
                (a, b) => match (a.parse::<u64>(), b.parse::<u64>()) {
                    (Ok(a), Ok(b)) if a <= b => Some((a, b.min(total.saturating_sub(1)))),
                    _ => None,
                },
            };
            match parsed {
                Some((a, b)) if a < total && a <= b => Some((a, b)),
                _ => {
                    return Ok((
                        StatusCode::RANGE_NOT_SATISFIABLE,
                        [(header::CONTENT_RANGE, format!("bytes */{total}"))],
                        "",
                    )
                        .into_response())
                }
            }
        }
        _ => None,
    };
    let ctype = f.mime_type.clone();
    Ok(match range {
        Some((a, b)) => (
            StatusCode::PARTIAL_CONTENT,
            [
                (header::CONTENT_TYPE, ctype),
                (header::CONTENT_RANGE, format!("bytes {a}-{b}/{total}")),
            ],
            f.content.slice(a as usize..=b as usize),
        )
            .into_response(),
        None => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, ctype)],
            f.content.clone(),
        )
            .into_response(),
    })
}

/// `POST /drive/v3/files` (metadata only)
pub async fn create(State(app): State<Arc<App>>, req: Request) -> ApiResult<Response> {
    let (q, ctx) = begin(&app, &req)?;
    let ct = header_str(req.headers(), "content-type")
        .unwrap_or("")
        .to_string();
    let body = read_body(req.into_body(), METADATA_LIMIT).await?;
    if !body.is_empty() && !mime_base(&ct).ends_with("json") {
        return Err(ApiError::bad_request(format!(
            "Media type '{}' is not supported. Valid media types: [application/json]",
            mime_base(&ct)
        )));
    }
    let meta = json_body(&body)?;
    let mut inner = app.lock();
    let init = parse_init(&mut inner, &ctx, &meta)?;
    let fields = q.get("fields").map(String::as_str);
    crate::fields::Mask::parse(fields.unwrap_or(fields::DEFAULT_FILE), fields::FILE)?;
    let id = create_file(&app, &mut inner, &ctx.client_id, &init, Bytes::new(), None)?;
    let v = render(&app, &inner, &ctx.client_id, &id, fields)?;
    Ok(json_response(StatusCode::OK, &v))
}

/// `PATCH /drive/v3/files/{id}`
pub async fn update(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    req: Request,
) -> ApiResult<Response> {
    let (q, ctx) = begin(&app, &req)?;
    let body = read_body(req.into_body(), METADATA_LIMIT).await?;
    let patch = json_body(&body)?;
    let mut inner = app.lock();
    let real = lookup(&mut inner, &ctx, &id)?;
    let fields = q.get("fields").map(String::as_str);
    crate::fields::Mask::parse(fields.unwrap_or(fields::DEFAULT_FILE), fields::FILE)?;
    apply_patch(&mut inner, &ctx, &real, &patch, &q)?;
    app.save(&inner);
    let v = render(&app, &inner, &ctx.client_id, &real, fields)?;
    Ok(json_response(StatusCode::OK, &v))
}

/// `DELETE /drive/v3/files/{id}`: permanent, folders with everything below them.
pub async fn delete(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    req: Request,
) -> ApiResult<Response> {
    let (_, ctx) = begin(&app, &req)?;
    let mut inner = app.lock();
    let real = lookup(&mut inner, &ctx, &id)?;
    if inner.p.files[&real].system {
        return Err(ApiError::drive(
            403,
            "global",
            "insufficientFilePermissions",
            "The user does not have sufficient permissions for this file.",
        ));
    }
    let mut doomed = vec![real];
    let mut i = 0;
    while i < doomed.len() {
        let cur = doomed[i].clone();
        doomed.extend(
            inner
                .p
                .files
                .values()
                .filter(|f| f.parents.contains(&cur))
                .map(|f| f.id.clone()),
        );
        i += 1;
    }
    for d in &doomed {
        inner.p.files.remove(d);
        app.remove_blob(d);
    }
    app.save(&inner);
    Ok(StatusCode::NO_CONTENT.into_response())
}
