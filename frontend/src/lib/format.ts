/** Number, size and time formatting shared by the screens. */

export function formatBytes(bytes: number | null | undefined): string {
  if (bytes === null || bytes === undefined || !Number.isFinite(bytes)) return "—";
  const units = ["B", "KB", "MB", "GB", "TB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${value >= 100 || unit === 0 ? value.toFixed(0) : value.toFixed(1)} ${units[unit]}`;
}

export function formatDuration(seconds: number | null | undefined): string {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return "—";
  const s = Math.max(0, Math.round(seconds));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = s % 60;
  const pad = (n: number) => String(n).padStart(2, "0");
  return h > 0 ? `${h}:${pad(m)}:${pad(sec)}` : `${m}:${pad(sec)}`;
}

export function formatNumber(value: number | null | undefined, digits = 3): string {
  if (value === null || value === undefined || !Number.isFinite(value)) return "—";
  if (Number.isInteger(value)) return value.toLocaleString("en-US");
  const abs = Math.abs(value);
  if (abs !== 0 && (abs < 1e-3 || abs >= 1e6)) return value.toExponential(2);
  return value.toLocaleString("en-US", { maximumFractionDigits: digits });
}

export function formatPercent(fraction: number | null | undefined, digits = 0): string {
  if (fraction === null || fraction === undefined || !Number.isFinite(fraction)) return "—";
  return `${(fraction * 100).toFixed(digits)}%`;
}

/** Seconds between an ISO time and `end` (now by default). */
export function secondsSince(iso: string | null | undefined, end?: string | null): number | null {
  if (!iso) return null;
  const start = Date.parse(iso);
  const stop = end ? Date.parse(end) : Date.now();
  return Number.isFinite(start) && Number.isFinite(stop) ? Math.max(0, (stop - start) / 1000) : null;
}

export const SOURCE_LABELS: Record<string, string> = {
  trained: "Trained",
  huggingface: "HuggingFace",
  gemma_scope: "Gemma Scope",
  upload: "Upload",
};

export function sourceLabel(source: string): string {
  return SOURCE_LABELS[source] ?? source;
}

/** A token as shown inside running text: newlines and tabs made visible, spaces kept. */
export function displayToken(token: string): string {
  return token.replace(/\n/g, "↵").replace(/\t/g, "⇥");
}

/** A token shown on its own (tables, chips): spaces become "␣" so " the" and "the" differ visibly. */
export function chipToken(token: string): string {
  return token === "" ? "∅" : displayToken(token).replace(/ /g, "␣");
}

/** "1234/5678 bytes" (the download job's message) → "1.2 KB of 5.5 KB"; other messages unchanged. */
export function describeJobMessage(message: string | null | undefined): string {
  if (!message) return "";
  const m = /^(\d+)\/(\d+) bytes$/.exec(message.trim());
  return m ? `${formatBytes(Number(m[1]))} of ${formatBytes(Number(m[2]))}` : message;
}
