import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { LogLine } from './server.js';
import { stopChild } from './stop-child.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

/**
 * The discovery service alone (dist/discovery.mjs, as Compose runs it) on a test LAN's host, with a
 * redis-server of its own in that namespace (port 6379 on that namespace's loopback: nothing else
 * listens there). Resolves once the site is announced (or the service said it could not).
 */
export interface NetnsDiscovery {
  logs: LogLine[];
  rawOutput(): string;
  stop(): Promise<void>;
}

export async function startDiscoveryIn(ns: string, env: Record<string, string>, readyTimeoutMs = 20_000): Promise<NetnsDiscovery> {
  const children: ChildProcess[] = [];
  const stop = async () => {
    for (const child of children.reverse()) await stopChild(child);
    children.length = 0;
  };
  const redis = spawn('ip', ['netns', 'exec', ns, 'redis-server', '--port', '6379', '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
  children.push(redis);
  const ping = () => spawnSync('ip', ['netns', 'exec', ns, 'redis-cli', '-p', '6379', 'ping'], { encoding: 'utf8' }).stdout.trim();
  for (let i = 0; ping() !== 'PONG'; i++) {
    if (i === 100) {
      await stop();
      throw new Error('redis-server did not start in the namespace');
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  const child = spawn('ip', ['netns', 'exec', ns, process.execPath, 'dist/discovery.mjs'], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? '', LOG_LEVEL: 'info', REDIS_URL: 'redis://127.0.0.1:6379', NONDIVY_DISCOVERY_PORT: '0', NONDIVY_ANNOUNCE: '1', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(child);
  const logs: LogLine[] = [];
  let raw = '';
  let buffer = '';
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`not announced within ${readyTimeoutMs} ms:\n${raw}`)), readyTimeoutMs);
      child.stdout!.on('data', (d: Buffer) => {
        raw += d;
        buffer += d;
        let i: number;
        while ((i = buffer.indexOf('\n')) >= 0) {
          try {
            const entry = JSON.parse(buffer.slice(0, i)) as LogLine;
            logs.push(entry);
            if (entry.msg === 'announcing the site on the LAN' || entry.msg === 'could not announce the site on the LAN; devices can still use its address') {
              clearTimeout(timer);
              resolve();
            }
          } catch {
            /* not JSON: kept in raw */
          }
          buffer = buffer.slice(i + 1);
        }
      });
      child.stderr!.on('data', (d: Buffer) => (raw += d));
      child.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`discovery exited with ${code}:\n${raw}`));
      });
    });
  } catch (err) {
    await stop();
    throw err;
  }
  return { logs, rawOutput: () => raw, stop };
}
