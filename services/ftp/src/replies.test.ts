import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { AppError } from '@nondivy/errors';
import { ActiveChannel } from './data-channel.js';
import { FtpRefusal, GENERIC_FAILURE, replyFor } from './replies.js';

const parseError = (directive: 'PORT' | 'EPRT', arg: string) => {
  try {
    ActiveChannel.parse(directive, arg);
  } catch (err) {
    return err;
  }
  assert.fail(`${directive} ${arg} was accepted`);
};

describe('replyFor', () => {
  it('maps each kind to its FTP code with the error\'s own message', () => {
    assert.deepEqual(replyFor(new AppError('not_found', 'No such file')), { code: 550, message: 'No such file' });
    assert.deepEqual(replyFor(new AppError('too_large', 'Too big')), { code: 552, message: 'Too big' });
    assert.deepEqual(replyFor(new AppError('unauthorized', 'Log in')), { code: 530, message: 'Log in' });
    assert.deepEqual(replyFor(new AppError('bad_input', 'File name not allowed')), { code: 553, message: 'File name not allowed' });
  });

  it('answers a bad command argument with 501 when asked, a bad file name with 553', () => {
    assert.equal(replyFor(new AppError('bad_input', 'x'), { badInput: 501 }).code, 501);
    assert.equal(replyFor(new AppError('not_found', 'x'), { badInput: 501 }).code, 550);
  });

  it('never shows what is not meant to be shown: internal errors and foreign errors get a generic message', () => {
    assert.deepEqual(replyFor(new AppError('internal', 'redis key lib:item:x broke at /srv/data')), { code: 451, message: GENERIC_FAILURE });
    assert.deepEqual(replyFor(new Error('ENOENT /srv/data/blobs/ab/cd')), { code: 451, message: GENERIC_FAILURE });
    assert.equal(replyFor(new Error('x'), { fallback: 501 }).code, 501);
  });

  it('an EPRT with an unknown network protocol is 522 (RFC 2428); other bad PORT/EPRT arguments are 501', () => {
    const proto = parseError('EPRT', '|3|::1|2000|');
    assert.ok(proto instanceof FtpRefusal);
    assert.deepEqual(replyFor(proto, { badInput: 501 }), { code: 522, message: 'Network protocol not supported, use (1,2)' });
    assert.equal(replyFor(parseError('PORT', '1,2,3'), { badInput: 501 }).code, 501);
  });
});
