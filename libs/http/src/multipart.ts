/**
 * A multipart/form-data reader (RFC 7578) for upload bodies read in large reused buffers.
 *
 * The parser is synchronous and copies no file bytes: it turns each chunk it is given into events,
 * the file's bytes being views of that chunk (a few bytes that may begin the next delimiter are held
 * back, copied, until the next chunk tells). `formParts` drives it over an upload body whose chunks
 * are lent (see @nondivy/runtime's `LentChunks`) and hands the file's bytes on with the same promise:
 * each valid until its consumer has asked for two more.
 *
 * Everything about a part that is not its file's bytes is bounded: its header block, the number of
 * header lines, a field's name and value, the number of parts, fields and files. No pattern runs over
 * the body; the delimiter is found with `Buffer.indexOf`, and a chunk is looked at once.
 */

/** A multipart body the reader refuses: `status` 400 (malformed) or 413 (a limit). */
export class MultipartError extends Error {
  constructor(
    message: string,
    readonly status: 400 | 413,
  ) {
    super(message);
    this.name = 'MultipartError';
  }
}

export interface MultipartLimits {
  /** Bytes of one part's header block (its lines and the blank line that ends it). */
  headerBytes: number;
  /** Header lines of one part. */
  headerPairs: number;
  parts: number;
  files: number;
  fields: number;
  /** Bytes of a field's name. */
  fieldNameBytes: number;
  /** Bytes of a field's value. */
  fieldBytes: number;
}

export type MultipartEvent =
  | { type: 'field'; name: string; value: string; mimetype: string }
  | { type: 'file'; name: string; filename: string; mimetype: string }
  | { type: 'data'; chunk: Buffer }
  | { type: 'fileEnd' };

/** The longest boundary taken: RFC 2046 allows 70 characters; some clients go a little further. */
const MAX_BOUNDARY = 128;
const CR = 13;
const LF = 10;
const DASH = 45;
const SPACE = 32;
const TAB = 9;

/**
 * The boundary of a multipart/form-data Content-Type, or a 400 naming what is wrong. The parameter
 * may be quoted; it is case-sensitive.
 */
export function boundaryOf(contentType: string): string {
  const params = parseParameters(contentType.slice(contentType.indexOf(';') + 1));
  const boundary = params.get('boundary');
  if (boundary === undefined || boundary.length === 0) throw new MultipartError('no boundary in the Content-Type', 400);
  if (boundary.length > MAX_BOUNDARY) throw new MultipartError(`the boundary is longer than ${MAX_BOUNDARY} characters`, 400);
  for (let i = 0; i < boundary.length; i++) {
    const c = boundary.charCodeAt(i);
    if (c < 32 || c > 126) throw new MultipartError('the boundary holds a character outside printable ASCII', 400);
  }
  return boundary;
}

/**
 * `; name=value; name="quoted \" value"` → a map of lower-cased names to values (the first of a
 * repeated name). A scanner, not a pattern: linear in the text whatever it holds. In a quoted value
 * a backslash escapes a quote or a backslash and is kept before anything else (a Windows path sent
 * by an old browser keeps its backslashes). Names ending in `*` are RFC 8187's extended values,
 * `charset'language'percent-encoded`: decoded here (UTF-8 or ISO-8859-1) under the name without
 * the star, and preferred to the plain one.
 */
export function parseParameters(text: string): Map<string, string> {
  const out = new Map<string, string>();
  const extended = new Map<string, string>();
  const n = text.length;
  let i = 0;
  const skipSpace = () => {
    while (i < n && (text[i] === ' ' || text[i] === '\t')) i++;
  };
  while (i < n) {
    skipSpace();
    const nameStart = i;
    while (i < n && text[i] !== '=' && text[i] !== ';') i++;
    const name = text.slice(nameStart, i).trim().toLowerCase();
    if (i >= n || text[i] === ';') {
      i++;
      continue; // a name without a value (or an empty slot): ignored
    }
    i++; // '='
    skipSpace();
    let value = '';
    if (text[i] === '"') {
      i++;
      while (i < n && text[i] !== '"') {
        if (text[i] === '\\' && i + 1 < n && (text[i + 1] === '"' || text[i + 1] === '\\')) i++;
        value += text[i];
        i++;
      }
      i++; // the closing quote (or past the end: an unclosed quote ends with the text)
      while (i < n && text[i] !== ';') i++; // anything between the closing quote and the next ';'
    } else {
      const start = i;
      while (i < n && text[i] !== ';') i++;
      value = text.slice(start, i).trim();
    }
    i++; // ';'
    if (name.length === 0) continue;
    if (name.endsWith('*')) {
      const decoded = decodeExtended(value);
      const plain = name.slice(0, -1);
      if (decoded !== null && !extended.has(plain)) extended.set(plain, decoded);
    } else if (!out.has(name)) {
      out.set(name, value);
    }
  }
  for (const [name, value] of extended) out.set(name, value);
  return out;
}

