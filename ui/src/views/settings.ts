// More settings: the day of weekly and monthly backups, how many old backups to keep,
// notifications, and the email server. Each section
// saves on its own; every save sends the whole settings as the backend has them, with the
// section's changes applied.
import { api, asApiError, type Layout, type Settings, type SettingsView, type SmtpSecurity } from "../api";
import { button, loadingDialog } from "../dialog";
import { busy, h, select, type Child } from "../dom";
import { showError, toast } from "../messages";

/** Reads the settings afresh, applies `change` and saves them all. */
export async function updateSettings(change: (s: Settings) => void): Promise<SettingsView> {
  const { settings } = await api.getSettings();
  change(settings);
  return api.saveSettings(settings);
}

type Smtp = Settings["smtp"];
type Preset = "custom" | "gmail" | "outlook";

export const SMTP_PRESETS: Record<Exclude<Preset, "custom">, Pick<Smtp, "host" | "port" | "security">> = {
  gmail: { host: "smtp.gmail.com", port: 587, security: "starttls" },
  outlook: { host: "smtp.office365.com", port: 587, security: "starttls" },
};

export function smtpPresetOf(host: string | null): Preset {
  const known = Object.entries(SMTP_PRESETS).find(([, p]) => p.host === host?.trim().toLowerCase());
  return known ? (known[0] as Preset) : "custom";
}

function badInput(message: string): never {
  throw { code: "bad_input", message };
}

/** The value of a number field, or a bad_input error naming it. */
function wholeNumber(input: HTMLInputElement, label: string, min: number, max: number): number {
  const n = Number(input.value);
  if (input.value.trim() === "" || !Number.isInteger(n) || n < min || n > max) {
    badInput(`${label}: enter a whole number from ${min} to ${max}`);
  }
  return n;
}

/** null for an empty field. */
function text(input: HTMLInputElement): string | null {
  return input.value.trim() || null;
}

function numberInput(id: string, value: number, min: number, max: number): HTMLInputElement {
  return h("input", { id, type: "number", inputmode: "numeric", min, max, step: 1, value });
}

function field(id: string, label: string, input: HTMLElement, help?: string): HTMLElement {
  if (help) input.setAttribute("aria-describedby", `${id}-help`);
  return h(
    "div",
    { class: "field" },
    h("label", { for: id }, label),
    input,
    help ? h("p", { class: "muted small", id: `${id}-help` }, help) : null,
  );
}

function checkbox(id: string, label: string, checked: boolean): [HTMLElement, HTMLInputElement] {
  const input = h("input", { id, type: "checkbox", checked });
  return [h("label", { class: "check", for: id }, input, ` ${label}`), input];
}

/** A button that runs `work`, busy meanwhile, with its error in `slot`. */
function slotButton(
  label: string,
  busyLabel: string,
  slot: HTMLElement,
  work: () => Promise<void>,
  attrs: { id: string; class?: string },
): HTMLButtonElement {
  const b = button(
    label,
    () =>
      busy(b, busyLabel, async () => {
        slot.replaceChildren();
        try {
          await work();
        } catch (e) {
          showError(slot, e);
        }
      }),
    attrs,
  );
  return b;
}

/** A section with its error slot and Save button: `read` checks the fields and answers the
 * change to make; `after` runs once saved. */
function section(
  id: string,
  title: string,
  body: Child[],
  read: () => (s: Settings) => void,
  after?: (v: SettingsView) => Promise<void> | void,
  more: HTMLButtonElement[] = [],
): HTMLElement {
  const slot = h("div", { class: "slot", id: `${id}-result`, "aria-live": "polite" });
  const save = slotButton(
    "Save",
    "Saving…",
    slot,
    async () => {
      const v = await updateSettings(read());
      await after?.(v);
      toast("Saved.");
    },
    { id: `${id}-save`, class: "primary" },
  );
  return h(
    "section",
    { class: "settings-section", id: `${id}-section`, "aria-labelledby": `${id}-title` },
    h("h3", { id: `${id}-title` }, title),
    ...body,
    slot,
    h("div", { class: "row" }, save, ...more),
  );
}

