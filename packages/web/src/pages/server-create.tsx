import {
  Alert,
  Anchor,
  Button,
  Divider,
  Group,
  Paper,
  SegmentedControl,
  Select,
  SimpleGrid,
  Stack,
  Text,
  Textarea,
  TextInput,
  Title,
} from '@mantine/core';
import { type FormEvent, useMemo, useState } from 'react';
import { Link, useNavigate, useSearchParams } from 'react-router';
import { ApiError } from '../api/http.ts';
import {
  type CreateServerInput,
  useAllocations,
  useCreateServer,
  useNodes,
  useTemplate,
  useTemplates,
} from '../api/queries.ts';
import { EnvEditor, PortEditor } from '../components/env-editor.tsx';
import { ErrorState, Loading } from '../components/states.tsx';
import { type TemplateChoice, TemplateFields } from '../components/template-fields.tsx';
import {
  type EnvRow,
  envRowsToRecord,
  type LimitsInput,
  limitsToBody,
  type PortRow,
  portRowsToRecord,
  validateEnvRows,
  validateLimits,
  validatePortRows,
  validateServerName,
} from '../lib/validate.ts';
import { fieldErrors } from '../lib/variables.ts';
import { MONO_INPUT } from '../theme.ts';

type Mode = 'template' | 'custom';

interface Preset {
  value: string;
  label: string;
  image: string;
  startup: string;
  done: string;
  stop: string;
  env: EnvRow[];
}

/** Starting points; every field stays editable. "custom" is a bare image. */
const PRESETS: Preset[] = [
  {
    value: 'busybox-echo',
    label: 'Busybox echo console (test)',
    image: 'ctrl-alt-play/busybox:latest',
    // reads console lines; "stop" ends it cleanly (sh as PID 1 ignores SIGTERM)
    startup: 'echo ready; while read l; do [ "$l" = stop ] && exit 0; echo "got:$l"; done',
    done: 'ready',
    stop: 'stop',
    env: [],
  },
  { value: 'custom', label: 'Custom image', image: '', startup: '', done: '', stop: '', env: [] },
];

/** The node choice that leaves placement to the Panel (no nodeId in the request). */
const AUTO_NODE = '__automatic__';

