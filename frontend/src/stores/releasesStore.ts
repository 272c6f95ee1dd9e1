/**
 * SAELens release search for the download dialog: type to search releases, pick one, pick one of its SAEs.
 *
 * The state holds the search text and its answer, the picked release (as the registry lists it: ids, L0s,
 * Neuronpedia ids; no Hub request) and the picked SAE id; components read it through the selector hooks and act
 * through `releaseActions`. Answers to superseded searches or picks are dropped (fast typing).
 */
import { create } from "zustand";
import { useShallow } from "zustand/react/shallow";
import { api } from "../api/client";
import type { RegistrySAE, Release, ReleaseSummary } from "../api/types";

/** How many releases one search shows. */
export const SEARCH_LIMIT = 20;
/** How many SAEs of a release the picker lists at once (Gemma Scope 2 releases have hundreds). */
export const SAE_LIST_LIMIT = 200;

interface ReleasesState {
  query: string;
  results: ReleaseSummary[];
  total: number;
  searching: boolean;
  searchError: string | null;
  release: Release | null;
  loadingRelease: boolean;
  releaseError: string | null;
  /** Text that narrows the picked release's SAE list (id or Neuronpedia id). */
  saeFilter: string;
  saeId: string;
}

const INITIAL: ReleasesState = {
  query: "", results: [], total: 0, searching: false, searchError: null,
  release: null, loadingRelease: false, releaseError: null, saeFilter: "", saeId: "",
};

export const useReleasesStore = create<ReleasesState>(() => ({ ...INITIAL }));

const { getState: get, setState: set } = useReleasesStore;
let searchGeneration = 0;
let pickGeneration = 0;

/** The release's SAEs whose id or Neuronpedia id contains every word of `filter` (case-insensitive). */
export function visibleSAEs(release: Release | null, filter: string, limit = SAE_LIST_LIMIT): RegistrySAE[] {
  if (!release) return [];
  const words = filter.toLowerCase().split(/\s+/).filter(Boolean);
  const hits = release.saes.filter((s) => {
    const text = `${s.id} ${s.neuronpedia ?? ""}`.toLowerCase();
    return words.every((w) => text.includes(w));
  });
  return hits.slice(0, limit);
}

/** A one-line label for an SAE in the picker: id, L0, Neuronpedia id. */
export function saeLabel(sae: RegistrySAE): string {
  const parts = [sae.id];
  if (sae.l0 !== null && sae.l0 !== undefined) parts.push(`L0 ${sae.l0}`);
  if (sae.neuronpedia) parts.push(sae.neuronpedia);
  return parts.join(" — ");
}

async function search(query: string): Promise<void> {
  const mine = ++searchGeneration;
  set({ query });
  if (!query.trim()) {
    set({ results: [], total: 0, searching: false, searchError: null });
    return;
  }
  set({ searching: true });
  try {
    const found = await api.searchReleases(query.trim(), SEARCH_LIMIT);
    if (mine !== searchGeneration) return;
    set({ results: found.items, total: found.total, searching: false, searchError: null });
  } catch (e) {
    if (mine !== searchGeneration) return;
    set({ results: [], total: 0, searching: false, searchError: (e as Error).message });
  }
}

async function pick(name: string): Promise<void> {
  const mine = ++pickGeneration;
  set({ loadingRelease: true, releaseError: null, release: null, saeId: "", saeFilter: "" });
  try {
    const release = await api.releaseInfo(name);
    if (mine !== pickGeneration) return;
    set({ release, loadingRelease: false, saeId: release.saes[0]?.id ?? "" });
  } catch (e) {
    if (mine !== pickGeneration) return;
    set({ loadingRelease: false, releaseError: (e as Error).message });
  }
}

/** What components can do with the release search; stable functions. */
export const releaseActions = {
  search,
  pick,
  pickSAE: (saeId: string): void => set({ saeId }),
  /** Narrow the SAE list; the picked SAE moves to the first visible one when the filter hides it. */
  filterSAEs: (saeFilter: string): void => {
    const { release, saeId } = get();
    const visible = visibleSAEs(release, saeFilter);
    set({ saeFilter, saeId: visible.some((s) => s.id === saeId) ? saeId : (visible[0]?.id ?? "") });
  },
  reset: (): void => {
    searchGeneration++;
    pickGeneration++;
    set({ ...INITIAL });
  },
};

/** The search text and its answer. */
export const useReleaseSearch = () =>
  useReleasesStore(useShallow((s) => ({ query: s.query, results: s.results, total: s.total,
    searching: s.searching, error: s.searchError })));

/** The picked release, its load status, the SAE filter and the picked SAE. */
export const usePickedRelease = () =>
  useReleasesStore(useShallow((s) => ({ release: s.release, loading: s.loadingRelease, error: s.releaseError,
    saeFilter: s.saeFilter, saeId: s.saeId })));
