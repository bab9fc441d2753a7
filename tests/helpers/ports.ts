import { createServer } from 'node:net';

/**
 * A free TCP port on the loopback interface, for a process a test (or a benchmark) starts. The
 * standalone server keeps a private copy for its embedded Redis: test code does not import the
 * server for a port.
 */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}
