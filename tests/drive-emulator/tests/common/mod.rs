//! Test harness: start the emulator in-process on 127.0.0.1:0 and talk to it over HTTP.
#![allow(dead_code)]

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use drive_emulator::Config;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

pub const CLIENT_ID: &str = "driveback-demo.apps.googleusercontent.com";
pub const CLIENT_SECRET: &str = "driveback-demo-secret";
pub const REDIRECT: &str = "http://127.0.0.1:53682/callback";
pub const APPDATA: &str = "https://www.googleapis.com/auth/drive.appdata";
pub const FILE: &str = "https://www.googleapis.com/auth/drive.file";
pub const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk-0123456789";

pub struct Emu {
    pub base: String,
    pub http: reqwest::Client,
    handle: tokio::task::JoinHandle<()>,
}

impl Drop for Emu {
    fn drop(&mut self) {
        self.handle.abort();
    }
}

pub struct Resp {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|_| {
            panic!(
                "not JSON ({}): {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap().to_string())
    }
    /// errors[0].reason of a Google API error envelope.
    pub fn reason(&self) -> String {
        self.json()["error"]["errors"][0]["reason"]
            .as_str()
            .unwrap_or("")
            .to_string()
    }
}

pub fn challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

pub fn form(pairs: &[(&str, &str)]) -> String {
    let mut s = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        s.append_pair(k, v);
    }
    s.finish()
}

/// Query parameters of a URL.
pub fn params(url: &str) -> std::collections::HashMap<String, String> {
    let q = url.split_once('?').map(|x| x.1).unwrap_or("");
    form_urlencoded::parse(q.as_bytes()).into_owned().collect()
}

pub async fn start(config: Config) -> Emu {
    let (addr, handle) = drive_emulator::serve(config).await.expect("start emulator");
    let http = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    Emu {
        base: format!("http://{addr}"),
        http,
        handle,
    }
}

pub async fn start_default() -> Emu {
    start(Config {
        auto_consent: true,
        ..Config::default()
    })
    .await
}

impl Emu {
    pub fn url(&self, path: &str) -> String {
        if path.starts_with("http") {
            path.to_string()
        } else {
            format!("{}{path}", self.base)
        }
    }

