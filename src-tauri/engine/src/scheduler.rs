//! The background task that starts automatic backups when a slot is due.
//!
//! It wakes every `tick` (30 s), and when a backup ends, and reads the wall clock rather than
//! sleeping until the next slot:
//! a computer that slept (or a clock that was changed) is noticed at the next tick, as a gap
//! between ticks longer than `wake_gap`. Slots missed meanwhile give one catch-up run, a short
//! delay after the wake (see `schedule`). The backup runs through [`Jobs`], so a scheduled run and
//! Backup Now never run side by side; a failed run is retried within the period (see `schedule`).

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::history::Trigger;
use crate::jobs::{CancelToken, Clock, JobEvent, Jobs};
use crate::schedule::{self, ScheduleState};
use crate::settings::ScheduleSettings;

/// File (in the data folder) where a running scheduler leaves its heartbeat, for
/// `driveback status` and the app's health.
pub const HEARTBEAT_FILE: &str = "scheduler.json";

#[derive(Clone, Debug)]
pub struct SchedulerConfig {
    /// How often the clock is looked at.
    pub tick: std::time::Duration,
    /// A gap between ticks longer than this means the computer slept (or the clock jumped).
    pub wake_gap: chrono::Duration,
    /// How long after a launch or wake a missed slot is caught up.
    pub catch_up_delay: chrono::Duration,
    /// Where to write the heartbeat (best effort), if anywhere.
    pub heartbeat_file: Option<PathBuf>,
    /// Whether what a backup needs over the network can be reached; while it says no, a due
    /// backup waits (no try is spent, none is recorded). `None`: always.
    pub online: Option<OnlineProbe>,
}

/// Asks whether the network a backup needs is there (blocking, a second or two at most).
#[derive(Clone)]
pub struct OnlineProbe(pub Arc<dyn Fn() -> bool + Send + Sync>);

impl std::fmt::Debug for OnlineProbe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OnlineProbe")
    }
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        SchedulerConfig {
            tick: std::time::Duration::from_secs(30),
            wake_gap: chrono::Duration::minutes(2),
            catch_up_delay: schedule::CATCH_UP_DELAY,
            heartbeat_file: None,
            online: None,
        }
    }
}

/// What the scheduler last saw; also what its heartbeat file holds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SchedulerStatus {
    /// The last tick.
    pub alive_at: DateTime<Utc>,
    /// When it started or last noticed a wake.
    pub awake_since: DateTime<Utc>,
    /// When the next automatic backup starts (in the past while one is due or running);
    /// `None` when backups are only manual.
    pub next_due: Option<DateTime<Utc>>,
    pub pid: u32,
}

impl SchedulerStatus {
    /// Reads a heartbeat file; `None` if there is none or it is unreadable.
    pub fn read(path: &std::path::Path) -> Option<Self> {
        serde_json::from_slice(&std::fs::read(path).ok()?).ok()
    }
}

/// Works out the next slot of a schedule at `now`, for a scheduler awake since the first time.
type NextDue =
    dyn Fn(&ScheduleSettings, DateTime<Utc>, DateTime<Utc>) -> Option<DateTime<Utc>> + Send + Sync;

/// The running scheduler. Dropping the handle stops it too.
pub struct SchedulerHandle {
    schedule: watch::Sender<ScheduleSettings>,
    status: Arc<Mutex<SchedulerStatus>>,
    next_due: Arc<NextDue>,
    clock: Arc<dyn Clock>,
    stop: CancelToken,
    task: JoinHandle<()>,
}

impl SchedulerHandle {
    /// Uses new settings from the next tick on (right away, in fact: the change wakes it).
    pub fn set_schedule(&self, s: ScheduleSettings) {
        self.schedule.send_if_modified(|cur| {
            let changed = *cur != s;
            *cur = s;
            changed
        });
    }

