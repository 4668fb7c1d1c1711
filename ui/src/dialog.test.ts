// @vitest-environment jsdom
import { afterEach, describe, expect, it, vi } from "vitest";
import { button, openDialog } from "./dialog";
import { h } from "./dom";

afterEach(() => document.body.replaceChildren());

function key(k: string, shift = false) {
  document.dispatchEvent(new KeyboardEvent("keydown", { key: k, shiftKey: shift, bubbles: true }));
}

describe("dialogs", () => {
  it("focus the given element, trap Tab, close on Esc and give focus back", () => {
    const opener = h("button", { id: "opener" }, "Open");
    document.body.append(opener);
    opener.focus();
    const onClose = vi.fn();
    const cancel = button("Cancel", () => d.close(), { id: "c" });
    const ok = button("OK", () => undefined, { id: "ok", class: "danger" });
    const d = openDialog({ id: "dlg", title: "Replace current data?", body: ["text"], actions: [cancel, ok], initialFocus: cancel, onClose });
    expect(document.activeElement).toBe(cancel);
    expect(d.panel.getAttribute("aria-modal")).toBe("true");
    ok.focus();
    key("Tab");
    expect(document.activeElement).toBe(cancel);
    key("Tab", true);
    expect(document.activeElement).toBe(ok);
    key("Escape");
    expect(document.getElementById("dlg")).toBeNull();
    expect(onClose).toHaveBeenCalledOnce();
    expect(document.activeElement).toBe(opener);
  });

  it("stay open on Esc while busy", () => {
    const d = openDialog({ id: "dlg", title: "Working", body: [], actions: [button("x", () => undefined)] });
    d.setBusy(true);
    key("Escape");
    expect(document.getElementById("dlg")).not.toBeNull();
    d.setBusy(false);
    key("Escape");
    expect(document.getElementById("dlg")).toBeNull();
  });
});
