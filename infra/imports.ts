import { builtinModules } from 'node:module';

/**
 * The module specifiers a TypeScript file imports: `import … from 'x'`, `import 'x'`, `export … from
 * 'x'`, `import('x')` and `require('x')` with a string literal. One pass over the text that skips
 * comments, strings, template literals and regular expressions, so that an import-looking text inside
 * them is never counted, then a match on the tokens; no regex runs over the file as a whole.
 */
export function importSpecifiers(source: string): string[] {
  const tokens = tokenize(source);
  const found: string[] = [];
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i]!;
    if (t.kind !== 'word' || tokens[i - 1]?.text === '.') continue;
    const next = tokens[i + 1];
    const after = tokens[i + 2];
    if ((t.text === 'from' || t.text === 'import') && next?.kind === 'string') found.push(next.text);
    else if ((t.text === 'import' || t.text === 'require') && next?.text === '(' && after?.kind === 'string') found.push(after.text);
  }
  return found;
}

/**
 * The package a bare specifier names (`@scope/name` or `name`, without a subpath), or null for a
 * relative or absolute path and for Node's own modules (`node:fs`, `fs`).
 */
export function packageOf(specifier: string): string | null {
  if (specifier.startsWith('.') || specifier.startsWith('/') || specifier.startsWith('node:')) return null;
  const parts = specifier.split('/');
  const name = specifier.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0]!;
  if (builtinModules.includes(name)) return null;
  return name;
}

interface Token {
  kind: 'word' | 'string' | 'punct';
  text: string;
}

/** Words after which a `/` starts a regular expression rather than a division. */
const BEFORE_REGEX = new Set(['return', 'typeof', 'case', 'do', 'else', 'in', 'of', 'new', 'delete', 'void', 'throw', 'yield', 'await']);

const isWordChar = (c: string) => /[\w$\u0080-\uffff]/.test(c);

/**
 * Words, string literals (their value) and punctuation. Template literals are skipped with the
 * code of their `${…}` parts tokenized; comments and regex literals are dropped.
 */
function tokenize(src: string): Token[] {
  const out: Token[] = [];
  // For each template literal we are inside of, the brace depth its current `${` opened at.
  const templates: number[] = [];
  let depth = 0;
  let i = 0;
  const n = src.length;

  /** Skips the text part of a template literal from `i`; returns true when a `${` opened code. */
  const skipTemplateText = (): boolean => {
    while (i < n) {
      const c = src[i]!;
      if (c === '\\') i += 2;
      else if (c === '`') {
        i++;
        return false;
      } else if (c === '$' && src[i + 1] === '{') {
        i += 2;
        templates.push(depth);
        depth++;
        return true;
      } else i++;
    }
    return false;
  };

  while (i < n) {
    const c = src[i]!;
    if (c === '/' && src[i + 1] === '/') {
      while (i < n && src[i] !== '\n') i++;
    } else if (c === '/' && src[i + 1] === '*') {
      const end = src.indexOf('*/', i + 2);
      i = end < 0 ? n : end + 2;
    } else if (c === '"' || c === "'") {
      let value = '';
      i++;
      while (i < n && src[i] !== c && src[i] !== '\n') {
        if (src[i] === '\\') {
          value += src[i + 1] ?? '';
          i += 2;
        } else value += src[i++];
      }
      i++;
      out.push({ kind: 'string', text: value });
    } else if (c === '`') {
      i++;
      skipTemplateText();
      out.push({ kind: 'punct', text: '`' });
    } else if (c === '/' && startsRegex(out[out.length - 1])) {
      let inClass = false;
      i++;
      while (i < n && src[i] !== '\n') {
        const r = src[i]!;
        if (r === '\\') i++;
        else if (r === '[') inClass = true;
        else if (r === ']') inClass = false;
        else if (r === '/' && !inClass) break;
        i++;
      }
      i++;
      while (i < n && isWordChar(src[i]!)) i++;
      out.push({ kind: 'punct', text: '/regex/' });
    } else if (isWordChar(c)) {
      const start = i;
      while (i < n && isWordChar(src[i]!)) i++;
      out.push({ kind: 'word', text: src.slice(start, i) });
    } else if (c === ' ' || c === '\t' || c === '\n' || c === '\r') {
      i++;
    } else {
      i++;
      if (c === '{') depth++;
      else if (c === '}') {
        depth--;
        if (templates.length > 0 && templates[templates.length - 1] === depth) {
          templates.pop();
          // Back in the template's text, which may open further `${` parts.
          skipTemplateText();
          out.push({ kind: 'punct', text: '`' });
          continue;
        }
      }
      out.push({ kind: 'punct', text: c });
    }
  }
  return out;
}

function startsRegex(prev: Token | undefined): boolean {
  if (!prev) return true;
  if (prev.kind === 'word') return BEFORE_REGEX.has(prev.text);
  if (prev.kind === 'string') return false;
  return prev.text !== ')' && prev.text !== ']' && prev.text !== '}' && prev.text !== '`' && prev.text !== '/regex/';
}
