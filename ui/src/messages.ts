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
    x.action ? ` ${x.action}` : null,
    // The raw words sit behind "Details": the sentence above says what to do.
    x.detail ? h("details", { class: "detail" }, h("summary", {}, "Details"), h("span", { class: "detail-text" }, x.detail)) : null,
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
/** Notices waiting for the one shown to go, with when they came. */
const queued: string[] = [];
const queuedAt: number[] = [];
/** A notice that waited longer than this is old news: it is dropped, not shown late. */
const TOAST_STALE_MS = 8000;
/** How long a notice stays, and the pause between two. */
export const TOAST_MS = 4000;
const TOAST_GAP_MS = 300;

/** A short notice at the bottom of the window, read out by screen readers. One at a time: a
 * notice that comes while one is shown waits its turn (the same words are not queued twice). */
export function toast(text: string): void {
  let el = document.getElementById("toast");
  if (!el) {
    el = h("div", { id: "toast", class: "toast", role: "status", "aria-live": "polite" });
    document.body.append(el);
  }
  if (el.classList.contains("shown")) {
    if (el.textContent !== text && !queued.includes(text)) {
      queued.push(text);
      queuedAt.push(Date.now());
    }
    return;
  }
  show(el, text);
}

/** The notices waiting their turn (for tests). */
export function queuedToasts(): readonly string[] {
  return queued;
}

function show(el: HTMLElement, text: string): void {
  el.replaceChildren(h("div", {}, text));
  el.classList.add("shown");
  window.clearTimeout(toastTimer);
  toastTimer = window.setTimeout(() => {
    el.classList.remove("shown");
    let next = queued.shift();
    let at = queuedAt.shift();
    while (next !== undefined && at !== undefined && Date.now() - at > TOAST_STALE_MS) {
      next = queued.shift();
      at = queuedAt.shift();
    }
    if (next !== undefined) toastTimer = window.setTimeout(() => show(el, next), TOAST_GAP_MS);
  }, TOAST_MS);
}