/** RFC 8187's `charset'language'value` (UTF-8 or ISO-8859-1), or null when it is not that. */
function decodeExtended(value: string): string | null {
  const first = value.indexOf("'");
  const second = first < 0 ? -1 : value.indexOf("'", first + 1);
  if (second < 0) return null;
  const charset = value.slice(0, first).toLowerCase();
  if (charset !== 'utf-8' && charset !== 'iso-8859-1') return null;
  const encoded = value.slice(second + 1);
  const bytes: number[] = [];
  for (let i = 0; i < encoded.length; i++) {
    const c = encoded.charCodeAt(i);
    if (c === 37 /* % */ && i + 2 < encoded.length + 0 && isHex(encoded.charCodeAt(i + 1)) && isHex(encoded.charCodeAt(i + 2))) {
      bytes.push(Number.parseInt(encoded.slice(i + 1, i + 3), 16));
      i += 2;
    } else if (c < 128) {
      bytes.push(c);
    } else {
      return null;
    }
  }
  return Buffer.from(bytes).toString(charset === 'utf-8' ? 'utf8' : 'latin1');
}

const isHex = (c: number) => (c >= 48 && c <= 57) || (c >= 65 && c <= 70) || (c >= 97 && c <= 102);

const enum State {
  /** Before the first delimiter: bytes are ignored. */
  Preamble,
  /** Just after a delimiter: `--` (the last), or padding and CRLF (a part follows). */
  AfterDelimiter,
  AfterDelimiterDash,
  Padding,
  AfterDelimiterCR,
  Headers,
  Body,
  /** After the close delimiter: the epilogue, ignored. */
  Done,
}

/**
 * The synchronous parser: `write` turns each chunk into events pushed onto the array given, `end`
 * checks that the body was whole. Throws `MultipartError`.
 */
export class MultipartParser {
  /** `\r\n--boundary`: what ends a part's body. */
  private readonly delimiter: Buffer;
  private state = State.Preamble;
  /** Bytes that may begin the delimiter, held from the end of the previous chunk (a copy). */
  private carry: Buffer;
  /** The part's header block as it comes, after a virtual CRLF (so that an empty block is found as CRLFCRLF). */
  private readonly head: Buffer;
  private headLength = 0;
  private padding = 0;
  private parts = 0;
  private files = 0;
  private fields = 0;
  /** The part being read: a file (its bytes are events) or a field (its bytes gathered here). */
  private part: { file: true } | { file: false; name: string; mimetype: string; charset: BufferEncoding; value: Buffer[]; size: number } | null = null;
  private sawBytes = false;

  constructor(
    boundary: string,
    private readonly limits: MultipartLimits,
  ) {
    this.delimiter = Buffer.from(`\r\n--${boundary}`, 'latin1');
    // The body's first delimiter may have no CRLF before it: as if there were one.
    this.carry = Buffer.from('\r\n', 'latin1');
    this.head = Buffer.alloc(limits.headerBytes + 2);
  }

  write(chunk: Buffer, events: MultipartEvent[]): void {
    if (chunk.length > 0) this.sawBytes = true;
    let at = 0;
    while (at < chunk.length) {
      switch (this.state) {
        case State.Preamble:
        case State.Body:
          at = this.body(chunk, at, events);
          break;
        case State.AfterDelimiter: {
          const c = chunk[at++];
          if (c === DASH) this.state = State.AfterDelimiterDash;
          else if (c === CR) this.state = State.AfterDelimiterCR;
          else if (c === SPACE || c === TAB) this.state = State.Padding;
          else throw new MultipartError('a delimiter is followed by neither a line end nor "--"', 400);
          break;
        }
        case State.AfterDelimiterDash:
          if (chunk[at++] !== DASH) throw new MultipartError('a delimiter is followed by a single "-"', 400);
          this.state = State.Done;
          break;
        case State.Padding: {
          const c = chunk[at++];
          if (c === CR) this.state = State.AfterDelimiterCR;
          else if (c !== SPACE && c !== TAB) throw new MultipartError('a delimiter is followed by neither a line end nor "--"', 400);
          else if (++this.padding > this.limits.headerBytes) throw new MultipartError('a part\'s headers are too large', 400);
          break;
        }
        case State.AfterDelimiterCR:
          if (chunk[at++] !== LF) throw new MultipartError('a delimiter is followed by a bare CR', 400);
          if (++this.parts > this.limits.parts) throw new MultipartError(`more than ${this.limits.parts} parts`, 413);
          this.state = State.Headers;
          this.head[0] = CR;
          this.head[1] = LF;
          this.headLength = 2;
          this.padding = 0;
          break;
        case State.Headers:
          at = this.headers(chunk, at, events);
          break;
        case State.Done:
          return; // the epilogue
      }
    }
  }

