// @vitest-environment jsdom
import { afterEach, describe, expect, it, vi } from "vitest";

vi.mock("@tauri-apps/api/core", () => ({ invoke: vi.fn(), Channel: class {} }));
vi.mock("@tauri-apps/api/event", () => ({ listen: vi.fn() }));

import { listen } from "@tauri-apps/api/event";
import { followingJob, onBackendEvent, type JobEvent } from "./api";

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

describe("followingJob", () => {
  // The channel the command gets: the test plays the backend's side on it.
  type Ch = { onmessage: (e: JobEvent) => void };
  const progress = { event: "progress", percent: 100 } as unknown as JobEvent;

  it("settles on the job's end told on the channel when the command's answer does not come", async () => {
    const seen: string[] = [];
    const result = followingJob<{ documents: number }>(
      (ch) => {
        const c = ch as unknown as Ch;
        queueMicrotask(() => {
          c.onmessage(progress);
          c.onmessage({ event: "finished", job_id: "verify-1", kind: "verify", result: { documents: 6020 } } as JobEvent);
        });
        return new Promise(() => undefined); // the answer never arrives
      },
      (e) => seen.push(e.event),
    );
    await expect(result).resolves.toEqual({ documents: 6020 });
    expect(seen).toEqual(["progress", "finished"]);
  });

  it("settles on the command's answer when the channel tells no end", async () => {
    await expect(followingJob(async () => ({ documents: 3 }), () => undefined)).resolves.toEqual({ documents: 3 });
  });

  it("fails with the job's error told on the channel, as the command would", async () => {
    const error = { code: "passphrase_required", message: "Enter your passphrase." };
    const result = followingJob(
      (ch) => {
        queueMicrotask(() => (ch as unknown as Ch).onmessage({ event: "failed", job_id: "v", kind: "verify", error } as JobEvent));
        return new Promise(() => undefined);
      },
      () => undefined,
    );
    await expect(result).rejects.toEqual(error);
  });

  it("fails with the command's error", async () => {
    const error = { code: "busy", message: "A backup is running." };
    await expect(followingJob(() => Promise.reject(error), () => undefined)).rejects.toEqual(error);
  });
});
