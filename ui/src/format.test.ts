import { describe, expect, it } from "vitest";
import type { Backup, Progress } from "./api";
import { countsLine, explainError, formatBytes, formatCount, formatEta, formatWhen, lastBackupLine, progressLine } from "./format";

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
    expect(explainError({ code: "something_new", message: "m" }).title).toBe("Something went wrong.");
  });
});

describe("counts", () => {
  it("formats thousands and the now -> backup line", () => {
    expect(formatCount(1234567)).toBe("1,234,567");
    expect(countsLine(1204, 1180)).toBe("1,204 now → 1,180 in the backup");
    expect(countsLine(null, 5)).toBe("not there now → 5 in the backup");
  });
});
