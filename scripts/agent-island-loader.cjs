/**
 * Loads one of the Agent's lazily loaded packages (scripts/build-dist.ts, AGENT_ISLANDS): from
 * the single executable's SEA asset `agent-lazy/<name>.cjs`, or from dist/agent-lazy/<name>.cjs
 * beside dist/agent.cjs. Bundled into dist/agent.cjs (it runs there, never from scripts/). Each
 * is compiled once, on its first import, like a CommonJS module of its own; it requires only
 * Node's builtins (and optional native parts, each loaded in a try).
 */
'use strict';
const path = require('node:path');

const loaded = new Map();

/** @param {string} name a package name, as the Agent imports it */
function loadIsland(name) {
  const done = loaded.get(name);
  if (done) return done.exports;
  const file = `agent-lazy/${name.replace('/', '+')}.cjs`;
  const sea = require('node:sea');
  if (!sea.isSea()) {
    const m = { exports: require(path.join(__dirname, file)) };
    loaded.set(name, m);
    return m.exports;
  }
  const filename = path.join(path.dirname(process.execPath), file);
  const source = sea.getAsset(file, 'utf8');
  const fn = require('node:vm').compileFunction(
    source,
    ['exports', 'require', 'module', '__filename', '__dirname'],
    {
      filename,
    },
  );
  const m = { exports: {} };
  loaded.set(name, m);
  try {
    fn.call(m.exports, m.exports, require, m, filename, path.dirname(filename));
  } catch (e) {
    loaded.delete(name);
    throw e;
  }
  return m.exports;
}

module.exports = { loadIsland };
