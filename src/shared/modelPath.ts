// Which model folder to load: the user's mixsga.modelPath, else the trained model shipped in models/default,
// else the tiny fixture model (random weights) that ships until the trained one lands.
import * as fs from 'fs';
import * as path from 'path';

export interface ResolvedModel {
  dir: string;
  source: 'setting' | 'shipped' | 'fixture';
}

const hasManifest = (dir: string): boolean => fs.existsSync(path.join(dir, 'manifest.json'));

export function resolveModelDir(extensionPath: string, setting: string, workspaceRoot?: string): ResolvedModel {
  if (setting) {
    const dir = path.isAbsolute(setting) ? setting : path.resolve(workspaceRoot ?? extensionPath, setting);
    return { dir, source: 'setting' };
  }
  const shipped = path.join(extensionPath, 'models', 'default');
  if (hasManifest(shipped)) return { dir: shipped, source: 'shipped' };
  return { dir: path.join(extensionPath, 'test', 'fixtures', 'fixture-tiny'), source: 'fixture' };
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
