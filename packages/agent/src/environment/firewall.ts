/**
 * Host ports game containers must not reach (the Agent's HTTP API, the Panel when it runs on this
 * host): iptables INPUT rules dropping TCP from the servers' network to them. iptables is run
 * with an argv (execFile), never through a shell. Without iptables (or the right to use it) the
 * rules are skipped with a warning: the network's inter-container isolation still holds.
 */
import { execFile } from 'node:child_process';
import { lookup } from 'node:dns/promises';
import { networkInterfaces } from 'node:os';
import { promisify } from 'node:util';
import type { Logger } from 'pino';

const run = promisify(execFile);
const COMMENT = 'ctrl-alt-play: no game container to this port';

function ruleArgs(subnet: string, port: number): string[] {
  return [
    'INPUT',
    '-s',
    subnet,
    '-p',
    'tcp',
    '--dport',
    String(port),
    '-m',
    'comment',
    '--comment',
    COMMENT,
    '-j',
    'DROP',
  ];
}

async function iptables(args: string[]): Promise<void> {
  await run('iptables', ['-w', '5', ...args], { timeout: 15_000 });
}

export interface PortGuard {
  /** the ports guarded by a rule this Agent inserted */
  readonly ports: readonly number[];
  /** removes the rules this Agent inserted for `ports` */
  release(ports: readonly number[]): Promise<void>;
}

/** Inserts (once: an existing rule is kept) a DROP from `subnet` to each TCP port. */
export async function guardHostPorts(
  subnet: string,
  ports: readonly number[],
  log: Logger,
): Promise<PortGuard> {
  const inserted: number[] = [];
  if (!/^\d{1,3}(\.\d{1,3}){3}\/\d{1,2}$/.test(subnet)) {
    log.warn({ subnet }, 'servers network has no IPv4 subnet: host ports not guarded');
    return { ports: inserted, release: async () => undefined };
  }
  for (const port of new Set(ports)) {
    if (!Number.isInteger(port) || port < 1 || port > 65535) continue;
    const args = ruleArgs(subnet, port);
    try {
      await iptables(['-C', ...args]);
      continue; // already there (an earlier run of this Agent)
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') {
        log.warn('iptables not found: game containers are not kept from the Agent/Panel ports (see README)');
        break;
      }
    }
    try {
      await iptables(['-I', ...args]);
      inserted.push(port);
      log.info({ subnet, port }, 'game containers kept from a host port');
    } catch (e) {
      log.warn({ err: e, subnet, port }, 'iptables refused the rule: host port not guarded');
    }
  }
  return {
    ports: inserted,
    async release(which) {
      for (const port of [...which]) {
        if (!inserted.includes(port)) continue;
        await iptables(['-D', ...ruleArgs(subnet, port)]).catch(() => undefined);
        inserted.splice(inserted.indexOf(port), 1);
      }
    },
  };
}

/** The Panel's port when its URL names this host (a loopback or local address), else null. */
export async function localPanelPort(panelUrl: string): Promise<number | null> {
  let u: URL;
  try {
    u = new URL(panelUrl);
  } catch {
    return null;
  }
  const port = u.port ? Number(u.port) : u.protocol === 'https:' || u.protocol === 'wss:' ? 443 : 80;
  const host = u.hostname.replace(/^\[|\]$/g, '');
  const local = new Set<string>(['localhost']);
  for (const list of Object.values(networkInterfaces())) for (const a of list ?? []) local.add(a.address);
  if (local.has(host) || /^127\./.test(host) || host === '::1') return port;
  const addrs = await lookup(host, { all: true }).catch(() => []);
  return addrs.some((a) => local.has(a.address) || /^127\./.test(a.address)) ? port : null;
}
