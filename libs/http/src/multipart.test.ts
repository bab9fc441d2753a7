import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import busboy from '@fastify/busboy';
import { boundaryOf, formParts, MultipartError, MultipartParser, parseParameters, type FormPart, type MultipartEvent, type MultipartLimits } from './multipart.js';

const LIMITS: MultipartLimits = { headerBytes: 16 * 1024, headerPairs: 32, parts: 12, files: 1, fields: 8, fieldNameBytes: 64, fieldBytes: 16 * 1024 };

interface Parsed {
  fields: [string, string][];
  files: { name: string; filename: string; mimetype: string; bytes: Buffer }[];
}

/** Parses `body` fed in the pieces `sizes` cuts it into (cycled), as our parser does. */
function parse(boundary: string, body: Buffer, sizes: number[], limits = LIMITS): Parsed {
  const parser = new MultipartParser(boundary, limits);
  const out: Parsed = { fields: [], files: [] };
  let file: Buffer[] | null = null;
  const take = (events: MultipartEvent[]) => {
    for (const e of events) {
      if (e.type === 'field') out.fields.push([e.name, e.value]);
      else if (e.type === 'file') {
        file = [];
        out.files.push({ name: e.name, filename: e.filename, mimetype: e.mimetype, bytes: Buffer.alloc(0) });
      } else if (e.type === 'data') file!.push(Buffer.from(e.chunk));
      else {
        out.files[out.files.length - 1]!.bytes = Buffer.concat(file!);
        file = null;
      }
    }
  };
  let at = 0;
  for (let i = 0; at < body.length; i++) {
    const size = Math.max(1, sizes[i % sizes.length]!);
    const events: MultipartEvent[] = [];
    parser.write(body.subarray(at, at + size), events);
    take(events);
    at += size;
  }
  parser.end();
  return out;
}

/** The same body through @fastify/busboy (the parser @fastify/multipart is built on). */
function parseWithBusboy(boundary: string, body: Buffer): Promise<Parsed> {
  return new Promise((resolve, reject) => {
    const out: Parsed = { fields: [], files: [] };
    const bb = busboy({ headers: { 'content-type': `multipart/form-data; boundary=${boundary}` }, preservePath: true });
    bb.on('field', (name: string, value: string) => out.fields.push([name, value]));
    bb.on('file', (name: string, stream: NodeJS.ReadableStream, filename: string, _enc: string, mimetype: string) => {
      const chunks: Buffer[] = [];
      const entry = { name, filename, mimetype, bytes: Buffer.alloc(0) };
      out.files.push(entry);
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => (entry.bytes = Buffer.concat(chunks)));
    });
    bb.on('error', reject);
    bb.on('finish', () => setImmediate(() => resolve(out)));
    bb.end(body);
  });
}

const B = 'abc123';
const fieldPart = (name: string, value: string, boundary = B) => `--${boundary}\r\nContent-Disposition: form-data; name="${name}"\r\n\r\n${value}\r\n`;
const fileHead = (filename: string, boundary = B, type = 'application/octet-stream') =>
  `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="${filename}"\r\nContent-Type: ${type}\r\n\r\n`;
const body = (...pieces: (string | Buffer)[]) => Buffer.concat(pieces.map((p) => (typeof p === 'string' ? Buffer.from(p) : p)));

/** File bytes that hold the delimiter's beginnings, CRs and LFs everywhere: what must not end a part early. */
function trickyBytes(boundary: string, size: number): Buffer {
  const delimiter = Buffer.from(`\r\n--${boundary}`);
  const out = randomBytes(size);
  for (let at = 0; at + delimiter.length < size; at += 97) {
    const k = 1 + (at % (delimiter.length - 1)); // a strict prefix: never the whole delimiter
    delimiter.copy(out, at, 0, k);
    out[at + k] = 0; // and then not the rest of it
  }
  return out;
}

const rejects = (fn: () => unknown, status: 400 | 413, message: RegExp) =>
  assert.throws(fn, (err: unknown) => err instanceof MultipartError && err.status === status && message.test(err.message));

