// The only module that talks to the Tauri backend. Every command answers a value or rejects with
// an ApiError `{ code, message }`; the backend also pushes a few events (see onBackendEvent).
import { Channel, invoke } from "@tauri-apps/api/core";
import { listen } from "@tauri-apps/api/event";
import { open as openPicker, save as savePicker } from "@tauri-apps/plugin-dialog";

import type { ErrorCode } from "./generated/ErrorCode";

export type { ErrorCode };

export interface ApiError {
  code: ErrorCode;
  message: string;
}

export type BackupStatus = "complete" | "partial";

export interface Backup {
  id: string;
  file: string;
  bytes: number;
  created: string; // RFC 3339, UTC
  database: string;
  documents: number;
  status: BackupStatus;
  latest: boolean;
  /** Known from this computer's history: the destination could not be read just now. */
  from_history?: boolean;
  /** The incremental layout: the chain's full backup, and the backup this one holds the changes since. */
  link?: { chain: string; parent?: string };
}

export type JobKind = "backup" | "verify" | "restore";
export type Phase =
  | "connecting"
  | "exporting"
  | "downloading"
  | "staging"
  | "indexing"
  | "swapping"
  | "verifying"
  | "done";

export interface Progress {
  job_id: string;
  kind: JobKind;
  step: "main" | "safety_backup";
  phase: Phase;
  label: string;
  collection: string | null;
  done_docs: number;
  total_docs: number;
  done_bytes: number;
  total_bytes: number;
  percent: number | null;
  eta_seconds: number | null;
  elapsed_ms: number;
}

export type JobEvent =
  | ({ event: "progress" } & Progress)
  | { event: "finished"; job_id: string; kind: JobKind; result: unknown }
  | { event: "failed"; job_id: string; kind: JobKind; error: ApiError }
  | { event: "cancelled"; job_id: string; kind: JobKind };

export type GlanceLevel = "fresh" | "aging" | "stale";

export interface Glance {
  text: string;
  level: GlanceLevel;
}

export interface AppState {
  version: string;
  mongo: {
    configured: boolean;
    host: string | null;
    database: string | null;
    source: "entered" | "environment" | "keyring" | null;
  };
  destination: {
    kind: "folder" | "drive" | null;
    dest: string | null;
    /** For people: "Google Drive (hidden app folder)", "/home/me/backups". */
    label: string;
    folder: string | null;
    has_key: boolean;
    problem: string | null;
  };
  drive: {
    /** False when Google sign-in can't be used here, e.g. no keyring (`problem` says so). */
    available: boolean;
    /** An OAuth client is there to sign in with; false: Connect sets one up first. */
    client_configured?: boolean;
    connected: boolean;
    account: string | null;
    reconnect_needed: boolean;
    problem: string | null;
  };
  schedule: {
    frequency: Frequency;
    time: string; // "HH:MM"
    text: string; // "Daily at 02:00"
    next_due: string | null; // RFC 3339, UTC
    /** Automatic backups are paused until then (RFC 3339, UTC); null or absent: not paused. */
    paused_until?: string | null;
  };
  /** The one line at a glance, worked out by the engine (the tray and `driveback status` show
   * the same): "Backed up 2 hours ago · 61 kB · Next: tonight 02:00". `level` is how old the
   * newest complete backup is for the schedule: past its period `aging`, past the health's limit
   * (26 hours for daily) or none at all `stale`. */
  glance: Glance;
  /** The settings file could not be read: the defaults are in use. */
  settings_problem: string | null;
  last_backup: Backup | null;
  job: { id: string; kind: JobKind; progress: Progress | null } | null;
  keyring: { available: boolean; problem: string | null };
  passphrase_check_due: boolean;
  tray_notice_shown: boolean;
  ready: boolean;
}

export interface Connection {
  host: string;
  databases: string[];
}

export interface CollectionCount {
  name: string;
  documents: number;
}

export interface PlannedCollection {
  name: string;
  kind: string;
  in_backup: number;
  now: number | null;
  restorable: boolean;
}

/** The restore confirmation's "Advanced" part: another database, some collections. */
export interface RestoreChoices {
  target_db?: string | null;
  collections?: string[] | null;
}

