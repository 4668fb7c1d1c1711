//! The background work of the app and of `driveback daemon`, started by one call: the scheduler
//! (a slot missed while nothing ran is caught up shortly after), the health watch (every half
//! hour and after every run: raises the alerts that are new, sends the weekly summary when due),
//! and following the settings file when the other door changes it.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Local;
use tokio::task::JoinHandle;

use super::{lock, Service};
use crate::health::{DestinationProblem, Status};
use crate::jobs::{CancelToken, JobEvent};
use crate::notify::Event;
use crate::scheduler::{self, SchedulerConfig, HEARTBEAT_FILE};
use crate::status::{DestinationSeen, Report};

/// Pure: whether the last backup run found the destination full and there is now room for a
/// backup the size of the last good one (twice it, for margin).
pub(crate) fn room_again(records: &[crate::history::RunRecord], free: Option<u64>) -> bool {
    let last = records
        .iter()
        .rev()
        .find(|r| r.kind == crate::history::RunKind::Backup);
    let full = last.is_some_and(|r| {
        r.error
            .as_ref()
            .is_some_and(|e| e.code == "destination_full")
    });
    let needed = records
        .iter()
        .rev()
        .find_map(|r| r.is_good().then_some(r.bytes)?)
        .unwrap_or(0);
    full && free.is_some_and(|free| free > needed.saturating_mul(2))
}

/// How the background work runs.
#[derive(Clone, Debug)]
pub struct BackgroundOptions {
    /// Run the scheduler (off in tests that start backups themselves).
    pub scheduler: bool,
    /// Start the scheduler only once backups are set up (the app: a new install has no missed
    /// slot to catch up while the user is still choosing a database). The daemon starts set up.
    pub wait_until_set_up: bool,
    pub tick: Duration,
    pub catch_up_delay: chrono::Duration,
    /// How often the health watch looks.
    pub watch_every: Duration,
    /// How often the settings file is read again for changes made by the other door.
    pub reload_every: Duration,
}

impl Default for BackgroundOptions {
    fn default() -> Self {
        BackgroundOptions {
            scheduler: true,
            wait_until_set_up: true,
            tick: SchedulerConfig::default().tick,
            catch_up_delay: SchedulerConfig::default().catch_up_delay,
            watch_every: Duration::from_secs(30 * 60),
            reload_every: Duration::from_secs(30),
        }
    }
}

impl BackgroundOptions {
    /// The defaults, with `DRIVEBACK_SCHEDULER_TICK_MS` and `DRIVEBACK_CATCH_UP_SECS` (the
    /// end-to-end tests shorten them).
    pub fn from_env() -> Self {
        let num = |k: &str| {
            std::env::var(k)
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok())
        };
        let mut o = BackgroundOptions::default();
        if let Some(ms) = num("DRIVEBACK_SCHEDULER_TICK_MS") {
            o.tick = Duration::from_millis(ms.max(10));
        }
        if let Some(s) = num("DRIVEBACK_CATCH_UP_SECS") {
            o.catch_up_delay = chrono::Duration::seconds(s as i64);
        }
        o
    }
}

/// The running background work. [`Background::stop`] ends it (a running job goes on).
pub struct Background {
    stop: CancelToken,
    task: JoinHandle<()>,
}

impl Background {
    pub async fn stop(self) {
        self.stop.cancel();
        let _ = self.task.await;
    }
}

