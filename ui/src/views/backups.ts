// The backup list (newest first) with Restore, Verify and Save a copy on each, and the
// "Replace current data?" confirmation.
import { api, asApiError, jobChannel, type ApiError, type Backup, type JobEvent, type RestorePlan, type RestoreResult } from "../api";
import { button, openDialog } from "../dialog";
import { busy, h, replace } from "../dom";
import { capitalize, countsLine, formatBytes, formatCount, formatFullDate, formatWhen, progressLine } from "../format";
import { errorBox, showError, toast } from "../messages";
import { askPassphrase } from "./keys";

export function backupRow(b: Backup, now: Date = new Date()): HTMLElement {
  const restore = h("button", { type: "button", class: "primary restore-button", "data-id": b.id }, "Restore");
  const verify = h("button", { type: "button", class: "secondary verify-button", "data-id": b.id }, "Verify");
  const copy = h("button", { type: "button", class: "secondary copy-button", "data-id": b.id }, "Save a copy");
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
      ),
      h("div", { class: "muted small" }, `${formatBytes(b.bytes)} · ${formatCount(b.documents)} documents · ${b.database}`),
      h("div", { class: "row-result small", "aria-live": "polite" }),
    ),
    h("div", { class: "row-actions" }, restore, verify, copy),
  );
}

export async function renderBackups(root: HTMLElement, back: () => void): Promise<void> {
  const list = h("ul", { class: "backup-list", id: "backup-list", "aria-label": "Backups" });
  const slot = h("div", { class: "slot", "aria-live": "polite" });
  const loading = h("p", { id: "backups-loading", class: "muted" }, "Loading backups…");
  const backButton = button("← Back", back, { id: "backups-back", class: "link" });
  replace(
    root,
    h("header", { class: "appbar" }, backButton, h("h1", {}, "Backups")),
    h("main", { id: "backups" }, h("section", { class: "card" }, loading, list, slot)),
  );
  backButton.focus();
  let backups: Backup[];
  try {
    backups = await api.listBackups();
  } catch (e) {
    loading.remove();
    showError(slot, e);
    return;
  }
  loading.remove();
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
    list.append(row);
  }
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
        api.verifyBackup(b.id, p, jobChannel((e) => {
          if (e.event === "progress") verify.textContent = e.percent === null ? "Verifying…" : `Verifying ${Math.floor(e.percent)}%`;
        })),
      );
      if (r) out.replaceChildren(h("span", { class: "ok verify-ok" }, `✓ Verified: ${formatCount(r.documents)} documents in ${r.collections.length} collections, all checks passed.`));
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
  let plan: RestorePlan | null;
  try {
    plan = await busy(opener, "Preparing…", () => withPassphrase((p) => api.prepareRestore(b.id, p)));
  } catch (e) {
    const row = opener.closest(".backup-row")?.querySelector<HTMLElement>(".row-result");
    if (row) row.replaceChildren(errorBox(e));
    return;
  }
  if (plan) confirmRestore(plan, reload);
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

/** "Replace current data?" — Cancel has the focus; Replace data is the destructive one. */
export function confirmRestore(plan: RestorePlan, reload: () => void): void {
  const cancel = button("Cancel", () => d.close(), { id: "restore-cancel" });
  const replaceButton = button("Replace data", () => void run(), { id: "restore-replace", class: "danger" });
  const body = [
    h(
      "p",
      { id: "restore-summary" },
      "The data in database ",
      h("strong", {}, plan.target_db),
      plan.host ? ` on ${plan.host}` : "",
      " will be replaced with the backup of ",
      h("strong", {}, formatFullDate(plan.backup.created)),
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
      const r = await api.restore(token, jobChannel(onEvent));
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
            : `${r.database} now holds the backup of ${formatFullDate(plan.backup.created)}: ${formatCount(r.documents)} documents in ${r.collections.length} collections.`,
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
