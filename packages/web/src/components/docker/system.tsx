import {
  Button,
  Checkbox,
  Code,
  Group,
  Paper,
  ScrollArea,
  SimpleGrid,
  Stack,
  Switch,
  Table,
  Text,
  Title,
} from '@mantine/core';
import { useQueryClient } from '@tanstack/react-query';
import { useEffect, useMemo, useState } from 'react';
import {
  dockerJson,
  dockerStream,
  invalidateDocker,
  useDockerImages,
  useDockerNetworks,
  useDockerVolumes,
  useInspect,
  useNodeContainers,
} from '../../api/docker.ts';
import {
  containerName,
  type DockerContainer,
  type DockerEvent,
  type DockerImage,
  type DockerVolume,
  describeEvent,
  JsonLines,
  prunePreview,
  shortId,
} from '../../lib/docker.ts';
import { formatBytes } from '../../lib/format.ts';
import { ErrorState, Loading } from '../states.tsx';
import { ActionError } from './common.tsx';

interface Info {
  Name: string;
  ServerVersion: string;
  OperatingSystem: string;
  KernelVersion: string;
  Architecture: string;
  NCPU: number;
  MemTotal: number;
  Containers: number;
  ContainersRunning: number;
  ContainersPaused: number;
  ContainersStopped: number;
  Images: number;
  Driver: string;
  DockerRootDir: string;
  CgroupVersion?: string;
}
interface DiskUsage {
  LayersSize: number;
  Images: DockerImage[] | null;
  Containers: (DockerContainer & { SizeRw?: number })[] | null;
  Volumes: DockerVolume[] | null;
  BuildCache: { Size: number; InUse: boolean }[] | null;
}

function Fact({ label, value }: { label: string; value: string | number }) {
  return (
    <Stack gap={0}>
      <Text className="cap-metric-label" c="dimmed">
        {label}
      </Text>
      <Text fw={600}>{value}</Text>
    </Stack>
  );
}

function EngineInfo({ nodeId }: { nodeId: string }) {
  const q = useInspect<Info>(nodeId, '/info');
  if (q.isPending) return <Loading label="Asking the engine…" />;
  if (q.isError) return <ErrorState error={q.error} title="Could not read the engine's info" />;
  const i = q.data;
  return (
    <Paper className="cap-glass" p="md" data-testid="engine-info">
      <Title order={5} mb="sm">
        Engine
      </Title>
      <SimpleGrid cols={{ base: 2, md: 4 }}>
        <Fact label="Host" value={i.Name} />
        <Fact label="Docker" value={i.ServerVersion} />
        <Fact label="OS" value={i.OperatingSystem} />
        <Fact label="Kernel" value={`${i.KernelVersion} (${i.Architecture})`} />
        <Fact label="CPUs / memory" value={`${i.NCPU} / ${formatBytes(i.MemTotal)}`} />
        <Fact
          label="Containers"
          value={`${i.Containers} (${i.ContainersRunning} running, ${i.ContainersPaused} paused, ${i.ContainersStopped} stopped)`}
        />
        <Fact label="Images" value={i.Images} />
        <Fact
          label="Storage"
          value={`${i.Driver} · ${i.DockerRootDir}${i.CgroupVersion ? ` · cgroup v${i.CgroupVersion}` : ''}`}
        />
      </SimpleGrid>
    </Paper>
  );
}

