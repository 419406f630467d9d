/**
 * Admin tasks straight on the database, for the CLI (`user create`, `node create`,
 * `apikey create`) and `up`: no HTTP, no listening.
 */
import { CodedError } from '@cap/protocol';
import type { Template } from '@cap/protocol/templates/index.ts';
import { pino } from 'pino';
import type { PanelConfig } from './config/index.ts';
import { type Db, openDatabase } from './db/index.ts';
import { AllocationsRepo } from './modules/allocations/repo.ts';
import { AddAllocations, AllocationsService } from './modules/allocations/service.ts';
import { ApiKeysRepo } from './modules/api-keys/repo.ts';
import { ApiKeysService } from './modules/api-keys/service.ts';
import { NodesRepo } from './modules/nodes/repo.ts';
import { NodesService, PublicAddress } from './modules/nodes/service.ts';
import { TemplatesRepo } from './modules/templates/repo.ts';
import { type TemplateSummary, TemplatesService } from './modules/templates/service.ts';
import { UsersRepo } from './modules/users/repo.ts';
import { type PublicUser, Role, UsersService } from './modules/users/service.ts';

export interface PanelAdmin {
  createUser(input: { email: string; password: string; role: string }): Promise<PublicUser>;
  createNode(name: string): Promise<{ nodeId: string; agentSecret: string; command: string }>;
  /** the node with that name, with a fresh secret (or a new node when there is none) */
  ensureNode(name: string): Promise<{ nodeId: string; agentSecret: string; created: boolean }>;
  nodeExists(id: string): Promise<boolean>;
  /** add ip:port entries ("25565-25665") to a node's allocation pool */
  addAllocations(nodeId: string, ip: string, ports: string[]): Promise<number>;
  /** the node's public address (where players reach it), or null */
  publicAddress(nodeId: string): Promise<string | null>;
  setPublicAddress(nodeId: string, address: string): Promise<void>;
  createApiKey(email: string, name: string): Promise<{ id: string; key: string }>;
  /** store an imported template (CONFLICT for a stored uuid unless replace); returns its id */
  storeTemplate(template: Template, opts?: { replace?: boolean }): Promise<string>;
  listTemplates(): Promise<TemplateSummary[]>;
  close(): Promise<void>;
}

export async function openPanelAdmin(config: PanelConfig): Promise<PanelAdmin> {
  const db: Db = await openDatabase(config);
  const usersRepo = new UsersRepo(db);
  const nodesRepo = new NodesRepo(db);
  const users = new UsersService(usersRepo);
  const nodes = new NodesService(
    nodesRepo,
    () => ({ isOnline: () => false, disconnect: () => undefined }),
    () => config.publicUrl,
  );
  const keys = new ApiKeysService(new ApiKeysRepo(db));
  const allocations = new AllocationsService(new AllocationsRepo(db), nodesRepo);
  const templates = new TemplatesService(new TemplatesRepo(db), pino({ level: 'silent' }));
  return {
    async createUser(input) {
      const role = Role.safeParse(input.role);
      if (!role.success)
        throw new CodedError('VALIDATION_FAILED', 'role must be owner, admin, spectator or user');
      if (input.password.length < 8)
        throw new CodedError('VALIDATION_FAILED', 'password: at least 8 characters');
      return users.create(null, { email: input.email, password: input.password, role: role.data });
    },
    async createNode(name) {
      const r = await nodes.create(name);
      return { nodeId: r.node.id, agentSecret: r.agentSecret, command: r.command };
    },
    async ensureNode(name) {
      const existing = await nodes.findByName(name);
      if (existing) {
        const r = await nodes.rotateSecret(existing.id);
        return { nodeId: existing.id, agentSecret: r.agentSecret, created: false };
      }
      const r = await nodes.create(name);
      return { nodeId: r.node.id, agentSecret: r.agentSecret, created: true };
    },
    nodeExists: (id) => nodes.exists(id),
    async addAllocations(nodeId, ip, ports) {
      const parsed = AddAllocations.safeParse({ ip, ports });
      if (!parsed.success)
        throw new CodedError(
          'VALIDATION_FAILED',
          `ports ${ports.join(',')} on ${ip}: ${parsed.error.issues[0]?.message}`,
        );
      return (await allocations.add(nodeId, parsed.data)).length;
    },
    async publicAddress(nodeId) {
      return (await nodes.get(nodeId)).publicAddress;
    },
    async setPublicAddress(nodeId, address) {
      const parsed = PublicAddress.safeParse(address);
      if (!parsed.success)
        throw new CodedError(
          'VALIDATION_FAILED',
          `public address ${address}: ${parsed.error.issues[0]?.message}`,
        );
      await nodes.setPublicAddress(nodeId, parsed.data);
    },
    async createApiKey(email, name) {
      const u = await usersRepo.findByEmail(email);
      if (!u) throw new CodedError('NOT_FOUND', `no user ${email}`);
      return keys.create(u.id, name);
    },
    async storeTemplate(template, opts = {}) {
      return (await templates.store(template, opts)).summary.id;
    },
    listTemplates: () => templates.list(),
    close: () => db.destroy(),
  };
}
