//! The words of Driveback's emails. Pure: every message is built from records and times given to
//! it, with a plain-text part and an HTML part that say the same thing. Nothing secret goes in.

use chrono::{DateTime, Duration, Local, Utc};

use crate::health::{human_bytes, human_duration, Health, Status};
use crate::history::{Outcome, RunRecord};

/// An email before addressing: subject, plain text and HTML.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mail {
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// Escapes text for HTML.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn when(t: DateTime<Utc>) -> String {
    t.with_timezone(&Local)
        .format("%a %e %b %Y, %H:%M")
        .to_string()
        .replace("  ", " ")
}

/// Builds both parts from a title, a lead sentence, label/value rows and closing paragraphs.
fn compose(
    subject: String,
    title: &str,
    lead: &str,
    rows: &[(&str, String)],
    after: &[String],
    colour: &str,
) -> Mail {
    let mut text = format!("{title}\n\n{lead}\n\n");
    for (k, v) in rows {
        text.push_str(&format!("{k}: {v}\n"));
    }
    for p in after {
        text.push('\n');
        text.push_str(p);
        text.push('\n');
    }
    text.push_str("\n-- \nSent by Driveback.\n");

    let mut html = String::from(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"></head>\
         <body style=\"font-family:sans-serif;color:#222;max-width:600px\">\n",
    );
    html.push_str(&format!(
        "<h2 style=\"color:{colour}\">{}</h2>\n<p>{}</p>\n",
        escape(title),
        escape(lead)
    ));
    if !rows.is_empty() {
        html.push_str("<table cellpadding=\"4\" style=\"border-collapse:collapse\">\n");
        for (k, v) in rows {
            html.push_str(&format!(
                "<tr><th align=\"left\">{}</th><td>{}</td></tr>\n",
                escape(k),
                escape(v)
            ));
        }
        html.push_str("</table>\n");
    }
    for p in after {
        html.push_str(&format!("<p>{}</p>\n", escape(p)));
    }
    html.push_str(
        "<p style=\"color:#888;font-size:small\">Sent by Driveback.</p>\n</body></html>\n",
    );
    Mail {
        subject,
        text,
        html,
    }
}

fn duration_of(r: &RunRecord) -> String {
    let d = r.ended - r.started;
    if d < Duration::minutes(1) {
        format!("{} seconds", d.num_seconds().max(0))
    } else {
        human_duration(d)
    }
}

/// What happened to the backup copy the user asked to receive by email.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CopyNote {
    /// Not asked for.
    None,
    /// Attached (file name).
    Attached(String),
    /// Not attached, and why.
    Skipped(String),
}

/// A backup succeeded.
pub fn backup_succeeded(
    r: &RunRecord,
    next_backup: Option<DateTime<Utc>>,
    copy: &CopyNote,
) -> Mail {
    let db = r.database.as_deref().unwrap_or("your database");
    let mut rows = vec![("Database", db.to_string())];
    if let Some(b) = r.bytes {
        rows.push(("Size", human_bytes(b)));
    }
    if let Some(d) = r.documents {
        rows.push(("Documents", d.to_string()));
    }
    rows.push(("Finished", when(r.ended)));
    rows.push(("Took", duration_of(r)));
    if let Some(dest) = &r.dest {
        rows.push(("Stored in", dest.clone()));
    }
    if let Some(id) = &r.backup_id {
        rows.push(("Backup", id.clone()));
    }
    if let Some(n) = r.pruned.filter(|n| *n > 0) {
        rows.push(("Old backups removed", n.to_string()));
    }
    rows.push((
        "Next backup",
        next_backup.map_or_else(|| "when you tap Back up".to_string(), when),
    ));
    let mut after = Vec::new();
    match copy {
        CopyNote::None => {}
        CopyNote::Attached(name) => after.push(format!(
            "The encrypted backup file {name} is attached. Keep it: it restores with your backup key (Driveback > Restore > From a file)."
        )),
        CopyNote::Skipped(why) => after.push(format!("No copy is attached: {why}")),
    }
    if !r.warnings.is_empty() {
        let mut lines: Vec<String> = r.warnings.iter().map(|w| w.describe()).collect();
        lines.push(
            "The backup before this one is kept until you acknowledge this in Driveback (Health), \
             or with `driveback acknowledge`. If you did not mean to delete this data, restore \
             that backup."
                .to_string(),
        );
        lines.extend(after);
        return compose(
            format!("Driveback: data went missing from {db}"),
            &format!("Data went missing from {db}"),
            "The backup succeeded, but it holds much less than the one before:",
            &rows,
            &lines,
            "#9a6700",
        );
    }
    compose(
        format!("Driveback: backup of {db} succeeded"),
        &format!("Backup of {db} succeeded"),
        "Your data was backed up and checked.",
        &rows,
        &after,
        "#1a7f37",
    )
}

