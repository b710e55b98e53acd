// Line breaks: the model's text is handled with '\n' only (a stray '\r' never ends a single-line completion);
// the lines of the final text are joined with the document's own line break.
import type { Filter } from './filter';

export const normalizeBreaks = (text: string): string => text.replace(/\r\n?/g, '\n');

export const lineBreaks: Filter = {
  shape(text, c) {
    return c.eol === '\n' ? text : text.replace(/\n/g, c.eol);
  },
};
