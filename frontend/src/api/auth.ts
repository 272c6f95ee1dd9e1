/**
 * The API token of a server started with MISTUDIO_API_TOKEN. The user types it once; it is kept in localStorage,
 * sent as `Authorization: Bearer …` by the client, and exchanged for the session cookie that requests which
 * cannot carry headers (EventSource streams, download links) authenticate with. A 401 from the API forgets it and
 * brings the prompt back.
 */
import { useSyncExternalStore } from "react";
import { endpointUrl } from "./endpoints";

const STORAGE_KEY = "mistudio-api-token";
/** The error type the API answers a missing or wrong token with (a hub 401 is `HubAuthError`). */
export const AUTH_ERROR_TYPE = "AuthenticationError";

let needed = false;
const listeners = new Set<() => void>();

function setNeeded(value: boolean) {
  if (needed === value) return;
  needed = value;
  listeners.forEach((listener) => listener());
}

/** The stored token, if any. */
export function getToken(): string | null {
  try {
    return localStorage.getItem(STORAGE_KEY);
  } catch {
    return null;
  }
}

/** Headers that authenticate a request (none when no token is stored). */
export function authHeaders(): Record<string, string> {
  const token = getToken();
  return token ? { Authorization: `Bearer ${token}` } : {};
}

/** The server refused our token (or we had none): forget it and ask the user. */
export function tokenRejected(): void {
  try {
    localStorage.removeItem(STORAGE_KEY);
  } catch {
    /* storage unavailable */
  }
  setNeeded(true);
}

/** The user closed the prompt: hide it until the next 401. */
export function dismissPrompt(): void {
  setNeeded(false);
}

/** True while the UI needs the user to type the token. */
export function useTokenNeeded(): boolean {
  return useSyncExternalStore(
    (listener) => {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    () => needed,
  );
}

/** Check `token` with the server and open a session (the cookie); stores it on success, false when refused. */
export async function signIn(token: string): Promise<boolean> {
  const res = await fetch(endpointUrl("createSession"), {
    method: "POST",
    headers: { Authorization: `Bearer ${token}` },
    credentials: "same-origin",
  });
  if (res.status === 401) return false;
  if (!res.ok) throw new Error(`the server answered ${res.status} ${res.statusText}`.trim());
  try {
    localStorage.setItem(STORAGE_KEY, token);
  } catch {
    /* storage unavailable: the session cookie still works until the browser closes */
  }
  setNeeded(false);
  return true;
}

/** On start: renew the session cookie for a stored token (a browser restart drops it). */
export async function renewSession(): Promise<void> {
  const token = getToken();
  if (!token) return;
  try {
    if (!(await signIn(token))) tokenRejected();
  } catch {
    /* server unreachable: the next request reports it */
  }
}
