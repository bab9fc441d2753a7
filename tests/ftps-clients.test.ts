/**
 * FTPS with the clients people use, whichever order they secure the data connection in. RFC 4217
 * lets a client read the 150 reply before starting TLS on the data connection (Python's ftplib,
 * rclone's Go client, lftp) or start TLS first (curl); the server must wait for neither. The data
 * timeout is 3 s here, so a client stuck waiting fails in seconds rather than hanging the run.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { bearer, login } from './helpers/http.js';
import { tempDir } from './helpers/infra.js';
import { startServerWithRedis, type ServerWithRedis } from './helpers/server.js';

const sha = (b: Buffer | Uint8Array) => createHash('sha256').update(b).digest('hex');
const USER = 'alice';
const PASSWORD = 'alice-password';

/** Runs a client to completion; its output and status, with a hard limit well past the data timeout. */
function run(cmd: string, args: string[], env: Record<string, string> = {}): { status: number | null; out: string } {
  const res = spawnSync(cmd, args, { env: { ...process.env, ...env }, timeout: 60_000, maxBuffer: 1 << 24 });
  return { status: res.status, out: `${res.stdout}\n${res.stderr}` };
}

/**
 * Python's ftplib as a script: AUTH TLS, login, PROT P, STOR, NLST, MLSD, RETR, passive or active.
 * With `reuse`, each data connection offers the control connection's TLS session (as FileZilla and
 * lftp do) and the script reports whether the server resumed it.
 */
const FTPLIB = String.raw`
import ftplib, json, ssl, sys
host, port, user, password, src, remote, dst, mode, reuse = sys.argv[1:10]
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
resumed = []
class Client(ftplib.FTP_TLS):
    def ntransfercmd(self, cmd, rest=None):
        if reuse != 'reuse':
            return super().ntransfercmd(cmd, rest)
        conn, size = ftplib.FTP.ntransfercmd(self, cmd, rest)
        conn = self.context.wrap_socket(conn, server_hostname=self.host, session=self.sock.session)
        resumed.append(conn.session_reused)
        return conn, size
f = Client(context=ctx, timeout=20)
f.connect(host, int(port))
f.login(user, password)
f.prot_p()
f.set_pasv(mode == 'passive')
replies = []
with open(src, 'rb') as fh:
    replies.append(f.storbinary('STOR ' + remote, fh))
folder = remote.rsplit('/', 1)[0]
names = f.nlst(folder)
mlsd = [name for name, facts in f.mlsd(folder)]
with open(dst, 'wb') as out:
    replies.append(f.retrbinary('RETR ' + remote, out.write))
f.quit()
print(json.dumps({'replies': replies, 'nlst': names, 'mlsd': mlsd, 'resumed': resumed}))
`;

/**
 * A client that opens the data connection for STOR, reads 150 and never starts TLS on it: it waits
 * for the server's verdict (`wait`) or sends ABOR (`abor`); then, on the same session, lists the folder.
 */
const STALLED = String.raw`
import ftplib, json, socket, ssl, sys, time
host, port, user, password, remote, mode = sys.argv[1:7]
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
f = ftplib.FTP_TLS(context=ctx, timeout=20)
f.connect(host, int(port))
f.login(user, password)
f.prot_p()
f.voidcmd('TYPE I')
t0 = time.monotonic()
data_host, data_port = ftplib.parse227(f.sendcmd('PASV'))
conn = socket.create_connection((data_host, data_port), 20)
opening = f.sendcmd('STOR ' + remote)
replies = []
if mode == 'abor':
    f.sock.sendall(b'ABOR\r\n')
    replies.append(f.getline())
replies.append(f.getline())
seconds = time.monotonic() - t0
conn.close()
after = f.nlst(remote.rsplit('/', 1)[0])
f.quit()
print(json.dumps({'opening': opening, 'replies': replies, 'seconds': seconds, 'after': after}))
`;

