// Text rules: the Rust SDK's rule vocabulary, with the same syntax, the same
// normalisation and the same answers, so a manifest's rules mean one thing
// whichever language the policy is written in.
//
//   delete my data                 the words in this order, whole words only
//   delet*                         a word starting with `delet` (3+ letters before `*`)
//   {delete|erase|remove} my data  one of these words at this position
//   delet* NEAR/6 data             both, at most 6 words between them, in either order
//   going to BEFORE/3 regulator    the left, then the right at most 3 words after it
//   sue EXCEPT not going to sue    the left, where no match of the right overlaps it
//   A AND B,  A OR B,  NOT A       combine; NOT binds tightest, then NEAR and BEFORE
//                                  (left to right), EXCEPT, AND, and OR loosest
//   ( ... )                        group
//
// Matching is deterministic, with no backtracking.

export const MAX_NEAR = 50;
export const MIN_PREFIX = 3;
const MAX_DEPTH = 32;

const APOSTROPHES = new Set(["'", '\u2019', '\u2018', '\u02bc', '\u2032', '`']);
const INVISIBLE = /[\u00ad\u034f\u061c\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u206f\ufeff]/u;
const WORD_CHAR = /[\p{Alphabetic}\p{Nd}\p{Nl}\p{No}]/u;
const MARK = /\p{M}/u;
// eslint-disable-next-line no-control-regex
const ASCII = /^[\u0000-\u007f]*$/;

/**
 * The normalised words of `text`: compatibility forms folded (NFKD), accents
 * dropped, lower-cased, apostrophes inside a word and invisible characters
 * removed without breaking it; anything else separates words.
 */
export function words(text) {
  const out = [];
  let current = '';
  const source = ASCII.test(text) ? text : text.normalize('NFKD');
  for (const c of source) {
    if (MARK.test(c)) continue;
    if (WORD_CHAR.test(c)) {
      current += c.toLowerCase();
      continue;
    }
    if (INVISIBLE.test(c)) continue;
    if (APOSTROPHES.has(c) && current) continue;
    if (current) {
      out.push(current);
      current = '';
    }
  }
  if (current) out.push(current);
  return out;
}

/** A rule that does not parse, and why. */
export class RuleError extends Error {
  constructor(rule, reason) {
    super(`rule ${JSON.stringify(rule)}: ${reason}`);
    this.name = 'RuleError';
    this.rule = rule;
    this.reason = reason;
  }
}

class Fail extends Error {}

const plain = (chunk) => /^[A-Za-z0-9]+$/.test(chunk);

function singleTerm(chunk) {
  const prefix = chunk.endsWith('*');
  const stem = prefix ? chunk.slice(0, -1) : chunk;
  let word;
  if (plain(stem)) word = stem.toLowerCase();
  else {
    const found = words(stem);
    if (found.length === 0) throw new Fail(`\`${chunk}\` has no letters or digits`);
    if (found.length > 1) throw new Fail(`\`${chunk}\` is several words; a prefix or an alternative is one word`);
    word = found[0];
  }
  if (!prefix) return { word };
  if ([...word].length < MIN_PREFIX) {
    throw new Fail(`\`${chunk}\`: a prefix needs at least ${MIN_PREFIX} letters before \`*\``);
  }
  return { prefix: word };
}

function accepts(term, word) {
  if (term.word !== undefined) return word === term.word;
  if (term.prefix !== undefined) return word.startsWith(term.prefix);
  return term.any.some((t) => accepts(t, word));
}

function describe(token) {
  if (token.type === 'term') return 'a word';
  if (token.type === 'near' || token.type === 'before') return `\`${token.type.toUpperCase()}/${token.within}\``;
  if (token.type === 'open') return '`(`';
  if (token.type === 'close') return '`)`';
  return `\`${token.type.toUpperCase()}\``;
}

const SPACE = /\s/u;

