import { Paper, SimpleGrid, Text } from '@mantine/core';
import { useEffect, useState } from 'react';
import { Line, LineChart, ResponsiveContainer, Tooltip, XAxis, YAxis } from 'recharts';
import { dockerStream } from '../../api/docker.ts';
import { JsonLines, type StatsSample, statsFrom } from '../../lib/docker.ts';
import { formatBytes, formatPercent } from '../../lib/format.ts';
import { ActionError } from './common.tsx';

const KEEP = 90;

function Figure({ label, value, testId }: { label: string; value: string; testId: string }) {
  return (
    <Paper className="cap-glass" p="sm">
      <Text className="cap-metric-label" c="dimmed">
        {label}
      </Text>
      <Text fw={700} size="lg" data-testid={testId}>
        {value}
      </Text>
    </Paper>
  );
}

/** The live `GET /containers/{id}/stats` stream (one object a second from the Engine). */
export function ContainerStats({ nodeId, id, running }: { nodeId: string; id: string; running: boolean }) {
  const [samples, setSamples] = useState<(StatsSample & { t: number })[]>([]);
  const [error, setError] = useState<unknown>(null);
  useEffect(() => {
    if (!running) return;
    const ctl = new AbortController();
    const lines = new JsonLines();
    const dec = new TextDecoder();
    setError(null);
    dockerStream(
      nodeId,
      `/containers/${id}/stats?stream=1`,
      (chunk) => {
        const got = lines
          .push(dec.decode(chunk, { stream: true }))
          .map((raw) => ({ ...statsFrom(raw), t: Date.now() }));
        if (got.length) setSamples((old) => old.concat(got).slice(-KEEP));
      },
      { signal: ctl.signal },
    ).catch((e: unknown) => setError(e));
    return () => ctl.abort();
  }, [nodeId, id, running]);
  const last = samples[samples.length - 1];
  if (!running)
    return (
      <Text c="dimmed" size="sm" data-testid="stats-stopped">
        Statistics stream while the container runs.
      </Text>
    );
  return (
    <div data-testid="container-stats" data-samples={samples.length}>
      <ActionError error={error} />
      <SimpleGrid cols={{ base: 2, md: 5 }} mb="sm">
        <Figure label="CPU" value={last ? formatPercent(last.cpu) : '—'} testId="stats-cpu" />
        <Figure
          label="Memory"
          value={
            last
              ? `${formatBytes(last.memUsed)}${last.memLimit ? ` / ${formatBytes(last.memLimit)}` : ''}`
              : '—'
          }
          testId="stats-memory"
        />
        <Figure
          label="Network rx / tx"
          value={last ? `${formatBytes(last.rx)} / ${formatBytes(last.tx)}` : '—'}
          testId="stats-net"
        />
        <Figure
          label="Block read / write"
          value={last ? `${formatBytes(last.blkRead)} / ${formatBytes(last.blkWrite)}` : '—'}
          testId="stats-block"
        />
        <Figure label="Processes" value={last ? String(last.pids) : '—'} testId="stats-pids" />
      </SimpleGrid>
      <SimpleGrid cols={{ base: 1, md: 2 }}>
        {(
          [
            ['CPU %', 'cpu', (v: number) => formatPercent(v)],
            ['Memory', 'memUsed', (v: number) => formatBytes(v)],
          ] as const
        ).map(([title, key, fmt]) => (
          <Paper key={key} className="cap-glass" p="sm">
            <Text className="cap-metric-label" c="dimmed" mb={4}>
              {title}
            </Text>
            <div style={{ height: 140 }}>
              <ResponsiveContainer width="100%" height="100%">
                <LineChart data={samples}>
                  <XAxis dataKey="t" hide />
                  <YAxis stroke="#5b6f8f" fontSize={11} width={60} tickFormatter={(v) => fmt(Number(v))} />
                  <Tooltip
                    formatter={(v) => fmt(Number(v))}
                    labelFormatter={() => ''}
                    contentStyle={{ background: '#0d182b' }}
                  />
                  <Line
                    type="monotone"
                    dataKey={key}
                    stroke="#22d3ee"
                    dot={false}
                    isAnimationActive={false}
                  />
                </LineChart>
              </ResponsiveContainer>
            </div>
          </Paper>
        ))}
      </SimpleGrid>
    </div>
  );
}
