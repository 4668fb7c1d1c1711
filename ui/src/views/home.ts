// The backup settings card, as WhatsApp's backup screen: last backup, Back up with progress and
// Cancel, where backups go (Google Drive or a folder), frequency and time, health, passphrase,
// View backups. The backend's pushes (a backup started by the schedule or the tray, a change of
// state) reach the view on screen.
import { api, asApiError, jobChannel, onBackendEvent, type AppState, type Frequency, type JobEvent, type Progress } from "../api";
import { button, openDialog } from "../dialog";
import { busy, h, replace, select } from "../dom";
import { formatWhen, lastBackupLine, progressLine, scheduleLine } from "../format";
import { errorBox, showError, toast } from "../messages";
import { connectDrive, disconnectDrive, driveWhereOf, type DriveWhere } from "./drive";
import { healthBadge } from "./health";
import { KEY_OFFER } from "./firstrun";
import { changePassphraseDialog, passphraseCheck, showKeyDialog } from "./keys";
import { settingsDialog, updateSettings } from "./settings";

export interface HomeNav {
  backups: () => void;
  refresh: () => Promise<void>;
  /** Draws the view again with this state. */
  show: (state: AppState) => void;
}

const FREQUENCIES: [Frequency, string][] = [
  ["off", "Only when I tap “Back up”"],
  ["daily", "Daily"],
  ["weekly", "Weekly"],
  ["monthly", "Monthly"],
];

/** The home view last drawn, for the backend's pushes and the end of a backup. */
interface Shown {
  main: HTMLElement;
  outcome: HTMLElement;
  jobStarted: () => Promise<void>;
}
let shown: Shown | null = null;
/** Counts the drawings of the view: the progress of a backup goes to the newest. */
let drawing = 0;
/** How the last backup ended when not well (its error, "cancelled"): shown until the next one,
 * even when the view is drawn again meanwhile (the backend says the state changed as it ends). */
let kept: HTMLElement | null = null;

function keepOutcome(node: HTMLElement | null): void {
  kept = node;
  shown?.outcome.replaceChildren(...(node ? [node] : []));
}

