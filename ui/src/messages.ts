// Errors and short notices, in plain words with the action to take.
import { asApiError, type ApiError } from "./api";
import { button } from "./dialog";
import { h } from "./dom";
import { explainError } from "./format";

export function errorBox(e: unknown, id?: string): HTMLElement {
  const err: ApiError = asApiError(e);
  const x = explainError(err);
  return h(
    "div",
    { class: "error", role: "alert", id, "data-code": err.code },
    h("strong", {}, x.title),
    " ",
    x.action,
    x.detail ? h("div", { class: "detail" }, `Details: ${x.detail}`) : null,
    err.code === "key_changed" ? confirmKeyButton() : null,
  );
}

/** The way out of `key_changed` for a key the user replaced on purpose: the passphrase that
 * opens the new key confirms it. */
function confirmKeyButton(): HTMLElement {
  return button(
    "I replaced it: confirm with my passphrase",
    async () => {
      const { confirmNewKey } = await import("./views/keys");
      await confirmNewKey();
    },
    { class: "confirm-new-key" },
  );
}

/** Shows `e` in `slot` (replacing what was there). */
export function showError(slot: HTMLElement, e: unknown): void {
  slot.replaceChildren(errorBox(e));
}

let toastTimer: number | undefined;

/** A short notice at the bottom of the window, read out by screen readers. Notices that come
 * while one is shown stack under it. */
export function toast(text: string): void {
  let el = document.getElementById("toast");
  if (!el) {
    el = h("div", { id: "toast", class: "toast", role: "status", "aria-live": "polite" });
    document.body.append(el);
  }
  if (!el.classList.contains("shown")) el.replaceChildren();
  if (![...el.children].some((line) => line.textContent === text)) el.append(h("div", {}, text));
  el.classList.add("shown");
  window.clearTimeout(toastTimer);
  toastTimer = window.setTimeout(() => el!.classList.remove("shown"), 5000);
}
