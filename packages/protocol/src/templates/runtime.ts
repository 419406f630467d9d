import { CodedError } from '../errors.ts';
import { EggConfig, type Signal } from '../messages.ts';
import { validateVariables } from './rules.ts';
import type { Template, TemplateVariable } from './template.ts';

/**
 * What a template means at run time: the startup line, the environment, "done" detection and the
 * stop action, as Wings applies them, plus the Template → EggConfig step.
 */

/** The values Wings sets itself (`SERVER_MEMORY` in MiB, `SERVER_IP`, `SERVER_PORT`). */
export interface SystemValues {
  memoryMiB?: number;
  ip?: string;
  port?: number;
}

export function systemEnvironment(sys: SystemValues): Record<string, string> {
  return {
    SERVER_MEMORY: String(sys.memoryMiB ?? 0),
    SERVER_IP: sys.ip ?? '0.0.0.0',
    SERVER_PORT: sys.port === undefined ? '' : String(sys.port),
  };
}

/** `obj[key]` when it is obj's own (a name like `constructor` is never "found" on the prototype). */
function ownValue(obj: Readonly<Record<string, string>> | undefined, key: string): string | undefined {
  return obj && Object.hasOwn(obj, key) ? obj[key] : undefined;
}

/**
 * `{{VAR}}` → its value (an unknown name → '', as the yolks entrypoint's eval gives), for images
 * without an entrypoint that expands STARTUP. `${VAR}` is left for the shell in the container.
 */
export function fillStartup(startup: string, env: Readonly<Record<string, string>>): string {
  return startup.replace(/\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}/g, (_m, name: string) =>
    Object.hasOwn(env, name) ? (env[name] ?? '') : '',
  );
}

/**
 * The startup as a user sees it: a value the user may not view shows as `[hidden]`
 * (Pterodactyl's StartupCommandService), so a hidden value never reaches them.
 */
export function displayStartup(
  startup: string,
  variables: readonly TemplateVariable[],
  values: Readonly<Record<string, string>>,
  opts: { canViewHidden: boolean; system?: SystemValues },
): string {
  const env: Record<string, string> = { ...systemEnvironment(opts.system ?? {}) };
  for (const v of variables) {
    const value = ownValue(values, v.envVariable) ?? v.defaultValue;
    env[v.envVariable] = v.userViewable || opts.canViewHidden ? value : '[hidden]';
  }
  return fillStartup(startup, env);
}

/** The variables a user may see, with their values; the hidden ones are left out altogether. */
export function visibleVariables(
  variables: readonly TemplateVariable[],
  values: Readonly<Record<string, string>>,
  opts: { canViewHidden: boolean },
): (TemplateVariable & { value: string })[] {
  return variables
    .filter((v) => v.userViewable || opts.canViewHidden)
    .map((v) => ({ ...v, value: ownValue(values, v.envVariable) ?? v.defaultValue }));
}

/**
 * Merge a user's changes into the current values. A user without admin rights may change only
 * viewable+editable variables (PERMISSION_DENIED otherwise, location = the env name); unknown names
 * are refused (VALIDATION_FAILED). The result is validated: VALIDATION_FAILED with per-field errors.
 */
export function applyVariableChanges(
  variables: readonly TemplateVariable[],
  current: Readonly<Record<string, string>>,
  changes: Readonly<Record<string, string>>,
  opts: { admin: boolean },
): Record<string, string> {
  const byName = new Map(variables.map((v) => [v.envVariable, v]));
  const next: Record<string, string> = {};
  for (const v of variables) next[v.envVariable] = ownValue(current, v.envVariable) ?? v.defaultValue;
  for (const [name, value] of Object.entries(changes)) {
    const v = byName.get(name);
    if (!v) throw new CodedError('VALIDATION_FAILED', `unknown variable ${name}`, { location: name });
    if (!opts.admin && !(v.userViewable && v.userEditable))
      throw new CodedError('PERMISSION_DENIED', `variable ${name} cannot be changed`, { location: name });
    next[name] = value;
  }
  const result = validateVariables(variables, next);
  if (!result.ok) {
    const first = Object.keys(result.errors)[0];
    throw new CodedError('VALIDATION_FAILED', 'variables fail their rules', {
      location: first,
      details: result.errors,
    });
  }
  return next;
}

// ---------------------------------------------------------------------------------------------
// done / stop

/** CSI, OSC and two-character escape sequences. */
// biome-ignore lint/suspicious/noControlCharactersInRegex: ANSI sequences are made of control characters
const ANSI = /\u001b(?:\[[0-?]*[ -/]*[@-~]|\][^\u0007\u001b]*(?:\u0007|\u001b\\)|[@-Z\\-_])/g;

export function stripAnsi(s: string): string {
  return s.replace(ANSI, '');
}

/**
 * A matcher for console lines from `config.startup.done`: a substring, or `regex:<expr>`; any item
 * matching is enough. ANSI sequences are ignored on both sides, so a pattern written with them
 * (Venice Unleashed's) still matches, and so does a plain one against coloured output. An empty
 * pattern matches the first line, as in Wings; no pattern at all never matches (the caller marks
 * the server running at once).
 */
