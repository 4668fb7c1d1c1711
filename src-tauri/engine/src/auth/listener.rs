//! The one-shot loopback listener that receives Google's redirect after consent.
//!
//! It binds 127.0.0.1 on a free port and waits for one `GET` of the redirect path whose `state`
//! matches. Anything else is answered and ignored: other paths get a 404, a wrong or missing
//! `state` a 400 (reported to the caller), and the wait goes on until the real answer, the
//! deadline or a cancellation. Each connection is served on its own thread, so a browser's idle
//! pre-connection cannot hold up the real request.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::AuthError;

/// Path of the redirect URI on the listener.
pub const REDIRECT_PATH: &str = "/oauth2/callback";

/// Largest request head the listener reads.
const MAX_HEAD: usize = 16 * 1024;
/// How long one connection may take to send its request.
const READ_TIMEOUT: Duration = Duration::from_secs(10);
const POLL: Duration = Duration::from_millis(25);

/// What one request to the listener amounts to.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Not the redirect path (a favicon, a stray request): 404, keep waiting.
    NotFound,
    /// Not a GET: 405, keep waiting.
    MethodNotAllowed,
    /// The redirect path with a missing or different `state`: 400, keep waiting, report it.
    WrongState(String),
    /// Right `state` but neither a code nor an error: 400, keep waiting.
    Incomplete,
    /// The authorization code.
    Code(String),
    /// The user declined (`error=access_denied`).
    Denied,
    /// Google reported another error.
    Failed {
        error: String,
        description: Option<String>,
    },
}

/// The method and request target of an HTTP/1 request head, if it is complete.
pub fn parse_request_line(head: &[u8]) -> Option<(String, String)> {
    let end = head.windows(2).position(|w| w == b"\r\n")?;
    let line = std::str::from_utf8(&head[..end]).ok()?;
    let mut parts = line.split(' ');
    let method = parts.next().filter(|m| !m.is_empty())?;
    let target = parts.next().filter(|t| !t.is_empty())?;
    let version = parts.next()?;
    if !version.starts_with("HTTP/") || parts.next().is_some() {
        return None;
    }
    Some((method.to_string(), target.to_string()))
}

