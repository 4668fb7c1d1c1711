// @vitest-environment jsdom
import { afterEach, describe, expect, it, vi } from "vitest";

vi.mock("@tauri-apps/api/core", () => ({ invoke: vi.fn(), Channel: class {} }));
vi.mock("@tauri-apps/api/event", () => ({ listen: vi.fn() }));

import { listen } from "@tauri-apps/api/event";
import { onBackendEvent } from "./api";

const w = window as { __TAURI_INTERNALS__?: unknown };
afterEach(() => {
  delete w.__TAURI_INTERNALS__;
  vi.mocked(listen).mockReset();
});

describe("onBackendEvent", () => {
  it("listens to nothing outside the app", () => {
    const stop = onBackendEvent("state-changed", () => undefined);
    expect(listen).not.toHaveBeenCalled();
    expect(() => stop()).not.toThrow();
  });

  it("passes the payload on, and stops even before listening has begun", async () => {
    w.__TAURI_INTERNALS__ = {};
    const unlisten = vi.fn();
    let handler: ((e: { payload: unknown }) => void) | undefined;
    vi.mocked(listen).mockImplementation(async (_name, h) => {
      handler = h as typeof handler;
      return unlisten;
    });
    const got: unknown[] = [];
    const stop = onBackendEvent<{ job_id: string }>("job-started", (p) => got.push(p));
    stop();
    await Promise.resolve();
    await Promise.resolve();
    expect(unlisten).toHaveBeenCalledOnce();
    handler!({ payload: { job_id: "job-1" } });
    expect(got).toEqual([{ job_id: "job-1" }]);
    expect(vi.mocked(listen).mock.calls[0][0]).toBe("job-started");
  });

  it("does not throw when the app may not listen", async () => {
    w.__TAURI_INTERNALS__ = {};
    vi.mocked(listen).mockRejectedValue("event.listen not allowed");
    const stop = onBackendEvent("state-changed", () => undefined);
    await new Promise((r) => setTimeout(r, 0));
    expect(() => stop()).not.toThrow();
  });
});
