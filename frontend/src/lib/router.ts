/** A minimal history-API router: the current path as React state, and `navigate`. */
import { useSyncExternalStore } from "react";

const listeners = new Set<() => void>();

function subscribe(cb: () => void): () => void {
  listeners.add(cb);
  window.addEventListener("popstate", cb);
  return () => {
    listeners.delete(cb);
    window.removeEventListener("popstate", cb);
  };
}

/** Go to `path` without reloading the page. */
export function navigate(path: string): void {
  if (path === window.location.pathname + window.location.search) return;
  window.history.pushState(null, "", path);
  for (const cb of listeners) cb();
}

export function usePath(): string {
  return useSyncExternalStore(subscribe, () => window.location.pathname);
}

export type Route =
  | { name: "saes" }
  | { name: "sae"; saeId: string }
  | { name: "feature"; saeId: string; index: number }
  | { name: "steer"; saeId: string }
  | { name: "inference"; saeId: string }
  | { name: "jobs" }
  | { name: "exports" }
  | { name: "train" }
  | { name: "search" }
  | { name: "notFound" };

/** Parse a pathname into a route. */
export function matchRoute(path: string): Route {
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  if (parts.length === 0 || (parts.length === 1 && parts[0] === "saes")) return { name: "saes" };
  if (parts[0] === "jobs" && parts.length === 1) return { name: "jobs" };
  if (parts[0] === "exports" && parts.length === 1) return { name: "exports" };
  if (parts[0] === "train" && parts.length === 1) return { name: "train" };
  if (parts[0] === "search" && parts.length === 1) return { name: "search" };
  if (parts[0] === "saes" && parts.length === 2) return { name: "sae", saeId: parts[1] };
  if (parts[0] === "saes" && parts.length === 3 && parts[2] === "steer") return { name: "steer", saeId: parts[1] };
  if (parts[0] === "saes" && parts.length === 3 && parts[2] === "inference") return { name: "inference", saeId: parts[1] };
  if (parts[0] === "saes" && parts.length === 4 && parts[2] === "features" && /^\d+$/.test(parts[3])) {
    return { name: "feature", saeId: parts[1], index: Number(parts[3]) };
  }
  return { name: "notFound" };
}
