/** Live job updates: Server-Sent Events, falling back to polling when the stream fails. */
import { api } from "./client";
import type { Job } from "./types";

export const FINISHED_STATUSES = ["completed", "failed", "cancelled"] as const;

export function isFinished(job: Pick<Job, "status">): boolean {
  return (FINISHED_STATUSES as readonly string[]).includes(job.status);
}

/** Nothing runs the job: it finished, or waits to be resumed or cancelled (paused, interrupted). */
export function isSettled(job: Pick<Job, "status">): boolean {
  return isFinished(job) || job.status === "paused" || job.status === "interrupted";
}

/** Call `onUpdate` with each new state of job `jobId` until it finishes; returns a stop function. */
export function watchJob(jobId: string, onUpdate: (job: Job) => void, pollMs = 1000): () => void {
  let stopped = false;
  let source: EventSource | null = null;
  let timer: ReturnType<typeof setTimeout> | null = null;

  const poll = async () => {
    if (stopped) return;
    try {
      const job = await api.getJob(jobId);
      if (stopped) return;
      onUpdate(job);
      if (isSettled(job)) return;
    } catch {
      /* transient: try again */
    }
    timer = setTimeout(poll, pollMs);
  };

  if (typeof EventSource === "undefined") {
    void poll();
  } else {
    source = new EventSource(api.jobEventsUrl(jobId));
    source.onmessage = (ev) => {
      const job = JSON.parse(ev.data) as Job;
      onUpdate(job);
      if (isSettled(job)) {
        source?.close();
        source = null;
      }
    };
    source.onerror = () => {
      // The stream ended or broke: fetch the final state, then poll until finished.
      source?.close();
      source = null;
      void poll();
    };
  }
  return () => {
    stopped = true;
    source?.close();
    if (timer) clearTimeout(timer);
  };
}
