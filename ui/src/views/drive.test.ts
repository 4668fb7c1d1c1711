// @vitest-environment jsdom
import { afterEach, describe, expect, it, vi } from "vitest";

vi.mock("@tauri-apps/api/core", () => ({ invoke: vi.fn(), Channel: class {} }));
vi.mock("@tauri-apps/api/event", () => ({ listen: vi.fn() }));

import type { AppState } from "../api";
import { commands, fakeBackend, sampleState, settle } from "../testing";
import { connectDrive } from "./drive";

const $ = <T extends HTMLElement = HTMLElement>(id: string) => document.getElementById(id) as T;

const ID = "1234-abc.apps.googleusercontent.com";
const WEB_CLIENT = "This is a Web application client; create one of type Desktop app in Google Cloud Console and download its JSON.";

function noClient(): AppState {
  return sampleState({ drive: { available: true, client_configured: false, connected: false, account: null, reconnect_needed: false, problem: "no Google OAuth client is set up" } });
}

function withClient(): AppState {
  return sampleState({ drive: { available: true, client_configured: true, connected: false, account: null, reconnect_needed: false, problem: null } });
}

function connectedState(): AppState {
  return sampleState({ drive: { available: true, client_configured: true, connected: true, account: "me@example.com", reconnect_needed: false, problem: null } });
}

/** Connect, as the Connect button does; answers the error slot and the `done` spy. */
function start(state: AppState) {
  const slot = document.createElement("div");
  document.body.append(slot);
  const done = vi.fn();
  void connectDrive(state, slot, done);
  return { slot, done };
}

function type(id: string, value: string) {
  const input = $<HTMLInputElement>(id);
  input.value = value;
  input.dispatchEvent(new Event("input", { bubbles: true }));
}

/** Chooses `text` as the file in the file input, as the file dialog does. */
function chooseFile(text: string, name = "client_secret_1234.json") {
  const input = $<HTMLInputElement>("google-client-file");
  Object.defineProperty(input, "files", { configurable: true, value: [new File([text], name, { type: "application/json" })] });
  input.dispatchEvent(new Event("change", { bubbles: true }));
}

afterEach(() => document.body.replaceChildren());

