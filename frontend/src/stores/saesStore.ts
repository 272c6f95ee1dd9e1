/**
 * The SAE catalog as the SAEs panel sees it: server-side filters, search, sort and pages.
 *
 * The state keeps the UI's query apart from the server's answer (the page and its load status); components read
 * them through the selector hooks below and act through `saeActions`, which lives outside the state.
 */
import { create } from "zustand";
import { useShallow } from "zustand/react/shallow";
import { api, type SAEQuery } from "../api/client";
import type { Facets, SAE } from "../api/types";

export const PAGE_SIZE = 50;

/** The page of SAEs the server answered for the current query. */
interface SAEPageData {
  items: SAE[];
  total: number;
  facets: Facets;
}

interface SAEsState extends SAEPageData {
  /** The filters, search, sort and page the UI asks for. */
  query: SAEQuery;
  loading: boolean;
  /** True once the first load finished (worked or failed). */
  loaded: boolean;
  error: string | null;
}

const EMPTY_FACETS: Facets = { models: [], layers: [], sources: [], architectures: [] };
let generation = 0;

export const useSAEsStore = create<SAEsState>(() => ({
  query: { sort: "created_at", order: "desc", page: 1, page_size: PAGE_SIZE },
  items: [],
  total: 0,
  facets: EMPTY_FACETS,
  loading: false,
  loaded: false,
  error: null,
}));

const { getState: get, setState: set } = useSAEsStore;

async function load(): Promise<void> {
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
}

/** What components can do with the catalog; stable functions. */
export const saeActions = {
  /** Merge `patch` into the query (back to page 1 unless the page is set) and reload. */
  setQuery: async (patch: Partial<SAEQuery>): Promise<void> => {
    set({ query: { ...get().query, page: 1, ...patch } });
    await load();
  },
  load,
  remove: async (id: string): Promise<void> => {
    await api.deleteSAE(id);
    await load();
  },
  /** Replace one SAE in the list (after a job changes it). */
  replace: (sae: SAE): void => set({ items: get().items.map((s) => (s.id === sae.id ? sae : s)) }),
};

/** The query the panel shows and asks for. */
export const useSAEQuery = (): SAEQuery => useSAEsStore((s) => s.query);

/** The current page of SAEs with its facets. */
export const useSAEPage = (): SAEPageData =>
  useSAEsStore(useShallow((s) => ({ items: s.items, total: s.total, facets: s.facets })));

/** Whether the page is loading, has loaded once, and why the last load failed. */
export const useSAEsStatus = (): { loading: boolean; loaded: boolean; error: string | null } =>
  useSAEsStore(useShallow((s) => ({ loading: s.loading, loaded: s.loaded, error: s.error })));
