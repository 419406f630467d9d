import assert from 'node:assert/strict';
import { test } from 'node:test';
import { dockerError } from './docker.ts';

test("the Engine's errors get protocol codes", () => {
  const full = dockerError(
    new Error('(HTTP code 500) server error - write /var/lib/docker/tmp/x: no space left on device'),
    'create container',
  );
  assert.equal(full.code, 'INSUFFICIENT_RESOURCES');
  assert.match(full.message, /disk is full.*no space left on device/);
  assert.equal(
    dockerError(new Error('Bind for 0.0.0.0:80 failed: port is already allocated'), 's').code,
    'PORT_CONFLICT',
  );
  assert.equal(
    dockerError(Object.assign(new Error('x'), { statusCode: 404 }), 'inspect').code,
    'CONTAINER_NOT_FOUND',
  );
  assert.equal(dockerError(new Error('boom'), 'start').code, 'DOCKER_ERROR');
});
