import type { Template } from './template.ts';

/**
 * Template → a PTDL_v2 egg, as Pterodactyl writes them (config.* as JSON-encoded strings,
 * rules as a pipe string). Pelican-only facts that PTDL_v2 cannot say are kept in the extra keys
 * Pelican itself uses (`uuid`, `tags`, `image`, `startup_commands`, `sort`); Pterodactyl's
 * importer ignores them, ours reads them back, so export → import keeps the meaning.
 */

/** ISO 8601 with a `+00:00` offset, like the panels write `exported_at`. */
function exportedAtNow(): string {
  return new Date().toISOString().replace(/\.\d{3}Z$/, '+00:00');
}

export function exportPtdlV2(
  template: Template,
  opts: { exportedAt?: string } = {},
): Record<string, unknown> {
  const startup: Record<string, unknown> = {};
  const done = template.config.startup.done;
  if (done.length === 1) startup['done'] = done[0];
  else if (done.length > 1) startup['done'] = done;
  if (template.config.startup.stripAnsi !== undefined)
    startup['strip_ansi'] = template.config.startup.stripAnsi;
  if (template.config.startup.userInteraction !== undefined)
    startup['userInteraction'] = template.config.startup.userInteraction;
  const egg: Record<string, unknown> = {
    _comment: 'DO NOT EDIT: FILE GENERATED AUTOMATICALLY BY CTRL-ALT-PLAY',
    meta: { version: 'PTDL_v2', update_url: template.source.updateUrl },
    exported_at: opts.exportedAt ?? exportedAtNow(),
    name: template.name,
    author: template.author,
  };
  if (template.uuid !== null) egg['uuid'] = template.uuid;
  egg['description'] = template.description;
  if (template.tags.length > 0) egg['tags'] = template.tags;
  if (template.icon !== null) egg['image'] = template.icon;
  egg['features'] = template.features.length > 0 ? template.features : null;
  egg['docker_images'] = Object.fromEntries(template.images.map((i) => [i.label, i.image]));
  egg['file_denylist'] = template.fileDenylist;
  if (template.backup) egg['backup'] = { ...template.backup };
  if (template.remoteConsole) egg['remote_console'] = { ...template.remoteConsole };
  if (template.mods) egg['mods'] = template.mods.map((m) => ({ ...m }));
  if (template.players) egg['players'] = { ...template.players };
  egg['startup'] = template.startup;
  if (template.startupCommands.length > 0)
    egg['startup_commands'] = Object.fromEntries(template.startupCommands.map((c) => [c.label, c.command]));
  egg['config'] = {
    files: JSON.stringify(template.config.files, null, 4),
    startup: JSON.stringify(startup, null, 4),
    logs: JSON.stringify(template.config.logs, null, 4),
    stop: template.config.stop,
  };
  egg['scripts'] = { installation: { ...template.install } };
  egg['variables'] = template.variables.map((v) => {
    const out: Record<string, unknown> = {
      name: v.name,
      description: v.description,
      env_variable: v.envVariable,
      default_value: v.defaultValue,
      user_viewable: v.userViewable,
      user_editable: v.userEditable,
      // a pipe string, unless a token (a regex) holds a pipe itself
      rules: v.rules.some((t) => t.includes('|')) ? v.rules : v.rules.join('|'),
      field_type: v.fieldType,
    };
    if (v.sort !== null) out['sort'] = v.sort;
    return out;
  });
  return egg;
}

/** The exported egg as file text (4-space JSON, like the panels write). */
export function exportPtdlV2Text(template: Template, opts: { exportedAt?: string } = {}): string {
  return `${JSON.stringify(exportPtdlV2(template, opts), null, 4)}\n`;
}
