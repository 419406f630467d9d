/**
 * The Panel↔Agent wire contract (seed 003, made precise). Field names, `type` values,
 * `action` names and `event` names are the seed's; what the seed lacked is added here.
 */
import { z } from 'zod';
import { ErrorCode } from './errors.ts';
import { fastEventData, fastEventEnvelope } from './fast-events.ts';
import { ImageRef } from './image-ref.ts';
import { ListModsPayload } from './mods.ts';
import { PlayerAction, PlayerCommand } from './player-commands.ts';
import { StackName, StackPlan } from './stacks.ts';
import { ServerStatus } from './states.ts';

/** Bumped on any breaking change; the Agent states it on connect (`X-Protocol-Version`). */
export const PROTOCOL_VERSION = 1;
/** Versions of the Agent protocol this build accepts. */
export const SUPPORTED_PROTOCOL_VERSIONS: readonly number[] = [1];
export const PROTOCOL_VERSION_HEADER = 'x-protocol-version';
export const AGENT_ID_HEADER = 'x-agent-id';

/** Used in paths, container names and labels: keep it boring. */
export const ServerId = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/, 'serverId must be 1–64 of [A-Za-z0-9_-], starting alphanumeric');
export const MessageId = z.string().min(1).max(128);
export const Timestamp = z.iso.datetime({ offset: true });

export const MessageType = z.enum(['command', 'response', 'event', 'ping', 'pong']);
export type MessageType = z.infer<typeof MessageType>;

const base = {
  id: MessageId,
  timestamp: Timestamp,
  agentId: z.string().max(128).optional(),
  serverId: ServerId.optional(),
};

// ---------------------------------------------------------------------------------------------
// eggConfig: what the Agent needs to run a server

/** A size as the seed writes it ("2048m", "5g", "512k", "1024") or a number of MiB. */
export const Size = z.union([
  z.number().nonnegative(),
  z.string().regex(/^\s*\d+(\.\d+)?\s*([kmgt]i?b?|b)?\s*$/i, 'size like "2048m", "5g" or a number of MiB'),
]);
export type Size = z.infer<typeof Size>;

const UNITS: Record<string, number> = { b: 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4 };
/** Bytes in a Size. A bare number (or a string with no unit) is MiB, as in Pterodactyl. */
export function sizeToBytes(size: Size): number {
  if (typeof size === 'number') return Math.round(size * 1024 * 1024);
  const m = /^\s*(\d+(?:\.\d+)?)\s*([kmgt]i?b?|b)?\s*$/i.exec(size);
  if (!m) throw new Error(`not a size: ${size}`);
  const unit = (m[2] ?? 'm').toLowerCase()[0] ?? 'm';
  return Math.round(Number(m[1]) * (UNITS[unit] ?? 1024 ** 2));
}
/** The seed's compact notation: bytes → "1200m" (MiB, rounded) or "2.1g" above 10 GiB. */
export function bytesToSize(bytes: number): string {
  if (bytes >= 10 * 1024 ** 3) return `${(bytes / 1024 ** 3).toFixed(1)}g`;
  return `${Math.round(bytes / 1024 ** 2)}m`;
}

export const EnvName = z
  .string()
  .regex(/^[A-Za-z_][A-Za-z0-9_]{0,127}$/, 'environment names are [A-Za-z_][A-Za-z0-9_]*');
export const Environment = z.record(EnvName, z.string().max(32 * 1024));

export const Limits = z.object({
  /** memory limit; 0 or absent = unlimited */
  memory: Size.optional(),
  /** CPU cores as docker --cpus ("2", 1.5); 0 or absent = unlimited */
  cpu: z.union([z.number().nonnegative(), z.string().regex(/^\d+(\.\d+)?$/)]).optional(),
  /** disk quota enforced by the Agent (the engine here cannot) */
  disk: Size.optional(),
  /** swap in addition to memory; -1 = unlimited */
  swap: z.union([Size, z.literal(-1)]).optional(),
  pids: z.number().int().min(16).max(65536).optional(),
});
export type Limits = z.infer<typeof Limits>;

/** "25565", "25565/tcp" or "27960/udp"; no protocol means both, as Wings publishes allocations. */
export const PortKey = z
  .string()
  .regex(/^\d{1,5}(\/(tcp|udp))?$/, 'port key like "25565", "25565/tcp" or "27960/udp"')
  .refine((k) => {
    const n = Number(k.split('/')[0]);
    return n >= 1 && n <= 65535;
  }, 'a port key names a port from 1 to 65535');
export const PortNumber = z.number().int().min(1).max(65535);
export const PortBinding = z.union([
  PortNumber,
  z.object({ hostPort: PortNumber, hostIp: z.union([z.ipv4(), z.ipv6()]).optional() }),
]);
export const Ports = z.record(PortKey, PortBinding);
export type Ports = z.infer<typeof Ports>;

/** A "done" pattern: a substring, or `regex:<expr>`; a list matches when any item does. */
export const DonePattern = z.union([z.string().max(1024), z.array(z.string().max(1024)).max(16)]);

export const ConfigFile = z.object({
  parser: z.enum(['file', 'properties', 'ini', 'yaml', 'yml', 'json', 'xml']),
  find: z.record(z.string(), z.unknown()),
});
export type ConfigFile = z.infer<typeof ConfigFile>;

export const InstallSpec = z.object({
  script: z.string().max(1024 * 1024),
  container: ImageRef,
  entrypoint: z.string().min(1).max(256).default('bash'),
});
export type InstallSpec = z.infer<typeof InstallSpec>;

/**
 * How commands reach a server's game (issue 12): `stdin` (the container's console, the default)
 * or a remote console the Agent dials: Source RCON over TCP (Minecraft, Valve games, ARK, Rust,
 * Palworld), Quake 3 rcon over UDP (OpenArena, ioquake3 games), Teeworlds/DDNet econ over TCP,
 * OpenTTD's admin port over TCP.
 */
export const RemoteConsoleTransport = z.enum([
  'stdin',
  'source-rcon',
  'quake3-rcon',
  'teeworlds-econ',
  'openttd-admin',
]);
export type RemoteConsoleTransport = z.infer<typeof RemoteConsoleTransport>;
/**
 * A template's remote console: which transport, and which of its variables hold the port (inside
 * the container; or a fixed `port`; default `SERVER_PORT`) and the password. The Agent reads both from the server's
 * environment when it connects, and reaches the port where it is published on the host (else on
 * the container's own address). No host can be named: the Agent dials only its own server.
 */
export const RemoteConsoleSpec = z
  .object({
    transport: RemoteConsoleTransport,
    portVariable: EnvName.optional(),
    /** a fixed port inside the container, when no variable holds it (Minecraft's 25575) */
    port: z.number().int().min(1).max(65535).optional(),
    passwordVariable: EnvName.optional(),
  })
  .strict();
export type RemoteConsoleSpec = z.infer<typeof RemoteConsoleSpec>;
/** The state of a server's remote console, as the Agent reports it (`remote_console_state`). */
export const RemoteConsoleState = z.enum([
  /** the server is not running (or the transport is off: no password) */
  'idle',
  'connecting',
  /** commands are taken (for stdin: the console is attached) */
  'authenticated',
  'wrong_password',
  'unreachable',
]);
export type RemoteConsoleState = z.infer<typeof RemoteConsoleState>;
/**
 * How the Agent counts a running server's players (the template's `players`): `gamedig:<type>`,
 * `teeworlds`, `command:<parser>` or `none`; the port queried is the value of `portVariable` in
 * `environment` (default SERVER_PORT), a port inside the container, published by `ports`.
 */
export const PlayersQuery = z.object({
  query: z
    .string()
    .max(80)
    .regex(/^(gamedig:[a-z0-9][a-z0-9_-]{0,63}|teeworlds|command:[a-z0-9][a-z0-9_-]{0,31}|none)$/),
  portVariable: EnvName.optional(),
  intervalSeconds: z.number().int().min(5).max(3600).default(30),
  /** the console command that kicks a player (player-commands.ts: `{id}`, `{name}`, `{reason}`) */
  kick: PlayerCommand.optional(),
  /** the console command that bans a player */
  ban: PlayerCommand.optional(),
});
export type PlayersQuery = z.infer<typeof PlayersQuery>;

