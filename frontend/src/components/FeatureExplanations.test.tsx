import { fireEvent, render, screen, waitFor, within } from "@testing-library/react";
import { beforeEach, describe, expect, it } from "vitest";
import type { Explanation, FeatureDashboardView } from "../api/types";
import { useAutointerpStore } from "../stores/autointerpStore";
import { useFeaturesStore } from "../stores/featuresStore";
import { useJobsStore } from "../stores/jobsStore";
import { installFakeApi, type FakeApi } from "../test/fakeApi";
import { makeDashboard, makeJob } from "../test/fixtures";
import { ExplainFeatures } from "./ExplainFeatures";
import { ExplanationSearch } from "./ExplanationSearch";
import { FeatureBrowser } from "./FeatureBrowser";
import { FeatureDashboard } from "./FeatureDashboard";

let api: FakeApi;

const generated: Explanation = {
  id: "e2", description: "French cities", method: "np_max-act-logits", model: "fake-llm", score: null,
  source: "generated", prompt_version: "np-1", created_at: null,
  scores: [{ scorer: "detection", score: 0.82, model: "judge", n_examples: 20, created_at: null }],
};

function dashboardWith(explanations: Explanation[]): FeatureDashboardView {
  return { ...makeDashboard(), explanations };
}

const estimate = { n_features: 12, n_requests: 12, prompt_tokens: 24000, completion_tokens: 600, cost_usd: 0.0123,
  seconds: 30, method: "np_max-act-logits", prompt_version: "np-1" };

beforeEach(() => {
  api = installFakeApi();
  useJobsStore.setState({ jobs: {}, order: [], error: null });
  useFeaturesStore.setState({ dashboards: {}, dashboardErrors: {}, saeId: null, items: [], total: 0 });
  useAutointerpStore.setState({ jobs: {}, estimates: {}, errors: {} });
  localStorage.clear();
});

describe("FeatureDashboard explanations", () => {
  it("shows each explanation with its method, model and score badges", async () => {
    api.on("GET /api/v1/saes/{id}/features/{i}/dashboard", { body: dashboardWith([makeDashboard().explanations[0], generated]) });
    render(<FeatureDashboard saeId="sae-1" index={3} />);
    const items = await screen.findAllByTestId("explanation");
    expect(items).toHaveLength(2);
    expect(items[1].textContent).toContain("np_max-act-logits");
    expect(items[1].textContent).toContain("fake-llm");
    expect(within(items[1]).getByTestId("score-badge").textContent).toBe("detection 0.82");
    expect(within(items[0]).queryByTestId("score-badge")).toBeNull();
    fireEvent.click(within(items[1]).getByRole("button", { name: "Score" }));
    fireEvent.change(screen.getByLabelText("Model"), { target: { value: "judge" } });
    api.on("POST /api/v1/saes/{id}/score", { body: { job_id: "job-s", sae_id: "sae-1", n_explanations: 2 } });
    api.on("GET /api/v1/jobs/{id}", { body: makeJob({ id: "job-s", type: "score", status: "completed", progress: 1 }) });
    fireEvent.click(screen.getByRole("button", { name: "Score this explanation" }));
    await waitFor(() => expect(api.calls.some((c) => c.method === "POST" && c.path.endsWith("/score"))).toBe(true));
    const body = api.calls.find((c) => c.path.endsWith("/score"))!.body as Record<string, unknown>;
    expect(body).toMatchObject({ model: "judge", scorer: "detection", force: true });
    expect(body.explanation_ids).toHaveLength(1);
  });

  it("explains the feature from the Explain form and shows the new explanation", async () => {
    let explained = false;
    api.on("GET /api/v1/saes/{id}/features/{i}/dashboard", () => ({ body: dashboardWith(explained ? [generated] : []) }));
    api.on("POST /api/v1/saes/{id}/explain", () => {
      explained = true;
      return { body: { job_id: "job-x", estimate } };
    });
    api.on("GET /api/v1/jobs/{id}", { body: makeJob({ id: "job-x", type: "explain", status: "completed", progress: 1 }) });
    render(<FeatureDashboard saeId="sae-1" index={3} />);
    fireEvent.click(await screen.findByRole("button", { name: "Explain" }));
    const form = screen.getByTestId("explain-feature");
    fireEvent.change(within(form).getByLabelText("Endpoint"), { target: { value: "http://127.0.0.1:9/v1" } });
    fireEvent.change(within(form).getByLabelText("Model"), { target: { value: "fake-llm" } });
    fireEvent.change(within(form).getByLabelText("API key"), { target: { value: "sk-secret" } });
    fireEvent.click(within(form).getByRole("button", { name: "Explain this feature" }));
    expect((await screen.findByTestId("new-explanation")).textContent).toContain("French cities");
    const body = api.calls.find((c) => c.path.endsWith("/explain"))!.body as Record<string, unknown>;
    expect(body).toMatchObject({ endpoint: "http://127.0.0.1:9/v1", model: "fake-llm", api_key: "sk-secret",
      features: "3", method: "np_max-act-logits", force: true });
    expect(localStorage.getItem("mistudio-autointerp")).not.toContain("sk-secret"); // the key is never kept
    expect(screen.getAllByTestId("explanation")).toHaveLength(1);
  });
});

