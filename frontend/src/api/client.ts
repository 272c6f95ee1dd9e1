/** A small typed client for the miStudio REST API; every query, body and answer type comes from the schema. */
import { AUTH_ERROR_TYPE, authHeaders, tokenRejected } from "./auth";
import type { BodyOf, QueryOf, ResponseOf } from "./contract";
import { endpointMethod, endpointUrl, type EndpointName } from "./endpoints";
import type { ExportConfig } from "./types";

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

interface RequestOptions<N extends EndpointName> {
  params?: Record<string, string | number>;
  query?: QueryOf<N>;
  json?: BodyOf<N>;
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
export async function request<N extends EndpointName>(name: N, opts: RequestOptions<N> = {}): Promise<ResponseOf<N>> {
  const init: RequestInit = { method: endpointMethod(name), headers: authHeaders() };
  if (opts.json !== undefined) {
    init.body = JSON.stringify(opts.json);
    (init.headers as Record<string, string>)["Content-Type"] = "application/json";
  } else if (opts.form) {
    init.body = opts.form;
  }
  let res: Response;
  try {
    res = await fetch(endpointUrl(name, opts.params, opts.query ?? {}), init);
  } catch {
    throw new ApiError("Cannot reach the miStudio server. Is `mistudio serve` still running?", 0, "NetworkError");
  }
  if (!res.ok) {
    const error = await toApiError(res);
    if (res.status === 401 && error.type === AUTH_ERROR_TYPE) tokenRejected();
    throw error;
  }
  if (res.status === 204) return undefined as ResponseOf<N>;
  const text = await res.text();
  return (text ? JSON.parse(text) : undefined) as ResponseOf<N>;
}

/** The catalog's filters, search, sort and page (GET /saes). */
export type SAEQuery = QueryOf<"listSAEs">;
/** The feature browser's filters, search, sort and page (GET /saes/{sae_id}/features). */
export type FeatureQuery = QueryOf<"listFeatures">;

const id = (sae_id: string) => ({ sae_id });

/** The API, one function per endpoint. */
export const api = {
  listSAEs: (q: SAEQuery) => request("listSAEs", { query: { ...q } }),
  getSAE: (saeId: string) => request("getSAE", { params: id(saeId) }),
  deleteSAE: (saeId: string) => request("deleteSAE", { params: id(saeId) }),
  saeConfig: (saeId: string) => request("saeConfig", { params: id(saeId) }),
  saeStatistics: (saeId: string) => request("saeStatistics", { params: id(saeId) }),
  getTraining: (trainingId: string) => request("getTraining", { params: { training_id: trainingId } }),
  listTrainings: () => request("listTrainings"),
  createTraining: (body: BodyOf<"createTraining">) => request("createTraining", { json: body }),
  linkTraining: (saeId: string, trainingId: string) =>
    request("linkTraining", { params: id(saeId), json: { training_id: trainingId } }),
  /** Upload an SAE archive; `model_name`/`hook_name` fill in what the files do not say (e.g. a Gemma Scope
   * params.npz outside its repository). */
  importSAE: (file: File, name?: string, overrides: { model_name?: string; hook_name?: string } = {}) => {
    const form = new FormData();
    form.append("file", file);
    if (name) form.append("name", name);
    if (overrides.model_name) form.append("model_name", overrides.model_name);
    if (overrides.hook_name) form.append("hook_name", overrides.hook_name);
    return request("importSAE", { form });
  },
  /** Import explanations/labels from a CSV (`feature_index, description[, method, model, score, category]`) or
   * JSON file (a list of such rows, or an export's explanations.json). */
  importLabels: (saeId: string, file: File) => {
    const form = new FormData();
    form.append("file", file);
    return request("importLabels",
      { params: id(saeId), form });
  },
  convertSAE: (saeId: string, to: "saelens" | "mistudio") =>
    request("convertSAE", { params: id(saeId), json: { to } }),
  browseHub: (repoId: string, revision?: string, token?: string) =>
    request("browseHub", { query: { repo_id: repoId, revision, token } }),
  downloadHF: (body: BodyOf<"downloadHF">) => request("downloadHF", { json: body }),
  /** Search the SAELens releases (name, repo, model, family), best matches first. */
  searchReleases: (query: string, limit = 20) => request("searchReleases", { query: { query, limit } }),
  /** One release as the registry lists it (no Hub request). */
  releaseInfo: (release: string) => request("releaseInfo", { params: { release } }),
  /** A release's SAEs merged with what their files on the Hub say. */
  releaseSAEs: (release: string, revision?: string, token?: string) =>
    request("releaseSAEs", { params: { release }, query: { revision, token } }),
  downloadRelease: (release: string, body: BodyOf<"downloadRelease">) =>
    request("downloadRelease", { params: { release }, json: body }),
  extract: (saeId: string, body: BodyOf<"extract">) =>
    request("extract", { params: id(saeId), json: body }),
  listExtractions: (saeId: string) => request("listExtractions", { params: id(saeId) }),
  listFeatures: (saeId: string, q: FeatureQuery) =>
    request("listFeatures", { params: id(saeId), query: { ...q } }),
  dashboard: (saeId: string, index: number) =>
    request("dashboard", { params: { sae_id: saeId, feature_id: index } }),
  putLabel: (saeId: string, index: number, label: string) =>
    request("putLabel", { params: { sae_id: saeId, index }, json: { label } }),
  /** The explanation methods the server knows (the default first). */
  explainMethods: () => request("explainMethods"),
  /** Requests, tokens, cost and time an explain run would take (nothing is sent to the model). */
  explainEstimate: (saeId: string, body: BodyOf<"explainEstimate">) =>
    request("explainEstimate", { params: id(saeId), json: body }),
  /** Start an explain job (the API key travels as a job secret and is never stored). */
  explain: (saeId: string, body: BodyOf<"explain">) => request("explain", { params: id(saeId), json: body }),
  /** Start a score job over the selected features' explanations. */
  score: (saeId: string, body: BodyOf<"score">) => request("score", { params: id(saeId), json: body }),
  /** Explanations whose text contains every word of `q`, across SAEs (or one SAE's). */
  searchExplanations: (q: QueryOf<"searchExplanations">) => request("searchExplanations", { query: q }),
  exportEstimate: (saeId: string, config: ExportConfig) =>
    request("exportEstimate", { params: id(saeId), json: { config } }),
  /** Validate an export archive: `exportId`'s, or the SAE's latest completed export. */
  exportValidate: (saeId: string, exportId?: string) =>
    request("exportValidate", { params: id(saeId), json: exportId ? { export_id: exportId } : {} }),
  /** Start an export; `baseExportId` makes it incremental (unchanged features of that export are reused). */
  exportStart: (saeId: string, config: ExportConfig, baseExportId?: string | null) =>
    request("exportStart",
      { params: id(saeId), json: baseExportId ? { config, base_export_id: baseExportId } : { config } }),
  listExports: (saeId: string) => request("listExports", { query: { sae_id: saeId, page_size: 20 } }),
  /** Every export, newest first (optionally one SAE's). */
  listAllExports: (q: QueryOf<"listExports"> = {}) => request("listExports", { query: q }),
  deleteExport: (exportId: string) => request("deleteExport", { params: { export_id: exportId } }),
  exportDownloadUrl: (saeId: string, jobId: string) =>
    endpointUrl("exportDownload", { sae_id: saeId, job_id: jobId }),
  listJobs: (q: QueryOf<"listJobs"> = {}) =>
    request("listJobs", { query: q }),
  getJob: (jobId: string) => request("getJob", { params: { job_id: jobId } }),
  cancelJob: (jobId: string) => request("cancelJob", { params: { job_id: jobId } }),
  pauseJob: (jobId: string) => request("pauseJob", { params: { job_id: jobId } }),
  resumeJob: (jobId: string) => request("resumeJob", { params: { job_id: jobId } }),
  jobEventsUrl: (jobId: string) => endpointUrl("jobEvents", { job_id: jobId }),
};