    pub async fn send(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Resp {
        let mut rb = self.http.request(method, self.url(path));
        if let Some(t) = token {
            rb = rb.header("authorization", format!("Bearer {t}"));
        }
        for (k, v) in headers {
            rb = rb.header(*k, *v);
        }
        let r = rb.body(body).send().await.expect("request");
        Resp {
            status: r.status(),
            headers: r.headers().clone(),
            body: r.bytes().await.unwrap().to_vec(),
        }
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Resp {
        self.send(Method::GET, path, token, &[], vec![]).await
    }

    pub async fn post_json(&self, path: &str, token: Option<&str>, v: Value) -> Resp {
        self.send(
            Method::POST,
            path,
            token,
            &[("content-type", "application/json; charset=UTF-8")],
            serde_json::to_vec(&v).unwrap(),
        )
        .await
    }

    pub async fn patch_json(&self, path: &str, token: Option<&str>, v: Value) -> Resp {
        self.send(
            Method::PATCH,
            path,
            token,
            &[("content-type", "application/json")],
            serde_json::to_vec(&v).unwrap(),
        )
        .await
    }

    pub async fn post_form(&self, path: &str, pairs: &[(&str, &str)]) -> Resp {
        self.send(
            Method::POST,
            path,
            None,
            &[("content-type", "application/x-www-form-urlencoded")],
            form(pairs).into_bytes(),
        )
        .await
    }

    pub async fn control(&self, path: &str, v: Value) -> Value {
        let r = self.post_json(&format!("/_emulator/{path}"), None, v).await;
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        r.json()
    }

    pub async fn state(&self) -> Value {
        self.get("/_emulator/state", None).await.json()
    }

    pub fn authorize_url(&self, scope: &str, redirect: &str, state: &str) -> String {
        format!(
            "/o/oauth2/v2/auth?{}",
            form(&[
                ("client_id", CLIENT_ID),
                ("redirect_uri", redirect),
                ("response_type", "code"),
                ("scope", scope),
                ("state", state),
                ("code_challenge", &challenge(VERIFIER)),
                ("code_challenge_method", "S256"),
                ("access_type", "offline"),
                ("prompt", "consent"),
            ])
        )
    }

    /// Run the authorize step (auto-consent) and return the code.
    pub async fn code(&self, scope: &str) -> String {
        let r = self
            .get(&self.authorize_url(scope, REDIRECT, "st"), None)
            .await;
        assert_eq!(r.status, 302, "{}", String::from_utf8_lossy(&r.body));
        let loc = r.header("location").unwrap();
        assert!(loc.starts_with(REDIRECT));
        let p = params(&loc);
        assert_eq!(p["state"], "st");
        p["code"].clone()
    }

    pub async fn exchange(&self, code: &str, verifier: &str) -> Resp {
        self.post_form(
            "/token",
            &[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", REDIRECT),
                ("client_id", CLIENT_ID),
                ("client_secret", CLIENT_SECRET),
                ("code_verifier", verifier),
            ],
        )
        .await
    }

    /// Full login: returns the token response.
    pub async fn login(&self, scope: &str) -> Value {
        let code = self.code(scope).await;
        let r = self.exchange(&code, VERIFIER).await;
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        r.json()
    }

    /// An access token with the given scopes.
    pub async fn token(&self, scope: &str) -> String {
        self.login(scope).await["access_token"]
            .as_str()
            .unwrap()
            .to_string()
    }

    /// Upload `data` with a multipart request; returns the file resource (fields=*).
    pub async fn multipart(&self, token: &str, meta: Value, data: &[u8]) -> Resp {
        let boundary = "emu_boundary_42";
        let mut body = Vec::new();
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n{}\r\n--{boundary}\r\nContent-Type: application/octet-stream\r\n\r\n",
                meta
            )
            .as_bytes(),
        );
        body.extend_from_slice(data);
        body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
        self.send(
            Method::POST,
            "/upload/drive/v3/files?uploadType=multipart&fields=*",
            Some(token),
            &[(
                "content-type",
                &format!("multipart/related; boundary={boundary}"),
            )],
            body,
        )
        .await
    }

    /// Start a resumable upload; returns the session URI.
    pub async fn resumable(&self, token: &str, meta: Value, total: Option<u64>) -> String {
        let len = total.map(|t| t.to_string());
        let mut headers = vec![
            ("content-type", "application/json; charset=UTF-8"),
            ("x-upload-content-type", "application/octet-stream"),
        ];
        if let Some(l) = &len {
            headers.push(("x-upload-content-length", l));
        }
        let r = self
            .send(
                Method::POST,
                "/upload/drive/v3/files?uploadType=resumable&fields=id,name,size,md5Checksum,sha256Checksum,appProperties,parents",
                Some(token),
                &headers,
                serde_json::to_vec(&meta).unwrap(),
            )
            .await;
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        r.header("location").expect("Location")
    }

    pub async fn put_chunk(&self, uri: &str, range: &str, data: Vec<u8>) -> Resp {
        self.send(Method::PUT, uri, None, &[("content-range", range)], data)
            .await
    }
}

pub fn blob(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u32).wrapping_mul(2654435761).to_be_bytes()[0] ^ seed)
        .collect()
}

pub fn md5_hex(data: &[u8]) -> String {
    use md5::Digest as _;
    hex::encode(md5::Md5::digest(data))
}

pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

pub fn appdata_meta(name: &str) -> Value {
    json!({"name": name, "parents": ["appDataFolder"], "appProperties": {"kind": "backup"}})
}
