// Which shipped model (a folder under models/) the extension loads, from the manifests alone (issue 16): a bigger
// model may be too slow for typing on a CPU with few cores, so a manifest may name the cores it needs on the CPU
// (`min_cpu_cores`, docs/model-format.md). CUDA takes the largest model; the CPU the largest whose need is met.
// Pure: the caller reads the manifests (modelPath.ts listShippedModels) and the core count.
import type { Architecture, Manifest } from '../engine/manifest';

/** The manifest fields the choice reads, as found on disk before the engine validates the whole manifest
 * (src/engine/manifest.ts): any of them may be missing. */
export type ManifestSummary = Partial<Pick<Manifest, 'name' | 'variants' | 'min_cpu_cores'>> & {
  architecture?: Partial<Architecture>;
};

export interface ShippedModel {
  /** Folder name under models/ (what mixsga.model names). */
  folder: string;
  manifest: ManifestSummary;
}

export interface ModelChoice {
  folder: string;
  /** One line for the gauge tooltip, the memory panel and the log. */
  reason: string;
  /** Set when mixsga.model named no shipped model (the choice then is auto's). */
  problem?: string;
}

export const AUTO_MODEL = 'auto';

/**
 * Parameters of a llama-architecture model (embedding, attention, gated MLP, norms, untied lm_head) from its
 * manifest, without mixSGA's routers (a few thousand). Undefined when a field it needs is missing.
 */
export function parameterCount(a: ManifestSummary['architecture']): number | undefined {
  if (!a) return undefined;
  const need = [
    'vocab_size',
    'hidden_size',
    'intermediate_size',
    'num_layers',
    'num_attention_heads',
    'num_kv_heads',
    'head_dim',
  ] as const;
  if (!need.every((k) => typeof a[k] === 'number' && Number.isFinite(a[k]) && a[k] > 0)) return undefined;
  const [V, h, I, L, q, kv, d] = need.map((k) => a[k] as number);
  const layer = h * q * d * 2 + h * kv * d * 2 + 3 * h * I + 2 * h; // q, o; k, v; gate, up, down; two RMS norms
  return V * h * (a.tie_word_embeddings === false ? 2 : 1) + L * layer + h; // embedding (+ lm_head), final norm
}

/** "22.9M" / "1.1B". */
export function formatParams(n: number): string {
  return n >= 1e9 ? `${(n / 1e9).toFixed(1)}B` : `${(n / 1e6).toFixed(1)}M`;
}

/** The cores a model asks for on the CPU: a positive integer, else 1 (a bad value must not hide the model). */
export function minCpuCores(m: ManifestSummary): number {
  const c = m.min_cpu_cores;
  return typeof c === 'number' && Number.isInteger(c) && c > 0 ? c : 1;
}

const size = (m: ShippedModel): number => parameterCount(m.manifest.architecture) ?? 0;
const hasVariant = (m: ShippedModel, device: 'cuda' | 'cpu'): boolean =>
  !m.manifest.variants || m.manifest.variants[device] !== undefined;
const cores = (n: number): string => `${n} core${n === 1 ? '' : 's'}`;

/** Largest first; equal sizes by folder name, so the choice never depends on directory order. */
function bySize(models: ShippedModel[]): ShippedModel[] {
  return [...models].sort((a, b) => size(b) - size(a) || a.folder.localeCompare(b.folder));
}

/**
 * The model to load. `setting` is mixsga.model: "auto" or a shipped folder name (an unknown name yields `problem`
 * and auto's choice). `device` is the device the engine runs on; `cpuCores` os.availableParallelism(). Undefined
 * only when `models` is empty.
 */
export function chooseModel(
  models: ShippedModel[],
  device: 'cuda' | 'cpu',
  cpuCores: number,
  setting: string = AUTO_MODEL,
): ModelChoice | undefined {
  if (!models.length) return undefined;
  let problem: string | undefined;
  const wanted = setting.trim();
  if (wanted && wanted !== AUTO_MODEL) {
    const hit = models.find((m) => m.folder === wanted);
    if (hit) return { folder: hit.folder, reason: 'set by mixsga.model' };
    problem =
      `mixsga.model "${wanted}" is not a shipped model (shipped: ${models.map((m) => m.folder).join(', ')}; ` +
      `or "auto"); choosing automatically`;
  }
  const pick = (c: Omit<ModelChoice, 'problem'>): ModelChoice => (problem ? { ...c, problem } : c);
  if (models.length === 1) return pick({ folder: models[0].folder, reason: 'the only shipped model' });
  // A model without the device's variant still loads (the engine falls back), but is not chosen while another fits.
  const withVariant = models.filter((m) => hasVariant(m, device));
  const ranked = bySize(withVariant.length ? withVariant : models);
  if (device === 'cuda') return pick({ folder: ranked[0].folder, reason: 'CUDA: the largest model' });
  const n = Math.max(1, Math.floor(cpuCores) || 1);
  const fits = ranked.filter((m) => minCpuCores(m.manifest) <= n);
  if (!fits.length) {
    const least = [...ranked].sort((a, b) => minCpuCores(a.manifest) - minCpuCores(b.manifest))[0];
    return pick({ folder: least.folder, reason: `CPU, ${cores(n)}: every model asks for more; the least demanding` });
  }
  if (fits[0] === ranked[0]) return pick({ folder: fits[0].folder, reason: `CPU, ${cores(n)}: the largest model` });
  return pick({
    folder: fits[0].folder,
    reason: `CPU, ${cores(n)}: small model for typing speed (${ranked[0].folder} asks for ${cores(minCpuCores(ranked[0].manifest))})`,
  });
}

/** What the gauge tooltip and the memory panel say about the model: name, size and device. */
export function modelLabel(m: ManifestSummary | undefined, fallbackName: string, device?: string): string {
  const params = parameterCount(m?.architecture);
  const name = m?.name || fallbackName;
  return `${name}${params ? ` (${formatParams(params)} parameters)` : ''}${device ? ` on ${device.toUpperCase()}` : ''}`;
}
