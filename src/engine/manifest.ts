// Loads and validates a model folder's manifest.json (docs/model-format.md, format_version 2).
// Every failure throws ManifestError with a message meant for the user.
import { parseCascade } from './kvCascade';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createHash } from 'node:crypto';

export class ManifestError extends Error {}

export type KvDtype = 'float32' | 'float16';

export interface Expert {
  group_size: number;
  kv_heads: number;
}

export interface Architecture {
  type: string;
  vocab_size: number;
  hidden_size: number;
  /** MLP width and tied embeddings: not needed to run the graph, read for the parameter count (modelChoice.ts). */
  intermediate_size?: number;
  tie_word_embeddings?: boolean;
  num_layers: number;
  num_attention_heads: number;
  num_kv_heads: number;
  head_dim: number;
  /** RoPE base (default 10000): the engine rotates cached keys when a view moves them (spotView.ts). */
  rope_theta?: number;
  max_position_embeddings: number;
}

export interface FimSpec {
  prefix: string;
  middle: string;
  suffix: string;
  pad: string;
  file_sep: string;
  prefix_id: number;
  middle_id: number;
  suffix_id: number;
  pad_id: number;
  file_sep_id: number;
  orderings: string[];
}

export interface Variant {
  file: string;
  kv_dtype: KvDtype;
  weights?: string;
}

export interface Manifest {
  format: 'mixsga-onnx';
  format_version: 2;
  name: string;
  architecture: Architecture;
  experts: Expert[];
  default_ratios?: number[];
  /** KV cache policy the model was trained for (kv_policy.py spec); an age cascade makes the engine keep old tokens
   * in quantised tiers (kvCascade.ts). Absent: router-score demotion between the experts. */
  kv_policy?: string;
  tokenizer: { file: string; config: string; bos_id: number; eos_id: number; add_bos: boolean };
  fim: FimSpec | null;
  variants: { cpu?: Variant; cuda?: Variant };
  /** Fewest CPU cores (os.availableParallelism()) on which the model is fast enough for typing; absent: any. */
  min_cpu_cores?: number;
  files: Record<string, string>;
}

export interface LoadedManifest {
  dir: string;
  manifest: Manifest;
}

function req(cond: unknown, what: string): asserts cond {
  if (!cond) throw new ManifestError(`manifest.json: ${what}`);
}
const isInt = (x: unknown): x is number => typeof x === 'number' && Number.isInteger(x);

export function validateManifest(m: any): Manifest {
  req(m && typeof m === 'object', 'not a JSON object');
  req(m.format === 'mixsga-onnx', `unknown format ${JSON.stringify(m.format)} (expected "mixsga-onnx")`);
  req(
    m.format_version === 2,
    `unknown format_version ${JSON.stringify(m.format_version)} (this engine reads version 2; re-export the model with this version's toolchain)`,
  );
  const a = m.architecture;
  req(a && typeof a === 'object', 'missing "architecture"');
  for (const k of [
    'vocab_size',
    'hidden_size',
    'num_layers',
    'num_attention_heads',
    'num_kv_heads',
    'head_dim',
    'max_position_embeddings',
  ]) {
    req(isInt(a[k]) && a[k] > 0, `architecture.${k} must be a positive integer`);
  }
  req(a.num_attention_heads % a.num_kv_heads === 0, 'num_attention_heads must be a multiple of num_kv_heads');
  req(Array.isArray(m.experts) && m.experts.length > 0, '"experts" must be a non-empty array');
  m.experts.forEach((e: any, i: number) => {
    req(isInt(e?.group_size) && isInt(e?.kv_heads), `experts[${i}] needs integer group_size and kv_heads`);
    req(e.group_size * e.kv_heads === a.num_kv_heads, `experts[${i}]: group_size × kv_heads must equal num_kv_heads`);
    if (i > 0)
      req(
        e.kv_heads < m.experts[i - 1].kv_heads && m.experts[i - 1].kv_heads % e.kv_heads === 0,
        `experts[${i}] must be coarser than experts[${i - 1}] (fewer heads, dividing them)`,
      );
  });
  req(m.experts[0].group_size === 1, 'experts[0] must be the full-KV expert (group_size 1)');
  const t = m.tokenizer;
  req(t && typeof t.file === 'string' && typeof t.config === 'string', 'tokenizer.file and tokenizer.config required');
  req(isInt(t.bos_id) && isInt(t.eos_id) && typeof t.add_bos === 'boolean', 'tokenizer needs bos_id, eos_id, add_bos');
  if (m.fim !== null) {
    req(m.fim && typeof m.fim === 'object', '"fim" must be an object or null');
    for (const k of ['prefix_id', 'middle_id', 'suffix_id', 'pad_id', 'file_sep_id'])
      req(isInt(m.fim[k]), `fim.${k} must be an integer`);
  }
  req(m.variants && (m.variants.cpu || m.variants.cuda), 'no variants');
  for (const [name, v] of Object.entries<any>(m.variants)) {
    req(typeof v?.file === 'string', `variants.${name}.file missing`);
    req(v.kv_dtype === 'float32' || v.kv_dtype === 'float16', `variants.${name}.kv_dtype must be float32 or float16`);
  }
  req(m.files && typeof m.files === 'object', '"files" (sha256 per file) missing');
  if (m.kv_policy !== undefined) {
    req(
      typeof m.kv_policy === 'string',
      '"kv_policy" must be a string such as "band=32,order=age,stores=g1-int8|g1-int4c|g2-int4c"',
    );
    try {
      parseCascade(
        m.kv_policy,
        m.experts.map((e: Expert) => e.kv_heads),
        { theta: 1e4, headDim: a.head_dim },
      );
    } catch (e) {
      req(false, (e as Error).message);
    }
  }
  return m as Manifest;
}

