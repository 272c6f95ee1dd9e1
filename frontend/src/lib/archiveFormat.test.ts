import { describe, expect, it } from "vitest";
import { guessFormat, tarEntryNames, zipEntryNames } from "./archiveFormat";

/** A stored (uncompressed) zip holding empty files `names`. */
function makeZip(names: string[]): ArrayBuffer {
  const enc = new TextEncoder();
  const local: number[] = [];
  const central: number[] = [];
  const u16 = (n: number) => [n & 0xff, (n >> 8) & 0xff];
  const u32 = (n: number) => [...u16(n & 0xffff), ...u16(n >>> 16)];
  for (const name of names) {
    const bytes = [...enc.encode(name)];
    const offset = local.length;
    local.push(...u32(0x04034b50), ...u16(20), ...u16(0), ...u16(0), ...u32(0), ...u32(0), ...u32(0), ...u32(0),
      ...u16(bytes.length), ...u16(0), ...bytes);
    central.push(...u32(0x02014b50), ...u16(20), ...u16(20), ...u16(0), ...u16(0), ...u32(0), ...u32(0), ...u32(0),
      ...u32(0), ...u16(bytes.length), ...u16(0), ...u16(0), ...u16(0), ...u16(0), ...u32(0), ...u32(offset), ...bytes);
  }
  const end = [...u32(0x06054b50), ...u16(0), ...u16(0), ...u16(names.length), ...u16(names.length),
    ...u32(central.length), ...u32(local.length), ...u16(0)];
  return new Uint8Array([...local, ...central, ...end]).buffer;
}

function makeTar(names: string[]): ArrayBuffer {
  const out = new Uint8Array(512 * (names.length + 2));
  names.forEach((name, i) => {
    out.set(new TextEncoder().encode(name), i * 512);
    out.set(new TextEncoder().encode("00000000000\0"), i * 512 + 124);
  });
  return out.buffer;
}

describe("archive inspection", () => {
  it("lists zip and tar entries", () => {
    expect(zipEntryNames(makeZip(["sae/cfg.json", "sae/sae_weights.safetensors"]))).toEqual(["sae/cfg.json", "sae/sae_weights.safetensors"]);
    expect(tarEntryNames(makeTar(["a/params.npz", "a/README.md"]))).toEqual(["a/params.npz", "a/README.md"]);
    expect(() => zipEntryNames(new ArrayBuffer(40))).toThrow(/not a zip/);
  });

  it("guesses the SAE format from file names", () => {
    expect(guessFormat(["x/cfg.json", "x/sae_weights.safetensors"])).toBe("SAELens");
    expect(guessFormat(["layer_0/params.npz"])).toMatch(/Gemma Scope/);
    expect(guessFormat(["cfg.json", "sae.safetensors"])).toBe("EleutherAI sparsify");
    expect(guessFormat(["ae.pt", "config.json"])).toBe("dictionary_learning");
    expect(guessFormat(["notes.txt"])).toMatch(/unknown/);
  });
});
