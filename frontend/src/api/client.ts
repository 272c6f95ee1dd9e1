/** A small typed client for the miStudio REST API. */
import { endpointMethod, endpointUrl, type EndpointName } from "./endpoints";
import type {
  Dashboard, ExportConfig, ExportEstimate, ExportRecord, FeatureRow, HubListing, Job, Page, SAE, SAEPage, Training, ValidationReport,
} from "./types";

/** A training run to record (POST /trainings). */
export interface TrainingRequest {
  name: string;
  dataset?: string | null;
  n_training_tokens?: number | null;
}

/** An error answered by the API: `{"error": {type, message, details}}` plus the HTTP status. */
export class ApiError extends Error {
  constructor(
    message: string,
    readonly status: number,
    readonly type: string = "Error",
    readonly details: Record<string, unknown> = {},
  ) {
    super(message);
    this.name = "ApiError";
  }
}

type Query = Record<string, string | number | boolean | null | undefined>;

interface RequestOptions {
  params?: Record<string, string | number>;
  query?: Query;
  json?: unknown;
  form?: FormData;
}

/** Turn an error response into an ApiError with the most useful message we can find. */
async function toApiError(res: Response): Promise<ApiError> {
  let body: unknown = null;
  try {
    body = await res.json();
  } catch {
    /* not JSON */
  }
  const err = (body as { error?: { type?: string; message?: string; details?: Record<string, unknown> } })?.error;
  const detail = (body as { detail?: unknown })?.detail;
  const message = err?.message ?? (typeof detail === "string" ? detail : `${res.status} ${res.statusText}`.trim());
  return new ApiError(message || `request failed (${res.status})`, res.status, err?.type ?? "Error", err?.details ?? {});
}

/** Call endpoint `name`; resolves with the parsed JSON body (undefined for 204). */
export async function request<T>(name: EndpointName, opts: RequestOptions = {}): Promise<T> {
  const init: RequestInit = { method: endpointMethod(name), headers: {} };
  if (opts.json !== undefined) {
    init.body = JSON.stringify(opts.json);
    (init.headers as Record<string, string>)["Content-Type"] = "application/json";
  } else if (opts.form) {
    init.body = opts.form;
  }
  let res: Response;
  try {
    res = await fetch(endpointUrl(name, opts.params, opts.query), init);
  } catch {
    throw new ApiError("Cannot reach the miStudio server. Is `mistudio serve` still running?", 0, "NetworkError");
  }
  if (!res.ok) throw await toApiError(res);
  if (res.status === 204) return undefined as T;
  const text = await res.text();
  return (text ? JSON.parse(text) : undefined) as T;
}

export interface SAEQuery {
  model?: string;
  layer?: number | string;
  source?: string;
  architecture?: string;
  search?: string;
  sort?: string;
  order?: "asc" | "desc";
  page?: number;
  page_size?: number;
}

export interface FeatureQuery {
  sort?: "index" | "frequency" | "max" | "mean";
  order?: "asc" | "desc";
  dead?: boolean | null;
  labeled?: boolean | null;
  min_freq?: number | null;
  max_freq?: number | null;
  search?: string;
  page?: number;
  page_size?: number;
}

export interface DownloadRequest {
  repo_id: string;
  path_in_repo?: string;
  layer?: number;
  width?: string;
  l0?: number;
  revision?: string;
  token?: string;
  name?: string;
}

export interface ExtractRequest {
  model: string;
  dataset: string;
  n_tokens?: number;
  context_size?: number;
  top_k?: number;
  batch_size?: number;
}

const id = (sae_id: string) => ({ sae_id });

