//! When the next automatic backup is due. Pure: the time, the time zone and what the scheduler
//! knows are arguments, so tables of fixed dates test it.
//!
//! A schedule defines *slots*: every day (or on the chosen weekday, or on the chosen day of the
//! month) at the chosen local time. A slot is satisfied by a backup run, manual or scheduled, that
//! finished between the slot and now with a backup (complete or partial) or was cancelled by the
//! user. A run that failed is retried within the period, after 5 minutes, 15 minutes, 1 hour and
//! then hourly, until one succeeds or the next slot comes; a failure that waiting cannot heal (a
//! passphrase or a sign-in needed, the destination full, the key replaced) is not retried: its
//! alert asks the user, and the next slot or the user's fix starts the next run. Only the most
//! recent slot counts, so slots missed while the computer was off or asleep give one catch-up
//! run, not one per slot; it starts a short delay after the wake or launch (the network and the
//! database may need a moment).
//!
//! Local times that do not exist (the hour skipped when clocks spring forward) are taken as the
//! same wall time before the change, i.e. shifted forward by the gap (02:30 becomes 03:30); times
//! that exist twice (clocks falling back) are the first of the two.

use chrono::{
    DateTime, Datelike, Duration, LocalResult, NaiveDate, NaiveTime, Offset, TimeZone, Utc,
};

use crate::settings::{Frequency, ScheduleSettings};

/// How long after a launch or wake a missed slot is caught up.
pub const CATCH_UP_DELAY: Duration = Duration::minutes(2);

/// Slots are looked for within this many days (a monthly slot is at most 31 days apart).
const SEARCH_DAYS: i64 = 64;

/// How long after the n-th failed attempt of a period the next one starts (then hourly).
pub const RETRY_DELAYS: [Duration; 3] = [
    Duration::minutes(5),
    Duration::minutes(15),
    Duration::hours(1),
];

/// How many recent attempts the scheduler looks at (enough to reach the hourly retries; the
/// length of [`ScheduleState::recent`]).
pub const RECENT_ATTEMPTS: usize = 8;

/// How a backup run ended, as the schedule sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Attempt {
    /// A backup was made (complete or partial), or the user cancelled: the slot is served.
    Done,
    /// Failed for a reason that may pass (the network, the database, a server error): retried.
    Failed,
    /// Failed for a reason only the user can fix: not retried before the next slot.
    Blocked,
}

impl Attempt {
    /// From a run's outcome and error code.
    pub fn of(outcome: crate::history::Outcome, code: Option<&str>) -> Self {
        use crate::history::Outcome;
        match outcome {
            Outcome::Success | Outcome::Partial | Outcome::Cancelled => Attempt::Done,
            Outcome::Failed if code.is_some_and(needs_the_user) => Attempt::Blocked,
            Outcome::Failed => Attempt::Failed,
        }
    }
}

/// Error codes that waiting does not heal.
pub fn needs_the_user(code: &str) -> bool {
    matches!(
        code,
        "passphrase_required"
            | "wrong_passphrase"
            | "no_key"
            | "key_changed"
            | "wrong_key"
            | "destination_full"
            | "not_connected"
            | "reconnect_needed"
            | "access_denied"
            | "scope_not_granted"
            | "keyring_unavailable"
            | "keyring_locked"
            | "not_configured"
            | "bad_mongo_uri"
    )
}

/// What the scheduler knows besides the clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScheduleState {
    /// When the last backup run (any trigger, any outcome) finished; `None` if there never was one.
    pub last_attempt: Option<DateTime<Utc>>,
    /// When the scheduler started or last noticed that the computer woke up (or that the clock
    /// jumped). A slot older than this was missed, and is caught up after `catch_up_delay`.
    pub awake_since: DateTime<Utc>,
    pub catch_up_delay: Duration,
    /// The latest backup runs, newest first: when each ended and how. Empty: every run counts
    /// as [`Attempt::Done`] (no retries).
    pub recent: [Option<(DateTime<Utc>, Attempt)>; 8],
}

impl ScheduleState {
    pub fn new(last_attempt: Option<DateTime<Utc>>, awake_since: DateTime<Utc>) -> Self {
        ScheduleState {
            last_attempt,
            awake_since,
            catch_up_delay: CATCH_UP_DELAY,
            recent: [None; 8],
        }
    }

    /// With the latest runs (`(ended, attempt)`, newest first); `last_attempt` is the newest.
    pub fn with_recent(
        mut self,
        recent: impl IntoIterator<Item = (DateTime<Utc>, Attempt)>,
    ) -> Self {
        self.recent = [None; 8];
        for (slot, a) in self.recent.iter_mut().zip(recent) {
            *slot = Some(a);
        }
        if let Some((t, _)) = self.recent[0] {
            self.last_attempt = Some(t);
        }
        self
    }
}

/// When a period whose runs since `slot` all failed is tried again: `None` when it is not (a
/// run served it, one was blocked, or nothing is known about the runs).
fn retry_at(
    state: &ScheduleState,
    slot: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    let since: Vec<(DateTime<Utc>, Attempt)> = state
        .recent
        .iter()
        .flatten()
        .copied()
        .filter(|(t, _)| *t >= slot && *t <= now)
        .collect();
    let (last, Attempt::Failed) = *since.first()? else {
        return None;
    };
    let failures = since
        .iter()
        .take_while(|(_, a)| *a == Attempt::Failed)
        .count();
    let delay = RETRY_DELAYS
        .get(failures - 1)
        .copied()
        .unwrap_or(Duration::hours(1));
    Some(last + delay)
}