function sha256File(p: string): string {
  const h = createHash('sha256');
  const fd = fs.openSync(p, 'r');
  try {
    const buf = Buffer.allocUnsafe(1 << 20);
    let n: number;
    while ((n = fs.readSync(fd, buf, 0, buf.length, null)) > 0) h.update(buf.subarray(0, n));
  } finally {
    fs.closeSync(fd);
  }
  return h.digest('hex');
}

/** Reads, validates and checksums a model folder. `checkHashes: false` skips sha256 (tests of huge folders only). */
export function loadManifest(dir: string, opts: { checkHashes?: boolean } = {}): LoadedManifest {
  if (!dir || !fs.existsSync(dir)) throw new ManifestError(`model folder not found: ${dir}`);
  if (!fs.statSync(dir).isDirectory()) throw new ManifestError(`model path is not a folder: ${dir}`);
  const mp = path.join(dir, 'manifest.json');
  if (!fs.existsSync(mp)) throw new ManifestError(`no manifest.json in ${dir}`);
  let raw: unknown;
  try {
    raw = JSON.parse(fs.readFileSync(mp, 'utf8'));
  } catch (e) {
    throw new ManifestError(`manifest.json in ${dir} is not valid JSON: ${(e as Error).message}`);
  }
  const manifest = validateManifest(raw);
  // Files the engine will read must be listed, so they are covered by a checksum.
  const needed = [
    manifest.tokenizer.file,
    manifest.tokenizer.config,
    ...Object.values(manifest.variants).map((v) => v!.file),
  ];
  for (const f of needed) {
    if (!(f in manifest.files)) throw new ManifestError(`manifest.json: "files" has no sha256 for ${f}`);
  }
  if (opts.checkHashes !== false) {
    for (const [f, want] of Object.entries(manifest.files)) {
      const p = path.join(dir, f);
      if (!fs.existsSync(p)) {
        // An optional variant may be listed in variants but shipped separately; every other file is required.
        const isVariant = Object.values(manifest.variants).some((v) => v!.file === f);
        if (isVariant && f !== manifest.variants.cpu?.file) continue;
        throw new ManifestError(`${f}: listed in manifest.json but missing from ${dir}`);
      }
      if (fs.statSync(p).isDirectory()) throw new ManifestError(`${f}: is a folder in ${dir}, expected a file`);
      const got = sha256File(p);
      if (got !== String(want).toLowerCase()) {
        throw new ManifestError(
          `${f}: sha256 mismatch (manifest ${want}, file ${got}) — the model folder is corrupt or was modified`,
        );
      }
    }
  }
  return { dir, manifest };
}
