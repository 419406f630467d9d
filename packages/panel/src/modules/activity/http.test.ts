import assert from 'node:assert/strict';
import { test } from 'node:test';
import { actionOf } from './http.ts';

test('action names derive from method and route', () => {
  assert.equal(actionOf('POST', '/api/servers'), 'server.create');
  assert.equal(actionOf('PATCH', '/api/servers/:id'), 'server.update');
  assert.equal(actionOf('DELETE', '/api/servers/:id'), 'server.delete');
  assert.equal(actionOf('POST', '/api/servers/:id/power'), 'server.power');
  assert.equal(actionOf('PUT', '/api/servers/:id/config'), 'server.config.update');
  assert.equal(actionOf('POST', '/api/auth/login'), 'auth.login');
  assert.equal(actionOf('POST', '/api/auth/login/2fa'), 'auth.login.2fa');
  assert.equal(actionOf('POST', '/api/users'), 'user.create');
  assert.equal(actionOf('DELETE', '/api/auth/sessions/:id'), 'auth.sessions.delete');
  assert.equal(actionOf('POST', '/api/api-keys'), 'api_key.create');
  assert.equal(actionOf('DELETE', '/api/nodes/:id/allocations/:allocId'), 'node.allocations.delete');
});
