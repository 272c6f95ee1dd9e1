/** Look inside an SAE archive in the browser (zip central directory, plain tar headers) and guess its format. */

/** File names in a zip archive, read from its central directory. */
export function zipEntryNames(buf: ArrayBuffer): string[] {
  const view = new DataView(buf);
  const min = Math.max(0, buf.byteLength - 65_557);
  let eocd = -1;
  for (let i = buf.byteLength - 22; i >= min; i--) {
    if (view.getUint32(i, true) === 0x06054b50) {
      eocd = i;
      break;
    }
  }
  if (eocd < 0) throw new Error("not a zip archive");
  const count = view.getUint16(eocd + 10, true);
  let offset = view.getUint32(eocd + 16, true);
  const decoder = new TextDecoder();
  const names: string[] = [];
  for (let n = 0; n < count && offset + 46 <= buf.byteLength; n++) {
    if (view.getUint32(offset, true) !== 0x02014b50) break;
    const nameLen = view.getUint16(offset + 28, true);
    const extraLen = view.getUint16(offset + 30, true);
    const commentLen = view.getUint16(offset + 32, true);
    names.push(decoder.decode(new Uint8Array(buf, offset + 46, nameLen)));
    offset += 46 + nameLen + extraLen + commentLen;
  }
  return names;
}

/** File names in an uncompressed tar archive. */
export function tarEntryNames(buf: ArrayBuffer): string[] {
  const bytes = new Uint8Array(buf);
  const decoder = new TextDecoder();
  const text = (start: number, len: number) => decoder.decode(bytes.subarray(start, start + len)).replace(/\0.*$/s, "");
  const names: string[] = [];
  let offset = 0;
  while (offset + 512 <= bytes.length) {
    const name = text(offset, 100);
    if (!name) break;
    const prefix = text(offset + 345, 155);
    const size = parseInt(text(offset + 124, 12).trim() || "0", 8);
    names.push(prefix ? `${prefix}/${name}` : name);
    offset += 512 + Math.ceil(size / 512) * 512;
  }
  return names;
}

/** A readable guess of the SAE format from the file names in an archive. */
export function guessFormat(names: string[]): string {
  const base = new Set(names.map((n) => n.split("/").pop() ?? n));
  if (base.has("mistudio_sae.json") || base.has("mistudio.json")) return "miStudio native";
  if (base.has("cfg.json") && base.has("sae_weights.safetensors")) return "SAELens";
  if (base.has("params.npz")) return "Gemma Scope (params.npz)";
  if (base.has("cfg.json") && base.has("sae.safetensors")) return "EleutherAI sparsify";
  if (base.has("ae.pt")) return "dictionary_learning";
  if ([...base].some((n) => n.endsWith(".safetensors"))) return "safetensors weights (format checked on import)";
  return "unknown — the server will try to detect it";
}

/** Inspect a chosen file: its entries and the guessed format ("" entries for formats we cannot list). */
export async function inspectArchive(file: File): Promise<{ entries: string[]; format: string }> {
  const lower = file.name.toLowerCase();
  const buf = await file.arrayBuffer();
  let entries: string[] = [];
  if (lower.endsWith(".zip")) entries = zipEntryNames(buf);
  else if (lower.endsWith(".tar")) entries = tarEntryNames(buf);
  else return { entries: [], format: "detected by the server on import" };
  return { entries, format: guessFormat(entries) };
}
