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
