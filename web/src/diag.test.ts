import { Text } from '@codemirror/state';
import { describe, expect, it } from 'vitest';
import { diagRange } from './diag';
import { parseRoute } from './router';

const doc = Text.of(['version: 2', 'nodes:', '  - id: a', '    plugin: x:Y']);
const d = (line: number, column?: number) => ({ file: 'g.yaml', line, column, severity: 'error', message: 'm' });

describe('diagRange', () => {
  it('puts a diagnostic on its line, from its column', () => {
    const r = diagRange(doc, d(4, 5));
    expect(doc.sliceString(r.from, r.to)).toBe('plugin: x:Y');
  });
  it('skips the indentation when there is no column', () => {
    const r = diagRange(doc, d(3));
    expect(doc.sliceString(r.from, r.to)).toBe('- id: a');
  });
  it('clamps lines out of range and a column past the end', () => {
    expect(doc.lineAt(diagRange(doc, d(0)).from).number).toBe(1);
    expect(doc.lineAt(diagRange(doc, d(99)).from).number).toBe(4);
    const r = diagRange(doc, d(1, 80));
    expect(r.from).toBe(r.to);
    expect(r.to).toBe(doc.line(1).to);
  });
});

describe('parseRoute', () => {
  it('maps paths to pages', () => {
    expect(parseRoute('/')).toEqual({ page: 'graphs' });
    expect(parseRoute('/graphs/cam.a-1')).toEqual({ page: 'graph', name: 'cam.a-1' });
    expect(parseRoute('/graphs/a%20b/edit')).toEqual({ page: 'edit', name: 'a b' });
    expect(parseRoute('/new?x=1')).toEqual({ page: 'new' });
    expect(parseRoute('/queues/')).toEqual({ page: 'queues' });
    expect(parseRoute('/nope')).toEqual({ page: 'notfound' });
  });
});
