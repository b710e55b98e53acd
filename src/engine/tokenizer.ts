// The model's tokenizer (@huggingface/tokenizers over tokenizer.json + tokenizer_config.json), with what the
// engine needs beyond encode/decode: fragment encoding (no BOS, no SentencePiece leading-space artefact),
// FIM ids from the manifest, and token healing.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Tokenizer } from '@huggingface/tokenizers';
import { LRUCache } from 'lru-cache';
import type { Manifest } from './manifest';

export interface Healing {
  /** Prompt ids with the backed-off token(s) removed. */
  ids: number[];
  /** Text of the removed tokens: the first generated token must start with it. */
  removed: string;
}

/** Parses a JSON file; the error names the file and says what is wrong (missing, a folder, not JSON). */
function readJson(file: string): unknown {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new Error(
      code === 'EISDIR'
        ? `${file} is a folder, expected a JSON file`
        : code === 'ENOENT'
          ? `${file} is missing`
          : `${file}: cannot be read (${(e as Error).message})`,
      { cause: e },
    );
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new Error(`${file} is not valid JSON: ${(e as Error).message}`, { cause: e });
  }
}

export class ModelTokenizer {
  private texts?: string[];
  private readonly marker: number[];
  private readonly markerText: string;
  readonly specialIds: Set<number>;

  private readonly plain: Tokenizer;
  /**
   * Encodings of single lines, when that is exact: with no token spanning a newline (Llama's SentencePiece: the
   * only one is the "\n" byte token), a text's ids are its lines' ids joined by the newline ids. A keystroke then
   * re-encodes one line instead of the whole ~5k-character prompt (≈50 ms in @huggingface/tokenizers' JS).
   */
  private lines?: { cache: LRUCache<string, number[]>; newline: number[] } | null; // null: not exact, decided once

  /**
   * `tok` decodes (and knows the special tokens); `plain` encodes user text: the same tokenizer without its added
   * tokens, so a literal "<fim_prefix>" or "</s>" in a document is encoded as plain text, never as the special id
   * (@huggingface/tokenizers 0.2.0 always splits added tokens out in encode(); training encoded text the way
   * Python's tokenizers does with encode_special_tokens=True, which this reproduces). Use fromJson() to get both;
   * without `plain`, special-token text in documents is not protected.
   */
  constructor(
    private readonly tok: Tokenizer,
    readonly manifest: Manifest,
    plain?: Tokenizer,
  ) {
    this.plain = plain ?? tok;
    // SentencePiece-style tokenizers prepend "▁" to every encoded string. Encoding "\n" + text and dropping the
    // ids of "\n" gives the text's ids as they appear mid-document (a newline is never merged with what follows).
    this.marker = this.plain.encode('\n', { add_special_tokens: false }).ids;
    this.markerText = tok.decode(this.marker, { skip_special_tokens: false });
    const f = manifest.fim;
    this.specialIds = new Set([
      manifest.tokenizer.bos_id,
      manifest.tokenizer.eos_id,
      ...(f ? [f.prefix_id, f.middle_id, f.suffix_id, f.pad_id, f.file_sep_id] : []),
    ]);
  }

  /** Builds the decoding tokenizer and the plain-text encoder (no added tokens) from tokenizer.json + config. */
  static fromJson(json: any, cfg: any, manifest: Manifest): ModelTokenizer {
    // eslint-disable-next-line @typescript-eslint/no-unused-vars
    const { additional_special_tokens, added_tokens_decoder, ...plainCfg } = cfg ?? {};
    // Non-special added tokens stay: Python's encode_special_tokens=True still matches those in text.
    const plain = new Tokenizer(
      { ...json, added_tokens: (json.added_tokens ?? []).filter((t: { special?: boolean }) => !t.special) },
      plainCfg,
    );
    return new ModelTokenizer(new Tokenizer(json, cfg ?? {}), manifest, plain);
  }

  /** Loads the model folder's tokenizer; every failure names the file it comes from. */
  static load(dir: string, manifest: Manifest): ModelTokenizer {
    const file = path.join(dir, manifest.tokenizer.file);
    const json = readJson(file);
    const cfgPath = path.join(dir, manifest.tokenizer.config);
    const cfg = fs.existsSync(cfgPath) ? readJson(cfgPath) : {};
    let t: ModelTokenizer;
    try {
      t = ModelTokenizer.fromJson(json, cfg, manifest);
    } catch (e) {
      throw new Error(`${file}: not a usable tokenizer (${(e as Error).message})`, { cause: e });
    }
    const f = manifest.fim;
    if (f) {
      // The manifest's FIM ids are authoritative; a tokenizer that disagrees would build wrong prompts.
      for (const [name, id] of [
        [f.prefix, f.prefix_id],
        [f.middle, f.middle_id],
        [f.suffix, f.suffix_id],
      ] as const) {
        const got = t.tok.token_to_id(name);
        if (got !== undefined && got !== id) throw new Error(`${file} maps ${name} to ${got}, manifest says ${id}`);
      }
    }
    return t;
  }