describe('MultipartParser', () => {
  it('reads fields and a file whatever the pieces the body arrives in (every cut of a small body)', () => {
    const file = trickyBytes(B, 300);
    const whole = body('preamble to ignore\r\n', fieldPart('title', 'Kind of Blue'), fileHead('a.bin'), file, '\r\n', fieldPart('tags', 'jazz'), `--${B}--\r\nepilogue`);
    for (let cut = 1; cut < whole.length; cut++) {
      const got = parse(B, whole, [cut, whole.length]);
      assert.deepEqual(got.fields, [['title', 'Kind of Blue'], ['tags', 'jazz']], `cut at ${cut}`);
      assert.equal(got.files.length, 1);
      assert.ok(got.files[0]!.bytes.equals(file), `file bytes, cut at ${cut}`);
    }
    for (const size of [1, 2, 3, 7, 64]) assert.ok(parse(B, whole, [size]).files[0]!.bytes.equals(file), `pieces of ${size}`);
  });

  it('passes large pieces on as views, without copying (bar the few bytes that may begin a delimiter)', () => {
    const file = randomBytes(1 << 20);
    file[file.length - 1] = 0; // no CR at the very end
    const chunk = body(fileHead('big.bin'), file, `\r\n--${B}--\r\n`);
    const parser = new MultipartParser(B, LIMITS);
    const events: MultipartEvent[] = [];
    parser.write(chunk, events);
    parser.end();
    const data = events.filter((e) => e.type === 'data');
    assert.equal(data.length, 1);
    assert.equal(data[0]!.chunk.buffer, chunk.buffer, 'a view of the chunk given');
    assert.ok(data[0]!.chunk.equals(file));
  });

  it('agrees with busboy on what clients send (quoting, padding, extended names, types, preamble)', async () => {
    const cases: [string, Buffer][] = [
      ['curl', body(fileHead('song.flac', '------------------------d74496d66958873e', 'audio/flac'), trickyBytes('------------------------d74496d66958873e', 5000), '\r\n--------------------------d74496d66958873e--\r\n')],
      ['browser, quote and newline escaped', body(`--${B}\r\nContent-Disposition: form-data; name="file"; filename="a%22b%0Ac.txt"\r\nContent-Type: text/plain\r\n\r\nhi\r\n--${B}--\r\n`)],
      ['escaped quote, backslash kept before others', body(`--${B}\r\nContent-Disposition: form-data; name="file"; filename="a\\"b\\\\c\\d.txt"\r\n\r\nx\r\n--${B}--`)],
      ['unquoted values and spaces', body(`--${B}\r\ncontent-disposition:   form-data ;  name=title  \r\n\r\nT\r\n${fileHead('f.bin')}\r\n--${B}--\r\n`)],
      ['UTF-8 names and values', body(fieldPart('title', 'Ça été — 日本'), `--${B}\r\nContent-Disposition: form-data; name="file"; filename="été 日本.txt"\r\n\r\nok\r\n--${B}--\r\n`)],
      ['RFC 8187 extended filename', body(`--${B}\r\nContent-Disposition: form-data; name="file"; filename*=utf-8''%C3%A9t%C3%A9.txt\r\n\r\nok\r\n--${B}--\r\n`)],
      ['octet-stream part without a filename is a file', body(`--${B}\r\nContent-Disposition: form-data; name="file"\r\nContent-Type: application/octet-stream\r\n\r\nraw\r\n--${B}--\r\n`)],
      ['empty file and empty field', body(fieldPart('title', ''), fileHead('empty.bin'), `\r\n--${B}--\r\n`)],
      ['preamble and epilogue', body('This is a preamble.\r\n\r\n', fieldPart('kind', 'music'), fileHead('x.bin'), 'data\r\n', `--${B}--\r\nand an epilogue\r\n`)],
      ['quoted boundary-like text in a value', body(fieldPart('description', `not at a line start: --${B}\r\n-- ${B}`), fileHead('y.bin'), 'z\r\n', `--${B}--`)],
    ];
    for (const [name, whole] of cases) {
      const boundary = name === 'curl' ? '------------------------d74496d66958873e' : B;
      const theirs = await parseWithBusboy(boundary, whole);
      for (const sizes of [[whole.length], [1], [5, 11, 3]]) {
        const ours = parse(boundary, whole, sizes);
        assert.deepEqual(ours.fields, theirs.fields, `${name}: fields`);
        assert.equal(ours.files.length, theirs.files.length, `${name}: files`);
        ours.files.forEach((f, i) => {
          const t = theirs.files[i]!;
          assert.equal(f.name, t.name, `${name}: part name`);
          assert.equal(f.filename, t.filename ?? '', `${name}: filename`);
          assert.ok(f.bytes.equals(t.bytes), `${name}: file bytes`);
          // busboy says text/plain for a part that names no type; ours leaves it empty (the library then goes by the file name).
          if (!/content-type/i.test(whole.toString('latin1'))) assert.equal(f.mimetype, '');
          else assert.equal(f.mimetype, t.mimetype, `${name}: type`);
        });
      }
    }
  });

  it('takes the transport padding RFC 2046 allows after a delimiter (busboy drops such a part)', () => {
    const padded = body(`--${B}  \t\r\nContent-Disposition: form-data; name="title"\r\n\r\nT\r\n--${B} \r\nContent-Disposition: form-data; name="file"; filename="x"\r\n\r\nbytes\r\n--${B}--`);
    for (const size of [1, 4, padded.length]) {
      const got = parse(B, padded, [size]);
      assert.deepEqual(got.fields, [['title', 'T']]);
      assert.equal(got.files[0]!.bytes.toString(), 'bytes');
    }
  });

  it('accepts an empty body (an empty form) and refuses a body cut short anywhere', () => {
    assert.deepEqual(parse(B, Buffer.alloc(0), [1]), { fields: [], files: [] });
    const whole = body(fieldPart('title', 'T'), fileHead('a.bin'), 'xyz\r\n', `--${B}--`);
    for (let end = 1; end < whole.length; end++) {
      rejects(() => parse(B, whole.subarray(0, end), [3]), 400, /Unexpected end/);
    }
    rejects(() => parse(B, Buffer.from('this is not multipart at all'), [8]), 400, /Unexpected end/);
  });

  it('refuses malformed delimiters and headers with a 400 that says what', () => {
    rejects(() => parse(B, body(`--${B}X\r\n`), [100]), 400, /neither a line end nor "--"/);
    rejects(() => parse(B, body(`--${B}-x`), [100]), 400, /single "-"/);
    rejects(() => parse(B, body(`--${B}\rX`), [100]), 400, /bare CR/);
    rejects(() => parse(B, body(`--${B}\r\nX-Other: 1\r\n\r\nv\r\n--${B}--`), [100]), 400, /no Content-Disposition/);
    rejects(() => parse(B, body(`--${B}\r\nContent-Disposition: attachment; name="a"\r\n\r\nv\r\n--${B}--`), [100]), 400, /not form-data/);
    rejects(() => parse(B, body(`--${B}\r\nContent-Disposition: form-data\r\n\r\nv\r\n--${B}--`), [100]), 400, /no name/);
    rejects(() => parse(B, body(`--${B}\r\nno colon here\r\n\r\nv\r\n--${B}--`), [100]), 400, /no name/);
    rejects(() => parse(B, body(`--${B}\r\nContent-Disposition: form-data; name="${'n'.repeat(65)}"\r\n\r\nv\r\n--${B}--`), [100]), 400, /longer than 64/);
  });

  it('bounds what is not the file: header block, header lines, padding, parts, fields, files, field size', () => {
    const small = { ...LIMITS, headerBytes: 200 };
    rejects(() => parse(B, body(`--${B}\r\nContent-Disposition: form-data; name="a"\r\nX: ${'y'.repeat(300)}\r\n\r\nv\r\n--${B}--`), [7], small), 400, /headers are larger than 200/);
    rejects(() => parse(B, body(`--${B}\r\n${'X: y\r\n'.repeat(40)}\r\nv\r\n--${B}--`), [7]), 400, /more than 32 header lines/);
    rejects(() => parse(B, body(`--${B}${' '.repeat(300)}\r\n`), [7], small), 400, /too large/);
    const many = (n: number, name = (i: number) => `f${i}`) => body(...Array.from({ length: n }, (_, i) => fieldPart(name(i), 'v')), `--${B}--`);
    rejects(() => parse(B, many(9), [13]), 413, /more than 8 fields/);
    rejects(() => parse(B, many(13), [13], { ...LIMITS, fields: 100 }), 413, /more than 12 parts/);
    rejects(() => parse(B, body(fileHead('a'), 'x\r\n', fileHead('b'), 'y\r\n', `--${B}--`), [13]), 413, /more than 1 file/);
    rejects(() => parse(B, body(fieldPart('description', 'd'.repeat(16 * 1024 + 1)), `--${B}--`), [1000]), 413, /larger than 16384 bytes/);
    assert.equal(parse(B, body(fieldPart('description', 'd'.repeat(16 * 1024)), `--${B}--`), [1000]).fields[0]![1].length, 16 * 1024);
  });
});