/// A test restore found a backup that does not restore as it should.
pub fn test_restore_failed(r: &RunRecord) -> Mail {
    let db = r.database.as_deref().unwrap_or("your database");
    let mut rows = vec![("Database", db.to_string())];
    if let Some(id) = &r.backup_id {
        rows.push(("Backup", id.clone()));
    }
    rows.push(("Tested", when(r.ended)));
    let why = r
        .error
        .as_ref()
        .map(|e| e.message.clone())
        .unwrap_or_else(|| "the test restore did not pass".into());
    compose(
        format!("Driveback: the restore test of {db} failed"),
        &format!("The restore test of {db} failed"),
        "Driveback restored a backup into a scratch database and it did not come back as it was made:",
        &rows,
        &[
            why,
            "Make a new backup now (Back up in Driveback), and test it again; keep the older backups until one passes.".to_string(),
        ],
        "#cf222e",
    )
}

/// A backup failed (or made only a partial backup).
pub fn backup_failed(r: &RunRecord, last_good: Option<DateTime<Utc>>, now: DateTime<Utc>) -> Mail {
    let db = r.database.as_deref().unwrap_or("your database");
    let partial = r.outcome == Outcome::Partial;
    let error = r
        .error
        .as_ref()
        .map(|e| e.message.clone())
        .unwrap_or_else(|| "no reason was given".into());
    let code = r.error.as_ref().map(|e| e.code.as_str()).unwrap_or("");
    let mut rows = vec![
        ("Database", db.to_string()),
        ("When", when(r.ended)),
        ("What went wrong", error),
    ];
    rows.push((
        "Last good backup",
        last_good.map_or_else(
            || "none yet".to_string(),
            |t| format!("{} ({} ago)", when(t), human_duration(now - t)),
        ),
    ));
    let todo = match code {
        "database_unreachable" => "Check that the database server is running and reachable from this computer, then tap Back up.",
        "reconnect_needed" => "Open Driveback and connect Google Drive again, then tap Back up.",
        "destination_full" => "Free some space at the backup destination (or keep fewer backups), then tap Back up.",
        "no_key" | "wrong_key" | "wrong_passphrase" => "Open Driveback and check the backup key for this destination.",
        "partial_backup" => "Open Driveback to see which collections could not be read; the next backup tries them again.",
        _ => "Open Driveback to see the details and tap Back up to try again. The next scheduled backup also tries again.",
    };
    let (subject, title) = if partial {
        (
            format!("Driveback: backup of {db} is incomplete"),
            format!("Backup of {db} is incomplete"),
        )
    } else {
        (
            format!("Driveback: backup of {db} FAILED"),
            format!("Backup of {db} failed"),
        )
    };
    compose(
        subject,
        &title,
        if partial {
            "A backup was made, but some collections are missing from it."
        } else {
            "No new backup was made."
        },
        &rows,
        &[format!("What to do: {todo}")],
        "#cf222e",
    )
}

