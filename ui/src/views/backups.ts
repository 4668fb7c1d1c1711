// The backup list (newest first) with Restore, Verify, Save a copy and Save as JSON on each,
// "Restore from a file…", and the "Replace current data?" confirmation with its "Advanced" part
// (another database, some collections).
import { api, asApiError, followingJob, type ApiError, type Backup, type JobEvent, type RestoreChoices, type RestorePlan, type RestoreResult } from "../api";
import { button, openDialog } from "../dialog";
import { busy, h, replace } from "../dom";
import { capitalize, countsLine, formatBytes, formatCount, formatFullDate, formatWhen, progressLine } from "../format";
import { errorBox, showError, toast } from "../messages";
import { askPassphrase } from "./keys";

/** What the last check of a backup found, kept on this computer so that the row still says it. */
interface Verified {
  at: string;
  documents: number;
  collections: number;
}
const VERIFIED = "driveback.verified.";

export function verifiedOf(id: string): Verified | null {
  try {
    const v = JSON.parse(localStorage.getItem(VERIFIED + id) ?? "null") as Verified | null;
    return v && typeof v.at === "string" && typeof v.documents === "number" ? v : null;
  } catch {
    return null;
  }
}

function verifiedLine(v: Verified, now: Date = new Date()): HTMLElement {
  return h(
    "span",
    { class: "ok verify-ok" },
    `✓ Verified ${formatWhen(v.at, now)}: ${formatCount(v.documents)} documents in ${v.collections} collections, all checks passed.`,
  );
}

/** "12 backups in Google Drive (hidden app folder) · 733 KB in all · Keeps …" */
export function listSummary(backups: Backup[], where: string | null, kept: string | null): string {
  const n = backups.length;
  const parts = [`${formatCount(n)} backup${n === 1 ? "" : "s"}${where ? ` in ${where}` : ""}`];
  parts.push(`${formatBytes(backups.reduce((t, b) => t + b.bytes, 0))} in all`);
  if (kept) parts.push(kept);
  return parts.join(" · ");
}

export function backupRow(b: Backup, now: Date = new Date()): HTMLElement {
  // Restore replaces data: a secondary button, never the one that draws the eye.
  const restore = h("button", { type: "button", class: "secondary restore-button", "data-id": b.id }, "Restore");
  const verify = h("button", { type: "button", class: "secondary verify-button", "data-id": b.id }, "Verify");
  const copy = h("button", { type: "button", class: "secondary copy-button", "data-id": b.id }, "Save a copy");
  const json = h("button", { type: "button", class: "secondary json-button", "data-id": b.id, title: "Extended JSON, one file per collection" }, "Save as JSON");
  const verified = verifiedOf(b.id);
  return h(
    "li",
    { class: "backup-row", "data-id": b.id },
    h(
      "div",
      { class: "backup-main" },
      h(
        "div",
        { class: "backup-when" },
        h("span", { class: "status-dot", "data-status": b.status, "aria-hidden": "true" }, b.latest ? "●" : "○"),
        h("time", { datetime: b.created, title: formatFullDate(b.created) }, capitalize(formatWhen(b.created, now))),
        b.latest ? h("span", { class: "tag latest" }, "Latest") : null,
        b.status === "partial" ? h("span", { class: "tag partial", title: "Some collections could not be backed up" }, "Partial") : h("span", { class: "tag complete" }, "Complete"),
        b.link?.parent
          ? h("span", { class: "tag changes", title: "Holds only what changed since the backup before it; restoring it also reads the backups it builds on" }, "Changes only")
          : null,
      ),
      h("div", { class: "muted small" }, `${formatBytes(b.bytes)} · ${formatCount(b.documents)} documents · ${b.database}`),
      h("div", { class: "row-result small", "aria-live": "polite" }, verified ? verifiedLine(verified, now) : null),
    ),
    h(
      "div",
      { class: "row-actions" },
      restore,
      h("details", { class: "row-menu" }, h("summary", { class: "secondary", "aria-label": "More for this backup" }, "More"), h("div", { class: "menu" }, verify, copy, json)),
    ),
  );
}

