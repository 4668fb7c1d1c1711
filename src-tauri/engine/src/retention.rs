//! Which backups to keep. [`plan`] is pure (backups, policy, now and time zone in; decisions with
//! reasons out); [`apply`] deletes what a plan marks, at a destination.
//!
//! The rules, per database (backups of different databases at one destination never compete):
//! - only complete backups count: the newest complete backup of each of the last `daily` local
//!   days that have complete backups; the same for the last `weekly` ISO weeks; the *first*
//!   complete backup of the current local calendar month and of each of the `monthly` months
//!   before it (with the default of 1, a backup between about 30 and 61 days old is always there
//!   once the history is long enough); the `keep_last` most recent complete backups;
//! - the newest complete backup is never deleted, whatever the policy;
//! - a partial backup counts for nothing, and is deleted only once a newer complete backup exists;
//! - "now" only picks the current month, and never goes back before the newest backup (a clock
//!   set back does not make older months current again). So the plan does not change while `now`
//!   moves within a day.
//!
//! Callers prune only after a successful, complete backup (or when the user asks), never after a
//! failed run: `jobs::run_backup` does so.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;

use chrono::{DateTime, Datelike, NaiveDate, TimeZone, Utc};
use serde::Serialize;

use crate::manifest::{self, BackupStatus};
use crate::settings::RetentionPolicy;
use crate::store::{RemoteStore, StoreError, StoredBackup};

/// Why a backup is kept or deleted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "rule", rename_all = "snake_case")]
pub enum Reason {
    /// The newest complete backup of its database: never deleted.
    NewestComplete,
    /// One of the `keep_last` most recent complete backups.
    KeepLast { count: u32 },
    /// The newest complete backup of a day (one of the last `daily` days with backups).
    Daily { day: NaiveDate },
    /// The newest complete backup of an ISO week.
    Weekly { year: i32, week: u32 },
    /// The first complete backup of a calendar month.
    Monthly { year: i32, month: u32 },
    /// A partial backup with no newer complete one: kept for now.
    PartialKept,
    /// A partial backup that a newer complete backup replaces: deleted.
    PartialReplaced,
    /// A complete backup no rule keeps: deleted.
    NotKept,
    /// Its file is not named like a Driveback backup: never deleted.
    NotDriveback,
    /// The last backup before a data-loss alarm: kept until the user acknowledges the alarm.
    Protected,
    /// Part of the chain of a kept increment (the incremental layout): the kept backup holds
    /// only the changes since this one, so it stays while that backup does.
    NeededBy { id: String },
}

impl Reason {
    /// A short stable name of the rule (the `rule` field in JSON).
    pub fn code(&self) -> &'static str {
        match self {
            Reason::NewestComplete => "newest_complete",
            Reason::KeepLast { .. } => "keep_last",
            Reason::Daily { .. } => "daily",
            Reason::Weekly { .. } => "weekly",
            Reason::Monthly { .. } => "monthly",
            Reason::PartialKept => "partial_kept",
            Reason::PartialReplaced => "partial_replaced",
            Reason::NotKept => "not_kept",
            Reason::NotDriveback => "not_driveback",
            Reason::Protected => "protected",
            Reason::NeededBy { .. } => "needed_by",
        }
    }
}

fn month_name(year: i32, month: u32) -> String {
    NaiveDate::from_ymd_opt(year, month, 1)
        .map(|d| d.format("%B %Y").to_string())
        .unwrap_or_else(|| format!("{year}-{month:02}"))
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::NewestComplete => f.write_str("the newest complete backup (never deleted)"),
            Reason::KeepLast { count } => {
                write!(f, "one of the {count} most recent complete backups")
            }
            Reason::Daily { day } => {
                write!(f, "the newest backup of {}", day.format("%a %-d %b %Y"))
            }
            Reason::Weekly { year, week } => {
                write!(f, "the newest backup of week {week} of {year}")
            }
            Reason::Monthly { year, month } => {
                write!(f, "the first backup of {}", month_name(*year, *month))
            }
            Reason::PartialKept => {
                f.write_str("a partial backup, kept until a newer complete backup exists")
            }
            Reason::PartialReplaced => {
                f.write_str("a partial backup, replaced by a newer complete backup")
            }
            Reason::NotKept => f.write_str("not needed by the retention policy"),
            Reason::NotDriveback => {
                f.write_str("not named like a Driveback backup, so never deleted")
            }
            Reason::Protected => f.write_str(
                "the last backup before a data-loss alarm, kept until you acknowledge it",
            ),
            Reason::NeededBy { id } => write!(
                f,
                "kept backup {id} holds only the changes since this one, which it needs to be restored"
            ),
        }
    }
}

/// What happens to one backup, and why.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Decision {
    pub backup: StoredBackup,
    pub keep: bool,
    /// At least one; every rule that keeps the backup, or the one reason it goes.
    pub reasons: Vec<Reason>,
}

/// Newest first, as stores list them.
fn newest_first(a: &StoredBackup, b: &StoredBackup) -> std::cmp::Ordering {
    b.created.cmp(&a.created).then_with(|| b.file.cmp(&a.file))
}