const WEEKDAYS: [string, string][] = [
  ["mon", "Monday"],
  ["tue", "Tuesday"],
  ["wed", "Wednesday"],
  ["thu", "Thursday"],
  ["fri", "Friday"],
  ["sat", "Saturday"],
  ["sun", "Sunday"],
];

/** Which day weekly and monthly backups run (frequency and time are on the home screen). */
function scheduleDaySection(v: SettingsView): HTMLElement {
  const sc = v.settings.schedule;
  const weekday = select({ id: "schedule-weekday" }, WEEKDAYS, sc.weekday);
  const dayOfMonth = numberInput("schedule-day-of-month", sc.day_of_month, 1, 31);
  const sentence = h("p", { id: "schedule-text", class: "muted small", "aria-live": "polite" }, v.schedule_text);
  return section(
    "schedule-day",
    "Backup day",
    [
      h(
        "div",
        { class: "fields" },
        field("schedule-weekday", "Weekly backups on", weekday),
        field("schedule-day-of-month", "Monthly backups on day", dayOfMonth, "In shorter months, the month's last day."),
      ),
      sentence,
    ],
    () => {
      const day = wholeNumber(dayOfMonth, "Day of the month", 1, 31);
      const wd = weekday.value as Settings["schedule"]["weekday"];
      return (s) => {
        s.schedule.weekday = wd;
        s.schedule.day_of_month = day;
      };
    },
    (saved) => {
      sentence.textContent = saved.schedule_text;
    },
  );
}

function retentionSection(v: SettingsView): HTMLElement {
  const r = v.settings.retention;
  const daily = numberInput("ret-daily", r.daily, 0, 1000);
  const weekly = numberInput("ret-weekly", r.weekly, 0, 1000);
  const monthly = numberInput("ret-monthly", r.monthly, 0, 1000);
  const keepLast = numberInput("ret-keep-last", r.keep_last, 1, 1000);
  const sentence = h("p", { id: "retention-text", class: "muted small", "aria-live": "polite" }, v.retention_text);
  return section(
    "retention",
    "Old backups",
    [
      h("p", { class: "small" }, "Driveback deletes older backups after each backup, and keeps:"),
      h(
        "div",
        { class: "fields" },
        field("ret-daily", "One a day, for days", daily),
        field("ret-weekly", "One a week, for weeks", weekly),
        field("ret-monthly", "One a month, for months", monthly),
        field("ret-keep-last", "The latest, always", keepLast),
      ),
      sentence,
    ],
    () => {
      const next = {
        daily: wholeNumber(daily, "Days", 0, 1000),
        weekly: wholeNumber(weekly, "Weeks", 0, 1000),
        monthly: wholeNumber(monthly, "Months", 0, 1000),
        keep_last: wholeNumber(keepLast, "The latest", 1, 1000),
      };
      return (s) => Object.assign(s.retention, next);
    },
    (saved) => {
      sentence.textContent = saved.retention_text;
    },
  );
}

function layoutSection(v: SettingsView): HTMLElement | null {
  const dest = v.layout_dest;
  if (!dest) return null;
  const choice = select({ id: "layout" }, [
    ["incremental", "A full backup, then only what changed (smaller uploads)"],
    ["files", "A whole copy every time"],
  ], v.layout ?? "incremental");
  return section(
    "layout",
    "How backups are kept",
    [
      field("layout", "Each backup", choice, "Backups made either way stay readable when you switch. A new full backup is made when the changes add up to one."),
    ],
    () => {
      const layout = choice.value as Layout;
      return (s) => {
        s.backup.layouts = { ...(s.backup.layouts ?? {}), [dest]: layout };
      };
    },
    () => {},
  );
}

