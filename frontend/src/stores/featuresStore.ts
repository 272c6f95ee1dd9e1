/** Features of one SAE: the browser's page of rows and cached per-feature dashboards. */
import { create } from "zustand";
import { api, type FeatureQuery } from "../api/client";
import type { Dashboard, FeatureRow } from "../api/types";

export const FEATURE_PAGE_SIZE = 50;

interface FeaturesState {
  saeId: string | null;
  query: FeatureQuery;
  items: FeatureRow[];
  total: number;
  loading: boolean;
  error: string | null;
  dashboards: Record<string, Dashboard>;
  dashboardErrors: Record<string, string>;
  open: (saeId: string) => Promise<void>;
  setQuery: (patch: Partial<FeatureQuery>) => Promise<void>;
  load: () => Promise<void>;
  loadDashboard: (saeId: string, index: number) => Promise<void>;
  saveLabel: (saeId: string, index: number, label: string) => Promise<void>;
}

const key = (saeId: string, index: number) => `${saeId}/${index}`;
let generation = 0;

export const useFeaturesStore = create<FeaturesState>((set, get) => ({
  saeId: null,
  query: { sort: "frequency", order: "desc", page: 1, page_size: FEATURE_PAGE_SIZE },
  items: [],
  total: 0,
  loading: false,
  error: null,
  dashboards: {},
  dashboardErrors: {},

  open: async (saeId) => {
    if (get().saeId !== saeId) set({ saeId, items: [], total: 0, query: { ...get().query, page: 1 } });
    await get().load();
  },

  setQuery: async (patch) => {
    set({ query: { ...get().query, page: 1, ...patch } });
    await get().load();
  },

  load: async () => {
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
  },

  loadDashboard: async (saeId, index) => {
    try {
      const dashboard = await api.dashboard(saeId, index);
      set({ dashboards: { ...get().dashboards, [key(saeId, index)]: dashboard } });
    } catch (e) {
      set({ dashboardErrors: { ...get().dashboardErrors, [key(saeId, index)]: (e as Error).message } });
    }
  },

  saveLabel: async (saeId, index, label) => {
    await api.putLabel(saeId, index, label);
    const k = key(saeId, index);
    const current = get().dashboards[k];
    if (current) set({ dashboards: { ...get().dashboards, [k]: { ...current, label } } });
    set({ items: get().items.map((f) => (f.feature_index === index ? { ...f, label } : f)) });
  },
}));

export const dashboardKey = key;
