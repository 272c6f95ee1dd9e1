/** The feature browser: sortable, filterable, searchable, paged table of an SAE's features. */
import { useEffect, useState } from "react";
import type { FeatureQuery } from "../api/client";
import { chipToken, formatNumber, formatPercent } from "../lib/format";
import { navigate } from "../lib/router";
import { SCORERS, type Scorer } from "../stores/autointerpStore";
import { FEATURE_PAGE_SIZE, featureActions, useFeaturePage, useFeatureQuery } from "../stores/featuresStore";
import { ErrorMessage } from "./ErrorMessage";

const triState = (v: string): boolean | null => (v === "" ? null : v === "yes");
const fromTri = (v: boolean | null | undefined) => (v === null || v === undefined ? "" : v ? "yes" : "no");

export function FeatureBrowser({ saeId }: { saeId: string }) {
  const query = useFeatureQuery();
  const { items, total, loading, error } = useFeaturePage();
  const { open, setQuery } = featureActions;
  const [search, setSearch] = useState(query.search ?? "");

  useEffect(() => {
    void open(saeId);
  }, [open, saeId]);
  useEffect(() => {
    const t = setTimeout(() => {
      if ((query.search ?? "") !== search) void setQuery({ search: search || undefined });
    }, 250);
    return () => clearTimeout(t);
  }, [search]); // runs on typing only

  const page = query.page ?? 1;
  const pages = Math.max(1, Math.ceil(total / (query.page_size ?? FEATURE_PAGE_SIZE)));
  const sortBy = (sort: NonNullable<FeatureQuery["sort"]>) =>
    setQuery({ sort, order: query.sort === sort && query.order === "desc" ? "asc" : "desc" });
  const arrow = (sort: string) => (query.sort === sort ? (query.order === "asc" ? " ↑" : " ↓") : "");
  const ariaSort = (sort: string) => (query.sort === sort ? (query.order === "asc" ? "ascending" : "descending") : "none");
  const open_ = (index: number) => navigate(`/saes/${encodeURIComponent(saeId)}/features/${index}`);

  return (
    <section className="card" aria-labelledby="features-title" data-testid="feature-browser">
      <h2 id="features-title">Features</h2>
      <div className="toolbar" role="search">
        <label className="grow">
          Search label, explanation or top token
          <input type="search" value={search} onChange={(e) => setSearch(e.target.value)} placeholder="e.g. the, 'cat'" />
        </label>
        <label>
          Dead
          <select value={fromTri(query.dead)} onChange={(e) => setQuery({ dead: triState(e.target.value) })}>
            <option value="">All</option><option value="no">Alive only</option><option value="yes">Dead only</option>
          </select>
        </label>
        <label>
          Labeled
          <select value={fromTri(query.labeled)} onChange={(e) => setQuery({ labeled: triState(e.target.value) })}>
            <option value="">All</option><option value="yes">Labeled</option><option value="no">Unlabeled</option>
          </select>
        </label>
        <label>
          Explained
          <select value={fromTri(query.explained)} onChange={(e) => setQuery({ explained: triState(e.target.value) })}
            data-testid="filter-explained">
            <option value="">All</option><option value="yes">Explained</option><option value="no">Unexplained</option>
          </select>
        </label>
        <label>
          Score below
          <input type="number" min={0} max={1} step="any" size={5} value={query.max_score ?? ""} data-testid="filter-max-score"
            onChange={(e) => setQuery({ max_score: e.target.value === "" ? null : Number(e.target.value) })} />
        </label>
        <label>
          Scorer
          <select value={query.scorer ?? ""} data-testid="filter-scorer"
            onChange={(e) => setQuery({ scorer: e.target.value === "" ? null : e.target.value as Scorer })}>
            <option value="">Any</option>
            {SCORERS.map((m) => <option key={m} value={m}>{m}</option>)}
          </select>
        </label>
        <label>
          Min freq
          <input type="number" min={0} max={1} step="any" size={6} value={query.min_freq ?? ""}
            onChange={(e) => setQuery({ min_freq: e.target.value === "" ? null : Number(e.target.value) })} />
        </label>
        <label>
          Max freq
          <input type="number" min={0} max={1} step="any" size={6} value={query.max_freq ?? ""}
            onChange={(e) => setQuery({ max_freq: e.target.value === "" ? null : Number(e.target.value) })} />
        </label>
      </div>
      <ErrorMessage message={error} />
      <p className="muted count" aria-live="polite">{loading ? "Loading…" : `${total.toLocaleString("en-US")} features`}</p>
      <div className="table-wrap">
        <table className="features-table">
          <thead>
            <tr>
              <th aria-sort={ariaSort("index")}><button type="button" className="th-button" onClick={() => sortBy("index")}>#{arrow("index")}</button></th>
              <th>Label</th>
              <th>Top token</th>
              <th aria-sort={ariaSort("frequency")}><button type="button" className="th-button" onClick={() => sortBy("frequency")}>Frequency{arrow("frequency")}</button></th>
              <th aria-sort={ariaSort("max")}><button type="button" className="th-button" onClick={() => sortBy("max")}>Max act.{arrow("max")}</button></th>
              <th aria-sort={ariaSort("mean")}><button type="button" className="th-button" onClick={() => sortBy("mean")}>Mean act.{arrow("mean")}</button></th>
              <th aria-sort={ariaSort("score")}><button type="button" className="th-button" onClick={() => sortBy("score")}>Score{arrow("score")}</button></th>
            </tr>
          </thead>
          <tbody>
            {items.map((f) => (
              <tr key={f.feature_index} className={f.dead ? "dead" : undefined} data-testid="feature-row">
                <td>
                  <a href={`/saes/${encodeURIComponent(saeId)}/features/${f.feature_index}`}
                    onClick={(e) => { e.preventDefault(); open_(f.feature_index); }}>{f.feature_index}</a>
                </td>
                <td>{f.label ?? (f.explanation ? <span className="explanation-text">{f.explanation}</span> : <span className="muted">—</span>)}
                  {f.dead && <span className="tag">dead</span>}</td>
                <td className="mono">{f.top_token !== null ? <span className="token-chip">{chipToken(f.top_token)}</span> : "—"}</td>
                <td className="num">{formatPercent(f.activation_frequency, 3)}</td>
                <td className="num">{formatNumber(f.max_activation)}</td>
                <td className="num">{formatNumber(f.mean_activation)}</td>
                <td className="num" data-testid="feature-score">{typeof f.best_score === "number" ? formatNumber(f.best_score, 2) : "—"}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      {pages > 1 && (
        <nav className="pagination" aria-label="Feature pages">
          <button type="button" disabled={page <= 1} onClick={() => setQuery({ page: page - 1 })}>← Previous</button>
          <span>Page {page} of {pages}</span>
          <button type="button" disabled={page >= pages} onClick={() => setQuery({ page: page + 1 })}>Next →</button>
        </nav>
      )}
    </section>
  );
}
