// Google Drive: connect (sign in in the browser, with a "Waiting for Google…" dialog that can
// cancel it) and disconnect (after asking). Without an OAuth client yet, Connect first opens a
// short setup dialog: the user's own "Desktop app" client, as a downloaded JSON file or a pasted
// ID and secret.
import { api, asApiError, onBackendEvent, type AppState } from "../api";
import { button, openDialog } from "../dialog";
import { busy, h } from "../dom";
import { errorBox, showError, toast } from "../messages";

/** Connects Google Drive; `done` gets the new state once the user has agreed. Errors go to
 * `slot`; a cancelled sign-in shows nothing. With no OAuth client yet, the setup dialog comes
 * first, and the sign-in follows once a client is saved. */
export async function connectDrive(state: AppState, slot: HTMLElement, done: (s: AppState) => void, where: DriveWhere = driveWhereOf(state)): Promise<void> {
  slot.replaceChildren();
  if (state.drive.available && state.drive.client_configured === false) {
    googleSetupDialog((next) => void signIn(next, slot, done, where));
    return;
  }
  await signIn(state, slot, done, where);
}

/** Where in Drive backups go: the hidden app folder (`drive.appdata`) or a visible "Driveback
 * Backups" folder (`drive.file`). */
export type DriveWhere = "appdata" | "file";

/** Where the backups are now: a sign-in again keeps them there. */
export function driveWhereOf(state: AppState): DriveWhere {
  return state.destination.dest === "drive:folder" ? "file" : "appdata";
}

async function signIn(state: AppState, slot: HTMLElement, done: (s: AppState) => void, where: DriveWhere): Promise<void> {
  slot.replaceChildren();
  let waiting = true;
  // Without Google sign-in in this build, the backend answers at once with the reason.
  const d = state.drive.available ? waitingDialog(() => waiting) : null;
  try {
    const r = await api.connectDrive(where);
    waiting = false;
    d?.close();
    toast(`Connected as ${r.email}`);
    r.notices.forEach(toast);
    done(r.state);
  } catch (e) {
    waiting = false;
    d?.close();
    const err = asApiError(e);
    if (err.code === "cancelled") return;
    if (err.code === "not_configured" && state.drive.available) {
      // The client went away meanwhile (forgotten elsewhere): set one up, then sign in.
      googleSetupDialog((next) => void signIn(next, slot, done, where));
      return;
    }
    showError(slot, err);
    if (err.code === "scope_not_granted" || err.code === "access_denied") {
      // Nothing stayed connected: the way on is to sign in again and allow Drive.
      slot.append(button("Connect again", () => void signIn(state, slot, done, where), { id: "drive-connect-again", class: "primary" }));
    }
  }
}

/** The largest part of a chosen file that is read: a client file is well under 1 KB, and the
 * backend refuses anything larger than 64 KB with its own sentence. */
const CLIENT_FILE_READ_LIMIT = 64 * 1024 + 1;

function readText(file: Blob): Promise<string> {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(String(reader.result ?? ""));
    reader.onerror = () => reject({ code: "io_error", message: "the file could not be read" });
    reader.readAsText(file.slice(0, CLIENT_FILE_READ_LIMIT));
  });
}

/** "Connect Google Drive" without an OAuth client: what a Desktop app client is, how to make
 * one in Google Cloud Console, and two ways to give it (the downloaded JSON, or the ID and
 * secret). `saved` gets the new state once the client is saved. */