export const EggConfig = z.object({
  name: z.string().min(1).max(191),
  image: ImageRef,
  ports: Ports.default({}),
  environment: Environment.default({}),
  limits: Limits.default({}),
  /** startup command with {{VAR}} placeholders, filled from environment (+ SERVER_MEMORY, SERVER_IP, SERVER_PORT) */
  startup: z
    .string()
    .max(16 * 1024)
    .default(''),
  /** host IP the ports are published on (default 0.0.0.0) */
  bindIp: z.union([z.ipv4(), z.ipv6()]).optional(),
  done: DonePattern.optional(),
  /** egg config.stop: "^C" → SIGINT, other "^…" → SIGKILL, otherwise a console command; default SIGTERM */
  stop: z.string().max(1024).optional(),
  /** seconds to wait after the stop before killing */
  stopTimeout: z.number().int().min(0).max(3600).optional(),
  configFiles: z.record(z.string().min(1).max(1024), ConfigFile).optional(),
  install: InstallSpec.optional(),
  /** restart automatically on crash (default true) */
  crashRestart: z.boolean().optional(),
  /**
   * The egg's `file_denylist`: gitignore-style patterns (from the server's root) the file API
   * refuses to read, write, create, rename, copy, chmod or delete (`FILE_DENIED`); listed still.
   */
  fileDenylist: z.array(z.string().min(1).max(1024)).max(256).optional(),
  /** the template's remote console (absent: stdin) */
  remoteConsole: RemoteConsoleSpec.optional(),
  /** player tracking (absent or `none`: not polled) */
  players: PlayersQuery.optional(),
});
export type EggConfig = z.infer<typeof EggConfig>;

// ---------------------------------------------------------------------------------------------
// commands (Panel → Agent)

export const Signal = z.enum(['SIGTERM', 'SIGINT', 'SIGKILL', 'SIGQUIT', 'SIGHUP', 'SIGUSR1', 'SIGUSR2']);
export type Signal = z.infer<typeof Signal>;

/**
 * Registry credentials for one pull (Docker's AuthConfig): sent by the Panel with the command
 * that pulls (create_server), used for that pull only, never stored nor logged by the Agent.
 */
export const RegistryAuthConfig = z.object({
  username: z.string().max(255),
  password: z.string().max(8192),
  /** the registry host (`127.0.0.1:5000`, `ghcr.io`; Docker Hub: `https://index.docker.io/v1/`) */
  serveraddress: z.string().min(1).max(300),
});
export type RegistryAuthConfig = z.infer<typeof RegistryAuthConfig>;

export const CreateServerPayload = z.object({
  serverId: ServerId,
  eggConfig: EggConfig,
  /** credentials for the registries of the egg's images (game and install), when the Panel has some */
  registryAuth: z.array(RegistryAuthConfig).max(4).optional(),
});
export const StopServerPayload = z.object({
  signal: Signal.optional(),
  /** seconds before kill */
  timeout: z.number().int().min(0).max(3600).optional(),
});
export const Empty = z.object({}).strict();
export const SendCommandPayload = z.object({ command: z.string().min(1).max(4096) });
/** The largest response a remote console gives back to one command (UTF-8 bytes; cut beyond). */
export const REMOTE_CONSOLE_MAX_RESPONSE_BYTES = 64 * 1024;
/** send_command's answer: the game's response where the transport gives one (not stdin). */
export const SendCommandData = z.object({
  response: z.string().max(REMOTE_CONSOLE_MAX_RESPONSE_BYTES).optional(),
  transport: RemoteConsoleTransport.optional(),
});
export type SendCommandData = z.infer<typeof SendCommandData>;
/** player_action: kick or ban one player (by the id its list gave, else the name). */
export const PlayerActionPayload = z
  .object({
    action: PlayerAction,
    id: z
      .string()
      .regex(/^\d{1,20}$/)
      .optional(),
    name: z.string().min(1).max(64).optional(),
    reason: z.string().min(1).max(200).optional(),
  })
  .strict();
/** player_action's answer: the command sent and the game's response where the transport gives one. */
export const PlayerActionData = SendCommandData.extend({ command: z.string().max(4096) });
export type PlayerActionData = z.infer<typeof PlayerActionData>;
/** Only the fields given change: no defaults here (a default would silently reset a field). */
export const UpdateServerPayload = EggConfig.partial()
  .omit({ name: true })
  .extend({
    name: z.string().min(1).max(191).optional(),
    ports: Ports.optional(),
    environment: Environment.optional(),
    limits: Limits.optional(),
    startup: z
      .string()
      .max(16 * 1024)
      .optional(),
    /** credentials for the registries of a new image (pulled now when absent), never kept */
    registryAuth: z.array(RegistryAuthConfig).max(4).optional(),
  });
/** reinstall_server: credentials for the install and game images' registries (pulled when absent). */
export const ReinstallServerPayload = z
  .object({ registryAuth: z.array(RegistryAuthConfig).max(4).optional() })
  .strict();
export const FilePathPayload = z.object({ path: z.string().max(4096).default('/') });

/**
 * image_check (issue 13 item 3): the digests of the image the server's container runs (its
 * RepoDigests) and the registry's current digest of the same reference, asked from this node
 * (the Engine's `GET /distribution/{name}/json`). `registryAuth`: an X-Registry-Auth value.
 */
export const ImageCheckPayload = z.object({
  registryAuth: z.string().max(8192).optional(),
});
export const ImageCheckData = z.object({
  image: z.string(),
  /** the image ID the container runs (null: no container yet) */
  imageId: z.string().nullable(),
  /** its RepoDigests (`repo@sha256:…`) */
  localDigests: z.array(z.string()).max(64),
  /** the registry's manifest digest for the reference (null when the registry failed) */
  remoteDigest: z.string().nullable(),
  /** why the registry could not be asked */
  error: z.string().max(1024).optional(),
});
export type ImageCheckData = z.infer<typeof ImageCheckData>;

/**
 * image_update_server (an operation): pull the reference with per-layer progress
 * (image_pull_progress events) → keep the previous image (tagged `<repo>:cap-rollback-<server>`) →
 * recreate the container on the new image (files kept) → start it if it ran → wait until ready
 * (the done pattern, else running for `stableSeconds`) within `readyTimeoutSeconds`; not ready or
 * crashed: the container is made again on the previous image, started, and the outcome is
 * `rolled_back` with the reason.
 */
export const ImageUpdatePayload = z.object({
  readyTimeoutSeconds: z.number().int().min(5).max(3600).default(120),
  stableSeconds: z.number().int().min(1).max(600).default(10),
  registryAuth: z.string().max(8192).optional(),
});
export const ImageUpdateOutcome = z.enum(['updated', 'unchanged', 'rolled_back']);
export type ImageUpdateOutcome = z.infer<typeof ImageUpdateOutcome>;
export const ImageUpdateData = z.object({
  outcome: ImageUpdateOutcome,
  previousImageId: z.string().nullable(),
  imageId: z.string().nullable(),
  /** why it was rolled back */
  reason: z.string().max(1024).optional(),
});
export type ImageUpdateData = z.infer<typeof ImageUpdateData>;
/** One layer of a pull as the Engine last reported it. */
export const PullLayer = z.object({
  id: z.string().max(128),
  status: z.string().max(256),
  current: z
    .number()
    .min(0)
    .max(2 ** 53),
  total: z
    .number()
    .min(0)
    .max(2 ** 53),
});
export type PullLayer = z.infer<typeof PullLayer>;
export const MAX_PULL_LAYERS = 128;
/** write_file content cap, in UTF-8 bytes */
export const MAX_WRITE_FILE_BYTES = 1024 * 1024;
/** UTF-8 length of a string without encoding it (browser-safe: no Buffer). */
export function utf8Bytes(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length && (s.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
      n += 4;
      i++;
    } else n += 3;
  }
  return n;
}
/** One small text file (eula.txt) written into the server's root: no links, never outside it. */
export const WriteFilePayload = z.object({
  path: z.string().min(1).max(4096),
  content: z
    .string()
    .max(MAX_WRITE_FILE_BYTES)
    .refine((s) => utf8Bytes(s) <= MAX_WRITE_FILE_BYTES, {
      message: `content is larger than ${MAX_WRITE_FILE_BYTES} bytes`,
    }),
});
/** Entries per `list_files` page when none is asked for, and the most one page may hold. */
export const LIST_FILES_DEFAULT_LIMIT = 200;
export const LIST_FILES_MAX_LIMIT = 1000;
export const FileSort = z.enum(['name', 'size', 'modified']);
export const SortOrder = z.enum(['asc', 'desc']);
/**
 * One page of a directory: directories first, then by `sort` (name by default; ties by name) in
 * `order`; `offset` counts entries.
 */
