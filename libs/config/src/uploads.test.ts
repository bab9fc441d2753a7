import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigError, loadGatewayConfig } from './index.js';

describe('resumable upload settings (gateway)', () => {
  it('default to a day of expiry, 100 unfinished uploads and 64 GiB of them per user', () => {
    assert.deepEqual(loadGatewayConfig({}).uploads, { expirySeconds: 86_400, maxUnfinished: 100, maxUnfinishedBytes: 64 * 1024 ** 3 });
  });

  it('read NONDIVY_UPLOAD_EXPIRY_SECONDS, NONDIVY_UPLOAD_MAX_UNFINISHED and NONDIVY_UPLOAD_MAX_UNFINISHED_BYTES (a size)', () => {
    const config = loadGatewayConfig({ NONDIVY_UPLOAD_EXPIRY_SECONDS: '60', NONDIVY_UPLOAD_MAX_UNFINISHED: '3', NONDIVY_UPLOAD_MAX_UNFINISHED_BYTES: '10GiB' });
    assert.deepEqual(config.uploads, { expirySeconds: 60, maxUnfinished: 3, maxUnfinishedBytes: 10 * 1024 ** 3 });
  });

  it('refuse zero, negative and malformed values, naming every bad variable at once', () => {
    try {
      loadGatewayConfig({ NONDIVY_UPLOAD_EXPIRY_SECONDS: '0', NONDIVY_UPLOAD_MAX_UNFINISHED: '-1', NONDIVY_UPLOAD_MAX_UNFINISHED_BYTES: '0' });
      assert.fail('expected a ConfigError');
    } catch (err) {
      assert.ok(err instanceof ConfigError, String(err));
      const named = err.problems.map((p) => p.split(':')[0]).sort();
      assert.deepEqual(named, ['NONDIVY_UPLOAD_EXPIRY_SECONDS', 'NONDIVY_UPLOAD_MAX_UNFINISHED', 'NONDIVY_UPLOAD_MAX_UNFINISHED_BYTES']);
    }
    assert.throws(() => loadGatewayConfig({ NONDIVY_UPLOAD_MAX_UNFINISHED_BYTES: 'lots' }), /NONDIVY_UPLOAD_MAX_UNFINISHED_BYTES: expected a size/);
  });
});