    pub fn status(&self) -> SchedulerStatus {
        self.status
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// When the next automatic backup starts, worked out now the way the scheduler does, from
    /// the runs the job manager knows: a backup that just ended counts at once, even before the
    /// scheduler's own next look (which [`SchedulerHandle::status`] reports).
    pub fn next_due_now(&self) -> Option<DateTime<Utc>> {
        let awake_since = self.status().awake_since;
        let schedule = self.schedule.borrow().clone();
        (self.next_due)(&schedule, awake_since, self.clock.now())
    }

    /// Stops the scheduler (a running job goes on; cancel it through [`Jobs`] if needed).
    pub async fn stop(self) {
        self.stop.cancel();
        let _ = self.task.await;
    }
}

/// Starts the scheduler on the current tokio runtime. `tz` is the local time zone of the
/// schedule (`chrono::Local` in the product).
pub fn spawn<Tz>(
    jobs: Jobs,
    schedule: ScheduleSettings,
    clock: Arc<dyn Clock>,
    tz: Tz,
    config: SchedulerConfig,
) -> SchedulerHandle
where
    Tz: TimeZone + Send + Sync + 'static,
    Tz::Offset: Send + Sync,
{
    let now = clock.now();
    let (schedule_tx, mut schedule_rx) = watch::channel(schedule);
    let state_at = {
        let jobs = jobs.clone();
        let catch_up_delay = config.catch_up_delay;
        move |awake_since: DateTime<Utc>| {
            ScheduleState {
                catch_up_delay,
                ..ScheduleState::new(None, awake_since)
            }
            .with_recent(crate::history::attempts(&jobs.recent_runs()))
        }
    };
    let next_due: Arc<NextDue> = {
        let state_at = state_at.clone();
        let tz = tz.clone();
        Arc::new(move |sched, awake_since, now| {
            schedule::next_due(sched, &state_at(awake_since), now, &tz)
        })
    };
    let status = Arc::new(Mutex::new(SchedulerStatus {
        alive_at: now,
        awake_since: now,
        next_due: None,
        pid: std::process::id(),
    }));
    let stop = CancelToken::new();
    let task = {
        let status = status.clone();
        let stop = stop.clone();
        let clock = clock.clone();
        tokio::spawn(async move {
            let mut awake_since = now;
            let mut last_tick = now;
            let mut waiting_for_network = false;
            let mut events = jobs.subscribe();
            // A normal tick is never mistaken for a wake.
            let wake_gap = config
                .wake_gap
                .max(chrono::Duration::from_std(config.tick * 2).unwrap_or(config.wake_gap));
            loop {
                let now = clock.now();
                if now - last_tick > wake_gap || now < last_tick - wake_gap {
                    tracing::info!(
                        gap_seconds = (now - last_tick).num_seconds(),
                        "the computer woke up or the clock changed"
                    );
                    awake_since = now;
                }
                last_tick = now;
                let sched = schedule_rx.borrow_and_update().clone();
                let state = state_at(awake_since);
                let next_due = schedule::next_due(&sched, &state, now, &tz);
                let snapshot = SchedulerStatus {
                    alive_at: now,
                    awake_since,
                    next_due,
                    pid: std::process::id(),
                };
                *status.lock().unwrap_or_else(|p| p.into_inner()) = snapshot.clone();
                if let Some(path) = &config.heartbeat_file {
                    write_heartbeat(path, &snapshot);
                }
                let online = match (&config.online, next_due.is_some_and(|t| t <= now)) {
                    (Some(probe), true) if jobs.current().is_none() => {
                        let probe = probe.0.clone();
                        tokio::task::spawn_blocking(move || probe())
                            .await
                            .unwrap_or(true)
                    }
                    _ => true,
                };
                if !online && !waiting_for_network {
                    tracing::info!("a backup is due: waiting for the network");
                }
                waiting_for_network = !online;
                if online && next_due.is_some_and(|t| t <= now) {
                    // Judged again against the last run as the job manager sees it right now.
                    let started = jobs.start_if(Trigger::Scheduled, |recent| {
                        let state = state.with_recent(crate::history::attempts(recent));
                        schedule::is_due(&sched, &state, now, &tz)
                    });
                    if let Some(handle) = started {
                        tracing::info!(job = %handle.id, "starting a scheduled backup");
                    }
                }
                // Wait for the next tick, a new schedule, or the end of a backup: a backup that
                // just ended (Backup Now, a retry) moves the next slot, and the status says so
                // at once rather than up to a tick later.
                let sleep = tokio::time::sleep(config.tick);
                tokio::pin!(sleep);
                let go_on = loop {
                    tokio::select! {
                        _ = &mut sleep => break true,
                        _ = stop.cancelled() => break false,
                        changed = schedule_rx.changed() => break changed.is_ok(),
                        event = events.recv() => match event {
                            Ok(JobEvent::Finished { .. }) | Err(RecvError::Lagged(_)) => break true,
                            Ok(_) => {}
                            // Not while this task holds `jobs`; wait for the tick all the same.
                            Err(RecvError::Closed) => {
                                (&mut sleep).await;
                                break true;
                            }
                        },
                    }
                };
                if !go_on {
                    break;
                }
            }
        })
    };
    SchedulerHandle {
        schedule: schedule_tx,
        status,
        next_due,
        clock,
        stop,
        task,
    }
}

fn write_heartbeat(path: &std::path::Path, status: &SchedulerStatus) {
    let json = serde_json::to_vec(status).expect("status serialises");
    // Not fsynced: it is rewritten every tick and only informs `status`.
    let tmp = path.with_extension("json.tmp");
    let written = std::fs::write(&tmp, json).and_then(|_| std::fs::rename(&tmp, path));
    if let Err(e) = written {
        tracing::debug!(file = %path.display(), error = %e, "could not write the scheduler heartbeat");
    }
}