export const ListFilesPayload = FilePathPayload.extend({
  offset: z.number().int().min(0).max(100_000_000).default(0),
  limit: z.number().int().min(1).max(LIST_FILES_MAX_LIMIT).default(LIST_FILES_DEFAULT_LIMIT),
  sort: FileSort.default('name'),
  order: SortOrder.default('asc'),
});
/** A path from the server's root (`/` and `\\` separators; `..` that leaves the root is refused). */
export const FilePath = z.string().min(1).max(4096);
/** One name inside a directory (the Agent refuses `/`, NUL, `.`, `..` and over 255 bytes). */
export const FileName = z.string().min(1).max(1024);
export const Sha256Hex = z.string().regex(/^[0-9a-f]{64}$/, 'a sha256 as 64 lowercase hex digits');
/**
 * write_file with a conflict check: when `expectedSha256` or `expectedModifiedAt` is given and the
 * file on disk no longer matches it (or is gone), nothing is written: `FILE_CHANGED`.
 */
export const WriteFileCheckedPayload = WriteFilePayload.extend({
  expectedSha256: Sha256Hex.optional(),
  expectedModifiedAt: Timestamp.optional(),
  /** refuse (`FILE_EXISTS`) when the file exists: "new file" */
  createOnly: z.boolean().optional(),
});
/** create_directory: the directory and any missing parents (a component that is a link is refused). */
export const CreateDirectoryPayload = z.object({ path: FilePath });
/** rename_file / copy_file: `to` must not exist (`FILE_EXISTS`); its parent must. */
export const MoveFilePayload = z.object({ from: FilePath, to: FilePath });
export const DELETE_FILES_MAX = 1000;
/** delete_files: names inside one directory (files, links or whole directories). */
export const DeleteFilesPayload = z.object({
  root: FilePath.default('/'),
  names: z.array(FileName).min(1).max(DELETE_FILES_MAX),
});
/** chmod_file: permission bits only (no setuid/setgid); never applied through a link. */
export const ChmodFilePayload = z.object({
  path: FilePath,
  mode: z.string().regex(/^[0-1]?[0-7]{3}$/, 'mode as octal digits, e.g. "644" or "0755" (no setuid/setgid)'),
});
export const SEARCH_FILES_MAX_RESULTS = 500;
/** Entries the search visits at most before it stops (`truncated: true`). */
export const SEARCH_FILES_MAX_VISITED = 100_000;
/** search_files: names containing `query` (case-insensitive) under `path`, bounded. */
export const SearchFilesPayload = z.object({
  path: z.string().max(4096).default('/'),
  query: z.string().min(1).max(255),
  limit: z.number().int().min(1).max(SEARCH_FILES_MAX_RESULTS).default(100),
});
/** A backup's id (the Panel's, or one the Agent made): see docs/contracts.md "Backups" */
export const BackupId = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/, 'backupId must be 1–64 of [A-Za-z0-9_-], starting alphanumeric');
/** The largest file one transfer moves (64 GiB). */
export const TRANSFER_MAX_BYTES = 64 * 1024 ** 3;
/** A transfer ticket: 32 random bytes, base64url. */
export const TransferTicket = z.string().regex(/^[A-Za-z0-9_-]{43}$/, 'a transfer ticket');
/**
 * create_transfer: a single-use, short-lived ticket (kept in the Agent's memory) for one file's
 * body, streamed over HTTP and never over the link: `GET|PUT /transfers/<ticket>` on the Agent's
 * HTTP API, or relayed by the Panel (relay_transfer). An upload names its exact `size`: the disk
 * quota is checked now and the body is cut off past it.
 */
/** The formats the Agent writes archives in for the file manager (it reads tar.zst and tar too). */
export const ArchiveWriteFormat = z.enum(['tar.gz', 'zip']);
export type ArchiveWriteFormat = z.infer<typeof ArchiveWriteFormat>;
export const CreateTransferPayload = z.object({
  direction: z.enum(['upload', 'download']),
  /** the file (or, for an upload, its target); absent for a backup's download */
  path: FilePath.optional(),
  /** a download of this completed backup of the server instead of a file (`path` is then left out) */
  backupId: BackupId.optional(),
  size: z.number().int().min(0).max(TRANSFER_MAX_BYTES).optional(),
  ttlSeconds: z.number().int().min(5).max(3600).default(300),
  /** download of a folder: streamed as this archive, made on the fly (its size is not known: null) */
  archive: ArchiveWriteFormat.optional(),
});
const Count = z
  .number()
  .int()
  .min(0)
  .max(2 ** 53);
export const CreateTransferData = z.object({
  ticket: TransferTicket,
  expiresAt: z.string(),
  /** download: the file's size (null for a folder archived on the fly) and name */
  size: Count.nullable(),
  name: z.string(),
  /** a backup's download: its recorded sha256 (hex), also sent as the `x-checksum-sha256` header */
  sha256: z
    .string()
    .regex(/^[0-9a-f]{64}$/)
    .optional(),
});
/**
 * file_compress (an operation): `names` of one folder (`root`) into one archive written in that
 * folder (default name `archive-<UTC yyyy-mm-dd-hhmmss>.<ext>`), through a temporary name renamed
 * when complete; the disk quota is enforced while it is written (nothing partial is left).
 */
export const FileCompressPayload = z.object({
  root: FilePath.default('/'),
  names: z.array(FileName).min(1).max(DELETE_FILES_MAX),
  format: ArchiveWriteFormat.default('tar.gz'),
  name: FileName.optional(),
});
export const FileCompressData = z.object({
  /** the archive, from the server's root */
  path: z.string(),
  /** its size in bytes */
  size: Count,
  entries: Count,
  /** file data archived (uncompressed) */
  bytes: Count,
});
export type FileCompressData = z.infer<typeof FileCompressData>;
/**
 * file_decompress (an operation): the archive (format by its magic bytes: tar.gz, tar.zst, tar,
 * zip) is read whole first (checksums, entry rules, caps = the server's remaining disk quota and
 * FILE_DECOMPRESS_MAX_ENTRIES), then unpacked into `destination` (default: the archive's folder).
 */
export const FILE_DECOMPRESS_MAX_ENTRIES = 200_000;
export const FileDecompressPayload = z.object({
  path: FilePath,
  destination: FilePath.optional(),
});
export const FileDecompressData = z.object({
  destination: z.string(),
  bytes: Count,
  entries: Count,
});
export type FileDecompressData = z.infer<typeof FileDecompressData>;

/** docker_containers: the whole cached list, or one page of it (a list's first rows come cheap). */
export const DockerContainersPayload = z
  .object({
    offset: z.number().int().min(0).max(1_000_000).optional(),
    limit: z.number().int().min(1).max(20_000).optional(),
  })
  .strict();
/** A Docker volume's name (Docker's own rule). */
export const VolumeName = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,254}$/, 'a Docker volume name: [A-Za-z0-9][A-Za-z0-9_.-]*, ≤ 255');
export const VolumeArchiveFormat = z.enum(['tar.gz', 'tar.zst']);
/**
 * volume_backup (issue 10 item 5; Agent-level, no server): a download ticket whose body is the
 * named volume's tree (its Mountpoint from the Docker Engine), archived while it streams by the
 * same archiver as server files (size null, chunked).
 */
export const VolumeBackupPayload = z.object({
  volume: VolumeName,
  format: VolumeArchiveFormat.default('tar.gz'),
  ttlSeconds: z.number().int().min(5).max(3600).default(300),
});
/**
 * volume_restore: an upload ticket for an archive of exactly `size` bytes (tar.gz, tar.zst, tar or
 * zip, by its magic bytes), spooled on the node, verified whole, then unpacked into the volume
 * (`truncate`: its current contents removed first, only after the verify). A volume used by a
 * running container is refused (INVALID_STATE) unless `force`.
 */
