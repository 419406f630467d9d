import {
  ActionIcon,
  Anchor,
  Badge,
  Button,
  Group,
  Menu,
  Modal,
  Paper,
  SegmentedControl,
  Select,
  Stack,
  Text,
  TextInput,
} from '@mantine/core';
import { useVirtualizer } from '@tanstack/react-virtual';
import { type CSSProperties, type FormEvent, useDeferredValue, useMemo, useRef, useState } from 'react';
import { Link } from 'react-router';
import { type DockerNode, useAllContainers } from '../../api/docker.ts';
import {
  actionsFor,
  type ContainerFilter,
  containerName,
  emptyFilter,
  filterContainers,
  formatPorts,
  managedServerId,
  type NodeContainer,
  shortId,
  stateCounts,
} from '../../lib/docker.ts';
import { ErrorState, Loading } from '../states.tsx';
import { ActionError, formatCreated, StateBadge, useCanWrite, useDockerAction } from './common.tsx';

const ROW = 44;
const GRID = 'minmax(180px, 2fr) 100px minmax(160px, 2fr) 120px minmax(120px, 1.4fr) 130px 56px';

function RenameModal({ c, onClose }: { c: NodeContainer | null; onClose: () => void }) {
  const action = useDockerAction(c?.nodeId ?? '');
  const [name, setName] = useState('');
  async function submit(e: FormEvent) {
    e.preventDefault();
    if (!c || !name.trim()) return;
    const ok = await action.run(
      'rename',
      `/containers/${c.Id}/rename?name=${encodeURIComponent(name.trim())}`,
    );
    if (ok) {
      setName('');
      onClose();
    }
  }
  return (
    <Modal opened={c !== null} onClose={onClose} title={`Rename ${c ? containerName(c) : ''}`}>
      <form onSubmit={submit}>
        <Stack>
          <TextInput
            label="New name"
            value={name}
            onChange={(e) => setName(e.currentTarget.value)}
            data-testid="rename-input"
            data-autofocus
          />
          <ActionError error={action.error} />
          <Group justify="flex-end">
            <Button type="submit" loading={action.pending !== null} data-testid="rename-submit">
              Rename
            </Button>
          </Group>
        </Stack>
      </form>
    </Modal>
  );
}

function RowActions({ c, onRename }: { c: NodeContainer; onRename: (c: NodeContainer) => void }) {
  // docker.read only: no actions (they would be refused)
  if (!useCanWrite(c.nodeId)) return null;
  return <WriteActions c={c} onRename={onRename} />;
}

function WriteActions({ c, onRename }: { c: NodeContainer; onRename: (c: NodeContainer) => void }) {
  const action = useDockerAction(c.nodeId);
  const allowed = actionsFor(c.State);
  const name = containerName(c);
  // a game server's container: power through the server, no pause/remove (the server's business)
  const server = managedServerId(c);
  const item = (a: 'start' | 'stop' | 'restart' | 'kill' | 'pause' | 'unpause', label: string) =>
    allowed.has(a) && !(server && (a === 'pause' || a === 'unpause')) ? (
      <Menu.Item
        key={a}
        data-testid={`action-${a}`}
        onClick={() => {
          if (a === 'kill' && !window.confirm(`Kill ${name}?`)) return;
          if (server && a !== 'pause' && a !== 'unpause') void action.power(server, a);
          else void action.run(a, `/containers/${c.Id}/${a}`);
        }}
      >
        {label}
      </Menu.Item>
    ) : null;
  return (
    <Group gap={4} wrap="nowrap">
      <Menu position="bottom-end" withinPortal>
        <Menu.Target>
          <ActionIcon
            variant="subtle"
            aria-label={`Actions for ${name}`}
            loading={action.pending !== null}
            data-testid="container-actions"
          >
            ⋯
          </ActionIcon>
        </Menu.Target>
        <Menu.Dropdown>
          {item('start', 'Start')}
          {item('stop', 'Stop')}
          {item('restart', 'Restart')}
          {item('pause', 'Pause')}
          {item('unpause', 'Unpause')}
          {item('kill', 'Kill')}
          <Menu.Divider />
          <Menu.Item data-testid="action-rename" onClick={() => onRename(c)}>
            Rename…
          </Menu.Item>
          {server ? (
            <Menu.Item
              component={Link}
              to={`/servers/${encodeURIComponent(server)}`}
              data-testid="action-server"
            >
              Open the server (delete it there)
            </Menu.Item>
          ) : (
            <Menu.Item
              color="red"
              data-testid="action-remove"
              onClick={() => {
                if (
                  !window.confirm(`Remove ${name}${c.State === 'running' ? ' (it is running: forced)' : ''}?`)
                )
                  return;
                void action.run('remove', `/containers/${c.Id}?force=${c.State === 'running' ? 1 : 0}`, {
                  method: 'DELETE',
                });
              }}
            >
              Remove
            </Menu.Item>
          )}
        </Menu.Dropdown>
      </Menu>
      {action.error ? (
        <Text size="xs" c="red" data-testid="row-error" title={String((action.error as Error).message)}>
          !
        </Text>
      ) : null}
    </Group>
  );
}

