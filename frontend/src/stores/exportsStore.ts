/**
 * Every export in the store (GET /exports), newest first, for the exports view: list and delete.
 *
 * The state holds server data only; components read it through the selector hooks below and act through
 * `exportsActions`, which lives outside the state.
 */
import { create } from "zustand";
import { api } from "../api/client";
import type { Export } from "../api/types";

interface ExportsState {
  items: Export[];
  total: number;
  loaded: boolean;
  /** Why the last load failed (null when it worked). */
  error: string | null;
}

export const useExportsStore = create<ExportsState>(() => ({ items: [], total: 0, loaded: false, error: null }));

const { getState: get, setState: set } = useExportsStore;

/** What components can do with exports; stable functions. */
export const exportsActions = {
  refresh: async (): Promise<void> => {
    try {
      const page = await api.listAllExports({ page_size: 200 });
      set({ items: page.items, total: page.total, loaded: true, error: null });
    } catch (e) {
      set({ loaded: true, error: (e as Error).message });
    }
  },
  /** Delete an export (archive, work folder, record); the error is thrown for the caller to show. */
  remove: async (exportId: string): Promise<void> => {
    await api.deleteExport(exportId);
    const items = get().items.filter((e) => e.id !== exportId);
    set({ items, total: Math.max(0, get().total - 1) });
  },
};

export const useExports = (): Export[] => useExportsStore((s) => s.items);
export const useExportsTotal = (): number => useExportsStore((s) => s.total);
export const useExportsLoaded = (): boolean => useExportsStore((s) => s.loaded);
export const useExportsError = (): string | null => useExportsStore((s) => s.error);
