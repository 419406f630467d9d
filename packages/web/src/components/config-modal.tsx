import type { UpdateStage } from '@cap/protocol/messages.ts';
import {
  Alert,
  Button,
  Code,
  Divider,
  Group,
  Modal,
  SimpleGrid,
  Stack,
  Text,
  TextInput,
  Timeline,
} from '@mantine/core';
import { useQueryClient } from '@tanstack/react-query';
import { useMemo, useState } from 'react';
import { ApiError, api, errorCode, errorMessage } from '../api/http.ts';
import { useLiveMessages } from '../api/live.tsx';
import { keys } from '../api/queries.ts';
import type { ConfigUpdateAnswer, Server } from '../api/types.ts';
import {
  type EnvRow,
  envRowsToRecord,
  type LimitsInput,
  limitsToBody,
  limitsToInput,
  recordToEnvRows,
  validateEnvRows,
  validateLimits,
} from '../lib/validate.ts';
import { fieldErrors } from '../lib/variables.ts';
import { EnvEditor } from './env-editor.tsx';
import { VariableField } from './template-fields.tsx';

const STAGES: { stage: UpdateStage; label: string }[] = [
  { stage: 'validating', label: 'Validating' },
  { stage: 'stopping', label: 'Stopping the server' },
  { stage: 'recreating', label: 'Recreating the container' },
  { stage: 'starting', label: 'Starting' },
  { stage: 'waiting_ready', label: 'Waiting until it is ready' },
  { stage: 'done', label: 'Done' },
];

type Phase =
  | { kind: 'edit' }
  | { kind: 'progress' }
  | { kind: 'success'; status: string }
  | { kind: 'error'; code: string; message: string; fields?: Map<string, string> };

