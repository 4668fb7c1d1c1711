// @vitest-environment jsdom
import { afterEach, describe, expect, it, vi } from "vitest";

vi.mock("@tauri-apps/api/core", () => ({ invoke: vi.fn(), Channel: class {} }));
vi.mock("@tauri-apps/api/event", () => ({ listen: vi.fn(async () => () => undefined) }));

import type { AppState, RestorePlan } from "../api";
import { commands, fakeBackend, sampleState } from "../testing";
import { databaseInUri, firstStep, KEY_OFFER, preselect, renderFirstRun } from "./firstrun";

afterEach(() => {
  document.body.replaceChildren();
  localStorage.clear();
});

const fresh = (): AppState =>
  sampleState({
    ready: false,
    mongo: { configured: false, host: null, database: null, source: null },
    destination: { kind: null, dest: null, label: "", folder: null, has_key: false, problem: null },
  });

const onDrive = (hasKey = false): AppState =>
  sampleState({
    ready: false,
    destination: { kind: "drive", dest: "drive", label: "Google Drive (hidden app folder)", folder: null, has_key: hasKey, problem: null },
    drive: { available: true, connected: true, account: "me@example.com", reconnect_needed: false, problem: null },
  });

function mount(state: AppState, onDone = vi.fn()) {
  const root = document.createElement("div");
  document.body.append(root);
  renderFirstRun(root, state, onDone);
  return { root, onDone };
}

const step = () => document.querySelector("#firstrun")!.getAttribute("data-step");
const click = (id: string) => document.getElementById(id)!.click();
const type = (id: string, value: string, event = "input") => {
  const el = document.getElementById(id) as HTMLInputElement;
  el.value = value;
  el.dispatchEvent(new Event(event));
};

