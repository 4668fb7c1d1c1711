//! The scheduler with an injected clock and a fake backup job: due slots run once, Backup Now
//! during a run attaches to it, cancelled and failed runs are recorded and retried at the next
//! slot, and slots missed while the computer slept give one run after the wake.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration as StdDuration;

use chrono::{DateTime, Datelike, Duration, FixedOffset, NaiveDateTime, TimeZone, Utc};
use driveback_engine::health::{self, Observations, Status};
use driveback_engine::history::{History, Outcome, RunKind, RunRecord, Trigger};
use driveback_engine::jobs::{Clock, JobContext, JobOutcome, Jobs};
use driveback_engine::manifest::{self, BackupStatus};
use driveback_engine::scheduler::{self, SchedulerConfig, SchedulerHandle, SchedulerStatus};
use driveback_engine::settings::{Frequency, ScheduleSettings, Settings, TimeOfDay};
use driveback_engine::store::StoredBackup;
use tokio::sync::Notify;

/// The test's time zone: +02:00.
fn tz() -> FixedOffset {
    FixedOffset::east_opt(2 * 3600).unwrap()
}

/// A local time of the test's zone.
fn at(s: &str) -> DateTime<Utc> {
    let naive = NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S")
        .or_else(|_| NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M"))
        .unwrap();
    tz().from_local_datetime(&naive)
        .single()
        .unwrap()
        .with_timezone(&Utc)
}

struct FakeClock(Mutex<DateTime<Utc>>);

impl Clock for FakeClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap()
    }
}

impl FakeClock {
    fn set(&self, t: DateTime<Utc>) {
        *self.0.lock().unwrap() = t;
    }

