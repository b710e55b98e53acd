// Shared by the post-processing golden tests: a pipeline for a spot, and a stream that feeds text to it the way
// generate() does (one character per token here), returning the first stop or the finished text.
import { PostInput, PostProcessor, StopDecision } from '../../src/engine/postprocess';

export const pipeline = (o: Partial<PostInput>): PostProcessor =>
  new PostProcessor({ multiline: false, prefix: '', suffix: '', maxTokens: 1000, stopIds: new Set([2]), ...o });

export function stream(p: PostProcessor, text: string): StopDecision {
  for (let i = 1; i <= text.length; i++) {
    const d = p.check(
      text.slice(0, i),
      Array.from({ length: i }, (_, k) => 100 + k),
    );
    if (d.stop) return d;
  }
  return { stop: null, text: p.finish(text) };
}
