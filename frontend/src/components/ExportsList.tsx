/** Every export archive in the store, with its size and status; download or delete one. */
import { useEffect, useState } from "react";
import { api } from "../api/client";
import type { Export } from "../api/types";
import { formatBytes } from "../lib/format";
import { navigate } from "../lib/router";
import { exportsActions, useExports, useExportsError, useExportsLoaded, useExportsTotal } from "../stores/exportsStore";
import { ConfirmDialog } from "./ConfirmDialog";
import { ErrorMessage } from "./ErrorMessage";

function ExportRow({ item, onDelete }: { item: Export; onDelete: (item: Export) => void }) {
  return (
    <tr data-testid="export-row" data-status={item.status}>
      <td className="mono">{item.id.slice(0, 8)}</td>
      <td>
        <a href={`/saes/${item.sae_id}`} className="mono"
          onClick={(e) => { e.preventDefault(); navigate(`/saes/${item.sae_id}`); }}>{item.sae_id.slice(0, 8)}</a>
      </td>
      <td><span className={`status status-${item.status}`}>{item.status}</span></td>
      <td className="num">{item.feature_count ?? "—"}</td>
      <td className="num">{item.file_size_bytes != null ? formatBytes(item.file_size_bytes) : "—"}</td>
      <td className="muted">{item.created_at ? new Date(item.created_at).toLocaleString() : "—"}</td>
      <td><div className="row-actions">
        {item.status === "completed" && item.job_id && (
          <a className="button" href={api.exportDownloadUrl(item.sae_id, item.job_id)} download>Download</a>
        )}
        <button type="button" className="danger" onClick={() => onDelete(item)}>Delete</button>
      </div></td>
    </tr>
  );
}

export function ExportsList() {
  const items = useExports();
  const total = useExportsTotal();
  const loaded = useExportsLoaded();
  const error = useExportsError();
  const [deleting, setDeleting] = useState<Export | null>(null);
  useEffect(() => {
    void exportsActions.refresh();
  }, []);
  const size = items.reduce((sum, e) => sum + (e.file_size_bytes ?? 0), 0);
  return (
    <section className="panel" aria-labelledby="exports-title" data-testid="exports-list">
      <header className="panel-header"><h1 id="exports-title">Exports</h1></header>
      <ErrorMessage message={error} />
      {loaded && !items.length && !error && <p className="muted">No exports yet.</p>}
      {items.length > 0 && (
        <>
          <p className="muted">{total} export(s), {formatBytes(size)} of archives</p>
          <div className="table-wrap">
            <table className="jobs-table" aria-label="Exports">
              <thead><tr><th>Export</th><th>SAE</th><th>Status</th><th className="num">Features</th>
                <th className="num">Size</th><th>Created</th><th>Actions</th></tr></thead>
              <tbody>{items.map((e) => <ExportRow key={e.id} item={e} onDelete={setDeleting} />)}</tbody>
            </table>
          </div>
        </>
      )}
      {deleting && (
        <ConfirmDialog title="Delete export" confirmLabel="Delete"
          message={`Delete export ${deleting.id.slice(0, 8)} and its archive? This cannot be undone.`}
          onConfirm={() => exportsActions.remove(deleting.id)} onClose={() => setDeleting(null)} />
      )}
    </section>
  );
}
