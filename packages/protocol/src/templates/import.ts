import { CodedError } from '../errors.ts';
import { imageRefProblem } from '../image-ref.ts';
import { type ConfigFile, RemoteConsoleSpec, RemoteConsoleTransport } from '../messages.ts';
import { ModFolder } from '../mods.ts';
import { PlayerCommand } from '../player-commands.ts';
import { detectSyntax, parseJson, parseSource, type SourceSyntax } from './parse-source.ts';
import { parseRule, ruleErrors, ruleProblems, ruleTokens, validateValue } from './rules.ts';
import {
  PLAYER_QUERY,
  Template,
  TemplateFormat,
  type TemplateImage,
  type TemplateVariable,
  type TemplateWarning,
} from './template.ts';

/**
 * Pterodactyl PTDL_v1/v2 and Pelican PLCN_v1/v2/v3 eggs (JSON or YAML) → the normalised Template.
 * The format is told by `meta.version`, never by the file name. Every failure is a CodedError
 * TEMPLATE_INVALID with a location: `line L, column C` for syntax, a field path otherwise.
 */

export interface ImportResult {
  template: Template;
  warnings: TemplateWarning[];
}

type Obj = Record<string, unknown>;

const PARSERS = new Set<string>(['file', 'properties', 'ini', 'yaml', 'yml', 'json', 'xml']);
/** Names the runtime sets itself; an egg variable with one of them is overridden or shadows it. */
const RESERVED_ENV = new Set(['SERVER_MEMORY', 'SERVER_IP', 'SERVER_PORT', 'STARTUP', 'HOSTNAME', 'TZ']);

function invalid(location: string, message: string): never {
  throw new CodedError('TEMPLATE_INVALID', message, { location });
}

