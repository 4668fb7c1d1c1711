// Modal dialogs: focus stays inside while open (Tab and Shift+Tab wrap), Esc closes (unless the
// dialog is busy), the element that opened it gets focus back on close.
import { h, type Child } from "./dom";
import { errorBox } from "./messages";

const FOCUSABLE =
  'button:not([disabled]), [href], input:not([disabled]), select:not([disabled]), textarea:not([disabled]), [tabindex]:not([tabindex="-1"])';

export interface DialogOptions {
  id: string;
  title: string;
  /** Dialog content. */
  body: Child[];
  /** Buttons, left to right. */
  actions?: HTMLButtonElement[];
  /** The element focused on open (default: the first focusable). */
  initialFocus?: HTMLElement;
  /** Called once the dialog is closed, by any means. */
  onClose?: () => void;
  /** "alert" for a destructive confirmation. */
  role?: "dialog" | "alertdialog";
}

export interface DialogHandle {
  root: HTMLElement;
  panel: HTMLElement;
  close: () => void;
  /** While busy, Esc and the backdrop do not close it. */
  setBusy: (busy: boolean) => void;
  setContent: (body: Child[], actions?: HTMLButtonElement[]) => void;
}

export function focusables(root: HTMLElement): HTMLElement[] {
  return Array.from(root.querySelectorAll<HTMLElement>(FOCUSABLE)).filter((el) => !el.hidden);
}

export function openDialog(opts: DialogOptions): DialogHandle {
  const opener = document.activeElement as HTMLElement | null;
  const titleId = `${opts.id}-title`;
  const content = h("div", { class: "dialog-body" });
  const footer = h("div", { class: "dialog-actions" });
  const panel = h(
    "div",
    {
      id: opts.id,
      class: "dialog",
      role: opts.role ?? "dialog",
      "aria-modal": "true",
      "aria-labelledby": titleId,
    },
    h("h2", { id: titleId }, opts.title),
    content,
    footer,
  );
  const root = h("div", { class: "overlay" }, panel);
  let busy = false;
  let closed = false;

  const setContent = (body: Child[], actions?: HTMLButtonElement[]) => {
    content.replaceChildren(...(body.filter(Boolean) as (Node | string)[]));
    footer.replaceChildren(...(actions ?? []));
    footer.hidden = !actions || actions.length === 0;
  };

  const close = () => {
    if (closed) return;
    closed = true;
    document.removeEventListener("keydown", onKey, true);
    root.remove();
    // The view behind may have been drawn again meanwhile: then its new copy of the opener.
    const back = opener && !document.contains(opener) && opener.id ? document.getElementById(opener.id) : opener;
    if (back && document.contains(back)) back.focus();
    opts.onClose?.();
  };

  const onKey = (e: KeyboardEvent) => {
    if (e.key === "Escape") {
      e.preventDefault();
      e.stopPropagation();
      if (!busy) close();
      return;
    }
    if (e.key !== "Tab") return;
    const items = focusables(panel);
    if (items.length === 0) {
      e.preventDefault();
      panel.focus();
      return;
    }
    const first = items[0];
    const last = items[items.length - 1];
    const active = document.activeElement as HTMLElement | null;
    if (e.shiftKey && (active === first || !panel.contains(active))) {
      e.preventDefault();
      last.focus();
    } else if (!e.shiftKey && (active === last || !panel.contains(active))) {
      e.preventDefault();
      first.focus();
    }
  };

  root.addEventListener("mousedown", (e) => {
    if (e.target === root && !busy) close();
  });
  panel.tabIndex = -1;
  setContent(opts.body, opts.actions);
  document.body.append(root);
  document.addEventListener("keydown", onKey, true);
  (opts.initialFocus ?? focusables(panel)[0] ?? panel).focus();

  return {
    root,
    panel,
    close,
    setBusy: (b: boolean) => {
      busy = b;
      panel.setAttribute("aria-busy", String(b));
    },
    setContent: (body, actions) => {
      setContent(body, actions);
      (focusables(panel)[0] ?? panel).focus();
    },
  };
}

export function button(
  label: string,
  onClick: (e: MouseEvent) => void,
  attrs: { id?: string; class?: string; type?: string } = {},
): HTMLButtonElement {
  return h("button", { type: "button", class: attrs.class ?? "secondary", id: attrs.id, onclick: onClick as EventListener }, label);
}

/** A dialog with a Close button that opens at once saying `loading`, then shows what `load`
 * answers, or its error. */
export async function loadingDialog(opts: { id: string; title: string; loading: string }, load: () => Promise<Child[]>): Promise<void> {
  const close = button("Close", () => d.close(), { id: `${opts.id.replace(/-dialog$/, "")}-close`, class: "primary" });
  const d = openDialog({
    id: opts.id,
    title: opts.title,
    body: [h("p", { class: "muted", id: `${opts.id}-loading` }, opts.loading)],
    actions: [close],
    initialFocus: close,
  });
  let body: Child[];
  try {
    body = await load();
  } catch (e) {
    body = [errorBox(e)];
  }
  d.setContent(body, [close]);
}