/// Decide what a request for `target` means for a flow waiting on `path` with `state`.
pub fn judge(method: &str, target: &str, path: &str, state: &str) -> Verdict {
    let (req_path, query) = target.split_once('?').unwrap_or((target, ""));
    if req_path != path {
        return Verdict::NotFound;
    }
    if method != "GET" {
        return Verdict::MethodNotAllowed;
    }
    let mut got_state = None;
    let mut code = None;
    let mut error = None;
    let mut description = None;
    for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
        let slot = match k.as_ref() {
            "state" => &mut got_state,
            "code" => &mut code,
            "error" => &mut error,
            "error_description" => &mut description,
            _ => continue,
        };
        // A repeated parameter is ambiguous: keep the first, as most servers do.
        slot.get_or_insert(v.into_owned());
    }
    match got_state {
        None => return Verdict::WrongState("it carried no state".into()),
        Some(s) if !constant_time_eq(s.as_bytes(), state.as_bytes()) => {
            return Verdict::WrongState("its state does not match this sign-in".into())
        }
        Some(_) => {}
    }
    match (error, code) {
        (Some(e), _) if e == "access_denied" => Verdict::Denied,
        (Some(error), _) => Verdict::Failed { error, description },
        (None, Some(c)) if !c.is_empty() => Verdict::Code(c),
        _ => Verdict::Incomplete,
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// What the flow is told while it waits.
enum Outcome {
    Refused(String),
    Done(Result<String, AuthError>),
}

struct Expect {
    state: String,
    /// Set by the first request that ends the flow; any later one is refused.
    answered: AtomicBool,
}

pub struct LoopbackListener {
    listener: TcpListener,
    addr: SocketAddr,
}

impl LoopbackListener {
    /// Bind 127.0.0.1 on a free port.
    pub fn bind() -> Result<Self, AuthError> {
        let fail = |e: std::io::Error| {
            AuthError::Listener(format!(
                "could not listen on 127.0.0.1 for Google's answer: {e}"
            ))
        };
        let listener = TcpListener::bind(("127.0.0.1", 0)).map_err(fail)?;
        listener.set_nonblocking(true).map_err(fail)?;
        let addr = listener.local_addr().map_err(fail)?;
        Ok(LoopbackListener { listener, addr })
    }

    pub fn redirect_uri(&self) -> String {
        format!("http://{}{REDIRECT_PATH}", self.addr)
    }

    /// Wait for the redirect carrying `state`; the authorization code on success. `refused` is
    /// told about every answer refused for its state.
    pub fn wait(
        self,
        state: &str,
        deadline: Instant,
        cancel: Option<&AtomicBool>,
        refused: &dyn Fn(&str),
    ) -> Result<String, AuthError> {
        let expect = Arc::new(Expect {
            state: state.to_string(),
            answered: AtomicBool::new(false),
        });
        let (tx, rx) = mpsc::channel::<Outcome>();
        loop {
            if cancel.is_some_and(|c| c.load(Ordering::SeqCst)) {
                return Err(AuthError::Cancelled);
            }
            if Instant::now() >= deadline {
                return Err(AuthError::TimedOut);
            }
            match self.listener.accept() {
                Ok((stream, peer)) => {
                    tracing::debug!(%peer, "connection to the sign-in listener");
                    let expect = expect.clone();
                    let tx = tx.clone();
                    std::thread::spawn(move || serve(stream, &expect, &tx));
                    continue;
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    tracing::debug!(error = %e, "accept on the sign-in listener failed");
                }
            }
            match rx.recv_timeout(POLL) {
                Ok(Outcome::Refused(why)) => refused(&why),
                Ok(Outcome::Done(result)) => return result,
                Err(_) => {}
            }
        }
    }
}

fn serve(mut stream: TcpStream, expect: &Expect, tx: &mpsc::Sender<Outcome>) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(READ_TIMEOUT));
    let _ = stream.set_write_timeout(Some(READ_TIMEOUT));
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 2048];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        if head.len() > MAX_HEAD {
            respond(&mut stream, 431, "Request too large", PAGE_BAD);
            return;
        }
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return, // closed or idle: nothing to answer
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    let Some((method, target)) = parse_request_line(&head) else {
        respond(&mut stream, 400, "Bad Request", PAGE_BAD);
        return;
    };
    let verdict = judge(&method, &target, REDIRECT_PATH, &expect.state);
    let ends_flow = matches!(
        verdict,
        Verdict::Code(_) | Verdict::Denied | Verdict::Failed { .. }
    );
    if ends_flow && expect.answered.swap(true, Ordering::SeqCst) {
        respond(&mut stream, 400, "Bad Request", PAGE_USED);
        let _ = tx.send(Outcome::Refused(
            "a second answer for this sign-in (its state was already used)".into(),
        ));
        return;
    }
    match verdict {
        Verdict::NotFound => {
            tracing::debug!(method, "sign-in listener: not the redirect path (404)");
            respond(&mut stream, 404, "Not Found", PAGE_NOT_FOUND);
        }
        Verdict::MethodNotAllowed => respond(&mut stream, 405, "Method Not Allowed", PAGE_BAD),
        Verdict::WrongState(why) => {
            respond(&mut stream, 400, "Bad Request", PAGE_WRONG_STATE);
            let _ = tx.send(Outcome::Refused(why));
        }
        Verdict::Incomplete => respond(&mut stream, 400, "Bad Request", PAGE_BAD),
        Verdict::Code(code) => {
            respond(&mut stream, 200, "OK", PAGE_DONE);
            let _ = tx.send(Outcome::Done(Ok(code)));
        }
        Verdict::Denied => {
            respond(&mut stream, 200, "OK", PAGE_DENIED);
            let _ = tx.send(Outcome::Done(Err(AuthError::Declined)));
        }
        Verdict::Failed { error, description } => {
            respond(&mut stream, 200, "OK", PAGE_FAILED);
            let detail = match description {
                Some(d) if !d.is_empty() => format!("{error}: {d}"),
                _ => error,
            };
            let _ = tx.send(Outcome::Done(Err(AuthError::Authorization(format!(
                "Google reported an error instead of a sign-in ({detail})"
            )))));
        }
    }
}

