// @vitest-environment jsdom
import { afterEach, describe, expect, it, vi } from "vitest";

vi.mock("@tauri-apps/api/core", () => ({ invoke: vi.fn(), Channel: class {} }));
vi.mock("@tauri-apps/plugin-dialog", () => ({ open: vi.fn(), save: vi.fn() }));

import { save as savePicker } from "@tauri-apps/plugin-dialog";
import { fakeBackend } from "../testing";
import { showKeyDialog } from "./keys";

afterEach(() => document.body.replaceChildren());

const picker = savePicker as unknown as { mockResolvedValueOnce: (v: unknown) => void };

describe("the backup key", () => {
  it("is shown with Copy and Save, and Save writes it where the user chose", async () => {
    const backend = fakeBackend({
      show_key: () => ({ secret_key: "AGE-SECRET-KEY-1XYZ", public_key: "age1abc" }),
      save_key: (a) => a!.path,
    });
    expect(await showKeyDialog("correct horse battery staple")).toBe(true);
    expect(document.getElementById("secret-key")!.textContent).toBe("AGE-SECRET-KEY-1XYZ");
    expect(document.getElementById("key-copy")).not.toBeNull();
    picker.mockResolvedValueOnce("/home/me/safe/driveback-backup-key.txt");
    document.getElementById("key-save")!.click();
    await vi.waitFor(() => expect(document.getElementById("toast")?.textContent).toContain("/home/me/safe/driveback-backup-key.txt"));
    expect(backend.calls().find(([c]) => c === "save_key")?.[1]).toEqual({
      passphrase: "correct horse battery staple",
      path: "/home/me/safe/driveback-backup-key.txt",
    });
  });

  it("saves nothing when the save dialog is cancelled, and says why a save failed", async () => {
    const backend = fakeBackend({
      show_key: () => ({ secret_key: "AGE-SECRET-KEY-1XYZ", public_key: "age1abc" }),
      save_key: () => Promise.reject({ code: "bad_input", message: "/home/me/k.txt already exists: choose another name (nothing was overwritten)" }),
    });
    await showKeyDialog("pw");
    picker.mockResolvedValueOnce(null);
    document.getElementById("key-save")!.click();
    await new Promise((r) => setTimeout(r, 0));
    expect(backend.calls().some(([c]) => c === "save_key")).toBe(false);
    picker.mockResolvedValueOnce("/home/me/k.txt");
    document.getElementById("key-save")!.click();
    await vi.waitFor(() => expect(document.getElementById("toast")?.textContent).toContain("already exists"));
  });
});
