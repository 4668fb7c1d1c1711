//! Email reports against a real SMTP server on loopback (aiosmtpd, STARTTLS + AUTH, from
//! `tests/python/smtp_server.py`), real backups against the test MongoDB server, the real CLI.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bson::doc;
use driveback_engine::container::BackupReader;
use driveback_engine::health::{self, Observations};
use driveback_engine::history::{History, Outcome, RunKind};
use driveback_engine::jobs::{BackupRequest, JobContext, Jobs, SystemClock};
use driveback_engine::notify::email::EmailNotifier;
use driveback_engine::notify::Event;
use driveback_engine::pipeline;
use driveback_engine::settings::{Settings, SmtpSecurity};
use driveback_engine::store::StoredBackup;
use secrecy::SecretString;

const USER: &str = "reports@example.test";
const PASSWORD: &str = "s3cret-App-Pa55word";
const TO: &str = "alice@example.test, bob@example.test";

struct SmtpServer {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl SmtpServer {
    fn start() -> SmtpServer {
        let dir = tempfile::tempdir().unwrap();
        let script = driveback_testkit::repo_root().join("tests/python/smtp_server.py");
        let python = driveback_testkit::venv_dir().join("bin/python");
        let mut child = Command::new(python)
            .arg(script)
            .arg(dir.path())
            .args(["--user", USER, "--password", PASSWORD])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the SMTP test server");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .trim()
            .strip_prefix("READY ")
            .unwrap_or_else(|| panic!("SMTP server did not start: {line:?}"))
            .parse()
            .unwrap();
        SmtpServer { child, port, dir }
    }

    fn ca(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// The received messages, oldest first: (envelope recipients, raw message).
    fn messages(&self) -> Vec<(Vec<String>, String)> {
        let mut names: Vec<PathBuf> = std::fs::read_dir(self.dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "eml"))
            .collect();
        names.sort();
        names
            .iter()
            .map(|p| {
                let rcpt = std::fs::read_to_string(p.with_extension("rcpt")).unwrap();
                (
                    rcpt.lines().map(str::to_string).collect(),
                    std::fs::read_to_string(p).unwrap(),
                )
            })
            .collect()
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn smtp_settings(port: u16, ca: &Path) -> Settings {
    let mut s = Settings::default();
    s.set_key("smtp.host", "localhost").unwrap();
    s.set_key("smtp.port", &port.to_string()).unwrap();
    s.set_key("smtp.security", "starttls").unwrap();
    s.set_key("smtp.user", USER).unwrap();
    s.set_key("smtp.to", TO).unwrap();
    s.set_key("smtp.ca_file", ca.to_str().unwrap()).unwrap();
    s
}

fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

// --- a small MIME reader: enough to check the structure of what arrived ----------------------

struct Part {
    headers: String,
    body: String,
}

fn split_head(raw: &str) -> (String, String) {
    let raw = raw.replace("\r\n", "\n");
    let (h, b) = raw.split_once("\n\n").unwrap_or((&raw, ""));
    // Unfold continuation lines.
    (h.replace("\n ", " ").replace("\n\t", " "), b.to_string())
}

fn header(headers: &str, name: &str) -> Option<String> {
    headers.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
    })
}

/// Every leaf part of a message, recursively through multiparts.
fn leaves(raw: &str) -> Vec<Part> {
    let (headers, body) = split_head(raw);
    let ctype = header(&headers, "Content-Type").unwrap_or_default();
    if !ctype.to_ascii_lowercase().starts_with("multipart/") {
        return vec![Part { headers, body }];
    }
    let boundary = ctype
        .split(';')
        .find_map(|p| p.trim().strip_prefix("boundary="))
        .expect("a boundary")
        .trim_matches('"')
        .to_string();
    let delim = format!("--{boundary}");
    body.split(&delim)
        .skip(1)
        .take_while(|p| !p.starts_with("--"))
        .flat_map(|p| leaves(p.trim_start_matches('\n')))
        .collect()
}

fn decode_qp(s: &str) -> String {
    let s = s.replace("=\n", "");
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'=' && i + 2 < b.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8(out).unwrap()
}

fn decode_base64(s: &str) -> Vec<u8> {
    let val = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => panic!("not base64: {c}"),
    };
    let clean: Vec<u8> = s
        .bytes()
        .filter(|c| !c.is_ascii_whitespace() && *c != b'=')
        .collect();
    let mut out = Vec::new();
    for chunk in clean.chunks(4) {
        let n = chunk.iter().enumerate().fold(0u32, |acc, (i, c)| {
            acc | (u32::from(val(*c)) << (18 - 6 * i))
        });
        let bytes = n.to_be_bytes();
        out.extend_from_slice(&bytes[1..chunk.len()]);
    }
    out
}

