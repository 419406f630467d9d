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

  /**
   * The stored credentials, if they were issued by this Panel for this node. A file that is
   * there but unusable is reported through `unusable` (what is wrong with it), never silently
   * replaced; no file at all is the first start and says nothing.
   */
  async load(unusable: (problem: string) => void = () => undefined): Promise<AgentCredentials | null> {
    let text: string;
    try {
      text = await readFile(this.file, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') unusable(`cannot read it: ${(e as Error).message}`);
      return null;
    }
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch (e) {
      // not the parser's message: it quotes the text, and the text may hold a token
      const at = /position (\d+)/.exec((e as Error).message)?.[1];
      unusable(`not JSON${at ? ` (error at position ${at})` : ''}`);
      return null;
    }
    const r = Stored.safeParse(json);
    if (!r.success) {
      const fields = r.error.issues.map((i) => `${i.path.join('.') || '(root)'} ${i.message}`).join('; ');
      unusable(`invalid field: ${fields}`);
      return null;
    }
    if (r.data.panelUrl !== this.#panelUrl) {
      unusable(`issued by a different panel (${r.data.panelUrl}, this agent uses ${this.#panelUrl})`);
      return null;
    }
    if (r.data.nodeId !== this.#nodeId) {
      unusable(`issued for a different node (${r.data.nodeId}, this agent is ${this.#nodeId})`);
      return null;
    }
    return r.data.agent;
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
