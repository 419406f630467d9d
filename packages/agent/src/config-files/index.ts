import { constants } from 'node:fs';
import { open } from 'node:fs/promises';
import { CodedError, type ConfigFile, type ErrorCode, isCodedError } from '@cap/protocol';
import { ensureParent, resolveConfigPath } from './paths.ts';
import type { ConfigContext } from './placeholders.ts';
import { rewriteJson, rewriteYaml } from './structured.ts';
import { rewriteFile, rewriteIni, rewriteProperties } from './text-parsers.ts';
import { rewriteXml } from './xml.ts';

export type { ConfigContext } from './placeholders.ts';
export { fillPlaceholders, lookupPlaceholder } from './placeholders.ts';

/**
 * The egg's `config.files`, rewritten in the server's root before every start (Wings' pre-start
 * step). Each file is handled on its own: one that fails is reported and the others still run,
 * as in Wings, and the caller logs the results.
 */

export interface ConfigFileResult {
  file: string;
  parser: ConfigFile['parser'];
  ok: boolean;
  changed: boolean;
  code?: ErrorCode;
  message?: string;
}

/**
 * The context from an eggConfig's environment: templateToEggConfig puts SERVER_PORT, SERVER_IP and
 * SERVER_MEMORY there next to the variables, as Wings does.
 */
export function configContextFromEnvironment(
  environment: Readonly<Record<string, string>>,
  opts: { dockerInterface?: string } = {},
): ConfigContext {
  const num = (v: string | undefined) => (v !== undefined && /^\d+$/.test(v) ? Number(v) : undefined);
  const ctx: ConfigContext = { environment };
  const port = num(environment['SERVER_PORT']);
  const memory = num(environment['SERVER_MEMORY']);
  if (port !== undefined) ctx.serverPort = port;
  if (memory !== undefined) ctx.memoryMiB = memory;
  if (environment['SERVER_IP']) ctx.serverIp = environment['SERVER_IP'];
  if (opts.dockerInterface) ctx.dockerInterface = opts.dockerInterface;
  return ctx;
}

const MAX_CONFIG_BYTES = 16 * 1024 * 1024;

type Rewriter = (content: string, find: Record<string, unknown>, ctx: ConfigContext) => string;

const REWRITERS: Record<ConfigFile['parser'], Rewriter> = {
  file: rewriteFile,
  properties: rewriteProperties,
  ini: rewriteIni,
  yaml: rewriteYaml,
  yml: rewriteYaml,
  json: rewriteJson,
  xml: rewriteXml,
};

const UTF8_BOM = Buffer.from([0xef, 0xbb, 0xbf]);

/**
 * Game configs are UTF-8, sometimes with a BOM, and some (Java .properties) Latin-1: a file that
 * is not valid UTF-8 is edited as Latin-1 so that its other bytes are written back unchanged.
 */
function decode(buf: Buffer): { text: string; encoding: 'utf8' | 'latin1'; bom: Buffer } {
  const bom = buf.subarray(0, 3).equals(UTF8_BOM) ? UTF8_BOM : Buffer.alloc(0);
  const body = buf.subarray(bom.length);
  try {
    return { text: new TextDecoder('utf-8', { fatal: true }).decode(body), encoding: 'utf8', bom };
  } catch {
    return { text: body.toString('latin1'), encoding: 'latin1', bom };
  }
}

/** Rewrite one file; throws CodedError (PATH_OUTSIDE_ROOT, CONFIG_INVALID, FILE_TOO_LARGE). */
export async function applyConfigFile(
  root: string,
  name: string,
  file: ConfigFile,
  ctx: ConfigContext,
): Promise<boolean> {
  const target = await resolveConfigPath(root, name);
  // `file` only replaces existing lines: creating an empty file would stop a game from writing
  // its defaults on first start. The other parsers create the file, as Wings does.
  const create = file.parser !== 'file';
  if (create) await ensureParent(root, target);
  let fh: Awaited<ReturnType<typeof open>>;
  try {
    // O_NOFOLLOW: a link planted after the check is refused, not followed
    fh = await open(
      target,
      constants.O_RDWR | (create ? constants.O_CREAT : 0) | constants.O_NOFOLLOW,
      0o644,
    );
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT' && !create) return false;
    if ((e as NodeJS.ErrnoException).code === 'ELOOP')
      throw new CodedError('PATH_OUTSIDE_ROOT', `${name} is a symbolic link`, { location: name });
    throw e;
  }
  try {
    const st = await fh.stat();
    if (!st.isFile()) throw new Error(`${name} is not a regular file`);
    if (st.size > MAX_CONFIG_BYTES)
      throw new CodedError('FILE_TOO_LARGE', `${name} is larger than ${MAX_CONFIG_BYTES} bytes`);
    const { text, encoding, bom } = decode(await fh.readFile());
    const after = REWRITERS[file.parser](text, file.find, ctx);
    if (after === text) return false;
    const out = Buffer.concat([bom, Buffer.from(after, encoding)]);
    await fh.truncate(0);
    await fh.write(out, 0, out.length, 0);
    return true;
  } finally {
    await fh.close();
  }
}

export async function applyConfigFiles(
  root: string,
  files: Readonly<Record<string, ConfigFile>>,
  ctx: ConfigContext,
): Promise<ConfigFileResult[]> {
  const results: ConfigFileResult[] = [];
  for (const [name, file] of Object.entries(files)) {
    try {
      const changed = await applyConfigFile(root, name, file, ctx);
      results.push({ file: name, parser: file.parser, ok: true, changed });
    } catch (e) {
      results.push({
        file: name,
        parser: file.parser,
        ok: false,
        changed: false,
        code: isCodedError(e) ? e.code : 'CONFIG_INVALID',
        message: (e as Error).message,
      });
    }
  }
  return results;
}
