// CodeMirror 6 with YAML and line numbers; diagnostics from the server are
// lint markers on their line (underline + gutter marker + tooltip).
import { yaml } from '@codemirror/lang-yaml';
import { type Diagnostic, lintGutter, setDiagnostics } from '@codemirror/lint';
import { EditorState, type Text } from '@codemirror/state';
import { EditorView } from '@codemirror/view';
import { basicSetup } from 'codemirror';
import { useEffect, useRef } from 'react';
import { diagRange } from '../diag';
import type { Diag } from '../types';

function toCM(doc: Text, diags: Diag[]): Diagnostic[] {
  return diags.map((d) => {
    const { from, to } = diagRange(doc, d);
    return {
      from,
      to,
      severity: d.severity === 'error' ? 'error' : d.severity === 'warning' ? 'warning' : 'info',
      message: (d.subject ? d.subject + ': ' : '') + d.message,
      source: 'schnitzel',
    };
  });
}

export interface YamlEditorHandle {
  goto: (line: number) => void;
}

export function YamlEditor({
  value,
  onChange,
  diags,
  readOnly = false,
  handle,
  label,
}: {
  value: string;
  onChange?: (text: string) => void;
  diags: Diag[];
  readOnly?: boolean;
  handle?: React.MutableRefObject<YamlEditorHandle | null>;
  label: string;
}) {
  const host = useRef<HTMLDivElement>(null);
  const view = useRef<EditorView | null>(null);
  const onChangeRef = useRef(onChange);
  onChangeRef.current = onChange;

  useEffect(() => {
    const v = new EditorView({
      parent: host.current!,
      state: EditorState.create({
        doc: value,
        extensions: [
          basicSetup,
          yaml(),
          lintGutter(),
          EditorView.lineWrapping,
          EditorState.readOnly.of(readOnly),
          EditorView.contentAttributes.of({ 'aria-label': label, 'data-testid': 'yaml-editor-content' }),
          EditorView.updateListener.of((u) => {
            if (u.docChanged) onChangeRef.current?.(u.state.doc.toString());
          }),
        ],
      }),
    });
    view.current = v;
    if (handle) {
      handle.current = {
        goto(line: number) {
          const doc = v.state.doc;
          const l = doc.line(Math.min(Math.max(line, 1), doc.lines));
          v.dispatch({ selection: { anchor: l.from }, scrollIntoView: true });
          v.focus();
        },
      };
    }
    return () => {
      v.destroy();
      view.current = null;
      if (handle) handle.current = null;
    };
  }, []); // eslint-disable-line react-hooks/exhaustive-deps

  // A change from outside (the blocks view, a load): replace the text.
  useEffect(() => {
    const v = view.current;
    if (!v) return;
    const cur = v.state.doc.toString();
    if (cur !== value) v.dispatch({ changes: { from: 0, to: cur.length, insert: value } });
  }, [value]);

  useEffect(() => {
    const v = view.current;
    if (!v) return;
    v.dispatch(setDiagnostics(v.state, toCM(v.state.doc, diags)));
  }, [diags, value]);

  return <div className="cm-host" ref={host} data-testid="yaml-editor" />;
}