fn respond(stream: &mut TcpStream, status: u16, reason: &str, body: &str) {
    let page = page(body);
    let head = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\nCache-Control: no-store\r\nReferrer-Policy: no-referrer\r\nConnection: close\r\n\r\n",
        page.len()
    );
    let _ = stream.write_all(head.as_bytes());
    let _ = stream.write_all(page.as_bytes());
    let _ = stream.flush();
}

fn page(body: &str) -> String {
    format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>Driveback</title><style>body{{font-family:system-ui,sans-serif;max-width:32em;margin:4em auto;line-height:1.5}}</style></head><body>{body}</body></html>"
    )
}

const PAGE_DONE: &str =
    "<h1>Driveback received Google's answer</h1><p>You can close this tab and return to Driveback.</p>";
const PAGE_DENIED: &str =
    "<h1>Access declined</h1><p>Driveback was not given access to Google Drive. You can close this tab.</p>";
const PAGE_FAILED: &str =
    "<h1>Sign-in failed</h1><p>Google reported an error; Driveback shows the details. You can close this tab.</p>";
const PAGE_WRONG_STATE: &str =
    "<h1>Not the sign-in Driveback is waiting for</h1><p>This answer does not belong to the sign-in Driveback started, so it was ignored.</p>";
const PAGE_USED: &str =
    "<h1>Already answered</h1><p>This sign-in was already completed. You can close this tab.</p>";
const PAGE_NOT_FOUND: &str = "<h1>Not found</h1>";
const PAGE_BAD: &str = "<h1>Bad request</h1>";

#[cfg(test)]
mod tests {
    use super::*;

    const P: &str = REDIRECT_PATH;

    #[test]
    fn request_line() {
        assert_eq!(
            parse_request_line(b"GET /a?b=c HTTP/1.1\r\nHost: x\r\n\r\n"),
            Some(("GET".into(), "/a?b=c".into()))
        );
        assert_eq!(parse_request_line(b"GET /a HTTP/1.1"), None); // incomplete line
        assert_eq!(parse_request_line(b"GET /a\r\n"), None);
        assert_eq!(parse_request_line(b"GET  /a HTTP/1.1\r\n"), None);
        assert_eq!(parse_request_line(b"\xff /a HTTP/1.1\r\n"), None);
        assert_eq!(parse_request_line(b"GET /a FTP/1\r\n"), None);
    }

    #[test]
    fn verdicts() {
        let j = |m: &str, t: &str| judge(m, t, P, "s1");
        assert_eq!(j("GET", "/favicon.ico"), Verdict::NotFound);
        assert_eq!(
            j("GET", "/oauth2/callbackX?state=s1&code=c"),
            Verdict::NotFound
        );
        assert_eq!(
            j("POST", &format!("{P}?state=s1&code=c")),
            Verdict::MethodNotAllowed
        );
        assert_eq!(
            j("GET", &format!("{P}?state=s1&code=4%2F0Ab")),
            Verdict::Code("4/0Ab".into())
        );
        assert!(matches!(
            j("GET", &format!("{P}?code=c")),
            Verdict::WrongState(_)
        ));
        assert!(matches!(
            j("GET", &format!("{P}?state=s2&code=c")),
            Verdict::WrongState(_)
        ));
        assert!(matches!(
            j("GET", &format!("{P}?state=s&code=c")),
            Verdict::WrongState(_)
        ));
        // A forged denial is refused like a forged code.
        assert!(matches!(
            j("GET", &format!("{P}?state=evil&error=access_denied")),
            Verdict::WrongState(_)
        ));
        assert_eq!(
            j("GET", &format!("{P}?error=access_denied&state=s1")),
            Verdict::Denied
        );
        assert_eq!(
            j(
                "GET",
                &format!("{P}?state=s1&error=invalid_scope&error_description=Bad+scope")
            ),
            Verdict::Failed {
                error: "invalid_scope".into(),
                description: Some("Bad scope".into())
            }
        );
        assert_eq!(j("GET", &format!("{P}?state=s1")), Verdict::Incomplete);
        assert_eq!(
            j("GET", &format!("{P}?state=s1&code=")),
            Verdict::Incomplete
        );
        // The first of a repeated parameter counts.
        assert_eq!(
            j("GET", &format!("{P}?state=s1&state=s2&code=a&code=b")),
            Verdict::Code("a".into())
        );
    }

