import '@xterm/xterm/css/xterm.css';
import { FitAddon } from '@xterm/addon-fit';
import { Terminal } from '@xterm/xterm';
import { useEffect, useRef } from 'react';
import type { ConsoleStore } from '../lib/console-store.ts';

// console text goes to xterm as terminal data: colours render, nothing is ever parsed as HTML
const toTerm = (lines: readonly string[]) => lines.map((l) => `${l.replace(/\r?\n$/, '')}\r\n`).join('');

export function ConsoleTerminal({ store }: { store: ConsoleStore }) {
  const host = useRef<HTMLElement>(null);
  useEffect(() => {
    const el = host.current;
    if (!el) return;
    const term = new Terminal({
      convertEol: false,
      disableStdin: true,
      cursorBlink: false,
      scrollback: 5000,
      fontSize: 13,
      fontFamily: '"JetBrains Mono", "Fira Code", ui-monospace, Menlo, Consolas, monospace',
      theme: {
        background: '#02070f',
        foreground: '#d5e4f5',
        cursor: '#22d3ee',
        selectionBackground: '#1e3a5f',
      },
      // links and OSC sequences from a game server are not trusted: no link handler is registered
    });
    const fit = new FitAddon();
    term.loadAddon(fit);
    term.open(el);
    const doFit = () => {
      try {
        fit.fit();
      } catch {
        // not laid out yet
      }
    };
    doFit();
    term.write(toTerm(store.lines));
    const off = store.subscribe((e) => {
      if (e.kind === 'reset') {
        term.reset();
        term.write(toTerm(e.lines));
      } else term.write(toTerm(e.lines));
    });
    const ro = new ResizeObserver(doFit);
    ro.observe(el);
    // tests read the rendered buffer through this hook; it exposes text only
    (el as HTMLElement & { capReadBuffer?: () => string }).capReadBuffer = () => {
      const b = term.buffer.active;
      const out: string[] = [];
      for (let i = 0; i < b.length; i++) out.push(b.getLine(i)?.translateToString(true) ?? '');
      return out.join('\n');
    };
    return () => {
      off();
      ro.disconnect();
      term.dispose();
    };
  }, [store]);
  return (
    <section
      ref={host}
      className="cap-terminal"
      data-testid="console-terminal"
      aria-label="Server console output"
    />
  );
}
