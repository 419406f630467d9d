import '@xterm/xterm/css/xterm.css';
import { Button, Group, Select, Stack, Text, TextInput } from '@mantine/core';
import { FitAddon } from '@xterm/addon-fit';
import { Terminal } from '@xterm/xterm';
import { useEffect, useRef, useState } from 'react';
import { dockerJson, execSocketUrl } from '../../api/docker.ts';
import { ApiError } from '../../api/http.ts';
import { splitCommand } from '../../lib/docker.ts';
import { ActionError } from './common.tsx';

type Phase = 'idle' | 'connecting' | 'open' | 'closed';

/**
 * An interactive exec in a running container: `POST /containers/{id}/exec` (TTY, stdin), then the
 * Panel's exec WebSocket for the bytes both ways and a resize frame whenever the terminal's size
 * changes (xterm's fit addon follows the element).
 */
export function ExecTerminal({ nodeId, id }: { nodeId: string; id: string }) {
  const host = useRef<HTMLElement>(null);
  const [shell, setShell] = useState('/bin/sh');
  const [custom, setCustom] = useState('');
  const [phase, setPhase] = useState<Phase>('idle');
  const [error, setError] = useState<unknown>(null);
  const [session, setSession] = useState(0);
  const [size, setSize] = useState<{ cols: number; rows: number } | null>(null);

  const chosen = useRef({ shell, custom });
  chosen.current = { shell, custom };
  // a session starts with the command chosen when Connect was pressed (read from a ref)
  useEffect(() => {
    if (session === 0) return;
    const { shell, custom } = chosen.current;
    const el = host.current;
    if (!el) return;
    let cmd: string[];
    try {
      cmd = shell === 'custom' ? splitCommand(custom) : [shell];
    } catch (e) {
      setError(e);
      setPhase('idle');
      return;
    }
    const term = new Terminal({
      cursorBlink: true,
      scrollback: 5000,
      fontSize: 13,
      fontFamily: '"JetBrains Mono", "Fira Code", ui-monospace, Menlo, Consolas, monospace',
      theme: {
        background: '#02070f',
        foreground: '#d5e4f5',
        cursor: '#22d3ee',
        selectionBackground: '#1e3a5f',
      },
    });
    const fit = new FitAddon();
    term.loadAddon(fit);
    term.open(el);
    try {
      fit.fit();
    } catch {
      // not laid out yet
    }
    (el as HTMLElement & { capReadBuffer?: () => string }).capReadBuffer = () => {
      const b = term.buffer.active;
      const out: string[] = [];
      for (let i = 0; i < b.length; i++) out.push(b.getLine(i)?.translateToString(true) ?? '');
      return out.join('\n');
    };
    let ws: WebSocket | null = null;
    let execId = '';
    let disposed = false;
    let resizeTimer: ReturnType<typeof setTimeout> | null = null;
    const resize = () => {
      if (disposed || ws?.readyState !== WebSocket.OPEN) return;
      const want = { cols: term.cols, rows: term.rows };
      ws.send(JSON.stringify({ type: 'resize', ...want }));
      setSize(want);
    };
    const ro = new ResizeObserver(() => {
      try {
        fit.fit();
      } catch {
        return;
      }
      if (resizeTimer) clearTimeout(resizeTimer);
      resizeTimer = setTimeout(resize, 150);
    });
    ro.observe(el);
    const enc = new TextEncoder();
    const dataSub = term.onData((d) => {
      if (ws?.readyState === WebSocket.OPEN) ws.send(enc.encode(d));
    });
    setPhase('connecting');
    setError(null);
    (async () => {
      const created = await dockerJson<{ Id: string }>(nodeId, `/containers/${id}/exec`, {
        method: 'POST',
        body: {
          AttachStdin: true,
          AttachStdout: true,
          AttachStderr: true,
          Tty: true,
          Cmd: cmd,
          // no COLUMNS/LINES: busybox prefers them to the TTY's size, which resize sets
          Env: ['TERM=xterm-256color'],
        },
      });
      if (disposed) return;
      execId = created.Id;
      ws = new WebSocket(execSocketUrl(nodeId, execId));
      ws.binaryType = 'arraybuffer';
      ws.onopen = () => {
        setPhase('open');
        term.focus();
        resize();
      };
      ws.onmessage = (m) => {
        if (typeof m.data === 'string') term.write(m.data);
        else term.write(new Uint8Array(m.data as ArrayBuffer));
      };
      ws.onclose = (e) => {
        if (disposed) return;
        setPhase('closed');
        // 4000 + the Engine's status, reason `CODE: message`; 4400 a frame the Panel refused
        if (e.code >= 4000) {
          const colon = e.reason.indexOf(':');
          const code = colon > 0 ? e.reason.slice(0, colon) : 'DOCKER_ERROR';
          setError(new ApiError(code, e.reason.slice(colon + 1).trim() || e.reason, e.code - 4000));
        }
        term.write(`\r\n\x1b[90m[session ended${e.reason ? `: ${e.reason}` : ''}]\x1b[0m\r\n`);
      };
    })().catch((e: unknown) => {
      if (disposed) return;
      setError(e);
      setPhase('closed');
    });
    return () => {
      disposed = true;
      if (resizeTimer) clearTimeout(resizeTimer);
      ro.disconnect();
      dataSub.dispose();
      ws?.close();
      term.dispose();
    };
  }, [session, nodeId, id]);

  return (
    <Stack gap="sm" data-testid="exec-panel">
      <Group gap="sm" align="flex-end">
        <Select
          label="Command"
          value={shell}
          onChange={(v) => setShell(v ?? '/bin/sh')}
          data={[
            { value: '/bin/sh', label: '/bin/sh' },
            { value: '/bin/bash', label: '/bin/bash' },
            { value: 'custom', label: 'other…' },
          ]}
          allowDeselect={false}
          w={140}
          disabled={phase === 'open' || phase === 'connecting'}
          data-testid="exec-shell"
        />
        {shell === 'custom' ? (
          <TextInput
            label="Other command"
            value={custom}
            onChange={(e) => setCustom(e.currentTarget.value)}
            w={260}
          />
        ) : null}
        {phase === 'open' || phase === 'connecting' ? (
          <Button variant="light" color="red" onClick={() => setSession(0)} data-testid="exec-disconnect">
            Disconnect
          </Button>
        ) : (
          <Button onClick={() => setSession((n) => n + 1)} data-testid="exec-connect">
            {phase === 'closed' ? 'Reconnect' : 'Connect'}
          </Button>
        )}
        <Text size="xs" c="dimmed" data-testid="exec-phase" data-phase={phase}>
          {phase}
          {size ? ` · ${size.cols}×${size.rows}` : ''}
        </Text>
      </Group>
      <ActionError error={error} />
      {session > 0 ? (
        <section
          ref={host}
          className="cap-terminal"
          data-testid="exec-terminal"
          aria-label="Exec terminal"
          data-cols={size?.cols}
          data-rows={size?.rows}
        />
      ) : (
        <Text size="sm" c="dimmed">
          Opens a shell in the container (it must be running and have the command).
        </Text>
      )}
    </Stack>
  );
}
