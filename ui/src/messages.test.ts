// @vitest-environment jsdom
import { describe, expect, it, vi } from "vitest";
import { errorBox, toast, TOAST_MS } from "./messages";

describe("errorBox", () => {
  it("offers the way out of a replaced backup key, and only there", () => {
    const box = errorBox({ code: "key_changed", message: "the backup key at folder:/b is not the one this device confirmed" });
    expect(box.dataset.code).toBe("key_changed");
    expect(box.textContent).toContain("Nothing is backed up there");
    const way = box.querySelector<HTMLButtonElement>("button.confirm-new-key");
    expect(way?.textContent).toBe("I replaced it: confirm with my passphrase");
    expect(errorBox({ code: "wrong_passphrase", message: "" }).querySelector("button")).toBeNull();
  });
});

describe("toast", () => {
  it("shows one notice at a time, in order, without repeats", () => {
    vi.useFakeTimers();
    try {
      toast("Connected as me@example.com");
      toast("Backup complete.");
      toast("Backup complete.");
      const el = document.getElementById("toast")!;
      expect(el.textContent).toBe("Connected as me@example.com");
      vi.advanceTimersByTime(TOAST_MS);
      expect(el.classList.contains("shown")).toBe(false);
      vi.advanceTimersByTime(1000);
      expect(el.textContent).toBe("Backup complete.");
      expect(el.classList.contains("shown")).toBe(true);
      vi.advanceTimersByTime(TOAST_MS + 1000);
      expect(el.classList.contains("shown")).toBe(false);
      expect(el.textContent).toBe("Backup complete.");
    } finally {
      vi.useRealTimers();
    }
  });
});

describe("toast, old news", () => {
  it("drops a notice that waited too long instead of showing it late", () => {
    vi.useFakeTimers();
    try {
      document.body.replaceChildren();
      toast("one");
      toast("two");
      toast("three");
      const el = document.getElementById("toast")!;
      vi.advanceTimersByTime(TOAST_MS + 500);
      expect(el.textContent).toBe("two");
      vi.advanceTimersByTime(TOAST_MS + 500);
      // "three" waited more than 8 s: dropped.
      expect(el.classList.contains("shown")).toBe(false);
      vi.advanceTimersByTime(TOAST_MS);
      expect(el.textContent).toBe("two");
    } finally {
      vi.useRealTimers();
    }
  });
});
