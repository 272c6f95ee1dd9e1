/**
 * The Train page: the form (the run's model, data and budget, and one row per SAE trained from the same forward
 * pass), the run being watched, the list of training runs, and each training's curves as the server answered them.
 *
 * Components read the state through the selector hooks below and act through `trainingActions`, which lives
 * outside the state, so typing in one field re-renders only what shows that field.
 */
import { create } from "zustand";
import { useShallow } from "zustand/react/shallow";
import { request } from "../api/client";
import type { Job, TrainRequest, Training, TrainingCurvesData, TrainingStepPoint } from "../api/types";

export const ARCHITECTURES = ["standard", "topk", "batchtopk", "jumprelu", "matryoshka_batchtopk"] as const;
export type Architecture = (typeof ARCHITECTURES)[number];

/** Architectures whose sparsity is a number of active latents `k` (the others use a sparsity coefficient). */
export const USES_K: readonly Architecture[] = ["topk", "batchtopk", "matryoshka_batchtopk"];

/** One SAE of a run, as typed (numbers as text: blank means "the default"). */
export interface SAEForm {
  hook: string;
  /** A transcoder's output hook (blank: an SAE reconstructing its input). */
  hookOut: string;
  architecture: Architecture;
  widthMode: "expansion" | "d_sae";
  width: string;
  k: string;
  /** The sparsity coefficient: L1 for the standard SAE, L0 for JumpReLU. */
  l1: string;
  /** A Matryoshka SAE's nested widths, comma-separated (blank: the default). */
  widths: string;
  lr: string;
  name: string;
}

/** What every SAE of a run shares: the model's forward pass, its data and the token budget. */
export interface RunForm {
  model: string;
  dataset: string;
  nTokens: string;
  batchTokens: string;
  contextSize: string;
  device: string;
  /** Passes over the dataset (blank: one); a small dataset can feed a longer run. */
  epochs: string;
  seed: string;
}

export const DEFAULT_RUN: RunForm = {
  model: "", dataset: "builtin:corpus", nTokens: "1000000", batchTokens: "", contextSize: "", device: "", epochs: "",
  seed: "",
};

export const DEFAULT_SAE: SAEForm = {
  hook: "", hookOut: "", architecture: "topk", widthMode: "expansion", width: "8", k: "32", l1: "", widths: "", lr: "",
  name: "",
};

/** The run being watched on the Train page: its job and the trainings it writes (one per SAE). */
export interface WatchedRun {
  jobId: string;
  trainingIds: string[];
}

interface TrainingState {
  run: RunForm;
  saes: SAEForm[];
  starting: boolean;
  startError: string | null;
  /** What the last start did, e.g. that it resumed an interrupted run of the same command. */
  notice: string | null;
  trainings: Training[];
  listError: string | null;
  watched: WatchedRun | null;
  curves: Record<string, TrainingCurvesData>;
  curvesError: Record<string, string>;
}

const initial = (): TrainingState => ({
  run: { ...DEFAULT_RUN },
  saes: [{ ...DEFAULT_SAE }],
  starting: false,
  startError: null,
  notice: null,
  trainings: [],
  listError: null,
  watched: null,
  curves: {},
  curvesError: {},
});

export const useTrainingStore = create<TrainingState>(initial);

const { getState: get, setState: set } = useTrainingStore;

type SAEFields = Pick<TrainRequest, "hook" | "hook_out" | "architecture" | "d_sae" | "expansion" | "k"
  | "l1_coefficient" | "l0_coefficient" | "matryoshka_widths" | "lr" | "name">;

/** The object without its null fields (the server fills in its defaults for the fields left out). */
function withoutNulls<T extends object>(value: T): T {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== null && v !== undefined)) as T;
}

/** A number typed in field `label`: null when blank; throws a message naming the field when it is not one. */
function parseNumber(text: string, label: string, { integer = false, positive = true } = {}): number | null {
  const trimmed = text.trim().replace(/[_,]/g, "");
  if (trimmed === "") return null;
  const value = Number(trimmed);
  if (!Number.isFinite(value) || (integer && !Number.isInteger(value)) || (positive && value <= 0)) {
    throw new Error(`${label} must be a ${positive ? "positive " : ""}${integer ? "whole number" : "number"} ` +
      `(got "${text}"); leave it blank for the default`);
  }
  return value;
}