    fn advance(&self, d: Duration) {
        *self.0.lock().unwrap() += d;
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Mode {
    Succeed,
    Fail,
    /// Runs until released or cancelled.
    Block,
}

/// A backup job that makes no backup.
struct FakeJob {
    runs: AtomicUsize,
    mode: Mutex<Mode>,
    release: Notify,
    triggers: Mutex<Vec<Trigger>>,
}

impl FakeJob {
    fn runs(&self) -> usize {
        self.runs.load(Ordering::SeqCst)
    }

    fn set_mode(&self, m: Mode) {
        *self.mode.lock().unwrap() = m;
    }
}

fn fake_backup(now: DateTime<Utc>, n: usize) -> StoredBackup {
    let id = format!("{n:08x}");
    StoredBackup {
        file: manifest::backup_file_name("shop", now, &id),
        id,
        bytes: 1000,
        created: now,
        database: "shop".into(),
        documents: 10,
        status: BackupStatus::Complete,
        sha256: String::new(),
        signature: None,
        link: None,
    }
}

struct World {
    clock: Arc<FakeClock>,
    job: Arc<FakeJob>,
    jobs: Jobs,
    history: Arc<History>,
    scheduler: Option<SchedulerHandle>,
    dir: tempfile::TempDir,
    settings: Settings,
    /// What the scheduler's network probe answers.
    online: Arc<std::sync::atomic::AtomicBool>,
}

impl World {
    /// A world at `now` whose history holds `previous` runs.
    fn new(now: &str, previous: &[RunRecord]) -> World {
        let dir = tempfile::tempdir().unwrap();
        let history = Arc::new(History::new(dir.path().join("history.jsonl")));
        for r in previous {
            history.append(r).unwrap();
        }
        let clock = Arc::new(FakeClock(Mutex::new(at(now))));
        let job = Arc::new(FakeJob {
            runs: AtomicUsize::new(0),
            mode: Mutex::new(Mode::Succeed),
            release: Notify::new(),
            triggers: Mutex::new(Vec::new()),
        });
        let runner = {
            let job = job.clone();
            move |ctx: JobContext| {
                let job = job.clone();
                async move {
                    let n = job.runs.fetch_add(1, Ordering::SeqCst) + 1;
                    job.triggers.lock().unwrap().push(ctx.trigger);
                    let mode = *job.mode.lock().unwrap();
                    match mode {
                        Mode::Succeed => JobOutcome::success(fake_backup(ctx.clock.now(), n)),
                        Mode::Fail => JobOutcome::failed(
                            "database_unreachable",
                            "could not connect to the database at db:27017",
                        ),
                        Mode::Block => tokio::select! {
                            _ = job.release.notified() => JobOutcome::success(fake_backup(ctx.clock.now(), n)),
                            _ = ctx.cancel.cancelled() => JobOutcome::cancelled(),
                        },
                    }
                }
            }
        };
        let jobs = Jobs::new(runner, clock.clone(), Some(history.clone()));
        World {
            clock,
            job,
            jobs,
            history,
            scheduler: None,
            dir,
            settings: Settings::default(),
            online: Arc::new(std::sync::atomic::AtomicBool::new(true)),
        }
    }

    fn heartbeat_path(&self) -> std::path::PathBuf {
        self.dir.path().join(scheduler::HEARTBEAT_FILE)
    }

    fn start(&mut self, schedule: ScheduleSettings) {
        self.start_ticking(schedule, StdDuration::from_millis(5));
    }

    fn start_ticking(&mut self, schedule: ScheduleSettings, tick: StdDuration) {
        self.settings.schedule = schedule.clone();
        self.scheduler = Some(scheduler::spawn(
            self.jobs.clone(),
            schedule,
            self.clock.clone(),
            tz(),
            SchedulerConfig {
                tick,
                wake_gap: Duration::minutes(1),
                catch_up_delay: Duration::minutes(2),
                heartbeat_file: Some(self.heartbeat_path()),
                online: Some(scheduler::OnlineProbe({
                    let online = self.online.clone();
                    Arc::new(move || online.load(Ordering::SeqCst))
                })),
            },
        ));
    }

    fn status(&self) -> SchedulerStatus {
        self.scheduler.as_ref().unwrap().status()
    }

    fn health(&self) -> health::Health {
        health::health(
            &self.history.load().unwrap(),
            &self.settings,
            &Observations {
                scheduler_heartbeat: Some(self.status().alive_at),
                ..Default::default()
            },
            self.clock.now(),
            &tz(),
        )
    }

    /// Waits (a little) for the scheduler to see the clock as it is now.
    async fn tick(&self) {
        let now = self.clock.now();
        eventually("the scheduler ticks", || self.status().alive_at == now).await;
        // A few more ticks, so that anything it would start has started.
        tokio::time::sleep(StdDuration::from_millis(50)).await;
    }

    /// Moves the clock from `from` to `to` in steps of `step`, letting the scheduler see each.
    async fn walk(&self, from: &str, to: &str, step: Duration) {
        let (mut t, to) = (at(from), at(to));
        while t < to {
            t = (t + step).min(to);
            self.clock.set(t);
            self.tick().await;
        }
    }

    async fn idle(&self) {
        eventually("the job ends", || self.jobs.current().is_none()).await;
    }

    async fn stop(mut self) {
        if let Some(s) = self.scheduler.take() {
            s.stop().await;
        }
    }
}

async fn eventually(what: &str, cond: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + StdDuration::from_secs(10);
    while !cond() {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(StdDuration::from_millis(2)).await;
    }
}

fn daily() -> ScheduleSettings {
    ScheduleSettings {
        frequency: Frequency::Daily,
        time: TimeOfDay::new(2, 0).unwrap(),
        ..ScheduleSettings::default()
    }
}

fn past_run(start: &str, outcome: Outcome) -> RunRecord {
    RunRecord {
        warnings: Vec::new(),
        job_id: "earlier".into(),
        kind: RunKind::Backup,
        trigger: Trigger::Scheduled,
        started: at(start),
        ended: at(start) + Duration::minutes(3),
        outcome,
        database: Some("shop".into()),
        dest: None,
        backup_id: Some("0000beef".into()),
        bytes: Some(1000),
        documents: Some(10),
        verified: None,
        pruned: None,
        error: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_due_slot_runs_once() {
    let mut w = World::new(
        "2024-05-10 01:59:50",
        &[past_run("2024-05-09 02:00", Outcome::Success)],
    );
    w.start(daily());
    w.tick().await;
    assert_eq!(w.job.runs(), 0);
    assert_eq!(w.status().next_due, Some(at("2024-05-10 02:00")));

    w.clock.set(at("2024-05-10 02:00:05"));
    eventually("the scheduled run starts", || w.job.runs() == 1).await;
    w.idle().await;
    w.tick().await;
    w.clock.advance(Duration::seconds(40));
    w.tick().await;
    w.clock.advance(Duration::minutes(30));
    w.tick().await;
    assert_eq!(w.job.runs(), 1, "one run per slot");
    assert_eq!(w.status().next_due, Some(at("2024-05-11 02:00")));
    let records = w.history.load().unwrap();
    assert_eq!(records.len(), 2);
    let r = records.last().unwrap();
    assert_eq!(
        (r.trigger, r.outcome),
        (Trigger::Scheduled, Outcome::Success)
    );
    assert_eq!(r.started, at("2024-05-10 02:00:05"));
    // The heartbeat tells `driveback status` the scheduler is alive.
    let beat = SchedulerStatus::read(&w.heartbeat_path()).unwrap();
    assert_eq!(beat.alive_at, w.clock.now());
    assert_eq!(beat.next_due, Some(at("2024-05-11 02:00")));
    assert_eq!(w.health().status, Status::Healthy);

    // The next day's slot runs again. (The clock moves in steps shorter than the wake gap, as
    // it does for a computer that stays awake; one long jump would look like a wake.)
    w.clock.set(at("2024-05-11 01:59:30"));
    w.tick().await;
    w.clock.set(at("2024-05-11 02:00:01"));
    eventually("the next day's run", || w.job.runs() == 2).await;
    w.idle().await;
    w.tick().await;
    assert_eq!(w.job.runs(), 2);
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_due_slot_waits_while_paused_and_runs_once_after() {
    let mut w = World::new(
        "2024-05-10 01:59:50",
        &[past_run("2024-05-09 02:00", Outcome::Success)],
    );
    // Paused in the evening before, until 09:00 (as "until tomorrow" sets it).
    let paused = ScheduleSettings {
        paused_until: Some(at("2024-05-10 09:00")),
        ..daily()
    };
    w.start(paused.clone());
    w.tick().await;
    assert_eq!(w.status().next_due, Some(at("2024-05-10 09:00")));

    // The 02:00 slot comes and goes: nothing starts, all night.
    for t in [
        "2024-05-10 02:00:05",
        "2024-05-10 02:00:40",
        "2024-05-10 02:01:10",
    ] {
        w.clock.set(at(t));
        w.tick().await;
    }
    // Then in half-hour steps (each looks like a wake: a catch-up would be due after it).
    w.walk(
        "2024-05-10 02:01:10",
        "2024-05-10 08:30",
        Duration::minutes(30),
    )
    .await;
    assert_eq!(w.job.runs(), 0, "nothing starts during the pause");
    assert_eq!(w.status().next_due, Some(at("2024-05-10 09:00")));
    // Backup Now still works while paused.
    let manual = w.jobs.start(Trigger::Manual);
    assert!(!manual.attached);
    manual.wait().await;
    w.idle().await;
    assert_eq!(*w.job.triggers.lock().unwrap(), [Trigger::Manual]);

    // The manual run served today's slot: at 09:00 nothing more is due, the next slot is
    // tomorrow's.
    w.clock.set(at("2024-05-10 09:00:10"));
    w.tick().await;
    assert_eq!(w.job.runs(), 1);
    assert_eq!(w.status().next_due, Some(at("2024-05-11 02:00")));

    // Paused again over the next night: at its end the missed slot runs once.
    w.scheduler
        .as_ref()
        .unwrap()
        .set_schedule(ScheduleSettings {
            paused_until: Some(at("2024-05-11 09:00")),
            ..daily()
        });
    w.walk(
        "2024-05-10 09:00:10",
        "2024-05-11 08:55",
        Duration::minutes(30),
    )
    .await;
    // The last minutes awake (steps shorter than the wake gap).
    w.walk(
        "2024-05-11 08:55",
        "2024-05-11 08:59:50",
        Duration::seconds(50),
    )
    .await;
    assert_eq!(w.job.runs(), 1, "the 02:00 slot waits for the pause");
    w.clock.set(at("2024-05-11 09:00:05"));
    eventually("the missed slot runs when the pause ends", || {
        w.job.runs() == 2
    })
    .await;
    w.idle().await;
    w.clock.advance(Duration::seconds(40));
    w.tick().await;
    w.clock.advance(Duration::seconds(40));
    w.tick().await;
    assert_eq!(w.job.runs(), 2, "once");
    assert_eq!(
        *w.job.triggers.lock().unwrap(),
        [Trigger::Manual, Trigger::Scheduled]
    );
    assert_eq!(w.status().next_due, Some(at("2024-05-12 02:00")));
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_now_during_a_scheduled_run_attaches_to_it() {
    let mut w = World::new(
        "2024-05-10 01:59:59",
        &[past_run("2024-05-09 02:00", Outcome::Success)],
    );
    w.job.set_mode(Mode::Block);
    w.start(daily());
    w.tick().await;
    w.clock.set(at("2024-05-10 02:00:00"));
    eventually("the scheduled run starts", || w.job.runs() == 1).await;
    let running = w.jobs.current().unwrap();
    assert_eq!(running.trigger, Trigger::Scheduled);

    // The user taps Back up now.
    let now = w.jobs.start(Trigger::Manual);
    assert!(now.attached);
    assert_eq!(now.id, running.id);
    w.tick().await;
    assert_eq!(w.job.runs(), 1);

    w.clock.advance(Duration::minutes(4));
    w.job.release.notify_one();
    let record = now.wait().await;
    assert_eq!(record.job_id, running.id);
    assert_eq!(record.outcome, Outcome::Success);
    assert_eq!(record.trigger, Trigger::Scheduled);
    w.idle().await;
    w.tick().await;
    assert_eq!(w.job.runs(), 1, "one job, not two");
    assert_eq!(*w.job.triggers.lock().unwrap(), [Trigger::Scheduled]);
    assert_eq!(w.history.load().unwrap().len(), 2);

    // And the other way round: a scheduled slot while Backup Now runs does not start a second job.
    w.clock.set(at("2024-05-11 01:59:00"));
    w.tick().await;
    let manual = w.jobs.start(Trigger::Manual);
    assert!(!manual.attached);
    eventually("the manual run starts", || w.job.runs() == 2).await;
    w.clock.set(at("2024-05-11 02:00:30"));
    w.tick().await;
    assert_eq!(w.job.runs(), 2);
    w.clock.set(at("2024-05-11 02:05:00"));
    w.job.release.notify_one();
    assert_eq!(manual.wait().await.trigger, Trigger::Manual);
    w.idle().await;
    w.tick().await;
    // The manual run that ended after 02:00 covers the slot.
    assert_eq!(w.job.runs(), 2);
    assert_eq!(w.status().next_due, Some(at("2024-05-12 02:00")));
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_run_is_recorded_and_retried_at_the_next_slot() {
    let mut w = World::new(
        "2024-05-10 01:59:59",
        &[past_run("2024-05-09 02:00", Outcome::Success)],
    );
    w.job.set_mode(Mode::Block);
    w.start(daily());
    w.tick().await;
    w.clock.set(at("2024-05-10 02:00:00"));
    eventually("the scheduled run starts", || w.job.runs() == 1).await;
    let handle = w.jobs.attach().unwrap();
    w.clock.advance(Duration::minutes(1));
    assert!(w.jobs.cancel(Some(&handle.id)));
    assert!(w.jobs.current().unwrap().cancelling);
    let record = handle.wait().await;
    assert_eq!(record.outcome, Outcome::Cancelled);
    assert_eq!(record.error.as_ref().unwrap().code, "cancelled");
    assert_eq!(w.history.load().unwrap().last(), Some(&record));

    // Not retried right away (nor an hour later): at the next slot.
    w.idle().await;
    w.tick().await;
    w.clock.advance(Duration::hours(1));
    w.tick().await;
    assert_eq!(w.job.runs(), 1);
    assert_eq!(w.status().next_due, Some(at("2024-05-11 02:00")));
    let h = w.health();
    assert_eq!(h.status, Status::Warning);
    assert!(h
        .checks
        .iter()
        .any(|c| c.name == "last_run" && c.message.contains("cancelled")));

    w.job.set_mode(Mode::Succeed);
    w.clock.set(at("2024-05-11 01:59:30"));
    w.tick().await;
    w.clock.set(at("2024-05-11 02:00:00"));
    eventually("the retry at the next slot", || w.job.runs() == 2).await;
    w.idle().await;
    assert_eq!(
        w.history.load().unwrap().last().unwrap().outcome,
        Outcome::Success
    );
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_run_shows_in_health_and_is_retried_within_the_day() {
    let mut w = World::new(
        "2024-05-10 01:59:59",
        &[past_run("2024-05-09 02:00", Outcome::Success)],
    );
    w.job.set_mode(Mode::Fail);
    w.start(daily());
    w.tick().await;
    w.clock.set(at("2024-05-10 02:00:00"));
    eventually("the scheduled run", || w.job.runs() == 1).await;
    w.idle().await;
    w.tick().await;
    // Retried 5 minutes later, then 15 (the clock moves a minute at a time, as for a computer
    // that stays awake).
    assert_eq!(w.status().next_due, Some(at("2024-05-10 02:05")));
    let h = w.health();
    assert_eq!(h.status, Status::Warning);
    let last_run = h.checks.iter().find(|c| c.name == "last_run").unwrap();
    assert_eq!(
        last_run.message,
        "The last backup failed: could not connect to the database at db:27017"
    );
    for _ in 0..5 {
        w.clock.advance(Duration::minutes(1));
        w.tick().await;
    }
    eventually("the first retry", || w.job.runs() == 2).await;
    w.idle().await;
    w.tick().await;
    assert_eq!(w.status().next_due, Some(at("2024-05-10 02:20")));
    w.job.set_mode(Mode::Succeed);
    for _ in 0..15 {
        w.clock.advance(Duration::minutes(1));
        w.tick().await;
    }
    eventually("the second retry", || w.job.runs() == 3).await;
    w.idle().await;
    w.tick().await;
    assert_eq!(w.health().status, Status::Healthy);
    // Served: the next run is tomorrow's.
    assert_eq!(w.status().next_due, Some(at("2024-05-11 02:00")));
    w.stop().await;
}

/// While the network a backup needs is not there, a due backup waits: no try is spent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_due_backup_waits_for_the_network() {
    let mut w = World::new(
        "2024-05-10 01:59:59",
        &[past_run("2024-05-09 02:00", Outcome::Success)],
    );
    w.online.store(false, Ordering::SeqCst);
    w.start(daily());
    w.tick().await;
    for _ in 0..3 {
        w.clock.advance(Duration::minutes(1));
        w.tick().await;
    }
    assert_eq!(w.job.runs(), 0, "no try while offline");
    assert_eq!(w.history.load().unwrap().len(), 1, "nothing recorded");
    w.online.store(true, Ordering::SeqCst);
    w.clock.advance(Duration::seconds(30));
    eventually("the run once the network is back", || w.job.runs() == 1).await;
    w.idle().await;
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slots_missed_while_asleep_give_one_run_after_the_wake() {
    let mut w = World::new(
        "2024-05-07 23:00",
        &[past_run("2024-05-07 02:00", Outcome::Success)],
    );
    w.start(daily());
    w.tick().await;
    assert_eq!(w.status().next_due, Some(at("2024-05-08 02:00")));

    // The laptop sleeps through three slots and wakes on the 10th at 09:00.
    w.clock.set(at("2024-05-10 09:00:00"));
    w.tick().await;
    assert_eq!(w.status().awake_since, at("2024-05-10 09:00:00"));
    assert_eq!(w.status().next_due, Some(at("2024-05-10 09:02:00")));
    assert_eq!(w.job.runs(), 0, "not at once: a short delay after the wake");
    w.clock.advance(Duration::seconds(50));
    w.tick().await;
    assert_eq!(w.job.runs(), 0);

    w.clock.advance(Duration::seconds(50));
    w.tick().await;
    assert_eq!(w.job.runs(), 0);
    w.clock.advance(Duration::seconds(25)); // 09:02:05
    eventually("the catch-up run", || w.job.runs() == 1).await;
    w.idle().await;
    for _ in 0..5 {
        w.clock.advance(Duration::seconds(50));
        w.tick().await;
    }
    assert_eq!(w.job.runs(), 1, "one run for the missed slots, not three");
    assert_eq!(w.status().next_due, Some(at("2024-05-11 02:00")));
    assert_eq!(*w.job.triggers.lock().unwrap(), [Trigger::Scheduled]);
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn off_means_only_when_tapped_and_settings_apply_at_once() {
    let mut w = World::new("2024-05-10 10:00", &[]);
    let off = ScheduleSettings {
        frequency: Frequency::Off,
        ..daily()
    };
    w.start(off);
    w.tick().await;
    assert_eq!(w.status().next_due, None);
    w.clock.advance(Duration::days(3));
    w.tick().await;
    assert_eq!(w.job.runs(), 0);
    assert_eq!(
        w.jobs.start(Trigger::Manual).wait().await.outcome,
        Outcome::Success
    );
    assert_eq!(w.job.runs(), 1);

    // Turned on (the manual run was on the 13th at 10:00, after that day's 02:00 slot).
    w.scheduler.as_ref().unwrap().set_schedule(daily());
    w.tick().await;
    assert_eq!(w.status().next_due, Some(at("2024-05-14 02:00")));
    w.stop().await;
}

// ---- `driveback daemon`: the real job (backup, then retention) on the real test server ----

fn daemon_command(config: &std::path::Path) -> std::process::Command {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_driveback"));
    cmd.env("DRIVEBACK_CONFIG_DIR", config)
        .env_remove("DRIVEBACK_DATA_DIR")
        .env_remove("DRIVEBACK_MONGO_URI")
        .env_remove("DRIVEBACK_PASSPHRASE")
        .env(
            "DRIVEBACK_KEYRING_SERVICE",
            format!("driveback-test-{:08x}", rand::random::<u32>()),
        )
        .env("TZ", "UTC")
        .stdin(std::process::Stdio::null());
    cmd
}

#[test]
fn the_daemon_needs_a_database_and_a_destination() {
    let dir = tempfile::tempdir().unwrap();
    let out = daemon_command(dir.path()).arg("daemon").output().unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("set what to back up and where first"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_daemon_backs_up_prunes_and_stops_on_sigterm() {
    use driveback_engine::store::{self, BackupSummary, Dest};
    use std::io::Write;

    let mongo = driveback_testkit::mongo();
    let db = mongo.fresh_db("daemon");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let client = mongo.client().await;
        let docs: Vec<bson::Document> =
            (0..50).map(|i| bson::doc! {"_id": i, "n": i * 2}).collect();
        client
            .database(&db)
            .collection::<bson::Document>("items")
            .insert_many(docs)
            .await
            .unwrap();
    });

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config");
    let dest_path = dir.path().join("backups");
    let dest = format!("folder:{}", dest_path.display());
    for (k, v) in [
        ("backup.database", db.as_str()),
        ("backup.dest", dest.as_str()),
    ] {
        let out = daemon_command(&config)
            .args(["config", "set", k, v])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // The destination's key, made on this device; the planted backups are signed with it as
    // Driveback signs its own.
    let key_command = |args: &[&str]| {
        let out = daemon_command(&config)
            .args(args)
            .args(["--dest", dest.as_str()])
            .env("DRIVEBACK_PASSPHRASE", "correct horse battery staple")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    key_command(&["key", "init"]);
    let secret = key_command(&["key", "show", "--secret"]);
    let signer = driveback_engine::authenticity::Signer::for_key(
        &driveback_engine::keys::BackupKey::from_secret_str(secret.trim()).unwrap(),
    );
    // Ten older backups of the same database (1 to 10 March 2023) already at the destination.
    let folder = store::open_store(&Dest::Folder(dest_path.clone())).unwrap();
    for day in 1..=10u32 {
        let created = Utc.with_ymd_and_hms(2023, 3, day, 2, 0, 0).unwrap();
        let id = format!("{day:08x}");
        let name = manifest::backup_file_name(&db, created, &id);
        let mut sink = folder.create(&name).unwrap();
        sink.write_all(b"an old backup").unwrap();
        signer
            .commit(
                &name,
                sink,
                &BackupSummary {
                    id,
                    created,
                    database: db.clone(),
                    documents: 1,
                    status: BackupStatus::Complete,
                    format_version: manifest::FORMAT_VERSION,
                    signature: None,
                    link: None,
                },
            )
            .unwrap();
    }

    // No history yet: the daily slot counts as missed and is caught up a second after start.
    let log_path = dir.path().join("daemon.log");
    let mut child = daemon_command(&config)
        .args(["daemon", "--tick-ms", "100", "--catch-up-secs", "1"])
        .env("DRIVEBACK_MONGO_URI", mongo.uri())
        .env("DRIVEBACK_PASSPHRASE", "correct horse battery staple")
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .unwrap();
    let history = History::new(config.join("history.jsonl"));
    let deadline = std::time::Instant::now() + StdDuration::from_secs(120);
    let record = loop {
        if let Some(r) = history.load().unwrap().pop() {
            break r;
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!(
                "the daemon exited ({status}): {}",
                std::fs::read_to_string(&log_path).unwrap()
            );
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no run within 120 s: {}",
            std::fs::read_to_string(&log_path).unwrap()
        );
        std::thread::sleep(StdDuration::from_millis(200));
    };
    assert_eq!(record.outcome, Outcome::Success, "{record:?}");
    assert_eq!(record.trigger, Trigger::Scheduled);
    assert_eq!(record.documents, Some(50));
    assert_eq!(record.database.as_deref(), Some(db.as_str()));
    // Retention ran after the backup: today's backup and the 6 newest older days stay
    // (1 to 4 March go; no older month is current or last month).
    assert_eq!(record.pruned, Some(4));
    let listed = folder.list().unwrap();
    assert_eq!(listed.len(), 7);
    assert_eq!(Some(&listed[0].id), record.backup_id.as_ref());
    let old_days: Vec<u32> = listed[1..].iter().map(|b| b.created.day()).collect();
    assert_eq!(old_days, [10, 9, 8, 7, 6, 5]);
    // The heartbeat says when the next backup is due (from the first tick after the run):
    // the next 02:00 UTC.
    let deadline = std::time::Instant::now() + StdDuration::from_secs(10);
    let next = loop {
        let beat = SchedulerStatus::read(&config.join(scheduler::HEARTBEAT_FILE));
        match beat.and_then(|b| b.next_due) {
            Some(t) if t > Utc::now() => break t,
            other => assert!(std::time::Instant::now() < deadline, "next due: {other:?}"),
        }
        std::thread::sleep(StdDuration::from_millis(50));
    };
    assert!(next - Utc::now() <= Duration::hours(24), "{next}");
    assert_eq!(next.format("%H:%M:%S").to_string(), "02:00:00");

    // SIGTERM stops it cleanly.
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let deadline = std::time::Instant::now() + StdDuration::from_secs(30);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the daemon did not stop"
        );
        std::thread::sleep(StdDuration::from_millis(100));
    };
    let log = std::fs::read_to_string(&log_path).unwrap();
    assert!(status.success(), "{status}: {log}");
    assert!(
        log.contains("driveback daemon started: Every day at 02:00"),
        "{log}"
    );
    assert!(log.contains("backup succeeded"), "{log}");
    assert!(log.contains("stopping"), "{log}");
    assert_eq!(history.load().unwrap().len(), 1, "one run only");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_next_slot_moves_as_soon_as_a_backup_ends_not_at_the_next_tick() {
    // Yesterday's backup succeeded; today's 02:00 slot was missed (the computer was off), so a
    // catch-up run is due shortly. The network is down, so the scheduler does not start it.
    let mut w = World::new(
        "2024-05-10 09:00",
        &[past_run("2024-05-09 02:00", Outcome::Success)],
    );
    w.online.store(false, Ordering::SeqCst);
    // A tick far longer than the test: only the end of the backup can refresh the status.
    w.start_ticking(daily(), StdDuration::from_secs(3600));
    w.tick().await;
    let before = w.status().next_due.expect("a catch-up run is due today");
    assert!(before < at("2024-05-10 10:00"), "due today: {before}");

    // Backup Now succeeds: today is covered, and the next slot is tomorrow's.
    let manual = w.jobs.start(Trigger::Manual);
    assert!(!manual.attached);
    w.idle().await;
    // What the app and `driveback status` ask: worked out from the runs as they are now.
    assert_eq!(
        w.scheduler.as_ref().unwrap().next_due_now(),
        Some(at("2024-05-11 02:00"))
    );
    // The scheduler's own look (its heartbeat) follows without waiting for its tick.
    eventually("the status shows tomorrow's slot", || {
        w.status().next_due == Some(at("2024-05-11 02:00"))
    })
    .await;
    let beat = SchedulerStatus::read(&w.heartbeat_path()).unwrap();
    assert_eq!(beat.next_due, Some(at("2024-05-11 02:00")));
    assert_eq!(w.job.runs(), 1, "only the manual backup ran");
    w.stop().await;
}
