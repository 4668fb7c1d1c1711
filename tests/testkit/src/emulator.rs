//! The `drive-emulator` binary (Google OAuth + Drive v3), started per test on a free port.
//!
//! `cargo test --workspace` builds it (it is a binary of a workspace member with integration
//! tests); when only one package is tested, build it first with `cargo build -p drive-emulator`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Where the `drive-emulator` binary of this build is.
pub fn drive_emulator_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("DRIVE_EMULATOR_BIN") {
        return PathBuf::from(p);
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| crate::repo_root().join("target"));
    let target = if target.is_relative() {
        crate::repo_root().join(target)
    } else {
        target
    };
    target.join("debug").join("drive-emulator")
}

/// A running emulator; killed when dropped.
pub struct Emulator {
    child: Option<Child>,
    base: String,
    addr: String,
}

impl Emulator {
    /// Start `drive-emulator --port 0 ARGS...` and wait for its "listening on" line.
    pub fn start(args: &[&str]) -> Emulator {
        let exe = drive_emulator_bin();
        assert!(
            exe.exists(),
            "the drive-emulator binary is not built at {} (run `cargo build -p drive-emulator` with the same CARGO_TARGET_DIR, or set DRIVE_EMULATOR_BIN)",
            exe.display()
        );
        let mut cmd = Command::new(&exe);
        cmd.args(["--port", "0"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        unsafe {
            use std::os::unix::process::CommandExt;
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", exe.display()));
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            for line in lines.by_ref().map_while(Result::ok) {
                if let Some(url) = line.split("listening on ").nth(1) {
                    let _ = tx.send(url.trim().to_string());
                    break;
                }
            }
            // Keep draining so the emulator never blocks on a full pipe.
            for _ in lines {}
        });
        let base = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(b) => b,
            Err(_) => {
                let _ = child.kill();
                let status = child.wait().ok();
                panic!("drive-emulator did not report its address within 30 s (exit: {status:?})");
            }
        };
        let addr = base
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_string();
        Emulator {
            child: Some(child),
            base,
            addr,
        }
    }

    /// `http://127.0.0.1:PORT`: what `DRIVEBACK_GOOGLE_BASE_URL` takes.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// Kill the emulator now (to test an unreachable Google).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// One HTTP/1.1 request to the emulator: (status, body).
    pub fn request(&self, method: &str, path: &str, json_body: Option<&str>) -> (u16, String) {
        let mut s = TcpStream::connect(&self.addr)
            .unwrap_or_else(|e| panic!("cannot reach the emulator at {}: {e}", self.addr));
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let body = json_body.unwrap_or("");
        write!(
            s,
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.addr,
            body.len()
        )
        .unwrap();
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).unwrap();
        let text = String::from_utf8_lossy(&raw);
        let (head, rest) = text
            .split_once("\r\n\r\n")
            .unwrap_or_else(|| panic!("not an HTTP answer from the emulator: {text:?}"));
        let status = head
            .split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or_else(|| panic!("no status in {head:?}"));
        let chunked = head.lines().any(|l| {
            l.to_ascii_lowercase()
                .starts_with("transfer-encoding: chunked")
        });
        let body = if chunked {
            dechunk(rest)
        } else {
            rest.to_string()
        };
        (status, body)
    }

    /// `POST /_emulator/<what>` with an optional JSON body; panics unless it answers 200.
    pub fn control(&self, what: &str, json_body: Option<&str>) -> serde_json::Value {
        let (status, body) = self.request("POST", &format!("/_emulator/{what}"), json_body);
        assert_eq!(status, 200, "emulator control {what}: {body}");
        serde_json::from_str(&body).unwrap_or(serde_json::Value::Null)
    }

    /// `GET /_emulator/state`.
    pub fn state(&self) -> serde_json::Value {
        let (status, body) = self.request("GET", "/_emulator/state", None);
        assert_eq!(status, 200, "emulator state: {body}");
        serde_json::from_str(&body).expect("emulator state is JSON")
    }

    /// How many requests the emulator has seen on a route ("token", "revoke", "about", ...).
    pub fn requests(&self, route: &str) -> u64 {
        self.state()["requests"][route].as_u64().unwrap_or(0)
    }
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}

impl Drop for Emulator {
    fn drop(&mut self) {
        self.stop();
    }
}
