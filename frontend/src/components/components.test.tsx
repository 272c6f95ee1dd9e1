import { act, fireEvent, render, screen, waitFor, within } from "@testing-library/react";
import { beforeEach, describe, expect, it, vi } from "vitest";
import type { RepoListing } from "../api/types";
import { useExportStore } from "../stores/exportStore";
import { useJobsStore } from "../stores/jobsStore";
import { useSAEsStore } from "../stores/saesStore";
import { installFakeApi, type FakeApi } from "../test/fakeApi";
import { makeDashboard, makeJob, makeSAE } from "../test/fixtures";
import { DownloadFromHF } from "./DownloadFromHF";
import { ExportProgress } from "./ExportProgress";
import { FeatureDashboard } from "./FeatureDashboard";
import { Modal } from "./Modal";
import { SAEsPanel } from "./SAEsPanel";

const FACETS = { models: ["gemma-2-2b"], layers: [0], sources: ["gemma_scope"], architectures: ["jumprelu"] };
let api: FakeApi;

beforeEach(() => {
  api = installFakeApi();
  useSAEsStore.setState({ items: [], total: 0, loaded: false, error: null,
    query: { sort: "created_at", order: "desc", page: 1, page_size: 50 } });
  useJobsStore.setState({ jobs: {}, order: [] });
  useExportStore.setState({ phase: "closed", saeId: null, jobId: null });
});

describe("SAEsPanel", () => {
  it("tells a new user what to do first when there are no SAEs", async () => {
    api.on("GET /api/v1/saes", { body: { items: [], total: 0, facets: FACETS } });
    render(<SAEsPanel />);
    const empty = await screen.findByTestId("empty-state");
    expect(empty.textContent).toContain("mistudio demo");
    fireEvent.click(within(empty).getByRole("button", { name: /download one from HuggingFace/ }));
    expect(screen.getByRole("dialog", { name: "Download from HuggingFace" })).toBeTruthy();
  });

  it("shows a card per SAE with badge and dimensions, and filters on the server", async () => {
    api.on("GET /api/v1/saes", { body: { items: [makeSAE(), makeSAE({ id: "sae-2", name: "mine", source: "upload" })], total: 2, facets: FACETS } });
    render(<SAEsPanel />);
    const cards = await screen.findAllByTestId("sae-card");
    expect(cards).toHaveLength(2);
    expect(within(cards[0]).getByTestId("source-badge").textContent).toBe("Gemma Scope");
    expect(within(cards[0]).getByTestId("dimensions").textContent).toBe("32 → 256");
    expect(within(cards[1]).getByTestId("source-badge").textContent).toBe("Upload");
    fireEvent.change(screen.getByLabelText("Source"), { target: { value: "upload" } });
    await waitFor(() => expect(api.calls.at(-1)?.search).toContain("source=upload"));
    expect(api.calls.at(-1)?.search).toContain("page_size=50");
  });

  it("deletes an SAE only after confirmation", async () => {
    api.on("GET /api/v1/saes", { body: { items: [makeSAE()], total: 1, facets: FACETS } });
    api.on("DELETE /api/v1/saes/{id}", { status: 204 });
    render(<SAEsPanel />);
    const card = await screen.findByTestId("sae-card");
    fireEvent.click(within(card).getByRole("button", { name: "Delete" }));
    expect(api.calls.some((c) => c.method === "DELETE")).toBe(false);
    const dialog = screen.getByTestId("confirm-dialog");
    fireEvent.click(within(dialog).getByRole("button", { name: "Delete" }));
    await waitFor(() => expect(api.calls.some((c) => c.method === "DELETE" && c.path === "/api/v1/saes/sae-1")).toBe(true));
  });
});

describe("Modal", () => {
  it("closes on Escape and labels itself", () => {
    const onClose = vi.fn();
    render(<Modal title="Hello" onClose={onClose}><input aria-label="x" /></Modal>);
    expect(screen.getByRole("dialog", { name: "Hello" })).toBeTruthy();
    fireEvent.keyDown(document, { key: "Escape" });
    expect(onClose).toHaveBeenCalledOnce();
  });
});

const LISTING: RepoListing = {
  repo_id: "google/gemma-scope-2b-pt-res", endpoint: "https://huggingface.co", revision: null, commit_sha: "a".repeat(40), n_files: 16, total_bytes: 1000,
  saes: ["layer_0/width_16k/average_l0_22", "layer_0/width_65k/average_l0_18"].map((path, i) => ({
    path, format: "gemma_scope", files: [{ path: `${path}/params.npz`, size: 1000 }], download_bytes: 1000, d_in: 32,
    d_sae: i === 0 ? 256 : 512, architecture: "jumprelu", dtype: "float32", k: null, layer: 0, hook_name: null,
    model_name: null, width: i === 0 ? "16k" : "65k", l0: i === 0 ? 22 : 18, config: null,
    memory: { n_params: 100, bytes_at_dtype: 400, bytes_fp16: 200, bytes_fp32: 400 }, error: null,
  })),
  gemma_scope: [{ layer: 0, widths: [
    { width: "16k", d_sae: 256, l0s: [{ l0: 22, path: "layer_0/width_16k/average_l0_22" }] },
    { width: "65k", d_sae: 512, l0s: [{ l0: 18, path: "layer_0/width_65k/average_l0_18" }] },
  ] }],
};