  /** Checks the body ended where it may: after the close delimiter, or before any byte (an empty form). */
  end(): void {
    if (this.state !== State.Done && this.sawBytes) throw new MultipartError('Unexpected end of multipart data', 400);
  }

  /** Whether the close delimiter has been read. */
  get done(): boolean {
    return this.state === State.Done;
  }

  /** A part's body (or the preamble) from `at`: its bytes out, up to the delimiter. Returns where it stopped. */
  private body(chunk: Buffer, at: number, events: MultipartEvent[]): number {
    const d = this.delimiter;
    if (this.carry.length > 0) {
      // The held bytes begin the delimiter; does this chunk finish it? A delimiter can only begin at
      // a CR, and the held bytes hold only one (their first), so if not, all of them are the part's.
      const held = this.carry;
      const need = d.length - held.length;
      const have = Math.min(need, chunk.length - at);
      if (chunk.compare(d, held.length, held.length + have, at, at + have) === 0) {
        if (have < need) {
          this.carry = Buffer.concat([held, chunk.subarray(at, at + have)]);
          return at + have;
        }
        this.carry = EMPTY;
        this.delimiterFound(events);
        return at + have;
      }
      this.carry = EMPTY;
      this.out(held, events);
    }
    const found = chunk.indexOf(d, at);
    if (found >= 0) {
      if (found > at) this.out(chunk.subarray(at, found), events);
      this.delimiterFound(events);
      return found + d.length;
    }
    // Not here: the chunk's end may begin one (after its last CR, if that is near the end).
    let keep = chunk.length;
    const cr = chunk.lastIndexOf(CR);
    if (cr >= at && cr > chunk.length - d.length && chunk.compare(d, 0, chunk.length - cr, cr) === 0) keep = cr;
    if (keep > at) this.out(chunk.subarray(at, keep), events);
    if (keep < chunk.length) this.carry = Buffer.from(chunk.subarray(keep));
    return chunk.length;
  }

  /** Bytes of the part being read (the preamble's are dropped). */
  private out(bytes: Buffer, events: MultipartEvent[]): void {
    const part = this.part;
    if (this.state === State.Preamble || part === null) return;
    if (part.file) {
      events.push({ type: 'data', chunk: bytes });
      return;
    }
    part.size += bytes.length;
    if (part.size > this.limits.fieldBytes) throw new MultipartError(`the field "${part.name.slice(0, 40)}" larger than ${this.limits.fieldBytes} bytes`, 413);
    part.value.push(Buffer.from(bytes));
  }

  private delimiterFound(events: MultipartEvent[]): void {
    const part = this.part;
    if (part) {
      if (part.file) events.push({ type: 'fileEnd' });
      else events.push({ type: 'field', name: part.name, mimetype: part.mimetype, value: Buffer.concat(part.value).toString(part.charset) });
      this.part = null;
    }
    this.state = State.AfterDelimiter;
  }

  /** A part's header block from `at`, up to the blank line; then the part begins. */
  private headers(chunk: Buffer, at: number, events: MultipartEvent[]): number {
    const room = this.head.length - this.headLength;
    const take = Math.min(room, chunk.length - at);
    chunk.copy(this.head, this.headLength, at, at + take);
    const before = this.headLength;
    this.headLength += take;
    const end = this.head.subarray(0, this.headLength).indexOf(HEADERS_END, Math.max(0, before - 3));
    if (end < 0) {
      if (this.headLength === this.head.length) throw new MultipartError(`a part's headers are larger than ${this.limits.headerBytes} bytes`, 400);
      return at + take;
    }
    this.startPart(this.head.toString('utf8', 2, end + 2), events);
    this.state = State.Body;
    return at + (end + 4 - before);
  }

