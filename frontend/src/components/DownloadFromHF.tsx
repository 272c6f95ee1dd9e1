/** Download from HuggingFace: browse a repo's SAEs (Gemma Scope layer → width → L0) or pick an SAE of a SAELens
 * release, preview, download live. */
import { useEffect, useMemo, useState } from "react";
import { api, ApiError } from "../api/client";
import type { GemmaScopeL0, GemmaScopeLayer, HubSAE, Job, RepoListing } from "../api/types";
import { isFinished } from "../api/watchJob";
import { describeJobMessage, formatBytes } from "../lib/format";
import { jobActions, useJob } from "../stores/jobsStore";
import { releaseActions, usePickedRelease } from "../stores/releasesStore";
import { saeActions } from "../stores/saesStore";
import { ErrorMessage } from "./ErrorMessage";
import { Modal } from "./Modal";
import { ProgressBar } from "./ProgressBar";
import { ReleasePicker } from "./ReleasePicker";

/** A person-actionable explanation of a browse/download failure. */
export function hubErrorHint(error: unknown): string {
  if (error instanceof ApiError) {
    if (error.status === 401) return `${error.message} — this repository is gated or private: paste a HuggingFace token with access below and try again.`;
    if (error.status === 404) return `${error.message} — check the repository id (owner/name) and revision.`;
    if (error.status === 502 || error.status === 0) return `${error.message} — the Hub could not be reached: check your network, or set HF_ENDPOINT / unset HF_HUB_OFFLINE.`;
    return error.message;
  }
  return (error as Error).message;
}

const layerName = (layer: number | null) => (layer === null ? "embedding" : String(layer));
/** A layer choice: its layer, and for Gemma Scope 2 its site folder (one repo holds several sites). */
const layerKey = (g: GemmaScopeLayer) => (g.site ? `${g.site}/${layerName(g.layer)}` : layerName(g.layer));
/** An L0 choice: Gemma Scope's average L0, or Gemma Scope 2's label (small, medium, big…). */
const l0Key = (x?: GemmaScopeL0) => (x ? (x.label ?? String(x.l0 ?? "")) : "");

type Mode = "repo" | "release";

