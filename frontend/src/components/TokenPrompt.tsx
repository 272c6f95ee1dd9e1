/** Asks for the server's API token when the API answers 401 (a server started with MISTUDIO_API_TOKEN). */
import { useState, type FormEvent } from "react";
import { dismissPrompt, signIn, useTokenNeeded } from "../api/auth";
import { Modal } from "./Modal";

export function TokenPrompt({ onSignedIn = () => window.location.reload() }: { onSignedIn?: () => void }) {
  const needed = useTokenNeeded();
  const [token, setToken] = useState("");
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  if (!needed) return null;

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      if (await signIn(token.trim())) {
        setToken("");
        onSignedIn();
      } else {
        setError("The server refused that token. Check MISTUDIO_API_TOKEN on the server and try again.");
      }
    } catch (err) {
      setError(`Could not reach the server: ${(err as Error).message}`);
    } finally {
      setBusy(false);
    }
  };

  return (
    <Modal title="This miStudio server needs its API token" onClose={dismissPrompt} testId="token-prompt">
      <form onSubmit={submit}>
        <p>The server was started with <code>MISTUDIO_API_TOKEN</code>. Enter that token once; this browser keeps it.</p>
        <label>
          API token
          <input type="password" autoComplete="current-password" value={token} autoFocus
            onChange={(e) => setToken(e.target.value)} aria-invalid={error ? true : undefined} />
        </label>
        {error && <p role="alert" className="error">{error}</p>}
        <button type="submit" disabled={busy || !token.trim()}>{busy ? "Checking…" : "Sign in"}</button>
      </form>
    </Modal>
  );
}
