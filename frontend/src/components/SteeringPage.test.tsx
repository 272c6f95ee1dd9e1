import { fireEvent, render, screen, waitFor, within } from "@testing-library/react";
import { beforeEach, describe, expect, it } from "vitest";
import type { SteerCompletion, SteerResult, SweepResult } from "../api/types";
import { parseSweep, useSteeringStore } from "../stores/steeringStore";
import { installFakeApi, type FakeApi } from "../test/fakeApi";
import { SteeringPage } from "./SteeringPage";

let api: FakeApi;

function completion(words: string[]): SteerCompletion {
  return {
    text: words.join(""),
    token_ids: words.map((_, i) => i + 10),
    logprobs: words.map((w, i) => ({ token: w, token_id: i + 10, logprob: -0.5 - i,
      top_logprobs: [{ token: w, token_id: i + 10, logprob: -0.5 - i }] })),
  };
}

const result: SteerResult = {
  run_id: "run-1",
  prompt_token_ids: [1, 2, 3],
  DEFAULT: completion([" the", " mat"]),
  STEERED: completion([" Paris", " is"]),
  comparison: {
    host: "http://np", source: "m/0-res", STEERED: { text: " Paris is" }, DEFAULT: { text: " the rug" },
    default_match: false, mismatch: true, message: "The DEFAULT completions differ at temperature 0",
  },
};

beforeEach(() => {
  api = installFakeApi();
  useSteeringStore.setState({ saeId: null, features: [], result: null, sweep: null, runs: [], error: null, running: null });
  api.on("GET /api/v1/steer/runs", { body: { items: [], total: 0, page: 1, page_size: 50 } });
  api.on("GET /api/v1/saes/{id}/features", { body: { items: [
    { feature_index: 7, label: "French cities", top_token: " Paris", activation_frequency: 0.01, max_activation: 3,
      mean_activation: 1, dead: false, category: null },
  ], total: 1, page: 1, page_size: 10 } });
});

describe("SteeringPage", () => {
  it("pre-selects the dashboard's feature, runs, shows four panes, the mismatch and logprobs on hover", async () => {
    api.on("POST /api/v1/steer", { body: result });
    render(<SteeringPage saeId="sae-1" feature={12} />);
    expect(screen.getAllByTestId("steer-feature").map((r) => r.dataset.index)).toEqual(["12"]);

    fireEvent.change(screen.getByTestId("steer-feature-search"), { target: { value: "French" } });
    fireEvent.click(await screen.findByRole("button", { name: /#7 French cities/ }));
    expect(screen.getAllByTestId("steer-feature").map((r) => r.dataset.index)).toEqual(["12", "7"]);
    fireEvent.change(screen.getByLabelText("Strength value of feature 7"), { target: { value: "42" } });

    fireEvent.change(screen.getByTestId("steer-prompt"), { target: { value: "The capital is" } });
    fireEvent.change(screen.getByTestId("steer-method"), { target: { value: "PROJECTION_CAP" } });
    fireEvent.change(screen.getByTestId("steer-temperature"), { target: { value: "0" } });
    fireEvent.click(screen.getByTestId("steer-compare-toggle"));
    fireEvent.change(screen.getByTestId("steer-compare-key"), { target: { value: "secret" } });
    fireEvent.click(screen.getByTestId("steer-run-button"));

    const steered = await screen.findByTestId("steer-steered");
    const sent = api.calls.find((c) => c.method === "POST" && c.path === "/api/v1/steer")!.body as Record<string, unknown>;
    expect(sent.features).toEqual([{ index: 12, strength: 10 }, { index: 7, strength: 42 }]);
    expect(sent).toMatchObject({ sae_id: "sae-1", prompt: "The capital is", steer_method: "PROJECTION_CAP", temperature: 0 });
    expect(sent.compare_neuronpedia).toMatchObject({ api_key: "secret", host: "https://www.neuronpedia.org" });

    expect(screen.getByTestId("steer-default").textContent).toContain(" mat");
    expect(screen.getByTestId("np-default").textContent).toContain("the rug");
    expect(screen.getByTestId("np-steered").textContent).toContain("Paris is");
    expect(screen.getByTestId("steer-match").textContent).toContain("differ");

    const tokens = within(steered).getAllByTestId("completion-token");
    fireEvent.mouseEnter(tokens[1]);
    expect(within(steered).getByTestId("logprob-readout").textContent).toContain("logprob -1.5");
  });

  it("runs a strength sweep into a table and reopens a stored run", async () => {
    const sweep: SweepResult = {
      run_id: "run-2", prompt_token_ids: [1], DEFAULT: completion([" a"]),
      rows: [0, 4].map((m) => ({ strength_multiplier: m, STEERED: completion([m ? " Paris" : " a"]) })),
    };
    api.on("POST /api/v1/steer/sweep", { body: sweep });
    api.on("GET /api/v1/steer/runs", { body: { items: [{ id: "run-1", sae_id: "sae-1", kind: "steer", prompt: "Old prompt",
      chat: true, features: [{ index: 3, strength: 5 }], steer_method: "SIMPLE_ADDITIVE", created_at: new Date().toISOString() }],
      total: 1, page: 1, page_size: 50 } });
    api.on("GET /api/v1/steer/runs/{id}", { body: { id: "run-1", sae_id: "sae-1", kind: "steer", prompt: "Old prompt", chat: true,
      features: [{ index: 3, strength: 5 }], steer_method: "SIMPLE_ADDITIVE", created_at: new Date().toISOString(),
      settings: { temperature: 0, n_completion_tokens: 8, seed: 3 }, result: { ...result, comparison: null } } });
    render(<SteeringPage saeId="sae-1" feature={2} />);
    fireEvent.change(screen.getByTestId("steer-prompt"), { target: { value: "x" } });
    fireEvent.change(screen.getByTestId("steer-sweep-values"), { target: { value: "0, 4" } });
    fireEvent.click(screen.getByRole("button", { name: "Run sweep" }));
    const rows = await screen.findAllByTestId("steer-sweep-row");
    expect(rows.map((r) => r.textContent)).toEqual(["0 a", "4 Paris"]);
    const sent = api.calls.find((c) => c.path === "/api/v1/steer/sweep")!.body as Record<string, unknown>;
    expect(sent.strength_multipliers).toEqual([0, 4]);

    fireEvent.click(await screen.findByTestId("steer-run"));
    await waitFor(() => expect(screen.getAllByTestId("steer-feature").map((r) => r.dataset.index)).toEqual(["3"]));
    expect((screen.getByTestId("steer-prompt") as HTMLTextAreaElement).value).toBe("Old prompt");
    expect((screen.getByTestId("steer-n-tokens") as HTMLInputElement).value).toBe("8");
    expect(screen.getByTestId("steer-steered").textContent).toContain("Paris");
  });

  it("parses sweep strengths and refuses junk", () => {
    expect(parseSweep("0, 1.5 ,-2")).toEqual([0, 1.5, -2]);
    expect(parseSweep("1, x")).toBeNull();
    expect(parseSweep("")).toBeNull();
  });
});