function notifySection(v: SettingsView): HTMLElement {
  const n = v.settings.notify;
  const [desktopRow, desktop] = checkbox("notify-desktop-success", "Show a notice on the desktop when a backup is made", n.desktop_on_success);
  const [successRow, success] = checkbox("notify-email-success", "Email me when a backup is made", n.email_on_success);
  const [failureRow, failure] = checkbox("notify-email-failure", "Email me when a backup fails", n.email_on_failure);
  const [summaryRow, summary] = checkbox("notify-weekly-summary", "Email me a weekly summary", n.weekly_summary);
  const [copyRow, copy] = checkbox("notify-email-copy", "Attach a copy of the backup to the email", n.email_copy);
  const max = numberInput("notify-email-copy-max", n.email_copy_max_mb, 1, 1000);
  const syncMax = () => (max.disabled = !copy.checked);
  copy.addEventListener("change", syncMax);
  syncMax();
  return section(
    "notify",
    "Notifications",
    [
      h("p", { class: "muted small", id: "notify-note" }, "A failed backup is always shown on the desktop. Emails use the email server below."),
      desktopRow,
      successRow,
      failureRow,
      summaryRow,
      copyRow,
      field("notify-email-copy-max", "Largest copy to attach (MB)", max, "Larger backups are sent without the copy. 18 MB fits Gmail's 25 MB limit."),
    ],
    () => {
      const next = {
        desktop_on_success: desktop.checked,
        email_on_success: success.checked,
        email_on_failure: failure.checked,
        weekly_summary: summary.checked,
        email_copy: copy.checked,
        email_copy_max_mb: copy.checked ? wholeNumber(max, "Largest copy to attach", 1, 1000) : n.email_copy_max_mb,
      };
      return (s) => Object.assign(s.notify, next);
    },
  );
}

function smtpSection(v: SettingsView): HTMLElement {
  const m = v.settings.smtp;
  const preset = select(
    { id: "smtp-preset" },
    [
      ["custom", "Other server"],
      ["gmail", "Gmail"],
      ["outlook", "Outlook / Microsoft 365"],
    ],
    smtpPresetOf(m.host),
  );
  const host = h("input", { id: "smtp-host", type: "text", spellcheck: "false", value: m.host ?? "", placeholder: "smtp.example.com" });
  const port = numberInput("smtp-port", m.port, 1, 65535);
  const security = select(
    { id: "smtp-security" },
    [
      ["starttls", "STARTTLS (usually port 587)"],
      ["tls", "TLS (usually port 465)"],
      ["none", "None: not encrypted"],
    ],
    m.security,
  );
  const user = h("input", { id: "smtp-user", type: "text", spellcheck: "false", autocomplete: "username", value: m.user ?? "" });
  const from = h("input", { id: "smtp-from", type: "text", spellcheck: "false", value: m.from ?? "", placeholder: "Leave empty to use the user name" });
  const to = h("input", { id: "smtp-to", type: "text", spellcheck: "false", value: m.to ?? "", placeholder: "me@example.com, you@example.com" });
  const password = h("input", { id: "smtp-password", type: "password", autocomplete: "new-password" });
  const passwordState = h("p", { class: "muted small", id: "smtp-password-status" });
  const testResult = h("div", { class: "slot", id: "smtp-test-result", "aria-live": "polite" });
  const removePassword = slotButton(
    "Remove the saved password",
    "Removing…",
    testResult,
    async () => {
      await api.setSmtpPassword(null);
      showPassword(false);
      toast("Password removed.");
    },
    { id: "smtp-password-remove", class: "link" },
  );
  const showPassword = (set: boolean) => {
    passwordState.textContent = set ? "A password is saved." : "No password is saved.";
    password.placeholder = set ? "Leave empty to keep it" : "";
    removePassword.hidden = !set;
  };
  showPassword(v.smtp_password_set);
  const hint = h(
    "p",
    { class: "warning small", id: "smtp-hint", role: "note" },
    "Gmail needs an app password, not your usual one: create it in your Google Account under Security → 2-Step Verification → App passwords.",
  );
  const syncHint = () => (hint.hidden = preset.value !== "gmail");
  preset.addEventListener("change", () => {
    const p = SMTP_PRESETS[preset.value as Exclude<Preset, "custom">];
    if (p) {
      host.value = p.host ?? "";
      port.value = String(p.port);
      security.value = p.security;
    }
    syncHint();
  });
  host.addEventListener("input", () => {
    preset.value = smtpPresetOf(host.value);
    syncHint();
  });
  syncHint();

  const test = slotButton(
    "Send a test email",
    "Sending…",
    testResult,
    async () => {
      const r = await api.sendTestEmail();
      testResult.replaceChildren(h("p", { class: "ok" }, `Sent a test email to ${r.to.join(", ")} through ${r.server}.`));
    },
    { id: "smtp-test" },
  );

  return h(
    "div",
    {},
    section(
      "smtp",
      "Email",
      [
        field("smtp-preset", "Email provider", preset),
        hint,
        field("smtp-host", "Server", host),
        h("div", { class: "fields" }, field("smtp-port", "Port", port), field("smtp-security", "Security", security)),
        field("smtp-user", "User name", user),
        field("smtp-password", "Password", password),
        passwordState,
        removePassword,
        field("smtp-from", "Sender address", from),
        field("smtp-to", "Send to", to, "Separate addresses with commas."),
        h("p", { class: "muted small" }, "The test uses the saved settings: save first."),
      ],
      () => {
        const next: Omit<Smtp, "ca_file"> = {
          host: text(host),
          port: wholeNumber(port, "Port", 1, 65535),
          security: security.value as SmtpSecurity,
          user: text(user),
          from: text(from),
          to: text(to),
        };
        return (s) => Object.assign(s.smtp, next);
      },
      async () => {
        // An empty field keeps the saved password.
        if (!password.value) return;
        await api.setSmtpPassword(password.value);
        password.value = "";
        showPassword(true);
      },
      [test],
    ),
    testResult,
  );
}

