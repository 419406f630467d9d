/**
 * The mod manager (issue 13 item 4): the template's mod folders with what each mod says about
 * itself, an on/off switch (a rename to `<name>.disabled`, nothing deleted), remove, upload into
 * a folder (the file API's uploads, with progress), and a catalog search and install (Modrinth)
 * for the folder kinds it serves, for the server's game version when it has one.
 */
import {
  Alert,
  Badge,
  Button,
  FileButton,
  Group,
  Pagination,
  Paper,
  Select,
  Stack,
  Switch,
  Table,
  Text,
  TextInput,
  Title,
} from '@mantine/core';
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { type FormEvent, useState } from 'react';
import { api, errorMessage } from '../api/http.ts';
import type { ApiResponse, Permission } from '../api/types.ts';
import { formatBytes } from '../lib/format.ts';
import { UploadPanel, useUploads } from './files/uploads.tsx';
import { Empty, ErrorState, Loading } from './states.tsx';

type ModsPage = ApiResponse<'/api/servers/{id}/mods', 'get'>;
type Mod = ModsPage['mods'][number];
type CatalogPage = ApiResponse<'/api/servers/{id}/mods/catalog', 'get'>;

const PAGE = 50;
/** the variables eggs use for the Minecraft version (Paper, Fabric, Forge…) */
const GAME_VERSION_VARS = ['MINECRAFT_VERSION', 'MC_VERSION', 'GAME_VERSION', 'VERSION'];

export function gameVersionOf(env: Record<string, string>): string | undefined {
  for (const k of GAME_VERSION_VARS) {
    const v = Object.hasOwn(env, k) ? env[k] : undefined;
    if (v && /^\d+\.\d+(\.\d+)?$/.test(v)) return v;
  }
  return undefined;
}