/// The instant of a local date and time in `tz` (see the module notes for gaps and folds).
pub fn local_instant<Tz: TimeZone>(date: NaiveDate, time: NaiveTime, tz: &Tz) -> DateTime<Utc> {
    let naive = date.and_time(time);
    match tz.from_local_datetime(&naive) {
        LocalResult::Single(t) => t.with_timezone(&Utc),
        LocalResult::Ambiguous(first, _) => first.with_timezone(&Utc),
        LocalResult::None => {
            // A day earlier the offset before the change was in force.
            let before = tz
                .offset_from_utc_datetime(&(naive - Duration::hours(24)))
                .fix();
            (naive - Duration::seconds(before.local_minus_utc().into())).and_utc()
        }
    }
}

fn days_in_month(year: i32, month: u32) -> u32 {
    let (ny, nm) = if month == 12 {
        (year + 1, 1)
    } else {
        (year, month + 1)
    };
    NaiveDate::from_ymd_opt(ny, nm, 1)
        .and_then(|d| d.pred_opt())
        .map_or(28, |d| d.day())
}

fn is_slot_date(s: &ScheduleSettings, d: NaiveDate) -> bool {
    match s.frequency {
        Frequency::Daily => true,
        Frequency::Weekly => d.weekday() == s.weekday,
        Frequency::Monthly => {
            d.day() == u32::from(s.day_of_month).min(days_in_month(d.year(), d.month()))
        }
        Frequency::Off => false,
    }
}

/// The most recent slot at or before `now`; `None` when backups are only manual.
pub fn last_slot<Tz: TimeZone>(
    s: &ScheduleSettings,
    now: DateTime<Utc>,
    tz: &Tz,
) -> Option<DateTime<Utc>> {
    let today = now.with_timezone(tz).date_naive();
    (0..=SEARCH_DAYS)
        .filter_map(|i| today.checked_sub_signed(Duration::days(i)))
        .filter(|d| is_slot_date(s, *d))
        .map(|d| local_instant(d, s.time.to_naive(), tz))
        .find(|t| *t <= now)
}

/// The first slot strictly after `after`; `None` when backups are only manual.
pub fn next_slot<Tz: TimeZone>(
    s: &ScheduleSettings,
    after: DateTime<Utc>,
    tz: &Tz,
) -> Option<DateTime<Utc>> {
    let today = after.with_timezone(tz).date_naive();
    (-1..=SEARCH_DAYS)
        .filter_map(|i| today.checked_add_signed(Duration::days(i)))
        .filter(|d| is_slot_date(s, *d))
        .map(|d| local_instant(d, s.time.to_naive(), tz))
        .find(|t| *t > after)
}

/// Whether a run that finished at `last_attempt` covers `slot`: it finished after the slot began
/// and not "in the future" (a clock set back makes such a run not count, which costs at most one
/// extra backup rather than skipping any).
fn covers(slot: DateTime<Utc>, last_attempt: Option<DateTime<Utc>>, now: DateTime<Utc>) -> bool {
    last_attempt.is_some_and(|t| t >= slot && t <= now)
}

/// When the next automatic backup should start: possibly in the past (it is due), `None` when
/// backups are only manual. While automatic backups are paused (`paused_until` ahead of `now`),
/// nothing is due before the pause ends: not a slot, a retry or a catch-up. A slot missed during
/// the pause is due when it ends (once, however many were missed), as after a wake.
pub fn next_due<Tz: TimeZone>(
    s: &ScheduleSettings,
    state: &ScheduleState,
    now: DateTime<Utc>,
    tz: &Tz,
) -> Option<DateTime<Utc>> {
    let due = next_due_unpaused(s, state, now, tz)?;
    match s.paused_until {
        Some(until) if until > now => Some(due.max(until)),
        _ => Some(due),
    }
}

/// The hour a pause "until tomorrow" ends, local time.
pub const PAUSE_ENDS_AT: (u32, u32) = (9, 0);

/// When "Pause automatic backups until tomorrow", chosen at `now`, ends: the next calendar day at
/// 09:00 local time. Not the schedule's own time: that is usually at night (02:00), so a pause
/// chosen in the evening would end a few hours later, right when the backup it was meant to hold
/// back starts. At 09:00 people are usually at their computer again, and the slot missed
/// overnight then runs once (see [`next_due`]).
pub fn pause_until_tomorrow<Tz: TimeZone>(now: DateTime<Utc>, tz: &Tz) -> DateTime<Utc> {
    let tomorrow = now
        .with_timezone(tz)
        .date_naive()
        .succ_opt()
        .expect("a date far from the end of time");
    let (h, m) = PAUSE_ENDS_AT;
    local_instant(
        tomorrow,
        NaiveTime::from_hms_opt(h, m, 0).expect("a valid time"),
        tz,
    )
}

