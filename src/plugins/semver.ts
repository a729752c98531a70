/**
 * Just enough semver for a manifest's `sdk` range: exact versions, ^, ~, comparators (>=, >, <=, <, =),
 * x-ranges ("1.x", "*"), space-joined conjunctions and `||` alternatives. Pre-release tags are not supported.
 */

type Version = [number, number, number];

const VERSION = /^v?(\d+)\.(\d+)\.(\d+)$/;
const PARTIAL = /^v?(\d+|x|\*)(?:\.(\d+|x|\*))?(?:\.(\d+|x|\*))?$/;

export function parseVersion(text: string): Version | null {
  const m = VERSION.exec(text.trim());
  return m ? [Number(m[1]), Number(m[2]), Number(m[3])] : null;
}

export function isVersion(text: string): boolean {
  return parseVersion(text) !== null;
}

function compare(a: Version, b: Version): number {
  for (let i = 0; i < 3; i++) if (a[i] !== b[i]) return a[i] < b[i] ? -1 : 1;
  return 0;
}

/** A partial version such as "1", "1.2", "1.x": the wildcard parts are null. */
function parsePartial(text: string): (number | null)[] | null {
  const m = PARTIAL.exec(text);
  if (!m) return null;
  const parts = [m[1], m[2], m[3]].map((p) => (p === undefined || p === 'x' || p === '*' ? null : Number(p)));
  // "1.x.3" makes no sense: once a part is a wildcard, the rest are too.
  const firstWild = parts.indexOf(null);
  if (firstWild >= 0 && parts.slice(firstWild).some((p) => p !== null)) return null;
  return parts;
}

type Test = (v: Version) => boolean;

function comparatorTest(token: string): Test | null {
  const m = /^(\^|~|>=|<=|>|<|=)?(.+)$/.exec(token);
  if (!m) return null;
  const op = m[1] ?? '';
  const parts = parsePartial(m[2]);
  if (!parts) return null;
  const [maj, min, pat] = parts;
  const floor: Version = [maj ?? 0, min ?? 0, pat ?? 0];
  const atLeast: Test = (v) => compare(v, floor) >= 0;
  // The first version beyond a partial: "1.2" -> 1.3.0, "1" -> 2.0.0.
  const beyondPartial = (): Version | null => (maj === null ? null : min === null ? [maj + 1, 0, 0] : pat === null ? [maj, min + 1, 0] : null);
  switch (op) {
    case '':
    case '=': {
      if (maj === null) return () => true;
      const ceiling = beyondPartial();
      return ceiling ? (v) => atLeast(v) && compare(v, ceiling) < 0 : (v) => compare(v, floor) === 0;
    }
    case '^': {
      if (maj === null) return () => true;
      // ^1.2.3 := <2.0.0; ^0.2.3 := <0.3.0; ^0.0.3 := <0.0.4 (the leftmost non-zero part is fixed).
      const ceiling: Version =
        maj > 0 || min === null ? [maj + 1, 0, 0] : min > 0 || pat === null ? [maj, min + 1, 0] : [maj, min, pat + 1];
      return (v) => atLeast(v) && compare(v, ceiling) < 0;
    }
    case '~': {
      if (maj === null) return () => true;
      const ceiling: Version = min === null ? [maj + 1, 0, 0] : [maj, min + 1, 0];
      return (v) => atLeast(v) && compare(v, ceiling) < 0;
    }
    case '>=':
      return atLeast;
    case '<':
      return (v) => compare(v, floor) < 0;
    case '>': {
      const ceiling = beyondPartial();
      return ceiling ? (v) => compare(v, ceiling) >= 0 : (v) => compare(v, floor) > 0;
    }
    case '<=': {
      const ceiling = beyondPartial();
      return ceiling ? (v) => compare(v, ceiling) < 0 : (v) => compare(v, floor) <= 0;
    }
  }
  return null;
}

/** Is the range well-formed? */
export function isRange(range: string): boolean {
  return compileRange(range) !== null;
}

function compileRange(range: string): Test | null {
  const alternatives = range.split('||').map((alt) => alt.trim());
  const compiled: Test[][] = [];
  for (const alt of alternatives) {
    if (alt === '') return null;
    // "1.2.3 - 2.0.0" hyphen ranges are not supported; ">= 1.2.3" with a space is tolerated.
    const tokens = alt.replace(/(>=|<=|>|<|=|\^|~)\s+/g, '$1').split(/\s+/);
    const tests = tokens.map(comparatorTest);
    if (tests.some((t) => t === null)) return null;
    compiled.push(tests as Test[]);
  }
  return (v) => compiled.some((tests) => tests.every((t) => t(v)));
}

/** Does `version` satisfy `range`? A malformed version or range satisfies nothing. */
export function satisfies(version: string, range: string): boolean {
  const v = parseVersion(version);
  const test = compileRange(range);
  return v !== null && test !== null && test(v);
}
