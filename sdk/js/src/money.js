// Authorization limits per currency, the commonest compliance trigger.
// Limits and amounts are BigInts of minor units, compared as integers: no
// floating point ever decides whether a refund needs a human.

import { ConfigError } from './config.js';
import { Tier } from './types.js';

const abs = (n) => (n < 0n ? -n : n);

/** Operator and executive limits per currency, from `<prefix>.<CUR>.operator|executive`. */
export class TierLimits {
  constructor(byCurrency = new Map()) {
    this.byCurrency = byCurrency;
  }

  /** Reads and checks the limits under `prefix`. */
  static fromConfig(config, prefix) {
    const byCurrency = new Map();
    for (const currency of config.children(prefix)) {
      if (!/^[A-Z]{3}$/.test(currency)) {
        throw new ConfigError(`${prefix}.${currency}`, 'currency must be a three-letter upper-case ISO 4217 code');
      }
      const operator = config.bigint(`${prefix}.${currency}.operator`, undefined, { minimum: 0n });
      const executive = config.bigint(`${prefix}.${currency}.executive`, undefined, { minimum: 0n });
      if (operator !== undefined && executive !== undefined && executive <= operator) {
        throw new ConfigError(
          `${prefix}.${currency}.executive`,
          `executive limit ${executive} must be above the operator limit ${operator}`,
        );
      }
      if (operator === undefined && executive === undefined) {
        throw new ConfigError(`${prefix}.${currency}`, 'expected an `operator` or `executive` limit');
      }
      byCurrency.set(currency, { operator, executive });
    }
    return new TierLimits(byCurrency);
  }

  isEmpty() {
    return this.byCurrency.size === 0;
  }

  /**
   * `{ within: share }`, `{ exceeded: tier, limit }` or `{ unknownCurrency: true }`
   * for `amount` (its absolute value: money moving either way counts).
   */
  check(amount) {
    const limits = this.byCurrency.get(amount.currency);
    if (!limits) return { unknownCurrency: true };
    const value = abs(BigInt(amount.minor));
    if (limits.executive !== undefined && value > limits.executive) {
      return { exceeded: Tier.EXECUTIVE, limit: limits.executive };
    }
    if (limits.operator !== undefined && value > limits.operator) {
      return { exceeded: Tier.OPERATOR, limit: limits.operator };
    }
    const lowest = limits.operator ?? limits.executive;
    return { within: lowest === 0n ? 1 : Number(value) / Number(lowest) };
  }
}

/** Minor units for people: 125000n USD is `1250.00 USD`. */
export function formatMoney(amount) {
  const minor = BigInt(amount.minor);
  const value = abs(minor);
  const cents = String(value % 100n).padStart(2, '0');
  return `${minor < 0n ? '-' : ''}${value / 100n}.${cents} ${amount.currency}`;
}
