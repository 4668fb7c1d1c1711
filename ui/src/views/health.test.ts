// @vitest-environment jsdom
import { describe, expect, it } from "vitest";
import { sampleHealth } from "../testing";
import { healthBody } from "./health";

describe("the health dialog", () => {
  it("shows the trends, and the way to acknowledge a data-loss alarm", () => {
    const x = sampleHealth();
    x.checks.push({ name: "data_loss", status: "warning", message: "Data went missing from shop on 2026-12-04: orders: 100 -> 60 documents." });
    const body = healthBody(x, new Date("2026-12-04T12:00:00Z"));
    const root = document.createElement("div");
    root.append(...body);
    const facts = root.querySelector("#health-metrics")!.textContent!;
    expect(facts).toContain("Size of the last backups2.0 MB → 2.1 MB (2 backups)");
    expect(facts).toContain("Time they took30 s → 3 min (2 backups)");
    const loss = root.querySelector('li[data-name="data_loss"]')!;
    expect(loss.textContent).toContain("Data went missing: ");
    expect(loss.querySelector("button.acknowledge-alarm")?.textContent).toBe("I know about this");
    expect(root.querySelectorAll("button.acknowledge-alarm")).toHaveLength(1);
  });

  it("gives one verdict and lists the checks that need something first", () => {
    const x = sampleHealth();
    x.status = "critical";
    x.checks = [
      { name: "last_backup", status: "healthy", message: "The last backup succeeded." },
      { name: "destination", status: "critical", message: "Google Drive needs reconnecting: sign in to Google again." },
      { name: "last_verify", status: "warning", message: "No backup has been verified for 9 days." },
    ];
    const root = document.createElement("div");
    root.append(...healthBody(x, new Date("2026-12-04T12:00:00Z")));
    expect(root.querySelector("#health-summary")!.textContent).toContain("2 checks need you");
    expect([...root.querySelectorAll<HTMLElement>("li.check")].map((li) => li.dataset.name)).toEqual(["destination", "last_verify", "last_backup"]);
    expect(root.querySelector("#health-glance")!.textContent).toBe(x.glance.text);
  });
});