/** Seed 000's "UPDATE INSTANCE CONFIG": edit variables and limits, watch the Agent apply them. */
export function ConfigModal({
  server,
  opened,
  onClose,
  focus,
  canEditLimits = true,
}: {
  server: Server;
  opened: boolean;
  onClose: () => void;
  /** build limits are for admins; a subuser with startup.update edits the variables only */
  canEditLimits?: boolean;
  /** a variable's env name, or `disk`: the field a feature dialog points to, focused on open */
  focus?: string | undefined;
}) {
  const qc = useQueryClient();
  // a template server edits its variables (validated by the Panel against the template's rules)
  const variables = server.variables ?? null;
  const initialValues = () => Object.fromEntries((variables ?? []).map((v) => [v.envVariable, v.value]));
  const [values, setValues] = useState<Record<string, string>>(initialValues);
  const [varErrors, setVarErrors] = useState<Map<string, string>>(new Map());
  const [env, setEnv] = useState<EnvRow[]>(() => recordToEnvRows(server.environment));
  const [limits, setLimits] = useState<LimitsInput>(() => limitsToInput(server.limits));
  const [phase, setPhase] = useState<Phase>({ kind: 'edit' });
  const [stages, setStages] = useState<{ stage: UpdateStage; message?: string }[]>([]);
  const envErrors = useMemo(() => validateEnvRows(env), [env]);
  const limitErrors = useMemo(() => validateLimits(limits), [limits]);
  const valid = (variables !== null || envErrors.size === 0) && Object.keys(limitErrors).length === 0;

  useLiveMessages((m) => {
    if (m.type !== 'update_progress' || m.serverId !== server.id || phase.kind !== 'progress') return;
    setStages((s) => [...s, { stage: m.stage, ...(m.message ? { message: m.message } : {}) }]);
  });

  function reset() {
    setValues(initialValues());
    setVarErrors(new Map());
    setEnv(recordToEnvRows(server.environment));
    setLimits(limitsToInput(server.limits));
    setPhase({ kind: 'edit' });
    setStages([]);
  }

  /** template: only what changed (the Panel merges it into the current values); raw: the whole set */
  function environmentBody(): Record<string, string> {
    if (!variables) return envRowsToRecord(env);
    return Object.fromEntries(
      variables
        .filter((v) => values[v.envVariable] !== v.value)
        .map((v) => [v.envVariable, values[v.envVariable] ?? '']),
    );
  }

  async function submit() {
    if (!valid) return;
    setVarErrors(new Map());
    setStages([]);
    setPhase({ kind: 'progress' });
    try {
      const res = await api<ConfigUpdateAnswer>(
        `/servers/${encodeURIComponent(server.id)}/config?wait=true`,
        {
          method: 'PUT',
          body: {
            environment: environmentBody(),
            ...(canEditLimits ? { limits: limitsToBody(limits) } : {}),
          },
        },
      );
      if (res && res.ok === false)
        setPhase({ kind: 'error', code: 'UPDATE_FAILED', message: `status ${res.status}` });
      else setPhase({ kind: 'success', status: res?.status ?? 'unknown' });
    } catch (e) {
      const fields = e instanceof ApiError ? fieldErrors(e.details) : new Map<string, string>();
      if (variables && e instanceof ApiError && e.code === 'VALIDATION_FAILED' && fields.size) {
        // nothing was applied: back to the form, each message beside its field
        setVarErrors(fields);
        setPhase({ kind: 'edit' });
        return;
      }
      setPhase({
        kind: 'error',
        code: errorCode(e),
        message: errorMessage(e),
        ...(fields.size ? { fields } : {}),
      });
    } finally {
      void qc.invalidateQueries({ queryKey: keys.telemetry(server.id) });
      void qc.invalidateQueries({ queryKey: keys.servers });
    }
  }

  const reached = new Set(stages.map((s) => s.stage));
  const failed = stages.find((s) => s.stage === 'failed');
  const active = STAGES.reduce((acc, s, i) => (reached.has(s.stage) ? i : acc), -1);
  const close = () => {
    if (phase.kind === 'progress') return; // the Agent is mid-way; closing would hide the outcome
    onClose();
    reset();
  };

  return (
    <Modal
      opened={opened}
      onClose={close}
      title={
        <Text fw={700} style={{ letterSpacing: '0.06em' }}>
          UPDATE INSTANCE CONFIG
        </Text>
      }
      size="lg"
      closeButtonProps={{ 'aria-label': 'Close the config dialog' }}
      data-testid="config-modal"
    >
      {phase.kind === 'edit' ? (
        <Stack>
          <Text size="sm" c="dimmed">
            Saving restarts the server with the new values: it is stopped, its container is recreated, and it
            is started again until it reports ready.
          </Text>
          {variables ? (
            <>
              <Divider label="Variables" labelPosition="left" />
              {varErrors.size ? (
                <Text c="red.4" size="sm" role="alert" data-testid="config-var-errors">
                  <Code>VALIDATION_FAILED</Code> nothing was changed: fix the fields below.
                </Text>
              ) : null}
              <SimpleGrid cols={{ base: 1, sm: 2 }}>
                {variables.map((v) => (
                  <VariableField
                    key={v.envVariable}
                    v={v}
                    value={values[v.envVariable] ?? ''}
                    error={varErrors.get(v.envVariable)}
                    onChange={(val) => setValues((all) => ({ ...all, [v.envVariable]: val }))}
                    testIdPrefix="config-var"
                    autoFocus={focus === v.envVariable}
                  />
                ))}
              </SimpleGrid>
            </>
          ) : (
            <>
              <Divider label="Environment variables" labelPosition="left" />
              <EnvEditor rows={env} errors={envErrors} onChange={setEnv} testId="config-env" />
            </>
          )}
          {canEditLimits ? <Divider label="Limits (empty = unlimited)" labelPosition="left" /> : null}
          <SimpleGrid cols={{ base: 1, sm: 3 }} hidden={!canEditLimits}>
            <TextInput
              label="Memory"
              placeholder="1024m"
              value={limits.memory}
              error={limitErrors.memory}
              onChange={(e) => setLimits({ ...limits, memory: e.currentTarget.value })}
              data-testid="config-memory"
            />
            <TextInput
              label="CPU cores"
              placeholder="1.5"
              value={limits.cpu}
              error={limitErrors.cpu}
              onChange={(e) => setLimits({ ...limits, cpu: e.currentTarget.value })}
              data-testid="config-cpu"
            />
            <TextInput
              label="Disk"
              placeholder="5g"
              value={limits.disk}
              error={limitErrors.disk}
              autoFocus={focus === 'disk'}
              onChange={(e) => setLimits({ ...limits, disk: e.currentTarget.value })}
              data-testid="config-disk"
            />
          </SimpleGrid>
          <Group justify="flex-end">
            <Button variant="default" onClick={close}>
              Cancel
            </Button>
            <Button onClick={submit} disabled={!valid} data-testid="config-save">
              Save and restart
            </Button>
          </Group>
        </Stack>
      ) : (
        <Stack data-testid="config-progress">
          <Timeline active={active} bulletSize={18} lineWidth={2} aria-label="Update progress">
            {STAGES.map((s) => {
              const msg = stages.filter((x) => x.stage === s.stage).at(-1)?.message;
              return (
                <Timeline.Item key={s.stage} title={s.label} data-reached={reached.has(s.stage)}>
                  {msg ? (
                    <Text size="xs" c="dimmed">
                      {msg}
                    </Text>
                  ) : null}
                </Timeline.Item>
              );
            })}
          </Timeline>
          {phase.kind === 'progress' ? (
            <Text size="sm" c="dimmed" role="status">
              Applying… this takes as long as the server needs to become ready.
            </Text>
          ) : null}
          {phase.kind === 'success' ? (
            <Alert color="teal" title="Config applied" data-testid="config-success" role="status">
              The server is back with the new config (status <Code>{phase.status}</Code>).
            </Alert>
          ) : null}
          {phase.kind === 'error' ? (
            <Alert color="red" title="The update failed" data-testid="config-error" role="alert">
              <Code data-testid="error-code">{phase.code}</Code> {phase.message}
              {phase.fields
                ? [...phase.fields].map(([k, m]) => (
                    <Text key={k} size="sm" mt={4} data-testid={`config-field-error-${k}`}>
                      <Code>{k}</Code>: {m}
                    </Text>
                  ))
                : null}
              {failed?.message && failed.message !== phase.message ? (
                <Text size="sm" mt={4}>
                  Agent: {failed.message}
                </Text>
              ) : null}
            </Alert>
          ) : null}
          {phase.kind !== 'progress' ? (
            <Group justify="flex-end">
              {phase.kind === 'error' ? (
                <Button variant="default" onClick={() => setPhase({ kind: 'edit' })}>
                  Back to the form
                </Button>
              ) : null}
              <Button onClick={close} data-testid="config-close">
                Close
              </Button>
            </Group>
          ) : null}
        </Stack>
      )}
    </Modal>
  );
}
