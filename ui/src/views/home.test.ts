// @vitest-environment jsdom
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";

vi.mock("@tauri-apps/api/core", () => ({ invoke: vi.fn(), Channel: class {} }));
vi.mock("@tauri-apps/api/event", () => ({ listen: vi.fn() }));

import { listen } from "@tauri-apps/api/event";
import type { AppState, JobEvent } from "../api";
import { commands, deferred, fakeBackend, sampleHealth, sampleSettings, sampleState, settle } from "../testing";
import { queuedToasts } from "../messages";
import { failureBox, listenToBackend, renderHome } from "./home";

const $ = <T extends HTMLElement = HTMLElement>(id: string) => document.getElementById(id) as T;
const click = (id: string) => $(id).click();
const key = (k: string) => document.dispatchEvent(new KeyboardEvent("keydown", { key: k, bubbles: true }));

let nav: { backups: () => void; refresh: () => Promise<void>; show: (s: AppState) => void };

function draw(state: AppState = sampleState()): HTMLElement {
  const root = document.createElement("div");
  document.body.append(root);
  renderHome(root, state, nav);
  return root;
}

beforeEach(() => {
  nav = { backups: vi.fn(), refresh: vi.fn(async () => undefined), show: vi.fn() };
});
afterEach(() => {
  document.body.replaceChildren();
  delete (window as { __TAURI_INTERNALS__?: unknown }).__TAURI_INTERNALS__;
});

describe("the schedule", () => {
  const tomorrow2am = () => {
    const d = new Date();
    d.setDate(d.getDate() + 1);
    d.setHours(2, 0, 0, 0);
    return d.toISOString();
  };

  it("shows the frequency, time and note from the state", async () => {
    fakeBackend({ health: () => sampleHealth() });
    draw(sampleState({ schedule: { frequency: "weekly", time: "03:30", text: "Weekly on Sunday at 03:30", next_due: tomorrow2am() } }));
    expect($<HTMLSelectElement>("frequency").value).toBe("weekly");
    expect([...$<HTMLSelectElement>("frequency").options].map((o) => o.value)).toEqual(["off", "daily", "weekly", "monthly"]);
    expect($<HTMLInputElement>("backup-time").value).toBe("03:30");
    expect($("schedule-note").textContent).toBe("Weekly on Sunday at 03:30 · Next backup: tomorrow 02:00");
  });

  it("saves the whole settings with the new frequency, and shows the new schedule", async () => {
    const view = sampleSettings();
    const backend = fakeBackend({
      health: () => sampleHealth(),
      get_settings: () => structuredClone(view),
      save_settings: () => ({ ...view, schedule_text: "Weekly on Sunday at 02:00" }),
      app_state: () => sampleState({ schedule: { frequency: "weekly", time: "02:00", text: "", next_due: tomorrow2am() } }),
    });
    draw();
    const frequency = $<HTMLSelectElement>("frequency");
    frequency.value = "weekly";
    frequency.dispatchEvent(new Event("change"));
    await vi.waitFor(() => expect($("schedule-note").textContent).toBe("Weekly on Sunday at 02:00 · Next backup: tomorrow 02:00"));
    const save = backend.calls().find(([cmd]) => cmd === "save_settings")!;
    const expected = structuredClone(view.settings);
    expected.schedule.frequency = "weekly";
    expect(save[1]).toEqual({ settings: expected });
    expect(commands(backend).filter((c) => c !== "health")).toEqual(["get_settings", "save_settings", "app_state"]);
  });

  it("turns the time off with the schedule, and shows a refused save in plain words", async () => {
    fakeBackend({
      health: () => sampleHealth(),
      get_settings: () => sampleSettings(),
      save_settings: () => Promise.reject({ code: "bad_input", message: "schedule.time: not a time" }),
    });
    draw();
    const frequency = $<HTMLSelectElement>("frequency");
    frequency.value = "off";
    frequency.dispatchEvent(new Event("change"));
    expect($<HTMLInputElement>("backup-time").disabled).toBe(true);
    await vi.waitFor(() => expect(document.querySelector("#settings-card .error")).not.toBeNull());
    expect(document.querySelector("#settings-card .error")!.textContent).toContain("schedule.time");
  });
});

