// @vitest-environment jsdom
import { afterEach, describe, expect, it, vi } from "vitest";

vi.mock("@tauri-apps/api/core", () => ({ invoke: vi.fn(), Channel: class {} }));

import type { Settings, SettingsView } from "../api";
import { commands, fakeBackend, sampleSettings } from "../testing";
import { settingsDialog, smtpPresetOf } from "./settings";

const $ = <T extends HTMLElement = HTMLInputElement>(id: string) => document.getElementById(id) as T;
const type = (id: string, value: string) => {
  $(id).value = value;
  $(id).dispatchEvent(new Event("input"));
};
const choose = (id: string, value: string) => {
  $<HTMLSelectElement>(id).value = value;
  $(id).dispatchEvent(new Event("change"));
};

afterEach(() => document.body.replaceChildren());

/** Opens the dialog on a backend that keeps what is saved. */
async function open(view: SettingsView = sampleSettings(), more: Record<string, (a?: Record<string, unknown>) => unknown> = {}) {
  let saved = structuredClone(view);
  const backend = fakeBackend({
    get_settings: () => structuredClone(saved),
    save_settings: (a) => {
      saved = { ...saved, settings: structuredClone(a!.settings as Settings), retention_text: "Keeps 10 daily backups." };
      return structuredClone(saved);
    },
    set_smtp_password: () => undefined,
    start_at_login_status: () => false,
    ...more,
  });
  await settingsDialog();
  return { backend, saved: () => backend.calls().filter(([c]) => c === "save_settings").map(([, a]) => a!.settings as Settings) };
}

