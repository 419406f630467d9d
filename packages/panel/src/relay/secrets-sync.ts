/**
 * An update's hidden values redacted on every replica before the Agent gets it (issue 15): a
 * PATCH or PUT /config that gives a hidden variable a new value has the Agent recreate the
 * container with it, and the game may print it before the update ends; the old container may
 * print the old one as it stops. So while the update runs, every replica's live state holds the
 * old and the new values (`LiveStore.holdSecrets`) besides the stored ones, and the writer asks
 * the Agent only once `hold` resolved: each replica has it then, before a line of the new
 * container can reach it. `release`, once the update stored its end, drops the hold everywhere;
 * each other replica re-reads the server's row first (`onRelease`), so no value it must hide goes
 * unredacted between the two.
 *
 * Subject `<p>.live.secrets`: every replica subscribes. A hold is sent with a reply inbox; each
 * replica applies it in the callback and answers; the writer waits for as many answers as
 * replicas are alive (`peers`) or `timeoutMs`, whichever first (then it warns, counted in
 * `stats.late`, and goes on: a replica cut off from the broker gets no console lines either, as
 * they come over the same broker; one whose answer is merely slow hears the hold before any line
 * the holder publishes later, as far as one broker keeps order). The values travel as console
 * lines do (unredacted over the broker, redacted where they reach a browser), never logged.
 *
 * What arrives is untrusted: over `maxBytes`, not JSON, not the shape below: dropped
 * (`stats.dropped`), never fatal. A replica's holds per server are capped (MAX_HELD_SECRETS).
 */
import { createInbox, type Msg, type NatsConnection, type Subscription } from '@nats-io/transport-node';
import { own, wireObject } from '../lib/wire.ts';
import type { LiveStore } from './live-store.ts';

export interface SecretsSync {
  /** Holds `values` for the server on this replica and every other; resolves once they have it. */
  hold(serverId: string, key: string, values: readonly string[]): Promise<void>;
  /** Drops the hold here and on the others (each re-reads the server's stored values first). */
  release(serverId: string, key: string): void;
  /** What another replica's release does here: re-read the stored values, then release. */
  onRelease(fn: (serverId: string, key: string) => void): void;
  close(): void;
}

/** One process: the live state is this process's. */
export class LocalSecretsSync implements SecretsSync {
  readonly #live: LiveStore;
  constructor(live: LiveStore) {
    this.#live = live;
  }
  async hold(serverId: string, key: string, values: readonly string[]): Promise<void> {
    this.#live.holdSecrets(serverId, key, values);
  }
  release(serverId: string, key: string): void {
    this.#live.releaseSecrets(serverId, key);
  }
  onRelease(): void {}
  close(): void {}
}

export interface NatsSecretsLogger {
  warn(obj: object, msg: string): void;
}

export interface NatsSecretsSyncOptions {
  nc: NatsConnection;
  prefix?: string;
  live: LiveStore;
  /** how many other replicas are alive (their answers are waited for) */
  peers(): number;
  log: NatsSecretsLogger;
  /** how long to wait for the others' answers (default 2 s) */
  timeoutMs?: number;
  /** larger messages are neither sent nor accepted (default 64 KiB) */
  maxBytes?: number;
}

export interface NatsSecretsStats {
  /** holds and releases from other replicas applied */
  applied: number;
  /** holds whose answers did not all come within the timeout */
  late: number;
  /** messages refused (too large, wrong shape) */
  dropped: number;
}

const SERVER_ID = /^[A-Za-z0-9_-]{1,128}$/;
const KEY = /^[A-Za-z0-9_-]{1,64}$/;
const MAX_VALUES = 64;
const MAX_VALUE_CHARS = 4096;

interface Waiting {
  want: number;
  got: number;
  done(): void;
}

export class NatsSecretsSync implements SecretsSync {
  readonly #o: NatsSecretsSyncOptions;
  readonly #subject: string;
  readonly #inbox: string;
  readonly #timeoutMs: number;
  readonly #maxBytes: number;
  readonly #encoder = new TextEncoder();
  readonly #waiting = new Map<string, Waiting>();
  readonly #subs: Subscription[] = [];
  #release: (serverId: string, key: string) => void;
  #seq = 0;
  #closed = false;
  readonly stats: NatsSecretsStats = { applied: 0, late: 0, dropped: 0 };

