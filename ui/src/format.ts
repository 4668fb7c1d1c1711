// Pure formatting: what the user reads. No DOM, no backend: tested with Vitest.
import type { ApiError, Backup, Progress } from "./api";

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

/** "today 02:00", "yesterday 23:10", "3 Nov 10:30", "3 Nov 2024, 10:30" — in local time. */
export function formatWhen(iso: string, now: Date = new Date()): string {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  const time = `${pad(d.getHours())}:${pad(d.getMinutes())}`;
  if (sameDay(d, now)) return `today ${time}`;
  const yesterday = new Date(now);
  yesterday.setDate(now.getDate() - 1);
  if (sameDay(d, yesterday)) return `yesterday ${time}`;
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

function capitalize(s: string): string {
  return s ? s[0].toUpperCase() + s.slice(1) : s;
}

/** "Backing up · events · 45% · 12.3 MB · about 20 s left" */
export function progressLine(p: Progress): string {
  const parts: string[] = [];
  const label = p.step === "safety_backup" ? "Backing up the current data first" : capitalize(p.label);
  parts.push(label);
  if (p.collection) parts.push(p.collection);
  if (p.percent !== null) parts.push(`${Math.floor(p.percent)}%`);
  if (p.done_bytes > 0) parts.push(formatBytes(p.done_bytes));
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

const EXPLAIN: Record<string, [string, string]> = {
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
  no_key: ["No passphrase is set for your backups yet.", "Set a passphrase first."],
  wrong_key: [
    "This backup was made with another key.",
    "It belongs to a different passphrase; restore it from the place it was made for.",
  ],
  corrupt_backup: ["This backup file is damaged.", "Choose an older backup, and make a new one soon."],
  verification_failed: ["This backup did not pass its checks.", "Choose an older backup, and make a new one soon."],
  unsupported_format: ["This backup was made by a newer Driveback.", "Update Driveback to open it."],
  destination_error: ["The place where backups are kept can't be used.", "Check the folder exists and has free space, then try again."],
  io_error: ["A file could not be read or written.", "Check the folder exists and has free space, then try again."],
  busy: ["Another job is running.", "Wait for it to finish, then try again."],
  not_cancellable: ["This can't be stopped half way.", "Wait for it to finish."],
  not_configured: ["Setup is not finished.", "Connect your database and choose where backups go."],
  not_available: ["Not available yet.", "This arrives in a later version of Driveback."],
  invalid_token: ["This restore was not confirmed in time.", "Choose the backup again."],
  keyring_unavailable: [
    "The system keyring is not available.",
    "Start your desktop's keyring (e.g. GNOME Keyring) and try again.",
  ],
  keyring_locked: ["The system keyring is locked.", "Unlock it and try again."],
  bad_input: ["Something in the form isn't right.", "Check what you typed and try again."],
  key_error: ["The backup key could not be used.", "Check the passphrase, then try again."],
};

export function explainError(e: ApiError): Explained {
  const known = EXPLAIN[e.code];
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