describe('boundaryOf and parseParameters', () => {
  it('reads the boundary, quoted or not, and refuses a missing, long or unprintable one', () => {
    assert.equal(boundaryOf('multipart/form-data; boundary=abc'), 'abc');
    assert.equal(boundaryOf('multipart/form-data; charset=utf-8; BOUNDARY="a b;c"'), 'a b;c');
    assert.equal(boundaryOf('multipart/form-data;boundary=----WebKitFormBoundaryx7Yz'), '----WebKitFormBoundaryx7Yz');
    assert.throws(() => boundaryOf('multipart/form-data'), /no boundary/);
    assert.throws(() => boundaryOf('multipart/form-data; boundary='), /no boundary/);
    assert.throws(() => boundaryOf(`multipart/form-data; boundary=${'b'.repeat(300)}`), /longer than 128/);
    assert.throws(() => boundaryOf('multipart/form-data; boundary="a\u0001b"'), /printable ASCII/);
  });

  it('scans parameters in linear time whatever the text', () => {
    assert.deepEqual([...parseParameters(' name="x"; filename="y.txt"; name="second"')], [['name', 'x'], ['filename', 'y.txt']]);
    assert.deepEqual([...parseParameters('a; b=; =c; d="unclosed')], [['b', ''], ['d', 'unclosed']]);
    assert.equal(parseParameters("filename=\"plain.txt\"; filename*=UTF-8''%E2%82%AC.txt").get('filename'), '€.txt');
    assert.equal(parseParameters("filename*=koi8-r''%E2; filename=\"kept.txt\"").get('filename'), 'kept.txt', 'an unknown charset is ignored');
    const hostile = `name="${'\\"'.repeat(200_000)}`;
    const t0 = process.hrtime.bigint();
    assert.equal(parseParameters(hostile).get('name'), '"'.repeat(200_000));
    assert.ok(Number(process.hrtime.bigint() - t0) / 1e6 < 1000, 'well under a second for 400 kB');
  });
});

