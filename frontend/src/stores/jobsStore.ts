/** Background jobs: the list (read from GET /jobs, so it survives a reload) and live updates. */
import { create } from "zustand";
import { api } from "../api/client";
import type { Job } from "../api/types";
import { isFinished, watchJob } from "../api/watchJob";

interface JobsState {
  jobs: Record<string, Job>;
  order: string[];
  error: string | null;
  /** Load recent jobs and start watching the ones still active. */
  refresh: () => Promise<void>;
  /** Follow one job live (idempotent); `onFinish` runs once when it completes, fails or is cancelled. */
  watch: (jobId: string, onFinish?: (job: Job) => void) => void;
  upsert: (job: Job) => void;
  cancel: (jobId: string) => Promise<void>;
  pause: (jobId: string) => Promise<void>;
  resume: (jobId: string) => Promise<void>;
}

const watchers = new Map<string, () => void>();
const finishCallbacks = new Map<string, ((job: Job) => void)[]>();

export const useJobsStore = create<JobsState>((set, get) => ({
  jobs: {},
  order: [],
  error: null,

  refresh: async () => {
    try {
      const { items } = await api.listJobs({ limit: 100 });
      const jobs = { ...get().jobs };
      for (const job of items) jobs[job.id] = job;
      set({ jobs, order: items.map((j) => j.id), error: null });
      for (const job of items) if (!isFinished(job) && job.status !== "paused") get().watch(job.id);
    } catch (e) {
      set({ error: (e as Error).message });
    }
  },

  upsert: (job) => {
    const { jobs, order } = get();
    set({ jobs: { ...jobs, [job.id]: job }, order: order.includes(job.id) ? order : [job.id, ...order] });
    if (isFinished(job) || job.status === "paused") {
      watchers.get(job.id)?.();
      watchers.delete(job.id);
      if (isFinished(job)) {
        const callbacks = finishCallbacks.get(job.id) ?? [];
        finishCallbacks.delete(job.id);
        for (const cb of callbacks) cb(job);
      }
    }
  },

  watch: (jobId, onFinish) => {
    const known = get().jobs[jobId];
    if (onFinish) {
      if (known && isFinished(known)) {
        onFinish(known);
        return;
      }
      finishCallbacks.set(jobId, [...(finishCallbacks.get(jobId) ?? []), onFinish]);
    }
    if (watchers.has(jobId) || (known && isFinished(known))) return;
    watchers.set(jobId, () => undefined);
    const stop = watchJob(jobId, (job) => get().upsert(job));
    if (watchers.has(jobId)) watchers.set(jobId, stop);
    else stop();
  },

  cancel: async (jobId) => get().upsert(await api.cancelJob(jobId)),
  pause: async (jobId) => get().upsert(await api.pauseJob(jobId)),
  resume: async (jobId) => {
    get().upsert(await api.resumeJob(jobId));
    get().watch(jobId);
  },
}));