fn text_of(p: &Part) -> String {
    match header(&p.headers, "Content-Transfer-Encoding").as_deref() {
        Some("quoted-printable") => decode_qp(&p.body),
        Some("base64") => String::from_utf8(decode_base64(&p.body)).unwrap(),
        _ => p.body.clone(),
    }
}

struct Received {
    rcpt: Vec<String>,
    subject: String,
    to: String,
    text: String,
    html: String,
    attachment: Option<(String, Vec<u8>)>,
}

fn parse((rcpt, raw): &(Vec<String>, String)) -> Received {
    let (headers, _) = split_head(raw);
    let parts = leaves(raw);
    let kind = |p: &Part| {
        header(&p.headers, "Content-Type")
            .unwrap_or_default()
            .to_ascii_lowercase()
    };
    let text = parts
        .iter()
        .find(|p| kind(p).starts_with("text/plain"))
        .map(text_of)
        .expect("a plain-text part");
    let html = parts
        .iter()
        .find(|p| kind(p).starts_with("text/html"))
        .map(text_of)
        .expect("an HTML part");
    let attachment = parts
        .iter()
        .find(|p| {
            header(&p.headers, "Content-Disposition").is_some_and(|d| d.starts_with("attachment"))
        })
        .map(|p| {
            let d = header(&p.headers, "Content-Disposition").unwrap();
            // `filename="..."`, or RFC 2231 continuations `filename*0="..."; filename*1="..."`.
            let name: String = d
                .split(';')
                .map(str::trim)
                .filter(|p| p.starts_with("filename"))
                .filter_map(|p| p.split_once('=').map(|(_, v)| v.trim_matches('"')))
                .collect();
            assert!(!name.is_empty(), "a file name in {d}");
            (name, decode_base64(&p.body))
        });
    Received {
        rcpt: rcpt.clone(),
        subject: header(&headers, "Subject").unwrap(),
        to: header(&headers, "To").unwrap(),
        text,
        html,
        attachment,
    }
}

fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

// --- the product's backup job with email reports ---------------------------------------------

struct World {
    dir: tempfile::TempDir,
    history: Arc<History>,
    store: Arc<dyn driveback_engine::store::RemoteStore>,
    identity: age::x25519::Identity,
    db: String,
}

async fn world(prefix: &str) -> World {
    let mongo = driveback_testkit::mongo();
    let db = mongo.fresh_db(prefix);
    let client = mongo.client().await;
    let docs: Vec<_> = (0..50)
        .map(|i| doc! { "_id": i, "name": format!("item {i}"), "n": i * 7 })
        .collect();
    client
        .database(&db)
        .collection("items")
        .insert_many(docs)
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store =
        pipeline::open_destination(&format!("folder:{}", dir.path().join("b").display())).unwrap();
    World {
        history: Arc::new(History::new(dir.path().join("history.jsonl"))),
        dir,
        store,
        identity: age::x25519::Identity::generate(),
        db,
    }
}