describe('FTPS data connections with clients that secure them after reading 150, and with those that do before', () => {
  let s: ServerWithRedis;
  let dir: { path: string; cleanup(): void };
  let port: number;
  before(async () => {
    dir = tempDir('nondivy-ftps-');
    const gen = spawnSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=127.0.0.1', '-keyout', join(dir.path, 'key.pem'), '-out', join(dir.path, 'cert.pem')]);
    assert.equal(gen.status, 0, gen.stderr.toString());
    s = await startServerWithRedis({
      NONDIVY_FTP_TLS_CERT: join(dir.path, 'cert.pem'),
      NONDIVY_FTP_TLS_KEY: join(dir.path, 'key.pem'),
      NONDIVY_FTP_TLS_REQUIRED: '1',
      NONDIVY_FTP_DATA_TIMEOUT_SECONDS: '3',
    });
    port = s.server.ftpPort;
    const admin = await login(s.server.api, 'admin', 'admin-password');
    const res = await fetch(`${s.server.api}/users`, {
      method: 'POST',
      headers: { ...bearer(admin), 'content-type': 'application/json' },
      body: JSON.stringify({ username: USER, password: PASSWORD, role: 'member' }),
    });
    assert.equal(res.status, 201);
  });
  after(async () => {
    await s?.close();
    dir?.cleanup();
  });

  /** A random file of `size` bytes in the temp folder, and the path a client downloads it back to. */
  function files(name: string, size: number) {
    const bytes = randomBytes(size);
    const src = join(dir.path, `${name}.src`);
    writeFileSync(src, bytes);
    return { bytes, src, dst: join(dir.path, `${name}.dst`) };
  }

  function ftplib(name: string, mode: 'passive' | 'active', reuse = false) {
    const { bytes, src, dst } = files(name, 200_003);
    const remote = `/library/other/${name}.bin`;
    const res = run('/usr/bin/python3', ['-c', FTPLIB, '127.0.0.1', String(port), USER, PASSWORD, src, remote, dst, mode, reuse ? 'reuse' : 'no']);
    assert.equal(res.status, 0, res.out);
    const report = JSON.parse(res.out.trim().split('\n')[0]!) as { replies: string[]; nlst: string[]; mlsd: string[]; resumed: boolean[] };
    assert.match(report.replies[0]!, /^226 /);
    assert.match(report.replies[1]!, /^226 /);
    assert.ok(report.nlst.includes(`${name}.bin`), res.out);
    assert.ok(report.mlsd.includes(`${name}.bin`), res.out);
    assert.equal(sha(readFileSync(dst)), sha(bytes));
    return report;
  }

  it("Python's ftplib (TLS after 150) uploads, lists and downloads byte-exact in passive mode", () => {
    ftplib('ftplib-passive', 'passive');
  });

  it("Python's ftplib does the same in active mode (PORT), where it accepts the data connection only after 150", () => {
    ftplib('ftplib-active', 'active');
  });

  it("a client offering the control connection's TLS session on its data connections gets it resumed", () => {
    const report = ftplib('ftplib-reuse', 'passive', true);
    assert.deepEqual(report.resumed, [true, true, true, true]);
  });

  function stalled(name: string, mode: 'wait' | 'abor') {
    const res = run('/usr/bin/python3', ['-c', STALLED, '127.0.0.1', String(port), USER, PASSWORD, `/library/other/${name}.bin`, mode]);
    assert.equal(res.status, 0, res.out);
    const report = JSON.parse(res.out.trim().split('\n')[0]!) as { opening: string; replies: string[]; seconds: number; after: string[] };
    assert.match(report.opening, /^150 /);
    assert.ok(!report.after.some((n) => n.endsWith(`${name}.bin`)), res.out);
    return report;
  }

  it('a data connection whose TLS never starts gets 425 after the data timeout; nothing is stored and the session goes on', () => {
    const report = stalled('stalled', 'wait');
    assert.match(report.replies[0]!, /^425 .*TLS/);
    assert.ok(report.seconds >= 2.5 && report.seconds < 8, `425 after ${report.seconds} s, the data timeout is 3 s`);
  });

  it('ABOR while the data connection waits for TLS stops it at once (426, 226); nothing is stored', () => {
    const report = stalled('aborted', 'abor');
    assert.deepEqual(report.replies.map((r) => r.slice(0, 4)), ['426 ', '226 ']);
    assert.ok(report.seconds < 2, `ABOR answered after ${report.seconds} s`);
  });

  it('rclone (Go, TLS after 150) copies a file up, lists it and copies it back byte-exact', () => {
    const { bytes, src, dst } = files('rclone', 300_007);
    const obscured = run('rclone', ['obscure', PASSWORD]);
    assert.equal(obscured.status, 0, obscured.out);
    const env = {
      RCLONE_CONFIG: join(dir.path, 'rclone.conf'),
      RCLONE_CONFIG_X_TYPE: 'ftp',
      RCLONE_CONFIG_X_HOST: '127.0.0.1',
      RCLONE_CONFIG_X_PORT: String(port),
      RCLONE_CONFIG_X_USER: USER,
      RCLONE_CONFIG_X_PASS: obscured.out.trim(),
      RCLONE_CONFIG_X_EXPLICIT_TLS: 'true',
      RCLONE_CONFIG_X_NO_CHECK_CERTIFICATE: 'true',
    };
    const limits = ['--retries', '1', '--low-level-retries', '1', '--contimeout', '10s', '--timeout', '10s'];
    const up = run('rclone', ['copyto', ...limits, src, 'X:/library/other/rclone.bin'], env);
    assert.equal(up.status, 0, up.out);
    const ls = run('rclone', ['lsf', ...limits, 'X:/library/other'], env);
    assert.equal(ls.status, 0, ls.out);
    assert.match(ls.out, /^rclone\.bin$/m);
    const down = run('rclone', ['copyto', ...limits, 'X:/library/other/rclone.bin', dst], env);
    assert.equal(down.status, 0, down.out);
    assert.equal(sha(readFileSync(dst)), sha(bytes));
  });

  it('curl (TLS before reading 150) still uploads and downloads byte-exact', () => {
    const { bytes, src, dst } = files('curl', 250_001);
    const url = `ftp://127.0.0.1:${port}/library/other/curl.bin`;
    const up = run('curl', ['-sS', '--max-time', '20', '--ssl-reqd', '-k', '-u', `${USER}:${PASSWORD}`, '-T', src, url]);
    assert.equal(up.status, 0, up.out);
    const down = run('curl', ['-sS', '--max-time', '20', '--ssl-reqd', '-k', '-o', dst, url]);
    assert.equal(down.status, 0, down.out);
    assert.equal(sha(readFileSync(dst)), sha(bytes));
  });

  it("lftp (GnuTLS: TLS after 150, offering the control connection's TLS session id) uploads, lists and downloads byte-exact", () => {
    const { bytes, src, dst } = files('lftp', 250_003);
    const script = [
      'set ftp:ssl-force true',
      'set ftp:ssl-protect-data true',
      'set ssl:verify-certificate no',
      'set ftp:ssl-copy-sid true',
      'set net:max-retries 1',
      'set net:timeout 10',
      `put ${src} -o /library/other/lftp.bin`,
      'cls -1 /library/other/',
      `get /library/other/lftp.bin -o ${dst}`,
      'bye',
    ].join('; ');
    const res = run('lftp', ['-u', `${USER},${PASSWORD}`, '-p', String(port), '-e', script, '127.0.0.1']);
    assert.equal(res.status, 0, res.out);
    assert.match(res.out, /^(\/library\/other\/)?lftp\.bin$/m);
    assert.equal(sha(readFileSync(dst)), sha(bytes));
  });
});
