//! One job at a time: a backup, a verify or a restore. Pressing Backup Now while a backup runs
//! attaches to it; anything else while a job runs is refused with `busy`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde::Serialize;
use tauri::async_runtime::JoinHandle;
use tauri::ipc::Channel;

use crate::bridge::{JobEvent, JobKind, JobProgress, ProgressView};
use crate::error::ApiError;

#[derive(Default)]
pub struct Jobs {
    next: AtomicU64,
    current: Mutex<Option<Running>>,
}

struct Running {
    progress: Arc<JobProgress>,
    task: Option<JoinHandle<()>>,
    cancel_requested: bool,
}

/// A running job, as the UI sees it in the app state.
#[derive(Clone, Debug, Serialize)]
pub struct JobView {
    pub id: String,
    pub kind: JobKind,
    pub progress: Option<ProgressView>,
}

/// Whether a call started a job or joined the one running.
pub enum Started {
    New(Arc<JobProgress>),
    Attached(String),
}

impl Jobs {
    /// Starts a job of `kind` unless one is running. With `attach_same_kind`, a running job of
    /// the same kind gets `channel` and its id is returned instead.
    pub fn start(
        &self,
        kind: JobKind,
        channel: Option<Channel<JobEvent>>,
        attach_same_kind: bool,
    ) -> Result<Started, ApiError> {
        let mut current = self.current.lock().unwrap();
        if let Some(running) = current.as_ref() {
            if attach_same_kind && running.progress.kind == kind {
                if let Some(c) = channel {
                    running.progress.attach(c);
                }
                return Ok(Started::Attached(running.progress.job_id.clone()));
            }
            return Err(busy(running.progress.kind));
        }
        let id = format!("job-{}", self.next.fetch_add(1, Ordering::Relaxed) + 1);
        let progress = JobProgress::new(id, kind);
        if let Some(c) = channel {
            progress.attach(c);
        }
        *current = Some(Running {
            progress: progress.clone(),
            task: None,
            cancel_requested: false,
        });
        Ok(Started::New(progress))
    }

    /// Records the task running job `id`, so that it can be cancelled.
    pub fn set_task(&self, id: &str, task: JoinHandle<()>) {
        let mut current = self.current.lock().unwrap();
        match current.as_mut() {
            Some(r) if r.progress.job_id == id => {
                if r.cancel_requested {
                    task.abort();
                }
                r.task = Some(task);
            }
            _ => {}
        }
    }

    /// Ends job `id` (whatever its outcome).
    pub fn finish(&self, id: &str) {
        let mut current = self.current.lock().unwrap();
        if current.as_ref().is_some_and(|r| r.progress.job_id == id) {
            *current = None;
        }
    }

    /// Stops job `id` if it can be stopped. Only backups can: a restore is never interrupted
    /// half way (its last step swaps the data in), and a verify is a read that ends by itself.
    pub fn cancel(&self, id: &str) -> Result<bool, ApiError> {
        let mut current = self.current.lock().unwrap();
        let Some(r) = current.as_mut().filter(|r| r.progress.job_id == id) else {
            return Ok(false);
        };
        if r.progress.kind != JobKind::Backup {
            return Err(ApiError::new(
                "not_cancellable",
                "a restore or a verification cannot be stopped half way; wait for it to finish",
            ));
        }
        r.cancel_requested = true;
        if let Some(task) = r.task.take() {
            task.abort();
        }
        let progress = r.progress.clone();
        *current = None;
        drop(current);
        progress.cancelled();
        Ok(true)
    }

    pub fn current(&self) -> Option<JobView> {
        self.current.lock().unwrap().as_ref().map(|r| JobView {
            id: r.progress.job_id.clone(),
            kind: r.progress.kind,
            progress: r.progress.last(),
        })
    }

    pub fn is_running(&self, id: &str) -> bool {
        self.current
            .lock()
            .unwrap()
            .as_ref()
            .is_some_and(|r| r.progress.job_id == id)
    }
}

fn busy(kind: JobKind) -> ApiError {
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

/// Ends a job when dropped, however the code holding it returns.
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
    fn one_job_at_a_time() {
        let jobs = Jobs::default();
        let Started::New(p) = jobs.start(JobKind::Backup, None, true).unwrap() else {
            panic!("expected a new job")
        };
        match jobs.start(JobKind::Backup, None, true).unwrap() {
            Started::Attached(id) => assert_eq!(id, p.job_id),
            Started::New(_) => panic!("a second backup started"),
        }
        let err = jobs.start(JobKind::Restore, None, false).err().unwrap();
        assert_eq!(err.code, "busy");
        assert!(jobs.is_running(&p.job_id));
        assert!(jobs.cancel(&p.job_id).unwrap());
        assert!(jobs.current().is_none());
        assert!(!jobs.cancel(&p.job_id).unwrap());
        assert!(matches!(
            jobs.start(JobKind::Verify, None, false).unwrap(),
            Started::New(_)
        ));
    }

    #[test]
    fn restores_cannot_be_cancelled() {
        let jobs = Jobs::default();
        let Started::New(p) = jobs.start(JobKind::Restore, None, false).unwrap() else {
            panic!()
        };
        assert_eq!(jobs.cancel(&p.job_id).unwrap_err().code, "not_cancellable");
        jobs.finish(&p.job_id);
        assert!(jobs.current().is_none());
    }
}
