/** The Neuronpedia export flow: configuration, estimate, validation, the running job and its result. */
import { create } from "zustand";
import { api } from "../api/client";
import type { ExportConfig, ExportEstimate, ValidationReport } from "../api/types";

export const DEFAULT_EXPORT_CONFIG: ExportConfig = {
  format: "both",
  selection: { mode: "all" },
  n_examples: 20,
  logit_k: 20,
  n_bins: 50,
  top_tokens: 20,
  include_explanations: true,
  compression: "gzip",
};

/** The config as sent: empty optional identity fields left out so the server derives them. */
export function configForRequest(config: ExportConfig): ExportConfig {
  const out: ExportConfig = { ...config };
  for (const key of ["model_id", "source_set", "hf_repo_id"] as const) if (!out[key]) delete out[key];
  return out;
}

export type ExportPhase = "closed" | "configure" | "progress" | "complete";

interface ExportState {
  saeId: string | null;
  phase: ExportPhase;
  config: ExportConfig;
  estimate: ExportEstimate | null;
  estimateError: string | null;
  /** The pre-export check of the configuration (the estimate answered), or why it failed. */
  configCheck: { ok: boolean; message: string } | null;
  /** The validation report of the latest (or this job's) export archive. */
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
  /** Check the configuration; validate the SAE's latest archive (or `exportId`'s) when there is one. */
  validate: (exportId?: string) => Promise<void>;
  start: () => Promise<void>;
  /** Incremental export: the finished export to build on (null: export everything). */
  baseExportId: string | null;
  setBaseExport: (exportId: string | null) => void;
  setPhase: (phase: ExportPhase) => void;
}

export const useExportStore = create<ExportState>((set, get) => ({
  saeId: null,
  phase: "closed",
  config: DEFAULT_EXPORT_CONFIG,
  estimate: null,
  estimateError: null,
  configCheck: null,
  validation: null,
  validating: false,
  error: null,
  jobId: null,
  exportId: null,
  baseExportId: null,
  setBaseExport: (baseExportId) => set({ baseExportId }),

  openFor: (saeId) => {
    set({ saeId, phase: "configure", validation: null, configCheck: null, error: null, estimate: null, jobId: null,
      exportId: null, baseExportId: null });
    void get().refreshEstimate();
  },
  showJob: (saeId, jobId) => set({ saeId, jobId, phase: "progress", error: null, validation: null }),
  close: () => set({ phase: "closed" }),
  setPhase: (phase) => set({ phase }),

  setConfig: (patch) => {
    set({ config: { ...get().config, ...patch }, configCheck: null });
    void get().refreshEstimate();
  },

  refreshEstimate: async () => {
    const { saeId, config } = get();
    if (!saeId) return;
    try {
      set({ estimate: await api.exportEstimate(saeId, configForRequest(config)), estimateError: null });
    } catch (e) {
      set({ estimate: null, estimateError: (e as Error).message });
    }
  },

  validate: async (exportId) => {
    const { saeId, config, phase } = get();
    if (!saeId) return;
    set({ validating: true, error: null });
    if (phase === "configure") {
      try {
        const est = await api.exportEstimate(saeId, configForRequest(config));
        const missing = est.missing.length ? ` Missing data computed during export: ${est.missing.join(", ")}.` : "";
        set({ estimate: est, configCheck: { ok: true,
          message: `Configuration valid: ${est.n_features.toLocaleString("en-US")} features will be exported.${missing}` } });
      } catch (e) {
        set({ configCheck: { ok: false, message: (e as Error).message } });
      }
    }
    try {
      set({ validation: await api.exportValidate(saeId, exportId), validating: false });
    } catch (e) {
      // No finished archive yet is normal before the first export; the archive is checked after export.
      set({ validation: null, validating: false, error: phase === "configure" ? null : (e as Error).message });
    }
  },

  start: async () => {
    const { saeId, config, baseExportId } = get();
    if (!saeId) return;
    set({ error: null });
    try {
      const { job_id, export_id } = await api.exportStart(saeId, configForRequest(config), baseExportId);
      set({ jobId: job_id, exportId: export_id, phase: "progress", validation: null });
    } catch (e) {
      set({ error: (e as Error).message });
    }
  },
}));