describe("More settings", () => {
  it("shows whether Driveback starts at login, and switches it on and off", async () => {
    let on = true;
    const { backend } = await open(sampleSettings(), {
      start_at_login_status: () => on,
      set_start_at_login: (a) => (on = a!.enabled as boolean),
    });
    const login = $("start-at-login");
    expect(login.checked).toBe(true);
    expect(login.disabled).toBe(false);
    expect(document.querySelector('label[for="start-at-login"]')!.textContent).toContain("Start Driveback when I log in");
    login.click();
    await vi.waitFor(() => expect(on).toBe(false));
    await vi.waitFor(() => expect(login.disabled).toBe(false));
    expect(login.checked).toBe(false);
    login.click();
    await vi.waitFor(() => expect(on).toBe(true));
    await vi.waitFor(() => expect(login.disabled).toBe(false));
    expect(login.checked).toBe(true);
    expect(backend.calls().filter(([c]) => c === "set_start_at_login").map(([, a]) => a)).toEqual([{ enabled: false }, { enabled: true }]);
    expect($("start-at-login-result").textContent).toBe("");
    expect(commands(backend)).not.toContain("save_settings");
  });

  it("says in one line why the login entry could not be added, and stays off", async () => {
    const message = "Could not add Driveback to the programs started at login: Not a directory (os error 20)";
    await open(sampleSettings(), {
      set_start_at_login: () => Promise.reject({ code: "io_error", message }),
    });
    const login = $("start-at-login");
    expect(login.checked).toBe(false);
    login.click();
    await vi.waitFor(() => expect($("start-at-login-result").textContent).toBe(message));
    expect($("start-at-login-result").querySelectorAll("p")).toHaveLength(1);
    expect($("start-at-login-result").querySelector('[role="alert"]')).not.toBeNull();
    expect(login.checked).toBe(false);
    expect(login.disabled).toBe(false);
  });

  it("shows why the login entry could not be read, with the switch disabled", async () => {
    const message = "Could not tell whether Driveback starts at login: permission denied";
    await open(sampleSettings(), {
      start_at_login_status: () => Promise.reject({ code: "io_error", message }),
    });
    expect($("start-at-login").disabled).toBe(true);
    expect($("start-at-login-result").textContent).toBe(message);
    // The rest of the settings are there.
    expect($("ret-daily").value).toBe("7");
  });

  it("shows the saved values and never the password", async () => {
    await open({ ...sampleSettings(), smtp_password_set: true });
    expect($("settings-dialog")).not.toBeNull();
    expect($("ret-daily").value).toBe("7");
    expect($("ret-keep-last").value).toBe("3");
    expect($("retention-text").textContent).toContain("one a week for 4 weeks");
    expect($("notify-desktop-success").checked).toBe(true);
    expect($("notify-email-failure").checked).toBe(true);
    expect($("notify-email-copy-max").disabled).toBe(true);
    expect($("smtp-password").type).toBe("password");
    expect($("smtp-password").value).toBe("");
    expect($("smtp-password-status").textContent).toBe("A password is saved.");
  });

  it("saves the layout chosen for the configured destination, and nothing else changes", async () => {
    const { saved } = await open();
    expect($<HTMLSelectElement>("layout").value).toBe("files");
    choose("layout", "incremental");
    $("layout-save").click();
    await vi.waitFor(() => expect(saved()).toHaveLength(1));
    const expected = sampleSettings().settings;
    expected.backup.layouts = { "folder:/home/me/backups": "incremental" };
    expect(saved()[0]).toEqual(expected);
  });

  it("offers no layout before a destination is chosen", async () => {
    await open({ ...sampleSettings(), layout_dest: null, layout: null });
    expect($("layout")).toBeNull();
  });

  it("saves the retention with the rest of the settings as they were", async () => {
    const { saved } = await open();
    $("ret-daily").value = "10";
    $("retention-save").click();
    await vi.waitFor(() => expect($("retention-text").textContent).toBe("Keeps 10 daily backups."));
    const expected = sampleSettings().settings;
    expected.retention.daily = 10;
    expect(saved()).toEqual([expected]);
    expect($("toast").textContent).toBe("Saved.");
  });

  it("saves the day of weekly and monthly backups, and refuses a day 32", async () => {
    const { saved } = await open();
    choose("schedule-weekday", "wed");
    $("schedule-day-of-month").value = "15";
    $("schedule-day-save").click();
    await vi.waitFor(() => expect(saved()).toHaveLength(1));
    const expected = sampleSettings().settings;
    expected.schedule.weekday = "wed";
    expected.schedule.day_of_month = 15;
    expect(saved()).toEqual([expected]);
    $("schedule-day-of-month").value = "32";
    $("schedule-day-save").click();
    await vi.waitFor(() => expect($("schedule-day-result").textContent).toContain("Day of the month"));
    expect(saved()).toHaveLength(1);
  });

  it("refuses a count that is not a whole number, without saving", async () => {
    const { backend } = await open();
    $("ret-weekly").value = "2.5";
    $("retention-save").click();
    await vi.waitFor(() => expect($("retention-result").querySelector(".error")).not.toBeNull());
    expect($("retention-result").textContent).toContain("Weeks");
    expect(commands(backend)).not.toContain("save_settings");
  });

  it("saves the notifications", async () => {
    const { saved } = await open();
    $("notify-weekly-summary").click();
    $("notify-email-copy").click();
    $("notify-email-copy-max").value = "10";
    $("notify-save").click();
    await vi.waitFor(() => expect(saved()).toHaveLength(1));
    expect(saved()[0].notify).toEqual({
      email_on_success: false,
      email_on_failure: true,
      weekly_summary: true,
      email_copy: true,
      email_copy_max_mb: 10,
      desktop_on_success: true,
    });
    expect(saved()[0].retention).toEqual(sampleSettings().settings.retention);
  });

  it("fills in Gmail, with the app password hint", async () => {
    await open();
    expect($("smtp-hint").hidden).toBe(true);
    choose("smtp-preset", "gmail");
    expect($("smtp-host").value).toBe("smtp.gmail.com");
    expect($("smtp-port").value).toBe("587");
    expect($<HTMLSelectElement>("smtp-security").value).toBe("starttls");
    expect($("smtp-hint").hidden).toBe(false);
    expect($("smtp-hint").textContent).toContain("app password");
    choose("smtp-preset", "outlook");
    expect($("smtp-host").value).toBe("smtp.office365.com");
    expect($("smtp-hint").hidden).toBe(true);
  });

  it("saves the email server without touching the password when the field is empty", async () => {
    const { backend, saved } = await open();
    choose("smtp-preset", "gmail");
    type("smtp-user", "me@gmail.com");
    type("smtp-to", "me@gmail.com, you@example.com");
    $("smtp-save").click();
    await vi.waitFor(() => expect($("toast").textContent).toBe("Saved."));
    expect(saved()[0].smtp).toEqual({
      host: "smtp.gmail.com",
      port: 587,
      security: "starttls",
      user: "me@gmail.com",
      from: null,
      to: "me@gmail.com, you@example.com",
      ca_file: "/etc/ssl/my-ca.pem",
    });
    expect(commands(backend)).not.toContain("set_smtp_password");
  });

  it("saves a typed password, then clears the field", async () => {
    const { backend } = await open();
    type("smtp-password", "app-password");
    $("smtp-save").click();
    await vi.waitFor(() => expect($("smtp-password-status").textContent).toBe("A password is saved."));
    expect(backend.calls().find(([c]) => c === "set_smtp_password")![1]).toEqual({ password: "app-password" });
    expect($("smtp-password").value).toBe("");
  });

  it("sends a test email and says where it went, or why not", async () => {
    await open(sampleSettings(), { send_test_email: () => ({ to: ["me@example.com", "you@example.com"], server: "smtp.gmail.com:587" }) });
    $("smtp-test").click();
    await vi.waitFor(() =>
      expect($("smtp-test-result").textContent).toBe("Sent a test email to me@example.com, you@example.com through smtp.gmail.com:587."),
    );
    document.body.replaceChildren();
    await open(sampleSettings(), { send_test_email: () => Promise.reject({ code: "email_login_failed", message: "535 bad credentials" }) });
    $("smtp-test").click();
    await vi.waitFor(() => expect($("smtp-test-result").querySelector(".error")!.textContent).toContain("535 bad credentials"));
  });

  it("knows the presets by their server", () => {
    const table: [string | null, string][] = [
      ["smtp.gmail.com", "gmail"],
      [" SMTP.Office365.com ", "outlook"],
      ["mail.example.com", "custom"],
      [null, "custom"],
    ];
    for (const [host, preset] of table) expect(smtpPresetOf(host)).toBe(preset);
  });
});