describe("the health badge", () => {
  it("shows the status, and its dialog lists the checks, the last 30 days and the runs", async () => {
    fakeBackend({ health: () => sampleHealth() });
    draw();
    const badge = $("health-badge");
    await vi.waitFor(() => expect(badge.textContent).toBe("Warning"));
    expect(badge.className).toBe("badge warning");
    expect(badge.dataset.status).toBe("warning");

    badge.click();
    await vi.waitFor(() => expect(document.querySelectorAll("#health-dialog .check")).toHaveLength(3));
    const checks = [...document.querySelectorAll<HTMLElement>("#health-dialog .check")];
    // What needs something comes first.
    expect(checks.map((c) => [c.dataset.name, c.dataset.status])).toEqual([
      ["free_space", "critical"],
      ["last_backup", "warning"],
      ["database", "healthy"],
    ]);
    expect(checks[0].textContent).toContain("Critical");
    expect(checks[0].textContent).toContain("Less than 2% free");
    const metrics = $("health-metrics").textContent!;
    expect(metrics).toContain("92%");
    expect(metrics).toContain("26 h");
    expect(metrics).toContain("unreachable");
    const rows = [...document.querySelectorAll("#history-table tbody tr")];
    expect(rows).toHaveLength(2);
    expect(rows[0].textContent).toContain("Failed");
    expect(rows[0].textContent).toContain("unreachable");
    expect(rows[1].textContent).toContain("2.3 MB");
    key("Escape");
    expect($("health-dialog")).toBeNull();
  });

  it("says Unknown when the health can't be read", async () => {
    fakeBackend({ health: () => Promise.reject({ code: "io_error", message: "history unreadable" }) });
    draw();
    const badge = $("health-badge");
    await vi.waitFor(() => expect(badge.textContent).toBe("Unknown"));
    expect(badge.className).toBe("badge unknown");
    expect(badge.title).toBe("history unreadable");
  });
});

