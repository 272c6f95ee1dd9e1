/**
 * Features of one SAE: the browser's page of rows and cached per-feature dashboards.
 *
 * The state keeps the browser's query (UI state) apart from what the server answered (the page of rows and the
 * dashboards by feature); components read them through the selector hooks below and act through
 * `featureActions`, which lives outside the state.
 */
import { create } from "zustand";
import { useShallow } from "zustand/react/shallow";
import { api, type FeatureQuery } from "../api/client";
import type { FeatureDashboardView, FeatureSummary } from "../api/types";

export const FEATURE_PAGE_SIZE = 50;

/** The browser's page of feature rows and its load status. */
interface FeaturePageData {
  items: FeatureSummary[];
  total: number;
  loading: boolean;
  error: string | null;
}

interface FeaturesState extends FeaturePageData {
  /** The SAE the browser shows. */
  saeId: string | null;
  query: FeatureQuery;
  /** Dashboards by `dashboardKey(saeId, index)`. */
  dashboards: Record<string, FeatureDashboardView>;
  dashboardErrors: Record<string, string>;
}

/** The key of one feature's dashboard in the cache. */
export const dashboardKey = (saeId: string, index: number): string => `${saeId}/${index}`;
let generation = 0;

export const useFeaturesStore = create<FeaturesState>(() => ({
  saeId: null,
  query: { sort: "frequency", order: "desc", page: 1, page_size: FEATURE_PAGE_SIZE },
  items: [],
  total: 0,
  loading: false,
  error: null,
  dashboards: {},
  dashboardErrors: {},
}));

const { getState: get, setState: set } = useFeaturesStore;

async function load(): Promise<void> {
  const saeId = get().saeId;
  if (!saeId) return;
  const mine = ++generation;
  set({ loading: true });
  try {
    const page = await api.listFeatures(saeId, get().query);
    if (mine !== generation) return;
    set({ items: page.items, total: page.total, loading: false, error: null });
  } catch (e) {
    if (mine !== generation) return;
    set({ items: [], total: 0, loading: false, error: (e as Error).message });
  }
}

/** What components can do with features; stable functions. */
export const featureActions = {
  /** Show `saeId`'s features (back to page 1 when it is another SAE). */
  open: async (saeId: string): Promise<void> => {
    if (get().saeId !== saeId) set({ saeId, items: [], total: 0, query: { ...get().query, page: 1 } });
    await load();
  },
  /** Merge `patch` into the query (back to page 1 unless the page is set) and reload. */
  setQuery: async (patch: Partial<FeatureQuery>): Promise<void> => {
    set({ query: { ...get().query, page: 1, ...patch } });
    await load();
  },
  load,
  loadDashboard: async (saeId: string, index: number): Promise<void> => {
    try {
      const dashboard = await api.dashboard(saeId, index);
      set({ dashboards: { ...get().dashboards, [dashboardKey(saeId, index)]: dashboard } });
    } catch (e) {
      set({ dashboardErrors: { ...get().dashboardErrors, [dashboardKey(saeId, index)]: (e as Error).message } });
    }
  },
  saveLabel: async (saeId: string, index: number, label: string): Promise<void> => {
    await api.putLabel(saeId, index, label);
    const k = dashboardKey(saeId, index);
    const current = get().dashboards[k];
    if (current) set({ dashboards: { ...get().dashboards, [k]: { ...current, label } } });
    set({ items: get().items.map((f) => (f.feature_index === index ? { ...f, label } : f)) });
  },
};

/** The feature browser's query. */
export const useFeatureQuery = (): FeatureQuery => useFeaturesStore((s) => s.query);

/** The feature browser's page of rows with its load status. */
export const useFeaturePage = (): FeaturePageData =>
  useFeaturesStore(useShallow((s) => ({ items: s.items, total: s.total, loading: s.loading, error: s.error })));

/** One feature's dashboard (undefined until loaded) and why loading it failed. */
export const useDashboard = (saeId: string, index: number): { dashboard?: FeatureDashboardView; error?: string } =>
  useFeaturesStore(useShallow((s) => ({
    dashboard: s.dashboards[dashboardKey(saeId, index)],
    error: s.dashboardErrors[dashboardKey(saeId, index)],
  })));