export async function renderBackups(root: HTMLElement, back: () => void): Promise<void> {
  const list = h("ul", { class: "backup-list", id: "backup-list", "aria-label": "Backups" });
  const slot = h("div", { class: "slot", "aria-live": "polite" });
  const loading = h("p", { id: "backups-loading", class: "muted" }, "Loading backups…");
  const backButton = button("← Back", back, { id: "backups-back", class: "link" });
  const reload = () => void renderBackups(root, back);
  const fromFile = button("Restore from a file…", () => void pickAndRestore(fromFile, fileResult, reload), {
    id: "restore-file-button",
    class: "secondary",
  });
  const fileResult = h("div", { id: "restore-file-result", class: "small", "aria-live": "polite" });
  // The path the file picker gave goes through this one function; an end-to-end test (which
  // cannot drive the system's picker) calls it with a known file.
  window.drivebackRestoreFromFile = (path: string) => restoreFromFile(path, fromFile, fileResult, reload);
  replace(
    root,
    h("header", { class: "appbar" }, backButton, h("h1", {}, "Backups")),
    h(
      "main",
      { id: "backups" },
      h("section", { class: "card" }, loading, list, slot),
      h(
        "section",
        { class: "card", id: "restore-file" },
        h("p", { class: "muted small" }, "A backup saved with “Save a copy”, the copy an email brought, or a file made by mongodump --archive."),
        fromFile,
        fileResult,
      ),
    ),
  );
  backButton.focus();
  let backups: Backup[];
  // Where they are and what is kept, for the list's header: nice to have, never in the way.
  const where = api.appState().then((st) => st.destination.label || null, () => null);
  const kept = api.getSettings().then((v) => v.retention_text || null, () => null);
  try {
    backups = await api.listBackups();
  } catch (e) {
    loading.remove();
    showError(slot, e);
    return;
  }
  loading.remove();
  list.before(h("p", { id: "backups-summary", class: "muted small" }, listSummary(backups, await where, await kept)));
  if (backups.length === 0) {
    list.replaceWith(h("p", { id: "backups-empty", class: "empty" }, "No backups yet. Go back and tap “Back up” to make the first one."));
    return;
  }
  const now = new Date();
  for (const b of backups) {
    const row = backupRow(b, now);
    const result = row.querySelector<HTMLElement>(".row-result")!;
    row.querySelector<HTMLButtonElement>(".restore-button")!.addEventListener("click", (e) =>
      startRestore(b, e.currentTarget as HTMLButtonElement, () => renderBackups(root, back)),
    );
    const verify = row.querySelector<HTMLButtonElement>(".verify-button")!;
    verify.addEventListener("click", () => verifyBackup(b, verify, result));
    row.querySelector<HTMLButtonElement>(".copy-button")!.addEventListener("click", () => saveCopyDialog(b));
    const json = row.querySelector<HTMLButtonElement>(".json-button")!;
    json.addEventListener("click", () => void pickAndSaveJson(b, json, result));
    list.append(row);
  }
  // As for a file to restore: the folder the picker gave goes through this function.
  window.drivebackSaveJson = (id: string, folder: string) => {
    const row = [...list.querySelectorAll<HTMLElement>(".backup-row")].find((r) => r.dataset.id === id);
    const b = backups.find((x) => x.id === id);
    if (!row || !b) return Promise.resolve();
    return saveJson(b, folder, row.querySelector<HTMLButtonElement>(".json-button")!, row.querySelector<HTMLElement>(".row-result")!);
  };
}

declare global {
  interface Window {
    /** Restores from the file at `path` as if it had been picked ("Restore from a file…"). */
    drivebackRestoreFromFile?: (path: string) => Promise<void>;
    /** Saves backup `id` as JSON into `folder` as if it had been picked ("Save as JSON"). */
    drivebackSaveJson?: (id: string, folder: string) => Promise<void>;
  }
}

async function pickAndRestore(opener: HTMLButtonElement, out: HTMLElement, reload: () => void): Promise<void> {
  out.replaceChildren();
  let path: string | null;
  try {
    path = await api.pickFile("Choose a backup or a mongodump archive");
  } catch (e) {
    out.replaceChildren(errorBox(e));
    return;
  }
  if (path) await restoreFromFile(path, opener, out, reload);
}

/** Reads and checks the file at `path`, then the same "Replace current data?" as a backup from the
 * list. A problem with the file is shown under the button. */
