//! Audits by test restore: a backup is restored into a scratch database on the same server
//! (`<db>_driveback_audit`, or a name the user gives), every collection's documents read back
//! from the server are compared with what the backup holds (count and an order-independent digest
//! of the exact bytes) and with the manifest's counts, its indexes are checked, and the scratch
//! database is dropped, whatever happened. A server that refuses the restore (no space, no
//! rights, unreachable) skips the audit with a warning rather than failing it.

use std::sync::Arc;

use bson::RawDocumentBuf;
use futures_util::TryStreamExt;
use serde::Serialize;

use crate::archive::DocSet;
use crate::error::EngineError;
use crate::manifest::CollectionStatus;
use crate::mongo::{self, MongoError};
use crate::pipeline::{RestoreOptions, RestoreResult, Source};
use crate::progress::ProgressSink;

/// The default scratch database is the backup's database with this suffix.
pub const AUDIT_SUFFIX: &str = "_driveback_audit";

/// The error code a skipped audit is recorded with (health: a warning, not a failure).
pub const SKIPPED_CODE: &str = "audit_skipped";

/// The default scratch database of `database` (cut so that the name fits MongoDB's 63 bytes).
pub fn scratch_name(database: &str) -> String {
    let room = 63 - AUDIT_SUFFIX.len();
    let mut cut = database.len().min(room);
    while !database.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}{AUDIT_SUFFIX}", &database[..cut])
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Passed,
    Failed,
    /// The server refused the scratch restore: nothing was learnt about the backup.
    Skipped,
}

#[derive(Clone, Debug, Serialize)]
pub struct AuditedCollection {
    pub name: String,
    pub documents: u64,
    pub ok: bool,
}

#[derive(Clone, Debug, Serialize)]
pub struct AuditReport {
    pub backup_id: String,
    pub database: String,
    pub scratch_db: String,
    pub verdict: Verdict,
    pub collections: Vec<AuditedCollection>,
    /// Why it failed or was skipped, one sentence each.
    pub problems: Vec<String>,
}

/// Restores `source` into `scratch`, compares, and drops `scratch`.
pub async fn test_restore(
    mongo_uri: &str,
    source: Source,
    backup_id: &str,
    database: &str,
    scratch: &str,
    parallel: usize,
    progress: Arc<dyn ProgressSink>,
) -> Result<AuditReport, EngineError> {
    if scratch == database {
        return Err(EngineError::Input(format!(
            "the scratch database must not be {database} itself: nothing was changed"
        )));
    }
    let skipped = |why: String| AuditReport {
        backup_id: backup_id.to_string(),
        database: database.to_string(),
        scratch_db: scratch.to_string(),
        verdict: Verdict::Skipped,
        collections: Vec::new(),
        problems: vec![format!("the server refused the test restore: {why}")],
    };
    let client = match mongo::connect(mongo_uri).await {
        Ok(c) => c,
        Err(e @ (MongoError::Unreachable { .. } | MongoError::Server { .. })) => {
            return Ok(skipped(e.to_string()))
        }
        Err(e) => return Err(e.into()),
    };
    // Someone's data is never touched: only an empty database or an earlier audit's is used.
    let existing = client
        .database(scratch)
        .list_collection_names()
        .await
        .map_err(|e| MongoError::server("looking at the scratch database", e));
    match existing {
        Ok(names) if names.is_empty() || scratch.ends_with(AUDIT_SUFFIX) => {}
        Ok(_) => {
            client.shutdown().await;
            return Err(EngineError::Input(format!(
                "the scratch database {scratch} already holds data: name an empty one (nothing was changed)"
            )));
        }
        // The server does not answer or refuses: nothing is known about the backup.
        Err(e) => {
            client.shutdown().await;
            return Ok(skipped(e.to_string()));
        }
    }
    let result = run(
        &client, source, backup_id, database, scratch, parallel, progress,
    )
    .await;
    // Gone afterwards, whatever happened.
    if let Err(e) = client.database(scratch).drop().await {
        tracing::warn!(db = scratch, error = %e, "could not drop the scratch database");
    }
    client.shutdown().await;
    result
}

