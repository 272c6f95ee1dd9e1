import { fireEvent, render, screen, waitFor, within } from "@testing-library/react";
import { beforeEach, describe, expect, it } from "vitest";
import type { Export } from "../api/types";
import { useExportsStore } from "../stores/exportsStore";
import { useJobsStore } from "../stores/jobsStore";
import { installFakeApi, type FakeApi } from "../test/fakeApi";
import { makeJob } from "../test/fixtures";
import { ExportsList } from "./ExportsList";
import { JobsList } from "./JobsList";

let api: FakeApi;

function makeExport(patch: Partial<Export> = {}): Export {
  return {
    id: "exp-1aaaaaaa", sae_id: "sae-1bbbbbbb", job_id: "job-1", extraction_id: "ext-1", config: {},
    status: "completed", output_path: "exports/job-1.zip", file_size_bytes: 3_145_728, feature_count: 1024,
    timings: {}, error_message: null, base_export_id: null, created_at: new Date().toISOString(),
    finished_at: new Date().toISOString(), ...patch,
  };
}

beforeEach(() => {
  api = installFakeApi();
  useExportsStore.setState({ items: [], total: 0, loaded: false, error: null });
  useJobsStore.setState({ jobs: {}, order: [], error: null });
});

describe("ExportsList", () => {
  it("lists every export with its size and deletes one after confirmation", async () => {
    const items = [makeExport(), makeExport({ id: "exp-2ccccccc", job_id: "job-2", status: "interrupted",
      output_path: null, file_size_bytes: null, feature_count: null })];
    api.on("GET /api/v1/exports", { body: { items, total: 2, page: 1, page_size: 200 } });
    api.on("DELETE /api/v1/exports/{id}", { status: 204 });
    render(<ExportsList />);
    const rows = await screen.findAllByTestId("export-row");
    expect(rows).toHaveLength(2);
    expect(rows[0].textContent).toContain("3.0 MB");
    expect(within(rows[0]).getByRole("link", { name: "Download" })).toBeTruthy();
    expect(within(rows[1]).queryByRole("link", { name: "Download" })).toBeNull();
    expect(rows[1].dataset.status).toBe("interrupted");
    fireEvent.click(within(rows[1]).getByRole("button", { name: "Delete" }));
    expect(api.calls.some((c) => c.method === "DELETE")).toBe(false);
    fireEvent.click(within(screen.getByTestId("confirm-dialog")).getByRole("button", { name: "Delete" }));
    await waitFor(() => expect(screen.getAllByTestId("export-row")).toHaveLength(1));
    expect(api.calls.some((c) => c.method === "DELETE" && c.path === "/api/v1/exports/exp-2ccccccc")).toBe(true);
  });
});

describe("JobsList", () => {
  it("offers Resume and Cancel for a job whose process died, and shows why", async () => {
    const job = makeJob({ status: "interrupted", resumable: true, finished_at: new Date().toISOString(),
      error_message: "interrupted: the process that ran it (pid 42) stopped; resume it to continue" });
    api.on("GET /api/v1/jobs", { body: { items: [job] } });
    api.on("POST /api/v1/jobs/{id}/resume", { body: { ...job, status: "pending", error_message: null } });
    render(<JobsList />);
    const row = await screen.findByTestId("job-row");
    expect(row.textContent).toContain("pid 42");
    expect(within(row).getByRole("button", { name: "Cancel" })).toBeTruthy();
    fireEvent.click(within(row).getByRole("button", { name: "Resume" }));
    await waitFor(() => expect(api.calls.some((c) => c.method === "POST" && c.path === "/api/v1/jobs/job-1/resume")).toBe(true));
  });
});
