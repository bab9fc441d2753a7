// The container health check of every Nondivy service (one image, four services):
//
//   node infra/healthcheck.mjs [gateway|catalog|discovery|ftp]
//
// The service comes from the argument, else NONDIVY_SERVICE, else `gateway` (the image's default
// command). HTTP services must answer `GET /readyz` with 200 (listening and their dependencies
// answer); the FTP service has no HTTP port, so it must accept a TCP connection on its control port
// and greet with `220`. Ports and addresses come from the same variables the service reads (their
// `*_FILE` forms included), with the same defaults. Exit status 0 = healthy, 1 = not.
import { readFileSync } from 'node:fs';
import { connect } from 'node:net';

const TIMEOUT_MS = 4000;

/** A variable as libs/config reads it: NAME, or the content of the file NAME_FILE names. */
function setting(name, fallback) {
  const file = process.env[`${name}_FILE`];
  if (file) return readFileSync(file, 'utf8').replace(/\r?\n$/, '');
  const value = process.env[name];
  return value === undefined || value === '' ? fallback : value;
}

/** A wildcard listening address is reached through the loopback interface. */
function reachable(host) {
  if (host === '0.0.0.0' || host === '') return '127.0.0.1';
  if (host === '::') return '::1';
  return host;
}

const services = {
  gateway: { kind: 'http', host: 'NONDIVY_HTTP_HOST', port: 'NONDIVY_HTTP_PORT', defaultPort: '8080' },
  catalog: { kind: 'http', host: 'NONDIVY_CATALOG_HOST', port: 'NONDIVY_CATALOG_PORT', defaultPort: '8081' },
  discovery: { kind: 'http', host: 'NONDIVY_DISCOVERY_HOST', port: 'NONDIVY_DISCOVERY_PORT', defaultPort: '8082' },
  ftp: { kind: 'ftp', host: 'NONDIVY_FTP_HOST', port: 'NONDIVY_FTP_PORT', defaultPort: '2121' },
};

async function checkHttp(host, port) {
  const url = `http://${host.includes(':') ? `[${host}]` : host}:${port}/readyz`;
  const res = await fetch(url, { signal: AbortSignal.timeout(TIMEOUT_MS) });
  const body = await res.text();
  if (res.status !== 200) throw new Error(`${url} answered ${res.status}: ${body.slice(0, 300)}`);
}

function checkFtp(host, port) {
  return new Promise((resolve, reject) => {
    const socket = connect({ host, port });
    let greeting = '';
    const fail = (err) => {
      socket.destroy();
      reject(err);
    };
    socket.setTimeout(TIMEOUT_MS, () => fail(new Error(`no FTP greeting from ${host}:${port} within ${TIMEOUT_MS} ms`)));
    socket.on('error', fail);
    socket.on('data', (chunk) => {
      greeting += chunk.toString('latin1');
      const line = /^(\d{3})[ -][^\r\n]*\r?\n/.exec(greeting);
      if (!line) return;
      if (line[1] !== '220') return fail(new Error(`FTP greeting was "${line[0].trim()}"`));
      socket.end('QUIT\r\n');
      socket.destroy();
      resolve();
    });
    socket.on('end', () => fail(new Error(`connection to ${host}:${port} closed before the FTP greeting`)));
  });
}

const name = process.argv[2] ?? setting('NONDIVY_SERVICE', 'gateway');
const service = services[name];
if (!service) {
  console.error(`unknown service "${name}"; expected one of ${Object.keys(services).join(', ')}`);
  process.exit(2);
}

try {
  const host = reachable(setting(service.host, '0.0.0.0'));
  const port = Number(setting(service.port, service.defaultPort));
  await (service.kind === 'http' ? checkHttp(host, port) : checkFtp(host, port));
  process.exit(0);
} catch (err) {
  console.error(`${name} is not healthy: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
}
