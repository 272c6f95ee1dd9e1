import { fireEvent, render, screen, waitFor } from "@testing-library/react";
import { beforeEach, describe, expect, it } from "vitest";
import type { PublishResult } from "../api/types";
import { useJobsStore } from "../stores/jobsStore";
import { installFakeApi, type FakeApi } from "../test/fakeApi";
import { makeJob } from "../test/fixtures";
import { PublishToHF } from "./PublishToHF";

let api: FakeApi;

const RESULT: PublishResult = {
  repo_id: "alice/saes", folder: "blocks.1.hook_resid_pre", revision: "main", repo_url: "https://hf.co/alice/saes",
  commit_oid: "abc", commit_url: "https://hf.co/alice/saes/commit/abc", committed: true,
  uploaded: ["README.md", "blocks.1.hook_resid_pre/cfg.json"], unchanged: ["pretrained_saes.yaml"],
  load_snippet: 'from sae_lens import SAE\n\nsae = SAE.from_pretrained("alice/saes", "blocks.1.hook_resid_pre")\n',
  neuronpedia_url: null, notes: [],
};

beforeEach(() => {
  api = installFakeApi();
  useJobsStore.setState({ jobs: {}, order: [], error: null });
});

describe("PublishToHF", () => {
  it("checks the repo id, starts a publish job and shows the loading snippet when it completes", async () => {
    const job = makeJob({ id: "job-pub", type: "hf_publish", status: "completed", progress: 1, result: RESULT });
    api.on("POST /api/v1/saes/{id}/publish/hf", { status: 202, body: { job_id: "job-pub", sae_id: "sae-1" } });
    api.on("GET /api/v1/jobs/{id}", { body: job });
    api.on("GET /api/v1/saes/{id}/publish/hf/{job}", { body: { job, result: RESULT } });
    render(<PublishToHF saeId="sae-1" />);
    fireEvent.click(screen.getByTestId("publish-hf-open"));
    fireEvent.change(screen.getByPlaceholderText("alice/gpt2-saes"), { target: { value: "no-owner" } });
    fireEvent.click(screen.getByRole("button", { name: "Publish" }));
    expect((await screen.findByTestId("publish-hf-error")).textContent).toContain("OWNER/NAME");
    expect(api.calls.some((c) => c.method === "POST")).toBe(false);

    fireEvent.change(screen.getByPlaceholderText("alice/gpt2-saes"), { target: { value: "alice/saes" } });
    fireEvent.change(screen.getByPlaceholderText("hf_…"), { target: { value: "hf_secret" } });
    fireEvent.click(screen.getByLabelText(/Private/));
    fireEvent.click(screen.getByRole("button", { name: "Publish" }));
    const snippet = await screen.findByTestId("publish-hf-snippet");
    expect(snippet.textContent).toBe(RESULT.load_snippet);
    const post = api.calls.find((c) => c.method === "POST");
    expect(post?.path).toBe("/api/v1/saes/sae-1/publish/hf");
    expect(post?.body).toEqual({ repo_id: "alice/saes", private: true, token: "hf_secret" });
    await waitFor(() => expect(screen.getByTestId("publish-hf-result").textContent).toContain("Published 2 file(s)"));
  });
});
