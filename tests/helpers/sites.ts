import { randomBytes } from 'node:crypto';
import { bodyDigest, generateSiteKeys, loadSiteKeys, SIGNATURE_HEADERS as H, signParts, type SiteKeys } from '@nondivy/federation';
import { bearer, login } from './http.js';
import { freePort, startRedis, tempDir, type TestRedis } from './infra.js';
import { startServer, type LogLine, type TestServer } from './server.js';

export const ADMIN_PASSWORD = 'admin-password';

/**
 * One complete site on this machine: its own Redis, data folder and HTTP port, the standalone
 * server as a child process, and an admin token. `NONDIVY_PUBLIC_URL` is the loopback URL of its
 * port, so that another site can reach it. `restart` stops the server only (Redis and the folder
 * stay) and starts it again on the same port with the same environment.
 */
export interface Site {
  name: string;
  siteId: string;
  port: number;
  url: string;
  api: string;
  redis: TestRedis;
  env: Record<string, string>;
  /** The current server process (replaced by `restart`). */
  server: TestServer;
  /** The admin's bearer token (renewed by `restart`). */
  admin: string;
  /** Every log line of every process this site ran, in order. */
  logs(): LogLine[];
  /** This site's Ed25519 key, as stored in its Redis. */
  keys(): SiteKeys;
  /** A JSON (or bodiless) call to /api/v1 with an optional bearer token or extra headers. */
  call(path: string, init?: { method?: string; token?: string | null; json?: unknown; headers?: Record<string, string> }): Promise<Response>;
  restart(): Promise<void>;
  close(): Promise<void>;
}

export async function startSite(name: string, env: Record<string, string> = {}): Promise<Site> {
  const redis = await startRedis();
  const data = tempDir('nondivy-site-');
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const fullEnv = {
    REDIS_URL: redis.url,
    NONDIVY_DATA_DIR: data.path,
    NONDIVY_ADMIN_PASSWORD: ADMIN_PASSWORD,
    NONDIVY_SITE_NAME: name,
    NONDIVY_PUBLIC_URL: url,
    ...env,
  };
  const earlier: LogLine[] = [];
  let server: TestServer;
  try {
    server = await startServer(fullEnv, { port });
  } catch (err) {
    await redis.close();
    data.cleanup();
    throw err;
  }
  const site: Site = {
    name,
    siteId: redis.cli('hget', 'nd:site', 'siteId'),
    port,
    url,
    api: `${url}/api/v1`,
    redis,
    env: fullEnv,
    server,
    admin: await login(server.api, 'admin', ADMIN_PASSWORD),
    logs: () => [...earlier, ...site.server.logs],
    keys: () => loadSiteKeys(redis.cli('hget', 'nd:site', 'privateKey')),
    call: (path, init = {}) => {
      const headers: Record<string, string> = { ...(init.token ? bearer(init.token) : {}), ...init.headers };
      if (init.json !== undefined) headers['content-type'] = 'application/json';
      return fetch(`${url}/api/v1${path}`, { method: init.method ?? 'GET', headers, body: init.json !== undefined ? JSON.stringify(init.json) : undefined });
    },
    restart: async () => {
      await site.server.stop();
      earlier.push(...site.server.logs);
      site.server = await startServer(fullEnv, { port });
      site.admin = await login(site.api, 'admin', ADMIN_PASSWORD);
    },
    close: async () => {
      if (site.server.child.exitCode === null && site.server.child.signalCode === null) {
        site.server.child.kill('SIGCONT');
        await site.server.stop();
      }
      await redis.close();
      data.cleanup();
    },
  };
  return site;
}

/** A site's identity as a signer of federation requests. */
export interface Signer {
  siteId: string;
  keys: SiteKeys;
}

/** A signer that no site knows: a fresh key pair, and a fresh site id unless one is given. */
export function strangerSigner(siteId = randomBytes(9).toString('base64url')): Signer {
  return { siteId, keys: loadSiteKeys(generateSiteKeys().privatePem) };
}

export interface SignedRequest {
  method: string;
  /** Path and query, as on the request line. */
  path: string;
  /** The Host the signature names (the receiver's host:port for an honest request). */
  host: string;
  to: string;
  body?: string | Buffer;
  date?: number;
  nonce?: string;
}

/** The six signature headers of `r`, as a linked site computes them before sending. */
export function signedHeaders(signer: Signer, r: SignedRequest): Record<string, string> {
  const date = String(r.date ?? Date.now());
  const nonce = r.nonce ?? randomBytes(16).toString('base64url');
  const digest = bodyDigest(r.body ?? '');
  const signature = signParts(signer.keys, { method: r.method, path: r.path, host: r.host, site: signer.siteId, to: r.to, date, nonce, digest });
  return { [H.site]: signer.siteId, [H.to]: r.to, [H.date]: date, [H.nonce]: nonce, [H.digest]: digest, [H.signature]: signature };
}

/**
 * Sends a request to `site` with `headers` (usually from `signedHeaders`, possibly altered after
 * signing) and the given path and body, which may differ from what was signed.
 */
export function sendTo(site: Pick<Site, 'url'>, method: string, path: string, headers: Record<string, string>, body?: string | Buffer): Promise<Response> {
  const h = { ...headers };
  if (body !== undefined && !Object.keys(h).some((k) => k.toLowerCase() === 'content-type')) h['content-type'] = 'application/json';
  return fetch(`${site.url}${path}`, { method, headers: h, body });
}

/** Signs honestly as `signer` for `site` and sends. */
export function signedFetch(signer: Signer, site: Pick<Site, 'url' | 'siteId'>, method: string, path: string, body?: string): Promise<Response> {
  const host = new URL(site.url).host;
  return sendTo(site, method, path, signedHeaders(signer, { method, path, host, to: site.siteId, body }), body);
}
