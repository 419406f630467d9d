/**
 * The browser ↔ Panel live relay (`/ws/client`). Authenticated by the session cookie;
 * every message is checked against the caller's role for the server it names.
 */
import { z } from 'zod';
import { ErrorCode } from './errors.ts';
import {
  MAX_LISTED_PLAYERS,
  PlayerEntry,
  RemoteConsoleState,
  RemoteConsoleTransport,
  ResourceSnapshot,
  ServerId,
  UpdateStage,
} from './messages.ts';
import { PowerAction, ServerStatus } from './states.ts';
import { FeatureName } from './templates/features.ts';

export const CLIENT_MAX_FRAME_BYTES = 32 * 1024;
export const CLIENT_MAX_SOCKETS_PER_SERVER = 30;

export const ClientRequest = z.discriminatedUnion('type', [
  z.object({ type: z.literal('subscribe'), serverId: ServerId }),
  z.object({ type: z.literal('unsubscribe'), serverId: ServerId }),
  z.object({ type: z.literal('send_command'), serverId: ServerId, command: z.string().min(1).max(4096) }),
  z.object({ type: z.literal('power'), serverId: ServerId, action: PowerAction }),
  z.object({ type: z.literal('ping') }),
]);
export type ClientRequest = z.infer<typeof ClientRequest>;

export const ClientMessage = z.discriminatedUnion('type', [
  z.object({
    type: z.literal('subscribed'),
    serverId: ServerId,
    status: ServerStatus,
    /** the last console lines, oldest first */
    history: z.array(z.string()),
    /** the number of the history's last line (as on `console`), when numbered */
    historyEpoch: z.string().optional(),
    historySeq: z.number().optional(),
    stats: ResourceSnapshot.nullable(),
    /** admins only: the last install's output since the Panel started (`success` absent while it runs),
     * so a page opened after the install on create still shows it */
    install: z
      .object({
        lines: z.array(z.string()),
        success: z.boolean().optional(),
        exitCode: z.number().int().optional(),
      })
      .optional(),
    /** the server's console transport and its state, when the Agent reported one */
    remoteConsole: z
      .object({
        transport: RemoteConsoleTransport,
        state: RemoteConsoleState,
        message: z.string().optional(),
      })
      .optional(),
  }),
  z.object({ type: z.literal('unsubscribed'), serverId: ServerId }),
  /**
   * `epoch`/`seq`: the number of the last line (the lines are seq - n + 1 … seq, within the
   * Agent's run `epoch`), when numbered. `resent`: some lines are sent again after a lost link and
   * were perhaps shown already (a Panel killed between storing and publishing them): a console
   * drops those numbered at or below the last it showed (same epoch).
   */
  z.object({
    type: z.literal('console'),
    serverId: ServerId,
    lines: z.array(z.string()),
    epoch: z.string().optional(),
    seq: z.number().optional(),
    resent: z.boolean().optional(),
  }),
  z.object({ type: z.literal('console_dropped'), serverId: ServerId, count: z.number(), reason: z.string() }),
  z.object({
    type: z.literal('status'),
    serverId: ServerId,
    status: ServerStatus,
    previousStatus: ServerStatus.optional(),
  }),
  z.object({ type: z.literal('stats'), serverId: ServerId, stats: ResourceSnapshot }),
  /** the server's players changed (its Agent's players_update); GET /api/servers/:id/players for times */
  z.object({
    type: z.literal('players'),
    serverId: ServerId,
    online: z.number(),
    max: z.number(),
    list: z.array(PlayerEntry).max(MAX_LISTED_PLAYERS),
  }),
  z.object({ type: z.literal('crashed'), serverId: ServerId, exitCode: z.number(), restarting: z.boolean() }),
  z.object({
    type: z.literal('update_progress'),
    serverId: ServerId,
    stage: UpdateStage,
    message: z.string().optional(),
  }),
  z.object({ type: z.literal('install_output'), serverId: ServerId, lines: z.array(z.string()) }),
  z.object({
    type: z.literal('install_completed'),
    serverId: ServerId,
    success: z.boolean(),
    exitCode: z.number().int().optional(),
  }),
  z.object({ type: z.literal('node_status'), nodeId: z.string(), online: z.boolean() }),
  /** admins only: a console line of a server that is not running called for one of its template's
   * features (templates/features.ts); the web UI opens that feature's dialog */
  z.object({ type: z.literal('feature'), serverId: ServerId, feature: FeatureName, line: z.string() }),
  z.object({
    type: z.literal('error'),
    code: ErrorCode,
    message: z.string(),
    serverId: ServerId.optional(),
    requestType: z.string().optional(),
  }),
  z.object({
    type: z.literal('ack'),
    requestType: z.string(),
    serverId: ServerId.optional(),
    /** send_command: the game's response, when its remote console gives one */
    response: z.string().optional(),
    transport: RemoteConsoleTransport.optional(),
  }),
  /** the server's remote console connected, was refused, became unreachable or idle */
  z.object({
    type: z.literal('remote_console'),
    serverId: ServerId,
    transport: RemoteConsoleTransport,
    state: RemoteConsoleState,
    message: z.string().optional(),
  }),
  /** an operation (power, reinstall, config update) moved on or ended; see GET /api/operations/:id */
  z.object({
    type: z.literal('operation'),
    serverId: ServerId,
    operationId: z.string(),
    kind: z.string(),
    stage: z.string(),
    /** absent while it runs */
    success: z.boolean().optional(),
    errorCode: ErrorCode.optional(),
    message: z.string().optional(),
  }),
  z.object({ type: z.literal('pong') }),
]);
export type ClientMessage = z.infer<typeof ClientMessage>;
