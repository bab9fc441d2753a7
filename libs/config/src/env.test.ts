import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { z } from 'zod';
import { byteSize, ConfigError, flag, parseEnv, port, portRange, positiveInt } from './env.js';

const problemsOf = (fn: () => unknown): string[] => {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof ConfigError, String(err));
    return err.problems;
  }
  assert.fail('expected a ConfigError');
};

describe('byteSize', () => {
  it('reads bare numbers as bytes, binary and decimal units in any case, with spaces around', () => {
    const cases: [string, number][] = [
      ['1048576', 1048576], ['0', 0], ['7b', 7], ['7B', 7],
      ['1k', 1024], ['1kb', 1000], ['1KiB', 1024],
      ['2m', 2 * 1024 ** 2], ['2MB', 2_000_000], ['2MiB', 2 * 1024 ** 2],
      ['3g', 3 * 1024 ** 3], ['3GB', 3_000_000_000], ['3gib', 3 * 1024 ** 3],
      ['1t', 1024 ** 4], ['1TB', 1000 ** 4], ['1TiB', 1024 ** 4],
      ['512MiB', 512 * 1024 ** 2], ['10GB', 10_000_000_000], [' 4 GiB ', 4 * 1024 ** 3], ['\t4GiB', 4 * 1024 ** 3],
    ];
    for (const [value, bytes] of cases) assert.equal(byteSize.parse(value), bytes, value);
  });

  it('accepts a fraction and rounds down to whole bytes', () => {
    assert.equal(byteSize.parse('1.5KiB'), 1536);
    assert.equal(byteSize.parse('0.5k'), 512);
    assert.equal(byteSize.parse('1.0009k'), 1024);
  });

  it('refuses unknown units, signs, missing digits and anything around the size', () => {
    for (const value of ['', ' ', 'MiB', '-1', '+1', '1 2', '1.', '.5', '1e3', '1 PiB', '1 Ki B', '10GBx', 'x10GB', '1,5k', '1..5k']) {
      const r = byteSize.safeParse(value);
      assert.equal(r.success, false, value);
      assert.equal(r.error?.issues[0]?.message, 'expected a size such as 1048576, 512MiB or 10GB', value);
      assert.equal(r.error?.issues[0]?.code, 'custom', value);
    }
  });
});

describe('flag', () => {
  it('reads 1/true/yes/on as true and 0/false/no/off as false, in any case', () => {
    for (const v of ['1', 'true', 'yes', 'on', 'TRUE', 'Yes', 'ON']) assert.equal(flag.parse(v), true, v);
    for (const v of ['0', 'false', 'no', 'off', 'FALSE', 'No', 'Off']) assert.equal(flag.parse(v), false, v);
  });

  it('refuses anything else', () => {
    for (const v of ['', '2', 'y', 'enabled', ' true']) {
      const r = flag.safeParse(v);
      assert.equal(r.success, false, v);
      assert.equal(r.error?.issues[0]?.message, 'expected 1 or 0 (true/false)', v);
    }
  });
});

describe('port and positiveInt', () => {
  it('ports are whole numbers from 0 to 65535', () => {
    assert.equal(port.parse('0'), 0);
    assert.equal(port.parse('65535'), 65535);
    for (const v of ['-1', '65536', '80.5', 'http']) assert.equal(port.safeParse(v).success, false, v);
  });

  it('positive integers start at 1', () => {
    assert.equal(positiveInt.parse('1'), 1);
    for (const v of ['0', '-3', '1.5', 'many']) assert.equal(positiveInt.safeParse(v).success, false, v);
  });
});

