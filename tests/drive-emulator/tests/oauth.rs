mod common;

use base64::Engine;
use common::*;
use drive_emulator::Config;
use serde_json::json;

#[tokio::test]
async fn code_flow_with_pkce_and_userinfo() {
    let emu = start_default().await;
    let t = emu.login(&format!("{APPDATA} openid email")).await;
    assert_eq!(t["token_type"], "Bearer");
    assert_eq!(t["expires_in"], 3599);
    assert!(t["access_token"].as_str().unwrap().starts_with("ya29."));
    assert!(t["refresh_token"].as_str().unwrap().starts_with("1//"));
    let scope = t["scope"].as_str().unwrap();
    assert!(
        scope.contains(APPDATA) && scope.contains("userinfo.email") && scope.contains("openid")
    );
    // id_token: a JWT whose claims name the user and the client.
    let id = t["id_token"].as_str().unwrap();
    let claims = id.split('.').nth(1).unwrap();
    let claims: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(claims)
            .unwrap(),
    )
    .unwrap();
    assert_eq!(claims["email"], "demo.user@example.com");
    assert_eq!(claims["aud"], CLIENT_ID);

    let access = t["access_token"].as_str().unwrap();
    let u = emu.get("/oauth2/v3/userinfo", Some(access)).await;
    assert_eq!(u.status, 200);
    let u = u.json();
    assert_eq!(u["email"], "demo.user@example.com");
    assert_eq!(u["email_verified"], true);
    assert!(u["sub"].as_str().unwrap().len() > 5);
    assert_eq!(emu.get("/oauth2/v3/userinfo", None).await.status, 401);
}

#[tokio::test]
async fn code_errors_wrong_verifier_reuse_redirect_and_expiry() {
    let emu = start_default().await;
    // Wrong verifier.
    let code = emu.code(APPDATA).await;
    let r = emu
        .exchange(&code, "wrong-verifier-wrong-verifier-wrong-verifier-0000")
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"], "invalid_grant");
    // The code was burnt by that attempt.
    let r = emu.exchange(&code, VERIFIER).await;
    assert_eq!(r.json()["error"], "invalid_grant");

    // Reused code.
    let code = emu.code(APPDATA).await;
    assert_eq!(emu.exchange(&code, VERIFIER).await.status, 200);
    let r = emu.exchange(&code, VERIFIER).await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"], "invalid_grant");

    // Redirect URI differing from the authorize request.
    let code = emu.code(APPDATA).await;
    let r = emu
        .post_form(
            "/token",
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", "http://127.0.0.1:1/other"),
                ("client_id", CLIENT_ID),
                ("client_secret", CLIENT_SECRET),
                ("code_verifier", VERIFIER),
            ],
        )
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"], "redirect_uri_mismatch");

    // Missing verifier.
    let code = emu.code(APPDATA).await;
    let r = emu
        .post_form(
            "/token",
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", REDIRECT),
                ("client_id", CLIENT_ID),
                ("client_secret", CLIENT_SECRET),
            ],
        )
        .await;
    assert_eq!(r.json()["error"], "invalid_grant");

    // Codes expire after ten minutes of emulated time.
    let code = emu.code(APPDATA).await;
    emu.control("advance-clock", json!({"seconds": 601})).await;
    let r = emu.exchange(&code, VERIFIER).await;
    assert_eq!(r.json()["error"], "invalid_grant");
}

#[tokio::test]
async fn client_authentication() {
    let emu = start_default().await;
    let code = emu.code(APPDATA).await;
    let base = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", REDIRECT),
        ("code_verifier", VERIFIER),
    ];
    // Wrong secret in the body.
    let mut p = base.to_vec();
    p.extend([("client_id", CLIENT_ID), ("client_secret", "nope")]);
    let r = emu.post_form("/token", &p).await;
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["error"], "invalid_client");
    // Unknown client.
    let mut p = base.to_vec();
    p.extend([
        ("client_id", "other.apps.googleusercontent.com"),
        ("client_secret", "x"),
    ]);
    let r = emu.post_form("/token", &p).await;
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["error"], "invalid_client");
    // HTTP Basic works (the code is still unused: client errors come first).
    let basic =
        base64::engine::general_purpose::STANDARD.encode(format!("{CLIENT_ID}:{CLIENT_SECRET}"));
    let r = emu
        .send(
            reqwest::Method::POST,
            "/token",
            None,
            &[
                ("content-type", "application/x-www-form-urlencoded"),
                ("authorization", &format!("Basic {basic}")),
            ],
            form(&base).into_bytes(),
        )
        .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert!(r.header("cache-control").unwrap().contains("no-store"));
    // Unsupported grant type.
    let r = emu
        .post_form(
            "/token",
            &[
                ("grant_type", "password"),
                ("client_id", CLIENT_ID),
                ("client_secret", CLIENT_SECRET),
            ],
        )
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"], "unsupported_grant_type");
}

