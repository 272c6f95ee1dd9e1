/** "Which features fire on this text": an SAE's top features per token (click a token) and overall, each
 * linking to its dashboard (Neuronpedia's search by inference). */
import type { FeatureValue, LiveActivations } from "../api/types";
import { displayToken, formatNumber } from "../lib/format";
import { navigate } from "../lib/router";
import { inferenceActions, textKey, useInferenceBox } from "../stores/inferenceStore";
import { ErrorMessage } from "./ErrorMessage";
import { ModelLoadingNote } from "./FeatureTestBox";
import { TokenSequence } from "./TokenSequence";

const TOP_K = 10;

function FeatureLink({ saeId, index }: { saeId: string; index: number }) {
  const to = `/saes/${encodeURIComponent(saeId)}/features/${index}`;
  return (
    <a href={to} data-testid="feature-link" onClick={(e) => { e.preventDefault(); navigate(to); }}>
      Feature {index}
    </a>
  );
}

function TokenFeatures({ saeId, result, position }: { saeId: string; result: LiveActivations; position: number }) {
  const tops: FeatureValue[] = result.top_features[position] ?? [];
  return (
    <section className="card" data-testid="token-features">
      <h2>At {JSON.stringify(result.tokens[position] ?? "")} <span className="muted">(token {position})</span></h2>
      {result.special[position] && <p className="muted">A special token: masked, as in the extraction.</p>}
      {tops.length === 0 && !result.special[position] && <p className="muted">No feature fires here.</p>}
      <table className="compact">
        <tbody>
          {tops.map((f) => (
            <tr key={f.index}><td><FeatureLink saeId={saeId} index={f.index} /></td>
              <td className="num">{formatNumber(f.value, 4)}</td></tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}

export function TextInference({ saeId }: { saeId: string }) {
  const key = textKey(saeId);
  const box = useInferenceBox(key);
  const result = box.result;
  const saePath = `/saes/${encodeURIComponent(saeId)}`;
  const run = (e: React.FormEvent) => {
    e.preventDefault();
    void inferenceActions.run(key, saeId, undefined, TOP_K);
  };
  const strongest = result ? result.top_features.map((t) => t[0]?.value ?? 0) : [];
  const maxAt = strongest.length ? strongest.indexOf(Math.max(...strongest)) : 0;
  const position = box.selected ?? (result ? maxAt : null);
  return (
    <section className="panel" aria-labelledby="inference-title" data-testid="text-inference">
      <nav className="breadcrumbs">
        <a href="/" onClick={(e) => { e.preventDefault(); navigate("/"); }}>SAEs</a> /{" "}
        <a href={saePath} onClick={(e) => { e.preventDefault(); navigate(saePath); }}>SAE</a> / which features fire
      </nav>
      <header className="panel-header"><h1 id="inference-title">Which features fire on this text</h1></header>
      <form className="live-box" onSubmit={run}>
        <label className="grow">
          Text
          <textarea rows={4} value={box.text} placeholder="Type or paste a text"
            onChange={(e) => inferenceActions.setText(key, e.target.value)}
            onKeyDown={(e) => { if (e.key === "Enter" && (e.metaKey || e.ctrlKey)) run(e); }} />
        </label>
        <div className="actions">
          <button type="submit" disabled={box.running}>{box.running ? "Running…" : "Run"}</button>
        </div>
      </form>
      <ModelLoadingNote />
      <ErrorMessage message={box.error} testId="inference-error" />
      {result && (
        <>
          <section className="card">
            <h2>Tokens <span className="muted">(highlight: the strongest feature at each token; click one)</span></h2>
            <TokenSequence scale={result.overall[0]?.value ?? 0} selected={position}
              onSelect={(i) => inferenceActions.select(key, i)}
              example={{ tokens: result.tokens, values: strongest, max_value: strongest[maxAt] ?? 0,
                max_token_index: maxAt }} />
            <p className="muted">{result.model} · {result.hook}</p>
          </section>
          <div className="dashboard-grid">
            <div className="dashboard-side">
              {position !== null && <TokenFeatures saeId={saeId} result={result} position={position} />}
            </div>
            <div className="dashboard-main">
              <section className="card" data-testid="overall-features">
                <h2>Overall</h2>
                {result.overall.length === 0 && <p className="muted">No feature fires on this text.</p>}
                <table className="compact">
                  <thead><tr><th>Feature</th><th className="num">Max</th><th>At</th><th className="num">Tokens</th></tr></thead>
                  <tbody>
                    {result.overall.map((f) => (
                      <tr key={f.index}>
                        <td><FeatureLink saeId={saeId} index={f.index} /></td>
                        <td className="num">{formatNumber(f.value, 4)}</td>
                        <td><button type="button" className="link token-chip"
                          onClick={() => inferenceActions.select(key, f.token_index)}>
                          {displayToken(result.tokens[f.token_index] ?? "")}</button></td>
                        <td className="num">{f.n_active}</td>
                      </tr>
                    ))}
                  </tbody>
                </table>
              </section>
            </div>
          </div>
        </>
      )}
    </section>
  );
}