describe("Google Drive", () => {
  const connected = () =>
    sampleState({
      destination: { kind: "drive", dest: "drive", label: "Google Drive (hidden app folder)", folder: null, has_key: true, problem: null },
      drive: { available: true, connected: true, account: "me@example.com", reconnect_needed: false, problem: null },
    });

  it("shows the account and where backups go", () => {
    fakeBackend({ health: () => sampleHealth() });
    draw(connected());
    expect($("drive-account").textContent).toBe("me@example.com");
    expect($("destination-folder").textContent).toBe("Google Drive (hidden app folder)");
    expect($("change-folder").textContent).toBe("Use a folder");
    expect($("drive-connect")).toBeNull();
  });

  it("asks before disconnecting; Cancel has the focus and changes nothing", () => {
    const backend = fakeBackend({ health: () => sampleHealth() });
    draw(connected());
    click("drive-disconnect");
    const dialog = $("drive-disconnect-dialog");
    expect(dialog.getAttribute("role")).toBe("alertdialog");
    expect(dialog.textContent).toContain("revoke its access");
    expect(dialog.textContent).toContain("Backups already on Drive stay there.");
    expect(document.activeElement!.id).toBe("drive-disconnect-cancel");
    click("drive-disconnect-cancel");
    expect($("drive-disconnect-dialog")).toBeNull();
    click("drive-disconnect");
    key("Escape");
    expect($("drive-disconnect-dialog")).toBeNull();
    expect(commands(backend)).not.toContain("disconnect_drive");
  });

  it("disconnects once confirmed and draws the new state", async () => {
    const after = sampleState();
    fakeBackend({ health: () => sampleHealth(), disconnect_drive: () => ({ state: after, message: "Google Drive disconnected." }) });
    draw(connected());
    click("drive-disconnect");
    click("drive-disconnect-confirm");
    await vi.waitFor(() => expect(nav.show).toHaveBeenCalledWith(after));
    expect($("drive-disconnect-dialog")).toBeNull();
    expect($("toast").textContent).toBe("Google Drive disconnected.");
  });

  it("waits for Google in a dialog whose Cancel stops the sign-in, quietly", async () => {
    const answer = deferred<never>();
    const backend = fakeBackend({ health: () => sampleHealth(), connect_drive: () => answer.promise, cancel_connect_drive: () => true });
    draw();
    click("drive-connect");
    const dialog = $("drive-connect-dialog");
    expect(dialog.querySelector("h2")!.textContent).toBe("Waiting for Google…");
    expect(dialog.textContent).toContain("browser window opened");
    expect(document.activeElement!.id).toBe("drive-connect-cancel");
    click("drive-connect-cancel");
    expect(commands(backend)).toContain("cancel_connect_drive");
    answer.reject({ code: "cancelled", message: "sign-in cancelled" });
    await settle();
    expect($("drive-connect-dialog")).toBeNull();
    expect(document.querySelector(".error")).toBeNull();
    expect(nav.show).not.toHaveBeenCalled();
  });

  it("shows the sign-in address in case no browser opened", async () => {
    const handlers: Record<string, (e: { payload: unknown }) => void> = {};
    (window as { __TAURI_INTERNALS__?: unknown }).__TAURI_INTERNALS__ = {};
    vi.mocked(listen).mockImplementation(async (name, handler) => {
      handlers[name] = handler as (e: { payload: unknown }) => void;
      return () => delete handlers[name];
    });
    fakeBackend({ health: () => sampleHealth(), connect_drive: () => new Promise(() => undefined), cancel_connect_drive: () => true });
    draw();
    click("drive-connect");
    await settle();
    handlers["drive-connect-url"]({ payload: { url: "https://accounts.google.com/o/oauth2/v2/auth?x=1" } });
    expect($("drive-connect-url").textContent).toBe("https://accounts.google.com/o/oauth2/v2/auth?x=1");
    key("Escape");
    expect(handlers["drive-connect-url"]).toBeUndefined();
  });

  it("says who is connected, passes on the notices and draws the new state", async () => {
    const after = connected();
    const backend = fakeBackend({
      health: () => sampleHealth(),
      connect_drive: () => ({ email: "me@example.com", state: after, notices: ["Backups now go to Google Drive."] }),
    });
    draw();
    click("drive-connect");
    await vi.waitFor(() => expect(nav.show).toHaveBeenCalledWith(after));
    expect($("drive-connect-dialog")).toBeNull();
    // One notice at a time: the account first, the notice next.
    expect($("toast").textContent).toBe("Connected as me@example.com");
    expect(queuedToasts()).toContain("Backups now go to Google Drive.");
    expect(commands(backend)).not.toContain("cancel_connect_drive");
  });

  it("shows why it can't connect when this build has no Google sign-in", async () => {
    fakeBackend({
      health: () => sampleHealth(),
      connect_drive: () => Promise.reject({ code: "drive_unavailable", message: "no Google client is set up" }),
    });
    draw(sampleState({ drive: { available: false, connected: false, account: null, reconnect_needed: false, problem: "no Google client is set up" } }));
    click("drive-connect");
    expect($("drive-connect-dialog")).toBeNull();
    await vi.waitFor(() => expect(document.querySelector("#settings-card .error")!.textContent).toContain("no Google client is set up"));
    expect(document.querySelector("#settings-card .error")!.textContent).toContain("Google Drive can't be used");
  });

  it("when Drive needs reconnecting, says so once and the card's one action signs in again", async () => {
    const backend = fakeBackend({ health: () => sampleHealth(), connect_drive: () => new Promise(() => undefined) });
    const s = connected();
    s.drive = { ...s.drive, reconnect_needed: true, problem: "the access was revoked" };
    s.destination = { ...s.destination, problem: "Google Drive needs reconnecting: invalid_grant" };
    s.last_backup = { id: "b1", file: "f", bytes: 61_000, created: new Date().toISOString(), database: "timetrack", documents: 6020, status: "complete", latest: true };
    draw(s);
    expect($("drive-reconnect-banner").textContent).toContain("Google Drive needs reconnecting: the access was revoked");
    // The banner says what; the card has the one button that fixes it, and Back up waits.
    expect($("drive-reconnect-banner").querySelector("button")).toBeNull();
    expect($<HTMLButtonElement>("backup-now").disabled).toBe(true);
    expect($("last-backup").textContent).toContain("today");
    expect(document.querySelectorAll("#backup-card button.primary")).toHaveLength(1);
    // Said once: not again as a destination error in the settings.
    expect(document.querySelectorAll("[data-code='destination_error']")).toHaveLength(0);
    click("card-sign-in");
    expect(commands(backend)).toContain("connect_drive");
    expect($("drive-connect-dialog")).not.toBeNull();
  });

  it("after Disconnect keeps the last backup, and Connect Google Drive is the card's action", () => {
    fakeBackend({ health: () => sampleHealth() });
    const s = connected();
    s.drive = { ...s.drive, connected: false, account: null };
    s.destination = { ...s.destination, problem: "Google Drive is not connected" };
    s.last_backup = { id: "b1", file: "f", bytes: 61_000, created: new Date().toISOString(), database: "timetrack", documents: 6020, status: "complete", latest: true };
    draw(s);
    expect($("last-backup").textContent).toContain("today");
    expect($("card-sign-in").textContent).toBe("Connect Google Drive");
    expect($<HTMLButtonElement>("backup-now").disabled).toBe(true);
    expect(document.querySelectorAll("[data-code='destination_error']")).toHaveLength(0);
  });

  it("shows the line at a glance in the colour of its age", () => {
    fakeBackend({ health: () => sampleHealth() });
    for (const level of ["fresh", "aging", "stale"] as const) {
      draw(sampleState({ glance: { text: `Backed up some time ago (${level})`, level } }));
      expect($("glance").textContent).toBe(`Backed up some time ago (${level})`);
      expect($("glance").dataset.level).toBe(level);
      expect($("glance").classList.contains(level)).toBe(true);
      expect($<HTMLButtonElement>("backup-now").disabled).toBe(false);
      expect($("card-sign-in")).toBeNull();
      document.body.replaceChildren();
    }
  });
});