function lex(source) {
  const tokens = [];
  const chars = [...source];
  let at = 0;
  for (;;) {
    while (at < chars.length && SPACE.test(chars[at])) at++;
    if (at === chars.length) return tokens;
    const c = chars[at];
    if (c === '(' || c === ')') {
      tokens.push({ type: c === '(' ? 'open' : 'close' });
      at++;
    } else if (c === '{') {
      const end = chars.indexOf('}', at);
      if (end < 0) throw new Fail('`{` is never closed by `}`');
      const alternatives = chars.slice(at + 1, end).join('').split('|').map((alt) => singleTerm(alt.trim()));
      if (alternatives.length < 2) {
        throw new Fail(`\`${chars.slice(at, end + 1).join('')}\` offers one word: write it without braces, or separate alternatives with \`|\``);
      }
      tokens.push({ type: 'term', term: { any: alternatives } });
      at = end + 1;
    } else if (c === '}' || c === '|') {
      throw new Fail(`\`${c}\` outside \`{...}\``);
    } else {
      let end = at;
      while (end < chars.length && !SPACE.test(chars[end]) && !'(){}|'.includes(chars[end])) end++;
      const chunk = chars.slice(at, end).join('');
      at = end;
      if (['AND', 'OR', 'NOT', 'EXCEPT'].includes(chunk)) tokens.push({ type: chunk.toLowerCase() });
      else if (chunk.startsWith('NEAR/') || chunk.startsWith('BEFORE/')) {
        const [name, distance] = [chunk.slice(0, chunk.indexOf('/')), chunk.slice(chunk.indexOf('/') + 1)];
        if (!/^[0-9]{1,9}$/.test(distance)) throw new Fail(`\`${chunk}\`: ${name} takes a distance in words, like ${name}/5`);
        const within = Number(distance);
        if (within > MAX_NEAR) throw new Fail(`\`${chunk}\`: at most ${name}/${MAX_NEAR}`);
        tokens.push({ type: name.toLowerCase(), within });
      } else if (chunk === 'NEAR' || chunk === 'BEFORE') {
        throw new Fail(`${chunk} takes a distance in words, like ${chunk}/5`);
      } else if (chunk.endsWith('*')) tokens.push({ type: 'term', term: singleTerm(chunk) });
      else if (plain(chunk)) tokens.push({ type: 'term', term: { word: chunk.toLowerCase() } });
      else for (const word of words(chunk)) tokens.push({ type: 'term', term: { word } });
    }
  }
}

const hasSpans = (e) =>
  e.type === 'phrase' || e.type === 'near' || e.type === 'except' || (e.type === 'or' && e.parts.every(hasSpans));

function requiresSomething(e) {
  switch (e.type) {
    case 'and':
      return e.parts.some(requiresSomething);
    case 'or':
      return e.parts.every(requiresSomething);
    case 'not':
      return false;
    default:
      return true;
  }
}

class Parser {
  constructor(tokens) {
    this.tokens = tokens;
    this.at = 0;
    this.depth = 0;
  }
  peek() {
    return this.tokens[this.at];
  }
  eat(type) {
    if (this.peek()?.type === type) {
      this.at++;
      return true;
    }
    return false;
  }
  or() {
    const parts = [this.and()];
    while (this.eat('or')) parts.push(this.and());
    return parts.length === 1 ? parts[0] : { type: 'or', parts };
  }
  and() {
    const parts = [this.unary()];
    while (this.eat('and')) parts.push(this.unary());
    return parts.length === 1 ? parts[0] : { type: 'and', parts };
  }
  unary() {
    if (this.eat('not')) {
      this.enter();
      const inner = this.unary();
      this.depth--;
      return { type: 'not', inner };
    }
    return this.except();
  }
  except() {
    let left = this.near();
    while (this.eat('except')) {
      const right = this.near();
      checkSpans('`EXCEPT`', left, right);
      left = { type: 'except', keep: left, unless: right };
    }
    return left;
  }
  near() {
    let left = this.primary();
    for (;;) {
      const token = this.peek();
      if (!token || (token.type !== 'near' && token.type !== 'before')) return left;
      this.at++;
      const right = this.primary();
      checkSpans(describe(token), left, right);
      left = { type: 'near', a: left, b: right, within: token.within, ordered: token.type === 'before' };
    }
  }
  enter() {
    if (++this.depth > MAX_DEPTH) throw new Fail(`nested deeper than ${MAX_DEPTH} groups`);
  }
  primary() {
    if (this.eat('open')) {
      this.enter();
      const inner = this.or();
      if (!this.eat('close')) throw new Fail('`(` is never closed by `)`');
      this.depth--;
      return inner;
    }
    const terms = [];
    while (this.peek()?.type === 'term') terms.push(this.tokens[this.at++].term);
    if (terms.length === 0) {
      const token = this.peek();
      throw new Fail(token ? `expected a word or \`(\`, found ${describe(token)}` : 'expected a word or `(` at the end');
    }
    return { type: 'phrase', terms };
  }
}

function checkSpans(operator, left, right) {
  if (!(hasSpans(left) && hasSpans(right))) {
    throw new Fail(`${operator} joins phrases (or groups of phrases joined by OR), not AND or NOT`);
  }
}

