/**
 * A local stand-in of Modrinth's API v2 (https://docs.modrinth.com/api/), the subset the mod
 * manager calls, shaped as Modrinth answers: `GET /v2/search` (query, facets as a JSON array of
 * OR-groups ANDed together, offset, limit → { hits, offset, limit, total_hits }),
 * `GET /v2/project/:id/version` (loaders, game_versions as JSON arrays → versions newest first,
 * each with files { url, filename, primary, size, hashes { sha1, sha512 } }), and the files.
 */
import { createHash } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface StandInProject {
  id: string;
  slug: string;
  title: string;
  description: string;
  author: string;
  loaders: string[];
  versions: {
    id: string;
    number: string;
    gameVersions: string[];
    filename: string;
    body: Buffer;
    tamper?: boolean;
  }[];
}

export interface ModrinthStandIn {
  url: string;
  requests: URL[];
  close(): Promise<void>;
}

export async function startModrinthStandIn(projects: StandInProject[]): Promise<ModrinthStandIn> {
  const requests: URL[] = [];
  let base = '';
  const json = (res: http.ServerResponse, status: number, body: unknown) => {
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(JSON.stringify(body));
  };
  const list = (u: URL, key: string): string[] | null => {
    const v = u.searchParams.get(key);
    return v === null ? null : (JSON.parse(v) as string[]);
  };
  const server = http.createServer((req, res) => {
    const u = new URL(req.url ?? '/', 'http://stand-in');
    requests.push(u);
    if (u.pathname === '/v2/search') {
      const q = (u.searchParams.get('query') ?? '').toLowerCase();
      const facets = (JSON.parse(u.searchParams.get('facets') ?? '[]') as string[][]).map((group) =>
        group.map((f) => f.split(':') as [string, string]),
      );
      const offset = Number(u.searchParams.get('offset') ?? 0);
      const limit = Number(u.searchParams.get('limit') ?? 10);
      const match = projects.filter(
        (p) =>
          (p.title.toLowerCase().includes(q) || p.description.toLowerCase().includes(q)) &&
          facets.every((group) =>
            group.some(([k, v]) =>
              k === 'categories'
                ? p.loaders.includes(v)
                : k === 'versions'
                  ? p.versions.some((x) => x.gameVersions.includes(v))
                  : true,
            ),
          ),
      );
      return json(res, 200, {
        hits: match.slice(offset, offset + limit).map((p) => ({
          project_id: p.id,
          project_type: 'mod',
          slug: p.slug,
          author: p.author,
          title: p.title,
          description: p.description,
          categories: p.loaders,
          versions: [...new Set(p.versions.flatMap((v) => v.gameVersions))],
          downloads: 1234,
          follows: 5,
          icon_url: null,
          latest_version: p.versions[0]?.id,
        })),
        offset,
        limit,
        total_hits: match.length,
      });
    }
    const pv = /^\/v2\/project\/([^/]+)\/version$/.exec(u.pathname);
    if (pv) {
      const p = projects.find((x) => x.id === pv[1] || x.slug === pv[1]);
      if (!p) return json(res, 404, { error: 'not_found', description: 'project not found' });
      const loaders = list(u, 'loaders');
      const games = list(u, 'game_versions');
      if (loaders && !loaders.some((l) => p.loaders.includes(l))) return json(res, 200, []);
      return json(
        res,
        200,
        p.versions
          .filter((v) => !games || v.gameVersions.some((g) => games.includes(g)))
          .map((v) => ({
            id: v.id,
            project_id: p.id,
            name: `${p.title} ${v.number}`,
            version_number: v.number,
            game_versions: v.gameVersions,
            loaders: p.loaders,
            files: [
              {
                url: `${base}/cdn/${p.id}/${v.id}/${v.filename}`,
                filename: v.filename,
                primary: true,
                size: v.body.length,
                hashes: {
                  sha1: createHash('sha1').update(v.body).digest('hex'),
                  sha512: createHash('sha512')
                    .update(v.tamper ? Buffer.concat([v.body, Buffer.from('x')]) : v.body)
                    .digest('hex'),
                },
              },
            ],
          })),
      );
    }
    const cdn = /^\/cdn\/([^/]+)\/([^/]+)\/([^/]+)$/.exec(u.pathname);
    const v = cdn ? projects.find((x) => x.id === cdn[1])?.versions.find((x) => x.id === cdn[2]) : undefined;
    if (v) {
      res.writeHead(200, { 'content-type': 'application/java-archive', 'content-length': v.body.length });
      return res.end(v.body);
    }
    json(res, 404, { error: 'not_found' });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return { url: base, requests, close: () => new Promise((r) => server.close(() => r())) };
}