export function ModsTab({
  serverId,
  permissions,
  environment,
}: {
  serverId: string;
  permissions: readonly Permission[];
  environment: Record<string, string>;
}) {
  const can = (p: Permission) => permissions.includes(p);
  const qc = useQueryClient();
  const [page, setPage] = useState(1);
  const base = `/servers/${encodeURIComponent(serverId)}/mods`;
  const key = ['mods', serverId, page] as const;
  const q = useQuery({
    queryKey: key,
    queryFn: () => api<ModsPage>(`${base}?offset=${(page - 1) * PAGE}&limit=${PAGE}`),
  });
  const refresh = () => qc.invalidateQueries({ queryKey: ['mods', serverId] });
  const uploads = useUploads(serverId, () => void refresh());
  const [error, setError] = useState<string | null>(null);
  const toggle = useMutation({
    mutationFn: (m: Mod) =>
      api(`${base}/toggle`, { method: 'POST', body: { path: m.path, enabled: !m.enabled } }),
    onSuccess: () => refresh(),
    onError: (e) => setError(errorMessage(e)),
  });
  const remove = useMutation({
    mutationFn: (m: Mod) => api(`${base}/remove`, { method: 'POST', body: { path: m.path } }),
    onSuccess: () => refresh(),
    onError: (e) => setError(errorMessage(e)),
  });
  const [uploadFolder, setUploadFolder] = useState<string | null>(null);

  if (q.isPending) return <Loading />;
  if (q.isError)
    return <ErrorState error={q.error} title="Could not list the mods" onRetry={() => q.refetch()} />;
  const data = q.data;
  const folder = uploadFolder ?? data.folders[0]?.path ?? null;
  const upload = (files: File[]) => {
    if (!folder || files.length === 0) return;
    void uploads.start({
      dirs: [`/${folder}`],
      files: files.map((file) => ({ path: `/${folder}/${file.name}`, file })),
    });
  };

  return (
    <Stack data-testid="mods-tab">
      <Paper className="cap-glass" p="md">
        <Group justify="space-between" mb="sm">
          <Group gap="xs">
            <Title order={3} size="h4">
              Mods
            </Title>
            {data.folders.map((f) => (
              <Badge key={f.path} variant="light" title={`${f.kind} folder`}>
                {f.path} · {f.kind}
              </Badge>
            ))}
          </Group>
          {can('file.create') ? (
            <Group gap="xs">
              {data.folders.length > 1 ? (
                <Select
                  size="xs"
                  aria-label="Upload into"
                  data={data.folders.map((f) => f.path)}
                  value={folder}
                  onChange={setUploadFolder}
                  allowDeselect={false}
                />
              ) : null}
              <FileButton onChange={upload} multiple accept=".jar,.dll,.vdf,.zip">
                {(props) => (
                  <Button size="xs" {...props} data-testid="mods-upload">
                    Upload
                  </Button>
                )}
              </FileButton>
            </Group>
          ) : null}
        </Group>
        <Text size="sm" c="dimmed" mb="sm">
          A mod switched off is renamed to <code>name.disabled</code> and stays on disk. Changes take effect
          when the game loads its mods again (usually a restart).
        </Text>
        {data.missing.length > 0 ? (
          <Text size="xs" c="dimmed" data-testid="mods-missing">
            Not there yet: {data.missing.join(', ')} (an upload creates it)
          </Text>
        ) : null}
        {error ? (
          <Alert color="red" mb="sm" withCloseButton onClose={() => setError(null)} data-testid="mods-error">
            {error}
          </Alert>
        ) : null}
        <UploadPanel
          items={uploads.items}
          dirError={uploads.dirError}
          onCancel={uploads.cancel}
          onCancelAll={uploads.cancelAll}
          onClear={uploads.clear}
        />
        {data.mods.length === 0 ? (
          <Empty title="No mods yet">Upload one, or install one from a catalog.</Empty>
        ) : (
          <Table striped highlightOnHover data-testid="mods-list">
            <Table.Thead>
              <Table.Tr>
                <Table.Th>On</Table.Th>
                <Table.Th>Mod</Table.Th>
                <Table.Th>Version</Table.Th>
                <Table.Th>File</Table.Th>
                <Table.Th>Size</Table.Th>
                <Table.Th />
              </Table.Tr>
            </Table.Thead>
            <Table.Tbody>
              {data.mods.map((m) => (
                <Table.Tr
                  key={m.path}
                  data-testid="mod-row"
                  data-file={m.file}
                  data-enabled={String(m.enabled)}
                >
                  <Table.Td>
                    <Switch
                      checked={m.enabled}
                      disabled={!can('file.update') || toggle.isPending}
                      onChange={() => toggle.mutate(m)}
                      aria-label={`${m.enabled ? 'Disable' : 'Enable'} ${m.meta?.name ?? m.file}`}
                      data-testid="mod-toggle"
                    />
                  </Table.Td>
                  <Table.Td>
                    <Text size="sm" fw={600} data-testid="mod-name">
                      {m.meta?.name ?? m.file}
                    </Text>
                    {m.meta?.description ? (
                      <Text size="xs" c="dimmed" lineClamp={2}>
                        {m.meta.description}
                      </Text>
                    ) : null}
                    {m.meta?.authors ? (
                      <Text size="xs" c="dimmed">
                        by {m.meta.authors.join(', ')}
                      </Text>
                    ) : null}
                    {m.problem ? (
                      <Text size="xs" c="yellow">
                        {m.problem}
                      </Text>
                    ) : null}
                  </Table.Td>
                  <Table.Td data-testid="mod-version">{m.meta?.version ?? '—'}</Table.Td>
                  <Table.Td>
                    <Text size="xs" ff="monospace">
                      {m.path}
                    </Text>
                  </Table.Td>
                  <Table.Td>{m.type === 'directory' ? 'folder' : formatBytes(m.size)}</Table.Td>
                  <Table.Td>
                    {can('file.delete') ? (
                      <Button
                        size="compact-xs"
                        color="red"
                        variant="subtle"
                        onClick={() => {
                          if (window.confirm(`Delete ${m.file}? This cannot be undone.`)) remove.mutate(m);
                        }}
                        data-testid="mod-remove"
                      >
                        Remove
                      </Button>
                    ) : null}
                  </Table.Td>
                </Table.Tr>
              ))}
            </Table.Tbody>
          </Table>
        )}
        {data.total > PAGE ? (
          <Pagination mt="sm" total={Math.ceil(data.total / PAGE)} value={page} onChange={setPage} />
        ) : null}
      </Paper>
      {can('file.create')
        ? data.folders
            .filter((f) => data.catalogs[f.path])
            .map((f) => (
              <CatalogSearch
                key={f.path}
                serverId={serverId}
                folder={f.path}
                catalog={data.catalogs[f.path] ?? ''}
                gameVersion={gameVersionOf(environment)}
                onInstalled={() => void refresh()}
              />
            ))
        : null}
    </Stack>
  );
}

