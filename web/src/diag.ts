// Where a server diagnostic (1-based line and column) falls in the text.
import type { Text } from '@codemirror/state';
import type { Diag } from './types';

export function diagRange(doc: Text, d: Diag): { from: number; to: number } {
  const ln = Math.min(Math.max(d.line || 1, 1), doc.lines);
  const line = doc.line(ln);
  let from = line.from;
  if (d.column && d.column > 1) {
    from = Math.min(line.from + d.column - 1, line.to);
  } else {
    // No column: underline the text of the line, not its indentation.
    const m = /^\s*/.exec(line.text);
    from = line.from + Math.min(m ? m[0].length : 0, line.length);
  }
  return { from, to: Math.max(line.to, from) };
}