    fn get(addr: &str, target: &str) -> (u16, String) {
        let mut s = TcpStream::connect(addr).unwrap();
        write!(s, "GET {target} HTTP/1.1\r\nHost: {addr}\r\n\r\n").unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        let status = out[9..12].parse().unwrap();
        (status, out)
    }

    #[test]
    fn listener_ignores_noise_and_returns_the_code() {
        let l = LoopbackListener::bind().unwrap();
        let uri = l.redirect_uri();
        assert!(
            uri.starts_with("http://127.0.0.1:") && uri.ends_with(P),
            "{uri}"
        );
        let addr = uri
            .trim_start_matches("http://")
            .trim_end_matches(P)
            .to_string();
        let client = std::thread::spawn(move || {
            // An idle connection (a browser's pre-connect) must not block anything.
            let _idle = TcpStream::connect(&addr).unwrap();
            let (s, _) = get(&addr, "/favicon.ico");
            assert_eq!(s, 404);
            let (s, body) = get(&addr, &format!("{P}?state=forged&code=x"));
            assert_eq!(s, 400);
            assert!(body.contains("Not the sign-in"));
            let (s, body) = get(&addr, &format!("{P}?state=st&code=the-code"));
            assert_eq!(s, 200);
            assert!(body.contains("You can close this tab"));
        });
        let refused = std::sync::Mutex::new(vec![]);
        let code = l
            .wait(
                "st",
                Instant::now() + Duration::from_secs(20),
                None,
                &|why| refused.lock().unwrap().push(why.to_string()),
            )
            .unwrap();
        client.join().unwrap();
        assert_eq!(code, "the-code");
        assert_eq!(refused.lock().unwrap().len(), 1);
    }

    #[test]
    fn listener_reports_denial_timeout_and_cancel() {
        let l = LoopbackListener::bind().unwrap();
        let addr = l
            .redirect_uri()
            .trim_start_matches("http://")
            .trim_end_matches(P)
            .to_string();
        let t =
            std::thread::spawn(move || get(&addr, &format!("{P}?error=access_denied&state=st")));
        let e = l
            .wait(
                "st",
                Instant::now() + Duration::from_secs(20),
                None,
                &|_| {},
            )
            .unwrap_err();
        assert!(matches!(e, AuthError::Declined), "{e}");
        assert!(t.join().unwrap().1.contains("Access declined"));

        let l = LoopbackListener::bind().unwrap();
        let e = l
            .wait(
                "st",
                Instant::now() + Duration::from_millis(100),
                None,
                &|_| {},
            )
            .unwrap_err();
        assert!(matches!(e, AuthError::TimedOut), "{e}");

        let l = LoopbackListener::bind().unwrap();
        let cancel = AtomicBool::new(true);
        let e = l
            .wait(
                "st",
                Instant::now() + Duration::from_secs(20),
                Some(&cancel),
                &|_| {},
            )
            .unwrap_err();
        assert!(matches!(e, AuthError::Cancelled), "{e}");
    }
}