export function renderHome(root: HTMLElement, state: AppState, nav: HomeNav): void {
  const mine = ++drawing;
  /** Draws `s`, with the focus on the Drive account's button. */
  const showDrive = (s: AppState) => {
    nav.show(s);
    document.querySelector<HTMLElement>("#drive-disconnect, #drive-connect")?.focus();
  };
  // Once Drive is connected again, a backup's failure for want of it is past.
  const connected = (s: AppState) => {
    keepOutcome(null);
    showDrive(s);
  };
  const banners = h("div", { class: "banners" });
  if (!state.tray_notice_shown) {
    const ok = button("Got it", async () => {
      await api.dismissTrayNotice().catch(() => undefined);
      notice.remove();
    }, { id: "tray-notice-ok" });
    const notice = h(
      "div",
      { class: "banner", id: "tray-notice", role: "note" },
      h("span", {}, "Closing this window keeps Driveback running in the tray, so automatic backups go on. Quit it from the tray menu."),
      ok,
    );
    banners.append(notice);
  }
  if (localStorage.getItem(KEY_OFFER)) {
    // Offered once the first backup is under way, instead of one more step in the first run.
    const done = () => {
      localStorage.removeItem(KEY_OFFER);
      offer.remove();
    };
    const show = button("Show my key", async () => {
      if (await showKeyDialog()) done();
    }, { id: "show-key-button", class: "primary" });
    const later = button("Not now", done, { id: "key-offer-later" });
    const offer = h(
      "div",
      { class: "banner", id: "key-offer", role: "note" },
      h(
        "span",
        {},
        h("strong", {}, "Keep your backup key somewhere safe. "),
        "With it, your backups open even if you forget the passphrase. You can also see it later in Settings.",
      ),
      show,
      later,
    );
    banners.append(offer);
  }
  if (state.passphrase_check_due) {
    const check = button("Check now", () => passphraseCheck(() => banner.remove()), { id: "passphrase-check" });
    const banner = h(
      "div",
      { class: "banner", id: "passphrase-check-banner", role: "note" },
      h("span", {}, "Do you still know your passphrase? Without it your backups cannot be restored."),
      check,
    );
    banners.append(banner);
  }
  if (state.drive.reconnect_needed) {
    // The one way out is the backup card's main button ("Sign in to Google again").
    banners.append(
      h(
        "div",
        { class: "banner warn", id: "drive-reconnect-banner", role: "note" },
        h("span", {}, `Google Drive needs reconnecting: ${state.drive.problem ?? "its sign-in has ended."}`),
      ),
    );
  }
  if (state.settings_problem) {
    banners.append(
      h(
        "div",
        { class: "banner warn", id: "settings-problem-banner", role: "note" },
        h("span", {}, `Your settings could not be read, so the defaults are in use: ${state.settings_problem}`),
      ),
    );
  }

  // --- The backup card -------------------------------------------------------------------
  // The line at a glance (the same as the tray's and `driveback status`), green, amber or red as
  // the last backup ages; then the last backup's date and what it holds.
  const glance = h("p", { id: "glance", class: `big glance ${state.glance.level}`, "data-level": state.glance.level }, state.glance.text);
  const last = h("p", { id: "last-backup", class: "small" }, lastBackupLine(state.last_backup));
  const lastDetail = h(
    "p",
    { class: "muted small", id: "last-backup-detail" },
    state.last_backup
      ? `${state.last_backup.documents.toLocaleString("en")} documents · ${state.last_backup.status === "complete" ? "complete" : "partial"}${
          state.last_backup.from_history ? " · as this computer last saw it: the backups can't be read right now" : ""
        }`
      : "Make your first backup now.",
  );
  const bar = h("div", { class: "bar", id: "progress-bar", role: "progressbar", "aria-valuemin": "0", "aria-valuemax": "100", "aria-label": "Backup progress" }, h("span", {}));
  const progressText = h("p", { id: "progress-text", class: "small" }, "");
  const cancel = h("button", { type: "button", id: "cancel-backup", class: "secondary" }, "Cancel");
  const progress = h("div", { id: "backup-progress", class: "progress", hidden: true }, bar, h("div", { class: "row spread" }, progressText, cancel));
  const outcome = h("div", { class: "slot", id: "backup-outcome", "aria-live": "polite" }, kept);
  const backupNow = h("button", { type: "button", id: "backup-now", class: "primary" }, "Back up");
  let jobId: string | null = null;
  let following = false;

  const showProgress = (p: Progress | null) => {
    progress.hidden = false;
    backupNow.disabled = true;
    const pct = p?.percent ?? null;
    const fill = bar.firstElementChild as HTMLElement;
    if (pct === null) {
      bar.classList.add("indeterminate");
      bar.removeAttribute("aria-valuenow");
      fill.style.width = "";
    } else {
      bar.classList.remove("indeterminate");
      bar.setAttribute("aria-valuenow", String(Math.floor(pct)));
      fill.style.width = `${pct}%`;
    }
    progressText.textContent = p ? progressLine(p) : "Starting…";
  };
  const endProgress = () => {
    progress.hidden = true;
    backupNow.disabled = signInAgain !== null;
    jobId = null;
    following = false;
  };
  const onEvent = (e: JobEvent) => {
    if (e.event === "progress") {
      if (mine === drawing) showProgress(e);
      return;
    }
    endProgress();
    if (e.event === "finished") {
      keepOutcome(null);
      toast("Backup complete.");
      void nav.refresh();
    } else if (e.event === "failed") {
      keepOutcome(failureBox(e.error, state, nav));
      // What stopped it (a revoked sign-in, a full Drive) changes the card's main action.
      void nav.refresh();
    } else {
      keepOutcome(h("p", { class: "muted", id: "backup-cancelled" }, "Backup cancelled. Nothing was kept of it."));
    }
  };
  /** Starts a backup, or joins the one running (the backend attaches to it). */
  const start = async () => {
    following = true;
    keepOutcome(null);
    showProgress(null);
    try {
      const r = await api.backupNow(jobChannel(onEvent));
      jobId = r.job_id;
    } catch (e) {
      endProgress();
      keepOutcome(failureBox(e, state, nav));
      // What stopped it (a revoked sign-in, a database that is down) shows in the health too.
      void nav.refresh();
    }
  };
  /** Joins the running backup (never starts one): its progress and its end show here. */
  const join = async (progress: Progress | null) => {
    following = true;
    showProgress(progress);
    try {
      const r = await api.followBackup(jobChannel(onEvent));
      if (r) jobId = r.job_id;
      else endProgress();
    } catch {
      endProgress();
    }
  };
  const follow = (job: AppState["job"]) => {
    if (job?.kind !== "backup") return;
    void join(job.progress);
  };
  backupNow.addEventListener("click", () => void start());
  // One call to action per problem: while Google's sign-in is refused, the card's main button
  // signs in again, and Back up waits for it.
  const signInSlot = h("div", { class: "slot", "aria-live": "polite" });
  // The same after Disconnect: backups go to Drive, which has no sign-in: Connect is the action.
  const onDriveWithoutSignIn = state.destination.kind === "drive" && (state.drive.reconnect_needed || !state.drive.connected);
  const signInLabel = state.drive.reconnect_needed ? "Sign in to Google again" : "Connect Google Drive";
  const signInAgain = onDriveWithoutSignIn
    ? button(signInLabel, () => void connectDrive(state, signInSlot, connected), { id: "card-sign-in", class: "primary" })
    : null;
  if (signInAgain) {
    backupNow.disabled = true;
    backupNow.className = "secondary";
    backupNow.title = `${signInLabel} first`;
  }
  cancel.addEventListener("click", async () => {
    if (!jobId) return;
    try {
      await api.cancelJob(jobId);
    } catch (e) {
      keepOutcome(errorBox(e));
    }
  });

  const card = h(
    "section",
    { class: "card", id: "backup-card", "aria-labelledby": "backup-card-title" },
    h("div", { class: "card-head" }, h("span", { class: "icon", "aria-hidden": "true" }, "☁"), h("h2", { id: "backup-card-title" }, "Backup")),
    glance,
    last,
    lastDetail,
    h(
      "p",
      { class: "muted" },
      `Back up ${state.mongo.database ?? "your database"}${backupTarget(state)}. You can restore it if your data is ever lost or damaged. Backups are end-to-end encrypted with your passphrase.`,
    ),
    h("div", { class: "row" }, signInAgain, backupNow),
    signInSlot,
    progress,
    outcome,
  );

  // --- Google Drive settings ----------------------------------------------------------------
  const settingsSlot = h("div", { class: "slot", "aria-live": "polite" });
  const drive = state.drive;
  const driveAction = drive.connected
    ? button("Disconnect", () => disconnectDrive(showDrive), { id: "drive-disconnect" })
    : button("Connect", () => void connectDrive(state, settingsSlot, connected), { id: "drive-connect" });
  // The hidden app folder or a visible folder: the other one needs Google's consent for its scope,
  // so a change signs in again; the backups already in the first place stay there.
  const onDrive = drive.connected && state.destination.kind === "drive";
  const driveWhereSelect = select(
    { id: "drive-where-setting" },
    [
      ["appdata", "A hidden app folder"],
      ["file", "A visible “Driveback Backups” folder"],
    ],
    driveWhereOf(state),
  );
  driveWhereSelect.addEventListener("change", () => {
    const where = driveWhereSelect.value as DriveWhere;
    void connectDrive(state, settingsSlot, (s) => {
      toast(`New backups go to ${s.destination.label}. The backups already in Drive stay where they are.`);
      connected(s);
    }, where).then(() => {
      // A cancelled or refused sign-in leaves the backups where they were.
      if (driveWhereOf(state) !== where) driveWhereSelect.value = driveWhereOf(state);
    });
  });
  const changeFolder = button(
    state.destination.kind === "folder" ? "Change folder" : "Use a folder",
    () => folderDialog(state, nav),
    { id: "change-folder" },
  );

  const frequency = select({ id: "frequency", "aria-describedby": "schedule-note" }, FREQUENCIES, state.schedule.frequency);
  const time = h("input", { id: "backup-time", type: "time", value: state.schedule.time, "aria-describedby": "schedule-note" });
  time.disabled = frequency.value === "off";
  const scheduleNote = h(
    "p",
    { id: "schedule-note", class: "muted small", "aria-live": "polite" },
    scheduleLine(state.schedule.text, state.schedule.next_due),
  );
  // One save at a time, in the order of the changes.
  let saving = Promise.resolve();
  const saveSchedule = () => {
    const f = frequency.value as Frequency;
    const t = time.value;
    time.disabled = f === "off";
    saving = saving.then(async () => {
      settingsSlot.replaceChildren();
      try {
        const v = await updateSettings((s) => {
          s.schedule.frequency = f;
          s.schedule.time = t;
        });
        const fresh = await api.appState().catch(() => null);
        scheduleNote.textContent = scheduleLine(v.schedule_text, fresh?.schedule.next_due ?? null);
      } catch (e) {
        showError(settingsSlot, e);
      }
    });
  };
  frequency.addEventListener("change", saveSchedule);
  // Pause automatic backups until tomorrow (the tray offers the same); Back up still works.
  const paused = state.schedule.paused_until ?? null;
  const pauseRow =
    state.schedule.frequency === "off"
      ? null
      : paused
        ? h(
            "div",
            { class: "setting", id: "pause-row" },
            h("span", { id: "paused-note" }, `Automatic backups are paused until ${formatWhen(paused)}.`),
            button("Resume", () => void changePause(() => api.resumeAutomatic()), { id: "resume-automatic" }),
          )
        : h(
            "div",
            { class: "setting", id: "pause-row" },
            h("span", {}, "Not tonight?"),
            button("Pause until tomorrow", () => void changePause(() => api.pauseAutomatic()), { id: "pause-automatic" }),
          );
  const changePause = async (change: () => Promise<unknown>) => {
    settingsSlot.replaceChildren();
    try {
      await change();
      await nav.refresh();
    } catch (e) {
      showError(settingsSlot, e);
    }
  };
  time.addEventListener("change", saveSchedule);

  const settings = h(
    "section",
    { class: "card", id: "settings-card", "aria-labelledby": "settings-title" },
    h("h2", { id: "settings-title" }, "Google Drive settings"),
    settingRow("Google Drive account", drive.connected ? drive.account ?? "Connected" : "Not connected", driveAction, "drive-account"),
    settingRow("Backups go to", state.destination.label || "Not chosen yet", changeFolder, "destination-folder"),
    onDrive ? h("div", { class: "setting" }, h("label", { for: "drive-where-setting" }, "Where in Google Drive"), driveWhereSelect) : null,
    // A refused sign-in is said once, by the card and its banner.
    state.destination.problem && !signInAgain ? errorBox({ code: "destination_error", message: state.destination.problem }) : null,
    settingRow("Database", `${state.mongo.database ?? "—"} on ${state.mongo.host ?? "—"}`, button("Change", () => connectionDialog(nav), { id: "change-database" }), "database-name"),
    h("div", { class: "setting" }, h("label", { for: "frequency" }, "Back up automatically"), frequency),
    h("div", { class: "setting" }, h("label", { for: "backup-time" }, "Time"), time),
    scheduleNote,
    pauseRow,
    h("div", { class: "setting" }, h("span", {}, "Backup health"), healthBadge()),
    h("div", { class: "setting" }, h("span", {}, "Old backups, notifications and email"), button("More settings", () => void settingsDialog(), { id: "more-settings" })),
    settingsSlot,
  );

  const security = h(
    "section",
    { class: "card", id: "security-card", "aria-labelledby": "security-title" },
    h("h2", { id: "security-title" }, "End-to-end encrypted backup"),
    h("p", { class: "muted" }, "On. Your backups can only be opened with your passphrase or your backup key."),
    h(
      "div",
      { class: "row" },
      button("Change passphrase", () => changePassphraseDialog(), { id: "change-passphrase" }),
      button("Show key", () => void showKeyDialog(), { id: "show-key" }),
    ),
  );

  const view = button("View backups", () => nav.backups(), { id: "view-backups", class: "secondary wide" });

  replace(
    root,
    h(
      "header",
      { class: "appbar" },
      h("h1", {}, "Driveback"),
      h("span", { class: "muted small" }, state.mongo.database ? `Database: ${state.mongo.database}` : ""),
    ),
    banners,
    h("main", { id: "home" }, card, view, settings, security, h("p", { class: "muted small center" }, `Driveback ${state.version}`)),
  );

  shown = {
    main: root.querySelector<HTMLElement>("#home")!,
    outcome,
    jobStarted: async () => {
      if (!following) await join(null);
    },
  };
  // A backup is running (e.g. the window was reopened): show it and join its progress.
  follow(state.job);
}

