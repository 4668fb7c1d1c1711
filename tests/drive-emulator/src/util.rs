//! Small HTTP helpers shared by the handlers.

use std::collections::HashMap;

use axum::body::{Body, Bytes};
use axum::http::{header, HeaderMap, Uri};

use crate::errors::ApiError;
use crate::state::App;

/// Query parameters; the first occurrence of a name wins.
pub fn query_map(uri: &Uri) -> HashMap<String, String> {
    form_map(uri.query().unwrap_or("").as_bytes())
}

pub fn form_map(body: &[u8]) -> HashMap<String, String> {
    let mut map = HashMap::new();
    for (k, v) in form_urlencoded::parse(body) {
        map.entry(k.into_owned()).or_insert_with(|| v.into_owned());
    }
    map
}

pub async fn read_body(body: Body, limit: usize) -> Result<Bytes, ApiError> {
    axum::body::to_bytes(body, limit).await.map_err(|_| {
        ApiError::drive(
            413,
            "global",
            "uploadTooLarge",
            format!("The request body is larger than the emulator's limit of {limit} bytes."),
        )
    })
}

pub fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// `http://HOST` as the client addressed us (for upload session URIs).
pub fn origin(headers: &HeaderMap, app: &App) -> String {
    match header_str(headers, header::HOST.as_str()) {
        Some(host) if !host.is_empty() => format!("http://{host}"),
        _ => format!("http://{}", app.addr),
    }
}

pub fn mime_base(content_type: &str) -> String {
    content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

pub fn encode_query(pairs: &[(&str, &str)]) -> String {
    let mut ser = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        ser.append_pair(k, v);
    }
    ser.finish()
}