/** "Start Driveback when I log in": applied at once; `now` is the login entry's state, or the
 * error that kept it from being read. */
function startAtLoginSection(now: boolean | { error: unknown }): HTMLElement {
  const [row, input] = checkbox("start-at-login", "Start Driveback when I log in", now === true);
  input.setAttribute("aria-describedby", "start-at-login-help");
  const slot = h("div", { class: "slot", id: "start-at-login-result", "aria-live": "polite" });
  const fail = (e: unknown) => slot.replaceChildren(h("p", { class: "error small", role: "alert" }, asApiError(e).message));
  if (typeof now !== "boolean") {
    input.disabled = true;
    fail(now.error);
  }
  input.addEventListener("change", async () => {
    const want = input.checked;
    input.disabled = true;
    slot.replaceChildren();
    try {
      input.checked = await api.setStartAtLogin(want);
    } catch (e) {
      input.checked = !want;
      fail(e);
    } finally {
      input.disabled = false;
    }
  });
  return h(
    "section",
    { class: "settings-section", id: "startup-section", "aria-labelledby": "startup-title" },
    h("h3", { id: "startup-title" }, "Startup"),
    row,
    h(
      "p",
      { class: "muted small", id: "start-at-login-help" },
      "Driveback then starts in the tray, without a window, so that automatic backups go on after a restart.",
    ),
    slot,
  );
}

/** The More settings dialog. */
export function settingsDialog(): Promise<void> {
  return loadingDialog({ id: "settings-dialog", title: "More settings", loading: "Loading…" }, async () => {
    const [v, login] = await Promise.all([
      api.getSettings(),
      api.startAtLogin().catch((error: unknown) => ({ error })),
    ]);
    return [
      v.problem ? h("p", { class: "warning small", role: "note" }, `Your settings could not all be read, so some are the defaults: ${v.problem}`) : null,
      startAtLoginSection(login),
      scheduleDaySection(v),
      retentionSection(v),
      layoutSection(v),
      notifySection(v),
      smtpSection(v),
    ];
  });
}
