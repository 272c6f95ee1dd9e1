/**
 * The Neuronpedia export flow: configuration, estimate, validation, the running job and its result.
 *
 * The state keeps the person's setup apart from the server's answers and the running export; components read
 * them through the selector hooks below and act through `exportActions`, which lives outside the state.
 */
import { create } from "zustand";
import { useShallow } from "zustand/react/shallow";
import { api } from "../api/client";
import type { ExportConfig, ExportEstimate, ValidationReport } from "../api/types";

/** The fields of the API's ExportConfig that the dialog always shows, so always holds. */
type ShownField = "format" | "selection" | "n_examples" | "logit_k" | "n_bins" | "top_tokens" | "include_explanations"
  | "compression";

/** The dialog's export configuration: the API's ExportConfig with every field it shows filled in. */
export type ExportSettings = ExportConfig & Required<Pick<ExportConfig, ShownField>>;

export const DEFAULT_EXPORT_CONFIG: ExportSettings = {
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
  for (const key of ["model_id", "dataset_id", "source_set", "hf_repo_id"] as const) if (!out[key]) delete out[key];
  return out;
}

export type ExportPhase = "closed" | "configure" | "progress" | "complete";

/** The dialog as the person set it up. */
interface ExportSetup {
  saeId: string | null;
  phase: ExportPhase;
  config: ExportSettings;
  /** Incremental export: the finished export to build on (null: export everything). */
  baseExportId: string | null;
}

/** What the server answered about the setup: the estimate, the checks, and the export it started. */
interface ExportChecks {
  estimate: ExportEstimate | null;
  estimateError: string | null;
  /** The pre-export check of the configuration (the estimate answered), or why it failed. */
  configCheck: { ok: boolean; message: string } | null;
  /** The validation report of the latest (or this job's) export archive. */
  validation: ValidationReport | null;
  validating: boolean;
  error: string | null;
}

/** The export job shown in the progress and completion phases. */
interface ExportRun {
  jobId: string | null;
  exportId: string | null;
}

type ExportState = ExportSetup & ExportChecks & ExportRun;

export const useExportStore = create<ExportState>(() => ({
  saeId: null,
  phase: "closed",
  config: DEFAULT_EXPORT_CONFIG,
  baseExportId: null,
  estimate: null,
  estimateError: null,
  configCheck: null,
  validation: null,
  validating: false,
  error: null,
  jobId: null,
  exportId: null,
}));

const { getState: get, setState: set } = useExportStore;

let estimateGeneration = 0;

async function refreshEstimate(): Promise<void> {
  const { saeId, config } = get();
  if (!saeId) return;
  const mine = ++estimateGeneration; // an estimate takes a moment: ignore answers to superseded configs
  try {
    const estimate = await api.exportEstimate(saeId, configForRequest(config));
    if (mine === estimateGeneration) set({ estimate, estimateError: null });
  } catch (e) {
    if (mine === estimateGeneration) set({ estimate: null, estimateError: (e as Error).message });
  }
}

/** What components can do with the export flow; stable functions. */
export const exportActions = {
  /** Open the configuration dialog for `saeId`. */
  openFor: (saeId: string): void => {
    set({ saeId, phase: "configure", validation: null, configCheck: null, error: null, estimate: null, jobId: null,
      exportId: null, baseExportId: null });
    void refreshEstimate();
  },
  /** Show an existing export job (progress or completion) for `saeId`. */
  showJob: (saeId: string, jobId: string): void =>
    set({ saeId, jobId, phase: "progress", error: null, validation: null }),
  close: (): void => set({ phase: "closed" }),
  setPhase: (phase: ExportPhase): void => set({ phase }),
  setBaseExport: (baseExportId: string | null): void => set({ baseExportId }),
  setConfig: (patch: Partial<ExportSettings>): void => {
    set({ config: { ...get().config, ...patch }, configCheck: null });
    void refreshEstimate();
  },
  refreshEstimate,
  /** Check the configuration; validate the SAE's latest archive (or `exportId`'s) when there is one. */
  validate: async (exportId?: string): Promise<void> => {
    const { saeId, config, phase } = get();
    if (!saeId) return;
    set({ validating: true, error: null });
    if (phase === "configure") {
      try {
        const est = await api.exportEstimate(saeId, configForRequest(config));
        const missing = est.missing.length ? ` Missing data computed during export: ${est.missing.join(", ")}.` : "";
        const problems = est.problems ?? [];
        set({ estimate: est, configCheck: problems.length
          ? { ok: false, message: problems.join(" ") }
          : { ok: true,
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
  /** Start the export as configured. */
  start: async (): Promise<void> => {
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
};

/** Which phase of the flow is shown, for which SAE. */
export const useExportPhase = (): { phase: ExportPhase; saeId: string | null } =>
  useExportStore(useShallow((s) => ({ phase: s.phase, saeId: s.saeId })));

/** The dialog's setup: which SAE, which phase, the configuration and the base export. */
export const useExportSetup = (): ExportSetup =>
  useExportStore(useShallow((s) => ({ saeId: s.saeId, phase: s.phase, config: s.config, baseExportId: s.baseExportId })));

/** The server's estimate and checks of the setup. */
export const useExportChecks = (): ExportChecks =>
  useExportStore(useShallow((s) => ({ estimate: s.estimate, estimateError: s.estimateError,
    configCheck: s.configCheck, validation: s.validation, validating: s.validating, error: s.error })));

/** The export job being shown. */
export const useExportRun = (): ExportRun => useExportStore(useShallow((s) => ({ jobId: s.jobId, exportId: s.exportId })));
