/**
 * The Docker Engine behind the server environment interface (../environment.ts): container specs
 * from the egg, the Agent's own network, cgroup readings with the Engine's stats as a fallback.
 */
import type { EggConfig, RegistryAuthConfig, Signal } from '@cap/protocol';
import type { AgentConfig } from '../../config/config.ts';
import { CgroupStats } from '../cgroup-stats.ts';
import type { Environment, InstanceState, NodeInstance, UsageReader, UsageSample } from '../environment.ts';
import { firstTakenPort } from '../host-ports.ts';
import {
  containerName,
  containerSpec,
  hostBindings,
  installerName,
  installerSpec,
} from './container-spec.ts';
import type { DockerEnvironment } from './docker.ts';

type Config = Pick<
  AgentConfig,
  'nodeId' | 'dockerNetwork' | 'bindIp' | 'timezone' | 'containerUid' | 'containerGid'
> &
  Partial<Pick<AgentConfig, 'containerPrefix'>>;

export class DockerServerEnvironment implements Environment {
  readonly engine: DockerEnvironment;
  readonly #config: Config;

  constructor(engine: DockerEnvironment, config: Config) {
    this.engine = engine;
    this.#config = config;
  }

  version(): Promise<string> {
    return this.engine.version();
  }

  get images(): DockerEnvironment {
    return this.engine;
  }

  imageTags(): Promise<string[]> {
    return this.engine.imageTags();
  }

  async listServers(): Promise<NodeInstance[]> {
    const list = await this.engine.listManaged(this.#config.nodeId);
    return list.map((c) => ({
      id: c.id,
      serverId: c.serverId,
      running: c.running,
      staged: c.name === `${containerName(c.serverId, this.#config.containerPrefix)}-next`,
    }));
  }

  async listInstallers(): Promise<NodeInstance[]> {
    const list = await this.engine.listInstallers(this.#config.nodeId);
    return list.map((c) => ({ id: c.id, serverId: c.serverId, running: c.running, staged: false }));
  }

  async pullImage(image: string, auth: RegistryAuthConfig): Promise<void> {
    if (!(await this.engine.hasImage(image))) await this.engine.pull(image, auth);
  }

  async create(
    serverId: string,
    egg: EggConfig,
    dir: string,
    opts: { staged?: boolean } = {},
  ): Promise<string> {
    const config = this.#config;
    const entrypoint = await this.engine.imageEntrypoint(egg.image);
    const network = await this.engine.serversNetwork(config.dockerNetwork);
    const spec = containerSpec({
      network: network.name,
      serverId,
      namePrefix: config.containerPrefix,
      nodeId: config.nodeId,
      egg,
      serverDir: dir,
      imageEntrypoint: entrypoint,
      bindIp: config.bindIp,
      timezone: config.timezone,
      user: `${config.containerUid}:${config.containerGid}`,
    });
    return this.engine.create(
      opts.staged ? { ...spec, name: `${containerName(serverId, this.#config.containerPrefix)}-next` } : spec,
    );
  }

  promote(serverId: string, id: string): Promise<void> {
    return this.engine.rename(id, containerName(serverId, this.#config.containerPrefix));
  }

  removeStaged(serverId: string): Promise<void> {
    // (the Agent's boot removes a leftover of this name too: see ServerManager.init)
    return this.engine.remove(`${containerName(serverId, this.#config.containerPrefix)}-next`);
  }

  find(serverId: string): Promise<InstanceState | null> {
    return this.engine.inspect(containerName(serverId, this.#config.containerPrefix));
  }

  inspect(id: string): Promise<InstanceState | null> {
    return this.engine.inspect(id);
  }

  start(id: string): Promise<void> {
    return this.engine.start(id);
  }

  signal(id: string, signal: Signal | 'SIGKILL'): Promise<void> {
    return this.engine.kill(id, signal);
  }

  wait(id: string, abort?: AbortSignal): Promise<number> {
    return this.engine.wait(id, abort);
  }

  attach(id: string) {
    return this.engine.attach(id);
  }

  consoleLog(id: string, sinceMs: number) {
    return this.engine.consoleLog(id, sinceMs);
  }

  remove(id: string): Promise<void> {
    return this.engine.remove(id);
  }

  removeServer(serverId: string, id: string | null): Promise<void> {
    return this.engine.remove(id ?? containerName(serverId, this.#config.containerPrefix));
  }

  /** cgroup files (a few small reads per tick); one-shot Engine stats while those are not readable. */
  async usage(instance: { id: string; pid: number }): Promise<UsageReader> {
    let cgroup: CgroupStats | null = null;
    let closed = false;
    const engine = this.engine;
    return {
      async sample(): Promise<UsageSample | null> {
        if (closed) return null;
        if (!cgroup) {
          const opened = await CgroupStats.open(instance.pid, instance.id);
          if (closed) {
            opened?.close();
            return null;
          }
          cgroup = opened;
        }
        if (cgroup) return cgroup.sample();
        const s = await engine.statsOnce(instance.id);
        if (!s) return null;
        return {
          cpuNs: s.cpuTotalNs,
          memoryUsed: s.memoryUsed,
          memoryLimit: s.memoryLimit,
          rx: s.rx,
          tx: s.tx,
        };
      },
      close() {
        closed = true;
        cgroup?.close();
        cgroup = null;
      },
    };
  }

  async createInstaller(serverId: string, egg: EggConfig, dir: string, scriptDir: string): Promise<string> {
    const install = egg.install;
    if (!install) throw new Error('the egg has no install');
    const config = this.#config;
    await this.engine.remove(installerName(serverId, this.#config.containerPrefix)); // a leftover from a crash
    await this.engine.imageEntrypoint(install.container); // pulled here when missing
    const network = await this.engine.serversNetwork(config.dockerNetwork);
    return this.engine.create(
      installerSpec({
        network: network.name,
        serverId,
        namePrefix: config.containerPrefix,
        nodeId: config.nodeId,
        egg,
        serverDir: dir,
        scriptDir,
        bindIp: config.bindIp,
        timezone: config.timezone,
      }),
    );
  }

  logs(id: string, opts: { tail?: number } = {}) {
    return this.engine.follow(id, opts);
  }

  hostGateway(): Promise<string | undefined> {
    return this.engine.bridgeGateway();
  }

  /** Host ports `next` adds (the running container holds the ones `current` has, on whatever address). */
  takenPort(next: EggConfig, current?: EggConfig) {
    const { bindIp } = this.#config;
    const held = new Set(
      (current ? hostBindings(current, bindIp) : []).map((b) => `${b.hostPort}|${b.proto}`),
    );
    return firstTakenPort(hostBindings(next, bindIp).filter((b) => !held.has(`${b.hostPort}|${b.proto}`)));
  }
}