export function doneMatcher(done: string | readonly string[] | undefined): (line: string) => boolean {
  const list = done === undefined ? [] : typeof done === 'string' ? [done] : [...done];
  const tests = list.map((pattern): ((raw: string, plain: string) => boolean) => {
    if (pattern.startsWith('regex:')) {
      let re: RegExp;
      try {
        re = new RegExp(pattern.slice('regex:'.length));
      } catch {
        return () => false;
      }
      return (raw, plain) => re.test(plain) || re.test(raw);
    }
    const plainPattern = stripAnsi(pattern);
    return (raw, plain) => raw.includes(pattern) || (plainPattern !== '' && plain.includes(plainPattern));
  });
  return (line) => {
    const plain = stripAnsi(line);
    return tests.some((t) => t(line, plain));
  };
}

export type StopAction = { type: 'signal'; signal: Signal } | { type: 'command'; command: string };

/** `^C`/`^c` → SIGINT, any other `^…` (`^^C`, `^X`, `^SIGKILL`) → SIGKILL, '' → SIGTERM, else a command. */
export function parseStop(stop: string | undefined): StopAction {
  const s = (stop ?? '').trim();
  if (s === '') return { type: 'signal', signal: 'SIGTERM' };
  if (s === '^C' || s === '^c') return { type: 'signal', signal: 'SIGINT' };
  if (s.startsWith('^')) return { type: 'signal', signal: 'SIGKILL' };
  return { type: 'command', command: s };
}

// ---------------------------------------------------------------------------------------------
// Template → EggConfig

export interface EggConfigOptions {
  /** a name for the server (EggConfig.name) */
  name: string;
  /** one of the template's images (by label or image); default: the first */
  image?: string;
  /** variable values by env name; missing ones take the template's default */
  environment?: Readonly<Record<string, string>>;
  system?: SystemValues;
  ports?: EggConfig['ports'];
  limits?: EggConfig['limits'];
  stopTimeout?: number;
  /** a label of startupCommands; default the template's startup */
  startupCommand?: string;
}

/**
 * The eggConfig the Agent gets. `environment` carries the variables, the system values and
 * `STARTUP` (the unexpanded line, as Wings passes it, so images whose entrypoint expands it work);
 * `startup` is the same line, which the Agent fills with fillStartup for images without one.
 * Throws VALIDATION_FAILED (details: per-variable errors) when values break their rules.
 */
export function templateToEggConfig(template: Template, opts: EggConfigOptions): EggConfig {
  const image =
    opts.image === undefined
      ? template.images[0]?.image
      : (template.images.find((i) => i.label === opts.image || i.image === opts.image)?.image ?? undefined);
  if (!image)
    throw new CodedError('VALIDATION_FAILED', `image ${opts.image ?? ''} is not one of the template's`, {
      location: 'image',
    });
  const values: Record<string, string> = {};
  for (const v of template.variables)
    values[v.envVariable] = ownValue(opts.environment, v.envVariable) ?? v.defaultValue;
  const check = validateVariables(template.variables, values);
  if (!check.ok)
    throw new CodedError('VALIDATION_FAILED', 'variables fail their rules', {
      location: Object.keys(check.errors)[0],
      details: check.errors,
    });
  let startup = template.startup;
  if (opts.startupCommand !== undefined) {
    const found = template.startupCommands.find((c) => c.label === opts.startupCommand);
    if (!found)
      throw new CodedError('VALIDATION_FAILED', `no startup command ${opts.startupCommand}`, {
        location: 'startupCommand',
      });
    startup = found.command;
  }
  const environment: Record<string, string> = {
    ...values,
    ...systemEnvironment(opts.system ?? {}),
    STARTUP: startup,
  };
  const config: EggConfig = {
    name: opts.name,
    image,
    ports: opts.ports ?? {},
    environment,
    limits: opts.limits ?? {},
    startup,
    stop: template.config.stop,
  };
  if (template.config.startup.done.length > 0) config.done = template.config.startup.done;
  if (opts.stopTimeout !== undefined) config.stopTimeout = opts.stopTimeout;
  if (Object.keys(template.config.files).length > 0) config.configFiles = template.config.files;
  if (template.fileDenylist.length > 0) config.fileDenylist = [...template.fileDenylist];
  if (template.remoteConsole) config.remoteConsole = { ...template.remoteConsole };
  if (template.players && template.players.query !== 'none') config.players = { ...template.players };
  if (template.install.script.trim() !== '' && template.install.container !== '') {
    config.install = {
      script: template.install.script,
      container: template.install.container,
      entrypoint: template.install.entrypoint,
    };
  }
  const parsed = EggConfig.safeParse(config);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new CodedError('VALIDATION_FAILED', issue.message, { location: issue.path.join('.') });
  }
  return parsed.data;
}

/**
 * The game's log file from the egg's `config.logs.location` (`logs/latest.log`), as a path from the
 * server's root (`/logs/latest.log`); null when there is none or it would leave the root.
 */
export function logFile(template: { config: { logs: Readonly<Record<string, unknown>> } }): string | null {
  const location = Object.hasOwn(template.config.logs, 'location') ? template.config.logs['location'] : null;
  if (typeof location !== 'string' || location.includes('\0')) return null;
  const parts: string[] = [];
  for (const part of location.replace(/\\/g, '/').split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..') return null;
    parts.push(part);
  }
  return parts.length === 0 ? null : `/${parts.join('/')}`;
}