function Row({
  c,
  onRename,
  style,
}: {
  c: NodeContainer;
  onRename: (c: NodeContainer) => void;
  style: CSSProperties;
}) {
  const name = containerName(c);
  const server = managedServerId(c);
  return (
    <div
      className="cap-docker-row"
      style={{ ...style, display: 'grid', gridTemplateColumns: GRID, alignItems: 'center', gap: 8 }}
      data-testid="container-row"
      data-name={name}
      data-state={c.State}
      data-node={c.nodeId}
    >
      <div style={{ minWidth: 0 }}>
        <Group gap={6} wrap="nowrap">
          <Anchor
            component={Link}
            to={`/docker/${encodeURIComponent(c.nodeId)}/containers/${c.Id}`}
            fw={600}
            size="sm"
            truncate
            data-testid="container-link"
          >
            {name}
          </Anchor>
          {server ? (
            <Badge
              component={Link}
              to={`/servers/${encodeURIComponent(server)}`}
              size="xs"
              variant="outline"
              color="cyan"
              style={{ cursor: 'pointer' }}
              data-testid="managed-badge"
              title="A game server of this Panel: open its page"
            >
              managed
            </Badge>
          ) : null}
        </Group>
        <Text size="xs" c="dimmed" ff="monospace">
          {shortId(c.Id)}
        </Text>
      </div>
      <div>
        <StateBadge state={c.State} />
      </div>
      <Text size="sm" ff="monospace" truncate title={c.Image}>
        {c.Image}
      </Text>
      <Text size="sm" truncate>
        {c.nodeName}
      </Text>
      <Text size="xs" ff="monospace" truncate title={formatPorts(c.Ports)}>
        {formatPorts(c.Ports)}
      </Text>
      <Text size="xs" c="dimmed" title={c.Status}>
        {formatCreated(c.Created)}
      </Text>
      <div>
        <RowActions c={c} onRename={onRename} />
      </div>
    </div>
  );
}

