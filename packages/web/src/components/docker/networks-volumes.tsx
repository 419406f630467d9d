import {
  ActionIcon,
  Badge,
  Button,
  Checkbox,
  Group,
  Menu,
  Modal,
  Paper,
  Progress,
  Select,
  Stack,
  Table,
  Text,
  TextInput,
  Title,
} from '@mantine/core';
import { type FormEvent, useRef, useState } from 'react';
import { useDockerNetworks, useDockerVolumes, useInspect, useNodeContainers } from '../../api/docker.ts';
import { api } from '../../api/http.ts';
import { containerName, type DockerNetwork, type DockerVolume, shortId } from '../../lib/docker.ts';
import { formatBytes } from '../../lib/format.ts';
import { startDownload, withRelayFallback } from '../../lib/transfer.ts';
import { putFile } from '../files/uploads.tsx';
import { ErrorState, Loading } from '../states.tsx';
import { ActionError, useCanWrite, useDockerAction } from './common.tsx';
import { JsonView } from './container-detail.tsx';
import { VolumeBrowser } from './volume-browser.tsx';

const BUILTIN = new Set(['bridge', 'host', 'none']);

function InspectModal({
  nodeId,
  path,
  title,
  onClose,
}: {
  nodeId: string;
  path: string | null;
  title: string;
  onClose: () => void;
}) {
  const q = useInspect(nodeId, path ?? '', path !== null);
  return (
    <Modal opened={path !== null} onClose={onClose} title={title} size="xl">
      {q.isPending ? (
        <Loading />
      ) : q.isError ? (
        <ErrorState error={q.error} />
      ) : (
        <JsonView value={q.data} filename={`${title}.json`} />
      )}
    </Modal>
  );
}

function CreateNetwork({ nodeId }: { nodeId: string }) {
  const action = useDockerAction(nodeId);
  const [name, setName] = useState('');
  const [driver, setDriver] = useState('bridge');
  const [subnet, setSubnet] = useState('');
  const [internal, setInternal] = useState(false);
  async function submit(e: FormEvent) {
    e.preventDefault();
    if (!name.trim()) return;
    const body: Record<string, unknown> = {
      Name: name.trim(),
      Driver: driver,
      Internal: internal,
      CheckDuplicate: true,
    };
    if (subnet.trim()) body['IPAM'] = { Config: [{ Subnet: subnet.trim() }] };
    if (await action.run('create', '/networks/create', { body })) {
      setName('');
      setSubnet('');
    }
  }
  return (
    <Paper className="cap-glass" p="md">
      <form onSubmit={submit}>
        <Group align="flex-end">
          <TextInput
            label="New network"
            placeholder="name"
            value={name}
            onChange={(e) => setName(e.currentTarget.value)}
            data-testid="network-name"
          />
          <Select
            label="Driver"
            value={driver}
            onChange={(v) => setDriver(v ?? 'bridge')}
            data={['bridge', 'macvlan', 'ipvlan', 'overlay']}
            allowDeselect={false}
            w={120}
          />
          <TextInput
            label="Subnet"
            placeholder="auto"
            value={subnet}
            onChange={(e) => setSubnet(e.currentTarget.value)}
            w={160}
          />
          <Checkbox
            label="internal"
            checked={internal}
            onChange={(e) => setInternal(e.currentTarget.checked)}
            mb={8}
          />
          <Button type="submit" loading={action.pending !== null} data-testid="network-create">
            Create
          </Button>
        </Group>
      </form>
      <ActionError error={action.error} onClose={action.clear} />
    </Paper>
  );
}

function ConnectModal({
  nodeId,
  network,
  onClose,
}: {
  nodeId: string;
  network: DockerNetwork | null;
  onClose: () => void;
}) {
  const containers = useNodeContainers(nodeId);
  const action = useDockerAction(nodeId);
  const [container, setContainer] = useState<string | null>(null);
  return (
    <Modal
      opened={network !== null}
      onClose={onClose}
      title={`Connect a container to ${network?.Name ?? ''}`}
    >
      <Stack>
        <Select
          label="Container"
          searchable
          value={container}
          onChange={setContainer}
          data={(containers.data ?? []).map((c) => ({ value: c.Id, label: containerName(c) }))}
          data-testid="connect-container"
        />
        <ActionError error={action.error} />
        <Group justify="flex-end">
          <Button
            disabled={!container}
            loading={action.pending !== null}
            data-testid="connect-submit"
            onClick={async () => {
              if (!network || !container) return;
              if (
                await action.run('connect', `/networks/${network.Id}/connect`, {
                  body: { Container: container },
                })
              )
                onClose();
            }}
          >
            Connect
          </Button>
        </Group>
      </Stack>
    </Modal>
  );
}