fn is_ours(b: &StoredBackup) -> bool {
    manifest::parse_backup_file_name(&b.file).is_some()
}

/// What to keep and what to delete among `backups` (any order), newest first.
pub fn plan<Tz: TimeZone>(
    backups: &[StoredBackup],
    policy: &RetentionPolicy,
    now: DateTime<Utc>,
    tz: &Tz,
) -> Vec<Decision> {
    let mut by_db: BTreeMap<&str, Vec<&StoredBackup>> = BTreeMap::new();
    for b in backups {
        by_db.entry(b.database.as_str()).or_default().push(b);
    }
    let mut decisions: Vec<Decision> = by_db
        .into_values()
        .flat_map(|mut group| {
            group.sort_by(|a, b| newest_first(a, b));
            plan_one_database(&group, policy, now, tz)
        })
        .collect();
    decisions.sort_by(|a, b| newest_first(&a.backup, &b.backup));
    keep_chains(decisions)
}

/// Keeps every backup that a kept increment needs (its parent, the parent's parent, up to the
/// chain's full backup), whatever the policy says of it: a kept backup must stay restorable. The
/// decisions stay newest first, so [`apply`] deletes newer backups before the ones they need.
fn keep_chains(mut decisions: Vec<Decision>) -> Vec<Decision> {
    let by_id: HashMap<(String, String), usize> = decisions
        .iter()
        .enumerate()
        .map(|(i, d)| ((d.backup.database.clone(), d.backup.id.clone()), i))
        .collect();
    // Newest first: a backup's parents come after it, so one pass reaches whole chains.
    for i in 0..decisions.len() {
        if !decisions[i].keep {
            continue;
        }
        let needer = decisions[i].backup.id.clone();
        let mut at = i;
        let mut steps = 0;
        while let Some(parent) = decisions[at]
            .backup
            .link
            .as_ref()
            .and_then(|l| l.parent.clone())
        {
            let Some(&p) = by_id.get(&(decisions[at].backup.database.clone(), parent)) else {
                break;
            };
            steps += 1;
            if p <= at || steps > decisions.len() {
                break;
            }
            let d = &mut decisions[p];
            if !d.keep {
                d.keep = true;
                d.reasons.clear();
            }
            if !d
                .reasons
                .iter()
                .any(|r| matches!(r, Reason::NeededBy { .. }))
            {
                d.reasons.push(Reason::NeededBy { id: needer.clone() });
            }
            at = p;
        }
    }
    decisions
}

/// `group` is one database's backups, newest first.
fn plan_one_database<Tz: TimeZone>(
    group: &[&StoredBackup],
    policy: &RetentionPolicy,
    now: DateTime<Utc>,
    tz: &Tz,
) -> Vec<Decision> {
    let local_day = |b: &StoredBackup| b.created.with_timezone(tz).date_naive();
    let mut reasons: HashMap<usize, Vec<Reason>> = HashMap::new();
    let mut keep = |i: usize, r: Reason| reasons.entry(i).or_default().push(r);

    let complete: Vec<usize> = (0..group.len())
        .filter(|&i| group[i].status == BackupStatus::Complete)
        .collect();

    if let Some(&newest) = complete.first() {
        keep(newest, Reason::NewestComplete);
    }
    if policy.keep_last > 1 {
        for &i in complete.iter().take(policy.keep_last as usize) {
            keep(
                i,
                Reason::KeepLast {
                    count: policy.keep_last,
                },
            );
        }
    }

    // Newest first, so the first backup seen in a bucket is that bucket's newest.
    let mut days = HashSet::new();
    let mut weeks = HashSet::new();
    for &i in &complete {
        let day = local_day(group[i]);
        if days.len() < policy.daily as usize && days.insert(day) {
            keep(i, Reason::Daily { day });
        }
        let w = day.iso_week();
        if weeks.len() < policy.weekly as usize && weeks.insert((w.year(), w.week())) {
            keep(
                i,
                Reason::Weekly {
                    year: w.year(),
                    week: w.week(),
                },
            );
        }
    }

    if policy.monthly > 0 {
        // The current month, never before the newest backup's (a clock set back).
        let newest = group.first().map(|b| b.created).unwrap_or(now);
        let reference = now.max(newest).with_timezone(tz).date_naive();
        let current = reference.year() * 12 + reference.month0() as i32;
        let first_kept = current - policy.monthly as i32;
        // Oldest first, so the first backup seen in a month is that month's first.
        let mut months = HashSet::new();
        for &i in complete.iter().rev() {
            let day = local_day(group[i]);
            let m = day.year() * 12 + day.month0() as i32;
            if (first_kept..=current).contains(&m) && months.insert(m) {
                keep(
                    i,
                    Reason::Monthly {
                        year: day.year(),
                        month: day.month(),
                    },
                );
            }
        }
    }

    let newest_complete = complete.first().map(|&i| group[i]);
    group
        .iter()
        .enumerate()
        .map(|(i, b)| {
            let (keep, reasons) = if !is_ours(b) {
                (true, vec![Reason::NotDriveback])
            } else if b.status != BackupStatus::Complete {
                // Newest first: a newer complete backup sorts before this one.
                match newest_complete {
                    Some(c) if newest_first(c, b).is_lt() => (false, vec![Reason::PartialReplaced]),
                    _ => (true, vec![Reason::PartialKept]),
                }
            } else {
                match reasons.remove(&i) {
                    Some(r) => (true, r),
                    None => (false, vec![Reason::NotKept]),
                }
            };
            Decision {
                backup: (*b).clone(),
                keep,
                reasons,
            }
        })
        .collect()
}