function isObj(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function key(path: string, k: string | number): string {
  if (typeof k === 'number') return `${path}[${k}]`;
  const part = /^[A-Za-z_][A-Za-z0-9_]*$/.test(k) ? k : JSON.stringify(k);
  if (part !== k) return `${path}[${part}]`;
  return path ? `${path}.${k}` : k;
}

function lf(s: string): string {
  return s.replace(/\r\n?/g, '\n');
}

/** string | null | absent → string (default ''); anything else is a defect at `path`. */
function text(v: unknown, path: string, fallback = ''): string {
  if (v === undefined || v === null) return fallback;
  if (typeof v === 'string') return v;
  return invalid(path, `must be a string, got ${describe(v)}`);
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  return typeof v === 'object' ? 'an object' : `${typeof v} ${JSON.stringify(v)}`;
}

/** A list of strings, where the eggs also write null, `{}` (empty YAML map) or "". */
function stringList(v: unknown, path: string): string[] {
  if (v === undefined || v === null || v === '') return [];
  if (isObj(v) && Object.keys(v).length === 0) return [];
  if (!Array.isArray(v)) return invalid(path, `must be a list of strings, got ${describe(v)}`);
  return v.map((item, i) => {
    if (typeof item !== 'string') return invalid(key(path, i), `must be a string, got ${describe(item)}`);
    return item;
  });
}

function bool(v: unknown, path: string): boolean {
  if (typeof v === 'boolean') return v;
  if (v === 1 || v === '1' || v === 'true') return true;
  if (v === 0 || v === '0' || v === 'false' || v === null || v === undefined) return false;
  return invalid(path, `must be a boolean, got ${describe(v)}`);
}

/** config.files / startup / logs: a JSON-encoded string (PTDL_v2, CRLF and all) or a native value. */
function embedded(v: unknown, path: string): unknown {
  if (typeof v !== 'string') return v;
  if (v.trim() === '') return undefined;
  return parseJson(v, path);
}

/** `{}`, `[]`, null or absent → {}; a map → itself. */
function objectOrEmpty(v: unknown, path: string): Obj {
  if (v === undefined || v === null) return {};
  if (Array.isArray(v) && v.length === 0) return {};
  if (!isObj(v)) return invalid(path, `must be an object, got ${describe(v)}`);
  return v;
}

function images(egg: Obj, warnings: TemplateWarning[]): TemplateImage[] {
  const out: TemplateImage[] = [];
  const add = (label: string, image: unknown, path: string) => {
    if (typeof image !== 'string' || image.trim() === '')
      return invalid(path, `must be an image name, got ${describe(image)}`);
    const problem = imageRefProblem(image.trim());
    if (problem) return invalid(path, `image reference ${problem}`);
    if (out.some((i) => i.label === label)) {
      warnings.push({ location: path, message: `duplicate image label "${label}" dropped` });
      return;
    }
    out.push({ label, image: image.trim() });
  };
  const di = egg['docker_images'];
  if (isObj(di)) {
    for (const [label, image] of Object.entries(di)) add(label, image, key('docker_images', label));
  } else if (Array.isArray(di)) {
    // the pelican feather egg: docker_images as a list
    di.forEach((image, i) => {
      add(typeof image === 'string' ? image.trim() : '', image, key('docker_images', i));
    });
  } else if (di !== undefined && di !== null) {
    invalid('docker_images', `must be a map of label → image, got ${describe(di)}`);
  }
  if (out.length === 0 && Array.isArray(egg['images'])) {
    egg['images'].forEach((image, i) => {
      add(typeof image === 'string' ? image.trim() : '', image, key('images', i));
    });
  }
  const legacy = egg['image'];
  if (out.length === 0 && typeof legacy === 'string' && !isIcon(legacy)) add(legacy.trim(), legacy, 'image');
  if (out.length === 0) invalid('docker_images', 'the template names no docker image');
  return out;
}

/** Pelican's `image` is an icon (a data: or http URL); PTDL_v1's is a docker image, which has no "://". */
function isIcon(v: string): boolean {
  return v.startsWith('data:') || v.includes('://');
}

function icon(egg: Obj): string | null {
  const image = egg['image'];
  if (typeof image === 'string' && isIcon(image)) return image;
  const i = egg['icon'];
  return typeof i === 'string' && i !== '' ? i : null;
}

function startupCommands(egg: Obj): { label: string; command: string }[] {
  const sc = egg['startup_commands'];
  if (sc === undefined || sc === null) return [];
  if (!isObj(sc)) return invalid('startup_commands', `must be a map of label → command, got ${describe(sc)}`);
  return Object.entries(sc).map(([label, command]) => ({
    label,
    command: lf(text(command, key('startup_commands', label))),
  }));
}

function configFiles(raw: unknown): Record<string, ConfigFile> {
  const files = objectOrEmpty(embedded(raw, 'config.files'), 'config.files');
  const out: [string, ConfigFile][] = [];
  for (const [file, entry] of Object.entries(files)) {
    const path = key('config.files', file);
    if (file.trim() === '') invalid(path, 'a config file needs a name');
    if (!isObj(entry)) invalid(path, `must be {parser, find}, got ${describe(entry)}`);
    const parser = entry['parser'];
    if (typeof parser !== 'string' || !PARSERS.has(parser))
      invalid(`${path}.parser`, `must be one of ${[...PARSERS].join(', ')}, got ${describe(parser)}`);
    const find = objectOrEmpty(entry['find'], `${path}.find`);
    for (const [k, v] of Object.entries(find)) {
      const at = key(`${path}.find`, k);
      if (isObj(v)) {
        for (const [ifValue, replacement] of Object.entries(v)) {
          if (
            typeof replacement !== 'string' &&
            typeof replacement !== 'number' &&
            typeof replacement !== 'boolean'
          )
            invalid(key(at, ifValue), `must be a replacement value, got ${describe(replacement)}`);
        }
      } else if (typeof v !== 'string' && typeof v !== 'number' && typeof v !== 'boolean' && v !== null) {
        invalid(at, `must be a value or an {if_value: replacement} map, got ${describe(v)}`);
      }
    }
    out.push([file, { parser: parser as ConfigFile['parser'], find }]);
  }
  // fromEntries defines properties, so a file named "__proto__" stays a plain key
  return Object.fromEntries(out);
}

function startupConfig(raw: unknown): Template['config']['startup'] {
  const s = objectOrEmpty(embedded(raw, 'config.startup'), 'config.startup');
  const done = s['done'];
  const out: Template['config']['startup'] = { done: [] };
  if (typeof done === 'string') out.done = [done];
  else if (Array.isArray(done)) out.done = stringList(done, 'config.startup.done');
  else if (done !== undefined && done !== null)
    invalid('config.startup.done', `must be a string or a list, got ${describe(done)}`);
  if (s['strip_ansi'] !== undefined) out.stripAnsi = bool(s['strip_ansi'], 'config.startup.strip_ansi');
  // Pterodactyl's legacy "lines that need the user" (104 eggs): kept, shown when the done line is late
  const ui = s['userInteraction'];
  if (typeof ui === 'string') out.userInteraction = ui === '' ? [] : [ui];
  else if (ui !== undefined && ui !== null)
    out.userInteraction = stringList(ui, 'config.startup.userInteraction');
  return out;
}

/**
 * A YAML `default_value: true` is the text "true", as Pelican reads it and as the JSON twin of
 * the same egg writes it; only a variable whose rules say `boolean` (which accepts "1"/"0", as
 * from a form) gets "1"/"0".
 */
function defaultValue(v: unknown, path: string, rules: readonly string[]): string {
  if (v === undefined || v === null) return '';
  if (typeof v === 'string') return v;
  if (typeof v === 'number' && Number.isFinite(v)) return String(v);
  if (typeof v === 'boolean') {
    if (rules.some((r) => parseRule(r).name === 'boolean')) return v ? '1' : '0';
    return v ? 'true' : 'false';
  }
  return invalid(path, `must be a string, got ${describe(v)}`);
}

function rulesOf(v: unknown, path: string): string[] {
  if (v === undefined || v === null) return [];
  if (typeof v === 'string') return ruleTokens(v);
  if (isObj(v) && Object.keys(v).length === 0) return [];
  if (!Array.isArray(v)) return invalid(path, `must be a string or a list, got ${describe(v)}`);
  return ruleTokens(
    v.map((t, i) => {
      if (typeof t !== 'string') return invalid(key(path, i), `must be a string, got ${describe(t)}`);
      return t;
    }),
  );
}

function variables(raw: unknown, warnings: TemplateWarning[]): TemplateVariable[] {
  if (raw === undefined || raw === null) return [];
  if (isObj(raw) && Object.keys(raw).length === 0) return [];
  if (!Array.isArray(raw)) return invalid('variables', `must be a list, got ${describe(raw)}`);
  const out: TemplateVariable[] = [];
  raw.forEach((v, i) => {
    const path = key('variables', i);
    if (!isObj(v)) invalid(path, `must be an object, got ${describe(v)}`);
    const env = v['env_variable'];
    if (typeof env !== 'string' || !/^[A-Za-z_][A-Za-z0-9_]{0,127}$/.test(env))
      invalid(`${path}.env_variable`, `must be an environment variable name, got ${describe(env)}`);
    const sort = v['sort'];
    const rules = rulesOf(v['rules'], `${path}.rules`);
    const variable: TemplateVariable = {
      name: text(v['name'], `${path}.name`, env),
      description: lf(text(v['description'], `${path}.description`)),
      envVariable: env,
      defaultValue: defaultValue(v['default_value'], `${path}.default_value`, rules),
      userViewable: bool(v['user_viewable'], `${path}.user_viewable`),
      userEditable: bool(v['user_editable'], `${path}.user_editable`),
      rules,
      fieldType: text(v['field_type'], `${path}.field_type`, 'text') || 'text',
      sort: typeof sort === 'number' && Number.isFinite(sort) ? Math.trunc(sort) : null,
    };
    const [ruleError] = ruleErrors(variable.rules);
    if (ruleError !== undefined) invalid(`${path}.rules`, ruleError);
    for (const problem of ruleProblems(variable.rules))
      warnings.push({ location: `${path}.rules`, message: problem });
    const defaultErrors = validateValue(variable.rules, variable.defaultValue);
    const inRule = variable.rules.map(parseRule).find((r) => r.name === 'in');
    if (inRule && variable.defaultValue !== '' && !inRule.params.includes(variable.defaultValue)) {
      warnings.push({ location: `${path}.default_value`, message: `default is not one of its in: options` });
    } else if (defaultErrors.length > 0 && variable.defaultValue !== '') {
      warnings.push({
        location: `${path}.default_value`,
        message: `default fails its rules: ${defaultErrors.map((e) => e.rule).join(', ')}`,
      });
    }
    if (RESERVED_ENV.has(env.toUpperCase()) && env !== HOSTNAME)
      warnings.push({ location: `${path}.env_variable`, message: `${env} is also set by the runtime` });
    const dup = out.findIndex((o) => o.envVariable === env);
    if (dup >= 0) {
      // Later definitions win, as Pelican's updateOrCreate does; the position stays the first one's.
      warnings.push({
        location: `${path}.env_variable`,
        message: `duplicate ${env} replaces variables[${dup}]`,
      });
      out[dup] = variable;
    } else out.push(variable);
  });
  return out;
}

const HOSTNAME = 'HOSTNAME';
export const HOSTNAME_RENAMED = 'SERVER_HOSTNAME';

/** `{{HOSTNAME}}`, `{{env.HOSTNAME}}`, `{{server.build.env.HOSTNAME}}`, `{{server.environment.HOSTNAME}}`
 * (spaces allowed inside the braces, as the panels allow) and shell `${HOSTNAME}` / `$HOSTNAME`. */
const HOSTNAME_REFS =
  /(\{\{\s*(?:(?:server\.build\.env|server\.environment|env)\.)?)HOSTNAME(\s*\}\})|(\$\{)HOSTNAME(\})|(\$)HOSTNAME(?![A-Za-z0-9_])/g;

export function renameHostnameRefs(s: string): string {
  return s.replace(
    HOSTNAME_REFS,
    (_m, a?: string, b?: string, c?: string, d?: string, e?: string) =>
      `${a ?? c ?? e ?? ''}${HOSTNAME_RENAMED}${b ?? d ?? ''}`,
  );
}

function renameDeep(v: unknown): unknown {
  if (typeof v === 'string') return renameHostnameRefs(v);
  if (Array.isArray(v)) return v.map(renameDeep);
  if (isObj(v)) return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, renameDeep(x)]));
  return v;
}

