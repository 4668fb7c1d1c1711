import { describe, expect, it } from "vitest";
import errorCodeSource from "./generated/ErrorCode.ts?raw";
import type { ApiError, Backup, ErrorCode, Progress, RunRecord } from "./api";
import {
  EXPLAIN,
  checkName,
  countsLine,
  explainError,
  formatBytes,
  formatCount,
  formatEta,
  formatHours,
  formatWhen,
  healthWord,
  lastBackupLine,
  nextDueLine,
  percent,
  progressLine,
  runCells,
  scheduleLine,
} from "./format";

const at = (y: number, m: number, d: number, hh = 0, mm = 0) => new Date(y, m - 1, d, hh, mm);

describe("formatBytes", () => {
  it("uses decimal units with one decimal below 100", () => {
    expect(formatBytes(0)).toBe("0 B");
    expect(formatBytes(999)).toBe("999 B");
    expect(formatBytes(12_345_678)).toBe("12.3 MB");
    expect(formatBytes(123_456_789)).toBe("123 MB");
    expect(formatBytes(1_500_000_000)).toBe("1.5 GB");
  });
});

describe("formatWhen", () => {
  const now = at(2025, 11, 22, 15, 30);
  it("says today and yesterday in local time", () => {
    expect(formatWhen(at(2025, 11, 22, 2, 0).toISOString(), now)).toBe("today 02:00");
    expect(formatWhen(at(2025, 11, 21, 23, 5).toISOString(), now)).toBe("yesterday 23:05");
    expect(formatWhen(at(2025, 11, 23, 2, 0).toISOString(), now)).toBe("tomorrow 02:00");
    expect(formatWhen(at(2025, 12, 1, 0, 0).toISOString(), at(2025, 11, 30, 23, 0))).toBe("tomorrow 00:00");
  });
  it("gives the day, and the year only when it differs", () => {
    expect(formatWhen(at(2025, 11, 3, 10, 30).toISOString(), now)).toBe("3 Nov 10:30");
    expect(formatWhen(at(2024, 1, 9, 8, 0).toISOString(), now)).toBe("9 Jan 2024, 08:00");
  });
});

describe("lastBackupLine", () => {
  it("reads like WhatsApp's", () => {
    const b: Backup = {
      id: "a1b2c3d4",
      file: "x.mdbk",
      bytes: 12_300_000,
      created: at(2025, 11, 22, 2, 0).toISOString(),
      database: "timetrack",
      documents: 10,
      status: "complete",
      latest: true,
    };
    expect(lastBackupLine(b, at(2025, 11, 22, 9, 0))).toBe("Last backup: today 02:00 · 12.3 MB");
    expect(lastBackupLine(null)).toBe("Last backup: never");
  });
});

describe("progress", () => {
  it("formats the ETA in seconds, minutes and hours", () => {
    expect(formatEta(null)).toBe("");
    expect(formatEta(20)).toBe("about 20 s left");
    expect(formatEta(185)).toBe("about 3 min left");
    expect(formatEta(3900)).toBe("about 1 h 5 min left");
    expect(formatEta(7200)).toBe("about 2 h left");
  });
  it("puts phase, collection, percent, size and ETA on one line", () => {
    const p: Progress = {
      job_id: "job-1",
      kind: "backup",
      step: "main",
      phase: "exporting",
      label: "backing up",
      collection: "entries",
      done_docs: 450,
      total_docs: 1000,
      done_bytes: 12_300_000,
      total_bytes: 0,
      percent: 45.6,
      eta_seconds: 20,
      elapsed_ms: 16000,
    };
    expect(progressLine(p)).toBe("Backing up · entries · 45% · 12.3 MB · about 20 s left");
    expect(progressLine({ ...p, total_bytes: 27_000_000 })).toBe("Backing up · entries · 45% · 12.3 MB of about 27.0 MB · about 20 s left");
    expect(progressLine({ ...p, phase: "verifying", label: "verifying", collection: null, percent: null, eta_seconds: null })).toBe("Verifying · 12.3 MB");
    expect(progressLine({ ...p, step: "safety_backup", collection: null, percent: null, done_bytes: 0, eta_seconds: null })).toBe(
      "Backing up the current data first",
    );
  });
});

describe("errors", () => {
  it("explains known codes with an action, and keeps the detail", () => {
    const x = explainError({ code: "database_unreachable", message: "the database server at h:1 is unreachable" });
    expect(x.title).toContain("can't reach");
    expect(x.action).toContain("MongoDB is running");
    expect(x.detail).toContain("h:1");
  });
  it("has a fallback for unknown codes", () => {
    // An older backend could send a code this build does not know.
    const unknown = { code: "something_new", message: "m" } as unknown as ApiError;
    expect(explainError(unknown).title).toBe("Something went wrong.");
  });
  it("has its own words for every code the engine sends", () => {
    // The generated file lists the engine's codes; the Record type makes each one required, and
    // this checks none of them fell back to the generic words.
    const codes = [...errorCodeSource.matchAll(/"([a-z_]+)"/g)].map((m) => m[1]);
    expect(codes.length).toBeGreaterThan(30);
    for (const code of codes) {
      expect(Object.keys(EXPLAIN)).toContain(code);
      expect(explainError({ code: code as ErrorCode, message: "m" }).title).not.toBe("Something went wrong.");
    }
  });
  it("says what a partial backup is", () => {
    const x = explainError({ code: "partial_backup", message: "some collections could not be backed up: a" });
    expect(x.title).toBe("Some collections could not be backed up.");
    expect(x.detail).toContain(": a");
  });
});

