import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { AppError } from '@nondivy/errors';
import { decodeInvite, encodeInvite, type Invite } from './invite.js';

const invite: Invite = {
  url: 'http://192.168.1.20:8080',
  siteId: 'site_0123456789',
  publicKey: 'A'.repeat(42) + 'Q',
  secret: 'secret-secret-secret-0123',
};

/** An invite code carrying any JSON payload, as a hostile or broken encoder could make one. */
const codeOf = (payload: unknown) => `ndv1.${Buffer.from(JSON.stringify(payload)).toString('base64url')}`;
const fields = (over: Record<string, unknown>) => ({ u: invite.url, i: invite.siteId, k: invite.publicKey, s: invite.secret, ...over });
const refused = (err: unknown) => err instanceof AppError && err.kind === 'bad_input' && err.message === 'Not a valid invite code';

describe('invite codes', () => {
  it('round-trips through one line of URL-safe text', () => {
    const code = encodeInvite(invite);
    assert.match(code, /^ndv1\.[A-Za-z0-9_-]+$/);
    assert.deepEqual(decodeInvite(code), invite);
  });

  it('tolerates blanks around a pasted code', () => {
    assert.deepEqual(decodeInvite(`  ${encodeInvite(invite)}\n`), invite);
  });

  it('keeps only the origin of the URL', () => {
    assert.equal(decodeInvite(codeOf(fields({ u: 'https://Library.example:8443/some/path?x=1#y' }))).url, 'https://library.example:8443');
  });

  it('accepts the bounds of each field', () => {
    assert.deepEqual(decodeInvite(codeOf(fields({ i: 'a'.repeat(8), s: 'b'.repeat(20) }))).siteId, 'a'.repeat(8));
    assert.deepEqual(decodeInvite(codeOf(fields({ i: 'a'.repeat(40), s: 'b'.repeat(100) }))).secret, 'b'.repeat(100));
  });

  it('accepts a code of exactly 2000 characters and refuses one of 2001', () => {
    // Pad an extra field (ignored when decoding) until the code is 2000 characters long.
    let n = 0;
    while (codeOf(fields({ pad: 'x'.repeat(n) })).length < 2000) n++;
    const code = codeOf(fields({ pad: 'x'.repeat(n) }));
    assert.equal(code.length, 2000);
    assert.deepEqual(decodeInvite(` ${code}\n`), invite);
    const longer = codeOf(fields({ pad: 'x'.repeat(n + 1) }));
    assert.equal(longer.length, 2001);
    assert.throws(() => decodeInvite(longer), refused);
  });

  const bad: [string, string][] = [
    ['no prefix', encodeInvite(invite).slice(5)],
    ['another version', `ndv2.${encodeInvite(invite).slice(5)}`],
    ['over 2000 characters', codeOf(fields({ s: invite.secret, pad: 'x'.repeat(2000) }))],
    ['not JSON', `ndv1.${Buffer.from('{not json').toString('base64url')}`],
    ['JSON null', codeOf(null)],
    ['a JSON string', codeOf('http://x')],
    ['a missing field', codeOf({ u: invite.url, i: invite.siteId, k: invite.publicKey })],
    ['a number for a string', codeOf(fields({ i: 12345678 }))],
    // A one-element list reads as its element wherever it is turned into text (new URL, RegExp#test).
    ['a list for the URL', codeOf(fields({ u: [invite.url] }))],
    ['a list for the site id', codeOf(fields({ i: [invite.siteId] }))],
    ['a list for the key', codeOf(fields({ k: [invite.publicKey] }))],
    ['a list for the secret', codeOf(fields({ s: [invite.secret] }))],
    ['not a URL', codeOf(fields({ u: 'library.lan' }))],
    ['an ftp URL', codeOf(fields({ u: 'ftp://library.lan' }))],
    ['a javascript: URL', codeOf(fields({ u: 'javascript:alert(1)' }))],
    ['a file: URL', codeOf(fields({ u: 'file:///etc/passwd' }))],
    ['a 42-character key', codeOf(fields({ k: 'A'.repeat(42) }))],
    ['a key with +', codeOf(fields({ k: `${'A'.repeat(42)}+` }))],
    ['a 44-character key', codeOf(fields({ k: 'A'.repeat(44) }))],
    ['a key with + before 43 valid characters', codeOf(fields({ k: `+${'A'.repeat(43)}` }))],
    ['a key with + after 43 valid characters', codeOf(fields({ k: `${'A'.repeat(43)}+` }))],
    ['a 19-character secret', codeOf(fields({ s: 'b'.repeat(19) }))],
    ['a 101-character secret', codeOf(fields({ s: 'b'.repeat(101) }))],
    ['a secret with a space', codeOf(fields({ s: 'secret secret secret 0123' }))],
    ['a secret with a space before 20 valid characters', codeOf(fields({ s: ` ${'b'.repeat(20)}` }))],
    ['a secret with a space after 20 valid characters', codeOf(fields({ s: `${'b'.repeat(20)} ` }))],
    ['a 7-character site id', codeOf(fields({ i: 'a'.repeat(7) }))],
    ['a site id with a slash', codeOf(fields({ i: 'site/0123456789' }))],
    ['a 41-character site id', codeOf(fields({ i: 'a'.repeat(41) }))],
    ['a site id with a slash before 8 valid characters', codeOf(fields({ i: `/${'a'.repeat(8)}` }))],
    ['a site id with a slash after 8 valid characters', codeOf(fields({ i: `${'a'.repeat(8)}/` }))],
    ['an empty code', ''],
    ['the bare prefix', 'ndv1.'],
  ];
  for (const [what, code] of bad) {
    it(`refuses ${what} with the same message`, () => {
      assert.throws(() => decodeInvite(code), refused);
    });
  }
});