/**
 * A variable named HOSTNAME would replace the container's own HOSTNAME: it becomes SERVER_HOSTNAME
 * (as Pelican does), and every reference to it in the startup commands, the config files and the
 * install script follows. When the egg already has a SERVER_HOSTNAME, nothing is renamed.
 */
function renameHostname(t: Template, warnings: TemplateWarning[]): Template {
  const i = t.variables.findIndex((v) => v.envVariable === HOSTNAME);
  if (i < 0) return t;
  if (t.variables.some((v) => v.envVariable === HOSTNAME_RENAMED)) {
    warnings.push({
      location: `variables[${i}].env_variable`,
      message: `${HOSTNAME} is also set by the runtime (not renamed: ${HOSTNAME_RENAMED} exists)`,
    });
    return t;
  }
  warnings.push({
    location: `variables[${i}].env_variable`,
    message: `${HOSTNAME} clashes with the container's own and is renamed ${HOSTNAME_RENAMED} (references too)`,
  });
  const files: Record<string, ConfigFile> = Object.fromEntries(
    Object.entries(t.config.files).map(([name, f]) => [
      name,
      { parser: f.parser, find: renameDeep(f.find) as Record<string, unknown> },
    ]),
  );
  return {
    ...t,
    startup: renameHostnameRefs(t.startup),
    startupCommands: t.startupCommands.map((c) => ({ ...c, command: renameHostnameRefs(c.command) })),
    variables: t.variables.map((v, j) => (j === i ? { ...v, envVariable: HOSTNAME_RENAMED } : v)),
    config: { ...t.config, files },
    install: { ...t.install, script: renameHostnameRefs(t.install.script) },
  };
}

