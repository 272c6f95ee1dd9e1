import { act, render } from "@testing-library/react";
import { beforeEach, describe, expect, it } from "vitest";
import { installFakeApi, type FakeApi } from "../test/fakeApi";
import { trainingActions, useCurves, useRunForm, useSAEForm, useTrainingStore } from "./trainingStore";

const renders: Record<string, number> = {};
const count = (name: string) => {
  renders[name] = (renders[name] ?? 0) + 1;
};

function Row({ index }: { index: number }) {
  const sae = useSAEForm(index);
  count(`row-${index}`);
  return <span>{sae?.hook}</span>;
}

function Run() {
  const run = useRunForm();
  count("run");
  return <span>{run.model}</span>;
}

function Curves({ id }: { id: string }) {
  const curves = useCurves(id);
  count(`curves-${id}`);
  return <span>{curves?.steps.length ?? 0}</span>;
}

let api: FakeApi;

beforeEach(() => {
  for (const k of Object.keys(renders)) delete renders[k];
  trainingActions.reset();
  api = installFakeApi();
});

describe("training store", () => {
  it("re-renders only the row or the run fields being typed in", () => {
    trainingActions.addSAE();
    render(<><Run /><Row index={0} /><Row index={1} /></>);
    act(() => trainingActions.setSAE(1, { hook: "blocks.2.hook_resid_post" }));
    act(() => trainingActions.setSAE(1, { k: "64" }));
    expect(renders).toEqual({ run: 1, "row-0": 1, "row-1": 3 });
    act(() => trainingActions.setRun({ model: "gpt2" }));
    expect(renders).toEqual({ run: 2, "row-0": 1, "row-1": 3 });
  });

  it("copies the last SAE row without its name and never removes the only row", () => {
    trainingActions.setSAE(0, { hook: "h", k: "64", name: "first" });
    trainingActions.addSAE();
    expect(useTrainingStore.getState().saes[1]).toMatchObject({ hook: "h", k: "64", name: "" });
    trainingActions.removeSAE(0);
    trainingActions.removeSAE(0);
    expect(useTrainingStore.getState().saes).toHaveLength(1);
  });

  it("keeps each training's curves apart: new curves of one do not re-render the other", async () => {
    api.on("GET /api/v1/trainings/{id}/curves", (url) => ({
      body: { training_id: url.pathname.split("/")[4], steps: [], evals: [], density_histogram: null },
    }));
    render(<><Curves id="a" /><Curves id="b" /></>);
    await act(() => trainingActions.loadCurves("a"));
    expect(useTrainingStore.getState().curves.a.training_id).toBe("a");
    expect(renders).toEqual({ "curves-a": 2, "curves-b": 1 });
  });
});
