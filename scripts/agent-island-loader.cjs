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

/**
 * A package imported statically by code that needs it only when a feature is used (tar, zip,
 * YAML…): a stand-in whose first real use (reading an export, a call, `new`) loads the island.
 * What a bundle's import helpers touch when the importing module loads — `__esModule`, the
 * export names (listed at build time) and the prototype — is answered without loading it.
 * @param {string} name the package's name, as the Agent imports it
 * @param {string[]} keys the names it exports (Object.getOwnPropertyNames of its exports)
 * @param {boolean} esModule whether its exports say `__esModule`
 */
function deferIsland(name, keys, esModule) {
  let real;
  const load = () => {
    real ??= loadIsland(name);
    return real;
  };
  const known = new Set(keys);
  // a bound function: callable and constructible like the package's own export may be, and with
  // no own non-configurable property (a plain function's `prototype`) a proxy must then report
  const target = (() => {}).bind(null);
  const proxy = new Proxy(target, {
    get: (_t, k) => (k === '__esModule' && real === undefined ? esModule : Reflect.get(load(), k)),
    has: (_t, k) => Reflect.has(load(), k),
    ownKeys: () => (real === undefined ? [...keys] : Reflect.ownKeys(real)),
    getOwnPropertyDescriptor: (_t, k) => {
      if (real === undefined)
        return known.has(k) ? { configurable: true, enumerable: true, get: () => load()[k] } : undefined;
      const d = Reflect.getOwnPropertyDescriptor(real, k);
      return d && { ...d, configurable: true };
    },
    getPrototypeOf: () => (real === undefined ? Object.prototype : Reflect.getPrototypeOf(real)),
    set: (_t, k, v) => Reflect.set(load(), k, v),
    defineProperty: (_t, k, d) => Reflect.defineProperty(load(), k, d),
    deleteProperty: (_t, k) => Reflect.deleteProperty(load(), k),
    apply: (_t, self, args) => Reflect.apply(load(), self, args),
    construct: (_t, args, newTarget) =>
      Reflect.construct(load(), args, newTarget === proxy ? load() : newTarget),
  });
  return proxy;
}

module.exports = { loadIsland, deferIsland };
