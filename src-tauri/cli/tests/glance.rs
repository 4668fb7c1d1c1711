//! `driveback status` opens with the glance line (the same line as the app's home card and its
//! tray), `status --json` carries it, and `driveback pause` / `resume` show in it, through the
//! real CLI, server and folder.

mod common;

use chrono::{DateTime, Local, Utc};
use common::*;

fn first_line(out: &str) -> &str {
    out.lines().next().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn status_opens_with_the_glance_line_and_a_pause_shows_in_it() {
    let server = mongo();
    let client = server.client().await;
    let db = server.fresh_db("glance");
    seed_ids(&client, &db, "entries", 50).await;
    let env = Env::new();
    env.ok(&["config", "set", "backup.dest", &env.dest()]);

    // No backup yet: said first, with the next slot.
    let out = env.ok(&["status"]);
    assert!(
        first_line(&out).starts_with("Not backed up yet · Next: "),
        "{out}"
    );
    let json: serde_json::Value = serde_json::from_str(&env.ok(&["status", "--json"])).unwrap();
    assert_eq!(json["glance"]["level"], "stale", "{json}");

    // After a backup: how long ago, its size, the next slot; the JSON carries the same line.
    env.backup(server.uri(), &db);
    let out = env.ok(&["status"]);
    let line = first_line(&out).to_string();
    assert!(line.starts_with("Backed up just now · "), "{out}");
    assert!(
        line.contains(" kB · Next: ") || line.contains(" bytes · Next: "),
        "{out}"
    );
    assert!(out.lines().nth(1).unwrap().starts_with("Status: "), "{out}");
    let json: serde_json::Value = serde_json::from_str(&env.ok(&["status", "--json"])).unwrap();
    assert_eq!(json["glance"]["text"], line.as_str(), "{json}");
    assert_eq!(json["glance"]["level"], "fresh", "{json}");

    // Paused until tomorrow 09:00 local time: the line and the health say so.
    let before = Local::now().date_naive();
    let out = env.ok(&["pause"]);
    let after = Local::now().date_naive();
    assert!(
        out.starts_with("Automatic backups paused until tomorrow 09:00 ("),
        "{out}"
    );
    let until: DateTime<Utc> = env
        .ok(&["config", "get", "schedule.paused_until"])
        .trim()
        .parse()
        .unwrap();
    let local = until.with_timezone(&Local);
    assert_eq!(local.format("%H:%M").to_string(), "09:00");
    assert!(
        [before.succ_opt().unwrap(), after.succ_opt().unwrap()].contains(&local.date_naive()),
        "{local}"
    );
    let out = env.ok(&["status"]);
    assert!(
        first_line(&out).ends_with(" · Automatic backups paused until tomorrow 09:00"),
        "{out}"
    );
    assert!(
        out.contains(
            "[warning ] Automatic backups are paused until tomorrow 09:00; Back up still works."
        ),
        "{out}"
    );
    let json: serde_json::Value = serde_json::from_str(&env.ok(&["status", "--json"])).unwrap();
    assert_eq!(json["status"], "warning", "{json}");
    assert_eq!(json["glance"]["level"], "fresh", "{json}");

    // What a pause refuses, in one line each.
    let past = env.cli(&["pause", "--until", "2020-01-01T00:00:00Z"]);
    assert!(
        one_error_line(&past).contains("a pause must end in the future"),
        "{}",
        String::from_utf8_lossy(&past.stderr)
    );
    let junk = env.cli(&["pause", "--until", "soon"]);
    assert!(
        one_error_line(&junk).contains("--until: 'soon' is not a date and time"),
        "{}",
        String::from_utf8_lossy(&junk.stderr)
    );
    // The refused pauses left the one there was.
    assert_eq!(
        env.ok(&["config", "get", "schedule.paused_until"]).trim(),
        until.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    );

    // Resumed: the next slot again.
    let out = env.ok(&["resume"]);
    assert!(out.starts_with("Automatic backups resumed: "), "{out}");
    let out = env.ok(&["status"]);
    assert!(first_line(&out).contains(" · Next: "), "{out}");
    assert!(!out.contains("paused"), "{out}");
    assert_eq!(
        env.ok(&["config", "get", "schedule.paused_until"]).trim(),
        ""
    );

    // A pause set by hand (as the settings file takes it) shows the same.
    env.ok(&[
        "config",
        "set",
        "schedule.paused_until",
        &(Utc::now() + chrono::Duration::days(3)).to_rfc3339(),
    ]);
    let out = env.ok(&["status"]);
    assert!(
        first_line(&out).contains(" · Automatic backups paused until "),
        "{out}"
    );
    env.ok(&["resume"]);

    // With automatic backups off there is nothing to pause.
    env.ok(&["config", "set", "schedule.frequency", "off"]);
    let off = env.cli(&["pause"]);
    assert!(
        one_error_line(&off).contains("automatic backups are off: there is nothing to pause"),
        "{}",
        String::from_utf8_lossy(&off.stderr)
    );
    let out = env.ok(&["status"]);
    assert!(
        first_line(&out).ends_with(" · Automatic backups off"),
        "{out}"
    );
}