function DiskUsagePanel({ nodeId }: { nodeId: string }) {
  const q = useInspect<DiskUsage>(nodeId, '/system/df');
  if (q.isPending) return <Loading label="Measuring disk usage…" />;
  if (q.isError) return <ErrorState error={q.error} title="Could not read disk usage" />;
  const d = q.data;
  const rows: [string, number, number, number][] = [
    [
      'Images',
      d.Images?.length ?? 0,
      d.LayersSize,
      (d.Images ?? []).filter((i) => (i.Containers ?? 0) > 0).length,
    ],
    [
      'Containers (writable layers)',
      d.Containers?.length ?? 0,
      (d.Containers ?? []).reduce((a, c) => a + (c.SizeRw ?? 0), 0),
      (d.Containers ?? []).filter((c) => c.State === 'running').length,
    ],
    [
      'Volumes',
      d.Volumes?.length ?? 0,
      (d.Volumes ?? []).reduce((a, v) => a + Math.max(0, v.UsageData?.Size ?? 0), 0),
      (d.Volumes ?? []).filter((v) => (v.UsageData?.RefCount ?? 0) > 0).length,
    ],
    [
      'Build cache',
      d.BuildCache?.length ?? 0,
      (d.BuildCache ?? []).reduce((a, b) => a + b.Size, 0),
      (d.BuildCache ?? []).filter((b) => b.InUse).length,
    ],
  ];
  return (
    <Paper className="cap-glass" p="md" data-testid="disk-usage">
      <Title order={5} mb="sm">
        Disk usage
      </Title>
      <Table>
        <Table.Thead>
          <Table.Tr>
            <Table.Th>Kind</Table.Th>
            <Table.Th>Count</Table.Th>
            <Table.Th>Active</Table.Th>
            <Table.Th>Size</Table.Th>
          </Table.Tr>
        </Table.Thead>
        <Table.Tbody>
          {rows.map(([k, n, size, active]) => (
            <Table.Tr key={k} data-testid="df-row">
              <Table.Td>{k}</Table.Td>
              <Table.Td>{n}</Table.Td>
              <Table.Td>{active}</Table.Td>
              <Table.Td>{formatBytes(size)}</Table.Td>
            </Table.Tr>
          ))}
        </Table.Tbody>
      </Table>
    </Paper>
  );
}

type Kind = 'containers' | 'images' | 'networks' | 'volumes';

/** Prune with a preview computed from the lists (what the Engine would remove), then the real prune. */
function Prune({ nodeId }: { nodeId: string }) {
  const qc = useQueryClient();
  const containers = useNodeContainers(nodeId);
  const images = useDockerImages(nodeId);
  const networks = useDockerNetworks(nodeId);
  const volumes = useDockerVolumes(nodeId);
  const [kinds, setKinds] = useState<Set<Kind>>(new Set(['containers', 'images', 'networks']));
  const [running, setRunning] = useState(false);
  const [result, setResult] = useState<string | null>(null);
  const [error, setError] = useState<unknown>(null);
  const ready = containers.data && images.data && networks.data && volumes.data;
  const preview = useMemo(
    () =>
      ready
        ? prunePreview({
            containers: containers.data ?? [],
            images: images.data ?? [],
            networks: networks.data ?? [],
            volumes: volumes.data ?? [],
          })
        : null,
    [ready, containers.data, images.data, networks.data, volumes.data],
  );
  if (!preview) return <Loading label="Working out what a prune would remove…" />;
  const items: Record<Kind, string[]> = {
    containers: preview.containers.map((c) => containerName(c)),
    images: preview.images.map((i) => i.RepoTags?.find((t) => t !== '<none>:<none>') ?? shortId(i.Id)),
    networks: preview.networks.map((n) => n.Name),
    volumes: preview.volumes.map((v) => v.Name),
  };
  const toggle = (k: Kind) =>
    setKinds((s) => {
      const n = new Set(s);
      if (n.has(k)) n.delete(k);
      else n.add(k);
      return n;
    });
  async function prune() {
    const chosen = (['containers', 'images', 'networks', 'volumes'] as const).filter(
      (k) => kinds.has(k) && items[k].length,
    );
    if (
      !chosen.length ||
      !window.confirm(`Prune ${chosen.map((k) => `${items[k].length} ${k}`).join(', ')}?`)
    )
      return;
    setRunning(true);
    setError(null);
    const said: string[] = [];
    try {
      // containers first: what they held may then be unused (the Engine decides again on each call)
      for (const k of chosen) {
        const r = await dockerJson<{
          SpaceReclaimed?: number;
          ContainersDeleted?: string[] | null;
          ImagesDeleted?: unknown[] | null;
          NetworksDeleted?: string[] | null;
          VolumesDeleted?: string[] | null;
        }>(nodeId, `/${k}/prune`, { method: 'POST' });
        const n = (r?.ContainersDeleted ?? r?.ImagesDeleted ?? r?.NetworksDeleted ?? r?.VolumesDeleted ?? [])
          .length;
        said.push(`${n} ${k}${r?.SpaceReclaimed ? ` (${formatBytes(r.SpaceReclaimed)})` : ''}`);
      }
      setResult(`Removed ${said.join(', ')}.`);
    } catch (e) {
      setError(e);
      if (said.length) setResult(`Removed ${said.join(', ')} before the error.`);
    } finally {
      setRunning(false);
      void invalidateDocker(qc, nodeId);
    }
  }
  return (
    <Paper className="cap-glass" p="md" data-testid="prune-panel">
      <Title order={5} mb="sm">
        Prune
      </Title>
      <Stack gap="xs">
        {(['containers', 'images', 'networks', 'volumes'] as const).map((k) => (
          <Stack key={k} gap={2} data-testid={`prune-${k}`} data-count={items[k].length}>
            <Checkbox
              label={`${items[k].length} ${k === 'containers' ? 'stopped containers' : k === 'images' ? 'dangling images no container uses' : k === 'networks' ? 'unused networks' : 'unused volumes (with their data)'}`}
              checked={kinds.has(k)}
              onChange={() => toggle(k)}
            />
            {items[k].length ? (
              <Text size="xs" c="dimmed" ff="monospace" pl={32} lineClamp={2} title={items[k].join(', ')}>
                {items[k].slice(0, 30).join(', ')}
                {items[k].length > 30 ? ` … and ${items[k].length - 30} more` : ''}
              </Text>
            ) : null}
          </Stack>
        ))}
        <Text size="sm">At least {formatBytes(preview.bytes)} of images and volumes would be freed.</Text>
        <Group>
          <Button
            color="red"
            variant="light"
            loading={running}
            onClick={() => void prune()}
            data-testid="prune-submit"
          >
            Prune the selected
          </Button>
        </Group>
        {result ? (
          <Text size="sm" c="teal" data-testid="prune-result">
            {result}
          </Text>
        ) : null}
        <ActionError error={error} />
      </Stack>
    </Paper>
  );
}

