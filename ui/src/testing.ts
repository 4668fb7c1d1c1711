// For the Vitest tests: sample answers of the backend, and a fake `invoke` that answers by
// command name. Each test file mocks "@tauri-apps/api/core" (and "@tauri-apps/api/event") itself.
import { invoke } from "@tauri-apps/api/core";
import type { AppState, Health, SettingsView } from "./api";

type Answer = (args?: Record<string, unknown>) => unknown;

/** Routes `invoke` to `answers` by command name; a command with no answer rejects. Answers the
 * calls made so far, as [command, args]. */
export function fakeBackend(answers: Record<string, Answer>): { calls: () => [string, Record<string, unknown> | undefined][] } {
  const mock = invoke as unknown as {
    mockReset: () => void;
    mockImplementation: (f: (cmd: string, args?: Record<string, unknown>) => Promise<unknown>) => void;
    mock: { calls: [string, Record<string, unknown> | undefined][] };
  };
  mock.mockReset();
  mock.mockImplementation(async (cmd, args) => {
    const answer = answers[cmd];
    if (!answer) throw { code: "not_available", message: `no answer for ${cmd}` };
    return answer(args);
  });
  return { calls: () => mock.mock.calls };
}

/** The commands called, in order. */
export function commands(backend: ReturnType<typeof fakeBackend>): string[] {
  return backend.calls().map(([cmd]) => cmd);
}

/** Lets pending promises settle. */
export const settle = () => new Promise((resolve) => setTimeout(resolve, 0));

/** A promise to resolve or reject from the test. */
export function deferred<T>() {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

export function sampleState(over: Partial<AppState> = {}): AppState {
  return {
    version: "0.1.0",
    mongo: { configured: true, host: "127.0.0.1:27017", database: "timetrack", source: "keyring" },
    destination: { kind: "folder", dest: "folder:/home/me/backups", label: "/home/me/backups", folder: "/home/me/backups", has_key: true, problem: null },
    drive: { available: true, connected: false, account: null, reconnect_needed: false, problem: null },
    schedule: { frequency: "daily", time: "02:00", text: "Daily at 02:00", next_due: null },
    glance: { text: "Not backed up yet · Next: tonight 02:00", level: "stale" },
    settings_problem: null,
    last_backup: null,
    job: null,
    keyring: { available: true, problem: null },
    passphrase_check_due: false,
    tray_notice_shown: true,
    ready: true,
    ...over,
  };
}

export function sampleSettings(): SettingsView {
  return {
    settings: {
      version: 1,
      schedule: { frequency: "daily", time: "02:00", weekday: "sun", day_of_month: 1 },
      backup: { database: "timetrack", dest: "folder:/home/me/backups" },
      retention: { daily: 7, weekly: 4, monthly: 12, keep_last: 3 },
      smtp: { host: null, port: 587, security: "starttls", user: null, from: null, to: null, ca_file: "/etc/ssl/my-ca.pem" },
      notify: {
        email_on_success: false,
        email_on_failure: true,
        weekly_summary: false,
        email_copy: false,
        email_copy_max_mb: 18,
        desktop_on_success: true,
      },
    },
    schedule_text: "Daily at 02:00",
    retention_text: "Keeps one backup a day for 7 days, one a week for 4 weeks and one a month for 12 months.",
    smtp_password_set: false,
    problem: null,
    layout_dest: "folder:/home/me/backups",
    layout: "files",
  };
}

export function sampleHealth(over: Partial<Health> = {}): Health {
  return {
    glance: { text: "Backed up 3 days ago · 2.3 MB · Next: tonight 02:00", level: "stale" },
    status: "warning",
    checks: [
      { name: "database", status: "healthy", message: "The database answers." },
      { name: "last_backup", status: "warning", message: "The last backup is 3 days old." },
      { name: "free_space", status: "critical", message: "Less than 2% free at the destination." },
    ],
    metrics: {
      runs_30d: 12,
      success_rate_30d: 0.9166,
      average_interval_hours: 26,
      size_trend: [2_000_000, 2_100_000],
      duration_trend: [30, 190],
      last_good_backup: null,
      last_error: "the database server at 127.0.0.1:27017 is unreachable",
    },
    next_due: null,
    scheduler_running: true,
    schedule_text: "Daily at 02:00",
    retention_text: "Keeps 7 daily backups.",
    recent_runs: [
      {
        job_id: "job-2",
        kind: "backup",
        trigger: "scheduled",
        started: "2025-11-22T02:00:00Z",
        ended: "2025-11-22T02:00:05Z",
        outcome: "failed",
        error: { code: "database_unreachable", message: "the database server at 127.0.0.1:27017 is unreachable" },
      },
      {
        job_id: "job-1",
        kind: "backup",
        trigger: "manual",
        started: "2025-11-21T10:00:00Z",
        ended: "2025-11-21T10:00:09Z",
        outcome: "success",
        bytes: 2_300_000,
        documents: 20_512,
      },
    ],
    ...over,
  };
}
