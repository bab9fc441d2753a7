/**
 * The library routes through `app.inject`, over the gateway's real Redis and blob folder: a multipart
 * upload built by hand, the item and its bytes (whole, one range, a suffix, an unsatisfiable range),
 * who may edit and delete, and the problem answers for ids that are malformed or unknown.
 */
import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import type { Item } from '@nondivy/contracts';
import { sharedGateway, uploadedItem, type TestGateway } from '../test-helper.js';

const PROBLEM = 'application/problem+json; charset=utf-8';
/** A well-formed id that names no item. */
const UNKNOWN_ID = 'AAAAAAAAAAAAAAAAAAAAAA';

describe('library routes (inject)', { timeout: 30_000 }, () => {
  let gw: TestGateway;
  let alice: string;
  let bob: string;
  const auth = (token: string) => ({ authorization: `Bearer ${token}` });

  before(async () => {
    gw = await sharedGateway();
    [alice, bob] = await Promise.all([gw.userToken('member-a'), gw.userToken('member-b')]);
  });

  it('uploads by multipart, then serves the item, its bytes whole and one Range as 206 with exactly those bytes', async () => {
    // Past the 1 MiB chunk the file sender uses, so a range spans two chunks.
    const data = randomBytes(1536 * 1024 + 77);
    const res = await gw.upload(alice, { filename: 'Field Notes.pdf', data, contentType: 'application/pdf' }, { title: 'Field notes', description: 'from the trip' });
    assert.equal(res.statusCode, 201, res.body);
    const item = uploadedItem(res);
    assert.equal(res.headers.location, `/api/v1/library/${item.id}`);
    assert.equal(item.size, data.length);
    assert.equal(item.sha256, createHash('sha256').update(data).digest('hex'));
    assert.equal(item.uploadedBy, 'member-a');
    assert.equal(item.title, 'Field notes');
    assert.equal(item.kind, 'document');
    assert.ok(!('blobKey' in item), 'the blob key stays inside');

    const got = await gw.app.inject({ method: 'GET', url: `/api/v1/library/${item.id}` });
    assert.equal(got.statusCode, 200);
    assert.deepEqual(got.json(), item);

    const whole = await gw.app.inject({ method: 'GET', url: `/api/v1/library/${item.id}/content` });
    assert.equal(whole.statusCode, 200);
    assert.equal(whole.headers.etag, `"${item.sha256}"`);
    assert.equal(whole.headers['accept-ranges'], 'bytes');
    assert.ok(whole.rawPayload.equals(data), 'the whole file, byte for byte');

    const start = 1024 * 1024 - 100;
    const end = 1024 * 1024 + 4999;
    const part = await gw.app.inject({ method: 'GET', url: `/api/v1/library/${item.id}/content`, headers: { range: `bytes=${start}-${end}` } });
    assert.equal(part.statusCode, 206);
    assert.equal(part.headers['content-range'], `bytes ${start}-${end}/${data.length}`);
    assert.equal(Number(part.headers['content-length']), end - start + 1);
    assert.ok(part.rawPayload.equals(data.subarray(start, end + 1)), 'exactly the range');

    const suffix = await gw.app.inject({ method: 'GET', url: `/api/v1/library/${item.id}/content`, headers: { range: 'bytes=-10' } });
    assert.equal(suffix.statusCode, 206);
    assert.ok(suffix.rawPayload.equals(data.subarray(data.length - 10)), 'the last 10 bytes');

    const beyond = await gw.app.inject({ method: 'GET', url: `/api/v1/library/${item.id}/content`, headers: { range: `bytes=${data.length}-` } });
    assert.equal(beyond.statusCode, 416);
    assert.equal(beyond.headers['content-range'], `bytes */${data.length}`);
  });

  it('refuses a guest upload (guest uploads are off by default) and an upload without a file part', async () => {
    const guest = await gw.upload(null, { filename: 'a.txt', data: Buffer.from('hi') });
    assert.equal(guest.statusCode, 401);
    assert.equal(guest.headers['content-type'], PROBLEM);
    assert.equal(guest.json().detail, 'Log in to upload (guest uploads are disabled)');

    const boundary = 'xYz';
    const noFile = await gw.app.inject({
      method: 'POST',
      url: '/api/v1/library',
      headers: { ...auth(alice), 'content-type': `multipart/form-data; boundary=${boundary}` },
      payload: `--${boundary}\r\nContent-Disposition: form-data; name="title"\r\n\r\nNo file\r\n--${boundary}--\r\n`,
    });
    assert.equal(noFile.statusCode, 400);
    assert.deepEqual(noFile.json(), { type: 'about:blank', title: 'Bad Request', status: 400, detail: 'No file part: send the file as the multipart field "file"' });
  });

  it('PATCH: the uploader and an admin may edit, another member gets 403 and a guest 401', async () => {
    const admin = gw.adminToken;
    const item = uploadedItem(await gw.upload(alice, { filename: 'edit-me.txt', data: Buffer.from('edit me') }));
    const patch = (token: string | null, payload: object) =>
      gw.app.inject({ method: 'PATCH', url: `/api/v1/library/${item.id}`, headers: token ? auth(token) : {}, payload });

    const other = await patch(bob, { title: 'Taken over' });
    assert.equal(other.statusCode, 403);
    assert.equal(other.headers['content-type'], PROBLEM);
    assert.deepEqual(other.json(), { type: 'about:blank', title: 'Forbidden', status: 403, detail: 'Only the uploader or an admin may change this item' });
    const guest = await patch(null, { title: 'Taken over' });
    assert.equal(guest.statusCode, 401);
    assert.equal(guest.json().detail, 'Log in to change items');

    const own = await patch(alice, { title: 'Edited by owner', tags: ['notes'] });
    assert.equal(own.statusCode, 200);
    assert.equal((own.json() as Item).title, 'Edited by owner');
    assert.deepEqual((own.json() as Item).tags, ['notes']);
    const byAdmin = await patch(admin, { description: 'checked by admin' });
    assert.equal(byAdmin.statusCode, 200);
    assert.equal((byAdmin.json() as Item).description, 'checked by admin');
    assert.equal((byAdmin.json() as Item).title, 'Edited by owner', 'other fields kept');

    const empty = await patch(alice, {});
    assert.equal(empty.statusCode, 400);
    assert.equal(empty.headers['content-type'], PROBLEM);
    const unknownField = await patch(alice, { uploadedBy: 'member-b' });
    assert.equal(unknownField.statusCode, 400, 'the uploader is not editable');
    assert.equal((await gw.deps.library.get(item.id)).uploadedBy, 'member-a');
  });

  it('DELETE: another member gets 403 and the item stays; the uploader and an admin delete (204), then it is 404', async () => {
    const mine = uploadedItem(await gw.upload(alice, { filename: 'delete-me.txt', data: randomBytes(64) }));
    const theirs = uploadedItem(await gw.upload(bob, { filename: 'bobs.txt', data: randomBytes(64) }));
    const del = (token: string | null, id: string) => gw.app.inject({ method: 'DELETE', url: `/api/v1/library/${id}`, headers: token ? auth(token) : {} });

    const refused = await del(bob, mine.id);
    assert.equal(refused.statusCode, 403);
    assert.equal(refused.headers['content-type'], PROBLEM);
    assert.equal((await del(null, mine.id)).statusCode, 401);
    assert.equal((await gw.app.inject({ method: 'GET', url: `/api/v1/library/${mine.id}` })).statusCode, 200, 'still there');

    assert.equal((await del(alice, mine.id)).statusCode, 204);
    assert.equal((await del(gw.adminToken, theirs.id)).statusCode, 204);
    for (const id of [mine.id, theirs.id]) {
      const gone = await gw.app.inject({ method: 'GET', url: `/api/v1/library/${id}` });
      assert.equal(gone.statusCode, 404);
      assert.deepEqual(gone.json(), { type: 'about:blank', title: 'Not Found', status: 404, detail: 'No such item' });
      assert.equal((await gw.app.inject({ method: 'GET', url: `/api/v1/library/${id}/content` })).statusCode, 404);
    }
    assert.equal((await del(alice, mine.id)).statusCode, 404, 'deleting twice');
  });

  it('a malformed id is a 400 problem naming params.id; a well-formed unknown id is a 404 problem, on every item route', async () => {
    for (const [method, suffix] of [['GET', ''], ['GET', '/content'], ['HEAD', '/content'], ['PATCH', ''], ['DELETE', '']] as const) {
      const payload = method === 'PATCH' ? { title: 'x' } : undefined;
      const headers = auth(gw.adminToken);
      for (const bad of ['short', 'A'.repeat(23), 'AAAAAAAAAAAAAAAAAAAA.!']) {
        const res = await gw.app.inject({ method, url: `/api/v1/library/${encodeURIComponent(bad)}${suffix}`, headers, payload });
        assert.equal(res.statusCode, 400, `${method} ${bad}${suffix}`);
        if (method === 'HEAD') continue;
        assert.equal(res.headers['content-type'], PROBLEM);
        const body = res.json();
        assert.equal(body.detail, 'Invalid params');
        assert.deepEqual(body.errors, [{ path: 'params.id', message: 'not a valid item id' }]);
      }
      const res = await gw.app.inject({ method, url: `/api/v1/library/${UNKNOWN_ID}${suffix}`, headers, payload });
      assert.equal(res.statusCode, 404, `${method} unknown${suffix}`);
      if (method !== 'HEAD') assert.deepEqual(res.json(), { type: 'about:blank', title: 'Not Found', status: 404, detail: 'No such item' });
    }
    const query = await gw.app.inject({ method: 'GET', url: `/api/v1/library/${UNKNOWN_ID}/content?download=yes` });
    assert.equal(query.statusCode, 400, 'an unknown query value');
  });
});
