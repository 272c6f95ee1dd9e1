/** Find features by the text of their explanations, across SAEs (`/search?q=`); each hit links to its feature. */
import { useEffect, useState } from "react";
import { navigate } from "../lib/router";
import { autointerpActions, SEARCH_PAGE_SIZE, useExplanationSearch } from "../stores/autointerpStore";
import { ErrorMessage } from "./ErrorMessage";
import { ScoreBadge } from "./FeatureExplanations";

/** The `q` of the address bar. */
export const searchParam = (): string => new URLSearchParams(window.location.search).get("q") ?? "";

/** Go to the search page for `q` and run the search. */
export function searchExplanations(q: string): void {
  navigate(`/search?q=${encodeURIComponent(q.trim())}`);
  void autointerpActions.search(q);
}

/** The header's search box. */
export function ExplanationSearchBox() {
  const [q, setQ] = useState("");
  return (
    <form role="search" className="header-search" onSubmit={(e) => { e.preventDefault(); if (q.trim()) searchExplanations(q); }}>
      <input type="search" value={q} onChange={(e) => setQ(e.target.value)} aria-label="Search explanations"
        placeholder="Search explanations…" data-testid="explanation-search-input" />
    </form>
  );
}

export function ExplanationSearch() {
  const { q, page, items, total, loading, error } = useExplanationSearch();
  const [text, setText] = useState(q || searchParam());
  useEffect(() => {
    const fromUrl = searchParam();
    if (fromUrl && fromUrl !== q) {
      setText(fromUrl);
      void autointerpActions.search(fromUrl);
    }
  }, []); // the address bar's query, once
  useEffect(() => setText(q), [q]);
  const pages = Math.max(1, Math.ceil(total / SEARCH_PAGE_SIZE));
  const featurePath = (saeId: string, index: number) => `/saes/${encodeURIComponent(saeId)}/features/${index}`;

  return (
    <section className="panel" aria-labelledby="search-title" data-testid="explanation-search">
      <h1 id="search-title">Search explanations</h1>
      <form className="form-row" role="search" onSubmit={(e) => { e.preventDefault(); searchExplanations(text); }}>
        <label className="grow">
          Words in the explanation (all of them, any SAE)
          <input type="search" value={text} onChange={(e) => setText(e.target.value)} placeholder="e.g. French cities" />
        </label>
        <button type="submit" className="primary">Search</button>
      </form>
      <ErrorMessage message={error} />
      {q && <p className="muted count" aria-live="polite">{loading ? "Searching…" : `${total.toLocaleString("en-US")} explanation(s)`}</p>}
      <ul className="search-hits">
        {items.map((hit) => (
          <li key={hit.id} data-testid="search-hit">
            <a href={featurePath(hit.sae_id, hit.feature_index)}
              onClick={(e) => { e.preventDefault(); navigate(featurePath(hit.sae_id, hit.feature_index)); }}>
              {hit.sae_name} · feature {hit.feature_index}
            </a>
            <span className="explanation-text"> {hit.description}</span>
            <span className="explanation-meta muted">
              {" "}{hit.source}{hit.method ? ` · ${hit.method}` : ""}{hit.model ? ` · ${hit.model}` : ""}
              {hit.model_name ? ` · ${hit.model_name}` : ""}
            </span>
            {(hit.scores ?? []).map((s, i) => <ScoreBadge key={i} scorer={s.scorer} score={s.score} model={s.model} />)}
          </li>
        ))}
      </ul>
      {pages > 1 && (
        <nav className="pagination" aria-label="Search pages">
          <button type="button" disabled={page <= 1} onClick={() => void autointerpActions.search(q, page - 1)}>← Previous</button>
          <span>Page {page} of {pages}</span>
          <button type="button" disabled={page >= pages} onClick={() => void autointerpActions.search(q, page + 1)}>Next →</button>
        </nav>
      )}
    </section>
  );
}
