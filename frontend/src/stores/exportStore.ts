/** The Neuronpedia export flow: configuration, estimate, validation, the running job and its result. */
import { create } from "zustand";
import { api } from "../api/client";
import type { ExportConfig, ExportEstimate, ValidationReport } from "../api/types";

export const DEFAULT_EXPORT_CONFIG: ExportConfig = {
  format: "neuronpedia+saelens",
  feature_selection: "all",
  include_examples: true,
  include_logits: true,
  include_histograms: true,
  include_top_tokens: true,
  include_explanations: true,
  n_examples: 20,
  logit_k: 20,
  n_bins: 50,
  compression: "gzip",
};

export type ExportPhase = "closed" | "configure" | "progress" | "complete";

interface ExportState {
  saeId: string | null;
  phase: ExportPhase;
  config: ExportConfig;
  estimate: ExportEstimate | null;
  estimateError: string | null;
  validation: ValidationReport | null;
  validating: boolean;
  error: string | null;
  jobId: string | null;
  exportId: string | null;
  openFor: (saeId: string) => void;
  /** Show an existing export job (progress or completion) for `saeId`. */
  showJob: (saeId: string, jobId: string) => void;
  close: () => void;
  setConfig: (patch: Partial<ExportConfig>) => void;
  refreshEstimate: () => Promise<void>;
  validate: () => Promise<void>;
  start: () => Promise<void>;
  setPhase: (phase: ExportPhase) => void;
}

export const useExportStore = create<ExportState>((set, get) => ({
  saeId: null,
  phase: "closed",
  config: DEFAULT_EXPORT_CONFIG,
  estimate: null,
  estimateError: null,
  validation: null,
  validating: false,
  error: null,
  jobId: null,
  exportId: null,

  openFor: (saeId) => {
    set({ saeId, phase: "configure", validation: null, error: null, estimate: null, jobId: null,
      exportId: null });
    void get().refreshEstimate();
  },
  showJob: (saeId, jobId) => set({ saeId, jobId, phase: "progress", error: null }),
  close: () => set({ phase: "closed" }),
  setPhase: (phase) => set({ phase }),

  setConfig: (patch) => {
    set({ config: { ...get().config, ...patch }, validation: null });
    void get().refreshEstimate();
  },

  refreshEstimate: async () => {
    const { saeId, config } = get();
    if (!saeId) return;
    try {
      set({ estimate: await api.exportEstimate(saeId, config), estimateError: null });
    } catch (e) {
      set({ estimate: null, estimateError: (e as Error).message });
    }
  },

  validate: async () => {
    const { saeId, config } = get();
    if (!saeId) return;
    set({ validating: true, error: null });
    try {
      set({ validation: await api.exportValidate(saeId, config), validating: false });
    } catch (e) {
      set({ validating: false, error: (e as Error).message });
    }
  },

  start: async () => {
    const { saeId, config } = get();
    if (!saeId) return;
    set({ error: null });
    try {
      const { job_id, export_id } = await api.exportStart(saeId, config);
      set({ jobId: job_id, exportId: export_id, phase: "progress" });
    } catch (e) {
      set({ error: (e as Error).message });
    }
  },
}));