export const VolumeRestorePayload = z.object({
  volume: VolumeName,
  size: z.number().int().min(1).max(TRANSFER_MAX_BYTES),
  force: z.boolean().default(false),
  truncate: z.boolean().default(false),
  ttlSeconds: z.number().int().min(5).max(3600).default(300),
});
/**
 * Browsing a Docker volume's files (issue 11; Agent-level, no server): paths are resolved inside
 * the volume's Mountpoint by the same rules as a server's files (`..` and symlinks that lead out
 * refused: PATH_OUTSIDE_ROOT). volume_list_files: one page of a directory (as list_files; a
 * symlink's entry carries its `target`, the link's text, never followed); volume_get_file: one
 * regular file of at most VOLUME_FILE_MAX_BYTES (utf8 or base64, as get_file; larger:
 * FILE_TOO_LARGE, download it); volume_file_download: a download ticket for one regular file.
 */
export const VOLUME_FILE_MAX_BYTES = 1024 * 1024;
export const VolumeListFilesPayload = ListFilesPayload.extend({ volume: VolumeName });
export const VolumeFilePayload = FilePathPayload.extend({ volume: VolumeName });
export const VolumeFileDownloadPayload = z.object({
  volume: VolumeName,
  path: FilePath,
  ttlSeconds: z.number().int().min(5).max(3600).default(300),
});
/**
 * Changing a Docker volume's files (issue 11; Agent-level, the Panel checks docker.write on the
 * node): the same path rules as browsing (inside the volume, links resolved, PATH_OUTSIDE_ROOT).
 * volume_file_upload: an upload ticket for exactly `size` bytes written to `path` (its folder must
 * exist; written to a temporary name and renamed over the target when every byte came);
 * volume_create_directory, volume_rename (`to` must not exist) and volume_delete_files as the
 * server file actions (no denylist, no quota).
 */
export const VolumeFileUploadPayload = z.object({
  volume: VolumeName,
  path: FilePath,
  size: z.number().int().min(0).max(TRANSFER_MAX_BYTES),
  ttlSeconds: z.number().int().min(5).max(3600).default(300),
});
export const VolumeCreateDirectoryPayload = CreateDirectoryPayload.extend({ volume: VolumeName });
export const VolumeRenamePayload = MoveFilePayload.extend({ volume: VolumeName });
export const VolumeDeleteFilesPayload = DeleteFilesPayload.extend({ volume: VolumeName });
/**
 * relay_transfer: the Agent takes the ticket (once) and dials OUT to the Panel with its link
 * credentials: `POST /api/agent/transfers/<ticket>` carrying a download's bytes, or
 * `GET /api/agent/transfers/<ticket>` reading an upload's. Answers once the dial has started.
 */
export const RelayTransferPayload = z.object({ ticket: TransferTicket });
/**
 * transfer_push (issue 16, an operation): the server's completed backup `backupId` streamed
 * straight to another Agent's HTTP API, `PUT <url>` where `url` is `<the target node's
 * transferUrl>/transfers/<ticket>` and `ticket` the upload ticket that target issued
 * (backup_import): with backpressure, exactly the archive's size (content-length; the file is
 * read no further), its sha256 in `x-checksum-sha256` (the target checks both on arrival). The
 * Agent dials nothing else: an http(s) URL without credentials, query or fragment whose path ends
 * in `/transfers/<ticket>` for this very ticket, no redirect followed, nothing of the answer
 * passed on but the target's `{ path, size }` or its error code; only the Panel link may ask it
 * (the Agent's own HTTP API refuses it: FORBIDDEN). Not reaching the target (connection refused,
 * reset, no route, DNS, `connectTimeoutMs`) is UPSTREAM_ERROR: the Panel then relays instead.
 */
export const TransferPushPayload = z.object({
  backupId: BackupId,
  url: z.string().min(1).max(2048),
  ticket: TransferTicket,
  /** the node the ticket is for (logged, and named in errors) */
  targetNodeId: z.string().min(1).max(64),
  connectTimeoutMs: z.number().int().min(100).max(60_000).default(10_000),
});
export const TransferPushData = z.object({
  /** what the target answered: the backup it became, and its size */
  path: z.string().max(256),
  size: Count,
  /** bytes sent and how long it took */
  bytes: Count,
  ms: z.number().min(0).max(1e10),
});
export type TransferPushData = z.infer<typeof TransferPushData>;
/**
 * docker_tunnel (issue 11): the Agent dials OUT to the Panel with its link credentials,
 * `GET /api/agent/docker-tunnel/<ticket>` with `Upgrade: cap-docker-tunnel`, and once the Panel
 * answers 101 it pipes that connection's bytes to and from its Docker Engine socket, both ways,
 * until either side closes (one HTTP exchange of the Engine API per tunnel). Answers once the
 * dial has started: `{ started: true, agentContainer: { id, name } | null }` (the container the
 * Agent itself runs in, which the Panel's policy keeps non-owners away from); an Agent with the
 * Docker API turned off (AGENT_DOCKER_API=0) refuses it.
 */
export const DockerTunnelPayload = z.object({ ticket: TransferTicket });

/**
 * The largest message (serialised JSON, bytes) an Agent sends on the link, well below the
 * Panel's frame limit for `/ws/agents` (16 MiB). A larger answer is replaced by an error
 * response `MESSAGE_TOO_LARGE` for the same id; the link stays up.
 */
export const LINK_MAX_MESSAGE_BYTES = 4 * 1024 * 1024;

// backups on the node (issue 10 item 4): see docs/contracts.md "Backups"
export const BackupFormat = z.enum(['tar.zst', 'tar.gz']);
export type BackupFormat = z.infer<typeof BackupFormat>;
export const BackupState = z.enum(['pending', 'completed', 'failed']);
const ConsoleCommands = z.array(z.string().min(1).max(4096)).max(16);
export const BackupCreatePayload = z.object({
  /** the Panel's id for it; the Agent makes one when absent */
  backupId: BackupId.optional(),
  name: z.string().max(191).optional(),
  format: BackupFormat.default('tar.zst'),
  /** `.pteroignore` lines, added to those of the server's own `.pteroignore` */
  ignore: z.array(z.string().max(4096)).max(1000).default([]),
  /** console commands sent before archiving and after it (e.g. save-off, save-all / save-on), when running */
  commandsBefore: ConsoleCommands.default([]),
  commandsAfter: ConsoleCommands.default([]),
  /** seconds to wait after the commands before (a save-all flushes meanwhile) */
  commandWaitSeconds: z.number().int().min(0).max(300).default(2),
  locked: z.boolean().default(false),
  /** after a success: keep the newest N completed unlocked backups, delete older ones */
  retain: z.number().int().min(1).max(10_000).optional(),
});
export const BACKUP_LIST_MAX_LIMIT = 100;
export const BackupListPayload = z.object({
  offset: z.number().int().min(0).max(1_000_000).default(0),
  limit: z.number().int().min(1).max(BACKUP_LIST_MAX_LIMIT).default(50),
});
export const BackupRefPayload = z.object({ backupId: BackupId });
export const BackupRestorePayload = BackupRefPayload.extend({
  /** delete the server's current files first (only after the archive was verified) */
  truncate: z.boolean().default(false),
});
export const BackupLockPayload = BackupRefPayload.extend({ locked: z.boolean() });
export const BackupRecord = z.object({
  backupId: BackupId,
  serverId: ServerId,
  name: z.string().max(191).nullable(),
  format: BackupFormat,
  state: BackupState,
  /** size of the archive in bytes, and its sha256 (hex); null until completed */
  size: z
    .number()
    .int()
    .min(0)
    .max(2 ** 53)
    .nullable(),
  sha256: z
    .string()
    .regex(/^[0-9a-f]{64}$/)
    .nullable(),
  /** file data archived (uncompressed bytes) and entries */
  bytes: z
    .number()
    .int()
    .min(0)
    .max(2 ** 53)
    .nullable(),
  entries: z
    .number()
    .int()
    .min(0)
    .max(2 ** 53)
    .nullable(),
  locked: z.boolean(),
  createdAt: Timestamp,
  completedAt: Timestamp.nullable(),
  error: z.object({ code: ErrorCode, message: z.string().max(4096) }).optional(),
});
export type BackupRecord = z.infer<typeof BackupRecord>;
export const BackupListData = z.object({
  backups: z.array(BackupRecord),
  total: z.number().int().min(0),
  offset: z.number().int().min(0),
  limit: z.number().int().min(1),
});