function CatalogSearch({
  serverId,
  folder,
  catalog,
  gameVersion,
  onInstalled,
}: {
  serverId: string;
  folder: string;
  catalog: string;
  gameVersion: string | undefined;
  onInstalled: () => void;
}) {
  const base = `/servers/${encodeURIComponent(serverId)}/mods`;
  const [query, setQuery] = useState('');
  const [version, setVersion] = useState(gameVersion ?? '');
  const [result, setResult] = useState<CatalogPage | null>(null);
  const [installed, setInstalled] = useState<Record<string, string>>({});
  const search = useMutation({
    mutationFn: () =>
      api<CatalogPage>(
        `${base}/catalog?${new URLSearchParams({ folder, query, ...(version ? { gameVersion: version } : {}) })}`,
      ),
    onSuccess: setResult,
  });
  const install = useMutation({
    mutationFn: (projectId: string) =>
      api<{ path: string; versionNumber: string }>(`${base}/install`, {
        method: 'POST',
        body: { folder, projectId, ...(version ? { gameVersion: version } : {}) },
      }),
    onSuccess: (r, projectId) => {
      setInstalled((m) => ({ ...m, [projectId]: r.versionNumber }));
      onInstalled();
    },
  });
  const submit = (e: FormEvent) => {
    e.preventDefault();
    search.mutate();
  };
  return (
    <Paper className="cap-glass" p="md" data-testid="mods-catalog">
      <Title order={4} size="h5" mb="xs">
        Install into {folder} from {catalog}
      </Title>
      <form onSubmit={submit}>
        <Group align="end">
          <TextInput
            label="Search"
            value={query}
            onChange={(e) => setQuery(e.currentTarget.value)}
            placeholder="permissions, worldedit…"
            data-testid="catalog-query"
          />
          <TextInput
            label="Game version"
            value={version}
            onChange={(e) => setVersion(e.currentTarget.value)}
            placeholder="any"
            w={120}
            data-testid="catalog-version"
          />
          <Button type="submit" loading={search.isPending} data-testid="catalog-search">
            Search
          </Button>
        </Group>
      </form>
      {search.isError ? <ErrorState error={search.error} title="The catalog did not answer" /> : null}
      {install.isError ? (
        <Alert color="red" mt="sm" data-testid="catalog-install-error">
          Not installed: {errorMessage(install.error)}
        </Alert>
      ) : null}
      {result ? (
        <Stack gap="xs" mt="sm" data-testid="catalog-results">
          <Text size="xs" c="dimmed">
            {result.total} found
          </Text>
          {result.projects.map((p) => (
            <Group key={p.id} justify="space-between" wrap="nowrap" data-testid="catalog-result">
              <div>
                <Text size="sm" fw={600}>
                  {p.title}
                </Text>
                <Text size="xs" c="dimmed" lineClamp={1}>
                  {p.description} · by {p.author} · {p.downloads.toLocaleString()} downloads
                </Text>
              </div>
              {Object.hasOwn(installed, p.id) ? (
                <Badge color="teal" data-testid="catalog-installed">
                  installed {installed[p.id]}
                </Badge>
              ) : (
                <Button
                  size="compact-sm"
                  loading={install.isPending && install.variables === p.id}
                  onClick={() => install.mutate(p.id)}
                  data-testid="catalog-install"
                >
                  Install
                </Button>
              )}
            </Group>
          ))}
        </Stack>
      ) : null}
    </Paper>
  );
}
