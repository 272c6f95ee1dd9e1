import { fireEvent, render, screen, waitFor } from "@testing-library/react";
import { beforeEach, describe, expect, it, vi } from "vitest";
import * as client from "../api/client";
import type { Release, ReleaseSummary } from "../api/types";
import { DownloadFromHF } from "../components/DownloadFromHF";
import { installFakeApi, type FakeApi } from "../test/fakeApi";
import { makeJob } from "../test/fixtures";
import { releaseActions, saeLabel, useReleasesStore, visibleSAEs } from "./releasesStore";

const SUMMARY: ReleaseSummary = {
  name: "gpt2-small-res-jb", repo_id: "jbloom/GPT2-Small-SAEs-Reformatted", model: "gpt2-small",
  conversion_func: null, family: "saelens", n_saes: 3,
};
const RELEASE: Release = {
  name: "gpt2-small-res-jb", repo_id: "jbloom/GPT2-Small-SAEs-Reformatted", model: "gpt2-small",
  conversion_func: null, links: {}, config_overrides: { model_from_pretrained_kwargs: { center_writing_weights: true } },
  saes: [
    { id: "blocks.0.hook_resid_pre", path: "blocks.0.hook_resid_pre", l0: 10, variance_explained: 0.999,
      neuronpedia: "gpt2-small/0-res-jb", norm_scaling_factor: null },
    { id: "blocks.1.hook_resid_pre", path: "blocks.1.hook_resid_pre", l0: 10, variance_explained: 0.999,
      neuronpedia: "gpt2-small/1-res-jb", norm_scaling_factor: null },
    { id: "blocks.11.hook_resid_post", path: "blocks.11.hook_resid_post", l0: 70, variance_explained: 0.77,
      neuronpedia: null, norm_scaling_factor: null },
  ],
};

let api: FakeApi;
beforeEach(() => {
  api = installFakeApi();
  releaseActions.reset();
});

describe("releasesStore", () => {
  it("filters a release's SAEs by id or Neuronpedia id, every word", () => {
    expect(visibleSAEs(RELEASE, "").map((s) => s.id)).toHaveLength(3);
    expect(visibleSAEs(RELEASE, "resid_pre 1-res").map((s) => s.id)).toEqual(["blocks.1.hook_resid_pre"]);
    expect(visibleSAEs(RELEASE, "POST").map((s) => s.id)).toEqual(["blocks.11.hook_resid_post"]);
    expect(visibleSAEs(RELEASE, "", 1)).toHaveLength(1);
    expect(visibleSAEs(null, "x")).toEqual([]);
    expect(saeLabel(RELEASE.saes[0])).toBe("blocks.0.hook_resid_pre — L0 10 — gpt2-small/0-res-jb");
    expect(saeLabel(RELEASE.saes[2])).toBe("blocks.11.hook_resid_post — L0 70");
  });

  it("drops the answer to a superseded search", async () => {
    const answers: ((value: { items: ReleaseSummary[]; total: number; sae_lens_version: string }) => void)[] = [];
    const spy = vi.spyOn(client.api, "searchReleases").mockImplementation(
      () => new Promise((resolve) => void answers.push(resolve)));
    const first = releaseActions.search("gp");
    const second = releaseActions.search("gpt2");
    answers[1]({ items: [SUMMARY], total: 1, sae_lens_version: "6.54.12" });
    await second;
    answers[0]({ items: [], total: 0, sae_lens_version: "6.54.12" });  // the older answer arrives last
    await first;
    expect(useReleasesStore.getState().results.map((r) => r.name)).toEqual(["gpt2-small-res-jb"]);
    expect(spy.mock.calls).toEqual([["gp", 20], ["gpt2", 20]]);
    spy.mockRestore();
  });

  it("searches over the API, picks a release and its first SAE, keeps the pick visible while filtering", async () => {
    api.on("GET /api/v1/hub/releases", { body: { items: [SUMMARY], total: 1, sae_lens_version: "6.54.12" } });
    api.on("GET /api/v1/hub/releases/{release}", { body: RELEASE });
    await releaseActions.search("gpt2 res");
    expect(useReleasesStore.getState().results).toEqual([SUMMARY]);
    expect(api.calls.at(-1)?.search).toBe("?query=gpt2+res&limit=20");

    await releaseActions.pick("gpt2-small-res-jb");
    expect(api.calls.at(-1)?.path).toBe("/api/v1/hub/releases/gpt2-small-res-jb");
    expect(useReleasesStore.getState().saeId).toBe("blocks.0.hook_resid_pre");
    releaseActions.pickSAE("blocks.1.hook_resid_pre");
    releaseActions.filterSAEs("hook_resid_pre");
    expect(useReleasesStore.getState().saeId).toBe("blocks.1.hook_resid_pre");
    releaseActions.filterSAEs("post");
    expect(useReleasesStore.getState().saeId).toBe("blocks.11.hook_resid_post");
    releaseActions.filterSAEs("nothing-matches");
    expect(useReleasesStore.getState().saeId).toBe("");

    await releaseActions.search("  ");
    expect(useReleasesStore.getState().results).toEqual([]);
  });

  it("reports a failed pick", async () => {
    api.on("GET /api/v1/hub/releases/{release}", { status: 404, body: { error: { type: "NotFoundError", message: "no SAELens release named 'x'" } } });
    await releaseActions.pick("x");
    expect(useReleasesStore.getState().releaseError).toBe("no SAELens release named 'x'");
    expect(useReleasesStore.getState().release).toBeNull();
  });
});

describe("DownloadFromHF release tab", () => {
  it("types to search, picks a release and an SAE, and downloads it by release + SAE id", async () => {
    api.on("GET /api/v1/hub/releases", { body: { items: [SUMMARY], total: 1, sae_lens_version: "6.54.12" } });
    api.on("GET /api/v1/hub/releases/{release}", { body: RELEASE });
    api.on("POST /api/v1/hub/releases/{release}/download", { status: 202, body: { job_id: "job-7", sae_id: "sae-7" } });
    api.on("GET /api/v1/jobs/{id}", { body: makeJob({ id: "job-7", type: "sae_download", status: "completed", progress: 1 }) });
    api.on("GET /api/v1/saes", { body: { items: [], total: 0, facets: { models: [], layers: [], sources: [], architectures: [] } } });
    render(<DownloadFromHF onClose={() => undefined} />);
    fireEvent.click(screen.getByRole("tab", { name: "SAELens release" }));
    fireEvent.change(screen.getByLabelText("SAELens release"), { target: { value: "gpt2 res" } });
    fireEvent.click(await screen.findByRole("button", { name: /gpt2-small-res-jb/ }));
    const picker = await screen.findByLabelText("SAE");
    fireEvent.change(picker, { target: { value: "blocks.1.hook_resid_pre" } });
    expect(screen.getByTestId("release-sae-preview").textContent).toContain("gpt2-small/1-res-jb");
    expect(screen.getByTestId("release-sae-preview").textContent).toContain("center_writing_weights");
    fireEvent.click(screen.getByRole("button", { name: /^Download/ }));
    await waitFor(() => expect(api.calls.find((c) => c.method === "POST")).toMatchObject({
      path: "/api/v1/hub/releases/gpt2-small-res-jb/download", body: { sae_id: "blocks.1.hook_resid_pre" } }));
    await screen.findByText("Downloaded and added to your SAEs.");
  });
});
