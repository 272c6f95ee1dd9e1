import { afterEach, describe, expect, it, vi } from "vitest";
import { installFakeApi } from "../test/fakeApi";
import { makeJob } from "../test/fixtures";
import { watchJob } from "./watchJob";

class FakeEventSource {
  static last: FakeEventSource | null = null;
  onmessage: ((ev: { data: string }) => void) | null = null;
  onerror: (() => void) | null = null;
  closed = false;
  constructor(readonly url: string) {
    FakeEventSource.last = this;
  }
  close() {
    this.closed = true;
  }
}

afterEach(() => vi.unstubAllGlobals());

describe("watchJob", () => {
  it("follows Server-Sent Events until the job finishes", () => {
    vi.stubGlobal("EventSource", FakeEventSource);
    const seen: string[] = [];
    watchJob("job-1", (job) => seen.push(job.status));
    const source = FakeEventSource.last!;
    expect(source.url).toBe("/api/v1/jobs/job-1/events");
    source.onmessage!({ data: JSON.stringify(makeJob({ status: "running" })) });
    source.onmessage!({ data: JSON.stringify(makeJob({ status: "completed" })) });
    expect(seen).toEqual(["running", "completed"]);
    expect(source.closed).toBe(true);
  });

  it("falls back to polling when the stream breaks", async () => {
    vi.stubGlobal("EventSource", FakeEventSource);
    const api = installFakeApi();
    let n = 0;
    api.on("GET /api/v1/jobs/{id}", () => ({ body: makeJob({ status: ++n < 2 ? "running" : "completed" }) }));
    const seen: string[] = [];
    watchJob("job-1", (job) => seen.push(job.status), 5);
    FakeEventSource.last!.onerror!();
    await vi.waitFor(() => expect(seen).toEqual(["running", "completed"]));
    expect(FakeEventSource.last!.closed).toBe(true);
  });
});
