/**
 * Background jobs: the list (read from GET /jobs, so it survives a reload) and live updates.
 *
 * The store holds server data only (the jobs by id and their order); components read it through the selector
 * hooks below, each of which re-renders only when what it returns changes, and call `jobActions`, which lives
 * outside the state so that reading an action never subscribes to anything.
 */
import { create } from "zustand";
import { useShallow } from "zustand/react/shallow";
import { api } from "../api/client";
import type { Job } from "../api/types";
import { isFinished, isSettled, watchJob } from "../api/watchJob";

interface JobsState {
  jobs: Record<string, Job>;
  /** Job ids, newest first. */
  order: string[];
  /** Why the last refresh failed (null when it worked). */
  error: string | null;
}

export const useJobsStore = create<JobsState>(() => ({ jobs: {}, order: [], error: null }));

const watchers = new Map<string, () => void>();
const finishCallbacks = new Map<string, ((job: Job) => void)[]>();
const isLive = (job: Job) => !isSettled(job);

function upsert(job: Job): void {
  const { jobs, order } = useJobsStore.getState();
  useJobsStore.setState({ jobs: { ...jobs, [job.id]: job }, order: order.includes(job.id) ? order : [job.id, ...order] });
  if (isLive(job)) return;
  watchers.get(job.id)?.();
  watchers.delete(job.id);
  if (isFinished(job)) {
    const callbacks = finishCallbacks.get(job.id) ?? [];
    finishCallbacks.delete(job.id);
    for (const cb of callbacks) cb(job);
  }
}

function watch(jobId: string, onFinish?: (job: Job) => void): void {
  const known = useJobsStore.getState().jobs[jobId];
  if (onFinish) {
    if (known && isFinished(known)) {
      onFinish(known);
      return;
    }
    finishCallbacks.set(jobId, [...(finishCallbacks.get(jobId) ?? []), onFinish]);
  }
  if (watchers.has(jobId) || (known && isFinished(known))) return;
  watchers.set(jobId, () => undefined);
  const stop = watchJob(jobId, upsert);
  if (watchers.has(jobId)) watchers.set(jobId, stop);
  else stop();
}

/** What components can do with jobs; stable functions, safe to use in effect dependencies. */
export const jobActions = {
  /** Load recent jobs and start watching the ones still active. */
  refresh: async (): Promise<void> => {
    try {
      const { items } = await api.listJobs({ limit: 100 });
      const jobs = { ...useJobsStore.getState().jobs };
      for (const job of items) jobs[job.id] = job;
      useJobsStore.setState({ jobs, order: items.map((j) => j.id), error: null });
      for (const job of items) if (isLive(job)) watch(job.id);
    } catch (e) {
      useJobsStore.setState({ error: (e as Error).message });
    }
  },
  /** Follow one job live (idempotent); `onFinish` runs once when it completes, fails or is cancelled. */
  watch,
  /** Record a new state of a job (stops watching it once it is finished, paused or interrupted). */
  upsert,
  cancel: async (jobId: string): Promise<void> => upsert(await api.cancelJob(jobId)),
  pause: async (jobId: string): Promise<void> => upsert(await api.pauseJob(jobId)),
  resume: async (jobId: string): Promise<void> => {
    upsert(await api.resumeJob(jobId));
    watch(jobId);
  },
};

/** One job (undefined while unknown or when `jobId` is empty); re-renders on that job's events only. */
export const useJob = (jobId: string | null | undefined): Job | undefined =>
  useJobsStore((s) => (jobId ? s.jobs[jobId] : undefined));

/** Ids of the known jobs, newest first, split into active and finished; re-renders only when a job is added
 * or moves between the two (not on progress events). */
export const useJobIds = (): { active: string[]; finished: string[] } => ({
  active: useJobsStore(useShallow((s) => s.order.filter((id) => s.jobs[id] && !isFinished(s.jobs[id])))),
  finished: useJobsStore(useShallow((s) => s.order.filter((id) => s.jobs[id] && isFinished(s.jobs[id])))),
});

/** The id of the newest active job of `type` for `saeId`, if there is one. */
export const useActiveJobId = (type: string, saeId: string): string | undefined =>
  useJobsStore((s) => s.order.find((id) => {
    const job = s.jobs[id];
    return job !== undefined && job.type === type && job.sae_id === saeId && !isFinished(job);
  }));

/** How many known jobs have not finished. */
export const useActiveJobCount = (): number =>
  useJobsStore((s) => Object.values(s.jobs).filter((j) => !isFinished(j)).length);

/** Why the last refresh of the job list failed (null when it worked). */
export const useJobsError = (): string | null => useJobsStore((s) => s.error);