export async function restoreFromFile(path: string, opener: HTMLButtonElement, out: HTMLElement, reload: () => void): Promise<void> {
  out.replaceChildren();
  const prepare = (options: RestoreChoices | null) => withPassphrase((p) => api.prepareRestoreFile(path, p, options));
  let plan: RestorePlan | null;
  try {
    plan = await busy(opener, "Reading the file…", () => prepare(null));
  } catch (e) {
    out.replaceChildren(errorBox(e, "restore-file-error"));
    return;
  }
  if (plan) confirmRestore(plan, reload, prepare);
}

async function pickAndSaveJson(b: Backup, opener: HTMLButtonElement, out: HTMLElement): Promise<void> {
  out.replaceChildren();
  let folder: string | null;
  try {
    folder = await api.pickFolder("Choose where to save the JSON files");
  } catch (e) {
    out.replaceChildren(errorBox(e));
    return;
  }
  if (folder) await saveJson(b, folder, opener, out);
}

/** Writes backup `b` as Extended JSON into a new folder inside `folder`; says where, or why not. */
export async function saveJson(b: Backup, folder: string, opener: HTMLButtonElement, out: HTMLElement): Promise<void> {
  out.replaceChildren();
  await busy(opener, "Saving…", async () => {
    try {
      const r = await withPassphrase((p) => api.exportJson(b.id, folder, p));
      if (r) {
        out.replaceChildren(
          h("span", { class: "ok json-ok" }, `✓ Saved ${formatCount(r.documents)} documents as JSON, one file per collection (${r.files.length}), in ${r.folder}`),
        );
      }
    } catch (e) {
      out.replaceChildren(errorBox(e, "json-error"));
    }
  });
}

/** Runs `work` with the passphrase asked for only if the backend says it needs it. */
async function withPassphrase<T>(work: (p: string | null) => Promise<T>): Promise<T | null> {
  try {
    return await work(null);
  } catch (e) {
    if (asApiError(e).code !== "passphrase_required") throw e;
  }
  let result: T | null = null;
  const p = await askPassphrase("Enter your passphrase", "Your backup key is not on this computer yet: your passphrase opens it.", async (x) => {
    result = await work(x);
  });
  return p === null ? null : result;
}

async function verifyBackup(b: Backup, verify: HTMLButtonElement, out: HTMLElement): Promise<void> {
  out.replaceChildren();
  await busy(verify, "Verifying…", async () => {
    try {
      const r = await withPassphrase((p) =>
        followingJob((ch) => api.verifyBackup(b.id, p, ch), (e) => {
          if (e.event !== "progress") return;
          verify.textContent = e.percent === null ? "Verifying…" : `Verifying ${Math.floor(e.percent)}%`;
          // The phase, the bytes and the time left, as for a backup.
          out.replaceChildren(h("span", { class: "muted verify-progress" }, progressLine(e)));
        }),
      );
      if (r) {
        const v: Verified = { at: new Date().toISOString(), documents: r.documents, collections: r.collections.length };
        localStorage.setItem(VERIFIED + b.id, JSON.stringify(v));
        out.replaceChildren(verifiedLine(v));
      }
    } catch (e) {
      out.replaceChildren(errorBox(e));
    }
  });
}

function saveCopyDialog(b: Backup): void {
  const input = h("input", { id: "copy-folder", type: "text", spellcheck: "false", value: "" });
  const slot = h("div", { class: "slot" });
  const save = button("Save", () =>
    busy(save, "Saving…", async () => {
      try {
        const r = await api.saveCopy(b.id, input.value);
        d.close();
        toast(`Saved ${formatBytes(r.bytes)} to ${r.path}`);
      } catch (e) {
        showError(slot, e);
      }
    }),
    { id: "copy-save", class: "primary" },
  );
  const d = openDialog({
    id: "copy-dialog",
    title: "Save a copy",
    body: [
      h("p", {}, `A copy of the encrypted backup of ${formatFullDate(b.created)} (${formatBytes(b.bytes)}). It stays encrypted: your passphrase or key opens it.`),
      h("label", { for: "copy-folder" }, "Folder to save it in"),
      input,
      slot,
    ],
    actions: [button("Cancel", () => d.close(), { id: "copy-cancel" }), save],
    initialFocus: input,
  });
}

async function startRestore(b: Backup, opener: HTMLButtonElement, reload: () => void): Promise<void> {
  const prepare = (options: RestoreChoices | null) => withPassphrase((p) => api.prepareRestore(b.id, p, options));
  let plan: RestorePlan | null;
  try {
    plan = await busy(opener, "Preparing…", () => prepare(null));
  } catch (e) {
    const row = opener.closest(".backup-row")?.querySelector<HTMLElement>(".row-result");
    if (row) row.replaceChildren(errorBox(e));
    return;
  }
  if (plan) confirmRestore(plan, reload, prepare);
}

