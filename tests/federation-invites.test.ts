/**
 * An invite code names any address an admin pastes, so linking must not become a port scanner or a
 * way to read other services: whatever answers (a closed port, another HTTP service with its own error
 * text, a huge answer, a redirect, a non-HTTP service), the admin gets one answer that echoes nothing,
 * the other end's answer is read only up to a small cap, and non-http(s) addresses are refused.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createServer as createHttpServer, type Server } from 'node:http';
import { createServer as createTcpServer, type AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { encodeInvite, generateSiteKeys } from '@nondivy/federation';
import { freePort } from './helpers/infra.js';
import { startSite, type Site } from './helpers/sites.js';

const invite = (url: string) =>
  encodeInvite({ url, siteId: randomBytes(9).toString('base64url'), publicKey: generateSiteKeys().publicKey, secret: randomBytes(24).toString('base64url') });

const listen = (srv: Server | ReturnType<typeof createTcpServer>) =>
  new Promise<number>((resolve) => srv.listen(0, '127.0.0.1', () => resolve((srv.address() as AddressInfo).port)));

describe('linking with a code that names something else', () => {
  let site: Site;
  const servers: { close(): unknown }[] = [];
  let hugeBytesSent = 0;
  const HUGE = 64 * 1024 * 1024;

  before(async () => {
    site = await startSite('Prober');
  });
  after(async () => {
    for (const s of servers) s.close();
    await site.close();
  });

  const link = async (code: string) => {
    const t0 = Date.now();
    const res = await site.call('/federation/links', { method: 'POST', token: site.admin, json: { code } });
    return { status: res.status, body: (await res.json()) as { detail: string }, ms: Date.now() - t0 };
  };

  it('answers the same, echoing nothing, whatever is at the address', async () => {
    const secretText = 'internal-service-secret-7f3a';
    // Another HTTP service with error texts of its own.
    const chatty = createHttpServer((_req, res) => {
      res.writeHead(500, { 'content-type': 'application/problem+json' });
      res.end(JSON.stringify({ title: 'oops', status: 500, detail: `${secretText} at /admin` }));
    });
    const chattyForbidden = createHttpServer((_req, res) => {
      res.writeHead(403, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ detail: secretText }));
    });
    // A redirect to somewhere else, and an endless answer.
    const redirect = createHttpServer((_req, res) => {
      res.writeHead(307, { location: 'http://127.0.0.1:9/' });
      res.end(secretText);
    });
    const huge = createHttpServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      const chunk = Buffer.alloc(64 * 1024, 0x20);
      const pump = () => {
        while (hugeBytesSent < HUGE) {
          hugeBytesSent += chunk.length;
          if (!res.write(chunk)) return void res.once('drain', pump);
        }
        res.end();
      };
      res.on('error', () => undefined);
      pump();
    });
    // A service that is not HTTP at all.
    const banner = createTcpServer((sock) => sock.end(`SSH-2.0-${secretText}\r\n`));
    servers.push(chatty, chattyForbidden, redirect, huge, banner);
    const targets = {
      chatty: `http://127.0.0.1:${await listen(chatty)}`,
      chattyForbidden: `http://127.0.0.1:${await listen(chattyForbidden)}`,
      redirect: `http://127.0.0.1:${await listen(redirect)}`,
      huge: `http://127.0.0.1:${await listen(huge)}`,
      banner: `http://127.0.0.1:${await listen(banner)}`,
      closed: `http://127.0.0.1:${await freePort()}`,
    };
    const answers: Record<string, { status: number; detail: string; ms: number }> = {};
    for (const [name, url] of Object.entries(targets)) {
      const r = await link(invite(url));
      answers[name] = { status: r.status, detail: r.body.detail, ms: r.ms };
    }
    console.log(JSON.stringify(answers));
    for (const [name, a] of Object.entries(answers)) {
      assert.equal(a.status, 503, name);
      assert.equal(a.detail, 'That site did not answer as a Nondivy site', name);
      assert.ok(!a.detail.includes(secretText), name);
      assert.ok(a.ms < 7000, `${name} answered in ${a.ms} ms`);
    }
    assert.ok(hugeBytesSent < 8 * 1024 * 1024, `a huge answer is cut early (${hugeBytesSent} bytes sent)`);
    assert.equal(((await (await site.call('/federation/links', { token: site.admin })).json()) as { links: unknown[] }).links.length, 0, 'nothing linked');
    // The reasons are in our own log, for the admin who reads it.
    assert.ok(site.logs().some((l) => l.msg === 'an invite could not be used' && l.url === targets.closed));
  });

  it('refuses codes that name anything but an http(s) address', async () => {
    for (const url of ['ftp://127.0.0.1:21', 'file:///etc/passwd', 'gopher://127.0.0.1:70', 'javascript:alert(1)']) {
      const r = await link(invite(url));
      assert.equal(r.status, 400, url);
      assert.equal(r.body.detail, 'Not a valid invite code', url);
    }
  });
});
