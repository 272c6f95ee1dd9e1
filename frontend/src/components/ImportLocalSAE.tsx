/** Import SAE files from disk: a drop zone / file picker for an archive, format shown before import. */
import { useRef, useState } from "react";
import { api } from "../api/client";
import type { SAE } from "../api/types";
import { inspectArchive } from "../lib/archiveFormat";
import { formatBytes } from "../lib/format";
import { saeActions } from "../stores/saesStore";
import { ErrorMessage } from "./ErrorMessage";
import { Modal } from "./Modal";

export function ImportLocalSAE({ onClose }: { onClose: () => void }) {
  const [file, setFile] = useState<File | null>(null);
  const [info, setInfo] = useState<{ entries: string[]; format: string } | null>(null);
  const [name, setName] = useState("");
  const [modelName, setModelName] = useState("");
  const [hookName, setHookName] = useState("");
  const [dragging, setDragging] = useState(false);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [imported, setImported] = useState<SAE | null>(null);
  const input = useRef<HTMLInputElement>(null);
  const reload = saeActions.load;

  const choose = async (chosen: File | undefined) => {
    if (!chosen) return;
    setFile(chosen);
    setError(null);
    setImported(null);
    try {
      setInfo(await inspectArchive(chosen));
    } catch (e) {
      setInfo(null);
      setError(`Could not read ${chosen.name}: ${(e as Error).message}. Choose a .zip or .tar archive of the SAE folder.`);
    }
  };

  const submit = async () => {
    if (!file) return;
    setBusy(true);
    setError(null);
    try {
      setImported(await api.importSAE(file, name.trim() || undefined,
        { model_name: modelName.trim() || undefined, hook_name: hookName.trim() || undefined }));
      void reload();
    } catch (e) {
      setError((e as Error).message);
    } finally {
      setBusy(false);
    }
  };

  return (
    <Modal title="Import local SAE" onClose={onClose} testId="import-sae"
      footer={
        <>
          <button type="button" onClick={onClose}>{imported ? "Done" : "Cancel"}</button>
          <button type="button" className="primary" disabled={!file || busy || Boolean(imported)} onClick={submit}>
            {busy ? "Importing…" : "Import"}
          </button>
        </>
      }>
      <div
        className={`drop-zone${dragging ? " dragging" : ""}`}
        onDragOver={(e) => { e.preventDefault(); setDragging(true); }}
        onDragLeave={() => setDragging(false)}
        onDrop={(e) => { e.preventDefault(); setDragging(false); void choose(e.dataTransfer.files[0]); }}
      >
        <p>Drop a <strong>.zip</strong> or <strong>.tar</strong> archive of an SAE folder here</p>
        <p className="muted">SAELens (cfg.json + sae_weights.safetensors), Gemma Scope (params.npz), sparsify, dictionary_learning or miStudio</p>
        <button type="button" onClick={() => input.current?.click()}>Choose file…</button>
        <input ref={input} type="file" hidden aria-label="SAE archive" accept=".zip,.tar,.tar.gz,.tgz"
          data-testid="import-file" onChange={(e) => void choose(e.target.files?.[0])} />
      </div>
      {file && (
        <div className="preview" data-testid="import-preview">
          <dl className="facts">
            <div><dt>File</dt><dd className="mono">{file.name}</dd></div>
            <div><dt>Size</dt><dd>{formatBytes(file.size)}</dd></div>
            <div><dt>Detected format</dt><dd data-testid="detected-format">{info?.format ?? "—"}</dd></div>
          </dl>
          {info && info.entries.length > 0 && (
            <details>
              <summary>{info.entries.length} files in the archive</summary>
              <ul className="mono file-list">{info.entries.slice(0, 50).map((n) => <li key={n}>{n}</li>)}</ul>
            </details>
          )}
          <label className="block">
            Name (optional)
            <input value={name} onChange={(e) => setName(e.target.value)} placeholder={file.name.replace(/\.(zip|tar|tar\.gz|tgz)$/i, "")} />
          </label>
          <div className="form-row">
            <label>Model (when the files do not say)
              <input value={modelName} onChange={(e) => setModelName(e.target.value)} placeholder="e.g. google/gemma-2-2b" /></label>
            <label>Hook (when the files do not say)
              <input value={hookName} onChange={(e) => setHookName(e.target.value)} placeholder="e.g. blocks.12.hook_resid_post" /></label>
          </div>
          {info?.format.startsWith("Gemma Scope") && (
            <p className="muted small">A Gemma Scope params.npz does not name its model or hook; fill them in to extract dashboards.</p>
          )}
        </div>
      )}
      <ErrorMessage message={error} testId="import-error" />
      {imported && !imported.duplicate_of && (
        <p className="notice" role="status" data-testid="import-done">
          Imported <strong>{imported.name}</strong> as {imported.format ?? "?"} ({imported.d_in} → {imported.d_sae}, {imported.architecture}).
        </p>
      )}
      {imported?.duplicate_of && (
        <p className="notice" role="status" data-testid="import-duplicate">
          Already in the catalog: these files are <strong>{imported.name}</strong> ({imported.d_in} → {imported.d_sae},{" "}
          {imported.architecture}), imported before. Nothing new was stored.
        </p>
      )}
    </Modal>
  );
}
