import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';

const INDEX = fileURLToPath(new URL('./index.ts', import.meta.url));

/** A child process whose stop takes `stopMs` (or never ends), sent SIGTERM once it is ready. */
function run(stopMs: number | null, graceMs: number): Promise<{ code: number | null; output: string; ms: number }> {
  const script = `
    import { onShutdown } from ${JSON.stringify(INDEX)};
    import { createLogger } from '@nondivy/log';
    const log = createLogger('shutdown-test', 'info');
    const keepAlive = setInterval(() => undefined, 1000); // a handle that never closes by itself
    onShutdown(log, () => new Promise((resolve) => { if (${stopMs} !== null) setTimeout(() => { clearInterval(keepAlive); resolve(); }, ${stopMs ?? 0}); }), ${graceMs});
    console.log('ready');
  `;
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    let sentAt = 0;
    const kill = setTimeout(() => child.kill('SIGKILL'), 20_000);
    child.stdout.on('data', (d: Buffer) => {
      output += d.toString();
      if (!sentAt && output.includes('ready')) {
        sentAt = Date.now();
        child.kill('SIGTERM');
      }
    });
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    child.on('error', reject);
    child.on('exit', (code) => {
      clearTimeout(kill);
      resolve({ code, output, ms: Date.now() - sentAt });
    });
  });
}

describe('onShutdown', () => {
  it('exits 0 once a graceful stop has finished', async () => {
    const r = await run(100, 5000);
    assert.equal(r.code, 0, r.output);
    assert.match(r.output, /shutting down/);
  });

  it('exits 1 after the grace period when the stop never ends, and says so', async () => {
    const r = await run(null, 300);
    assert.equal(r.code, 1, r.output);
    assert.match(r.output, /shutdown did not finish in time; exiting/);
    assert.ok(r.ms >= 300 && r.ms < 5000, `exited ${r.ms} ms after SIGTERM`);
  });
});
