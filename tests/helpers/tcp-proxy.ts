import { connect, createServer, type Socket } from 'node:net';

/**
 * A TCP proxy on a free loopback port in front of `127.0.0.1:<target>`, for tests of clients that
 * must survive a dropped connection: it counts the bytes going up (client to server) and can cut
 * every connection at once, now or when the upward count reaches a mark. A connection whose target
 * does not answer (a server restarting) is closed at once, as a real network would refuse it.
 */
export interface TcpProxy {
  readonly port: number;
  readonly url: string;
  /** Bytes forwarded from clients to the target so far (every connection, resent bytes included). */
  readonly bytesUp: number;
  /** How many times connections were cut. */
  readonly cuts: number;
  /** Destroys every open connection, both sides. */
  cut(): void;
  /** Runs `action` once `bytesUp` reaches `bytes` (the chunk that crosses the mark is forwarded first). */
  at(bytes: number, action: () => void | Promise<void>): void;
  /** Stops listening and destroys every connection. */
  close(): Promise<void>;
}

export async function startTcpProxy(target: number): Promise<TcpProxy> {
  const pairs = new Set<[Socket, Socket]>();
  const marks: { bytes: number; action: () => void | Promise<void> }[] = [];
  let bytesUp = 0;
  let cuts = 0;
  const failures: unknown[] = [];

  const fire = () => {
    while (marks.length > 0 && marks[0]!.bytes <= bytesUp) {
      const { action } = marks.shift()!;
      Promise.resolve()
        .then(action)
        .catch((err: unknown) => failures.push(err));
    }
  };

  const server = createServer((client) => {
    const upstream = connect(target, '127.0.0.1');
    const pair: [Socket, Socket] = [client, upstream];
    pairs.add(pair);
    const end = () => {
      pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.on('error', end).on('close', end);
    upstream.on('error', end).on('close', end);
    client.on('data', (chunk: Buffer) => {
      bytesUp += chunk.length;
      if (!upstream.write(chunk)) client.pause();
      fire();
    });
    upstream.on('drain', () => client.resume());
    upstream.on('data', (chunk: Buffer) => {
      if (!client.write(chunk)) upstream.pause();
    });
    client.on('drain', () => upstream.resume());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;

  return {
    port,
    url: `http://127.0.0.1:${port}`,
    get bytesUp() {
      if (failures.length) throw failures[0];
      return bytesUp;
    },
    get cuts() {
      return cuts;
    },
    cut() {
      cuts++;
      for (const [client, upstream] of pairs) {
        client.destroy();
        upstream.destroy();
      }
      pairs.clear();
    },
    at(bytes, action) {
      marks.push({ bytes, action });
      marks.sort((a, b) => a.bytes - b.bytes);
    },
    async close() {
      for (const [client, upstream] of pairs) {
        client.destroy();
        upstream.destroy();
      }
      pairs.clear();
      await new Promise((resolve) => server.close(resolve));
      if (failures.length) throw failures[0];
    },
  };
}