export function NetworksTab({ nodeId }: { nodeId: string }) {
  const q = useDockerNetworks(nodeId);
  const containers = useNodeContainers(nodeId);
  const action = useDockerAction(nodeId);
  const [inspect, setInspect] = useState<DockerNetwork | null>(null);
  const [connecting, setConnecting] = useState<DockerNetwork | null>(null);
  if (q.isPending) return <Loading label="Listing networks…" />;
  if (q.isError)
    return <ErrorState error={q.error} title="Could not list networks" onRetry={() => q.refetch()} />;
  // the list answer leaves Containers empty: who is on a network comes from the containers
  const members = new Map<string, { id: string; name: string }[]>();
  for (const c of containers.data ?? [])
    for (const [netName, n] of Object.entries(c.NetworkSettings?.Networks ?? {})) {
      const key = n.NetworkID || netName;
      members.set(key, [...(members.get(key) ?? []), { id: c.Id, name: containerName(c) }]);
    }
  return (
    <Stack gap="md" data-testid="networks-tab">
      <CreateNetwork nodeId={nodeId} />
      <ActionError error={action.error} onClose={action.clear} />
      <Paper className="cap-glass" p="sm">
        <Table highlightOnHover aria-label="Networks">
          <Table.Thead>
            <Table.Tr>
              <Table.Th>Name</Table.Th>
              <Table.Th>Driver</Table.Th>
              <Table.Th>Subnet</Table.Th>
              <Table.Th>Containers</Table.Th>
              <Table.Th />
            </Table.Tr>
          </Table.Thead>
          <Table.Tbody>
            {[...q.data]
              .sort((a, b) => a.Name.localeCompare(b.Name))
              .map((n) => {
                const on = members.get(n.Id) ?? [];
                return (
                  <Table.Tr key={n.Id} data-testid="network-row" data-name={n.Name}>
                    <Table.Td fw={600}>
                      {n.Name}{' '}
                      {BUILTIN.has(n.Name) ? (
                        <Badge size="xs" color="gray">
                          built-in
                        </Badge>
                      ) : null}
                      {n.Internal ? <Badge size="xs">internal</Badge> : null}
                    </Table.Td>
                    <Table.Td>{n.Driver}</Table.Td>
                    <Table.Td ff="monospace" fz="xs">
                      {(n.IPAM?.Config ?? [])
                        .map((c) => c.Subnet)
                        .filter(Boolean)
                        .join(', ')}
                    </Table.Td>
                    <Table.Td>
                      <Group gap={4}>
                        {on.map((c) => (
                          <Badge
                            key={c.id}
                            size="sm"
                            variant="light"
                            tt="none"
                            data-testid="network-member"
                            rightSection={
                              BUILTIN.has(n.Name) && n.Name !== 'bridge' ? null : (
                                <ActionIcon
                                  size="xs"
                                  variant="transparent"
                                  aria-label={`Disconnect ${c.name}`}
                                  data-testid="network-disconnect"
                                  onClick={() => {
                                    if (window.confirm(`Disconnect ${c.name} from ${n.Name}?`))
                                      void action.run('disconnect', `/networks/${n.Id}/disconnect`, {
                                        body: { Container: c.id },
                                      });
                                  }}
                                >
                                  ✕
                                </ActionIcon>
                              )
                            }
                          >
                            {c.name}
                          </Badge>
                        ))}
                      </Group>
                    </Table.Td>
                    <Table.Td>
                      <Menu position="bottom-end" withinPortal>
                        <Menu.Target>
                          <ActionIcon
                            variant="subtle"
                            aria-label={`Actions for ${n.Name}`}
                            data-testid="network-actions"
                          >
                            ⋯
                          </ActionIcon>
                        </Menu.Target>
                        <Menu.Dropdown>
                          <Menu.Item onClick={() => setInspect(n)}>Inspect</Menu.Item>
                          {n.Name === 'host' || n.Name === 'none' ? null : (
                            <Menu.Item onClick={() => setConnecting(n)} data-testid="network-connect">
                              Connect a container…
                            </Menu.Item>
                          )}
                          {BUILTIN.has(n.Name) ? null : (
                            <Menu.Item
                              color="red"
                              data-testid="network-remove"
                              onClick={() => {
                                if (window.confirm(`Remove the network ${n.Name}?`))
                                  void action.run('remove', `/networks/${n.Id}`, { method: 'DELETE' });
                              }}
                            >
                              Remove
                            </Menu.Item>
                          )}
                        </Menu.Dropdown>
                      </Menu>
                    </Table.Td>
                  </Table.Tr>
                );
              })}
          </Table.Tbody>
        </Table>
      </Paper>
      <InspectModal
        nodeId={nodeId}
        path={inspect ? `/networks/${inspect.Id}` : null}
        title={inspect?.Name ?? ''}
        onClose={() => setInspect(null)}
      />
      <ConnectModal nodeId={nodeId} network={connecting} onClose={() => setConnecting(null)} />
    </Stack>
  );
}

