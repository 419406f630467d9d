import { Paper, SimpleGrid, Text } from '@mantine/core';
import {
  Area,
  AreaChart,
  CartesianGrid,
  Line,
  LineChart,
  ResponsiveContainer,
  Tooltip,
  XAxis,
  YAxis,
} from 'recharts';
import { formatBytes } from '../lib/format.ts';
import type { Point } from '../lib/series.ts';

const time = (t: number) =>
  new Date(t).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit' });
const axis = { stroke: '#5b6f8f', fontSize: 11 };
const cpuTick = (v: number) => (v === 0 ? '0' : v < 1 ? v.toFixed(2) : v < 10 ? v.toFixed(1) : v.toFixed(0));

function ChartCard({
  title,
  children,
  testId,
}: {
  title: string;
  children: React.ReactElement;
  testId: string;
}) {
  return (
    <Paper className="cap-glass" p="sm" data-testid={testId}>
      <Text className="cap-metric-label" c="dimmed" mb={4}>
        {title}
      </Text>
      <div style={{ height: 160 }} role="img" aria-label={`${title} chart`}>
        <ResponsiveContainer width="100%" height="100%">
          {children}
        </ResponsiveContainer>
      </div>
    </Paper>
  );
}

export function MetricCharts({ series }: { series: Point[] }) {
  if (series.length === 0) {
    return (
      <Paper className="cap-glass" p="md" data-testid="charts-empty">
        <Text c="dimmed" size="sm">
          No resource samples yet. Charts fill in while the server runs.
        </Text>
      </Paper>
    );
  }
  const grid = <CartesianGrid stroke="#1b2a42" strokeDasharray="3 3" />;
  const x = <XAxis dataKey="t" tickFormatter={time} {...axis} minTickGap={40} />;
  const tip = (fmt: (v: number) => string) => (
    <Tooltip
      labelFormatter={(t) => time(Number(t))}
      formatter={(v) => fmt(Number(v))}
      contentStyle={{ background: '#0d182b', border: '1px solid #2a3a55' }}
    />
  );
  const bytesAxis = <YAxis {...axis} width={76} tickFormatter={(v) => formatBytes(Number(v))} />;
  // memory and disk: the same chart of a byte count over time, in its own colour
  const bytesArea = (dataKey: 'memoryBytes' | 'diskBytes', color: string) => (
    <AreaChart data={series}>
      {grid}
      {x}
      {bytesAxis}
      {tip(formatBytes)}
      <Area type="monotone" dataKey={dataKey} stroke={color} fill={`${color}33`} isAnimationActive={false} />
    </AreaChart>
  );
  return (
    <SimpleGrid cols={{ base: 1, md: 2 }} data-testid="charts">
      <ChartCard title="CPU %" testId="chart-cpu">
        <AreaChart data={series}>
          {grid}
          {x}
          <YAxis
            {...axis}
            width={44}
            // an idle server stays on a 0–1 % scale instead of magnifying noise
            domain={[0, (max: number) => Math.max(1, Math.ceil(max))]}
            tickFormatter={(v) => cpuTick(Number(v))}
          />
          {tip((v) => `${v.toFixed(1)} %`)}
          <Area type="monotone" dataKey="cpu" stroke="#22d3ee" fill="#22d3ee33" isAnimationActive={false} />
        </AreaChart>
      </ChartCard>
      <ChartCard title="Memory" testId="chart-memory">
        {bytesArea('memoryBytes', '#818cf8')}
      </ChartCard>
      <ChartCard title="Network (per second)" testId="chart-network">
        <LineChart data={series}>
          {grid}
          {x}
          {bytesAxis}
          {tip((v) => `${formatBytes(v)}/s`)}
          <Line
            type="monotone"
            dataKey="rxRate"
            name="received"
            stroke="#2dd4bf"
            dot={false}
            isAnimationActive={false}
          />
          <Line
            type="monotone"
            dataKey="txRate"
            name="sent"
            stroke="#f472b6"
            dot={false}
            isAnimationActive={false}
          />
        </LineChart>
      </ChartCard>
      <ChartCard title="Disk used" testId="chart-disk">
        {bytesArea('diskBytes', '#fbbf24')}
      </ChartCard>
    </SimpleGrid>
  );
}
