//! Progress of a running job, reported to whoever watches (CLI progress bar, the app's UI).

use serde::Serialize;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    Connecting,
    Exporting,
    Downloading,
    Staging,
    Indexing,
    Swapping,
    Verifying,
    Done,
}

impl Phase {
    pub fn label(self) -> &'static str {
        match self {
            Phase::Connecting => "connecting",
            Phase::Exporting => "backing up",
            Phase::Downloading => "downloading",
            Phase::Staging => "loading",
            Phase::Indexing => "building indexes",
            Phase::Swapping => "replacing data",
            Phase::Verifying => "verifying",
            Phase::Done => "done",
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Progress {
    pub phase: Phase,
    pub collection: Option<String>,
    pub done_docs: u64,
    /// 0 when unknown.
    pub total_docs: u64,
    pub done_bytes: u64,
    /// 0 when unknown.
    pub total_bytes: u64,
}

impl Progress {
    pub fn phase(phase: Phase) -> Self {
        Progress {
            phase,
            collection: None,
            done_docs: 0,
            total_docs: 0,
            done_bytes: 0,
            total_bytes: 0,
        }
    }
}

pub trait ProgressSink: Send + Sync {
    fn report(&self, progress: Progress);
}

/// Reports nothing.
pub struct NoProgress;

impl ProgressSink for NoProgress {
    fn report(&self, _: Progress) {}
}

/// The kinds of job; one runs at a time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobKind {
    Backup,
    Verify,
    Restore,
}

impl JobKind {
    /// "a backup", for messages.
    pub fn with_article(self) -> &'static str {
        match self {
            JobKind::Backup => "a backup",
            JobKind::Verify => "a verification",
            JobKind::Restore => "a restore",
        }
    }
}

/// Which part of a job is running: a restore first backs up the current data ("safety").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    Main,
    SafetyBackup,
}

/// A job's progress as people read it: percent and time left worked out here, so that every front
/// door only displays them.
#[derive(Clone, Debug, PartialEq, Serialize)]
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

/// Progress events closer together than this are not passed on (phase changes always are).
const MIN_INTERVAL: std::time::Duration = std::time::Duration::from_millis(100);

/// Turns one job's raw [`Progress`] into [`ProgressView`]s, throttled, for `emit`.
pub struct ProgressTracker {
    job_id: String,
    kind: JobKind,
    started: std::time::Instant,
    emit: Box<dyn Fn(ProgressView) + Send + Sync>,
    state: std::sync::Mutex<TrackerState>,
}

struct TrackerState {
    step: Step,
    /// Documents the running step will handle, when the engine does not say (restore).
    expected_docs: u64,
    step_started: std::time::Instant,
    last_sent: Option<(std::time::Instant, Phase)>,
    last: Option<ProgressView>,
}

impl ProgressTracker {
    pub fn new(
        job_id: String,
        kind: JobKind,
        emit: impl Fn(ProgressView) + Send + Sync + 'static,
    ) -> Self {
        let now = std::time::Instant::now();
        ProgressTracker {
            job_id,
            kind,
            started: now,
            emit: Box::new(emit),
            state: std::sync::Mutex::new(TrackerState {
                step: Step::Main,
                expected_docs: 0,
                step_started: now,
                last_sent: None,
                last: None,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, TrackerState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts a step of the job; `expected_docs` gives a percentage where the engine reports no
    /// total.
    pub fn begin_step(&self, step: Step, expected_docs: u64) {
        let mut s = self.lock();
        s.step = step;
        s.expected_docs = expected_docs;
        s.step_started = std::time::Instant::now();
        s.last_sent = None;
    }

    /// The latest progress (for a window that opens while the job runs).
    pub fn last(&self) -> Option<ProgressView> {
        self.lock().last.clone()
    }

    fn view(&self, p: &Progress, s: &TrackerState, now: std::time::Instant) -> ProgressView {
        let total = if p.total_docs > 0 {
            p.total_docs
        } else {
            s.expected_docs
        };
        let percent = if p.phase == Phase::Done {
            Some(100.0)
        } else if total > 0 && p.done_docs <= total {
            Some(percent_of(p.done_docs, total))
        } else {
            // No total, or past the estimate (the database grew since the last backup): a
            // percentage stuck at 100% would say it is nearly done when it is not.
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

impl ProgressSink for ProgressTracker {
    fn report(&self, p: Progress) {
        let now = std::time::Instant::now();
        let view = {
            let mut s = self.lock();
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
        (self.emit)(view);
    }
}

pub fn percent_of(done: u64, total: u64) -> f64 {
    if total == 0 {
        return 0.0;
    }
    ((done as f64 / total as f64) * 100.0).clamp(0.0, 100.0)
}

/// Time left at the rate so far; none until a second has passed and 1% is done.
pub fn eta_seconds(percent: f64, elapsed: std::time::Duration) -> Option<u64> {
    if !(1.0..100.0).contains(&percent) || elapsed < std::time::Duration::from_secs(1) {
        return None;
    }
    let secs = elapsed.as_secs_f64() * (100.0 - percent) / percent;
    Some(secs.ceil() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

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
    fn a_step_without_a_total_uses_the_expected_count() {
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let s2 = seen.clone();
        let t = ProgressTracker::new("j".into(), JobKind::Restore, move |v| {
            s2.lock().unwrap().push(v)
        });
        t.begin_step(Step::Main, 200);
        t.report(Progress {
            done_docs: 50,
            ..Progress::phase(Phase::Staging)
        });
        let v = seen.lock().unwrap().last().cloned().unwrap();
        assert_eq!(v.percent, Some(25.0));
        assert_eq!(v.total_docs, 200);
        assert_eq!(t.last().unwrap().label, "loading");
        // Past the estimate (the database grew): no percentage rather than a stuck 100%.
        std::thread::sleep(MIN_INTERVAL);
        t.report(Progress {
            done_docs: 450,
            ..Progress::phase(Phase::Staging)
        });
        let v = seen.lock().unwrap().last().cloned().unwrap();
        assert_eq!(v.done_docs, 450);
        assert_eq!(v.percent, None);
        assert_eq!(v.eta_seconds, None);
    }
}