#[tokio::test]
async fn authorize_validation_pages() {
    let emu = start_default().await;
    let unknown = emu
        .authorize_url(APPDATA, REDIRECT, "s")
        .replace(&form(&[("client_id", CLIENT_ID)]), "client_id=nobody");
    let r = emu.get(&unknown, None).await;
    assert_eq!(r.status, 401);
    assert!(String::from_utf8_lossy(&r.body).contains("invalid_client"));
    let r = emu
        .get(
            &emu.authorize_url(APPDATA, "https://evil.example.com/cb", "s"),
            None,
        )
        .await;
    assert_eq!(r.status, 400);
    assert!(String::from_utf8_lossy(&r.body).contains("redirect_uri_mismatch"));
    // localhost and any port are fine.
    let r = emu
        .get(
            &emu.authorize_url(APPDATA, "http://localhost:8123/", "s"),
            None,
        )
        .await;
    assert_eq!(r.status, 302);
    let r = emu
        .get(
            &emu.authorize_url("https://www.googleapis.com/auth/gmail.send", REDIRECT, "s"),
            None,
        )
        .await;
    assert_eq!(r.status, 400);
    assert!(String::from_utf8_lossy(&r.body).contains("invalid_scope"));
}

#[tokio::test]
async fn consent_page_allow_deny_and_deny_next() {
    let emu = start(Config::default()).await;
    let page = emu
        .get(&emu.authorize_url(APPDATA, REDIRECT, "abc"), None)
        .await;
    assert_eq!(page.status, 200);
    let html = String::from_utf8_lossy(&page.body).to_string();
    assert!(html.contains("Allow") && html.contains("Deny"));
    let id = html
        .split("name=\"consent_id\" value=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_string();
    let r = emu
        .post_form(
            "/o/oauth2/v2/consent",
            &[("consent_id", &id), ("decision", "deny")],
        )
        .await;
    assert_eq!(r.status, 302);
    let p = params(&r.header("location").unwrap());
    assert_eq!(p["error"], "access_denied");
    assert_eq!(p["state"], "abc");

    let page = emu
        .get(&emu.authorize_url(APPDATA, REDIRECT, "def"), None)
        .await;
    let html = String::from_utf8_lossy(&page.body).to_string();
    let id = html
        .split("value=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap();
    let r = emu
        .post_form(
            "/o/oauth2/v2/consent",
            &[("consent_id", id), ("decision", "allow")],
        )
        .await;
    let p = params(&r.header("location").unwrap());
    assert_eq!(p["state"], "def");
    assert!(emu.exchange(&p["code"], VERIFIER).await.status == 200);

    emu.control("deny-next-consent", json!({})).await;
    let r = emu
        .get(&emu.authorize_url(APPDATA, REDIRECT, "ghi"), None)
        .await;
    assert_eq!(r.status, 302);
    assert_eq!(
        params(&r.header("location").unwrap())["error"],
        "access_denied"
    );
}

#[tokio::test]
async fn refresh_revoke_and_expiry() {
    let emu = start_default().await;
    let t = emu.login(APPDATA).await;
    let refresh = t["refresh_token"].as_str().unwrap().to_string();
    let about = "/drive/v3/about?fields=user(emailAddress)";
    let refresh_form = [
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh.as_str()),
        ("client_id", CLIENT_ID),
        ("client_secret", CLIENT_SECRET),
    ];

    // Access tokens expire with emulated time; the Drive answer is Google's 401 envelope.
    let access = t["access_token"].as_str().unwrap().to_string();
    assert_eq!(emu.get(about, Some(&access)).await.status, 200);
    emu.control("advance-clock", json!({"seconds": 3600})).await;
    let r = emu.get(about, Some(&access)).await;
    assert_eq!(r.status, 401);
    let e = r.json();
    assert_eq!(e["error"]["code"], 401);
    assert_eq!(e["error"]["status"], "UNAUTHENTICATED");
    assert_eq!(e["error"]["errors"][0]["reason"], "authError");
    assert_eq!(e["error"]["errors"][0]["location"], "Authorization");
    assert!(r.header("www-authenticate").is_some());

    // Refresh gives a new access token and no new refresh token.
    let r = emu.post_form("/token", &refresh_form).await;
    assert_eq!(r.status, 200);
    let n = r.json();
    assert!(n.get("refresh_token").is_none());
    assert_eq!(n["expires_in"], 3599);
    let access = n["access_token"].as_str().unwrap().to_string();
    assert_eq!(emu.get(about, Some(&access)).await.status, 200);

    // expire-tokens: access tokens die, refresh still works.
    emu.control("expire-tokens", json!({})).await;
    assert_eq!(emu.get(about, Some(&access)).await.status, 401);
    let access = emu.post_form("/token", &refresh_form).await.json()["access_token"]
        .as_str()
        .unwrap()
        .to_string();

    // Revoke by access token: the grant dies, refresh fails.
    let r = emu.post_form("/revoke", &[("token", &access)]).await;
    assert_eq!(r.status, 200);
    assert_eq!(emu.get(about, Some(&access)).await.status, 401);
    let r = emu.post_form("/token", &refresh_form).await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"], "invalid_grant");
    assert_eq!(
        r.json()["error_description"],
        "Token has been expired or revoked."
    );
    // Revoking again: invalid_token.
    let r = emu.post_form("/revoke", &[("token", &refresh)]).await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"], "invalid_token");

    // revoke-all kills every grant.
    let t = emu.login(APPDATA).await;
    emu.control("revoke-all", json!({})).await;
    let r = emu
        .post_form(
            "/token",
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", t["refresh_token"].as_str().unwrap()),
                ("client_id", CLIENT_ID),
                ("client_secret", CLIENT_SECRET),
            ],
        )
        .await;
    assert_eq!(r.json()["error"], "invalid_grant");
}