async fn run(
    client: &mongodb::Client,
    source: Source,
    backup_id: &str,
    database: &str,
    scratch: &str,
    parallel: usize,
    progress: Arc<dyn ProgressSink>,
) -> Result<AuditReport, EngineError> {
    // A leftover of an interrupted audit.
    client
        .database(scratch)
        .drop()
        .await
        .map_err(|e| MongoError::server("clearing the scratch database", e))?;
    let report = |verdict, collections, problems| AuditReport {
        backup_id: backup_id.to_string(),
        database: database.to_string(),
        scratch_db: scratch.to_string(),
        verdict,
        collections,
        problems,
    };
    let opts = RestoreOptions {
        target_db: scratch.to_string(),
        collections: None,
        expected: None,
        parallel,
    };
    let restored = match crate::pipeline::restore_with(client, source, &opts, progress).await {
        Ok(r) => r,
        // The server refused (no space, no rights, gone): nothing is known about the backup.
        Err(EngineError::Mongo(
            e @ (MongoError::Server { .. } | MongoError::Unreachable { .. }),
        )) => {
            return Ok(report(
                Verdict::Skipped,
                Vec::new(),
                vec![format!("the server refused the test restore: {e}")],
            ))
        }
        // The backup itself did not restore (damaged, not what its manifest says): failed.
        Err(e) => return Ok(report(Verdict::Failed, Vec::new(), vec![e.to_string()])),
    };
    crate::crash::pause_point("audit.restored", scratch, || false);
    let (collections, problems) = compare(client, scratch, &restored).await?;
    let verdict = if problems.is_empty() {
        Verdict::Passed
    } else {
        Verdict::Failed
    };
    Ok(report(verdict, collections, problems))
}

/// What the server gives back from `scratch`, against what the backup held.
async fn compare(
    client: &mongodb::Client,
    scratch: &str,
    restored: &RestoreResult,
) -> Result<(Vec<AuditedCollection>, Vec<String>), EngineError> {
    let db = client.database(scratch);
    let mut collections = Vec::new();
    let mut problems = Vec::new();
    let listed = db
        .list_collection_names()
        .await
        .map_err(|e| MongoError::server("listing the scratch database", e))?;
    let contents = restored.contents.as_ref().ok_or_else(|| {
        EngineError::Internal("the test restore kept no digest of the backup's documents".into())
    })?;
    for (ns, held) in contents {
        let name = &ns.collection;
        let failed_in_backup = restored.manifest.as_ref().is_some_and(|m| {
            m.collections
                .iter()
                .any(|c| &c.name == name && matches!(c.status, CollectionStatus::Failed { .. }))
        });
        if failed_in_backup {
            continue;
        }
        if !listed.iter().any(|l| l == name) {
            problems.push(format!("{name}: missing after the restore"));
            continue;
        }
        if ns.kind != "collection" {
            // Views and time series: there, with their definition; their documents are checked
            // through the collections they read.
            continue;
        }
        let mut back = DocSet::default();
        let mut cursor = db
            .collection::<RawDocumentBuf>(name)
            .find(bson::doc! {})
            .await
            .map_err(|e| MongoError::server(format!("reading {name} back"), e))?;
        while let Some(doc) = cursor
            .try_next()
            .await
            .map_err(|e| MongoError::server(format!("reading {name} back"), e))?
        {
            back.add(doc.as_bytes());
        }
        let listed_docs = restored.manifest.as_ref().and_then(|m| {
            m.collections
                .iter()
                .find(|c| &c.name == name)
                .map(|c| c.documents)
        });
        let mut ok = true;
        if back.count != held.count || listed_docs.is_some_and(|n| n != back.count) {
            ok = false;
            problems.push(format!(
                "{name}: the server gave back {} documents, the backup holds {}",
                back.count,
                listed_docs.unwrap_or(held.count)
            ));
        } else if back != *held {
            ok = false;
            problems.push(format!(
                "{name}: the documents read back differ from the backup's"
            ));
        }
        let want: Vec<String> = ns
            .metadata
            .indexes
            .iter()
            .filter_map(|i| i.get_str("name").ok().map(str::to_string))
            .collect();
        let have: Vec<String> = db
            .collection::<bson::Document>(name)
            .list_index_names()
            .await
            .map_err(|e| MongoError::server(format!("listing the indexes of {name}"), e))?;
        for missing in want.iter().filter(|w| !have.contains(w)) {
            ok = false;
            problems.push(format!(
                "{name}: index {missing} is missing after the restore"
            ));
        }
        collections.push(AuditedCollection {
            name: name.clone(),
            documents: back.count,
            ok,
        });
    }
    Ok((collections, problems))
}

