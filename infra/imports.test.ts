import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { importSpecifiers, packageOf } from './imports.js';

describe('importSpecifiers', () => {
  it('finds static, side-effect, type, re-export, dynamic and require imports', () => {
    const src = [
      "import { a } from 'alpha';",
      "import type { B } from '@scope/beta/sub';",
      "import * as g from \"gamma\";",
      "import 'side-effect';",
      "export { d } from './local.js';",
      "export * from 'delta';",
      "const e = await import('epsilon');",
      "const f = require('zeta/registry');",
      'import {',
      '  multi,',
      '  line,',
      "} from 'eta';",
    ].join('\n');
    assert.deepEqual(importSpecifiers(src), ['alpha', '@scope/beta/sub', 'gamma', 'side-effect', './local.js', 'delta', 'epsilon', 'zeta/registry', 'eta']);
  });

  it('ignores imports inside comments, strings, template literals and regular expressions', () => {
    const src = [
      "// import x from 'in-line-comment';",
      "/* import y from 'in-block-comment'; */",
      "const s = \"import z from 'in-a-string'\";",
      "const t = `import(${JSON.stringify('in-template-code')}) from 'in-template-text'`;",
      "const r = /['\"]from 'in-a-regex'/g;",
      "const q = a / b; const w = c / d; import real from 'real';",
      "obj.import('method-call'); obj.require('method-call');",
      "const arr = Array.from('abc');",
    ].join('\n');
    assert.deepEqual(importSpecifiers(src), ['real']);
  });

  it('reads code after a template literal with nested parts and braces', () => {
    const src = "const t = `a ${ { x: `b ${c}` }.x } d`; import after from 'after';";
    assert.deepEqual(importSpecifiers(src), ['after']);
  });

  it('does not take a dynamic import of a computed name', () => {
    assert.deepEqual(importSpecifiers('await import(name); await import(`x`);'), []);
  });
});

describe('packageOf', () => {
  it('names the package of a bare specifier, scoped or not, without its subpath', () => {
    assert.equal(packageOf('fastify'), 'fastify');
    assert.equal(packageOf('ftp-srv/src/commands/registry'), 'ftp-srv');
    assert.equal(packageOf('@nondivy/storage/filenames'), '@nondivy/storage');
    assert.equal(packageOf('@fastify/swagger'), '@fastify/swagger');
  });

  it("skips paths and Node's own modules", () => {
    for (const s of ['./x.js', '../y/z.js', '/abs/path.js', 'node:fs', 'node:stream/web', 'fs', 'path']) assert.equal(packageOf(s), null, s);
  });
});