/**
 * backup_import: a single-use upload ticket (like create_transfer's, relayed the same way) for the
 * Panel bringing a backup back from object storage: the archive sent (`PUT /transfers/<ticket>`,
 * or relayed) becomes the completed backup `backupId` on this node once exactly `size` bytes came
 * with this `sha256` (else ARCHIVE_INVALID, nothing kept); a backupId the node has is CONFLICT.
 * (A backup's download is create_transfer with `backupId`.)
 */
export const BackupImportPayload = z.object({
  backupId: BackupId,
  format: BackupFormat,
  size: z.number().int().min(0).max(TRANSFER_MAX_BYTES),
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
  name: z.string().max(191).nullable().default(null),
  /** what the record says once imported (the original backup's values) */
  bytes: z
    .number()
    .int()
    .min(0)
    .max(2 ** 53)
    .nullable()
    .default(null),
  entries: z
    .number()
    .int()
    .min(0)
    .max(2 ** 53)
    .nullable()
    .default(null),
  createdAt: Timestamp.optional(),
  ttlSeconds: z.number().int().min(5).max(3600).default(300),
});

/** Ends a user's SFTP sessions on this node at once (on one server, or on all when none is named). */
export const SftpRevokePayload = z.object({
  userId: z.string().min(1).max(64),
  serverId: z.string().min(1).max(64).optional(),
});

/**
 * The servers of this node the Panel has fenced (issue 16 failover): they run on another node
 * now. The whole list, sent on every connect before anything else (and when it changes): the
 * Agent must not start them (no power action, no crash restart, no start after its downtime),
 * stops one that runs, and moves its files aside (`<data>/fenced/<server>-<ts>`), never deleting.
 */
export const FencedServer = z.object({
  serverId: z.string().min(1).max(64),
  fencedAt: Timestamp,
  reason: z.string().max(500),
});
export type FencedServer = z.infer<typeof FencedServer>;
export const FenceServersPayload = z.object({ servers: z.array(FencedServer).max(10_000) });
/** fence_servers' answer: the servers it fenced now, and where their files went */
export const FenceServersData = z.object({
  fenced: z.array(z.object({ serverId: z.string(), movedTo: z.string().nullable() })),
});
export type FenceServersData = z.infer<typeof FenceServersData>;
/** A compose stack on the node by its project name. */
export const StackRefPayload = z.object({ project: StackName });
export const StackRemovePayload = z.object({ project: StackName, volumes: z.boolean().default(false) });

export const actionPayloads = {
  create_server: CreateServerPayload,
  start_server: Empty,
  stop_server: StopServerPayload,
  restart_server: StopServerPayload,
  kill_server: Empty,
  delete_server: Empty,
  get_status: Empty,
  send_command: SendCommandPayload,
  update_server: UpdateServerPayload,
  system_info: Empty,
  list_servers: Empty,
  list_files: ListFilesPayload,
  get_file: FilePathPayload,
  /** create or replace one file (utf8) in the server's root; its parent directory must exist */
  write_file: WriteFileCheckedPayload,
  stat_file: FilePathPayload,
  create_directory: CreateDirectoryPayload,
  rename_file: MoveFilePayload,
  copy_file: MoveFilePayload,
  delete_files: DeleteFilesPayload,
  chmod_file: ChmodFilePayload,
  search_files: SearchFilesPayload,
  create_transfer: CreateTransferPayload,
  relay_transfer: RelayTransferPayload,
  /** a completed backup PUT straight to another Agent's transfer ticket (an operation; Panel link only) */
  transfer_push: TransferPushPayload,
  /** one relayed Docker Engine API exchange: the Agent dials in and pipes to its Docker socket */
  docker_tunnel: DockerTunnelPayload,
  /** an upload ticket whose archive becomes a completed backup of the server (from object storage) */
  backup_import: BackupImportPayload,
  /** pack entries of one folder into an archive in it (an operation) */
  file_compress: FileCompressPayload,
  /** unpack an archive of the server's files (an operation) */
  file_decompress: FileDecompressPayload,
  /** a download ticket streaming a Docker volume's archive (no server) */
  volume_backup: VolumeBackupPayload,
  /** an upload ticket whose archive is restored into a Docker volume (no server) */
  volume_restore: VolumeRestorePayload,
  /** one page of a directory inside a Docker volume (no server) */
  volume_list_files: VolumeListFilesPayload,
  /** one file inside a Docker volume, capped at VOLUME_FILE_MAX_BYTES (no server) */
  volume_get_file: VolumeFilePayload,
  /** a download ticket for one file inside a Docker volume (no server) */
  volume_file_download: VolumeFileDownloadPayload,
  /** an upload ticket for one file inside a Docker volume (no server) */
  volume_file_upload: VolumeFileUploadPayload,
  /** a directory inside a Docker volume (no server) */
  volume_create_directory: VolumeCreateDirectoryPayload,
  /** renames or moves one entry inside a Docker volume (no server) */
  volume_rename: VolumeRenamePayload,
  /** deletes entries of one directory inside a Docker volume (no server) */
  volume_delete_files: VolumeDeleteFilesPayload,
  /** run the install script again (the server is stopped first); progress as install_* events */
  reinstall_server: ReinstallServerPayload,
  /** archive the server's files into a backup on the node (an operation) */
  backup_create: BackupCreatePayload,
  /** one page of the server's backups, newest first */
  backup_list: BackupListPayload,
  backup_delete: BackupRefPayload,
  /** verify → stop → optionally delete the files → extract → start again if it ran (an operation) */
  backup_restore: BackupRestorePayload,
  /** a locked backup is kept by retention and cannot be deleted */
  backup_lock: BackupLockPayload,
  /** close SFTP sessions whose access was revoked (subuser removed, permissions, user, password) */
  sftp_revoke: SftpRevokePayload,
  /** one page of the mods in the template's mod folders, with their metadata */
  list_mods: ListModsPayload,
  /** the node's fenced servers (failover): never started here again; files kept aside */
  fence_servers: FenceServersPayload,
  /** create or update a compose stack from the Panel's plan (docs/contracts.md "Compose stacks") */
  stack_deploy: StackPlan,
  stack_stop: StackRefPayload,
  stack_start: StackRefPayload,
  /** its containers and networks; its volumes too with `volumes: true` */
  stack_remove: StackRemovePayload,
  /** every Compose project's containers on the node */
  stack_list: Empty,
  stack_inspect: StackRefPayload,
  /**
   * the node's container list from the Agent's cache (kept current from Docker's events):
   * `{ containers: [{ Id, Names, Image, ImageID, Command, Created, State, Status, Ports, Labels }],
   * syncedAt, truncated, total }`, newest first; `offset`/`limit`: one page of it (`total` counts all)
   */
  docker_containers: DockerContainersPayload,
  /** kick or ban a player through the server's console, by the template's `players.kick`/`ban` */
  player_action: PlayerActionPayload,
  /** the container's image digests against the registry's current one (issue 13 item 3) */
  image_check: ImageCheckPayload,
  /** pull → recreate → wait ready → roll back when not ready (an operation, issue 13 item 3) */
  image_update_server: ImageUpdatePayload,
} as const;
export type Action = keyof typeof actionPayloads;
export const Action = z.enum(Object.keys(actionPayloads) as [Action, ...Action[]]);
export type ActionPayload<A extends Action> = z.infer<(typeof actionPayloads)[A]>;
/** Actions that need a serverId (envelope `serverId`, or `payload.serverId` for create). */
export const serverActions: ReadonlySet<Action> = new Set<Action>([
  'create_server',
  'start_server',
  'stop_server',
  'restart_server',
  'kill_server',
  'delete_server',
  'get_status',
  'send_command',
  'update_server',
  'list_files',
  'get_file',
  'reinstall_server',
  'write_file',
  'backup_create',
  'backup_list',
  'backup_delete',
  'backup_restore',
  'backup_lock',
  'stat_file',
  'create_directory',
  'rename_file',
  'copy_file',
  'delete_files',
  'chmod_file',
  'search_files',
  'create_transfer',
  'backup_import',
  'file_compress',
  'file_decompress',
  'list_mods',
  'player_action',
  'image_check',
  'image_update_server',
  'transfer_push',
]);

/** The envelope of a command, before its payload is checked against its action. */
export const CommandEnvelope = z.object({
  ...base,
  type: z.literal('command'),
  action: z.string().min(1).max(64),
  payload: z.unknown().optional(),
  /**
   * Asks for seed 003's "Command Acknowledgment" of a long action (see OPERATION_ACTIONS): the
   * Agent answers at once `{ operationId, status: 'accepted' }` and reports the rest as
   * operation_progress / operation_completed events. Without it the answer waits for the end
   * (the Agent's own HTTP API and CLI); the events are sent either way, with the command id.
   */
  operationId: MessageId.optional(),
});
export type CommandEnvelope = z.infer<typeof CommandEnvelope>;

