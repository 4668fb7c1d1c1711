// First run: connect MongoDB, choose where backups go, set the passphrase (with WhatsApp's
// warning that a lost passphrase cannot be recovered) and offer to show the key.
import { api, asApiError, type AppState } from "../api";
import { busy, h, replace } from "../dom";
import { showError, toast } from "../messages";
import { connectDrive } from "./drive";
import { showKeyDialog } from "./keys";

type Step = "connect" | "destination" | "passphrase";

export function firstStep(s: AppState): Step {
  if (!s.mongo.configured || !s.mongo.database) return "connect";
  if (!s.destination.kind || (s.destination.kind === "folder" && !s.destination.folder)) return "destination";
  return "passphrase";
}

function stepper(current: Step): HTMLElement {
  const steps: [Step, string][] = [
    ["connect", "Database"],
    ["destination", "Where backups go"],
    ["passphrase", "Passphrase"],
  ];
  const idx = steps.findIndex(([s]) => s === current);
  return h(
    "ol",
    { class: "stepper", "aria-label": "Setup steps" },
    ...steps.map(([, label], i) =>
      h("li", { class: i < idx ? "done" : i === idx ? "current" : "", "aria-current": i === idx ? "step" : undefined }, label),
    ),
  );
}

export function renderFirstRun(root: HTMLElement, state: AppState, onDone: (s: AppState) => void, step: Step = firstStep(state)): void {
  const card = h("section", { class: "card", id: "firstrun", "data-step": step });
  replace(root, h("header", { class: "appbar" }, h("h1", {}, "Welcome to Driveback")), card);
  const go = (next: Step, s: AppState) => renderFirstRun(root, s, onDone, next);
  if (step === "connect") connectStep(card, state, (s) => go("destination", s));
  else if (step === "destination") destinationStep(card, state, (s) => go("passphrase", s), (s) => go("destination", s));
  else passphraseStep(card, state, onDone);
  card.prepend(stepper(step));
}

function connectStep(card: HTMLElement, state: AppState, next: (s: AppState) => void): void {
  const uri = h("input", {
    id: "mongo-uri",
    type: "password",
    autocomplete: "off",
    spellcheck: "false",
    placeholder: state.mongo.configured ? `Leave empty to use ${state.mongo.host}` : "mongodb://localhost:27017",
    "aria-describedby": "mongo-uri-help",
  });
  const select = h("select", { id: "database-select", disabled: true, "aria-label": "Database to back up" });
  const out = h("div", { class: "slot", "aria-live": "polite" });
  const test = h("button", { type: "button", id: "test-connection", class: "secondary" }, "Test connection");
  const cont = h("button", { type: "button", id: "connect-continue", class: "primary", disabled: true }, "Continue");

  test.addEventListener("click", () =>
    busy(test, "Testing…", async () => {
      out.replaceChildren();
      try {
        const value = uri.value.trim();
        const c = value ? await api.testConnection(value) : await api.listDatabases();
        select.replaceChildren(...c.databases.map((d) => h("option", { value: d }, d)));
        if (state.mongo.database && c.databases.includes(state.mongo.database)) select.value = state.mongo.database;
        select.disabled = c.databases.length === 0;
        cont.disabled = c.databases.length === 0;
        out.replaceChildren(
          h(
            "p",
            { class: "ok", id: "connection-ok" },
            c.databases.length
              ? `Connected to ${c.host}. Choose the database to back up.`
              : `Connected to ${c.host}, but it has no databases yet.`,
          ),
        );
        select.focus();
      } catch (e) {
        showError(out, e);
      }
    }),
  );
  cont.addEventListener("click", () =>
    busy(cont, "Saving…", async () => {
      try {
        const saved = await api.saveConnection(uri.value.trim() || null, select.value);
        if (saved.notice) toast(saved.notice);
        next(saved.state);
      } catch (e) {
        showError(out, e);
      }
    }),
  );

  card.append(
    h("h2", {}, "Connect your MongoDB database"),
    h(
      "p",
      {},
      "Driveback backs up one database. Its connection string is kept in your system keyring, never in a file.",
    ),
    h("label", { for: "mongo-uri" }, "Connection string"),
    uri,
    h("p", { class: "muted small", id: "mongo-uri-help" }, "For example mongodb://user:password@host:27017"),
    h("div", { class: "row" }, test),
    h("label", { for: "database-select" }, "Database"),
    select,
    out,
    h("div", { class: "actions" }, cont),
  );
  uri.focus();
}

/** Google Drive or a folder. Once Drive is connected, the step shows the account: Continue keeps
 * it, unless a folder is typed. */