/** A path in the Template (from a schema limit) → the field of the egg file it came from. */
function eggPath(path: readonly PropertyKey[]): string {
  const renames: Record<string, string> = {
    images: 'docker_images',
    install: 'scripts.installation',
    startupCommands: 'startup_commands',
    fileDenylist: 'file_denylist',
    envVariable: 'env_variable',
    defaultValue: 'default_value',
  };
  let out = '';
  for (const [i, seg] of path.entries()) {
    if (typeof seg === 'number') out += `[${seg}]`;
    else {
      const s = String(seg);
      const name = Object.hasOwn(renames, s) ? (renames[s] ?? s) : s;
      if (name === 'image' && path[i - 2] === 'images') continue;
      out += out ? `.${name}` : name;
    }
  }
  return out || '(root)';
}

/** Our `backup: { commandsBefore, commandsAfter }` extension (absent: no commands). */
function backupCommands(raw: unknown): Pick<Template, 'backup'> {
  if (raw === undefined || raw === null) return {};
  if (!isObj(raw))
    return invalid('backup', `an object { commandsBefore, commandsAfter }, got ${describe(raw)}`);
  return {
    backup: {
      commandsBefore: stringList(raw['commandsBefore'], 'backup.commandsBefore'),
      commandsAfter: stringList(raw['commandsAfter'], 'backup.commandsAfter'),
    },
  };
}

