import { api, type AppState } from "./api";
import { h, replace } from "./dom";
import { errorBox } from "./messages";
import { renderBackups } from "./views/backups";
import { renderFirstRun } from "./views/firstrun";
import { listenToBackend, renderHome } from "./views/home";

const root = document.querySelector<HTMLElement>("#app")!;
let route: "home" | "backups" = "home";

function show(state: AppState): void {
  root.dataset.view = state.ready ? route : "firstrun";
  if (!state.ready) {
    renderFirstRun(root, state, (s, next = "home") => {
      route = next;
      show(s);
    });
  } else if (route === "backups") {
    void renderBackups(root, () => {
      route = "home";
      void refresh();
    });
  } else {
    renderHome(root, state, {
      backups: () => {
        route = "backups";
        show(state);
      },
      refresh,
      show,
    });
  }
}

async function refresh(): Promise<void> {
  try {
    show(await api.appState());
  } catch (e) {
    replace(root, h("section", { class: "card" }, h("h1", {}, "Driveback"), errorBox(e)));
  }
}

// Backups started by the schedule or the tray, and changes made elsewhere, show on the home view.
listenToBackend({ refresh });
// A view that changed the state outside the home view (a confirmed key) asks for a new look.
window.addEventListener("driveback:refresh", () => void refresh());

void refresh().then(() => {
  // After the first paint: the backend logs the time from start (and the end-to-end test reads it).
  requestAnimationFrame(() =>
    requestAnimationFrame(() =>
      api
        .uiReady()
        .then((r) => {
          document.body.dataset.startupMs = String(r.startup_ms);
          document.body.dataset.pid = String(r.pid);
        })
        .catch(() => undefined),
    ),
  );
});
