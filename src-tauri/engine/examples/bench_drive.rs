//! The Google Drive benchmark: uploads N MB of random data as one backup file through
//! `DriveStore` (resumable upload, 8 MiB chunks, checksum compared on commit) to a running
//! drive-emulator, downloads it back (streamed, checksum verified), and prints upload and
//! download throughput and the requests each took per GB, as JSON.
//!
//! Usage: bench_drive EMULATOR_BASE_URL [MB] [CHUNK_MIB]
//! (`scripts/bench-drive` builds it, starts the emulator and prints a table.)

use std::io::{Read, Write};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use driveback_engine::auth::{AccessTokens, GoogleEndpoints, TokenError};
use driveback_engine::manifest::{self, BackupStatus};
use driveback_engine::store::drive::{DriveConfig, DriveLocation, DriveStore};
use driveback_engine::store::{BackupSummary, RemoteStore};
use rand::RngCore;
use secrecy::SecretString;
use serde_json::Value;

const CLIENT_ID: &str = "driveback-demo.apps.googleusercontent.com";
const CLIENT_SECRET: &str = "driveback-demo-secret";
const REDIRECT: &str = "http://127.0.0.1:53682/callback";
const SCOPE: &str = "https://www.googleapis.com/auth/drive.appdata";

fn http() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(60))
        .build()
        .expect("an HTTP client")
}

/// A token from the emulator's OAuth endpoints (it consents on its own with --auto-consent).
struct EmulatorTokens {
    base: String,
    refresh: String,
    current: Mutex<Option<String>>,
}

impl EmulatorTokens {
    fn sign_in(base: &str) -> Self {
        let c = http();
        let (challenge, verifier) = oauth2::PkceCodeChallenge::new_random_sha256();
        let r = c
            .get(format!("{base}/o/oauth2/v2/auth"))
            .query(&[
                ("client_id", CLIENT_ID),
                ("redirect_uri", REDIRECT),
                ("response_type", "code"),
                ("scope", SCOPE),
                ("state", "bench"),
                ("code_challenge", challenge.as_str()),
                ("code_challenge_method", "S256"),
                ("access_type", "offline"),
            ])
            .send()
            .expect("authorize");
        assert_eq!(r.status(), 302, "start the emulator with --auto-consent");
        let location = r.headers()["location"].to_str().unwrap().to_string();
        let code = url::Url::parse(&location)
            .unwrap()
            .query_pairs()
            .find(|(k, _)| k == "code")
            .map(|(_, v)| v.into_owned())
            .expect("an authorization code");
        let v: Value = c
            .post(format!("{base}/token"))
            .form(&[
                ("grant_type", "authorization_code"),
                ("code", code.as_str()),
                ("redirect_uri", REDIRECT),
                ("client_id", CLIENT_ID),
                ("client_secret", CLIENT_SECRET),
                ("code_verifier", verifier.secret().as_str()),
            ])
            .send()
            .and_then(|r| r.json())
            .expect("token");
        EmulatorTokens {
            base: base.to_string(),
            refresh: v["refresh_token"].as_str().unwrap().to_string(),
            current: Mutex::new(Some(v["access_token"].as_str().unwrap().to_string())),
        }
    }
}

impl AccessTokens for EmulatorTokens {
    fn access_token(&self) -> Result<SecretString, TokenError> {
        let mut cur = self.current.lock().unwrap();
        if let Some(t) = cur.as_ref() {
            return Ok(SecretString::from(t.clone()));
        }
        let v: Value = http()
            .post(format!("{}/token", self.base))
            .form(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", self.refresh.as_str()),
                ("client_id", CLIENT_ID),
                ("client_secret", CLIENT_SECRET),
            ])
            .send()
            .and_then(|r| r.json())
            .map_err(|e| TokenError::Unavailable(e.to_string()))?;
        let t = v["access_token"]
            .as_str()
            .ok_or_else(|| TokenError::Unavailable(v.to_string()))?
            .to_string();
        *cur = Some(t.clone());
        Ok(SecretString::from(t))
    }

    fn invalidate(&self) {
        *self.current.lock().unwrap() = None;
    }
}

