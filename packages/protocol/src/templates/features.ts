import { z } from 'zod';

/**
 * An egg's `features` ("eula", "java_version", "pid_limit", "steam_disk_space", "gsl_token") and
 * the console lines that call for each. The panels' frontends watch the console of a server that is
 * not (yet) running for these lines, lower-cased, as substrings; the Panel does the same here on
 * the lines it relays (see `featureOfLine`) and tells the server's admins with a `feature` message,
 * and the web UI opens that feature's dialog. Nothing changes without the user's yes.
 */

export const FeatureName = z.enum(['eula', 'java_version', 'pid_limit', 'steam_disk_space', 'gsl_token']);
export type FeatureName = z.infer<typeof FeatureName>;

/** Lower-case substrings, as the panels match them (one place: the Panel's detection reads it). */
export const FEATURE_MATCHERS: ReadonlyMap<FeatureName, readonly string[]> = new Map<
  FeatureName,
  readonly string[]
>([
  // Minecraft (vanilla, Paper, Forge…): "You need to agree to the EULA in order to run the server. Go to eula.txt for more info."
  ['eula', ['you need to agree to the eula in order to run the server']],
  [
    'java_version',
    [
      'minecraft 1.17 requires running the server with java 16 or above',
      'minecraft 1.18 requires running the server with java 17 or above',
      'java.lang.unsupportedclassversionerror',
      'unsupported major.minor version',
      'has been compiled by a more recent version of the java runtime',
    ],
  ],
  [
    'pid_limit',
    [
      'pthread_create failed',
      'failed to create thread',
      'unable to create thread',
      'unable to create native thread',
      'unable to create new native thread',
      'exception in thread "craft async scheduler management thread"',
    ],
  ],
  ['steam_disk_space', ['steamcmd needs 250mb of free disk space to update', '0x202 after update job']],
  ['gsl_token', ['(gsl token expired)', '(account not found)']],
]);

/** At most this much of a line is looked at (a console line can be long; the phrases are short). */
const MAX_LINE = 4096;
// biome-ignore lint/suspicious/noControlCharactersInRegex: ANSI escapes are control characters
const ANSI = /\u001b\[[0-9;?]*[A-Za-z]|\u001b\][^\u0007]*\u0007/g;

/** The template's features that this code knows, in the template's order (unknown names ignored). */
export function knownFeatures(features: readonly string[]): FeatureName[] {
  const out: FeatureName[] = [];
  for (const f of features) {
    const parsed = FeatureName.safeParse(f);
    if (parsed.success && !out.includes(parsed.data)) out.push(parsed.data);
  }
  return out;
}

/** The first of `enabled` whose console error `line` is, or null. */
export function featureOfLine(line: string, enabled: readonly FeatureName[]): FeatureName | null {
  if (enabled.length === 0) return null;
  const text = line.slice(0, MAX_LINE).replace(ANSI, '').toLowerCase();
  for (const feature of enabled) {
    const patterns = FEATURE_MATCHERS.get(feature) ?? [];
    if (patterns.some((p) => text.includes(p))) return feature;
  }
  return null;
}

/** The variable a `gsl_token` dialog points to: Pterodactyl's `STEAM_ACC`, else one that names a GSL token. */
export function gslTokenVariable(
  variables: readonly { envVariable: string; name: string; description: string }[],
): string | null {
  const exact = variables.find((v) => v.envVariable === 'STEAM_ACC' || v.envVariable === 'STEAM_GSLT');
  if (exact) return exact.envVariable;
  const named = variables.find((v) =>
    /\bgslt?\b|game ?server login token/i.test(
      `${v.envVariable.replace(/_/g, ' ')} ${v.name} ${v.description}`,
    ),
  );
  return named?.envVariable ?? null;
}

/** Seconds a server may stay `starting` before the UI shows the egg's `userInteraction` text. */
export const USER_INTERACTION_AFTER_S = 60;
