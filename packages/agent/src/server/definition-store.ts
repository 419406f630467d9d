/**
 * A server's persisted definition (`<serversDir>/<id>.json`: egg, install state, last status;
 * Wings' states.json, kept per server), written whole to a temp file and renamed over, one write
 * after the other, so an older snapshot never lands after a newer one.
 */
import { readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { CreateServerPayload, type EggConfig, ServerStatus } from '@cap/protocol';
import type { Logger } from 'pino';

/** Where the last install left the server; persisted, so an Agent restart keeps `install_failed`. */
export type InstallState = 'none' | 'running' | 'done' | 'failed';

export interface StoredDefinition {
  serverId: string;
  egg: EggConfig;
  installState: InstallState;
  lastState: ServerStatus | undefined;
}

/** Every readable definition in `serversDir` (an unreadable one is logged and skipped). */
export async function loadDefinitions(serversDir: string, log: Logger): Promise<StoredDefinition[]> {
  const out: StoredDefinition[] = [];
  for (const f of await readdir(serversDir)) {
    if (!f.endsWith('.json')) continue;
    try {
      const raw = JSON.parse(await readFile(path.join(serversDir, f), 'utf8'));
      const def = CreateServerPayload.parse(raw);
      const state = (raw as { installState?: unknown }).installState;
      const installState: InstallState =
        state === 'running' || state === 'done' || state === 'failed' ? state : 'none';
      const last = ServerStatus.safeParse((raw as { lastState?: unknown }).lastState);
      out.push({
        serverId: def.serverId,
        egg: def.eggConfig,
        installState,
        lastState: last.success ? last.data : undefined,
      });
    } catch (e) {
      log.error({ err: e, file: f }, 'unreadable server definition, skipped');
    }
  }
  return out;
}

export class DefinitionStore {
  readonly #file: string;
  readonly #snapshot: () => {
    serverId: string;
    eggConfig: EggConfig;
    installState: InstallState;
    lastState: ServerStatus;
  };
  #writes: Promise<void> = Promise.resolve();
  #discarded = false;
  /** the status last written (what an Agent restart will read) */
  persistedState: ServerStatus | undefined;

  constructor(
    serversDir: string,
    serverId: string,
    snapshot: () => {
      serverId: string;
      eggConfig: EggConfig;
      installState: InstallState;
      lastState: ServerStatus;
    },
    persistedState?: ServerStatus,
  ) {
    this.#file = path.join(serversDir, `${serverId}.json`);
    this.#snapshot = snapshot;
    this.persistedState = persistedState;
  }

  /** Queues a write of the definition as it is when the write runs. */
  persist(): Promise<void> {
    const write = async () => {
      if (this.#discarded) return; // a late status change must not bring a deleted definition back
      const snap = this.#snapshot();
      const tmp = `${this.#file}.tmp`;
      await writeFile(tmp, JSON.stringify(snap, null, 2), { mode: 0o600 });
      await rename(tmp, this.#file);
      this.persistedState = snap.lastState;
    };
    const next = this.#writes.then(write);
    this.#writes = next.catch(() => undefined);
    return next;
  }

  /** Resolves once the writes queued so far are on disk. */
  flushed(): Promise<void> {
    return this.#writes;
  }

  /** No write from now on (the server is being deleted, or its create failed). */
  close(): void {
    this.#discarded = true;
  }

  /** After `close`: waits for the writes in flight, then removes the file (and a temp one). */
  async remove(): Promise<void> {
    this.#discarded = true;
    await this.#writes;
    await rm(this.#file, { force: true });
    await rm(`${this.#file}.tmp`, { force: true });
  }
}
