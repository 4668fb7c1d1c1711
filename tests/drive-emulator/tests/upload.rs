mod common;

use common::*;
use drive_emulator::Config;
use reqwest::Method;
use serde_json::json;

const K256: usize = 256 * 1024;

#[tokio::test]
async fn resumable_happy_path_in_chunks() {
    let emu = start_default().await;
    let tok = emu.token(APPDATA).await;
    let data = blob(3 * K256 + 1000, 7);
    let total = data.len();
    let uri = emu
        .resumable(&tok, appdata_meta("db.archive"), Some(total as u64))
        .await;
    assert!(uri.starts_with(&emu.base));
    assert!(uri.contains("uploadType=resumable") && uri.contains("upload_id="));

    // Nothing received yet: 308 without Range.
    let r = emu
        .put_chunk(&uri, &format!("bytes */{total}"), vec![])
        .await;
    assert_eq!(r.status, 308);
    assert!(r.header("range").is_none());

    let r = emu
        .put_chunk(
            &uri,
            &format!("bytes 0-{}/{total}", 2 * K256 - 1),
            data[..2 * K256].to_vec(),
        )
        .await;
    assert_eq!(r.status, 308);
    assert_eq!(
        r.header("range").unwrap(),
        format!("bytes=0-{}", 2 * K256 - 1)
    );
    let r = emu
        .put_chunk(
            &uri,
            &format!("bytes {}-{}/{total}", 2 * K256, 3 * K256 - 1),
            data[2 * K256..3 * K256].to_vec(),
        )
        .await;
    assert_eq!(r.status, 308);
    let r = emu
        .put_chunk(
            &uri,
            &format!("bytes {}-{}/{total}", 3 * K256, total - 1),
            data[3 * K256..].to_vec(),
        )
        .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let f = r.json();
    assert_eq!(f["size"], total.to_string());
    assert_eq!(f["md5Checksum"], md5_hex(&data));
    assert_eq!(f["sha256Checksum"], sha256_hex(&data));
    assert_eq!(f["appProperties"]["kind"], "backup");
    assert_eq!(f["name"], "db.archive");

    // The session answers status queries with the file once complete.
    let r = emu
        .put_chunk(&uri, &format!("bytes */{total}"), vec![])
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["id"], f["id"]);

    let id = f["id"].as_str().unwrap();
    let r = emu
        .get(&format!("/drive/v3/files/{id}?alt=media"), Some(&tok))
        .await;
    assert_eq!(r.body, data);
    let s = emu.state().await;
    assert_eq!(s["upload_bytes_received"], total);
    assert_eq!(s["requests"]["upload_chunk"], 5);
    assert_eq!(s["requests"]["upload_init"], 1);
}

#[tokio::test]
async fn unknown_total_then_final_and_overlap_resend() {
    let emu = start_default().await;
    let tok = emu.token(APPDATA).await;
    let data = blob(2 * K256 + 10, 1);
    let total = data.len();
    let uri = emu.resumable(&tok, appdata_meta("stream"), None).await;
    let r = emu
        .put_chunk(
            &uri,
            &format!("bytes 0-{}/*", K256 - 1),
            data[..K256].to_vec(),
        )
        .await;
    assert_eq!(r.status, 308);
    // Re-sending already stored bytes (0..2*K256) is accepted; only the new part is kept.
    let r = emu
        .put_chunk(
            &uri,
            &format!("bytes 0-{}/*", 2 * K256 - 1),
            data[..2 * K256].to_vec(),
        )
        .await;
    assert_eq!(r.status, 308);
    assert_eq!(
        r.header("range").unwrap(),
        format!("bytes=0-{}", 2 * K256 - 1)
    );
    let r = emu.put_chunk(&uri, "bytes */*", vec![]).await;
    assert_eq!(
        r.header("range").unwrap(),
        format!("bytes=0-{}", 2 * K256 - 1)
    );
    let r = emu
        .put_chunk(
            &uri,
            &format!("bytes {}-{}/{total}", 2 * K256, total - 1),
            data[2 * K256..].to_vec(),
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["md5Checksum"], md5_hex(&data));
}