/** The actions that run as operations: acknowledged, then reported by events. */
export const OPERATION_ACTIONS: ReadonlySet<Action> = new Set<Action>([
  'create_server',
  'start_server',
  'stop_server',
  'restart_server',
  'kill_server',
  'reinstall_server',
  'update_server',
  'backup_create',
  'backup_restore',
  'file_compress',
  'file_decompress',
  'image_update_server',
  'transfer_push',
]);
/** The data of an acknowledgement. */
export const OperationAccepted = z.object({ operationId: MessageId, status: z.literal('accepted') });
export type OperationAccepted = z.infer<typeof OperationAccepted>;

export type Command<A extends Action = Action> = Omit<CommandEnvelope, 'action' | 'payload'> & {
  action: A;
  payload: ActionPayload<A>;
};

// ---------------------------------------------------------------------------------------------
// responses (Agent → Panel)

export const ResponseMessage = z.object({
  ...base,
  type: z.literal('response'),
  success: z.boolean(),
  message: z.string().optional(),
  data: z.unknown().optional(),
  error: z.object({ code: ErrorCode, message: z.string() }).optional(),
});
export type ResponseMessage = z.infer<typeof ResponseMessage>;

// response data shapes (seed 003 "Status Update", plus numeric fields)

// Numbers from the other end are bounded: finite and in a sane range, so that no average, sum or
// chart downstream can turn into NaN or Infinity (±1.7e308 once broke every metrics call).
/** percent of one core × cores: 1e5 = a thousand cores flat out */
export const CpuPercent = z.number().min(0).max(1e5);
/** a byte count or counter (exact as a double up to 2^53) */
export const ByteCount = z
  .number()
  .min(0)
  .max(2 ** 53);
/** a percentage; over 100 is possible (usage over a limit), absurd is not */
export const Percentage = z.number().min(0).max(1e4);
/** seconds (1e10 s ≈ 317 years) */
export const Seconds = z.number().min(0).max(1e10);

export const ResourceSnapshot = z.object({
  serverId: ServerId,
  /** percent of one core ×cores (200 = two full cores), as Wings' cpu_absolute */
  cpu: CpuPercent,
  memory: z.object({
    used: z.string().max(64),
    percentage: Percentage,
    usedBytes: ByteCount,
    limitBytes: ByteCount,
  }),
  network: z.object({ rx: ByteCount, tx: ByteCount }),
  disk: z.object({
    used: z.string().max(64),
    percentage: Percentage,
    usedBytes: ByteCount,
    limitBytes: ByteCount,
  }),
  /** seconds since the container started; 0 when not running */
  uptime: Seconds,
});
export type ResourceSnapshot = z.infer<typeof ResourceSnapshot>;

/** At most this many players are listed (a count can be higher). */
export const MAX_LISTED_PLAYERS = 256;
const PlayerCount = z.number().int().min(0).max(1e6);
/** get_status's `players`, as seed 003 shows it: names only. */
export const Players = z.object({
  online: PlayerCount,
  max: PlayerCount,
  list: z.array(z.string().max(64)).max(MAX_LISTED_PLAYERS),
});
/** One player in players_update: the name and what the query says of them. */
export const PlayerEntry = z.object({
  name: z.string().max(64),
  /** the game's id of the player (client slot, user id, Steam id) when its list gives one: digits */
  id: z
    .string()
    .regex(/^\d{1,20}$/)
    .optional(),
  score: z.number().int().min(-1e9).max(1e9).optional(),
  bot: z.boolean().optional(),
  spectator: z.boolean().optional(),
});
export type PlayerEntry = z.infer<typeof PlayerEntry>;

export const StatusData = z.object({
  serverId: ServerId,
  status: ServerStatus,
  containerId: z.string().nullable(),
  uptime: Seconds,
  resources: z.object({
    cpu: CpuPercent,
    memory: z.object({
      used: z.string().max(64),
      available: z.string().max(64),
      usedBytes: ByteCount,
      limitBytes: ByteCount,
    }),
    network: z.object({ tx: ByteCount, rx: ByteCount }),
  }),
  players: Players.optional(),
});
export type StatusData = z.infer<typeof StatusData>;

export const SystemInfo = z.object({
  hostname: z.string(),
  os: z.object({ id: z.string(), name: z.string(), version: z.string(), prettyName: z.string() }),
  kernel: z.string(),
  arch: z.string(),
  dockerVersion: z.string(),
  cpus: z.number().int().min(0).max(1e5),
  memory: z.object({ total: ByteCount, free: ByteCount }),
  disk: z.object({ path: z.string(), total: ByteCount, free: ByteCount }),
  agentVersion: z.string(),
  protocolVersion: z.number().int().min(0).max(1e6),
  /**
   * the image references present on the node (repo:tag, as the engine lists them; at most
   * SYSTEM_INFO_MAX_IMAGES): automatic placement prefers nodes that have a server's image.
   * Absent from older Agents (then unknown).
   */
  images: z.array(z.string().max(512)).max(2000).optional(),
  /**
   * whether the Agent's HTTP API serves transfer tickets to browsers (`/transfers/<ticket>`: it
   * runs with AGENT_API_KEY); absent (older Agents): not known, so the Panel relays
   */
  transfers: z.boolean().optional(),
});
export type SystemInfo = z.infer<typeof SystemInfo>;
/** At most this many image references in system_info. */
export const SYSTEM_INFO_MAX_IMAGES = 2000;

export const FileEntry = z.object({
  name: z.string(),
  type: z.enum(['file', 'directory', 'symlink', 'other']),
  size: z.number(),
  mode: z.string(),
  modifiedAt: z.string(),
});
export type FileEntry = z.infer<typeof FileEntry>;
/** A volume browser's entry: a symlink's `target` is the link's own text (never followed). */
export const VolumeFileEntry = FileEntry.extend({ target: z.string().optional() });
export type VolumeFileEntry = z.infer<typeof VolumeFileEntry>;
export const ListFilesData = z.object({
  path: z.string(),
  /** this page's entries, in order */
  entries: z.array(FileEntry),
  /** entries in the whole directory */
  total: z.number().int().nonnegative(),
  offset: z.number().int().nonnegative(),
  limit: z.number().int().positive(),
});
export const VolumeListFilesData = ListFilesData.extend({ entries: z.array(VolumeFileEntry) });
export const WriteFileData = z.object({
  path: z.string(),
  size: z.number(),
  sha256: Sha256Hex.optional(),
  modifiedAt: z.string().optional(),
});
export const GetFileData = z.object({
  path: z.string(),
  size: z.number(),
  encoding: z.enum(['utf8', 'base64']),
  content: z.string(),
  /** of the bytes read: give it back as write_file's expectedSha256 */
  sha256: Sha256Hex.optional(),
  modifiedAt: z.string().optional(),
});
/** stat_file: one entry, with its path from the root. */
export const StatFileData = FileEntry.extend({ path: z.string() });
/** search_files: matches in walk order; `truncated` when a cap stopped the walk. */
export const SearchFilesData = z.object({
  matches: z.array(StatFileData),
  truncated: z.boolean(),
});
/** delete_files / create_directory / rename_file / copy_file / chmod_file. */
export const FileChangeData = z.object({ paths: z.array(z.string()) });

// ---------------------------------------------------------------------------------------------
// events (Agent → Panel)

export const LogLevel = z.enum(['DEBUG', 'INFO', 'WARN', 'ERROR']);
export const UpdateStage = z.enum([
  'validating',
  'stopping',
  'recreating',
  'starting',
  'waiting_ready',
  'done',
  'failed',
]);
export type UpdateStage = z.infer<typeof UpdateStage>;

/**
 * The console lines' numbering on the link (optional, an addition to the seed's `server_log`):
 * `seq` is the number of the last line the message carries (or accounts for, in
 * `server_log_dropped`), counted per server from 1 within one `epoch` (one Agent process). The
 * lines of a message are numbered `seq - lines + 1 … seq`. The Panel drops lines it had already
 * (a number it passed) and reports a gap (lines lost in transit, e.g. written into a dead socket)
 * as dropped with its exact count; a new epoch starts the count afresh.
 */