const REMOTE_CONSOLE_KEYS = new Set(['transport', 'portVariable', 'port', 'passwordVariable']);

/** Our `remote_console: { transport, portVariable?, port?, passwordVariable? }` extension. */
function remoteConsole(raw: unknown): RemoteConsoleSpec | undefined {
  if (raw === undefined || raw === null) return undefined;
  if (!isObj(raw))
    return invalid(
      'remote_console',
      `an object { transport, portVariable, passwordVariable }, got ${describe(raw)}`,
    );
  for (const k of Object.keys(raw))
    if (!REMOTE_CONSOLE_KEYS.has(k)) invalid(key('remote_console', k), 'unknown key');
  const transport = RemoteConsoleTransport.safeParse(raw['transport']);
  if (!transport.success)
    invalid(
      'remote_console.transport',
      `must be one of ${RemoteConsoleTransport.options.join(', ')}, got ${describe(raw['transport'])}`,
    );
  const parsed = RemoteConsoleSpec.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    return invalid(key('remote_console', String(issue.path[0] ?? '')), issue.message);
  }
  return parsed.data;
}

/** A config value that is one variable's placeholder (`{{server.build.env.X}}`, `{{env.X}}`…) → X. */
function placeholderVariable(v: unknown): string | null {
  if (typeof v !== 'string') return null;
  const m =
    /^\{\{\s*(?:(?:server\.build\.env|server\.environment|env)\.)?([A-Za-z_][A-Za-z0-9_]*)\s*\}\}$/.exec(
      v.trim(),
    );
  if (m) return m[1]!;
  if (/^\{\{\s*server\.(?:build\.default|allocations\.default)\.port\s*\}\}$/.test(v.trim()))
    return 'SERVER_PORT';
  return null;
}

/**
 * Where the egg makes it plain: a Minecraft egg whose `server.properties` sets `enable-rcon` to
 * true and `rcon.password` from a variable speaks Source RCON on `rcon.port` (a variable, the
 * default port, a number, or absent: 25575).
 */
export function inferRemoteConsole(
  files: Readonly<Record<string, ConfigFile>>,
  variables: readonly TemplateVariable[],
): RemoteConsoleSpec | undefined {
  const known = new Set(variables.map((v) => v.envVariable));
  for (const [name, file] of Object.entries(files)) {
    if (file.parser !== 'properties' || !/(^|\/)server\.properties$/.test(name)) continue;
    const find = file.find;
    const get = (k: string): unknown => (Object.hasOwn(find, k) ? find[k] : undefined);
    const enabled = get('enable-rcon');
    if (!(enabled === true || (typeof enabled === 'string' && enabled.trim() === 'true'))) continue;
    const passwordVariable = placeholderVariable(get('rcon.password'));
    if (passwordVariable === null || !known.has(passwordVariable)) continue;
    const port = get('rcon.port');
    if (port === undefined) return { transport: 'source-rcon', port: 25575, passwordVariable };
    const portVariable = placeholderVariable(port);
    if (portVariable !== null && (portVariable === 'SERVER_PORT' || known.has(portVariable)))
      return { transport: 'source-rcon', portVariable, passwordVariable };
    const n = typeof port === 'number' ? port : typeof port === 'string' ? Number(port.trim()) : Number.NaN;
    if (Number.isInteger(n) && n >= 1 && n <= 65535)
      return { transport: 'source-rcon', port: n, passwordVariable };
  }
  return undefined;
}

/** The remote console's variables must be the template's (SERVER_PORT is the runtime's). */
function checkRemoteConsole(t: Template): void {
  const problem = remoteConsoleProblem(t.variables, t.remoteConsole);
  if (problem) invalid(problem.location, problem.message);
}

