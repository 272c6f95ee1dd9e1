import { fireEvent, render, screen, waitFor, within } from "@testing-library/react";
import { beforeEach, describe, expect, it } from "vitest";
import type { Training, TrainingCurvesData } from "../api/types";
import { useJobsStore } from "../stores/jobsStore";
import {
  buildTrainRequest,
  DEFAULT_RUN,
  DEFAULT_SAE,
  liveMetrics,
  trainingActions,
  useTrainingStore,
} from "../stores/trainingStore";
import { installFakeApi, type FakeApi } from "../test/fakeApi";
import { makeJob } from "../test/fixtures";
import { TrainingCurves } from "./TrainingCurves";
import { TrainPage } from "./TrainPage";

let api: FakeApi;

function makeTraining(patch: Partial<Training> = {}): Training {
  return {
    id: "tr-1", name: "tiny topk", model_name: "tiny-gpt2", hook_name: "blocks.1.hook_resid_pre", dataset: "builtin:corpus",
    hyperparameters: { architecture: "topk", k: 8 }, metrics: {}, n_training_tokens: 40_000, started_at: null,
    finished_at: null, created_at: "2026-01-01T00:00:00+00:00", status: "running", job_id: "job-t", architecture: "topk",
    hook_name_out: null, device: "cpu", tokens_seen: 20_000, wall_time_s: 10, sae_id: null, run_dir: "trainings/job-t",
    ...patch,
  };
}

function density(n: number) {
  return { edges: Array.from({ length: n + 1 }, (_, i) => -6 + i), counts: Array.from({ length: n }, (_, i) => i + 1) };
}

function makeCurves(nSteps = 10, nEvals = 2): TrainingCurvesData {
  const steps = Array.from({ length: nSteps }, (_, i) => ({
    step: i + 1, tokens: (i + 1) * 2000, loss: 1 / (i + 1), mse: 0.5 / (i + 1), l0: 40 - i, explained_variance: 0.1 * i,
    dead_fraction: 0.01 * i, lr: 1e-3, elapsed_s: (i + 1) * 0.5,
  }));
  const evals = Array.from({ length: nEvals }, (_, i) => ({
    step: (i + 1) * 5, tokens: (i + 1) * 10_000, explained_variance: 0.5 + 0.1 * i, l0: 30, mse: 0.2, dead_fraction: 0.05, dense_fraction: 0.01,
    ce_loss_clean: 3, ce_loss_sae: 3.4 - 0.1 * i, ce_loss_zero: 5, ce_loss_recovered: 0.8 + 0.05 * i, kl_div: 0.3 - 0.1 * i,
  }));
  return { training_id: "tr-1", steps, evals, density_histogram: density(6) };
}

beforeEach(() => {
  api = installFakeApi();
  trainingActions.reset();
  useJobsStore.setState({ jobs: {}, order: [] });
  api.on("GET /api/v1/jobs", { body: { items: [] } });
});

describe("buildTrainRequest", () => {
  it("turns the form into the request: blanks are defaults, extra rows become extra_saes", () => {
    const body = buildTrainRequest({ ...DEFAULT_RUN, model: " gpt2 ", nTokens: "400_000", contextSize: "64", epochs: "3",
      seed: "0" }, [
      { ...DEFAULT_SAE, hook: "blocks.6.hook_resid_post", k: "16" },
      { ...DEFAULT_SAE, hook: "blocks.6.hook_mlp_in", hookOut: "blocks.6.hook_mlp_out", architecture: "standard",
        widthMode: "d_sae", width: "4096", l1: "5", lr: "0.0003", name: "transcoder" },
    ]);
    expect(body).toEqual({
      model: "gpt2", dataset: "builtin:corpus", n_tokens: 400000, context_size: 64, epochs: 3, seed: 0,
      hook: "blocks.6.hook_resid_post", architecture: "topk", expansion: 8, k: 16,
      extra_saes: [{ hook: "blocks.6.hook_mlp_in", hook_out: "blocks.6.hook_mlp_out", architecture: "standard",
        d_sae: 4096, l1_coefficient: 5, lr: 0.0003, name: "transcoder" }],
    });
    const matryoshka = buildTrainRequest({ ...DEFAULT_RUN, model: "m" }, [{ ...DEFAULT_SAE, hook: "h",
      architecture: "matryoshka_batchtopk", widths: "128, 512", l1: "3" }, { ...DEFAULT_SAE, hook: "h", architecture: "jumprelu", l1: "2" }]);
    expect(matryoshka).toMatchObject({ matryoshka_widths: [128, 512], k: 32, extra_saes: [{ l0_coefficient: 2 }] });
    expect(matryoshka).not.toHaveProperty("l1_coefficient");
  });

  it("names the field that is wrong", () => {
    const sae = { ...DEFAULT_SAE, hook: "blocks.0.hook_resid_post" };
    expect(() => buildTrainRequest(DEFAULT_RUN, [sae])).toThrow(/Model is required/);
    expect(() => buildTrainRequest({ ...DEFAULT_RUN, model: "m", nTokens: "" }, [sae])).toThrow(/Training tokens/);
    expect(() => buildTrainRequest({ ...DEFAULT_RUN, model: "m" }, [sae, { ...sae, hook: "" }])).toThrow(/Hook \(SAE 2\)/);
    expect(() => buildTrainRequest({ ...DEFAULT_RUN, model: "m" }, [{ ...sae, widthMode: "d_sae", width: "10.5" }]))
      .toThrow(/d_sae must be a positive whole number \(got "10.5"\)/);
    expect(() => buildTrainRequest({ ...DEFAULT_RUN, model: "m" }, [{ ...sae, lr: "fast" }])).toThrow(/Learning rate/);
    expect(() => buildTrainRequest({ ...DEFAULT_RUN, model: "m", epochs: "0" }, [sae])).toThrow(/Epochs must be a positive/);
  });
});