export function DownloadFromHF({ onClose }: { onClose: () => void }) {
  const [mode, setMode] = useState<Mode>("repo");
  const picked = usePickedRelease();
  const [repoId, setRepoId] = useState("");
  const [revision, setRevision] = useState("");
  const [token, setToken] = useState("");
  const [needsToken, setNeedsToken] = useState(false);
  const [listing, setListing] = useState<RepoListing | null>(null);
  const [browsing, setBrowsing] = useState(false);
  const [browseError, setBrowseError] = useState<string | null>(null);
  const [layer, setLayer] = useState("");
  const [width, setWidth] = useState("");
  const [l0, setL0] = useState("");
  const [path, setPath] = useState("");
  const [name, setName] = useState("");
  const [jobId, setJobId] = useState<string | null>(null);
  const [startError, setStartError] = useState<string | null>(null);
  const job: Job | undefined = useJob(jobId);
  const { watch, cancel } = jobActions;
  const reloadSAEs = saeActions.load;

  const browse = async (e?: React.FormEvent) => {
    e?.preventDefault();
    setBrowsing(true);
    setBrowseError(null);
    setListing(null);
    try {
      const result = await api.browseHub(repoId.trim(), revision.trim() || undefined, token.trim() || undefined);
      setListing(result);
      const first = result.gemma_scope?.[0];
      if (first) {
        setLayer(layerKey(first));
        setWidth(first.widths[0]?.width ?? "");
        setL0(l0Key(first.widths[0]?.l0s[0]));
      }
      setPath(first ? "" : (result.saes[0]?.path ?? ""));
    } catch (err) {
      if (err instanceof ApiError && err.status === 401) setNeedsToken(true);
      setBrowseError(hubErrorHint(err));
    } finally {
      setBrowsing(false);
    }
  };

  const gemma = listing?.gemma_scope ?? [];
  const layerEntry = gemma.find((g) => layerKey(g) === layer);
  const widthEntry = layerEntry?.widths.find((w) => w.width === width);
  const selectedPath = gemma.length > 0 ? (widthEntry?.l0s.find((x) => l0Key(x) === l0)?.path ?? "") : path;
  const selected: HubSAE | undefined = useMemo(
    () => listing?.saes.find((s) => s.path === selectedPath),
    [listing, selectedPath],
  );

  const pickLayer = (value: string) => {
    setLayer(value);
    const entry = gemma.find((g) => layerKey(g) === value);
    setWidth(entry?.widths[0]?.width ?? "");
    setL0(l0Key(entry?.widths[0]?.l0s[0]));
  };
  const pickWidth = (value: string) => {
    setWidth(value);
    setL0(l0Key(layerEntry?.widths.find((w) => w.width === value)?.l0s[0]));
  };

  useEffect(() => () => releaseActions.reset(), []);
  const releaseSAE = mode === "release" && picked.release && picked.saeId ? picked.saeId : null;
  const canDownload = mode === "release" ? releaseSAE !== null : Boolean(selected && !selected.error);

  const download = async () => {
    if (mode === "repo" && (!listing || !selected)) return;
    if (mode === "release" && (!picked.release || !releaseSAE)) return;
    setStartError(null);
    try {
      const common = {
        revision: revision.trim() || undefined,
        token: token.trim() || undefined,
        name: name.trim() || undefined,
      };
      const ids = mode === "release"
        ? await api.downloadRelease(picked.release!.name, { sae_id: releaseSAE!, ...common })
        : await api.downloadHF({ repo_id: listing!.repo_id, path_in_repo: selected!.path, ...common });
      setJobId(ids.job_id);
      void reloadSAEs();
      watch(ids.job_id, () => void reloadSAEs());
    } catch (err) {
      if (err instanceof ApiError && err.status === 401) setNeedsToken(true);
      setStartError(hubErrorHint(err));
    }
  };

  useEffect(() => {
    if (job?.status === "failed" && /token|401|gated|private/i.test(job.error_message ?? "")) setNeedsToken(true);
  }, [job?.status, job?.error_message]);

  const running = job && !isFinished(job);
  return (
    <Modal title="Download from HuggingFace" onClose={onClose} wide testId="download-hf"
      footer={
        <>
          <button type="button" onClick={onClose}>{job?.status === "completed" ? "Done" : running ? "Hide" : "Close"}</button>
          {running ? (
            <button type="button" className="danger" onClick={() => jobId && cancel(jobId)}>Cancel download</button>
          ) : (
            <button type="button" className="primary" disabled={!canDownload || job?.status === "completed"}
              onClick={download}>
              Download{mode === "repo" && selected ? ` (${formatBytes(selected.download_bytes)})` : ""}
            </button>
          )}
        </>
      }>
      <div className="tabs" role="tablist">
        <button type="button" role="tab" aria-selected={mode === "repo"} onClick={() => setMode("repo")}>Repository</button>
        <button type="button" role="tab" aria-selected={mode === "release"} onClick={() => setMode("release")}>
          SAELens release
        </button>
      </div>
      {mode === "release" && <ReleasePicker />}
      {mode === "release" && picked.release && (
        <div className="form-row">
          <label>
            Revision
            <input value={revision} onChange={(e) => setRevision(e.target.value)} placeholder="main" size={10} />
          </label>
          <label className="grow">
            Name in miStudio (optional)
            <input value={name} onChange={(e) => setName(e.target.value)} placeholder={`${picked.release.name}/${picked.saeId}`} />
          </label>
        </div>
      )}
      {mode === "release" && needsToken && (
        <label className="block">
          HuggingFace token (for gated or private repositories)
          <input type="password" value={token} onChange={(e) => setToken(e.target.value)} placeholder="hf_…"
            autoComplete="off" />
        </label>
      )}
      {mode === "repo" && <>
      <form className="form-row" onSubmit={browse}>
        <label className="grow">
          Repository id
          <input autoFocus value={repoId} onChange={(e) => setRepoId(e.target.value)} placeholder="google/gemma-scope-2b-pt-res"
            required spellCheck={false} />
        </label>
        <label>
          Revision
          <input value={revision} onChange={(e) => setRevision(e.target.value)} placeholder="main" size={10} />
        </label>
        <button type="submit" disabled={browsing || !repoId.trim()}>{browsing ? "Browsing…" : "Browse"}</button>
      </form>
      {needsToken && (
        <label className="block">
          HuggingFace token (for gated or private repositories)
          <input type="password" value={token} onChange={(e) => setToken(e.target.value)} placeholder="hf_…"
            autoComplete="off" />
        </label>
      )}
      <ErrorMessage message={browseError} testId="browse-error" />
      {listing && listing.saes.length === 0 && (
        <p className="error" role="alert">No SAEs found in {listing.repo_id} ({listing.n_files} files). miStudio reads SAELens, Gemma Scope, sparsify, dictionary_learning and miStudio layouts.</p>
      )}
      {listing && listing.saes.length > 0 && (
        <div className="hub-browser">
          <p className="muted">
            {listing.saes.length} SAE{listing.saes.length === 1 ? "" : "s"} in <span className="mono">{listing.repo_id}</span>
            {" "}@ <span className="mono">{listing.commit_sha.slice(0, 10)}</span>
          </p>
          {gemma.length > 0 ? (
            <div className="form-row" data-testid="gemma-scope-pickers">
              <label>
                Layer
                <select value={layer} onChange={(e) => pickLayer(e.target.value)}>
                  {gemma.map((g) => <option key={layerKey(g)} value={layerKey(g)}>{layerKey(g)}</option>)}
                </select>
              </label>
              <label>
                Width
                <select value={width} onChange={(e) => pickWidth(e.target.value)}>
                  {layerEntry?.widths.map((w) => (
                    <option key={w.width} value={w.width}>{w.width}{w.d_sae ? ` (${w.d_sae.toLocaleString("en-US")})` : ""}</option>
                  ))}
                </select>
              </label>
              <label>
                Average L0
                <select value={l0} onChange={(e) => setL0(e.target.value)}>
                  {widthEntry?.l0s.map((x) => <option key={l0Key(x)} value={l0Key(x)}>{l0Key(x)}</option>)}
                </select>
              </label>
            </div>
          ) : (
            <label className="block">
              SAE
              <select value={path} onChange={(e) => setPath(e.target.value)}>
                {listing.saes.map((s) => (
                  <option key={s.path} value={s.path}>{s.path || "(repository root)"} — {s.format}</option>
                ))}
              </select>
            </label>
          )}
          {selected && <HubPreview sae={selected} />}
          <label className="block">
            Name in miStudio (optional)
            <input value={name} onChange={(e) => setName(e.target.value)} placeholder={`${listing.repo_id}/${selected?.path ?? ""}`} />
          </label>
        </div>
      )}
      </>}
      <ErrorMessage message={startError} testId="download-error" />
      {job && (
        <div className="download-status" data-testid="download-status">
          <ProgressBar value={job.progress} label="Download progress" />
          <p className="muted progress-message">
            {job.status === "completed" ? "Downloaded and added to your SAEs." :
              job.status === "cancelled" ? "Download cancelled." :
              `${job.current_stage ?? "queued"}: ${describeJobMessage(job.message)}`}
          </p>
          {job.status === "failed" && <ErrorMessage message={job.error_message} />}
        </div>
      )}
    </Modal>
  );
}

