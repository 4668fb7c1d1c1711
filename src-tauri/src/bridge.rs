//! Engine events to the UI: a job's progress and its end go to the `tauri::ipc::Channel` of every
//! window following it (Backup Now pressed again while a backup runs attaches another), and the
//! window hears `job-started` and `state-changed`. The engine works out percent and time left;
//! this only maps its events.

use driveback_engine::jobs::{JobEvent as EngineEvent, JobKind, JobResult};
use driveback_engine::progress::ProgressView;
use serde::Serialize;
use tauri::ipc::Channel;
use tokio::sync::broadcast::{error::RecvError, Receiver};

use crate::error::ApiError;
use crate::state::Shared;

/// What a job's channels receive.
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum JobEvent {
    Progress(ProgressView),
    Finished {
        job_id: String,
        kind: JobKind,
        result: serde_json::Value,
    },
    Failed {
        job_id: String,
        kind: JobKind,
        error: ApiError,
    },
    Cancelled {
        job_id: String,
        kind: JobKind,
    },
}

/// The channel's words for how job `job_id` ended.
pub fn ended(job_id: String, kind: JobKind, result: JobResult) -> JobEvent {
    match result {
        JobResult::Finished { result } => JobEvent::Finished {
            job_id,
            kind,
            result,
        },
        JobResult::Failed { error } => JobEvent::Failed {
            job_id,
            kind,
            error,
        },
        JobResult::Cancelled => JobEvent::Cancelled { job_id, kind },
    }
}

/// Forwards job `job_id`'s progress and end from `events` (subscribed before the job could end)
/// to `channel`, starting with its latest progress.
pub fn follow(
    state: &Shared,
    mut events: Receiver<EngineEvent>,
    job_id: String,
    channel: Channel<JobEvent>,
) {
    if let Some(p) = state
        .jobs()
        .current()
        .filter(|j| j.id == job_id)
        .and_then(|j| j.progress)
    {
        let _ = channel.send(JobEvent::Progress(p));
    }
    tauri::async_runtime::spawn(async move {
        loop {
            match events.recv().await {
                Ok(EngineEvent::Progress { id, progress }) if id == job_id => {
                    // A closed webview's channel fails: nothing to do about it.
                    let _ = channel.send(JobEvent::Progress(progress));
                }
                Ok(EngineEvent::Ended { id, kind, result }) if id == job_id => {
                    let _ = channel.send(ended(id, kind, result));
                    break;
                }
                Ok(_) | Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => break,
            }
        }
    });
}

/// Tells the window when a backup starts (so it can follow it) and when any job ended (so it
/// refreshes).
pub fn forward_to_window(state: &Shared) {
    let mut events = state.jobs().subscribe();
    let state = state.clone();
    tauri::async_runtime::spawn(async move {
        loop {
            match events.recv().await {
                Ok(EngineEvent::Started { job }) if job.kind == JobKind::Backup => state.emit(
                    "job-started",
                    serde_json::json!({ "job_id": job.id, "trigger": job.trigger }),
                ),
                Ok(EngineEvent::Ended { .. }) => {
                    state.emit("state-changed", serde_json::Value::Null)
                }
                Ok(_) | Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => break,
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_tagged() {
        let v = serde_json::to_value(JobEvent::Cancelled {
            job_id: "j1".into(),
            kind: JobKind::Backup,
        })
        .unwrap();
        assert_eq!(
            v,
            serde_json::json!({"event": "cancelled", "job_id": "j1", "kind": "backup"})
        );
    }
}
