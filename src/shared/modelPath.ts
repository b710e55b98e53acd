// Which model folder to load: the user's mixsga.modelPath, else one of the models shipped in models/<name>/ (picked
// by modelChoice.ts from their manifests, the device and the core count, or named by mixsga.model), else the tiny
// fixture model (random weights) of a checkout without models/.
import * as fs from 'fs';
import * as path from 'path';
import { AUTO_MODEL, chooseModel, type ManifestSummary, type ShippedModel } from './modelChoice';

export interface ResolvedModel {
  dir: string;
  source: 'setting' | 'shipped' | 'fixture';
}

export interface ActiveModel extends ResolvedModel {
  /** Folder name under models/ (shipped models only). */
  folder?: string;
  /** Why this model, in one line. */
  reason: string;
  /** Its manifest as read (undefined when unreadable: the engine then names the problem). */
  manifest?: ManifestSummary;
  /** mixsga.model named no shipped model. */
  problem?: string;
}

const hasManifest = (dir: string): boolean => fs.existsSync(path.join(dir, 'manifest.json'));

/** The manifest of a model folder as JSON, or undefined when it is missing or not a JSON object. */
export function readManifestSummary(dir: string): ManifestSummary | undefined {
  try {
    const m: unknown = JSON.parse(fs.readFileSync(path.join(dir, 'manifest.json'), 'utf8'));
    return m && typeof m === 'object' && !Array.isArray(m) ? (m as ManifestSummary) : undefined;
  } catch {
    return undefined;
  }
}

/** Every folder under <extension>/models/ with a readable manifest.json, by name. */
export function listShippedModels(extensionPath: string): ShippedModel[] {
  const root = path.join(extensionPath, 'models');
  let names: string[];
  try {
    names = fs.readdirSync(root).sort();
  } catch {
    return [];
  }
  const out: ShippedModel[] = [];
  for (const folder of names) {
    const manifest = readManifestSummary(path.join(root, folder));
    if (manifest) out.push({ folder, manifest });
  }
  return out;
}

/**
 * The model the engine loads. mixsga.modelPath (`modelPath`, a folder; relative to the workspace) overrides
 * everything; else mixsga.model (`model`: "auto" or a folder under models/) and, for auto, the device the engine
 * runs on and the CPU's cores (os.availableParallelism()) pick among the shipped models.
 */
export function resolveActiveModel(
  extensionPath: string,
  s: { modelPath: string; model: string },
  device: 'cuda' | 'cpu',
  cpuCores: number,
  workspaceRoot?: string,
): ActiveModel {
  if (s.modelPath) {
    const dir = path.isAbsolute(s.modelPath) ? s.modelPath : path.resolve(workspaceRoot ?? extensionPath, s.modelPath);
    const ignored = s.model && s.model !== AUTO_MODEL ? ' (mixsga.model is ignored while it is set)' : '';
    return { dir, source: 'setting', reason: `set by mixsga.modelPath${ignored}`, manifest: readManifestSummary(dir) };
  }
  const models = listShippedModels(extensionPath);
  const choice = chooseModel(models, device, cpuCores, s.model);
  if (!choice) {
    const dir = path.join(extensionPath, 'test', 'fixtures', 'fixture-tiny');
    return { dir, source: 'fixture', reason: 'no model in models/: the test fixture (random weights)' };
  }
  return {
    dir: path.join(extensionPath, 'models', choice.folder),
    source: 'shipped',
    folder: choice.folder,
    reason: choice.reason,
    manifest: models.find((m) => m.folder === choice.folder)?.manifest,
    ...(choice.problem ? { problem: choice.problem } : {}),
  };
}

/** A problem with the folder that can be named before the engine tries it (the engine checks the rest). */
export function modelFolderProblem(dir: string): string | undefined {
  if (!fs.existsSync(dir)) return `model folder not found: ${dir}`;
  if (!fs.statSync(dir).isDirectory()) return `model path is not a folder: ${dir}`;
  if (!hasManifest(dir)) return `no manifest.json in the model folder ${dir}`;
  try {
    JSON.parse(fs.readFileSync(path.join(dir, 'manifest.json'), 'utf8'));
  } catch (e) {
    return `manifest.json in ${dir} is not valid JSON (${(e as Error).message})`;
  }
  return undefined;
}
