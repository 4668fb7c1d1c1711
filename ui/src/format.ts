// Pure formatting: what the user reads. No DOM, no backend: tested with Vitest.
import type { ApiError, Backup, DataWarning, ErrorCode, HealthStatus, Progress, RunRecord } from "./api";

const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

/** 12.3 MB (decimal units, as file managers and Drive show sizes). */
export function formatBytes(n: number): string {
  if (!Number.isFinite(n) || n < 0) return "";
  if (n < 1000) return `${n} B`;
  const units = ["KB", "MB", "GB", "TB"];
  let v = n;
  let u = -1;
  while (v >= 1000 && u < units.length - 1) {
    v /= 1000;
    u++;
  }
  const digits = v < 10 ? 1 : v < 100 ? 1 : 0;
  return `${v.toFixed(digits)} ${units[u]}`;
}

/** 12,345 */
export function formatCount(n: number): string {
  return Math.round(n)
    .toString()
    .replace(/\B(?=(\d{3})+(?!\d))/g, ",");
}

function pad(n: number): string {
  return n < 10 ? `0${n}` : `${n}`;
}

function sameDay(a: Date, b: Date): boolean {
  return a.getFullYear() === b.getFullYear() && a.getMonth() === b.getMonth() && a.getDate() === b.getDate();
}

function dayAfter(d: Date, days: number): Date {
  const x = new Date(d);
  x.setDate(d.getDate() + days);
  return x;
}

/** "today 02:00", "yesterday 23:10", "tomorrow 02:00", "3 Nov 10:30", "3 Nov 2024, 10:30" — in
 * local time. */
export function formatWhen(iso: string, now: Date = new Date()): string {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  const time = `${pad(d.getHours())}:${pad(d.getMinutes())}`;
  if (sameDay(d, now)) return `today ${time}`;
  if (sameDay(d, dayAfter(now, -1))) return `yesterday ${time}`;
  if (sameDay(d, dayAfter(now, 1))) return `tomorrow ${time}`;
  const day = `${d.getDate()} ${MONTHS[d.getMonth()]}`;
  if (d.getFullYear() === now.getFullYear()) return `${day} ${time}`;
  return `${day} ${d.getFullYear()}, ${time}`;
}

