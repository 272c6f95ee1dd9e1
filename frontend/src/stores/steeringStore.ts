/**
 * The Steering page: the features picked and their strengths, the generation settings, the Neuronpedia
 * comparison options (UI state), and what the server answered (the completions, the sweep table, past runs).
 *
 * Components read the state through the selector hooks below and act through `steeringActions`, which lives
 * outside the state, so a slider re-renders only its own row.
 */
import { create } from "zustand";
import { useShallow } from "zustand/react/shallow";
import { api, request } from "../api/client";
import type {
  FeatureSummary,
  SteeringRunSummary,
  SteerRequest,
  SteerResult,
  SweepResult,
} from "../api/types";

export type SteerMethod = NonNullable<SteerRequest["steer_method"]>;
export const STEER_METHODS: SteerMethod[] = ["SIMPLE_ADDITIVE", "ORTHOGONAL_DECOMP", "PROJECTION_CAP"];

/** A feature picked for steering. */
export interface PickedFeature {
  index: number;
  strength: number;
  label?: string | null;
}

/** Generation settings (Neuronpedia's defaults). */
export interface SteerSettings {
  prompt: string;
  chat: boolean;
  method: SteerMethod;
  nTokens: number;
  temperature: number;
  seed: number;
  freqPenalty: number;
  strengthMultiplier: number;
  normalize: boolean;
  steerSpecialTokens: boolean;
}

/** The Neuronpedia comparison toggle. */
export interface CompareSettings {
  enabled: boolean;
  host: string;
  apiKey: string;
  source: string;
}

export const DEFAULT_SETTINGS: SteerSettings = {
  prompt: "",
  chat: false,
  method: "SIMPLE_ADDITIVE",
  nTokens: 32,
  temperature: 0.5,
  seed: 16,
  freqPenalty: 1,
  strengthMultiplier: 1,
  normalize: false,
  steerSpecialTokens: true,
};

interface SteeringState {
  saeId: string | null;
  features: PickedFeature[];
  settings: SteerSettings;
  compare: CompareSettings;
  /** Strength multipliers of the sweep, as typed (comma-separated). */
  sweepText: string;
  running: "steer" | "sweep" | null;
  error: string | null;
  result: SteerResult | null;
  sweep: SweepResult | null;
  search: FeatureSummary[];
  runs: SteeringRunSummary[];
  openedRunId: string | null;
}

const initial = (): Omit<SteeringState, "compare"> => ({
  saeId: null,
  features: [],
  settings: { ...DEFAULT_SETTINGS },
  sweepText: "0, 1, 2, 4, 8",
  running: null,
  error: null,
  result: null,
  sweep: null,
  search: [],
  runs: [],
  openedRunId: null,
});

export const useSteeringStore = create<SteeringState>(() => ({
  ...initial(),
  compare: { enabled: false, host: "https://www.neuronpedia.org", apiKey: "", source: "" },
}));

const { getState: get, setState: set } = useSteeringStore;

/** The sweep's multipliers parsed from its text; null when a value is not a number. */
export function parseSweep(text: string): number[] | null {
  const parts = text.split(",").map((p) => p.trim()).filter(Boolean);
  const values = parts.map(Number);
  return values.length > 0 && values.every((v) => Number.isFinite(v)) ? values : null;
}

function body(): SteerRequest {
  const { saeId, features, settings: s, compare } = get();
  return {
    sae_id: saeId ?? "",
    prompt: s.prompt,
    chat: s.chat,
    features: features.map((f) => ({ index: f.index, strength: f.strength })),
    steer_method: s.method,
    normalize_steering: s.normalize,
    strength_multiplier: s.strengthMultiplier,
    steer_special_tokens: s.steerSpecialTokens,
    n_completion_tokens: s.nTokens,
    temperature: s.temperature,
    freq_penalty: s.freqPenalty,
    seed: s.seed,
    compare_neuronpedia: compare.enabled
      ? { host: compare.host, api_key: compare.apiKey || null, source: compare.source || null }
      : null,
  };
}

let searchGeneration = 0;