export interface RestorePlan {
  token: string;
  backup: Backup;
  target_db: string;
  host: string | null;
  /** The chosen collections (all of the backup's unless some were chosen). */
  collections: PlannedCollection[];
  /** Every collection and view in the backup (the backend always sends these three). */
  available?: string[];
  source?: "destination" | "file";
  /** The file's path, for a restore from a file. */
  file?: string | null;
  untouched: string[];
  safety_backup: boolean;
  warnings: string[];
}

export interface RestoreResult {
  database: string;
  collections: CollectionCount[];
  documents: number;
  views: string[];
  warnings: string[];
  undo_token: string | null;
}

export interface VerifyResult {
  id: string;
  documents: number;
  collections: CollectionCount[];
}

export type Frequency = "off" | "daily" | "weekly" | "monthly";
export type Weekday = "mon" | "tue" | "wed" | "thu" | "fri" | "sat" | "sun";
export type SmtpSecurity = "starttls" | "tls" | "none";

export interface Settings {
  version: number;
  schedule: { frequency: Frequency; time: string; weekday: Weekday; day_of_month: number };
  /** database and dest are set by the connection and destination commands (save_settings leaves
   * them alone); layouts is the layout chosen per destination. */
  backup: {
    database: string | null;
    dest: string | null;
    layouts?: Record<string, Layout>;
    full_after_percent?: number;
  };
  retention: { daily: number; weekly: number; monthly: number; keep_last: number };
  smtp: {
    host: string | null;
    port: number;
    security: SmtpSecurity;
    user: string | null;
    from: string | null;
    /** Comma-separated addresses. */
    to: string | null;
    ca_file: string | null;
  };
  notify: {
    email_on_success: boolean;
    email_on_failure: boolean;
    weekly_summary: boolean;
    email_copy: boolean;
    email_copy_max_mb: number;
    desktop_on_success: boolean;
  };
}

/** How backups are kept at a destination: one file each, or a full backup and increments. */
export type Layout = "files" | "incremental";

export interface SettingsView {
  settings: Settings;
  /** The configured destination as `backup.layouts` names it, and its layout. */
  layout_dest: string | null;
  layout: Layout | null;
  schedule_text: string;
  retention_text: string;
  smtp_password_set: boolean;
  problem: string | null;
}

export type HealthStatus = "healthy" | "warning" | "critical";

export interface HealthCheck {
  name: string;
  status: HealthStatus;
  message: string;
}

export interface RunRecord {
  job_id: string;
  kind: string;
  trigger: string; // "manual" | "scheduled" | "catch_up"
  started: string;
  ended: string;
  outcome: "success" | "partial" | "failed" | "cancelled";
  database?: string;
  bytes?: number;
  documents?: number;
  error?: ApiError;
  /** What the backup's data showed: a collection that lost documents or vanished. */
  warnings?: DataWarning[];
}

export interface DataWarning {
  code: "documents_dropped" | "collection_missing";
  collection: string;
  before: number;
  after: number;
}

export interface Health {
  /** The same line as `AppState.glance`. */
  glance: Glance;
  status: HealthStatus;
  checks: HealthCheck[];
  metrics: {
    runs_30d: number;
    /** 0 to 1. */
    success_rate_30d: number | null;
    average_interval_hours: number | null;
    size_trend: number[];
    /** Seconds each of the last (up to) 10 good backups took, oldest first. */
    duration_trend: number[];
    last_good_backup: string | null;
    last_error: string | null;
  };
  next_due: string | null;
  scheduler_running: boolean;
  schedule_text: string;
  retention_text: string;
  /** Newest first. */
  recent_runs: RunRecord[];
}

/** A channel whose messages go to `onEvent`. */
export function jobChannel(onEvent: (e: JobEvent) => void): Channel<JobEvent> {
  const ch = new Channel<JobEvent>();
  ch.onmessage = onEvent;
  return ch;
}

/** Runs a command that follows its job on a channel and whose answer is the job's result (as
 * `verify_backup`'s and `restore`'s are). It settles on whichever comes first: the command's answer, or the job's
 * end told on the channel. So the window learns the result even when the answer to the command
 * itself comes late, as it can from a webview under load. `onEvent` sees every event. */