describe("liveMetrics", () => {
  it("reads tokens/s over the latest steps, the ETA from the tokens left, and the last L0/EV/dead fraction", () => {
    const live = liveMetrics(makeCurves(), 40_000, { status: "running", eta_seconds: 99 })!;
    expect(live.tokens).toBe(20_000);
    expect(live.tokensPerSecond).toBeCloseTo(4000); // 2000 tokens every 0.5 s
    expect(live.etaSeconds).toBeCloseTo(5); // 20,000 tokens left
    expect(live).toMatchObject({ l0: 31, deadFraction: 0.09 });
    expect(live.explainedVariance).toBeCloseTo(0.9);
    expect(liveMetrics(makeCurves(), 40_000, { status: "paused", eta_seconds: null })!.etaSeconds).toBeNull();
    expect(liveMetrics(undefined, 1, null)).toBeNull();
  });
});

describe("TrainPage", () => {
  it("starts a run of two SAEs from the form and shows its live progress with pause and resume", async () => {
    let trainings: Training[] = [];
    let job = makeJob({ id: "job-t", type: "training", status: "running", sae_id: null, progress: 0.5,
      params: { n_tokens: 40_000 }, message: "4,000 tokens/s", stages: [] });
    api.on("GET /api/v1/trainings", () => ({ body: { items: trainings } }));
    api.on("POST /api/v1/trainings/start", () => {
      trainings = [makeTraining(), makeTraining({ id: "tr-2", name: "second", hook_name: "blocks.0.hook_resid_post" })];
      return { status: 202, body: { job_id: "job-t", training_ids: ["tr-1", "tr-2"], resumed: false } };
    });
    api.on("GET /api/v1/trainings/{id}/curves", { body: makeCurves() });
    api.on("GET /api/v1/jobs/{id}", () => ({ body: job }));
    api.on("POST /api/v1/jobs/{id}/pause", () => {
      job = { ...job, status: "paused" };
      return { body: job };
    });
    api.on("POST /api/v1/jobs/{id}/resume", () => {
      job = { ...job, status: "running" };
      return { body: job };
    });
    render(<TrainPage />);
    expect(await screen.findByText("No training runs yet.")).toBeTruthy();

    fireEvent.change(screen.getByTestId("train-model"), { target: { value: "tiny-gpt2" } });
    fireEvent.change(screen.getByTestId("train-n-tokens"), { target: { value: "40000" } });
    fireEvent.change(screen.getByLabelText("Hook of SAE 1"), { target: { value: "blocks.1.hook_resid_pre" } });
    fireEvent.change(screen.getByLabelText("k of SAE 1"), { target: { value: "8" } });
    fireEvent.click(screen.getByTestId("train-add-sae"));
    expect(screen.getAllByTestId("train-sae-row")).toHaveLength(2);
    fireEvent.change(screen.getByLabelText("Hook of SAE 2"), { target: { value: "blocks.0.hook_resid_post" } });
    fireEvent.change(screen.getByLabelText("Architecture of SAE 2"), { target: { value: "jumprelu" } });
    expect(screen.queryByLabelText("k of SAE 2")).toBeNull();
    fireEvent.change(screen.getByLabelText("Sparsity coefficient of SAE 2"), { target: { value: "0.5" } });
    fireEvent.click(screen.getByTestId("train-start"));

    const panel = await screen.findByTestId("train-watch");
    const sent = api.calls.find((c) => c.method === "POST" && c.path === "/api/v1/trainings/start")!.body as Record<string, unknown>;
    expect(sent).toMatchObject({ model: "tiny-gpt2", n_tokens: 40000, hook: "blocks.1.hook_resid_pre", k: 8, architecture: "topk" });
    expect(sent.extra_saes).toEqual([{ hook: "blocks.0.hook_resid_post", architecture: "jumprelu", expansion: 8,
      l0_coefficient: 0.5 }]);

    await waitFor(() => expect(within(panel).getByTestId("live-tokens-per-s").textContent).toBe("4,000"));
    expect(within(panel).getByTestId("live-tokens").textContent).toBe("20,000 / 40,000");
    expect(within(panel).getByTestId("live-eta").textContent).toBe("0:05");
    expect(within(panel).getByTestId("live-l0").textContent).toBe("31");
    expect(within(panel).getByTestId("live-ev").textContent).toBe("90.0%");
    expect(within(panel).getByTestId("live-dead").textContent).toBe("9.0%");
    expect(within(panel).getAllByTestId("line-series").length).toBeGreaterThan(0);
    expect(screen.getAllByTestId("training-row")).toHaveLength(2);

    fireEvent.click(await within(panel).findByRole("button", { name: "Pause" }));
    await waitFor(() => expect(screen.getByTestId("train-status").textContent).toBe("paused"));
    fireEvent.click(within(panel).getByRole("button", { name: "Resume" }));
    await waitFor(() => expect(screen.getByTestId("train-status").textContent).toBe("running"));
    expect(api.calls.filter((c) => c.method === "POST" && c.path.startsWith("/api/v1/jobs/job-t/")).map((c) => c.path))
      .toEqual(["/api/v1/jobs/job-t/pause", "/api/v1/jobs/job-t/resume"]);

    fireEvent.click(within(panel).getByRole("tab", { name: "SAE 2" }));
    await waitFor(() => expect(api.calls.some((c) => c.path === "/api/v1/trainings/tr-2/curves")).toBe(true));
  });

  it("refuses a form with a missing hook before asking the server", async () => {
    api.on("GET /api/v1/trainings", { body: { items: [] } });
    render(<TrainPage />);
    fireEvent.change(screen.getByTestId("train-model"), { target: { value: "gpt2" } });
    fireEvent.click(screen.getByTestId("train-start"));
    expect((await screen.findByTestId("train-error")).textContent).toContain("Hook is required");
    expect(api.calls.some((c) => c.method === "POST")).toBe(false);
  });

  it("says when the same command resumed an interrupted run, and links a finished run to its SAE", async () => {
    const done = makeTraining({ status: "completed", sae_id: "sae-9", tokens_seen: 40_000 });
    api.on("GET /api/v1/trainings", { body: { items: [done] } });
    api.on("POST /api/v1/trainings/start", { status: 202, body: { job_id: "job-t", training_ids: ["tr-1"], resumed: true, tokens_done: 12288 } });
    api.on("GET /api/v1/trainings/{id}/curves", { body: makeCurves() });
    api.on("GET /api/v1/jobs/{id}", { body: makeJob({ id: "job-t", type: "training", status: "completed", progress: 1 }) });
    render(<TrainPage />);
    const row = await screen.findByTestId("training-row");
    expect(within(row).getByRole("link", { name: "SAE" }).getAttribute("href")).toBe("/saes/sae-9");
    useTrainingStore.setState({ run: { ...DEFAULT_RUN, model: "m" }, saes: [{ ...DEFAULT_SAE, hook: "blocks.0.hook_resid_post" }] });
    fireEvent.click(screen.getByTestId("train-start"));
    expect((await screen.findByTestId("train-notice")).textContent).toContain("checkpoint at 12,288 tokens");
    const link = await screen.findByTestId("trained-sae-link");
    expect(within(link).getByRole("link").getAttribute("href")).toBe("/saes/sae-9");
  });
});

