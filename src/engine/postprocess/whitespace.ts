// No trailing whitespace on any line, no trailing blank lines, no suggestion that is only whitespace.
import type { Filter } from './filter';

export const whitespace: Filter = {
  shape(text) {
    const t = text.replace(/[ \t]+$/gm, '').replace(/\n+$/, '');
    return t.trim() === '' ? '' : t;
  },
};
