import { Alert, Badge, Divider, Select, SimpleGrid, Stack, Text, TextInput } from '@mantine/core';
import type { Allocation, TemplateDetail, TemplateSummary, TemplateVariable } from '../api/types.ts';
import { isRequired, ruleHint, ruleOptions } from '../lib/variables.ts';
import { MONO_INPUT } from '../theme.ts';

/** One template variable as a form field: its name, description, rules as a hint, the Panel's message. */
export function VariableField({
  v,
  value,
  error,
  onChange,
  testIdPrefix = 'create-var',
  autoFocus = false,
}: {
  v: Pick<
    TemplateVariable,
    'name' | 'description' | 'envVariable' | 'defaultValue' | 'rules' | 'userViewable'
  >;
  value: string;
  error: string | undefined;
  onChange: (value: string) => void;
  testIdPrefix?: string;
  /** the field a feature dialog pointed to (gsl_token) */
  autoFocus?: boolean;
}) {
  const options = ruleOptions(v.rules);
  const hint = ruleHint(v.rules);
  // inline, so the required mark stays on the label's line
  const label = (
    <>
      {v.name}
      {v.userViewable ? null : (
        <Badge
          size="xs"
          color="gray"
          variant="outline"
          component="span"
          ml={6}
          style={{ verticalAlign: 'middle' }}
        >
          hidden from users
        </Badge>
      )}
    </>
  );
  const description = (
    <>
      {v.description ? <span style={{ display: 'block' }}>{v.description}</span> : null}
      <code>{v.envVariable}</code>
      {hint ? ` · ${hint}` : ''}
    </>
  );
  return options ? (
    <Select
      label={label}
      description={description}
      required={isRequired(v.rules)}
      data={options.includes(value) || value === '' ? options : [value, ...options]}
      value={value === '' ? null : value}
      onChange={(val) => onChange(val ?? '')}
      error={error}
      autoFocus={autoFocus}
      data-testid={`${testIdPrefix}-${v.envVariable}`}
    />
  ) : (
    <TextInput
      label={label}
      description={description}
      required={isRequired(v.rules)}
      placeholder={v.defaultValue}
      value={value}
      onChange={(e) => onChange(e.currentTarget.value)}
      error={error}
      autoFocus={autoFocus}
      styles={MONO_INPUT}
      data-testid={`${testIdPrefix}-${v.envVariable}`}
    />
  );
}

export interface TemplateChoice {
  templateId: string | null;
  image: string | null;
  /** '' = the first free allocation of the node (the Panel picks) */
  allocationId: string;
  values: Record<string, string>;
  /** one of the template's startup commands (Pelican's startup_commands); null = its default */
  startup: string | null;
}

/**
 * The "from a template" part of the create form: which template, which of its images, the primary
 * port, and its variables with descriptions, defaults and the Panel's per-field messages.
 */
export function TemplateFields({
  templates,
  detail,
  detailLoading,
  allocations,
  nodeChosen,
  choice,
  onChange,
  errors,
}: {
  templates: TemplateSummary[];
  detail: TemplateDetail | undefined;
  detailLoading: boolean;
  allocations: Allocation[] | undefined;
  nodeChosen: boolean;
  choice: TemplateChoice;
  onChange: (next: TemplateChoice) => void;
  /** env name (or `image`, `allocationId`, `templateId`) → message */
  errors: Map<string, string>;
}) {
  const free = (allocations ?? []).filter((a) => a.serverId === null);
  const variables = detail?.template.variables ?? [];
  const set = (patch: Partial<TemplateChoice>) => onChange({ ...choice, ...patch });
  return (
    <Stack gap="md">
      <SimpleGrid cols={{ base: 1, sm: 2 }}>
        <Select
          label="Template"
          required
          placeholder={templates.length ? 'Choose a template' : 'No templates: import one first'}
          searchable
          data={templates.map((t) => ({ value: t.id, label: t.builtin ? `${t.name} (built-in)` : t.name }))}
          value={choice.templateId}
          onChange={(v) => set({ templateId: v, image: null, values: {}, startup: null })}
          error={errors.get('templateId')}
          allowDeselect={false}
          data-testid="create-template-id"
        />
        <Select
          label="Docker image"
          required
          description="One of the template's images"
          placeholder={detail ? 'Choose an image' : 'Choose a template first'}
          disabled={!detail}
          data={(detail?.template.images ?? []).map((i) => ({
            value: i.image,
            label: i.label && i.label !== i.image ? `${i.label} — ${i.image}` : i.image,
          }))}
          // the Panel takes the first when none is sent; show that
          value={choice.image ?? detail?.template.images[0]?.image ?? null}
          onChange={(v) => set({ image: v })}
          error={errors.get('image')}
          allowDeselect={false}
          data-testid="create-template-image"
        />
        <Select
          label="Primary port"
          description={
            !nodeChosen
              ? 'Choose a node first'
              : allocations && allocations.length === 0
                ? "The node has no port allocations: add some on the node's page, or none is published"
                : 'SERVER_PORT; from the node’s allocations'
          }
          disabled={!nodeChosen}
          data={[
            { value: '', label: 'First free allocation' },
            ...free.map((a) => ({ value: a.id, label: `${a.ip}:${a.port}` })),
          ]}
          value={choice.allocationId}
          onChange={(v) => set({ allocationId: v ?? '' })}
          error={errors.get('allocationId') ?? errors.get('port')}
          allowDeselect={false}
          data-testid="create-allocation"
        />
      </SimpleGrid>
      {detail && detail.template.startupCommands.length > 1 ? (
        <Select
          label="Startup command"
          description="The template offers several"
          data={detail.template.startupCommands.map((c) => ({ value: c.command, label: c.label }))}
          value={choice.startup ?? detail.template.startup}
          onChange={(v) => set({ startup: v })}
          allowDeselect={false}
          data-testid="create-template-startup"
        />
      ) : null}
      {detail ? (
        <>
          {detail.template.description ? (
            <Text size="sm" c="dimmed" lineClamp={3}>
              {detail.template.description}
            </Text>
          ) : null}
          {detail.hasInstall ? (
            <Alert color="blue" variant="light" p="xs">
              <Text size="sm">
                This template has an install script: it runs in{' '}
                <code>{detail.template.install.container}</code> when the server is created; its output shows
                in the server's Install tab. Start the server once it has finished.
              </Text>
            </Alert>
          ) : null}
          <Divider label={`Variables (${variables.length})`} labelPosition="left" />
          {variables.length === 0 ? (
            <Text size="sm" c="dimmed">
              This template has no variables.
            </Text>
          ) : (
            <SimpleGrid cols={{ base: 1, sm: 2 }} data-testid="create-variables">
              {variables.map((v) => (
                <VariableField
                  key={v.envVariable}
                  v={v}
                  value={choice.values[v.envVariable] ?? v.defaultValue}
                  error={errors.get(v.envVariable)}
                  onChange={(val) => set({ values: { ...choice.values, [v.envVariable]: val } })}
                />
              ))}
            </SimpleGrid>
          )}
        </>
      ) : detailLoading ? (
        <Text size="sm" c="dimmed">
          Loading the template…
        </Text>
      ) : null}
    </Stack>
  );
}
