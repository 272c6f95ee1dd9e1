/**
 * Live activations: the text typed into a feature's Test box or the SAE's "Which features fire" view, the
 * server's answer, and the model server's state while a model loads.
 *
 * Each box is keyed (`testKey(saeId, index)` for a feature's Test box, `textKey(saeId)` for the SAE view), so
 * moving between features keeps what was typed. Components read through the selector hooks and act through
 * `inferenceActions`; an answer to a superseded run of the same box is dropped.
 */
import { create } from "zustand";
import { useShallow } from "zustand/react/shallow";
import { request } from "../api/client";
import type { LiveActivations, ResidentInfo } from "../api/types";

/** How often the model server is polled while a run waits (a model may be loading). */
export const LOADING_POLL_MS = 1000;

export interface InferenceBox {
  text: string;
  result: LiveActivations | null;
  running: boolean;
  error: string | null;
  /** The token whose features the SAE view lists (clicked or hovered). */
  selected: number | null;
}

interface InferenceState {
  boxes: Record<string, InferenceBox>;
  /** Models the server is loading while some run waits (empty otherwise). */
  loading: ResidentInfo[];
}

const EMPTY: InferenceBox = { text: "", result: null, running: false, error: null, selected: null };

export const testKey = (saeId: string, index: number): string => `${saeId}/feature/${index}`;
export const textKey = (saeId: string): string => `${saeId}/text`;

export const useInferenceStore = create<InferenceState>(() => ({ boxes: {}, loading: [] }));

const { getState: get, setState: set } = useInferenceStore;
const generations = new Map<string, number>();
let pollTimer: ReturnType<typeof setInterval> | null = null;

function patch(key: string, change: Partial<InferenceBox>): void {
  const boxes = get().boxes;
  set({ boxes: { ...boxes, [key]: { ...(boxes[key] ?? EMPTY), ...change } } });
}

function anyRunning(): boolean {
  return Object.values(get().boxes).some((b) => b.running);
}

async function pollLoading(): Promise<void> {
  try {
    const listing = await request("loadedModels");
    if (anyRunning()) set({ loading: listing.items.filter((i) => i.kind === "model" && i.state === "loading") });
  } catch {
    /* the run itself reports errors */
  }
}

function startPolling(): void {
  if (pollTimer === null) pollTimer = setInterval(() => void pollLoading(), LOADING_POLL_MS);
}

function stopPollingIfIdle(): void {
  if (!anyRunning() && pollTimer !== null) {
    clearInterval(pollTimer);
    pollTimer = null;
    set({ loading: [] });
  }
}

/** What components can do with live activations; stable functions. */
export const inferenceActions = {
  setText: (key: string, text: string): void => patch(key, { text }),
  select: (key: string, selected: number | null): void => patch(key, { selected }),
  /** Run the SAE on the box's text; `features` are traced at every token (a feature's Test box). */
  run: async (key: string, saeId: string, features?: number[], topK = 10): Promise<void> => {
    const text = get().boxes[key]?.text ?? "";
    if (!text.trim()) {
      patch(key, { error: "Type some text first.", result: null });
      return;
    }
    const mine = (generations.get(key) ?? 0) + 1;
    generations.set(key, mine);
    patch(key, { running: true, error: null });
    startPolling();
    try {
      const result = await request("liveActivations", {
        params: { sae_id: saeId },
        json: { text, features: features ?? null, top_k: topK },
      });
      if (generations.get(key) === mine) patch(key, { result, running: false, selected: null });
    } catch (e) {
      if (generations.get(key) === mine) patch(key, { running: false, error: (e as Error).message, result: null });
    } finally {
      stopPollingIfIdle();
    }
  },
  reset: (): void => {
    generations.clear();
    if (pollTimer !== null) clearInterval(pollTimer);
    pollTimer = null;
    set({ boxes: {}, loading: [] });
  },
};

/** One box's state (a stable empty box before anything was typed). */
export function useInferenceBox(key: string): InferenceBox {
  return useInferenceStore(useShallow((s) => s.boxes[key] ?? EMPTY));
}

/** Models the server is loading while a run waits. */
export function useLoadingModels(): ResidentInfo[] {
  return useInferenceStore((s) => s.loading);
}
