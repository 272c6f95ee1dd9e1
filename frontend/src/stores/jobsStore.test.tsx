import { act, render, screen } from "@testing-library/react";
import { beforeEach, describe, expect, it, vi } from "vitest";
import { JobsList } from "../components/JobsList";
import { installFakeApi } from "../test/fakeApi";
import { makeJob } from "../test/fixtures";
import { jobActions, useJob, useJobIds, useJobsStore } from "./jobsStore";

const renders: Record<string, number> = vi.hoisted(() => ({}));
const count = (name: string) => {
  renders[name] = (renders[name] ?? 0) + 1;
};

// Count the jobs list's progress bars by label; JobRow is not memoised, so a re-render of the list itself
// would re-render every row's bar.
vi.mock("../components/ProgressBar", async (importOriginal) => {
  const { ProgressBar } = await importOriginal<typeof import("../components/ProgressBar")>();
  return {
    ProgressBar: (props: Parameters<typeof ProgressBar>[0]) => {
      renders[props.label] = (renders[props.label] ?? 0) + 1;
      return ProgressBar(props);
    },
  };
});

function JobProgress({ jobId }: { jobId: string }) {
  const job = useJob(jobId);
  count(jobId);
  return <span data-testid={`progress-${jobId}`}>{job?.progress}</span>;
}

function ActionsOnly() {
  count("actions");
  return <button type="button" onClick={() => void jobActions.cancel("job-1")}>Cancel</button>;
}

function JobLists() {
  const { active, finished } = useJobIds();
  count("lists");
  return <span data-testid="lists">{active.length}/{finished.length}</span>;
}

beforeEach(() => {
  for (const k of Object.keys(renders)) delete renders[k];
  useJobsStore.setState({
    jobs: { "job-1": makeJob({ id: "job-1", progress: 0.1 }), "job-2": makeJob({ id: "job-2", progress: 0.2 }) },
    order: ["job-2", "job-1"], error: null,
  });
});

describe("jobs store selectors", () => {
  it("re-renders a component only for events of the job it shows", () => {
    render(<><JobProgress jobId="job-1" /><JobProgress jobId="job-2" /><ActionsOnly /><JobLists /></>);
    expect(renders).toEqual({ "job-1": 1, "job-2": 1, actions: 1, lists: 1 });

    act(() => jobActions.upsert(makeJob({ id: "job-2", progress: 0.5 })));
    expect(screen.getByTestId("progress-job-2").textContent).toBe("0.5");
    expect(renders).toEqual({ "job-1": 1, "job-2": 2, actions: 1, lists: 1 });

    act(() => jobActions.upsert(makeJob({ id: "job-1", progress: 0.7 })));
    expect(screen.getByTestId("progress-job-1").textContent).toBe("0.7");
    expect(renders).toEqual({ "job-1": 2, "job-2": 2, actions: 1, lists: 1 });

    // A job finishing moves it between the lists: only then do the lists re-render.
    act(() => jobActions.upsert(makeJob({ id: "job-2", status: "completed", progress: 1 })));
    expect(screen.getByTestId("lists").textContent).toBe("1/1");
    expect(renders).toEqual({ "job-1": 2, "job-2": 3, actions: 1, lists: 2 });
  });

  it("re-renders only the changed row of the jobs list on a progress event", async () => {
    const api = installFakeApi();
    const state = useJobsStore.getState();
    api.on("GET /api/v1/jobs", { body: { items: state.order.map((id) => state.jobs[id]), total: 2 } });
    render(<JobsList />);
    await act(async () => undefined);
    const bars = () => screen.getAllByRole("progressbar").map((b) => b.getAttribute("aria-valuenow"));
    expect(bars()).toEqual(["20", "10"]);
    const row1 = "export job-1 progress";
    const row2 = "export job-2 progress";
    const [before1, before2] = [renders[row1], renders[row2]];

    act(() => jobActions.upsert(makeJob({ id: "job-1", progress: 0.9 })));
    expect(bars()).toEqual(["20", "90"]);
    expect(renders[row1]).toBe(before1 + 1);
    expect(renders[row2]).toBe(before2);
  });
});
