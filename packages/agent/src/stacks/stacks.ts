/**
 * Compose stacks on this node (issue 11; docs/contracts.md "Compose stacks"): the Panel's plan
 * (packages/protocol/src/compose.ts made it from the compose file, and the Panel's Docker policy
 * read exactly its bodies) carried out against the Docker Engine API. Containers, networks and
 * volumes carry Compose's labels, so other Compose tools recognise the project.
 *
 * Deploy: networks and volumes first (made when missing), then the services in dependency order;
 * a service whose config hash is the running container's is left alone (started if it was
 * stopped), a changed one is recreated: the new container is made under the name while the old
 * one, renamed aside, keeps running until the new one is ready to start; when anything about the
 * new one fails, it is removed and the old one gets its name back and keeps running (a new
 * service's container that failed to start stays, created, as Compose leaves it). The first
 * failure stops the deploy there and is reported with the service's name; services already done
 * stay as they are. Services no longer in the file are removed once the rest succeeded.
 */
import {
  COMPOSE_LABELS,
  CodedError,
  type StackContainer,
  type StackDeployResult,
  type StackPlan,
  type StackServicePlan,
} from '@cap/protocol';
import Docker from 'dockerode';
import { dockerOptions } from '../environment/docker/docker.ts';

type Info = Docker.ContainerInfo;

const message = (e: unknown) => {
  const x = e as { json?: { message?: string }; message?: string };
  return String(x.json?.message ?? x.message ?? e).slice(0, 4000);
};
const status = (e: unknown) => (e as { statusCode?: number }).statusCode;

export class StackRunner {
  readonly #docker: Docker;
  constructor(dockerHost: string | undefined) {
    this.#docker = new Docker(dockerOptions(dockerHost));
  }

