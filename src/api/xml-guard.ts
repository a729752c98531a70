/**
 * First line of defence for every XML request body (SOAP and XML-RPC), run before any XML parser sees the text.
 *
 * It refuses, with AppError('INVALID_ARGUMENT', message, 'xml'):
 *  - any `<!DOCTYPE` or `<!ENTITY` (case-insensitive, wherever markup may stand, the prolog included) and every
 *    other `<!` declaration: no DTD, hence no entity expansion ("billion laughs") and no external entities;
 *  - element nesting deeper than `maxDepth` (64) and more than `maxElements` (10,000) elements;
 *  - element or attribute names equal to `__proto__`, `constructor` or `prototype`, with or without a prefix;
 *  - the text `__proto__` anywhere: literally anywhere in the document, and in character data (text, CDATA,
 *    attribute values) also when spelled with character references (`&#95;_proto__`) or split by comments,
 *    CDATA sections or tags (xml2js joins such pieces of text back together).
 *
 * Comments, CDATA sections and processing instructions are skipped: a `<` inside them is not an element.
 * Self-closing elements count as elements but do not deepen the nesting (only open tags raise the depth).
 * Markup the pass cannot follow (unterminated tags, comments, CDATA, attribute values; a stray end tag) is
 * refused too, so this pass and the parser after it never disagree about where the elements are.
 * A `<!DOCTYPE` inside a CDATA section is plain text and is not refused.
 *
 * Cost: one linear pass with no regular expressions and no allocation. The scanning is done with
 * String#indexOf (vectorised in V8, about ten times faster than a charCodeAt loop); every indexOf either
 * consumes what it found or caches a position that only moves forward, so the total work stays linear even
 * for hostile input. Element and attribute names are read character by character only when the document
 * contains one of the forbidden names at all (three indexOf calls decide that).
 */
import { AppError } from '../domain/errors';

/** Names that must never become object keys: element names, attribute names, XML-RPC struct member names. */
export const FORBIDDEN_NAMES: readonly ['__proto__', 'constructor', 'prototype'] = Object.freeze([
  '__proto__',
  'constructor',
  'prototype',
] as const);

export interface XmlGuardLimits {
  maxDepth?: number;
  maxElements?: number;
}

const DEFAULT_MAX_DEPTH = 64;
const DEFAULT_MAX_ELEMENTS = 10_000;

const LT = 60; // <
const GT = 62; // >
const SLASH = 47; // /
const BANG = 33; // !
const QMARK = 63; // ?
const AMP = 38; // &
const HASH = 35; // #
const SEMI = 59; // ;
const COLON = 58; // :
const EQ = 61; // =
const DQUOTE = 34; // "
const SQUOTE = 39; // '
const UNDERSCORE = 95; // _
const DASH = 45; // -
const LBRACKET = 91; // [
const SPACE = 32;
const TAB = 9;
const LF = 10;
const CR = 13;

/** ASCII classes while reading a name: NAME_END ends it (white space, ">", "/", "="), NAME_COLON marks a prefix. */
const NAME_END = 1;
const NAME_COLON = 2;
const NAME_CLASS = new Uint8Array(128);
for (const c of [SPACE, TAB, LF, CR, GT, SLASH, EQ]) NAME_CLASS[c] = NAME_END;
NAME_CLASS[COLON] = NAME_COLON;

/** `__proto__` as char codes, for the streaming matcher over decoded character data. */
const PROTO = [95, 95, 112, 114, 111, 116, 111, 95, 95];
const PROTO_LEN = 9;

/*
 * Scan state shared by the helpers below. assertSafeXml is synchronous and calls nothing outside this module,
 * so one set of module variables (reset at the start of every call) is safe and saves closures.
 */
let src = '';
let nextUnderscore = -1; // position of the next "_" at or after the last look, or src.length
let nextAmp = -1; // same for "&"
let nextDquote = -1; // same for '"'
let nextSquote = -1; // same for "'"

function refuse(message: string): never {
  throw new AppError('INVALID_ARGUMENT', message, 'xml');
}

function isSpace(c: number): boolean {
  return c === SPACE || c === LF || c === TAB || c === CR;
}

function indexOrEnd(ch: string, from: number): number {
  const at = src.indexOf(ch, from);
  return at < 0 ? src.length : at;
}