describe("counts", () => {
  it("formats thousands and the now -> backup line", () => {
    expect(formatCount(1234567)).toBe("1,234,567");
    expect(countsLine(1204, 1180)).toBe("1,204 now → 1,180 in the backup");
    expect(countsLine(null, 5)).toBe("not there now → 5 in the backup");
  });
});

describe("the schedule note", () => {
  const now = at(2025, 11, 22, 15, 30);
  it.each([
    [null, ""],
    ["not a date", ""],
    [at(2025, 11, 23, 2, 0).toISOString(), "Next backup: tomorrow 02:00"],
    [at(2025, 11, 22, 20, 0).toISOString(), "Next backup: today 20:00"],
    [at(2025, 11, 29, 2, 0).toISOString(), "Next backup: 29 Nov 02:00"],
    [at(2026, 1, 1, 2, 0).toISOString(), "Next backup: 1 Jan 2026, 02:00"],
    [at(2025, 11, 22, 15, 0).toISOString(), "Next backup: due now"],
  ])("nextDueLine(%s)", (iso, line) => {
    expect(nextDueLine(iso, now)).toBe(line);
  });
  it("puts the schedule and the next backup together", () => {
    expect(scheduleLine("Daily at 02:00", at(2025, 11, 23, 2, 0).toISOString(), now)).toBe("Daily at 02:00 · Next backup: tomorrow 02:00");
    expect(scheduleLine("Only when you tap Back up", null, now)).toBe("Only when you tap Back up");
  });
});

describe("health", () => {
  it.each([
    [null, "—"],
    [Number.NaN, "—"],
    [0, "0%"],
    [0.001, "1%"],
    [0.5, "50%"],
    [0.9166, "92%"],
    [0.996, "99%"],
    [1, "100%"],
    [1.2, "100%"],
  ])("percent(%s) is %s", (rate, text) => {
    expect(percent(rate)).toBe(text);
  });
  it.each([
    [null, "—"],
    [-1, "—"],
    [0.5, "under an hour"],
    [23.6, "24 h"],
    [47, "47 h"],
    [48, "2 days"],
    [84, "3.5 days"],
    [168, "7 days"],
  ])("formatHours(%s) is %s", (hours, text) => {
    expect(formatHours(hours)).toBe(text);
  });
  it.each([
    ["healthy", "Healthy"],
    ["warning", "Warning"],
    ["critical", "Critical"],
    ["", "Unknown"],
    ["odd", "Unknown"],
  ])("healthWord(%s) is %s", (status, word) => {
    expect(healthWord(status)).toBe(word);
  });
  it.each([
    ["free_space", "Free space"],
    ["scheduler", "Automatic backups"],
    ["something_new", "Something new"],
  ])("checkName(%s) is %s", (name, text) => {
    expect(checkName(name)).toBe(text);
  });
});

describe("the run history", () => {
  const now = at(2025, 11, 22, 15, 30);
  const run = (over: Partial<RunRecord>): RunRecord => ({
    job_id: "job-1",
    kind: "backup",
    trigger: "manual",
    started: at(2025, 11, 22, 2, 0).toISOString(),
    ended: at(2025, 11, 22, 2, 1).toISOString(),
    outcome: "success",
    ...over,
  });
  it.each<[Partial<RunRecord>, string[]]>([
    [{ bytes: 2_300_000 }, ["Today 02:00", "Backup, manual", "Done", "2.3 MB", ""]],
    [{ trigger: "scheduled", outcome: "partial", bytes: 1_000 }, ["Today 02:00", "Backup, scheduled", "Partial", "1.0 KB", ""]],
    [
      { trigger: "catch_up", outcome: "failed", error: { code: "database_unreachable", message: "unreachable" } },
      ["Today 02:00", "Backup, catch-up", "Failed", "—", "unreachable"],
    ],
    [{ kind: "email_summary", trigger: "scheduled" }, ["Today 02:00", "Weekly summary, scheduled", "Done", "—", ""]],
    [
      {
        bytes: 1_000,
        warnings: [
          { code: "documents_dropped", collection: "timeEntries", before: 41_230, after: 12_004 },
          { code: "collection_missing", collection: "users", before: 10, after: 0 },
        ],
      },
      ["Today 02:00", "Backup, manual", "Done", "1.0 KB", "timeEntries: 41,230 → 12,004 documents; users: gone (10 documents before)"],
    ],
    [{ kind: "new_kind", trigger: "new_trigger", outcome: "cancelled" }, ["Today 02:00", "New kind, new trigger", "Cancelled", "—", ""]],
  ])("runCells(%o)", (over, cells) => {
    expect(runCells(run(over), now)).toEqual(cells);
  });
});

describe("a form's mistake", () => {
  it.each<[string, string]>([
    ["the two passphrases are not the same: type the same one twice", "The two passphrases are not the same: type the same one twice."],
    ["This is a Web application client; create one of type Desktop app.", "This is a Web application client; create one of type Desktop app."],
  ])("says %s as the message itself", (message, title) => {
    expect(explainError({ code: "bad_input", message })).toEqual({ title, action: "", detail: "" });
  });

  it("keeps the general words when the check said nothing", () => {
    expect(explainError({ code: "bad_input", message: "" }).title).toBe("Something in the form isn't right.");
  });
});