/// Keeps the backups `ids` names, whatever the policy says (the backups before a data loss).
pub fn protect(mut plan: Vec<Decision>, ids: &[String]) -> Vec<Decision> {
    for d in plan.iter_mut().filter(|d| ids.contains(&d.backup.id)) {
        if !d.keep {
            d.keep = true;
            d.reasons.clear();
        }
        d.reasons.push(Reason::Protected);
    }
    keep_chains(plan)
}

/// What [`apply`] did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ApplyReport {
    pub deleted: Vec<StoredBackup>,
    /// Marked for deletion but left alone (gone already, or not recognisably ours), and why.
    pub skipped: Vec<(StoredBackup, String)>,
    /// Deletions that failed, and why; the others went ahead.
    pub failed: Vec<(StoredBackup, String)>,
}

#[derive(Debug, thiserror::Error)]
pub enum RetentionError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("nothing was deleted: {0}")]
    Unsafe(String),
}

/// Deletes the backups `decisions` mark for deletion, re-checking the destination first: only
/// backups still listed there (committed, Driveback's, unchanged) are deleted, and nothing is
/// deleted unless a complete backup the plan keeps is still there. Blocking.
pub fn apply(
    store: &dyn RemoteStore,
    decisions: &[Decision],
) -> Result<ApplyReport, RetentionError> {
    let mut report = ApplyReport::default();
    let doomed: Vec<&StoredBackup> = decisions
        .iter()
        .filter(|d| !d.keep)
        .map(|d| &d.backup)
        .collect();
    if doomed.is_empty() {
        return Ok(report);
    }
    let current = store.list()?;
    let listed = |b: &StoredBackup| {
        current
            .iter()
            .any(|c| c.file == b.file && c.id == b.id && c.sha256 == b.sha256)
    };
    // Every database that loses a backup must keep a complete one that is still there.
    for db in doomed
        .iter()
        .map(|b| b.database.as_str())
        .collect::<HashSet<_>>()
    {
        let safe = decisions.iter().any(|d| {
            d.keep
                && d.backup.database == db
                && d.backup.status == BackupStatus::Complete
                && listed(&d.backup)
        });
        if !safe {
            return Err(RetentionError::Unsafe(format!(
                "no complete backup of {db} that the plan keeps is at {} any more",
                store.location()
            )));
        }
    }
    for b in doomed {
        if !is_ours(b) {
            report
                .skipped
                .push((b.clone(), "not named like a Driveback backup".into()));
        } else if !listed(b) {
            report
                .skipped
                .push((b.clone(), "no longer at the destination".into()));
        } else {
            crate::crash::crash_point("retention.delete");
            let deleted = store.delete(b);
            crate::crash::crash_point("retention.deleted");
            match deleted {
                Ok(()) => {
                    tracing::info!(id = %b.id, file = %b.file, "deleted an old backup");
                    report.deleted.push(b.clone());
                }
                Err(e) => {
                    tracing::warn!(id = %b.id, file = %b.file, error = %e, "could not delete an old backup");
                    report.failed.push((b.clone(), e.to_string()));
                }
            }
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schedule::testzone::{local, utc, BERLIN, NEW_YORK};
    use chrono::{Duration, FixedOffset};

    fn backup_db(db: &str, id: &str, created: DateTime<Utc>, status: BackupStatus) -> StoredBackup {
        StoredBackup {
            id: id.to_string(),
            file: manifest::backup_file_name(db, created, id),
            bytes: 1000,
            created,
            database: db.to_string(),
            documents: 10,
            status,
            sha256: "00".repeat(32),
            signature: None,
            link: None,
        }
    }

    fn complete(id: &str, created: DateTime<Utc>) -> StoredBackup {
        backup_db("shop", id, created, BackupStatus::Complete)
    }

    fn partial(id: &str, created: DateTime<Utc>) -> StoredBackup {
        backup_db("shop", id, created, BackupStatus::Partial)
    }

    fn policy(daily: u32, weekly: u32, monthly: u32, keep_last: u32) -> RetentionPolicy {
        RetentionPolicy {
            daily,
            weekly,
            monthly,
            keep_last,
        }
    }

    /// One backup a day at `time` local, ids "d01".., from `first` for `days` days.
    fn daily_backups<Tz: TimeZone>(
        tz: &Tz,
        first: &str,
        days: i64,
        time: &str,
    ) -> Vec<StoredBackup> {
        let start = NaiveDate::parse_from_str(first, "%Y-%m-%d").unwrap();
        (0..days)
            .map(|i| {
                let d = start + Duration::days(i);
                let t = local(tz, &format!("{d} {time}"));
                complete(&format!("{:08x}", d.num_days_from_ce()), t)
            })
            .collect()
    }

    fn kept_days<Tz: TimeZone>(plan: &[Decision], tz: &Tz) -> Vec<String> {
        plan.iter()
            .filter(|d| d.keep)
            .map(|d| {
                d.backup
                    .created
                    .with_timezone(tz)
                    .naive_local()
                    .format("%Y-%m-%d %H:%M")
                    .to_string()
            })
            .collect()
    }

    fn reasons_of(plan: &[Decision], id: &str) -> (bool, Vec<String>) {
        let d = plan.iter().find(|d| d.backup.id == id).expect(id);
        (d.keep, d.reasons.iter().map(|r| r.to_string()).collect())
    }

    #[test]
    fn the_default_policy_keeps_seven_days_and_two_month_firsts() {
        let tz = FixedOffset::east_opt(3600).unwrap();
        // 45 days of daily backups, 5 January to 18 February 2024.
        let backups = daily_backups(&tz, "2024-01-05", 45, "02:00");
        let now = local(&tz, "2024-02-18 12:00");
        let p = plan(&backups, &RetentionPolicy::default(), now, &tz);
        assert_eq!(p.len(), 45);
        assert_eq!(
            kept_days(&p, &tz),
            [
                "2024-02-18 02:00",
                "2024-02-17 02:00",
                "2024-02-16 02:00",
                "2024-02-15 02:00",
                "2024-02-14 02:00",
                "2024-02-13 02:00",
                "2024-02-12 02:00",
                "2024-02-01 02:00",
                "2024-01-05 02:00",
            ]
        );
        let newest = &p[0];
        assert_eq!(
            newest
                .reasons
                .iter()
                .map(|r| r.to_string())
                .collect::<Vec<_>>(),
            [
                "the newest complete backup (never deleted)",
                "the newest backup of Sun 18 Feb 2024"
            ]
        );
        let first_feb = p
            .iter()
            .find(|d| d.backup.created == local(&tz, "2024-02-01 02:00"))
            .unwrap();
        assert_eq!(
            first_feb.reasons,
            [Reason::Monthly {
                year: 2024,
                month: 2
            }]
        );
        assert_eq!(
            first_feb.reasons[0].to_string(),
            "the first backup of February 2024"
        );
        let deleted = p
            .iter()
            .find(|d| d.backup.created == local(&tz, "2024-02-11 02:00"))
            .unwrap();
        assert!(!deleted.keep);
        assert_eq!(deleted.reasons, [Reason::NotKept]);
        assert_eq!(
            deleted.reasons[0].to_string(),
            "not needed by the retention policy"
        );
        // Newest first, like the store's list.
        assert!(p
            .windows(2)
            .all(|w| w[0].backup.created >= w[1].backup.created));
    }

    /// 45 daily backups in chains: a new chain (a full backup) every `chain_days` days.
    fn chained(tz: &FixedOffset, chain_days: i64) -> Vec<StoredBackup> {
        let mut backups = daily_backups(tz, "2024-01-05", 45, "02:00");
        let mut chain = String::new();
        let mut parent: Option<String> = None;
        for (i, b) in backups.iter_mut().enumerate() {
            if i as i64 % chain_days == 0 {
                chain = b.id.clone();
                parent = None;
            }
            b.link = Some(crate::store::ChainLink {
                chain: chain.clone(),
                parent: parent.clone(),
            });
            parent = Some(b.id.clone());
        }
        backups
    }

    #[test]
    fn a_kept_increment_keeps_its_whole_chain_and_nothing_else() {
        let tz = FixedOffset::east_opt(3600).unwrap();
        let now = local(&tz, "2024-02-18 12:00");
        // (days per chain, the days kept beyond the policy's nine)
        let cases: [(i64, &[&str]); 3] = [
            // One chain since 5 January: every backup up to the newest is needed.
            (
                45,
                &["2024-01-06 02:00", "2024-02-11 02:00", "2024-01-31 02:00"],
            ),
            // Chains of 10 days (5, 15, 25 Jan, 4, 14 Feb): 1 Feb needs 25-31 Jan; 12-13 Feb
            // need 4-11 Feb; 5 Jan is a full backup.
            (
                10,
                &[
                    "2024-01-25 02:00",
                    "2024-01-31 02:00",
                    "2024-02-04 02:00",
                    "2024-02-11 02:00",
                ],
            ),
            // A full backup every day: nothing more is kept.
            (1, &[]),
        ];
        for (chain_days, extra) in cases {
            let backups = chained(&tz, chain_days);
            let p = plan(&backups, &RetentionPolicy::default(), now, &tz);
            let policy_kept = plan(
                &daily_backups(&tz, "2024-01-05", 45, "02:00"),
                &RetentionPolicy::default(),
                now,
                &tz,
            );
            let kept = kept_days(&p, &tz);
            for day in kept_days(&policy_kept, &tz) {
                assert!(
                    kept.contains(&day),
                    "{chain_days}: {day} is kept by the policy"
                );
            }
            for day in extra {
                assert!(
                    kept.contains(&day.to_string()),
                    "{chain_days}: {day} is needed"
                );
            }
            // Every kept backup's parent is kept; every backup kept only for a chain says by whom.
            for d in p.iter().filter(|d| d.keep) {
                if let Some(parent) = d.backup.link.as_ref().and_then(|l| l.parent.as_ref()) {
                    let (kept, _) = reasons_of(&p, parent);
                    assert!(
                        kept,
                        "{chain_days}: the parent of kept {} is deleted",
                        d.backup.id
                    );
                }
            }
            let needed: Vec<&Decision> = p
                .iter()
                .filter(|d| d.reasons.iter().any(|r| r.code() == "needed_by"))
                .collect();
            if chain_days == 1 {
                assert!(needed.is_empty());
                assert_eq!(kept.len(), 9);
            } else {
                let only_needed = needed.iter().find(|d| d.reasons.len() == 1).unwrap();
                assert!(only_needed.reasons[0]
                    .to_string()
                    .starts_with("kept backup "));
            }
            // Deletions come newest first, so an interrupted prune never leaves a kept backup
            // without its parent.
            let doomed: Vec<_> = p
                .iter()
                .filter(|d| !d.keep)
                .map(|d| d.backup.created)
                .collect();
            assert!(doomed.windows(2).all(|w| w[0] >= w[1]));
        }
        // Protecting an increment protects its chain.
        let backups = chained(&tz, 10);
        let p = plan(&backups, &policy(1, 0, 0, 1), now, &tz);
        let protected_id = backups[22].id.clone(); // 27 Jan: chain of 25 Jan
        let p = protect(p, &[protected_id]);
        assert_eq!(
            kept_days(&p, &tz),
            [
                "2024-02-18 02:00",
                "2024-02-17 02:00",
                "2024-02-16 02:00",
                "2024-02-15 02:00",
                "2024-02-14 02:00",
                "2024-01-27 02:00",
                "2024-01-26 02:00",
                "2024-01-25 02:00"
            ]
        );
    }

    fn same_plan_all_day<Tz: TimeZone>(tz: &Tz) {
        let backups = daily_backups(tz, "2024-08-01", 88, "01:30"); // to 27 October
        let p = |t: &str| plan(&backups, &policy(7, 2, 2, 3), local(tz, t), tz);
        let morning = p("2024-10-27 00:00:01");
        for t in [
            "2024-10-27 02:30",
            "2024-10-27 12:00",
            "2024-10-27 23:59:59",
        ] {
            assert_eq!(p(t), morning, "{t}");
        }
    }

    #[test]
    fn the_plan_does_not_change_within_a_day() {
        // 27 October 2024 is the day Berlin's clocks fall back.
        same_plan_all_day(&BERLIN);
        same_plan_all_day(&NEW_YORK);
        same_plan_all_day(&FixedOffset::east_opt(5 * 3600 + 1800).unwrap());
    }

    #[test]
    fn month_ends_and_the_leap_day() {
        // +01:00: 23:30 local is still the same day; 00:30 local is the next day but the previous
        // day in UTC.
        let tz = FixedOffset::east_opt(3600).unwrap();
        let backups = vec![
            complete("00000001", local(&tz, "2028-02-27 23:30")),
            complete("00000002", local(&tz, "2028-02-28 23:30")),
            complete("00000003", local(&tz, "2028-02-29 23:30")),
            complete("00000004", local(&tz, "2028-03-01 00:30")), // 2028-02-29 23:30 UTC
            complete("00000005", local(&tz, "2028-03-01 23:30")),
            complete("00000006", local(&tz, "2028-03-02 23:30")),
        ];
        assert_eq!(backups[3].created, utc("2028-02-29 23:30"));
        let now = local(&tz, "2028-03-03 08:00");
        let p = plan(&backups, &policy(2, 0, 1, 1), now, &tz);
        let want: &[(&str, bool, &[&str])] = &[
            (
                "00000006",
                true,
                &[
                    "the newest complete backup (never deleted)",
                    "the newest backup of Thu 2 Mar 2028",
                ],
            ),
            ("00000005", true, &["the newest backup of Wed 1 Mar 2028"]),
            ("00000004", true, &["the first backup of March 2028"]),
            ("00000003", false, &["not needed by the retention policy"]),
            ("00000002", false, &["not needed by the retention policy"]),
            ("00000001", true, &["the first backup of February 2028"]),
        ];
        for (id, keep, reasons) in want {
            assert_eq!(
                reasons_of(&p, id),
                (*keep, reasons.iter().map(|s| s.to_string()).collect()),
                "{id}"
            );
        }
        // In UTC the same backups fall differently: 00000004 is on 29 February.
        let p = plan(&backups, &policy(2, 0, 1, 1), now, &Utc);
        assert_eq!(
            reasons_of(&p, "00000004").1,
            ["not needed by the retention policy"]
        );
        assert_eq!(
            reasons_of(&p, "00000005").1,
            [
                "the newest backup of Wed 1 Mar 2028",
                "the first backup of March 2028"
            ]
        );
        assert_eq!(
            reasons_of(&p, "00000001").1,
            ["the first backup of February 2028"]
        );
    }

    #[test]
    fn daylight_saving_days() {
        // Berlin: 31 March 2024 has 23 hours, 27 October 2024 has 25.
        let backups = vec![
            complete("0000000a", utc("2024-03-30 22:30")), // 31 Mar 00:30 CET
            complete("0000000b", utc("2024-03-31 01:30")), // 31 Mar 03:30 CEST
            complete("0000000c", utc("2024-03-31 21:59")), // 31 Mar 23:59 CEST
            complete("0000000d", utc("2024-03-31 22:00")), // 1 Apr 00:00 CEST
            complete("0000000e", utc("2024-10-26 22:30")), // 27 Oct 00:30 CEST
            complete("0000000f", utc("2024-10-27 00:30")), // 27 Oct 02:30 CEST
            complete("00000010", utc("2024-10-27 01:30")), // 27 Oct 02:30 CET (again)
            complete("00000011", utc("2024-10-27 22:59")), // 27 Oct 23:59 CET
            complete("00000012", utc("2024-10-27 23:00")), // 28 Oct 00:00 CET
        ];
        let now = utc("2024-10-28 12:00");
        let p = plan(&backups, &policy(4, 0, 0, 1), now, &BERLIN);
        let kept: Vec<&str> = p
            .iter()
            .filter(|d| d.keep)
            .map(|d| d.backup.id.as_str())
            .collect();
        assert_eq!(kept, ["00000012", "00000011", "0000000d", "0000000c"]);
        assert_eq!(
            reasons_of(&p, "00000011").1,
            ["the newest backup of Sun 27 Oct 2024"]
        );
        assert_eq!(
            reasons_of(&p, "0000000c").1,
            ["the newest backup of Sun 31 Mar 2024"]
        );
        assert_eq!(
            reasons_of(&p, "0000000d").1,
            ["the newest backup of Mon 1 Apr 2024"]
        );
        // With a fixed +01:00 the days split elsewhere: the summer backups shift by an hour.
        let fixed = FixedOffset::east_opt(3600).unwrap();
        let p = plan(&backups, &policy(4, 0, 0, 1), now, &fixed);
        let kept: Vec<&str> = p
            .iter()
            .filter(|d| d.keep)
            .map(|d| d.backup.id.as_str())
            .collect();
        // 0000000d is 31 Mar 23:00 at +01:00, the newest of 31 March; 0000000e (26 Oct 23:30) is
        // the newest of 26 October.
        assert_eq!(kept, ["00000012", "00000011", "0000000e", "0000000d"]);
    }

    #[test]
    fn months_without_backups() {
        let tz = FixedOffset::east_opt(0).unwrap();
        let mut backups = daily_backups(&tz, "2024-03-01", 31, "02:00");
        backups.extend(daily_backups(&tz, "2024-05-01", 3, "02:00"));
        let now = local(&tz, "2024-05-03 20:00");
        let p = plan(&backups, &RetentionPolicy::default(), now, &tz);
        // May's first; nothing from April (there is none); the last 7 days with backups reach
        // back into March; March's first is not kept (two months back).
        assert_eq!(
            kept_days(&p, &tz),
            [
                "2024-05-03 02:00",
                "2024-05-02 02:00",
                "2024-05-01 02:00",
                "2024-03-31 02:00",
                "2024-03-30 02:00",
                "2024-03-29 02:00",
                "2024-03-28 02:00",
            ]
        );
        assert_eq!(
            reasons_of(
                &p,
                &format!(
                    "{:08x}",
                    NaiveDate::from_ymd_opt(2024, 5, 1)
                        .unwrap()
                        .num_days_from_ce()
                )
            )
            .1,
            [
                "the newest backup of Wed 1 May 2024",
                "the first backup of May 2024"
            ]
        );
        // With 3 months, March's first is kept as well.
        let p = plan(&backups, &policy(7, 0, 3, 1), now, &tz);
        assert!(kept_days(&p, &tz).contains(&"2024-03-01 02:00".to_string()));
    }

    #[test]
    fn a_clock_set_back_does_not_age_the_backups() {
        let tz = FixedOffset::east_opt(0).unwrap();
        let backups = daily_backups(&tz, "2024-04-20", 45, "02:00"); // to 3 June
        let real_now = local(&tz, "2024-06-03 12:00");
        let wrong_now = local(&tz, "2024-01-01 00:00");
        let right = plan(&backups, &RetentionPolicy::default(), real_now, &tz);
        let wrong = plan(&backups, &RetentionPolicy::default(), wrong_now, &tz);
        assert_eq!(right, wrong);
        assert!(kept_days(&right, &tz).contains(&"2024-05-01 02:00".to_string()));
        assert!(kept_days(&right, &tz).contains(&"2024-06-01 02:00".to_string()));
        // A backup whose time is in the future of a correct clock (made on a device whose clock
        // ran ahead) is simply the newest.
        let mut ahead = backups.clone();
        ahead.push(complete("0000ffff", local(&tz, "2024-07-15 02:00")));
        let p = plan(&ahead, &RetentionPolicy::default(), real_now, &tz);
        assert_eq!(p[0].backup.id, "0000ffff");
        assert!(p[0].keep);
        // July becomes the current month: its first and June's first are kept.
        assert_eq!(reasons_of(&p, "0000ffff").1.len(), 3);
        assert!(kept_days(&p, &tz).contains(&"2024-06-01 02:00".to_string()));
    }

    #[test]
    fn backups_from_two_devices() {
        let tz = FixedOffset::east_opt(7200).unwrap();
        let mut backups = Vec::new();
        for day in 1..=10 {
            // Device A backs up at 02:00, device B at 08:00 (its own schedule).
            backups.push(complete(
                &format!("a00000{day:02}"),
                local(&tz, &format!("2024-06-{day:02} 02:00")),
            ));
            backups.push(complete(
                &format!("b00000{day:02}"),
                local(&tz, &format!("2024-06-{day:02} 08:00")),
            ));
        }
        // Both finished at the very same second on the 10th: the order is still fixed (by file name).
        backups.push(complete("c0000010", local(&tz, "2024-06-10 08:00")));
        // Device B's last run was partial, after everything else: it is kept (no newer complete).
        backups.push(partial("b0000011", local(&tz, "2024-06-10 09:00")));
        // An older partial of device A is replaced by newer complete backups.
        backups.push(partial("a0000005", local(&tz, "2024-06-05 03:00")));
        let now = local(&tz, "2024-06-10 10:00");
        let p = plan(&backups, &policy(3, 0, 1, 1), now, &tz);
        let kept: Vec<&str> = p
            .iter()
            .filter(|d| d.keep)
            .map(|d| d.backup.id.as_str())
            .collect();
        // Of the two at the same second, c0000010's file name sorts last: it counts as the newer.
        assert_eq!(
            kept,
            ["b0000011", "c0000010", "b0000009", "b0000008", "a0000001"]
        );
        assert_eq!(
            reasons_of(&p, "b0000011"),
            (
                true,
                vec!["a partial backup, kept until a newer complete backup exists".to_string()]
            )
        );
        assert_eq!(
            reasons_of(&p, "a0000005"),
            (
                false,
                vec!["a partial backup, replaced by a newer complete backup".to_string()]
            )
        );
        // Shuffled input gives the same plan.
        let mut shuffled = backups.clone();
        shuffled.reverse();
        shuffled.swap(0, 7);
        assert_eq!(plan(&shuffled, &policy(3, 0, 1, 1), now, &tz), p);
    }

    #[test]
    fn partials_count_for_nothing() {
        let t = |s: &str| utc(s);
        let cases: &[(&str, Vec<StoredBackup>, &[&str])] = &[
            (
                "only partials: all kept",
                vec![
                    partial("00000001", t("2024-01-01 02:00")),
                    partial("00000002", t("2024-01-02 02:00")),
                ],
                &["00000002", "00000001"],
            ),
            (
                "a partial before a complete: replaced",
                vec![
                    partial("00000001", t("2024-01-01 02:00")),
                    complete("00000002", t("2024-01-02 02:00")),
                ],
                &["00000002"],
            ),
            (
                "a partial after the complete: kept, and does not take the day",
                vec![
                    complete("00000001", t("2024-01-01 01:00")),
                    partial("00000002", t("2024-01-01 03:00")),
                    complete("00000003", t("2023-12-31 01:00")),
                ],
                &["00000002", "00000001"],
            ),
        ];
        for (name, backups, kept) in cases {
            let p = plan(backups, &policy(1, 0, 0, 1), t("2024-01-05 00:00"), &Utc);
            let got: Vec<&str> = p
                .iter()
                .filter(|d| d.keep)
                .map(|d| d.backup.id.as_str())
                .collect();
            assert_eq!(got, *kept, "{name}");
        }
    }

    #[test]
    fn the_newest_complete_backup_is_never_deleted() {
        let backups = vec![
            complete("00000001", utc("2023-01-01 02:00")),
            partial("00000002", utc("2024-01-01 02:00")),
        ];
        let p = plan(&backups, &policy(0, 0, 0, 1), utc("2025-01-01 00:00"), &Utc);
        assert!(p.iter().all(|d| d.keep));
        assert_eq!(
            reasons_of(&p, "00000001").1,
            ["the newest complete backup (never deleted)"]
        );
        assert!(plan(
            &[],
            &RetentionPolicy::default(),
            utc("2025-01-01 00:00"),
            &Utc
        )
        .is_empty());
    }

    #[test]
    fn keep_last_weekly_and_more_months() {
        let tz = FixedOffset::east_opt(0).unwrap();
        let backups = daily_backups(&tz, "2024-01-01", 120, "02:00"); // to 29 April
        let now = local(&tz, "2024-04-29 12:00");
        let p = plan(&backups, &policy(0, 0, 0, 3), now, &tz);
        assert_eq!(
            kept_days(&p, &tz),
            ["2024-04-29 02:00", "2024-04-28 02:00", "2024-04-27 02:00"]
        );
        assert_eq!(
            reasons_of(&p, &p[2].backup.id).1,
            ["one of the 3 most recent complete backups"]
        );
        // Weekly: the newest of each ISO week (weeks start on Monday; 29 April is a Monday).
        let p = plan(&backups, &policy(0, 3, 0, 1), now, &tz);
        assert_eq!(
            kept_days(&p, &tz),
            ["2024-04-29 02:00", "2024-04-28 02:00", "2024-04-21 02:00"]
        );
        assert_eq!(
            reasons_of(&p, &p[1].backup.id).1,
            ["the newest backup of week 17 of 2024"]
        );
        // Three months before the current one: the first of January to April.
        let p = plan(&backups, &policy(0, 0, 3, 1), now, &tz);
        assert_eq!(
            kept_days(&p, &tz),
            [
                "2024-04-29 02:00",
                "2024-04-01 02:00",
                "2024-03-01 02:00",
                "2024-02-01 02:00",
                "2024-01-01 02:00"
            ]
        );
        // Across the year end, ISO week 1 of 2025 starts on Monday 30 December 2024.
        let backups = daily_backups(&tz, "2024-12-25", 10, "02:00");
        let p = plan(
            &backups,
            &policy(0, 2, 0, 1),
            local(&tz, "2025-01-03 12:00"),
            &tz,
        );
        assert_eq!(kept_days(&p, &tz), ["2025-01-03 02:00", "2024-12-29 02:00"]);
        assert_eq!(
            reasons_of(&p, &p[0].backup.id).1[1],
            "the newest backup of week 1 of 2025"
        );
    }

    #[test]
    fn databases_are_planned_apart() {
        let backups = vec![
            backup_db(
                "a",
                "0000000a",
                utc("2024-01-01 02:00"),
                BackupStatus::Complete,
            ),
            backup_db(
                "b",
                "0000000b",
                utc("2024-03-01 02:00"),
                BackupStatus::Complete,
            ),
            backup_db(
                "b",
                "0000000c",
                utc("2024-03-02 02:00"),
                BackupStatus::Complete,
            ),
        ];
        let p = plan(&backups, &policy(1, 0, 0, 1), utc("2024-03-02 12:00"), &Utc);
        let kept: Vec<&str> = p
            .iter()
            .filter(|d| d.keep)
            .map(|d| d.backup.id.as_str())
            .collect();
        assert_eq!(kept, ["0000000c", "0000000a"]);
    }

    #[test]
    fn files_not_named_like_ours_are_kept() {
        let mut odd = complete("00000001", utc("2024-01-01 02:00"));
        odd.file = "my-own-file.mdbk".into();
        let backups = vec![odd, complete("00000002", utc("2024-01-05 02:00"))];
        let p = plan(&backups, &policy(1, 0, 0, 1), utc("2024-01-05 12:00"), &Utc);
        assert_eq!(
            reasons_of(&p, "00000001"),
            (
                true,
                vec!["not named like a Driveback backup, so never deleted".to_string()]
            )
        );
    }

    /// Day by day for a year and a half, with the backups of each day pruned as the app does:
    /// the count stays bounded, at least one complete backup is always there, and once the
    /// history is long enough one about a month old is too (between 30 and 61 days old, except
    /// in the first days of a month when last month's first backup is younger: down to 28 days
    /// after February, or a little less when the month's first days had no complete backup).
    #[test]
    fn simulated_days_keep_a_backup_about_a_month_old() {
        let tz = BERLIN;
        let start = NaiveDate::from_ymd_opt(2027, 11, 20).unwrap();
        let mut at_destination: Vec<StoredBackup> = Vec::new();
        for i in 0..550 {
            let day = start + Duration::days(i);
            let created = crate::schedule::local_instant(
                day,
                chrono::NaiveTime::MIN + Duration::hours(2),
                &tz,
            );
            // Every 9th day the run is partial; every 13th day there is none (the laptop was off).
            if i % 13 == 5 {
                continue;
            }
            let status = if i % 9 == 4 {
                BackupStatus::Partial
            } else {
                BackupStatus::Complete
            };
            at_destination.push(backup_db("shop", &format!("{i:08x}"), created, status));
            if status != BackupStatus::Complete {
                continue; // never prune after a failed or partial run
            }
            let now = created + Duration::minutes(10);
            let p = plan(&at_destination, &RetentionPolicy::default(), now, &tz);
            at_destination = p.into_iter().filter(|d| d.keep).map(|d| d.backup).collect();
            let completes: Vec<&StoredBackup> = at_destination
                .iter()
                .filter(|b| b.status == BackupStatus::Complete)
                .collect();
            assert!(!completes.is_empty());
            assert!(
                at_destination.len() <= 7 + 2 + 1,
                "day {day}: {} backups",
                at_destination.len()
            );
            if i >= 62 {
                let has_month_old = completes.iter().any(|b| {
                    let age = now - b.created;
                    age >= Duration::days(25) && age <= Duration::days(62)
                });
                assert!(has_month_old, "day {day}: no backup about a month old");
            }
        }
    }
}
