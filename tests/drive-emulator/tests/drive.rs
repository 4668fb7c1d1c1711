mod common;

use common::*;
use drive_emulator::Config;
use reqwest::Method;
use serde_json::json;

fn enc(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[tokio::test]
async fn about_honours_fields_and_requires_them() {
    let emu = start(Config {
        auto_consent: true,
        quota_bytes: 1_000_000,
        ..Config::default()
    })
    .await;
    let tok = emu.token(APPDATA).await;
    let r = emu
        .get(
            "/drive/v3/about?fields=user(emailAddress,displayName),storageQuota",
            Some(&tok),
        )
        .await;
    assert_eq!(r.status, 200);
    let v = r.json();
    assert_eq!(
        v["user"],
        json!({"emailAddress": "demo.user@example.com", "displayName": "Demo User"})
    );
    assert_eq!(v["storageQuota"]["limit"], "1000000");
    assert_eq!(v["storageQuota"]["usage"], "0");
    assert_eq!(v["storageQuota"]["usageInDrive"], "0");
    assert!(v.get("kind").is_none());
    let r = emu.get("/drive/v3/about", Some(&tok)).await;
    assert_eq!(r.status, 400);
    assert_eq!(r.reason(), "required");
    let r = emu
        .get("/drive/v3/about?fields=user(bogus)", Some(&tok))
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.reason(), "invalidParameter");
    let r = emu.get("/drive/v3/about?fields=user", None).await;
    assert_eq!(r.status, 401);
}

