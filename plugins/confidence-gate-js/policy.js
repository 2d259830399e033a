// `confidence-gate` in JavaScript: the probabilistic reference policy,
// ported line for line from `plugins/confidence-gate` so that the
// conformance vectors hold it to the Rust build's verdicts, reason for reason.
//
// - The agent's confidence falls into one of three bands: below
//   `escalate-below` an operator must look; below `self-correct-below` the
//   agent retries with guidance; otherwise it proceeds.
// - Anomalies escalate to an operator whatever the confidence: an amount
//   more than `anomaly-factor` times the typical amount for its kind and
//   currency, or a kind of work the deployment does not know.

import {
  Band, ConfidenceBands, ConfigError, Policy, Tier, TriggerKind, Verdict, display, fixed,
  formatMoney, hasLabel, signal,
} from 'handoff-policy';

const DEFAULT_BANDS = new ConfidenceBands(0.6, 0.75);
const LABEL_UNKNOWN_KIND = 'anomaly.unknown-kind';
const LABEL_AMOUNT = 'anomaly.amount';
const PROBABILISTIC = TriggerKind.PROBABILISTIC;
const BAND_LABELS = {
  [Band.ESCALATE]: 'confidence.low',
  [Band.SELF_CORRECT]: 'confidence.marginal',
  [Band.PROCEED]: 'confidence.high',
};

export default class ConfidenceGate extends Policy {
  constructor(fields) {
    super();
    Object.assign(this, fields);
  }

  static info() {
    return {
      name: 'confidence-gate',
      version: '0.1.0',
      description:
        "Probabilistic gate on the agent's confidence, with anomaly signals for unusual amounts and unknown kinds of work.",
      triggers: [
        {
          code: 'confidence',
          kind: PROBABILISTIC,
          description:
            'Agent confidence below `escalate-below` escalates to an operator; below `self-correct-below` the agent retries with guidance.',
        },
        {
          code: 'anomaly',
          kind: PROBABILISTIC,
          description:
            'An amount over `anomaly-factor` times the typical amount for its kind and currency, or a kind of work not in `known-kinds`.',
        },
      ],
    };
  }

  static configure(config) {
    const bands = ConfidenceBands.fromConfig(config, 'escalate-below', 'self-correct-below', DEFAULT_BANDS);
    const anomalyFactor = config.number('anomaly-factor', 8.0);
    if (!(Number.isFinite(anomalyFactor) && anomalyFactor > 1)) {
      throw new ConfigError('anomaly-factor', `expected a number above 1, got ${display(anomalyFactor)}`);
    }
    const typical = new Map();
    for (const kind of config.children('typical')) {
      for (const currency of config.children(`typical.${kind}`)) {
        const key = `typical.${kind}.${currency}`;
        const amount = config.bigint(key, 0n, { minimum: 0n });
        if (amount === 0n) throw new ConfigError(key, 'a typical amount must be above zero');
        typical.set(`${kind}\u0000${currency}`, amount);
      }
    }
    return new ConfidenceGate({
      bands,
      knownKinds: config.list('known-kinds'),
      typical,
      anomalyFactor,
      operatorRole: config.string('operator-role', 'operator'),
      guidance: config.string(
        'guidance',
        'Check the answer against your sources and resubmit with higher confidence.',
      ),
    });
  }

  classify(item) {
    const labels = [BAND_LABELS[this.bands.band(item.confidence)]];
    if (this.unknownKind(item)) labels.push(LABEL_UNKNOWN_KIND);
    const ratio = this.amountRatio(item);
    if (ratio !== undefined && ratio > this.anomalyFactor) labels.push(LABEL_AMOUNT);
    // Probabilistic triggers never count as mandated rules.
    return { labels, rulesFired: [] };
  }

  score(item, classification) {
    const confidence = Number.isNaN(item.confidence) ? 0 : Math.min(Math.max(item.confidence, 0), 1);
    const signals = [signal('confidence.shortfall', 1 - confidence, `agent confidence ${fixed(item.confidence, 2)}`)];
    if (hasLabel(classification, LABEL_UNKNOWN_KIND)) {
      signals.push(signal(LABEL_UNKNOWN_KIND, 0.8, `kind \`${item.kind}\` is not one this deployment expects`));
    }
    const ratio = this.amountRatio(item);
    if (ratio !== undefined) {
      // Weight grows with how far past the anomaly factor the amount is.
      const weight = Math.min(ratio / (2 * this.anomalyFactor), 1);
      signals.push(signal('amount.ratio', weight, `${formatMoney(item.amount)} is ${fixed(ratio, 1)}x the typical amount`));
    }
    signals.sort((a, b) => b.weight - a.weight);
    const risk = signals.length ? signals[0].weight : 0;
    // Confident when the agent's confidence sits well inside a band, unsure on a boundary.
    const ownConfidence = Math.min(0.5 + 2 * this.bands.margin(confidence), 1);
    return { risk, confidence: ownConfidence, signals };
  }

  escalate(item, classification, _assessment) {
    const toOperator = (code, reason) =>
      Verdict.withRole(Verdict.escalate(Tier.OPERATOR, code, reason, PROBABILISTIC), this.operatorRole);
    const ratio = this.amountRatio(item);
    if (hasLabel(classification, LABEL_AMOUNT) && ratio !== undefined) {
      return toOperator(
        'anomaly.amount',
        `${item.kind} ${formatMoney(item.amount)} is ${fixed(ratio, 1)}x the typical amount, beyond the anomaly factor of ${display(this.anomalyFactor)}.`,
      );
    }
    if (hasLabel(classification, LABEL_UNKNOWN_KIND)) {
      return toOperator('anomaly.unknown-kind', `Kind of work \`${item.kind}\` is not one this deployment expects.`);
    }
    const c = fixed(item.confidence, 2);
    switch (this.bands.band(item.confidence)) {
      case Band.ESCALATE:
        return toOperator(
          'confidence.low',
          `Agent confidence ${c} is below the escalation threshold ${fixed(this.bands.escalateBelow, 2)}.`,
        );
      case Band.SELF_CORRECT:
        return Verdict.selfCorrect(
          'confidence.marginal',
          `Agent confidence ${c} is below ${fixed(this.bands.selfCorrectBelow, 2)}; the agent should retry.`,
          this.guidance,
          PROBABILISTIC,
        );
      default:
        return Verdict.proceed('confidence.ok', `Agent confidence ${c} is within policy.`, PROBABILISTIC);
    }
  }

  unknownKind(item) {
    return this.knownKinds.length > 0 && !this.knownKinds.includes(item.kind);
  }

  /** The amount as a multiple of the typical amount for its kind and currency. */
  amountRatio(item) {
    if (!item.amount) return undefined;
    const typical = this.typical.get(`${item.kind}\u0000${item.amount.currency}`);
    if (typical === undefined) return undefined;
    const minor = BigInt(item.amount.minor);
    return Number(minor < 0n ? -minor : minor) / Number(typical);
  }
}