impl Service {
    /// Starts the background work on the current tokio runtime.
    pub fn spawn_background(&self, opts: BackgroundOptions) -> Background {
        *lock(&self.inner.background_options) = Some(opts.clone());
        let stop = CancelToken::new();
        let svc = self.clone();
        let stopping = stop.clone();
        let task = tokio::spawn(async move {
            let mut events = svc.jobs().subscribe();
            let set_up = if opts.wait_until_set_up {
                let s = svc.clone();
                tokio::task::spawn_blocking(move || {
                    // Set up: what to back up, where and the key are chosen (a backup that
                    // then needs the passphrase or a new sign-in still counts: it is due).
                    !s.history().load().unwrap_or_default().is_empty()
                        || match s.plan_backup() {
                            Ok(_) => true,
                            Err(e) => !matches!(
                                e.code,
                                crate::error::ErrorCode::NotConfigured
                                    | crate::error::ErrorCode::NoKey
                            ),
                        }
                })
                .await
                .unwrap_or(false)
            } else {
                true
            };
            if set_up {
                svc.ensure_scheduler();
            }
            let memory = Arc::new(AlertMemory::default());
            let mut watch = tokio::time::interval(opts.watch_every);
            let mut reload = tokio::time::interval(opts.reload_every);
            let mut last_reload_error = String::new();
            loop {
                tokio::select! {
                    _ = stopping.cancelled() => break,
                    event = events.recv() => match event {
                        Ok(JobEvent::Finished { .. }) => {
                            svc.ensure_scheduler();
                            svc.spawn_watch(&memory, true);
                        }
                        Ok(_) => {}
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                        Err(_) => break,
                    },
                    _ = watch.tick() => svc.spawn_watch(&memory, false),
                    _ = reload.tick() => match svc.reload_settings() {
                        Ok(true) => {
                            let s = svc.settings();
                            tracing::info!(
                                "settings changed: {}; {}",
                                crate::schedule::describe(&s.schedule),
                                s.retention.describe()
                            );
                            last_reload_error.clear();
                        }
                        Ok(false) => last_reload_error.clear(),
                        Err(msg) => {
                            if msg != last_reload_error {
                                tracing::warn!("keeping the previous settings: {msg}");
                                last_reload_error = msg;
                            }
                        }
                    },
                }
            }
            let sched = lock(&svc.inner.scheduler).take();
            if let Some(s) = sched {
                s.stop().await;
            }
        });
        Background { stop, task }
    }

    /// Starts the scheduler unless it runs (or the background options say not to). Needs the
    /// async runtime. Called once backups are set up (the passphrase is set).
    pub fn ensure_scheduler(&self) {
        let Some(opts) = lock(&self.inner.background_options)
            .clone()
            .filter(|o| o.scheduler)
        else {
            return;
        };
        let mut slot = lock(&self.inner.scheduler);
        if slot.is_some() {
            return;
        }
        *slot = Some(scheduler::spawn(
            self.jobs().clone(),
            self.settings().schedule,
            self.clock().clone(),
            Local,
            SchedulerConfig {
                tick: opts.tick,
                catch_up_delay: opts.catch_up_delay,
                heartbeat_file: Some(self.data_dir().join(HEARTBEAT_FILE)),
                online: Some(scheduler::OnlineProbe({
                    // Weak: the scheduler lives in the service it asks.
                    let service = Arc::downgrade(&self.inner);
                    Arc::new(move || {
                        service
                            .upgrade()
                            .is_none_or(|inner| Service { inner }.network_ready())
                    })
                })),
                ..SchedulerConfig::default()
            },
        ));
    }

    /// Whether the network a backup needs is there: for Google Drive, whether its API host
    /// accepts a connection (two seconds at most); a folder needs none. Blocking.
    pub fn network_ready(&self) -> bool {
        if !matches!(self.parsed_dest(), Some(crate::store::Dest::Drive(_))) {
            return true;
        }
        let api = crate::auth::GoogleEndpoints::from_env().drive;
        let Ok(url) = url::Url::parse(&api) else {
            return true;
        };
        let (Some(host), Some(port)) = (url.host_str(), url.port_or_known_default()) else {
            return true;
        };
        use std::net::ToSocketAddrs;
        let Ok(addrs) = (host, port).to_socket_addrs() else {
            return false; // the name does not resolve: offline
        };
        addrs.take(2).any(|a| {
            std::net::TcpStream::connect_timeout(&a, std::time::Duration::from_secs(2)).is_ok()
        })
    }

    /// Looks at the health in the background: raises the alerts that are new, and sends the
    /// weekly summary when it is due.
    fn spawn_watch(&self, memory: &Arc<AlertMemory>, after_run: bool) {
        let (svc, memory) = (self.clone(), memory.clone());
        tokio::task::spawn_blocking(move || {
            let report = svc
                .load_history()
                .and_then(|records| svc.health_report_with(&records, None, None, after_run));
            let (seen, report) = match report {
                Ok(r) => r,
                Err(e) => {
                    tracing::warn!(error = %e, "the health watch could not look");
                    return;
                }
            };
            for event in memory.fresh(alerts(&seen, &report)) {
                svc.tell(&event);
            }
            if let Ok(records) = svc.load_history() {
                // A backup that found the destination full runs again once there is room for it.
                if room_again(&records, seen.quota.as_ref().and_then(|q| q.free())) {
                    tracing::info!("the destination has room again: backing up");
                    svc.retry_after_fix();
                }
                svc.start_due_audit(&records);
            }
            let health = report.health.clone();
            if let Some(r) = svc
                .email()
                .weekly_summary_if_due(move |_| Some(health), svc.now())
            {
                tracing::info!(outcome = r.outcome.label(), "weekly summary");
            }
        });
    }
}