/**
 * One step of a KMP matcher for `__proto__`: `m` is how many pattern characters are matched so far.
 * On a mismatch the only borders of the pattern that matter are `_` and `__`.
 */
function step(m: number, c: number): number {
  if (c === PROTO[m]) return m + 1;
  return c === UNDERSCORE ? (m === 2 ? 2 : 1) : 0;
}

/**
 * Feeds the character data src[from, to) to the `__proto__` matcher, starting in state m; returns the new
 * state. With `refs`, numeric character references are decoded first (text and attribute values; not CDATA).
 * While nothing is matched only "_" (and "&") can start a match, so the scan jumps from one to the next.
 */
function feed(from: number, to: number, m: number, refs: boolean): number {
  let k = from;
  while (k < to) {
    if (m === 0) {
      if (nextUnderscore < k) nextUnderscore = indexOrEnd('_', k);
      let stop = nextUnderscore;
      if (refs) {
        if (nextAmp < k) nextAmp = indexOrEnd('&', k);
        if (nextAmp < stop) stop = nextAmp;
      }
      if (stop >= to) return 0;
      k = stop;
    }
    const c = src.charCodeAt(k);
    if (refs && c === AMP && src.charCodeAt(k + 1) === HASH) {
      const ref = charRef(k);
      if (ref >= 0) {
        m = step(m, ref & 0x1fffff);
        if (m === PROTO_LEN) protoFound(k);
        k += ref >>> 21; // a reference holds only digits, "x" and ";", so it never runs past `to`
        continue;
      }
    }
    m = step(m, c);
    if (m === PROTO_LEN) protoFound(k);
    k++;
  }
  return m;
}

/**
 * Decodes a numeric character reference `&#NNN;` / `&#xHH;` at src[i] ("&"; src[i+1] is "#").
 * Returns (length << 21) | codePoint, or -1 when it is not a well-formed reference (the "&" is then plain
 * text for the matcher, and the parser will refuse it).
 */
function charRef(i: number): number {
  let k = i + 2;
  let hex = false;
  if (src.charCodeAt(k) === 120 /* x */) {
    hex = true;
    k++;
  }
  const digitsStart = k;
  let cp = 0;
  for (; k < src.length && k - digitsStart <= 8; k++) {
    const d = src.charCodeAt(k);
    if (d === SEMI) break;
    let v: number;
    if (d >= 48 && d <= 57) v = d - 48;
    else if (hex && d >= 97 && d <= 102) v = d - 87;
    else if (hex && d >= 65 && d <= 70) v = d - 55;
    else return -1;
    cp = cp * (hex ? 16 : 10) + v;
  }
  if (k === digitsStart || src.charCodeAt(k) !== SEMI || cp > 0x10ffff) return -1;
  return ((k + 1 - i) << 21) | cp;
}

/** Is src[start, end), or its local part after the colon at `colon`, a forbidden name? No slicing. */
function forbiddenName(start: number, end: number, colon: number): boolean {
  return isForbidden(start, end) || (colon >= start && isForbidden(colon + 1, end));
}

function isForbidden(start: number, end: number): boolean {
  const len = end - start;
  if (len === 9) return src.startsWith('__proto__', start) || src.startsWith('prototype', start);
  if (len === 11) return src.startsWith('constructor', start);
  return false;
}

/** Does src continue with `word` (upper-case ASCII) at i, ignoring case? */
function startsWithUpper(i: number, word: string): boolean {
  if (i + word.length > src.length) return false;
  for (let k = 0; k < word.length; k++) {
    let c = src.charCodeAt(i + k);
    if (c >= 97 && c <= 122) c -= 32;
    if (c !== word.charCodeAt(k)) return false;
  }
  return true;
}

function protoFound(offset: number): never {
  return refuse(
    `The text "__proto__" is not accepted anywhere in a request (also not spelled with character references ` +
      `or split by markup); found near offset ${offset}. Remove it.`,
  );
}

function reservedName(kind: 'element' | 'attribute', start: number, end: number): never {
  const name = end - start > 80 ? `...${src.slice(end - 80, end)}` : src.slice(start, end); // a prefix can be long
  return refuse(
    `The ${kind} name "${name}" at offset ${start} is not accepted: ` +
      `${FORBIDDEN_NAMES.join(', ')} are reserved names. Rename the ${kind}.`,
  );
}

