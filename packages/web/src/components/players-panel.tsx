/**
 * The server page's players (issue 12 item 2): who is online with their time online, and the
 * last hour's count against capacity. Kick and ban buttons (with a confirm) where the template
 * declares the command (`commands`) and the user holds player.kick / player.ban; the game's
 * answer is shown under the list.
 */
import { Alert, Badge, Button, Code, Group, Paper, SimpleGrid, Stack, Table, Text } from '@mantine/core';
import { useMutation, useQueryClient } from '@tanstack/react-query';
import { useEffect, useState } from 'react';
import { Area, AreaChart, CartesianGrid, Line, ResponsiveContainer, Tooltip, XAxis, YAxis } from 'recharts';
import { api } from '../api/http.ts';
import { useLiveMessages } from '../api/live.tsx';
import { keys, usePlayers, usePlayersHistory } from '../api/queries.ts';
import { formatUptime } from '../lib/format.ts';

const axis = { stroke: '#5b6f8f', fontSize: 11 };
const time = (t: number) => new Date(t).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });

interface ActionAnswer {
  command: string;
  response?: string;
}

export function PlayersPanel({
  serverId,
  permissions = [],
}: {
  serverId: string;
  permissions?: readonly string[];
}) {
  const qc = useQueryClient();
  const act = useMutation({
    mutationFn: (v: { action: 'kick' | 'ban'; id?: string; name: string }) =>
      api<ActionAnswer>(`/servers/${encodeURIComponent(serverId)}/players/${v.action}`, {
        method: 'POST',
        body: { ...(v.id !== undefined ? { id: v.id } : {}), ...(v.name ? { name: v.name } : {}) },
      }),
    onSuccess: () => void qc.invalidateQueries({ queryKey: keys.players(serverId) }),
  });
  const players = usePlayers(serverId);
  const history = usePlayersHistory(serverId);
  // time online counts up between refetches
  const [now, setNow] = useState(Date.now());
  useEffect(() => {
    const t = setInterval(() => setNow(Date.now()), 1000);
    return () => clearInterval(t);
  }, []);
  useLiveMessages((m) => {
    if (m.type !== 'players' || m.serverId !== serverId) return;
    void qc.invalidateQueries({ queryKey: keys.players(serverId) });
  });
  const p = players.data;
  const canKick = Boolean(p?.commands?.kick) && permissions.includes('player.kick');
  const canBan = Boolean(p?.commands?.ban) && permissions.includes('player.ban');
  const ask = (action: 'kick' | 'ban', x: { id?: string; name: string }) => {
    if (!window.confirm(`${action === 'kick' ? 'Kick' : 'Ban'} ${x.name || `player #${x.id}`}?`)) return;
    act.mutate({ action, name: x.name, ...(x.id !== undefined ? { id: x.id } : {}) });
  };
  const points = (history.data ?? []).map((b) => ({
    t: Date.parse(b.t),
    online: Math.round(b.online * 10) / 10,
    capacity: b.capacity,
  }));
  // the count now closes the series (a single minute still draws, and the last step reaches now)
  const last = points.at(-1);
  if (p?.tracked && last && players.dataUpdatedAt > last.t)
    points.push({ t: players.dataUpdatedAt, online: p.online, capacity: p.max });
  return (
    <SimpleGrid cols={{ base: 1, md: 2 }} data-testid="players-panel">
      <Paper className="cap-glass" p="md">
        <Stack gap="xs">
          <Group justify="space-between">
            <Text className="cap-metric-label" c="dimmed">
              Players
            </Text>
            {p?.tracked ? (
              <Badge variant="light" color="cyan" data-testid="players-count">
                {p.online} / {p.max}
              </Badge>
            ) : null}
          </Group>
          {!p ? (
            <Text size="sm" c="dimmed">
              Loading…
            </Text>
          ) : !p.tracked ? (
            <Text size="sm" c="dimmed" data-testid="players-untracked-server">
              Not tracked: the server is not running, its template has no player query, or the query has not
              answered yet.
            </Text>
          ) : p.players.length === 0 ? (
            <Text size="sm" c="dimmed" data-testid="players-none">
              {p.online > 0 ? `${p.online} online (the game does not list names)` : 'Nobody online.'}
            </Text>
          ) : (
            <Table striped highlightOnHover data-testid="players-list">
              <Table.Thead>
                <Table.Tr>
                  <Table.Th>Name</Table.Th>
                  <Table.Th>Online for</Table.Th>
                  <Table.Th>Score</Table.Th>
                  {canKick || canBan ? <Table.Th /> : null}
                </Table.Tr>
              </Table.Thead>
              <Table.Tbody>
                {p.players.map((x) => (
                  <Table.Tr key={`${x.name}@${x.joinedAt}`} data-testid="player-row">
                    <Table.Td>
                      <Group gap={6} wrap="nowrap">
                        <Text size="sm" data-testid="player-name">
                          {x.name || '(no name)'}
                        </Text>
                        {x.bot ? (
                          <Badge size="xs" variant="outline" color="gray">
                            bot
                          </Badge>
                        ) : null}
                        {x.spectator ? (
                          <Badge size="xs" variant="outline" color="gray">
                            spectator
                          </Badge>
                        ) : null}
                      </Group>
                    </Table.Td>
                    <Table.Td data-testid="player-online-for">
                      {formatUptime(Math.max(1, (now - Date.parse(x.joinedAt)) / 1000))}
                    </Table.Td>
                    <Table.Td>{x.score ?? '—'}</Table.Td>
                    {canKick || canBan ? (
                      <Table.Td>
                        <Group gap={4} wrap="nowrap" justify="flex-end">
                          {canKick && (x.id !== undefined || !p?.commands?.needsId.kick) ? (
                            <Button
                              size="compact-xs"
                              variant="light"
                              color="orange"
                              data-testid="player-kick"
                              aria-label={`Kick ${x.name}`}
                              loading={act.isPending}
                              onClick={() => ask('kick', x)}
                            >
                              Kick
                            </Button>
                          ) : null}
                          {canBan && (x.id !== undefined || !p?.commands?.needsId.ban) ? (
                            <Button
                              size="compact-xs"
                              variant="light"
                              color="red"
                              data-testid="player-ban"
                              aria-label={`Ban ${x.name}`}
                              loading={act.isPending}
                              onClick={() => ask('ban', x)}
                            >
                              Ban
                            </Button>
                          ) : null}
                        </Group>
                      </Table.Td>
                    ) : null}
                  </Table.Tr>
                ))}
              </Table.Tbody>
            </Table>
          )}
          {act.error ? (
            <Alert color="red" variant="light" data-testid="player-action-error">
              {(act.error as Error).message}
            </Alert>
          ) : act.data ? (
            <Text size="xs" c="dimmed" data-testid="player-action-result">
              Sent <Code>{act.data.command}</Code>
              {act.data.response ? `: ${act.data.response.trim().slice(0, 300)}` : ''}
            </Text>
          ) : null}
        </Stack>
      </Paper>
      <Paper className="cap-glass" p="sm" data-testid="chart-players">
        <Text className="cap-metric-label" c="dimmed" mb={4}>
          Players online (last hour)
        </Text>
        {points.length === 0 ? (
          <Text size="sm" c="dimmed" data-testid="chart-players-empty">
            No player counts yet.
          </Text>
        ) : (
          <div
            style={{ height: 160 }}
            role="img"
            aria-label="Players online chart"
            data-testid="chart-players-plot"
            data-points={points.length}
            data-peak={Math.max(0, ...(history.data ?? []).map((b) => b.peak))}
          >
            <ResponsiveContainer width="100%" height="100%">
              <AreaChart data={points}>
                <CartesianGrid stroke="#1b2a42" strokeDasharray="3 3" />
                <XAxis dataKey="t" tickFormatter={time} {...axis} minTickGap={40} />
                <YAxis {...axis} width={40} allowDecimals={false} />
                <Tooltip
                  labelFormatter={(t) => time(Number(t))}
                  contentStyle={{ background: '#0d182b', border: '1px solid #2a3a55' }}
                />
                <Area
                  type="stepAfter"
                  dataKey="online"
                  name="online"
                  stroke="#22d3ee"
                  fill="#22d3ee33"
                  isAnimationActive={false}
                />
                <Line
                  type="stepAfter"
                  dataKey="capacity"
                  name="slots"
                  stroke="#818cf8"
                  dot={false}
                  isAnimationActive={false}
                />
              </AreaChart>
            </ResponsiveContainer>
          </div>
        )}
      </Paper>
    </SimpleGrid>
  );
}