#[tokio::test]
async fn token_fault_injection_uses_oauth_shape() {
    let emu = start_default().await;
    let code = emu.code(APPDATA).await;
    emu.control(
        "faults",
        json!({"route": "token", "status": 503, "count": 1, "retry_after": 7}),
    )
    .await;
    let r = emu.exchange(&code, VERIFIER).await;
    assert_eq!(r.status, 503);
    assert_eq!(r.header("retry-after").as_deref(), Some("7"));
    assert!(r.json()["error"].is_string());
    // The injected failure did not burn the code.
    assert_eq!(emu.exchange(&code, VERIFIER).await.status, 200);
}

#[tokio::test]
async fn granular_consent_grants_only_the_ticked_scopes() {
    let emu = start_default().await;
    let r = emu
        .control("grant-only", json!({"scopes": ["openid", "email"]}))
        .await;
    assert_eq!(
        r["grant_only"],
        json!(["openid", "https://www.googleapis.com/auth/userinfo.email"])
    );
    let t = emu.login(&format!("{APPDATA} openid email")).await;
    let scope = t["scope"].as_str().unwrap();
    assert!(!scope.contains(APPDATA), "{scope}");
    assert!(
        scope.contains("openid") && scope.contains("userinfo.email"),
        "{scope}"
    );
    // The token cannot reach the app folder.
    let access = t["access_token"].as_str().unwrap();
    let r = emu
        .get("/drive/v3/files?spaces=appDataFolder", Some(access))
        .await;
    assert_eq!(r.status, 403, "{}", String::from_utf8_lossy(&r.body));
    // Only the next consent: the one after grants everything asked for again.
    let t = emu.login(&format!("{APPDATA} openid email")).await;
    assert!(t["scope"].as_str().unwrap().contains(APPDATA));
    assert_eq!(emu.state().await["grant_only"], json!(null));
}
