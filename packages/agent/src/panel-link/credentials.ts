/** The Agent's Panel credentials, kept in `<dataDir>/credentials.json` (mode 0600). */
import { chmod, mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { AgentCredentials } from '@cap/protocol';
import { z } from 'zod';

const Stored = z.object({ panelUrl: z.string(), nodeId: z.string(), agent: AgentCredentials });

export class CredentialStore {
  readonly file: string;
  readonly #panelUrl: string;
  readonly #nodeId: string;

  constructor(dataDir: string, panelUrl: string, nodeId: string) {
    this.file = path.resolve(dataDir, 'credentials.json');
    this.#panelUrl = panelUrl;
    this.#nodeId = nodeId;
  }

  /** The stored credentials, if they were issued by this Panel for this node. */
  async load(): Promise<AgentCredentials | null> {
    try {
      const s = Stored.parse(JSON.parse(await readFile(this.file, 'utf8')));
      if (s.panelUrl !== this.#panelUrl || s.nodeId !== this.#nodeId) return null;
      return s.agent;
    } catch {
      return null;
    }
  }

  async save(agent: AgentCredentials): Promise<void> {
    await mkdir(path.dirname(this.file), { recursive: true, mode: 0o700 });
    const tmp = `${this.file}.tmp`;
    await writeFile(tmp, JSON.stringify({ panelUrl: this.#panelUrl, nodeId: this.#nodeId, agent }, null, 2), {
      mode: 0o600,
    });
    await chmod(tmp, 0o600);
    await rename(tmp, this.file);
  }

  async clear(): Promise<void> {
    await rm(this.file, { force: true });
  }
}
