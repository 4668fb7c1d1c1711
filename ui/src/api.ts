// The only module that talks to the Tauri backend. Every command answers a value or rejects with
// an ApiError `{ code, message }`.
import { Channel, invoke } from "@tauri-apps/api/core";

export interface ApiError {
  code: string;
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

export interface AppState {
  version: string;
  mongo: {
    configured: boolean;
    host: string | null;
    database: string | null;
    source: "entered" | "environment" | "keyring" | null;
  };
  destination: { kind: "folder"; folder: string | null; has_key: boolean; problem: string | null };
  drive: { available: boolean; connected: boolean; account: string | null };
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

export interface RestorePlan {
  token: string;
  backup: Backup;
  target_db: string;
  host: string | null;
  collections: PlannedCollection[];
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

/** A channel whose messages go to `onEvent`. */
export function jobChannel(onEvent: (e: JobEvent) => void): Channel<JobEvent> {
  const ch = new Channel<JobEvent>();
  ch.onmessage = onEvent;
  return ch;
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
  changePassphrase: (current: string, next: string) =>
    invoke<void>("change_passphrase", { current, new: next }),
  showKey: (passphrase: string) =>
    invoke<{ secret_key: string; public_key: string }>("show_key", { passphrase }),

  backupNow: (onEvent: Channel<JobEvent>) =>
    invoke<{ job_id: string; attached: boolean }>("backup_now", { onEvent }),
  cancelJob: (jobId: string) => invoke<boolean>("cancel_job", { jobId }),
  listBackups: () => invoke<Backup[]>("list_backups"),
  verifyBackup: (id: string, passphrase: string | null, onEvent: Channel<JobEvent>) =>
    invoke<VerifyResult>("verify_backup", { id, passphrase, onEvent }),
  saveCopy: (id: string, folder: string) =>
    invoke<{ path: string; bytes: number }>("save_copy", { id, folder }),
  prepareRestore: (id: string, passphrase: string | null) =>
    invoke<RestorePlan>("prepare_restore", { id, passphrase }),
  restore: (token: string, onEvent: Channel<JobEvent>) =>
    invoke<RestoreResult>("restore", { token, onEvent }),

  // Waiting for their engine parts: each rejects with code "not_available" for now.
  connectDrive: () => invoke<void>("connect_drive"),
  disconnectDrive: () => invoke<void>("disconnect_drive"),
  getSettings: () => invoke<unknown>("get_settings"),
  saveSettings: (frequency: string, time: string) =>
    invoke<void>("save_settings", { settings: { frequency, time } }),
  health: () => invoke<unknown>("health"),
  sendTestEmail: () => invoke<void>("send_test_email"),
};

/** Anything a command threw, as an ApiError. */
export function asApiError(e: unknown): ApiError {
  if (e && typeof e === "object" && "code" in e && "message" in e) {
    return e as ApiError;
  }
  return { code: "internal", message: String(e) };
}
