import {
  ActionIcon,
  Badge,
  Button,
  Checkbox,
  Code,
  Group,
  Menu,
  Modal,
  NativeSelect,
  Paper,
  Progress,
  Stack,
  Table,
  Text,
  TextInput,
  Title,
} from '@mantine/core';
import { useQueryClient } from '@tanstack/react-query';
import { type FormEvent, useMemo, useState } from 'react';
import { useAuth } from '../../api/auth.tsx';
import {
  dockerStream,
  invalidateDocker,
  useDockerImages,
  useInspect,
  useNodeContainers,
} from '../../api/docker.ts';
import {
  applyPullEvent,
  type DockerImage,
  emptyPull,
  imageUse,
  isDangling,
  JsonLines,
  type LayerProgress,
  layerFraction,
  type PullState,
  pullFraction,
  retarget,
  shortId,
  splitTag,
} from '../../lib/docker.ts';
import { formatBytes } from '../../lib/format.ts';
import { ErrorState, Loading } from '../states.tsx';
import { ActionError, formatCreated, useDockerAction } from './common.tsx';
import { useRegistries } from './registries.tsx';

/** an empty auth for the Engine (it insists on the header for push); the Panel adds a stored registry's */
const NO_AUTH = { 'x-registry-auth': 'e30=' };

const PHASE_LABEL: Record<LayerProgress['phase'], string> = {
  waiting: 'waiting',
  downloading: 'downloading',
  verifying: 'verifying',
  downloaded: 'downloaded',
  extracting: 'extracting',
  complete: 'complete',
  exists: 'already here',
};

/** Per-layer bars and the whole one, from the aggregated stream. */
export function PullProgress({ state, verb = 'Pull' }: { state: PullState; verb?: string }) {
  const total = pullFraction(state);
  return (
    <Stack
      gap={6}
      data-testid="pull-progress"
      data-done={state.done}
      data-error={state.error ?? ''}
      data-fraction={total.toFixed(3)}
    >
      <Group justify="space-between">
        <Text size="sm" fw={600}>
          {verb} {state.error ? 'failed' : state.done ? 'complete' : 'in progress'}
        </Text>
        <Text size="sm" data-testid="pull-total">
          {Math.round(total * 100)} %
        </Text>
      </Group>
      <Progress
        value={total * 100}
        color={state.error ? 'red' : state.done ? 'teal' : 'cyan'}
        size="lg"
        animated={!state.done}
      />
      {state.layers.map((l) => (
        <Group
          key={l.id}
          gap="sm"
          wrap="nowrap"
          data-testid="pull-layer"
          data-layer={l.id}
          data-phase={l.phase}
        >
          <Code w={110}>{l.id}</Code>
          <Progress
            value={layerFraction(l) * 100}
            style={{ flex: 1 }}
            color={l.phase === 'complete' || l.phase === 'exists' ? 'teal' : 'cyan'}
          />
          <Text size="xs" w={190} c="dimmed">
            {PHASE_LABEL[l.phase]}
            {l.total
              ? ` ${formatBytes(l.current)} / ${formatBytes(l.total)}`
              : l.size
                ? ` ${formatBytes(l.size)}`
                : ''}
          </Text>
        </Group>
      ))}
      {state.messages.slice(-3).map((m, i) => (
        // biome-ignore lint/suspicious/noArrayIndexKey: the last few messages, in order
        <Text key={i} size="xs" c="dimmed" ff="monospace" data-testid="pull-message">
          {m}
        </Text>
      ))}
      {state.error ? (
        <Text size="sm" c="red" data-testid="pull-error">
          {state.error}
        </Text>
      ) : null}
    </Stack>
  );
}

/** Streams a pull or push and aggregates it; resolves with the final state. */
export async function streamProgress(
  nodeId: string,
  path: string,
  onState: (s: PullState) => void,
  headers?: Record<string, string>,
): Promise<PullState> {
  let state = emptyPull();
  const lines = new JsonLines();
  const dec = new TextDecoder();
  try {
    await dockerStream(
      nodeId,
      path,
      (chunk) => {
        for (const ev of lines.push(dec.decode(chunk, { stream: true }))) state = applyPullEvent(state, ev);
        onState(state);
      },
      { method: 'POST', ...(headers ? { headers } : {}) },
    );
    for (const ev of lines.end()) state = applyPullEvent(state, ev);
    state = { ...state, done: true };
  } catch (e) {
    state = { ...state, done: true, error: (e as Error).message };
  }
  onState(state);
  return state;
}