/// Requests the emulator has counted, per route.
fn requests(base: &str) -> serde_json::Map<String, Value> {
    let v: Value = http()
        .get(format!("{base}/_emulator/state"))
        .send()
        .and_then(|r| r.json())
        .expect("emulator state");
    v["requests"].as_object().cloned().unwrap_or_default()
}

fn total(m: &serde_json::Map<String, Value>) -> u64 {
    m.values().filter_map(Value::as_u64).sum()
}

/// Requests per route between two snapshots (only routes that changed).
fn delta(
    before: &serde_json::Map<String, Value>,
    after: &serde_json::Map<String, Value>,
) -> serde_json::Map<String, Value> {
    after
        .iter()
        .filter_map(|(k, v)| {
            let n = v.as_u64()? - before.get(k).and_then(Value::as_u64).unwrap_or(0);
            (n > 0).then(|| (k.clone(), Value::from(n)))
        })
        .collect()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let base = args
        .get(1)
        .expect("usage: bench_drive EMULATOR_BASE_URL [MB] [CHUNK_MIB]")
        .trim_end_matches('/')
        .to_string();
    let mb: u64 = args.get(2).map_or(256, |s| s.parse().expect("MB"));
    let chunk_mib: usize = args.get(3).map_or(8, |s| s.parse().expect("CHUNK_MIB"));
    let size = mb << 20;

    let state_dir = tempfile::tempdir().expect("a temporary folder");
    let mut config = DriveConfig::new(DriveLocation::AppData, state_dir.path());
    config.endpoints = GoogleEndpoints::with_base(&base);
    config.chunk_size = chunk_mib << 20;
    let store =
        DriveStore::new(Arc::new(EmulatorTokens::sign_in(&base)), config).expect("a Drive store");
    // Warm up: the first call finds (or makes) the folder and the connection.
    store.list().expect("list");

    // Upload: random bytes written in 1 MiB pieces, as the backup writer does.
    let created = Utc::now();
    let id = format!("{:08x}", rand::random::<u32>());
    let name = manifest::backup_file_name("bench", created, &id);
    let mut rng = rand::thread_rng();
    let mut piece = vec![0u8; 1 << 20];
    let r0 = requests(&base);
    let started = Instant::now();
    let mut generating = Duration::ZERO;
    let mut sink = store.create(&name).expect("create");
    let mut left = size;
    while left > 0 {
        let n = left.min(piece.len() as u64) as usize;
        let g = Instant::now();
        rng.fill_bytes(&mut piece[..n]);
        generating += g.elapsed();
        sink.write_all(&piece[..n]).expect("upload");
        left -= n as u64;
    }
    let backup = sink
        .commit(&BackupSummary {
            id,
            created,
            database: "bench".into(),
            documents: 0,
            status: BackupStatus::Complete,
            format_version: manifest::FORMAT_VERSION,
            signature: None,
            link: None,
        })
        .expect("commit");
    let upload_secs = (started.elapsed() - generating).as_secs_f64();
    let r1 = requests(&base);
    assert_eq!(backup.bytes, size);

    // Download: streamed and checked against the SHA-256 recorded at commit.
    let started = Instant::now();
    let mut reader = store.open(&backup).expect("open");
    let mut got = 0u64;
    loop {
        let n = reader.read(&mut piece).expect("download");
        if n == 0 {
            break;
        }
        got += n as u64;
    }
    drop(reader);
    let download_secs = started.elapsed().as_secs_f64();
    let r2 = requests(&base);
    assert_eq!(got, size);
    store.delete(&backup).expect("delete");

    let gb = size as f64 / (1u64 << 30) as f64;
    let (up, down) = (delta(&r0, &r1), delta(&r1, &r2));
    println!(
        "{}",
        serde_json::json!({
            "mb": mb,
            "chunk_mib": chunk_mib,
            "upload_seconds": upload_secs,
            "upload_mb_per_s": mb as f64 / upload_secs,
            "download_seconds": download_secs,
            "download_mb_per_s": mb as f64 / download_secs,
            "upload_requests": total(&up),
            "upload_requests_per_gb": total(&up) as f64 / gb,
            "upload_routes": up,
            "download_requests": total(&down),
            "download_requests_per_gb": total(&down) as f64 / gb,
            "download_routes": down,
            "random_data_seconds": generating.as_secs_f64(),
        })
    );
}
