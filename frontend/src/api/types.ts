/** Response shapes of the REST API (docs/ARCHITECTURE.md, "REST contract"). */

export type SAESource = "trained" | "huggingface" | "gemma_scope" | "upload";

export interface SAE {
  id: string;
  name: string;
  source: SAESource;
  status: "downloading" | "ready" | "error";
  model_name: string | null;
  layer: number | null;
  hook_name: string | null;
  head_index: number | null;
  d_in: number | null;
  d_sae: number | null;
  architecture: string | null;
  format: string | null;
  dtype: string | null;
  repo_id: string | null;
  path_in_repo: string | null;
  revision: string | null;
  size_bytes: number | null;
  metadata: Record<string, unknown> | null;
  training_id: string | null;
  job_id: string | null;
  error_message: string | null;
  n_features_extracted: number | null;
  latest_extraction_id: string | null;
  created_at: string;
  updated_at: string;
  local_path?: string | null;
}

export interface Facets {
  models: string[];
  layers: number[];
  sources: string[];
  architectures: string[];
}

export interface Page<T> {
  items: T[];
  total: number;
  page?: number;
  page_size?: number;
}

export interface SAEPage extends Page<SAE> {
  facets: Facets;
}

export interface JobStage {
  name: string;
  status: "pending" | "running" | "completed" | "failed" | "cancelled" | string;
  progress?: number;
  started_at?: string;
  elapsed_s?: number;
}

export type JobStatus = "pending" | "running" | "paused" | "completed" | "failed" | "cancelled";

export interface Job {
  id: string;
  type: string;
  status: JobStatus;
  sae_id: string | null;
  params: Record<string, unknown>;
  progress: number;
  current_stage: string | null;
  stages: JobStage[];
  message: string | null;
  error_message: string | null;
  error_details: Record<string, unknown> | null;
  result: Record<string, unknown> | null;
  resumable: boolean;
  created_at: string | null;
  started_at: string | null;
  finished_at: string | null;
  eta_seconds: number | null;
}

export interface HubFile {
  path: string;
  size: number;
}

export interface MemoryEstimate {
  n_params: number;
  bytes_at_dtype: number;
  bytes_fp16: number;
  bytes_fp32: number;
}

/** One SAE found in a Hub repository (hub.browse.HubSAE). */
export interface HubSAE {
  path: string;
  format: string;
  files: HubFile[];
  download_bytes: number;
  d_in: number | null;
  d_sae: number | null;
  architecture: string | null;
  dtype: string | null;
  k: number | null;
  layer: number | null;
  hook_name: string | null;
  model_name: string | null;
  width: string | null;
  l0: number | null;
  config: Record<string, unknown> | null;
  memory: MemoryEstimate | null;
  error: string | null;
}

export interface GemmaScopeLayer {
  layer: number | null;
  widths: { width: string; d_sae: number | null; l0s: { l0: number; path: string }[] }[];
}

/** GET /hub/saes (hub.browse.RepoListing). */
export interface HubListing {
  repo_id: string;
  revision: string | null;
  commit_sha: string;
  n_files: number;
  total_bytes: number;
  saes: HubSAE[];
  gemma_scope: GemmaScopeLayer[];
}

export interface Training {
  id: string;
  name: string;
  model_name: string | null;
  hook_name: string | null;
  dataset: string | null;
  hyperparameters: Record<string, unknown>;
  metrics: Record<string, unknown>;
  n_training_tokens: number | null;
  created_at: string | null;
}

export interface FeatureRow {
  feature_index: number;
  activation_frequency: number | null;
  max_activation: number | null;
  mean_activation: number | null;
  dead: boolean;
  label: string | null;
  top_token: string | null;
}

export interface ActivationExample {
  tokens: string[];
  token_ids: number[];
  values: number[];
  max_value: number;
  max_token_index: number;
  qualifying_token_index?: number;
  bin_min?: number;
  bin_max?: number;
  bin_contains?: number;
  source?: Record<string, unknown>;
}

export interface LogitEntry {
  token: string;
  token_id: number;
  value: number;
  rank?: number;
}

export interface Histogram {
  bin_edges: number[];
  counts: number[];
  total_count?: number;
  nonzero_count?: number;
  log_scale?: boolean;
}

export interface Explanation {
  id?: string;
  text?: string;
  description?: string;
  label?: string;
  method?: string;
  score?: number | null;
  [key: string]: unknown;
}

export interface Dashboard {
  feature_index: number;
  statistics: Record<string, unknown>;
  activations: ActivationExample[];
  histogram: Histogram | null;
  logits: { top_positive: LogitEntry[]; top_negative: LogitEntry[]; histogram: Histogram | null } | null;
  top_tokens: { token: string; token_id: number; total_activation: number; count: number;
    mean_activation?: number; max_activation?: number }[];
  label?: string | null;
  explanations?: Explanation[];
}

/** Which features to export (export.config.FeatureSelection). */
export interface FeatureSelection {
  mode: "all" | "range" | "list" | "labeled" | "label_text" | "frequency" | "max_activation";
  start?: number | null;
  stop?: number | null;
  indices?: number[] | null;
  text?: string | null;
  min_frequency?: number | null;
  max_frequency?: number | null;
  min_max_activation?: number | null;
  include_dead?: boolean;
}

/** export.config.ExportConfig (fields left out take the server's defaults). */
export interface ExportConfig {
  format: "neuronpedia" | "saelens" | "both";
  selection: FeatureSelection;
  n_examples: number;
  logit_k: number;
  n_bins: number;
  top_tokens: number;
  include_explanations: boolean;
  compression: "none" | "gzip";
  /** also export the interval (quantile-band) groups below the top examples */
  interval_examples?: boolean;
  /** also write SAEDashboard's neuronpedia/batch-{k}.json (a third copy of every example) */
  saedashboard_batches?: boolean;
  model_id?: string | null;
  source_set?: string | null;
  hf_repo_id?: string | null;
}

/** One export (GET /exports). */
export interface ExportRecord {
  id: string;
  sae_id: string;
  job_id: string | null;
  status: string;
  output_path: string | null;
  file_size_bytes: number | null;
  feature_count: number | null;
  base_export_id: string | null;
  created_at: string | null;
  finished_at: string | null;
}

export interface ExportEstimate {
  size_bytes: number;
  seconds: number;
  n_features: number;
  /** Dashboard parts the feature store lacks; the export computes them. */
  missing: string[];
  n_dead?: number;
  notes?: string[];
}

export interface ValidationIssue {
  code: string;
  location: string;
  message: string;
  fix: string;
  fixable?: boolean;
  severity: "error" | "warning" | string;
}

/** export.validate.ValidationReport.to_dict(). */
export interface ValidationReport {
  path?: string;
  ok: boolean;
  n_files?: number;
  n_features?: number;
  n_errors?: number;
  n_warnings?: number;
  issues: ValidationIssue[];
  text?: string;
}