fn next_due_unpaused<Tz: TimeZone>(
    s: &ScheduleSettings,
    state: &ScheduleState,
    now: DateTime<Utc>,
    tz: &Tz,
) -> Option<DateTime<Utc>> {
    if s.frequency == Frequency::Off {
        return None;
    }
    match last_slot(s, now, tz) {
        Some(slot) if !covers(slot, state.last_attempt, now) => {
            if slot >= state.awake_since {
                // We were running when the slot came: on time.
                Some(slot)
            } else {
                // Missed while off or asleep: once, a little after the wake.
                Some(slot.max(state.awake_since + state.catch_up_delay))
            }
        }
        Some(slot) => {
            let next = next_slot(s, now, tz);
            match retry_at(state, slot, now) {
                // A retry due while the computer slept waits the catch-up delay after the wake.
                Some(retry) => {
                    let retry = if retry < state.awake_since {
                        retry.max(state.awake_since + state.catch_up_delay)
                    } else {
                        retry
                    };
                    Some(next.map_or(retry, |n| n.min(retry)))
                }
                None => next,
            }
        }
        None => next_slot(s, now, tz),
    }
}

/// Whether an automatic backup should start now.
pub fn is_due<Tz: TimeZone>(
    s: &ScheduleSettings,
    state: &ScheduleState,
    now: DateTime<Utc>,
    tz: &Tz,
) -> bool {
    next_due(s, state, now, tz).is_some_and(|t| t <= now)
}

/// The schedule in words, e.g. "Every day at 02:00".
pub fn describe(s: &ScheduleSettings) -> String {
    match s.frequency {
        Frequency::Daily => format!("Every day at {}", s.time),
        Frequency::Weekly => format!("Every {} at {}", weekday_long(s.weekday), s.time),
        Frequency::Monthly if s.day_of_month >= 28 => format!(
            "Every month on day {} (or the month's last day) at {}",
            s.day_of_month, s.time
        ),
        Frequency::Monthly => format!("Every month on day {} at {}", s.day_of_month, s.time),
        Frequency::Off => "Only when you tap Back up".into(),
    }
}

fn weekday_long(w: chrono::Weekday) -> &'static str {
    use chrono::Weekday::*;
    match w {
        Mon => "Monday",
        Tue => "Tuesday",
        Wed => "Wednesday",
        Thu => "Thursday",
        Fri => "Friday",
        Sat => "Saturday",
        Sun => "Sunday",
    }
}

/// Time zones with daylight saving rules, for tables: chrono's `TimeZone` over two fixed offsets
/// and the EU or US changeover dates (no tz database needed).
#[cfg(test)]
pub(crate) mod testzone {
    use std::fmt;

    use chrono::{
        Datelike, Duration, FixedOffset, LocalResult, NaiveDate, NaiveDateTime, Offset, TimeZone,
        Weekday,
    };

    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum Rule {
        /// Last Sunday of March 01:00 UTC to last Sunday of October 01:00 UTC.
        Eu,
        /// Second Sunday of March 02:00 local to first Sunday of November 02:00 local.
        Us,
    }

    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct DstZone {
        pub standard: i32,
        pub summer: i32,
        pub rule: Rule,
    }

    /// Like Europe/Berlin: +01:00, +02:00 in summer.
    pub const BERLIN: DstZone = DstZone {
        standard: 3600,
        summer: 7200,
        rule: Rule::Eu,
    };
    /// Like America/New_York: -05:00, -04:00 in summer.
    pub const NEW_YORK: DstZone = DstZone {
        standard: -5 * 3600,
        summer: -4 * 3600,
        rule: Rule::Us,
    };

    fn sunday_on_or_after(d: NaiveDate) -> NaiveDate {
        let mut d = d;
        while d.weekday() != Weekday::Sun {
            d = d.succ_opt().unwrap();
        }
        d
    }

    fn last_sunday(year: i32, month: u32) -> NaiveDate {
        let first_next = NaiveDate::from_ymd_opt(year, month + 1, 1).unwrap();
        let mut d = first_next.pred_opt().unwrap();
        while d.weekday() != Weekday::Sun {
            d = d.pred_opt().unwrap();
        }
        d
    }

    impl DstZone {
        /// Summer time, in UTC: [start, end).
        fn summer(&self, year: i32) -> (NaiveDateTime, NaiveDateTime) {
            match self.rule {
                Rule::Eu => (
                    last_sunday(year, 3).and_hms_opt(1, 0, 0).unwrap(),
                    last_sunday(year, 10).and_hms_opt(1, 0, 0).unwrap(),
                ),
                Rule::Us => {
                    let start = sunday_on_or_after(NaiveDate::from_ymd_opt(year, 3, 8).unwrap())
                        .and_hms_opt(2, 0, 0)
                        .unwrap()
                        - Duration::seconds(self.standard.into());
                    let end = sunday_on_or_after(NaiveDate::from_ymd_opt(year, 11, 1).unwrap())
                        .and_hms_opt(2, 0, 0)
                        .unwrap()
                        - Duration::seconds(self.summer.into());
                    (start, end)
                }
            }
        }

        fn offset_at(&self, utc: &NaiveDateTime) -> ZoneOffset {
            let (start, end) = self.summer(utc.year());
            let secs = if *utc >= start && *utc < end {
                self.summer
            } else {
                self.standard
            };
            ZoneOffset { zone: *self, secs }
        }
    }

    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct ZoneOffset {
        zone: DstZone,
        secs: i32,
    }

