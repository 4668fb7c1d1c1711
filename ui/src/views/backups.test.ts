// @vitest-environment jsdom
import { afterEach, describe, expect, it, vi } from "vitest";

vi.mock("@tauri-apps/api/core", () => ({ invoke: vi.fn(), Channel: class {} }));

import type { Backup, RestorePlan } from "../api";
import { backupRow, confirmRestore, planTable } from "./backups";

afterEach(() => document.body.replaceChildren());

const backup = (over: Partial<Backup> = {}): Backup => ({
  id: "a1b2c3d4",
  file: "timetrack-20251122T020000Z-a1b2c3d4.mdbk",
  bytes: 2_300_000,
  created: new Date(2025, 10, 22, 2, 0).toISOString(),
  database: "timetrack",
  documents: 20_512,
  status: "complete",
  latest: true,
  ...over,
});

const plan: RestorePlan = {
  token: "t",
  backup: backup(),
  target_db: "timetrack",
  host: "127.0.0.1:27117",
  collections: [
    { name: "entries", kind: "collection", in_backup: 20000, now: 20450, restorable: true },
    { name: "projects", kind: "collection", in_backup: 12, now: null, restorable: true },
    { name: "by_user", kind: "view", in_backup: 0, now: 0, restorable: true },
  ],
  untouched: ["scratch"],
  safety_backup: true,
  warnings: [],
};

describe("backup rows", () => {
  it("show date, size, documents, database, Latest and the three actions", () => {
    const row = backupRow(backup(), new Date(2025, 10, 22, 12, 0));
    const text = row.textContent!;
    expect(text).toContain("Today 02:00");
    expect(text).toContain("2.3 MB · 20,512 documents · timetrack");
    expect(text).toContain("Latest");
    expect(text).toContain("Complete");
    expect([...row.querySelectorAll("button")].map((b) => b.textContent)).toEqual(["Restore", "Verify", "Save a copy"]);
  });
  it("mark partial backups and leave Latest off older ones", () => {
    const text = backupRow(backup({ latest: false, status: "partial" })).textContent!;
    expect(text).not.toContain("Latest");
    expect(text).toContain("Partial");
  });
});

describe("the restore confirmation", () => {
  it("lists the collections with counts now and in the backup", () => {
    const t = planTable(plan);
    const rows = [...t.querySelectorAll("tbody tr")].map((r) => r.textContent);
    expect(rows[0]).toBe("entries20,450 now → 20,000 in the backup");
    expect(rows[1]).toBe("projectsnot there now → 12 in the backup");
    expect(rows[2]).toBe("by_user (view)—");
  });
  it("names the database and the date, warns, and focuses Cancel", () => {
    confirmRestore(plan, () => undefined);
    const dlg = document.getElementById("restore-dialog")!;
    expect(dlg.getAttribute("role")).toBe("alertdialog");
    expect(dlg.querySelector("h2")!.textContent).toBe("Replace current data?");
    expect(document.getElementById("restore-summary")!.textContent).toContain("timetrack on 127.0.0.1:27117");
    expect(document.getElementById("restore-summary")!.textContent).toContain("Sat 22 Nov 2025, 02:00");
    expect(dlg.textContent).toContain("safety backup");
    expect(dlg.textContent).toContain("left as they are: scratch");
    expect(document.activeElement!.id).toBe("restore-cancel");
    expect(document.getElementById("restore-replace")!.className).toBe("danger");
  });
});
