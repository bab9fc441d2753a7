/**
 * Reading the few things enrichment wants from an EPUB's XML (the rootfile of container.xml, the
 * Dublin Core fields of the package document) in one forward pass with `indexOf`, never with a
 * regular expression: the text is untrusted, and a backtracking pattern over it let a 2.5 KB file
 * hold the process for half a minute. Every loop here advances its position, so the cost is linear
 * in the text's length, whatever the markup (unclosed tags, comments or CDATA, huge attribute lists,
 * deep nesting).
 */

/** Longest raw text kept for one field; a longer field is dropped, with its reason. */
export const MAX_FIELD_CHARS = 16 * 1024;
/** Longest field value kept once cleaned. */
export const MAX_CLEAN_CHARS = 300;

const XML_ENTITIES: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" };
/** `&name;` or `&#1234;`/`&#x1F600;`: anything longer is not an entity we know. */
const MAX_ENTITY_CHARS = 10;

function isHexDigit(c: number): boolean {
  return (c >= 48 && c <= 57) || (c >= 65 && c <= 70) || (c >= 97 && c <= 102);
}
function isDigit(c: number): boolean {
  return c >= 48 && c <= 57;
}

/** One entity's replacement, or undefined to keep the text as it is. */
function entity(body: string): string | undefined {
  if (body[0] !== '#') return Object.hasOwn(XML_ENTITIES, body) ? XML_ENTITIES[body] : undefined;
  const hex = body[1] === 'x' || body[1] === 'X';
  const digits = body.slice(hex ? 2 : 1);
  if (digits.length === 0) return undefined;
  for (let i = 0; i < digits.length; i++) if (!(hex ? isHexDigit(digits.charCodeAt(i)) : isDigit(digits.charCodeAt(i)))) return undefined;
  const code = parseInt(digits, hex ? 16 : 10);
  return code > 0 && code <= 0x10ffff ? String.fromCodePoint(code) : undefined;
}

/** Replaces the XML entities of a text (character data, not markup); unknown ones stay as written. */
export function decodeEntities(s: string): string {
  let amp = s.indexOf('&');
  if (amp < 0) return s;
  let out = '';
  let from = 0;
  while (amp >= 0) {
    const semi = s.indexOf(';', amp + 1);
    if (semi < 0) break;
    if (semi - amp - 1 <= MAX_ENTITY_CHARS) {
      const value = entity(s.slice(amp + 1, semi));
      if (value !== undefined) {
        out += s.slice(from, amp) + value;
        from = semi + 1;
        amp = s.indexOf('&', from);
        continue;
      }
    }
    amp = s.indexOf('&', amp + 1);
  }
  return out + s.slice(from);
}

const isSpace = (c: number) => c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d || c === 0x0c || c === 0x0b || c === 0xa0 || c === 0x2028 || c === 0x2029 || c === 0xfeff || (c >= 0x2000 && c <= 0x200a) || c === 0x3000 || c === 0x1680 || c === 0x202f || c === 0x205f;
const isControl = (c: number) => c <= 0x1f || c === 0x7f;

/**
 * A field value as it is stored: control characters and runs of white space become one space, ends
 * trimmed, at most `max` characters. Reads at most about `max` characters past the leading space.
 */
export function clean(v: unknown, max = MAX_CLEAN_CHARS): string | undefined {
  if (typeof v !== 'string') return undefined;
  let out = '';
  let pendingSpace = false;
  for (let i = 0; i < v.length && out.length < max; i++) {
    const c = v.charCodeAt(i);
    if (isControl(c) || isSpace(c)) {
      pendingSpace = out.length > 0;
      continue;
    }
    if (pendingSpace) {
      out += ' ';
      pendingSpace = false;
      if (out.length >= max) break;
    }
    out += v[i];
  }
  out = out.slice(0, max).trimEnd();
  return out || undefined;
}

/** The value of the first `full-path="…"` (or '…') attribute of container.xml, entities decoded. */
export function rootfilePath(container: string): string | undefined {
  let at = container.indexOf('full-path');
  while (at >= 0) {
    let i = at + 'full-path'.length;
    while (i < container.length && isSpace(container.charCodeAt(i))) i++;
    if (container[i] === '=') {
      i++;
      while (i < container.length && isSpace(container.charCodeAt(i))) i++;
      const quote = container[i];
      if (quote === '"' || quote === "'") {
        const end = container.indexOf(quote, i + 1);
        if (end < 0) return undefined;
        const value = container.slice(i + 1, end);
        if (value) return decodeEntities(value);
      }
    }
    at = container.indexOf('full-path', i);
  }
  return undefined;
}

