// Confidence bands: the core of every probabilistic trigger.

import { ConfigError } from './config.js';
import { display } from './format.js';

/** Where an agent's confidence falls. */
export const Band = Object.freeze({ ESCALATE: 'escalate', SELF_CORRECT: 'self-correct', PROCEED: 'proceed' });

/** Two thresholds splitting [0, 1] into three bands. */
export class ConfidenceBands {
  constructor(escalateBelow, selfCorrectBelow) {
    this.escalateBelow = escalateBelow;
    this.selfCorrectBelow = selfCorrectBelow;
  }

  /** Reads both thresholds, with defaults, and checks they are ordered in [0, 1]. */
  static fromConfig(config, escalateKey, selfCorrectKey, defaults) {
    const low = config.unitInterval(escalateKey, defaults.escalateBelow);
    const high = config.unitInterval(selfCorrectKey, defaults.selfCorrectBelow);
    if (high < low) {
      throw new ConfigError(selfCorrectKey, `must be at least \`${escalateKey}\` (${display(low)}), got ${display(high)}`);
    }
    return new ConfidenceBands(low, high);
  }

  /** A NaN confidence escalates: it is never evidence that the agent may proceed. */
  band(confidence) {
    if (Number.isNaN(confidence) || confidence < this.escalateBelow) return Band.ESCALATE;
    if (confidence < this.selfCorrectBelow) return Band.SELF_CORRECT;
    return Band.PROCEED;
  }

  /** Distance to the nearest threshold: how clear-cut the band is. Zero on a boundary. */
  margin(confidence) {
    if (Number.isNaN(confidence)) return 0;
    return Math.min(Math.abs(confidence - this.escalateBelow), Math.abs(confidence - this.selfCorrectBelow));
  }
}
