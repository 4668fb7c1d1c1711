// @vitest-environment jsdom
import { describe, expect, it } from "vitest";
import { errorBox } from "./messages";

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
