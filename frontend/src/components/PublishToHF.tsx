/** "Publish to HuggingFace": a small form (repo, folder, private, revision, token) that starts a publish job,
 * follows its progress, and shows what was uploaded and the `SAE.from_pretrained(...)` snippet. */
import { useEffect, useState } from "react";
import { ApiError, request } from "../api/client";
import type { PublishRequest, PublishResult } from "../api/types";
import { isFinished } from "../api/watchJob";
import { jobActions, useJob } from "../stores/jobsStore";
import { hubErrorHint } from "./DownloadFromHF";
import { ErrorMessage } from "./ErrorMessage";
import { ProgressBar } from "./ProgressBar";

const REPO_ID = /^[A-Za-z0-9][A-Za-z0-9._-]*\/[A-Za-z0-9][A-Za-z0-9._-]*$/;

/** The request body from the form's fields (blank fields left out, so the server's defaults apply). */
export function publishBody(fields: { repo: string; folder: string; isPrivate: boolean; revision: string;
  token: string; modelId: string }): PublishRequest {
  const opt = (v: string) => (v.trim() ? v.trim() : undefined);
  return {
    repo_id: fields.repo.trim(), folder: opt(fields.folder), private: fields.isPrivate,
    revision: opt(fields.revision), token: opt(fields.token), model_id: opt(fields.modelId),
  };
}

export function PublishToHF({ saeId, defaultRepo }: { saeId: string; defaultRepo?: string | null }) {
  const [open, setOpen] = useState(false);
  const [repo, setRepo] = useState(defaultRepo ?? "");
  const [folder, setFolder] = useState("");
  const [isPrivate, setPrivate] = useState(false);
  const [revision, setRevision] = useState("");
  const [token, setToken] = useState("");
  const [modelId, setModelId] = useState("");
  const [jobId, setJobId] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [result, setResult] = useState<PublishResult | null>(null);
  const [copied, setCopied] = useState(false);
  const job = useJob(jobId);
  const running = Boolean(job && !isFinished(job));

  useEffect(() => {
    if (!jobId || job?.status !== "completed") return;
    let live = true;
    request("publishHFStatus", { params: { sae_id: saeId, job_id: jobId } })
      .then((status) => { if (live) setResult(status.result ?? null); })
      .catch((err: unknown) => { if (live) setError(hubErrorHint(err)); });
    return () => { live = false; };
  }, [jobId, job?.status, saeId]);

  const submit = async (e: React.FormEvent) => {
    e.preventDefault();
    setError(null);
    setResult(null);
    setCopied(false);
    if (!REPO_ID.test(repo.trim())) {
      setError("The repository should be OWNER/NAME, e.g. alice/gpt2-saes.");
      return;
    }
    try {
      const started = await request("publishHF", {
        params: { sae_id: saeId }, json: publishBody({ repo, folder, isPrivate, revision, token, modelId }),
      });
      setJobId(started.job_id);
      jobActions.watch(started.job_id);
    } catch (err) {
      setError(err instanceof ApiError ? hubErrorHint(err) : (err as Error).message);
    }
  };

  const copy = async () => {
    if (!result) return;
    try {
      await navigator.clipboard.writeText(result.load_snippet);
      setCopied(true);
    } catch {
      setCopied(false);
    }
  };

  if (!open) {
    return <button type="button" onClick={() => setOpen(true)} data-testid="publish-hf-open">Publish to HuggingFace</button>;
  }
  const failed = job?.status === "failed" || job?.status === "cancelled";
  return (
    <section className="card publish-hf" aria-labelledby="publish-hf-title" data-testid="publish-hf">
      <h3 id="publish-hf-title">Publish to HuggingFace</h3>
      <p className="muted">Uploads the SAELens folder, a model card and the <code>pretrained_saes.yaml</code> entry in
        one commit of what changed; publishing again after a failure sends only what did not reach the Hub.</p>
      <form onSubmit={submit}>
        <div className="form-row">
          <label className="grow">
            Repository (OWNER/NAME)
            <input value={repo} onChange={(e) => setRepo(e.target.value)} placeholder="alice/gpt2-saes" required
              spellCheck={false} />
          </label>
          <label className="grow">
            Folder (SAE id in SAELens)
            <input value={folder} onChange={(e) => setFolder(e.target.value)} placeholder="the hook name"
              spellCheck={false} />
          </label>
        </div>
        <div className="form-row">
          <label>
            Revision
            <input value={revision} onChange={(e) => setRevision(e.target.value)} placeholder="main" size={10} />
          </label>
          <label className="grow">
            Model Hub id (when the SAE names a local model folder)
            <input value={modelId} onChange={(e) => setModelId(e.target.value)} placeholder="gpt2" spellCheck={false} />
          </label>
          <label className="inline">
            <input type="checkbox" checked={isPrivate} onChange={(e) => setPrivate(e.target.checked)} /> Private
          </label>
        </div>
        <label className="block">
          HuggingFace token with write access (default: the server's HF_TOKEN)
          <input type="password" value={token} onChange={(e) => setToken(e.target.value)} placeholder="hf_…"
            autoComplete="off" />
        </label>
        <div className="actions">
          <button type="submit" className="primary" disabled={running || !repo.trim()}>
            {running ? "Publishing…" : "Publish"}
          </button>
          <button type="button" onClick={() => setOpen(false)} disabled={running}>Close</button>
        </div>
      </form>
      {job && running && <ProgressBar value={job.progress} label="Publishing to HuggingFace" />}
      {job && running && <p className="muted" role="status">{job.current_stage ?? "Starting"}{job.message ? ` — ${job.message}` : ""}</p>}
      <ErrorMessage message={error ?? (failed ? job?.error_message : null)} testId="publish-hf-error" />
      {result && (
        <div data-testid="publish-hf-result">
          <p role="status">
            {result.committed
              ? `Published ${result.uploaded.length} file(s) to ${result.repo_id} (${result.unchanged.length} unchanged).`
              : `Nothing changed: ${result.repo_id} already holds these ${result.unchanged.length} files.`}
            {result.commit_url && <> <a href={result.commit_url} target="_blank" rel="noreferrer">View commit</a></>}
          </p>
          {(result.notes ?? []).map((note) => <p className="notice" key={note}>{note}</p>)}
          <pre className="command" data-testid="publish-hf-snippet">{result.load_snippet}</pre>
          <button type="button" onClick={copy}>{copied ? "Copied" : "Copy snippet"}</button>
        </div>
      )}
    </section>
  );
}