export function followingJob<T>(start: (ch: Channel<JobEvent>) => Promise<T>, onEvent: (e: JobEvent) => void): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const ch = jobChannel((e) => {
      onEvent(e);
      if (e.event === "finished") resolve(e.result as T);
      else if (e.event === "failed") reject(e.error);
      else if (e.event === "cancelled") reject({ code: "cancelled", message: "Stopped." } satisfies ApiError);
    });
    start(ch).then(resolve, reject);
  });
}

export const api = {
  appState: () => invoke<AppState>("app_state"),
  uiReady: () => invoke<{ startup_ms: number; pid: number }>("ui_ready"),
  dismissTrayNotice: () => invoke<void>("dismiss_tray_notice"),

  testConnection: (uri: string) => invoke<Connection>("test_connection", { uri }),
  listDatabases: () => invoke<Connection>("list_databases"),
  saveConnection: (uri: string | null, database: string) =>
    invoke<{ state: AppState; notice: string | null }>("save_connection", { uri, database }),
  setDestinationFolder: (folder: string) => invoke<AppState>("set_destination_folder", { folder }),

  setPassphrase: (passphrase: string) =>
    invoke<{ public_key: string; notices: string[] }>("set_passphrase", { passphrase }),
  checkPassphrase: (passphrase: string) => invoke<{ ok: boolean }>("check_passphrase", { passphrase }),
  confirmDestinationKey: (passphrase: string) =>
    invoke<{ ok: boolean }>("confirm_destination_key", { passphrase }),
  changePassphrase: (current: string, next: string) =>
    invoke<void>("change_passphrase", { current, new: next }),
  showKey: (passphrase: string) =>
    invoke<{ secret_key: string; public_key: string }>("show_key", { passphrase }),

  backupNow: (onEvent: Channel<JobEvent>) =>
    invoke<{ job_id: string; attached: boolean }>("backup_now", { onEvent }),
  /** Follows the running backup, if any; starts nothing. */
  followBackup: (onEvent: Channel<JobEvent>) =>
    invoke<{ job_id: string; attached: boolean } | null>("follow_backup", { onEvent }),
  cancelJob: (jobId: string) => invoke<boolean>("cancel_job", { jobId }),
  listBackups: () => invoke<Backup[]>("list_backups"),
  verifyBackup: (id: string, passphrase: string | null, onEvent: Channel<JobEvent>) =>
    invoke<VerifyResult>("verify_backup", { id, passphrase, onEvent }),
  saveCopy: (id: string, folder: string) =>
    invoke<{ path: string; bytes: number }>("save_copy", { id, folder }),
  prepareRestore: (id: string, passphrase: string | null, options: RestoreChoices | null = null) =>
    invoke<RestorePlan>("prepare_restore", options ? { id, passphrase, options } : { id, passphrase }),
  /** A Driveback backup file (saved copy, email attachment) or a plain mongodump archive. */
  prepareRestoreFile: (path: string, passphrase: string | null, options: RestoreChoices | null = null) =>
    invoke<RestorePlan>("prepare_restore_file", { path, passphrase, options }),
  /** "Save as JSON": one Extended JSON file per collection, in a new folder inside `folder`. */
  exportJson: (id: string, folder: string, passphrase: string | null) =>
    invoke<{ folder: string; files: string[]; documents: number }>("export_json", { id, folder, passphrase }),
  /** The system's file picker; the chosen path, or null when cancelled. */
  pickFile: async (title: string): Promise<string | null> => {
    const picked = await openPicker({ title, multiple: false, directory: false });
    return typeof picked === "string" ? picked : null;
  },
  /** The system's save dialog; the chosen path, or null when cancelled. */
  pickSaveFile: async (title: string, defaultPath: string): Promise<string | null> => {
    const picked = await savePicker({ title, defaultPath });
    return typeof picked === "string" ? picked : null;
  },
  /** Saves the backup key into a new private file at `path`; the path written. */
  saveKey: (passphrase: string, path: string) => invoke<string>("save_key", { passphrase, path }),
  /** The system's folder picker; the chosen path, or null when cancelled. */
  pickFolder: async (title: string): Promise<string | null> => {
    const picked = await openPicker({ title, multiple: false, directory: true });
    return typeof picked === "string" ? picked : null;
  },
  restore: (token: string, onEvent: Channel<JobEvent>) =>
    invoke<RestoreResult>("restore", { token, onEvent }),

  /** Opens the browser for Google sign-in; answers once the user has agreed (or cancelled). */
  /** `scope`: "appdata", the hidden app folder (the default), or "file", a visible "Driveback
   * Backups" folder. */
  connectDrive: (scope: "appdata" | "file" = "appdata") =>
    invoke<{ email: string; state: AppState; notices: string[] }>("connect_drive", { scope }),
  cancelConnectDrive: () => invoke<boolean>("cancel_connect_drive"),
  disconnectDrive: () => invoke<{ state: AppState; message: string }>("disconnect_drive"),
  /** Which Google OAuth client sign-in uses (never its secret), or how to set one up. */
  googleClientStatus: () => invoke<GoogleClientStatus>("google_client_status"),
  /** Saves the user's own OAuth client (a downloaded client file's text, or a pasted ID and
   * secret); a client that can't be used rejects with `bad_input` and one sentence. */
  setGoogleClient: (client: { id: string; secret: string } | { file_contents: string }) =>
    invoke<{ client: GoogleClientStatus; state: AppState }>("set_google_client", { client }),

  getSettings: () => invoke<SettingsView>("get_settings"),
  saveSettings: (settings: Settings) => invoke<SettingsView>("save_settings", { settings }),
  /** null or "" removes it. */
  setSmtpPassword: (password: string | null) => invoke<void>("set_smtp_password", { password }),
  sendTestEmail: () => invoke<{ to: string[]; server: string }>("send_test_email"),
  health: () => invoke<Health>("health"),
  /** "Pause automatic backups until tomorrow": until 09:00 local time the next day, or until
   * `until` (RFC 3339). Backup Now still works. Answers when they start again (RFC 3339, UTC);
   * rejects with `bad_input` when automatic backups are off or `until` is past. */
  pauseAutomatic: (until?: string) => invoke<string>("pause_automatic", { until: until ?? null }),
  /** Lifts the pause: automatic backups run as scheduled again. */
  resumeAutomatic: () => invoke<void>("resume_automatic"),
  acknowledgeAlarms: () => invoke<number>("acknowledge_alarms"),

  /** Whether Driveback starts (in the tray, without a window) when the user logs in. */
  startAtLogin: () => invoke<boolean>("start_at_login_status"),
  /** Adds or removes the login entry; answers whether Driveback now starts at login. */
  setStartAtLogin: (enabled: boolean) => invoke<boolean>("set_start_at_login", { enabled }),
};

/** Listens to an event the backend pushes; answers the way to stop. Outside the app (tests, a
 * plain browser) there is no backend: then nothing is listened to. */
export function onBackendEvent<T = unknown>(name: string, onEvent: (payload: T) => void): () => void {
  if (!(window as { __TAURI_INTERNALS__?: unknown }).__TAURI_INTERNALS__) return () => undefined;
  let stopped = false;
  let unlisten: (() => void) | null = null;
  try {
    listen<T>(name, (e) => onEvent(e.payload))
      .then((f) => (stopped ? f() : (unlisten = f)))
      .catch(() => undefined);
  } catch {
    return () => undefined;
  }
  return () => {
    stopped = true;
    unlisten?.();
  };
}

/** Where the Google OAuth client in use comes from. */
export interface GoogleClientStatus {
  configured: boolean;
  source: "env" | "settings" | "built_in" | "emulator" | null;
  client_id: string | null;
  /** How to set one up, when none can be used. */
  problem: string | null;
}

/** Anything a command threw, as an ApiError. */
export function asApiError(e: unknown): ApiError {
  if (e && typeof e === "object" && "code" in e && "message" in e) {
    return e as ApiError;
  }
  return { code: "internal", message: String(e) };
}