    impl Offset for ZoneOffset {
        fn fix(&self) -> FixedOffset {
            FixedOffset::east_opt(self.secs).unwrap()
        }
    }

    impl fmt::Display for ZoneOffset {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            fmt::Display::fmt(&self.fix(), f)
        }
    }

    impl TimeZone for DstZone {
        type Offset = ZoneOffset;

        fn from_offset(offset: &ZoneOffset) -> Self {
            offset.zone
        }

        fn offset_from_local_date(&self, local: &NaiveDate) -> LocalResult<ZoneOffset> {
            self.offset_from_local_datetime(&local.and_hms_opt(0, 0, 0).unwrap())
        }

        fn offset_from_local_datetime(&self, local: &NaiveDateTime) -> LocalResult<ZoneOffset> {
            let mut valid: Vec<ZoneOffset> = [self.summer, self.standard]
                .into_iter()
                .map(|secs| ZoneOffset { zone: *self, secs })
                .filter(|o| {
                    let utc = *local - Duration::seconds(o.secs.into());
                    self.offset_at(&utc) == *o
                })
                .collect();
            valid.dedup();
            match valid.as_slice() {
                [] => LocalResult::None,
                [one] => LocalResult::Single(*one),
                // The larger offset is the earlier instant.
                [a, b] => LocalResult::Ambiguous(*a, *b),
                _ => unreachable!(),
            }
        }

        fn offset_from_utc_date(&self, utc: &NaiveDate) -> ZoneOffset {
            self.offset_at(&utc.and_hms_opt(0, 0, 0).unwrap())
        }

        fn offset_from_utc_datetime(&self, utc: &NaiveDateTime) -> ZoneOffset {
            self.offset_at(utc)
        }
    }

    /// Parses "YYYY-MM-DD HH:MM[:SS]" as a local time in `tz` (the first of two, if ambiguous).
    pub fn local<Tz: TimeZone>(tz: &Tz, s: &str) -> chrono::DateTime<chrono::Utc> {
        let naive = NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S")
            .or_else(|_| NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M"))
            .unwrap_or_else(|e| panic!("bad test time {s}: {e}"));
        tz.from_local_datetime(&naive)
            .earliest()
            .unwrap_or_else(|| panic!("{s} does not exist in this zone"))
            .with_timezone(&chrono::Utc)
    }

    /// Parses "YYYY-MM-DD HH:MM[:SS]" as UTC.
    pub fn utc(s: &str) -> chrono::DateTime<chrono::Utc> {
        local(&chrono::Utc, s)
    }

    #[test]
    fn the_zones_change_when_they_should() {
        // Berlin 2024: summer from 31 March 01:00 UTC to 27 October 01:00 UTC.
        assert_eq!(local(&BERLIN, "2024-03-31 01:59"), utc("2024-03-31 00:59"));
        assert_eq!(local(&BERLIN, "2024-03-31 03:00"), utc("2024-03-31 01:00"));
        assert!(BERLIN
            .from_local_datetime(
                &NaiveDateTime::parse_from_str("2024-03-31 02:30", "%Y-%m-%d %H:%M").unwrap()
            )
            .single()
            .is_none());
        assert_eq!(local(&BERLIN, "2024-10-27 02:30"), utc("2024-10-27 00:30"));
        assert_eq!(local(&BERLIN, "2024-10-27 03:30"), utc("2024-10-27 02:30"));
        // New York 2024: summer from 10 March 07:00 UTC to 3 November 06:00 UTC.
        assert_eq!(
            local(&NEW_YORK, "2024-03-10 01:59"),
            utc("2024-03-10 06:59")
        );
        assert_eq!(
            local(&NEW_YORK, "2024-03-10 03:00"),
            utc("2024-03-10 07:00")
        );
        assert_eq!(
            local(&NEW_YORK, "2024-11-03 01:30"),
            utc("2024-11-03 05:30")
        );
        assert_eq!(
            local(&NEW_YORK, "2024-11-03 02:30"),
            utc("2024-11-03 07:30")
        );
    }
}

#[cfg(test)]
mod tests {
    use super::testzone::{local, utc, BERLIN, NEW_YORK};
    use super::*;
    use crate::settings::TimeOfDay;
    use chrono::{FixedOffset, Weekday};

    fn daily(time: &str) -> ScheduleSettings {
        ScheduleSettings {
            frequency: Frequency::Daily,
            time: TimeOfDay::parse(time).unwrap(),
            ..ScheduleSettings::default()
        }
    }

    fn weekly(day: Weekday, time: &str) -> ScheduleSettings {
        ScheduleSettings {
            frequency: Frequency::Weekly,
            weekday: day,
            ..daily(time)
        }
    }

    fn monthly(day: u8, time: &str) -> ScheduleSettings {
        ScheduleSettings {
            frequency: Frequency::Monthly,
            day_of_month: day,
            ..daily(time)
        }
    }

