// Google Drive: connect (sign in in the browser, with a "Waiting for Google…" dialog that can
// cancel it) and disconnect (after asking).
import { api, asApiError, onBackendEvent, type AppState } from "../api";
import { button, openDialog } from "../dialog";
import { busy, h } from "../dom";
import { errorBox, showError, toast } from "../messages";

/** Connects Google Drive; `done` gets the new state once the user has agreed. Errors go to
 * `slot`; a cancelled sign-in shows nothing. */
export async function connectDrive(state: AppState, slot: HTMLElement, done: (s: AppState) => void): Promise<void> {
  slot.replaceChildren();
  let waiting = true;
  // Without Google sign-in in this build, the backend answers at once with the reason.
  const d = state.drive.available ? waitingDialog(() => waiting) : null;
  try {
    const r = await api.connectDrive();
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
    showError(slot, err);
  }
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