describe("connecting Google Drive without an OAuth client", () => {
  it("opens the setup dialog that explains the Desktop app client and Google Cloud Console's steps", () => {
    const backend = fakeBackend({});
    start(noClient());
    const d = $("google-setup-dialog");
    expect(d).not.toBeNull();
    expect(commands(backend)).toEqual([]);
    const text = d.textContent!;
    expect(text).toContain("Desktop app");
    expect(text).toContain("nothing goes through our servers");
    const steps = $("google-setup-steps").textContent!;
    for (const page of ["Google Cloud Console", "APIs & Services", "Library", "Google Drive API", "Google Auth Platform", "OAuth consent screen", "External", "test user", "Clients", "Create credentials", "OAuth client ID", "Desktop app", "Download JSON"]) {
      expect(steps).toContain(page);
    }
    expect($<HTMLInputElement>("google-client-file").type).toBe("file");
    expect($<HTMLInputElement>("google-client-file").accept).toContain(".json");
    expect($<HTMLInputElement>("google-client-secret").type).toBe("password");
    expect(document.activeElement).toBe($("google-client-file"));
  });

  it("saves a pasted ID and secret, then goes straight into the sign-in", async () => {
    const after = connectedState();
    const backend = fakeBackend({
      set_google_client: () => ({ client: { configured: true, source: "settings", client_id: ID, problem: null }, state: withClient() }),
      connect_drive: () => ({ email: "me@example.com", state: after, notices: [] }),
    });
    const { done } = start(noClient());
    type("google-client-id", ID);
    type("google-client-secret", "GOCSPX-secret");
    $("google-setup-save").click();
    await vi.waitFor(() => expect(done).toHaveBeenCalledWith(after));
    expect(commands(backend)).toEqual(["set_google_client", "connect_drive"]);
    expect(backend.calls()[0][1]).toEqual({ client: { id: ID, secret: "GOCSPX-secret" } });
    expect($("google-setup-dialog")).toBeNull();
  });

  it("shows the waiting dialog once the client is saved", async () => {
    fakeBackend({
      set_google_client: () => ({ client: { configured: true, source: "settings", client_id: ID, problem: null }, state: withClient() }),
      connect_drive: () => new Promise(() => undefined),
    });
    start(noClient());
    type("google-client-id", ID);
    type("google-client-secret", "GOCSPX-secret");
    $("google-setup-save").click();
    await vi.waitFor(() => expect($("drive-connect-dialog")).not.toBeNull());
    expect($("google-setup-dialog")).toBeNull();
  });

  it("reads the chosen JSON file in the webview and saves its contents", async () => {
    const json = JSON.stringify({ installed: { client_id: ID, client_secret: "GOCSPX-secret", redirect_uris: ["http://localhost"] } });
    const backend = fakeBackend({
      set_google_client: () => ({ client: { configured: true, source: "settings", client_id: ID, problem: null }, state: withClient() }),
      connect_drive: () => ({ email: "me@example.com", state: connectedState(), notices: [] }),
    });
    const { done } = start(noClient());
    chooseFile(json);
    await vi.waitFor(() => expect(done).toHaveBeenCalled());
    expect(backend.calls()[0]).toEqual(["set_google_client", { client: { file_contents: json } }]);
  });

  it("shows a refused file's one sentence inline, keeps the dialog open and does not sign in", async () => {
    const backend = fakeBackend({
      set_google_client: () => Promise.reject({ code: "bad_input", message: WEB_CLIENT }),
    });
    const { done } = start(noClient());
    chooseFile(JSON.stringify({ web: { client_id: ID, client_secret: "x" } }));
    await vi.waitFor(() => expect($("google-setup-problem")).not.toBeNull());
    expect($("google-setup-problem").textContent).toBe(WEB_CLIENT);
    expect($("google-setup-problem").getAttribute("role")).toBe("alert");
    expect($("google-setup-dialog")).not.toBeNull();
    expect(commands(backend)).toEqual(["set_google_client"]);
    expect(done).not.toHaveBeenCalled();
  });

  it("shows a refused ID inline, and a corrected one goes through", async () => {
    let answers = 0;
    const backend = fakeBackend({
      set_google_client: () =>
        ++answers === 1
          ? Promise.reject({ code: "bad_input", message: "This is not a Google OAuth client ID: it ends in .apps.googleusercontent.com; copy the Client ID from your Desktop app client in Google Cloud Console." })
          : { client: { configured: true, source: "settings", client_id: ID, problem: null }, state: withClient() },
      connect_drive: () => ({ email: "me@example.com", state: connectedState(), notices: [] }),
    });
    const { done } = start(noClient());
    type("google-client-id", "1234-abc");
    type("google-client-secret", "GOCSPX-secret");
    $("google-setup-save").click();
    await vi.waitFor(() => expect($("google-setup-problem").textContent).toContain("ends in .apps.googleusercontent.com"));
    expect(done).not.toHaveBeenCalled();
    type("google-client-id", ID);
    $("google-setup-save").click();
    await vi.waitFor(() => expect(done).toHaveBeenCalled());
    expect($("google-setup-problem")).toBeNull();
    expect(commands(backend)).toEqual(["set_google_client", "set_google_client", "connect_drive"]);
  });

  it("asks for a file or the ID and secret when Save is pressed with nothing", async () => {
    const backend = fakeBackend({});
    start(noClient());
    $("google-setup-save").click();
    await settle();
    expect($("google-setup-problem").textContent).toContain("Choose the downloaded JSON file, or paste the Client ID and Client secret");
    expect(commands(backend)).toEqual([]);
  });

  it("Cancel closes it and nothing is saved", () => {
    const backend = fakeBackend({});
    const { done } = start(noClient());
    $("google-setup-cancel").click();
    expect($("google-setup-dialog")).toBeNull();
    expect(commands(backend)).toEqual([]);
    expect(done).not.toHaveBeenCalled();
  });

  it("skips the setup when a client is there", async () => {
    const backend = fakeBackend({ connect_drive: () => new Promise(() => undefined) });
    start(withClient());
    expect($("google-setup-dialog")).toBeNull();
    expect($("drive-connect-dialog")).not.toBeNull();
    expect(commands(backend)).toEqual(["connect_drive"]);
  });

  it("opens the setup when the backend says no client is set up after all", async () => {
    fakeBackend({ connect_drive: () => Promise.reject({ code: "not_configured", message: "no Google OAuth client is set up" }) });
    const { slot } = start(withClient());
    await vi.waitFor(() => expect($("google-setup-dialog")).not.toBeNull());
    expect($("drive-connect-dialog")).toBeNull();
    expect(slot.textContent).toBe("");
  });
});

describe("a sign-in without the Drive permission", () => {
  it("says nothing is connected and offers Connect again", async () => {
    let tries = 0;
    const after = connectedState();
    const backend = fakeBackend({
      connect_drive: () =>
        ++tries === 1
          ? Promise.reject({ code: "scope_not_granted", message: "you did not allow Driveback to use Google Drive" })
          : { email: "me@example.com", state: after, notices: [] },
    });
    const { slot, done } = start(withClient());
    await vi.waitFor(() => expect(slot.querySelector(".error")).not.toBeNull());
    expect(slot.querySelector(".error")!.getAttribute("data-code")).toBe("scope_not_granted");
    expect(slot.textContent).toContain("so it is not connected");
    expect(slot.textContent).toContain("Connect again and leave the Google Drive permission ticked");
    $("drive-connect-again").click();
    await vi.waitFor(() => expect(done).toHaveBeenCalledWith(after));
    expect(commands(backend)).toEqual(["connect_drive", "connect_drive"]);
    expect(slot.textContent).toBe("");
  });
});
