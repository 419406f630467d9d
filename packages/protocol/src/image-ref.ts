/**
 * Docker image references, by the grammar of distribution/reference (what the Engine accepts):
 *
 *   reference  := name [ ":" tag ] [ "@" digest ]
 *   name       := [ domain "/" ] path-component [ "/" path-component ]*
 *   domain     := domain-component [ "." domain-component ]* [ ":" port ]   (or "localhost")
 *   path-comp  := [a-z0-9]+ ( ( "." | "_" | "__" | "-"+ ) [a-z0-9]+ )*
 *   tag        := [\w][\w.-]{0,127}
 *   digest     := "sha256:" 64 hex
 *
 * The first component is a registry only when it has a "." or a ":" or is `localhost` (Docker's
 * rule). So `../../../etc`, `--privileged busybox`, `UPPER/case`, spaces and empty components are
 * refused before they reach the Engine (which would answer a redirect for some of them).
 */
import { z } from 'zod';

const PATH_COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const DOMAIN_COMPONENT = /^(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])$/;
const TAG = /^\w[\w.-]{0,127}$/;
const DIGEST = /^sha256:[a-f0-9]{64}$/;
/** Docker's limit on the name part (without tag and digest) */
const NAME_MAX = 255;

function isDomain(s: string): boolean {
  const m = /^([^:]+)(?::(\d{1,5}))?$/.exec(s);
  if (!m) return false;
  if (m[2] !== undefined && (Number(m[2]) < 1 || Number(m[2]) > 65535)) return false;
  return m[1]!.split('.').every((c) => DOMAIN_COMPONENT.test(c));
}

/** Why `ref` is not a Docker image reference, or null when it is one. */
export function imageRefProblem(ref: string): string | null {
  if (ref.length === 0) return 'is empty';
  if (ref.length > 512) return 'is longer than 512 characters';
  if (/\s/.test(ref)) return 'contains white space';
  if (ref.startsWith('-')) return 'starts with "-"';
  let rest = ref;
  const at = rest.indexOf('@');
  if (at >= 0) {
    if (!DIGEST.test(rest.slice(at + 1))) return 'has a digest that is not sha256:<64 hex digits>';
    rest = rest.slice(0, at);
  }
  // a tag is after the last ':' that comes after the last '/' (a registry port has a '/' after it)
  const colon = rest.lastIndexOf(':');
  if (colon > rest.lastIndexOf('/')) {
    if (!TAG.test(rest.slice(colon + 1))) return 'has a tag that is not [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}';
    rest = rest.slice(0, colon);
  }
  if (rest.length === 0) return 'has no name';
  if (rest.length > NAME_MAX) return `has a name longer than ${NAME_MAX} characters`;
  const parts = rest.split('/');
  const first = parts[0]!;
  if (parts.length > 1 && (first.includes('.') || first.includes(':') || first === 'localhost')) {
    if (!isDomain(first)) return `has a registry "${first.slice(0, 64)}" that is not host[:port]`;
    parts.shift();
  }
  for (const p of parts) {
    if (!PATH_COMPONENT.test(p))
      return `has a path component "${p.slice(0, 64)}" that is not lowercase letters and digits separated by ".", "_", "__" or "-"`;
  }
  return null;
}

export function isImageRef(ref: string): boolean {
  return imageRefProblem(ref) === null;
}

/** An image reference as Docker accepts it (see the header). */
export const ImageRef = z
  .string()
  .min(1)
  .max(512)
  .superRefine((ref, ctx) => {
    const problem = imageRefProblem(ref);
    if (problem) ctx.addIssue({ code: 'custom', message: `image reference ${problem}` });
  });

/** Docker Hub, however it is spelt (`index.docker.io`, `registry-1.docker.io`, no host at all). */
export const DOCKER_HUB = 'docker.io';
const HUB_ALIASES = new Set([
  'docker.io',
  'index.docker.io',
  'registry-1.docker.io',
  'registry.hub.docker.com',
]);

/**
 * A registry host as stored and compared (lowercased, no scheme or path, Docker Hub's aliases
 * `docker.io`), or null when it is not `host[:port]`.
 */
export function normaliseRegistryHost(input: string): string | null {
  let h = input
    .trim()
    .toLowerCase()
    .replace(/^https?:\/\//, '');
  const slash = h.indexOf('/');
  if (slash >= 0) h = h.slice(0, slash);
  if (h.length > 300 || !isDomain(h)) return null;
  return HUB_ALIASES.has(h) ? DOCKER_HUB : h;
}

/** The registry an image reference names (Docker's rule: a first part with `.`/`:` or `localhost`). */
export function registryHostOf(ref: string): string {
  const slash = ref.indexOf('/');
  if (slash < 0) return DOCKER_HUB;
  const first = ref.slice(0, slash);
  if (!(first.includes('.') || first.includes(':') || first === 'localhost')) return DOCKER_HUB;
  return normaliseRegistryHost(first) ?? first.toLowerCase();
}
