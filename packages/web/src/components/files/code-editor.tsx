/**
 * CodeMirror 6 with the syntax for the file's type. Only ever loaded through a dynamic import
 * (file-editor.tsx), so CodeMirror and its language packs stay out of the main chunk.
 */
import { defaultKeymap, history, historyKeymap, indentWithTab } from '@codemirror/commands';
import { javascript } from '@codemirror/lang-javascript';
import { json } from '@codemirror/lang-json';
import { xml } from '@codemirror/lang-xml';
import { yaml } from '@codemirror/lang-yaml';
import {
  bracketMatching,
  defaultHighlightStyle,
  foldGutter,
  indentOnInput,
  StreamLanguage,
  syntaxHighlighting,
} from '@codemirror/language';
import { css } from '@codemirror/legacy-modes/mode/css';
import { lua } from '@codemirror/legacy-modes/mode/lua';
import { properties } from '@codemirror/legacy-modes/mode/properties';
import { python } from '@codemirror/legacy-modes/mode/python';
import { shell } from '@codemirror/legacy-modes/mode/shell';
import { toml } from '@codemirror/legacy-modes/mode/toml';
import { highlightSelectionMatches, search, searchKeymap } from '@codemirror/search';
import { EditorState, type Extension } from '@codemirror/state';
import { oneDark } from '@codemirror/theme-one-dark';
import {
  drawSelection,
  EditorView,
  highlightActiveLine,
  highlightActiveLineGutter,
  keymap,
  lineNumbers,
} from '@codemirror/view';
import { useEffect, useRef } from 'react';
import type { EditorLanguage } from '../../lib/files.ts';

function languageExtension(lang: EditorLanguage): Extension {
  switch (lang) {
    case 'json':
      return json();
    case 'yaml':
      return yaml();
    case 'xml':
      return xml();
    case 'javascript':
      return javascript();
    case 'typescript':
      return javascript({ typescript: true });
    case 'properties':
      return StreamLanguage.define(properties);
    case 'toml':
      return StreamLanguage.define(toml);
    case 'shell':
      return StreamLanguage.define(shell);
    case 'lua':
      return StreamLanguage.define(lua);
    case 'python':
      return StreamLanguage.define(python);
    case 'css':
      return StreamLanguage.define(css);
    case 'text':
      return [];
  }
}

export interface CodeEditorProps {
  /** the text the editor starts with (remount with a new `key` to load another) */
  initial: string;
  language: EditorLanguage;
  readOnly: boolean;
  onChange: (text: string) => void;
  /** Ctrl-S / Cmd-S */
  onSave: () => void;
}

export default function CodeEditor({ initial, language, readOnly, onChange, onSave }: CodeEditorProps) {
  const host = useRef<HTMLDivElement | null>(null);
  const handlers = useRef({ onChange, onSave });
  handlers.current = { onChange, onSave };
  // biome-ignore lint/correctness/useExhaustiveDependencies: the view is made once per mount; `key` remounts it
  useEffect(() => {
    if (!host.current) return;
    const view = new EditorView({
      parent: host.current,
      state: EditorState.create({
        doc: initial,
        extensions: [
          lineNumbers(),
          highlightActiveLineGutter(),
          foldGutter(),
          history(),
          drawSelection(),
          indentOnInput(),
          bracketMatching(),
          highlightActiveLine(),
          highlightSelectionMatches(),
          search({ top: true }),
          syntaxHighlighting(defaultHighlightStyle, { fallback: true }),
          oneDark,
          languageExtension(language),
          EditorState.readOnly.of(readOnly),
          EditorView.editable.of(!readOnly),
          keymap.of([
            {
              key: 'Mod-s',
              preventDefault: true,
              run: () => {
                handlers.current.onSave();
                return true;
              },
            },
            indentWithTab,
            ...searchKeymap,
            ...historyKeymap,
            ...defaultKeymap,
          ]),
          EditorView.updateListener.of((u) => {
            if (u.docChanged) handlers.current.onChange(u.state.doc.toString());
          }),
          EditorView.theme({ '&': { maxHeight: '65vh' }, '.cm-scroller': { overflow: 'auto' } }),
        ],
      }),
    });
    return () => view.destroy();
  }, []);
  return <div ref={host} data-testid="code-editor" data-language={language} />;
}