export const LinkSeq = z.object({
  seq: z.number().int().positive().max(Number.MAX_SAFE_INTEGER).optional(),
  epoch: z.string().min(1).max(64).optional(),
});

export const eventData = {
  server_status_changed: z.object({
    serverId: ServerId,
    previousStatus: ServerStatus,
    currentStatus: ServerStatus,
    pid: z.number().optional(),
    reason: z.string().optional(),
  }),
  server_log: z.object({
    serverId: ServerId,
    logLevel: LogLevel.optional(),
    message: z.string(),
    stream: z.enum(['stdout', 'stderr', 'daemon']).optional(),
    ...LinkSeq.shape,
  }),
  /** lines not delivered: throttled (too fast), lost while the Panel was away, or over the
   * Panel's own safety budget (`overloaded`, made by the Panel, never sent by an Agent) */
  server_log_dropped: z.object({
    serverId: ServerId,
    count: z.number().int().positive(),
    reason: z.enum(['throttled', 'disconnected', 'overloaded']),
    ...LinkSeq.shape,
  }),
  resource_update: ResourceSnapshot,
  server_crashed: z.object({
    serverId: ServerId,
    exitCode: z.number().int(),
    oomKilled: z.boolean(),
    /** whether the Agent will restart it (false when the last crash was too recent) */
    restarting: z.boolean(),
    reason: z.string().optional(),
  }),
  server_update_progress: z.object({
    serverId: ServerId,
    stage: UpdateStage,
    message: z.string().optional(),
  }),
  /** sent when the count or the list changed, and once after every (re)connection of the link */
  players_update: z.object({
    serverId: ServerId,
    online: PlayerCount,
    max: PlayerCount,
    list: z.array(PlayerEntry).max(MAX_LISTED_PLAYERS),
  }),
  /** a change of the server's remote console connection (see RemoteConsoleState) */
  remote_console_state: z.object({
    serverId: ServerId,
    transport: RemoteConsoleTransport,
    state: RemoteConsoleState,
    message: z.string().max(1024).optional(),
  }),
  install_output: z.object({ serverId: ServerId, message: z.string() }),
  install_completed: z.object({
    serverId: ServerId,
    success: z.boolean(),
    exitCode: z.number().int().optional(),
  }),
  /** a step of an accepted operation (stage names are the action's: stopping, killing, starting…) */
  operation_progress: z.object({
    operationId: MessageId,
    serverId: ServerId,
    stage: z.string().min(1).max(64),
    message: z.string().max(4096).optional(),
  }),
  /** the end of an accepted operation; never dropped, held while the Panel is away */
  operation_completed: z.object({
    operationId: MessageId,
    serverId: ServerId,
    action: Action,
    success: z.boolean(),
    error: z.object({ code: ErrorCode, message: z.string() }).optional(),
    /** what the action answered when it succeeded (as its answer without operationId) */
    data: z.unknown().optional(),
  }),
  /** the layers of an image update's pull so far (throttled; issue 13 item 3) */
  image_pull_progress: z.object({
    operationId: MessageId,
    serverId: ServerId,
    layers: z.array(PullLayer).max(MAX_PULL_LAYERS),
    done: z.boolean(),
  }),
  /** first message on every (re)connection: who I am and what runs here */
  agent_hello: z.object({
    protocolVersion: z.number().int(),
    agentVersion: z.string(),
    servers: z.array(
      z.object({ serverId: ServerId, status: ServerStatus, containerId: z.string().nullable() }),
    ),
    /** the operations running now (their ends follow as operation_completed) */
    operations: z.array(z.object({ operationId: MessageId, serverId: ServerId, action: Action })).optional(),
  }),
} as const;
export type EventName = keyof typeof eventData;
export const EventName = z.enum(Object.keys(eventData) as [EventName, ...EventName[]]);
export type EventData<E extends EventName> = z.infer<(typeof eventData)[E]>;

export const EventEnvelope = z.object({
  ...base,
  id: MessageId.optional(),
  type: z.literal('event'),
  event: z.string().min(1).max(64),
  data: z.unknown(),
});
export type EventMessage<E extends EventName = EventName> = Omit<
  z.infer<typeof EventEnvelope>,
  'event' | 'data'
> & {
  event: E;
  data: EventData<E>;
};

// ---------------------------------------------------------------------------------------------
// heartbeat

/**
 * A heartbeat; `consoleAcks` (LinkSeq per server): the last console line the Panel has stored
 * (its mark, ConsoleMarks) and published, so the Agent may forget it and those before it. Lines
 * not acked are sent again after any reconnect; the Panel skips those it knows it published by
 * their numbers, and publishes again (flagged `resent`) those it may not have.
 */
export const ConsoleAck = z.object({
  serverId: ServerId,
  epoch: z.string().min(1).max(64),
  seq: z.number().int().positive().max(Number.MAX_SAFE_INTEGER),
});
export type ConsoleAck = z.infer<typeof ConsoleAck>;
/** operation ends acked in one ping at most (a Panel with more acks the rest with the next) */
export const MAX_OPERATION_ACKS = 1000;
/**
 * `operationAcks`: the operations whose end (`operation_completed`) the Panel has stored since
 * the last ping (or found already stored: a repeat is harmless), so the Agent may forget them.
 * A Panel that acks ends sends the field on every ping, empty or not; an Agent that never sees it
 * (an older Panel) keeps only a few ends for a resend after a reconnect (see the Agent's link).
 */
export const PingMessage = z.object({
  id: MessageId,
  type: z.literal('ping'),
  timestamp: Timestamp,
  consoleAcks: z.array(ConsoleAck).max(10_000).optional(),
  operationAcks: z.array(MessageId).max(MAX_OPERATION_ACKS).optional(),
});
export type PingMessage = z.infer<typeof PingMessage>;
export const PongMessage = z.object({
  id: MessageId,
  type: z.literal('pong'),
  timestamp: Timestamp,
  data: z.object({
    agentStatus: z.enum(['healthy', 'degraded']),
    activeServers: z.number().int().nonnegative(),
    /** percentages (0–100 in practice) */
    systemLoad: z.object({ cpu: Percentage, memory: Percentage, disk: Percentage }),
    /**
     * the Docker Engine as the Agent sees it (issue 16 item 4): its ping now, and the answers it
     * failed with DOCKER_ERROR since the Agent started. Absent from older Agents.
     */
    docker: z
      .object({
        reachable: z.boolean(),
        version: z.string().max(64).nullable(),
        errors: z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER),
      })
      .optional(),
  }),
});
export type PongMessage = z.infer<typeof PongMessage>;

// ---------------------------------------------------------------------------------------------
// registration (REST, seed 003)

export const RegisterRequest = z.object({
  name: z.string().min(1).max(191),
  hostname: z.string().min(1).max(255),
  port: z.number().int().min(0).max(65535),
  capabilities: z.object({
    maxMemory: z.string().max(32),
    maxCpuCores: z.number().int().positive(),
    dockerVersion: z.string().max(64),
    supportedArchitectures: z.array(z.string().max(32)).max(16),
  }),
  protocolVersion: z.number().int().optional(),
});
export type RegisterRequest = z.infer<typeof RegisterRequest>;

/**
 * An Agent asks the Panel whether an SFTP login may open a server (`POST /api/agents/sftp/auth`,
 * `Authorization: Bearer <agent JWT>`): `username` is `<panel username>.<server id>`; exactly one
 * of `password` or `publicKey` (OpenSSH one-line form, `ssh-ed25519 AAAA…`, its signature already
 * verified by the Agent); `ip` is the SFTP client's address (rate limits).
 */
export const SftpAuthRequest = z
  .object({
    username: z.string().min(3).max(255),
    ip: z.string().min(1).max(64),
    password: z.string().min(1).max(1024).optional(),
    publicKey: z
      .string()
      .min(1)
      .max(16 * 1024)
      .optional(),
  })
  .refine((b) => (b.password === undefined) !== (b.publicKey === undefined), {
    message: 'exactly one of password or publicKey',
  });
export type SftpAuthRequest = z.infer<typeof SftpAuthRequest>;
/** Who logged in, on which server, holding which per-server permissions (`file.*`…). */
export const SftpAuthResponse = z.object({
  userId: z.string().min(1).max(64),
  serverId: z.string().min(1).max(64),
  permissions: z.array(z.string().min(1).max(64)).max(200),
});
export type SftpAuthResponse = z.infer<typeof SftpAuthResponse>;

