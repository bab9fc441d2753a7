import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { connect } from 'node:net';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';

/** Logs in and returns the bearer token. */
export async function login(api: string, username: string, password: string): Promise<string> {
  const res = await fetch(`${api}/auth/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username, password }) });
  if (res.status !== 200) throw new Error(`login failed: ${res.status} ${await res.text()}`);
  return ((await res.json()) as { token: string }).token;
}

export const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

/** Starts an in-process service on a free loopback port and returns its base URL (no trailing slash). */
export async function listenOnLoopback(app: FastifyInstance): Promise<string> {
  await app.listen({ host: '127.0.0.1', port: 0 });
  return `http://127.0.0.1:${(app.server.address() as { port: number }).port}`;
}

/** Uploads bytes through multipart with fetch. */
export async function upload(api: string, token: string | null, data: Buffer | Uint8Array, filename: string, fields: Record<string, string> = {}, type = 'application/octet-stream') {
  const form = new FormData();
  for (const [k, v] of Object.entries(fields)) form.append(k, v);
  form.append('file', new Blob([data], { type }), filename);
  return fetch(`${api}/library`, { method: 'POST', body: form, headers: token ? bearer(token) : {} });
}

/** Runs curl; returns the status of the last response, the response headers and the body. */
export function curl(args: string[]): { status: number; headers: string; body: Buffer; stderr: string } {
  const dir = mkdtempSync(join(tmpdir(), 'nondivy-curl-'));
  try {
    const headerFile = join(dir, 'headers');
    const res = spawnSync('curl', ['-sS', '-D', headerFile, ...args], { maxBuffer: 1 << 28 });
    const headers = existsSync(headerFile) ? readFileSync(headerFile, 'latin1') : '';
    const statusLine = [...headers.matchAll(/^HTTP\/[\d.]+ (\d{3})/gm)].pop();
    return { status: statusLine ? Number(statusLine[1]) : 0, headers, body: res.stdout, stderr: res.stderr.toString() };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * Sends raw bytes over a TCP connection and returns what the server answered before closing (or
 * before `timeoutMs`). With `destroyAfterSend`, the client disappears right after sending, like a
 * device that leaves the network mid-upload.
 */
export function rawRequest(port: number, chunks: (Buffer | string)[], options: { destroyAfterSend?: boolean; timeoutMs?: number } = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    let answer = '';
    const timer = setTimeout(() => {
      socket.destroy();
      resolve(answer);
    }, options.timeoutMs ?? 5000);
    socket.on('data', (d) => (answer += d.toString('latin1')));
    socket.on('error', (err) => {
      clearTimeout(timer);
      if (options.destroyAfterSend || answer) resolve(answer);
      else reject(err);
    });
    socket.on('close', () => {
      clearTimeout(timer);
      resolve(answer);
    });
    socket.on('connect', async () => {
      for (const c of chunks) {
        if (!socket.write(c)) await new Promise((r) => socket.once('drain', r));
      }
      if (options.destroyAfterSend) {
        setTimeout(() => socket.destroy(), 50);
      }
    });
  });
}

/** Reads server-sent events (event name, JSON data, arrival time) into an array until closed. */
export function readEvents(url: string, headers: Record<string, string> = {}) {
  const events: { event: string; data: Record<string, unknown>; at: number }[] = [];
  const controller = new AbortController();
  const done = (async () => {
    const res = await fetch(url, { headers, signal: controller.signal });
    const decoder = new TextDecoder();
    let buffer = '';
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
      buffer += decoder.decode(chunk, { stream: true });
      let i: number;
      while ((i = buffer.indexOf('\n\n')) >= 0) {
        const block = buffer.slice(0, i);
        buffer = buffer.slice(i + 2);
        const event = /^event: (.*)$/m.exec(block)?.[1];
        const data = /^data: (.*)$/m.exec(block)?.[1];
        if (event && data) events.push({ event, data: JSON.parse(data) as Record<string, unknown>, at: Date.now() });
      }
    }
  })().catch(() => undefined);
  return { events, close: () => (controller.abort(), done) };
}
