// Typing-along reuse: when the user types the first characters of the suggestion being shown, serve the rest
// from memory instead of asking the engine again. Keyed by document, anchored at the request's offset.
export interface CachedSuggestion {
  docId: string;
  /** Document offset where the suggestion starts. */
  anchor: number;
  /** Last characters before the anchor at request time; guards against edits above the cursor. */
  before: string;
  text: string;
  at: number;
}

const GUARD_CHARS = 256;
const MAX_DOCS = 32;

export class SuggestionCache {
  private readonly byDoc = new Map<string, CachedSuggestion>();

  put(docId: string, anchor: number, prefix: string, text: string): void {
    this.byDoc.delete(docId);
    this.byDoc.set(docId, { docId, anchor, before: prefix.slice(-GUARD_CHARS), text, at: Date.now() });
    if (this.byDoc.size > MAX_DOCS) this.byDoc.delete(this.byDoc.keys().next().value as string);
  }

  /**
   * @param offset cursor offset now
   * @param textBefore (start, end) => document text in that offset range
   * @returns the remaining suggestion, or undefined when the typed text diverged
   */
  lookup(docId: string, offset: number, textBefore: (start: number, end: number) => string): string | undefined {
    const c = this.byDoc.get(docId);
    if (!c || offset < c.anchor) return undefined;
    const typed = textBefore(c.anchor, offset);
    if (!c.text.startsWith(typed) || typed.length >= c.text.length) return undefined;
    if (textBefore(Math.max(0, c.anchor - c.before.length), c.anchor) !== c.before) return undefined;
    return c.text.slice(typed.length);
  }

  /** The last suggestion for the document was used up or typed past: the user is following our suggestions. */
  recentlyFollowed(docId: string, offset: number, withinMs: number): boolean {
    const c = this.byDoc.get(docId);
    return !!c && Date.now() - c.at < withinMs && offset >= c.anchor + c.text.length;
  }

  forget(docId: string): void {
    this.byDoc.delete(docId);
  }

  clear(): void {
    this.byDoc.clear();
  }
}