describe("ExplainFeatures", () => {
  it("shows the estimate before it can start, then starts with the same settings", async () => {
    api.on("GET /api/v1/explain/methods", { body: [
      { method: "oai_token-act-pair", prompt_version: "oai-1", summary: "OpenAI", default: true }] });
    api.on("POST /api/v1/saes/{id}/explain/estimate", { body: estimate });
    api.on("POST /api/v1/saes/{id}/explain", { body: { job_id: "job-y", estimate } });
    api.on("GET /api/v1/jobs/{id}", { body: makeJob({ id: "job-y", type: "explain", status: "completed", progress: 1 }) });
    render(<ExplainFeatures saeId="sae-1" onClose={() => undefined} onFinished={() => undefined} />);
    await waitFor(() => expect(screen.getByRole("option", { name: "oai_token-act-pair" })).toBeTruthy());
    fireEvent.change(screen.getByLabelText("Method"), { target: { value: "oai_token-act-pair" } });
    fireEvent.change(screen.getByLabelText("Model"), { target: { value: "fake-llm" } });
    fireEvent.change(screen.getByLabelText("Price / 1M input tokens"), { target: { value: "0.5" } });
    const startButton = screen.getByRole("button", { name: "Start explaining" }) as HTMLButtonElement;
    expect(startButton.disabled).toBe(true);
    fireEvent.click(screen.getByRole("button", { name: "Estimate" }));
    const shown = await screen.findByTestId("explain-estimate");
    expect(shown.textContent).toContain("12 request(s)");
    expect(shown.textContent).toContain("$0.0123");
    expect(api.calls.find((c) => c.path.endsWith("/estimate"))!.body).toMatchObject(
      { labeled: false, price_per_1m_input: 0.5, model: "fake-llm", method: "oai_token-act-pair" });
    await waitFor(() => expect(startButton.disabled).toBe(false));
    fireEvent.click(startButton);
    expect(await screen.findByRole("button", { name: "Score explanations" })).toBeTruthy();  // the score step
  });
});

describe("FeatureBrowser and search", () => {
  it("filters unexplained features and sorts by score", async () => {
    api.on("GET /api/v1/saes/{id}/features", { body: { items: [
      { feature_index: 4, activation_frequency: 0.1, max_activation: 2, mean_activation: 1, dead: false, label: null,
        category: null, top_token: "x", explanation: "cities", n_explanations: 1, best_score: 0.55 }],
      total: 1, page: 1, page_size: 50, extraction_id: "ext-1" } });
    render(<FeatureBrowser saeId="sae-1" />);
    const row = await screen.findByTestId("feature-row");
    expect(row.textContent).toContain("cities");
    expect(within(row).getByTestId("feature-score").textContent).toBe("0.55");
    fireEvent.change(screen.getByTestId("filter-explained"), { target: { value: "no" } });
    await waitFor(() => expect(api.calls.at(-1)!.search).toContain("explained=false"));
    fireEvent.change(screen.getByTestId("filter-max-score"), { target: { value: "0.6" } });
    await waitFor(() => expect(api.calls.at(-1)!.search).toContain("max_score=0.6"));
    fireEvent.click(screen.getByRole("button", { name: /^Score/ }));
    await waitFor(() => expect(api.calls.at(-1)!.search).toContain("sort=score"));
  });

  it("finds explanations across SAEs and links each hit to its feature", async () => {
    window.history.pushState(null, "", "/search?q=cities");
    api.on("GET /api/v1/explanations/search", { body: { items: [
      { ...generated, id: "h1", sae_id: "sae-9", feature_index: 17, sae_name: "beta", model_name: "gpt2", details: {} }],
      total: 1, page: 1, page_size: 25 } });
    render(<ExplanationSearch />);
    const hit = await screen.findByTestId("search-hit");
    expect(api.calls[0].search).toContain("q=cities");
    const link = within(hit).getByRole("link");
    expect(link.getAttribute("href")).toBe("/saes/sae-9/features/17");
    fireEvent.click(link);
    expect(window.location.pathname).toBe("/saes/sae-9/features/17");
  });
});
