// Passphrase dialogs: ask for it, show the key, change it, and the periodic "do you still know
// your passphrase?" check.
import { api, asApiError } from "../api";
import { button, openDialog } from "../dialog";
import { busy, h } from "../dom";
import { errorBox, toast } from "../messages";

/** Asks for the passphrase; resolves to null on Cancel/Esc. `check` may reject it (then the
 * dialog stays open with the error). */
export function askPassphrase(title: string, text: string, check?: (p: string) => Promise<void>): Promise<string | null> {
  return new Promise((resolve) => {
    let answered = false;
    const input = h("input", { id: "ask-passphrase", type: "password", autocomplete: "current-password" });
    const slot = h("div", { class: "slot", "aria-live": "polite" });
    const ok = button("Continue", () => submit(), { id: "ask-passphrase-ok", class: "primary" });
    const cancel = button("Cancel", () => d.close(), { id: "ask-passphrase-cancel" });
    const submit = () =>
      busy(ok, "Checking…", async () => {
        slot.replaceChildren();
        try {
          if (check) await check(input.value);
          answered = true;
          d.close();
          resolve(input.value);
        } catch (e) {
          slot.replaceChildren(errorBox(e));
          input.select();
        }
      });
    input.addEventListener("keydown", (e) => {
      if (e.key === "Enter") void submit();
    });
    const d = openDialog({
      id: "passphrase-dialog",
      title,
      body: [h("p", {}, text), h("label", { for: "ask-passphrase" }, "Passphrase"), input, slot],
      actions: [cancel, ok],
      initialFocus: input,
      onClose: () => {
        if (!answered) resolve(null);
      },
    });
  });
}

/** Shows the backup key, asking for the passphrase first unless given. Whether it was shown. */
export async function showKeyDialog(passphrase?: string): Promise<boolean> {
  let key: { secret_key: string; public_key: string } | null = null;
  const p =
    passphrase ??
    (await askPassphrase("Show your backup key", "Enter your passphrase to see the key.", async (x) => {
      key = await api.showKey(x);
    }));
  if (p === null) return false;
  try {
    key ??= await api.showKey(p);
  } catch (e) {
    toast(asApiError(e).message);
    return false;
  }
  const code = h("code", { id: "secret-key", class: "key", tabindex: "0" }, key!.secret_key);
  const close = button("I've stored it safely", () => d.close(), { id: "key-close", class: "primary" });
  const copy = button("Copy", async () => {
    try {
      await navigator.clipboard.writeText(key!.secret_key);
      toast("The key is copied: paste it into your password manager, then copy something else.");
    } catch {
      toast("Could not copy: select the key and copy it by hand.");
    }
  }, { id: "key-copy" });
  const save = button("Save…", async () => {
    try {
      const path = await api.pickSaveFile("Save your backup key", "driveback-backup-key.txt");
      if (!path) return;
      toast(`The key is saved in ${await api.saveKey(p, path)}: move it somewhere safe, away from this computer.`);
    } catch (e) {
      toast(asApiError(e).message);
    }
  }, { id: "key-save" });
  const d = openDialog({
    id: "key-dialog",
    title: "Your backup key",
    body: [
      h(
        "p",
        {},
        "With this key, your backups can be restored even without the passphrase. Anyone who has it can read them: keep it private, on paper or in a password manager.",
      ),
      code,
    ],
    actions: [copy, save, close],
    initialFocus: close,
  });
  return true;
}

export function changePassphraseDialog(): void {
  const current = h("input", { id: "current-passphrase", type: "password", autocomplete: "current-password" });
  const next = h("input", { id: "new-passphrase", type: "password", autocomplete: "new-password" });
  const repeat = h("input", { id: "new-passphrase-repeat", type: "password", autocomplete: "new-password" });
  const slot = h("div", { class: "slot", "aria-live": "polite" });
  const save = button("Change passphrase", () =>
    busy(save, "Changing…", async () => {
      slot.replaceChildren();
      if (next.value !== repeat.value) {
        slot.replaceChildren(errorBox({ code: "bad_input", message: "the two new passphrases are not the same" }));
        return;
      }
      try {
        await api.changePassphrase(current.value, next.value);
        d.close();
        toast("Passphrase changed. Your backups stay as they are.");
      } catch (e) {
        slot.replaceChildren(errorBox(e));
      }
    }),
    { id: "change-passphrase-save", class: "primary" },
  );
  const d = openDialog({
    id: "change-passphrase-dialog",
    title: "Change passphrase",
    body: [
      h("p", { class: "warning" }, "Your backups stay as they are. If you lose the new passphrase, they cannot be restored."),
      h("label", { for: "current-passphrase" }, "Current passphrase"),
      current,
      h("label", { for: "new-passphrase" }, "New passphrase (at least 8 characters)"),
      next,
      h("label", { for: "new-passphrase-repeat" }, "Repeat the new passphrase"),
      repeat,
      slot,
    ],
    actions: [button("Cancel", () => d.close(), { id: "change-passphrase-cancel" }), save],
    initialFocus: current,
  });
}

/** WhatsApp's periodic check: the user types the passphrase to prove they still know it. */
export async function passphraseCheck(onChecked: () => void): Promise<void> {
  const p = await askPassphrase(
    "Do you still know your passphrase?",
    "Type your passphrase to make sure you can restore your backups when you need to.",
    async (x) => {
      const r = await api.checkPassphrase(x);
      if (!r.ok) throw { code: "wrong_passphrase", message: "" };
    },
  );
  if (p !== null) {
    toast("Right! You can restore your backups.");
    onChecked();
  }
}

/** Confirms a destination's replaced backup key: the passphrase must open it. */
export async function confirmNewKey(): Promise<void> {
  const p = await askPassphrase(
    "Confirm the new backup key",
    "Enter the passphrase that protects the new key. Backups made with the old key are no longer listed here.",
    async (x) => {
      const r = await api.confirmDestinationKey(x);
      if (!r.ok) throw { code: "wrong_passphrase", message: "" };
    },
  );
  if (p !== null) {
    toast("The new backup key is confirmed: backups go on.");
    window.dispatchEvent(new Event("driveback:refresh"));
  }
}
