/**
 * Pure helpers for template variables, port allocations and the Panel's error details: the forms
 * show what the Panel decided (its VALIDATION_FAILED `details`), these only shape it for display.
 */

export interface RuleError {
  rule: string;
  message: string;
}

/**
 * The Panel's `details` → one message per field. Two shapes arrive: a template's rule errors
 * (`{ ENV_NAME: [{ rule, message }] }`) and zod issues (`[{ path: ['environment', 'X'], message }]`).
 */
export function fieldErrors(
  details: unknown,
  prefix: readonly string[] = ['environment'],
): Map<string, string> {
  const out = new Map<string, string>();
  if (Array.isArray(details)) {
    for (const issue of details) {
      if (!issue || typeof issue !== 'object') continue;
      const { path, message } = issue as { path?: unknown; message?: unknown };
      if (!Array.isArray(path) || typeof message !== 'string') continue;
      const keyPath = path.map(String);
      const field = prefix.every((p, i) => keyPath[i] === p) ? keyPath.slice(prefix.length) : keyPath;
      const key = field.join('.');
      if (key && !out.has(key)) out.set(key, message);
    }
    return out;
  }
  if (details && typeof details === 'object') {
    for (const [key, errs] of Object.entries(details as Record<string, unknown>)) {
      if (!Array.isArray(errs)) continue;
      const messages = errs
        .map((e) =>
          e && typeof e === 'object' && typeof (e as RuleError).message === 'string'
            ? (e as RuleError).message
            : null,
        )
        .filter((m): m is string => m !== null);
      if (messages.length) out.set(key, messages.join('; '));
    }
  }
  return out;
}

export function isRequired(rules: readonly string[]): boolean {
  return rules.includes('required');
}

/** `in:a,b,c` → the allowed values (a select instead of free text), else null. */
export function ruleOptions(rules: readonly string[]): string[] | null {
  const rule = rules.find((r) => r.startsWith('in:'));
  if (!rule) return null;
  const options = rule
    .slice(3)
    .split(',')
    .map((o) => o.trim())
    .filter((o) => o !== '');
  return options.length ? options : null;
}

/** The rules as a short hint under the field ("required · integer · max:20"). */
export function ruleHint(rules: readonly string[]): string {
  return rules.filter((r) => !r.startsWith('in:')).join(' · ');
}

/** Initial form values: each variable's default. */
export function defaultValues(
  variables: readonly { envVariable: string; defaultValue: string }[],
): Record<string, string> {
  return Object.fromEntries(variables.map((v) => [v.envVariable, v.defaultValue]));
}

const PORT_SPEC = /^(\d{1,5})(?:-(\d{1,5}))?$/;
export const MAX_PORTS_PER_REQUEST = 1000;

/**
 * "25565, 27000-27010" → ["25565", "27000-27010"] for the Panel, or the reason it is not valid
 * (the same checks the Panel makes, so most mistakes are caught beside the field).
 */
export function parsePortSpecs(text: string): { specs: string[] } | { error: string } {
  const parts = text
    .split(/[\s,]+/)
    .map((p) => p.trim())
    .filter((p) => p !== '');
  if (parts.length === 0) return { error: 'Enter a port or a range, e.g. 25565 or 27000-27010' };
  if (parts.length > 100) return { error: 'At most 100 entries at once' };
  let total = 0;
  for (const p of parts) {
    const m = PORT_SPEC.exec(p);
    if (!m) return { error: `${p} is not a port or a range` };
    const a = Number(m[1]);
    const b = m[2] === undefined ? a : Number(m[2]);
    if (a < 1 || a > 65535 || b < 1 || b > 65535) return { error: `${p}: ports are 1-65535` };
    if (b < a) return { error: `${p}: the range ends before it starts` };
    total += b - a + 1;
  }
  if (total > MAX_PORTS_PER_REQUEST) return { error: `At most ${MAX_PORTS_PER_REQUEST} ports at once` };
  return { specs: parts };
}

const IPV4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;

/** IPv4 dotted quad, or something shaped like IPv6 (the Panel checks it exactly). */
export function isIpAddress(text: string): boolean {
  const t = text.trim();
  return IPV4.test(t) || (/^[0-9a-fA-F:.]+$/.test(t) && t.includes(':') && t.length <= 45);
}

/**
 * The Agent command with `AGENT_DATA_DIR` added before the program (the Panel's command leaves
 * it out and the Agent's default, `./data/agent`, depends on the directory it is started from).
 */
export function agentCommandWithDataDir(command: string, dataDir: string): string {
  if (/(^|\s)AGENT_DATA_DIR=/.test(command)) return command;
  const at = command.search(/(^|\s)npx\s/);
  if (at < 0) return `AGENT_DATA_DIR=${dataDir} ${command}`;
  const head = command.slice(0, at).trimEnd();
  const tail = command.slice(at).trimStart();
  return `${head ? `${head} ` : ''}AGENT_DATA_DIR=${dataDir} ${tail}`;
}

/** The command for a node whose secret is no longer shown (it was shown once, when added). */
export function agentCommandFor(panelUrl: string, nodeId: string, dataDir: string): string {
  return `PANEL_URL=${panelUrl} NODE_ID=${nodeId} AGENT_SECRET=<the secret shown when the node was added> AGENT_DATA_DIR=${dataDir} npx ctrl-alt-play agent`;
}

export const DEFAULT_AGENT_DATA_DIR = '/var/lib/ctrl-alt-play/agent';