function limit(value: number | undefined, fallback: number, name: string): number {
  if (value === undefined) return fallback;
  if (!Number.isSafeInteger(value) || value < 1) throw new RangeError(`assertSafeXml: ${name} must be a positive integer.`);
  return value;
}

/*
 * Reading a start tag. Both readers return the position just past the tag, negated when the tag is
 * self-closing, and feed attribute values to the matcher through `tagState` (the matcher state in and out).
 */
let tagState = 0;

/** Fast reader: finds the ">" that is outside quoted attribute values. Names are not looked at. */
function readTagFast(lt: number): number {
  let p = lt + 1;
  let gt = -1;
  for (;;) {
    if (gt < p) {
      gt = src.indexOf('>', p);
      if (gt < 0) return unterminatedTag(lt);
    }
    if (nextDquote < p) nextDquote = indexOrEnd('"', p);
    if (nextSquote < p) nextSquote = indexOrEnd("'", p);
    const open = nextDquote < nextSquote ? nextDquote : nextSquote;
    if (open > gt) break;
    const close = src.indexOf(open === nextDquote ? '"' : "'", open + 1);
    if (close < 0) refuse(`Unterminated attribute value at offset ${open}; the XML is truncated or malformed.`);
    tagState = feed(open + 1, close, tagState, true);
    p = close + 1;
  }
  return src.charCodeAt(gt - 1) === SLASH ? -(gt + 1) : gt + 1;
}

/** Careful reader: reads the element name and every attribute name and refuses the forbidden ones. */
function readTagChecked(lt: number): number {
  const n = src.length;
  const nameStart = lt + 1;
  let j = nameStart;
  let colon = -1;
  for (; j < n; j++) {
    const ch = src.charCodeAt(j);
    if (ch < 128 && NAME_CLASS[ch] !== 0) {
      if (NAME_CLASS[ch] === NAME_END) break;
      colon = j;
    }
  }
  if (forbiddenName(nameStart, j, colon)) reservedName('element', nameStart, j);

  for (;;) {
    while (j < n && isSpace(src.charCodeAt(j))) j++;
    if (j >= n) return unterminatedTag(lt);
    const ch = src.charCodeAt(j);
    if (ch === GT) return j + 1;
    if (ch === SLASH) {
      if (src.charCodeAt(j + 1) !== GT) refuse(`Malformed tag at offset ${lt}: "/" must be followed by ">".`);
      return -(j + 2);
    }

    const attrStart = j;
    let attrColon = -1;
    for (; j < n; j++) {
      const a = src.charCodeAt(j);
      if (a < 128 && NAME_CLASS[a] !== 0) {
        if (NAME_CLASS[a] === NAME_END) break;
        attrColon = j;
      }
    }
    if (forbiddenName(attrStart, j, attrColon)) reservedName('attribute', attrStart, j);
    while (j < n && isSpace(src.charCodeAt(j))) j++;
    if (j === attrStart || src.charCodeAt(j) !== EQ) {
      refuse(`Malformed attribute at offset ${attrStart}: expected name="value".`);
    }
    j++;
    while (j < n && isSpace(src.charCodeAt(j))) j++;
    const quote = src.charCodeAt(j);
    if (quote !== DQUOTE && quote !== SQUOTE) refuse(`Attribute value at offset ${j} is not quoted; write name="value".`);
    const close = src.indexOf(quote === DQUOTE ? '"' : "'", j + 1);
    if (close < 0) refuse(`Unterminated attribute value at offset ${j}; the XML is truncated or malformed.`);
    tagState = feed(j + 1, close, tagState, true);
    j = close + 1;
  }
}

function unterminatedTag(lt: number): never {
  return refuse(`Unterminated tag at offset ${lt}; the XML is truncated or malformed.`);
}

/**
 * Throws AppError('INVALID_ARGUMENT', message, 'xml') when `xml` is hostile or exceeds the limits; returns
 * nothing otherwise. Cheap enough for every request: a 2 KB envelope takes a few microseconds.
 */
export function assertSafeXml(xml: string, limits?: XmlGuardLimits): void {
  if (typeof xml !== 'string') refuse('The request body must be XML text.');
  const maxDepth = limit(limits?.maxDepth, DEFAULT_MAX_DEPTH, 'maxDepth');
  const maxElements = limit(limits?.maxElements, DEFAULT_MAX_ELEMENTS, 'maxElements');

  src = xml;
  nextUnderscore = nextAmp = nextDquote = nextSquote = -1;
  try {
    scan(maxDepth, maxElements);
  } finally {
    src = ''; // do not keep the request alive
  }
}