function saeFields(sae: SAEForm, n: number): SAEFields {
  const where = n === 0 ? "" : ` (SAE ${n + 1})`;
  if (!sae.hook.trim()) throw new Error(`Hook${where} is required, e.g. blocks.6.hook_resid_post`);
  const width = parseNumber(sae.width, sae.widthMode === "d_sae" ? `d_sae${where}` : `Expansion${where}`,
    { integer: sae.widthMode === "d_sae" });
  const usesK = USES_K.includes(sae.architecture);
  const sparsity = usesK ? null : parseNumber(sae.l1, `Sparsity coefficient${where}`);
  const widths = sae.architecture === "matryoshka_batchtopk" && sae.widths.trim()
    ? sae.widths.split(",").map((w) => parseNumber(w, `Matryoshka widths${where}`, { integer: true }) ?? NaN)
    : null;
  if (widths?.some((w) => Number.isNaN(w))) throw new Error(`Matryoshka widths${where} must be whole numbers separated by commas`);
  return withoutNulls({
    hook: sae.hook.trim(),
    hook_out: sae.hookOut.trim() || null,
    architecture: sae.architecture,
    d_sae: sae.widthMode === "d_sae" ? width : null,
    expansion: sae.widthMode === "expansion" ? width : null,
    k: usesK ? parseNumber(sae.k, `k${where}`, { integer: true }) : null,
    l1_coefficient: sae.architecture === "standard" ? sparsity : null,
    l0_coefficient: sae.architecture === "jumprelu" ? sparsity : null,
    matryoshka_widths: widths,
    lr: parseNumber(sae.lr, `Learning rate${where}`),
    name: sae.name.trim() || null,
  });
}

/** The request body of the form; throws a message naming the first field that is wrong. */
export function buildTrainRequest(run: RunForm, saes: SAEForm[]): TrainRequest {
  if (!run.model.trim()) throw new Error("Model is required: an HF model id or a local folder");
  if (!run.dataset.trim()) throw new Error("Dataset is required, e.g. builtin:corpus or an HF dataset id");
  const nTokens = parseNumber(run.nTokens, "Training tokens", { integer: true });
  if (nTokens === null) throw new Error("Training tokens is required, e.g. 1000000");
  const [first, ...rest] = saes.map(saeFields);
  return withoutNulls({
    model: run.model.trim(),
    dataset: run.dataset.trim(),
    n_tokens: nTokens,
    batch_tokens: parseNumber(run.batchTokens, "Batch tokens", { integer: true }),
    context_size: parseNumber(run.contextSize, "Context size", { integer: true }) ?? undefined,
    device: run.device.trim() || null,
    epochs: parseNumber(run.epochs, "Epochs", { integer: true }) ?? undefined,
    seed: parseNumber(run.seed, "Seed", { integer: true, positive: false }) ?? undefined,
    ...first,
    extra_saes: rest,
  });
}

/** Live numbers of a running training, from its curves (and the job for what the curves cannot say). */
export interface LiveMetrics {
  tokens: number;
  tokensPerSecond: number | null;
  etaSeconds: number | null;
  l0: number | null;
  explainedVariance: number | null;
  deadFraction: number | null;
  loss: number | null;
}

/** Tokens per second over the last `window` step rows (falls back to the whole run's average). */
function rate(steps: TrainingStepPoint[], window = 20): number | null {
  const last = steps[steps.length - 1];
  const first = steps[Math.max(0, steps.length - 1 - window)];
  if (!last || last.elapsed_s === null || last.elapsed_s === undefined) return null;
  if (first !== last && first.elapsed_s !== null && first.elapsed_s !== undefined && last.elapsed_s > first.elapsed_s) {
    return (last.tokens - first.tokens) / (last.elapsed_s - first.elapsed_s);
  }
  return last.elapsed_s > 0 ? last.tokens / last.elapsed_s : null;
}

export function liveMetrics(curves: TrainingCurvesData | undefined, totalTokens: number | null,
  job?: Pick<Job, "eta_seconds" | "status"> | null): LiveMetrics | null {
  const steps = curves?.steps ?? [];
  const last = steps[steps.length - 1];
  if (!last) return null;
  const tokensPerSecond = rate(steps);
  const left = totalTokens !== null ? Math.max(0, totalTokens - last.tokens) : null;
  const etaSeconds = job?.status === "running"
    ? (left !== null && tokensPerSecond ? left / tokensPerSecond : job.eta_seconds ?? null)
    : null;
  return {
    tokens: last.tokens,
    tokensPerSecond,
    etaSeconds,
    l0: last.l0 ?? null,
    explainedVariance: last.explained_variance ?? null,
    deadFraction: last.dead_fraction ?? null,
    loss: last.loss ?? null,
  };
}