export function ServerCreatePage() {
  const nodes = useNodes();
  const create = useCreateServer();
  const navigate = useNavigate();
  const [params] = useSearchParams();
  const templates = useTemplates();
  // templates are the usual way (built-ins ship with the Panel); a bare image is the other tab
  const [mode, setMode] = useState<Mode>(params.get('mode') === 'custom' ? 'custom' : 'template');
  const [choice, setChoice] = useState<TemplateChoice>({
    templateId: params.get('template'),
    image: null,
    allocationId: '',
    values: {},
    startup: null,
  });
  const detail = useTemplate(mode === 'template' ? choice.templateId : null);
  const [preset, setPreset] = useState<string>('custom');
  const [name, setName] = useState('');
  const [nodeId, setNodeId] = useState<string | null>(null);
  const [image, setImage] = useState('');
  const [startup, setStartup] = useState('');
  const [done, setDone] = useState('');
  const [stop, setStop] = useState('');
  const [env, setEnv] = useState<EnvRow[]>([]);
  const [ports, setPorts] = useState<PortRow[]>([]);
  const [limits, setLimits] = useState<LimitsInput>({ memory: '', cpu: '', disk: '' });
  const [touched, setTouched] = useState(false);
  // AUTO_NODE: the Panel places it (the online node with the most headroom that can take it)
  const chosenNode = nodeId === AUTO_NODE ? null : nodeId;
  const allocations = useAllocations(mode === 'template' ? chosenNode : null);

  const envErrors = useMemo(() => validateEnvRows(env), [env]);
  const portErrors = useMemo(() => validatePortRows(ports), [ports]);
  const limitErrors = useMemo(() => validateLimits(limits), [limits]);
  const nameError = validateServerName(name);
  const nodeError = nodeId ? null : 'Choose a node';
  const imageError = image.trim() ? null : 'An image is required';
  const templateError = choice.templateId ? null : 'Choose a template';
  const valid =
    !nameError &&
    !nodeError &&
    Object.keys(limitErrors).length === 0 &&
    (mode === 'template' ? !templateError : !imageError && envErrors.size === 0 && portErrors.size === 0);
  // the Panel's verdict per field (a template's rules, or the request schema)
  const apiErr = create.error instanceof ApiError ? create.error : null;
  const serverErrors = useMemo(() => {
    if (!apiErr) return new Map<string, string>();
    const m = apiErr.code === 'VALIDATION_FAILED' ? fieldErrors(apiErr.details) : new Map<string, string>();
    if (apiErr.location && !m.has(apiErr.location) && apiErr.code !== 'VALIDATION_FAILED')
      m.set(apiErr.location, `${apiErr.code}: ${apiErr.message}`);
    return m;
  }, [apiErr]);
  const templateErrors = useMemo(() => {
    const m = new Map(serverErrors);
    if (touched && templateError) m.set('templateId', templateError);
    return m;
  }, [serverErrors, touched, templateError]);

  // a template fills the image, startup and patterns; the user's variables are kept (template ones added)
  function applyPreset(v: string | null) {
    const p = PRESETS.find((x) => x.value === v);
    if (!p) return;
    setPreset(p.value);
    if (p.value === 'custom') return;
    setImage(p.image);
    setStartup(p.startup);
    setDone(p.done);
    setStop(p.stop);
    setEnv((rows) => [...rows, ...p.env.filter((e) => !rows.some((r) => r.key === e.key))]);
  }

  async function submit(e: FormEvent) {
    e.preventDefault();
    setTouched(true);
    if (!valid || !nodeId) return;
    const lim = limitsToBody(limits);
    if (mode === 'template') {
      if (!choice.templateId) return;
      const values: Record<string, string> = {};
      for (const v of detail.data?.template.variables ?? [])
        values[v.envVariable] = choice.values[v.envVariable] ?? v.defaultValue;
      const body: CreateServerInput = { name: name.trim(), templateId: choice.templateId };
      if (chosenNode) body.nodeId = chosenNode;
      if (choice.image) body.image = choice.image;
      if (choice.startup) body.startup = choice.startup;
      if (Object.keys(values).length) body.environment = values;
      if (choice.allocationId) body.allocationId = choice.allocationId;
      if (Object.keys(lim).length) body.limits = lim;
      const server = await create.mutateAsync(body).catch(() => null);
      if (server) navigate(`/servers/${server.id}`);
      return;
    }
    const body: CreateServerInput = { name: name.trim(), image: image.trim() };
    if (chosenNode) body.nodeId = chosenNode;
    if (startup.trim()) body.startup = startup;
    if (done.trim()) body.done = done;
    if (stop.trim()) body.stop = stop;
    const envRec = envRowsToRecord(env);
    if (Object.keys(envRec).length) body.environment = envRec;
    const portRec = portRowsToRecord(ports);
    if (Object.keys(portRec).length) body.ports = portRec;
    if (Object.keys(lim).length) body.limits = lim;
    const server = await create.mutateAsync(body).catch(() => null);
    if (server) navigate(`/servers/${server.id}`);
  }

  if (nodes.isPending) return <Loading label="Loading nodes…" />;
  if (nodes.isError) return <ErrorState error={nodes.error} title="Could not load nodes" />;
  const show = (err: string | null | undefined) => (touched ? (err ?? undefined) : undefined);
  const fieldMessages = serverErrors.size > 0;

  return (
    <Stack gap="lg" data-testid="page-server-create">
      <Title order={2}>Create server</Title>
      {nodes.data.length === 0 ? (
        <Alert color="yellow" title="No nodes">
          Servers run on nodes.{' '}
          <Anchor component={Link} to="/nodes">
            Add a node
          </Anchor>{' '}
          first.
        </Alert>
      ) : null}
      <Paper className="cap-glass" p="lg">
        <form onSubmit={submit} aria-label="Create server" noValidate>
          <Stack gap="md">
            <SimpleGrid cols={{ base: 1, sm: 2 }}>
              <TextInput
                label="Name"
                required
                value={name}
                error={show(nameError)}
                onChange={(e) => setName(e.currentTarget.value)}
                data-testid="create-name"
              />
              <Select
                label="Node"
                required
                placeholder="Choose a node"
                description={
                  nodeId === AUTO_NODE
                    ? 'The Panel picks the online node with the most headroom that fits the limits and has the image'
                    : undefined
                }
                data={[
                  { value: AUTO_NODE, label: 'Automatic (most headroom)' },
                  ...nodes.data.map((n) => ({
                    value: n.id,
                    label: `${n.name}${n.online ? '' : ' (offline)'}`,
                  })),
                ]}
                value={nodeId}
                onChange={(v) => {
                  setNodeId(v);
                  // allocations belong to a node
                  setChoice((c) => ({ ...c, allocationId: '' }));
                }}
                error={show(nodeError)}
                data-testid="create-node"
                allowDeselect={false}
              />
            </SimpleGrid>
            <SegmentedControl
              value={mode}
              onChange={(v) => setMode(v as Mode)}
              data={[
                { value: 'template', label: 'From a template' },
                { value: 'custom', label: 'Custom image' },
              ]}
              aria-label="How to make the server"
              data-testid="create-mode"
            />
            {mode === 'template' ? (
              templates.isError ? (
                <ErrorState error={templates.error} title="Could not load templates" />
              ) : (
                <TemplateFields
                  templates={templates.data ?? []}
                  detail={detail.data}
                  detailLoading={detail.isPending && choice.templateId !== null}
                  allocations={allocations.data}
                  nodeChosen={chosenNode !== null}
                  choice={choice}
                  onChange={setChoice}
                  errors={templateErrors}
                />
              )
            ) : (
              <>
                <SimpleGrid cols={{ base: 1, sm: 2 }}>
                  <Select
                    label="Preset"
                    description="Fills the image, startup and ready pattern"
                    data={PRESETS.map((p) => ({ value: p.value, label: p.label }))}
                    value={preset}
                    onChange={applyPreset}
                    allowDeselect={false}
                    data-testid="create-template"
                  />
                  <TextInput
                    label="Image"
                    required
                    description="A Docker image already present on the node"
                    value={image}
                    error={show(imageError)}
                    onChange={(e) => setImage(e.currentTarget.value)}
                    styles={MONO_INPUT}
                    data-testid="create-image"
                  />
                </SimpleGrid>
                <Textarea
                  label="Startup command"
                  description="Run with /bin/sh -c; {{VAR}} is replaced by the variable's value"
                  autosize
                  minRows={2}
                  value={startup}
                  onChange={(e) => setStartup(e.currentTarget.value)}
                  styles={MONO_INPUT}
                  data-testid="create-startup"
                />
                <SimpleGrid cols={{ base: 1, sm: 2 }}>
                  <TextInput
                    label="Ready when the console prints"
                    description="A substring, or regex:<expr>"
                    value={done}
                    onChange={(e) => setDone(e.currentTarget.value)}
                    data-testid="create-done"
                  />
                  <TextInput
                    label="Stop command"
                    description="Empty = SIGTERM; ^C = SIGINT; otherwise sent to the console"
                    value={stop}
                    onChange={(e) => setStop(e.currentTarget.value)}
                    data-testid="create-stop"
                  />
                </SimpleGrid>
                <Divider label="Environment variables" labelPosition="left" />
                <EnvEditor
                  rows={env}
                  errors={touched ? envErrors : new Map()}
                  onChange={setEnv}
                  testId="create-env"
                />
                <Divider label="Ports" labelPosition="left" />
                <PortEditor rows={ports} errors={touched ? portErrors : new Map()} onChange={setPorts} />
              </>
            )}
            <Divider label="Limits (empty = the node's default; 0 = unlimited)" labelPosition="left" />
            <SimpleGrid cols={{ base: 1, sm: 3 }}>
              <TextInput
                label="Memory"
                placeholder="1024m"
                value={limits.memory}
                error={show(limitErrors.memory)}
                onChange={(e) => setLimits({ ...limits, memory: e.currentTarget.value })}
              />
              <TextInput
                label="CPU cores"
                placeholder="1.5"
                value={limits.cpu}
                error={show(limitErrors.cpu)}
                onChange={(e) => setLimits({ ...limits, cpu: e.currentTarget.value })}
              />
              <TextInput
                label="Disk"
                placeholder="5g"
                value={limits.disk}
                error={show(limitErrors.disk)}
                onChange={(e) => setLimits({ ...limits, disk: e.currentTarget.value })}
              />
            </SimpleGrid>
            {create.isError ? (
              <ErrorState
                error={create.error}
                title={
                  apiErr?.code === 'PORT_CONFLICT'
                    ? 'That port is taken on this node'
                    : fieldMessages
                      ? 'The Panel rejected some fields: see the messages beside them'
                      : apiErr?.location
                        ? `The Panel rejected ${apiErr.location}`
                        : 'The Panel rejected the server'
                }
              />
            ) : null}
            {touched && !valid ? (
              <Text c="red.4" size="sm" role="alert">
                Fix the highlighted fields.
              </Text>
            ) : null}
            <Group justify="flex-end">
              <Button variant="default" component={Link} to="/servers">
                Cancel
              </Button>
              <Button type="submit" loading={create.isPending} data-testid="create-submit">
                Create server
              </Button>
            </Group>
          </Stack>
        </form>
      </Paper>
    </Stack>
  );
}
