import { render, screen } from "@testing-library/react";
import { beforeEach, describe, expect, it } from "vitest";
import { useExportStore } from "../stores/exportStore";
import { useJobsStore } from "../stores/jobsStore";
import { installFakeApi } from "../test/fakeApi";
import { makeJob, makeSAE } from "../test/fixtures";
import { archiveFileName, ExportComplete, hfUploadCommand } from "./ExportComplete";

beforeEach(() => {
  installFakeApi();
  useJobsStore.setState({ jobs: {}, order: [], error: null });
});

describe("hfUploadCommand", () => {
  it("uploads saelens/ into the sub-folder pretrained_saes.yaml names, from the archive as downloaded", () => {
    const archive = archiveFileName("sae-1", "job-9");
    expect(archive).toBe("mistudio-export-sae-1-job-9.zip");
    expect(hfUploadCommand("me/saes", "tiny", archive, "blocks.1.hook_resid_pre")).toBe(
      "unzip mistudio-export-sae-1-job-9.zip -d mistudio-export-sae-1-job-9 && "
      + "hf upload me/saes mistudio-export-sae-1-job-9/saelens blocks.1.hook_resid_pre --repo-type model");
  });
});

describe("ExportComplete", () => {
  it("says how the export gets onto Neuronpedia: the bulk-import folder or the API, and what the API drops", () => {
    const job = makeJob({
      id: "job-9", status: "completed", params: { config: { format: "both", hf_repo_id: "me/saes" } },
      result: {
        feature_count: 48, file_size_bytes: 1000, seconds: 2,
        neuronpedia: { model_id: "tiny-gpt2", source_id: "1-mistudio-res-48", neuronpedia_id: "tiny-gpt2/1-mistudio-res-48" },
        saelens: { release: "tiny-gpt2-mistudio-res-48", sae_id: "blocks.1.hook_resid_pre" },
      },
    });
    useJobsStore.setState({ jobs: { "job-9": job }, order: ["job-9"] });
    useExportStore.setState({ phase: "complete", saeId: "sae-1", jobId: "job-9" });
    render(<ExportComplete sae={makeSAE()} />);
    const steps = screen.getByTestId("neuronpedia-steps").textContent ?? "";
    expect(steps).toContain("neuronpedia/exports/tiny-gpt2/1-mistudio-res-48/");
    expect(steps).toContain("mistudio export upload-neuronpedia mistudio-export-sae-1-job-9.zip");
    expect(steps).toContain("neuron alignment");
    expect(screen.getByTestId("hf-command").textContent).toContain(
      "hf upload me/saes mistudio-export-sae-1-job-9/saelens blocks.1.hook_resid_pre");
  });
});
