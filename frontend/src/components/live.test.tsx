import { act, fireEvent, render, screen, waitFor, within } from "@testing-library/react";
import { beforeEach, describe, expect, it, vi } from "vitest";
import type { LiveActivations } from "../api/types";
import { inferenceActions, testKey, useInferenceStore } from "../stores/inferenceStore";
import { installFakeApi, type FakeApi } from "../test/fakeApi";
import { FeatureTestBox } from "./FeatureTestBox";
import { TextInference } from "./TextInference";

const RESULT: LiveActivations = {
  sae_id: "sae-1", model: "tiny-gpt2", hook: "blocks.1.hook_resid_pre", extraction_id: "ext-1", prepend_bos: true,
  tokens: ["<|endoftext|>", "the", " cat", " sat"], token_ids: [0, 5, 6, 7],
  special: [true, false, false, false],
  features: [{ index: 3, values: [0, 0, 2, 0.5], max_value: 2, max_token_index: 2 }],
  top_features: [[], [{ index: 9, value: 0.25 }], [{ index: 3, value: 2 }, { index: 9, value: 1 }],
    [{ index: 3, value: 0.5 }]],
  overall: [{ index: 3, value: 2, token_index: 2, n_active: 2 }, { index: 9, value: 1, token_index: 2, n_active: 2 }],
};

let api: FakeApi;
beforeEach(() => {
  api = installFakeApi();
  inferenceActions.reset();
  api.on("GET /api/v1/models/loaded", { body: { items: [], budget_bytes: 1, used_bytes: 0 } });
});

describe("FeatureTestBox", () => {
  it("runs the typed text for this feature and highlights its tokens, hover shows the value", async () => {
    api.on("POST /api/v1/saes/{id}/activations", { body: RESULT });
    render(<FeatureTestBox saeId="sae-1" index={3} scale={4} />);
    fireEvent.change(screen.getByLabelText("Text to test"), { target: { value: "the cat sat" } });
    fireEvent.click(screen.getByRole("button", { name: "Test" }));
    const result = await screen.findByTestId("test-box-result");
    const highlighted = within(result).getAllByTestId("highlighted-token");
    expect(highlighted.map((t) => t.textContent)).toEqual([" cat", " sat"]);
    expect(highlighted[0].className).toContain("max");
    expect(highlighted[0].getAttribute("style")).toContain("0.575");  // 0.15 + 0.85 × 2/4: the extraction's scale
    fireEvent.mouseEnter(highlighted[1]);
    expect(within(result).getByText('" sat" = 0.5')).toBeTruthy();
    expect(result.textContent).toContain("0.5× the extraction's max");
    expect(api.calls.find((c) => c.method === "POST")).toMatchObject({
      path: "/api/v1/saes/sae-1/activations", body: { text: "the cat sat", features: [3], top_k: 5 } });
  });

  it("shows the server's error and refuses an empty text without a request", async () => {
    api.on("POST /api/v1/saes/{id}/activations", { status: 422, body: { error: {
      type: "InvalidInputError", message: "the text is 40 tokens long; SAE sae-1 reads at most 16" } } });
    render(<FeatureTestBox saeId="sae-1" index={3} scale={4} />);
    fireEvent.click(screen.getByRole("button", { name: "Test" }));
    expect((await screen.findByTestId("test-box-error")).textContent).toContain("Type some text");
    expect(api.calls.filter((c) => c.method === "POST")).toHaveLength(0);
    fireEvent.change(screen.getByLabelText("Text to test"), { target: { value: "long text" } });
    fireEvent.click(screen.getByRole("button", { name: "Test" }));
    await waitFor(() => expect(screen.getByTestId("test-box-error").textContent).toContain("at most 16"));
  });

  it("keeps each feature's text apart and drops a superseded answer", async () => {
    const answers: ((r: Response) => void)[] = [];
    vi.stubGlobal("fetch", vi.fn(() => new Promise<Response>((resolve) => void answers.push(resolve))));
    inferenceActions.setText(testKey("sae-1", 3), "first");
    const first = inferenceActions.run(testKey("sae-1", 3), "sae-1", [3]);
    inferenceActions.setText(testKey("sae-1", 3), "second");
    const second = inferenceActions.run(testKey("sae-1", 3), "sae-1", [3]);
    const json = (r: LiveActivations) => new Response(JSON.stringify(r), { status: 200 });
    answers[1](json({ ...RESULT, tokens: ["second"] }));
    await second;
    answers[0](json({ ...RESULT, tokens: ["first"] }));
    await first;
    const box = useInferenceStore.getState().boxes[testKey("sae-1", 3)];
    expect(box.result?.tokens).toEqual(["second"]);
    expect(useInferenceStore.getState().boxes[testKey("sae-1", 4)]).toBeUndefined();
  });
});

