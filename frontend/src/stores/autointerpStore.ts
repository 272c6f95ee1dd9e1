/**
 * Auto-interp from the UI: the endpoint settings (remembered without the API key), explain/score runs by task,
 * their estimates, and the explanation search.
 *
 * A task key names what a run is for (`taskKey.feature(saeId, index)`, `taskKey.sae(saeId)`, …), so the
 * dashboard and the SAE page each follow their own runs; job states themselves live in the jobs store.
 */
import { create } from "zustand";
import { useShallow } from "zustand/react/shallow";
import { api } from "../api/client";
import type {
  ExplainEstimate,
  ExplainMethod,
  ExplainRequest,
  ExplanationHit,
  Job,
  ScoreRequest,
} from "../api/types";
import { jobActions } from "./jobsStore";

export const EXPLAIN_METHODS = ["np_max-act-logits", "oai_token-act-pair"] as const;
export const SCORERS = ["detection", "fuzzing", "simulation"] as const;
export type Scorer = (typeof SCORERS)[number];

/** Where explanations and scores come from: any OpenAI-compatible chat endpoint. */
export interface EndpointSettings {
  endpoint: string;
  model: string;
  /** Kept in memory only: sent with each run as a job secret, never stored by the server or the browser. */
  apiKey: string;
  method: string;
  scorer: Scorer;
  concurrency: number;
}

const SETTINGS_KEY = "mistudio-autointerp";

function savedSettings(): EndpointSettings {
  const defaults: EndpointSettings = {
    endpoint: "http://localhost:8000/v1", model: "", apiKey: "", method: EXPLAIN_METHODS[0], scorer: "detection",
    concurrency: 8,
  };
  try {
    const saved = JSON.parse(localStorage.getItem(SETTINGS_KEY) ?? "{}") as Partial<EndpointSettings>;
    return { ...defaults, ...saved, apiKey: "" };
  } catch {
    return defaults;
  }
}

/** Task keys: what a run is for. */
export const taskKey = {
  feature: (saeId: string, index: number) => `explain:${saeId}/${index}`,
  score: (saeId: string, index: number) => `score:${saeId}/${index}`,
  sae: (saeId: string) => `explain:${saeId}`,
  saeScore: (saeId: string) => `score:${saeId}`,
};

interface SearchState {
  q: string;
  page: number;
  items: ExplanationHit[];
  total: number;
  loading: boolean;
  error: string | null;
}

interface AutointerpState {
  settings: EndpointSettings;
  /** The server's explanation methods (empty until loaded: the form offers EXPLAIN_METHODS). */
  methods: ExplainMethod[];
  /** The job running (or last run) for each task key. */
  jobs: Record<string, string>;
  estimates: Record<string, ExplainEstimate>;
  errors: Record<string, string>;
  search: SearchState;
}

export const SEARCH_PAGE_SIZE = 25;

export const useAutointerpStore = create<AutointerpState>(() => ({
  settings: savedSettings(),
  methods: [],
  jobs: {},
  estimates: {},
  errors: {},
  search: { q: "", page: 1, items: [], total: 0, loading: false, error: null },
}));

const { getState: get, setState: set } = useAutointerpStore;
let searchGeneration = 0;

function setError(key: string, message: string | null): void {
  const errors = { ...get().errors };
  if (message === null) delete errors[key];
  else errors[key] = message;
  set({ errors });
}

/** The endpoint part of a request body, from the settings. */
function endpointFields(s: EndpointSettings): Pick<ExplainRequest, "endpoint" | "model" | "api_key" | "concurrency"> {
  return { endpoint: s.endpoint.trim(), model: s.model.trim(), api_key: s.apiKey || null, concurrency: s.concurrency };
}

async function startRun(key: string, start: () => Promise<string | null>, onFinish?: (job: Job) => void):
  Promise<string | null> {
  setError(key, null);
  try {
    const jobId = await start();
    if (jobId) {
      set({ jobs: { ...get().jobs, [key]: jobId } });
      jobActions.watch(jobId, onFinish);
    }
    return jobId;
  } catch (e) {
    setError(key, (e as Error).message);
    return null;
  }
}