/** The API, one function per endpoint. */
export const api = {
  listSAEs: (q: SAEQuery) => request<SAEPage>("listSAEs", { query: { ...q } }),
  getSAE: (saeId: string) => request<SAE>("getSAE", { params: id(saeId) }),
  deleteSAE: (saeId: string) => request<void>("deleteSAE", { params: id(saeId) }),
  saeConfig: (saeId: string) => request<Record<string, unknown>>("saeConfig", { params: id(saeId) }),
  saeStatistics: (saeId: string) => request<Record<string, unknown>>("saeStatistics", { params: id(saeId) }),
  getTraining: (trainingId: string) => request<Training>("getTraining", { params: { training_id: trainingId } }),
  listTrainings: () => request<{ items: Training[] }>("listTrainings"),
  createTraining: (body: TrainingRequest) => request<Training>("createTraining", { json: body }),
  linkTraining: (saeId: string, trainingId: string) =>
    request<SAE>("linkTraining", { params: id(saeId), json: { training_id: trainingId } }),
  /** Upload an SAE archive; `model_name`/`hook_name` fill in what the files do not say (e.g. a Gemma Scope
   * params.npz outside its repository). */
  importSAE: (file: File, name?: string, overrides: { model_name?: string; hook_name?: string } = {}) => {
    const form = new FormData();
    form.append("file", file);
    if (name) form.append("name", name);
    if (overrides.model_name) form.append("model_name", overrides.model_name);
    if (overrides.hook_name) form.append("hook_name", overrides.hook_name);
    return request<SAE>("importSAE", { form });
  },
  /** Import explanations/labels from a CSV (`feature_index, description[, method, model, score, category]`) or
   * JSON file (a list of such rows, or an export's explanations.json). */
  importLabels: (saeId: string, file: File) => {
    const form = new FormData();
    form.append("file", file);
    return request<{ imported: number; features: number; labels_updated: number }>("importLabels",
      { params: id(saeId), form });
  },
  convertSAE: (saeId: string, to: "saelens" | "mistudio") =>
    request<{ path: string; format: string }>("convertSAE", { params: id(saeId), json: { to } }),
  browseHub: (repoId: string, revision?: string, token?: string) =>
    request<HubListing>("browseHub", { query: { repo_id: repoId, revision, token } }),
  downloadHF: (body: DownloadRequest) => request<{ job_id: string; sae_id: string }>("downloadHF", { json: body }),
  extract: (saeId: string, body: ExtractRequest) =>
    request<{ job_id: string; extraction_id: string }>("extract", { params: id(saeId), json: body }),
  listExtractions: (saeId: string) => request<Record<string, unknown>[]>("listExtractions", { params: id(saeId) }),
  listFeatures: (saeId: string, q: FeatureQuery) =>
    request<Page<FeatureRow>>("listFeatures", { params: id(saeId), query: { ...q } }),
  dashboard: (saeId: string, index: number) =>
    request<Dashboard>("dashboard", { params: { sae_id: saeId, feature_id: index } }),
  putLabel: (saeId: string, index: number, label: string) =>
    request<unknown>("putLabel", { params: { sae_id: saeId, index }, json: { label } }),
  exportEstimate: (saeId: string, config: ExportConfig) =>
    request<ExportEstimate>("exportEstimate", { params: id(saeId), json: { config } }),
  /** Validate an export archive: `exportId`'s, or the SAE's latest completed export. */
  exportValidate: (saeId: string, exportId?: string) =>
    request<ValidationReport>("exportValidate", { params: id(saeId), json: exportId ? { export_id: exportId } : {} }),
  /** Start an export; `baseExportId` makes it incremental (unchanged features of that export are reused). */
  exportStart: (saeId: string, config: ExportConfig, baseExportId?: string | null) =>
    request<{ job_id: string; export_id: string }>("exportStart",
      { params: id(saeId), json: baseExportId ? { config, base_export_id: baseExportId } : { config } }),
  listExports: (saeId: string) => request<Page<ExportRecord>>("listExports", { query: { sae_id: saeId, page_size: 20 } }),
  exportDownloadUrl: (saeId: string, jobId: string) =>
    endpointUrl("exportDownload", { sae_id: saeId, job_id: jobId }),
  listJobs: (q: { limit?: number; status?: string; sae_id?: string } = {}) =>
    request<{ items: Job[] }>("listJobs", { query: q }),
  getJob: (jobId: string) => request<Job>("getJob", { params: { job_id: jobId } }),
  cancelJob: (jobId: string) => request<Job>("cancelJob", { params: { job_id: jobId } }),
  pauseJob: (jobId: string) => request<Job>("pauseJob", { params: { job_id: jobId } }),
  resumeJob: (jobId: string) => request<Job>("resumeJob", { params: { job_id: jobId } }),
  jobEventsUrl: (jobId: string) => endpointUrl("jobEvents", { job_id: jobId }),
};