#[tokio::test]
async fn wrong_offset_bad_chunk_size_and_mismatched_length() {
    let emu = start_default().await;
    let tok = emu.token(APPDATA).await;
    let data = blob(3 * K256, 2);
    let total = data.len();
    let uri = emu
        .resumable(&tok, appdata_meta("x"), Some(total as u64))
        .await;
    // A gap: starting at 256 KiB when nothing was received.
    let r = emu
        .put_chunk(
            &uri,
            &format!("bytes {K256}-{}/{total}", 2 * K256 - 1),
            data[K256..2 * K256].to_vec(),
        )
        .await;
    assert_eq!(r.status, 400);
    assert!(r.json()["error"]["message"]
        .as_str()
        .unwrap()
        .contains("exceeds already uploaded size"));
    // A non-final chunk that is not a multiple of 256 KiB.
    let r = emu
        .put_chunk(
            &uri,
            &format!("bytes 0-99999/{total}"),
            data[..100_000].to_vec(),
        )
        .await;
    assert_eq!(r.status, 400);
    assert!(r.json()["error"]["message"]
        .as_str()
        .unwrap()
        .contains("262144"));
    // Content-Range not matching the body.
    let r = emu
        .put_chunk(
            &uri,
            &format!("bytes 0-{}/{total}", K256 - 1),
            data[..1000].to_vec(),
        )
        .await;
    assert_eq!(r.status, 400);
    // A total that differs from X-Upload-Content-Length.
    let r = emu
        .put_chunk(
            &uri,
            &format!("bytes 0-{}/{}", K256 - 1, total + 1),
            data[..K256].to_vec(),
        )
        .await;
    assert_eq!(r.status, 400);
    // Garbage Content-Range.
    let r = emu.put_chunk(&uri, "bytes=0-1/2", vec![1, 2]).await;
    assert_eq!(r.status, 400);
    // None of that stored anything.
    let r = emu
        .put_chunk(&uri, &format!("bytes */{total}"), vec![])
        .await;
    assert_eq!(r.status, 308);
    assert!(r.header("range").is_none());
}

#[tokio::test]
async fn expired_and_unknown_sessions_are_404() {
    let emu = start_default().await;
    let tok = emu.token(APPDATA).await;
    let uri = emu.resumable(&tok, appdata_meta("x"), Some(10)).await;
    let bogus = format!(
        "{}/upload/drive/v3/files?uploadType=resumable&upload_id=nope",
        emu.base
    );
    assert_eq!(
        emu.put_chunk(&bogus, "bytes 0-9/10", vec![0; 10])
            .await
            .status,
        404
    );
    emu.control("advance-clock", json!({"seconds": 7 * 24 * 3600 + 1}))
        .await;
    let r = emu.put_chunk(&uri, "bytes 0-9/10", vec![0; 10]).await;
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["error"]["code"], 404);
}

#[tokio::test]
async fn drop_connection_then_status_query_resume() {
    let emu = start_default().await;
    let tok = emu.token(APPDATA).await;
    let data = blob(4 * K256 + 77, 9);
    let total = data.len();
    let uri = emu
        .resumable(&tok, appdata_meta("drop"), Some(total as u64))
        .await;
    let r = emu
        .put_chunk(
            &uri,
            &format!("bytes 0-{}/{total}", K256 - 1),
            data[..K256].to_vec(),
        )
        .await;
    assert_eq!(r.status, 308);

    // Dropped without storing: the acknowledged range does not move.
    emu.control(
        "drop-connection",
        json!({"after_bytes": 100_000, "count": 1}),
    )
    .await;
    let res = emu
        .http
        .put(&uri)
        .header(
            "content-range",
            format!("bytes {K256}-{}/{total}", 3 * K256 - 1),
        )
        .body(data[K256..3 * K256].to_vec())
        .send()
        .await;
    assert!(res.is_err(), "the connection should have been dropped");
    let r = emu
        .put_chunk(&uri, &format!("bytes */{total}"), vec![])
        .await;
    assert_eq!(r.status, 308);
    assert_eq!(r.header("range").unwrap(), format!("bytes=0-{}", K256 - 1));

    // Dropped after storing part of the chunk: the client must resume from the new offset.
    emu.control(
        "drop-connection",
        json!({"after_bytes": 2 * K256, "count": 1, "store_partial": true}),
    )
    .await;
    let res = emu
        .http
        .put(&uri)
        .header(
            "content-range",
            format!("bytes {K256}-{}/{total}", total - 1),
        )
        .body(data[K256..].to_vec())
        .send()
        .await;
    assert!(res.is_err());
    let r = emu
        .put_chunk(&uri, &format!("bytes */{total}"), vec![])
        .await;
    assert_eq!(r.status, 308);
    let acked = 3 * K256;
    assert_eq!(r.header("range").unwrap(), format!("bytes=0-{}", acked - 1));
    let r = emu
        .put_chunk(
            &uri,
            &format!("bytes {acked}-{}/{total}", total - 1),
            data[acked..].to_vec(),
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["md5Checksum"], md5_hex(&data));
    let s = emu.state().await;
    assert_eq!(s["connections_dropped"], 2);
    // Bytes received: first chunk + 100000 + 2*K256 + the rest (re-sent bytes are visible here).
    assert_eq!(
        s["upload_bytes_received"],
        K256 + 100_000 + 2 * K256 + (total - acked)
    );
}

