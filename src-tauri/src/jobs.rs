//! The one job the UI follows: a backup, a verify or a restore, never two at once.
//!
//! Backups are started by the engine's `driveback_engine::jobs::Jobs` (Backup Now, or the
//! scheduler); `crate::runner` takes this slot for a backup once it may run and hands it its
//! progress, and the slot is released when the engine reports the run finished. Backup Now
//! pressed while a backup runs attaches its channel to that backup, even before the backup has
//! taken the slot. A verify or a restore takes the slot directly and is refused with `busy` while
//! anything else runs.

use std::sync::{Arc, Mutex};

use serde::Serialize;
use tauri::ipc::Channel;

use crate::bridge::{JobEvent, JobKind, JobProgress, ProgressView};
use crate::error::{ApiError, ApiResult};

#[derive(Default)]
pub struct Jobs {
    next: std::sync::atomic::AtomicU64,
    current: Mutex<Option<Arc<JobProgress>>>,
    /// Channels waiting for a backup that has not taken the slot yet, by job id.
    waiting: Mutex<Vec<(String, Channel<JobEvent>)>>,
}

/// A running job, as the UI sees it in the app state.
#[derive(Clone, Debug, Serialize)]
pub struct JobView {
    pub id: String,
    pub kind: JobKind,
    pub progress: Option<ProgressView>,
}

impl Jobs {
    /// Starts a verify or a restore unless a job runs.
    pub fn start(&self, kind: JobKind, channel: Channel<JobEvent>) -> ApiResult<Arc<JobProgress>> {
        let mut current = self.current.lock().unwrap();
        if let Some(running) = current.as_ref() {
            return Err(busy(running.kind));
        }
        let n = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let progress = JobProgress::new(format!("{}-{}", kind_word(kind), n + 1), kind);
        progress.attach(channel);
        *current = Some(progress.clone());
        Ok(progress)
    }

    /// The backup `id` takes the slot; `None` while another job holds it (the backup waits).
    pub fn begin_backup(&self, id: &str) -> Option<Arc<JobProgress>> {
        let mut current = self.current.lock().unwrap();
        match current.as_ref() {
            Some(p) if p.job_id == id => return Some(p.clone()),
            Some(_) => return None,
            None => {}
        }
        let progress = JobProgress::new(id.to_string(), JobKind::Backup);
        for c in self.take_waiting(id) {
            progress.attach(c);
        }
        *current = Some(progress.clone());
        Some(progress)
    }

    /// Follows backup `id`: now if it holds the slot, else once it takes it.
    pub fn follow_backup(&self, id: &str, channel: Channel<JobEvent>) {
        let current = self.current.lock().unwrap();
        match current.as_ref() {
            Some(p) if p.job_id == id => p.attach(channel),
            _ => self.waiting.lock().unwrap().push((id.to_string(), channel)),
        }
    }

    /// Backup `id` is over: its followers hear `event`, and the slot is free.
    pub fn end_backup(&self, id: &str, event: JobEvent) {
        let held = {
            let mut current = self.current.lock().unwrap();
            if current.as_ref().is_some_and(|p| p.job_id == id) {
                current.take()
            } else {
                None
            }
        };
        if let Some(p) = held {
            p.send(event.clone());
        }
        for c in self.take_waiting(id) {
            let _ = c.send(event.clone());
        }
    }

    fn take_waiting(&self, id: &str) -> Vec<Channel<JobEvent>> {
        let mut waiting = self.waiting.lock().unwrap();
        let (mine, rest): (Vec<_>, Vec<_>) = waiting.drain(..).partition(|(i, _)| i == id);
        *waiting = rest;
        mine.into_iter().map(|(_, c)| c).collect()
    }

    /// Ends job `id` (a verify or a restore, whatever its outcome).
    pub fn finish(&self, id: &str) {
        let mut current = self.current.lock().unwrap();
        if current.as_ref().is_some_and(|p| p.job_id == id) {
            *current = None;
        }
    }

    pub fn current(&self) -> Option<JobView> {
        self.current.lock().unwrap().as_ref().map(|p| JobView {
            id: p.job_id.clone(),
            kind: p.kind,
            progress: p.last(),
        })
    }
}

fn kind_word(kind: JobKind) -> &'static str {
    match kind {
        JobKind::Backup => "backup",
        JobKind::Verify => "verify",
        JobKind::Restore => "restore",
    }
}

pub fn busy(kind: JobKind) -> ApiError {
    let what = match kind {
        JobKind::Backup => "a backup",
        JobKind::Verify => "a verification",
        JobKind::Restore => "a restore",
    };
    ApiError::new(
        "busy",
        format!("{what} is running; wait for it to finish and try again"),
    )
}

/// Ends a verify or a restore when dropped, however the code holding it returns.
pub struct JobGuard<'a> {
    pub jobs: &'a Jobs,
    pub id: String,
}

impl Drop for JobGuard<'_> {
    fn drop(&mut self) {
        self.jobs.finish(&self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_job_at_a_time_and_a_waiting_backup_takes_the_slot_after() {
        let jobs = Jobs::default();
        let restore = jobs
            .start(JobKind::Restore, Channel::new(|_| Ok(())))
            .unwrap();
        // A scheduled backup waits while the restore runs; a verify is refused.
        assert!(jobs.begin_backup("20260101T020000-0").is_none());
        let err = jobs
            .start(JobKind::Verify, Channel::new(|_| Ok(())))
            .err()
            .unwrap();
        assert_eq!(err.code, "busy");
        jobs.finish(&restore.job_id);
        let b = jobs.begin_backup("20260101T020000-0").unwrap();
        assert_eq!(jobs.current().unwrap().id, "20260101T020000-0");
        // Taking it again (the same backup) is the same slot.
        assert!(Arc::ptr_eq(
            &b,
            &jobs.begin_backup("20260101T020000-0").unwrap()
        ));
        assert!(jobs.begin_backup("other").is_none());
        jobs.end_backup(
            "20260101T020000-0",
            JobEvent::Cancelled {
                job_id: b.job_id.clone(),
                kind: JobKind::Backup,
            },
        );
        assert!(jobs.current().is_none());
    }

    #[test]
    fn a_follower_that_came_first_hears_the_end() {
        let jobs = Jobs::default();
        let heard = Arc::new(Mutex::new(Vec::<String>::new()));
        let h = heard.clone();
        let channel = Channel::new(move |body| {
            if let tauri::ipc::InvokeResponseBody::Json(j) = body {
                h.lock().unwrap().push(j);
            }
            Ok(())
        });
        jobs.follow_backup("b1", channel);
        // It never took the slot (cancelled while waiting): the follower still hears the end.
        jobs.end_backup(
            "b1",
            JobEvent::Cancelled {
                job_id: "b1".into(),
                kind: JobKind::Backup,
            },
        );
        let heard = heard.lock().unwrap();
        assert_eq!(heard.len(), 1);
        assert!(heard[0].contains("\"cancelled\""), "{heard:?}");
    }
}
