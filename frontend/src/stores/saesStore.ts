/** The SAE catalog as the SAEs panel sees it: server-side filters, search, sort and pages. */
import { create } from "zustand";
import { api, type SAEQuery } from "../api/client";
import type { Facets, SAE } from "../api/types";

export const PAGE_SIZE = 50;

interface SAEsState {
  query: SAEQuery;
  items: SAE[];
  total: number;
  facets: Facets;
  loading: boolean;
  loaded: boolean;
  error: string | null;
  /** Merge `patch` into the query (back to page 1 unless the page is set) and reload. */
  setQuery: (patch: Partial<SAEQuery>) => Promise<void>;
  load: () => Promise<void>;
  remove: (id: string) => Promise<void>;
  /** Replace one SAE in the list (after a job changes it). */
  replace: (sae: SAE) => void;
}

const EMPTY_FACETS: Facets = { models: [], layers: [], sources: [], architectures: [] };
let generation = 0;

export const useSAEsStore = create<SAEsState>((set, get) => ({
  query: { sort: "created_at", order: "desc", page: 1, page_size: PAGE_SIZE },
  items: [],
  total: 0,
  facets: EMPTY_FACETS,
  loading: false,
  loaded: false,
  error: null,

  setQuery: async (patch) => {
    set({ query: { ...get().query, page: 1, ...patch } });
    await get().load();
  },

  load: async () => {
    const mine = ++generation; // ignore answers to superseded queries (fast typing in search)
    set({ loading: true });
    try {
      const page = await api.listSAEs(get().query);
      if (mine !== generation) return;
      set({ items: page.items, total: page.total, facets: page.facets ?? EMPTY_FACETS, loading: false,
        loaded: true, error: null });
    } catch (e) {
      if (mine !== generation) return;
      set({ loading: false, loaded: true, error: (e as Error).message });
    }
  },

  remove: async (id) => {
    await api.deleteSAE(id);
    await get().load();
  },

  replace: (sae) => set({ items: get().items.map((s) => (s.id === sae.id ? sae : s)) }),
}));
