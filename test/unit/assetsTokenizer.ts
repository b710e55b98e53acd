// The project's Llama-2 tokenizer with FIM tokens (toolchain/mixsga/assets) under the fixture-tiny manifest: the
// real tokenizer for the unit tests of prompts, tokenization and generation.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Manifest, validateManifest } from '../../src/engine/manifest';
import { ModelTokenizer } from '../../src/engine/tokenizer';
import { tinyManifest } from './synth';

export function assetsTokenizer(): { tok: ModelTokenizer; manifest: Manifest } {
  const assets = path.resolve(__dirname, '../../../toolchain/mixsga/assets');
  const manifest = validateManifest(
    tinyManifest({ 'model.cpu.onnx': '', 'tokenizer.json': '', 'tokenizer_config.json': '' }),
  );
  const read = (name: string) => JSON.parse(fs.readFileSync(path.join(assets, name), 'utf8'));
  return { tok: ModelTokenizer.fromJson(read('tokenizer.json'), read('tokenizer_config.json'), manifest), manifest };
}