function destinationStep(card: HTMLElement, state: AppState, next: (s: AppState) => void, again: (s: AppState) => void): void {
  const onDrive = state.destination.kind === "drive";
  const folder = h("input", {
    id: "folder-input",
    type: "text",
    spellcheck: "false",
    value: state.destination.folder ?? "",
    placeholder: "/home/you/Backups/Driveback",
  });
  const out = h("div", { class: "slot", "aria-live": "polite" });
  const drive = h("button", { type: "button", id: "drive-connect", class: "secondary" }, "Connect Google Drive");
  const cont = h("button", { type: "button", id: "destination-continue", class: "primary" }, "Continue");
  drive.addEventListener("click", () => void connectDrive(state, out, again));
  cont.addEventListener("click", () =>
    busy(cont, "Saving…", async () => {
      try {
        next(onDrive && !folder.value.trim() ? state : await api.setDestinationFolder(folder.value));
      } catch (e) {
        showError(out, e);
      }
    }),
  );
  card.append(
    h("h2", {}, "Where should backups go?"),
    h("p", {}, "Backups are encrypted before they leave this computer: only your passphrase opens them."),
    onDrive
      ? h(
          "p",
          { class: "ok", id: "firstrun-drive" },
          "✓ Backups go to your Google Drive, as ",
          h("strong", { id: "firstrun-drive-account" }, state.drive.account ?? ""),
          ".",
        )
      : h("div", { class: "row" }, drive),
    h(
      "label",
      { for: "folder-input" },
      onDrive ? "Or a folder instead (a USB disk, a network share, a synced folder)" : "Or a folder (a USB disk, a network share, a synced folder)",
    ),
    folder,
    out,
    h("div", { class: "actions" }, cont),
  );
  (onDrive ? cont : folder).focus();
}

function passphraseStep(card: HTMLElement, state: AppState, onDone: (s: AppState) => void): void {
  const out = h("div", { class: "slot", "aria-live": "polite" });
  const pass = h("input", { id: "passphrase", type: "password", autocomplete: "new-password" });
  if (state.destination.has_key) {
    // A new device: the backups already have a passphrase.
    const unlock = h("button", { type: "button", id: "passphrase-unlock", class: "primary" }, "Continue");
    unlock.addEventListener("click", () =>
      busy(unlock, "Checking…", async () => {
        try {
          const r = await api.checkPassphrase(pass.value);
          if (!r.ok) return showError(out, { code: "wrong_passphrase", message: "" });
          onDone(await api.appState());
        } catch (e) {
          showError(out, e);
        }
      }),
    );
    card.append(
      h("h2", {}, "Enter your passphrase"),
      h("p", {}, `Backups in ${state.destination.label} are protected by a passphrase. Enter it to use them on this computer.`),
      h("label", { for: "passphrase" }, "Passphrase"),
      pass,
      out,
      h("div", { class: "actions" }, unlock),
    );
    pass.focus();
    return;
  }
  const repeat = h("input", { id: "passphrase-repeat", type: "password", autocomplete: "new-password" });
  const understood = h("input", { id: "passphrase-understood", type: "checkbox" });
  const create = h("button", { type: "button", id: "passphrase-create", class: "primary" }, "Create");
  create.addEventListener("click", () => {
    out.replaceChildren();
    if (pass.value !== repeat.value) {
      return showError(out, { code: "bad_input", message: "the two passphrases are not the same" });
    }
    if (!understood.checked) {
      return showError(out, {
        code: "bad_input",
        message: "tick the box to confirm you understand that a lost passphrase cannot be recovered",
      });
    }
    return busy(create, "Creating…", async () => {
      try {
        await api.setPassphrase(pass.value);
        keyOffer(card, pass.value, onDone);
      } catch (e) {
        showError(out, asApiError(e));
      }
    });
  });
  card.append(
    h("h2", {}, "Protect your backups with a passphrase"),
    h(
      "p",
      {},
      "Your backups are end-to-end encrypted: nobody can read them without this passphrase — not Google, not us.",
    ),
    h(
      "div",
      { class: "warning", role: "note", id: "passphrase-warning" },
      h("strong", {}, "If you lose this passphrase, your backups cannot be restored. "),
      "Driveback cannot reset it or recover it for you. Write it down and keep it somewhere safe.",
    ),
    h("label", { for: "passphrase" }, "Passphrase (at least 8 characters)"),
    pass,
    h("label", { for: "passphrase-repeat" }, "Repeat the passphrase"),
    repeat,
    h(
      "label",
      { class: "check" },
      understood,
      " I understand that if I lose my passphrase, I won't be able to restore my backups.",
    ),
    out,
    h("div", { class: "actions" }, create),
  );
  pass.focus();
}

function keyOffer(card: HTMLElement, passphrase: string, onDone: (s: AppState) => void): void {
  const show = h("button", { type: "button", id: "show-key-button", class: "secondary" }, "Show my key");
  const done = h("button", { type: "button", id: "firstrun-done", class: "primary" }, "Done");
  show.addEventListener("click", () => showKeyDialog(passphrase));
  done.addEventListener("click", () => busy(done, "Opening…", async () => onDone(await api.appState())));
  card.replaceChildren(
    h("h2", { id: "key-offer" }, "Your backups are protected"),
    h(
      "p",
      {},
      "As well as your passphrase, you can keep the backup key itself: a long code that opens your backups if you ever forget the passphrase. Store it somewhere safe, away from this computer.",
    ),
    h("div", { class: "actions" }, show, done),
  );
  done.focus();
}
