import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { bodyDigest, canonical, digestOfSha256, generateSiteKeys, loadSiteKeys, signParts, verifyParts, type SignedParts } from './signing.js';

const site = generateSiteKeys();
const keys = loadSiteKeys(site.privatePem);
const other = generateSiteKeys();

const parts: SignedParts = {
  method: 'POST',
  path: '/api/v1/federation/search?q=moon',
  host: 'library.lan:8080',
  site: 'site-aaaaaaaa',
  to: 'site-bbbbbbbb',
  date: '1700000000000',
  nonce: 'n0nce-123456',
  digest: bodyDigest('{"q":"moon"}'),
};

describe('site keys', () => {
  it('gives the raw Ed25519 public key as 43 base64url characters, the same when loaded again', () => {
    assert.match(site.publicKey, /^[A-Za-z0-9_-]{43}$/);
    assert.equal(keys.publicKey, site.publicKey);
    assert.notEqual(other.publicKey, site.publicKey);
  });
});

describe('canonical', () => {
  it('is the version, then every signed part on its own line (method upper-cased, host lower-cased)', () => {
    assert.equal(
      canonical({ ...parts, method: 'post', host: 'Library.LAN:8080' }),
      ['nondivy-sig-v1', 'POST', '/api/v1/federation/search?q=moon', 'library.lan:8080', 'site-aaaaaaaa', 'site-bbbbbbbb', '1700000000000', 'n0nce-123456', parts.digest].join('\n'),
    );
  });
});

describe('signParts / verifyParts', () => {
  const signature = signParts(keys, parts);

  it('verifies a signature made with the matching key', () => {
    assert.equal(verifyParts(site.publicKey, parts, signature), true);
  });

  it('accepts the same request with the method and host in another case', () => {
    assert.equal(verifyParts(site.publicKey, { ...parts, method: 'post', host: 'LIBRARY.lan:8080' }, signature), true);
  });

  const tampered: [keyof SignedParts, string][] = [
    ['method', 'PUT'],
    ['path', '/api/v1/federation/search?q=moo'],
    ['path', '/api/v1/federation/search?q=moon&x=1'],
    ['host', 'library.lan:8081'],
    ['site', 'site-cccccccc'],
    ['to', 'site-aaaaaaaa'],
    ['date', '1700000000001'],
    ['nonce', 'n0nce-123457'],
    ['digest', bodyDigest('{"q":"sun"}')],
  ];
  for (const [field, value] of tampered) {
    it(`refuses the signature when ${field} is changed to ${JSON.stringify(value)}`, () => {
      assert.equal(verifyParts(site.publicKey, { ...parts, [field]: value }, signature), false);
    });
  }

  it("refuses another site's key", () => {
    assert.equal(verifyParts(other.publicKey, parts, signature), false);
  });

  it('refuses a changed, truncated, empty or garbage signature without throwing', () => {
    const raw = Buffer.from(signature, 'base64');
    raw[0] = raw[0]! ^ 1;
    for (const bad of [raw.toString('base64'), signature.slice(0, -4), '', 'not base64 at all!!']) {
      assert.equal(verifyParts(site.publicKey, parts, bad), false, bad);
    }
  });

  it('refuses (does not throw) when the stored public key is malformed', () => {
    assert.equal(verifyParts('abc', parts, signature), false);
    assert.equal(verifyParts('', parts, signature), false);
  });
});

describe('digests', () => {
  it('is the SHA-256 of the body in base64, labelled', () => {
    assert.equal(bodyDigest(''), 'sha-256=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=');
    assert.equal(bodyDigest(Buffer.from('abc')), bodyDigest('abc'));
  });

  it('gives the same digest from a hex SHA-256 as from the body itself', () => {
    const hex = createHash('sha256').update('a streamed file').digest('hex');
    assert.equal(digestOfSha256(hex), bodyDigest('a streamed file'));
  });
});