export const AgentCredentials = z.object({
  id: z.string(),
  token: z.string(),
  websocketUrl: z.string(),
  refreshToken: z.string(),
  /** ISO time the token stops being accepted */
  expiresAt: z.string().optional(),
});
export type AgentCredentials = z.infer<typeof AgentCredentials>;
export const RegisterResponse = z.object({ success: z.literal(true), agent: AgentCredentials });
export type RegisterResponse = z.infer<typeof RegisterResponse>;
export const RefreshRequest = z.object({ refreshToken: z.string().min(1).max(512) });

// ---------------------------------------------------------------------------------------------
// parsing with codes

export type AgentInbound = Command | PingMessage;
export type PanelInbound = ResponseMessage | EventMessage | PongMessage;

export type ParseResult<T> =
  | { ok: true; message: T }
  | { ok: false; code: ErrorCode; message: string; id?: string; serverId?: string };

/** An own field of a JSON object (never one inherited from Object.prototype), else undefined. */
function own(raw: unknown, key: string): unknown {
  return raw && typeof raw === 'object' && !Array.isArray(raw) && Object.hasOwn(raw, key)
    ? (raw as Record<string, unknown>)[key]
    : undefined;
}

/** The id of a message that failed to parse, when it is a usable id (an answer echoes it). */
function idOf(raw: unknown): string | undefined {
  const id = own(raw, 'id');
  return MessageId.safeParse(id).success ? (id as string) : undefined;
}

/** Action names → payload schemas, looked up as a Map: no name is "found" on a prototype. */
const ACTION_SCHEMAS: ReadonlyMap<string, z.ZodType> = new Map(Object.entries(actionPayloads));
const EVENT_SCHEMAS: ReadonlyMap<string, z.ZodType> = new Map(Object.entries(eventData));

export function isAction(name: string): name is Action {
  return ACTION_SCHEMAS.has(name);
}
export function isEventName(name: string): name is EventName {
  return EVENT_SCHEMAS.has(name);
}

function decode(
  raw: string | Buffer | unknown,
): { ok: true; value: unknown } | { ok: false; message: string } {
  if (typeof raw !== 'string' && !Buffer.isBuffer(raw)) return { ok: true, value: raw };
  try {
    return { ok: true, value: JSON.parse(raw.toString()) };
  } catch (e) {
    return { ok: false, message: `not JSON: ${(e as Error).message}` };
  }
}

function issues(err: z.ZodError): string {
  return err.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ');
}

/** A message whose whole shape is one schema (ping, pong, response); a failure keeps the id if any. */
function parseWhole<T>(schema: z.ZodType<T>, v: unknown): ParseResult<T> {
  const r = schema.safeParse(v);
  return r.success
    ? { ok: true, message: r.data }
    : { ok: false, code: 'INVALID_MESSAGE', message: issues(r.error), id: idOf(v) };
}

/** Parse what the Agent receives: a command (payload checked against its action) or a ping. */
export function parseAgentInbound(raw: string | Buffer | unknown): ParseResult<AgentInbound> {
  const d = decode(raw);
  if (!d.ok) return { ok: false, code: 'INVALID_MESSAGE', message: d.message };
  const v = d.value;
  const type = own(v, 'type');
  if (type === 'ping') {
    return parseWhole(PingMessage, v);
  }
  if (type !== 'command') {
    return {
      ok: false,
      code: 'INVALID_MESSAGE',
      message: `unexpected type ${typeof type === 'string' ? type.slice(0, 64) : typeof type}`,
      id: idOf(v),
    };
  }
  const env = CommandEnvelope.safeParse(v);
  if (!env.success) return { ok: false, code: 'INVALID_MESSAGE', message: issues(env.error), id: idOf(v) };
  const action = env.data.action;
  const schema = ACTION_SCHEMAS.get(action);
  if (!schema) {
    return { ok: false, code: 'UNKNOWN_ACTION', message: `unknown action ${action}`, id: env.data.id };
  }
  const payload = schema.safeParse(env.data.payload ?? {});
  if (!payload.success) {
    return { ok: false, code: 'CONFIG_INVALID', message: issues(payload.error), id: env.data.id };
  }
  const message = { ...env.data, action: action as Action, payload: payload.data } as Command;
  if (serverActions.has(message.action) && !serverIdOf(message)) {
    return { ok: false, code: 'CONFIG_INVALID', message: `${action} needs a serverId`, id: env.data.id };
  }
  return { ok: true, message };
}

/** The server a command targets: the envelope's serverId, or payload.serverId (create_server). */
export function serverIdOf(cmd: Command): string | undefined {
  if (cmd.serverId) return cmd.serverId;
  const p = cmd.payload as { serverId?: unknown };
  return typeof p?.serverId === 'string' ? p.serverId : undefined;
}

/** Parse what the Panel receives from an Agent: response, event (data checked) or pong. */
export function parsePanelInbound(raw: string | Buffer | unknown): ParseResult<PanelInbound> {
  const d = decode(raw);
  if (!d.ok) return { ok: false, code: 'INVALID_MESSAGE', message: d.message };
  const v = d.value;
  const type = own(v, 'type');
  if (type === 'response') {
    return parseWhole(ResponseMessage, v);
  }
  if (type === 'pong') {
    return parseWhole(PongMessage, v);
  }
  if (type === 'event') {
    // the two per-second events' envelope: a hand-written check (fast-events.ts) before zod's
    // (whose ISO datetime regex ran on every message); zod decides what it does not accept
    const hot = fastEventData(String(own(v, 'event'))) ? fastEventEnvelope(v) : undefined;
    const env = hot
      ? { success: true as const, data: hot as z.infer<typeof EventEnvelope> }
      : EventEnvelope.safeParse(v);
    if (!env.success) return { ok: false, code: 'INVALID_MESSAGE', message: issues(env.error), id: idOf(v) };
    const name = env.data.event;
    const schema = EVENT_SCHEMAS.get(name);
    if (!schema) return { ok: false, code: 'INVALID_MESSAGE', message: `unknown event ${name}` };
    // the two per-second events: a hand-written check first (fast-events.ts); zod decides otherwise
    const fast = fastEventData(name)?.(env.data.data);
    if (fast)
      return { ok: true, message: { ...env.data, event: name as EventName, data: fast } as EventMessage };
    const data = schema.safeParse(env.data.data);
    if (!data.success)
      return { ok: false, code: 'INVALID_MESSAGE', message: `${name}: ${issues(data.error)}` };
    return { ok: true, message: { ...env.data, event: name as EventName, data: data.data } as EventMessage };
  }
  return {
    ok: false,
    code: 'INVALID_MESSAGE',
    message: `unexpected type ${typeof type === 'string' ? type.slice(0, 64) : typeof type}`,
    id: idOf(v),
  };
}

// ---------------------------------------------------------------------------------------------
// builders

let seq = 0;
export function newMessageId(prefix = 'msg'): string {
  seq = (seq + 1) % 1_000_000_000;
  return `${prefix}_${Date.now().toString(36)}_${seq.toString(36)}_${Math.random().toString(36).slice(2, 8)}`;
}
const now = () => new Date().toISOString();

export function command<A extends Action>(
  action: A,
  payload: ActionPayload<A>,
  opts: { serverId?: string; agentId?: string; id?: string } = {},
): Command<A> {
  return {
    id: opts.id ?? newMessageId('cmd'),
    type: 'command',
    timestamp: now(),
    ...(opts.agentId ? { agentId: opts.agentId } : {}),
    ...(opts.serverId ? { serverId: opts.serverId } : {}),
    action,
    payload,
  };
}

export function okResponse(id: string, data?: unknown, message?: string): ResponseMessage {
  return {
    id,
    type: 'response',
    timestamp: now(),
    success: true,
    ...(message ? { message } : {}),
    ...(data === undefined ? {} : { data }),
  };
}

export function errorResponse(id: string, code: ErrorCode, message: string): ResponseMessage {
  return { id, type: 'response', timestamp: now(), success: false, error: { code, message } };
}

export function event<E extends EventName>(name: E, data: EventData<E>, agentId?: string): EventMessage<E> {
  return {
    type: 'event',
    id: newMessageId('evt'),
    timestamp: now(),
    ...(agentId ? { agentId } : {}),
    event: name,
    data,
  };
}