/** MongoDB's rules for a database name, as the engine checks them; null when it is fine. */
export function databaseNameProblem(name: string): string | null {
  if (name === "") return "Give the name of the database to restore into.";
  const bad = [...name].find((c) => '/\\. "$\0'.includes(c));
  if (bad !== undefined) return `A database name cannot hold ${bad === " " ? "a space" : `“${bad}”`}.`;
  if (new TextEncoder().encode(name).length >= 64) return "A database name must be shorter than 64 bytes.";
  return null;
}

/** The confirmation's "Advanced" part: the database to restore into and the collections (all
 * ticked). `onApply` gets the choices; a change disables `replaceButton` until it is applied. */
export function advancedPart(plan: RestorePlan, replaceButton: HTMLButtonElement, onApply: (c: RestoreChoices) => void, open = false): HTMLDetailsElement {
  const chosen = new Set(plan.collections.map((c) => c.name));
  const available = plan.available ?? plan.collections.map((c) => c.name);
  const db = h("input", { id: "restore-target-db", type: "text", spellcheck: "false", autocomplete: "off", value: plan.target_db });
  const boxes = available.map((name, i) =>
    h("input", { type: "checkbox", id: `restore-collection-${i}`, class: "restore-collection", value: name, checked: chosen.has(name) }),
  );
  const note = h("p", { id: "restore-advanced-note", class: "small", "aria-live": "polite" });
  const apply = button("Show what this replaces", () => {
    const target = db.value.trim();
    const problem = databaseNameProblem(target);
    const picked = boxes.filter((b) => b.checked).map((b) => b.value);
    if (problem) return void note.replaceChildren(h("span", { class: "error" }, problem));
    if (picked.length === 0) return void note.replaceChildren(h("span", { class: "error" }, "Choose at least one collection."));
    onApply({ target_db: target, collections: picked.length === available.length ? null : picked });
  }, { id: "restore-advanced-apply", class: "secondary" });
  const changed = () => {
    const same = db.value.trim() === plan.target_db && boxes.every((b) => b.checked === chosen.has(b.value));
    replaceButton.disabled = !same;
    note.textContent = same ? "" : "Tap “Show what this replaces” to see the plan for these choices before replacing anything.";
  };
  db.addEventListener("input", changed);
  for (const b of boxes) b.addEventListener("change", changed);
  return h(
    "details",
    { id: "restore-advanced", open },
    h("summary", {}, "Advanced"),
    h("label", { for: "restore-target-db" }, "Restore into database"),
    db,
    h(
      "fieldset",
      { id: "restore-collections" },
      h("legend", {}, "Collections to restore"),
      ...available.map((name, i) => h("label", { class: "check", for: `restore-collection-${i}` }, boxes[i], ` ${name}`)),
    ),
    note,
    apply,
  );
}

export function planTable(plan: RestorePlan): HTMLElement {
  return h(
    "table",
    { class: "plan", id: "restore-plan" },
    h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Collection"), h("th", { scope: "col" }, "Documents now → in the backup"))),
    h(
      "tbody",
      {},
      ...plan.collections.map((c) =>
        h(
          "tr",
          { "data-collection": c.name },
          h("td", {}, c.name, c.kind === "view" ? " (view)" : "", c.restorable ? "" : " — not restored: incomplete in the backup"),
          h("td", {}, c.kind === "view" ? "—" : countsLine(c.now, c.in_backup)),
        ),
      ),
    ),
  );
}

/** "Replace current data?" — Cancel has the focus; Replace data is the destructive one. With
 * `replan`, an "Advanced" part plans again for another database or some collections. */
