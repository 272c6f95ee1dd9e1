/** A scripted `fetch` for component tests: routes "METHOD /api/v1/path" to JSON answers and records calls. */
import { vi } from "vitest";

type Answer = { status?: number; body?: unknown } | ((url: URL, init: RequestInit) => { status?: number; body?: unknown });

export interface FakeApi {
  calls: { method: string; path: string; search: string; body: unknown }[];
  on: (route: string, answer: Answer) => void;
}

/** Install a fake fetch; unknown routes answer 404 in the API's error shape. */
export function installFakeApi(): FakeApi {
  const routes = new Map<string, Answer>();
  const api: FakeApi = { calls: [], on: (route, answer) => void routes.set(route, answer) };
  vi.stubGlobal("fetch", vi.fn(async (input: string, init: RequestInit = {}) => {
    const url = new URL(input, "http://localhost");
    const method = (init.method ?? "GET").toUpperCase();
    const body = typeof init.body === "string" ? JSON.parse(init.body) : init.body ?? null;
    api.calls.push({ method, path: url.pathname, search: url.search, body });
    const route = [...routes.keys()].find((r) => {
      const [m, p] = r.split(" ");
      const pattern = new RegExp(`^${p.replace(/\{\w+\}/g, "[^/]+")}$`);
      return m === method && pattern.test(url.pathname);
    });
    const answer = route ? routes.get(route)! : { status: 404, body: { error: { type: "NotFoundError", message: `no route ${method} ${url.pathname}` } } };
    const { status = 200, body: payload } = typeof answer === "function" ? answer(url, init) : answer;
    return new Response(status === 204 ? null : JSON.stringify(payload ?? {}), { status, headers: { "Content-Type": "application/json" } });
  }));
  return api;
}