function shortestPerStart(spans) {
  spans.sort((x, y) => x[0] - y[0] || x[1] - y[1]);
  return spans.filter((span, i) => i === 0 || spans[i - 1][0] !== span[0]);
}

function lowerBound(spans, start) {
  let lo = 0;
  let hi = spans.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (spans[mid][0] < start) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

function spansOf(e, w) {
  switch (e.type) {
    case 'phrase': {
      const out = [];
      const n = e.terms.length;
      for (let start = 0; start + n <= w.length; start++) {
        if (e.terms.every((t, i) => accepts(t, w[start + i]))) out.push([start, start + n]);
      }
      return out;
    }
    case 'except': {
      const kept = spansOf(e.keep, w);
      if (kept.length === 0) return kept;
      const unless = spansOf(e.unless, w);
      return kept.filter((x) => !unless.some((y) => x[0] < y[1] && y[0] < x[1]));
    }
    case 'near': {
      const a = spansOf(e.a, w);
      if (a.length === 0) return a;
      const b = spansOf(e.b, w);
      const longest = b.reduce((m, y) => Math.max(m, y[1] - y[0]), 0);
      const out = [];
      for (const x of a) {
        for (let i = lowerBound(b, Math.max(0, x[0] - e.within - longest)); i < b.length; i++) {
          const y = b[i];
          if (y[0] > x[1] + e.within) break;
          if (e.ordered && y[0] < x[0]) continue;
          const [one, two] = x[0] <= y[0] ? [x, y] : [y, x];
          // Overlapping spans are one place, not two near ones.
          if (two[0] >= one[1] && two[0] - one[1] <= e.within) out.push([one[0], Math.max(one[1], two[1])]);
        }
      }
      return shortestPerStart(out);
    }
    case 'or':
      return shortestPerStart(e.parts.flatMap((p) => spansOf(p, w)));
    default:
      return [];
  }
}

function holds(e, w) {
  switch (e.type) {
    case 'and':
      return e.parts.every((p) => holds(p, w));
    case 'or':
      return e.parts.some((p) => holds(p, w));
    case 'not':
      return !holds(e.inner, w);
    default:
      return spansOf(e, w).length > 0;
  }
}

/** A parsed rule, ready to match texts. */
export class Rule {
  constructor(source, expr) {
    this.source = source;
    this.expr = expr;
  }

  /** Parses `source`; throws RuleError saying what is wrong. */
  static parse(source) {
    try {
      const parser = new Parser(lex(source));
      const expr = parser.or();
      const token = parser.peek();
      if (token) throw new Fail(`unexpected ${describe(token)}`);
      if (!requiresSomething(expr)) {
        throw new Fail('a rule must require something: a rule of only NOT matches almost every text; write `X AND NOT Y`');
      }
      return new Rule(source, expr);
    } catch (error) {
      if (error instanceof Fail) throw new RuleError(source, error.message);
      throw error;
    }
  }

  /** Whether the rule matches a text (or its `words`). */
  matches(text) {
    return holds(this.expr, typeof text === 'string' ? words(text) : text);
  }
}

/** A rule of a class that does not parse: which class, which rule, and why. */
export class PhraseError extends Error {
  constructor(cls, index, error) {
    super(`class \`${cls}\`, rule ${index}: ${error.message}`);
    this.name = 'PhraseError';
    this.cls = cls;
    this.index = index;
    this.error = error;
  }
}

/** Named classes of rules, matched together; a class fires when any of its rules matches. */
export class PhraseSet {
  constructor(classes) {
    const entries = classes instanceof Map ? [...classes] : Array.isArray(classes) ? classes : Object.entries(classes);
    this.classes = entries.map(([cls, rules]) => [
      cls,
      [...rules].flatMap((rule, index) => {
        if (!rule.trim()) return [];
        try {
          return [Rule.parse(rule)];
        } catch (error) {
          throw error instanceof RuleError ? new PhraseError(cls, index, error) : error;
        }
      }),
    ]);
  }

  /** The classes with a rule matching `text`, in the order given, each once. */
  matchingClasses(text) {
    const w = words(text);
    return this.classes.filter(([, rules]) => rules.some((r) => r.matches(w))).map(([cls]) => cls);
  }

  /** The first rule of `cls` that matches: why a class fired. */
  matchingRule(cls, text) {
    const w = words(text);
    const found = this.classes.find(([name]) => name === cls);
    return found?.[1].find((r) => r.matches(w));
  }

  isEmpty() {
    return this.classes.every(([, rules]) => rules.length === 0);
  }
}