#[tokio::test]
async fn list_paging_query_order_and_fields() {
    let emu = start_default().await;
    let tok = emu.token(APPDATA).await;
    for i in 0..7 {
        let meta = json!({
            "name": format!("backup-{i}.archive"),
            "parents": ["appDataFolder"],
            "appProperties": {"db": if i % 2 == 0 { "shop" } else { "crm" }},
        });
        let r = emu
            .multipart(&tok, meta, format!("data{i}").as_bytes())
            .await;
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        emu.control("advance-clock", json!({"seconds": 60})).await;
    }
    // Paging newest first, 3 at a time.
    let mut names = vec![];
    let mut token: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut url = format!(
            "/drive/v3/files?spaces=appDataFolder&orderBy={}&pageSize=3&fields={}",
            enc("createdTime desc"),
            enc("nextPageToken,files(id,name,size,createdTime,appProperties,md5Checksum,sha256Checksum)")
        );
        if let Some(t) = &token {
            url.push_str(&format!("&pageToken={}", enc(t)));
        }
        let r = emu.get(&url, Some(&tok)).await;
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        let v = r.json();
        assert!(v.get("kind").is_none(), "fields excludes kind");
        for f in v["files"].as_array().unwrap() {
            assert!(f.get("mimeType").is_none());
            assert_eq!(f["size"], "5");
            assert_eq!(f["md5Checksum"].as_str().unwrap().len(), 32);
            assert_eq!(f["sha256Checksum"].as_str().unwrap().len(), 64);
            assert!(f["createdTime"].as_str().unwrap().ends_with('Z'));
            names.push(f["name"].as_str().unwrap().to_string());
        }
        pages += 1;
        match v.get("nextPageToken") {
            Some(t) => token = Some(t.as_str().unwrap().to_string()),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    let expected: Vec<String> = (0..7)
        .rev()
        .map(|i| format!("backup-{i}.archive"))
        .collect();
    assert_eq!(names, expected);

    // q: appProperties has, name contains, in parents, trashed.
    let q = "appProperties has { key='db' and value='shop' } and 'appDataFolder' in parents and trashed = false";
    let url = format!(
        "/drive/v3/files?spaces=appDataFolder&q={}&orderBy=name&fields=files(name,parents)",
        enc(q)
    );
    let v = emu.get(&url, Some(&tok)).await.json();
    let got: Vec<&str> = v["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        got,
        [
            "backup-0.archive",
            "backup-2.archive",
            "backup-4.archive",
            "backup-6.archive"
        ]
    );
    // Parents are the real id of the app data folder, not the alias.
    let parent = v["files"][0]["parents"][0].as_str().unwrap();
    assert_ne!(parent, "appDataFolder");
    let folder = emu
        .get("/drive/v3/files/appDataFolder?fields=id", Some(&tok))
        .await
        .json();
    assert_eq!(folder["id"], parent);

    let url = format!(
        "/drive/v3/files?spaces=appDataFolder&q={}",
        enc("name = 'backup-3.archive'")
    );
    let v = emu.get(&url, Some(&tok)).await.json();
    assert_eq!(v["kind"], "drive#fileList");
    assert_eq!(v["files"].as_array().unwrap().len(), 1);
    // Default fields: kind, id, name, mimeType only.
    let f = v["files"][0].as_object().unwrap();
    let mut keys: Vec<&str> = f.keys().map(String::as_str).collect();
    keys.sort();
    assert_eq!(keys, ["id", "kind", "mimeType", "name"]);

    // Bad q, bad orderBy, bad pageSize, forged page token.
    for bad in [
        format!("q={}", enc("name = ")),
        format!("q={}", enc("fullText contains 'x'")),
        "orderBy=size".to_string(),
        "pageSize=0".to_string(),
        "pageSize=1001".to_string(),
        "pageToken=garbage".to_string(),
    ] {
        let r = emu
            .get(
                &format!("/drive/v3/files?spaces=appDataFolder&{bad}"),
                Some(&tok),
            )
            .await;
        assert_eq!(r.status, 400, "{bad}");
        assert_eq!(r.json()["error"]["code"], 400);
    }
    // A token from one query does not work with another.
    let url = "/drive/v3/files?spaces=appDataFolder&pageSize=2&orderBy=name";
    let t = emu.get(url, Some(&tok)).await.json()["nextPageToken"]
        .as_str()
        .unwrap()
        .to_string();
    let r = emu
        .get(
            &format!(
                "/drive/v3/files?spaces=appDataFolder&pageSize=2&orderBy=createdTime&pageToken={}",
                enc(&t)
            ),
            Some(&tok),
        )
        .await;
    assert_eq!(r.status, 400);
}

#[tokio::test]
async fn paging_survives_deletion_of_listed_files() {
    let emu = start_default().await;
    let tok = emu.token(APPDATA).await;
    for i in 0..6 {
        emu.multipart(&tok, appdata_meta(&format!("f{i}")), b"x")
            .await;
    }
    let url = "/drive/v3/files?spaces=appDataFolder&orderBy=name&pageSize=2";
    let v = emu.get(url, Some(&tok)).await.json();
    let next = v["nextPageToken"].as_str().unwrap().to_string();
    // Delete the first page (retention pruning while paging) and continue.
    for f in v["files"].as_array().unwrap() {
        let r = emu
            .send(
                Method::DELETE,
                &format!("/drive/v3/files/{}", f["id"].as_str().unwrap()),
                Some(&tok),
                &[],
                vec![],
            )
            .await;
        assert_eq!(r.status, 204);
    }
    let v = emu
        .get(&format!("{url}&pageToken={}", enc(&next)), Some(&tok))
        .await
        .json();
    let names: Vec<&str> = v["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["f2", "f3"]);
}

#[tokio::test]
async fn app_properties_merge_null_delete_and_size_limit() {
    let emu = start_default().await;
    let tok = emu.token(APPDATA).await;
    let r = emu
        .multipart(
            &tok,
            json!({"name": "a", "parents": ["appDataFolder"], "appProperties": {"k1": "v1", "k2": "v2"}}),
            b"hello",
        )
        .await;
    let id = r.json()["id"].as_str().unwrap().to_string();
    let r = emu
        .patch_json(
            &format!("/drive/v3/files/{id}?fields=name,appProperties"),
            Some(&tok),
            json!({"name": "b", "appProperties": {"k1": null, "k3": "v3"}}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(
        r.json(),
        json!({"name": "b", "appProperties": {"k2": "v2", "k3": "v3"}})
    );
    // 124 bytes (key + value, UTF-8) is the limit.
    let ok_value = "x".repeat(122);
    let r = emu
        .patch_json(
            &format!("/drive/v3/files/{id}"),
            Some(&tok),
            json!({"appProperties": {"kk": ok_value}}),
        )
        .await;
    assert_eq!(r.status, 200);
    let too_long = "é".repeat(62); // 124 bytes of value + 2 of key
    let r = emu
        .patch_json(
            &format!("/drive/v3/files/{id}"),
            Some(&tok),
            json!({"appProperties": {"kk": too_long}}),
        )
        .await;
    assert_eq!(r.status, 403);
    assert_eq!(r.reason(), "propertyLengthLimitExceeded");
    // parents and read-only fields are not writable.
    let r = emu
        .patch_json(
            &format!("/drive/v3/files/{id}"),
            Some(&tok),
            json!({"parents": ["x"]}),
        )
        .await;
    assert_eq!(r.status, 403);
    assert_eq!(r.reason(), "fieldNotWritable");
    let r = emu
        .patch_json(
            &format!("/drive/v3/files/{id}"),
            Some(&tok),
            json!({"size": "1"}),
        )
        .await;
    assert_eq!(r.reason(), "fieldNotWritable");
}

#[tokio::test]
async fn scopes_appdata_and_drive_file() {
    let emu = start(Config {
        auto_consent: true,
        clients: vec![
            (CLIENT_ID.into(), CLIENT_SECRET.into()),
            (
                "other.apps.googleusercontent.com".into(),
                "other-secret".into(),
            ),
        ],
        ..Config::default()
    })
    .await;
    let appdata = emu.token(APPDATA).await;
    // appdata-only: anything outside appDataFolder is refused.
    let r = emu.get("/drive/v3/files", Some(&appdata)).await;
    assert_eq!(r.status, 403);
    assert_eq!(r.reason(), "insufficientPermissions");
    assert_eq!(
        r.json()["error"]["message"],
        "Insufficient Permission: Request had insufficient authentication scopes."
    );
    let r = emu
        .post_json("/drive/v3/files", Some(&appdata), json!({"name": "x"}))
        .await;
    assert_eq!(r.status, 403);
    assert_eq!(r.reason(), "insufficientPermissions");
    assert_eq!(
        emu.get("/drive/v3/files?spaces=appDataFolder", Some(&appdata))
            .await
            .status,
        200
    );

    // drive.file without appdata: the app data folder is refused.
    let file = emu.token(FILE).await;
    let r = emu
        .get("/drive/v3/files?spaces=appDataFolder", Some(&file))
        .await;
    assert_eq!(r.status, 403);
    assert_eq!(r.reason(), "insufficientScopes");
    // drive.file sees what this app created, not what another app created.
    let mine = emu
        .post_json(
            "/drive/v3/files",
            Some(&file),
            json!({"name": "Driveback", "mimeType": "application/vnd.google-apps.folder"}),
        )
        .await;
    assert_eq!(mine.status, 200);
    let folder_id = mine.json()["id"].as_str().unwrap().to_string();
    assert_eq!(
        mine.json()["mimeType"],
        "application/vnd.google-apps.folder"
    );
    let r = emu
        .get(&format!("/drive/v3/files/{folder_id}"), Some(&appdata))
        .await;
    assert_eq!(r.status, 403);

    // Another client with drive.file: 404 on our folder, and lists nothing.
    let code = {
        let url = emu.authorize_url(FILE, REDIRECT, "s").replace(
            &form(&[("client_id", CLIENT_ID)]),
            &form(&[("client_id", "other.apps.googleusercontent.com")]),
        );
        let r = emu.get(&url, None).await;
        params(&r.header("location").unwrap())["code"].clone()
    };
    let other = emu
        .post_form(
            "/token",
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", REDIRECT),
                ("client_id", "other.apps.googleusercontent.com"),
                ("client_secret", "other-secret"),
                ("code_verifier", VERIFIER),
            ],
        )
        .await
        .json()["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    let r = emu
        .get(&format!("/drive/v3/files/{folder_id}"), Some(&other))
        .await;
    assert_eq!(r.status, 404);
    assert_eq!(
        r.json()["error"]["message"],
        format!("File not found: {folder_id}.")
    );
    assert_eq!(r.json()["error"]["errors"][0]["location"], "fileId");
    let v = emu.get("/drive/v3/files", Some(&other)).await.json();
    assert_eq!(v["files"].as_array().unwrap().len(), 0);
    let v = emu.get("/drive/v3/files", Some(&file)).await.json();
    assert_eq!(v["files"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn folders_multipart_media_range_and_delete() {
    let emu = start_default().await;
    let tok = emu.token(&format!("{APPDATA} {FILE}")).await;
    let folder = emu
        .post_json(
            "/drive/v3/files?fields=id,parents,mimeType",
            Some(&tok),
            json!({"name": "backups", "mimeType": "application/vnd.google-apps.folder", "parents": ["appDataFolder"]}),
        )
        .await
        .json();
    let fid = folder["id"].as_str().unwrap().to_string();
    let data = blob(300_000, 3);
    let r = emu
        .multipart(&tok, json!({"name": "dump.archive.zst.age", "parents": [fid], "mimeType": "application/octet-stream"}), &data)
        .await;
    assert_eq!(r.status, 200);
    let file = r.json();
    assert_eq!(file["kind"], "drive#file");
    assert_eq!(file["size"], "300000");
    assert_eq!(file["md5Checksum"], md5_hex(&data));
    assert_eq!(file["sha256Checksum"], sha256_hex(&data));
    assert_eq!(file["parents"][0], fid.as_str());
    assert_eq!(file["spaces"][0], "appDataFolder");
    let id = file["id"].as_str().unwrap().to_string();
    assert_eq!(id.len(), 33);

    // Full download, Range download, unsatisfiable range, folder download.
    let r = emu
        .get(&format!("/drive/v3/files/{id}?alt=media"), Some(&tok))
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body, data);
    let r = emu
        .send(
            Method::GET,
            &format!("/drive/v3/files/{id}?alt=media"),
            Some(&tok),
            &[("range", "bytes=100-199")],
            vec![],
        )
        .await;
    assert_eq!(r.status, 206);
    assert_eq!(r.header("content-range").unwrap(), "bytes 100-199/300000");
    assert_eq!(r.body, &data[100..200]);
    let r = emu
        .send(
            Method::GET,
            &format!("/drive/v3/files/{id}?alt=media"),
            Some(&tok),
            &[("range", "bytes=299990-")],
            vec![],
        )
        .await;
    assert_eq!(r.status, 206);
    assert_eq!(r.body, &data[299_990..]);
    let r = emu
        .send(
            Method::GET,
            &format!("/drive/v3/files/{id}?alt=media"),
            Some(&tok),
            &[("range", "bytes=400000-")],
            vec![],
        )
        .await;
    assert_eq!(r.status, 416);
    let r = emu
        .get(&format!("/drive/v3/files/{fid}?alt=media"), Some(&tok))
        .await;
    assert_eq!(r.status, 403);
    assert_eq!(r.reason(), "fileNotDownloadable");

    // Metadata get with fields.
    let r = emu
        .get(
            &format!("/drive/v3/files/{id}?fields=id,name,size,md5Checksum"),
            Some(&tok),
        )
        .await;
    assert_eq!(
        r.json(),
        json!({"id": id, "name": "dump.archive.zst.age", "size": "300000", "md5Checksum": md5_hex(&data)})
    );

    // Deleting the folder deletes what is inside; then 404 in Google's shape.
    let r = emu
        .send(
            Method::DELETE,
            &format!("/drive/v3/files/{fid}"),
            Some(&tok),
            &[],
            vec![],
        )
        .await;
    assert_eq!(r.status, 204);
    let r = emu.get(&format!("/drive/v3/files/{id}"), Some(&tok)).await;
    assert_eq!(r.status, 404);
    assert_eq!(
        r.json(),
        json!({"error": {"code": 404, "message": format!("File not found: {id}."), "errors": [{
            "domain": "global", "reason": "notFound", "message": format!("File not found: {id}."),
            "locationType": "parameter", "location": "fileId"}]}})
    );
    assert_eq!(emu.state().await["files"]["count"], 0);
}

#[tokio::test]
async fn trash_filter_and_simple_media_upload() {
    let emu = start_default().await;
    let tok = emu.token(FILE).await;
    let r = emu
        .send(
            Method::POST,
            "/upload/drive/v3/files?uploadType=media&fields=id,name,mimeType,size",
            Some(&tok),
            &[("content-type", "text/plain")],
            b"plain".to_vec(),
        )
        .await;
    let v = r.json();
    assert_eq!(v["name"], "Untitled");
    assert_eq!(v["mimeType"], "text/plain");
    let id = v["id"].as_str().unwrap();
    emu.patch_json(
        &format!("/drive/v3/files/{id}"),
        Some(&tok),
        json!({"trashed": true}),
    )
    .await;
    let q = format!("/drive/v3/files?q={}", enc("trashed = false"));
    assert_eq!(
        emu.get(&q, Some(&tok)).await.json()["files"]
            .as_array()
            .unwrap()
            .len(),
        0
    );
    let q = format!(
        "/drive/v3/files?q={}&fields=files(trashed)",
        enc("trashed = true")
    );
    assert_eq!(
        emu.get(&q, Some(&tok)).await.json()["files"][0]["trashed"],
        true
    );
}

#[tokio::test]
async fn quota_exceeded_on_multipart() {
    let emu = start(Config {
        auto_consent: true,
        quota_bytes: 1000,
        ..Config::default()
    })
    .await;
    let tok = emu.token(APPDATA).await;
    assert_eq!(
        emu.multipart(&tok, appdata_meta("a"), &[0u8; 600])
            .await
            .status,
        200
    );
    let r = emu.multipart(&tok, appdata_meta("b"), &[0u8; 600]).await;
    assert_eq!(r.status, 403);
    let e = r.json();
    assert_eq!(
        e["error"]["message"],
        "The user's Drive storage quota has been exceeded."
    );
    assert_eq!(e["error"]["errors"][0]["reason"], "storageQuotaExceeded");
    assert_eq!(e["error"]["errors"][0]["domain"], "usageLimits");
    emu.control("quota", json!({"limit": 2000})).await;
    assert_eq!(
        emu.multipart(&tok, appdata_meta("b"), &[0u8; 600])
            .await
            .status,
        200
    );
    let about = emu
        .get(
            "/drive/v3/about?fields=storageQuota(limit,usage)",
            Some(&tok),
        )
        .await
        .json();
    assert_eq!(
        about,
        json!({"storageQuota": {"limit": "2000", "usage": "1200"}})
    );
}

#[tokio::test]
async fn faults_count_retry_after_and_state() {
    let emu = start_default().await;
    let tok = emu.token(APPDATA).await;
    emu.control(
        "faults",
        json!({"route": "list", "status": 429, "count": 2, "retry_after": 3}),
    )
    .await;
    emu.control(
        "faults",
        json!({"route": "about", "status": 403, "reason": "userRateLimitExceeded", "count": 1}),
    )
    .await;
    let url = "/drive/v3/files?spaces=appDataFolder";
    for _ in 0..2 {
        let r = emu.get(url, Some(&tok)).await;
        assert_eq!(r.status, 429);
        assert_eq!(r.header("retry-after").as_deref(), Some("3"));
        assert_eq!(r.reason(), "rateLimitExceeded");
        assert_eq!(r.json()["error"]["errors"][0]["domain"], "usageLimits");
    }
    assert_eq!(emu.get(url, Some(&tok)).await.status, 200);
    let r = emu.get("/drive/v3/about?fields=user", Some(&tok)).await;
    assert_eq!(r.status, 403);
    assert_eq!(r.reason(), "userRateLimitExceeded");
    assert_eq!(r.json()["error"]["message"], "User Rate Limit Exceeded");
    assert_eq!(
        emu.get("/drive/v3/about?fields=user", Some(&tok))
            .await
            .status,
        200
    );

    emu.control("faults", json!({"route": "*", "status": 500, "count": 1}))
        .await;
    let r = emu.get(url, Some(&tok)).await;
    assert_eq!(r.status, 500);
    assert_eq!(r.reason(), "backendError");

    let s = emu.state().await;
    assert_eq!(s["requests"]["list"], 4);
    assert_eq!(s["requests"]["about"], 2);
    assert_eq!(s["faults_fired"], 4);
    let r = emu
        .post_json(
            "/_emulator/faults",
            None,
            json!({"route": "nope", "status": 500}),
        )
        .await;
    assert_eq!(r.status, 400);

    emu.control("reset", json!({})).await;
    assert_eq!(emu.get(url, Some(&tok)).await.status, 401);
}