#[tokio::test]
async fn short_store_acknowledges_less_and_client_follows() {
    let emu = start_default().await;
    let tok = emu.token(APPDATA).await;
    let data = blob(2 * K256 + 500, 4);
    let total = data.len();
    let uri = emu
        .resumable(&tok, appdata_meta("short"), Some(total as u64))
        .await;
    emu.control("short-store", json!({"keep_bytes": K256}))
        .await;
    // Send everything at once; only 256 KiB is kept.
    let r = emu
        .put_chunk(
            &uri,
            &format!("bytes 0-{}/{total}", total - 1),
            data.clone(),
        )
        .await;
    assert_eq!(r.status, 308);
    assert_eq!(r.header("range").unwrap(), format!("bytes=0-{}", K256 - 1));
    let r = emu
        .put_chunk(
            &uri,
            &format!("bytes {K256}-{}/{total}", total - 1),
            data[K256..].to_vec(),
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["sha256Checksum"], sha256_hex(&data));
}

#[tokio::test]
async fn quota_on_resumable_init_and_chunks() {
    let emu = start(Config {
        auto_consent: true,
        quota_bytes: 3 * K256 as u64,
        ..Config::default()
    })
    .await;
    let tok = emu.token(APPDATA).await;
    // Declared size over quota: refused at initiation.
    let r = emu
        .send(
            Method::POST,
            "/upload/drive/v3/files?uploadType=resumable",
            Some(&tok),
            &[
                ("content-type", "application/json"),
                ("x-upload-content-length", &(4 * K256).to_string()),
            ],
            serde_json::to_vec(&appdata_meta("big")).unwrap(),
        )
        .await;
    assert_eq!(r.status, 403);
    assert_eq!(r.reason(), "storageQuotaExceeded");
    // Unknown size: refused on the chunk that crosses the limit.
    let uri = emu.resumable(&tok, appdata_meta("big"), None).await;
    let data = blob(4 * K256, 5);
    let r = emu
        .put_chunk(
            &uri,
            &format!("bytes 0-{}/*", 2 * K256 - 1),
            data[..2 * K256].to_vec(),
        )
        .await;
    assert_eq!(r.status, 308);
    let r = emu
        .put_chunk(
            &uri,
            &format!("bytes {}-{}/*", 2 * K256, 4 * K256 - 1),
            data[2 * K256..].to_vec(),
        )
        .await;
    assert_eq!(r.status, 403);
    assert_eq!(
        r.json()["error"]["message"],
        "The user's Drive storage quota has been exceeded."
    );
}

#[tokio::test]
async fn chunk_faults_then_retry() {
    let emu = start_default().await;
    let tok = emu.token(APPDATA).await;
    let data = blob(K256 + 5, 6);
    let total = data.len();
    let uri = emu
        .resumable(&tok, appdata_meta("f"), Some(total as u64))
        .await;
    emu.control(
        "faults",
        json!({"route": "upload", "status": 503, "count": 1, "retry_after": 2}),
    )
    .await;
    let range = format!("bytes 0-{}/{total}", total - 1);
    let r = emu.put_chunk(&uri, &range, data.clone()).await;
    assert_eq!(r.status, 503);
    assert_eq!(r.header("retry-after").as_deref(), Some("2"));
    let r = emu
        .put_chunk(&uri, &format!("bytes */{total}"), vec![])
        .await;
    assert_eq!(r.status, 308);
    let r = emu.put_chunk(&uri, &range, data.clone()).await;
    assert_eq!(r.status, 200);
    // Both attempts' bytes went over the wire.
    let s = emu.state().await;
    assert_eq!(s["upload_bytes_received"], 2 * total);
    assert_eq!(s["requests"]["upload_chunk"], 3);
}

