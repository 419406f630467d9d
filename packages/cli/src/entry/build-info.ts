/** What a bundle was built from: set by scripts/build-dist.ts (esbuild `define`); unset from source. */
declare const __CAP_BUILD_COMMIT__: string | undefined;

export function buildCommit(): string {
  return typeof __CAP_BUILD_COMMIT__ === 'string' ? __CAP_BUILD_COMMIT__ : 'source';
}

/** `<name> <version> (protocol N, commit C, node vX linux-x64)`: what `--version` prints. */
export function versionLine(name: string, version: string, protocol: number): string {
  return `${name} ${version} (protocol ${protocol}, commit ${buildCommit()}, node ${process.version} ${process.platform}-${process.arch})\n`;
}
