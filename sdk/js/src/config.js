// The operator's configuration for one plugin, as the policy sees it. The
// host hands every value over as a string under a dotted key (nested
// manifest tables become `a.b.c`, array elements `list.0`, `list.1` ...).
// `Config` turns them into typed values and reports a bad one by key, with
// the Rust SDK's messages, so the operator knows which line to fix.

import { display } from './format.js';

/** A bad or missing configuration value, named by its key. */
export class ConfigError extends Error {
  constructor(key, reason) {
    super(`config key \`${key}\`: ${reason}`);
    this.name = 'ConfigError';
    this.key = key;
    this.reason = reason;
  }
}

const INTEGER = /^[+-]?[0-9]+$/;
// What Rust's f64 parser reads: decimals with an optional exponent, inf, NaN.
const NUMBER = /^[+-]?(([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?|inf|infinity|nan)$/i;

export class Config {
  /** @param {Map<string,string>|Record<string,string>} values */
  constructor(values = {}) {
    const entries = values instanceof Map ? [...values] : Object.entries(values);
    this.values = new Map(entries.map(([k, v]) => [String(k), String(v)]).sort(byKey));
  }

  /** A configuration from explicit pairs: how tests configure a policy without a host. */
  static fromPairs(pairs) {
    return new Config(Array.isArray(pairs) ? new Map(pairs) : pairs);
  }

  /** The raw string value of `key`, or undefined. */
  get(key) {
    return this.values.get(key);
  }

  /** Every key, sorted. */
  keys() {
    return [...this.values.keys()];
  }

  /** `key` as a BigInt (`{ minimum: 0n }` for a non-negative one), or `fallback`. */
  bigint(key, fallback = undefined, { minimum } = {}) {
    const raw = this.get(key);
    if (raw === undefined) return fallback;
    const text = raw.trim();
    const what = minimum === 0n ? 'a non-negative integer' : 'an integer';
    if (!INTEGER.test(text)) throw new ConfigError(key, `expected ${what}, got ${JSON.stringify(raw)}`);
    const value = BigInt(text);
    if (minimum !== undefined && value < minimum) {
      throw new ConfigError(key, `expected ${what}, got ${JSON.stringify(raw)}`);
    }
    return value;
  }

  /** `key` as a number, or `fallback`. */
  number(key, fallback = undefined) {
    const raw = this.get(key);
    if (raw === undefined) return fallback;
    const text = raw.trim();
    if (!NUMBER.test(text)) throw new ConfigError(key, `expected a number, got ${JSON.stringify(raw)}`);
    const lowered = text.toLowerCase().replace(/^\+/, '');
    if (lowered.endsWith('nan')) return NaN;
    if (lowered.endsWith('inf') || lowered.endsWith('infinity')) return lowered.startsWith('-') ? -Infinity : Infinity;
    return Number(text);
  }

  /** `key` as `true` or `false`, or `fallback`. */
  boolean(key, fallback = undefined) {
    const raw = this.get(key);
    if (raw === undefined) return fallback;
    if (raw.trim() !== 'true' && raw.trim() !== 'false') {
      throw new ConfigError(key, `expected true or false, got ${JSON.stringify(raw)}`);
    }
    return raw.trim() === 'true';
  }

  /** `key` as a probability or confidence in [0, 1], or `fallback`. */
  unitInterval(key, fallback) {
    const value = this.number(key, fallback);
    if (!(value >= 0 && value <= 1)) {
      throw new ConfigError(key, `expected a number between 0 and 1, got ${display(value)}`);
    }
    return value;
  }

  /** `key` as a string, or `fallback`. */
  string(key, fallback) {
    return this.get(key) ?? fallback;
  }

  /** The elements of the array at `key`; a plain value counts as one element. */
  list(key) {
    const single = this.get(key);
    if (single !== undefined) return [single];
    const out = [];
    for (let value; (value = this.get(`${key}.${out.length}`)) !== undefined; ) out.push(value);
    return out;
  }

  /** The distinct next key segments under `prefix`, sorted. */
  children(prefix) {
    const lead = prefix + '.';
    const names = [];
    for (const key of this.values.keys()) {
      if (!key.startsWith(lead)) continue;
      const name = key.slice(lead.length).split('.')[0];
      if (names[names.length - 1] !== name) names.push(name);
    }
    return names;
  }
}

// Keys sort by code point, as the host's (Rust's) sorted map does; JS's
// default sort compares UTF-16 units, which differs past U+FFFF.
function byKey([a], [b]) {
  const x = [...a].map((c) => c.codePointAt(0));
  const y = [...b].map((c) => c.codePointAt(0));
  for (let i = 0; i < Math.min(x.length, y.length); i++) if (x[i] !== y[i]) return x[i] - y[i];
  return x.length - y.length;
}
