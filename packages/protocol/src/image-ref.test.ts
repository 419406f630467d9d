import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ImageRef, imageRefProblem } from './image-ref.ts';

test('Docker image references that the Engine takes are accepted', () => {
  for (const ref of [
    'busybox',
    'busybox:latest',
    'ctrl-alt-play/busybox:latest',
    'ghcr.io/pterodactyl/yolks:java_17',
    'quay.io/parkervcp/pterodactyl-images:debian_source',
    'localhost:5000/a/b__c/d-e.f:1.0-rc_1',
    'localhost/x',
    '127.0.0.1:5000/x:y',
    `alpine@sha256:${'a'.repeat(64)}`,
    `docker.io/library/alpine:3.20@sha256:${'0'.repeat(64)}`,
  ]) {
    assert.equal(imageRefProblem(ref), null, ref);
    assert.equal(ImageRef.safeParse(ref).success, true, ref);
  }
});

test('paths, flags, spaces and malformed parts are refused with a reason', () => {
  for (const ref of [
    '',
    '../../../etc',
    'a/../b',
    '..',
    '.',
    '--privileged busybox',
    '-busybox',
    'busybox latest',
    'Busybox',
    'UPPER/case',
    'a//b',
    '/busybox',
    'busybox/',
    'busybox:',
    'busybox:-tag',
    `busybox:${'t'.repeat(129)}`,
    'busybox@sha256:abc',
    'busybox@md5:0123',
    'ex ample.com/x',
    'exa_mple.com/x',
    'localhost:99999/x',
    'a__-b',
    'a...b',
    `${'a'.repeat(256)}`,
    'busybox\n',
  ]) {
    assert.notEqual(imageRefProblem(ref), null, JSON.stringify(ref));
    assert.equal(ImageRef.safeParse(ref).success, false, JSON.stringify(ref));
  }
});