/** Every container of the nodes shown (one node, or all), filtered, in a virtualised list. */
export function ContainersList({
  nodes,
  nodeId,
}: {
  nodes: DockerNode[] | undefined;
  nodeId: string | null;
}) {
  const all = useAllContainers(nodes, nodeId ?? undefined);
  const [filter, setFilter] = useState<ContainerFilter>(emptyFilter);
  const deferred = useDeferredValue(filter);
  const shown = useMemo(() => filterContainers(all.list, deferred), [all.list, deferred]);
  const counts = useMemo(() => stateCounts(all.list), [all.list]);
  const [renaming, setRenaming] = useState<NodeContainer | null>(null);
  const scroller = useRef<HTMLDivElement>(null);
  const v = useVirtualizer({
    count: shown.length,
    getScrollElement: () => scroller.current,
    estimateSize: () => ROW,
    overscan: 12,
    getItemKey: (i) => `${shown[i]?.nodeId}/${shown[i]?.Id}`,
  });
  const set = (k: keyof ContainerFilter) => (value: string) => setFilter((f) => ({ ...f, [k]: value }));

  return (
    <Stack gap="sm" data-testid="containers-list">
      <Group gap="sm" align="flex-end" wrap="wrap">
        <TextInput
          label="Search"
          placeholder="name, image, id, label…"
          value={filter.text}
          onChange={(e) => set('text')(e.currentTarget.value)}
          data-testid="filter-text"
          w={220}
        />
        <TextInput
          label="Name"
          value={filter.name}
          onChange={(e) => set('name')(e.currentTarget.value)}
          data-testid="filter-name"
          w={140}
        />
        <TextInput
          label="Image"
          value={filter.image}
          onChange={(e) => set('image')(e.currentTarget.value)}
          data-testid="filter-image"
          w={160}
        />
        <TextInput
          label="Label"
          placeholder="key or key=value"
          value={filter.label}
          onChange={(e) => set('label')(e.currentTarget.value)}
          data-testid="filter-label"
          w={180}
        />
        <Select
          label="State"
          value={filter.state || null}
          onChange={(v) => set('state')(v ?? '')}
          clearable
          placeholder="any"
          data={[...counts.entries()].map(([s, n]) => ({ value: s, label: `${s} (${n})` }))}
          data-testid="filter-state"
          w={150}
        />
        {nodeId === null ? (
          <Select
            label="Node"
            value={filter.node || null}
            onChange={(v) => set('node')(v ?? '')}
            clearable
            placeholder="any"
            data={(nodes ?? []).map((n) => ({ value: n.id, label: n.name }))}
            data-testid="filter-node"
            w={150}
          />
        ) : null}
        <SegmentedControl
          size="xs"
          value={filter.managed}
          onChange={(v) => setFilter((f) => ({ ...f, managed: v as ContainerFilter['managed'] }))}
          data={[
            { value: 'any', label: 'All' },
            { value: 'managed', label: 'Managed' },
            { value: 'unmanaged', label: 'Other' },
          ]}
          data-testid="filter-managed"
        />
      </Group>
      {all.errors.map((e) => (
        <ErrorState
          key={e.node.id}
          error={e.error}
          title={`Could not list the containers of ${e.node.name}`}
        />
      ))}
      {all.offline.length ? (
        <Text size="xs" c="dimmed" data-testid="offline-nodes">
          Offline, not listed: {all.offline.map((n) => n.name).join(', ')}
        </Text>
      ) : null}
      {all.pending && all.list.length === 0 ? (
        <Loading label="Listing containers…" />
      ) : (
        <Paper className="cap-glass" p="xs">
          <Text
            size="xs"
            c="dimmed"
            mb={4}
            data-testid="container-count"
            data-shown={shown.length}
            data-total={all.list.length}
          >
            {shown.length} of {all.list.length} containers
          </Text>
          <div>
            <div
              style={{ display: 'grid', gridTemplateColumns: GRID, gap: 8, padding: '0 4px 6px' }}
              className="cap-docker-head"
            >
              {['Name', 'State', 'Image', 'Node', 'Ports', 'Created', ''].map((h) => (
                <Text key={h} size="xs" fw={700} c="dimmed">
                  {h}
                </Text>
              ))}
            </div>
            <div
              ref={scroller}
              style={{ height: 'calc(100vh - 330px)', minHeight: 320, overflow: 'auto' }}
              data-testid="containers-scroller"
            >
              <div style={{ height: v.getTotalSize(), position: 'relative' }}>
                {v.getVirtualItems().map((item) => {
                  const c = shown[item.index];
                  if (!c) return null;
                  return (
                    <Row
                      key={item.key}
                      c={c}
                      onRename={setRenaming}
                      style={{
                        position: 'absolute',
                        top: 0,
                        left: 0,
                        right: 0,
                        height: ROW,
                        transform: `translateY(${item.start}px)`,
                        padding: '0 4px',
                      }}
                    />
                  );
                })}
              </div>
            </div>
          </div>
        </Paper>
      )}
      <RenameModal c={renaming} onClose={() => setRenaming(null)} />
    </Stack>
  );
}
