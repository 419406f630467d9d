/**
 * Discord's webhook body for the events a Discord hook can carry: a crash (exit code, whether it
 * restarts, the last console lines in a code block), a status change, a backup that completed or
 * failed, players joining or leaving. Within Discord's limits: title ≤ 256, description ≤ 4096,
 * ≤ 25 fields (name ≤ 256, value ≤ 1024), color an integer.
 */
import type { DomainEvent } from '../../bus/index.ts';

export interface DiscordEmbed {
  title: string;
  description?: string;
  color: number;
  fields?: { name: string; value: string; inline?: boolean }[];
  timestamp: string;
}
export interface DiscordBody {
  username: string;
  embeds: DiscordEmbed[];
}

export const DISCORD_LIMITS = { title: 256, description: 4096, fields: 25, fieldName: 256, fieldValue: 1024 };
/** the Discord hook's event kinds */
export const DISCORD_EVENTS = [
  'server.crashed',
  'server.status',
  'operation',
  'server.players',
  'server.failover',
] as const;

const RED = 0xe74c3c;
const GREEN = 0x2ecc71;
const GREY = 0x95a5a6;
const BLUE = 0x3498db;
const ORANGE = 0xe67e22;

const cut = (s: string, n: number) => (s.length <= n ? s : `${s.slice(0, n - 1)}…`);

/** The last lines that fit a ```code block``` of at most `max` characters (newest kept). */
export function consoleBlock(lines: readonly string[], max: number): string {
  const fence = '```';
  const budget = max - fence.length * 2 - 2;
  const kept: string[] = [];
  let used = 0;
  for (let i = lines.length - 1; i >= 0; i--) {
    // no fence can be closed early by a game's line
    const line = cut((lines[i] ?? '').replaceAll('```', "'''"), 300);
    if (used + line.length + 1 > budget) break;
    kept.unshift(line);
    used += line.length + 1;
  }
  return `${fence}\n${kept.join('\n')}\n${fence}`;
}

export interface RenderContext {
  serverName: string;
  /** the console's last lines (hidden values already replaced) */
  lastLines: readonly string[];
  /** players who joined and left (server.players), when known */
  joined?: readonly string[];
  left?: readonly string[];
  at: string;
}

function embed(e: DiscordEmbed): DiscordEmbed {
  return {
    ...e,
    title: cut(e.title, DISCORD_LIMITS.title),
    ...(e.description === undefined ? {} : { description: cut(e.description, DISCORD_LIMITS.description) }),
    ...(e.fields
      ? {
          fields: e.fields.slice(0, DISCORD_LIMITS.fields).map((f) => ({
            ...f,
            name: cut(f.name, DISCORD_LIMITS.fieldName),
            value: cut(f.value || '—', DISCORD_LIMITS.fieldValue),
          })),
        }
      : {}),
  };
}

/** The Discord body for the event, or undefined when Discord hooks do not carry it. */
export function discordBody(e: DomainEvent, ctx: RenderContext): DiscordBody | undefined {
  const one = (x: DiscordEmbed): DiscordBody => ({ username: 'Ctrl-Alt-Play', embeds: [embed(x)] });
  switch (e.kind) {
    case 'server.crashed': {
      const lines = ctx.lastLines.length > 0 ? consoleBlock(ctx.lastLines, 3900) : '(no console output)';
      return one({
        title: `💥 ${ctx.serverName} crashed`,
        description: `Exit code **${e.exitCode}**. Last console lines:\n${lines}`,
        color: RED,
        fields: [
          { name: 'Exit code', value: String(e.exitCode), inline: true },
          { name: 'Restarting', value: e.restarting ? 'yes' : 'no', inline: true },
        ],
        timestamp: ctx.at,
      });
    }
    case 'server.status':
      return one({
        title: `${ctx.serverName} is ${e.status}`,
        color: e.status === 'running' ? GREEN : e.status === 'offline' ? GREY : BLUE,
        fields: [
          { name: 'Status', value: e.status, inline: true },
          ...(e.previousStatus ? [{ name: 'Was', value: e.previousStatus, inline: true }] : []),
        ],
        timestamp: ctx.at,
      });
    case 'operation': {
      if (e.operationKind !== 'backup' || e.success === undefined) return undefined;
      return one({
        title: e.success ? `🗄️ Backup of ${ctx.serverName} completed` : `Backup of ${ctx.serverName} failed`,
        ...(e.message ? { description: e.message } : {}),
        color: e.success ? GREEN : RED,
        fields: e.success ? [] : [{ name: 'Error', value: e.errorCode ?? 'failed', inline: true }],
        timestamp: ctx.at,
      });
    }
    case 'server.players': {
      const joined = ctx.joined ?? [];
      const left = ctx.left ?? [];
      if (joined.length === 0 && left.length === 0) return undefined;
      return one({
        title: `${ctx.serverName}: ${e.online}/${e.max} players`,
        color: ORANGE,
        fields: [
          ...(joined.length ? [{ name: 'Joined', value: joined.join(', ') }] : []),
          ...(left.length ? [{ name: 'Left', value: left.join(', ') }] : []),
        ],
        timestamp: ctx.at,
      });
    }
    case 'server.failover': {
      const title =
        e.phase === 'pending'
          ? `⚠️ Failing ${ctx.serverName} over`
          : e.phase === 'restoring'
            ? `♻️ Restoring ${ctx.serverName} on another node`
            : e.phase === 'fenced'
              ? `🚧 Old copy of ${ctx.serverName} fenced`
              : e.phase === 'started'
                ? `✅ ${ctx.serverName} failed over`
                : `❌ Failover of ${ctx.serverName} failed`;
      return one({
        title,
        ...(e.reason ? { description: e.reason } : {}),
        color: e.phase === 'failed' ? RED : e.phase === 'started' ? GREEN : ORANGE,
        fields: [
          { name: 'From node', value: e.fromNodeId, inline: true },
          ...(e.toNodeId ? [{ name: 'To node', value: e.toNodeId, inline: true }] : []),
          { name: 'Outcome', value: e.outcome, inline: true },
        ],
        timestamp: ctx.at,
      });
    }
    default:
      return undefined;
  }
}

/** The body of "send test". */
export function discordTest(name: string, at: string): DiscordBody {
  return {
    username: 'Ctrl-Alt-Play',
    embeds: [
      embed({
        title: 'Test from Ctrl-Alt-Play',
        description: `Webhook “${name}” works.`,
        color: BLUE,
        timestamp: at,
      }),
    ],
  };
}