  async #containers(project?: string): Promise<Info[]> {
    return this.#docker.listContainers({
      all: true,
      filters: JSON.stringify({
        label: [project === undefined ? COMPOSE_LABELS.project : `${COMPOSE_LABELS.project}=${project}`],
      }),
    });
  }

  static #view(c: Info): StackContainer {
    return {
      service: c.Labels[COMPOSE_LABELS.service] ?? '',
      id: c.Id,
      name: (c.Names[0] ?? '').replace(/^\//, ''),
      image: c.Image,
      state: c.State,
      status: c.Status,
      hash: c.Labels[COMPOSE_LABELS.hash] ?? null,
    };
  }

  async list(): Promise<{ name: string; containers: StackContainer[] }[]> {
    const by = new Map<string, StackContainer[]>();
    for (const c of await this.#containers()) {
      const p = c.Labels[COMPOSE_LABELS.project] ?? '';
      const list = by.get(p) ?? [];
      list.push(StackRunner.#view(c));
      by.set(p, list);
    }
    return [...by.entries()]
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([name, containers]) => ({
        name,
        containers: containers.sort((a, b) => a.service.localeCompare(b.service)),
      }));
  }

  async inspect(project: string): Promise<{ name: string; containers: StackContainer[] }> {
    const containers = (await this.#containers(project))
      .map((c) => StackRunner.#view(c))
      .sort((a, b) => a.service.localeCompare(b.service));
    return { name: project, containers };
  }

  async #ensure(kind: 'network' | 'volume', o: StackPlan['networks'][number]): Promise<void> {
    const exists =
      kind === 'network'
        ? await this.#docker
            .getNetwork(o.name)
            .inspect()
            .then(
              () => true,
              (e) => (status(e) === 404 ? false : Promise.reject(e)),
            )
        : await this.#docker
            .getVolume(o.name)
            .inspect()
            .then(
              () => true,
              (e) => (status(e) === 404 ? false : Promise.reject(e)),
            );
    if (exists) return;
    if (o.external) throw new CodedError('NOT_FOUND', `the external ${kind} "${o.name}" does not exist`);
    if (kind === 'network')
      await this.#docker.createNetwork(o.create as unknown as Docker.NetworkCreateOptions);
    else await this.#docker.createVolume(o.create as unknown as Docker.VolumeCreateOptions);
  }

  async #create(s: StackServicePlan): Promise<Docker.Container> {
    const opts = { ...s.create, name: s.container } as Docker.ContainerCreateOptions;
    const c = await this.#docker.createContainer(opts).catch(async (e) => {
      if (status(e) !== 404 || !/no such image/i.test(message(e))) throw e;
      // Compose pulls a missing image (anonymously here; registries with credentials: pull first)
      const stream = await this.#docker.pull(String(s.create.Image));
      await new Promise<void>((resolve, reject) =>
        this.#docker.modem.followProgress(stream, (err: Error | null) => (err ? reject(err) : resolve())),
      );
      return this.#docker.createContainer(opts);
    });
    try {
      for (const n of s.connect)
        await this.#docker
          .getNetwork(n.name)
          .connect({ Container: c.id, EndpointConfig: { Aliases: n.aliases } });
    } catch (e) {
      await c.remove({ force: true }).catch(() => undefined);
      throw e;
    }
    return c;
  }

  /** One service: left alone, started, created or recreated (the old kept until the new runs). */
  async #service(s: StackServicePlan, existing: Info[]): Promise<StackDeployResult['services'][number]> {
    const same = existing.find((c) => c.Labels[COMPOSE_LABELS.hash] === s.hash);
    if (same && existing.length === 1) {
      if (same.State === 'running') return { service: s.name, action: 'unchanged', containerId: same.Id };
      await this.#docker.getContainer(same.Id).start();
      return { service: s.name, action: 'started', containerId: same.Id };
    }
    const old = existing.map((c) => this.#docker.getContainer(c.Id));
    const aside = existing.map((c) => `${s.container}-old-${c.Id.slice(0, 12)}`);
    const wasRunning = existing.map((c) => c.State === 'running');
    for (const [i, c] of old.entries()) await c.rename({ name: aside[i] as string });
    let fresh: Docker.Container | undefined;
    try {
      fresh = await this.#create(s);
      for (const c of old)
        await c.stop({ t: 10 }).catch((e) => (status(e) === 304 ? undefined : Promise.reject(e)));
      await fresh.start();
    } catch (e) {
      // a new service's container stays (created, as Compose leaves it, to be looked at); a
      // recreated one's old container comes back under its name, running if it ran
      if (old.length > 0) await fresh?.remove({ force: true }).catch(() => undefined);
      for (const [i, c] of old.entries()) {
        await c.rename({ name: i === 0 ? s.container : `${s.container}-${i + 1}` }).catch(() => undefined);
        if (wasRunning[i]) await c.start().catch(() => undefined);
      }
      throw e;
    }
    for (const c of old) await c.remove({ force: true });
    return { service: s.name, action: old.length > 0 ? 'recreated' : 'created', containerId: fresh.id };
  }

  async deploy(plan: StackPlan): Promise<StackDeployResult> {
    const services: StackDeployResult['services'] = [];
    const fail = (service: string, e: unknown): StackDeployResult => ({
      services,
      failed: { service, code: e instanceof CodedError ? e.code : 'DOCKER_ERROR', message: message(e) },
    });
    try {
      for (const n of plan.networks) await this.#ensure('network', n);
      for (const v of plan.volumes) await this.#ensure('volume', v);
    } catch (e) {
      return fail('(networks and volumes)', e);
    }
    const current = await this.#containers(plan.project);
    for (const s of plan.services) {
      try {
        services.push(
          await this.#service(
            s,
            current.filter((c) => c.Labels[COMPOSE_LABELS.service] === s.name),
          ),
        );
      } catch (e) {
        return fail(s.name, e);
      }
    }
    // services gone from the file (Compose's --remove-orphans)
    const names = new Set(plan.services.map((s) => s.name));
    for (const c of current) {
      const svc = c.Labels[COMPOSE_LABELS.service] ?? '';
      if (names.has(svc)) continue;
      try {
        await this.#docker.getContainer(c.Id).remove({ force: true });
        services.push({ service: svc, action: 'removed', containerId: c.Id });
      } catch (e) {
        return fail(svc, e);
      }
    }
    return { services, failed: null };
  }

  /** Dependency order from the containers' own labels (a service before those depending on it). */
  static #ordered(list: Info[]): Info[] {
    const by = new Map(list.map((c) => [c.Labels[COMPOSE_LABELS.service] ?? '', c]));
    const out: Info[] = [];
    const seen = new Set<string>();
    const visit = (s: string) => {
      if (seen.has(s)) return;
      seen.add(s);
      const c = by.get(s);
      if (!c) return;
      for (const d of (c.Labels[COMPOSE_LABELS.dependsOn] ?? '').split(',').filter(Boolean)) visit(d);
      out.push(c);
    };
    for (const s of [...by.keys()].sort()) visit(s);
    return out;
  }

  async #existing(project: string): Promise<Info[]> {
    const list = await this.#containers(project);
    if (list.length === 0) throw new CodedError('STACK_NOT_FOUND', `no stack "${project}" on this node`);
    return StackRunner.#ordered(list);
  }

  async stop(project: string): Promise<{ name: string; containers: StackContainer[] }> {
    for (const c of (await this.#existing(project)).reverse())
      if (c.State === 'running' || c.State === 'paused' || c.State === 'restarting')
        await this.#docker
          .getContainer(c.Id)
          .stop({ t: 10 })
          .catch((e) => (status(e) === 304 ? undefined : Promise.reject(e)));
    return this.inspect(project);
  }

  async start(project: string): Promise<{ name: string; containers: StackContainer[] }> {
    for (const c of await this.#existing(project))
      if (c.State !== 'running')
        await this.#docker
          .getContainer(c.Id)
          .start()
          .catch((e) => (status(e) === 304 ? undefined : Promise.reject(e)));
    return this.inspect(project);
  }

  /** Containers and the project's networks; its volumes too when asked. Nothing there is fine. */
  async remove(
    project: string,
    volumes: boolean,
  ): Promise<{ containers: number; networks: number; volumes: number }> {
    const filter = { label: [`${COMPOSE_LABELS.project}=${project}`] };
    const list = StackRunner.#ordered(await this.#containers(project)).reverse();
    for (const c of list)
      await this.#docker
        .getContainer(c.Id)
        .remove({ force: true })
        .catch((e) => (status(e) === 404 ? undefined : Promise.reject(e)));
    const nets = await this.#docker.listNetworks({ filters: JSON.stringify(filter) });
    for (const n of nets)
      await this.#docker
        .getNetwork(n.Id)
        .remove()
        .catch((e) => (status(e) === 404 ? undefined : Promise.reject(e)));
    let vols = 0;
    if (volumes) {
      const found = (await this.#docker.listVolumes({ filters: JSON.stringify(filter) })).Volumes ?? [];
      for (const v of found)
        await this.#docker
          .getVolume(v.Name)
          .remove()
          .catch((e) => (status(e) === 404 ? undefined : Promise.reject(e)));
      vols = found.length;
    }
    return { containers: list.length, networks: nets.length, volumes: vols };
  }
}
