/** Pick an SAE from a SAELens release: type to search releases, pick one, pick an SAE (id, L0, Neuronpedia id). */
import { useEffect, useMemo, useState } from "react";
import type { RegistrySAE } from "../api/types";
import { releaseActions, saeLabel, usePickedRelease, useReleaseSearch, visibleSAEs } from "../stores/releasesStore";
import { ErrorMessage } from "./ErrorMessage";

const SEARCH_DELAY_MS = 200;

export function ReleasePicker() {
  const { query, results, total, searching, error } = useReleaseSearch();
  const { release, loading, error: releaseError, saeFilter, saeId } = usePickedRelease();
  const [text, setText] = useState(query);

  useEffect(() => {
    if (text === query) return;
    const timer = setTimeout(() => void releaseActions.search(text), SEARCH_DELAY_MS);
    return () => clearTimeout(timer);
  }, [text, query]);

  const visible = useMemo(() => visibleSAEs(release, saeFilter), [release, saeFilter]);
  const selected: RegistrySAE | undefined = release?.saes.find((s) => s.id === saeId);

  return (
    <div className="release-picker" data-testid="release-picker">
      <label className="block">
        SAELens release
        <input autoFocus value={text} onChange={(e) => setText(e.target.value)} spellCheck={false}
          placeholder="gpt2-small-res-jb, gemma-scope-2b, qwen…" />
      </label>
      <ErrorMessage message={error} testId="release-search-error" />
      {query.trim() !== "" && !searching && results.length === 0 && !error && (
        <p className="muted">No release matches “{query}”.</p>
      )}
      {results.length > 0 && (
        <ul className="release-results" data-testid="release-results">
          {results.map((r) => (
            <li key={r.name}>
              <button type="button" className={release?.name === r.name ? "selected" : ""}
                onClick={() => void releaseActions.pick(r.name)}>
                <span className="mono">{r.name}</span>
                <span className="muted"> {r.model} · {r.family} · {r.n_saes} SAE{r.n_saes === 1 ? "" : "s"}</span>
              </button>
            </li>
          ))}
          {total > results.length && <li className="muted">… and {total - results.length} more: type more to narrow</li>}
        </ul>
      )}
      {loading && <p className="muted">Loading release…</p>}
      <ErrorMessage message={releaseError} testId="release-error" />
      {release && (
        <div className="hub-browser">
          <p className="muted">
            <span className="mono">{release.name}</span>: {release.saes.length} SAEs in{" "}
            <span className="mono">{release.repo_id}</span> ({release.model})
          </p>
          {release.saes.length > 10 && (
            <label className="block">
              Filter SAEs
              <input value={saeFilter} onChange={(e) => releaseActions.filterSAEs(e.target.value)}
                placeholder="layer_12, 16k, res…" spellCheck={false} />
            </label>
          )}
          <label className="block">
            SAE
            <select value={saeId} onChange={(e) => releaseActions.pickSAE(e.target.value)}>
              {visible.map((s) => <option key={s.id} value={s.id}>{saeLabel(s)}</option>)}
            </select>
          </label>
          {selected && (
            <dl className="facts" data-testid="release-sae-preview">
              <div><dt>Path</dt><dd className="mono">{selected.path}</dd></div>
              <div><dt>L0</dt><dd>{selected.l0 ?? "—"}</dd></div>
              <div><dt>Variance explained</dt><dd>{selected.variance_explained ?? "—"}</dd></div>
              <div><dt>Neuronpedia</dt><dd className="mono">{selected.neuronpedia ?? "—"}</dd></div>
              {Object.keys(release.config_overrides ?? {}).length > 0 && (
                <div><dt>Config overrides</dt><dd className="mono">{JSON.stringify(release.config_overrides)}</dd></div>
              )}
            </dl>
          )}
        </div>
      )}
    </div>
  );
}
