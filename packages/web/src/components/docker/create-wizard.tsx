import {
  ActionIcon,
  Autocomplete,
  Button,
  Checkbox,
  Code,
  Group,
  Paper,
  ScrollArea,
  Select,
  Stack,
  Stepper,
  Text,
  TextInput,
} from '@mantine/core';
import { useQueryClient } from '@tanstack/react-query';
import { type ReactNode, useMemo, useState } from 'react';
import { useNavigate } from 'react-router';
import {
  dockerFetch,
  dockerJson,
  invalidateDocker,
  useDockerImages,
  useDockerNetworks,
  useDockerVolumes,
} from '../../api/docker.ts';
import {
  buildCreateRequest,
  type CreateErrors,
  type CreateForm,
  emptyCreateForm,
  isDangling,
  type KeyValue,
  type MountRow,
  type PortRow,
} from '../../lib/docker.ts';
import { ActionError } from './common.tsx';

function RowsEditor<T>({
  rows,
  onChange,
  blank,
  render,
  addLabel,
  testId,
}: {
  rows: T[];
  onChange: (rows: T[]) => void;
  blank: () => T;
  render: (row: T, set: (r: T) => void, i: number) => ReactNode;
  addLabel: string;
  testId: string;
}) {
  return (
    <Stack gap={6} data-testid={testId}>
      {rows.map((r, i) => (
        // rows have no identity of their own; the index is theirs while editing
        // biome-ignore lint/suspicious/noArrayIndexKey: see above
        <Group key={i} gap={6} align="flex-start" wrap="nowrap">
          {render(r, (n) => onChange(rows.map((x, j) => (j === i ? n : x))), i)}
          <ActionIcon
            variant="subtle"
            color="red"
            mt={4}
            aria-label="Remove row"
            onClick={() => onChange(rows.filter((_, j) => j !== i))}
          >
            ✕
          </ActionIcon>
        </Group>
      ))}
      <Group>
        <Button
          size="xs"
          variant="light"
          onClick={() => onChange([...rows, blank()])}
          data-testid={`${testId}-add`}
        >
          {addLabel}
        </Button>
      </Group>
    </Stack>
  );
}

const kvRow =
  (errors: CreateErrors, prefix: 'env' | 'labels', keyLabel: string) =>
  (r: KeyValue, set: (r: KeyValue) => void, i: number) => (
    <>
      <TextInput
        placeholder={keyLabel}
        value={r.key}
        onChange={(e) => set({ ...r, key: e.currentTarget.value })}
        error={errors[`${prefix}.${i}`]}
        data-testid={`${prefix}-key-${i}`}
        w={200}
      />
      <TextInput
        placeholder="value"
        value={r.value}
        onChange={(e) => set({ ...r, value: e.currentTarget.value })}
        data-testid={`${prefix}-value-${i}`}
        style={{ flex: 1 }}
      />
    </>
  );

/**
 * The container create wizard: image (local images offered), name, command and entrypoint,
 * environment; ports, volumes and binds, network; restart policy, limits, labels; a review of the
 * exact Engine request. The Panel's policy refusals come back with their code and message.
 */
