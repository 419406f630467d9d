import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { planStack, splitWords } from './compose.ts';
import { isCodedError } from './errors.ts';

const code = (fn: () => unknown) => {
  try {
    fn();
  } catch (e) {
    return isCodedError(e) ? { code: e.code, details: e.details as { keys?: string[] } } : { code: 'THROWN' };
  }
  return { code: 'NONE' };
};

describe('compose subset → Engine plan', () => {
  const base = 'services:\n  a:\n    image: busybox\n    command: sleep 1\n';
  it('keys outside the subset are refused, every one listed (nested and top level)', () => {
    const r = code(() =>
      planStack(
        'p',
        `${base}    build: .\n    deploy: { replicas: 2 }\n    ports: [{ target: 80, mode: host }]\nsecrets: {}\n`,
      ),
    );
    assert.equal(r.code, 'STACK_UNSUPPORTED');
    assert.deepEqual(r.details?.keys, [
      'secrets',
      'services.a.build',
      'services.a.deploy.replicas',
      'services.a.ports.0.mode',
    ]);
  });
  it('x- extension fields are accepted; a config hash does not depend on key order', () => {
    const a = planStack('p', `x-common: { any: 1 }\n${base}    environment: { A: "1", B: "2" }\n`);
    const b = planStack('p', `${base}    environment: { B: "2", A: "1" }\n`);
    assert.equal(a.services[0]?.hash, b.services[0]?.hash);
    const c = planStack('p', `${base}    environment: { A: "1", B: "3" }\n`);
    assert.notEqual(a.services[0]?.hash, c.services[0]?.hash);
  });
  it('what is not compose is VALIDATION_FAILED: cycles, undeclared volumes, relative binds, alias bombs', () => {
    const cycle = 'services:\n  a: { image: x, depends_on: [b] }\n  b: { image: x, depends_on: [a] }\n';
    assert.equal(code(() => planStack('p', cycle)).code, 'VALIDATION_FAILED');
    assert.equal(code(() => planStack('p', `${base}    volumes: ["data:/d"]\n`)).code, 'VALIDATION_FAILED');
    assert.equal(code(() => planStack('p', `${base}    volumes: ["./x:/d"]\n`)).code, 'VALIDATION_FAILED');
    const bomb = `a: &a [x,x,x,x,x,x,x,x,x,x]\n${Array.from(
      { length: 12 },
      (_, i) =>
        `b${i}: &b${i} [${Array(10)
          .fill(i === 0 ? '*a' : `*b${i - 1}`)
          .join(',')}]`,
    ).join('\n')}\n${base}`;
    assert.equal(code(() => planStack('p', bomb)).code, 'VALIDATION_FAILED');
    assert.equal(code(() => planStack('Bad', base)).code, 'VALIDATION_FAILED');
    assert.equal(code(() => planStack('p', `${base}${' '.repeat(300 * 1024)}`)).code, 'PAYLOAD_TOO_LARGE');
  });
  it('services come in dependency order with Compose labels; names are the project’s', () => {
    const plan = planStack('p', 'services:\n  web: { image: x, depends_on: [db] }\n  db: { image: x }\n');
    assert.deepEqual(
      plan.services.map((s) => s.name),
      ['db', 'web'],
    );
    const web = plan.services[1];
    assert.equal(web?.container, 'p-web-1');
    const labels = web?.create.Labels as Record<string, string>;
    assert.equal(labels['com.docker.compose.project'], 'p');
    assert.equal(labels['com.docker.compose.service'], 'web');
    assert.equal(labels['com.docker.compose.config-hash'], web?.hash);
    assert.equal((web?.create.HostConfig as { NetworkMode: string } | undefined)?.NetworkMode, 'p_default');
  });
  it('splitWords splits as a shell does, without expansion', () => {
    assert.deepEqual(splitWords(`sh -c 'echo "$HOME"; x' "a b" c\\ d ''`), [
      'sh',
      '-c',
      'echo "$HOME"; x',
      'a b',
      'c d',
      '',
    ]);
  });
});