function PullForm({ nodeId }: { nodeId: string }) {
  const qc = useQueryClient();
  const [image, setImage] = useState('');
  const [state, setState] = useState<PullState | null>(null);
  async function submit(e: FormEvent) {
    e.preventDefault();
    const ref = image.trim();
    if (!ref) return;
    // name[:tag] or name@digest; a registry host may carry a port (localhost:5000/x:1)
    const at = ref.indexOf('@');
    const colon = ref.lastIndexOf(':');
    const hasTag = at < 0 && colon > ref.lastIndexOf('/');
    const fromImage = hasTag ? ref.slice(0, colon) : ref;
    const tag = at >= 0 ? undefined : hasTag ? ref.slice(colon + 1) : 'latest';
    setState(emptyPull());
    await streamProgress(
      nodeId,
      `/images/create?fromImage=${encodeURIComponent(fromImage)}${tag ? `&tag=${encodeURIComponent(tag)}` : ''}`,
      setState,
    );
    void invalidateDocker(qc, nodeId);
  }
  const running = state !== null && !state.done;
  return (
    <Paper className="cap-glass" p="md">
      <form onSubmit={submit}>
        <Group align="flex-end">
          <TextInput
            label="Pull an image"
            placeholder="registry:5000/name:tag"
            value={image}
            onChange={(e) => setImage(e.currentTarget.value)}
            w={360}
            data-testid="pull-image"
          />
          <Button type="submit" loading={running} data-testid="pull-submit">
            Pull
          </Button>
        </Group>
      </form>
      {state ? (
        <div style={{ marginTop: 12 }}>
          <PullProgress state={state} />
        </div>
      ) : null}
    </Paper>
  );
}

function TagModal({
  nodeId,
  image,
  onClose,
}: {
  nodeId: string;
  image: DockerImage | null;
  onClose: () => void;
}) {
  const action = useDockerAction(nodeId);
  const [target, setTarget] = useState('');
  async function submit(e: FormEvent) {
    e.preventDefault();
    if (!image) return;
    const t = target.trim();
    const colon = t.lastIndexOf(':');
    const hasTag = colon > t.lastIndexOf('/');
    const repo = hasTag ? t.slice(0, colon) : t;
    const tag = hasTag ? t.slice(colon + 1) : 'latest';
    if (
      await action.run(
        'tag',
        `/images/${encodeURIComponent(image.Id)}/tag?repo=${encodeURIComponent(repo)}&tag=${encodeURIComponent(tag)}`,
      )
    ) {
      setTarget('');
      onClose();
    }
  }
  return (
    <Modal opened={image !== null} onClose={onClose} title={`Tag ${image ? shortId(image.Id) : ''}`}>
      <form onSubmit={submit}>
        <Stack>
          <TextInput
            label="New reference"
            placeholder="127.0.0.1:5000/name:tag"
            value={target}
            onChange={(e) => setTarget(e.currentTarget.value)}
            data-testid="tag-input"
            data-autofocus
          />
          <ActionError error={action.error} />
          <Group justify="flex-end">
            <Button type="submit" loading={action.pending !== null} data-testid="tag-submit">
              Tag
            </Button>
          </Group>
        </Stack>
      </form>
    </Modal>
  );
}

/**
 * Push with per-layer progress (the pull's component). The registry is the reference's host, or
 * one of the stored registries: then the image is tagged for it first (`<host>/<path>:<tag>`).
 * Stored credentials go with it when the Panel has some for that host.
 */
