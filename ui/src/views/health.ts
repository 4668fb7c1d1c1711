// Backup health: the badge on the home card and its dialog (the checks, the last 30 days, the
// recent runs).
import { api, asApiError, type Health, type HealthStatus, type RunRecord } from "../api";
import { button, loadingDialog } from "../dialog";
import { h } from "../dom";
import { checkName, formatBytes, formatHours, formatWhen, healthWord, percent, runCells, scheduleLine } from "../format";

const ICONS: Record<HealthStatus, string> = { healthy: "✓", warning: "!", critical: "✕" };

/** The badge: checks on creation, opens the details on click. */
export function healthBadge(): HTMLButtonElement {
  const badge = h(
    "button",
    { type: "button", id: "health-badge", class: "badge unknown", "aria-haspopup": "dialog" },
    "Checking…",
  );
  api
    .health()
    .then((x) => showStatus(badge, x.status))
    .catch((e) => showStatus(badge, null, asApiError(e).message));
  badge.addEventListener("click", () => void healthDialog(badge));
  return badge;
}

function showStatus(badge: HTMLElement, status: HealthStatus | null, problem?: string): void {
  badge.textContent = healthWord(status ?? "");
  badge.className = `badge ${status ?? "unknown"}`;
  if (status) badge.dataset.status = status;
  else delete badge.dataset.status;
  badge.title = problem ?? "Show the details";
}

export function healthDialog(badge?: HTMLElement): Promise<void> {
  return loadingDialog({ id: "health-dialog", title: "Backup health", loading: "Checking…" }, async () => {
    const x = await api.health();
    if (badge) showStatus(badge, x.status);
    return healthBody(x);
  });
}

export function healthBody(x: Health, now: Date = new Date()): HTMLElement[] {
  const m = x.metrics;
  const facts: [string, string][] = [
    ["Backups in the last 30 days", String(m.runs_30d)],
    ["Succeeded", percent(m.success_rate_30d)],
    ["Average time between backups", formatHours(m.average_interval_hours)],
    ["Last good backup", m.last_good_backup ? formatWhen(m.last_good_backup, now) : "none yet"],
    ["Last error", m.last_error ?? "none"],
    ["Size of the last backups", trend(m.size_trend, formatBytes)],
    ["Time they took", trend(m.duration_trend, formatSeconds)],
  ];
  // One verdict, then the checks that need something first (critical, then warning), each with
  // its message, which says what to do.
  const rank: Record<string, number> = { critical: 0, warning: 1, healthy: 2 };
  const checks = [...x.checks].sort((a, b) => (rank[a.status] ?? 3) - (rank[b.status] ?? 3));
  const failing = checks.filter((c) => c.status !== "healthy").length;
  return [
    h(
      "p",
      { id: "health-summary", class: "health-summary", "data-status": x.status },
      h("strong", {}, healthWord(x.status)),
      failing ? ` · ${failing === 1 ? "1 check needs" : `${failing} checks need`} you` : "",
      " · ",
      scheduleLine(x.schedule_text, x.next_due, now),
    ),
    h("p", { id: "health-glance", class: `glance ${x.glance.level}` }, x.glance.text),
    x.scheduler_running ? null : h("p", { class: "warning small" }, "Automatic backups are not running: keep Driveback open in the tray."),
    h(
      "ul",
      { class: "checks", "aria-label": "Checks" },
      ...checks.map((c) =>
        h(
          "li",
          { class: "check", "data-name": c.name, "data-status": c.status },
          h("span", { class: "check-icon", "aria-hidden": "true" }, ICONS[c.status] ?? "?"),
          h("span", {}, h("strong", {}, `${checkName(c.name)}: `), h("span", { class: "check-word" }, healthWord(c.status)), h("br", {}), c.message),
          c.name === "data_loss" ? acknowledgeButton() : null,
        ),
      ),
    ),
    h("h3", {}, "The last 30 days"),
    h("dl", { class: "facts", id: "health-metrics" }, ...facts.flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, v)])),
    h("p", { class: "muted small", id: "health-retention" }, x.retention_text),
    h("h3", {}, "Recent runs"),
    x.recent_runs.length ? historyTable(x.recent_runs, now) : h("p", { class: "muted", id: "history-empty" }, "No backups have run yet."),
  ].filter((el): el is HTMLElement => el !== null);
}

/** "12 KB → 14 KB (10 backups)": the oldest and the newest of a trend. */
function trend(xs: number[], f: (x: number) => string): string {
  if (xs.length === 0) return "none yet";
  if (xs.length === 1) return f(xs[0]);
  return `${f(xs[0])} → ${f(xs[xs.length - 1])} (${xs.length} backups)`;
}

function formatSeconds(s: number): string {
  return s < 60 ? `${Math.max(1, Math.round(s))} s` : `${Math.round(s / 60)} min`;
}

/** "I know, it was me": the backups kept after a data-loss alarm follow the policy again. */
function acknowledgeButton(): HTMLElement {
  return button(
    "I know about this",
    async (e) => {
      const b = e.currentTarget as HTMLButtonElement;
      b.disabled = true;
      await api.acknowledgeAlarms();
      b.closest("li")?.setAttribute("data-status", "healthy");
      b.replaceWith(h("span", { class: "muted small" }, " Acknowledged: old backups follow your policy again."));
    },
    { class: "acknowledge-alarm" },
  );
}

export function historyTable(runs: RunRecord[], now: Date = new Date()): HTMLElement {
  const heads = ["When", "What", "Result", "Size", "Problem"];
  return h(
    "table",
    { class: "plan history", id: "history-table" },
    h("thead", {}, h("tr", {}, ...heads.map((t) => h("th", { scope: "col" }, t)))),
    h(
      "tbody",
      {},
      ...runs.map((r) =>
        h(
          "tr",
          { "data-outcome": r.outcome, "data-job": r.job_id },
          ...runCells(r, now).map((cell, i) => (i === 0 ? h("td", {}, h("time", { datetime: r.started }, cell)) : h("td", {}, cell))),
        ),
      ),
    ),
  );
}