describe('formParts', () => {
  /** Chunks lent as the socket reader lends them: two buffers in turn, each written over when the second chunk after it is asked for. */
  function lentChunks(whole: Buffer, size: number): AsyncIterable<Buffer> {
    const buffers = [Buffer.alloc(size), Buffer.alloc(size)];
    return {
      async *[Symbol.asyncIterator]() {
        for (let at = 0, k = 0; at < whole.length; at += size, k++) {
          const buffer = buffers[k % 2]!;
          buffer.fill(0xee);
          const n = whole.copy(buffer, 0, at, at + size);
          await new Promise((r) => setImmediate(r));
          yield buffer.subarray(0, n);
        }
      },
    };
  }

  it('lends the file bytes as the body lends its chunks: each intact until two more are asked for', async () => {
    const file = trickyBytes(B, 200_000);
    const whole = body(fieldPart('title', 'T'), fileHead('a.bin'), file, '\r\n', fieldPart('kind', 'music'), `--${B}--\r\n`);
    for (const size of [4096, 65_536, 1000, 37]) {
      const fields: [string, string][] = [];
      const got: Buffer[] = [];
      for await (const part of formParts(lentChunks(whole, size), B, LIMITS)) {
        if (part.type === 'field') {
          fields.push([part.name, part.value]);
          continue;
        }
        assert.equal(part.filename, 'a.bin');
        let previous: { chunk: Buffer; copy: Buffer } | null = null;
        for await (const chunk of part.bytes) {
          // The chunk before this one is still what it was (the consumer may be writing it while it hashes this one).
          if (previous) assert.ok(previous.chunk.equals(previous.copy), `size ${size}: a chunk changed before two more were asked for`);
          previous = { chunk, copy: Buffer.from(chunk) };
          got.push(previous.copy);
        }
      }
      assert.deepEqual(fields, [['title', 'T'], ['kind', 'music']]);
      assert.ok(Buffer.concat(got).equals(file), `size ${size}: the file's bytes`);
    }
  });

  it('reads no second chunk of the body for one ask of the file\'s consumer (a chunk holding only the start of a delimiter)', async () => {
    /** The pieces given, lent in two buffers in turn (each written over when the second piece after it is asked for). */
    const lentPieces = (pieces: string[]): AsyncIterable<Buffer> => {
      const buffers = [Buffer.alloc(4096), Buffer.alloc(4096)];
      return {
        async *[Symbol.asyncIterator]() {
          for (let k = 0; k < pieces.length; k++) {
            const buffer = buffers[k % 2]!.fill(0xee);
            yield buffer.subarray(0, buffer.write(pieces[k]!, 'latin1'));
          }
        },
      };
    };
    const H = `--${B}\r\nContent-Disposition: form-data; name="file"; filename="a"\r\n\r\n`;
    const cases: [string[], string][] = [
      [[`${H}HELLO\r\n-`, '-ab', 'X-WORLD', `\r\n--${B}--`], 'HELLO\r\n--abX-WORLD'],
      [[`${H}HELLO`, '\r\n--ab', `c123--`], 'HELLO'],
      [[`${H}HELLO`, '\r', '\n', '-', `-${B}`, '--'], 'HELLO'],
    ];
    for (const [pieces, file] of cases) {
      const got: Buffer[] = [];
      for await (const part of formParts(lentPieces(pieces), B, LIMITS)) {
        if (part.type !== 'file') continue;
        let previous: { chunk: Buffer; copy: Buffer } | null = null;
        for await (const chunk of part.bytes) {
          if (previous) assert.ok(previous.chunk.equals(previous.copy), `${JSON.stringify(pieces)}: a chunk changed before two more were asked for`);
          previous = { chunk, copy: Buffer.from(chunk) };
          got.push(previous.copy);
        }
        // The consumer is done with its last chunk only once the part has ended.
        if (previous) assert.ok(previous.chunk.equals(previous.copy), `${JSON.stringify(pieces)}: the last chunk changed before the part ended`);
      }
      assert.equal(Buffer.concat(got).toString('latin1'), file);
    }
  });

  it('fails on a body cut short inside the file, and on a file part left unread', async () => {
    const whole = body(fileHead('a.bin'), randomBytes(5000));
    const read = async (parts: AsyncIterable<FormPart>, readFile: boolean) => {
      for await (const part of parts) if (part.type === 'file' && readFile) for await (const _ of part.bytes);
    };
    await assert.rejects(read(formParts(lentChunks(whole, 512), B, LIMITS), true), /Unexpected end of multipart data/);
    const full = body(fileHead('a.bin'), 'abc\r\n', fieldPart('title', 'T'), `--${B}--`);
    await assert.rejects(read(formParts(lentChunks(full, 512), B, LIMITS), false), /not read to its end/);
  });

  it('stops reading a long epilogue and releases the body', async () => {
    let returned = false;
    let read = 0;
    const whole = body(fileHead('a.bin'), 'abc\r\n', `--${B}--\r\n`);
    const source: AsyncIterable<Buffer> = {
      [Symbol.asyncIterator]: () => {
        let k = 0;
        return {
          next: async () => {
            read++;
            return { done: false, value: k++ === 0 ? whole : Buffer.alloc(16 * 1024, 0x41) };
          },
          return: async () => {
            returned = true;
            return { done: true, value: undefined };
          },
        };
      },
    };
    for await (const part of formParts(source, B, LIMITS)) if (part.type === 'file') for await (const _ of part.bytes);
    assert.ok(returned, 'the body was released');
    assert.ok(read <= 7, `read ${read} chunks: the epilogue is read up to 64 KiB`);
  });
});
