/** Small API payloads for component tests. */
import type { FeatureDashboardView, Job, SAE } from "../api/types";

export function makeSAE(patch: Partial<SAE> = {}): SAE {
  return {
    id: "sae-1", name: "google/gemma-scope-2b-pt-res/layer_0/width_16k/average_l0_22", source: "gemma_scope",
    status: "ready", model_name: "gemma-2-2b", layer: 0, hook_name: "blocks.0.hook_resid_post", head_index: null,
    d_in: 32, d_sae: 256, architecture: "jumprelu", format: "gemma_scope", dtype: "float32",
    repo_id: "google/gemma-scope-2b-pt-res", path_in_repo: "layer_0/width_16k/average_l0_22", revision: null,
    local_path: "saes/sae-1", size_bytes: 68852, metadata: {}, training_id: null, job_id: null, error_message: null, n_features_extracted: 0,
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

export function makeDashboard(): FeatureDashboardView {
  return {
    sae_id: "sae-1",
    extraction_id: "ext-1",
    feature_index: 3,
    statistics: { activation_frequency: 0.01, n_active: 80, n_tokens: 8000, max_activation: 4, min_activation: 0.1,
      mean_activation: 1.5, std_activation: 0.8, l0_contribution: 0.01, dead: false,
      quantiles: { p25: 0.6, p50: 1.2, p75: 2, p95: 3.5, p99: 3.9 }, quantile_error_bound: 0.01 },
    activations: [{ tokens: ["The", " cat", " sat"], token_ids: [1, 2, 3], values: [0, 4, 1], max_value: 4, max_token_index: 1,
      qualifying_token_index: 1, bin_min: -1, bin_max: -1, bin_contains: -1,
      source: { dataset: "builtin:corpus", document: 0, offset: 0, window_index: 0, start: 0 } }],
    histogram: { bin_edges: [0, 1, 2, 3], counts: [5, 2, 1], log_scale: true },
    frequency_histogram: { bin_edges: [0, 2, 4], counts: [7, 1] },
    logits: { top_positive: [{ token: " dog", token_id: 9, value: 1.2, rank: 1 }],
      top_negative: [{ token: "x", token_id: 7, value: -0.5, rank: 1 }],
      histogram: { bin_edges: [-1, 0, 1], counts: [3, 4] } },
    top_tokens: [{ token: " cat", token_id: 2, total_activation: 40, count: 10, mean_activation: 4, max_activation: 4 }],
    label: "cats",
    category: null,
    explanations: [{ id: "e1", description: "cat tokens", method: "manual", model: null, score: null, created_at: null,
      source: "typed", prompt_version: null, scores: [] }],
  };
}