describe("TextInference", () => {
  it("lists the top features of the strongest token, of a clicked token and overall, linking to dashboards", async () => {
    api.on("POST /api/v1/saes/{id}/activations", { body: RESULT });
    render(<TextInference saeId="sae-1" />);
    fireEvent.change(screen.getByLabelText("Text"), { target: { value: "the cat sat" } });
    fireEvent.click(screen.getByRole("button", { name: "Run" }));
    const atToken = await screen.findByTestId("token-features");
    expect(atToken.textContent).toContain('" cat"');  // the strongest token is shown first
    expect(within(atToken).getAllByTestId("feature-link").map((a) => a.textContent)).toEqual(["Feature 3", "Feature 9"]);
    const overall = screen.getByTestId("overall-features");
    expect(within(overall).getAllByTestId("feature-link").map((a) => a.getAttribute("href")))
      .toEqual(["/saes/sae-1/features/3", "/saes/sae-1/features/9"]);
    const tokens = screen.getAllByTestId("highlighted-token");
    act(() => fireEvent.click(tokens[0]));  // "the"
    expect(screen.getByTestId("token-features").textContent).toContain('"the"');
    expect(within(screen.getByTestId("token-features")).getAllByTestId("feature-link").map((a) => a.textContent))
      .toEqual(["Feature 9"]);
    act(() => fireEvent.click(within(screen.getByTestId("token-features")).getByText("Feature 9")));
    expect(window.location.pathname).toBe("/saes/sae-1/features/9");
    expect(api.calls.find((c) => c.method === "POST")?.body).toEqual({ text: "the cat sat", features: null, top_k: 10 });
  });

  it("says when a model is loading while the run waits", async () => {
    vi.useFakeTimers({ shouldAdvanceTime: true });
    let release: (() => void) | null = null;
    vi.stubGlobal("fetch", vi.fn(async (_input: string, init: RequestInit = {}) => {
      if ((init.method ?? "GET") === "POST") {
        await new Promise<void>((resolve) => { release = resolve; });
        return new Response(JSON.stringify(RESULT), { status: 200 });
      }
      return new Response(JSON.stringify({ budget_bytes: 1, used_bytes: 0, items: [
        { kind: "model", ref: "/m/tiny", name: null, device: "cpu", dtype: "float32", state: "loading", bytes: null,
          expected_bytes: 100, elapsed_s: 3.2, in_use: 1, idle_s: null, error: null }] }), { status: 200 });
    }));
    render(<TextInference saeId="sae-1" />);
    fireEvent.change(screen.getByLabelText("Text"), { target: { value: "hi" } });
    fireEvent.click(screen.getByRole("button", { name: "Run" }));
    await act(async () => { await vi.advanceTimersByTimeAsync(1100); });
    expect((await screen.findByTestId("model-loading")).textContent).toContain("Loading /m/tiny on cpu… 3 s");
    await act(async () => { release?.(); await vi.advanceTimersByTimeAsync(10); });
    await waitFor(() => expect(screen.queryByTestId("model-loading")).toBeNull());
    vi.useRealTimers();
  });
});