fn jobs_for(w: &World, uri: String) -> Jobs {
    let (store, recipient, db) = (w.store.clone(), w.identity.to_public(), w.db.clone());
    Jobs::new(
        move |ctx: JobContext| {
            let req = BackupRequest {
                server: Arc::new(driveback_engine::service::MongoDriver),
                mongo_uri: SecretString::from(uri.clone()),
                database: db.clone(),
                zstd_level: 3,
                store: store.clone(),
                recipient: recipient.clone(),
                signer: None,
                retention: None,
                alarms: None,
                tz: chrono::Utc,
                on_result: None,
                on_listing: None,
                incremental: None,
            };
            driveback_engine::jobs::run_backup(req, ctx)
        },
        Arc::new(SystemClock),
        Some(w.history.clone()),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_arrive_with_both_parts_and_the_copy_decrypts() {
    let server = SmtpServer::start();
    let w = world("email_ok").await;
    let mut s = smtp_settings(server.port, &server.ca());
    s.set_key("notify.email_on_success", "on").unwrap();
    s.set_key("notify.email_copy", "on").unwrap();
    s.backup.database = Some(w.db.clone());
    let notifier = Arc::new(
        EmailNotifier::new(
            s.clone(),
            Some(SecretString::from(PASSWORD)),
            Some(w.history.clone()),
        )
        .with_store(w.store.clone()),
    );
    let jobs = jobs_for(&w, driveback_testkit::mongo().uri().to_string());
    jobs.add_notifier(Arc::new(notifier.clone()));

    let run = jobs
        .start(driveback_engine::history::Trigger::Manual)
        .wait()
        .await;
    assert_eq!(run.outcome, Outcome::Success, "{run:?}");
    wait_for("the success email", || server.messages().len() == 1);
    assert!(notifier.wait_idle(Duration::from_secs(30)));

    let m = parse(&server.messages()[0]);
    assert_eq!(
        m.subject,
        format!("Driveback: backup of {} succeeded", w.db)
    );
    assert_eq!(m.rcpt, vec!["alice@example.test", "bob@example.test"]);
    assert!(
        m.to.contains("alice@example.test") && m.to.contains("bob@example.test"),
        "{}",
        m.to
    );
    for part in [&m.text, &m.html] {
        assert!(part.contains("Documents"), "{part}");
        assert!(
            part.contains(">50<") || part.contains("Documents: 50"),
            "{part}"
        );
        assert!(part.contains(&w.db));
        assert!(!part.contains(PASSWORD));
    }
    assert!(m.html.contains("<table"));
    let (name, bytes) = m.attachment.expect("the backup is attached");
    let stored = w.store.list().unwrap();
    assert_eq!(name, stored[0].file);
    assert_eq!(bytes.len() as u64, stored[0].bytes);
    let manifest = BackupReader::open(&bytes[..], &w.identity)
        .expect("the attached copy decrypts")
        .finish()
        .expect("and reads through to a valid archive");
    assert_eq!(manifest.database, w.db);

    // History: the run, then its email.
    let h = w.history.load().unwrap();
    let mail = h.iter().find(|r| r.kind == RunKind::Email).unwrap();
    assert_eq!(mail.outcome, Outcome::Success);
    assert_eq!(mail.job_id, run.job_id);
    assert_eq!(mail.bytes, Some(stored[0].bytes));

    // A failure report: the database is gone.
    let failing = jobs_for(
        &w,
        format!(
            "mongodb://127.0.0.1:{}/?serverSelectionTimeoutMS=500",
            closed_port()
        ),
    );
    failing.add_notifier(Arc::new(notifier.clone()));
    let run = failing
        .start(driveback_engine::history::Trigger::Scheduled)
        .wait()
        .await;
    assert_eq!(run.outcome, Outcome::Failed);
    wait_for("the failure email", || server.messages().len() == 2);
    let m = parse(&server.messages()[1]);
    assert_eq!(m.subject, format!("Driveback: backup of {} FAILED", w.db));
    assert!(m.text.contains("What to do:"), "{}", m.text);
    assert!(m.text.contains("Last good backup: "), "{}", m.text);
    assert!(
        !m.text.contains("none yet"),
        "the earlier backup is the last good one"
    );
    assert!(m.attachment.is_none());

    // A backup too large to email: reported without the copy, with a warning in history.
    let mut big: StoredBackup = stored[0].clone();
    big.bytes = 50_000_000;
    let mut rec = run.clone();
    rec.outcome = Outcome::Success;
    rec.error = None;
    let d = notifier
        .deliver(&Event::BackupSucceeded {
            record: rec,
            backup: Some(big),
        })
        .unwrap();
    assert_eq!(d.record.outcome, Outcome::Partial);
    assert_eq!(d.record.error.as_ref().unwrap().code, "email_copy_skipped");
    let m = parse(&server.messages()[2]);
    assert!(m.attachment.is_none());
    assert!(
        m.text
            .contains("No copy is attached: the backup file is 50.0 MB, more than the 18 MB"),
        "{}",
        m.text
    );
    let records = w.history.load().unwrap();
    let hl = health::health(
        &records,
        &s,
        &Observations::default(),
        chrono::Utc::now(),
        &chrono::Utc,
    );
    let check = hl.checks.iter().find(|c| c.name == "email").unwrap();
    assert_eq!(check.status, health::Status::Warning);
    assert!(
        check.message.contains("without the backup copy"),
        "{}",
        check.message
    );

    // The weekly summary.
    let rec = notifier.send_weekly_summary(&records, Some(&hl), chrono::Utc::now());
    assert_eq!(rec.outcome, Outcome::Success, "{rec:?}");
    let m = parse(&server.messages()[3]);
    assert!(
        m.subject.starts_with("Driveback: your week of backups"),
        "{}",
        m.subject
    );
    assert!(m.text.contains("Success rate: 50% (1 of 2)"), "{}", m.text);
    assert!(m.html.contains("Success rate"));

    // What the app and the daemon run every few minutes: due on the next Monday, sent once.
    let monday = next_monday_noon();
    assert!(notifier
        .weekly_summary_if_due(|_| None, monday - chrono::Duration::days(1))
        .is_none());
    let rec = notifier
        .weekly_summary_if_due(|_| None, monday + chrono::Duration::days(7))
        .expect("due a week later, on a Monday");
    assert_eq!(rec.kind, RunKind::EmailSummary);
    assert_eq!(server.messages().len(), 5);
    assert!(notifier
        .weekly_summary_if_due(
            |_| None,
            monday + chrono::Duration::days(7) + chrono::Duration::hours(1)
        )
        .is_none());
    assert_eq!(server.messages().len(), 5);
    drop(w.dir);
}

/// Noon (local time) of the next Monday.
/// A failed restore test is mailed (with failures on), and so is data that went missing, even
/// with success reports off.
#[test]
fn a_failed_restore_test_and_missing_data_are_mailed() {
    use driveback_engine::history::{RunError, RunRecord, Trigger};
    let server = SmtpServer::start();
    let s = smtp_settings(server.port, &server.ca());
    assert!(!s.notify.email_on_success && s.notify.email_on_failure);
    let notifier = Arc::new(EmailNotifier::new(
        s,
        Some(SecretString::from(PASSWORD)),
        None,
    ));
    let now = chrono::Utc::now();
    let record = |kind, outcome| RunRecord {
        warnings: Vec::new(),
        job_id: "audit-1".into(),
        kind,
        trigger: Trigger::Scheduled,
        started: now,
        ended: now,
        outcome,
        database: Some("timetrack".into()),
        dest: None,
        backup_id: Some("0a1b2c3d".into()),
        bytes: Some(1000),
        documents: Some(10),
        verified: None,
        pruned: None,
        error: None,
    };
    let mut audit = record(RunKind::Audit, Outcome::Failed);
    audit.error = Some(RunError {
        code: "verification_failed".into(),
        message: "users: the server gave back 6 documents, the backup holds 7".into(),
    });
    driveback_engine::notify::Notifier::notify(
        &notifier,
        &Event::TestRestoreFailed { record: audit },
    );
    wait_for("the restore-test email", || server.messages().len() == 1);
    let m = parse(&server.messages()[0]);
    assert_eq!(m.subject, "Driveback: the restore test of timetrack failed");
    assert!(
        m.text.contains("the server gave back 6 documents"),
        "{}",
        m.text
    );

    let mut lossy = record(RunKind::Backup, Outcome::Success);
    lossy.warnings = vec![driveback_engine::alarms::DataWarning {
        code: "documents_dropped".into(),
        collection: "timeEntries".into(),
        before: 41_230,
        after: 12_004,
    }];
    driveback_engine::notify::Notifier::notify(
        &notifier,
        &Event::BackupSucceeded {
            record: lossy,
            backup: None,
        },
    );
    wait_for("the data-loss email", || server.messages().len() == 2);
    let m = parse(&server.messages()[1]);
    assert_eq!(m.subject, "Driveback: data went missing from timetrack");
    assert!(
        m.text.contains("timeEntries: 41,230 -> 12,004 documents"),
        "{}",
        m.text
    );
    assert!(notifier.wait_idle(Duration::from_secs(30)));
}

fn next_monday_noon() -> chrono::DateTime<chrono::Utc> {
    use chrono::{Datelike, TimeZone};
    let mut d = chrono::Local::now().date_naive() + chrono::Duration::days(1);
    while d.weekday() != chrono::Weekday::Mon {
        d += chrono::Duration::days(1);
    }
    chrono::Local
        .from_local_datetime(&d.and_hms_opt(12, 0, 0).unwrap())
        .earliest()
        .unwrap()
        .with_timezone(&chrono::Utc)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_down_the_backup_still_succeeds_and_history_records_the_failed_email() {
    let w = world("email_down").await;
    let mut s = smtp_settings(closed_port(), Path::new("/nonexistent-ca.pem"));
    s.smtp.ca_file = None;
    s.set_key("notify.email_on_success", "on").unwrap();
    let notifier = Arc::new(
        EmailNotifier::new(
            s.clone(),
            Some(SecretString::from(PASSWORD)),
            Some(w.history.clone()),
        )
        .with_retry(vec![Duration::from_millis(100), Duration::from_millis(200)]),
    );
    let jobs = jobs_for(&w, driveback_testkit::mongo().uri().to_string());
    jobs.add_notifier(Arc::new(notifier.clone()));
    let t0 = Instant::now();
    let run = jobs
        .start(driveback_engine::history::Trigger::Manual)
        .wait()
        .await;
    assert_eq!(run.outcome, Outcome::Success, "{run:?}");
    assert!(t0.elapsed() < Duration::from_secs(30));
    wait_for("the failed email record", || {
        w.history
            .load()
            .unwrap()
            .iter()
            .any(|r| r.kind == RunKind::Email)
    });
    let records = w.history.load().unwrap();
    assert_eq!(records[0].kind, RunKind::Backup);
    assert_eq!(records[0].outcome, Outcome::Success);
    let mail = &records[1];
    assert_eq!((mail.kind, mail.outcome), (RunKind::Email, Outcome::Failed));
    let e = mail.error.as_ref().unwrap();
    assert_eq!(e.code, "email_unreachable");
    assert!(
        e.message.contains("could not connect to smtp localhost:"),
        "{}",
        e.message
    );
    // The email record is not a backup: the last good backup is still the run's.
    assert_eq!(
        driveback_engine::history::last_success(&records)
            .unwrap()
            .job_id,
        run.job_id
    );
    let hl = health::health(
        &records,
        &s,
        &Observations::default(),
        chrono::Utc::now(),
        &chrono::Utc,
    );
    let check = hl.checks.iter().find(|c| c.name == "email").unwrap();
    assert_eq!(check.status, health::Status::Warning);
    assert!(
        check.message.contains("driveback test-email"),
        "{}",
        check.message
    );
    assert_eq!(
        hl.checks
            .iter()
            .find(|c| c.name == "last_run")
            .unwrap()
            .status,
        health::Status::Healthy
    );
}

fn cli(
    config: &Path,
    args: &[&str],
    env: &[(&str, &str)],
    stdin: Option<&str>,
) -> std::process::Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_driveback"));
    cmd.args(args)
        .env("DRIVEBACK_CONFIG_DIR", config)
        .env_remove("DRIVEBACK_SMTP_PASSWORD")
        .env(
            "DRIVEBACK_KEYRING_SERVICE",
            format!("driveback-test-{:08x}", rand::random::<u32>()),
        )
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    if let Some(text) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
    }
    child.wait_with_output().unwrap()
}

fn stderr_line(out: &std::process::Output) -> String {
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one line: {err}");
    lines[0].to_string()
}

fn files_contain(dir: &Path, needle: &str) -> Vec<PathBuf> {
    let mut hits = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            hits.extend(files_contain(&p, needle));
        } else if std::fs::read(&p)
            .unwrap()
            .windows(needle.len())
            .any(|w| w == needle.as_bytes())
        {
            hits.push(p);
        }
    }
    hits
}