/** A full local date for headings and the restore confirmation: "Sat 22 Nov 2025, 02:00". */
export function formatFullDate(iso: string): string {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  const days = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
  return `${days[d.getDay()]} ${d.getDate()} ${MONTHS[d.getMonth()]} ${d.getFullYear()}, ${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

/** "Last backup: today 02:00 · 12.3 MB" */
export function lastBackupLine(b: Backup | null, now: Date = new Date()): string {
  if (!b) return "Last backup: never";
  return `Last backup: ${formatWhen(b.created, now)} · ${formatBytes(b.bytes)}`;
}

/** "about 20 s left", "about 3 min left", "about 1 h 5 min left" */
export function formatEta(seconds: number | null): string {
  if (seconds === null || !Number.isFinite(seconds) || seconds < 0) return "";
  if (seconds < 60) return `about ${Math.max(1, Math.round(seconds))} s left`;
  const minutes = Math.round(seconds / 60);
  if (minutes < 60) return `about ${minutes} min left`;
  const h = Math.floor(minutes / 60);
  const m = minutes % 60;
  return m ? `about ${h} h ${m} min left` : `about ${h} h left`;
}

export function capitalize(s: string): string {
  return s ? s[0].toUpperCase() + s.slice(1) : s;
}

/** "Backing up · events · 45% · 12.3 MB · about 20 s left" */
export function progressLine(p: Progress): string {
  const parts: string[] = [];
  const label = p.step === "safety_backup" ? "Backing up the current data first" : capitalize(p.label);
  parts.push(label);
  if (p.collection) parts.push(p.collection);
  if (p.percent !== null) parts.push(`${Math.floor(p.percent)}%`);
  if (p.done_bytes > 0) {
    parts.push(p.total_bytes > p.done_bytes ? `${formatBytes(p.done_bytes)} of about ${formatBytes(p.total_bytes)}` : formatBytes(p.done_bytes));
  }
  const eta = formatEta(p.eta_seconds);
  if (eta) parts.push(eta);
  return parts.join(" · ");
}

export interface Explained {
  /** What happened, in plain words. */
  title: string;
  /** What to do about it. */
  action: string;
  /** The backend's own message, for the details. */
  detail: string;
}

// Every code the engine can send has its words here: `ErrorCode` is generated from the engine's
// enum, so a code without an entry does not compile.
export const EXPLAIN: Record<ErrorCode, [string, string]> = {
  database_unreachable: [
    "Driveback can't reach the database server.",
    "Check that MongoDB is running and that the address is right, then try again.",
  ],
  bad_mongo_uri: [
    "That connection string isn't valid.",
    "It looks like mongodb://host:27017 or mongodb+srv://cluster.example.net.",
  ],
  database_error: ["The database server reported an error.", "Try again; if it keeps happening, check the server's log."],
  not_found: ["That wasn't found.", "Refresh the list and try again."],
  wrong_passphrase: ["That passphrase is not right.", "Type it again, exactly as you set it."],
  passphrase_required: ["Your passphrase is needed.", "Enter the passphrase that protects your backups."],
  weak_passphrase: ["That passphrase is too weak.", "Use at least 8 characters, with at least one letter."],
  key_exists: [
    "Backups in this place already have a passphrase.",
    "Enter that passphrase instead of making a new one.",
  ],
  key_changed: [
    "The backup key where your backups go was replaced.",
    "Nothing is backed up there or restored from there until you check who can write to it. If you replaced it yourself, confirm it with your passphrase; otherwise choose another place for backups.",
  ],
  no_key: ["No passphrase is set for your backups yet.", "Set a passphrase first."],
  wrong_key: [
    "This backup was made with another key.",
    "It belongs to a different passphrase; restore it from the place it was made for.",
  ],
  corrupt_backup: ["This backup file is damaged.", "Choose an older backup, and make a new one soon."],
  verification_failed: ["This backup did not pass its checks.", "Choose an older backup, and make a new one soon."],
  unsupported_format: ["This backup was made by a newer Driveback.", "Update Driveback to open it."],
  destination_error: ["The place where backups are kept can't be used.", "Check that it is there and can be written to, then try again."],
  io_error: ["A file could not be read or written.", "Check the folder exists and has free space, then try again."],
  busy: ["Another job is running.", "Wait for it to finish, then try again."],
  not_cancellable: ["This can't be stopped half way.", "Wait for it to finish."],
  not_configured: ["Setup is not finished.", "Connect your database and choose where backups go."],
  invalid_token: ["This restore was not confirmed in time.", "Choose the backup again."],
  keyring_unavailable: [
    "The system keyring is not available.",
    "Start your desktop's keyring (e.g. GNOME Keyring) and try again.",
  ],
  keyring_locked: ["The system keyring is locked.", "Unlock it and try again."],
  bad_input: ["Something in the form isn't right.", "Check what you typed and try again."],
  destination_full: ["There is no room left where backups go.", "Free some space there, or keep fewer backups, then try again."],
  drive_unavailable: ["Google Drive can't be used with this copy of Driveback.", "Choose a folder for your backups instead."],
  not_connected: ["Google Drive is not connected.", "Connect it again from the Google Drive settings."],
  reconnect_needed: ["Google Drive needs reconnecting.", "Its sign-in ended or was revoked: choose “Sign in to Google again”."],
  access_denied: ["Google sign-in was declined.", "Connect again and allow Driveback to keep its backups in your Drive."],
  scope_not_granted: [
    "Driveback was not allowed to keep backups in your Drive, so it is not connected.",
    "Connect again and leave the Google Drive permission ticked on Google's page.",
  ],
  authorization_failed: ["Google did not accept the sign-in.", "Try connecting again."],
  timed_out: ["Google sign-in took too long.", "Try connecting again, and finish signing in within a few minutes."],
  listener_failed: ["Driveback could not wait for Google's answer.", "Try connecting again; if it keeps happening, restart Driveback."],
  google_unavailable: ["Google can't be reached just now.", "Check your internet connection, then try again."],
  email_not_configured: ["Email is not set up yet.", "Fill in the email server, sender and recipients, then save."],
  email_login_failed: ["The email server did not accept the user name or password.", "Check them; Gmail needs an app password."],
  email_unreachable: ["Driveback can't reach the email server.", "Check the server name, port and security, and your internet connection."],
  email_rejected: ["The email server refused the message.", "Check the sender and recipient addresses, then try again."],
  key_error: ["The backup key could not be used.", "Check the passphrase, then try again."],
  partial_backup: [
    "Some collections could not be backed up.",
    "The others are in the backup; check the database's log for the collections named, then back up again.",
  ],
  cancelled: ["It was cancelled.", "Nothing was changed; start it again when you are ready."],
  internal: ["Something went wrong inside Driveback.", "Try again; if it keeps happening, restart Driveback."],
};

export function explainError(e: ApiError): Explained {
  // A form's mistake is said by the check that found it ("the two passphrases are not the
  // same"): that sentence is the message, not a detail under a vague title.
  if (e.code === "bad_input" && e.message.trim()) {
    // Capitalized unless it starts with a name ("schedule.time: ...").
    const raw = e.message.trim();
    const m = /^[a-z]+[\s,:;]/.test(raw) ? capitalize(raw) : raw;
    return { title: /[.!?]$/.test(m) ? m : `${m}.`, action: "", detail: "" };
  }
  const known = EXPLAIN[e.code as ErrorCode] as [string, string] | undefined;
  if (known) return { title: known[0], action: known[1], detail: e.message };
  return {
    title: "Something went wrong.",
    action: "Try again; if it keeps happening, restart Driveback.",
    detail: e.message,
  };
}

/** The counts line of the confirmation: "1,204 now → 1,180 in the backup". */
export function countsLine(now: number | null, inBackup: number): string {
  const before = now === null ? "not there now" : `${formatCount(now)} now`;
  return `${before} → ${formatCount(inBackup)} in the backup`;
}

/** "Next backup: tomorrow 02:00" (local time); "" when nothing is planned. */
export function nextDueLine(iso: string | null, now: Date = new Date()): string {
  if (!iso) return "";
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return "";
  return d.getTime() <= now.getTime() ? "Next backup: due now" : `Next backup: ${formatWhen(iso, now)}`;
}

/** The note under the schedule: "Daily at 02:00 · Next backup: tomorrow 02:00". */
export function scheduleLine(text: string, nextDue: string | null, now: Date = new Date()): string {
  return [text, nextDueLine(nextDue, now)].filter(Boolean).join(" · ");
}

/** A share from 0 to 1 as a whole percent; never rounded to 0% or 100% when it is not. */
export function percent(rate: number | null): string {
  if (rate === null || !Number.isFinite(rate)) return "—";
  const p = Math.min(100, Math.max(0, rate * 100));
  const whole = p > 0 && p < 1 ? 1 : p > 99 && p < 100 ? 99 : Math.round(p);
  return `${whole}%`;
}

/** "20 h", "3 days", "1.5 days"; "—" when unknown. */
export function formatHours(hours: number | null): string {
  if (hours === null || !Number.isFinite(hours) || hours < 0) return "—";
  if (hours < 1) return "under an hour";
  if (hours < 48) return `${Math.round(hours)} h`;
  const days = Math.round((hours / 24) * 2) / 2;
  return `${days} days`;
}

const HEALTH_WORDS: Record<HealthStatus, string> = { healthy: "Healthy", warning: "Warning", critical: "Critical" };

export function healthWord(status: string): string {
  return HEALTH_WORDS[status as HealthStatus] ?? "Unknown";
}

const CHECK_NAMES: Record<string, string> = {
  database: "Database",
  destination: "Where backups go",
  last_backup: "Last backup",
  last_run: "Last run",
  verified: "Checked on upload",
  retention: "Old backups",
  scheduler: "Automatic backups",
  free_space: "Free space",
  success_rate: "Success rate",
  email: "Email",
  data_loss: "Data went missing",
  foreign_files: "Files that are not yours",
  last_test_restore: "Restore test",
  last_verify: "Check of the newest backup",
  duration: "Time a backup takes",
};

/** A health check's name for people: "free_space" → "Free space". */
export function checkName(name: string): string {
  return CHECK_NAMES[name] ?? capitalize(name.replace(/_/g, " "));
}

const RUN_WORDS: Record<string, string> = {
  backup: "Backup",
  email: "Email report",
  email_summary: "Weekly summary",
  audit: "Restore test",
  verify: "Check of the newest backup",
  manual: "manual",
  scheduled: "scheduled",
  catch_up: "catch-up",
  success: "Done",
  partial: "Partial",
  failed: "Failed",
  cancelled: "Cancelled",
};

function runWord(key: string): string {
  return RUN_WORDS[key] ?? key.replace(/_/g, " ");
}

/** One row of the run history: ["Today 02:00", "Backup, scheduled", "Done", "2.3 MB", ""]. */
export function runCells(r: RunRecord, now: Date = new Date()): [string, string, string, string, string] {
  return [
    capitalize(formatWhen(r.started, now)),
    `${capitalize(runWord(r.kind))}, ${runWord(r.trigger)}`,
    capitalize(runWord(r.outcome)),
    r.bytes === undefined ? "—" : formatBytes(r.bytes),
    r.error?.message ?? (r.warnings ?? []).map(dataWarning).join("; "),
  ];
}

/** "timeEntries: 41,230 → 12,004 documents", "users: gone (10 documents before)". */
export function dataWarning(w: DataWarning): string {
  const n = (x: number) => x.toLocaleString("en-US");
  return w.code === "collection_missing"
    ? `${w.collection}: gone (${n(w.before)} documents before)`
    : `${w.collection}: ${n(w.before)} → ${n(w.after)} documents`;
}
