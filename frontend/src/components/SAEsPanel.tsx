/** The SAEs panel: filters, search, sort, server-side pages of SAE cards, and the ways to add one. */
import { useEffect, useState } from "react";
import { PAGE_SIZE, saeActions, useSAEPage, useSAEQuery, useSAEsStatus } from "../stores/saesStore";
import { sourceLabel } from "../lib/format";
import { DownloadFromHF } from "./DownloadFromHF";
import { ErrorMessage } from "./ErrorMessage";
import { ImportLocalSAE } from "./ImportLocalSAE";
import { SAECard } from "./SAECard";

const SORTS: [string, string][] = [
  ["created_at", "Newest"], ["name", "Name"], ["model_name", "Model"], ["layer", "Layer"], ["d_sae", "Width (d_sae)"],
];

function useDebounced<T>(value: T, ms: number): T {
  const [debounced, setDebounced] = useState(value);
  useEffect(() => {
    const t = setTimeout(() => setDebounced(value), ms);
    return () => clearTimeout(t);
  }, [value, ms]);
  return debounced;
}

export function SAEsPanel() {
  const query = useSAEQuery();
  const { items, total, facets } = useSAEPage();
  const { loading, loaded, error } = useSAEsStatus();
  const { setQuery, load } = saeActions;
  const [modal, setModal] = useState<"hf" | "import" | null>(null);
  const [search, setSearch] = useState(query.search ?? "");
  const debounced = useDebounced(search, 250);

  useEffect(() => {
    void load();
  }, [load]);
  useEffect(() => {
    if ((query.search ?? "") !== debounced) void setQuery({ search: debounced });
  }, [debounced]); // only when the debounced text changes

  const page = query.page ?? 1;
  const pages = Math.max(1, Math.ceil(total / (query.page_size ?? PAGE_SIZE)));
  const filtered = Boolean(query.source || query.model || query.layer !== undefined || query.search);

  return (
    <section className="panel" aria-labelledby="saes-title">
      <header className="panel-header">
        <h1 id="saes-title">SAEs</h1>
        <div className="actions">
          <button type="button" onClick={() => setModal("import")}>Import local SAE</button>
          <button type="button" className="primary" onClick={() => setModal("hf")}>+ Download from HuggingFace</button>
        </div>
      </header>
      <div className="toolbar" role="search">
        <label>
          Source
          <select value={query.source ?? ""} onChange={(e) => setQuery({ source: e.target.value || undefined })}>
            <option value="">All sources</option>
            {["trained", "huggingface", "gemma_scope", "upload"].map((s) => (
              <option key={s} value={s}>{sourceLabel(s)}</option>
            ))}
          </select>
        </label>
        <label>
          Model
          <select value={query.model ?? ""} onChange={(e) => setQuery({ model: e.target.value || undefined })}>
            <option value="">All models</option>
            {facets.models.map((m) => <option key={m} value={m}>{m}</option>)}
          </select>
        </label>
        <label>
          Layer
          <select value={query.layer ?? ""}
            onChange={(e) => setQuery({ layer: e.target.value === "" ? undefined : Number(e.target.value) })}>
            <option value="">All layers</option>
            {facets.layers.map((l) => <option key={l} value={l}>{l}</option>)}
          </select>
        </label>
        <label className="grow">
          Search
          <input type="search" value={search} placeholder="name, model, hook, repo…"
            onChange={(e) => setSearch(e.target.value)} />
        </label>
        <label>
          Sort
          <select value={query.sort} onChange={(e) => setQuery({ sort: e.target.value })}>
            {SORTS.map(([v, l]) => <option key={v} value={v}>{l}</option>)}
          </select>
        </label>
        <button type="button" aria-label={`Order: ${query.order === "asc" ? "ascending" : "descending"}`}
          onClick={() => setQuery({ order: query.order === "asc" ? "desc" : "asc" })}>
          {query.order === "asc" ? "↑ Asc" : "↓ Desc"}
        </button>
      </div>
      <ErrorMessage message={error} />
      <p className="muted count" aria-live="polite">
        {loading && !loaded ? "Loading…" : `${total.toLocaleString("en-US")} SAE${total === 1 ? "" : "s"}`}
      </p>
      {loaded && total === 0 && !filtered && !error && (
        <div className="empty" data-testid="empty-state">
          <h2>No SAEs yet</h2>
          <p>Start by bringing one in:</p>
          <ol>
            <li>Run <code>mistudio demo</code> in a terminal for a tiny ready-made SAE with dashboards, or</li>
            <li><button type="button" className="link" onClick={() => setModal("hf")}>download one from HuggingFace</button>{" "}
              (e.g. a Gemma Scope SAE), or</li>
            <li><button type="button" className="link" onClick={() => setModal("import")}>import SAE files</button> from your disk.</li>
          </ol>
        </div>
      )}
      {loaded && total === 0 && filtered && <p className="empty">No SAE matches these filters.</p>}
      <div className="card-grid" data-testid="sae-list">
        {items.map((sae) => <SAECard key={sae.id} sae={sae} />)}
      </div>
      {pages > 1 && (
        <nav className="pagination" aria-label="SAE pages">
          <button type="button" disabled={page <= 1} onClick={() => setQuery({ page: page - 1 })}>← Previous</button>
          <span>Page {page} of {pages}</span>
          <button type="button" disabled={page >= pages} onClick={() => setQuery({ page: page + 1 })}>Next →</button>
        </nav>
      )}
      {modal === "hf" && <DownloadFromHF onClose={() => setModal(null)} />}
      {modal === "import" && <ImportLocalSAE onClose={() => setModal(null)} />}
    </section>
  );
}