let methodsRequested = false;

/** What components can do; stable functions. */
export const autointerpActions = {
  /** Load the server's explanation methods once (the form keeps its built-in list when that fails). */
  loadMethods: async (): Promise<void> => {
    if (methodsRequested) return;
    methodsRequested = true;
    try {
      set({ methods: await api.explainMethods() });
    } catch {
      methodsRequested = false;
    }
  },
  /** Change the endpoint settings (remembered in this browser, the API key excepted). */
  setSettings: (patch: Partial<EndpointSettings>): void => {
    const settings = { ...get().settings, ...patch };
    set({ settings });
    const { apiKey: _secret, ...rest } = settings;
    localStorage.setItem(SETTINGS_KEY, JSON.stringify(rest));
  },
  /** The request body of an explain run with the current settings plus `extra` (features, limits, prices). */
  explainBody: (extra: Partial<ExplainRequest> = {}): ExplainRequest => {
    const s = get().settings;
    return { ...endpointFields(s), method: s.method, force: false, ...extra };
  },
  /** The request body of a score run with the current settings plus `extra`. */
  scoreBody: (extra: Partial<ScoreRequest> = {}): ScoreRequest => {
    const s = get().settings;
    return { ...endpointFields(s), scorer: s.scorer, all_explanations: false, ...extra };
  },
  /** Ask for the estimate of a run; kept under `key`. */
  estimate: async (key: string, saeId: string, body: ExplainRequest): Promise<ExplainEstimate | null> => {
    setError(key, null);
    try {
      const estimate = await api.explainEstimate(saeId, body);
      set({ estimates: { ...get().estimates, [key]: estimate } });
      return estimate;
    } catch (e) {
      setError(key, (e as Error).message);
      return null;
    }
  },
  /** Start an explain run for `key`; `onFinish` runs when its job ends. */
  explain: (key: string, saeId: string, body: ExplainRequest, onFinish?: (job: Job) => void) =>
    startRun(key, async () => (await api.explain(saeId, body)).job_id, onFinish),
  /** Start a score run for `key`; `onFinish` runs when its job ends. */
  score: (key: string, saeId: string, body: ScoreRequest, onFinish?: (job: Job) => void) =>
    startRun(key, async () => (await api.score(saeId, body)).job_id, onFinish),
  /** Search explanations by text across SAEs (page `page`). */
  search: async (q: string, page = 1): Promise<void> => {
    const mine = ++searchGeneration;
    const text = q.trim();
    if (!text) {
      set({ search: { q, page: 1, items: [], total: 0, loading: false, error: null } });
      return;
    }
    set({ search: { ...get().search, q, page, loading: true } });
    try {
      const result = await api.searchExplanations({ q: text, page, page_size: SEARCH_PAGE_SIZE });
      if (mine !== searchGeneration) return;
      set({ search: { q, page, items: result.items, total: result.total, loading: false, error: null } });
    } catch (e) {
      if (mine !== searchGeneration) return;
      set({ search: { q, page, items: [], total: 0, loading: false, error: (e as Error).message } });
    }
  },
};

/** The explanation methods to offer: the server's, else the built-in list. */
export const useExplainMethods = (): string[] =>
  useAutointerpStore(useShallow((s) => (s.methods.length ? s.methods.map((m) => m.method) : [...EXPLAIN_METHODS])));

/** The endpoint settings. */
export const useEndpointSettings = (): EndpointSettings => useAutointerpStore((s) => s.settings);

/** The run of task `key`: its job id, estimate and error. */
export const useTask = (key: string): { jobId?: string; estimate?: ExplainEstimate; error?: string } =>
  useAutointerpStore(useShallow((s) => ({ jobId: s.jobs[key], estimate: s.estimates[key], error: s.errors[key] })));

/** The explanation search's query and results. */
export const useExplanationSearch = (): SearchState => useAutointerpStore((s) => s.search);