export function CreateWizard({ nodeId }: { nodeId: string }) {
  const images = useDockerImages(nodeId);
  const networks = useDockerNetworks(nodeId);
  const volumes = useDockerVolumes(nodeId);
  const qc = useQueryClient();
  const navigate = useNavigate();
  const [form, setForm] = useState<CreateForm>(emptyCreateForm);
  const [step, setStep] = useState(0);
  const [shownErrors, setShownErrors] = useState<CreateErrors>({});
  const [submitting, setSubmitting] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const built = useMemo(() => buildCreateRequest(form), [form]);
  const set = <K extends keyof CreateForm>(k: K, v: CreateForm[K]) => setForm((f) => ({ ...f, [k]: v }));
  const tags = useMemo(
    () =>
      [...new Set((images.data ?? []).filter((i) => !isDangling(i)).flatMap((i) => i.RepoTags ?? []))].sort(),
    [images.data],
  );
  const e = shownErrors;
  // a step's fields must be right before the next one
  const STEP_FIELDS: (keyof CreateForm | string)[][] = [
    ['image', 'name', 'command', 'entrypoint', 'env.'],
    ['ports.', 'mounts.', 'network'],
    ['restart', 'maxRetries', 'memoryMiB', 'cpus', 'labels.'],
  ];
  const stepHasErrors = (s: number) =>
    Object.keys(built.errors).some((k) =>
      (STEP_FIELDS[s] ?? []).some((f) => (f.endsWith('.') ? k.startsWith(f) : k === f)),
    );
  const next = () => {
    setShownErrors(built.errors);
    if (!stepHasErrors(step)) setStep((s) => s + 1);
  };

  async function create() {
    setShownErrors(built.errors);
    if (!built.request) return;
    setSubmitting(true);
    setError(null);
    try {
      const path = `/containers/create${built.request.name ? `?name=${encodeURIComponent(built.request.name)}` : ''}`;
      const res = await dockerJson<{ Id: string }>(nodeId, path, {
        method: 'POST',
        body: built.request.body,
      });
      if (form.start) await dockerFetch(nodeId, `/containers/${res.Id}/start`, { method: 'POST' });
      void invalidateDocker(qc, nodeId);
      navigate(`/docker/${encodeURIComponent(nodeId)}/containers/${res.Id}`);
    } catch (err) {
      setError(err);
    } finally {
      setSubmitting(false);
    }
  }

  return (
    <Paper className="cap-glass" p="md" data-testid="create-wizard">
      <Stepper active={step} onStepClick={(s) => (s < step ? setStep(s) : undefined)} size="sm">
        <Stepper.Step label="Image and command">
          <Stack mt="md">
            <Autocomplete
              label="Image"
              description="A local image of this node, or any name (pull it first on the Images tab)"
              data={tags}
              value={form.image}
              onChange={(v) => set('image', v)}
              error={e.image}
              limit={50}
              data-testid="wizard-image"
              required
            />
            <TextInput
              label="Name"
              description="Optional; the Engine picks one otherwise"
              value={form.name}
              onChange={(ev) => set('name', ev.currentTarget.value)}
              error={e.name}
              data-testid="wizard-name"
            />
            <TextInput
              label="Command"
              description={
                'Split like a shell line (quotes kept together), or a JSON array; empty = the image\u2019s'
              }
              value={form.command}
              onChange={(ev) => set('command', ev.currentTarget.value)}
              error={e.command}
              ff="monospace"
              data-testid="wizard-command"
            />
            <TextInput
              label="Entrypoint"
              description="Empty = the image's"
              value={form.entrypoint}
              onChange={(ev) => set('entrypoint', ev.currentTarget.value)}
              error={e.entrypoint}
              data-testid="wizard-entrypoint"
            />
            <Checkbox
              label="Interactive TTY (keeps a shell image running)"
              checked={form.tty}
              onChange={(ev) => set('tty', ev.currentTarget.checked)}
              data-testid="wizard-tty"
            />
            <Text size="sm" fw={600}>
              Environment
            </Text>
            <RowsEditor
              rows={form.env}
              onChange={(r) => set('env', r)}
              blank={() => ({ key: '', value: '' })}
              render={kvRow(e, 'env', 'NAME')}
              addLabel="Add variable"
              testId="wizard-env"
            />
          </Stack>
        </Stepper.Step>
        <Stepper.Step label="Network and storage">
          <Stack mt="md">
            <Select
              label="Network"
              placeholder="default (bridge)"
              clearable
              value={form.network || null}
              onChange={(v) => set('network', v ?? '')}
              data={(networks.data ?? []).map((n) => ({ value: n.Name, label: `${n.Name} (${n.Driver})` }))}
              data-testid="wizard-network"
            />
            <Text size="sm" fw={600}>
              Ports
            </Text>
            <RowsEditor<PortRow>
              rows={form.ports}
              onChange={(r) => set('ports', r)}
              blank={() => ({ host: '', container: '', protocol: 'tcp', hostIp: '' })}
              addLabel="Add port"
              testId="wizard-ports"
              render={(r, setRow, i) => (
                <>
                  <TextInput
                    placeholder="host IP (any)"
                    value={r.hostIp}
                    onChange={(ev) => setRow({ ...r, hostIp: ev.currentTarget.value })}
                    w={140}
                  />
                  <TextInput
                    placeholder="host port (random)"
                    value={r.host}
                    onChange={(ev) => setRow({ ...r, host: ev.currentTarget.value })}
                    error={e[`ports.${i}`]}
                    w={150}
                    data-testid={`port-host-${i}`}
                  />
                  <TextInput
                    placeholder="container port"
                    value={r.container}
                    onChange={(ev) => setRow({ ...r, container: ev.currentTarget.value })}
                    w={140}
                    data-testid={`port-container-${i}`}
                  />
                  <Select
                    value={r.protocol}
                    onChange={(v) => setRow({ ...r, protocol: v === 'udp' ? 'udp' : 'tcp' })}
                    data={['tcp', 'udp']}
                    w={90}
                    allowDeselect={false}
                  />
                </>
              )}
            />
            <Text size="sm" fw={600}>
              Volumes and binds
            </Text>
            <RowsEditor<MountRow>
              rows={form.mounts}
              onChange={(r) => set('mounts', r)}
              blank={() => ({ type: 'volume', source: '', target: '', readOnly: false })}
              addLabel="Add mount"
              testId="wizard-mounts"
              render={(r, setRow, i) => (
                <>
                  <Select
                    value={r.type}
                    onChange={(v) => setRow({ ...r, type: v === 'bind' ? 'bind' : 'volume' })}
                    data={[
                      { value: 'volume', label: 'volume' },
                      { value: 'bind', label: 'bind' },
                    ]}
                    w={100}
                    allowDeselect={false}
                  />
                  {r.type === 'volume' ? (
                    <Autocomplete
                      placeholder="volume name"
                      data={(volumes.data ?? []).map((v) => v.Name)}
                      value={r.source}
                      onChange={(v) => setRow({ ...r, source: v })}
                      w={200}
                      limit={30}
                      error={e[`mounts.${i}`]}
                      data-testid={`mount-source-${i}`}
                    />
                  ) : (
                    <TextInput
                      placeholder="/host/path"
                      value={r.source}
                      onChange={(ev) => setRow({ ...r, source: ev.currentTarget.value })}
                      w={200}
                      error={e[`mounts.${i}`]}
                      data-testid={`mount-source-${i}`}
                    />
                  )}
                  <TextInput
                    placeholder="/path/in/container"
                    value={r.target}
                    onChange={(ev) => setRow({ ...r, target: ev.currentTarget.value })}
                    w={200}
                    data-testid={`mount-target-${i}`}
                  />
                  <Checkbox
                    label="read-only"
                    checked={r.readOnly}
                    onChange={(ev) => setRow({ ...r, readOnly: ev.currentTarget.checked })}
                    mt={8}
                  />
                </>
              )}
            />
          </Stack>
        </Stepper.Step>
        <Stepper.Step label="Limits and labels">
          <Stack mt="md">
            <Group>
              <Select
                label="Restart policy"
                value={form.restart}
                onChange={(v) => set('restart', (v as CreateForm['restart']) ?? 'no')}
                data={['no', 'always', 'unless-stopped', 'on-failure']}
                allowDeselect={false}
                w={180}
                data-testid="wizard-restart"
              />
              {form.restart === 'on-failure' ? (
                <TextInput
                  label="Max retries"
                  value={form.maxRetries}
                  onChange={(ev) => set('maxRetries', ev.currentTarget.value)}
                  error={e.maxRetries}
                  w={120}
                />
              ) : null}
              <TextInput
                label="Memory (MiB)"
                placeholder="no limit"
                value={form.memoryMiB}
                onChange={(ev) => set('memoryMiB', ev.currentTarget.value)}
                error={e.memoryMiB}
                w={140}
                data-testid="wizard-memory"
              />
              <TextInput
                label="CPUs"
                placeholder="no limit"
                value={form.cpus}
                onChange={(ev) => set('cpus', ev.currentTarget.value)}
                error={e.cpus}
                w={120}
                data-testid="wizard-cpus"
              />
            </Group>
            <Text size="sm" fw={600}>
              Labels
            </Text>
            <RowsEditor
              rows={form.labels}
              onChange={(r) => set('labels', r)}
              blank={() => ({ key: '', value: '' })}
              render={kvRow(e, 'labels', 'key')}
              addLabel="Add label"
              testId="wizard-labels"
            />
          </Stack>
        </Stepper.Step>
        <Stepper.Step label="Review">
          <Stack mt="md">
            <Text size="sm">
              The Engine request:{' '}
              <Code>POST /containers/create{built.request?.name ? `?name=${built.request.name}` : ''}</Code>
            </Text>
            <ScrollArea h={300}>
              <Code block data-testid="wizard-review">
                {JSON.stringify(built.request?.body ?? built.errors, null, 2)}
              </Code>
            </ScrollArea>
            <Checkbox
              label="Start it once created"
              checked={form.start}
              onChange={(ev) => set('start', ev.currentTarget.checked)}
              data-testid="wizard-start"
            />
            <ActionError error={error} />
          </Stack>
        </Stepper.Step>
      </Stepper>
      <Group justify="space-between" mt="lg">
        <Button
          variant="default"
          disabled={step === 0}
          onClick={() => setStep((s) => s - 1)}
          data-testid="wizard-back"
        >
          Back
        </Button>
        {step < 3 ? (
          <Button onClick={next} data-testid="wizard-next">
            Next
          </Button>
        ) : (
          <Button
            onClick={() => void create()}
            loading={submitting}
            disabled={!built.request}
            data-testid="wizard-create"
          >
            Create container
          </Button>
        )}
      </Group>
    </Paper>
  );
}