  private startPart(block: string, events: MultipartEvent[]): void {
    const headers = new Map<string, string>();
    let pairs = 0;
    for (const line of block.split('\r\n')) {
      if (line.length === 0) continue;
      if (++pairs > this.limits.headerPairs) throw new MultipartError(`a part has more than ${this.limits.headerPairs} header lines`, 400);
      const colon = line.indexOf(':');
      if (colon <= 0) throw new MultipartError('a part\'s header line has no name', 400);
      const name = line.slice(0, colon).trim().toLowerCase();
      if (!headers.has(name)) headers.set(name, line.slice(colon + 1).trim());
    }
    const disposition = headers.get('content-disposition');
    if (disposition === undefined) throw new MultipartError('a part has no Content-Disposition', 400);
    const semi = disposition.indexOf(';');
    if ((semi < 0 ? disposition : disposition.slice(0, semi)).trim().toLowerCase() !== 'form-data') {
      throw new MultipartError('a part\'s Content-Disposition is not form-data', 400);
    }
    const params = semi < 0 ? new Map<string, string>() : parseParameters(disposition.slice(semi + 1));
    const name = params.get('name');
    if (name === undefined) throw new MultipartError('a part has no name', 400);
    if (Buffer.byteLength(name) > this.limits.fieldNameBytes) throw new MultipartError(`a part's name is longer than ${this.limits.fieldNameBytes} bytes`, 400);
    const filename = params.get('filename');
    const type = headers.get('content-type') ?? '';
    const typeSemi = type.indexOf(';');
    const mimetype = (typeSemi < 0 ? type : type.slice(0, typeSemi)).trim().toLowerCase();
    if (filename !== undefined || mimetype === 'application/octet-stream') {
      if (++this.files > this.limits.files) throw new MultipartError(`more than ${this.limits.files} file${this.limits.files === 1 ? '' : 's'}`, 413);
      this.part = { file: true };
      events.push({ type: 'file', name, filename: filename ?? '', mimetype });
    } else {
      if (++this.fields > this.limits.fields) throw new MultipartError(`more than ${this.limits.fields} fields`, 413);
      const charset = typeSemi < 0 ? undefined : parseParameters(type.slice(typeSemi + 1)).get('charset')?.toLowerCase();
      this.part = { file: false, name, mimetype: mimetype || 'text/plain', charset: charset === 'iso-8859-1' || charset === 'latin1' ? 'latin1' : 'utf8', value: [], size: 0 };
    }
  }
}

const EMPTY = Buffer.alloc(0);
const NOTHING: MultipartEvent = { type: 'data', chunk: EMPTY };
const HEADERS_END = Buffer.from('\r\n\r\n', 'latin1');

export type FormPart =
  | { type: 'field'; name: string; value: string; mimetype: string }
  | { type: 'file'; name: string; filename: string; mimetype: string; bytes: AsyncIterable<Buffer> };

/** Bytes read after the close delimiter before the reader stops (a client's trailing line end, not a second body). */
const EPILOGUE_BYTES = 64 * 1024;

/**
 * The parts of a multipart/form-data body, in order. A file part's `bytes` must be read to its end
 * before the next part is asked for; its chunks are lent as the body's are (each valid until the
 * consumer has asked for two more). The body is read to its end (a short epilogue included) unless
 * the consumer stops early. Fails with `MultipartError`, or with the body's own failure.
 */
export async function* formParts(body: AsyncIterable<Buffer>, boundary: string, limits: MultipartLimits): AsyncGenerator<FormPart> {
  const parser = new MultipartParser(boundary, limits);
  const source = body[Symbol.asyncIterator]();
  let events: MultipartEvent[] = [];
  let next = 0;
  let ended = false;
  /**
   * The next event, reading more of the body when none is left; null once the body has ended.
   * Within a file (`inFile`), at most one chunk of the body is read per call: a chunk that brings no
   * event (the beginning of a delimiter, held back) gives an empty one instead, so that the file's
   * consumer asks again before another chunk is read — the chunk its last bytes came from stays
   * valid until it has asked for two more, as the body promised.
   */
  const event = async (inFile = false): Promise<MultipartEvent | null> => {
    let reads = 0;
    while (next >= events.length) {
      if (ended || parser.done) return null;
      if (inFile && reads++ > 0) return NOTHING;
      events = [];
      next = 0;
      const read = await source.next();
      if (read.done) {
        ended = true;
        parser.end();
      } else {
        parser.write(read.value, events);
      }
    }
    return events[next++]!;
  };
  try {
    for (let e = await event(); e !== null; e = await event()) {
      if (e.type === 'field') {
        yield e;
      } else if (e.type === 'file') {
        let whole = false;
        const bytes = async function* (): AsyncGenerator<Buffer> {
          for (let d = await event(true); d !== null; d = await event(true)) {
            if (d.type === 'fileEnd') {
              whole = true;
              return;
            }
            if (d.type === 'data') yield d.chunk;
          }
          throw new MultipartError('Unexpected end of multipart data', 400);
        };
        yield { type: 'file', name: e.name, filename: e.filename, mimetype: e.mimetype, bytes: bytes() };
        if (!whole) throw new MultipartError('a file part was not read to its end', 400);
      }
    }
    // The close delimiter is in: what may follow it is read (so that the client is not cut off while
    // it sends a trailing line end), up to a bound.
    let epilogue = 0;
    while (!ended && epilogue <= EPILOGUE_BYTES) {
      const read = await source.next();
      if (read.done) ended = true;
      else epilogue += read.value.length;
    }
  } finally {
    if (!ended) await source.return?.();
  }
}
