//! drive-emulator: a local emulator of Google's OAuth 2.0 (installed-app flow) and Drive v3
//! endpoints, with fault injection, for Driveback's offline tests and demo.
//!
//! Start it in-process with [`serve`] (port 0 picks a free port) or run the `drive-emulator`
//! binary. Endpoints and the `/_emulator/` control API are described in the crate README.

pub mod control;
pub mod drive;
pub mod errors;
pub mod fields;
pub mod oauth;
pub mod query;
pub mod state;
pub mod upload;
mod util;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tower::ServiceExt;

use state::App;
pub use state::Config;

/// Build the router over a shared [`App`].
fn router(app: Arc<App>) -> Router {
    let files = "/drive/v3/files";
    Router::new()
        .route("/o/oauth2/v2/auth", get(oauth::authorize))
        .route("/o/oauth2/auth", get(oauth::authorize))
        .route("/o/oauth2/v2/consent", post(oauth::consent))
        .route("/token", post(oauth::token))
        .route("/o/oauth2/token", post(oauth::token))
        .route("/revoke", post(oauth::revoke).get(oauth::revoke))
        .route("/o/oauth2/revoke", post(oauth::revoke).get(oauth::revoke))
        .route("/oauth2/v3/userinfo", get(oauth::userinfo))
        .route("/v1/userinfo", get(oauth::userinfo))
        .route("/oauth2/v3/tokeninfo", get(oauth::tokeninfo))
        .route("/.well-known/openid-configuration", get(oauth::discovery))
        .route("/drive/v3/about", get(drive::about))
        .route(files, get(drive::list).post(drive::create))
        .route(
            "/drive/v3/files/{id}",
            get(drive::get).patch(drive::update).delete(drive::delete),
        )
        .route(
            "/upload/drive/v3/files",
            post(upload::post).put(upload::put),
        )
        .route(
            "/upload/drive/v3/files/{id}",
            axum::routing::patch(upload::patch)
                .put(upload::put_id)
                .post(upload::put_id),
        )
        .route(
            "/_emulator/faults",
            post(control::add_fault)
                .get(control::list_faults)
                .delete(control::clear_faults),
        )
        .route("/_emulator/drop-connection", post(control::drop_connection))
        .route("/_emulator/short-store", post(control::short_store))
        .route("/_emulator/expire-tokens", post(control::expire_tokens))
        .route("/_emulator/revoke-all", post(control::revoke_all))
        .route("/_emulator/advance-clock", post(control::advance_clock))
        .route("/_emulator/quota", post(control::quota))
        .route(
            "/_emulator/deny-next-consent",
            post(control::deny_next_consent),
        )
        .route("/_emulator/grant-only", post(control::grant_only))
        .route("/_emulator/state", get(control::state))
        .route("/_emulator/reset", post(control::reset))
        .fallback(|| async { (StatusCode::NOT_FOUND, "Not Found").into_response() })
        .with_state(app)
}

/// Returned to hyper to close a connection without answering (drop-connection fault).
#[derive(Debug)]
struct Dropped;

impl std::fmt::Display for Dropped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection dropped by fault injection")
    }
}

impl std::error::Error for Dropped {}

async fn handle(
    app: Arc<App>,
    router: Router,
    req: Request<Incoming>,
) -> Result<Response, Dropped> {
    let (parts, body) = req.into_parts();
    let route = control::classify(
        parts.method.as_str(),
        parts.uri.path(),
        parts.uri.query().unwrap_or(""),
    );
    let limit = app.config.max_upload_body_bytes + 1024 * 1024;
    if let Some(err) = route.and_then(|r| control::before_request(&app, r)) {
        // Read the body first so the client sees the error rather than a reset connection.
        let drained = axum::body::to_bytes(Body::new(body), limit).await;
        if route == Some("upload_chunk") {
            let n = drained.map(|b| b.len() as u64).unwrap_or(0);
            app.lock().rt.upload_bytes_received += n;
        }
        return Ok(err.into_response());
    }
    // Upload chunks stream (drop-connection reads them partially); everything else is buffered
    // so early answers never leave an unread body behind.
    let body = if route == Some("upload_chunk") {
        Body::new(body)
    } else {
        match axum::body::to_bytes(Body::new(body), limit).await {
            Ok(b) => Body::from(b),
            Err(_) => {
                return Ok(errors::ApiError::drive(
                    413,
                    "global",
                    "uploadTooLarge",
                    "The request body is too large.",
                )
                .into_response())
            }
        }
    };
    let resp = router
        .oneshot(Request::from_parts(parts, body))
        .await
        .unwrap_or_else(|e| match e {});
    if resp.extensions().get::<upload::DropConnection>().is_some() {
        return Err(Dropped);
    }
    Ok(resp)
}

/// Bind `config.host:config.port` and serve until the returned task is aborted.
pub async fn serve(config: Config) -> std::io::Result<(SocketAddr, JoinHandle<()>)> {
    let listener = TcpListener::bind((config.host.as_str(), config.port)).await?;
    let addr = listener.local_addr()?;
    let app = Arc::new(App::new(config, addr)?);
    let router = router(app.clone());
    let handle = tokio::spawn(async move {
        loop {
            let stream = match listener.accept().await {
                Ok((s, _)) => s,
                Err(_) => {
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                    continue;
                }
            };
            let app = app.clone();
            let router = router.clone();
            tokio::spawn(async move {
                let svc =
                    hyper::service::service_fn(move |req| handle(app.clone(), router.clone(), req));
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    Ok((addr, handle))
}