/** What components can do on the Steering page; stable functions. */
export const steeringActions = {
  /** Open the page for an SAE, optionally with one feature picked (from a feature's dashboard). */
  open: (saeId: string, feature?: number | null): void => {
    if (get().saeId !== saeId) set({ ...initial(), saeId });
    if (feature !== undefined && feature !== null && !get().features.some((f) => f.index === feature)) {
      set({ features: [...get().features, { index: feature, strength: 10 }] });
    }
    void steeringActions.loadRuns();
  },
  addFeature: (index: number, label?: string | null): void => {
    if (get().features.some((f) => f.index === index)) return;
    set({ features: [...get().features, { index, strength: 10, label }], search: [] });
  },
  removeFeature: (index: number): void => set({ features: get().features.filter((f) => f.index !== index) }),
  setStrength: (index: number, strength: number): void =>
    set({ features: get().features.map((f) => (f.index === index ? { ...f, strength } : f)) }),
  setSettings: (patch: Partial<SteerSettings>): void => set({ settings: { ...get().settings, ...patch } }),
  setCompare: (patch: Partial<CompareSettings>): void => set({ compare: { ...get().compare, ...patch } }),
  setSweepText: (sweepText: string): void => set({ sweepText }),
  /** Features whose label or top token matches `text` (and the index itself when `text` is a number). */
  searchFeatures: async (text: string): Promise<void> => {
    const saeId = get().saeId;
    const mine = ++searchGeneration;
    if (!saeId || !text.trim()) {
      set({ search: [] });
      return;
    }
    try {
      const page = await api.listFeatures(saeId, { search: text.trim(), page_size: 10, sort: "frequency", order: "desc" });
      if (mine === searchGeneration) set({ search: page.items });
    } catch {
      if (mine === searchGeneration) set({ search: [] });
    }
  },
  run: async (): Promise<void> => {
    set({ running: "steer", error: null });
    try {
      const result = await request("steer", { json: body() });
      set({ result, sweep: null, running: null, openedRunId: result.run_id });
      void steeringActions.loadRuns();
    } catch (e) {
      set({ running: null, error: (e as Error).message });
    }
  },
  runSweep: async (): Promise<void> => {
    const multipliers = parseSweep(get().sweepText);
    if (!multipliers) {
      set({ error: "Sweep strengths must be numbers separated by commas, e.g. 0, 1, 2, 4" });
      return;
    }
    set({ running: "sweep", error: null });
    try {
      const sweep = await request("steerSweep", { json: { ...body(), compare_neuronpedia: null, strength_multipliers: multipliers } });
      set({ sweep, running: null, openedRunId: sweep.run_id });
      void steeringActions.loadRuns();
    } catch (e) {
      set({ running: null, error: (e as Error).message });
    }
  },
  loadRuns: async (): Promise<void> => {
    const saeId = get().saeId;
    if (!saeId) return;
    try {
      const page = await request("listSteeringRuns", { query: { sae_id: saeId, page_size: 50 } });
      if (get().saeId === saeId) set({ runs: page.items });
    } catch {
      /* the list stays as it was */
    }
  },
  /** Reopen a stored run: its settings, features and outputs. */
  openRun: async (runId: string): Promise<void> => {
    try {
      const run = await request("getSteeringRun", { params: { run_id: runId } });
      const s = run.settings as Partial<SteerRequest>;
      set({
        features: run.features.map((f) => ({ index: f.index, strength: f.strength })),
        settings: {
          prompt: run.prompt,
          chat: run.chat,
          method: (s.steer_method ?? "SIMPLE_ADDITIVE") as SteerMethod,
          nTokens: s.n_completion_tokens ?? DEFAULT_SETTINGS.nTokens,
          temperature: s.temperature ?? DEFAULT_SETTINGS.temperature,
          seed: s.seed ?? DEFAULT_SETTINGS.seed,
          freqPenalty: s.freq_penalty ?? DEFAULT_SETTINGS.freqPenalty,
          strengthMultiplier: s.strength_multiplier ?? DEFAULT_SETTINGS.strengthMultiplier,
          normalize: s.normalize_steering ?? false,
          steerSpecialTokens: s.steer_special_tokens ?? true,
        },
        result: run.result ?? null,
        sweep: run.sweep ?? null,
        openedRunId: run.id,
        error: null,
      });
    } catch (e) {
      set({ error: (e as Error).message });
    }
  },
};

export const useSteerFeatures = (): PickedFeature[] => useSteeringStore((s) => s.features);
export const useSteerFeature = (index: number): PickedFeature | undefined =>
  useSteeringStore((s) => s.features.find((f) => f.index === index));
export const useSteerFeatureIndexes = (): number[] =>
  useSteeringStore(useShallow((s) => s.features.map((f) => f.index)));
export const useSteerSettings = (): SteerSettings => useSteeringStore((s) => s.settings);
export const useCompareSettings = (): CompareSettings => useSteeringStore((s) => s.compare);
export const useSweepText = (): string => useSteeringStore((s) => s.sweepText);
export const useSteerRunning = (): "steer" | "sweep" | null => useSteeringStore((s) => s.running);
export const useSteerError = (): string | null => useSteeringStore((s) => s.error);
export const useSteerResult = (): SteerResult | null => useSteeringStore((s) => s.result);
export const useSweepResult = (): SweepResult | null => useSteeringStore((s) => s.sweep);
export const useFeatureSearch = (): FeatureSummary[] => useSteeringStore((s) => s.search);
export const useSteeringRuns = (): SteeringRunSummary[] => useSteeringStore((s) => s.runs);
export const useOpenedRunId = (): string | null => useSteeringStore((s) => s.openedRunId);