export function googleSetupDialog(saved: (s: AppState) => void): void {
  const error = h("div", { class: "slot", id: "google-setup-error", "aria-live": "polite" });
  const file = h("input", { id: "google-client-file", type: "file", accept: ".json,application/json" });
  const id = h("input", { id: "google-client-id", type: "text", autocomplete: "off", spellcheck: "false", placeholder: "….apps.googleusercontent.com" });
  const secret = h("input", { id: "google-client-secret", type: "password", autocomplete: "off", spellcheck: "false" });
  const cancel = button("Cancel", () => d.close(), { id: "google-setup-cancel" });

  const showProblem = (e: unknown) => {
    const err = asApiError(e);
    // A client that can't be used is one sentence saying what to do; anything else is explained.
    error.replaceChildren(
      err.code === "bad_input" ? h("p", { class: "error", role: "alert", id: "google-setup-problem" }, err.message) : errorBox(err, "google-setup-problem"),
    );
  };
  const submit = async (client: { id: string; secret: string } | { file_contents: string }) => {
    error.replaceChildren();
    d.setBusy(true);
    try {
      const r = await api.setGoogleClient(client);
      d.setBusy(false);
      d.close();
      saved(r.state);
    } catch (e) {
      d.setBusy(false);
      showProblem(e);
    }
  };
  const save = button(
    "Save and connect",
    () =>
      busy(save, "Saving…", async () => {
        if (!id.value.trim() && !secret.value.trim()) {
          showProblem({ code: "bad_input", message: "Choose the downloaded JSON file, or paste the Client ID and Client secret of your Desktop app client." });
          return;
        }
        await submit({ id: id.value, secret: secret.value });
      }),
    { id: "google-setup-save", class: "primary" },
  );
  file.addEventListener("change", () => {
    const chosen = file.files?.[0];
    if (!chosen) return;
    void busy(save, "Saving…", async () => {
      try {
        await submit({ file_contents: await readText(chosen) });
      } catch (e) {
        showProblem(e);
      }
      file.value = "";
    });
  });

  const step = (...parts: (string | Node)[]) => h("li", {}, ...parts);
  const b = (text: string) => h("strong", {}, text);
  const d = openDialog({
    id: "google-setup-dialog",
    title: "Connect Google Drive: your Google client",
    body: [
      h(
        "p",
        {},
        "Driveback talks to your Google Drive through your own Google Cloud project: a free “Desktop app” OAuth client that you create once. Your backups go straight from this computer to your Drive; nothing goes through our servers.",
      ),
      h(
        "ol",
        { id: "google-setup-steps", class: "small" },
        step("Open ", b("Google Cloud Console"), " (console.cloud.google.com) and create or select a project."),
        step(b("APIs & Services"), " → ", b("Library"), ": find ", b("Google Drive API"), " and enable it."),
        step(b("Google Auth Platform"), " (the ", b("OAuth consent screen"), "): enter an app name, choose user type ", b("External"), ", and add yourself as a test user."),
        step(b("Clients"), " → ", b("Create client"), " (or ", b("Credentials"), " → ", b("Create credentials"), " → ", b("OAuth client ID"), "): Application type ", b("Desktop app"), ", then ", b("Create"), "."),
        step(b("Download JSON"), " right away: Google shows the client secret only when the client is created."),
      ),
      h("p", { class: "muted small" }, "While the app is in Testing, Google ends the sign-in after 7 days and Driveback asks you to reconnect; publish the app in Google Auth Platform to avoid it."),
      h("label", { for: "google-client-file" }, "Choose the downloaded file (client_secret_….json)"),
      file,
      h("p", { class: "muted small" }, "Or paste them from the client's page:"),
      h("label", { for: "google-client-id" }, "Client ID"),
      id,
      h("label", { for: "google-client-secret" }, "Client secret"),
      secret,
      error,
    ],
    actions: [cancel, save],
    initialFocus: file,
  });
}

/** "Waiting for Google…": Cancel, Esc or a click outside stop the sign-in. In case no browser
 * opened, the sign-in address shows too once the backend has it. */
function waitingDialog(stillWaiting: () => boolean) {
  const cancel = button("Cancel", () => d.close(), { id: "drive-connect-cancel" });
  const address = h("div", { class: "slot", id: "drive-connect-address" });
  const stopListening = onBackendEvent<{ url: string }>("drive-connect-url", ({ url }) =>
    address.replaceChildren(
      h("p", { class: "small" }, "No browser window? Open this address in your browser:"),
      h("code", { class: "key", id: "drive-connect-url", tabindex: "0" }, url),
    ),
  );
  const d = openDialog({
    id: "drive-connect-dialog",
    title: "Waiting for Google…",
    body: [
      h("p", {}, "A browser window opened for you to sign in to Google and let Driveback keep its backups in your Drive."),
      h("p", { class: "muted small" }, "Finish there, then come back here. Driveback only sees the files it makes."),
      h("div", { class: "bar indeterminate", role: "progressbar", "aria-label": "Waiting for Google" }, h("span", {})),
      address,
    ],
    actions: [cancel],
    initialFocus: cancel,
    onClose: () => {
      stopListening();
      if (stillWaiting()) void api.cancelConnectDrive().catch(() => undefined);
    },
  });
  return d;
}

/** Asks first; Cancel has the focus. `done` gets the new state. */
export function disconnectDrive(done: (s: AppState) => void): void {
  const slot = h("div", { class: "slot", "aria-live": "polite" });
  const cancel = button("Cancel", () => d.close(), { id: "drive-disconnect-cancel" });
  const confirm = button(
    "Disconnect",
    () =>
      busy(confirm, "Disconnecting…", async () => {
        slot.replaceChildren();
        d.setBusy(true);
        try {
          const r = await api.disconnectDrive();
          d.setBusy(false);
          d.close();
          toast(r.message);
          done(r.state);
        } catch (e) {
          d.setBusy(false);
          slot.replaceChildren(errorBox(e));
        }
      }),
    { id: "drive-disconnect-confirm", class: "danger" },
  );
  const d = openDialog({
    id: "drive-disconnect-dialog",
    title: "Disconnect Google Drive?",
    role: "alertdialog",
    body: [
      h("p", { id: "drive-disconnect-text" }, "Driveback will stop backing up to Drive and revoke its access. Backups already on Drive stay there."),
      slot,
    ],
    actions: [cancel, confirm],
    initialFocus: cancel,
  });
}
