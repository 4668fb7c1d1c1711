//! The one line that says, at a glance, whether the data is safe: "Backed up 2 hours ago · 61 kB
//! · Next: tonight 02:00". The app's home card, the tray and `driveback status` all show this
//! line, worked out here once. Pure: what is known (the newest complete backup, the schedule, the
//! destination, a running backup) and `now` go in, the words and an age level come out.
//!
//! The level follows the health's last-backup check ([`health::max_backup_age`]): `fresh` within
//! the schedule's period, `aging` past it, `stale` past the period and its slack (26 hours for a
//! daily schedule), when the health check turns critical. With backups only on demand, `aging`
//! past [`health::MANUAL_BACKUP_AGE_WARNING`] (the health's warning) and never `stale`. No backup
//! at all is `stale`.

use chrono::{DateTime, Datelike, Duration, TimeZone, Timelike, Utc};
use serde::Serialize;

use crate::health::{self, human_bytes, human_duration};
use crate::history::{self, RunRecord};
use crate::manifest::BackupStatus;
use crate::settings::{Frequency, ScheduleSettings};
use crate::store::StoredBackup;

/// How old the newest complete backup is, for the schedule.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Fresh,
    Aging,
    Stale,
}

/// The line and its level.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Glance {
    pub text: String,
    pub level: Level,
}

/// Whether the destination could be read just now.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Reach {
    /// Read, or not asked (no destination chosen).
    #[default]
    Ok,
    /// Could not be reached (offline, a server error): what is known comes from this device.
    Unreachable,
    /// Google no longer accepts the sign-in.
    ReconnectNeeded,
    /// Drive was disconnected on this computer (no sign-in at all).
    NotConnected,
}

/// The newest complete backup.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LastGood {
    pub at: DateTime<Utc>,
    /// Its size, when known.
    pub bytes: Option<u64>,
}

/// What the line is made of.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Facts {
    pub last_good: Option<LastGood>,
    pub reach: Reach,
    /// The destination is Google Drive (else a folder).
    pub drive: bool,
    pub frequency: Frequency,
    /// Automatic backups wait until then (only a time still ahead counts).
    pub paused_until: Option<DateTime<Utc>>,
    /// When the next automatic backup starts (in the past while one is due).
    pub next_due: Option<DateTime<Utc>>,
    /// A backup is running now.
    pub backing_up: bool,
}

/// The newest complete backup, as the health's last-backup check sees it: from this device's
/// history or the destination's listing (`None`: it could not be listed), whichever is newer.
pub fn last_good(records: &[RunRecord], listed: Option<&[StoredBackup]>) -> Option<LastGood> {
    let from_history = history::last_success(records).map(|r| LastGood {
        at: r.ended,
        bytes: r.bytes,
    });
    let from_dest = listed.and_then(|bs| {
        bs.iter()
            .filter(|b| b.status == BackupStatus::Complete)
            .max_by_key(|b| b.created)
            .map(|b| LastGood {
                at: b.created,
                bytes: Some(b.bytes),
            })
    });
    match (from_history, from_dest) {
        (Some(h), Some(d)) if h.at > d.at => Some(LastGood {
            bytes: h.bytes.or(d.bytes),
            ..h
        }),
        (h, None) => h,
        (_, d) => d,
    }
}

/// The facts of the line. `listed`: `None` when no destination is chosen, else its listing or
/// why it could not be read (then the newest backup is what this device's history knows).
pub fn facts(
    records: &[RunRecord],
    listed: Option<Result<&[StoredBackup], Reach>>,
    drive: bool,
    schedule: &ScheduleSettings,
    next_due: Option<DateTime<Utc>>,
    backing_up: bool,
) -> Facts {
    let (last_good, reach) = match listed {
        None => (last_good(records, None), Reach::Ok),
        Some(Ok(list)) => (last_good(records, Some(list)), Reach::Ok),
        Some(Err(reach)) => (last_good(records, None), reach),
    };
    Facts {
        last_good,
        reach,
        drive,
        frequency: schedule.frequency,
        paused_until: schedule.paused_until,
        next_due,
        backing_up,
    }
}

/// How old the newest complete backup is, by the health's rule (see the module notes).
pub fn level(frequency: Frequency, last_good: Option<DateTime<Utc>>, now: DateTime<Utc>) -> Level {
    let Some(at) = last_good else {
        return Level::Stale;
    };
    let age = now - at;
    match (
        health::schedule_period(frequency),
        health::max_backup_age(frequency),
    ) {
        (_, Some(limit)) if age > limit => Level::Stale,
        (Some(period), _) if age > period => Level::Aging,
        (None, _) if age > health::MANUAL_BACKUP_AGE_WARNING => Level::Aging,
        _ => Level::Fresh,
    }
}