/** What is wrong with `spec` for a template with `variables` (null: nothing). */
export function remoteConsoleProblem(
  variables: readonly TemplateVariable[],
  spec: RemoteConsoleSpec | undefined,
): { location: string; message: string } | null {
  if (!spec) return null;
  const parsed = RemoteConsoleSpec.safeParse(spec);
  if (!parsed.success)
    return {
      location: `remote_console.${String(parsed.error.issues[0]?.path[0] ?? '')}`,
      message: parsed.error.issues[0]?.message ?? 'invalid',
    };
  const known = new Set(variables.map((v) => v.envVariable));
  if (spec.portVariable !== undefined && spec.portVariable !== 'SERVER_PORT' && !known.has(spec.portVariable))
    return {
      location: 'remote_console.portVariable',
      message: `${spec.portVariable} is not one of the template's variables`,
    };
  if (spec.passwordVariable !== undefined && !known.has(spec.passwordVariable))
    return {
      location: 'remote_console.passwordVariable',
      message: `${spec.passwordVariable} is not one of the template's variables`,
    };
  if (spec.portVariable !== undefined && spec.port !== undefined)
    return { location: 'remote_console.port', message: 'give portVariable or port, not both' };
  return null;
}

/**
 * Our `mods: [{ path, kind }]` extension; absent, inferred where the egg makes it plain: a
 * Paper/Spigot/Bukkit/Purpur server loads `plugins/`, Fabric/Quilt and (Neo)Forge `mods/`, a
 * BepInEx egg `BepInEx/plugins`, a Source server started with `srcds_run -game <dir>` `<dir>/addons`.
 */
function modFolders(raw: unknown, name: string, startup: string): Pick<Template, 'mods'> {
  if (raw === undefined || raw === null) {
    const inferred = inferModFolders(name, startup);
    return inferred.length > 0 ? { mods: inferred } : {};
  }
  if (!Array.isArray(raw)) return invalid('mods', `a list of { path, kind }, got ${describe(raw)}`);
  return {
    mods: raw.map((m, i) => {
      const r = ModFolder.safeParse(m);
      if (!r.success) return invalid(`mods[${i}]`, r.error.issues[0]?.message ?? 'invalid');
      return r.data;
    }),
  };
}

export function inferModFolders(name: string, startup: string): ModFolder[] {
  if (/bepinex/i.test(name)) return [{ path: 'BepInEx/plugins', kind: 'bepinex' }];
  if (/\b(paper|spigot|bukkit|purpur|folia|pufferfish)\b/i.test(name))
    return [{ path: 'plugins', kind: 'bukkit' }];
  if (/\b(fabric|quilt)\b/i.test(name)) return [{ path: 'mods', kind: 'fabric' }];
  if (/\b(neo)?forge\b/i.test(name) && !/curse\s*forge/i.test(name)) return [{ path: 'mods', kind: 'forge' }];
  const game = /\bsrcds_run\b.*?\s-game\s+([A-Za-z0-9_]+)/.exec(startup)?.[1];
  if (game) return [{ path: `${game}/addons`, kind: 'source' }];
  return [];
}

/** Our `players: { query, portVariable?, intervalSeconds? }` extension (absent: not tracked). */
function playersConfig(raw: unknown): Pick<Template, 'players'> {
  if (raw === undefined || raw === null) return {};
  if (!isObj(raw))
    return invalid('players', `an object { query, portVariable?, intervalSeconds? }, got ${describe(raw)}`);
  const query = raw['query'];
  if (typeof query !== 'string' || !PLAYER_QUERY.test(query))
    return invalid(
      'players.query',
      `one of 'gamedig:<type>', 'teeworlds', 'command:<parser>', 'none'; got ${describe(query)}`,
    );
  const interval = raw['intervalSeconds'] ?? 30;
  if (typeof interval !== 'number' || !Number.isInteger(interval) || interval < 5 || interval > 3600)
    return invalid('players.intervalSeconds', `whole seconds from 5 to 3600, got ${describe(interval)}`);
  const portVariable = raw['portVariable'];
  if (
    portVariable !== undefined &&
    portVariable !== null &&
    (typeof portVariable !== 'string' || !/^[A-Za-z_][A-Za-z0-9_]{0,127}$/.test(portVariable))
  )
    return invalid('players.portVariable', `a variable name, got ${describe(portVariable)}`);
  const commands: { kick?: PlayerCommand; ban?: PlayerCommand } = {};
  for (const key of ['kick', 'ban'] as const) {
    const v = raw[key];
    if (v === undefined || v === null) continue;
    const parsed = PlayerCommand.safeParse(v);
    if (!parsed.success)
      return invalid(
        `players.${key}`,
        `a command with {id}, {name} or {reason} (or a list of up to 4), one printable line; got ${describe(v)}`,
      );
    commands[key] = parsed.data;
  }
  return {
    players: {
      query,
      ...(typeof portVariable === 'string' ? { portVariable } : {}),
      intervalSeconds: interval,
      ...commands,
    },
  };
}

