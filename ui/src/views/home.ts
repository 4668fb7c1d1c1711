// The backup settings card, as WhatsApp's backup screen: last backup, Back up with progress and
// Cancel, where backups go, frequency and time, health, passphrase, View backups.
import { api, asApiError, jobChannel, type AppState, type JobEvent, type Progress } from "../api";
import { button, openDialog } from "../dialog";
import { busy, h, replace } from "../dom";
import { lastBackupLine, progressLine } from "../format";
import { errorBox, showError, toast } from "../messages";
import { changePassphraseDialog, passphraseCheck, showKeyDialog } from "./keys";

export interface HomeNav {
  backups: () => void;
  refresh: () => Promise<void>;
}

export function renderHome(root: HTMLElement, state: AppState, nav: HomeNav): void {
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

  // --- The backup card -------------------------------------------------------------------
  const last = h("p", { id: "last-backup", class: "big" }, lastBackupLine(state.last_backup));
  const lastDetail = h(
    "p",
    { class: "muted small", id: "last-backup-detail" },
    state.last_backup
      ? `${state.last_backup.documents.toLocaleString("en")} documents · ${state.last_backup.status === "complete" ? "complete" : "partial"}`
      : "Make your first backup now.",
  );
  const bar = h("div", { class: "bar", id: "progress-bar", role: "progressbar", "aria-valuemin": "0", "aria-valuemax": "100", "aria-label": "Backup progress" }, h("span", {}));
  const progressText = h("p", { id: "progress-text", class: "small" }, "");
  const cancel = h("button", { type: "button", id: "cancel-backup", class: "secondary" }, "Cancel");
  const progress = h("div", { id: "backup-progress", class: "progress", hidden: true }, bar, h("div", { class: "row spread" }, progressText, cancel));
  const outcome = h("div", { class: "slot", id: "backup-outcome", "aria-live": "polite" });
  const backupNow = h("button", { type: "button", id: "backup-now", class: "primary" }, "Back up");
  let jobId: string | null = null;

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
    backupNow.disabled = false;
    jobId = null;
  };
  const onEvent = (e: JobEvent) => {
    if (e.event === "progress") return showProgress(e);
    endProgress();
    if (e.event === "finished") {
      toast("Backup complete.");
      void nav.refresh();
    } else if (e.event === "failed") {
      outcome.replaceChildren(errorBox(e.error, "backup-error"));
    } else {
      outcome.replaceChildren(h("p", { class: "muted", id: "backup-cancelled" }, "Backup cancelled. Nothing was kept of it."));
    }
  };
  const start = async () => {
    outcome.replaceChildren();
    showProgress(null);
    try {
      const r = await api.backupNow(jobChannel(onEvent));
      jobId = r.job_id;
    } catch (e) {
      endProgress();
      outcome.replaceChildren(errorBox(e, "backup-error"));
    }
  };
  backupNow.addEventListener("click", () => void start());
  cancel.addEventListener("click", async () => {
    if (!jobId) return;
    try {
      await api.cancelJob(jobId);
    } catch (e) {
      showError(outcome, e);
    }
  });

  const card = h(
    "section",
    { class: "card", id: "backup-card", "aria-labelledby": "backup-card-title" },
    h("div", { class: "card-head" }, h("span", { class: "icon", "aria-hidden": "true" }, "☁"), h("h2", { id: "backup-card-title" }, "Backup")),
    last,
    lastDetail,
    h(
      "p",
      { class: "muted" },
      `Back up ${state.mongo.database ?? "your database"} to your Google Drive. You can restore it if your data is ever lost or damaged. Backups are end-to-end encrypted with your passphrase.`,
    ),
    h("div", { class: "row" }, backupNow),
    progress,
    outcome,
  );

  // --- Google Drive settings ----------------------------------------------------------------
  const settingsSlot = h("div", { class: "slot", "aria-live": "polite" });
  const driveConnect = button("Connect", async () => {
    try {
      await api.connectDrive();
    } catch (e) {
      showError(settingsSlot, e);
    }
  }, { id: "drive-connect" });
  const changeFolder = button("Change", () => folderDialog(state.destination.folder ?? "", nav), { id: "change-folder" });
  const frequency = h(
    "select",
    { id: "frequency", "aria-describedby": "schedule-note" },
    ...["Only when I tap “Back up”", "Daily", "Weekly", "Monthly"].map((label, i) =>
      h("option", { value: ["manual", "daily", "weekly", "monthly"][i] }, label),
    ),
  );
  const time = h("input", { id: "backup-time", type: "time", value: "02:00", "aria-describedby": "schedule-note" });
  const scheduleNote = h("p", { id: "schedule-note", class: "muted small" }, "");
  const saveSchedule = async () => {
    try {
      await api.saveSettings(frequency.value, time.value);
    } catch (e) {
      showError(settingsSlot, e);
    }
  };
  frequency.addEventListener("change", saveSchedule);
  time.addEventListener("change", saveSchedule);
  api.getSettings().catch((e) => {
    // Until the scheduler lands, the controls stay visible but off, with the reason.
    frequency.disabled = true;
    time.disabled = true;
    scheduleNote.textContent = asApiError(e).message;
  });
  const health = h("button", { type: "button", id: "health-badge", class: "badge unknown" }, "Health: checking…");
  api
    .health()
    .then(() => undefined)
    .catch((e) => {
      const err = asApiError(e);
      health.textContent = err.code === "not_available" ? "Health: not available yet" : "Health: unknown";
      health.title = err.message;
    });
  health.addEventListener("click", async () => {
    try {
      await api.health();
    } catch (e) {
      showError(settingsSlot, e);
    }
  });

  const settings = h(
    "section",
    { class: "card", id: "settings-card", "aria-labelledby": "settings-title" },
    h("h2", { id: "settings-title" }, "Google Drive settings"),
    settingRow("Google Drive account", state.drive.connected ? state.drive.account ?? "Connected" : "Not connected", driveConnect),
    settingRow("Backups go to (for now)", state.destination.folder ?? "—", changeFolder, "destination-folder"),
    state.destination.problem ? errorBox({ code: "destination_error", message: state.destination.problem }) : null,
    settingRow("Database", `${state.mongo.database ?? "—"} on ${state.mongo.host ?? "—"}`, button("Change", () => connectionDialog(nav), { id: "change-database" }), "database-name"),
    h("div", { class: "setting" }, h("label", { for: "frequency" }, "Back up to Google Drive"), frequency),
    h("div", { class: "setting" }, h("label", { for: "backup-time" }, "Time"), time),
    scheduleNote,
    h("div", { class: "setting" }, h("span", {}, "Backup health"), health),
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

  if (state.job?.kind === "backup") {
    // A backup is running (e.g. the window was reopened): show it and join its progress.
    showProgress(state.job.progress);
    void start();
  }
}

function settingRow(label: string, value: string, action: HTMLElement, valueId?: string): HTMLElement {
  return h("div", { class: "setting" }, h("div", {}, h("div", {}, label), h("div", { class: "muted small", id: valueId }, value)), action);
}

function folderDialog(current: string, nav: HomeNav): void {
  const input = h("input", { id: "folder-dialog-input", type: "text", value: current, spellcheck: "false" });
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
      h("p", {}, "A folder on this computer, a USB disk or a network share. Backups already in the old folder stay there."),
      h("label", { for: "folder-dialog-input" }, "Folder"),
      input,
      slot,
    ],
    actions: [button("Cancel", () => d.close(), { id: "folder-dialog-cancel" }), save],
    initialFocus: input,
  });
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