describe("a backup's end", () => {
  it("stays shown when the view is drawn again", async () => {
    let channel: { onmessage: (e: JobEvent) => void } | undefined;
    fakeBackend({
      health: () => sampleHealth(),
      backup_now: (a) => {
        channel = a!.onEvent as typeof channel;
        return { job_id: "job-1", attached: false };
      },
    });
    draw();
    click("backup-now");
    await vi.waitFor(() => expect(channel).toBeDefined());
    channel!.onmessage({ event: "failed", job_id: "job-1", kind: "backup", error: { code: "reconnect_needed", message: "the Google sign-in was revoked" } });
    expect($("backup-error").textContent).toContain("reconnect");
    document.body.replaceChildren();
    draw(); // the backend said the state changed
    expect($("backup-error").textContent).toContain("the Google sign-in was revoked");
    expect($("backup-progress").hidden).toBe(true);
    click("backup-now");
    expect($("backup-error")).toBeNull();
  });
});

describe("a backup that cannot start", () => {
  it("says why and refreshes the view, so that the health and the banners show the cause", async () => {
    fakeBackend({
      health: () => sampleHealth(),
      backup_now: () => Promise.reject({ code: "reconnect_needed", message: "Google Drive needs reconnecting: invalid_grant" }),
    });
    draw();
    click("backup-now");
    await vi.waitFor(() => expect($("backup-error").textContent).toContain("invalid_grant"));
    expect(nav.refresh).toHaveBeenCalledOnce();
    expect($("backup-progress").hidden).toBe(true);
  });
});

describe("banners", () => {
  it("say when the settings could not be read", () => {
    fakeBackend({ health: () => sampleHealth() });
    draw(sampleState({ settings_problem: "settings.toml: line 3 is not valid" }));
    expect($("settings-problem-banner").textContent).toContain("line 3 is not valid");
  });
});

describe("the backend's pushes", () => {
  type Handler = (e: { payload: unknown }) => void;
  let handlers: Record<string, Handler>;
  beforeEach(() => {
    handlers = {};
    (window as { __TAURI_INTERNALS__?: unknown }).__TAURI_INTERNALS__ = {};
    vi.mocked(listen).mockImplementation(async (name, handler) => {
      handlers[name] = handler as Handler;
      return () => delete handlers[name];
    });
  });

  it("follow a backup started elsewhere, once", async () => {
    const backend = fakeBackend({ health: () => sampleHealth(), follow_backup: () => ({ job_id: "job-9", attached: true }) });
    const stop = listenToBackend(nav);
    await settle();
    draw();
    handlers["job-started"]({ payload: { job_id: "job-9", trigger: "scheduled" } });
    await vi.waitFor(() => expect(commands(backend)).toContain("follow_backup"));
    expect($("backup-progress").hidden).toBe(false);
    handlers["job-started"]({ payload: { job_id: "job-9", trigger: "scheduled" } });
    await settle();
    expect(commands(backend).filter((c) => c === "follow_backup")).toHaveLength(1);
    expect(commands(backend)).not.toContain("backup_now");
    stop();
    expect(handlers).toEqual({});
  });

  it("never start a backup when the one announced is already over", async () => {
    const backend = fakeBackend({ health: () => sampleHealth(), follow_backup: () => null });
    const stop = listenToBackend(nav);
    await settle();
    draw();
    handlers["job-started"]({ payload: { job_id: "job-9", trigger: "manual" } });
    await settle();
    expect(commands(backend)).toContain("follow_backup");
    expect(commands(backend)).not.toContain("backup_now");
    expect($("backup-progress").hidden).toBe(true);
    stop();
  });

  it("draw the home view again when the state changes", async () => {
    fakeBackend({ health: () => sampleHealth() });
    const stop = listenToBackend(nav);
    await settle();
    handlers["state-changed"]({ payload: null });
    expect(nav.refresh).not.toHaveBeenCalled(); // the home view is not on screen
    draw();
    handlers["state-changed"]({ payload: null });
    await settle();
    expect(nav.refresh).toHaveBeenCalledOnce();
    stop();
  });
});