/// The alerts the health watch raises from what it saw: Google Drive needs reconnecting, the
/// destination is almost full, no good backup for longer than the threshold.
pub fn alerts(seen: &DestinationSeen, report: &Report) -> Vec<Event> {
    let mut out = Vec::new();
    if let Some(Err(DestinationProblem::ReconnectNeeded(why))) = &seen.listed {
        out.push(Event::ReconnectNeeded {
            message: why.clone(),
        });
    }
    let check = |name: &str| report.health.checks.iter().find(|c| c.name == name);
    if let (Some(c), Some(q)) = (check("free_space"), &seen.quota) {
        if c.status != Status::Healthy {
            if let (Some(free), Some(total)) = (q.free(), q.limit) {
                out.push(Event::DestinationAlmostFull {
                    free_bytes: free,
                    total_bytes: total,
                });
            }
        }
    }
    if check("last_backup").is_some_and(|c| c.status == Status::Critical) {
        out.push(Event::NoRecentBackup {
            last_good: report.health.metrics.last_good_backup,
        });
    }
    out
}

/// Which alerts were shown, so that each is shown once while its cause lasts (and again if it
/// comes back after it cleared).
#[derive(Default)]
pub struct AlertMemory(Mutex<BTreeSet<&'static str>>);

impl AlertMemory {
    /// The alerts of `now_raised` that were not raised last time.
    pub fn fresh(&self, now_raised: Vec<Event>) -> Vec<Event> {
        let mut shown = lock(&self.0);
        let names: BTreeSet<&'static str> = now_raised.iter().map(Event::name).collect();
        let fresh = now_raised
            .into_iter()
            .filter(|e| !shown.contains(e.name()))
            .collect();
        *shown = names;
        fresh
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_alert_is_shown_once_while_it_lasts() {
        let m = AlertMemory::default();
        let reconnect = || Event::ReconnectNeeded {
            message: "revoked".into(),
        };
        let stale = || Event::NoRecentBackup { last_good: None };
        assert_eq!(m.fresh(vec![reconnect()]).len(), 1);
        assert_eq!(m.fresh(vec![reconnect()]).len(), 0);
        assert_eq!(m.fresh(vec![reconnect(), stale()]), vec![stale()]);
        assert_eq!(m.fresh(vec![]).len(), 0);
        assert_eq!(m.fresh(vec![reconnect()]).len(), 1, "it came back");
    }
}

#[cfg(test)]
mod room_tests {
    use super::*;
    use crate::history::{Outcome, RunError};

    #[test]
    fn a_full_destination_is_tried_again_once_there_is_room() {
        let good = |bytes| {
            let mut r = crate::history::tests::record(0, Outcome::Success);
            r.bytes = Some(bytes);
            r
        };
        let failed = |code: &str| {
            let mut r = crate::history::tests::record(1, Outcome::Failed);
            r.error = Some(RunError {
                code: code.into(),
                message: String::new(),
            });
            r
        };
        // (case, history, free bytes, run again)
        let rows = [
            (
                "full, and room for two backups",
                vec![good(1000), failed("destination_full")],
                Some(2001),
                true,
            ),
            (
                "full, room for one only",
                vec![good(1000), failed("destination_full")],
                Some(1500),
                false,
            ),
            (
                "full, free space unknown",
                vec![good(1000), failed("destination_full")],
                None,
                false,
            ),
            (
                "another failure",
                vec![good(1000), failed("database_unreachable")],
                Some(1 << 30),
                false,
            ),
            (
                "the last run was good",
                vec![failed("destination_full"), good(1000)],
                Some(1 << 30),
                false,
            ),
        ];
        for (case, records, free, want) in rows {
            assert_eq!(room_again(&records, free), want, "{case}");
        }
    }
}