const KEEP_EVENTS = 300;

function Events({ nodeId }: { nodeId: string }) {
  const [on, setOn] = useState(true);
  const [events, setEvents] = useState<(DockerEvent & { seq: number })[]>([]);
  const [error, setError] = useState<unknown>(null);
  useEffect(() => {
    if (!on) return;
    const ctl = new AbortController();
    const lines = new JsonLines();
    const dec = new TextDecoder();
    let seq = 0;
    setError(null);
    // the last 10 minutes, then live
    const since = Math.floor(Date.now() / 1000) - 600;
    dockerStream(
      nodeId,
      `/events?since=${since}`,
      (chunk) => {
        const got = (lines.push(dec.decode(chunk, { stream: true })) as DockerEvent[]).map((e) => ({
          ...e,
          seq: ++seq,
        }));
        if (got.length) setEvents((old) => got.reverse().concat(old).slice(0, KEEP_EVENTS));
      },
      { signal: ctl.signal },
    ).catch((e: unknown) => setError(e));
    return () => ctl.abort();
  }, [nodeId, on]);
  return (
    <Paper className="cap-glass" p="md" data-testid="events-panel">
      <Group justify="space-between" mb="sm">
        <Title order={5}>Events</Title>
        <Switch
          label="Live"
          checked={on}
          onChange={(e) => setOn(e.currentTarget.checked)}
          data-testid="events-live"
        />
      </Group>
      <ActionError error={error} />
      <ScrollArea h={320}>
        {events.length === 0 ? (
          <Text size="sm" c="dimmed">
            No events in the last 10 minutes yet.
          </Text>
        ) : (
          events.map((e) => (
            <Text key={e.seq} size="xs" ff="monospace" data-testid="event-line" data-action={e.Action}>
              <Code>{new Date((e.time ?? 0) * 1000).toISOString().slice(11, 19)}</Code> {describeEvent(e)}
            </Text>
          ))
        )}
      </ScrollArea>
    </Paper>
  );
}

export function SystemTab({ nodeId }: { nodeId: string }) {
  return (
    <Stack gap="md" data-testid="system-tab">
      <EngineInfo nodeId={nodeId} />
      <SimpleGrid cols={{ base: 1, lg: 2 }}>
        <DiskUsagePanel nodeId={nodeId} />
        <Prune nodeId={nodeId} />
      </SimpleGrid>
      <Events nodeId={nodeId} />
    </Stack>
  );
}