  constructor(opts: NatsSecretsSyncOptions) {
    this.#o = opts;
    const prefix = opts.prefix ?? 'cap';
    this.#subject = `${prefix}.live.secrets`;
    this.#inbox = createInbox(`${prefix}.live.secrets-inbox`);
    this.#timeoutMs = opts.timeoutMs ?? 2000;
    this.#maxBytes = opts.maxBytes ?? 64 * 1024;
    this.#release = (serverId, key) => opts.live.releaseSecrets(serverId, key);
  }

  start(): void {
    this.#subs.push(
      this.#o.nc.subscribe(this.#subject, { callback: (_e, m) => this.#heard(m) }),
      this.#o.nc.subscribe(`${this.#inbox}.*`, {
        callback: (_e, m) => {
          const w = this.#waiting.get(m.subject.slice(this.#inbox.length + 1));
          if (w && ++w.got >= w.want) w.done();
        },
      }),
    );
  }

  onRelease(fn: (serverId: string, key: string) => void): void {
    this.#release = fn;
  }

  async hold(serverId: string, key: string, values: readonly string[]): Promise<void> {
    this.#o.live.holdSecrets(serverId, key, values);
    const want = this.#o.peers();
    if (this.#closed || want <= 0) return;
    const token = String(++this.#seq);
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        this.#waiting.delete(token);
        this.stats.late++;
        // (no values: they are secret)
        this.#o.log.warn(
          { serverId, answers: w.got, replicas: want },
          "not every replica confirmed an update's hidden values in time",
        );
        resolve();
      }, this.#timeoutMs);
      const w: Waiting = {
        want,
        got: 0,
        done: () => {
          clearTimeout(timer);
          this.#waiting.delete(token);
          resolve();
        },
      };
      this.#waiting.set(token, w);
      if (!this.#send({ op: 'hold', serverId, key, values }, `${this.#inbox}.${token}`)) w.done();
    });
  }

  release(serverId: string, key: string): void {
    this.#o.live.releaseSecrets(serverId, key);
    if (!this.#closed) this.#send({ op: 'release', serverId, key });
  }

  close(): void {
    this.#closed = true;
    for (const s of this.#subs) s.unsubscribe();
    this.#subs.length = 0;
    for (const w of [...this.#waiting.values()]) w.done();
  }

  #send(body: object, reply?: string): boolean {
    const data = this.#encoder.encode(JSON.stringify(body));
    if (data.byteLength > this.#maxBytes) {
      this.stats.dropped++;
      return false;
    }
    try {
      this.#o.nc.publish(this.#subject, data, reply ? { reply } : {});
      return true;
    } catch {
      return false;
    }
  }

  /** Another replica's hold or release. */
  #heard(m: Msg): void {
    const msg = this.#parse(m.data);
    if (!msg) {
      this.stats.dropped++;
      return;
    }
    this.stats.applied++;
    if (msg.op === 'hold') {
      this.#o.live.holdSecrets(msg.serverId, msg.key, msg.values);
      if (m.reply) m.respond();
    } else this.#release(msg.serverId, msg.key);
  }

  #parse(
    data: Uint8Array,
  ):
    | { op: 'hold'; serverId: string; key: string; values: string[] }
    | { op: 'release'; serverId: string; key: string }
    | undefined {
    const v = wireObject(data, this.#maxBytes);
    if (!v) return undefined;
    const op = own(v, 'op');
    const serverId = own(v, 'serverId');
    const key = own(v, 'key');
    if (typeof serverId !== 'string' || !SERVER_ID.test(serverId)) return undefined;
    if (typeof key !== 'string' || !KEY.test(key)) return undefined;
    if (op === 'release') return { op, serverId, key };
    if (op !== 'hold') return undefined;
    const values = own(v, 'values');
    if (!Array.isArray(values) || values.length > MAX_VALUES) return undefined;
    if (!values.every((x) => typeof x === 'string' && x.length <= MAX_VALUE_CHARS)) return undefined;
    return { op, serverId, key, values: values as string[] };
  }
}