/// The numbers of a week of backups.
#[derive(Clone, Debug, PartialEq)]
pub struct WeeklySummary {
    pub since: DateTime<Utc>,
    pub until: DateTime<Utc>,
    pub runs: usize,
    pub succeeded: usize,
    pub failed: usize,
    pub pruned: u64,
    /// Size of the newest complete backup, and of the total made this week.
    pub last_size: Option<u64>,
    pub bytes_made: u64,
    pub health: Option<(Status, Vec<String>)>,
    /// How the size and time of the last backups went (see [`crate::health::trend_text`]).
    pub trend: Option<String>,
}

impl WeeklySummary {
    /// Counts the backup runs that started in `[since, until)`.
    pub fn from_records(
        records: &[RunRecord],
        since: DateTime<Utc>,
        until: DateTime<Utc>,
        health: Option<&Health>,
    ) -> Self {
        let week: Vec<&RunRecord> = records
            .iter()
            .filter(|r| r.kind == crate::history::RunKind::Backup)
            .filter(|r| r.started >= since && r.started < until)
            .collect();
        WeeklySummary {
            since,
            until,
            runs: week
                .iter()
                .filter(|r| r.outcome != Outcome::Cancelled)
                .count(),
            succeeded: week.iter().filter(|r| r.is_good()).count(),
            failed: week
                .iter()
                .filter(|r| matches!(r.outcome, Outcome::Failed | Outcome::Partial))
                .count(),
            pruned: week.iter().filter_map(|r| r.pruned).map(u64::from).sum(),
            last_size: crate::history::last_success(records).and_then(|r| r.bytes),
            bytes_made: week
                .iter()
                .filter(|r| r.is_good())
                .filter_map(|r| r.bytes)
                .sum(),
            trend: health.and_then(|h| crate::health::trend_text(&h.metrics)),
            health: health.map(|h| {
                (
                    h.status,
                    h.checks
                        .iter()
                        .filter(|c| c.status != Status::Healthy)
                        .map(|c| c.message.clone())
                        .collect(),
                )
            }),
        }
    }
}

/// The weekly summary.
pub fn weekly_summary(s: &WeeklySummary) -> Mail {
    let rate = match (s.succeeded * 100).checked_div(s.runs) {
        None => "no backups ran".to_string(),
        Some(pct) => format!("{pct}% ({} of {})", s.succeeded, s.runs),
    };
    let mut rows = vec![
        ("Success rate", rate),
        ("Backups made", s.succeeded.to_string()),
        ("Failed or incomplete", s.failed.to_string()),
        ("Old backups removed", s.pruned.to_string()),
        ("Made this week", human_bytes(s.bytes_made)),
    ];
    if let Some(b) = s.last_size {
        rows.push(("Newest backup", human_bytes(b)));
    }
    if let Some(t) = &s.trend {
        rows.push(("Trend", t.clone()));
    }
    let mut after = Vec::new();
    let (lead, colour) = match &s.health {
        Some((Status::Healthy, _)) | None if s.failed == 0 && s.succeeded > 0 => (
            "All is well: your data is backed up.".to_string(),
            "#1a7f37",
        ),
        Some((status, problems)) => {
            rows.push((
                "Health",
                match status {
                    Status::Healthy => "healthy",
                    Status::Warning => "needs attention",
                    Status::Critical => "at risk",
                }
                .to_string(),
            ));
            after.extend(problems.iter().cloned());
            (
                "Some things need your attention.".to_string(),
                if *status == Status::Critical {
                    "#cf222e"
                } else {
                    "#9a6700"
                },
            )
        }
        None => ("Some things need your attention.".to_string(), "#9a6700"),
    };
    let period = format!(
        "{} to {}",
        s.since
            .with_timezone(&Local)
            .format("%e %b")
            .to_string()
            .trim(),
        s.until
            .with_timezone(&Local)
            .format("%e %b %Y")
            .to_string()
            .trim()
    );
    compose(
        format!("Driveback: your week of backups ({period})"),
        &format!("Your week of backups, {period}"),
        &lead,
        &rows,
        &after,
        colour,
    )
}