/** " to your Google Drive", " to /home/me/backups", or nothing while no place is chosen. */
function backupTarget(state: AppState): string {
  if (state.destination.kind === "drive") return " to your Google Drive";
  return state.destination.kind && state.destination.label ? ` to ${state.destination.label}` : "";
}

let refreshing = false;
let refreshAgain = false;

/** Draws the home view again (when it is on screen), keeping the focus where it was. Changes
 * that come while drawing are drawn once more after. */
async function refreshHome(nav: Pick<HomeNav, "refresh">): Promise<void> {
  if (refreshing) {
    refreshAgain = true;
    return;
  }
  refreshing = true;
  try {
    do {
      refreshAgain = false;
      const focused = document.activeElement?.id;
      await nav.refresh();
      if (focused && document.activeElement === document.body) document.getElementById(focused)?.focus();
    } while (refreshAgain);
  } finally {
    refreshing = false;
  }
}

/** Listens to the backend's pushes for the home view: a backup started elsewhere (schedule,
 * tray) is followed, a change of state is drawn. Answers the way to stop. */
export function listenToBackend(nav: Pick<HomeNav, "refresh">): () => void {
  const onScreen = () => (shown && document.contains(shown.main) ? shown : null);
  const stops = [
    onBackendEvent<{ job_id: string; trigger: string }>("job-started", () => void onScreen()?.jobStarted()),
    onBackendEvent("state-changed", () => {
      if (onScreen()) void refreshHome(nav);
    }),
  ];
  return () => stops.forEach((stop) => stop());
}

