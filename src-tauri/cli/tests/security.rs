//! Security properties checked end to end (see `docs/SECURITY.md`):
//!
//! - the sign-in listener answers on 127.0.0.1 only: not on another loopback address, not on
//!   the machine's network addresses (and a forged `state` is refused: `google_connect.rs`);
//! - no secret (the passphrase, the backup key, an SMTP password, the password of a connection
//!   string, Google tokens) is printed, logged or written to a file under the app's folders or
//!   the destination, whatever the runs did.

mod common;

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use driveback_testkit::emulator::Emulator;

/// The addresses of this machine other than 127.0.0.1: other loopback addresses always, and
/// the network interfaces' addresses when `hostname -I` lists some.
fn other_local_addresses() -> Vec<IpAddr> {
    let mut v: Vec<IpAddr> = vec![
        IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)),
        IpAddr::V4(Ipv4Addr::new(127, 1, 2, 3)),
        "::1".parse().unwrap(),
    ];
    if let Ok(out) = Command::new("hostname").arg("-I").output() {
        for word in String::from_utf8_lossy(&out.stdout).split_whitespace() {
            if let Ok(ip) = word.parse::<IpAddr>() {
                if !ip.is_loopback() {
                    v.push(ip);
                }
            }
        }
    }
    v
}

#[test]
fn the_sign_in_listener_is_reachable_on_127_0_0_1_only() {
    if !keyring_or_skip() {
        return;
    }
    let emu = Emulator::start(&["--auto-consent"]);
    let dir = tempfile::tempdir().unwrap();
    let url_file = dir.path().join("url");
    let browser = dir.path().join("browser.sh");
    std::fs::write(
        &browser,
        format!(
            "#!/bin/sh\nprintf '%s' \"$1\" > '{0}.tmp' && mv '{0}.tmp' '{0}'\n",
            url_file.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&browser, std::fs::Permissions::from_mode(0o755)).unwrap();
    let service = format!("driveback-test-sec-{:08x}", rand::random::<u32>());
    let child = Command::new(env!("CARGO_BIN_EXE_driveback"))
        .args(["connect", "--timeout", "60"])
        .env("DRIVEBACK_GOOGLE_BASE_URL", emu.base_url())
        .env("DRIVEBACK_CONFIG_DIR", dir.path().join("config"))
        .env("DRIVEBACK_KEYRING_SERVICE", &service)
        .env("DRIVEBACK_BROWSER", &browser)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let url = loop {
        if let Ok(u) = std::fs::read_to_string(&url_file) {
            break u;
        }
        assert!(Instant::now() < deadline, "no browser was opened");
        std::thread::sleep(Duration::from_millis(20));
    };
    let redirect: url::Url = url::Url::parse(&url)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "redirect_uri")
        .map(|(_, v)| v.parse().unwrap())
        .expect("a redirect_uri");
    assert_eq!(redirect.host_str(), Some("127.0.0.1"), "{redirect}");
    let port = redirect.port().unwrap();
    // The listener is there on 127.0.0.1 ...
    TcpStream::connect_timeout(
        &SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_secs(5),
    )
    .expect("the listener answers on 127.0.0.1");
    // ... and nowhere else.
    let others = other_local_addresses();
    for ip in &others {
        let r = TcpStream::connect_timeout(&SocketAddr::new(*ip, port), Duration::from_secs(2));
        assert!(r.is_err(), "the sign-in listener answered on {ip}:{port}");
    }
    // The sign-in still completes through the right address.
    let status = Command::new("curl")
        .args(["-fsSL", "-o", "/dev/null", &url])
        .status()
        .unwrap();
    assert!(status.success());
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = Command::new(env!("CARGO_BIN_EXE_driveback"))
        .arg("disconnect")
        .env("DRIVEBACK_GOOGLE_BASE_URL", emu.base_url())
        .env("DRIVEBACK_CONFIG_DIR", dir.path().join("config"))
        .env("DRIVEBACK_KEYRING_SERVICE", &service)
        .output();
    println!(
        "RELIABILITY security | the sign-in listener refused connections on {} other local addresses | {} | 0",
        others.len(),
        others.len()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn no_secret_is_printed_logged_or_written_by_backups_restores_and_email() {
    if !keyring_or_skip() {
        return;
    }
    let server = mongo();
    let client = server.client().await;
    let db = server.fresh_db("secrets");
    seed_ids(&client, &db, "c", 100).await;
    let env = Env::new();
    let config = env.dir.path().join("config");
    let data = env.dir.path().join("data");
    let passphrase = format!("pass-{:016x}", rand::random::<u64>());
    let smtp_password = format!("smtp-{:016x}", rand::random::<u64>());
    let uri_password = format!("uripw{:016x}", rand::random::<u64>());
    let runs = std::cell::Cell::new(0);
    let run = |args: &[&str], extra: &[(&str, &str)], stdin: Option<&str>| {
        runs.set(runs.get() + 1);
        let mut c = Command::new(env!("CARGO_BIN_EXE_driveback"));
        c.args(args)
            .env_remove("DRIVEBACK_MONGO_URI")
            .env("DRIVEBACK_PASSPHRASE", &passphrase)
            .env("DRIVEBACK_KEYRING_SERVICE", &env.keyring_service)
            .env("DRIVEBACK_CONFIG_DIR", &config)
            .env("DRIVEBACK_DATA_DIR", &data)
            .env("DRIVEBACK_LOG", "debug")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in extra {
            c.env(k, v);
        }
        let mut child = c.spawn().unwrap();
        let mut input = child.stdin.take().unwrap();
        if let Some(s) = stdin {
            input.write_all(s.as_bytes()).unwrap();
        }
        drop(input);
        let out = child.wait_with_output().unwrap();
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    };
    let dest = env.dest();
    let mut printed = String::new();
    // Email settings with a password in the keyring, to a mail server that is not there.
    let closed_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
        .to_string();
    for (k, v) in [
        ("smtp.host", "127.0.0.1"),
        ("smtp.port", closed_port.as_str()),
        ("smtp.security", "none"),
        ("smtp.user", "reports@example.com"),
        ("smtp.from", "reports@example.com"),
        ("smtp.to", "me@example.com"),
        ("backup.dest", dest.as_str()),
        ("backup.database", db.as_str()),
    ] {
        printed += &run(&["config", "set", k, v], &[], None);
    }
    printed += &run(
        &["config", "set-secret", "smtp.password"],
        &[],
        Some(&format!("{smtp_password}\n")),
    );
    printed += &run(&["test-email"], &[], None);
    // Backups, a restore, a key shown, a passphrase change.
    printed += &run(&backup_args(server.uri(), &db, &dest), &[], None);
    let target = server.fresh_db("secrets_dst");
    printed += &run(&restore_args("latest", &dest, &target), &[], None);
    // A connection string with a password (given the safe way, in the environment).
    let with_password =
        server
            .uri()
            .replacen("mongodb://", &format!("mongodb://admin:{uri_password}@"), 1);
    printed += &run(
        &["backup", "--db", &db, "--dest", &dest],
        &[("DRIVEBACK_MONGO_URI", with_password.as_str())],
        None,
    );
    printed += &run(&["status", "--json"], &[], None);
    let new_pass = format!("newpass-{:016x}", rand::random::<u64>());
    printed += &run(
        &["key", "passwd", "--dest", &dest],
        &[("DRIVEBACK_NEW_PASSPHRASE", new_pass.as_str())],
        None,
    );
    assert!(printed.contains("DEBUG"), "debug logging was on: {printed}");
    assert_eq!(
        raw_docs(&client, &target, "c").await,
        raw_docs(&client, &db, "c").await,
        "the runs did their work: {printed}"
    );
    // The backup key itself (from `key show --secret`, which prints it on purpose).
    let key_line = run(&["key", "show", "--secret", "--dest", &dest], &[], None);
    let key = key_line
        .split_whitespace()
        .find(|w| w.starts_with("AGE-SECRET-KEY-1"))
        .unwrap_or_else(|| panic!("the key: {key_line}"))
        .to_string();

    let secrets = [
        ("the passphrase", passphrase.as_str()),
        ("the new passphrase", new_pass.as_str()),
        ("the SMTP password", smtp_password.as_str()),
        ("the connection string's password", uri_password.as_str()),
        ("the backup key", key.as_str()),
    ];
    let mut files = files_under(&config);
    files.extend(files_under(&data));
    files.extend(files_under(&env.dest_path()));
    assert!(files.len() >= 5, "{files:?}");
    for (what, secret) in secrets {
        assert!(!printed.contains(secret), "{what} was printed:\n{printed}");
        for f in &files {
            let text = String::from_utf8_lossy(&std::fs::read(f).unwrap()).into_owned();
            assert!(!text.contains(secret), "{what} is in {}", f.display());
        }
    }
    println!(
        "RELIABILITY security | {} secrets looked for in the output of {} runs and in the {} files they left | {} | 0",
        secrets.len(),
        runs.get(),
        files.len(),
        secrets.len() * (files.len() + 1)
    );
}

/// Secrets given in the environment are taken out of it when the process starts: a browser
/// started through the platform's opener (here `$BROWSER`, with no `xdg-open` on the PATH) does
/// not inherit them.
#[test]
fn no_child_process_inherits_a_secret_from_the_environment() {
    if !keyring_or_skip() {
        return;
    }
    let emu = Emulator::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let env_file = dir.path().join("browser-env");
    let browser = dir.path().join("browser.sh");
    std::fs::write(
        &browser,
        format!(
            "#!/bin/sh\n/usr/bin/env > '{0}.tmp' && /bin/mv '{0}.tmp' '{0}'\n",
            env_file.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&browser, std::fs::Permissions::from_mode(0o755)).unwrap();
    let empty_path = dir.path().join("bin");
    std::fs::create_dir_all(&empty_path).unwrap();
    let service = format!("driveback-test-sec-{:08x}", rand::random::<u32>());
    let mut child = Command::new(env!("CARGO_BIN_EXE_driveback"))
        .args(["connect", "--timeout", "30"])
        .env("DRIVEBACK_GOOGLE_BASE_URL", emu.base_url())
        .env("DRIVEBACK_CONFIG_DIR", dir.path().join("config"))
        .env("DRIVEBACK_KEYRING_SERVICE", &service)
        .env_remove("DRIVEBACK_BROWSER")
        .env("BROWSER", &browser)
        .env("PATH", &empty_path)
        .env("DRIVEBACK_PASSPHRASE", "secret passphrase 1234")
        .env("DRIVEBACK_SMTP_PASSWORD", "secret smtp 5678")
        .env(
            "DRIVEBACK_MONGO_URI",
            "mongodb://user:secret9012@localhost:1/",
        )
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let seen = loop {
        if let Ok(e) = std::fs::read_to_string(&env_file) {
            break e;
        }
        assert!(Instant::now() < deadline, "no browser was opened");
        std::thread::sleep(Duration::from_millis(20));
    };
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        seen.contains("BROWSER="),
        "the script saw its environment: {seen}"
    );
    for secret in ["secret passphrase 1234", "secret smtp 5678", "secret9012"] {
        assert!(!seen.contains(secret), "the browser inherited {secret:?}");
    }
}