    struct Case<'a> {
        name: &'a str,
        schedule: ScheduleSettings,
        last_attempt: Option<&'a str>,
        awake_since: &'a str,
        now: &'a str,
        next_due: Option<&'a str>,
    }

    fn check<Tz: TimeZone>(tz: &Tz, cases: &[Case]) {
        for c in cases {
            let state = ScheduleState::new(
                c.last_attempt.map(|t| local(tz, t)),
                local(tz, c.awake_since),
            );
            let now = local(tz, c.now);
            let got = next_due(&c.schedule, &state, now, tz);
            let want = c.next_due.map(|t| local(tz, t));
            assert_eq!(got, want, "{}", c.name);
            assert_eq!(
                is_due(&c.schedule, &state, now, tz),
                want.is_some_and(|w| w <= now),
                "{} (is_due)",
                c.name
            );
        }
    }

    #[test]
    fn failed_runs_are_retried_within_the_period() {
        use Attempt::*;
        let tz = FixedOffset::east_opt(0).unwrap();
        let s = daily("02:00");
        // (name, runs newest first as (ended, how), awake since, now, next due)
        type Row<'a> = (&'a str, Vec<(&'a str, Attempt)>, &'a str, &'a str, &'a str);
        let rows: Vec<Row> = vec![
            (
                "a good run waits for tomorrow",
                vec![("2026-03-10 02:01", Done)],
                "2026-03-09 00:00",
                "2026-03-10 02:02",
                "2026-03-11 02:00",
            ),
            (
                "a first failure is retried after 5 minutes",
                vec![("2026-03-10 02:01", Failed)],
                "2026-03-09 00:00",
                "2026-03-10 02:02",
                "2026-03-10 02:06",
            ),
            (
                "a second after 15",
                vec![("2026-03-10 02:07", Failed), ("2026-03-10 02:01", Failed)],
                "2026-03-09 00:00",
                "2026-03-10 02:08",
                "2026-03-10 02:22",
            ),
            (
                "a third after an hour",
                vec![
                    ("2026-03-10 02:23", Failed),
                    ("2026-03-10 02:07", Failed),
                    ("2026-03-10 02:01", Failed),
                ],
                "2026-03-09 00:00",
                "2026-03-10 02:30",
                "2026-03-10 03:23",
            ),
            (
                "then hourly",
                vec![
                    ("2026-03-10 05:24", Failed),
                    ("2026-03-10 04:24", Failed),
                    ("2026-03-10 03:24", Failed),
                    ("2026-03-10 02:23", Failed),
                    ("2026-03-10 02:07", Failed),
                    ("2026-03-10 02:01", Failed),
                ],
                "2026-03-09 00:00",
                "2026-03-10 05:30",
                "2026-03-10 06:24",
            ),
            (
                "yesterday's failures do not slow today's first retry",
                vec![
                    ("2026-03-10 02:01", Failed),
                    ("2026-03-09 05:00", Failed),
                    ("2026-03-09 04:00", Failed),
                    ("2026-03-09 03:00", Failed),
                ],
                "2026-03-09 00:00",
                "2026-03-10 02:02",
                "2026-03-10 02:06",
            ),
            (
                "a retry never passes the next slot",
                vec![
                    ("2026-03-11 01:30", Failed),
                    ("2026-03-11 00:30", Failed),
                    ("2026-03-10 23:30", Failed),
                    ("2026-03-10 02:01", Failed),
                ],
                "2026-03-09 00:00",
                "2026-03-11 01:40",
                "2026-03-11 02:00",
            ),
            (
                "a retry that fell due while asleep waits for the catch-up delay",
                vec![("2026-03-10 02:01", Failed)],
                "2026-03-10 09:00",
                "2026-03-10 09:00",
                "2026-03-10 09:02",
            ),
            (
                "a failure the user must fix is not retried",
                vec![("2026-03-10 02:01", Blocked)],
                "2026-03-09 00:00",
                "2026-03-10 02:02",
                "2026-03-11 02:00",
            ),
            (
                "a success after failures serves the day",
                vec![("2026-03-10 02:10", Done), ("2026-03-10 02:01", Failed)],
                "2026-03-09 00:00",
                "2026-03-10 02:11",
                "2026-03-11 02:00",
            ),
            (
                "a cancel by the user serves the day",
                vec![("2026-03-10 02:03", Done)],
                "2026-03-09 00:00",
                "2026-03-10 02:04",
                "2026-03-11 02:00",
            ),
            (
                "a blocked run then a retry-able one: retried",
                vec![("2026-03-10 08:00", Failed), ("2026-03-10 02:01", Blocked)],
                "2026-03-09 00:00",
                "2026-03-10 08:01",
                "2026-03-10 08:05",
            ),
        ];
        for (name, runs, awake, now, want) in rows {
            let state = ScheduleState::new(None, utc_s(awake))
                .with_recent(runs.iter().map(|(t, a)| (utc_s(t), *a)));
            let got = next_due(&s, &state, utc_s(now), &tz);
            assert_eq!(got, Some(utc_s(want)), "{name}");
        }
        assert_eq!(
            Attempt::of(
                crate::history::Outcome::Failed,
                Some("database_unreachable")
            ),
            Failed
        );
        assert_eq!(
            Attempt::of(crate::history::Outcome::Failed, Some("reconnect_needed")),
            Blocked
        );
        assert_eq!(Attempt::of(crate::history::Outcome::Cancelled, None), Done);
        assert_eq!(Attempt::of(crate::history::Outcome::Partial, None), Done);
    }

    fn utc_s(s: &str) -> DateTime<Utc> {
        chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M")
            .unwrap()
            .and_utc()
    }

    #[test]
    fn daily_slots() {
        let tz = FixedOffset::east_opt(3600).unwrap();
        let s = daily("02:00");
        check(
            &tz,
            &[
                Case {
                    name: "before today's slot",
                    schedule: s.clone(),
                    last_attempt: Some("2024-05-09 02:03"),
                    awake_since: "2024-05-09 00:00",
                    now: "2024-05-10 01:59",
                    next_due: Some("2024-05-10 02:00"),
                },
                Case {
                    name: "at the slot, awake: due on time",
                    schedule: s.clone(),
                    last_attempt: Some("2024-05-09 02:03"),
                    awake_since: "2024-05-09 00:00",
                    now: "2024-05-10 02:00",
                    next_due: Some("2024-05-10 02:00"),
                },
                Case {
                    name: "a tick late, still due",
                    schedule: s.clone(),
                    last_attempt: Some("2024-05-09 02:03"),
                    awake_since: "2024-05-09 00:00",
                    now: "2024-05-10 02:00:30",
                    next_due: Some("2024-05-10 02:00"),
                },
                Case {
                    name: "today's run done: tomorrow",
                    schedule: s.clone(),
                    last_attempt: Some("2024-05-10 02:04"),
                    awake_since: "2024-05-09 00:00",
                    now: "2024-05-10 02:05",
                    next_due: Some("2024-05-11 02:00"),
                },
                Case {
                    name: "today's run failed: retried at the next slot, not now",
                    schedule: s.clone(),
                    last_attempt: Some("2024-05-10 02:01"),
                    awake_since: "2024-05-09 00:00",
                    now: "2024-05-10 14:00",
                    next_due: Some("2024-05-11 02:00"),
                },
                Case {
                    name: "a manual backup before the slot does not cover it",
                    schedule: s.clone(),
                    last_attempt: Some("2024-05-10 01:30"),
                    awake_since: "2024-05-09 00:00",
                    now: "2024-05-10 02:00",
                    next_due: Some("2024-05-10 02:00"),
                },
                Case {
                    name: "a manual backup after the slot covers it",
                    schedule: s.clone(),
                    last_attempt: Some("2024-05-10 08:00"),
                    awake_since: "2024-05-10 07:00",
                    now: "2024-05-10 08:01",
                    next_due: Some("2024-05-11 02:00"),
                },
                Case {
                    name: "asleep over three slots: caught up once, after the delay",
                    schedule: s.clone(),
                    last_attempt: Some("2024-05-07 02:02"),
                    awake_since: "2024-05-10 09:00",
                    now: "2024-05-10 09:00:10",
                    next_due: Some("2024-05-10 09:02"),
                },
                Case {
                    name: "the catch-up is due after the delay",
                    schedule: s.clone(),
                    last_attempt: Some("2024-05-07 02:02"),
                    awake_since: "2024-05-10 09:00",
                    now: "2024-05-10 09:02",
                    next_due: Some("2024-05-10 09:02"),
                },
                Case {
                    name: "after the catch-up: the next slot, not the other missed ones",
                    schedule: s.clone(),
                    last_attempt: Some("2024-05-10 09:04"),
                    awake_since: "2024-05-10 09:00",
                    now: "2024-05-10 09:05",
                    next_due: Some("2024-05-11 02:00"),
                },
                Case {
                    name: "first launch ever: a first backup soon",
                    schedule: s.clone(),
                    last_attempt: None,
                    awake_since: "2024-05-10 15:00",
                    now: "2024-05-10 15:00",
                    next_due: Some("2024-05-10 15:02"),
                },
                Case {
                    name: "woke just before a slot: the slot itself, one run",
                    schedule: s.clone(),
                    last_attempt: Some("2024-05-08 02:01"),
                    awake_since: "2024-05-10 01:59:30",
                    now: "2024-05-10 02:00",
                    next_due: Some("2024-05-10 02:00"),
                },
                Case {
                    name: "clock set back below the last run: one extra run, none skipped",
                    schedule: s.clone(),
                    last_attempt: Some("2024-05-10 02:05"),
                    awake_since: "2024-05-10 01:00",
                    now: "2024-05-10 01:00",
                    next_due: Some("2024-05-10 01:02"),
                },
                Case {
                    name: "clock set back, the extra run done: today's slot still runs",
                    schedule: s.clone(),
                    last_attempt: Some("2024-05-10 01:03"),
                    awake_since: "2024-05-10 01:00",
                    now: "2024-05-10 01:30",
                    next_due: Some("2024-05-10 02:00"),
                },
                Case {
                    name: "off: never due",
                    schedule: ScheduleSettings {
                        frequency: Frequency::Off,
                        ..s.clone()
                    },
                    last_attempt: None,
                    awake_since: "2024-05-10 00:00",
                    now: "2024-05-10 02:00",
                    next_due: None,
                },
                Case {
                    name: "a slot at midnight",
                    schedule: daily("00:00"),
                    last_attempt: Some("2024-12-31 00:01"),
                    awake_since: "2024-12-30 00:00",
                    now: "2024-12-31 23:59",
                    next_due: Some("2025-01-01 00:00"),
                },
            ],
        );
    }

    #[test]
    fn weekly_and_monthly_slots() {
        let tz = FixedOffset::east_opt(-3 * 3600).unwrap();
        check(
            &tz,
            &[
                Case {
                    name: "weekly: done on Sunday, next Sunday",
                    schedule: weekly(Weekday::Sun, "02:00"),
                    last_attempt: Some("2024-05-12 02:10"),
                    awake_since: "2024-05-12 00:00",
                    now: "2024-05-15 12:00",
                    next_due: Some("2024-05-19 02:00"),
                },
                Case {
                    name: "weekly: missed Sunday, caught up on Wednesday's launch",
                    schedule: weekly(Weekday::Sun, "02:00"),
                    last_attempt: Some("2024-05-05 02:10"),
                    awake_since: "2024-05-15 12:00",
                    now: "2024-05-15 12:00",
                    next_due: Some("2024-05-15 12:02"),
                },
                Case {
                    name: "monthly on the 31st: the last day of a leap February",
                    schedule: monthly(31, "02:00"),
                    last_attempt: Some("2028-01-31 02:05"),
                    awake_since: "2028-02-01 00:00",
                    now: "2028-02-15 00:00",
                    next_due: Some("2028-02-29 02:00"),
                },
                Case {
                    name: "monthly on the 31st: then the 31st of March",
                    schedule: monthly(31, "02:00"),
                    last_attempt: Some("2028-02-29 02:05"),
                    awake_since: "2028-02-01 00:00",
                    now: "2028-03-01 00:00",
                    next_due: Some("2028-03-31 02:00"),
                },
                Case {
                    name: "monthly on the 31st: the 30th of April",
                    schedule: monthly(31, "02:00"),
                    last_attempt: Some("2028-03-31 02:05"),
                    awake_since: "2028-02-01 00:00",
                    now: "2028-04-30 02:00",
                    next_due: Some("2028-04-30 02:00"),
                },
                Case {
                    name: "monthly on the 29th in a common year: 28 February",
                    schedule: monthly(29, "23:30"),
                    last_attempt: Some("2027-01-29 23:31"),
                    awake_since: "2027-01-01 00:00",
                    now: "2027-02-10 00:00",
                    next_due: Some("2027-02-28 23:30"),
                },
                Case {
                    name: "monthly: across the year end",
                    schedule: monthly(1, "02:00"),
                    last_attempt: Some("2024-12-01 02:05"),
                    awake_since: "2024-12-01 00:00",
                    now: "2024-12-31 23:00",
                    next_due: Some("2025-01-01 02:00"),
                },
            ],
        );
    }

    #[test]
    fn daylight_saving_changes() {
        // Europe: 2024-03-31 02:00-03:00 does not exist; 2024-10-27 02:00-03:00 happens twice.
        let s = daily("02:00");
        let cases: &[(&str, &str, &str, &str)] = &[
            // (name, last attempt UTC, now UTC, next due UTC)
            (
                "spring forward: 02:00 does not exist, the slot is 03:00 summer time",
                "2024-03-30 01:05",
                "2024-03-31 00:30",
                "2024-03-31 01:00",
            ),
            (
                "the day after spring forward: 02:00 summer time",
                "2024-03-31 01:05",
                "2024-03-31 12:00",
                "2024-04-01 00:00",
            ),
            (
                "fall back: the first 02:00 (summer time)",
                "2024-10-26 00:05",
                "2024-10-26 22:00",
                "2024-10-27 00:00",
            ),
            (
                "fall back: the second 02:00 is not a second slot",
                "2024-10-27 00:05",
                "2024-10-27 01:00",
                "2024-10-28 01:00",
            ),
        ];
        for (name, last, now, want) in cases {
            let state = ScheduleState::new(Some(utc(last)), utc("2024-01-01 00:00"));
            assert_eq!(
                next_due(&s, &state, utc(now), &BERLIN),
                Some(utc(want)),
                "{name}"
            );
        }
        // A time inside the gap moves forward by the gap: 02:30 -> 03:30 summer time.
        let s = daily("02:30");
        let state = ScheduleState::new(Some(utc("2024-03-09 07:35")), utc("2024-01-01 00:00"));
        assert_eq!(
            next_due(&s, &state, utc("2024-03-10 00:00"), &NEW_YORK),
            Some(local(&NEW_YORK, "2024-03-10 03:30"))
        );
        assert_eq!(
            local(&NEW_YORK, "2024-03-10 03:30"),
            utc("2024-03-10 07:30")
        );
        // And 01:30 on the New York fall-back day is the first (summer time) one.
        let s = daily("01:30");
        let state = ScheduleState::new(Some(utc("2024-11-02 05:31")), utc("2024-01-01 00:00"));
        assert_eq!(
            next_due(&s, &state, utc("2024-11-03 00:00"), &NEW_YORK),
            Some(utc("2024-11-03 05:30"))
        );
        let state = ScheduleState::new(Some(utc("2024-11-03 05:31")), utc("2024-01-01 00:00"));
        assert_eq!(
            next_due(&s, &state, utc("2024-11-03 06:45"), &NEW_YORK),
            Some(utc("2024-11-04 06:30"))
        );
    }

    #[test]
    fn a_pause_holds_back_slots_retries_and_catch_ups() {
        let paused = |until: &str| ScheduleSettings {
            paused_until: Some(local(&BERLIN, until)),
            ..daily("02:00")
        };
        check(
            &BERLIN,
            &[
                Case {
                    name: "the slot tonight waits for the pause to end",
                    schedule: paused("2024-05-11 09:00"),
                    last_attempt: Some("2024-05-10 02:05"),
                    awake_since: "2024-05-10 08:00",
                    now: "2024-05-10 23:00",
                    next_due: Some("2024-05-11 09:00"),
                },
                Case {
                    name: "during the pause, the missed slot is not due",
                    schedule: paused("2024-05-11 09:00"),
                    last_attempt: Some("2024-05-10 02:05"),
                    awake_since: "2024-05-10 08:00",
                    now: "2024-05-11 08:59",
                    next_due: Some("2024-05-11 09:00"),
                },
                Case {
                    name: "when it ends, the missed slot runs once",
                    schedule: paused("2024-05-11 09:00"),
                    last_attempt: Some("2024-05-10 02:05"),
                    awake_since: "2024-05-10 08:00",
                    now: "2024-05-11 09:00",
                    next_due: Some("2024-05-11 02:00"),
                },
                Case {
                    name: "a catch-up after a wake waits too",
                    schedule: paused("2024-05-11 09:00"),
                    last_attempt: Some("2024-05-09 02:05"),
                    awake_since: "2024-05-10 07:00",
                    now: "2024-05-10 07:05",
                    next_due: Some("2024-05-11 09:00"),
                },
                Case {
                    name: "a slot after the pause is not moved",
                    schedule: paused("2024-05-10 09:00"),
                    last_attempt: Some("2024-05-10 02:05"),
                    awake_since: "2024-05-10 00:00",
                    now: "2024-05-10 08:00",
                    next_due: Some("2024-05-11 02:00"),
                },
                Case {
                    name: "a pause that ended changes nothing",
                    schedule: paused("2024-05-09 09:00"),
                    last_attempt: Some("2024-05-09 02:05"),
                    awake_since: "2024-05-09 00:00",
                    now: "2024-05-10 02:00",
                    next_due: Some("2024-05-10 02:00"),
                },
                Case {
                    name: "off stays off",
                    schedule: ScheduleSettings {
                        frequency: Frequency::Off,
                        ..paused("2024-05-11 09:00")
                    },
                    last_attempt: None,
                    awake_since: "2024-05-10 00:00",
                    now: "2024-05-10 12:00",
                    next_due: None,
                },
            ],
        );
        // A failed run's retry waits for the end of the pause as well.
        let s = paused("2024-05-10 09:00");
        let slot = local(&BERLIN, "2024-05-10 02:00");
        let state = ScheduleState::new(None, slot - Duration::hours(1))
            .with_recent([(slot + Duration::minutes(1), Attempt::Failed)]);
        let now = slot + Duration::minutes(10);
        assert_eq!(
            next_due(&s, &state, now, &BERLIN),
            Some(local(&BERLIN, "2024-05-10 09:00"))
        );
        assert!(!is_due(&s, &state, now, &BERLIN));
        let unpaused = ScheduleSettings {
            paused_until: None,
            ..s
        };
        assert!(is_due(&unpaused, &state, now, &BERLIN));
    }

    #[test]
    fn a_pause_until_tomorrow_ends_the_next_day_at_nine() {
        let cases: &[(&str, &str)] = &[
            ("2024-05-10 23:00", "2024-05-11 09:00"),
            ("2024-05-10 00:30", "2024-05-11 09:00"),
            ("2024-05-10 09:00", "2024-05-11 09:00"),
            ("2024-12-31 18:00", "2025-01-01 09:00"),
            ("2024-02-28 12:00", "2024-02-29 09:00"),
            // Clocks change in the night (spring forward, fall back): still 09:00 local.
            ("2024-03-30 22:00", "2024-03-31 09:00"),
            ("2024-10-26 22:00", "2024-10-27 09:00"),
        ];
        for (now, want) in cases {
            assert_eq!(
                pause_until_tomorrow(local(&BERLIN, now), &BERLIN),
                local(&BERLIN, want),
                "{now}"
            );
        }
        // The spring-forward night is an hour shorter: 10 hours from 22:00 to 09:00, not 11.
        assert_eq!(
            pause_until_tomorrow(local(&BERLIN, "2024-03-30 22:00"), &BERLIN)
                - local(&BERLIN, "2024-03-30 22:00"),
            Duration::hours(10)
        );
        assert_eq!(
            pause_until_tomorrow(utc("2024-05-10 23:30"), &NEW_YORK),
            utc("2024-05-11 13:00")
        );
    }

    #[test]
    fn schedules_in_words() {
        assert_eq!(describe(&daily("02:00")), "Every day at 02:00");
        assert_eq!(
            describe(&weekly(Weekday::Sun, "03:15")),
            "Every Sunday at 03:15"
        );
        assert_eq!(
            describe(&monthly(1, "02:00")),
            "Every month on day 1 at 02:00"
        );
        assert_eq!(
            describe(&monthly(31, "02:00")),
            "Every month on day 31 (or the month's last day) at 02:00"
        );
        let off = ScheduleSettings {
            frequency: Frequency::Off,
            ..ScheduleSettings::default()
        };
        assert_eq!(describe(&off), "Only when you tap Back up");
    }
}
