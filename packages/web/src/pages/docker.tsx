import { Badge, Group, Select, Stack, Tabs, Text, Title } from '@mantine/core';
import { useNavigate, useParams } from 'react-router';
import { useContainersHead, useDockerNodes, useNodeContainers } from '../api/docker.ts';
import { DockerWriteContext } from '../components/docker/common.tsx';
import { ContainerDetail } from '../components/docker/container-detail.tsx';
import { ContainersList } from '../components/docker/containers-list.tsx';
import { CreateWizard } from '../components/docker/create-wizard.tsx';
import { ImagesTab } from '../components/docker/images.tsx';
import { NetworksTab, VolumesTab } from '../components/docker/networks-volumes.tsx';
import { RegistriesTab } from '../components/docker/registries.tsx';
import { StacksTab } from '../components/docker/stacks.tsx';
import { SystemTab } from '../components/docker/system.tsx';
import { Empty, ErrorState, Loading } from '../components/states.tsx';

const SECTIONS = [
  ['containers', 'Containers'],
  ['create', 'Create container'],
  ['images', 'Images'],
  ['networks', 'Networks'],
  ['volumes', 'Volumes'],
  ['stacks', 'Stacks'],
  ['system', 'System'],
  ['registries', 'Registries'],
] as const;
type Section = (typeof SECTIONS)[number][0];
const isSection = (s: string | undefined): s is Section => SECTIONS.some(([k]) => k === s);

/**
 * Docker, per node and across all nodes: `/docker` (every node's containers), `/docker/:nodeId/:section`
 * and `/docker/:nodeId/containers/:containerId`. Everything goes through the Panel's relay of each
 * node's Engine API (`/api/nodes/:id/docker/…`).
 */
export function DockerPage() {
  const params = useParams();
  const navigate = useNavigate();
  // the nodes whose Docker the caller may use (a docker.read grant: read-only there)
  const nodes = useDockerNodes();
  const nodeParam = params['nodeId'] ?? 'all';
  // one node's list is asked for at once, not after the node list (same cache as the list's)
  const listing =
    nodeParam !== 'all' && !params['containerId'] && (params['section'] ?? 'containers') === 'containers'
      ? nodeParam
      : '';
  useNodeContainers(listing);
  // and its first rows too, a small answer the list renders from before the whole one is here
  useContainersHead(listing);
  const section: Section = isSection(params['section']) ? params['section'] : 'containers';
  const containerId = params['containerId'];
  if (nodes.isPending) return <Loading label="Loading nodes…" />;
  if (nodes.isError)
    return <ErrorState error={nodes.error} title="Could not load nodes" onRetry={() => nodes.refetch()} />;
  const node = nodeParam === 'all' ? null : (nodes.data.find((n) => n.id === nodeParam) ?? null);
  const firstOnline = nodes.data.find((n) => n.online) ?? nodes.data[0];
  const go = (nodeId: string, s: Section) => navigate(`/docker/${encodeURIComponent(nodeId)}/${s}`);
  // registries are the Panel's (a node only for the test login)
  const perNode = (section !== 'containers' && section !== 'registries') || containerId;
  const writable = new Set(nodes.data.filter((n) => n.permissions.includes('docker.write')).map((n) => n.id));
  const canWrite = (id: string) => writable.has(id);
  const readOnly = node !== null && !canWrite(node.id);
  const sections = SECTIONS.filter(([k]) => k !== 'create' || !readOnly);

  let body: React.ReactNode;
  if (nodes.data.length === 0)
    body = <Empty title="No nodes yet">Add a node first; its Docker Engine shows here.</Empty>;
  else if (nodeParam !== 'all' && !node) body = <Empty title="No such node">Pick one above.</Empty>;
  else if (section === 'registries' && !containerId)
    body = <RegistriesTab nodeId={node?.online ? node.id : (nodes.data.find((n) => n.online)?.id ?? null)} />;
  else if (perNode && !node) body = <Empty title="Pick a node">This section is per node.</Empty>;
  else if (node && !node.online)
    body = (
      <Empty title={`${node.name} is offline`}>
        Its Agent is not connected; nothing can be asked of its Docker Engine.
      </Empty>
    );
  else if (containerId && node)
    body = <ContainerDetail nodeId={node.id} id={containerId} nodeName={node.name} />;
  else if (section === 'containers') body = <ContainersList nodes={nodes.data} nodeId={node?.id ?? null} />;
  else if (node && section === 'create' && readOnly)
    body = <Empty title="Read-only">You hold docker.read on this node: nothing can be created.</Empty>;
  else if (node && section === 'create') body = <CreateWizard nodeId={node.id} />;
  else if (node && section === 'images') body = <ImagesTab nodeId={node.id} />;
  else if (node && section === 'networks') body = <NetworksTab nodeId={node.id} />;
  else if (node && section === 'volumes') body = <VolumesTab nodeId={node.id} />;
  else if (node && section === 'stacks') body = <StacksTab nodeId={node.id} />;
  else if (node) body = <SystemTab nodeId={node.id} />;
  // docker.read only: the per-node tabs' changing buttons are disabled (they would be refused);
  // the volumes tab shows only what reads (browse, inspect) itself
  if (readOnly && section !== 'containers' && section !== 'volumes' && !containerId)
    body = (
      <fieldset
        disabled
        style={{ border: 0, margin: 0, padding: 0, minWidth: 0 }}
        data-testid="docker-readonly"
      >
        {body}
      </fieldset>
    );

  return (
    <DockerWriteContext.Provider value={canWrite}>
      <Stack gap="md" data-testid="page-docker" data-readonly={readOnly ? 'true' : undefined}>
        <Group justify="space-between" align="flex-end">
          <Group gap="sm">
            <Title order={2}>Docker</Title>
            <Text c="dimmed" size="sm">
              every container of {node ? node.name : 'every node'}, the Panel's and the others
            </Text>
          </Group>
          <Select
            label="Node"
            value={node ? node.id : 'all'}
            allowDeselect={false}
            data={[
              ...(section === 'containers' && !containerId ? [{ value: 'all', label: 'All nodes' }] : []),
              ...nodes.data.map((n) => ({ value: n.id, label: `${n.name}${n.online ? '' : ' (offline)'}` })),
            ]}
            onChange={(v) => go(v ?? 'all', containerId ? 'containers' : section)}
            data-testid="docker-node"
            w={220}
          />
        </Group>
        <Tabs
          value={containerId ? 'containers' : section}
          onChange={(s) => {
            if (!isSection(s ?? undefined)) return;
            const target = s === 'containers' ? (node?.id ?? 'all') : (node?.id ?? firstOnline?.id ?? 'all');
            go(target, s as Section);
          }}
        >
          <Tabs.List>
            {sections.map(([k, label]) => (
              <Tabs.Tab key={k} value={k} data-testid={`docker-tab-${k}`}>
                {label}
                {k !== 'containers' && k !== 'registries' && !node ? (
                  <Badge size="xs" variant="transparent" color="gray">
                    per node
                  </Badge>
                ) : null}
              </Tabs.Tab>
            ))}
          </Tabs.List>
        </Tabs>
        {readOnly ? (
          <Text size="xs" c="dimmed" data-testid="docker-readonly-note">
            Read-only: you hold docker.read on {node?.name}.
          </Text>
        ) : null}
        {body}
      </Stack>
    </DockerWriteContext.Provider>
  );
}