interface Grant {
  url: string;
  relayUrl: string;
  name: string;
}

function RestoreModal({
  nodeId,
  volume,
  onClose,
}: {
  nodeId: string;
  volume: DockerVolume | null;
  onClose: () => void;
}) {
  const file = useRef<HTMLInputElement>(null);
  const [truncate, setTruncate] = useState(false);
  const [force, setForce] = useState(false);
  const [sent, setSent] = useState<{ loaded: number; total: number } | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [done, setDone] = useState(false);
  async function restore() {
    const f = file.current?.files?.[0];
    if (!volume || !f) return;
    setError(null);
    setDone(false);
    setSent({ loaded: 0, total: f.size });
    try {
      const grant = await api<Grant>(
        `/nodes/${encodeURIComponent(nodeId)}/volumes/${encodeURIComponent(volume.Name)}/restore`,
        {
          method: 'POST',
          body: { size: f.size, truncate, force },
        },
      );
      const ctl = new AbortController();
      await withRelayFallback(grant, (url) =>
        putFile(url, f, (loaded) => setSent({ loaded, total: f.size }), ctl.signal),
      );
      setDone(true);
    } catch (e) {
      setError(e);
    }
  }
  return (
    <Modal
      opened={volume !== null}
      onClose={() => {
        setSent(null);
        setDone(false);
        setError(null);
        onClose();
      }}
      title={`Restore ${volume?.Name ?? ''} from an archive`}
    >
      <Stack>
        <input
          ref={file}
          type="file"
          accept=".tar,.tar.gz,.tgz,.tar.zst,.zip"
          data-testid="volume-restore-file"
        />
        <Checkbox
          label="Empty the volume first"
          checked={truncate}
          onChange={(e) => setTruncate(e.currentTarget.checked)}
        />
        <Checkbox
          label="Even while a running container uses it"
          checked={force}
          onChange={(e) => setForce(e.currentTarget.checked)}
        />
        {sent ? <Progress value={sent.total ? (sent.loaded / sent.total) * 100 : 100} /> : null}
        {done ? (
          <Text c="teal" size="sm" data-testid="volume-restored">
            Restored.
          </Text>
        ) : null}
        <ActionError error={error} />
        <Group justify="flex-end">
          <Button onClick={() => void restore()} data-testid="volume-restore-submit">
            Restore
          </Button>
        </Group>
      </Stack>
    </Modal>
  );
}

function CreateVolume({ nodeId }: { nodeId: string }) {
  const action = useDockerAction(nodeId);
  const [name, setName] = useState('');
  return (
    <Paper className="cap-glass" p="md">
      <form
        onSubmit={async (e) => {
          e.preventDefault();
          if (await action.run('create', '/volumes/create', { body: { Name: name.trim(), Driver: 'local' } }))
            setName('');
        }}
      >
        <Group align="flex-end">
          <TextInput
            label="New volume"
            placeholder="name (empty: a random one)"
            value={name}
            onChange={(e) => setName(e.currentTarget.value)}
            data-testid="volume-name"
          />
          <Button type="submit" loading={action.pending !== null} data-testid="volume-create">
            Create
          </Button>
        </Group>
      </form>
      <ActionError error={action.error} onClose={action.clear} />
    </Paper>
  );
}