export function confirmRestore(
  plan: RestorePlan,
  reload: () => void,
  replan?: (choices: RestoreChoices | null) => Promise<RestorePlan | null>,
  advancedOpen = false,
): void {
  const cancel = button("Cancel", () => d.close(), { id: "restore-cancel" });
  const replaceButton = button("Replace data", () => void run(), { id: "restore-replace", class: "danger" });
  const advancedSlot = h("div", { class: "slot", "aria-live": "polite" });
  const advanced = replan
    ? advancedPart(plan, replaceButton, async (choices) => {
        advancedSlot.replaceChildren();
        d.setBusy(true);
        try {
          const next = await replan(choices);
          if (next) {
            d.close();
            confirmRestore(next, reload, replan, true);
            return;
          }
        } catch (e) {
          showError(advancedSlot, e);
        }
        d.setBusy(false);
      }, advancedOpen)
    : null;
  const body = [
    h(
      "p",
      { id: "restore-summary" },
      "The data in database ",
      h("strong", {}, plan.target_db),
      plan.host ? ` on ${plan.host}` : "",
      plan.source === "file" ? " will be replaced with the file " : " will be replaced with the backup of ",
      h("strong", {}, plan.source === "file" ? (plan.file ?? plan.backup.file) : formatFullDate(plan.backup.created)),
      plan.source === "file" && plan.backup.id ? ` (the backup of ${formatFullDate(plan.backup.created)})` : "",
      ".",
    ),
    planTable(plan),
    plan.untouched.length ? h("p", { class: "muted small" }, `Not in the backup, left as they are: ${plan.untouched.join(", ")}.`) : null,
    h(
      "div",
      { class: "warning", role: "note" },
      h("strong", {}, "The current data in these collections will be replaced. "),
      plan.safety_backup
        ? "A safety backup of the current data is taken first, on this computer, so you can undo."
        : "The database has no data now, so there is nothing to back up first.",
    ),
    ...plan.warnings.map((w) => h("p", { class: "warning small" }, w)),
    advanced,
    advancedSlot,
  ];
  const d = openDialog({
    id: "restore-dialog",
    title: "Replace current data?",
    role: "alertdialog",
    body,
    actions: [cancel, replaceButton],
    initialFocus: cancel,
  });

  const run = async (token: string = plan.token, undo = false) => {
    d.setBusy(true);
    const bar = h("div", { class: "bar indeterminate", role: "progressbar", "aria-label": "Restore progress", "aria-valuemin": "0", "aria-valuemax": "100" }, h("span", {}));
    const text = h("p", { id: "restore-progress-text", class: "small" }, undo ? "Undoing…" : "Starting…");
    d.setContent([h("div", { id: "restore-progress", class: "progress" }, bar, text)], []);
    const onEvent = (e: JobEvent) => {
      if (e.event !== "progress") return;
      text.textContent = progressLine(e);
      const fill = bar.firstElementChild as HTMLElement;
      if (e.percent === null) {
        bar.classList.add("indeterminate");
      } else {
        bar.classList.remove("indeterminate");
        bar.setAttribute("aria-valuenow", String(Math.floor(e.percent)));
        fill.style.width = `${e.percent}%`;
      }
    };
    try {
      const r = await followingJob((ch) => api.restore(token, ch), onEvent);
      d.setBusy(false);
      showResult(r, undo);
    } catch (e) {
      d.setBusy(false);
      showFailure(asApiError(e));
    }
  };

  const showResult = (r: RestoreResult, undone: boolean) => {
    const close = button("Close", () => d.close(), { id: "restore-close", class: "primary" });
    const actions = [close];
    if (r.undo_token) {
      const token = r.undo_token;
      actions.unshift(button("Undo", () => void run(token, true), { id: "restore-undo" }));
    }
    d.panel.querySelector("h2")!.textContent = undone ? "Restore undone" : "Data restored";
    d.setContent(
      [
        h(
          "p",
          { id: "restore-result" },
          undone
            ? `${r.database} is back as it was before the restore: ${formatCount(r.documents)} documents in ${r.collections.length} collections.`
            : `${r.database} now holds the ${plan.source === "file" && !plan.backup.id ? "archive" : "backup"} of ${formatFullDate(plan.backup.created)}: ${formatCount(r.documents)} documents in ${r.collections.length} collections.`,
        ),
        ...r.warnings.map((w) => h("p", { class: "warning small" }, w)),
      ],
      actions,
    );
    close.focus();
    reload();
  };

  const showFailure = (e: ApiError) => {
    d.panel.querySelector("h2")!.textContent = "Restore failed";
    const close = button("Close", () => d.close(), { id: "restore-close", class: "primary" });
    d.setContent([errorBox(e, "restore-error"), h("p", {}, "Your data was not replaced: a restore that fails before its last step leaves the database as it was.")], [close]);
  };
}