  get bos(): number {
    return this.manifest.tokenizer.bos_id;
  }
  /** Id of the unknown-token piece ('<unk>'), if the vocabulary has one: never text a completion should show. */
  get unk(): number | undefined {
    return this.tok.token_to_id('<unk>') ?? undefined;
  }
  get eos(): number {
    return this.manifest.tokenizer.eos_id;
  }
  get addBos(): boolean {
    return this.manifest.tokenizer.add_bos;
  }

  /** Ids of `text` as a piece of a longer document: no BOS, no leading "▁". */
  encodeFragment(text: string): number[] {
    if (text.length === 0) return [];
    if (this.lines === undefined) this.lines = this.lineCacheIfExact();
    const c = this.lines;
    if (!c || !text.includes('\n')) return this.encodeWhole(text);
    const out: number[] = [];
    text.split('\n').forEach((line, i) => {
      if (i > 0) out.push(...c.newline);
      if (!line) return;
      let ids = c.cache.get(line);
      if (!ids) {
        ids = this.encodeWhole(line);
        c.cache.set(line, ids);
      }
      out.push(...ids);
    });
    return out;
  }

  /** The line cache when every token holding a newline is the newline itself, else null (encode whole texts). */
  private lineCacheIfExact(): { cache: LRUCache<string, number[]>; newline: number[] } | null {
    const newline = this.encodeWhole('\n');
    const spans = this.tokenTexts().some((t, i) => t.includes('\n') && !(newline.length === 1 && i === newline[0]));
    return spans || newline.length !== 1 ? null : { cache: new LRUCache({ max: 20_000 }), newline };
  }

  private encodeWhole(text: string): number[] {
    const ids = this.plain.encode('\n' + text, { add_special_tokens: false }).ids;
    const m = this.marker;
    if (m.length > 0 && m.every((x, i) => ids[i] === x)) return ids.slice(m.length);
    return this.plain.encode(text, { add_special_tokens: false }).ids;
  }

  /** Text of ids that follow other text (no leading-space stripping by the decoder). */
  decodeFragment(ids: ArrayLike<number>): string {
    if (ids.length === 0) return '';
    const s = this.tok.decode([...this.marker, ...Array.from(ids)], { skip_special_tokens: false });
    return s.startsWith(this.markerText) ? s.slice(this.markerText.length) : this.tok.decode(Array.from(ids));
  }

  /** Text of every token id on its own, as it would appear mid-document (lazily built once). */
  tokenTexts(): string[] {
    if (!this.texts) {
      const n = this.manifest.architecture.vocab_size;
      this.texts = new Array<string>(n);
      for (let i = 0; i < n; i++) {
        const piece = this.tok.id_to_token(i);
        if (piece === undefined) {
          this.texts[i] = '';
          continue;
        }
        const byte = /^<0x([0-9A-Fa-f]{2})>$/.exec(piece);
        this.texts[i] = byte
          ? parseInt(byte[1], 16) < 0x80
            ? String.fromCharCode(parseInt(byte[1], 16))
            : '\ufffd'
          : this.specialIds.has(i)
            ? ''
            : piece.replace(/▁/g, ' ');
      }
    }
    return this.texts;
  }

  /**
   * Token healing: backs off the last token of `ids` (the text right before the cursor), unless the text ends
   * a line or the token is special, so the model may pick a longer token that starts with it.
   */
  heal(ids: number[], prefixText: string): Healing {
    if (ids.length === 0 || prefixText.endsWith('\n')) return { ids, removed: '' };
    const last = ids[ids.length - 1];
    const removed = this.tokenTexts()[last] ?? '';
    if (!removed || this.specialIds.has(last) || removed.includes('\ufffd')) return { ids, removed: '' };
    return { ids: ids.slice(0, -1), removed };
  }

  /** Token ids whose text starts with `removed` (the allowed first tokens after healing). */
  healingCandidates(removed: string): Int32Array {
    const t = this.tokenTexts();
    const out: number[] = [];
    for (let i = 0; i < t.length; i++) if (t[i] && t[i].startsWith(removed)) out.push(i);
    return Int32Array.from(out);
  }
}
