//! The harness every Driveback test shares.
//!
//! - [`mongo`]: one real MongoDB-wire server per test binary (SecantusDB from the project's
//!   virtualenv on a free loopback port), or the server `MONGODB_TEST_URI` names. Tests isolate
//!   themselves by database name ([`TestMongo::fresh_db`]), so they can run in parallel.
//! - [`require_keyring`]: whether the real Secret Service is there (the test script runs the suite
//!   inside `dbus-run-session` with an unlocked gnome-keyring).
//! - [`repo_root`], [`driveback_bin`]: paths.
//! - [`emulator`]: the `drive-emulator` binary (Google OAuth + Drive), one per test.

pub mod emulator;

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The repository's top folder.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("repo root")
}

/// The `driveback` CLI built by this test run (`cargo test` builds it for the CLI crate's tests).
pub fn driveback_bin() -> PathBuf {
    if let Ok(p) = std::env::var("CARGO_BIN_EXE_driveback") {
        return PathBuf::from(p);
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target"));
    target.join("debug").join("driveback")
}

/// A MongoDB-wire server for the tests of one binary.
pub struct TestMongo {
    uri: String,
    /// True for the bundled test server (SecantusDB), false for an external mongod.
    pub is_test_server: bool,
}

impl TestMongo {
    /// Connection string (no credentials for the bundled server).
    pub fn uri(&self) -> &str {
        &self.uri
    }

    pub async fn client(&self) -> mongodb::Client {
        mongodb::Client::with_uri_str(&self.uri)
            .await
            .expect("connect to the test server")
    }

    /// Arms the server's `failCommand` fail point for clients whose appName is `app_name`.
    pub async fn fail_command(
        &self,
        app_name: &str,
        commands: &[&str],
        times: i32,
        error_code: i32,
        labels: &[&str],
    ) {
        let client = self.client().await;
        client
            .database("admin")
            .run_command(bson::doc! {
                "configureFailPoint": "failCommand",
                "mode": { "times": times },
                "data": { "failCommands": commands, "errorCode": error_code, "errorLabels": labels, "appName": app_name },
            })
            .await
            .expect("configureFailPoint (the server must allow test commands)");
    }

    /// A database name no other test uses.
    pub fn fresh_db(&self, prefix: &str) -> String {
        format!("{prefix}_{:08x}", rand::random::<u32>())
    }
}

static MONGO: OnceLock<TestMongo> = OnceLock::new();

/// The server for this test binary, started on first use.
pub fn mongo() -> &'static TestMongo {
    MONGO.get_or_init(|| {
        if let Ok(uri) = std::env::var("MONGODB_TEST_URI") {
            if !uri.is_empty() {
                return TestMongo {
                    uri,
                    is_test_server: false,
                };
            }
        }
        start_test_server()
    })
}

/// Where the project's Python virtualenv with the test servers lives.
pub fn venv_dir() -> PathBuf {
    std::env::var_os("DRIVEBACK_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join(".venv"))
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start_test_server() -> TestMongo {
    let exe = venv_dir().join("bin/secantusd-py");
    assert!(
        exe.exists(),
        "the MongoDB-compatible test server is not installed at {} (run scripts/test, or set MONGODB_TEST_URI)",
        exe.display()
    );
    let port = free_port();
    let (tx, rx) = std::sync::mpsc::channel();
    // The server is spawned from a thread that lives as long as the test process, so that the
    // parent-death signal (which fires when the spawning *thread* ends) kills it exactly when the
    // test binary exits, however it exits.
    std::thread::spawn(move || {
        let mut cmd = Command::new(&exe);
        cmd.args([
            "--host",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "--storage-path",
            ":memory:",
        ])
        // Test-only commands (failCommand) let tests inject server errors.
        .args(["--log-level", "WARNING", "--enable-test-commands"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
        unsafe {
            use std::os::unix::process::CommandExt;
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let mut child = cmd.spawn().expect("start the test server");
        let stderr = child.stderr.take().unwrap();
        tx.send(()).unwrap();
        // Keep draining its log so it never blocks on a full pipe; echo warnings for debugging.
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if std::env::var_os("DRIVEBACK_TEST_SERVER_LOG").is_some() {
                eprintln!("[test-server] {line}");
            }
        }
        let _ = child.wait();
        loop {
            std::thread::park();
        }
    });
    rx.recv().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "the test server did not start on port {port} within 60 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    TestMongo {
        uri: format!("mongodb://127.0.0.1:{port}/?directConnection=true"),
        is_test_server: true,
    }
}

/// True when the OS keyring (Secret Service) answers. With `DRIVEBACK_REQUIRE_KEYRING=1` (set by
/// the test script) a missing keyring is a failure, not a reason to skip.
pub fn require_keyring() -> bool {
    let ok = std::env::var_os("DBUS_SESSION_BUS_ADDRESS").is_some()
        && Command::new("secret-tool")
            .args(["search", "service", "driveback-probe"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map(|s| s.code().is_some())
            .unwrap_or(false);
    if !ok && std::env::var("DRIVEBACK_REQUIRE_KEYRING").as_deref() == Ok("1") {
        panic!("DRIVEBACK_REQUIRE_KEYRING=1 but no Secret Service answers on the session bus");
    }
    ok
}
