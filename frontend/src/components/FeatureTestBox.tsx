/** The feature dashboard's "Test" box: type a text, see its tokens highlighted by this feature's activation. */
import { formatNumber } from "../lib/format";
import { inferenceActions, testKey, useInferenceBox, useLoadingModels } from "../stores/inferenceStore";
import { ErrorMessage } from "./ErrorMessage";
import { TokenSequence } from "./TokenSequence";

interface Props {
  saeId: string;
  index: number;
  /** The activation shown at full highlight: the feature's max over the extraction (as its examples use). */
  scale: number;
}

/** "Loading <model>… 12 s" while a run waits for the model server to load a model. */
export function ModelLoadingNote() {
  const loading = useLoadingModels();
  if (loading.length === 0) return null;
  return (
    <p className="muted" role="status" data-testid="model-loading">
      {loading.map((m) => `Loading ${m.name ?? m.ref} on ${m.device}… ${Math.round(m.elapsed_s)} s`).join("; ")}
    </p>
  );
}

export function FeatureTestBox({ saeId, index, scale }: Props) {
  const key = testKey(saeId, index);
  const box = useInferenceBox(key);
  const trace = box.result?.features.find((f) => f.index === index) ?? null;
  const run = (e: React.FormEvent) => {
    e.preventDefault();
    void inferenceActions.run(key, saeId, [index], 5);
  };
  return (
    <section className="card live-box" data-testid="feature-test-box">
      <h2>Test</h2>
      <form onSubmit={run}>
        <label className="grow">
          Text to test
          <textarea rows={3} value={box.text} placeholder="Type a text to see where this feature fires"
            onChange={(e) => inferenceActions.setText(key, e.target.value)}
            onKeyDown={(e) => { if (e.key === "Enter" && (e.metaKey || e.ctrlKey)) run(e); }} />
        </label>
        <div className="actions">
          <button type="submit" disabled={box.running}>{box.running ? "Running…" : "Test"}</button>
        </div>
      </form>
      <ModelLoadingNote />
      <ErrorMessage message={box.error} testId="test-box-error" />
      {box.result && trace && (
        <div data-testid="test-box-result">
          <TokenSequence example={{ tokens: box.result.tokens, values: trace.values, max_value: trace.max_value,
            max_token_index: trace.max_token_index }} scale={scale > 0 ? scale : trace.max_value} />
          <p className="muted">
            {trace.max_value > 0
              ? `Max ${formatNumber(trace.max_value, 4)} (${formatNumber(scale > 0 ? trace.max_value / scale : 1, 2)}× `
                + "the extraction's max)"
              : "The feature does not fire on this text."}
          </p>
        </div>
      )}
    </section>
  );
}
