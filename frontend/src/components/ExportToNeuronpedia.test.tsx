import { act, fireEvent, render, screen } from "@testing-library/react";
import { beforeEach, describe, expect, it } from "vitest";
import { DEFAULT_EXPORT_CONFIG, exportActions, useExportStore } from "../stores/exportStore";
import { installFakeApi, type FakeApi } from "../test/fakeApi";
import { makeSAE } from "../test/fixtures";
import { ExportToNeuronpedia } from "./ExportToNeuronpedia";

let api: FakeApi;
const PROBLEM = "the model is a local folder (/models/tiny); pass --model-id (REST/config `model_id`: …)";

beforeEach(() => {
  api = installFakeApi();
  useExportStore.setState({ phase: "closed", saeId: null, config: DEFAULT_EXPORT_CONFIG });
  api.on("GET /api/v1/saes/{id}", { body: makeSAE() });
  api.on("GET /api/v1/exports", { body: { items: [], total: 0, page: 1, page_size: 50 } });
  api.on("POST /api/v1/saes/{id}/export/estimate", (_url, init) => {
    const { config } = JSON.parse(String(init.body));
    return { body: { n_features: 48, size_bytes: 1000, seconds: 1, missing: [], n_dead: 0, notes: [], min_examples: 20,
      problems: config.model_id ? [] : [PROBLEM] } };
  });
});

describe("ExportToNeuronpedia", () => {
  it("asks for the model id of a local model, and offers both logit-lens conventions with what each means", async () => {
    await act(async () => exportActions.openFor("sae-1"));
    render(<ExportToNeuronpedia />);
    expect((await screen.findByTestId("export-problem")).textContent).toContain("--model-id");
    expect((screen.getByRole("button", { name: "Export" }) as HTMLButtonElement).disabled).toBe(true);
    const neuronpedia = screen.getByRole("radio", { name: /Neuronpedia convention/ }) as HTMLInputElement;
    expect(neuronpedia.checked).toBe(true);
    expect(neuronpedia.parentElement?.textContent).toContain("raw unembedding");
    fireEvent.click(screen.getByRole("radio", { name: /miStudio folded/ }));
    expect(useExportStore.getState().config.np_logit_lens).toBe("folded");
    await act(async () => fireEvent.change(screen.getByLabelText("Model id"), { target: { value: "acme/tiny" } }));
    fireEvent.change(screen.getByLabelText("Dataset id"), { target: { value: "acme/texts" } });
    await act(async () => fireEvent.click(screen.getByRole("button", { name: "Validate" })));
    expect(screen.queryByTestId("export-problem")).toBeNull();
    expect((screen.getByRole("button", { name: "Export" }) as HTMLButtonElement).disabled).toBe(false);
    const sent = api.calls.filter((c) => c.path.endsWith("/export/estimate")).at(-1)?.body as { config: object };
    expect(sent.config).toMatchObject({ model_id: "acme/tiny", dataset_id: "acme/texts", np_logit_lens: "folded" });
  });
});
