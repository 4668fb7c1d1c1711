// First run, in two steps and as few clicks as we can: (1) the database (tested as it is pasted,
// the database preselected) and where backups go (Connect Google Drive is the main button; the
// app moves on by itself once Google has answered); (2) the passphrase, with WhatsApp's warning,
// where the acknowledgement is the button that creates it and starts the first backup. The
// backup key is offered afterwards, as a card on the home screen. On a new device, whose Drive
// already holds backups, step 2 asks for the passphrase once and offers the latest backup.
import { api, asApiError, jobChannel, type AppState, type Connection } from "../api";
import { busy, h, replace } from "../dom";
import { showError, toast } from "../messages";
import { confirmRestore } from "./backups";
import { connectDrive, type DriveWhere } from "./drive";

type Step = "setup" | "passphrase";
/** Where the app goes once the first run is over. */
export type FirstRunDone = (s: AppState, route?: "home" | "backups") => void;

/** The key card on the home screen waits for this mark (set when the first run creates the key). */
export const KEY_OFFER = "driveback.keyOffer";

export function firstStep(s: AppState): Step {
  if (!s.mongo.configured || !s.mongo.database) return "setup";
  if (!s.destination.kind || (s.destination.kind === "folder" && !s.destination.folder)) return "setup";
  return "passphrase";
}