/// A time to come, as people say it: "today 14:00", "tonight 02:00", "tomorrow 09:00",
/// "Friday 02:00", "12 March 02:00".
pub fn when<Tz: TimeZone>(t: DateTime<Utc>, now: DateTime<Utc>, tz: &Tz) -> String {
    let (lt, ln) = (
        t.with_timezone(tz).naive_local(),
        now.with_timezone(tz).naive_local(),
    );
    let hm = format!("{:02}:{:02}", lt.hour(), lt.minute());
    match (lt.date() - ln.date()).num_days() {
        0 if lt.hour() >= 18 => format!("tonight {hm}"),
        0 => format!("today {hm}"),
        // The small hours after an afternoon or evening are still "tonight".
        1 if lt.hour() < 6 && ln.hour() >= 12 => format!("tonight {hm}"),
        1 => format!("tomorrow {hm}"),
        2..=6 => format!("{} {hm}", lt.format("%A")),
        _ => format!("{} {} {hm}", lt.day(), lt.format("%B")),
    }
}

/// The line at `now` in the local time zone `tz`.
pub fn glance<Tz: TimeZone>(f: &Facts, now: DateTime<Utc>, tz: &Tz) -> Glance {
    let mut parts: Vec<String> = Vec::new();
    match f.last_good {
        None => parts.push("Not backed up yet".into()),
        Some(g) => {
            let age = now - g.at;
            parts.push(if age < Duration::minutes(1) {
                "Backed up just now".into()
            } else {
                format!("Backed up {} ago", human_duration(age))
            });
            if let Some(bytes) = g.bytes.filter(|b| *b > 0) {
                parts.push(human_bytes(bytes));
            }
        }
    }
    let paused = f.paused_until.filter(|p| *p > now);
    if f.backing_up {
        parts.push("Backing up now".into());
    } else if f.frequency == Frequency::Off {
        parts.push("Automatic backups off".into());
    } else if let Some(p) = paused {
        parts.push(format!(
            "Automatic backups paused until {}",
            when(p, now, tz)
        ));
    } else if let Some(due) = f.next_due {
        parts.push(if due <= now {
            "Next: due now".into()
        } else {
            format!("Next: {}", when(due, now, tz))
        });
    }
    match f.reach {
        Reach::Ok => {}
        Reach::Unreachable if f.drive => parts.push("Drive cannot be reached right now".into()),
        Reach::Unreachable => parts.push("The backup folder cannot be reached right now".into()),
        Reach::ReconnectNeeded => parts.push("Google Drive needs reconnecting".into()),
        Reach::NotConnected => parts.push("Google Drive is not connected".into()),
    }
    Glance {
        text: parts.join(" · "),
        level: level(f.frequency, f.last_good.map(|g| g.at), now),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schedule::testzone::{local, utc, BERLIN};

    fn facts() -> Facts {
        Facts {
            last_good: None,
            reach: Reach::Ok,
            drive: true,
            frequency: Frequency::Daily,
            paused_until: None,
            next_due: None,
            backing_up: false,
        }
    }

    fn good(at: &str, bytes: u64) -> Option<LastGood> {
        Some(LastGood {
            at: utc(at),
            bytes: Some(bytes),
        })
    }

    #[test]
    fn the_line_in_words() {
        // Now: Tuesday 2024-01-09 14:00 UTC.
        let now = utc("2024-01-09 14:00");
        let cases: Vec<(&str, Facts, &str, Level)> = vec![
            (
                "backed up this morning, next tonight",
                Facts {
                    last_good: good("2024-01-09 12:00", 61_000),
                    next_due: Some(utc("2024-01-10 02:00")),
                    ..facts()
                },
                "Backed up 2 hours ago · 61 kB · Next: tonight 02:00",
                Level::Fresh,
            ),
            (
                "never backed up",
                Facts {
                    next_due: Some(utc("2024-01-09 20:00")),
                    ..facts()
                },
                "Not backed up yet · Next: tonight 20:00",
                Level::Stale,
            ),
            (
                "never backed up, the slot later today",
                Facts {
                    next_due: Some(utc("2024-01-09 16:30")),
                    ..facts()
                },
                "Not backed up yet · Next: today 16:30",
                Level::Stale,
            ),
            (
                "paused until tomorrow morning",
                Facts {
                    last_good: good("2024-01-08 02:03", 2_500_000),
                    paused_until: Some(utc("2024-01-10 09:00")),
                    next_due: Some(utc("2024-01-10 09:00")),
                    ..facts()
                },
                "Backed up 35 hours ago · 2.5 MB · Automatic backups paused until tomorrow 09:00",
                Level::Stale,
            ),
            (
                "a pause that ended is not mentioned",
                Facts {
                    last_good: good("2024-01-09 13:59:30", 1_000),
                    paused_until: Some(utc("2024-01-09 09:00")),
                    next_due: Some(utc("2024-01-10 02:00")),
                    ..facts()
                },
                "Backed up just now · 1 kB · Next: tonight 02:00",
                Level::Fresh,
            ),
            (
                "automatic backups off",
                Facts {
                    last_good: good("2024-01-05 14:00", 500),
                    frequency: Frequency::Off,
                    ..facts()
                },
                "Backed up 4 days ago · 500 bytes · Automatic backups off",
                Level::Fresh,
            ),
            (
                "off, 8 days old: aging, never stale",
                Facts {
                    last_good: good("2024-01-01 14:00", 500),
                    frequency: Frequency::Off,
                    ..facts()
                },
                "Backed up 8 days ago · 500 bytes · Automatic backups off",
                Level::Aging,
            ),
            (
                "Drive cannot be listed: known from the history",
                Facts {
                    last_good: good("2024-01-09 02:03", 61_000),
                    reach: Reach::Unreachable,
                    next_due: Some(utc("2024-01-10 02:00")),
                    ..facts()
                },
                "Backed up 11 hours ago · 61 kB · Next: tonight 02:00 · Drive cannot be reached right now",
                Level::Fresh,
            ),
            (
                "a folder that cannot be read",
                Facts {
                    last_good: good("2024-01-09 02:03", 61_000),
                    reach: Reach::Unreachable,
                    drive: false,
                    next_due: Some(utc("2024-01-10 02:00")),
                    ..facts()
                },
                "Backed up 11 hours ago · 61 kB · Next: tonight 02:00 · The backup folder cannot be reached right now",
                Level::Fresh,
            ),
            (
                "the sign-in is gone",
                Facts {
                    last_good: good("2024-01-08 12:00", 61_000),
                    reach: Reach::ReconnectNeeded,
                    next_due: Some(utc("2024-01-09 02:00")),
                    ..facts()
                },
                "Backed up 26 hours ago · 61 kB · Next: due now · Google Drive needs reconnecting",
                Level::Aging,
            ),
            (
                "Drive disconnected on this computer",
                Facts {
                    last_good: good("2024-01-09 12:00", 61_000),
                    reach: Reach::NotConnected,
                    next_due: Some(utc("2024-01-10 02:00")),
                    ..facts()
                },
                "Backed up 2 hours ago · 61 kB · Next: tonight 02:00 · Google Drive is not connected",
                Level::Fresh,
            ),
            (
                "a backup running",
                Facts {
                    last_good: good("2024-01-08 02:03", 61_000),
                    backing_up: true,
                    next_due: Some(utc("2024-01-09 02:00")),
                    ..facts()
                },
                "Backed up 35 hours ago · 61 kB · Backing up now",
                Level::Stale,
            ),
            (
                "a size not known is left out",
                Facts {
                    last_good: Some(LastGood {
                        at: utc("2024-01-09 13:00"),
                        bytes: None,
                    }),
                    next_due: Some(utc("2024-01-12 02:00")),
                    frequency: Frequency::Weekly,
                    ..facts()
                },
                "Backed up 60 minutes ago · Next: Friday 02:00",
                Level::Fresh,
            ),
            (
                "monthly, far ahead",
                Facts {
                    last_good: good("2024-01-01 02:00", 3_000_000_000),
                    next_due: Some(utc("2024-02-01 02:00")),
                    frequency: Frequency::Monthly,
                    ..facts()
                },
                "Backed up 8 days ago · 3.0 GB · Next: 1 February 02:00",
                Level::Fresh,
            ),
        ];
        for (name, f, text, lvl) in cases {
            let g = glance(&f, now, &chrono::Utc);
            assert_eq!(g.text, text, "{name}");
            assert_eq!(g.level, lvl, "{name}");
        }
    }

    #[test]
    fn age_levels_follow_the_health_check() {
        let now = utc("2024-03-10 12:00");
        let h = |hours: i64| Some(now - Duration::hours(hours));
        let d = |days: i64| Some(now - Duration::days(days));
        let cases: &[(Frequency, Option<DateTime<Utc>>, Level)] = &[
            (Frequency::Daily, None, Level::Stale),
            (Frequency::Daily, h(1), Level::Fresh),
            (Frequency::Daily, h(24), Level::Fresh),
            (Frequency::Daily, h(25), Level::Aging),
            (Frequency::Daily, h(26), Level::Aging),
            (Frequency::Daily, h(27), Level::Stale),
            (Frequency::Weekly, d(6), Level::Fresh),
            (Frequency::Weekly, h(7 * 24 + 1), Level::Aging),
            (Frequency::Weekly, d(8), Level::Stale),
            (Frequency::Monthly, d(30), Level::Fresh),
            (Frequency::Monthly, h(31 * 24 + 1), Level::Aging),
            (Frequency::Monthly, d(32), Level::Stale),
            (Frequency::Off, d(7), Level::Fresh),
            (Frequency::Off, d(8), Level::Aging),
            (Frequency::Off, d(400), Level::Aging),
            (Frequency::Off, None, Level::Stale),
        ];
        for (f, at, want) in cases {
            assert_eq!(level(*f, *at, now), *want, "{f} {at:?}");
        }
        // Stale exactly when the health's last-backup check is critical (the 26-hour rule).
        let limit = health::max_backup_age(Frequency::Daily).unwrap();
        assert_eq!(limit, Duration::hours(26));
        assert_eq!(
            level(Frequency::Daily, Some(now - limit), now),
            Level::Aging
        );
        assert_eq!(
            level(
                Frequency::Daily,
                Some(now - limit - Duration::seconds(1)),
                now
            ),
            Level::Stale
        );
    }

    #[test]
    fn times_to_come_in_words() {
        // In Berlin (+01:00 in winter): now Tuesday 2024-01-09.
        let cases: &[(&str, &str, &str)] = &[
            ("2024-01-09 10:00", "2024-01-09 11:30", "today 11:30"),
            ("2024-01-09 10:00", "2024-01-09 18:00", "tonight 18:00"),
            ("2024-01-09 10:00", "2024-01-10 02:00", "tomorrow 02:00"),
            ("2024-01-09 15:00", "2024-01-10 02:00", "tonight 02:00"),
            ("2024-01-09 23:30", "2024-01-10 02:00", "tonight 02:00"),
            ("2024-01-09 23:30", "2024-01-10 09:00", "tomorrow 09:00"),
            ("2024-01-10 00:30", "2024-01-10 02:00", "today 02:00"),
            ("2024-01-09 10:00", "2024-01-11 02:00", "Thursday 02:00"),
            ("2024-01-09 10:00", "2024-01-15 02:00", "Monday 02:00"),
            ("2024-01-09 10:00", "2024-01-16 02:00", "16 January 02:00"),
        ];
        for (now, t, want) in cases {
            assert_eq!(
                when(local(&BERLIN, t), local(&BERLIN, now), &BERLIN),
                *want,
                "{now} -> {t}"
            );
        }
    }

    #[test]
    fn the_newest_complete_backup_from_the_history_or_the_destination() {
        use crate::history::tests::record;
        use crate::history::Outcome;
        let records = vec![record(0, Outcome::Success), record(1, Outcome::Failed)];
        // From the history only (the destination could not be listed).
        assert_eq!(
            last_good(&records, None),
            Some(LastGood {
                at: utc("2024-01-01 02:03"),
                bytes: Some(1000)
            })
        );
        assert_eq!(last_good(&[], None), None);
        let stored = |at: &str, status: BackupStatus| StoredBackup {
            id: "0000000b".into(),
            file: String::new(),
            bytes: 42,
            created: utc(at),
            database: "shop".into(),
            documents: 1,
            status,
            sha256: String::new(),
            signature: None,
            link: None,
        };
        // A newer complete backup at the destination (made by another device) wins; a partial
        // one does not count.
        let listed = vec![
            stored("2024-01-03 02:00", BackupStatus::Partial),
            stored("2024-01-02 02:00", BackupStatus::Complete),
        ];
        assert_eq!(
            last_good(&records, Some(&listed)),
            Some(LastGood {
                at: utc("2024-01-02 02:00"),
                bytes: Some(42)
            })
        );
        // An older listing does not hide the history's newer backup.
        assert_eq!(
            last_good(&[record(5, Outcome::Success)], Some(&listed)),
            Some(LastGood {
                at: utc("2024-01-06 02:03"),
                bytes: Some(1005)
            })
        );
    }
}
