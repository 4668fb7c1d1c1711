// @vitest-environment jsdom
import { afterEach, describe, expect, it, vi } from "vitest";

vi.mock("@tauri-apps/api/core", () => ({ invoke: vi.fn(), Channel: class {} }));

import type { AppState } from "../api";
import { commands, fakeBackend, sampleState } from "../testing";
import { firstStep, renderFirstRun } from "./firstrun";

afterEach(() => document.body.replaceChildren());

const onDrive = (): AppState =>
  sampleState({
    ready: false,
    destination: { kind: "drive", dest: "drive", label: "Google Drive (hidden app folder)", folder: null, has_key: false, problem: null },
    drive: { available: true, connected: true, account: "me@example.com", reconnect_needed: false, problem: null },
  });

describe("first run", () => {
  it.each<[string, Partial<AppState["destination"]>, string]>([
    ["nothing chosen", { kind: null, folder: null }, "destination"],
    ["a folder kind without a folder", { kind: "folder", folder: null }, "destination"],
    ["a folder", { kind: "folder", folder: "/home/me/backups" }, "passphrase"],
    ["Google Drive", { kind: "drive", folder: null }, "passphrase"],
  ])("starts where it stopped: %s", (_, destination, step) => {
    const s = sampleState({ ready: false });
    expect(firstStep({ ...s, destination: { ...s.destination, ...destination } })).toBe(step);
  });

  it("connects Google Drive, shows the account, and Continue keeps it", async () => {
    const connected = onDrive();
    const backend = fakeBackend({ connect_drive: () => ({ email: "me@example.com", state: connected, notices: [] }) });
    const root = document.createElement("div");
    document.body.append(root);
    const start = sampleState({ ready: false, destination: { ...sampleState().destination, kind: null, folder: null, label: "" } });
    renderFirstRun(root, start, () => undefined, "destination");
    document.getElementById("drive-connect")!.click();
    await vi.waitFor(() => expect(document.getElementById("firstrun-drive-account")?.textContent).toBe("me@example.com"));
    expect(document.querySelector("#firstrun")!.getAttribute("data-step")).toBe("destination");
    document.getElementById("destination-continue")!.click();
    await vi.waitFor(() => expect(document.querySelector("#firstrun")!.getAttribute("data-step")).toBe("passphrase"));
    expect(commands(backend)).toEqual(["connect_drive"]);
  });
});