describe('portRange', () => {
  const issues = (v: string) => {
    const r = portRange.safeParse(v);
    return r.success ? null : r.error.issues.map((i) => i.message);
  };

  it('reads FIRST-LAST as two port numbers, ends included', () => {
    assert.deepEqual(portRange.parse('30000-30049'), [30000, 30049]);
    assert.deepEqual(portRange.parse('1024-1024'), [1024, 1024]);
    assert.deepEqual(portRange.parse('1024-65535'), [1024, 65535]);
  });

  it('refuses anything but two numbers of at most five digits around one dash, whole', () => {
    for (const v of ['30000', '30000-', '-30049', '30000:30049', ' 30000-30049', '30000-30049 ', 'x30000-30049', '30000-30049x', '123456-123457', '30000--30049', '']) {
      assert.deepEqual(issues(v), ['expected FIRST-LAST, e.g. 30000-30049'], v);
    }
  });

  it('refuses privileged ports, ports past 65535 and a range that runs backwards', () => {
    for (const v of ['1023-2000', '0-10', '60000-65536', '99999-99999', '30049-30000', '2000-1999']) {
      assert.deepEqual(issues(v), ['expected 1024 <= FIRST <= LAST <= 65535'], v);
    }
  });
});

describe('parseEnv', () => {
  const schema = z.object({ SIZE: byteSize.default(10), NAME: z.string().default('site'), API_SECRET: z.string().min(8).optional() });

  it('parses the variables named by the schema, with defaults; an empty value counts as unset', () => {
    assert.deepEqual(parseEnv(schema, { SIZE: '1k', NAME: 'lab', OTHER: 'x' }), { SIZE: 1024, NAME: 'lab', API_SECRET: undefined });
    assert.deepEqual(parseEnv(schema, { SIZE: '', NAME: '' }), { SIZE: 10, NAME: 'site', API_SECRET: undefined });
  });

  it('names every bad variable at once, and shows the value unless it is a secret', () => {
    const err = (() => {
      try {
        parseEnv(schema, { SIZE: 'huge', API_SECRET: 'short' });
      } catch (e) {
        return e as ConfigError;
      }
      assert.fail('expected a ConfigError');
    })();
    assert.ok(err instanceof ConfigError);
    assert.equal(err.name, 'ConfigError');
    assert.equal(err.problems.length, 2);
    assert.equal(err.problems[0], 'SIZE: expected a size such as 1048576, 512MiB or 10GB (got "huge")');
    assert.match(err.problems[1]!, /^API_SECRET: /);
    assert.ok(!err.problems[1]!.includes('short'), 'a secret is never shown');
    assert.equal(err.message, `Invalid configuration:\n  - ${err.problems[0]}\n  - ${err.problems[1]}`);
  });

  it('hides the values of every variable named like a secret', () => {
    for (const name of ['A_SECRET', 'ADMIN_PASSWORD', 'S3_KEY', 'DEVICE_TOKEN']) {
      const problems = problemsOf(() => parseEnv(z.object({ [name]: z.string().min(20) }), { [name]: 'visible-value' }));
      assert.equal(problems.length, 1);
      assert.ok(!problems[0]!.includes('visible-value'), name);
    }
    assert.deepEqual(problemsOf(() => parseEnv(z.object({ PLAIN: z.string().min(20) }), { PLAIN: 'visible-value' })).length, 1);
    assert.match(problemsOf(() => parseEnv(z.object({ PLAIN: z.string().min(20) }), { PLAIN: 'visible-value' }))[0]!, /^PLAIN: .* \(got "visible-value"\)$/);
  });

  it('shows no value for a variable that was not set', () => {
    assert.deepEqual(problemsOf(() => parseEnv(z.object({ NEEDED: z.string() }), {})), ['NEEDED: Invalid input: expected string, received undefined']);
  });

  it('names a problem of the whole environment (not of one variable) as such', () => {
    const whole = z.object({ A: z.string().optional() }).refine((e) => e.A !== undefined, 'A is needed here');
    assert.deepEqual(problemsOf(() => parseEnv(whole as unknown as z.ZodObject, {})), ['(environment): A is needed here']);
  });

  it('names a problem inside a variable by its dotted path', () => {
    const list = z.object({ HOSTS: z.string().transform((v) => v.split(',')).pipe(z.array(z.string().min(2))) });
    assert.deepEqual(problemsOf(() => parseEnv(list, { HOSTS: 'ab,c' })), ['HOSTS.1: Too small: expected string to have >=2 characters']);
  });

  it('adds the cross checks to the problems, before the schema\'s', () => {
    const problems = problemsOf(() => parseEnv(schema, { SIZE: 'huge', NAME: 'x' }, (raw) => (raw.NAME === 'x' ? ['NAME: x is taken'] : [])));
    assert.deepEqual(problems, ['NAME: x is taken', 'SIZE: expected a size such as 1048576, 512MiB or 10GB (got "huge")']);
    assert.deepEqual(parseEnv(schema, { NAME: 'y' }, () => []), { SIZE: 10, NAME: 'y', API_SECRET: undefined });
  });

  it('reads NAME_FILE (a secret file) without its one trailing newline; refuses both set, or an unreadable file', () => {
    const dir = mkdtempSync(join(tmpdir(), 'nondivy-env-'));
    try {
      const file = join(dir, 'secret');
      writeFileSync(file, 'from-a-file-123\n');
      assert.equal(parseEnv(schema, { API_SECRET_FILE: file }).API_SECRET, 'from-a-file-123');
      assert.equal(parseEnv(schema, { API_SECRET_FILE: file, API_SECRET: '' }).API_SECRET, 'from-a-file-123', 'an empty value counts as unset');
      writeFileSync(file, 'windows-line-end\r\n');
      assert.equal(parseEnv(schema, { API_SECRET_FILE: file }).API_SECRET, 'windows-line-end');
      writeFileSync(file, 'two-newlines-kept\n\n');
      assert.equal(parseEnv(schema, { API_SECRET_FILE: file }).API_SECRET, 'two-newlines-kept\n');
      writeFileSync(file, 'line-one\nline-two\n');
      assert.equal(parseEnv(schema, { API_SECRET_FILE: file }).API_SECRET, 'line-one\nline-two', 'a newline inside the value is kept');
      writeFileSync(file, 'line-one\r\nline-two');
      assert.equal(parseEnv(schema, { API_SECRET_FILE: file }).API_SECRET, 'line-one\r\nline-two', 'only a newline at the end is removed');
      writeFileSync(file, 'no-newline-at-all');
      assert.equal(parseEnv(schema, { API_SECRET_FILE: file }).API_SECRET, 'no-newline-at-all');
      assert.equal(parseEnv(schema, { API_SECRET_FILE: '', API_SECRET: 'direct-value' }).API_SECRET, 'direct-value', 'an empty NAME_FILE is unset');
      assert.deepEqual(problemsOf(() => parseEnv(schema, { API_SECRET_FILE: file, API_SECRET: 'direct-value' })), ['API_SECRET and API_SECRET_FILE are both set; set only one']);
      const missing = join(dir, 'missing');
      assert.deepEqual(problemsOf(() => parseEnv(schema, { API_SECRET_FILE: missing })), [`API_SECRET_FILE: cannot read ${missing} (ENOENT)`]);
      assert.deepEqual(problemsOf(() => parseEnv(schema, { API_SECRET_FILE: dir })), [`API_SECRET_FILE: cannot read ${dir} (EISDIR)`]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('says "error" when reading NAME_FILE fails without an error code', () => {
    // Not a string: reading its `href` (Node's test for a file URL) throws a plain Error, with no code.
    const odd = { get href(): string { throw new Error('no such thing'); }, toString: () => 'odd-path' };
    assert.deepEqual(problemsOf(() => parseEnv(schema, { API_SECRET_FILE: odd } as unknown as NodeJS.ProcessEnv)), ['API_SECRET_FILE: cannot read odd-path (error)']);
  });
});