describe("first run", () => {
  it.each<[string, Partial<AppState["destination"]>, string]>([
    ["nothing chosen", { kind: null, folder: null }, "setup"],
    ["a folder kind without a folder", { kind: "folder", folder: null }, "setup"],
    ["a folder", { kind: "folder", folder: "/home/me/backups" }, "passphrase"],
    ["Google Drive", { kind: "drive", folder: null }, "passphrase"],
  ])("starts where it stopped: %s", (_, destination, expected) => {
    const s = sampleState({ ready: false });
    expect(firstStep({ ...s, destination: { ...s.destination, ...destination } })).toBe(expected);
  });

  it("starts at the database when none is chosen", () => {
    expect(firstStep({ ...onDrive(), mongo: { configured: true, host: "h", database: null, source: "keyring" } })).toBe("setup");
  });

  it.each<[string, string | null]>([
    ["mongodb://localhost:27017", null],
    ["mongodb://localhost:27017/", null],
    ["mongodb://me:pw@db.example.com:27017/timetrack?authSource=admin", "timetrack"],
    ["mongodb+srv://me:pw@cluster0.example.net/shop", "shop"],
    ["mongodb://a:1,b:2/my%20db?replicaSet=rs0", "my db"],
    ["postgres://localhost/x", null],
  ])("reads the database in %s", (uri, name) => {
    expect(databaseInUri(uri)).toBe(name);
  });

  it.each<[string[], string, string | null, string | null]>([
    [["shop", "timetrack"], "mongodb://h/timetrack", null, "timetrack"],
    [["shop", "timetrack"], "mongodb://h/missing", "shop", "shop"],
    [["shop", "timetrack"], "mongodb://h", null, null],
    [["timetrack"], "mongodb://h", null, "timetrack"],
    [[], "mongodb://h", null, null],
  ])("preselects in %j for %s (before: %s)", (dbs, uri, before, expected) => {
    expect(preselect(dbs, uri, before)).toBe(expected);
  });

  it("tests a pasted string, preselects its database, and moves on by itself once Google agrees", async () => {
    const connected = onDrive();
    const backend = fakeBackend({
      test_connection: () => ({ host: "127.0.0.1:27017", databases: ["shop", "timetrack"] }),
      save_connection: () => ({ state: fresh(), notice: null }),
      connect_drive: () => ({ email: "me@example.com", state: connected, notices: [] }),
      google_client_status: () => ({ configured: true, source: "emulator", client_id: "x.apps.googleusercontent.com" }),
    });
    mount(fresh());
    expect(step()).toBe("setup");
    type("mongo-uri", "mongodb://127.0.0.1:27017/timetrack", "paste");
    await vi.waitFor(() => expect(document.getElementById("connection-ok")).not.toBeNull());
    expect((document.getElementById("database-select") as HTMLSelectElement).value).toBe("timetrack");
    click("drive-connect");
    await vi.waitFor(() => expect(step()).toBe("passphrase"));
    const calls = backend.calls();
    expect(calls.find(([c]) => c === "save_connection")?.[1]).toEqual({ uri: "mongodb://127.0.0.1:27017/timetrack", database: "timetrack" });
    expect(commands(backend).indexOf("save_connection")).toBeLessThan(commands(backend).indexOf("connect_drive"));
  });

  it("backs up to a visible Drive folder when chosen, else to the hidden app folder", async () => {
    for (const [choose, scope] of [[false, "appdata"], [true, "file"]] as const) {
      const backend = fakeBackend({
        test_connection: () => ({ host: "h:1", databases: ["timetrack"] }),
        save_connection: () => ({ state: fresh(), notice: null }),
        connect_drive: () => ({ email: "me@example.com", state: onDrive(), notices: [] }),
      });
      mount(fresh());
      type("mongo-uri", "mongodb://h:1", "paste");
      await vi.waitFor(() => expect(document.getElementById("connection-ok")).not.toBeNull());
      if (choose) click("drive-where-file");
      click("drive-connect");
      await vi.waitFor(() => expect(step()).toBe("passphrase"));
      expect(backend.calls().find(([c]) => c === "connect_drive")?.[1]).toEqual({ scope });
      document.body.replaceChildren();
    }
  });

  it("asks for the database before Drive when the string names none and there are several", async () => {
    const backend = fakeBackend({ test_connection: () => ({ host: "h:1", databases: ["a", "b"] }) });
    mount(fresh());
    type("mongo-uri", "mongodb://h:1", "paste");
    await vi.waitFor(() => expect(document.getElementById("connection-ok")?.textContent).toContain("Choose the database"));
    click("drive-connect");
    await vi.waitFor(() => expect(document.querySelector(".error")?.textContent).toContain("Choose the database to back up first."));
    expect(commands(backend)).toEqual(["test_connection"]);
  });

  it("says why a string does not connect, and keeps what was typed", async () => {
    fakeBackend({
      test_connection: () => {
        throw { code: "database_unreachable", message: "no server answered at h:1" };
      },
    });
    mount(fresh());
    type("mongo-uri", "mongodb://h:1", "paste");
    await vi.waitFor(() => expect(document.getElementById("connection-status")!.textContent).toContain("h:1"));
    expect((document.getElementById("mongo-uri") as HTMLInputElement).value).toBe("mongodb://h:1");
    expect((document.getElementById("database-select") as HTMLSelectElement).disabled).toBe(true);
  });

  it("creates the passphrase with the warning's acknowledgement, and starts the first backup", async () => {
    const ready = sampleState();
    const backend = fakeBackend({
      set_passphrase: () => ({ public_key: "age1x", notices: [] }),
      set_start_at_login: () => true,
      backup_now: () => ({ job_id: "j1", attached: false }),
      app_state: () => ready,
    });
    const { onDone } = mount(onDrive());
    expect(step()).toBe("passphrase");
    expect(document.getElementById("passphrase-warning")!.textContent).toBe(
      "If you lose this passphrase, your backups cannot be restored. Driveback cannot reset it or recover it for you. Write it down and keep it somewhere safe.",
    );
    type("passphrase", "correct horse battery staple");
    type("passphrase-repeat", "correct horse battery stapler");
    click("passphrase-create");
    await vi.waitFor(() => expect(document.querySelector(".error")?.textContent).toContain("not the same"));
    expect(commands(backend)).toEqual([]);
    type("passphrase-repeat", "correct horse battery staple");
    click("passphrase-create");
    await vi.waitFor(() => expect(onDone).toHaveBeenCalledWith(ready));
    expect(commands(backend)).toEqual(["set_passphrase", "set_start_at_login", "backup_now", "app_state"]);
    expect(localStorage.getItem(KEY_OFFER)).toBe("1");
  });

  it("does not start at login when unticked, and a refused passphrase starts nothing", async () => {
    const backend = fakeBackend({
      set_passphrase: () => {
        throw { code: "weak_passphrase", message: "use at least 8 characters" };
      },
    });
    const { onDone } = mount(onDrive());
    (document.getElementById("firstrun-start-at-login") as HTMLInputElement).checked = false;
    type("passphrase", "short");
    type("passphrase-repeat", "short");
    click("passphrase-create");
    await vi.waitFor(() => expect(document.querySelector(".error")?.textContent).toContain("8 characters"));
    expect(commands(backend)).toEqual(["set_passphrase"]);
    expect(onDone).not.toHaveBeenCalled();
    expect(localStorage.getItem(KEY_OFFER)).toBeNull();
  });

  it("on a new device asks for the passphrase once and offers the latest backup", async () => {
    const plan: RestorePlan = {
      token: "t",
      backup: { id: "b1", file: "f", bytes: 10, created: "2026-12-01T02:00:00Z", database: "timetrack", documents: 3, status: "complete", latest: true },
      target_db: "timetrack",
      host: "h:1",
      collections: [{ name: "entries", kind: "collection", in_backup: 3, now: null, restorable: true }],
      untouched: [],
      safety_backup: false,
      warnings: [],
    } as RestorePlan;
    let ok = false;
    const backend = fakeBackend({
      check_passphrase: () => ({ ok }),
      prepare_restore: () => plan,
      app_state: () => sampleState(),
    });
    const { onDone } = mount(onDrive(true));
    expect(document.getElementById("unlock-title")).not.toBeNull();
    type("passphrase", "not it");
    click("unlock-restore");
    await vi.waitFor(() => expect(document.querySelector(".error")).not.toBeNull());
    expect(commands(backend)).toEqual(["check_passphrase"]);
    ok = true;
    type("passphrase", "correct horse battery staple");
    click("unlock-restore");
    await vi.waitFor(() => expect(document.getElementById("restore-dialog")).not.toBeNull());
    expect(backend.calls().find(([c]) => c === "prepare_restore")?.[1]).toEqual({ id: "latest", passphrase: "correct horse battery staple" });
    expect(onDone).toHaveBeenCalledWith(sampleState(), "backups");
  });
});