function PushModal({ nodeId, tag, onClose }: { nodeId: string; tag: string | null; onClose: () => void }) {
  const qc = useQueryClient();
  const { canWrite } = useAuth();
  const registries = useRegistries(canWrite && tag !== null);
  const action = useDockerAction(nodeId);
  const [registry, setRegistry] = useState('');
  const [state, setState] = useState<PullState | null>(null);
  const chosen = registries.data?.find((r) => r.id === registry);
  const target = tag && chosen ? retarget(tag, chosen.host) : tag;
  async function push() {
    if (!tag || !target) return;
    if (target !== tag) {
      const t = splitTag(target);
      const ok = await action.run(
        'tag',
        `/images/${encodeURIComponent(tag)}/tag?repo=${encodeURIComponent(t.name)}&tag=${encodeURIComponent(t.tag)}`,
      );
      if (!ok) return;
    }
    const { name, tag: t } = splitTag(target);
    setState(emptyPull());
    await streamProgress(
      nodeId,
      `/images/${encodeURIComponent(name)}/push?tag=${encodeURIComponent(t)}`,
      setState,
      NO_AUTH,
    );
    void invalidateDocker(qc, nodeId);
  }
  return (
    <Modal
      opened={tag !== null}
      onClose={() => {
        setState(null);
        setRegistry('');
        onClose();
      }}
      title={`Push ${tag ?? ''}`}
      size="lg"
    >
      <Stack>
        <NativeSelect
          label="Registry"
          value={registry}
          onChange={(e) => setRegistry(e.currentTarget.value)}
          data={[
            { value: '', label: "the reference's own host" },
            ...(registries.data ?? []).map((r) => ({ value: r.id, label: `${r.name} (${r.host})` })),
          ]}
          data-testid="push-registry"
        />
        <Text size="sm" data-testid="push-target">
          Pushes <Code>{target ?? ''}</Code>
          {target !== tag ? ' (tagged first)' : ''}; a stored registry's credentials are used for its host.
        </Text>
        <ActionError error={action.error} onClose={action.clear} />
        {state ? <PullProgress state={state} verb="Push" /> : null}
        <Group justify="flex-end">
          <Button
            loading={(state !== null && !state.done) || action.pending !== null}
            data-testid="push-submit"
            onClick={() => void push()}
          >
            Push
          </Button>
        </Group>
      </Stack>
    </Modal>
  );
}

interface HistoryEntry {
  Id: string;
  Created: number;
  CreatedBy: string;
  Size: number;
  Tags: string[] | null;
}

function HistoryModal({
  nodeId,
  image,
  onClose,
}: {
  nodeId: string;
  image: DockerImage | null;
  onClose: () => void;
}) {
  const q = useInspect<HistoryEntry[]>(
    nodeId,
    `/images/${encodeURIComponent(image?.Id ?? '')}/history`,
    image !== null,
  );
  return (
    <Modal
      opened={image !== null}
      onClose={onClose}
      title={`Layers of ${image ? (image.RepoTags?.[0] ?? shortId(image.Id)) : ''}`}
      size="xl"
    >
      {q.isPending ? (
        <Loading />
      ) : q.isError ? (
        <ErrorState error={q.error} />
      ) : (
        <Table data-testid="image-history" fz="xs">
          <Table.Thead>
            <Table.Tr>
              <Table.Th>Created</Table.Th>
              <Table.Th>Created by</Table.Th>
              <Table.Th>Size</Table.Th>
            </Table.Tr>
          </Table.Thead>
          <Table.Tbody>
            {q.data.map((h, i) => (
              // biome-ignore lint/suspicious/noArrayIndexKey: history entries share the id <missing>
              <Table.Tr key={i}>
                <Table.Td>{formatCreated(h.Created)}</Table.Td>
                <Table.Td ff="monospace" style={{ wordBreak: 'break-all' }}>
                  {h.CreatedBy}
                </Table.Td>
                <Table.Td>{formatBytes(h.Size)}</Table.Td>
              </Table.Tr>
            ))}
          </Table.Tbody>
        </Table>
      )}
    </Modal>
  );
}