function settingRow(label: string, value: string, action: HTMLElement, valueId?: string): HTMLElement {
  return h("div", { class: "setting" }, h("div", {}, h("div", {}, label), h("div", { class: "muted small", id: valueId }, value)), action);
}

function folderDialog(state: AppState, nav: HomeNav): void {
  const input = h("input", { id: "folder-dialog-input", type: "text", value: state.destination.folder ?? "", spellcheck: "false" });
  const slot = h("div", { class: "slot" });
  const save = button("Use this folder", () =>
    busy(save, "Saving…", async () => {
      try {
        await api.setDestinationFolder(input.value);
        d.close();
        await nav.refresh();
      } catch (e) {
        showError(slot, e);
      }
    }),
    { id: "folder-dialog-save", class: "primary" },
  );
  const d = openDialog({
    id: "folder-dialog",
    title: "Where backups go",
    body: [
      h(
        "p",
        {},
        state.destination.kind === "drive"
          ? "Back up to a folder on this computer, a USB disk or a network share instead of Google Drive. Backups already on Drive stay there."
          : "A folder on this computer, a USB disk or a network share. Backups already in the old folder stay there.",
      ),
      h("label", { for: "folder-dialog-input" }, "Folder"),
      input,
      slot,
    ],
    actions: [button("Cancel", () => d.close(), { id: "folder-dialog-cancel" }), save],
    initialFocus: input,
  });
}

