// Vocabulary masks for the graph's greedy decode loop (runner.ts): which tokens end generation inside the graph,
// and which tokens the first pick may take (token healing). Built once per tokenizer; the masks are read-only.
//
// The in-graph stop is only an early exit: the host's post-processing (postprocess/) sees every token anyway, so a mask
// may only hold tokens at which the host stops for sure — stop ids always, newline tokens in single-line mode.
import type { ModelTokenizer } from './tokenizer';

export class StopMasks {
  /** EOS, BOS, <unk> and the FIM tokens: generation ends there in every mode (none of them is code). */
  readonly stopIds: Set<number>;
  /** Nothing stops (prefill runs). */
  readonly none: Uint8Array;
  readonly eos: Uint8Array;
  /** eos + every token whose text holds a newline. */
  readonly singleLine: Uint8Array;
  private heal?: { text: string; mask: Float32Array };

  constructor(private readonly tok: ModelTokenizer) {
    const V = tok.manifest.architecture.vocab_size;
    const unk = tok.unk;
    this.stopIds = new Set([...tok.specialIds, ...(unk !== undefined ? [unk] : [])]);
    this.none = new Uint8Array(V);
    this.eos = new Uint8Array(V);
    for (const id of this.stopIds) if (id < V) this.eos[id] = 1;
    this.singleLine = Uint8Array.from(this.eos);
    tok.tokenTexts().forEach((t, i) => {
      if (t.includes('\n')) this.singleLine[i] = 1;
    });
  }

  /** [V] additive mask: 0 for tokens whose text starts with `healed`, -Infinity for the rest. */
  healing(healed: string): Float32Array {
    if (this.heal?.text === healed) return this.heal.mask;
    const mask = new Float32Array(this.none.length).fill(-Infinity);
    for (const id of this.tok.healingCandidates(healed)) if (id < mask.length) mask[id] = 0;
    this.heal = { text: healed, mask };
    return mask;
  }
}