describe("DownloadFromHF", () => {
  it("browses a Gemma Scope repo with layer → width → L0 pickers and a preview", async () => {
    api.on("GET /api/v1/hub/saes", { body: LISTING });
    api.on("POST /api/v1/saes/download-hf", { status: 202, body: { job_id: "job-9", sae_id: "sae-9" } });
    api.on("GET /api/v1/jobs/{id}", { body: makeJob({ id: "job-9", type: "sae_download", status: "completed", progress: 1 }) });
    api.on("GET /api/v1/saes", { body: { items: [], total: 0, facets: FACETS } });
    render(<DownloadFromHF onClose={() => undefined} />);
    fireEvent.change(screen.getByLabelText("Repository id"), { target: { value: "google/gemma-scope-2b-pt-res" } });
    fireEvent.click(screen.getByRole("button", { name: "Browse" }));
    await screen.findByTestId("gemma-scope-pickers");
    expect(screen.getByTestId("preview-dims").textContent).toBe("32 → 256");
    fireEvent.change(screen.getByLabelText("Width"), { target: { value: "65k" } });
    expect(screen.getByTestId("preview-dims").textContent).toBe("32 → 512");
    expect((screen.getByLabelText("Average L0") as HTMLSelectElement).value).toBe("18");
    fireEvent.click(screen.getByRole("button", { name: /^Download/ }));
    await waitFor(() => expect(api.calls.find((c) => c.path === "/api/v1/saes/download-hf")?.body)
      .toMatchObject({ repo_id: "google/gemma-scope-2b-pt-res", path_in_repo: "layer_0/width_65k/average_l0_18" }));
    await screen.findByText("Downloaded and added to your SAEs.");
  });

  it("asks for a token when the repo is gated", async () => {
    api.on("GET /api/v1/hub/saes", { status: 401, body: { error: { type: "HubAuthError", message: "repo needs a token" } } });
    render(<DownloadFromHF onClose={() => undefined} />);
    fireEvent.change(screen.getByLabelText("Repository id"), { target: { value: "acme/private" } });
    fireEvent.click(screen.getByRole("button", { name: "Browse" }));
    expect((await screen.findByTestId("browse-error")).textContent).toMatch(/repo needs a token.*token/);
    expect(screen.getByLabelText(/HuggingFace token/)).toBeTruthy();
  });
});

describe("FeatureDashboard", () => {
  it("highlights tokens, marks the max token and saves the label", async () => {
    api.on("GET /api/v1/saes/{id}/features/{i}/dashboard", { body: makeDashboard() });
    api.on("PUT /api/v1/saes/{id}/features/{i}/label", { body: { label: "felines" } });
    render(<FeatureDashboard saeId="sae-1" index={3} />);
    const highlighted = await screen.findAllByTestId("highlighted-token");
    expect(highlighted.map((t) => t.textContent)).toEqual([" cat", " sat"]);
    expect(highlighted[0].className).toContain("max");
    expect(highlighted[0].getAttribute("title")).toContain("4");
    fireEvent.mouseEnter(highlighted[1]);
    expect(screen.getByText('" sat" = 1')).toBeTruthy();
    expect(screen.getByTestId("activation-histogram").querySelectorAll("rect")).toHaveLength(3);
    expect(screen.getByTestId("logits-pos").textContent).toContain("␣dog");
    fireEvent.change(screen.getByLabelText("Label"), { target: { value: "felines" } });
    fireEvent.click(screen.getByRole("button", { name: "Save label" }));
    await screen.findByText("Saved");
    expect(api.calls.at(-1)).toMatchObject({ method: "PUT", body: { label: "felines" } });
  });
});

describe("ExportProgress", () => {
  it("shows overall and stage progress with the stage table, and cancels", async () => {
    const job = makeJob({ id: "job-5" });
    api.on("GET /api/v1/jobs/{id}", { body: job });
    api.on("POST /api/v1/jobs/{id}/cancel", { body: { ...job, status: "cancelled" } });
    useJobsStore.setState({ jobs: { "job-5": job }, order: ["job-5"] });
    useExportStore.setState({ phase: "progress", saeId: "sae-1", jobId: "job-5" });
    render(<ExportProgress sae={makeSAE()} />);
    const rows = screen.getAllByTestId("stage-row");
    expect(rows.map((r) => r.getAttribute("data-status"))).toEqual(["completed", "running", "pending"]);
    expect(rows[0].textContent).toContain("0:02");
    expect(screen.getByRole("progressbar", { name: "Overall export progress" }).getAttribute("aria-valuenow")).toBe("40");
    expect(screen.getByRole("progressbar", { name: "Current stage progress" }).getAttribute("aria-valuenow")).toBe("50");
    expect(screen.getByText(/Remaining/).textContent).toContain("~0:12");
    await act(async () => fireEvent.click(screen.getByRole("button", { name: "Cancel export" })));
    await screen.findByText("Export cancelled.");
  });
});
