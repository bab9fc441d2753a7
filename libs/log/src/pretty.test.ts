import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { escapeForTerminal, prettyLine } from './pretty.js';

const line = (entry: Record<string, unknown>, color = false) => prettyLine(JSON.stringify(entry), { color });

describe('human log lines', () => {
  it('shows time, level, component, message and the fields', () => {
    const out = line({ level: 30, time: '2026-01-02T03:04:05.000Z', service: 'nondivy', component: 'gateway', msg: 'gateway listening', port: 8080, blobs: 'fs' });
    assert.match(out, /^\d\d:\d\d:\d\d INFO  gateway   gateway listening port=8080 blobs=fs\n$/);
  });

  it('shows an error by its message, and its stack under an error line', () => {
    const err = { type: 'Error', message: 'boom', stack: 'Error: boom\n    at a (x.ts:1:1)\n    at b (y.ts:2:2)' };
    const out = line({ level: 50, time: 0, service: 'nondivy', msg: 'start-up failed', err });
    assert.match(out, /ERROR nondivy   start-up failed err=boom\n    at a \(x\.ts:1:1\)\n    at b \(y\.ts:2:2\)\n$/);
  });

  it('never lets logged text drive the terminal: escape sequences, line breaks and bidi overrides are escaped', () => {
    const hostile = 'name\x1b[2J\x1b]0;pwned\x07\r\nFAKE INFO line\u202Egnp.exe\u2028';
    const out = line({ level: 30, time: 0, service: 'nondivy', component: 'gate\x1bway', msg: hostile, file: hostile, [hostile]: 1 }, true);
    assert.equal(out.split('\n').length, 2, 'one line');
    for (const c of ['\x07', '\r', '\u202E', '\u2028']) assert.ok(!out.includes(c), JSON.stringify(c));
    // The only escape sequences are the formatter's own colours.
    assert.deepEqual(out.match(/\x1b[^[]|\x1b\[(?!\d+(?:;\d+)*m)/g), null);
    assert.ok(!out.includes('\x1b[2J'));
    assert.ok(out.includes('\\u001b[2J'));
    assert.equal(escapeForTerminal('a\u0085b\u2066c'), 'a\\u0085b\\u2066c');
  });

  it('cuts long values and shows at most 8 fields', () => {
    const many = Object.fromEntries(Array.from({ length: 12 }, (_, i) => [`f${i}`, i]));
    const out = line({ level: 40, time: 0, msg: 'm', long: 'x'.repeat(500), ...many });
    assert.ok(out.includes(`long=${'x'.repeat(119)}…`));
    assert.ok(out.includes('f6=6') && !out.includes('f7=7'));
  });

  it('shows a line that is not JSON as it is, escaped', () => {
    assert.equal(prettyLine('not json \x1b[31m\n', { color: false }), 'not json \\u001b[31m\n');
  });
});