/** What was read of the fields asked for, and why the others were left out. */
export interface ScannedFields {
  values: Record<string, string>;
  /** Field name → reason it was dropped (not closed, too long). Absent fields are simply not there. */
  dropped: Record<string, string>;
}

interface Capture {
  tag: string;
  text: string;
  tooLong: boolean;
}

/** The end of a tag that starts at `lt` (`<`): the index of its `>`, quotes respected; -1 if none. */
function tagEnd(xml: string, lt: number): number {
  let i = lt + 1;
  for (;;) {
    const gt = xml.indexOf('>', i);
    if (gt < 0) return -1;
    // A `>` inside a quoted attribute value does not end the tag: skip over quoted values.
    let j = i;
    let quoteFree = true;
    while (j < gt) {
      const c = xml.charCodeAt(j);
      if (c === 0x22 || c === 0x27) {
        const close = xml.indexOf(c === 0x22 ? '"' : "'", j + 1);
        if (close < 0) return -1;
        if (close > gt) {
          quoteFree = false;
          i = close + 1;
          break;
        }
        j = close + 1;
      } else j++;
    }
    if (quoteFree) return gt;
  }
}

/** Lower-cased tag name of the tag at `lt` (after `<` or `</`), ending at space, `/` or `>`. */
function tagName(xml: string, from: number, end: number): string {
  let i = from;
  while (i < end) {
    const c = xml.charCodeAt(i);
    if (isSpace(c) || c === 0x2f || c === 0x3e) break;
    i++;
  }
  // Names longer than any field's are of no interest: do not lower-case a megabyte of them.
  return i - from > 64 ? '' : xml.slice(from, i).toLowerCase();
}

/**
 * The text of the first `<dc:NAME>` element for each name of `names` (lower case), with inner
 * markup removed, CDATA kept, entities decoded. Comments and processing instructions are skipped.
 * An element never closed, or longer than MAX_FIELD_CHARS, is dropped with its reason.
 */
export function dublinCore(xml: string, names: readonly string[]): ScannedFields {
  const wanted = new Map(names.map((n) => [`dc:${n}`, n]));
  const open = new Map<string, Capture>();
  const values: Record<string, string> = {};
  const dropped: Record<string, string> = {};
  const append = (text: string, decode: boolean) => {
    for (const c of open.values()) {
      if (c.tooLong) continue;
      const room = MAX_FIELD_CHARS - c.text.length;
      if (text.length > room) {
        c.tooLong = true;
        continue;
      }
      c.text += decode ? decodeEntities(text) : text;
    }
  };
  let i = 0;
  while (i < xml.length && (open.size > 0 || wanted.size > 0)) {
    const lt = xml.indexOf('<', i);
    if (lt < 0) {
      if (open.size) append(xml.slice(i), true);
      break;
    }
    if (open.size && lt > i) append(xml.slice(i, lt), true);
    if (xml.startsWith('<!--', lt)) {
      const end = xml.indexOf('-->', lt + 4);
      i = end < 0 ? xml.length : end + 3;
    } else if (xml.startsWith('<![CDATA[', lt)) {
      const end = xml.indexOf(']]>', lt + 9);
      if (open.size) append(xml.slice(lt + 9, end < 0 ? xml.length : end), false);
      i = end < 0 ? xml.length : end + 3;
    } else if (xml.startsWith('<?', lt)) {
      const end = xml.indexOf('?>', lt + 2);
      i = end < 0 ? xml.length : end + 2;
    } else if (xml.startsWith('<!', lt)) {
      const end = xml.indexOf('>', lt + 2);
      i = end < 0 ? xml.length : end + 1;
    } else {
      const end = tagEnd(xml, lt);
      if (end < 0) break;
      const closing = xml.charCodeAt(lt + 1) === 0x2f;
      const name = tagName(xml, closing ? lt + 2 : lt + 1, end);
      const selfClosing = !closing && xml.charCodeAt(end - 1) === 0x2f;
      i = end + 1;
      if (closing) {
        const c = open.get(name);
        if (c) {
          open.delete(name);
          const field = wanted.get(name)!;
          wanted.delete(name);
          if (c.tooLong) dropped[field] = `${name} is longer than ${MAX_FIELD_CHARS} characters`;
          else {
            const v = clean(c.text);
            if (v) values[field] = v;
          }
        }
      } else if (!selfClosing && wanted.has(name) && !open.has(name)) {
        open.set(name, { tag: name, text: '', tooLong: false });
      }
    }
  }
  for (const c of open.values()) dropped[wanted.get(c.tag)!] = `${c.tag} is not closed`;
  return { values, dropped };
}
