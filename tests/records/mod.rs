//! History records the app's tests start from (shared by `commands.rs` and `autostart.rs`).

/// A successful backup run in the history, `at` a given time (what the scheduler and the health
/// read).
pub fn successful_backup(
    job_id: &str,
    trigger: driveback_engine::history::Trigger,
    at: chrono::DateTime<chrono::Utc>,
    database: &str,
) -> driveback_engine::history::RunRecord {
    driveback_engine::history::RunRecord {
        warnings: Vec::new(),
        job_id: job_id.into(),
        kind: driveback_engine::history::RunKind::Backup,
        trigger,
        started: at,
        ended: at,
        outcome: driveback_engine::history::Outcome::Success,
        database: Some(database.to_string()),
        dest: None,
        backup_id: None,
        bytes: None,
        documents: None,
        verified: None,
        pruned: None,
        error: None,
    }
}