function HubPreview({ sae }: { sae: HubSAE }) {
  return (
    <div className="preview" data-testid="hub-preview">
      <dl className="facts">
        <div><dt>Path</dt><dd className="mono">{sae.path || "."}</dd></div>
        <div><dt>Format</dt><dd>{sae.format}</dd></div>
        <div><dt>Dimensions</dt><dd data-testid="preview-dims">{sae.d_in ?? "?"} → {sae.d_sae ?? "?"}</dd></div>
        <div><dt>Architecture</dt><dd>{sae.architecture ?? "—"}{sae.k ? ` (k=${sae.k})` : ""}</dd></div>
        <div><dt>Hook</dt><dd className="mono">{sae.hook_name ?? "—"}</dd></div>
        <div><dt>Model</dt><dd>{sae.model_name ?? "—"}</dd></div>
        <div><dt>Download</dt><dd>{formatBytes(sae.download_bytes)} in {sae.files.length} file{sae.files.length === 1 ? "" : "s"}</dd></div>
        {sae.memory && (
          <div>
            <dt>Memory</dt>
            <dd data-testid="memory-estimate">
              {formatBytes(sae.memory.bytes_at_dtype)} ({sae.dtype ?? "stored dtype"}) · {formatBytes(sae.memory.bytes_fp32)} fp32 ·{" "}
              {sae.memory.n_params.toLocaleString("en-US")} parameters
            </dd>
          </div>
        )}
      </dl>
      <ErrorMessage message={sae.error} />
      {sae.config && (
        <details>
          <summary>Configuration</summary>
          <pre className="config">{JSON.stringify(sae.config, null, 2)}</pre>
        </details>
      )}
    </div>
  );
}