export function VolumesTab({ nodeId }: { nodeId: string }) {
  const q = useDockerVolumes(nodeId);
  const containers = useNodeContainers(nodeId);
  const action = useDockerAction(nodeId);
  const [inspect, setInspect] = useState<DockerVolume | null>(null);
  const [restoring, setRestoring] = useState<DockerVolume | null>(null);
  const [browsing, setBrowsing] = useState<string | null>(null);
  const [backupError, setBackupError] = useState<unknown>(null);
  // docker.read only: browse and inspect; nothing that changes, backs up or restores
  const canWrite = useCanWrite(nodeId);
  if (q.isPending) return <Loading label="Listing volumes…" />;
  if (q.isError)
    return <ErrorState error={q.error} title="Could not list volumes" onRetry={() => q.refetch()} />;
  const users = new Map<string, string[]>();
  for (const c of containers.data ?? [])
    for (const m of c.Mounts ?? [])
      if (m.Type === 'volume' && m.Name) users.set(m.Name, [...(users.get(m.Name) ?? []), containerName(c)]);
  async function backup(v: DockerVolume) {
    setBackupError(null);
    try {
      const grant = await api<Grant>(
        `/nodes/${encodeURIComponent(nodeId)}/volumes/${encodeURIComponent(v.Name)}/archive`,
        {
          method: 'POST',
          body: { format: 'tar.gz' },
        },
      );
      await startDownload(grant, grant.name);
    } catch (e) {
      setBackupError(e);
    }
  }
  return (
    <Stack gap="md" data-testid="volumes-tab">
      {canWrite ? <CreateVolume nodeId={nodeId} /> : null}
      <ActionError
        error={action.error ?? backupError}
        onClose={() => {
          action.clear();
          setBackupError(null);
        }}
      />
      <Paper className="cap-glass" p="sm">
        <Title order={5} mb="xs">
          {q.data.length} volumes
        </Title>
        <Table highlightOnHover aria-label="Volumes">
          <Table.Thead>
            <Table.Tr>
              <Table.Th>Name</Table.Th>
              <Table.Th>Driver</Table.Th>
              <Table.Th>Used by</Table.Th>
              <Table.Th>Created</Table.Th>
              <Table.Th />
            </Table.Tr>
          </Table.Thead>
          <Table.Tbody>
            {[...q.data]
              .sort((a, b) => a.Name.localeCompare(b.Name))
              .map((v) => (
                <Table.Tr key={v.Name} data-testid="volume-row" data-name={v.Name}>
                  <Table.Td ff="monospace" fz="sm" title={v.Mountpoint}>
                    {v.Name.length > 40 ? shortId(v.Name) : v.Name}
                  </Table.Td>
                  <Table.Td>{v.Driver}</Table.Td>
                  <Table.Td fz="sm">
                    {(users.get(v.Name) ?? []).join(', ') || (
                      <Text size="xs" c="dimmed">
                        unused
                      </Text>
                    )}
                  </Table.Td>
                  <Table.Td fz="xs">
                    {v.CreatedAt?.slice(0, 16).replace('T', ' ') ?? '—'}
                    {v.UsageData?.Size ? ` · ${formatBytes(v.UsageData.Size)}` : ''}
                  </Table.Td>
                  <Table.Td>
                    <Menu position="bottom-end" withinPortal>
                      <Menu.Target>
                        <ActionIcon
                          variant="subtle"
                          aria-label={`Actions for ${v.Name}`}
                          data-testid="volume-actions"
                        >
                          ⋯
                        </ActionIcon>
                      </Menu.Target>
                      <Menu.Dropdown>
                        <Menu.Item onClick={() => setBrowsing(v.Name)} data-testid="volume-browse">
                          Browse files
                        </Menu.Item>
                        <Menu.Item onClick={() => setInspect(v)}>Inspect</Menu.Item>
                        {canWrite ? (
                          <>
                            <Menu.Item onClick={() => void backup(v)} data-testid="volume-backup">
                              Back up (download .tar.gz)
                            </Menu.Item>
                            <Menu.Item onClick={() => setRestoring(v)} data-testid="volume-restore">
                              Restore from an archive…
                            </Menu.Item>
                            <Menu.Divider />
                            <Menu.Item
                              color="red"
                              data-testid="volume-remove"
                              onClick={() => {
                                if (window.confirm(`Remove the volume ${v.Name} and its data?`))
                                  void action.run('remove', `/volumes/${encodeURIComponent(v.Name)}`, {
                                    method: 'DELETE',
                                  });
                              }}
                            >
                              Remove
                            </Menu.Item>
                          </>
                        ) : null}
                      </Menu.Dropdown>
                    </Menu>
                  </Table.Td>
                </Table.Tr>
              ))}
          </Table.Tbody>
        </Table>
      </Paper>
      <InspectModal
        nodeId={nodeId}
        path={inspect ? `/volumes/${encodeURIComponent(inspect.Name)}` : null}
        title={inspect?.Name ?? ''}
        onClose={() => setInspect(null)}
      />
      <RestoreModal nodeId={nodeId} volume={restoring} onClose={() => setRestoring(null)} />
      <VolumeBrowser nodeId={nodeId} volume={browsing} onClose={() => setBrowsing(null)} />
    </Stack>
  );
}
