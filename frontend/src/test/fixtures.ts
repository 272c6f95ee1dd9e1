/** Small API payloads for component tests. */
import type { Dashboard, Job, SAE } from "../api/types";

export function makeSAE(patch: Partial<SAE> = {}): SAE {
  return {
    id: "sae-1", name: "google/gemma-scope-2b-pt-res/layer_0/width_16k/average_l0_22", source: "gemma_scope",
    status: "ready", model_name: "gemma-2-2b", layer: 0, hook_name: "blocks.0.hook_resid_post", head_index: null,
    d_in: 32, d_sae: 256, architecture: "jumprelu", format: "gemma_scope", dtype: "float32",
    repo_id: "google/gemma-scope-2b-pt-res", path_in_repo: "layer_0/width_16k/average_l0_22", revision: null,
    size_bytes: 68852, metadata: {}, training_id: null, job_id: null, error_message: null, n_features_extracted: 0,
    latest_extraction_id: null, created_at: "2026-01-01T00:00:00+00:00", updated_at: "2026-01-01T00:00:00+00:00",
    ...patch,
  };
}

export function makeJob(patch: Partial<Job> = {}): Job {
  return {
    id: "job-1", type: "export", status: "running", sae_id: "sae-1", params: {}, progress: 0.4,
    current_stage: "Computing logit lens data", message: null, error_message: null, error_details: null, result: null,
    resumable: false, created_at: new Date().toISOString(), started_at: new Date().toISOString(), finished_at: null,
    eta_seconds: 12,
    stages: [
      { name: "Validating SAE data", status: "completed", progress: 1, elapsed_s: 1.5 },
      { name: "Computing logit lens data", status: "running", progress: 0.5, started_at: new Date().toISOString() },
      { name: "Creating archive", status: "pending" },
    ],
    ...patch,
  };
}

export function makeDashboard(): Dashboard {
  return {
    feature_index: 3,
    statistics: { activation_frequency: 0.01, max_activation: 4, mean_activation: 1.5, dead: false, quantiles: { p50: 1.2 } },
    activations: [{ tokens: ["The", " cat", " sat"], token_ids: [1, 2, 3], values: [0, 4, 1], max_value: 4, max_token_index: 1 }],
    histogram: { bin_edges: [0, 1, 2, 3], counts: [5, 2, 1], log_scale: true },
    logits: { top_positive: [{ token: " dog", token_id: 9, value: 1.2 }], top_negative: [{ token: "x", token_id: 7, value: -0.5 }],
      histogram: { bin_edges: [-1, 0, 1], counts: [3, 4] } },
    top_tokens: [{ token: " cat", token_id: 2, total_activation: 40, count: 10 }],
    label: "cats",
    explanations: [{ id: "e1", description: "cat tokens", method: "manual", score: null }],
  };
}