/// The test email of `driveback test-email` and the settings screen.
pub fn test_email(host: &str, port: u16, now: DateTime<Utc>) -> Mail {
    compose(
        "Driveback: test email".into(),
        "Email reports work",
        "This is a test from Driveback: if you can read it, backup reports will reach you.",
        &[
            ("Sent through", format!("{host}:{port}")),
            ("Sent at", when(now)),
        ],
        &[],
        "#0969da",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{RunError, RunKind, Trigger};

    fn record(outcome: Outcome) -> RunRecord {
        let t = Utc::now();
        RunRecord {
            warnings: Vec::new(),
            job_id: "j".into(),
            kind: RunKind::Backup,
            trigger: Trigger::Scheduled,
            started: t - Duration::seconds(42),
            ended: t,
            outcome,
            database: Some("shop<&>".into()),
            dest: Some("folder:/b".into()),
            backup_id: Some("0000000a".into()),
            bytes: Some(2_500_000),
            documents: Some(1234),
            verified: Some(true),
            pruned: Some(1),
            error: (outcome != Outcome::Success).then(|| RunError {
                code: "database_unreachable".into(),
                message: "could not reach the database at localhost:27017".into(),
            }),
        }
    }

    #[test]
    fn a_failed_restore_test_names_the_backup_and_why() {
        let mut r = record(Outcome::Failed);
        r.kind = crate::history::RunKind::Audit;
        r.backup_id = Some("0a1b2c3d".into());
        r.error = Some(crate::history::RunError {
            code: "verification_failed".into(),
            message: "users: the server gave back 6 documents, the backup holds 7".into(),
        });
        let m = test_restore_failed(&r);
        assert!(m.subject.contains("restore test"), "{}", m.subject);
        for part in [&m.text, &m.html] {
            assert!(part.contains("0a1b2c3d"), "{part}");
            assert!(part.contains("the server gave back 6 documents"), "{part}");
        }
    }

    #[test]
    fn both_parts_say_the_same_and_html_is_escaped() {
        let r = record(Outcome::Success);
        let m = backup_succeeded(&r, None, &CopyNote::Skipped("too big".into()));
        assert_eq!(m.subject, "Driveback: backup of shop<&> succeeded");
        for needle in [
            "Documents: 1234",
            "Size: 2.5 MB",
            "Took: 42 seconds",
            "too big",
        ] {
            assert!(m.text.contains(needle), "{needle} in {}", m.text);
        }
        assert!(m.html.contains("shop&lt;&amp;&gt;"), "{}", m.html);
        assert!(!m.html.contains("shop<&>"));
        let f = backup_failed(&record(Outcome::Failed), None, Utc::now());
        assert!(f.subject.ends_with("FAILED"));
        assert!(f.text.contains("Last good backup: none yet"));
        assert!(f
            .text
            .contains("What to do: Check that the database server is running"));
    }

    #[test]
    fn weekly_numbers() {
        let now = Utc::now();
        let mut rs = vec![record(Outcome::Success), record(Outcome::Failed)];
        rs.push(record(Outcome::Success));
        let s = WeeklySummary::from_records(
            &rs,
            now - Duration::days(7),
            now + Duration::days(1),
            None,
        );
        assert_eq!((s.runs, s.succeeded, s.failed, s.pruned), (3, 2, 1, 3));
        let m = weekly_summary(&s);
        assert!(m.text.contains("Success rate: 66% (2 of 3)"), "{}", m.text);
        // With the health: the trend of the last backups' size and time.
        let mut rs = rs;
        for (i, r) in rs.iter_mut().enumerate() {
            r.bytes = Some(10_000 * (i as u64 + 1));
        }
        let h = crate::health::health(
            &rs,
            &crate::settings::Settings::default(),
            &crate::health::Observations::default(),
            now,
            &Utc,
        );
        let s = WeeklySummary::from_records(
            &rs,
            now - Duration::days(7),
            now + Duration::days(1),
            Some(&h),
        );
        let m = weekly_summary(&s);
        assert!(
            m.text.contains("Trend: 10 kB → 30 kB,") && m.text.contains("over the last 2 backups"),
            "{}",
            m.text
        );
    }
}
