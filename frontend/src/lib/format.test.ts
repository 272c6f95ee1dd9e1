import { describe, expect, it } from "vitest";
import { chipToken, describeJobMessage, formatBytes, formatDuration, formatNumber, sourceLabel } from "./format";
import { matchRoute } from "./router";

describe("format", () => {
  it("formats sizes, durations and numbers", () => {
    expect(formatBytes(0)).toBe("0 B");
    expect(formatBytes(68852)).toBe("67.2 KB");
    expect(formatBytes(3 * 1024 ** 3)).toBe("3.0 GB");
    expect(formatBytes(null)).toBe("—");
    expect(formatDuration(65)).toBe("1:05");
    expect(formatDuration(3725)).toBe("1:02:05");
    expect(formatNumber(1234)).toBe("1,234");
    expect(formatNumber(0.00001)).toBe("1.00e-5");
  });

  it("describes download byte progress and shows tokens visibly", () => {
    expect(describeJobMessage("1024/2048 bytes")).toBe("1.0 KB of 2.0 KB");
    expect(describeJobMessage("detecting")).toBe("detecting");
    expect(chipToken(" the\n")).toBe("␣the↵");
    expect(chipToken("")).toBe("∅");
    expect(sourceLabel("gemma_scope")).toBe("Gemma Scope");
  });

  it("routes paths to screens", () => {
    expect(matchRoute("/")).toEqual({ name: "saes" });
    expect(matchRoute("/jobs")).toEqual({ name: "jobs" });
    expect(matchRoute("/saes/abc")).toEqual({ name: "sae", saeId: "abc" });
    expect(matchRoute("/saes/abc/features/12")).toEqual({ name: "feature", saeId: "abc", index: 12 });
    expect(matchRoute("/saes/abc/features/x")).toEqual({ name: "notFound" });
  });
});
