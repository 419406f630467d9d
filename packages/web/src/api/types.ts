import type { FileEntry, ResourceSnapshot, ServerStatus, SystemInfo } from '@cap/protocol';

export type { FileEntry, ResourceSnapshot, ServerStatus, SystemInfo };

export type Role = 'owner' | 'admin' | 'spectator';

export interface User {
  id: string;
  email: string;
  role: Role;
  createdAt?: string;
}

export interface Me {
  user: User;
  csrfToken: string;
}

export interface NodeLoad {
  cpu: number;
  memory: number;
  disk: number;
}

export interface PanelNode {
  id: string;
  name: string;
  online: boolean;
  lastHeartbeatAt: string | null;
  protocolVersion: number | null;
  systemInfo: SystemInfo | null;
  load: NodeLoad | null;
  serverCount: number;
}

export type PortBinding = number | { hostPort: number; hostIp?: string };

export interface Limits {
  memory?: string | number;
  cpu?: string | number;
  disk?: string | number;
  swap?: string | number;
  pids?: number;
}

export interface Server {
  id: string;
  name: string;
  nodeId: string;
  status: ServerStatus;
  desiredState: string;
  image: string;
  startup: string;
  environment: Record<string, string>;
  ports: Record<string, PortBinding>;
  limits: Limits;
  done: string | string[] | null;
  stop: string | null;
  createdAt: string;
  updatedAt: string;
  stats: ResourceSnapshot | null;
}

export interface Bucket {
  t: string;
  cpu: number;
  memoryBytes: number;
  rxBytes: number;
  txBytes: number;
  diskBytes: number;
}

export interface Telemetry {
  server: Server;
  status: ServerStatus;
  stats: ResourceSnapshot | null;
  console: string[];
  metrics: Bucket[];
}

export interface Dashboard {
  nodes: PanelNode[];
  servers: Server[];
  totals: {
    servers: number;
    running: number;
    nodes: number;
    online: number;
    cpu: number;
    memoryBytes: number;
  };
  players: {
    online: number;
    max: number;
    byServer: { serverId: string; online: number; max: number; list: string[] }[];
    tracked: boolean;
  };
}

export interface FileList {
  path: string;
  entries: FileEntry[];
}

export interface FileContent {
  path: string;
  size: number;
  encoding: 'utf8' | 'base64';
  content: string;
}

export interface CreatedNode {
  node: PanelNode;
  agentSecret: string;
  command: string;
}
