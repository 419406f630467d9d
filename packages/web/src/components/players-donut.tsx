import { Paper, Stack, Text } from '@mantine/core';
import { Cell, Pie, PieChart, ResponsiveContainer, Tooltip } from 'recharts';
import type { Dashboard } from '../api/types.ts';

const COLORS = ['#22d3ee', '#38bdf8', '#2dd4bf', '#818cf8', '#a78bfa', '#34d399'];

/**
 * Seed 000's "Active Players" donut: players online against the slots of the running servers that
 * report players, a slice per server, and the list below. Until one reports it says so, not a fake zero.
 */
export function PlayersDonut({
  players,
  servers,
}: {
  players: Dashboard['players'];
  servers: Dashboard['servers'];
}) {
  const nameOf = (id: string) => servers.find((s) => s.id === id)?.name ?? id;
  const slices = players.byServer.filter((s) => s.online > 0);
  return (
    <Paper className="cap-glass" p="md" h="100%" data-testid="players-donut">
      <Text className="cap-metric-label" c="dimmed">
        Active players
      </Text>
      {!players.tracked ? (
        <Stack gap={4} py="lg" data-testid="players-untracked">
          <Text fw={600}>Not tracked yet</Text>
          <Text size="sm" c="dimmed">
            Player counts appear here once a running server reports them (its template's player query). None
            does yet, so there is no number to show.
          </Text>
        </Stack>
      ) : (
        <div style={{ position: 'relative', height: 200 }}>
          <ResponsiveContainer width="100%" height="100%">
            <PieChart>
              <Pie
                data={
                  slices.length > 0
                    ? slices.map((s) => ({ name: nameOf(s.serverId), value: s.online }))
                    : [{ name: 'nobody online', value: 1 }]
                }
                dataKey="value"
                nameKey="name"
                innerRadius={60}
                outerRadius={85}
                stroke="none"
                isAnimationActive={false}
              >
                {(slices.length > 0 ? slices : [null]).map((s, i) => (
                  <Cell
                    key={s?.serverId ?? 'none'}
                    fill={s ? (COLORS[i % COLORS.length] ?? '#22d3ee') : '#1b2a42'}
                  />
                ))}
              </Pie>
              {slices.length > 0 ? <Tooltip /> : null}
            </PieChart>
          </ResponsiveContainer>
          <Stack
            gap={0}
            align="center"
            style={{ position: 'absolute', inset: 0, justifyContent: 'center', pointerEvents: 'none' }}
          >
            <Text fz={28} fw={700} c="cyan.2" data-testid="players-online">
              {players.online}
            </Text>
            <Text size="xs" c="dimmed">
              of {players.max} slots
            </Text>
          </Stack>
        </div>
      )}
      {players.tracked ? (
        <Stack gap={2} mt="xs" data-testid="players-by-server">
          {players.byServer.map((s) => (
            <Text key={s.serverId} size="xs" c="dimmed" data-testid={`players-server-${s.serverId}`}>
              {nameOf(s.serverId)}: {s.online} / {s.max}
              {s.list.length > 0
                ? ` · ${s.list.slice(0, 5).join(', ')}${s.list.length > 5 ? ', …' : ''}`
                : ''}
            </Text>
          ))}
        </Stack>
      ) : null}
    </Paper>
  );
}