#[test]
fn test_email_from_the_cli() {
    let server = SmtpServer::start();
    let config = tempfile::tempdir().unwrap();
    let set = |k: &str, v: &str| {
        let out = cli(config.path(), &["config", "set", k, v], &[], None);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    set("smtp.preset", "gmail");
    let s = Settings::load_from(&config.path().join("settings.json")).unwrap();
    assert_eq!(
        (s.smtp.host.as_deref(), s.smtp.port, s.smtp.security),
        (Some("smtp.gmail.com"), 587, SmtpSecurity::Starttls)
    );
    // No encryption only on this computer, with the key named.
    let out = cli(
        config.path(),
        &["config", "set", "smtp.security", "none"],
        &[],
        None,
    );
    assert!(!out.status.success());
    assert!(stderr_line(&out).contains("smtp.security: security 'none' (no encryption) is only allowed for a server on this computer"));
    set("smtp.host", "localhost");
    set("smtp.port", &server.port.to_string());
    set("smtp.user", USER);
    set("smtp.to", TO);
    set("smtp.ca_file", server.ca().to_str().unwrap());

    // Right password, debug logging: sent, and the password is nowhere.
    let debug = [
        ("DRIVEBACK_LOG", "debug"),
        ("DRIVEBACK_SMTP_PASSWORD", PASSWORD),
    ];
    let out = cli(config.path(), &["test-email"], &debug, None);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stderr}");
    assert!(
        stdout.contains(
            "Sent a test email to alice@example.test, bob@example.test through localhost:"
        ),
        "{stdout}"
    );
    assert!(
        !stdout.contains(PASSWORD) && !stderr.contains(PASSWORD),
        "{stderr}"
    );
    let m = parse(&server.messages()[0]);
    assert_eq!(m.subject, "Driveback: test email");
    assert!(m.text.contains("Email reports work") && m.html.contains("Email reports work"));
    assert!(!server.messages()[0].1.contains(PASSWORD));
    assert!(files_contain(config.path(), PASSWORD).is_empty());

    // Wrong password: one clear line.
    let out = cli(
        config.path(),
        &["test-email"],
        &[("DRIVEBACK_SMTP_PASSWORD", "wrong")],
        None,
    );
    assert!(!out.status.success());
    assert_eq!(
        stderr_line(&out),
        format!("driveback: error: the SMTP server refused the login for {USER} (check the password / app password)")
    );

    // Server down.
    let port = closed_port();
    set("smtp.port", &port.to_string());
    let out = cli(
        config.path(),
        &["test-email"],
        &[("DRIVEBACK_SMTP_PASSWORD", PASSWORD)],
        None,
    );
    assert!(!out.status.success());
    let line = stderr_line(&out);
    assert!(
        line.starts_with(&format!(
            "driveback: error: could not connect to smtp localhost:{port}: "
        )),
        "{line}"
    );
    set("smtp.port", &server.port.to_string());

    // The password from the keyring, stored through standard input.
    if driveback_testkit::require_keyring() {
        let service = format!("driveback-test-{:08x}", rand::random::<u32>());
        let env = [
            ("DRIVEBACK_KEYRING_SERVICE", service.as_str()),
            ("DRIVEBACK_LOG", "debug"),
        ];
        let out = cli(
            config.path(),
            &["config", "set-secret", "smtp.password"],
            &env,
            Some(&format!("{PASSWORD}\n")),
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let out = cli(config.path(), &["test-email"], &env, None);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!String::from_utf8_lossy(&out.stderr).contains(PASSWORD));
        assert_eq!(server.messages().len(), 2);
        assert!(files_contain(config.path(), PASSWORD).is_empty());
        let out = cli(
            config.path(),
            &["config", "set-secret", "smtp.password"],
            &env,
            Some(""),
        );
        assert!(out.status.success());
    }
}

