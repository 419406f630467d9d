/**
 * Which Agents the Panel talks to (issue 14 item 7): one whose protocol version is in
 * SUPPORTED_PROTOCOL_VERSIONS works; any other is refused with PROTOCOL_INCOMPATIBLE, at
 * registration (400) and on /ws/agents (close 4406), logged and shown on its node.
 */
import { SUPPORTED_PROTOCOL_VERSIONS } from '@cap/protocol';

/** A protocol version from the X-Protocol-Version header: a number, NaN for junk, undefined for none. */
export function versionOfHeader(raw: string | string[] | undefined): number | undefined {
  if (raw === undefined) return undefined;
  return typeof raw === 'string' && /^\d{1,7}$/.test(raw) ? Number(raw) : Number.NaN;
}

/** Why an Agent speaking `version` is refused (undefined: it is not). At most 120 characters. */
export function protocolRefusal(version: number | undefined): string | undefined {
  if (version !== undefined && SUPPORTED_PROTOCOL_VERSIONS.includes(version)) return undefined;
  const min = Math.min(...SUPPORTED_PROTOCOL_VERSIONS);
  const max = Math.max(...SUPPORTED_PROTOCOL_VERSIONS);
  const sent = version === undefined || Number.isNaN(version) ? 'none' : String(version);
  const hint =
    version === undefined || Number.isNaN(version)
      ? ''
      : version < min
        ? ': an older Agent, upgrade it'
        : version > max
          ? ': a newer Agent, upgrade the Panel'
          : '';
  return `panel supports [${SUPPORTED_PROTOCOL_VERSIONS.join(',')}], agent sent ${sent}${hint}`.slice(0, 96);
}
