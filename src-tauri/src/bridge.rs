//! Engine events to the UI: a job's progress goes to every `tauri::ipc::Channel` attached to the
//! job (Backup Now pressed again while a backup runs attaches another), with percent and ETA
//! worked out here so the UI only displays them.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use driveback_engine::progress::{Phase, Progress, ProgressSink};
use serde::Serialize;
use tauri::ipc::Channel;

use crate::error::ApiError;

/// The kinds of job; one runs at a time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum JobKind {
    Backup,
    Verify,
    Restore,
}

/// Which part of a job is running: a restore first backs up the current data ("safety").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    Main,
    SafetyBackup,
}

#[derive(Clone, Debug, Serialize)]
pub struct ProgressView {
    pub job_id: String,
    pub kind: JobKind,
    pub step: Step,
    pub phase: Phase,
    /// The phase in a few words ("backing up", "loading", ...).
    pub label: &'static str,
    pub collection: Option<String>,
    pub done_docs: u64,
    /// 0 when unknown.
    pub total_docs: u64,
    pub done_bytes: u64,
    /// 0 when unknown.
    pub total_bytes: u64,
    /// 0..=100 when the total is known.
    pub percent: Option<f64>,
    /// Seconds left, once there is enough to estimate from.
    pub eta_seconds: Option<u64>,
    pub elapsed_ms: u64,
}

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

/// Progress events closer together than this are dropped (phase changes always go through).
const MIN_INTERVAL: Duration = Duration::from_millis(100);

/// The progress of one job, fanned out to its channels.
pub struct JobProgress {
    pub job_id: String,
    pub kind: JobKind,
    started: Instant,
    channels: Mutex<Vec<Channel<JobEvent>>>,
    state: Mutex<ProgressState>,
}

struct ProgressState {
    step: Step,
    /// Documents the running step will handle, when the engine does not say (restore).
    expected_docs: u64,
    step_started: Instant,
    last_sent: Option<(Instant, Phase)>,
    last: Option<ProgressView>,
}

impl JobProgress {
    pub fn new(job_id: String, kind: JobKind) -> Arc<Self> {
        let now = Instant::now();
        Arc::new(Self {
            job_id,
            kind,
            started: now,
            channels: Mutex::new(Vec::new()),
            state: Mutex::new(ProgressState {
                step: Step::Main,
                expected_docs: 0,
                step_started: now,
                last_sent: None,
                last: None,
            }),
        })
    }

    pub fn attach(&self, channel: Channel<JobEvent>) {
        let last = self.state.lock().unwrap().last.clone();
        if let Some(p) = last {
            let _ = channel.send(JobEvent::Progress(p));
        }
        self.channels.lock().unwrap().push(channel);
    }

    /// Starts a step of the job; `expected_docs` gives a percentage where the engine reports no
    /// total.
    pub fn begin_step(&self, step: Step, expected_docs: u64) {
        let mut s = self.state.lock().unwrap();
        s.step = step;
        s.expected_docs = expected_docs;
        s.step_started = Instant::now();
        s.last_sent = None;
    }

    /// The latest progress (for the app state after a reload of the UI).
    pub fn last(&self) -> Option<ProgressView> {
        self.state.lock().unwrap().last.clone()
    }

    pub fn send(&self, event: JobEvent) {
        let channels = self.channels.lock().unwrap().clone();
        for c in channels {
            // A closed webview's channel fails: nothing to do about it.
            let _ = c.send(event.clone());
        }
    }

    pub fn finished(&self, result: serde_json::Value) {
        self.send(JobEvent::Finished {
            job_id: self.job_id.clone(),
            kind: self.kind,
            result,
        });
    }

    pub fn failed(&self, error: ApiError) {
        self.send(JobEvent::Failed {
            job_id: self.job_id.clone(),
            kind: self.kind,
            error,
        });
    }

    pub fn cancelled(&self) {
        self.send(JobEvent::Cancelled {
            job_id: self.job_id.clone(),
            kind: self.kind,
        });
    }

    fn view(&self, p: &Progress, s: &ProgressState, now: Instant) -> ProgressView {
        let total = if p.total_docs > 0 {
            p.total_docs
        } else {
            s.expected_docs
        };
        let percent = if p.phase == Phase::Done {
            Some(100.0)
        } else if total > 0 {
            Some(percent_of(p.done_docs, total))
        } else {
            None
        };
        let step_elapsed = now.duration_since(s.step_started);
        ProgressView {
            job_id: self.job_id.clone(),
            kind: self.kind,
            step: s.step,
            phase: p.phase,
            label: p.phase.label(),
            collection: p.collection.clone(),
            done_docs: p.done_docs,
            total_docs: total,
            done_bytes: p.done_bytes,
            total_bytes: p.total_bytes,
            percent,
            eta_seconds: percent.and_then(|pc| eta_seconds(pc, step_elapsed)),
            elapsed_ms: now.duration_since(self.started).as_millis() as u64,
        }
    }
}

impl ProgressSink for JobProgress {
    fn report(&self, p: Progress) {
        let now = Instant::now();
        let view = {
            let mut s = self.state.lock().unwrap();
            let due = match s.last_sent {
                None => true,
                Some((at, phase)) => phase != p.phase || now.duration_since(at) >= MIN_INTERVAL,
            };
            let view = self.view(&p, &s, now);
            s.last = Some(view.clone());
            if !due {
                return;
            }
            s.last_sent = Some((now, p.phase));
            view
        };
        self.send(JobEvent::Progress(view));
    }
}

pub fn percent_of(done: u64, total: u64) -> f64 {
    if total == 0 {
        return 0.0;
    }
    ((done as f64 / total as f64) * 100.0).clamp(0.0, 100.0)
}

/// Time left at the rate so far; none until a second has passed and 1% is done.
pub fn eta_seconds(percent: f64, elapsed: Duration) -> Option<u64> {
    if !(1.0..100.0).contains(&percent) || elapsed < Duration::from_secs(1) {
        return None;
    }
    let secs = elapsed.as_secs_f64() * (100.0 - percent) / percent;
    Some(secs.ceil() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_is_clamped() {
        assert_eq!(percent_of(5, 10), 50.0);
        assert_eq!(percent_of(15, 10), 100.0);
        assert_eq!(percent_of(1, 0), 0.0);
    }

    #[test]
    fn eta_from_the_rate_so_far() {
        assert_eq!(eta_seconds(50.0, Duration::from_secs(10)), Some(10));
        assert_eq!(eta_seconds(25.0, Duration::from_secs(3)), Some(9));
        assert_eq!(eta_seconds(0.5, Duration::from_secs(10)), None);
        assert_eq!(eta_seconds(50.0, Duration::from_millis(200)), None);
        assert_eq!(eta_seconds(100.0, Duration::from_secs(10)), None);
    }

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