#[tokio::test]
async fn resumable_update_of_existing_file() {
    let emu = start_default().await;
    let tok = emu.token(APPDATA).await;
    let id = emu.multipart(&tok, appdata_meta("m"), b"old").await.json()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = emu
        .send(
            Method::PATCH,
            &format!(
                "/upload/drive/v3/files/{id}?uploadType=resumable&fields=id,name,size,md5Checksum"
            ),
            Some(&tok),
            &[("content-type", "application/json")],
            serde_json::to_vec(&json!({"name": "m2"})).unwrap(),
        )
        .await;
    assert_eq!(r.status, 200);
    let uri = r.header("location").unwrap();
    let r = emu.put_chunk(&uri, "bytes 0-2/3", b"new".to_vec()).await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.json(),
        json!({"id": id, "name": "m2", "size": "3", "md5Checksum": md5_hex(b"new")})
    );
}

#[tokio::test]
async fn data_dir_survives_restart() {
    let dir = std::env::temp_dir().join(format!("drive-emulator-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let config = Config {
        auto_consent: true,
        data_dir: Some(dir.clone()),
        ..Config::default()
    };
    let (tok, refresh, id, uri, data) = {
        let emu = start(config.clone()).await;
        let t = emu.login(APPDATA).await;
        let tok = t["access_token"].as_str().unwrap().to_string();
        let id = emu
            .multipart(&tok, appdata_meta("keep"), b"persisted")
            .await
            .json()["id"]
            .as_str()
            .unwrap()
            .to_string();
        let data = blob(K256 + 3, 8);
        let uri = emu
            .resumable(&tok, appdata_meta("half"), Some(data.len() as u64))
            .await;
        let r = emu
            .put_chunk(
                &uri,
                &format!("bytes 0-{}/{}", K256 - 1, data.len()),
                data[..K256].to_vec(),
            )
            .await;
        assert_eq!(r.status, 308);
        (
            tok,
            t["refresh_token"].as_str().unwrap().to_string(),
            id,
            uri,
            data,
        )
    };
    let emu = start(config).await;
    let r = emu
        .get(&format!("/drive/v3/files/{id}?alt=media"), Some(&tok))
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"persisted");
    let r = emu
        .post_form(
            "/token",
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", &refresh),
                ("client_id", CLIENT_ID),
                ("client_secret", CLIENT_SECRET),
            ],
        )
        .await;
    assert_eq!(r.status, 200);
    // The session URI names the old port; reuse its path and query on the new server.
    let path = &uri[uri.find("/upload/").unwrap()..];
    let r = emu
        .put_chunk(path, &format!("bytes */{}", data.len()), vec![])
        .await;
    assert_eq!(r.status, 308);
    assert_eq!(r.header("range").unwrap(), format!("bytes=0-{}", K256 - 1));
    let r = emu
        .put_chunk(
            path,
            &format!("bytes {K256}-{}/{}", data.len() - 1, data.len()),
            data[K256..].to_vec(),
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["md5Checksum"], md5_hex(&data));
    drop(emu);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn binary_prints_its_address() {
    use std::io::BufRead;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_drive-emulator"))
        .args(["--port", "0", "--auto-consent"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        line.starts_with("drive-emulator listening on http://127.0.0.1:"),
        "{line}"
    );
    let port: u16 = line.trim().rsplit(':').next().unwrap().parse().unwrap();
    assert!(port > 0);
}

#[tokio::test]
async fn large_chunks_and_a_drop_in_the_middle_of_one() {
    let emu = start_default().await;
    let tok = emu.token(APPDATA).await;
    let chunk = 16 * 1024 * 1024;
    let data = blob(2 * chunk + 123, 11);
    let total = data.len();
    let uri = emu
        .resumable(&tok, appdata_meta("large"), Some(total as u64))
        .await;
    emu.control("drop-connection", json!({"after_bytes": 1 << 20}))
        .await;
    let res = emu
        .http
        .put(&uri)
        .header("content-range", format!("bytes 0-{}/{total}", chunk - 1))
        .body(data[..chunk].to_vec())
        .send()
        .await;
    assert!(res.is_err());
    let mut offset = 0;
    while offset < total {
        let end = (offset + chunk).min(total);
        let r = emu
            .put_chunk(
                &uri,
                &format!("bytes {offset}-{}/{total}", end - 1),
                data[offset..end].to_vec(),
            )
            .await;
        if end == total {
            assert_eq!(r.status, 200);
            assert_eq!(r.json()["md5Checksum"], md5_hex(&data));
        } else {
            assert_eq!(r.status, 308);
            assert_eq!(r.header("range").unwrap(), format!("bytes=0-{}", end - 1));
        }
        offset = end;
    }
}
