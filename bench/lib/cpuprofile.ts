/**
 * Where a process's CPU went, from a V8 `.cpuprofile` (node --cpu-prof): self time per function
 * and per module (a package under node_modules, or a source file of ours), the top ones.
 */
import { readFileSync } from 'node:fs';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

/** `node_modules/<pkg>` → the package; a file of ours → its path from packages/; else the URL. */
function moduleOf(url: string): string {
  if (!url) return '(native)';
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(url)?.[1];
  if (pkg) return pkg;
  const ours = /\/(packages\/.+)$/.exec(url)?.[1];
  if (ours) return ours;
  return url.startsWith('node:') ? url : url.replace(/^file:\/\//, '');
}

export interface ProfileSummary {
  totalMs: number;
  functions: { name: string; ms: number; pct: number }[];
  modules: { name: string; ms: number; pct: number }[];
  /** native self time (GC aside) by the nearest caller of ours or of a package: who wrote to sockets */
  nativeCallers: { name: string; ms: number; pct: number }[];
}

/** Self time by function and by module, the `top` largest of each. */
export function summariseProfile(file: string, top = 15): ProfileSummary {
  const p = JSON.parse(readFileSync(file, 'utf8')) as Profile;
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const selfUs = new Map<number, number>();
  for (let i = 0; i < p.samples.length; i++) {
    const id = p.samples[i] as number;
    selfUs.set(id, (selfUs.get(id) ?? 0) + (p.timeDeltas[i] ?? 0));
  }
  const parent = new Map<number, number>();
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  /** the nearest frame up from `id` in a package or a file of ours (not node: internals) */
  const callerOf = (id: number): string => {
    for (let at = parent.get(id); at !== undefined; at = parent.get(at)) {
      const f = byId.get(at)?.callFrame;
      if (f?.url && !f.url.startsWith('node:'))
        return `${f.functionName || '(anonymous)'} ${moduleOf(f.url)}:${f.lineNumber + 1}`;
    }
    return '(none)';
  };
  const native = new Map<string, number>();
  const fn = new Map<string, number>();
  const mod = new Map<string, number>();
  let total = 0;
  for (const [id, us] of selfUs) {
    const n = byId.get(id);
    if (!n) continue;
    const { functionName, url, lineNumber } = n.callFrame;
    // idle is not work
    if (functionName === '(idle)' || functionName === '(program)') continue;
    total += us;
    const m = moduleOf(url);
    const key = `${functionName || '(anonymous)'} ${m}:${lineNumber + 1}`;
    fn.set(key, (fn.get(key) ?? 0) + us);
    mod.set(m, (mod.get(m) ?? 0) + us);
    if (!url && !functionName.startsWith('(')) {
      const k = `${functionName} ← ${callerOf(id)}`;
      native.set(k, (native.get(k) ?? 0) + us);
    }
  }
  const rank = (m: Map<string, number>) =>
    [...m]
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([name, us]) => ({ name, ms: Math.round(us / 1000), pct: +((us / total) * 100).toFixed(1) }));
  return {
    totalMs: Math.round(total / 1000),
    functions: rank(fn),
    modules: rank(mod),
    nativeCallers: rank(native),
  };
}
