import { appVersion } from "./api";

const root = document.querySelector<HTMLElement>("#app")!;
root.innerHTML = `
  <section class="card">
    <h1>Driveback</h1>
    <p>Encrypted backups of your MongoDB database to your own Google Drive.</p>
    <p class="muted" id="version"></p>
  </section>`;

appVersion()
  .then((v) => (document.querySelector("#version")!.textContent = `Version ${v}`))
  .catch(() => undefined);