/** Why a backup failed, in the words of the destination in use, with the one way to fix it
 * where the app has it (the database's settings for a database that does not answer). */
export function failureBox(e: unknown, state: AppState, nav: HomeNav): HTMLElement {
  const err = asApiError(e);
  const box = errorBox(err, "backup-error");
  if (err.code === "destination_full") {
    const title = box.querySelector("strong")!;
    title.textContent = state.destination.kind === "drive" ? "Your Google Drive is full." : "The disk that holds your backup folder is full.";
    title.nextSibling!.textContent =
      state.destination.kind === "drive"
        ? " Free up space in Google Drive (drive.google.com/settings/storage), or keep fewer old backups in More settings, then back up again."
        : " Free up space on that disk, or keep fewer old backups in More settings, then back up again.";
  }
  if (err.code === "database_unreachable") {
    box.append(
      button(`Check the database${state.mongo.host ? ` at ${state.mongo.host}` : ""}`, () => connectionDialog(nav), { id: "check-database" }),
    );
  }
  return box;
}

function connectionDialog(nav: HomeNav): void {
  const uri = h("input", { id: "conn-uri", type: "password", autocomplete: "off", placeholder: "Leave empty to keep the current connection" });
  const select = h("select", { id: "conn-db", "aria-label": "Database" });
  const slot = h("div", { class: "slot" });
  const load = button("Test connection", () =>
    busy(load, "Testing…", async () => {
      try {
        const c = uri.value.trim() ? await api.testConnection(uri.value.trim()) : await api.listDatabases();
        select.replaceChildren(...c.databases.map((d) => h("option", { value: d }, d)));
        slot.replaceChildren(h("p", { class: "ok" }, `Connected to ${c.host}.`));
      } catch (e) {
        showError(slot, e);
      }
    }),
    { id: "conn-test" },
  );
  const save = button("Save", () =>
    busy(save, "Saving…", async () => {
      try {
        const r = await api.saveConnection(uri.value.trim() || null, select.value);
        if (r.notice) toast(r.notice);
        d.close();
        await nav.refresh();
      } catch (e) {
        showError(slot, e);
      }
    }),
    { id: "conn-save", class: "primary" },
  );
  const d = openDialog({
    id: "connection-dialog",
    title: "Database",
    body: [h("label", { for: "conn-uri" }, "Connection string"), uri, h("div", { class: "row" }, load), h("label", { for: "conn-db" }, "Database"), select, slot],
    actions: [button("Cancel", () => d.close(), { id: "conn-cancel" }), save],
    initialFocus: uri,
  });
  load.click();
}