export function ImagesTab({ nodeId }: { nodeId: string }) {
  const images = useDockerImages(nodeId);
  const containers = useNodeContainers(nodeId);
  const action = useDockerAction(nodeId);
  const [tagging, setTagging] = useState<DockerImage | null>(null);
  const [pushing, setPushing] = useState<string | null>(null);
  const [history, setHistory] = useState<DockerImage | null>(null);
  const [allUnused, setAllUnused] = useState(false);
  const use = useMemo(() => imageUse(containers.data ?? []), [containers.data]);
  const prunable = (images.data ?? []).filter((i) => !use.has(i.Id) && (allUnused || isDangling(i)));
  if (images.isPending) return <Loading label="Listing images…" />;
  if (images.isError)
    return <ErrorState error={images.error} title="Could not list images" onRetry={() => images.refetch()} />;
  const sorted = [...images.data].sort((a, b) => b.Created - a.Created);
  return (
    <Stack gap="md" data-testid="images-tab">
      <PullForm nodeId={nodeId} />
      <ActionError error={action.error} onClose={action.clear} />
      <Paper className="cap-glass" p="sm">
        <Group justify="space-between" mb="xs">
          <Title order={5}>
            {images.data.length} images · {formatBytes(images.data.reduce((a, i) => a + i.Size, 0))}
          </Title>
          <Group gap="xs">
            <Checkbox
              size="xs"
              label="every unused image (not only dangling)"
              checked={allUnused}
              onChange={(e) => setAllUnused(e.currentTarget.checked)}
            />
            <Button
              size="xs"
              variant="light"
              color="red"
              disabled={prunable.length === 0}
              loading={action.pending === 'prune'}
              data-testid="images-prune"
              onClick={() => {
                const list = prunable.map((i) => i.RepoTags?.[0] ?? shortId(i.Id)).join(', ');
                if (
                  !window.confirm(
                    `Prune ${prunable.length} image(s), ${formatBytes(prunable.reduce((a, i) => a + i.Size, 0))}: ${list}?`,
                  )
                )
                  return;
                const filters = encodeURIComponent(
                  JSON.stringify({ dangling: [allUnused ? 'false' : 'true'] }),
                );
                void action.run('prune', `/images/prune?filters=${filters}`);
              }}
            >
              Prune {prunable.length} ({formatBytes(prunable.reduce((a, i) => a + i.Size, 0))})
            </Button>
          </Group>
        </Group>
        <Table.ScrollContainer minWidth={760}>
          <Table highlightOnHover aria-label="Images">
            <Table.Thead>
              <Table.Tr>
                <Table.Th>Tags</Table.Th>
                <Table.Th>Id</Table.Th>
                <Table.Th>Size</Table.Th>
                <Table.Th>Created</Table.Th>
                <Table.Th>Used by</Table.Th>
                <Table.Th />
              </Table.Tr>
            </Table.Thead>
            <Table.Tbody>
              {sorted.map((img) => {
                const n = use.get(img.Id) ?? 0;
                const tags = (img.RepoTags ?? []).filter((t) => t !== '<none>:<none>');
                return (
                  <Table.Tr key={img.Id} data-testid="image-row" data-tags={tags.join(' ')}>
                    <Table.Td>
                      <Group gap={4}>
                        {tags.map((t) => (
                          <Badge key={t} size="sm" variant="light" tt="none">
                            {t}
                          </Badge>
                        ))}
                        {isDangling(img) ? (
                          <Badge size="sm" color="gray" data-testid="image-dangling">
                            dangling
                          </Badge>
                        ) : null}
                      </Group>
                    </Table.Td>
                    <Table.Td ff="monospace" fz="xs">
                      {shortId(img.Id)}
                    </Table.Td>
                    <Table.Td>{formatBytes(img.Size)}</Table.Td>
                    <Table.Td fz="xs">{formatCreated(img.Created)}</Table.Td>
                    <Table.Td>
                      {n ? (
                        <Badge size="sm" color="teal" variant="light" data-testid="image-in-use">
                          in use · {n}
                        </Badge>
                      ) : (
                        <Text size="xs" c="dimmed">
                          unused
                        </Text>
                      )}
                    </Table.Td>
                    <Table.Td>
                      <Menu position="bottom-end" withinPortal>
                        <Menu.Target>
                          <ActionIcon variant="subtle" aria-label="Image actions" data-testid="image-actions">
                            ⋯
                          </ActionIcon>
                        </Menu.Target>
                        <Menu.Dropdown>
                          <Menu.Item onClick={() => setHistory(img)} data-testid="image-history-open">
                            History and layers
                          </Menu.Item>
                          <Menu.Item onClick={() => setTagging(img)} data-testid="image-tag">
                            Tag…
                          </Menu.Item>
                          {tags.map((t) => (
                            <Menu.Item key={t} onClick={() => setPushing(t)} data-testid="image-push">
                              Push {t}
                            </Menu.Item>
                          ))}
                          <Menu.Divider />
                          <Menu.Item
                            color="red"
                            data-testid="image-remove"
                            onClick={() => {
                              if (
                                !window.confirm(
                                  `Remove ${tags[0] ?? shortId(img.Id)}${n ? ` (used by ${n} container(s): forced)` : ''}?`,
                                )
                              )
                                return;
                              void action.run(
                                'remove',
                                `/images/${encodeURIComponent(img.Id)}?force=${n || tags.length > 1 ? 1 : 0}`,
                                { method: 'DELETE' },
                              );
                            }}
                          >
                            Remove
                          </Menu.Item>
                        </Menu.Dropdown>
                      </Menu>
                    </Table.Td>
                  </Table.Tr>
                );
              })}
            </Table.Tbody>
          </Table>
        </Table.ScrollContainer>
      </Paper>
      <TagModal nodeId={nodeId} image={tagging} onClose={() => setTagging(null)} />
      <PushModal nodeId={nodeId} tag={pushing} onClose={() => setPushing(null)} />
      <HistoryModal nodeId={nodeId} image={history} onClose={() => setHistory(null)} />
    </Stack>
  );
}