describe("TrainingCurves", () => {
  it("plots every step curve against tokens, the evaluations and the density histogram", async () => {
    api.on("GET /api/v1/trainings/{id}/curves", { body: makeCurves(10, 2) });
    render(<TrainingCurves trainingId="tr-1" />);
    const loss = await screen.findByTestId("curve-loss");
    expect(within(loss).getByTestId("line-series").dataset.points).toBe("10");
    const ev = screen.getByTestId("curve-ev");
    expect(within(ev).getAllByTestId("line-series").map((g) => [g.dataset.label, g.dataset.points]))
      .toEqual([["train", "10"], ["held-out", "2"]]);
    expect(within(screen.getByTestId("eval-ce")).getAllByTestId("line-series")).toHaveLength(3);
    const summary = screen.getByTestId("eval-summary");
    expect(summary.querySelector('[data-metric="CE loss recovered"]')!.textContent).toBe("85.0%");
    expect(summary.querySelector('[data-metric="KL divergence"]')!.textContent).toBe("0.2");
    expect(screen.getByTestId("density-histogram").querySelectorAll("rect")).toHaveLength(6);
  });

  it("says when there is no evaluation yet and shows an error from the server", async () => {
    api.on("GET /api/v1/trainings/{id}/curves", { body: makeCurves(3, 0) });
    render(<TrainingCurves trainingId="tr-1" />);
    expect(await screen.findByText(/No evaluation yet/)).toBeTruthy();
    api.on("GET /api/v1/trainings/{id}/curves", { status: 404, body: { error: { type: "NotFoundError", message: "no training tr-x" } } });
    render(<TrainingCurves trainingId="tr-x" />);
    expect((await screen.findByRole("alert")).textContent).toContain("no training tr-x");
  });
});