function scan(maxDepth: number, maxElements: number): void {
  const n = src.length;
  const literalProto = src.indexOf('__proto__');
  const checkNames = literalProto >= 0 || src.indexOf('constructor') >= 0 || src.indexOf('prototype') >= 0;
  let depth = 0;
  let elements = 0;
  let m = 0; // state of the `__proto__` matcher over decoded character data; markup does not reset it
  let i = 0;

  for (;;) {
    // ---- character data up to the next "<" ---------------------------------------------------------------
    const lt = src.charCodeAt(i) === LT ? i : indexOrEnd('<', i); // tags are often adjacent: skip the call
    if (lt > i) m = feed(i, lt, m, true);
    if (lt >= n) break;
    const c = src.charCodeAt(lt + 1);

    // ---- end tag -------------------------------------------------------------------------------------------
    if (c === SLASH) {
      const close = src.indexOf('>', lt + 2);
      if (close < 0) refuse(`Unterminated end tag at offset ${lt}; the XML is truncated or malformed.`);
      if (depth === 0) refuse(`The end tag at offset ${lt} closes no open element; the XML is malformed.`);
      depth--;
      i = close + 1;
      continue;
    }

    // ---- processing instruction (the <?xml ...?> declaration included): harmless, skipped ---------------
    if (c === QMARK) {
      const close = src.indexOf('?>', lt + 2);
      if (close < 0) refuse(`Unterminated processing instruction at offset ${lt}; the XML is truncated or malformed.`);
      i = close + 2;
      continue;
    }

    // ---- comment, CDATA section, declaration ----------------------------------------------------------------
    if (c === BANG) {
      if (src.charCodeAt(lt + 2) === DASH && src.charCodeAt(lt + 3) === DASH) {
        const close = src.indexOf('-->', lt + 4);
        if (close < 0) refuse(`Unterminated comment at offset ${lt}; the XML is truncated or malformed.`);
        i = close + 3;
        continue;
      }
      if (src.charCodeAt(lt + 2) === LBRACKET && src.startsWith('CDATA[', lt + 3)) {
        const close = src.indexOf(']]>', lt + 9);
        if (close < 0) refuse(`Unterminated CDATA section at offset ${lt}; the XML is truncated or malformed.`);
        m = feed(lt + 9, close, m, false);
        i = close + 3;
        continue;
      }
      if (startsWithUpper(lt + 2, 'DOCTYPE')) {
        refuse(
          `A DOCTYPE declaration was found at offset ${lt}; document type definitions are not accepted ` +
            `(they enable entity expansion and external entities). Send the document without <!DOCTYPE ...>.`,
        );
      }
      if (startsWithUpper(lt + 2, 'ENTITY')) {
        refuse(
          `An entity declaration (<!ENTITY ...>) was found at offset ${lt}; entities are not accepted. ` +
            `Write the values inline, escaping & < > as &amp; &lt; &gt;.`,
        );
      }
      refuse(
        `A markup declaration (<!...>) was found at offset ${lt}; only elements, comments, CDATA sections and ` +
          `processing instructions are accepted.`,
      );
    }

    // ---- start tag or empty-element tag ---------------------------------------------------------------------
    if (c !== c /* NaN: "<" at the very end */ || (c < 128 && NAME_CLASS[c] === NAME_END)) {
      refuse(`A "<" without an element name at offset ${lt}; write a literal "<" as &lt;.`);
    }
    if (++elements > maxElements) {
      refuse(
        `The XML has more than ${maxElements} elements (the limit was passed at offset ${lt}); ` +
          `split the request into smaller ones.`,
      );
    }
    tagState = m;
    const end = checkNames ? readTagChecked(lt) : readTagFast(lt);
    m = tagState;
    if (end < 0) {
      i = -end; // self-closing: counted, does not deepen
    } else {
      if (++depth > maxDepth) {
        refuse(`XML elements are nested deeper than ${maxDepth} levels (at offset ${lt}); flatten the request.`);
      }
      i = end;
    }
  }

  // Anywhere else: comments, processing instructions, end tags, namespace prefixes.
  if (literalProto >= 0) protoFound(literalProto);
}