let curvesGeneration: Record<string, number> = {};

/** What components can do on the Train page; stable functions. */
export const trainingActions = {
  setRun: (patch: Partial<RunForm>): void => set({ run: { ...get().run, ...patch }, startError: null }),
  setSAE: (index: number, patch: Partial<SAEForm>): void =>
    set({ saes: get().saes.map((s, i) => (i === index ? { ...s, ...patch } : s)), startError: null }),
  /** Another SAE trained from the same forward pass: a copy of the last row, without its name. */
  addSAE: (): void => {
    const saes = get().saes;
    set({ saes: [...saes, { ...saes[saes.length - 1], name: "" }] });
  },
  removeSAE: (index: number): void => {
    if (get().saes.length > 1) set({ saes: get().saes.filter((_, i) => i !== index) });
  },
  /** Start the run (or resume the same command's interrupted run) and watch it. */
  start: async (): Promise<WatchedRun | null> => {
    let body: TrainRequest;
    try {
      body = buildTrainRequest(get().run, get().saes);
    } catch (e) {
      set({ startError: (e as Error).message });
      return null;
    }
    set({ starting: true, startError: null, notice: null });
    try {
      const started = await request("startTraining", { json: body });
      const watched = { jobId: started.job_id, trainingIds: started.training_ids };
      set({
        starting: false,
        watched,
        notice: started.resumed
          ? `Resumed the earlier run of these same settings from its checkpoint at ${(started.tokens_done ?? 0).toLocaleString("en-US")} tokens.`
          : null,
      });
      void trainingActions.loadTrainings();
      return watched;
    } catch (e) {
      set({ starting: false, startError: (e as Error).message });
      return null;
    }
  },
  loadTrainings: async (): Promise<void> => {
    try {
      const page = await request("listTrainings");
      set({ trainings: page.items, listError: null });
    } catch (e) {
      set({ listError: (e as Error).message });
    }
  },
  /** Watch a run from the list: every training its job writes. */
  watch: (training: Training): void => {
    if (!training.job_id) {
      set({ watched: null });
      return;
    }
    const siblings = get().trainings.filter((t) => t.job_id === training.job_id).map((t) => t.id);
    set({ watched: { jobId: training.job_id, trainingIds: siblings.length > 0 ? siblings : [training.id] }, notice: null });
  },
  loadCurves: async (trainingId: string): Promise<void> => {
    const mine = (curvesGeneration[trainingId] ?? 0) + 1;
    curvesGeneration = { ...curvesGeneration, [trainingId]: mine };
    try {
      const curves = await request("trainingCurves", { params: { training_id: trainingId } });
      if (curvesGeneration[trainingId] !== mine) return;
      const { [trainingId]: _, ...errors } = get().curvesError;
      set({ curves: { ...get().curves, [trainingId]: curves }, curvesError: errors });
    } catch (e) {
      if (curvesGeneration[trainingId] === mine) {
        set({ curvesError: { ...get().curvesError, [trainingId]: (e as Error).message } });
      }
    }
  },
  reset: (): void => set(initial()),
};

export const useRunForm = (): RunForm => useTrainingStore((s) => s.run);
export const useSAECount = (): number => useTrainingStore((s) => s.saes.length);
export const useSAEForm = (index: number): SAEForm | undefined => useTrainingStore((s) => s.saes[index]);
export const useStarting = (): boolean => useTrainingStore((s) => s.starting);
export const useStartError = (): string | null => useTrainingStore((s) => s.startError);
export const useStartNotice = (): string | null => useTrainingStore((s) => s.notice);
export const useTrainings = (): Training[] => useTrainingStore((s) => s.trainings);
export const useTrainingsError = (): string | null => useTrainingStore((s) => s.listError);
export const useWatchedRun = (): WatchedRun | null => useTrainingStore((s) => s.watched);
export const useTraining = (trainingId: string | null | undefined): Training | undefined =>
  useTrainingStore((s) => (trainingId ? s.trainings.find((t) => t.id === trainingId) : undefined));
export const useTrainingsOfJob = (jobId: string | null | undefined): Training[] =>
  useTrainingStore(useShallow((s) => (jobId ? s.trainings.filter((t) => t.job_id === jobId) : [])));
export const useCurves = (trainingId: string | null | undefined): TrainingCurvesData | undefined =>
  useTrainingStore((s) => (trainingId ? s.curves[trainingId] : undefined));
export const useCurvesError = (trainingId: string | null | undefined): string | null =>
  useTrainingStore((s) => (trainingId ? s.curvesError[trainingId] ?? null : null));