/// Which audit the schedule calls for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Due {
    TestRestore,
    Verify,
}

/// Pure: the audit due at `now` given the history (oldest first): a test restore every
/// `test_restore_days`, else a full read every `verify_days`, each counted from the last one
/// (a test restore reads the whole backup too), or from the first complete backup when there
/// was none yet. Nothing before the first complete backup.
pub fn due(
    records: &[crate::history::RunRecord],
    s: &crate::settings::AuditSettings,
    now: chrono::DateTime<chrono::Utc>,
) -> Option<Due> {
    use crate::history::RunKind;
    let first_good = records.iter().find(|r| r.is_good())?.ended;
    let last = |kinds: &[RunKind]| {
        records
            .iter()
            .rev()
            .find(|r| kinds.contains(&r.kind))
            .map_or(first_good, |r| r.ended)
    };
    let every = |days: u32| chrono::Duration::days(days.into());
    if s.test_restore_days > 0 && now - last(&[RunKind::Audit]) >= every(s.test_restore_days) {
        return Some(Due::TestRestore);
    }
    if s.verify_days > 0 && now - last(&[RunKind::Audit, RunKind::Verify]) >= every(s.verify_days) {
        return Some(Due::Verify);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audits_fall_due_from_the_first_backup_and_the_last_audit() {
        use crate::history::{Outcome, RunKind, RunRecord};
        use crate::settings::AuditSettings;
        let t = |d: i64| {
            "2026-03-01T02:00:00Z"
                .parse::<chrono::DateTime<chrono::Utc>>()
                .unwrap()
                + chrono::Duration::days(d)
        };
        let run = |kind: RunKind, day: i64, outcome: Outcome| {
            let mut r = crate::history::tests::record(0, outcome);
            r.kind = kind;
            r.started = t(day);
            r.ended = t(day);
            r
        };
        let s = AuditSettings::default(); // 30 and 7 days
        let backup = |d| run(RunKind::Backup, d, Outcome::Success);
        let failed = |d| run(RunKind::Backup, d, Outcome::Failed);
        let audit = |d| run(RunKind::Audit, d, Outcome::Success);
        let verify = |d| run(RunKind::Verify, d, Outcome::Success);
        // (case, history, now in days, due)
        let rows: Vec<(&str, Vec<RunRecord>, i64, Option<Due>)> = vec![
            ("nothing before a good backup", vec![failed(0)], 40, None),
            ("a new install waits a week", vec![backup(0)], 6, None),
            ("then verifies", vec![backup(0)], 7, Some(Due::Verify)),
            (
                "and test-restores after 30 days",
                vec![backup(0)],
                30,
                Some(Due::TestRestore),
            ),
            (
                "a verify resets the week",
                vec![backup(0), verify(7)],
                13,
                None,
            ),
            (
                "a test restore counts as a verify",
                vec![backup(0), audit(30)],
                36,
                None,
            ),
            (
                "a week after it",
                vec![backup(0), audit(30)],
                37,
                Some(Due::Verify),
            ),
            (
                "a month after it",
                vec![
                    backup(0),
                    audit(30),
                    verify(37),
                    verify(44),
                    verify(51),
                    verify(58),
                ],
                60,
                Some(Due::TestRestore),
            ),
        ];
        for (case, records, now, want) in rows {
            assert_eq!(due(&records, &s, t(now)), want, "{case}");
        }
        let off = AuditSettings {
            test_restore_days: 0,
            verify_days: 0,
            scratch_db: None,
        };
        assert_eq!(due(&[backup(0)], &off, t(400)), None, "turned off");
    }

    #[test]
    fn scratch_names_fit() {
        assert_eq!(scratch_name("timetrack"), "timetrack_driveback_audit");
        let long = "d".repeat(70);
        assert_eq!(scratch_name(&long).len(), 63);
        assert!(scratch_name(&long).ends_with(AUDIT_SUFFIX));
    }
}