function stepper(current: Step): HTMLElement {
  const steps: [Step, string][] = [
    ["setup", "Database and Drive"],
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

export function renderFirstRun(root: HTMLElement, state: AppState, onDone: FirstRunDone, step: Step = firstStep(state)): void {
  const card = h("section", { class: "card", id: "firstrun", "data-step": step });
  replace(root, h("header", { class: "appbar" }, h("h1", {}, "Welcome to Driveback")), card);
  if (step === "setup") setupStep(card, state, (s) => renderFirstRun(root, s, onDone, firstStep(s)));
  else if (state.destination.has_key) unlockStep(card, state, onDone);
  else passphraseStep(card, onDone);
  card.prepend(stepper(step));
}

/** The database name in a connection string's path (`mongodb://host/NAME?...`), if any. */
export function databaseInUri(uri: string): string | null {
  const m = /^mongodb(?:\+srv)?:\/\/[^/?#]*\/([^?#]*)/.exec(uri.trim());
  if (!m || !m[1]) return null;
  try {
    return decodeURIComponent(m[1]);
  } catch {
    return m[1];
  }
}

/** Which database to preselect: the one the string names, else the one chosen before, else the
 * only one there is. */
export function preselect(databases: string[], uri: string, before: string | null): string | null {
  const named = databaseInUri(uri);
  if (named && databases.includes(named)) return named;
  if (before && databases.includes(before)) return before;
  return databases.length === 1 ? databases[0] : null;
}

function setupStep(card: HTMLElement, state: AppState, next: (s: AppState) => void): void {
  const uri = h("input", {
    id: "mongo-uri",
    type: "password",
    autocomplete: "off",
    spellcheck: "false",
    placeholder: state.mongo.configured ? `Leave empty to use ${state.mongo.host}` : "mongodb://localhost:27017",
    "aria-describedby": "mongo-uri-help",
  });
  const select = h("select", { id: "database-select", disabled: true, "aria-label": "Database to back up" });
  const status = h("div", { class: "slot", "aria-live": "polite", id: "connection-status" });
  const test = h("button", { type: "button", id: "test-connection", class: "secondary" }, "Test connection");
  const out = h("div", { class: "slot", "aria-live": "polite" });
  let tested: Connection | null = null;
  let testing = 0;

  const chosen = () => (tested && select.value ? select.value : null);
  const runTest = async () => {
    const value = uri.value.trim();
    if (!value && !state.mongo.configured) return;
    const mine = ++testing;
    status.replaceChildren(h("p", { class: "muted", id: "connection-testing" }, "Testing the connection…"));
    try {
      const c = value ? await api.testConnection(value) : await api.listDatabases();
      if (mine !== testing) return;
      tested = c;
      const pick = preselect(c.databases, value, state.mongo.database);
      select.replaceChildren(
        ...(pick ? [] : [h("option", { value: "", disabled: true, selected: true }, "Choose a database")]),
        ...c.databases.map((d) => h("option", { value: d }, d)),
      );
      select.value = pick ?? "";
      select.disabled = c.databases.length === 0;
      status.replaceChildren(
        h(
          "p",
          { class: "ok", id: "connection-ok" },
          c.databases.length === 0
            ? `Connected to ${c.host}, but it has no databases yet.`
            : pick
              ? `✓ Connected to ${c.host}.`
              : `✓ Connected to ${c.host}. Choose the database to back up.`,
        ),
      );
      if (!pick && c.databases.length) select.focus();
    } catch (e) {
      if (mine !== testing) return;
      tested = null;
      select.replaceChildren();
      select.disabled = true;
      showError(status, e);
    }
  };
  // Tested as it is pasted or typed (after a pause), and at once when a string is already saved.
  let timer: ReturnType<typeof setTimeout> | undefined;
  uri.addEventListener("input", () => {
    clearTimeout(timer);
    if (/^mongodb(\+srv)?:\/\/./.test(uri.value.trim())) timer = setTimeout(() => void runTest(), 600);
  });
  uri.addEventListener("paste", () => {
    clearTimeout(timer);
    timer = setTimeout(() => void runTest(), 0);
  });
  uri.addEventListener("keydown", (e) => {
    if (e.key === "Enter") void busy(test, "Testing…", runTest);
  });
  test.addEventListener("click", () => busy(test, "Testing…", runTest));

  /** Saves the database before the destination: nothing to save twice later. */
  const saveDatabase = async (): Promise<boolean> => {
    out.replaceChildren();
    const database = chosen();
    if (!database) {
      showError(out, {
        code: "bad_input",
        message: tested ? "choose the database to back up first" : "paste your database's connection string first: it is tested as you paste it",
      });
      (tested ? select : uri).focus();
      return false;
    }
    try {
      const saved = await api.saveConnection(uri.value.trim() || null, database);
      if (saved.notice) toast(saved.notice);
      return true;
    } catch (e) {
      showError(out, e);
      return false;
    }
  };

  const onDrive = state.destination.kind === "drive" && state.drive.connected;
  const where = h("div", { class: "choices", role: "radiogroup", "aria-label": "Where in Google Drive" });
  const whereChoice = (value: DriveWhere, label: string, help: string, checked: boolean) =>
    h(
      "label",
      { class: "check" },
      h("input", { type: "radio", name: "drive-where", value, id: `drive-where-${value}`, checked }),
      " ",
      h("span", {}, label, h("span", { class: "muted small" }, ` ${help}`)),
    );
  where.append(
    whereChoice("appdata", "A hidden app folder", "(recommended: only Driveback can see or change it)", true),
    whereChoice("file", "A visible “Driveback Backups” folder", "(you see it in Drive; Driveback sees only the files it made)", false),
  );
  const driveWhere = (): DriveWhere =>
    (where.querySelector<HTMLInputElement>("input[name=drive-where]:checked")?.value as DriveWhere) ?? "appdata";

  const drive = h("button", { type: "button", id: "drive-connect", class: "primary" }, "Connect Google Drive");
  drive.addEventListener("click", () =>
    busy(drive, "Connecting…", async () => {
      if (!(await saveDatabase())) return;
      // Google answers in the browser; the app moves on by itself.
      await connectDrive(state, out, next, driveWhere());
    }),
  );
  const cont = h("button", { type: "button", id: "destination-continue", class: "primary" }, "Continue");
  cont.addEventListener("click", () =>
    busy(cont, "Saving…", async () => {
      if (await saveDatabase()) next(await api.appState());
    }),
  );

  const folder = h("input", {
    id: "folder-input",
    type: "text",
    spellcheck: "false",
    value: state.destination.folder ?? "",
    placeholder: "/home/you/Backups/Driveback",
    "aria-label": "Folder for the backups",
  });
  const useFolder = h("button", { type: "button", id: "folder-use", class: "secondary" }, "Back up to this folder");
  useFolder.addEventListener("click", () =>
    busy(useFolder, "Saving…", async () => {
      if (!(await saveDatabase())) return;
      try {
        next(await api.setDestinationFolder(folder.value));
      } catch (e) {
        showError(out, e);
      }
    }),
  );
  const choose = h("button", { type: "button", id: "folder-choose", class: "secondary" }, "Choose…");
  choose.addEventListener("click", async () => {
    const picked = await pickFolder();
    if (picked) folder.value = picked;
  });
  const folderPart = h(
    "details",
    { id: "folder-choice", open: state.destination.kind === "folder" },
    h("summary", {}, "Or back up to a folder (a USB disk, a network share, a synced folder)"),
    h("div", { class: "row" }, folder, choose),
    h("div", { class: "row" }, useFolder),
  );

  card.append(
    h("h2", {}, "Your database"),
    h("p", {}, "Driveback backs up one MongoDB database. Its connection string is kept in your system keyring, never in a file."),
    h("label", { for: "mongo-uri" }, "Connection string"),
    uri,
    h("p", { class: "muted small", id: "mongo-uri-help" }, "For example mongodb://user:password@host:27017/mydb — it is tested as you paste it."),
    h("div", { class: "row" }, test),
    h("label", { for: "database-select" }, "Database"),
    select,
    status,
    h("h2", {}, "Where backups go"),
    h("p", {}, "Backups are encrypted before they leave this computer: only your passphrase opens them."),
    onDrive
      ? h(
          "p",
          { class: "ok", id: "firstrun-drive" },
          "✓ Backups go to your Google Drive, as ",
          h("strong", { id: "firstrun-drive-account" }, state.drive.account ?? ""),
          ".",
        )
      : h("div", {}, h("div", { class: "row" }, drive), h("details", { id: "drive-where" }, h("summary", {}, "Where in my Drive?"), where)),
    onDrive ? h("div", { class: "actions" }, cont) : "",
    folderPart,
    out,
  );
  if (state.mongo.configured) void runTest();
  if (state.mongo.configured && onDrive) cont.focus();
  else if (state.mongo.configured) drive.focus();
  else uri.focus();
}

/** The system folder picker where the app has it (tauri-plugin-dialog); else null and the path
 * is typed. */
async function pickFolder(): Promise<string | null> {
  try {
    const { open } = await import("@tauri-apps/plugin-dialog");
    const picked = await open({ directory: true, multiple: false, title: "Choose the folder for your backups" });
    return typeof picked === "string" ? picked : null;
  } catch {
    return null;
  }
}

/** The passphrase: WhatsApp's warning word for word; the acknowledgement is the button that
 * creates it and starts the first backup. */
function passphraseStep(card: HTMLElement, onDone: FirstRunDone): void {
  const out = h("div", { class: "slot", "aria-live": "polite" });
  const pass = h("input", { id: "passphrase", type: "password", autocomplete: "new-password" });
  const repeat = h("input", { id: "passphrase-repeat", type: "password", autocomplete: "new-password" });
  const login = h("input", { id: "firstrun-start-at-login", type: "checkbox", checked: true });
  const create = h(
    "button",
    { type: "button", id: "passphrase-create", class: "primary", "aria-describedby": "passphrase-warning" },
    "I understand: create it and back up now",
  );
  const go = () => {
    out.replaceChildren();
    if (pass.value !== repeat.value) {
      repeat.focus();
      return showError(out, { code: "bad_input", message: "the two passphrases are not the same: type the same one twice" });
    }
    return busy(create, "Creating…", async () => {
      try {
        await api.setPassphrase(pass.value);
      } catch (e) {
        showError(out, asApiError(e));
        pass.focus();
        return;
      }
      localStorage.setItem(KEY_OFFER, "1");
      if (login.checked) {
        await api.setStartAtLogin(true).catch((e) => toast(`Could not set Driveback to start when you log in: ${asApiError(e).message}`));
      }
      // The first backup starts now; the home screen follows it.
      await api.backupNow(jobChannel(() => undefined)).catch((e) => toast(asApiError(e).message));
      onDone(await api.appState());
    });
  };
  create.addEventListener("click", go);
  repeat.addEventListener("keydown", (e) => {
    if (e.key === "Enter") void go();
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
    h("label", { class: "check" }, login, " Start Driveback when I log in, so backups go on after a restart"),
    out,
    h("div", { class: "actions" }, create),
  );
  pass.focus();
}

/** A new device: the destination already holds backups and their key. The passphrase is asked
 * once; then the latest backup is one click from being restored, or the list is shown. */
function unlockStep(card: HTMLElement, state: AppState, onDone: FirstRunDone): void {
  const out = h("div", { class: "slot", "aria-live": "polite" });
  const pass = h("input", { id: "passphrase", type: "password", autocomplete: "current-password" });
  const restore = h("button", { type: "button", id: "unlock-restore", class: "primary" }, "Restore the latest backup…");
  const unlock = h("button", { type: "button", id: "passphrase-unlock", class: "secondary" }, "Unlock and show my backups");
  const check = async (): Promise<boolean> => {
    out.replaceChildren();
    try {
      const r = await api.checkPassphrase(pass.value);
      if (r.ok) return true;
      showError(out, { code: "wrong_passphrase", message: "" });
    } catch (e) {
      showError(out, e);
    }
    pass.focus();
    return false;
  };
  unlock.addEventListener("click", () =>
    busy(unlock, "Checking…", async () => {
      if (await check()) onDone(await api.appState(), "backups");
    }),
  );
  restore.addEventListener("click", () =>
    busy(restore, "Checking…", async () => {
      if (!(await check())) return;
      try {
        const plan = await api.prepareRestore("latest", pass.value);
        const s = await api.appState();
        onDone(s, "backups");
        confirmRestore(plan, () => window.dispatchEvent(new Event("driveback:refresh")));
      } catch (e) {
        showError(out, e);
      }
    }),
  );
  pass.addEventListener("keydown", (e) => {
    if (e.key === "Enter") unlock.click();
  });
  card.append(
    h("h2", { id: "unlock-title" }, "Your backups are here"),
    h("p", {}, `${state.destination.label} already holds Driveback backups. Enter their passphrase to use them on this computer.`),
    h("label", { for: "passphrase" }, "Passphrase"),
    pass,
    out,
    h("div", { class: "actions" }, unlock, restore),
  );
  pass.focus();
}
