import { createServer } from 'node:net';

/**
 * A free TCP port on the loopback interface, for a helper process that listens only there: the
 * embedded redis-server of standalone mode, and the redis-server or servers that tests start.
 */
export function freeLoopbackPort(): Promise<number> {
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
