// @vitest-environment jsdom
import { afterEach, describe, expect, it, vi } from "vitest";

vi.mock("@tauri-apps/api/core", () => ({ invoke: vi.fn(), Channel: class {} }));
vi.mock("@tauri-apps/plugin-dialog", () => ({ open: vi.fn() }));

import { open as openPicker } from "@tauri-apps/plugin-dialog";
import type { Backup, RestorePlan } from "../api";
import { commands, fakeBackend, settle } from "../testing";
import { advancedPart, backupRow, confirmRestore, databaseNameProblem, listSummary, planTable, renderBackups, restoreFromFile, saveJson } from "./backups";

const $ = <T extends HTMLElement = HTMLElement>(id: string) => document.getElementById(id) as T;
/** The commands called, without the two the list's header reads. */
const listed = (backend: ReturnType<typeof fakeBackend>) => commands(backend).filter((c) => c !== "app_state" && c !== "get_settings");

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
  available: ["entries", "projects", "by_user"],
  source: "destination",
  file: null,
  untouched: ["scratch"],
  safety_backup: true,
  warnings: [],
};

describe("backup rows", () => {
  it("show date, size, documents, database, Latest and the four actions", () => {
    const row = backupRow(backup(), new Date(2025, 10, 22, 12, 0));
    const text = row.textContent!;
    expect(text).toContain("Today 02:00");
    expect(text).toContain("2.3 MB · 20,512 documents · timetrack");
    expect(text).toContain("Latest");
    expect(text).toContain("Complete");
    expect([...row.querySelectorAll("button")].map((b) => b.textContent)).toEqual(["Restore", "Verify", "Save a copy", "Save as JSON"]);
  });
  it("mark partial backups and leave Latest off older ones", () => {
    const text = backupRow(backup({ latest: false, status: "partial" })).textContent!;
    expect(text).not.toContain("Latest");
    expect(text).toContain("Partial");
  });
  it("mark increments of the incremental layout, and only them", () => {
    expect(backupRow(backup({ link: { chain: "0000aaaa", parent: "0000bbbb" } })).textContent).toContain("Changes only");
    expect(backupRow(backup({ link: { chain: "0000aaaa" } })).textContent).not.toContain("Changes only");
    expect(backupRow(backup()).textContent).not.toContain("Changes only");
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

describe("the database name in Advanced", () => {
  it("follows MongoDB's rules", () => {
    expect(databaseNameProblem("timetrack_copy")).toBeNull();
    expect(databaseNameProblem("x".repeat(63))).toBeNull();
    expect(databaseNameProblem("")).toContain("Give the name");
    for (const bad of ["a/b", "a\\b", "a.b", "a b", 'a"b', "a$b", "a\0b"]) expect(databaseNameProblem(bad), bad).toContain("cannot hold");
    expect(databaseNameProblem("x".repeat(64))).toContain("64 bytes");
    expect(databaseNameProblem("é".repeat(32))).toContain("64 bytes");
  });
});

describe("the confirmation's Advanced part", () => {
  it("is collapsed, names the database and ticks every collection", () => {
    confirmRestore(plan, () => undefined, async () => null);
    const details = $<HTMLDetailsElement>("restore-advanced");
    expect(details.tagName).toBe("DETAILS");
    expect(details.open).toBe(false);
    expect($<HTMLInputElement>("restore-target-db").value).toBe("timetrack");
    const boxes = [...document.querySelectorAll<HTMLInputElement>(".restore-collection")];
    expect(boxes.map((b) => [b.value, b.checked])).toEqual([
      ["entries", true],
      ["projects", true],
      ["by_user", true],
    ]);
  });
  it("is not there without a way to plan again", () => {
    confirmRestore(plan, () => undefined);
    expect($("restore-advanced")).toBeNull();
  });
  it("keeps Replace off until a change is shown, and refuses a bad name or no collection", () => {
    const replaceButton = document.createElement("button");
    const applied: unknown[] = [];
    const part = advancedPart(plan, replaceButton, (c) => applied.push(c));
    document.body.append(part);
    const db = $<HTMLInputElement>("restore-target-db");
    db.value = "other.db";
    db.dispatchEvent(new Event("input"));
    expect(replaceButton.disabled).toBe(true);
    $("restore-advanced-apply").click();
    expect($("restore-advanced-note").textContent).toContain("cannot hold “.”");
    db.value = "timetrack";
    db.dispatchEvent(new Event("input"));
    expect(replaceButton.disabled).toBe(false);
    for (const b of document.querySelectorAll<HTMLInputElement>(".restore-collection")) {
      b.checked = false;
      b.dispatchEvent(new Event("change"));
    }
    expect(replaceButton.disabled).toBe(true);
    $("restore-advanced-apply").click();
    expect($("restore-advanced-note").textContent).toContain("at least one collection");
    expect(applied).toEqual([]);
  });
  it("plans again for another database and some collections, and shows that plan", async () => {
    const backend = fakeBackend({
      prepare_restore: (args) => ({
        ...plan,
        token: "t2",
        target_db: (args!.options as { target_db: string }).target_db,
        collections: [plan.collections[1]],
        untouched: [],
        safety_backup: false,
      }),
      restore: () => ({ database: "copy", collections: [{ name: "projects", documents: 12 }], documents: 12, views: [], warnings: [], undo_token: null }),
    });
    const { api } = await import("../api");
    confirmRestore(plan, () => undefined, (o) => api.prepareRestore("a1b2c3d4", null, o));
    const db = $<HTMLInputElement>("restore-target-db");
    db.value = "copy";
    db.dispatchEvent(new Event("input"));
    const [entries, , view] = document.querySelectorAll<HTMLInputElement>(".restore-collection");
    entries.checked = false;
    view.checked = false;
    $("restore-advanced-apply").click();
    await settle();
    expect(backend.calls()[0]).toEqual(["prepare_restore", { id: "a1b2c3d4", passphrase: null, options: { target_db: "copy", collections: ["projects"] } }]);
    expect(document.querySelectorAll("#restore-dialog").length).toBe(1);
    expect($("restore-summary").textContent).toContain("database copy on");
    expect([...document.querySelectorAll("#restore-plan tbody tr")].map((r) => r.getAttribute("data-collection"))).toEqual(["projects"]);
    expect($<HTMLDetailsElement>("restore-advanced").open).toBe(true);
    expect($<HTMLButtonElement>("restore-replace").disabled).toBe(false);
    $("restore-replace").click();
    await settle();
    expect(commands(backend)).toEqual(["prepare_restore", "restore"]);
    expect(backend.calls()[1][1]!.token).toBe("t2");
    expect($("restore-result").textContent).toContain("copy now holds");
  });
});

describe("restore from a file", () => {
  const filePlan: RestorePlan = { ...plan, source: "file", file: "/home/me/timetrack.archive.gz", backup: backup({ id: "", file: "timetrack.archive.gz" }) };
  it("reads the file, then asks the same Replace current data?", async () => {
    const backend = fakeBackend({ prepare_restore_file: () => filePlan });
    const opener = document.createElement("button");
    const out = document.createElement("div");
    await restoreFromFile("/home/me/timetrack.archive.gz", opener, out, () => undefined);
    expect(backend.calls()[0]).toEqual(["prepare_restore_file", { path: "/home/me/timetrack.archive.gz", passphrase: null, options: null }]);
    expect($("restore-dialog").querySelector("h2")!.textContent).toBe("Replace current data?");
    expect($("restore-summary").textContent).toContain("replaced with the file /home/me/timetrack.archive.gz");
    expect($("restore-advanced")).not.toBeNull();
  });
  it("asks for the passphrase when the key is needed", async () => {
    const backend = fakeBackend({
      prepare_restore_file: (args) => {
        if (!args!.passphrase) throw { code: "passphrase_required", message: "the passphrase is needed" };
        return filePlan;
      },
    });
    const done = restoreFromFile("/tmp/x.mdbk", document.createElement("button"), document.createElement("div"), () => undefined);
    await settle();
    $<HTMLInputElement>("ask-passphrase").value = "correct horse battery staple";
    $("ask-passphrase-ok").click();
    await done;
    await settle();
    expect(backend.calls().map(([, a]) => a!.passphrase)).toEqual([null, "correct horse battery staple"]);
    expect($("restore-dialog")).not.toBeNull();
  });
  it("shows why a file is refused, and opens no confirmation", async () => {
    fakeBackend({ prepare_restore_file: () => Promise.reject({ code: "wrong_key", message: "this backup was encrypted with a different backup key" }) });
    const out = document.createElement("div");
    document.body.append(out);
    await restoreFromFile("/tmp/theirs.mdbk", document.createElement("button"), out, () => undefined);
    expect($("restore-file-error").getAttribute("data-code")).toBe("wrong_key");
    expect($("restore-dialog")).toBeNull();
  });
  it("the button opens the system's file picker, and the picked path is what is read", async () => {
    const backend = fakeBackend({ list_backups: () => [backup()], prepare_restore_file: () => filePlan });
    const picker = openPicker as unknown as { mockResolvedValueOnce: (v: unknown) => void; mock: { calls: unknown[][] } };
    picker.mockResolvedValueOnce("/home/me/timetrack.archive.gz");
    const root = document.createElement("div");
    document.body.append(root);
    await renderBackups(root, () => undefined);
    expect(typeof window.drivebackRestoreFromFile).toBe("function");
    $("restore-file-button").click();
    await settle();
    await settle();
    expect(picker.mock.calls.at(-1)![0]).toMatchObject({ multiple: false, directory: false });
    expect(listed(backend)).toEqual(["list_backups", "prepare_restore_file"]);
    expect($("restore-dialog")).not.toBeNull();
  });
  it("a cancelled picker reads nothing", async () => {
    const backend = fakeBackend({ list_backups: () => [] });
    (openPicker as unknown as { mockResolvedValueOnce: (v: unknown) => void }).mockResolvedValueOnce(null);
    const root = document.createElement("div");
    document.body.append(root);
    await renderBackups(root, () => undefined);
    $("restore-file-button").click();
    await settle();
    expect(listed(backend)).toEqual(["list_backups"]);
    expect($("restore-dialog")).toBeNull();
  });
});

describe("Save as JSON", () => {
  it("saves into the picked folder and says where", async () => {
    const backend = fakeBackend({
      list_backups: () => [backup()],
      export_json: () => ({ folder: "/home/me/out/driveback-timetrack-20251122T020000Z-a1b2c3d4-json", files: ["entries.ejson", "projects.ejson"], documents: 20_512 }),
    });
    (openPicker as unknown as { mockResolvedValueOnce: (v: unknown) => void }).mockResolvedValueOnce("/home/me/out");
    const root = document.createElement("div");
    document.body.append(root);
    await renderBackups(root, () => undefined);
    document.querySelector<HTMLButtonElement>(".json-button")!.click();
    await settle();
    await settle();
    expect((openPicker as unknown as { mock: { calls: unknown[][] } }).mock.calls.at(-1)![0]).toMatchObject({ directory: true });
    expect(backend.calls().find(([c]) => c === "export_json")).toEqual(["export_json", { id: "a1b2c3d4", folder: "/home/me/out", passphrase: null }]);
    expect(document.querySelector(".json-ok")!.textContent).toContain("20,512 documents as JSON, one file per collection (2), in /home/me/out/driveback-timetrack");
  });
  it("says why nothing was written", async () => {
    fakeBackend({ export_json: () => Promise.reject({ code: "bad_input", message: "/home/me/out/x-json already exists: nothing was overwritten" }) });
    const out = document.createElement("div");
    document.body.append(out);
    await saveJson(backup(), "/home/me/out", document.createElement("button"), out);
    expect($("json-error").textContent).toContain("already exists");
    expect(document.querySelector(".json-ok")).toBeNull();
  });
});

describe("the list", () => {
  it.each<[number[], string | null, string | null, string]>([
    [[1000], "Google Drive (hidden app folder)", "Keeps 7 daily and 1 monthly", "1 backup in Google Drive (hidden app folder) · 1.0 KB in all · Keeps 7 daily and 1 monthly"],
    [[61_000, 62_000], null, null, "2 backups · 123 KB in all"],
  ])("says where, how many, how much and what is kept (%j)", (sizes, where, kept, line) => {
    const bs = sizes.map((bytes, i) => backup({ id: `b${i}`, bytes }));
    expect(listSummary(bs, where, kept)).toBe(line);
  });

  it("shows the header, keeps Restore secondary, and keeps a verification on its row", async () => {
    localStorage.clear();
    fakeBackend({
      list_backups: () => [backup()],
      app_state: () => ({ destination: { label: "Google Drive (hidden app folder)" } }),
      get_settings: () => ({ retention_text: "Keeps 7 daily and 1 monthly" }),
      verify_backup: () => ({ id: "a1b2c3d4", documents: 20_512, collections: [{ name: "entries", documents: 20_000 }, { name: "projects", documents: 512 }] }),
    });
    const root = document.createElement("div");
    document.body.append(root);
    await renderBackups(root, () => undefined);
    expect($("backups-summary").textContent).toContain("1 backup in Google Drive (hidden app folder)");
    expect($("backups-summary").textContent).toContain("Keeps 7 daily and 1 monthly");
    const restore = document.querySelector<HTMLButtonElement>(".restore-button")!;
    expect(restore.classList.contains("primary")).toBe(false);
    expect(document.querySelector(".row-menu .verify-button")).not.toBeNull();
    document.querySelector<HTMLButtonElement>(".verify-button")!.click();
    await vi.waitFor(() => expect(document.querySelector(".verify-ok")?.textContent).toContain("20,512 documents"));
    // Drawn again (another visit to the list): the result is still on the row.
    root.replaceChildren();
    await renderBackups(root, () => undefined);
    expect(document.querySelector(".verify-ok")?.textContent).toMatch(/Verified today .*20,512 documents in 2 collections/);
    localStorage.clear();
  });
});