/// A one-shot `driveback backup` (cron, scripts) records its run and mails its report too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_shot_backup_from_the_cli_records_its_run_and_mails_its_report() {
    let server = SmtpServer::start();
    let w = world("email_cli").await;
    let config = w.dir.path().join("config");
    let mut s = smtp_settings(server.port, &server.ca());
    s.set_key("notify.email_on_success", "on").unwrap();
    s.save_to(&config.join("settings.json")).unwrap();
    let dest = format!("folder:{}", w.dir.path().join("cli-backups").display());
    let uri = driveback_testkit::mongo().uri().to_string();
    let env = [
        ("DRIVEBACK_SMTP_PASSWORD", PASSWORD),
        ("DRIVEBACK_PASSPHRASE", "a passphrase for the cli test"),
    ];
    let args = [
        "backup",
        "--mongo-uri",
        &uri,
        "--db",
        &w.db,
        "--dest",
        &dest,
    ];
    let out = tokio::task::spawn_blocking({
        let config = config.clone();
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            cli(&config, &args, &env, None)
        }
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(server.messages().len(), 1);
    let m = parse(&server.messages()[0]);
    assert!(m.subject.contains(&w.db), "{}", m.subject);
    assert!(
        m.text.contains("50"),
        "the document count is in the report: {}",
        m.text
    );
    let records = History::new(config.join("history.jsonl")).load().unwrap();
    let kinds: Vec<_> = records.iter().map(|r| (r.kind, r.outcome)).collect();
    assert_eq!(
        kinds,
        vec![
            (RunKind::Backup, Outcome::Success),
            (RunKind::Email, Outcome::Success)
        ]
    );
    assert_eq!(records[0].documents, Some(50));

    // The database is down: the command fails as before, and the failure is recorded and mailed.
    let down = format!(
        "mongodb://127.0.0.1:{}/?serverSelectionTimeoutMS=1000",
        closed_port()
    );
    let out = tokio::task::spawn_blocking({
        let config = config.clone();
        let (db, dest) = (w.db.clone(), dest.clone());
        move || {
            cli(
                &config,
                &["backup", "--mongo-uri", &down, "--db", &db, "--dest", &dest],
                &env,
                None,
            )
        }
    })
    .await
    .unwrap();
    assert!(!out.status.success());
    assert_eq!(server.messages().len(), 2);
    let m = parse(&server.messages()[1]);
    assert_eq!(m.subject, format!("Driveback: backup of {} FAILED", w.db));
    let records = History::new(config.join("history.jsonl")).load().unwrap();
    assert_eq!(records[2].outcome, Outcome::Failed);
    assert!(files_contain(&config, PASSWORD).is_empty());
}
