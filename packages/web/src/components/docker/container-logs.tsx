import { Button, Group, Paper, Select, Stack, Switch, Text, TextInput } from '@mantine/core';
import { useVirtualizer } from '@tanstack/react-virtual';
import { useEffect, useMemo, useRef, useState } from 'react';
import { dockerStream, saveBlob } from '../../api/docker.ts';
import { LogDemuxer, type LogLine, LogLines, logsAsText, searchLogs } from '../../lib/docker.ts';
import { ActionError } from './common.tsx';

/** at most this many lines are kept in the page (the oldest go first) */
const MAX_LINES = 20_000;

/**
 * A container's logs: the last `tail` lines, then followed live when asked; search (text or
 * /regex/), timestamps shown or not (always fetched, so a download has them), download as text.
 */
export function ContainerLogs({
  nodeId,
  id,
  name,
  tty,
}: {
  nodeId: string;
  id: string;
  name: string;
  tty: boolean;
}) {
  const [follow, setFollow] = useState(true);
  const [showTimes, setShowTimes] = useState(false);
  const [tail, setTail] = useState('500');
  const [query, setQuery] = useState('');
  const [lines, setLines] = useState<LogLine[]>([]);
  const [error, setError] = useState<unknown>(null);
  const [streaming, setStreaming] = useState(false);

  useEffect(() => {
    const ctl = new AbortController();
    const demux = new LogDemuxer(tty);
    const split = new LogLines(true);
    const dec = { stdout: new TextDecoder(), stderr: new TextDecoder() };
    let pending: LogLine[] = [];
    let timer: ReturnType<typeof setTimeout> | null = null;
    const flush = () => {
      timer = null;
      const add = pending;
      pending = [];
      setLines((old) => {
        const next = old.concat(add);
        return next.length > MAX_LINES ? next.slice(next.length - MAX_LINES) : next;
      });
    };
    setLines([]);
    setError(null);
    setStreaming(true);
    const path = `/containers/${id}/logs?stdout=1&stderr=1&timestamps=1&tail=${tail}${follow ? '&follow=1' : ''}`;
    dockerStream(
      nodeId,
      path,
      (chunk) => {
        for (const f of demux.push(chunk))
          pending.push(...split.push(f.stream, dec[f.stream].decode(f.data, { stream: true })));
        // batch renders: a chatty container must not re-render per chunk
        if (!timer) timer = setTimeout(flush, 100);
      },
      { signal: ctl.signal },
    )
      .then(() => {
        pending.push(...split.flush());
        flush();
      })
      .catch((e: unknown) => setError(e))
      .finally(() => {
        if (!ctl.signal.aborted) setStreaming(false);
      });
    return () => {
      ctl.abort();
      if (timer) clearTimeout(timer);
    };
  }, [nodeId, id, tty, follow, tail]);

  const found = useMemo(() => searchLogs(lines, query), [lines, query]);
  const scroller = useRef<HTMLDivElement>(null);
  const v = useVirtualizer({
    count: found.lines.length,
    getScrollElement: () => scroller.current,
    estimateSize: () => 18,
    overscan: 30,
  });
  // stick to the bottom while following, unless the reader scrolled up
  const atBottom = useRef(true);
  useEffect(() => {
    if (follow && atBottom.current && found.lines.length)
      v.scrollToIndex(found.lines.length - 1, { align: 'end' });
  }, [found.lines.length, follow, v]);

  return (
    <Stack gap="sm" data-testid="container-logs">
      <Group gap="sm" align="flex-end">
        <TextInput
          label="Search"
          placeholder="text or /regex/i"
          value={query}
          onChange={(e) => setQuery(e.currentTarget.value)}
          error={found.error}
          data-testid="logs-search"
          w={260}
        />
        <Select
          label="Last"
          value={tail}
          onChange={(t) => setTail(t ?? '500')}
          data={[
            { value: '100', label: '100 lines' },
            { value: '500', label: '500 lines' },
            { value: '5000', label: '5,000 lines' },
            { value: 'all', label: 'all' },
          ]}
          w={130}
          allowDeselect={false}
        />
        <Switch
          label="Follow"
          checked={follow}
          onChange={(e) => setFollow(e.currentTarget.checked)}
          data-testid="logs-follow"
        />
        <Switch
          label="Timestamps"
          checked={showTimes}
          onChange={(e) => setShowTimes(e.currentTarget.checked)}
          data-testid="logs-timestamps"
        />
        <Button
          variant="light"
          size="xs"
          onClick={() => saveBlob(new Blob([logsAsText(found.lines)], { type: 'text/plain' }), `${name}.log`)}
          data-testid="logs-download"
        >
          Download{query ? ' matches' : ''}
        </Button>
        <Text size="xs" c="dimmed" data-testid="logs-count">
          {found.lines.length}
          {query ? ` of ${lines.length}` : ''} lines{streaming && follow ? ' · following' : ''}
        </Text>
      </Group>
      <ActionError error={error} />
      <Paper className="cap-terminal" p={0} style={{ height: 460 }}>
        <div
          ref={scroller}
          style={{
            height: '100%',
            overflow: 'auto',
            fontFamily: 'ui-monospace, Menlo, Consolas, monospace',
            fontSize: 12,
          }}
          onScroll={(e) => {
            const el = e.currentTarget;
            atBottom.current = el.scrollHeight - el.scrollTop - el.clientHeight < 40;
          }}
          data-testid="logs-view"
        >
          <div style={{ height: v.getTotalSize(), position: 'relative' }}>
            {v.getVirtualItems().map((item) => {
              const l = found.lines[item.index];
              if (!l) return null;
              return (
                <div
                  key={item.key}
                  data-testid="log-line"
                  data-stream={l.stream}
                  style={{
                    position: 'absolute',
                    top: 0,
                    left: 0,
                    right: 0,
                    transform: `translateY(${item.start}px)`,
                    whiteSpace: 'pre',
                    color: l.stream === 'stderr' ? '#fca5a5' : '#d5e4f5',
                    padding: '0 8px',
                    height: 18,
                  }}
                >
                  {showTimes && l.time ? <span style={{ color: '#5b6f8f' }}>{l.time} </span> : null}
                  {l.text}
                </div>
              );
            })}
          </div>
        </div>
      </Paper>
    </Stack>
  );
}
