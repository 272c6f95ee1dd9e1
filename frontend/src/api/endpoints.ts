/**
 * Every REST endpoint the UI calls, as "METHOD /path" relative to /api/v1.
 * tests/e2e/test_openapi_client.py checks each one exists in the live app's OpenAPI schema,
 * and src/api/endpoints.test.ts checks them against the saved frontend/openapi.json.
 */
export const ENDPOINTS = {
  listSAEs: "GET /saes",
  getSAE: "GET /saes/{sae_id}",
  deleteSAE: "DELETE /saes/{sae_id}",
  importSAE: "POST /saes",
  convertSAE: "POST /saes/{sae_id}/convert",
  saeConfig: "GET /saes/{sae_id}/config",
  saeStatistics: "GET /saes/{sae_id}/statistics",
  downloadHF: "POST /saes/download-hf",
  browseHub: "GET /hub/saes",
  searchReleases: "GET /hub/releases",
  releaseInfo: "GET /hub/releases/{release}",
  releaseSAEs: "GET /hub/releases/{release}/saes",
  downloadRelease: "POST /hub/releases/{release}/download",
  extract: "POST /saes/{sae_id}/extract",
  listExtractions: "GET /saes/{sae_id}/extractions",
  listFeatures: "GET /saes/{sae_id}/features",
  dashboard: "GET /saes/{sae_id}/features/{feature_id}/dashboard",
  putLabel: "PUT /saes/{sae_id}/features/{index}/label",
  explainMethods: "GET /explain/methods",
  explainEstimate: "POST /saes/{sae_id}/explain/estimate",
  explain: "POST /saes/{sae_id}/explain",
  score: "POST /saes/{sae_id}/score",
  searchExplanations: "GET /explanations/search",
  liveActivations: "POST /saes/{sae_id}/activations",
  loadedModels: "GET /models/loaded",
  importLabels: "POST /saes/{sae_id}/labels/import",
  exportEstimate: "POST /saes/{sae_id}/export/estimate",
  exportValidate: "POST /saes/{sae_id}/export/validate",
  exportStart: "POST /saes/{sae_id}/export/neuronpedia",
  exportDownload: "GET /saes/{sae_id}/export/download/{job_id}",
  publishHF: "POST /saes/{sae_id}/publish/hf",
  publishHFStatus: "GET /saes/{sae_id}/publish/hf/{job_id}",
  listExports: "GET /exports",
  deleteExport: "DELETE /exports/{export_id}",
  listJobs: "GET /jobs",
  getJob: "GET /jobs/{job_id}",
  cancelJob: "POST /jobs/{job_id}/cancel",
  pauseJob: "POST /jobs/{job_id}/pause",
  resumeJob: "POST /jobs/{job_id}/resume",
  jobEvents: "GET /jobs/{job_id}/events",
  getTraining: "GET /trainings/{training_id}",
  listTrainings: "GET /trainings",
  createTraining: "POST /trainings",
  startTraining: "POST /trainings/start",
  trainingCurves: "GET /trainings/{training_id}/curves",
  linkTraining: "POST /saes/{sae_id}/link",
  createSession: "POST /auth/session",
  steer: "POST /steer",
  steerSweep: "POST /steer/sweep",
  listSteeringRuns: "GET /steer/runs",
  getSteeringRun: "GET /steer/runs/{run_id}",
} as const;

export type EndpointName = keyof typeof ENDPOINTS;

export const API_BASE = "/api/v1";

/** The URL of an endpoint with its {params} filled in and optional query parameters. */
export function endpointUrl(
  name: EndpointName,
  params: Record<string, string | number> = {},
  query: Record<string, string | number | boolean | null | undefined> = {},
): string {
  const template = ENDPOINTS[name].split(" ")[1];
  const path = template.replace(/\{(\w+)\}/g, (_, key: string) => {
    if (!(key in params)) throw new Error(`missing path parameter ${key} for ${name}`);
    return encodeURIComponent(String(params[key]));
  });
  const search = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) {
    if (v !== undefined && v !== null && v !== "") search.set(k, String(v));
  }
  const qs = search.toString();
  return `${API_BASE}${path}${qs ? `?${qs}` : ""}`;
}

export function endpointMethod(name: EndpointName): string {
  return ENDPOINTS[name].split(" ")[0];
}