describe("where in Google Drive", () => {
  const onDrive = (dest: string) =>
    sampleState({
      destination: { kind: "drive", dest, label: dest === "drive" ? "Google Drive (hidden app folder)" : "Google Drive (“Driveback Backups” folder)", folder: null, has_key: true, problem: null },
      drive: { available: true, connected: true, account: "me@example.com", reconnect_needed: false, problem: null },
    });

  it("signs in again for the visible folder, and shows where new backups go", async () => {
    const moved = onDrive("drive:folder");
    const backend = fakeBackend({
      health: () => sampleHealth(),
      connect_drive: () => ({ email: "me@example.com", state: moved, notices: [] }),
    });
    draw(onDrive("drive"));
    const where = $<HTMLSelectElement>("drive-where-setting");
    expect(where.value).toBe("appdata");
    where.value = "file";
    where.dispatchEvent(new Event("change"));
    await vi.waitFor(() => expect(nav.show).toHaveBeenCalledWith(moved));
    expect(backend.calls().find(([c]) => c === "connect_drive")?.[1]).toEqual({ scope: "file" });
  });

  it("stays where it was when the sign-in is cancelled", async () => {
    fakeBackend({
      health: () => sampleHealth(),
      connect_drive: () => {
        throw { code: "cancelled", message: "cancelled" };
      },
    });
    draw(onDrive("drive:folder"));
    const where = $<HTMLSelectElement>("drive-where-setting");
    expect(where.value).toBe("file");
    where.value = "appdata";
    where.dispatchEvent(new Event("change"));
    await vi.waitFor(() => expect(where.value).toBe("file"));
    expect(nav.show).not.toHaveBeenCalled();
  });

  it("is not offered for a folder destination", () => {
    fakeBackend({ health: () => sampleHealth() });
    draw();
    expect($("drive-where-setting")).toBeNull();
  });
});

describe("a failed backup", () => {
  it.each<["drive" | "folder", string]>([
    ["drive", "Your Google Drive is full. Free up space in Google Drive"],
    ["folder", "The disk that holds your backup folder is full. Free up space on that disk"],
  ])("says a full %s in its own words", (kind, words) => {
    const s = sampleState();
    s.destination = { ...s.destination, kind };
    const box = failureBox({ code: "destination_full", message: "the storage quota is used: 15.0 GB of 15.0 GB" }, s, nav);
    expect(box.textContent).toContain(words);
    expect(box.querySelector("details.detail .detail-text")!.textContent).toBe("the storage quota is used: 15.0 GB of 15.0 GB");
  });

  it("offers to check the database that did not answer", () => {
    fakeBackend({ health: () => sampleHealth() });
    const box = failureBox({ code: "database_unreachable", message: "no server answered at 127.0.0.1:27017" }, sampleState(), nav);
    document.body.append(box);
    const check = box.querySelector<HTMLButtonElement>("#check-database")!;
    expect(check.textContent).toBe("Check the database at 127.0.0.1:27017");
    check.click();
    expect(document.getElementById("conn-uri")).not.toBeNull();
  });
});

describe("pausing automatic backups", () => {
  it("pauses until tomorrow, and a paused schedule offers Resume", async () => {
    const backend = fakeBackend({
      health: () => sampleHealth(),
      pause_automatic: () => "2026-12-05T08:00:00Z",
      resume_automatic: () => undefined,
    });
    draw();
    click("pause-automatic");
    await vi.waitFor(() => expect(nav.refresh).toHaveBeenCalled());
    expect(backend.calls().find(([c]) => c === "pause_automatic")?.[1]).toEqual({ until: null });
    document.body.replaceChildren();
    const paused = sampleState();
    paused.schedule = { ...paused.schedule, paused_until: "2026-12-05T08:00:00Z" };
    draw(paused);
    expect($("paused-note").textContent).toContain("paused until");
    expect($("pause-automatic")).toBeNull();
    click("resume-automatic");
    await vi.waitFor(() => expect(commands(backend)).toContain("resume_automatic"));
  });

  it("says why a pause was refused, and offers no pause when automatic backups are off", async () => {
    fakeBackend({
      health: () => sampleHealth(),
      pause_automatic: () => Promise.reject({ code: "bad_input", message: "automatic backups are off: there is nothing to pause" }),
    });
    draw();
    click("pause-automatic");
    await vi.waitFor(() => expect(document.querySelector("#settings-card .error")?.textContent).toContain("nothing to pause"));
    document.body.replaceChildren();
    const off = sampleState();
    off.schedule = { ...off.schedule, frequency: "off" };
    draw(off);
    expect($("pause-row")).toBeNull();
  });
});