/** Turn the parsed data of an egg file into a Template. */
export function normaliseEgg(data: unknown, syntax: SourceSyntax): ImportResult {
  const warnings: TemplateWarning[] = [];
  if (!isObj(data)) return invalid('(root)', `an egg is an object, got ${describe(data)}`);
  const meta = data['meta'];
  if (!isObj(meta)) return invalid('meta', 'missing meta.version');
  const version = TemplateFormat.safeParse(meta['version']);
  if (!version.success)
    return invalid(
      'meta.version',
      `unknown egg version ${describe(meta['version'])} (expected ${TemplateFormat.options.join(', ')})`,
    );
  const name = text(data['name'], 'name').trim();
  if (name === '') invalid('name', 'a template needs a name');
  const commands = startupCommands(data);
  const startupRaw = data['startup'];
  if (startupRaw === undefined && commands.length === 0) invalid('startup', 'missing startup command');
  const startup = startupRaw === undefined ? (commands[0]?.command ?? '') : lf(text(startupRaw, 'startup'));
  const config = objectOrEmpty(data['config'], 'config');
  const scripts = objectOrEmpty(data['scripts'], 'scripts');
  const installation = objectOrEmpty(scripts['installation'], 'scripts.installation');
  const features = data['features'];
  const parsed: Template = {
    source: {
      format: version.data,
      syntax,
      updateUrl: typeof meta['update_url'] === 'string' ? meta['update_url'] : null,
      exportedAt: typeof data['exported_at'] === 'string' ? data['exported_at'] : null,
    },
    uuid: typeof data['uuid'] === 'string' && data['uuid'] !== '' ? data['uuid'] : null,
    name,
    author: text(data['author'], 'author'),
    description: lf(text(data['description'], 'description')),
    icon: icon(data),
    tags: stringList(data['tags'], 'tags'),
    images: images(data, warnings),
    startup,
    startupCommands: commands,
    variables: variables(data['variables'], warnings),
    config: {
      files: configFiles(config['files']),
      startup: startupConfig(config['startup']),
      stop: text(config['stop'], 'config.stop'),
      logs: objectOrEmpty(embedded(config['logs'], 'config.logs'), 'config.logs'),
    },
    install: {
      script: lf(text(installation['script'], 'scripts.installation.script')),
      container: text(installation['container'], 'scripts.installation.container').trim(),
      entrypoint:
        text(installation['entrypoint'], 'scripts.installation.entrypoint', 'bash').trim() || 'bash',
    },
    features: isObj(features)
      ? stringList(Object.values(features), 'features')
      : stringList(features, 'features'),
    fileDenylist: stringList(data['file_denylist'], 'file_denylist'),
    ...backupCommands(data['backup']),
    ...modFolders(data['mods'], text(data['name'], 'name'), text(data['startup'], 'startup')),
    ...playersConfig(data['players']),
  };
  const declared = remoteConsole(data['remote_console']);
  const consoleSpec = declared ?? inferRemoteConsole(parsed.config.files, parsed.variables);
  if (consoleSpec) parsed.remoteConsole = consoleSpec;
  if (!declared && consoleSpec)
    warnings.push({
      location: 'remote_console',
      message: `remote console inferred from config.files: ${consoleSpec.transport}`,
    });
  const template = renameHostname(parsed, warnings);
  checkRemoteConsole(template);
  if (template.install.script.trim() !== '' && template.install.container === '')
    invalid('scripts.installation.container', 'an install script needs a container image');
  const containerProblem =
    template.install.container === '' ? null : imageRefProblem(template.install.container);
  if (containerProblem) invalid('scripts.installation.container', `image reference ${containerProblem}`);
  const checked = Template.safeParse(template);
  if (!checked.success) {
    const issue = checked.error.issues[0]!;
    return invalid(eggPath(issue.path), issue.message);
  }
  return { template: checked.data, warnings };
}

/** Parse and normalise one egg file's content. Throws CodedError TEMPLATE_INVALID. */
export function importTemplate(content: string, opts: { filename?: string } = {}): ImportResult {
  const syntax = detectSyntax(content, opts.filename);
  return normaliseEgg(parseSource(content, syntax), syntax);
}
