/** Link an SAE to a training record: pick an existing one, or record a new run and link it. */
import { useEffect, useState } from "react";
import { api } from "../api/client";
import type { Training } from "../api/types";
import { ErrorMessage } from "./ErrorMessage";

export function TrainingLink({ saeId, onLinked }: { saeId: string; onLinked: () => void }) {
  const [trainings, setTrainings] = useState<Training[]>([]);
  const [chosen, setChosen] = useState("");
  const [name, setName] = useState("");
  const [dataset, setDataset] = useState("");
  const [tokens, setTokens] = useState("");
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    api.listTrainings().then((r) => setTrainings(r.items), () => setTrainings([]));
  }, []);

  const link = async (trainingId: string) => {
    setError(null);
    try {
      await api.linkTraining(saeId, trainingId);
      onLinked();
    } catch (e) {
      setError((e as Error).message);
    }
  };
  const recordAndLink = async () => {
    setError(null);
    try {
      const t = await api.createTraining({ name: name.trim(), dataset: dataset.trim() || null,
        n_training_tokens: tokens ? Number(tokens) : null });
      await link(t.id);
    } catch (e) {
      setError((e as Error).message);
    }
  };

  return (
    <div className="training-link" data-testid="training-link-form">
      {trainings.length > 0 && (
        <div className="form-row">
          <label className="grow">Training run
            <select value={chosen} onChange={(e) => setChosen(e.target.value)}>
              <option value="">Choose…</option>
              {trainings.map((t) => <option key={t.id} value={t.id}>{t.name}{t.dataset ? ` · ${t.dataset}` : ""}</option>)}
            </select></label>
          <button type="button" disabled={!chosen} onClick={() => void link(chosen)}>Link</button>
        </div>
      )}
      <details>
        <summary>Record a training run</summary>
        <div className="form-row">
          <label>Name <input value={name} onChange={(e) => setName(e.target.value)} /></label>
          <label>Dataset <input value={dataset} onChange={(e) => setDataset(e.target.value)} placeholder="e.g. monology/pile-uncopyrighted" /></label>
          <label>Training tokens <input type="number" min={0} value={tokens} onChange={(e) => setTokens(e.target.value)} /></label>
          <button type="button" disabled={!name.trim()} onClick={() => void recordAndLink()}>Record and link</button>
        </div>
      </details>
      <ErrorMessage message={error} testId="training-error" />
    </div>
  );
}
